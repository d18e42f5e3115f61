//! Server side of the opening handshake: parse and check the upgrade request, build the answer.
//!
//! ```text
//! loop {                                          // driver reads into `buf`
//!     match parse_request(&buf, limit, max_headers) {
//!         Ok(None) => continue,                   // read more
//!         Ok(Some((request, head_len))) => break, // buf[head_len..]: first frames
//!         Err(e) => { /* answer reject_response(e.status_for_reply()..), close */ }
//!     }
//! }
//! let response = accept_response(&request, protocol, &extra_headers)?;
//! // or, to negotiate permessage-deflate too:
//! let (response, negotiated) = Accept::new().protocol(protocol).response(&request, Some(&params))?;
//! write_response(&response, b"", &mut out);       // driver writes `out`
//! ```
//!
//! [`Accept`] and [`Reject`] are the same two answers as values: what a server's callback
//! decides, turned into bytes by [`Accept::response`] and [`Reject::write`].
//!
//! An HTTP/2 server hands over an RFC 8441 extended `CONNECT` instead: check it with
//! [`validate_request_as`] and answer it with [`Accept::response_as`] or
//! [`Reject::response_as`], given [`UpgradeKind::ExtendedConnect`] (a `200` without
//! `Sec-WebSocket-Accept`, refusals without `Connection`).

use bytes::Bytes;
use http::header::{
    ALLOW, CONNECTION, CONTENT_LENGTH, HOST, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_EXTENSIONS,
    SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_PROTOCOL, SEC_WEBSOCKET_VERSION, TRANSFER_ENCODING, UPGRADE,
};
use http::{
    HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri, Version,
};

use super::{
    accept_deflate_offer, check_connection_upgrade, derive_accept_key, from_httparse, head_window,
    header_contains_token, header_tokens, http_version, is_valid_key, partial_head, push,
    single_header, to_header_map, trim_ows, with_header_slots, write_headers, DeflateParams,
    HandshakeError, Negotiated, WEBSOCKET_VERSION,
};

/// Headers of a `101` answer that [`accept_response`] sets itself and never takes from
/// `extra_headers`.
const ACCEPT_OWNED: [HeaderName; 7] = [
    UPGRADE,
    CONNECTION,
    SEC_WEBSOCKET_ACCEPT,
    SEC_WEBSOCKET_PROTOCOL,
    SEC_WEBSOCKET_EXTENSIONS,
    CONTENT_LENGTH,
    TRANSFER_ENCODING,
];

/// Headers of a refusal that [`reject_response`] sets itself and never takes from
/// `extra_headers`.
const REJECT_OWNED: [HeaderName; 3] = [CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING];

/// Parses and checks a WebSocket upgrade request at the start of `buf`.
///
/// Returns `Ok(None)` while the head is incomplete: read more bytes, append them to `buf` and
/// call again. On success returns the request (method, URI with path and query as sent,
/// version, every header in order) and the length of its head: the bytes after it already
/// belong to the WebSocket stream. Never panics, whatever `buf` holds.
///
/// # Errors
///
/// Each error's [`HandshakeError::status_for_reply`] is the status to answer with.
///
/// - [`HandshakeError::HeaderTooLarge`]: `buf` holds `max_header_bytes` bytes or more and no
///   complete head; [`HandshakeError::TooManyHeaders`]: more than `max_headers` header fields;
///   [`HandshakeError::Malformed`]: not valid HTTP/1.x.
/// - Any error of [`validate_request`].
pub fn parse_request(
    buf: &[u8],
    max_header_bytes: usize,
    max_headers: usize,
) -> Result<Option<(Request<()>, usize)>, HandshakeError> {
    let window = head_window(buf, max_header_bytes);
    with_header_slots(max_headers, window.len(), |slots| {
        let mut head = httparse::Request::new(slots);
        let head_len = match head.parse(window).map_err(from_httparse)? {
            httparse::Status::Complete(head_len) => head_len,
            httparse::Status::Partial => return partial_head(buf, max_header_bytes),
        };
        if head.method != Some("GET") {
            return Err(HandshakeError::MethodNotGet);
        }
        if head.version != Some(1) {
            return Err(HandshakeError::UnsupportedHttpVersion);
        }
        let target = head.path.unwrap_or_default();
        let uri = Uri::try_from(target)
            .ok()
            .filter(|uri| target.starts_with('/') || uri.scheme().is_some())
            .ok_or_else(|| HandshakeError::Malformed("invalid request target".into()))?;
        let mut request = Request::new(());
        *request.method_mut() = Method::GET;
        *request.uri_mut() = uri;
        *request.version_mut() = http_version(head.version);
        *request.headers_mut() = to_header_map(head.headers)?;
        validate_request(&request)?;
        Ok(Some((request, head_len)))
    })
}

/// How a request asks for a WebSocket, and so how it is checked and answered.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpgradeKind {
    /// RFC 6455 §4.1: a `GET` over HTTP/1.1 with `Upgrade: websocket` and a
    /// `Sec-WebSocket-Key`, answered `101 Switching Protocols` with `Sec-WebSocket-Accept`; the
    /// connection then carries the WebSocket.
    Http11,
    /// RFC 8441: an HTTP/2 extended `CONNECT` whose `:protocol` pseudo-header is `websocket`,
    /// answered `200 OK` without `Sec-WebSocket-Key` or `Sec-WebSocket-Accept` (§5: HTTP/2's
    /// stream already proves the server understood); the stream then carries the WebSocket.
    /// The `:protocol` pseudo-header is not in the header map: whoever reads it (the HTTP/2
    /// server) says a request is of this kind.
    ExtendedConnect,
}

/// Checks that `request` is a WebSocket upgrade request (RFC 6455 §4.2.1): `GET` over HTTP/1.1
/// or later, one `Host`, `Upgrade: websocket`, `Connection` with the `upgrade` token,
/// `Sec-WebSocket-Version: 13` and a `Sec-WebSocket-Key` that is base64 of 16 bytes.
///
/// [`parse_request`] runs this; call it on a request obtained some other way. It is
/// [`validate_request_as`] with [`UpgradeKind::Http11`].
///
/// # Errors
///
/// [`HandshakeError::MethodNotGet`], [`HandshakeError::UnsupportedHttpVersion`],
/// [`HandshakeError::MissingHeader`], [`HandshakeError::InvalidHeader`],
/// [`HandshakeError::UnsupportedVersion`] (answer 426: [`reject_response`] adds the
/// `Sec-WebSocket-Version` header the client needs).
pub fn validate_request(request: &Request<()>) -> Result<(), HandshakeError> {
    validate_request_as(UpgradeKind::Http11, request)
}

/// Checks that `request` asks for a WebSocket the way `kind` does.
///
/// - [`UpgradeKind::Http11`]: as [`validate_request`] says.
/// - [`UpgradeKind::ExtendedConnect`] (RFC 8441 §4, §5): the method is `CONNECT`, the version
///   HTTP/2 or later, and `Sec-WebSocket-Version` is 13. `Host`, `Upgrade`, `Connection` and
///   `Sec-WebSocket-Key` are not looked at: HTTP/2 has `:authority` instead of `Host`, forbids
///   the connection-specific headers, and does without the key.
///
/// # Errors
///
/// Those of [`validate_request`]; for an extended `CONNECT`, [`HandshakeError::Malformed`]
/// (400) for another method, [`HandshakeError::UnsupportedHttpVersion`] (505) for HTTP/1.x and
/// [`HandshakeError::UnsupportedVersion`] (426) for a `Sec-WebSocket-Version` other than 13.
pub fn validate_request_as(kind: UpgradeKind, request: &Request<()>) -> Result<(), HandshakeError> {
    match kind {
        UpgradeKind::Http11 => validate_http11(request),
        UpgradeKind::ExtendedConnect => {
            if request.method() != Method::CONNECT {
                return Err(HandshakeError::Malformed(
                    "an extended CONNECT request must use the CONNECT method".into(),
                ));
            }
            if request.version() < Version::HTTP_2 {
                return Err(HandshakeError::UnsupportedHttpVersion);
            }
            check_websocket_version(request.headers())
        }
    }
}

/// The checks of [`validate_request`].
fn validate_http11(request: &Request<()>) -> Result<(), HandshakeError> {
    if request.method() != Method::GET {
        return Err(HandshakeError::MethodNotGet);
    }
    if request.version() < Version::HTTP_11 {
        return Err(HandshakeError::UnsupportedHttpVersion);
    }
    let headers = request.headers();
    single_header(headers, &HOST, "Host")?;
    if !headers.contains_key(UPGRADE) {
        return Err(HandshakeError::MissingHeader("Upgrade"));
    }
    if !header_contains_token(headers, &UPGRADE, "websocket") {
        return Err(HandshakeError::InvalidHeader {
            name: "Upgrade",
            reason: "the value does not contain websocket",
        });
    }
    check_connection_upgrade(headers)?;
    // The version is checked before the key: a client of an older draft gets the 426 that
    // tells it which version to speak.
    check_websocket_version(headers)?;
    accept_key_of(request).map(|_| ())
}

/// Checks that `Sec-WebSocket-Version` appears once, with the value 13.
fn check_websocket_version(headers: &HeaderMap) -> Result<(), HandshakeError> {
    let mut versions = headers.get_all(SEC_WEBSOCKET_VERSION).iter();
    match (versions.next(), versions.next()) {
        (Some(version), None) if trim_ows(version.as_bytes()) == WEBSOCKET_VERSION.as_bytes() => {
            Ok(())
        }
        _ => Err(HandshakeError::UnsupportedVersion),
    }
}

/// The `Sec-WebSocket-Accept` that answers the request's `Sec-WebSocket-Key`, which must be
/// there once and be base64 of 16 bytes.
fn accept_key_of(request: &Request<()>) -> Result<String, HandshakeError> {
    let key = single_header(request.headers(), &SEC_WEBSOCKET_KEY, "Sec-WebSocket-Key")?;
    if !is_valid_key(key.as_bytes()) {
        return Err(HandshakeError::InvalidHeader {
            name: "Sec-WebSocket-Key",
            reason: "the value is not the base64 encoding of 16 bytes",
        });
    }
    Ok(derive_accept_key(trim_ows(key.as_bytes())))
}

/// The subprotocols the client offers in `Sec-WebSocket-Protocol`, in its order of preference:
/// comma-separated, possibly over several header lines, trimmed, empty elements skipped.
pub fn requested_subprotocols(request: &Request<()>) -> impl Iterator<Item = &str> {
    header_tokens(request.headers(), &SEC_WEBSOCKET_PROTOCOL)
}

/// Builds the `101 Switching Protocols` answer to a valid upgrade request.
///
/// Sets `Upgrade: websocket`, `Connection: Upgrade`, `Sec-WebSocket-Accept` and, when
/// `protocol` is given, `Sec-WebSocket-Protocol`; then appends `extra_headers` in order (e.g.
/// `Set-Cookie`, `Server`), except those the handshake sets itself (`Upgrade`, `Connection`,
/// `Sec-WebSocket-*` and the body headers `Content-Length` and `Transfer-Encoding`), which are
/// ignored. Offered extensions are all declined (RFC 6455 §9.1 allows it): to negotiate
/// permessage-deflate, use [`Accept::response`].
///
/// # Errors
///
/// - [`HandshakeError::UnexpectedSubprotocol`] when `protocol` is not one of
///   [`requested_subprotocols`] (compared exactly); answer with its
///   [`status_for_reply`](HandshakeError::status_for_reply), 500.
/// - [`HandshakeError::MissingHeader`] or [`HandshakeError::InvalidHeader`] when the request
///   has no valid `Sec-WebSocket-Key` (it did not come from [`parse_request`]).
pub fn accept_response(
    request: &Request<()>,
    protocol: Option<&str>,
    extra_headers: &HeaderMap,
) -> Result<Response<()>, HandshakeError> {
    build_accept(UpgradeKind::Http11, request, protocol, None, extra_headers)
        .map(|(response, _)| response)
}

/// The answer that accepts `request` as `kind` asks: a `101` with `Upgrade`, `Connection` and
/// `Sec-WebSocket-Accept`, or a `200` without them for an extended `CONNECT`. It also answers
/// the permessage-deflate offers when `deflate` (the server's preferences) is given, and
/// returns the parameters agreed on.
fn build_accept(
    kind: UpgradeKind,
    request: &Request<()>,
    protocol: Option<&str>,
    deflate: Option<&DeflateParams>,
    extra_headers: &HeaderMap,
) -> Result<(Response<()>, Option<DeflateParams>), HandshakeError> {
    let mut headers = HeaderMap::new();
    let status = match kind {
        UpgradeKind::Http11 => {
            let accept = accept_key_of(request)?;
            push(&mut headers, UPGRADE, HeaderValue::from_static("websocket"))?;
            push(
                &mut headers,
                CONNECTION,
                HeaderValue::from_static("Upgrade"),
            )?;
            push(&mut headers, SEC_WEBSOCKET_ACCEPT, header_value(accept)?)?;
            StatusCode::SWITCHING_PROTOCOLS
        }
        UpgradeKind::ExtendedConnect => StatusCode::OK,
    };
    if let Some(protocol) = protocol {
        if !requested_subprotocols(request).any(|offered| offered == protocol) {
            return Err(HandshakeError::UnexpectedSubprotocol(protocol.to_owned()));
        }
        push(
            &mut headers,
            SEC_WEBSOCKET_PROTOCOL,
            header_value(protocol)?,
        )?;
    }
    let accepted = deflate.and_then(|preferred| accept_deflate_offer(request.headers(), preferred));
    let agreed = match accepted {
        Some((value, agreed)) => {
            push(&mut headers, SEC_WEBSOCKET_EXTENSIONS, value)?;
            Some(agreed)
        }
        None => None,
    };
    append_extra(&mut headers, extra_headers, &ACCEPT_OWNED)?;

    let mut response = Response::new(());
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    Ok((response, agreed))
}

/// Builds a refusal: `status` with `extra_headers` in order, then `Content-Length: body_len`
/// and `Connection: close` (the connection ends after the body). A `426 Upgrade Required` gets
/// `Sec-WebSocket-Version: 13` and a `405 Method Not Allowed` gets `Allow: GET`, unless
/// `extra_headers` has them. `Connection`, `Content-Length` and `Transfer-Encoding` in
/// `extra_headers` are ignored.
///
/// An informational status (1xx) cannot end an exchange, so it is replaced by
/// `500 Internal Server Error`.
///
/// Write it with [`write_response`], passing the body of `body_len` bytes.
pub fn reject_response(
    status: StatusCode,
    extra_headers: &HeaderMap,
    body_len: usize,
) -> Response<()> {
    let status = if status.is_informational() {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        status
    };
    let mut headers = HeaderMap::new();
    let mut add = |name: HeaderName, value: HeaderValue| {
        // A full map (32 768 fields) cannot happen with the fields added here; dropping a
        // field then is better than a panic.
        let _ = headers.try_append(name, value);
    };
    for (name, value) in extra_headers {
        if !REJECT_OWNED.contains(name) {
            add(name.clone(), value.clone());
        }
    }
    if status == StatusCode::UPGRADE_REQUIRED && !extra_headers.contains_key(SEC_WEBSOCKET_VERSION)
    {
        add(
            SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static(WEBSOCKET_VERSION),
        );
    }
    if status == StatusCode::METHOD_NOT_ALLOWED && !extra_headers.contains_key(ALLOW) {
        add(ALLOW, HeaderValue::from_static("GET"));
    }
    add(CONTENT_LENGTH, HeaderValue::from(body_len));
    add(CONNECTION, HeaderValue::from_static("close"));

    let mut response = Response::new(());
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// Appends `response` to `out` as HTTP/1.1: the status line with its reason phrase, the
/// headers in order, an empty line, then `body` (empty for a `101`).
pub fn write_response(response: &Response<()>, body: &[u8], out: &mut Vec<u8>) {
    let status = response.status();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("Unknown").as_bytes());
    out.extend_from_slice(b"\r\n");
    write_headers(response.headers(), out);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
}

/// How to answer an accepted request: the subprotocol and extra response headers.
#[derive(Debug, Clone, Default)]
pub struct Accept {
    protocol: Option<String>,
    headers: HeaderMap,
}

impl Accept {
    /// Accept with no subprotocol and no extra headers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Select a subprotocol; it must be one the client offered (see [`requested_subprotocols`]),
    /// or the handshake fails with 500.
    pub fn protocol<P: Into<String>>(mut self, protocol: Option<P>) -> Self {
        self.protocol = protocol.map(Into::into);
        self
    }

    /// Add a response header. The handshake's own headers (`Upgrade`, `Connection`,
    /// `Sec-WebSocket-Accept`...) cannot be overridden.
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.append(name, value);
        self
    }

    /// The subprotocol selected with [`protocol`](Self::protocol), if any.
    pub fn selected_protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// The `101` answer to `request` ([`accept_response`] with this subprotocol and these
    /// headers), and what it agrees on.
    ///
    /// With `deflate`, the server's permessage-deflate preferences, the client's first valid
    /// permessage-deflate offer is accepted ([`accept_deflate_offer`] says how); with `None`,
    /// compression is off and every extension is declined.
    ///
    /// # Errors
    /// As [`accept_response`]: a subprotocol the client did not offer, or a request without a
    /// valid `Sec-WebSocket-Key`.
    pub fn response(
        &self,
        request: &Request<()>,
        deflate: Option<&DeflateParams>,
    ) -> Result<(Response<()>, Negotiated), HandshakeError> {
        self.response_as(UpgradeKind::Http11, request, deflate)
    }

    /// The answer to `request`, which asks for a WebSocket as `kind` says: for
    /// [`UpgradeKind::Http11`] the `101` of [`response`](Self::response); for
    /// [`UpgradeKind::ExtendedConnect`] a `200 OK` with the same subprotocol, extensions and
    /// headers but no `Upgrade`, `Connection` or `Sec-WebSocket-Accept` (RFC 8441 §5). Returns
    /// what it agrees on.
    ///
    /// # Errors
    /// As [`response`](Self::response); an extended `CONNECT` needs no `Sec-WebSocket-Key`.
    pub fn response_as(
        &self,
        kind: UpgradeKind,
        request: &Request<()>,
        deflate: Option<&DeflateParams>,
    ) -> Result<(Response<()>, Negotiated), HandshakeError> {
        let (response, agreed) = build_accept(
            kind,
            request,
            self.protocol.as_deref(),
            deflate,
            &self.headers,
        )?;
        let negotiated = Negotiated::stated(response.headers(), agreed);
        Ok((response, negotiated))
    }
}

/// How to refuse a request: a status, headers and a body.
#[derive(Debug, Clone)]
pub struct Reject(Box<RejectParts>);

/// What a [`Reject`] holds, boxed so that `Result<Accept, Reject>` stays small.
#[derive(Debug, Clone)]
struct RejectParts {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reject {
    /// Refuse with `status` and an empty body.
    pub fn new(status: StatusCode) -> Self {
        Reject(Box::new(RejectParts {
            status,
            headers: HeaderMap::new(),
            body: Bytes::new(),
        }))
    }

    /// Add a response header.
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.0.headers.append(name, value);
        self
    }

    /// Set the response body.
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.0.body = body.into();
        self
    }

    /// The status given to [`new`](Self::new). (An informational one goes out as 500, see
    /// [`reject_response`].)
    pub fn status(&self) -> StatusCode {
        self.0.status
    }

    /// Appends the refusal to `out`: the head that [`reject_response`] builds from the status
    /// and headers, then the body.
    pub fn write(&self, out: &mut Vec<u8>) {
        let RejectParts {
            status,
            headers,
            body,
        } = &*self.0;
        let response = reject_response(*status, headers, body.len());
        write_response(&response, body, out);
    }

    /// The refusal as a response with its body, for an HTTP server to send to a request that
    /// asked for a WebSocket as `kind` says: the head [`reject_response`] builds, without
    /// `Connection` for an extended `CONNECT` (HTTP/2 forbids connection-specific headers,
    /// RFC 9113 §8.2.2, and refusing one stream leaves the connection open).
    pub fn response_as(&self, kind: UpgradeKind) -> Response<Bytes> {
        let RejectParts {
            status,
            headers,
            body,
        } = &*self.0;
        let (mut parts, ()) = reject_response(*status, headers, body.len()).into_parts();
        if kind == UpgradeKind::ExtendedConnect {
            parts.headers.remove(CONNECTION);
        }
        Response::from_parts(parts, body.clone())
    }
}

impl Reject {
    /// The refusal of a request that failed its checks with `error`: the error's
    /// [`status_for_reply`](HandshakeError::status_for_reply) (400 for an error only a client
    /// sees) and its text as the body, so that whoever wrote the client can read what was
    /// wrong.
    pub fn for_error(error: &HandshakeError) -> Self {
        let status = error.status_for_reply().unwrap_or(StatusCode::BAD_REQUEST);
        Reject::new(status).body(error.to_string())
    }
}

impl From<StatusCode> for Reject {
    fn from(status: StatusCode) -> Self {
        Reject::new(status)
    }
}

/// Appends every header of `extra` whose name is not in `owned`, in order.
fn append_extra(
    headers: &mut HeaderMap,
    extra: &HeaderMap,
    owned: &[HeaderName],
) -> Result<(), HandshakeError> {
    for (name, value) in extra {
        if !owned.contains(name) {
            push(headers, name.clone(), value.clone())?;
        }
    }
    Ok(())
}

/// Converts a string known to come from a header (or base64) into a header value.
fn header_value(value: impl AsRef<str>) -> Result<HeaderValue, HandshakeError> {
    HeaderValue::from_str(value.as_ref())
        .map_err(|_| HandshakeError::Malformed("not a valid header value".into()))
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;
