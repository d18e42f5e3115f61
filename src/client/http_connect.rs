//! The HTTP `CONNECT` exchange with a proxy (RFC 9110 §9.3.6), sans-io: the request's bytes, and
//! a parse of the answer that says "more bytes" or "done" and bounds the answer's size.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use http::StatusCode;

use crate::error::ProxyFailure;

/// The longest answer header a proxy may send; past it, the answer is refused (a proxy that
/// sends an endless header fails instead of growing memory).
pub(super) const MAX_ANSWER: usize = 16 * 1024;

/// The most header lines an answer may have.
const MAX_HEADERS: usize = 64;

/// `CONNECT authority HTTP/1.1` with `Host` and, with `credentials` (`user:password`),
/// `Proxy-Authorization: Basic`.
pub(super) fn request(authority: &str, credentials: Option<&[u8]>) -> Vec<u8> {
    let mut request = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
    if let Some(credentials) = credentials {
        request.push_str("Proxy-Authorization: Basic ");
        request.push_str(&BASE64.encode(credentials));
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    request.into_bytes()
}

/// What the bytes of an answer read so far amount to.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Answer {
    /// The header is not complete yet: read more (the buffer may grow to [`MAX_ANSWER`]).
    Partial,
    /// The header is complete: its status, and its length (the bytes after it are not the
    /// header's).
    Done { status: StatusCode, len: usize },
}

/// Parses the start of a proxy's answer to `CONNECT`.
///
/// # Errors
/// [`ProxyFailure::Malformed`]: not an HTTP/1.x response, too many header lines, or a header
/// that does not end within [`MAX_ANSWER`] bytes.
pub(super) fn parse_answer(bytes: &[u8]) -> Result<Answer, ProxyFailure> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(bytes) {
        Ok(httparse::Status::Complete(len)) => {
            let status = response
                .code
                .and_then(|code| StatusCode::from_u16(code).ok())
                .ok_or(ProxyFailure::Malformed("the status is not a number"))?;
            Ok(Answer::Done { status, len })
        }
        Ok(httparse::Status::Partial) if bytes.len() >= MAX_ANSWER => Err(ProxyFailure::Malformed(
            "the answer's header is longer than 16 KiB",
        )),
        Ok(httparse::Status::Partial) => Ok(Answer::Partial),
        Err(httparse::Error::TooManyHeaders) => Err(ProxyFailure::Malformed(
            "the answer has more than 64 header lines",
        )),
        Err(_) => Err(ProxyFailure::Malformed(
            "the answer is not an HTTP/1.x response",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_names_the_target_and_carries_only_proxy_credentials() {
        assert_eq!(
            request("example.com:443", None),
            b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"
        );
        let with = String::from_utf8(request("[::1]:80", Some(b"user:pass"))).unwrap();
        assert_eq!(
            with,
            "CONNECT [::1]:80 HTTP/1.1\r\nHost: [::1]:80\r\n\
             Proxy-Authorization: Basic dXNlcjpwYXNz\r\n\r\n"
        );
    }

    #[test]
    fn answers_parse_at_every_split_point() {
        let answer = b"HTTP/1.1 407 Proxy Authentication Required\r\n\
            Proxy-Authenticate: Basic realm=\"p\"\r\nContent-Length: 0\r\n\r\nbody";
        let header = answer.len() - 4;
        for end in 0..=answer.len() {
            let parsed = parse_answer(&answer[..end]).unwrap();
            if end < header {
                assert_eq!(parsed, Answer::Partial, "{end}");
            } else {
                assert_eq!(
                    parsed,
                    Answer::Done {
                        status: StatusCode::PROXY_AUTHENTICATION_REQUIRED,
                        len: header
                    }
                );
            }
        }
        assert_eq!(
            parse_answer(b"HTTP/1.0 200 Connection established\r\n\r\n").unwrap(),
            Answer::Done {
                status: StatusCode::OK,
                len: 39
            }
        );
    }

    #[test]
    fn endless_or_foreign_answers_are_refused() {
        let mut endless = b"HTTP/1.1 200 OK\r\n".to_vec();
        while endless.len() < MAX_ANSWER {
            endless.extend_from_slice(b"X-Pad: aaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        let e = parse_answer(&endless[..MAX_ANSWER]).unwrap_err();
        assert!(matches!(e, ProxyFailure::Malformed(_)), "{e:?}");
        let many: Vec<u8> = b"HTTP/1.1 200 OK\r\n"
            .iter()
            .copied()
            .chain(b"A: b\r\n".repeat(65))
            .chain(*b"\r\n")
            .collect();
        assert!(parse_answer(&many).is_err());
        for foreign in [
            &b"\x05\x00"[..],
            b"SSH-2.0-OpenSSH\r\n",
            b"HTTP/1.1 abc x\r\n\r\n",
        ] {
            assert!(
                matches!(parse_answer(foreign), Err(ProxyFailure::Malformed(_))),
                "{foreign:?}"
            );
        }
    }
}
