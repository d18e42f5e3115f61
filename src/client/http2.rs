//! WebSocket over HTTP/2 (RFC 8441): [`Http2Connection`], an h2 connection on which each
//! WebSocket is one extended CONNECT stream, and the [`ClientBuilder`] methods that open one.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use h2::client::SendRequest;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, Uri};
use tokio::io::{AsyncRead, AsyncWrite};

use super::builder::ClientBuilder;
use super::dial::TlsTarget;
use super::redirect::Credentials;
use super::url::{IntoClientRequest, Target};
use crate::error::{Error, Result};
// Named in the docs of every build, used in code with TLS only.
#[cfg_attr(not(feature = "tls"), allow(unused_imports))]
use crate::error::HandshakeError;
use crate::handshake::connect::ConnectHandshake;
use crate::rt::h2_handshake;
use crate::rt::h2_stream::H2Stream;
use crate::rt::handshake::deadline_after;
use crate::transport::MaybeTlsStream;
use crate::WebSocket;

/// An HTTP/2 connection to a server that takes WebSockets as extended CONNECT streams (RFC
/// 8441): many WebSockets, each a stream, share one TCP (and TLS) connection.
///
/// [`connect`](Self::connect) dials a `ws://` URL (HTTP/2 over cleartext TCP, "prior
/// knowledge": the server must speak HTTP/2 at once) or a `wss://` URL (TLS offering ALPN
/// `h2`); [`handshake`](Self::handshake) starts HTTP/2 over a connection you already have.
/// Either waits for the server's SETTINGS and fails with
/// [`HandshakeError::ExtendedConnectNotEnabled`] when they do not enable extended CONNECT.
/// Then [`websocket`](Self::websocket) opens WebSockets, concurrently if you like, from any
/// clone: a clone is another handle on the same connection, which stays open while a handle or
/// a WebSocket is alive. The [`ClientBuilder`] methods
/// [`connect_http2`](ClientBuilder::connect_http2) and
/// [`http2_handshake`](ClientBuilder::http2_handshake) do the same with the builder's
/// subprotocols, headers, `Origin`, request hook, [`Config`](crate::Config), timeouts and TLS
/// roots, for every WebSocket of the connection.
///
/// A WebSocket over HTTP/2 is a [`WebSocket<H2Stream>`]: the message API, the halves and the
/// stream API ([`ByteStream`](crate::ByteStream), [`MessageReader`](crate::MessageReader),
/// [`MessageWriter`](crate::MessageWriter)) work as over TCP.
///
/// ```no_run
/// use wsio::client::Http2Connection;
/// use wsio::Message;
///
/// # async fn demo() -> wsio::Result<()> {
/// let h2 = wsio::ClientBuilder::new()
///     .subprotocols(["chat.v1"])
///     .connect_http2("wss://example.com")
///     .await?;
/// let (mut chat, response) = h2.websocket("/chat").await?; // a path: on the URL dialed
/// assert_eq!(response.status(), 200);
/// let (mut feed, _) = h2.websocket("/feed?topic=news").await?; // same connection
/// chat.send_text("hello").await?;
/// while let Some(message) = feed.recv().await {
///     println!("{:?}", message?);
/// }
///
/// // Over a connection you already have (any AsyncRead + AsyncWrite):
/// let tcp = tokio::net::TcpStream::connect("127.0.0.1:8080").await?;
/// let h2c = Http2Connection::handshake(tcp).await?;
/// let (ws, _) = h2c.websocket("ws://127.0.0.1:8080/echo").await?; // a full URL
/// # drop((ws, chat)); Ok(()) }
/// ```
#[derive(Clone)]
pub struct Http2Connection {
    send: SendRequest<Bytes>,
    shared: Arc<Shared>,
}

/// What every handle on one connection shares.
struct Shared {
    /// The options each WebSocket is opened with.
    builder: ClientBuilder,
    /// The scheme and authority of the URL dialed, which a path alone is resolved against;
    /// `None` for a connection that [`Http2Connection::handshake`] was given.
    base: Option<(Scheme, Authority)>,
}

impl fmt::Debug for Http2Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let base = self
            .shared
            .base
            .as_ref()
            .map(|(scheme, authority)| format!("{scheme}://{}", authority.host()));
        f.debug_struct("Http2Connection")
            .field("base", &base)
            .field("builder", &self.shared.builder)
            .finish_non_exhaustive()
    }
}

impl Http2Connection {
    /// [`ClientBuilder::connect_http2`] with the default settings.
    ///
    /// # Cancel safety
    /// Dropping the future abandons the connection attempt; nothing else is affected.
    pub async fn connect(url: impl IntoClientRequest) -> Result<Http2Connection> {
        ClientBuilder::new().connect_http2(url).await
    }

    /// [`ClientBuilder::http2_handshake`] with the default settings.
    ///
    /// # Cancel safety
    /// Dropping the future drops `io`; nothing else is affected.
    pub async fn handshake<S>(io: S) -> Result<Http2Connection>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        ClientBuilder::new().http2_handshake(io).await
    }

    /// Opens a WebSocket as a new stream of this connection: sends the extended CONNECT
    /// ([`ConnectHandshake`]) with the connection's builder settings, and returns the WebSocket
    /// and the server's response (status 2xx, no `Sec-WebSocket-Accept` in HTTP/2) once the
    /// answer passed the same subprotocol and extension checks as over HTTP/1.1.
    ///
    /// `request` is a path (`"/chat?room=1"`), resolved against the URL that
    /// [`connect`](Self::connect) dialed, or a full `ws://` or `wss://` URL (`ws` sends
    /// `:scheme http`, `wss` `:scheme https`), which a connection from
    /// [`handshake`](Self::handshake) needs; or an [`http::Request`] of either, whose headers
    /// are sent. When the server allows no more concurrent streams, it waits for one to end.
    ///
    /// # Errors
    /// - [`Error::InvalidUrl`]: a path on a connection from [`handshake`](Self::handshake).
    /// - [`Error::Handshake`]: the request cannot be sent over HTTP/2 (see
    ///   [`ConnectHandshake::new`]); [`HandshakeError::ExtendedConnectNotEnabled`]; the
    ///   server refused with a non-2xx status ([`HandshakeError::Refused`], kind
    ///   [`HandshakeRefused`](crate::ErrorKind::HandshakeRefused), with the status, headers and
    ///   start of the body, as over HTTP/1.1); or its answer failed a check.
    /// - [`Error::Io`]: the server reset the stream, or the connection is gone.
    /// - [`Error::Timeout`] of [`Timeout::Handshake`](crate::error::Timeout::Handshake) past
    ///   [`Config::handshake_timeout`](crate::Config::handshake_timeout).
    ///
    /// # Cancel safety
    /// Dropping the future resets the stream if it was opened; the connection and its other
    /// WebSockets are not affected.
    pub async fn websocket(
        &self,
        request: impl IntoClientRequest,
    ) -> Result<(WebSocket<H2Stream>, Response<()>)> {
        let builder = &self.shared.builder;
        let request = self.resolve(request.into_client_request()?)?;
        let request = builder.with_settings(request, Credentials::Keep, None)?;
        let handshake = ConnectHandshake::new(request)?.offer_deflate(builder.deflate_offer())?;
        let deadline = deadline_after(builder.config.get_handshake_timeout());
        h2_handshake::open(&self.send, &handshake, builder.config.clone(), deadline).await
    }

    /// `request` with a full URI: a path alone is put on the URL dialed.
    fn resolve(&self, mut request: Request<()>) -> Result<Request<()>> {
        if request.uri().scheme().is_some() {
            return Ok(request);
        }
        let Some((scheme, authority)) = &self.shared.base else {
            return Err(Error::InvalidUrl(format!(
                "{}: a connection started over a stream of your own has no URL to resolve a \
                 path against; pass a full ws:// or wss:// URL",
                request.uri()
            )));
        };
        let mut parts = request.uri().clone().into_parts();
        parts.scheme = Some(scheme.clone());
        parts.authority = Some(authority.clone());
        if parts.path_and_query.is_none() {
            parts.path_and_query = Some(PathAndQuery::from_static("/"));
        }
        *request.uri_mut() =
            Uri::from_parts(parts).map_err(|e| Error::InvalidUrl(format!("{e}")))?;
        Ok(request)
    }
}

impl ClientBuilder {
    /// Opens an HTTP/2 connection for WebSockets ([`Http2Connection`]) to the host and port of
    /// `url`: `ws://` is HTTP/2 over cleartext TCP with prior knowledge (h2c, RFC 9113 §3.3),
    /// `wss://` TLS offering ALPN `h2` alone (on a copy of the builder's TLS config, the one of
    /// [`tls_config`](Self::tls_config) included, whose ALPN is replaced). The path of `url` is
    /// not used: pass paths to [`Http2Connection::websocket`]. Proxies, the connect timeout,
    /// `TCP_NODELAY`, the TLS roots and the client identity apply as for
    /// [`connect`](Self::connect); redirects and authentication challenges are not followed.
    ///
    /// Then, within [`Config::handshake_timeout`](crate::Config::handshake_timeout), it starts
    /// HTTP/2 and waits for the server's SETTINGS (a PING round trip proves they arrived).
    ///
    /// # Errors
    /// - What [`connect`](Self::connect) reports for the URL, the transport and TLS.
    /// - [`HandshakeError::Http2NotNegotiated`]: over TLS, the server did not select `h2`.
    /// - [`HandshakeError::ExtendedConnectNotEnabled`]: the server's SETTINGS do not enable
    ///   extended CONNECT (RFC 8441 §3).
    /// - [`Error::Io`]: the server does not speak HTTP/2; [`Error::Timeout`] of
    ///   [`Timeout::Handshake`](crate::error::Timeout::Handshake).
    ///
    /// # Cancel safety
    /// Dropping the future abandons the connection attempt; nothing else is affected.
    pub async fn connect_http2(&self, url: impl IntoClientRequest) -> Result<Http2Connection> {
        self.config.validate()?;
        let request = url.into_client_request()?;
        let target = Target::of(request.uri())?;
        let tls = self
            .dial
            .tls_for(&target, &mut None)?
            .map(TlsTarget::offering_h2);
        let io = self.dial.open(&target, tls).await.map_err(alpn_refused)?;
        check_alpn(&io, &target)?;
        let base = match (request.uri().scheme(), request.uri().authority()) {
            (Some(scheme), Some(authority)) => Some((scheme.clone(), authority.clone())),
            _ => None,
        };
        self.start_http2(io, base).await
    }

    /// Starts HTTP/2 over `io`, a connection to the server you already have (TLS with ALPN
    /// `h2` done, if any), and waits for the server's SETTINGS as
    /// [`connect_http2`](Self::connect_http2) does. The connection's WebSockets are opened with
    /// full URLs ([`Http2Connection::websocket`]) and the builder's settings.
    ///
    /// # Errors
    /// [`HandshakeError::ExtendedConnectNotEnabled`], [`Error::Io`], [`Error::Timeout`] of
    /// [`Timeout::Handshake`](crate::error::Timeout::Handshake).
    ///
    /// # Cancel safety
    /// Dropping the future drops `io`; nothing else is affected.
    pub async fn http2_handshake<S>(&self, io: S) -> Result<Http2Connection>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        self.config.validate()?;
        self.start_http2(io, None).await
    }

    /// Starts HTTP/2 over `io` and makes the connection's first handle.
    async fn start_http2<S>(
        &self,
        io: S,
        base: Option<(Scheme, Authority)>,
    ) -> Result<Http2Connection>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let deadline = deadline_after(self.config.get_handshake_timeout());
        let send = h2_handshake::start(io, deadline).await?;
        Ok(Http2Connection {
            send,
            shared: Arc::new(Shared {
                builder: self.clone(),
                base,
            }),
        })
    }
}

/// A TLS server that answers an ALPN offer of `h2` alone with the `no_application_protocol`
/// alert (as rustls does when it speaks only `http/1.1`) did not agree to HTTP/2.
fn alpn_refused(error: Error) -> Error {
    #[cfg(feature = "tls")]
    {
        use crate::error::TlsError;
        use rustls::{AlertDescription, Error as Rustls};
        if let Error::Tls(tls) = &error {
            if let TlsError::Rustls(Rustls::AlertReceived(
                AlertDescription::NoApplicationProtocol,
            )) = **tls
            {
                return HandshakeError::Http2NotNegotiated.into();
            }
        }
    }
    error
}

/// Over TLS, the server must have selected `h2`: one that selected another protocol, or none,
/// speaks something else.
fn check_alpn(io: &MaybeTlsStream, target: &Target) -> Result<()> {
    #[cfg(feature = "tls")]
    {
        use crate::transport::TransportInfo as _;
        if target.scheme.is_secure() && io.tls_alpn_protocol() != Some(super::dial::ALPN_H2) {
            return Err(HandshakeError::Http2NotNegotiated.into());
        }
    }
    #[cfg(not(feature = "tls"))]
    let _ = (io, target);
    Ok(())
}
