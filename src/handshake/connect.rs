//! Client side of the opening handshake over HTTP/2 (RFC 8441): build the extended CONNECT
//! request, check the server's answer.
//!
//! Over HTTP/2 a WebSocket is one stream of an HTTP/2 connection. The client opens it with a
//! `CONNECT` request carrying the `:protocol` pseudo-header `websocket` (allowed once the server
//! sent `SETTINGS_ENABLE_CONNECT_PROTOCOL = 1`), and any 2xx answer opens the tunnel: there is
//! no `Upgrade`, no `Connection`, no `Sec-WebSocket-Key` and no `Sec-WebSocket-Accept`. The
//! subprotocols and extensions are offered and checked exactly as over HTTP/1.1 (the offer is
//! the same code as [`ClientHandshake`](super::client::ClientHandshake)'s).
//!
//! The request is an [`http::Request`]; the HTTP/2 library that sends it is told the
//! `:protocol` separately (h2 takes it as the `h2::ext::Protocol` request extension):
//!
//! ```
//! use wsio::handshake::connect::{ConnectHandshake, PROTOCOL};
//!
//! let mut request = http::Request::builder().uri("wss://example.com/chat?room=1");
//! wsio::handshake::client::set_subprotocols(request.headers_mut().unwrap(), ["chat.v2"])?;
//! let hs = ConnectHandshake::new(request.body(())?)?;
//! assert_eq!(hs.request().method(), http::Method::CONNECT);
//! assert_eq!(hs.request().uri(), "https://example.com/chat?room=1"); // :scheme, :authority, :path
//! assert_eq!(hs.request().headers()["sec-websocket-version"], "13");
//! assert_eq!(PROTOCOL, "websocket"); // :protocol
//!
//! // The HTTP/2 stream's response head:
//! let response = http::Response::builder()
//!     .status(200)
//!     .header("sec-websocket-protocol", "chat.v2")
//!     .body(())?;
//! let negotiated = hs.check_response(&response)?;
//! assert_eq!(negotiated.subprotocol(), Some("chat.v2"));
//! # Ok::<_, Box<dyn std::error::Error>>(())
//! ```

use bytes::Bytes;
use http::header::{HOST, SEC_WEBSOCKET_VERSION, TE};
use http::{HeaderMap, HeaderValue, Method, Request, Response, Uri, Version};

use super::offer::Offer;
use super::target::{authority, request_target, scheme_of};
use super::{push, DeflateParams, HandshakeError, Negotiated, WEBSOCKET_VERSION};

/// The value of the `:protocol` pseudo-header that asks for a WebSocket (RFC 8441 §4).
pub const PROTOCOL: &str = "websocket";

/// Headers that have no meaning in HTTP/2 (RFC 9113 §8.2.2 forbids the connection-specific
/// ones, RFC 8441 §5 drops the key), by name and as errors name them: refused before sending
/// rather than sent to fail on the server.
const NOT_IN_HTTP2: [(&str, &str); 6] = [
    ("connection", "Connection"),
    ("upgrade", "Upgrade"),
    ("keep-alive", "Keep-Alive"),
    ("proxy-connection", "Proxy-Connection"),
    ("transfer-encoding", "Transfer-Encoding"),
    ("sec-websocket-key", "Sec-WebSocket-Key"),
];

/// A client's extended CONNECT request, ready to send on an HTTP/2 connection, and what is
/// needed to check the answer.
#[derive(Debug, Clone)]
pub struct ConnectHandshake {
    /// The complete request: `CONNECT`, HTTP/2, the URI of `:scheme`, `:authority`, `:path`.
    request: Request<()>,
    /// The subprotocols and extensions offered.
    offer: Offer,
}

impl ConnectHandshake {
    /// Completes `request` into an extended CONNECT request for a WebSocket.
    ///
    /// The URI is `ws://`, `wss://`, `http://` or `https://` with a host, e.g.
    /// `wss://example.com/chat?room=1`. It becomes the request's pseudo-headers: `:scheme` is
    /// `http` for `ws` and `https` for `wss` (RFC 8441 §5), `:authority` the host (with the
    /// port only when it is not the scheme's default; a `Host` header, if the request has one,
    /// is used instead and removed, as HTTP/2 has no `Host`), and `:path` the path and query.
    /// User info in the URI is not sent. The method becomes `CONNECT` and the version HTTP/2.
    ///
    /// `Sec-WebSocket-Version: 13` is added when the request lacks it; every other header is
    /// kept, in order: `Origin`, `Authorization`, cookies, `Sec-WebSocket-Protocol` (see
    /// [`set_subprotocols`](super::client::set_subprotocols)).
    ///
    /// # Errors
    ///
    /// - [`HandshakeError::InvalidUri`]: no scheme, an unsupported one, no host, or a path that
    ///   does not start with `/`.
    /// - [`HandshakeError::MethodNotGet`]: the method is neither `GET` (what
    ///   [`IntoClientRequest`](crate::client::IntoClientRequest) makes) nor `CONNECT`.
    /// - [`HandshakeError::InvalidHeader`]: a header HTTP/2 forbids or that RFC 8441 does not
    ///   use (`Connection`, `Upgrade`, `Keep-Alive`, `Proxy-Connection`, `Transfer-Encoding`,
    ///   a `TE` other than `trailers`, `Sec-WebSocket-Key`); a `Sec-WebSocket-Version` other
    ///   than 13, a subprotocol that is not a token or is offered twice, or a
    ///   `Sec-WebSocket-Extensions` (see [`offer_deflate`](Self::offer_deflate)), as over
    ///   HTTP/1.1.
    pub fn new(request: Request<()>) -> Result<Self, HandshakeError> {
        let (mut parts, ()) = request.into_parts();
        if parts.method != Method::GET && parts.method != Method::CONNECT {
            return Err(HandshakeError::MethodNotGet);
        }
        let Some(scheme) = scheme_of(&parts.uri)? else {
            return Err(HandshakeError::InvalidUri(
                "an HTTP/2 WebSocket request needs a URI with a scheme and a host".into(),
            ));
        };
        let path = request_target(&parts.uri)?;
        let mut user = std::mem::take(&mut parts.headers);
        let authority = authority(&parts.uri, Some(scheme), &user)?;
        check_user_headers(&user)?;
        let offer = Offer::from_user_headers(&user)?;
        user.remove(HOST);

        parts.uri = Uri::builder()
            .scheme(scheme.http_name())
            .authority(authority.as_bytes())
            .path_and_query(path)
            .build()
            .map_err(|_| HandshakeError::InvalidUri("the host is not a valid authority".into()))?;
        let mut headers = HeaderMap::new();
        if !user.contains_key(SEC_WEBSOCKET_VERSION) {
            let version = HeaderValue::from_static(WEBSOCKET_VERSION);
            push(&mut headers, SEC_WEBSOCKET_VERSION, version)?;
        }
        for (name, value) in &user {
            push(&mut headers, name.clone(), value.clone())?;
        }
        parts.headers = headers;
        parts.method = Method::CONNECT;
        parts.version = Version::HTTP_2;
        Ok(Self {
            request: Request::from_parts(parts, ()),
            offer,
        })
    }

    /// Offers permessage-deflate (RFC 7692) with `params`, or withdraws the offer with `None`,
    /// with the header and the errors of
    /// [`ClientHandshake::offer_deflate`](super::client::ClientHandshake::offer_deflate);
    /// [`check_response`](Self::check_response) then accepts an answer that agrees with it.
    pub fn offer_deflate(mut self, params: Option<DeflateParams>) -> Result<Self, HandshakeError> {
        self.offer.set_deflate(self.request.headers_mut(), params)?;
        Ok(self)
    }

    /// The complete request to send (with `:protocol` [`PROTOCOL`]).
    pub fn request(&self) -> &Request<()> {
        &self.request
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

    /// Checks the server's response head and returns what was agreed on.
    ///
    /// Any 2xx status accepts (RFC 9110 §9.3.6: a successful CONNECT opens the tunnel; servers
    /// answer 200), after which the stream's data is the WebSocket's. A `Sec-WebSocket-Accept`
    /// has no meaning over HTTP/2 and is ignored.
    ///
    /// # Errors
    ///
    /// - [`HandshakeError::Refused`]: the status is not 2xx. The response carries the status
    ///   and the headers, and an empty body: the body arrives on the stream after the head, and
    ///   a driver that reads it (at most
    ///   [`MAX_REFUSED_BODY`](super::client::MAX_REFUSED_BODY)) puts it in.
    /// - The `Sec-WebSocket-Protocol` or `Sec-WebSocket-Extensions` of the answer does not
    ///   agree with the offer, as over HTTP/1.1: [`HandshakeError::UnexpectedSubprotocol`],
    ///   [`HandshakeError::InvalidHeader`] (more than one subprotocol),
    ///   [`HandshakeError::UnexpectedExtension`], [`HandshakeError::InvalidExtension`].
    pub fn check_response(&self, response: &Response<()>) -> Result<Negotiated, HandshakeError> {
        if !response.status().is_success() {
            let mut refused = Response::new(Bytes::new());
            *refused.status_mut() = response.status();
            *refused.version_mut() = response.version();
            *refused.headers_mut() = response.headers().clone();
            return Err(HandshakeError::Refused(Box::new(refused)));
        }
        let headers = response.headers();
        let deflate = self.offer.check_answer(headers)?;
        Ok(Negotiated::stated(headers, deflate))
    }
}

/// Refuses the headers a request over HTTP/2 cannot carry.
fn check_user_headers(user: &HeaderMap) -> Result<(), HandshakeError> {
    if let Some((_, label)) = NOT_IN_HTTP2
        .iter()
        .find(|(name, _)| user.contains_key(*name))
    {
        return Err(HandshakeError::InvalidHeader {
            name: label,
            reason: "HTTP/2 has no such header (RFC 9113 §8.2.2, RFC 8441 §5)",
        });
    }
    if user.get_all(TE).iter().any(|te| te != "trailers") {
        return Err(HandshakeError::InvalidHeader {
            name: "TE",
            reason: "HTTP/2 allows TE: trailers only (RFC 9113 §8.2.2)",
        });
    }
    Ok(())
}

#[cfg(test)]
#[path = "connect_tests.rs"]
mod tests;
