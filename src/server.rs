//! Accepting WebSocket connections.
//!
//! [`accept`] upgrades any incoming connection; an [`Acceptor`] adds settings and a callback
//! that sees each request (path, headers, origin) and accepts it, choosing a subprotocol and
//! response headers, or rejects it with any status.
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
//!         wsio::Result::Ok(())
//!     });
//! }
//! # }
//! ```

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, StatusCode};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::config::Config;
use crate::error::Result;
use crate::rt::handshake;
use crate::WebSocket;

pub use crate::handshake::server::requested_subprotocols;

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

/// How to answer an accepted request: the subprotocol and extra response headers.
#[derive(Debug, Clone, Default)]
pub struct Accept {
    pub(crate) protocol: Option<String>,
    pub(crate) headers: HeaderMap,
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
}

/// How to refuse a request: a status, headers and a body.
#[derive(Debug, Clone)]
pub struct Reject(pub(crate) Box<RejectParts>);

#[derive(Debug, Clone)]
pub(crate) struct RejectParts {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
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
}

impl From<StatusCode> for Reject {
    fn from(status: StatusCode) -> Self {
        Reject::new(status)
    }
}

type Decide = dyn Fn(&Request<()>) -> std::result::Result<Accept, Reject> + Send + Sync;

/// Accepts connections with a [`Config`] and an optional request callback. Cheap to clone.
#[derive(Clone, Default)]
pub struct Acceptor {
    config: Config,
    decide: Option<Arc<Decide>>,
}

impl fmt::Debug for Acceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acceptor")
            .field("config", &self.config)
            .field("on_request", &self.decide.is_some())
            .finish()
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

    /// Call `decide` with each valid upgrade request: `Ok` accepts it, `Err` refuses it.
    pub fn on_request<F>(mut self, decide: F) -> Self
    where
        F: Fn(&Request<()>) -> std::result::Result<Accept, Reject> + Send + Sync + 'static,
    {
        self.decide = Some(Arc::new(decide));
        self
    }

    /// Reads the upgrade request from `io` and answers it. Returns the connection and the
    /// request (path, query, headers).
    ///
    /// # Cancel safety
    /// Dropping the future drops `io` mid-handshake; nothing else is affected.
    pub async fn accept<S>(&self, io: S) -> Result<(WebSocket<S>, Request<()>)>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let decide = self.decide.clone();
        handshake::server(io, self.config.clone(), move |request| match &decide {
            Some(decide) => decide(request),
            None => Ok(Accept::new()),
        })
        .await
    }
}
