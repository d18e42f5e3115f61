//! Accepting WebSocket connections.
//!
//! [`accept`] upgrades any incoming connection; an [`Acceptor`] adds settings and a callback
//! that sees each request (path, headers, origin) and accepts it, choosing a subprotocol and
//! response headers, or rejects it with any status, headers and body.
//!
//! Every handshake runs under [`Config::handshake_timeout`] (default 10 s): a client that sends
//! its request a byte a minute is cut off. A request head larger than
//! [`Config::max_handshake_size`] or with more header lines than
//! [`Config::max_handshake_headers`] is answered with `431 Request Header Fields Too Large`.
//! [`Acceptor::allowed_origins`] answers `403` to browsers on other sites. Over TLS, build a
//! [`TlsAcceptor`] with [`tls::acceptor_from_pem`](crate::tls::acceptor_from_pem) and use
//! [`Acceptor::accept_tls`].
//!
//! ```no_run
//! use wsio::server::{Acceptor, Accept, Reject};
//! # async fn demo() -> wsio::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:9002").await?;
//! let acceptor = Acceptor::new().on_request(|request| {
//!     if request.uri().path() != "/chat" {
//!         return Err(Reject::new(http::StatusCode::NOT_FOUND));
//!     }
//!     let wants_v2 = wsio::server::requested_subprotocols(request).any(|p| p == "chat.v2");
//!     Ok(Accept::new().protocol(wants_v2.then_some("chat.v2")))
//! });
//! loop {
//!     let (tcp, _) = listener.accept().await?;
//!     let acceptor = acceptor.clone();
//!     tokio::spawn(async move {
//!         let (mut ws, _request) = acceptor.accept(tcp).await?;
//!         while let Some(message) = ws.recv().await {
//!             let message = message?;
//!             if message.is_data() {
//!                 ws.send(message).await?;
//!             }
//!         }
//!         Ok::<_, wsio::Error>(())
//!     });
//! }
//! # }
//! ```

use std::fmt;
use std::sync::Arc;

use http::header::ORIGIN;
use http::{Request, StatusCode};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::timeout_at;

use crate::config::Config;
use crate::error::{Error, Result, Timeout};
use crate::rt::handshake::{self, deadline_after};
use crate::tls::TlsAcceptor;
use crate::WebSocket;

pub use crate::handshake::server::{requested_subprotocols, Accept, Reject};

/// Upgrades `io` to a WebSocket with the default [`Config`], accepting any path and no
/// subprotocol. A malformed request is answered with 400 (426 for a wrong version) and returned
/// as an error.
///
/// # Cancel safety
/// Dropping the future drops `io` mid-handshake; nothing else is affected.
pub async fn accept<S>(io: S) -> Result<WebSocket<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    Acceptor::new().accept(io).await.map(|(ws, _)| ws)
}

type Decide = dyn Fn(&Request<()>) -> std::result::Result<Accept, Reject> + Send + Sync;

/// Accepts connections with a [`Config`], an optional origin allow-list and an optional request
/// callback. Cheap to clone.
#[derive(Clone, Default)]
pub struct Acceptor {
    config: Config,
    decide: Option<Arc<Decide>>,
    allowed_origins: Option<Arc<[String]>>,
}

impl fmt::Debug for Acceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acceptor")
            .field("config", &self.config)
            .field("on_request", &self.decide.is_some())
            .field("allowed_origins", &self.allowed_origins)
            .finish()
    }
}

/// Whether `request` may proceed under an origin allow-list: it has no `Origin` (not a browser),
/// or one `Origin` equal, ignoring ASCII case, to an allowed one.
fn origin_allowed(allowed: &[String], request: &Request<()>) -> bool {
    let mut origins = request.headers().get_all(ORIGIN).iter();
    match (origins.next(), origins.next()) {
        (None, _) => true,
        (Some(origin), None) => {
            let origin = origin.as_bytes();
            let origin = origin.strip_suffix(b"/").unwrap_or(origin);
            allowed
                .iter()
                .any(|allowed| allowed.as_bytes().eq_ignore_ascii_case(origin))
        }
        (Some(_), Some(_)) => false,
    }
}

impl Acceptor {
    /// An acceptor with the default [`Config`] that accepts every valid request.
    pub fn new() -> Self {
        Self::default()
    }

    /// Use `config` for the handshake limits and the connections.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Call `decide` with each valid upgrade request: `Ok` accepts it, `Err` refuses it with
    /// the [`Reject`]'s status, headers and body. It runs after the
    /// [`allowed_origins`](Self::allowed_origins) check, and can check anything else in the
    /// request: path, cookies, tokens, a stricter origin policy.
    pub fn on_request<F>(mut self, decide: F) -> Self
    where
        F: Fn(&Request<()>) -> std::result::Result<Accept, Reject> + Send + Sync + 'static,
    {
        self.decide = Some(Arc::new(decide));
        self
    }

    /// Refuse with `403 Forbidden` a request whose `Origin` is none of `origins` (e.g.
    /// `"https://example.com"`, or `"http://localhost:8080"`: scheme, host and any port, compared
    /// ignoring ASCII case). This is what stops a page on another site from opening a connection
    /// with the user's cookies (cross-site WebSocket hijacking).
    ///
    /// A request without `Origin` is let through: browsers always send it, so it comes from a
    /// program, which could send any `Origin` it likes anyway. To require one, or for patterns,
    /// check the header in [`on_request`](Self::on_request). Default: every origin is allowed.
    pub fn allowed_origins<I, O>(mut self, origins: I) -> Self
    where
        I: IntoIterator<Item = O>,
        O: Into<String>,
    {
        let origins = origins.into_iter().map(|origin| {
            let origin: String = origin.into();
            match origin.strip_suffix('/') {
                Some(trimmed) => trimmed.to_owned(),
                None => origin,
            }
        });
        self.allowed_origins = Some(origins.collect());
        self
    }

    /// Reads the upgrade request from `io` and answers it, within
    /// [`Config::handshake_timeout`]. Returns the connection and the request (path, query,
    /// headers).
    ///
    /// # Errors
    /// [`Error::Timeout`] of [`Timeout::Handshake`] when the request and answer take longer
    /// than the timeout; [`Error::Handshake`] for a request that is malformed (answered with
    /// 400, 405, 426, 431 or 505, see
    /// [`HandshakeError::status_for_reply`](crate::handshake::HandshakeError::status_for_reply)),
    /// refused by the origin check (403) or by [`on_request`](Self::on_request)
    /// ([`HandshakeError::Rejected`](crate::handshake::HandshakeError::Rejected)).
    ///
    /// # Cancel safety
    /// Dropping the future drops `io` mid-handshake; nothing else is affected.
    pub async fn accept<S>(&self, io: S) -> Result<(WebSocket<S>, Request<()>)>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let deadline = deadline_after(self.config.get_handshake_timeout());
        self.accept_until(io, deadline).await
    }

    /// Runs the TLS handshake with `tls` over `io`, then [`accept`](Self::accept), both within
    /// one [`Config::handshake_timeout`]. The connection's TLS parameters are then available
    /// through [`TransportInfo`](crate::TransportInfo) methods such as
    /// [`WebSocket::tls_protocol_version`].
    ///
    /// # Errors
    /// As [`accept`](Self::accept), and [`Error::Tls`] when the TLS handshake fails (the client
    /// refused the certificate, no protocol version in common...).
    ///
    /// # Cancel safety
    /// Dropping the future drops `io` mid-handshake; nothing else is affected.
    pub async fn accept_tls<S>(
        &self,
        tls: &TlsAcceptor,
        io: S,
    ) -> Result<(WebSocket<tokio_rustls::server::TlsStream<S>>, Request<()>)>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let deadline = deadline_after(self.config.get_handshake_timeout());
        let io = timeout_at(deadline, tls.accept(io))
            .await
            .map_err(|_elapsed| Error::Timeout(Timeout::Handshake))?
            .map_err(crate::tls::from_io)?;
        self.accept_until(io, deadline).await
    }

    async fn accept_until<S>(
        &self,
        io: S,
        deadline: tokio::time::Instant,
    ) -> Result<(WebSocket<S>, Request<()>)>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let decide = self.decide.clone();
        let allowed_origins = self.allowed_origins.clone();
        handshake::server(io, self.config.clone(), deadline, move |request| {
            if let Some(allowed) = &allowed_origins {
                if !origin_allowed(allowed, request) {
                    return Err(Reject::new(StatusCode::FORBIDDEN).body("origin not allowed"));
                }
            }
            match &decide {
                Some(decide) => decide(request),
                None => Ok(Accept::new()),
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn request_with_origins(origins: &[&'static str]) -> Request<()> {
        let mut request = Request::new(());
        for origin in origins {
            request
                .headers_mut()
                .append(ORIGIN, HeaderValue::from_static(origin));
        }
        request
    }

    #[test]
    fn origin_allow_list() {
        let allowed = [
            "https://example.com".to_owned(),
            "http://localhost:8080".to_owned(),
        ];
        for (origins, ok) in [
            (&[][..], true),
            (&["https://example.com"][..], true),
            (&["HTTPS://Example.COM"][..], true),
            (&["https://example.com/"][..], true),
            (&["http://localhost:8080"][..], true),
            (&["http://localhost"][..], false),
            (&["https://evil.example"][..], false),
            (&["https://example.com.evil"][..], false),
            (&["null"][..], false),
            (&["https://example.com", "https://example.com"][..], false),
        ] {
            assert_eq!(
                origin_allowed(&allowed, &request_with_origins(origins)),
                ok,
                "{origins:?}"
            );
        }
    }
}
