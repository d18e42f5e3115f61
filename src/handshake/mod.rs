//! The sans-io opening handshake of RFC 6455 §4.
//!
//! Everything here works on byte slices and `http` types: nothing reads from or writes to a
//! socket, nothing is async, and nothing panics on any input, so [`server::parse_request`] and
//! [`client::parse_response_head`] can be fuzzed as plain functions.
//!
//! - [`client`] builds the upgrade request ([`client::ClientHandshake`]) and checks the
//!   server's answer.
//! - [`connect`] builds the HTTP/2 extended CONNECT request of RFC 8441
//!   ([`connect::ConnectHandshake`]) and checks the server's answer, with the same subprotocol
//!   and extension checks as [`client`] (both hold one offer).
//! - [`server`] parses and checks an upgrade request and builds the `101` answer or a refusal.
//! - [`Negotiated`] is what the handshake agreed on (subprotocol, extensions), read from the
//!   `101` by both ends.
//! - [`deflate_offer`], [`accept_deflate_offer`] and [`check_deflate_response`] negotiate
//!   permessage-deflate (RFC 7692) with [`DeflateParams`]; the client and server handshakes
//!   call them.
//!
//! A driver (the async code that owns the socket) reads bytes into a buffer, calls a parser
//! until it stops answering `Ok(None)` ("need more bytes"), and hands every byte after the HTTP
//! head (a pipelined first frame) to the framing layer.

pub mod client;
pub mod connect;
mod error;
mod extensions;
mod negotiated;
mod offer;
mod scheme;
pub mod server;
mod target;

pub use error::HandshakeError;
pub use extensions::{accept_deflate_offer, check_deflate_response, deflate_offer, DeflateParams};
pub use negotiated::Negotiated;
pub(crate) use scheme::Scheme;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use rand::Rng as _;
use sha1::{Digest as _, Sha1};

/// The GUID that RFC 6455 §1.3 appends to `Sec-WebSocket-Key` before hashing.
pub const WEBSOCKET_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The only `Sec-WebSocket-Version` that RFC 6455 defines, and the one this crate speaks.
pub const WEBSOCKET_VERSION: &str = "13";

/// How many header fields [`client::ClientHandshake::parse_response`] accepts in a response
/// head before failing with [`HandshakeError::TooManyHeaders`]. Default: 64.
pub const DEFAULT_MAX_HEADERS: usize = 64;

/// Returns a fresh `Sec-WebSocket-Key`: the base64 encoding of 16 random bytes (24 characters).
pub fn generate_key() -> String {
    let mut nonce = [0u8; 16];
    rand::rng().fill(&mut nonce);
    BASE64.encode(nonce)
}

/// Computes `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`, as RFC 6455 §4.2.2 defines it:
/// base64 of the SHA-1 of the key (as sent, without surrounding whitespace) followed by
/// [`WEBSOCKET_GUID`]. The RFC's example key `dGhlIHNhbXBsZSBub25jZQ==` gives
/// `s3pPLMBiTxaQ9kYGzzhZRbK+xOo=`.
pub fn derive_accept_key(key: &[u8]) -> String {
    let mut sha1 = Sha1::new();
    sha1.update(key);
    sha1.update(WEBSOCKET_GUID.as_bytes());
    BASE64.encode(sha1.finalize())
}

/// Checks that `Connection` is present and lists the `upgrade` token (RFC 6455 §4.1, §4.2.1),
/// as both a request and a 101 response must.
pub(crate) fn check_connection_upgrade(headers: &HeaderMap) -> Result<(), HandshakeError> {
    if !headers.contains_key(http::header::CONNECTION) {
        return Err(HandshakeError::MissingHeader("Connection"));
    }
    if !header_contains_token(headers, &http::header::CONNECTION, "upgrade") {
        return Err(HandshakeError::InvalidHeader {
            name: "Connection",
            reason: "the value does not contain the upgrade token",
        });
    }
    Ok(())
}

/// Returns `true` when any value of header `name` is a comma-separated list containing `token`,
/// compared ASCII case-insensitively (`Connection: keep-alive, Upgrade` contains `upgrade`).
///
/// The header may appear on several lines; empty list elements and the spaces or tabs around
/// elements are ignored. Values that are not UTF-8 are still searched.
pub fn header_contains_token(headers: &HeaderMap, name: &HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .flat_map(|value| split_list(value.as_bytes()))
        .any(|element| element.eq_ignore_ascii_case(token.as_bytes()))
}

/// Iterates over the elements of the comma-separated lists in every value of header `name`,
/// trimmed and in order, skipping empty elements and elements that are not UTF-8.
///
/// `Sec-WebSocket-Protocol: chat, superchat` on one line or on two gives `"chat"`, `"superchat"`.
pub fn header_tokens<'a>(
    headers: &'a HeaderMap,
    name: &HeaderName,
) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .get_all(name)
        .iter()
        .flat_map(|value| split_list(value.as_bytes()))
        .filter_map(|element| std::str::from_utf8(element).ok())
}

/// Splits a header value on commas and trims optional whitespace (RFC 9110 §5.6.1), skipping
/// empty elements.
fn split_list(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim_ows)
        .filter(|element| !element.is_empty())
}

/// Strips leading and trailing spaces and tabs.
fn trim_ows(mut bytes: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = bytes {
        bytes = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = bytes {
        bytes = rest;
    }
    bytes
}

/// Returns `true` when `value`, trimmed, equals `expected` ASCII case-insensitively.
fn value_eq_ignore_case(value: &HeaderValue, expected: &str) -> bool {
    trim_ows(value.as_bytes()).eq_ignore_ascii_case(expected.as_bytes())
}

/// Returns the only value of header `name`: an error when it is missing (`MissingHeader(label)`)
/// or appears more than once.
fn single_header<'a>(
    headers: &'a HeaderMap,
    name: &HeaderName,
    label: &'static str,
) -> Result<&'a HeaderValue, HandshakeError> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (Some(value), None) => Ok(value),
        (None, _) => Err(HandshakeError::MissingHeader(label)),
        (Some(_), Some(_)) => Err(HandshakeError::InvalidHeader {
            name: label,
            reason: "the header appears more than once",
        }),
    }
}

/// Returns `true` when `value` is a valid `Sec-WebSocket-Key`: base64 of exactly 16 bytes.
fn is_valid_key(value: &[u8]) -> bool {
    let value = trim_ows(value);
    // 16 bytes encode to 24 characters with padding; checking first bounds the decode.
    value.len() == 24 && matches!(BASE64.decode(value), Ok(nonce) if nonce.len() == 16)
}

/// Returns `true` when `s` is a non-empty RFC 9110 token: what a subprotocol name must be.
fn is_token(s: &str) -> bool {
    is_token_bytes(s.as_bytes())
}

/// Returns `true` when `bytes` is a non-empty RFC 9110 token.
fn is_token_bytes(bytes: &[u8]) -> bool {
    !bytes.is_empty()
        && bytes.iter().all(|&b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                )
        })
}

/// Runs `parse` with a slice of `max_headers` empty httparse header slots: on the stack when
/// it fits in [`DEFAULT_MAX_HEADERS`], on the heap otherwise. A header line takes at least 3
/// bytes (`a:\n`), so no more slots than `window_len / 2 + 1` are ever needed: that bounds the
/// allocation whatever `max_headers` is.
fn with_header_slots<'buf, R>(
    max_headers: usize,
    window_len: usize,
    parse: impl FnOnce(&mut [httparse::Header<'buf>]) -> R,
) -> R {
    let max_headers = max_headers.min(window_len / 2 + 1);
    if max_headers <= DEFAULT_MAX_HEADERS {
        let mut slots: [httparse::Header<'buf>; DEFAULT_MAX_HEADERS] =
            [httparse::EMPTY_HEADER; DEFAULT_MAX_HEADERS];
        parse(&mut slots[..max_headers])
    } else {
        let mut slots: Vec<httparse::Header<'buf>> = vec![httparse::EMPTY_HEADER; max_headers];
        parse(&mut slots)
    }
}

/// The part of `buf` that may hold a head of at most `max_header_bytes` bytes. Parsing only this
/// window bounds the work done per call.
fn head_window(buf: &[u8], max_header_bytes: usize) -> &[u8] {
    &buf[..buf.len().min(max_header_bytes)]
}

/// What to answer when httparse reports the head incomplete: need more bytes, or give up
/// because the head cannot fit in the limit.
fn partial_head<T>(buf: &[u8], max_header_bytes: usize) -> Result<Option<T>, HandshakeError> {
    if buf.len() >= max_header_bytes {
        Err(HandshakeError::HeaderTooLarge {
            limit: max_header_bytes,
        })
    } else {
        Ok(None)
    }
}

/// Maps an httparse error to ours.
fn from_httparse(error: httparse::Error) -> HandshakeError {
    match error {
        httparse::Error::TooManyHeaders => HandshakeError::TooManyHeaders,
        httparse::Error::Version => {
            HandshakeError::Malformed("invalid HTTP version, expected HTTP/1.1".into())
        }
        other => HandshakeError::Malformed(other.to_string()),
    }
}

/// Maps httparse's minor version (`HTTP/1.x`) to an `http::Version`.
fn http_version(minor: Option<u8>) -> http::Version {
    match minor {
        Some(0) => http::Version::HTTP_10,
        _ => http::Version::HTTP_11,
    }
}

/// Copies parsed httparse headers into a `HeaderMap`, keeping their order and repeats.
fn to_header_map(headers: &[httparse::Header<'_>]) -> Result<HeaderMap, HandshakeError> {
    let mut map = HeaderMap::new();
    for header in headers {
        let name = HeaderName::from_bytes(header.name.as_bytes()).map_err(|_| {
            HandshakeError::Malformed(format!("invalid header name {:?}", header.name))
        })?;
        let value = HeaderValue::from_bytes(header.value).map_err(|_| {
            HandshakeError::Malformed(format!("invalid value in header {:?}", header.name))
        })?;
        map.try_append(name, value)
            .map_err(|_| HandshakeError::TooManyHeaders)?;
    }
    Ok(map)
}

/// Appends a header, failing instead of panicking if the map is full.
fn push(map: &mut HeaderMap, name: HeaderName, value: HeaderValue) -> Result<(), HandshakeError> {
    map.try_append(name, value)
        .map(|_| ())
        .map_err(|_| HandshakeError::TooManyHeaders)
}

/// Appends `name: value\r\n` for every header, in the map's order.
fn write_headers(headers: &HeaderMap, out: &mut Vec<u8>) {
    for (name, value) in headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::{CONNECTION, SEC_WEBSOCKET_PROTOCOL};

    #[test]
    fn accept_key_matches_rfc6455_section_1_3() {
        assert_eq!(
            derive_accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn generated_keys_are_valid_and_fresh() {
        let a = generate_key();
        let b = generate_key();
        assert!(is_valid_key(a.as_bytes()), "{a}");
        assert!(is_valid_key(b.as_bytes()), "{b}");
        assert_ne!(a, b);
    }

    #[test]
    fn key_validation() {
        assert!(is_valid_key(b"dGhlIHNhbXBsZSBub25jZQ=="));
        assert!(is_valid_key(b" dGhlIHNhbXBsZSBub25jZQ== "));
        // 15 and 17 bytes.
        assert!(!is_valid_key(b"dGhlIHNhbXBsZSBub25jZQ="));
        assert!(!is_valid_key(b"dGhlIHNhbXBsZSBub25jZQ=="[..20].as_ref()));
        assert!(!is_valid_key(b"AAAAAAAAAAAAAAAAAAAAAAA="));
        assert!(!is_valid_key(b"not base64 at all!!!!!!!"));
        assert!(!is_valid_key(b""));
    }

    fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn token_lists_are_case_insensitive_and_span_lines() {
        let headers = map(&[("connection", "keep-alive, Upgrade")]);
        assert!(header_contains_token(&headers, &CONNECTION, "upgrade"));
        assert!(header_contains_token(&headers, &CONNECTION, "KEEP-ALIVE"));
        assert!(!header_contains_token(&headers, &CONNECTION, "close"));

        let headers = map(&[("connection", "keep-alive"), ("connection", " ,upgrade\t,")]);
        assert!(header_contains_token(&headers, &CONNECTION, "Upgrade"));

        let headers = map(&[("connection", "upgrade-not")]);
        assert!(!header_contains_token(&headers, &CONNECTION, "upgrade"));
        assert!(!header_contains_token(
            &HeaderMap::new(),
            &CONNECTION,
            "upgrade"
        ));
    }

    #[test]
    fn tokens_are_trimmed_in_order() {
        let headers = map(&[
            ("sec-websocket-protocol", "chat, superchat"),
            ("sec-websocket-protocol", " ,v2.proto ,"),
        ]);
        let tokens: Vec<_> = header_tokens(&headers, &SEC_WEBSOCKET_PROTOCOL).collect();
        assert_eq!(tokens, ["chat", "superchat", "v2.proto"]);
    }

    #[test]
    fn subprotocol_tokens() {
        assert!(is_token("chat"));
        assert!(is_token("v2.bin~proto"));
        assert!(!is_token(""));
        assert!(!is_token("a b"));
        assert!(!is_token("a,b"));
        assert!(!is_token("é"));
    }

    #[test]
    fn client_and_server_agree() {
        let mut builder = http::Request::builder().uri("ws://localhost:9001/echo?x=1");
        client::set_subprotocols(builder.headers_mut().unwrap(), ["v2", "v1"]).unwrap();
        let hs = client::ClientHandshake::new(builder.body(()).unwrap()).unwrap();
        let mut wire = Vec::new();
        hs.write_request(&mut wire);

        let (request, head_len) = server::parse_request(&wire, 4096, 32).unwrap().unwrap();
        assert_eq!(head_len, wire.len());
        assert_eq!(request.uri(), "/echo?x=1");
        assert_eq!(request.headers()["host"], "localhost:9001");
        let chosen = server::requested_subprotocols(&request).last();
        let response = server::accept_response(&request, chosen, &HeaderMap::new()).unwrap();
        let mut wire = Vec::new();
        server::write_response(&response, b"", &mut wire);
        wire.extend_from_slice(b"\x88\x00");

        let parsed = hs.parse_response(&wire, 4096).unwrap().unwrap();
        assert_eq!(parsed.subprotocol(), Some("v1"));
        assert_eq!(&wire[parsed.head_len..], b"\x88\x00");
    }

    #[test]
    fn client_and_server_agree_on_deflate() {
        let offers = [
            DeflateParams::default(),
            DeflateParams {
                server_no_context_takeover: true,
                server_max_window_bits: 9,
                ..DeflateParams::default()
            },
            DeflateParams {
                client_no_context_takeover: true,
                client_max_window_bits: 8,
                ..DeflateParams::default()
            },
        ];
        let preferences = [
            DeflateParams::default(),
            DeflateParams {
                client_no_context_takeover: true,
                server_max_window_bits: 10,
                client_max_window_bits: 11,
                ..DeflateParams::default()
            },
        ];
        for offer in offers {
            for preferred in preferences {
                let request = http::Request::builder().uri("ws://h/").body(()).unwrap();
                let hs = client::ClientHandshake::new(request)
                    .unwrap()
                    .offer_deflate(Some(offer))
                    .unwrap();
                let mut wire = Vec::new();
                hs.write_request(&mut wire);
                let (request, _) = server::parse_request(&wire, 4096, 32).unwrap().unwrap();
                let (response, server_side) = server::Accept::new()
                    .response(&request, Some(&preferred))
                    .unwrap();
                let mut wire = Vec::new();
                server::write_response(&response, b"", &mut wire);
                let client_side = hs
                    .parse_response(&wire, 4096)
                    .unwrap()
                    .unwrap()
                    .negotiated();
                assert_eq!(client_side, server_side, "{offer:?} {preferred:?}");
                assert!(client_side.permessage_deflate().is_some());
            }
        }
    }

    /// A small deterministic generator (xorshift64*), so failures reproduce.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    const REQUEST: &[u8] = b"GET /chat?a=1 HTTP/1.1\r\nHost: h:1\r\nUpgrade: websocket\r\n\
        Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Sec-WebSocket-Protocol: chat, x\r\nSec-WebSocket-Version: 13\r\n\r\n\x81\x00";
    const RESPONSE: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
        Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
        Sec-WebSocket-Protocol: chat\r\n\r\n\x81\x00";
    const REFUSAL: &[u8] = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 4\r\n\r\nnope";

    fn fuzz_client() -> client::ClientHandshake {
        let request = http::Request::builder()
            .uri("ws://h:1/chat?a=1")
            .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
            .header("Sec-WebSocket-Protocol", "chat, x")
            .body(())
            .unwrap();
        client::ClientHandshake::new(request).unwrap()
    }

    /// Runs both parsers on `input` with a few limits; they must return, never panic.
    fn parse_everything(hs: &client::ClientHandshake, input: &[u8], rng: &mut Rng) {
        for limit in [input.len(), input.len() / 2, 8192, rng.below(300)] {
            let _ = server::parse_request(input, limit, 64);
            let _ = server::parse_request(input, limit, rng.below(80));
            let _ = hs.parse_response(input, limit);
            let _ = client::parse_response_head(input, limit);
        }
    }

    #[test]
    fn every_prefix_of_a_valid_head_needs_more_bytes() {
        let hs = fuzz_client();
        let head_end = |bytes: &[u8]| bytes.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        for end in 0..head_end(REQUEST) {
            assert!(server::parse_request(&REQUEST[..end], 8192, 64)
                .unwrap()
                .is_none());
        }
        assert!(server::parse_request(REQUEST, 8192, 64).unwrap().is_some());
        for end in 0..head_end(RESPONSE) {
            assert!(hs.parse_response(&RESPONSE[..end], 8192).unwrap().is_none());
        }
        assert!(hs.parse_response(RESPONSE, 8192).unwrap().is_some());
        for end in 0..head_end(REFUSAL) {
            assert!(hs.parse_response(&REFUSAL[..end], 8192).unwrap().is_none());
        }
        for end in head_end(REFUSAL)..=REFUSAL.len() {
            assert!(matches!(
                hs.parse_response(&REFUSAL[..end], 8192),
                Err(HandshakeError::Refused(r)) if r.body().len() == end - head_end(REFUSAL)
            ));
        }
    }

    #[test]
    fn parsers_never_panic_on_mutated_or_random_input() {
        let hs = fuzz_client();
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let nasty = [
            0u8, b'\r', b'\n', b':', b' ', b'\t', b',', 0x7f, 0x80, 0xff, b'a', b'1',
        ];
        for valid in [REQUEST, RESPONSE, REFUSAL] {
            for end in 0..=valid.len() {
                parse_everything(&hs, &valid[..end], &mut rng);
            }
            for position in 0..valid.len() {
                for byte in nasty {
                    let mut input = valid.to_vec();
                    input[position] = byte;
                    parse_everything(&hs, &input, &mut rng);
                    input.insert(position, byte);
                    parse_everything(&hs, &input, &mut rng);
                    input.drain(position..position + 2);
                    parse_everything(&hs, &input, &mut rng);
                }
            }
        }
        let pieces: [&[u8]; 14] = [
            b"GET ",
            b"HTTP/1.1",
            b" 101 ",
            b"\r\n",
            b"\n",
            b": ",
            b"Upgrade",
            b"websocket",
            b"Sec-WebSocket-Key",
            b"Sec-WebSocket-Version: 13",
            b",",
            b"/",
            b"\xff",
            b"\0",
        ];
        for _ in 0..3000 {
            let mut input = Vec::new();
            for _ in 0..rng.below(40) {
                if rng.below(3) == 0 {
                    input.push(rng.next() as u8);
                } else {
                    input.extend_from_slice(pieces[rng.below(pieces.len())]);
                }
            }
            parse_everything(&hs, &input, &mut rng);
        }
    }

    #[test]
    fn trims_only_spaces_and_tabs() {
        assert_eq!(trim_ows(b" \t x y \t"), b"x y");
        assert_eq!(trim_ows(b"   "), b"");
        assert_eq!(trim_ows(b""), b"");
    }
}
