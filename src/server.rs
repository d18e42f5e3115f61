//! Accepting WebSocket connections.
//!
//! [`accept`] upgrades any incoming connection; an [`Acceptor`] adds settings and a callback
//! that sees each request (path, headers, origin) and accepts it, choosing a subprotocol and
//! response headers, or rejects it with any status, headers and body. A decision that awaits
//! (a session store, an auth service) uses [`Acceptor::on_request_async`], or reads the
//! request first with [`Acceptor::read_request`] and answers the [`PendingUpgrade`] when it
//! knows.
//!
//! Every handshake runs under [`Config::handshake_timeout`] (default 10 s): a client that sends
//! its request a byte a minute is cut off. A request head larger than
//! [`Config::max_handshake_size`] or with more header lines than
//! [`Config::max_handshake_headers`] is answered with `431 Request Header Fields Too Large`.
//! [`Acceptor::allowed_origins`] answers `403` to browsers on other sites. Over TLS (the `ring`
//! or `aws-lc-rs` feature), build a `TlsAcceptor` with `tls::acceptor_from_pem` and use
//! `Acceptor::accept_tls`.
//!
//! A server that stops closes its connections with a [`Shutdown`] given to the acceptor
//! ([`Acceptor::shutdown`]): [`Shutdown::close_all`] sends every connection the acceptor built a
//! close with 1001 (going away), waits for the closing handshakes until a deadline, cuts off
//! the peers that do not answer, and returns a [`ShutdownReport`]; meanwhile new upgrade
//! requests are answered with `503 Service Unavailable`. The `Shutdown` docs have the example.
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
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};

use http::header::ORIGIN;
use http::{Request, StatusCode};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::timeout_at;

use crate::config::Config;
use crate::error::{Error, HandshakeError, Result, Timeout};
use crate::rt::handshake::{self, deadline_after};
use crate::rt::shutdown::{self, Shutdown as Registry};
#[cfg(feature = "tls")]
use crate::tls::TlsAcceptor;
use crate::WebSocket;

pub use crate::handshake::server::{requested_subprotocols, Accept, Reject};
pub use crate::rt::shutdown::{Shutdown, ShutdownReport};

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
    // One default acceptor for every call: a temporary one would be borrowed across the await,
    // and so kept in the future (about 200 bytes), which every connection's task keeps room
    // for as long as it lives.
    static DEFAULT: LazyLock<Acceptor> = LazyLock::new(Acceptor::new);
    DEFAULT.accept(io).await.map(|(ws, _)| ws)
}

/// The answer to an upgrade request: accept it, or refuse it with a status.
pub(crate) type Decision = std::result::Result<Accept, Reject>;

/// A decision still being made: what an asynchronous [`Acceptor::on_request_async`] returns.
type DecisionFuture = Pin<Box<dyn Future<Output = Decision> + Send>>;

/// A callback that decides at once.
type DecideNow = dyn Fn(&Request<()>) -> Decision + Send + Sync;

/// A callback that returns the future of its decision.
type DecideLater = dyn Fn(&Request<()>) -> DecisionFuture + Send + Sync;

/// How an [`Acceptor`] decides on a request.
#[derive(Clone)]
enum Decide {
    Now(Arc<DecideNow>),
    Later(Arc<DecideLater>),
}

/// What a callback made of a request: its decision, or the future of it.
enum Decided {
    Now(Decision),
    Later(DecisionFuture),
}

/// Accepts connections with a [`Config`], an optional origin allow-list and an optional request
/// callback. Cheap to clone.
#[derive(Clone, Default)]
pub struct Acceptor {
    config: Config,
    decide: Option<Decide>,
    allowed_origins: Option<Arc<[String]>>,
    shutdown: Option<Registry>,
}

impl fmt::Debug for Acceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acceptor")
            .field("config", &self.config)
            .field("on_request", &self.decide.is_some())
            .field("allowed_origins", &self.allowed_origins)
            .field("shutdown", &self.shutdown)
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
        self.decide = Some(Decide::Now(Arc::new(decide)));
        self
    }

    /// Like [`on_request`](Self::on_request), for a decision that awaits: a session store, an
    /// authentication service, a rate limiter. `decide` is called with the request and returns
    /// the future of the answer; to use the request inside it, take what it needs first (the
    /// future must not borrow the request):
    ///
    /// ```no_run
    /// use wsio::server::{Acceptor, Accept, Reject};
    /// # async fn session_is_valid(_: Option<String>) -> bool { true }
    /// let acceptor = Acceptor::new().on_request_async(|request| {
    ///     let cookie = request.headers().get(http::header::COOKIE)
    ///         .and_then(|v| v.to_str().ok()).map(str::to_owned);
    ///     async move {
    ///         if session_is_valid(cookie).await {
    ///             Ok(Accept::new())
    ///         } else {
    ///             Err(Reject::new(http::StatusCode::UNAUTHORIZED))
    ///         }
    ///     }
    /// });
    /// ```
    ///
    /// The decision runs within [`Config::handshake_timeout`], which counts from the start of
    /// the request: when it is not made in time, the connection is closed without an answer
    /// and [`accept`](Self::accept) returns [`Error::Timeout`]. For full control (holding the
    /// request while doing anything else), see [`read_request`](Self::read_request).
    pub fn on_request_async<F, Fut>(mut self, decide: F) -> Self
    where
        F: Fn(&Request<()>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Decision> + Send + 'static,
    {
        self.decide = Some(Decide::Later(Arc::new(move |request| {
            Box::pin(decide(request))
        })));
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

    /// Registers every connection this acceptor builds with `shutdown`, whose
    /// [`close_all`](Shutdown::close_all) closes them with 1001 (going away). Once the shutdown
    /// has begun, upgrade requests are refused with `503 Service Unavailable` (and
    /// [`accept`](Self::accept) returns [`HandshakeError::Rejected`]).
    pub fn shutdown(mut self, shutdown: &Shutdown) -> Self {
        self.shutdown = Some(shutdown.clone());
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
    /// refused by the origin check (403), by [`on_request`](Self::on_request), or because the
    /// [`shutdown`](Self::shutdown) has begun (503) ([`HandshakeError::Rejected`]).
    ///
    /// # Cancel safety
    /// Dropping the future drops `io` mid-handshake; nothing else is affected.
    pub fn accept<S>(
        &self,
        io: S,
    ) -> impl Future<Output = Result<(WebSocket<S>, Request<()>)>> + use<'_, S>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        // Not an `async fn`, which would keep its arguments beside the future it awaits: the
        // timeout counts from this call.
        let deadline = deadline_after(self.config.get_handshake_timeout());
        self.accept_until(io, deadline)
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
    #[cfg(feature = "tls")]
    pub async fn accept_tls<S>(
        &self,
        tls: &TlsAcceptor,
        io: S,
    ) -> Result<(WebSocket<tokio_rustls::server::TlsStream<S>>, Request<()>)>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let deadline = deadline_after(self.config.get_handshake_timeout());
        let io = tls_handshake(tls, io, deadline).await?;
        let (ws, request) = self.accept_until(io, deadline).await?;
        crate::trace::tls_accepted(ws.span(), ws.get_ref());
        Ok((ws, request))
    }

    /// Reads and checks the upgrade request from `io`, the first half of an accept in two
    /// steps: the [`PendingUpgrade`] holds the request and the connection while the
    /// application decides, for as long as it likes within [`Config::handshake_timeout`]
    /// (counted from this call), then answers with [`PendingUpgrade::accept`] or
    /// [`PendingUpgrade::reject`]. Dropping it closes the connection without an answer.
    ///
    /// The same checks as [`accept`](Self::accept) apply here, with their refusals (400, 403
    /// from [`allowed_origins`](Self::allowed_origins), 405, 426, 431, 505); the
    /// [`on_request`](Self::on_request) callbacks do not: the caller decides.
    ///
    /// ```no_run
    /// use wsio::server::{Acceptor, Accept, Reject};
    /// # async fn lookup(_: &str) -> bool { true }
    /// # async fn demo(tcp: tokio::net::TcpStream) -> wsio::Result<()> {
    /// let pending = Acceptor::new().read_request(tcp).await?;
    /// let token = pending.request().uri().query().unwrap_or("").to_owned();
    /// if lookup(&token).await {
    ///     let (mut ws, _request) = pending.accept(Accept::new()).await?;
    ///     ws.send(wsio::Message::text("welcome")).await?;
    /// } else {
    ///     pending.reject(Reject::new(http::StatusCode::FORBIDDEN)).await?;
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`accept`](Self::accept), but for the answer.
    ///
    /// # Cancel safety
    /// Dropping the future drops `io` mid-handshake; nothing else is affected.
    pub async fn read_request<S>(&self, io: S) -> Result<PendingUpgrade<S>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let deadline = deadline_after(self.config.get_handshake_timeout());
        self.read_request_until(io, deadline).await
    }

    /// Runs the TLS handshake with `tls` over `io`, then [`read_request`](Self::read_request),
    /// all within one [`Config::handshake_timeout`] that also covers the answer.
    ///
    /// # Errors
    /// As [`read_request`](Self::read_request), and [`Error::Tls`] when the TLS handshake fails.
    ///
    /// # Cancel safety
    /// Dropping the future drops `io` mid-handshake; nothing else is affected.
    #[cfg(feature = "tls")]
    pub async fn read_request_tls<S>(
        &self,
        tls: &TlsAcceptor,
        io: S,
    ) -> Result<PendingUpgrade<tokio_rustls::server::TlsStream<S>>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let deadline = deadline_after(self.config.get_handshake_timeout());
        let io = tls_handshake(tls, io, deadline).await?;
        self.read_request_until(io, deadline).await
    }

    async fn read_request_until<S>(
        &self,
        io: S,
        deadline: tokio::time::Instant,
    ) -> Result<PendingUpgrade<S>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let read = handshake::server_read(io, &self.config, deadline).await?;
        let pending = PendingUpgrade {
            read,
            config: self.config.clone(),
            deadline,
            shutdown: self.shutdown.clone(),
        };
        match self.refusal(pending.request()) {
            Some(reject) => Err(pending.refuse(&reject).await),
            None => Ok(pending),
        }
    }

    async fn accept_until<S>(
        &self,
        io: S,
        deadline: tokio::time::Instant,
    ) -> Result<(WebSocket<S>, Request<()>)>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        // Each connection's task keeps room for its accept future as long as it lives, and a
        // local once borrowed keeps its room in an async fn until its scope ends, even moved
        // out. So the pending upgrade is borrowed (to decide) only in this block, and the one
        // moved out of it, never borrowed, shares its room with the answer's future.
        let (pending, decision) = {
            let pending = self.read_request_until(io, deadline).await?;
            let decision = self.decide(pending.request(), deadline);
            (pending, decision)
        };
        // Not `match decision.await? {`: the scrutinee would live through both arms' awaits.
        let decision = decision.await?;
        match decision {
            Ok(accept) => pending.accept(accept).await,
            Err(reject) => Err(pending.refuse(&reject).await),
        }
    }
}

/// The pieces of an accept that every way of upgrading shares (this module's raw transports,
/// and hyper's and axum's upgrades), so that each is written once.
impl Acceptor {
    /// The [`Config`] of the handshake limits and of the connections.
    #[cfg(feature = "hyper")]
    pub(crate) fn settings(&self) -> &Config {
        &self.config
    }

    /// The shutdown connections join, if any.
    #[cfg(feature = "hyper")]
    pub(crate) fn registry(&self) -> Option<&Shutdown> {
        self.shutdown.as_ref()
    }

    /// What `request` is refused with before any decision: the `503` of a
    /// [`shutdown`](Self::shutdown) under way, or the `403` of
    /// [`allowed_origins`](Self::allowed_origins); `None` lets it through.
    pub(crate) fn refusal(&self, request: &Request<()>) -> Option<Reject> {
        if let Some(reject) = shutdown::refusal(self.shutdown.as_ref()) {
            return Some(reject);
        }
        let allowed = self.allowed_origins.as_deref()?;
        (!origin_allowed(allowed, request))
            .then(|| Reject::new(StatusCode::FORBIDDEN).body("origin not allowed"))
    }

    /// What the [`on_request`](Self::on_request) (or
    /// [`on_request_async`](Self::on_request_async)) callback answers to `request`; without
    /// one, an [`Accept`] with no subprotocol.
    ///
    /// # Errors
    /// [`Error::Timeout`] of [`Timeout::Handshake`] when an asynchronous decision is not made
    /// by `deadline`.
    pub(crate) fn decide(
        &self,
        request: &Request<()>,
        deadline: tokio::time::Instant,
    ) -> impl Future<Output = Result<Decision>> + Send + 'static {
        // Not an `async fn`: its future would borrow `request` (and the pending upgrade that
        // holds it) across the await, and a borrowed local keeps its room in the caller's future
        // beside whatever is made from it later.
        let decided = match &self.decide {
            None => Decided::Now(Ok(Accept::new())),
            Some(Decide::Now(decide)) => Decided::Now(decide(request)),
            Some(Decide::Later(decide)) => Decided::Later(decide(request)),
        };
        async move {
            match decided {
                Decided::Now(decision) => Ok(decision),
                Decided::Later(later) => timeout_at(deadline, later)
                    .await
                    .map_err(|_elapsed| Error::Timeout(Timeout::Handshake)),
            }
        }
    }
}

/// Runs the TLS handshake of a server, before `deadline`.
#[cfg(feature = "tls")]
async fn tls_handshake<S>(
    tls: &TlsAcceptor,
    io: S,
    deadline: tokio::time::Instant,
) -> Result<tokio_rustls::server::TlsStream<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    timeout_at(deadline, tls.accept(io))
        .await
        .map_err(|_elapsed| Error::Timeout(Timeout::Handshake))?
        .map_err(Error::from)
}

/// An upgrade request that was read and passed every check, waiting for the application's
/// answer: from [`Acceptor::read_request`]. It holds the connection (and any bytes the client
/// sent after its request); dropping it closes the connection without an answer.
pub struct PendingUpgrade<S> {
    read: handshake::ReadRequest<S>,
    config: Config,
    deadline: tokio::time::Instant,
    shutdown: Option<Registry>,
}

impl<S: fmt::Debug> fmt::Debug for PendingUpgrade<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingUpgrade")
            .field("request", &self.read.request)
            .field("io", &self.read.io)
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

impl<S> PendingUpgrade<S> {
    /// The request: method, URI (path and query), headers.
    pub fn request(&self) -> &Request<()> {
        &self.read.request
    }

    /// The connection, to look at (its peer address, the TLS server name a client asked for).
    pub fn transport(&self) -> &S {
        &self.read.io
    }

    /// When the handshake times out: an answer must be given before then, or
    /// [`accept`](Self::accept) and [`reject`](Self::reject) return [`Error::Timeout`] and
    /// the connection is closed without one. To bound a slow decision, race it against this
    /// instant (`tokio::time::timeout_at`).
    pub fn deadline(&self) -> tokio::time::Instant {
        self.deadline
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> PendingUpgrade<S> {
    /// Accepts the upgrade: writes the `101 Switching Protocols` that `accept` makes (its
    /// subprotocol and headers) and returns the connection, with the request.
    ///
    /// # Errors
    /// [`Error::Timeout`] of [`Timeout::Handshake`] when the deadline has passed, or passes
    /// while the answer is written (the connection is closed); [`Error::Handshake`] when
    /// `accept` names a subprotocol the client did not offer (answered with 500), or when the
    /// acceptor's [`shutdown`](Acceptor::shutdown) began since the request was read (answered
    /// with 503, [`HandshakeError::Rejected`]); [`Error::Io`] when the answer cannot be
    /// written.
    ///
    /// # Cancel safety
    /// Dropping the future closes the connection, answered or not.
    pub fn accept(
        self,
        accept: Accept,
    ) -> impl Future<Output = Result<(WebSocket<S>, Request<()>)>> {
        // Not an `async fn`: the future is `server_accept`'s alone, without this one's
        // arguments kept beside it (see there).
        handshake::server_accept(self.read, accept, self.config, self.deadline, self.shutdown)
    }

    /// Refuses the upgrade with the [`Reject`]'s status, headers and body, then closes the
    /// connection. A client already gone is not an error: the refusal is written as far as
    /// it goes.
    ///
    /// # Errors
    /// [`Error::Timeout`] of [`Timeout::Handshake`] when the deadline has passed (nothing is
    /// written, the connection is closed).
    ///
    /// # Cancel safety
    /// Dropping the future closes the connection, answered or not.
    pub async fn reject(self, reject: Reject) -> Result<()> {
        handshake::server_reject(self.read, &reject, self.deadline).await
    }

    /// Writes the refusal and returns the error it stands for (or the timeout's).
    ///
    /// Boxed: a refusal is rare, and its future (the answer being written) is about 1.5 KB,
    /// which every accept future would otherwise reserve, and with it every connection's task
    /// for as long as the connection lives.
    fn refuse<'a>(self, reject: &'a Reject) -> Pin<Box<impl Future<Output = Error> + 'a>>
    where
        S: 'a,
    {
        Box::pin(async move {
            match handshake::server_reject(self.read, reject, self.deadline).await {
                Ok(()) => HandshakeError::Rejected {
                    status: reject.status(),
                }
                .into(),
                Err(e) => e,
            }
        })
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
