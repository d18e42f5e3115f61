//! Opening WebSocket connections.
//!
//! [`connect`] takes a `ws://` or `wss://` URL, resolves the host, connects TCP (and TLS) and
//! performs the handshake; [`connect_on`] performs the handshake over a stream you already have.
//! A [`ClientBuilder`] adds subprotocols, headers, `Origin`, a hook that edits the request,
//! redirects, an answer to authentication challenges
//! ([`on_auth_challenge`](ClientBuilder::on_auth_challenge)), timeouts, TLS roots and a
//! [`Config`](crate::Config).
//!
//! ```no_run
//! use std::time::Duration;
//!
//! # async fn demo() -> wsio::Result<()> {
//! let token = "secret";
//! let (mut ws, response) = wsio::ClientBuilder::new()
//!     .subprotocols(["chat.v2", "chat.v1"])
//!     .origin("https://example.com")
//!     .edit_request(move |request| {
//!         let cookie = http::HeaderValue::try_from(format!("session={token}")).unwrap();
//!         request.headers_mut().insert(http::header::COOKIE, cookie);
//!     })
//!     .max_redirects(3)
//!     .connect_timeout(Duration::from_secs(10))
//!     .config(wsio::Config::default().handshake_timeout(Duration::from_secs(5)))
//!     .connect("wss://user:password@example.com/chat")
//!     .await?;
//! println!("server chose {:?}", response.headers().get("sec-websocket-protocol"));
//! ws.send_text("hi").await?;
//! # Ok(()) }
//! ```
//!
//! With the `http2` feature, `Http2Connection` opens WebSockets over HTTP/2 (RFC 8441):
//! several, each an extended CONNECT stream, on one connection
//! (`ClientBuilder::connect_http2`).
//!
//! Everything that can be checked before any I/O is: a URL that is not `ws`, `wss` (or `http`,
//! `https`, taken as aliases), has no host or a bad port fails at once with
//! [`ErrorKind::InvalidUrl`](crate::ErrorKind::InvalidUrl).

// One job a file: `url` reads what a URL names (scheme, host, port, user info), `dial` opens
// the transport (TCP, TLS, connect timeouts, through a proxy), `redirect` decides which
// redirects are followed and what a request keeps across them, `challenge` what a 401 asks and
// where the answer may go, and `builder` ties them together for `ClientBuilder`. Proxies:
// `proxy` reads a proxy URL, `proxy_env` chooses proxies from the environment, `http_connect`
// and `socks` are the sans-io exchanges with HTTP and SOCKS5 proxies, `tunnel` drives them.
// `http2` is the HTTP/2 client (RFC 8441): the connection handle and the builder's methods.
mod builder;
mod challenge;
mod dial;
#[cfg(feature = "http2")]
mod http2;
mod http_connect;
mod proxy;
mod proxy_env;
mod redirect;
mod socks;
mod tunnel;
mod url;

use http::Response;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::error::Result;
use crate::transport::MaybeTlsStream;
use crate::WebSocket;

#[cfg(feature = "http2")]
pub use crate::rt::h2_stream::H2Stream;
pub use builder::ClientBuilder;
pub use challenge::Challenge;
#[cfg(feature = "http2")]
pub use http2::Http2Connection;
pub use proxy::Proxy;
pub use proxy_env::ProxyEnv;
pub use url::IntoClientRequest;

/// Connects to a `ws://` or `wss://` URL with the default settings of [`ClientBuilder`].
/// Returns the connection and the server's 101 response.
///
/// `wss://` verifies the server's certificate against the Mozilla roots (see [`crate::tls`]).
///
/// # Cancel safety
/// Dropping the future abandons the connection attempt; nothing else is affected.
pub async fn connect(
    request: impl IntoClientRequest,
) -> Result<(WebSocket<MaybeTlsStream>, Response<()>)> {
    ClientBuilder::new().connect(request).await
}

/// Performs the client handshake over `io`, a stream already connected to the server. The
/// request's URI may be a full `ws://` URL or just a path when the request carries `Host`.
///
/// # Cancel safety
/// Dropping the future drops `io` mid-handshake; nothing else is affected.
pub async fn connect_on<S>(
    io: S,
    request: impl IntoClientRequest,
) -> Result<(WebSocket<S>, Response<()>)>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    ClientBuilder::new().connect_on(io, request).await
}
