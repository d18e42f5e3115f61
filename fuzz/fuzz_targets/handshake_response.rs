//! The client's response parsers: `parse_response_head` and `ClientHandshake::parse_response`,
//! for a request with the RFC 6455 example key that offers the subprotocols `chat, superchat`.
//!
//! Input: two bytes of `max_header_bytes` (at most 4096), a length byte `n`, `n & 31` piece
//! lengths, then the response.
//!
//! Invariants:
//! - both parsers agree: the same "need more", the same head, the same malformed-HTTP errors;
//!   a parsed head lies within the input and within `max_header_bytes`, and parsing the head
//!   alone gives the same head;
//! - an accepted response is a 101 over HTTP/1.1 with `Upgrade: websocket`, `Connection:
//!   upgrade`, the right `Sec-WebSocket-Accept`, no extension and an offered subprotocol or
//!   none; every other status is `Refused`, whose body is the bytes after the head, cut at
//!   `Content-Length` and at `MAX_REFUSED_BODY` (none for 1xx, 204 and 304);
//! - incremental: feeding the input in fuzz-chosen pieces (byte by byte when there are no
//!   lengths) gives "need more" until the first answer, and that answer is the whole input's
//!   (a refusal then carries a prefix of the whole input's body).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use wsio::handshake::client::{
    content_length, parse_response_head, ClientHandshake, ParsedResponse, MAX_REFUSED_BODY,
};
use wsio::handshake::{header_contains_token, HandshakeError};
use wsio::http::{header, Request, StatusCode, Version};
use wsio_fuzz::{pieces, Input};

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

type Parsed = Result<Option<ParsedResponse>, HandshakeError>;

fn handshake() -> &'static ClientHandshake {
    static HANDSHAKE: OnceLock<ClientHandshake> = OnceLock::new();
    HANDSHAKE.get_or_init(|| {
        let request = Request::builder()
            .uri("ws://server.example.com/chat")
            .header("Sec-WebSocket-Key", KEY)
            .header("Sec-WebSocket-Protocol", "chat, superchat")
            .body(())
            .unwrap();
        ClientHandshake::new(request).unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let max_bytes = usize::from(input.u16()) % 4097;
    let lens = input.lengths(0x1F);
    let buf = input.rest();
    let hs = handshake();

    let head = parse_response_head(buf, max_bytes);
    let full = hs.parse_response(buf, max_bytes);
    match &head {
        Ok(None) => {
            assert!(buf.len() < max_bytes);
            assert!(matches!(full, Ok(None)), "{full:?}");
        }
        Err(e) => {
            assert_eq!(
                full.as_ref().map(|_| ()).unwrap_err().to_string(),
                e.to_string()
            );
        }
        Ok(Some(parsed)) => check_head(buf, max_bytes, parsed, &full),
    }

    // Incremental: the first answer that is not "need more" is the whole input's answer.
    let mut end = 0;
    for piece in pieces(buf, lens) {
        end += piece.len();
        let got = hs.parse_response(&buf[..end], max_bytes);
        if matches!(got, Ok(None)) {
            continue;
        }
        assert_same(&got, &full, &buf[..end]);
        return;
    }
    // Only an empty input has no pieces to feed.
    assert!(matches!(full, Ok(None)) || buf.is_empty());
});

fn check_head(buf: &[u8], max_bytes: usize, parsed: &ParsedResponse, full: &Parsed) {
    let head_len = parsed.head_len;
    assert!(head_len <= buf.len() && head_len <= max_bytes);
    assert!(buf[..head_len].ends_with(b"\n"));
    match parse_response_head(&buf[..head_len], max_bytes) {
        Ok(Some(alone)) => same_head(&alone, parsed, buf),
        other => panic!("the head alone gives {other:?}: {buf:02x?}"),
    }

    let status = parsed.response.status();
    match full {
        Ok(Some(accepted)) => {
            assert_eq!(accepted.head_len, head_len);
            let response = &accepted.response;
            assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
            assert_eq!(response.version(), Version::HTTP_11);
            let headers = response.headers();
            let upgrade: Vec<_> = headers.get_all(header::UPGRADE).iter().collect();
            assert_eq!(upgrade.len(), 1);
            assert!(trim(upgrade[0].as_bytes()).eq_ignore_ascii_case(b"websocket"));
            assert!(header_contains_token(
                headers,
                &header::CONNECTION,
                "upgrade"
            ));
            let accept: Vec<_> = headers
                .get_all(header::SEC_WEBSOCKET_ACCEPT)
                .iter()
                .collect();
            assert_eq!(accept.len(), 1);
            assert_eq!(trim(accept[0].as_bytes()), ACCEPT.as_bytes());
            assert!(headers
                .get_all(header::SEC_WEBSOCKET_EXTENSIONS)
                .iter()
                .all(|v| v
                    .as_bytes()
                    .iter()
                    .all(|b| matches!(b, b',' | b' ' | b'\t'))));
            match accepted.subprotocol() {
                None | Some("chat") | Some("superchat") => {}
                Some(other) => panic!("subprotocol {other:?} was not offered"),
            }
        }
        Err(HandshakeError::Refused(refused)) => {
            assert_ne!(status, StatusCode::SWITCHING_PROTOCOLS);
            assert_eq!(refused.status(), status);
            assert_eq!(refused.headers(), parsed.response.headers());
            let rest = &buf[head_len..];
            let limit = if status.is_informational()
                || status == StatusCode::NO_CONTENT
                || status == StatusCode::NOT_MODIFIED
            {
                0
            } else {
                content_length(&parsed.response)
                    .unwrap_or(MAX_REFUSED_BODY)
                    .min(MAX_REFUSED_BODY)
            };
            assert_eq!(&refused.body()[..], &rest[..rest.len().min(limit)]);
        }
        Err(e) => assert_eq!(status, StatusCode::SWITCHING_PROTOCOLS, "{e:?}"),
        Ok(None) => panic!("the head is complete, parse_response needs more"),
    }
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| !matches!(b, b' ' | b'\t'));
    let end = bytes.iter().rposition(|b| !matches!(b, b' ' | b'\t'));
    match (start, end) {
        (Some(s), Some(e)) => &bytes[s..=e],
        _ => &[],
    }
}

fn assert_same(got: &Parsed, want: &Parsed, input: &[u8]) {
    match (got, want) {
        (Ok(Some(a)), Ok(Some(b))) => same_head(a, b, input),
        (Ok(None), Ok(None)) => {}
        (Err(HandshakeError::Refused(a)), Err(HandshakeError::Refused(b))) => {
            assert_eq!(a.status(), b.status(), "{input:02x?}");
            assert_eq!(a.headers(), b.headers());
            assert!(b.body().starts_with(a.body()), "{input:02x?}");
        }
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{input:02x?}"),
        _ => panic!("{got:?} but the whole input gives {want:?}: {input:02x?}"),
    }
}

fn same_head(a: &ParsedResponse, b: &ParsedResponse, input: &[u8]) {
    assert_eq!(a.head_len, b.head_len, "{input:02x?}");
    assert_eq!(a.response.status(), b.response.status());
    assert_eq!(a.response.version(), b.response.version());
    assert_eq!(a.response.headers(), b.response.headers());
}
