//! The server's upgrade-request parser, `wsio::handshake::server::parse_request`.
//!
//! Input: two bytes of `max_header_bytes` (at most 4096), a byte of `max_headers`, a length
//! byte `n`, `n & 31` piece lengths, then the request.
//!
//! Invariants:
//! - an accepted request fits the limits (head length within the input and within
//!   `max_header_bytes`, at most `max_headers` fields), is a GET over HTTP/1.1, passes
//!   `validate_request`, and has one `Sec-WebSocket-Key` that is base64 of 16 bytes (checked
//!   here independently); `accept_response` answers it, with any subprotocol it offers, and the
//!   101 written by `write_response` parses back as a whole response head;
//! - only the head counts: parsing just the head gives the same request;
//! - a refused request has a status to answer with (`status_for_reply`);
//! - incremental: feeding the input in fuzz-chosen pieces (byte by byte when there are no
//!   lengths) gives "need more" until the first answer, and that answer is the whole input's.
#![no_main]

use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use wsio::handshake::client::parse_response_head;
use wsio::handshake::server::{
    accept_response, parse_request, requested_subprotocols, validate_request, write_response,
};
use wsio::handshake::{derive_accept_key, HandshakeError};
use wsio::http::{HeaderMap, Method, Request, StatusCode, Version};
use wsio_fuzz::{pieces, Input};

type Parsed = Result<Option<(Request<()>, usize)>, HandshakeError>;

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let max_bytes = usize::from(input.u16()) % 4097;
    let max_headers = usize::from(input.byte());
    let lens = input.lengths(0x1F);
    let buf = input.rest();

    let whole = parse_request(buf, max_bytes, max_headers);
    match &whole {
        Ok(Some((request, head_len))) => {
            check_accepted(buf, request, *head_len, max_bytes, max_headers)
        }
        Ok(None) => assert!(buf.len() < max_bytes),
        Err(e) => assert!(e.status_for_reply().is_some(), "{e:?}"),
    }

    // Incremental: the first answer that is not "need more" is the whole input's answer.
    let mut end = 0;
    for piece in pieces(buf, lens) {
        end += piece.len();
        let got = parse_request(&buf[..end], max_bytes, max_headers);
        if matches!(got, Ok(None)) {
            continue;
        }
        assert_same(&got, &whole, &buf[..end]);
        return;
    }
    // Only an empty input has no pieces to feed.
    assert!(matches!(whole, Ok(None)) || buf.is_empty());
});

fn check_accepted(
    buf: &[u8],
    request: &Request<()>,
    head_len: usize,
    max_bytes: usize,
    max_headers: usize,
) {
    assert!(head_len <= buf.len() && head_len <= max_bytes);
    assert!(buf[..head_len].ends_with(b"\n"));
    assert!(request.headers().len() <= max_headers);
    assert_eq!(request.method(), Method::GET);
    assert_eq!(request.version(), Version::HTTP_11);
    assert!(validate_request(request).is_ok());

    let keys: Vec<_> = request
        .headers()
        .get_all("sec-websocket-key")
        .iter()
        .collect();
    assert_eq!(keys.len(), 1);
    let key = keys[0].as_bytes();
    let trimmed = key
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .map_or(&key[..0], |start| {
            let end = key
                .iter()
                .rposition(|b| !matches!(b, b' ' | b'\t'))
                .unwrap();
            &key[start..=end]
        });
    let nonce = base64::engine::general_purpose::STANDARD
        .decode(trimmed)
        .unwrap_or_else(|e| panic!("accepted key {trimmed:?}: {e}"));
    assert_eq!(nonce.len(), 16);

    // Only the head counts.
    let again = parse_request(&buf[..head_len], max_bytes, max_headers);
    assert_same(&again, &Ok(Some((request.clone(), head_len))), buf);

    // The server can answer it, with no subprotocol or any offered one.
    let offered: Vec<Option<&str>> = std::iter::once(None)
        .chain(requested_subprotocols(request).map(Some))
        .collect();
    for protocol in offered {
        // A header value can hold what `HeaderValue::from_str` refuses: such a choice is an
        // error, never a panic.
        let response = match accept_response(request, protocol, &HeaderMap::new()) {
            Ok(response) => response,
            Err(e) => {
                assert!(protocol.is_some(), "{e:?}");
                continue;
            }
        };
        assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
        assert_eq!(
            response.headers()["sec-websocket-accept"],
            derive_accept_key(trimmed).as_str()
        );
        let mut wire = Vec::new();
        write_response(&response, b"", &mut wire);
        let parsed = parse_response_head(&wire, wire.len() + 1)
            .expect("our 101 parses")
            .expect("our 101 is complete");
        assert_eq!(parsed.head_len, wire.len());
        assert_eq!(parsed.response.status(), StatusCode::SWITCHING_PROTOCOLS);
        assert_eq!(parsed.response.headers(), response.headers());
    }
}

fn assert_same(got: &Parsed, want: &Parsed, input: &[u8]) {
    match (got, want) {
        (Ok(Some((a, a_len))), Ok(Some((b, b_len)))) => {
            assert_eq!(a_len, b_len, "{input:02x?}");
            assert_eq!(a.uri(), b.uri());
            assert_eq!(a.headers(), b.headers());
            assert_eq!(a.version(), b.version());
        }
        (Ok(None), Ok(None)) => {}
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{input:02x?}"),
        _ => panic!("{got:?} but the whole input gives {want:?}: {input:02x?}"),
    }
}
