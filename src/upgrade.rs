//! WebSocket upgrades inside a hyper 1 server (the `hyper` feature): an HTTP/1.1 `GET` with
//! `Upgrade: websocket` (RFC 6455), or an HTTP/2 extended `CONNECT` with
//! `:protocol = websocket` (RFC 8441).
//!
//! [`upgrade`] checks a request hyper served, runs an [`Acceptor`]'s origin check and
//! `on_request` decision, negotiates the subprotocol and permessage-deflate, and returns the
//! response to send and an [`UpgradeFuture`] of the [`WebSocket`](crate::WebSocket); a
//! request it refuses comes back as a [`Refusal`] with its response. The checks, the answers to bad requests (400, 426
//! with `Sec-WebSocket-Version: 13`, 403 for a refused origin...), the decision and the
//! negotiation are the same code as [`Acceptor::accept`]'s.
//!
//! HTTP/1.1 requests get `101 Switching Protocols`; HTTP/2 extended CONNECTs get `200 OK`
//! without `Sec-WebSocket-Accept`. For the latter, hyper's HTTP/2 server must be built with
//! `enable_connect_protocol()` (`hyper::server::conn::http2::Builder`, or
//! `hyper_util::server::conn::auto::Builder::http2()`): that sends
//! `SETTINGS_ENABLE_CONNECT_PROTOCOL`, without which clients do not send extended CONNECTs and
//! hyper refuses them.
//!
//! ```no_run
//! use std::convert::Infallible;
//!
//! use bytes::Bytes;
//! use http_body_util::Full;
//! use hyper::{body::Incoming, Request, Response};
//! use wsio::Acceptor;
//!
//! async fn serve(mut request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
//!     if !wsio::upgrade::is_upgrade_request(&request) {
//!         return Ok(Response::new(Full::new(Bytes::from_static(b"not a WebSocket"))));
//!     }
//!     match wsio::upgrade::upgrade(&mut request, &Acceptor::new()).await {
//!         Ok((response, websocket)) => {
//!             tokio::spawn(async move {
//!                 let mut ws = websocket.await?;
//!                 while let Some(message) = ws.recv().await {
//!                     let message = message?;
//!                     if message.is_data() {
//!                         ws.send(message).await?;
//!                     }
//!                 }
//!                 Ok::<_, wsio::Error>(())
//!             });
//!             Ok(response)
//!         }
//!         Err(refusal) => Ok(refusal.into_response()),
//!     }
//! }
//!
//! # async fn demo() -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:9002").await?;
//! loop {
//!     let (tcp, _) = listener.accept().await?;
//!     tokio::spawn(
//!         hyper::server::conn::http1::Builder::new()
//!             .serve_connection(
//!                 hyper_util::rt::TokioIo::new(tcp),
//!                 hyper::service::service_fn(serve),
//!             )
//!             .with_upgrades(),
//!     );
//! }
//! # }
//! ```
//!
//! The HTTP/1.1 connection must be served `with_upgrades()`, or hyper never hands it over.

use std::fmt;

use bytes::Bytes;
use http::header::{CONNECTION, UPGRADE};
use http::{Method, Request, Response, StatusCode, Version};
use http_body_util::Full;

use crate::error::{Error, HandshakeError};
use crate::handshake::header_contains_token;
use crate::handshake::server::{validate_request_as, Accept, Reject, UpgradeKind};
use crate::rt::handshake::{accept_answer, deadline_after};
use crate::server::{Acceptor, Decision};

pub use crate::rt::upgraded::{UpgradeFuture, UpgradedIo};

/// Returns `true` when `request` asks for a WebSocket: an HTTP/1.1 `GET` with `Connection:
/// upgrade` and `Upgrade: websocket`, or an HTTP/2 extended `CONNECT` whose `:protocol` is
/// `websocket`. Whether it asks correctly is for [`upgrade`] to check.
pub fn is_upgrade_request<B>(request: &Request<B>) -> bool {
    if request.method() == Method::GET {
        let headers = request.headers();
        header_contains_token(headers, &CONNECTION, "upgrade")
            && header_contains_token(headers, &UPGRADE, "websocket")
    } else if request.method() == Method::CONNECT {
        connect_protocol(request.extensions()).is_some_and(is_websocket)
    } else {
        false
    }
}

/// Checks and answers `request`, with `acceptor`'s settings, origin allow-list and
/// `on_request` (or `on_request_async`) decision: returns the response to send (give it back
/// to hyper as the service's response) and the future of the
/// [`WebSocket`](crate::WebSocket), which resolves once hyper has sent the response and
/// handed the connection over.
///
/// The response is `101 Switching Protocols` for HTTP/1.1 and `200 OK` for an HTTP/2
/// extended `CONNECT`, with `Sec-WebSocket-Protocol` and `Sec-WebSocket-Extensions` as agreed
/// (permessage-deflate when the acceptor's [`Config::compression`](crate::Config::compression)
/// is on and the client offers it) and the decision's headers. The decision runs within
/// [`Config::handshake_timeout`](crate::Config::handshake_timeout). The request's body is
/// left alone.
///
/// # Errors
/// A [`Refusal`] with the response that says why, and the error it stands for:
/// - a request that is no valid upgrade: [`Error::Handshake`] with the status of
///   [`HandshakeError::status_for_reply`] (400, 405, 426 with `Sec-WebSocket-Version: 13`,
///   505), the error's text as the body;
/// - an `Origin` that [`Acceptor::allowed_origins`] does not allow: 403;
/// - a refusal by the acceptor's `on_request`: its status, headers and body,
///   [`HandshakeError::Rejected`];
/// - an `Accept` naming a subprotocol the client did not offer: 500,
///   [`HandshakeError::UnexpectedSubprotocol`];
/// - an acceptor whose [`Config`](crate::Config) is invalid: 500, [`Error::InvalidConfig`];
/// - an asynchronous decision not made within the handshake timeout: `503 Service
///   Unavailable`, [`Error::Timeout`] of [`Timeout::Handshake`](crate::error::Timeout::Handshake).
///
/// # Cancel safety
/// Dropping the future drops the decision in progress; nothing has been answered yet.
pub async fn upgrade<B>(
    request: &mut Request<B>,
    acceptor: &Acceptor,
) -> Result<(Response<Full<Bytes>>, UpgradeFuture), Refusal> {
    let deadline = deadline_after(acceptor.settings().get_handshake_timeout());
    let upgrade = UpgradeRequest::from_request(request)?;
    let decision = upgrade.decide(acceptor, deadline).await?;
    upgrade.answer(decision, acceptor, hyper::upgrade::on(request))
}

/// A request that asks for a WebSocket correctly for its kind, waiting for its answer: what
/// [`upgrade`] answers, and what the axum extractor holds between its extraction and its
/// answer.
#[derive(Debug)]
pub(crate) struct UpgradeRequest {
    kind: UpgradeKind,
    /// The request's head, without its body or extensions: what the acceptor's callbacks see.
    head: Request<()>,
}

impl UpgradeRequest {
    /// Checks the request `parts`: how they ask for a WebSocket, and whether they ask right.
    #[cfg(feature = "axum")]
    pub(crate) fn from_parts(parts: &http::request::Parts) -> Result<Self, Refusal> {
        let head = head_of(&parts.method, &parts.uri, parts.version, &parts.headers);
        Self::check(head, connect_protocol(&parts.extensions))
    }

    /// The checks of `from_parts`, on a whole request; its body is not looked at.
    fn from_request<B>(request: &Request<B>) -> Result<Self, Refusal> {
        let head = head_of(
            request.method(),
            request.uri(),
            request.version(),
            request.headers(),
        );
        Self::check(head, connect_protocol(request.extensions()))
    }

    /// Checks `head`, whose `:protocol` pseudo-header (of an extended CONNECT) is `protocol`.
    fn check(head: Request<()>, protocol: Option<&hyper::ext::Protocol>) -> Result<Self, Refusal> {
        let kind = kind_of(&head, protocol)?;
        validate_request_as(kind, &head).map_err(|e| Refusal::for_error(kind, e))?;
        Ok(UpgradeRequest { kind, head })
    }

    /// The acceptor's decision on the request: its refusals (a shutdown under way, the origin
    /// check), then its `on_request` callback, made before `deadline`.
    pub(crate) async fn decide(
        &self,
        acceptor: &Acceptor,
        deadline: tokio::time::Instant,
    ) -> Result<Decision, Refusal> {
        if let Some(reject) = acceptor.refusal(&self.head) {
            return Ok(Err(reject));
        }
        acceptor.decide(&self.head, deadline).await.map_err(|e| {
            let reject = Reject::new(StatusCode::SERVICE_UNAVAILABLE).body("no decision in time");
            Refusal::new(self.kind, &reject, e)
        })
    }

    /// The request's head: what the acceptor decides on.
    #[cfg(feature = "axum")]
    pub(crate) fn request(&self) -> &Request<()> {
        &self.head
    }

    /// How the request asked for a WebSocket.
    #[cfg(feature = "axum")]
    pub(crate) fn kind(&self) -> UpgradeKind {
        self.kind
    }

    /// Answers the request with `decision`, with `acceptor`'s settings: the response to send
    /// and the future of the connection `on_upgrade` hands over.
    pub(crate) fn answer(
        self,
        decision: Decision,
        acceptor: &Acceptor,
        on_upgrade: hyper::upgrade::OnUpgrade,
    ) -> Result<(Response<Full<Bytes>>, UpgradeFuture), Refusal> {
        let accept: Accept = match decision {
            Ok(accept) => accept,
            Err(reject) => {
                let status = reject.status();
                let error = HandshakeError::Rejected { status }.into();
                return Err(Refusal::new(self.kind, &reject, error));
            }
        };
        let config = acceptor.settings();
        // Checked before anything is accepted, as the raw path does: after a `101` it would be
        // too late to say no.
        config.validate().map_err(|e| {
            let reject = Reject::new(StatusCode::INTERNAL_SERVER_ERROR);
            Refusal::new(self.kind, &reject, e)
        })?;
        let (response, negotiated) = accept_answer(self.kind, &accept, &self.head, config)
            .map_err(|(reject, e)| Refusal::new(self.kind, &reject, e.into()))?;
        let response = response.map(|()| Full::new(Bytes::new()));
        let shutdown = acceptor.registry().cloned();
        let websocket =
            UpgradeFuture::new(on_upgrade, config.clone(), negotiated, self.head, shutdown);
        Ok((response, websocket))
    }
}

/// A request head with these parts and no body.
fn head_of(
    method: &Method,
    uri: &http::Uri,
    version: Version,
    headers: &http::HeaderMap,
) -> Request<()> {
    let mut head = Request::new(());
    *head.method_mut() = method.clone();
    *head.uri_mut() = uri.clone();
    *head.version_mut() = version;
    *head.headers_mut() = headers.clone();
    head
}

/// The `:protocol` of an extended CONNECT, which hyper's HTTP/2 server puts in the request's
/// extensions.
fn connect_protocol(extensions: &http::Extensions) -> Option<&hyper::ext::Protocol> {
    extensions.get::<hyper::ext::Protocol>()
}

/// Whether a `:protocol` names WebSocket (RFC 8441 §4 registers `websocket`; protocol names
/// are tokens, compared here ignoring ASCII case as browsers' are).
fn is_websocket(protocol: &hyper::ext::Protocol) -> bool {
    protocol.as_str().eq_ignore_ascii_case("websocket")
}

/// How `head` asks for a WebSocket: a `CONNECT` is an extended CONNECT, which must name
/// `websocket` as its `:protocol`; anything else is checked as an HTTP/1.1 upgrade (and
/// refused as one: 405 for another method, 400 without `Upgrade`).
fn kind_of(
    head: &Request<()>,
    protocol: Option<&hyper::ext::Protocol>,
) -> Result<UpgradeKind, Refusal> {
    if head.method() != Method::CONNECT {
        return Ok(UpgradeKind::Http11);
    }
    let kind = UpgradeKind::ExtendedConnect;
    match protocol {
        Some(protocol) if is_websocket(protocol) => Ok(kind),
        Some(_) => Err(Refusal::for_error(
            kind,
            HandshakeError::Malformed("the extended CONNECT's :protocol is not websocket".into()),
        )),
        None => Err(Refusal::for_error(
            kind,
            HandshakeError::Malformed("a CONNECT without :protocol is no WebSocket".into()),
        )),
    }
}

/// A refused upgrade: the response that tells the client why, and the error it stands for.
///
/// Send [`response`](Self::response) (or take it with [`into_response`](Self::into_response))
/// as the service's answer; the error is for the server's logs and metrics.
pub struct Refusal(Box<RefusalParts>);

/// What a [`Refusal`] holds, boxed so that the `Result`s that carry one stay small.
struct RefusalParts {
    response: Response<Full<Bytes>>,
    error: Error,
}

impl Refusal {
    /// A refusal that answers `reject`, standing for `error`.
    pub(crate) fn new(kind: UpgradeKind, reject: &Reject, error: Error) -> Self {
        let response = reject.response_as(kind).map(Full::new);
        Refusal(Box::new(RefusalParts { response, error }))
    }

    /// The refusal of a request that failed its checks with `error`.
    fn for_error(kind: UpgradeKind, error: HandshakeError) -> Self {
        Refusal::new(kind, &Reject::for_error(&error), error.into())
    }

    /// The response to send.
    pub fn response(&self) -> &Response<Full<Bytes>> {
        &self.0.response
    }

    /// Why the upgrade was refused.
    pub fn error(&self) -> &Error {
        &self.0.error
    }

    /// The response to send, dropping the error.
    pub fn into_response(self) -> Response<Full<Bytes>> {
        self.0.response
    }

    /// The response to send and the error.
    pub fn into_parts(self) -> (Response<Full<Bytes>>, Error) {
        let RefusalParts { response, error } = *self.0;
        (response, error)
    }
}

impl fmt::Debug for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Refusal")
            .field("status", &self.0.response.status())
            .field("headers", self.0.response.headers())
            .field("error", &self.0.error)
            .finish()
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "refused the WebSocket upgrade with {}: {}",
            self.0.response.status(),
            self.0.error
        )
    }
}

impl std::error::Error for Refusal {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0.error)
    }
}
