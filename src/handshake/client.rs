//! Client side of the opening handshake: build the upgrade request, check the server's answer.
//!
//! ```text
//! let hs = ClientHandshake::new(request)?      // fills Host, Upgrade, Sec-WebSocket-Key, ...
//!     .offer_deflate(Some(params))?;            // optional: offer permessage-deflate
//! hs.write_request(&mut out);                   // driver writes `out` to the socket
//! loop {                                        // driver reads into `buf`
//!     if let Some(parsed) = hs.parse_response(&buf, limit)? {
//!         // buf[parsed.head_len..] is the start of the WebSocket stream.
//!     }
//! }
//! ```

use bytes::Bytes;
use http::header::{
    CONNECTION, CONTENT_LENGTH, HOST, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY,
    SEC_WEBSOCKET_VERSION, TRANSFER_ENCODING, UPGRADE,
};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Version};

use super::negotiated::selected_subprotocol;
pub use super::offer::set_subprotocols;
use super::offer::Offer;
use super::target::{authority, request_target, scheme_of};
use super::{
    check_connection_upgrade, derive_accept_key, extensions::stated_in_response, from_httparse,
    generate_key, head_window, header_contains_token, http_version, is_valid_key, partial_head,
    push, single_header, split_list, to_header_map, trim_ows, value_eq_ignore_case,
    with_header_slots, write_headers, DeflateParams, HandshakeError, Negotiated,
    DEFAULT_MAX_HEADERS, WEBSOCKET_VERSION,
};

/// The most body bytes of a refusal that [`HandshakeError::Refused`] carries: 4 KiB. Enough for
/// an error page's message, small enough that a hostile server cannot make the client buffer
/// much.
pub const MAX_REFUSED_BODY: usize = 4096;

/// The headers that [`ClientHandshake::new`] writes first, in this order (after `Host`).
const HANDSHAKE_HEADERS: [HeaderName; 4] = [
    UPGRADE,
    CONNECTION,
    SEC_WEBSOCKET_KEY,
    SEC_WEBSOCKET_VERSION,
];

/// A client's upgrade request, ready to write, and what is needed to check the answer.
#[derive(Debug, Clone)]
pub struct ClientHandshake {
    /// The complete request, every header filled in.
    request: Request<()>,
    /// The request target written in the request line: path and query.
    target: String,
    /// The `Sec-WebSocket-Accept` value a correct server answers with.
    expected_accept: String,
    /// The subprotocols and extensions offered.
    offer: Offer,
}

impl ClientHandshake {
    /// Completes `request` into a WebSocket upgrade request.
    ///
    /// The URI is `ws://`, `wss://`, `http://` or `https://` with a host, e.g.
    /// `ws://example.com:8080/chat?room=1`; an origin-form URI such as `/chat` is accepted too
    /// when the request already has a `Host` header (for a stream that is already connected).
    /// User info in the URI is not sent.
    ///
    /// Headers the request lacks are added: `Host` (with the port only when it is not the
    /// scheme's default), `Upgrade: websocket`, `Connection: Upgrade`, a fresh
    /// `Sec-WebSocket-Key` and `Sec-WebSocket-Version: 13`. Every header the request has is kept
    /// unchanged, in order: `Origin`, `Authorization`, cookies, `Sec-WebSocket-Protocol` (see
    /// [`set_subprotocols`]).
    ///
    /// # Errors
    ///
    /// - [`HandshakeError::InvalidUri`]: no host, an unsupported scheme, or a path that does not
    ///   start with `/`.
    /// - [`HandshakeError::MethodNotGet`], [`HandshakeError::UnsupportedHttpVersion`]: the
    ///   request is not `GET` over HTTP/1.1.
    /// - [`HandshakeError::InvalidHeader`]: a handshake header the request already has is wrong
    ///   (e.g. `Upgrade: h2c`, a `Sec-WebSocket-Key` that is not 16 bytes in base64, a
    ///   subprotocol that is not a token), or it has `Sec-WebSocket-Extensions`: wsio
    ///   negotiates extensions itself (see [`offer_deflate`](Self::offer_deflate)).
    pub fn new(request: Request<()>) -> Result<Self, HandshakeError> {
        let (mut parts, ()) = request.into_parts();
        if parts.method != Method::GET {
            return Err(HandshakeError::MethodNotGet);
        }
        if parts.version != Version::HTTP_11 {
            return Err(HandshakeError::UnsupportedHttpVersion);
        }
        let target = request_target(&parts.uri)?;
        let user = std::mem::take(&mut parts.headers);

        let host = authority(&parts.uri, scheme_of(&parts.uri)?, &user)?;
        check_user_headers(&user)?;
        let offer = Offer::from_user_headers(&user)?;

        let key = match user.get(SEC_WEBSOCKET_KEY) {
            Some(key) => key.clone(),
            None => HeaderValue::try_from(generate_key()).map_err(|_| {
                HandshakeError::Malformed("generated key is not a header value".into())
            })?,
        };
        let expected_accept = derive_accept_key(trim_ows(key.as_bytes()));

        let generated = [
            HeaderValue::from_static("websocket"),
            HeaderValue::from_static("Upgrade"),
            key,
            HeaderValue::from_static(WEBSOCKET_VERSION),
        ];
        let mut headers = HeaderMap::new();
        push(&mut headers, HOST, host)?;
        for (name, value) in HANDSHAKE_HEADERS.iter().zip(generated) {
            if user.contains_key(name) {
                for value in user.get_all(name) {
                    push(&mut headers, name.clone(), value.clone())?;
                }
            } else {
                push(&mut headers, name.clone(), value)?;
            }
        }
        for (name, value) in &user {
            if *name != HOST && !HANDSHAKE_HEADERS.contains(name) {
                push(&mut headers, name.clone(), value.clone())?;
            }
        }
        parts.headers = headers;

        Ok(Self {
            request: Request::from_parts(parts, ()),
            target,
            expected_accept,
            offer,
        })
    }

    /// Offers permessage-deflate (RFC 7692) with `params`, in a `Sec-WebSocket-Extensions`
    /// header appended to the request (the value of [`deflate_offer`](super::deflate_offer));
    /// `None` withdraws an offer made before. [`parse_response`](Self::parse_response) then
    /// accepts a server's answer that agrees with the offer, and
    /// [`ParsedResponse::negotiated`] says what was agreed.
    ///
    /// # Errors
    ///
    /// [`HandshakeError::InvalidExtension`] when a window size is not in `8..=15` (see
    /// [`DeflateParams::validate`]); [`HandshakeError::TooManyHeaders`] when the request has no
    /// room for another header.
    pub fn offer_deflate(mut self, params: Option<DeflateParams>) -> Result<Self, HandshakeError> {
        self.offer.set_deflate(self.request.headers_mut(), params)?;
        Ok(self)
    }

    /// The complete request that [`write_request`](Self::write_request) writes.
    pub fn request(&self) -> &Request<()> {
        &self.request
    }

    /// The `Sec-WebSocket-Key` sent.
    pub fn key(&self) -> &str {
        self.request
            .headers()
            .get(SEC_WEBSOCKET_KEY)
            .and_then(|key| key.to_str().ok())
            .unwrap_or_default()
    }

    /// The subprotocols offered in `Sec-WebSocket-Protocol`, in order.
    pub fn offered_subprotocols(&self) -> &[String] {
        self.offer.subprotocols()
    }

    /// The permessage-deflate parameters offered (see [`offer_deflate`](Self::offer_deflate)),
    /// if any.
    pub fn offered_deflate(&self) -> Option<DeflateParams> {
        self.offer.deflate()
    }

    /// Appends the request to `out`: `GET /path?query HTTP/1.1`, the headers, an empty line.
    pub fn write_request(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"GET ");
        out.extend_from_slice(self.target.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\n");
        write_headers(self.request.headers(), out);
        out.extend_from_slice(b"\r\n");
    }

    /// Parses and checks the server's answer at the start of `buf`.
    ///
    /// Returns `Ok(None)` while the head is incomplete: read more bytes, append them to `buf`
    /// and call again. On success the bytes after [`ParsedResponse::head_len`] already belong to
    /// the WebSocket stream (a server may send its first frame right after the head).
    ///
    /// # Errors
    ///
    /// - [`HandshakeError::HeaderTooLarge`]: `buf` holds `max_header_bytes` bytes or more and no
    ///   complete head; [`HandshakeError::TooManyHeaders`]: more than [`DEFAULT_MAX_HEADERS`]
    ///   header fields; [`HandshakeError::Malformed`]: not valid HTTP.
    /// - [`HandshakeError::Refused`]: the status is not `101`. The response carries the status,
    ///   the headers, and as body the bytes of `buf` after the head, at most [`content_length`]
    ///   and at most [`MAX_REFUSED_BODY`]. The driver may read more body bytes and append them,
    ///   up to the same bounds.
    /// - The `101` fails a check of RFC 6455 §4.1: [`HandshakeError::UnsupportedHttpVersion`],
    ///   [`HandshakeError::MissingHeader`] or [`HandshakeError::InvalidHeader`] for `Upgrade`,
    ///   `Connection` or `Sec-WebSocket-Accept`, [`HandshakeError::UnexpectedSubprotocol`].
    /// - The `Sec-WebSocket-Extensions` of the `101` does not agree with the offer (see
    ///   [`check_deflate_response`](super::check_deflate_response)): [`HandshakeError::UnexpectedExtension`] (an extension
    ///   not offered), [`HandshakeError::InvalidExtension`] (permessage-deflate with bad
    ///   parameters).
    pub fn parse_response(
        &self,
        buf: &[u8],
        max_header_bytes: usize,
    ) -> Result<Option<ParsedResponse>, HandshakeError> {
        let Some(mut parsed) = parse_response_head(buf, max_header_bytes)? else {
            return Ok(None);
        };
        if parsed.response.status() != StatusCode::SWITCHING_PROTOCOLS {
            return Err(refusal(parsed, buf));
        }
        parsed.deflate = self.check_accept(&parsed.response)?;
        Ok(Some(parsed))
    }

    /// Checks a `101` response against RFC 6455 §4.1 and what this request offered, and
    /// returns the permessage-deflate parameters agreed on.
    fn check_accept(
        &self,
        response: &Response<()>,
    ) -> Result<Option<DeflateParams>, HandshakeError> {
        if response.version() != Version::HTTP_11 {
            return Err(HandshakeError::UnsupportedHttpVersion);
        }
        let headers = response.headers();
        if !value_eq_ignore_case(single_header(headers, &UPGRADE, "Upgrade")?, "websocket") {
            return Err(HandshakeError::InvalidHeader {
                name: "Upgrade",
                reason: "the value is not websocket",
            });
        }
        check_connection_upgrade(headers)?;
        let accept = single_header(headers, &SEC_WEBSOCKET_ACCEPT, "Sec-WebSocket-Accept")?;
        if trim_ows(accept.as_bytes()) != self.expected_accept.as_bytes() {
            return Err(HandshakeError::InvalidHeader {
                name: "Sec-WebSocket-Accept",
                reason: "the value does not match the Sec-WebSocket-Key sent",
            });
        }
        self.offer.check_answer(headers)
    }
}

/// A complete response head parsed from the start of a buffer.
#[derive(Debug)]
#[non_exhaustive]
pub struct ParsedResponse {
    /// The status line and headers.
    pub response: Response<()>,
    /// The length of the head in bytes, final empty line included. The bytes after it belong to
    /// whatever follows: the WebSocket stream after a `101`, the body otherwise.
    pub head_len: usize,
    /// The permessage-deflate parameters agreed on: checked against the offer by
    /// [`ClientHandshake::parse_response`], as the response states them otherwise.
    deflate: Option<DeflateParams>,
}

impl ParsedResponse {
    /// The subprotocol the server selected (`Sec-WebSocket-Protocol`), if any. After
    /// [`ClientHandshake::parse_response`] succeeded, it is one of those offered.
    pub fn subprotocol(&self) -> Option<&str> {
        selected_subprotocol(self.response.headers())
    }

    /// What the handshake agreed on: the subprotocol and extensions of the response, and the
    /// permessage-deflate parameters. After [`ClientHandshake::parse_response`] succeeded, they
    /// are ones the request offered, and the permessage-deflate parameters take the offer into
    /// account. For a head from [`parse_response_head`] alone, they are what the response
    /// states ([`Negotiated::from_response`]).
    pub fn negotiated(&self) -> Negotiated {
        Negotiated::stated(self.response.headers(), self.deflate)
    }

    /// The permessage-deflate parameters agreed on, as in [`negotiated`](Self::negotiated).
    pub fn permessage_deflate(&self) -> Option<DeflateParams> {
        self.deflate
    }
}

/// Parses an HTTP/1.x response head at the start of `buf`, whatever its status, without any
/// WebSocket check. [`ClientHandshake::parse_response`] is this plus the checks.
///
/// Returns `Ok(None)` while the head is incomplete and `buf` is shorter than
/// `max_header_bytes`. Never panics, whatever `buf` holds.
///
/// # Errors
///
/// [`HandshakeError::HeaderTooLarge`], [`HandshakeError::TooManyHeaders`] (more than
/// [`DEFAULT_MAX_HEADERS`]), [`HandshakeError::Malformed`].
pub fn parse_response_head(
    buf: &[u8],
    max_header_bytes: usize,
) -> Result<Option<ParsedResponse>, HandshakeError> {
    let window = head_window(buf, max_header_bytes);
    with_header_slots(DEFAULT_MAX_HEADERS, window.len(), |slots| {
        let mut head = httparse::Response::new(slots);
        let head_len = match head.parse(window).map_err(from_httparse)? {
            httparse::Status::Complete(head_len) => head_len,
            httparse::Status::Partial => return partial_head(buf, max_header_bytes),
        };
        let status = StatusCode::from_u16(head.code.unwrap_or_default())
            .map_err(|_| HandshakeError::Malformed("invalid status code".into()))?;
        let mut response = Response::new(());
        *response.status_mut() = status;
        *response.version_mut() = http_version(head.version);
        *response.headers_mut() = to_header_map(head.headers)?;
        let deflate = if status == StatusCode::SWITCHING_PROTOCOLS {
            stated_in_response(response.headers())
        } else {
            None
        };
        Ok(Some(ParsedResponse {
            response,
            head_len,
            deflate,
        }))
    })
}

/// The body length a response announces in `Content-Length`, or `None` when it announces none,
/// an invalid or conflicting one, or a `Transfer-Encoding` (which overrides `Content-Length`).
///
/// A driver that wants more of a refusal's body than arrived with its head reads up to this
/// many bytes in total (and at most [`MAX_REFUSED_BODY`]); with `None`, it may read until the
/// server closes, within the same bound.
pub fn content_length<T>(response: &Response<T>) -> Option<usize> {
    let headers = response.headers();
    if headers.contains_key(TRANSFER_ENCODING) {
        return None;
    }
    let mut length = None;
    for element in headers
        .get_all(CONTENT_LENGTH)
        .iter()
        .flat_map(|value| split_list(value.as_bytes()))
    {
        if !element.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let value: usize = std::str::from_utf8(element).ok()?.parse().ok()?;
        match length {
            Some(previous) if previous != value => return None,
            _ => length = Some(value),
        }
    }
    length
}

/// Checks the handshake headers that the user set, which [`ClientHandshake::new`] keeps.
fn check_user_headers(user: &HeaderMap) -> Result<(), HandshakeError> {
    if user.contains_key(UPGRADE)
        && !value_eq_ignore_case(single_header(user, &UPGRADE, "Upgrade")?, "websocket")
    {
        return Err(HandshakeError::InvalidHeader {
            name: "Upgrade",
            reason: "the value is not websocket",
        });
    }
    if user.contains_key(CONNECTION) && !header_contains_token(user, &CONNECTION, "upgrade") {
        return Err(HandshakeError::InvalidHeader {
            name: "Connection",
            reason: "the value does not contain the upgrade token",
        });
    }
    if user.contains_key(SEC_WEBSOCKET_KEY)
        && !is_valid_key(single_header(user, &SEC_WEBSOCKET_KEY, "Sec-WebSocket-Key")?.as_bytes())
    {
        return Err(HandshakeError::InvalidHeader {
            name: "Sec-WebSocket-Key",
            reason: "the value is not the base64 encoding of 16 bytes",
        });
    }
    Ok(())
}

/// Turns a non-`101` response into [`HandshakeError::Refused`], with the body bytes already in
/// `buf` as a bounded body prefix.
fn refusal(parsed: ParsedResponse, buf: &[u8]) -> HandshakeError {
    let status = parsed.response.status();
    let has_body = !(status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED);
    let limit = if has_body {
        content_length(&parsed.response)
            .unwrap_or(MAX_REFUSED_BODY)
            .min(MAX_REFUSED_BODY)
    } else {
        0
    };
    let rest = buf.get(parsed.head_len..).unwrap_or_default();
    let body = Bytes::copy_from_slice(&rest[..rest.len().min(limit)]);
    HandshakeError::Refused(Box::new(parsed.response.map(|()| body)))
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
