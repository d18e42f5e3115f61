//! The axum 0.8 extractor (the `axum` feature): [`WebSocketUpgrade`], wsio's upgrade inside an
//! axum handler, over HTTP/1.1 and over HTTP/2 (RFC 8441 extended CONNECT).
//!
//! The extractor checks the request as [`Acceptor`] does and refuses a bad one with the same
//! answer (400, 405, 426 with `Sec-WebSocket-Version: 13`...): its rejection is the
//! [`Refusal`], which is an `IntoResponse`. The handler then picks the subprotocol, the
//! [`Config`] or a whole [`Acceptor`] (origin allow-list, `on_request` decision), and answers
//! with [`WebSocketUpgrade::on_upgrade`], which runs the acceptor's decision and spawns the
//! task that gets the [`WebSocket`].
//!
//! ```no_run
//! use axum::{response::Response, routing::any, Router};
//! use wsio::axum::WebSocketUpgrade;
//!
//! async fn chat(ws: WebSocketUpgrade) -> Response {
//!     ws.protocols(["chat.v2", "chat.v1"])
//!         .on_upgrade(|mut ws| async move {
//!             while let Some(Ok(message)) = ws.recv().await {
//!                 if message.is_data() && ws.send(message).await.is_err() {
//!                     break;
//!                 }
//!             }
//!         })
//!         .await
//! }
//!
//! # async fn demo() -> std::io::Result<()> {
//! // `any`, not `get`: over HTTP/2 a WebSocket arrives as a CONNECT request.
//! let app = Router::new().route("/chat", any(chat));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app).await
//! # }
//! ```
//!
//! `axum::serve` speaks HTTP/2 (with axum's `http2` feature) with the CONNECT protocol enabled,
//! so browsers and h2 clients can open WebSockets over it; route with `any` (or
//! `get(..).connect(..)`), since an RFC 8441 upgrade is a `CONNECT`.

use std::fmt;
use std::future::Future;

use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{StatusCode, Version};
use hyper::upgrade::OnUpgrade;

use crate::config::Config;
use crate::error::Error;
use crate::handshake::server::{requested_subprotocols, Reject};
use crate::rt::handshake::deadline_after;
use crate::rt::upgraded::UpgradedIo;
use crate::server::Acceptor;
use crate::upgrade::{Refusal, UpgradeRequest};
use crate::WebSocket;

/// What is called with the error of an upgrade that does not happen.
type FailedUpgrade = Box<dyn FnOnce(Error) + Send>;

/// Extracts a WebSocket upgrade request: an HTTP/1.1 `GET` with `Upgrade: websocket`, or an
/// HTTP/2 extended `CONNECT` whose `:protocol` is `websocket`. Answer it with
/// [`on_upgrade`](Self::on_upgrade).
///
/// A request that is not a valid upgrade is rejected with the [`Refusal`] an [`Acceptor`]
/// would answer it with.
pub struct WebSocketUpgrade {
    request: UpgradeRequest,
    on_upgrade: OnUpgrade,
    acceptor: Acceptor,
    protocols: Vec<String>,
    on_failed_upgrade: FailedUpgrade,
}

impl fmt::Debug for WebSocketUpgrade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocketUpgrade")
            .field("request", &self.request)
            .field("acceptor", &self.acceptor)
            .field("protocols", &self.protocols)
            .finish_non_exhaustive()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for WebSocketUpgrade {
    type Rejection = Refusal;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let request = UpgradeRequest::from_parts(parts)?;
        let Some(on_upgrade) = parts.extensions.remove::<OnUpgrade>() else {
            // Not served by hyper, or served by it without upgrades: the server's setup, not
            // the client's request, is what is wrong.
            let why = "the server cannot upgrade this connection";
            let error = Error::Io(std::io::Error::new(std::io::ErrorKind::Unsupported, why));
            let reject = Reject::new(StatusCode::INTERNAL_SERVER_ERROR).body(why);
            return Err(Refusal::new(request.kind(), &reject, error));
        };
        Ok(WebSocketUpgrade {
            request,
            on_upgrade,
            acceptor: Acceptor::new(),
            protocols: Vec::new(),
            on_failed_upgrade: Box::new(|_| {}),
        })
    }
}

impl WebSocketUpgrade {
    /// The subprotocols the server speaks, in its order of preference: the first one the client
    /// offered is selected, unless the acceptor's `on_request` selects one itself. When the
    /// client offered none of them, no subprotocol is selected (the client decides whether to
    /// go on). Default: none.
    pub fn protocols<I, P>(mut self, protocols: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: Into<String>,
    {
        self.protocols = protocols.into_iter().map(Into::into).collect();
        self
    }

    /// Answer with `acceptor`: its [`Config`], its [`allowed_origins`](Acceptor::allowed_origins)
    /// and its [`on_request`](Acceptor::on_request) or
    /// [`on_request_async`](Acceptor::on_request_async) decision. It replaces any
    /// [`config`](Self::config) given before. Default: [`Acceptor::new`].
    pub fn acceptor(mut self, acceptor: Acceptor) -> Self {
        self.acceptor = acceptor;
        self
    }

    /// Use `config` for the handshake (its timeout bounds an asynchronous decision) and the
    /// connection, in the acceptor given so far.
    pub fn config(mut self, config: Config) -> Self {
        self.acceptor = self.acceptor.config(config);
        self
    }

    /// Call `callback` with the error when the upgrade is refused (the error of the
    /// [`Refusal`] that [`on_upgrade`](Self::on_upgrade) answers with) or does not happen after
    /// it was accepted (the client left before the answer, hyper did not hand the connection
    /// over). Default: the error is dropped.
    pub fn on_failed_upgrade<F>(mut self, callback: F) -> Self
    where
        F: FnOnce(Error) + Send + 'static,
    {
        self.on_failed_upgrade = Box::new(callback);
        self
    }

    /// The HTTP version the request came on: `HTTP/1.1` for an `Upgrade`, `HTTP/2` for an
    /// extended CONNECT.
    pub fn version(&self) -> Version {
        self.request.request().version()
    }

    /// The subprotocols the client offered (`Sec-WebSocket-Protocol`), in its order of
    /// preference.
    pub fn requested_protocols(&self) -> impl Iterator<Item = &str> {
        requested_subprotocols(self.request.request())
    }

    /// Answers the request: runs the acceptor's origin check and decision (within the
    /// handshake timeout), selects the subprotocol, and returns the response for the handler
    /// to return (`101`, or `200` over HTTP/2). Once axum has sent it, a spawned task calls
    /// `callback` with the [`WebSocket`].
    ///
    /// A refused request gets the [`Refusal`]'s response instead, and
    /// [`on_failed_upgrade`](Self::on_failed_upgrade) its error; so does an accepted one whose
    /// connection is not handed over.
    ///
    /// # Cancel safety
    /// Dropping the future drops the decision in progress and the request: nothing is spawned.
    pub async fn on_upgrade<F, Fut>(self, callback: F) -> Response
    where
        F: FnOnce(WebSocket<UpgradedIo>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let WebSocketUpgrade {
            request,
            on_upgrade,
            acceptor,
            protocols,
            on_failed_upgrade,
        } = self;
        let deadline = deadline_after(acceptor.settings().get_handshake_timeout());
        let answered = match request.decide(&acceptor, deadline).await {
            Ok(decision) => {
                let decision = decision.map(|accept| {
                    if accept.selected_protocol().is_some() {
                        return accept;
                    }
                    let offered: Vec<&str> = requested_subprotocols(request.request()).collect();
                    let chosen = protocols.iter().find(|p| offered.contains(&p.as_str()));
                    accept.protocol(chosen.cloned())
                });
                request.answer(decision, &acceptor, on_upgrade)
            }
            Err(refusal) => Err(refusal),
        };
        let (response, websocket) = match answered {
            Ok(answered) => answered,
            Err(refusal) => {
                let (response, error) = refusal.into_parts();
                on_failed_upgrade(error);
                return response.map(axum::body::Body::new);
            }
        };
        tokio::spawn(async move {
            match websocket.await {
                Ok(ws) => callback(ws).await,
                Err(error) => on_failed_upgrade(error),
            }
        });
        response.map(axum::body::Body::new)
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let (response, _error) = self.into_parts();
        response.map(axum::body::Body::new)
    }
}
