//! [`ClientBuilder`]: the options of a connection, and `connect` and `connect_on`, which tie
//! the URL, the dialer, the redirects and the handshake together.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use http::header::{AUTHORIZATION, ORIGIN};
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response};
use tokio::io::{AsyncRead, AsyncWrite};

use super::challenge::{into_challenge, Answered, Challenge, Hook};
use super::dial::{Dialer, Proxies};
use super::proxy::Proxy;
use super::proxy_env::ProxyEnv;
use super::redirect::{Credentials, Redirects};
use super::url::{split_userinfo, IntoClientRequest, Target};
use crate::config::Config;
use crate::error::{Error, HandshakeError, Result};
use crate::handshake::client::{set_subprotocols, ClientHandshake};
use crate::rt::handshake::{self, deadline_after};
#[cfg(feature = "tls")]
use crate::tls::CertificateDer;
use crate::transport::MaybeTlsStream;
use crate::WebSocket;

type EditRequest = dyn Fn(&mut Request<()>) + Send + Sync;

/// Options for opening a connection. Cheap to clone; one builder can open many connections.
#[derive(Clone)]
pub struct ClientBuilder {
    pub(super) config: Config,
    subprotocols: Vec<String>,
    headers: HeaderMap,
    origin: Option<String>,
    edit_request: Option<Arc<EditRequest>>,
    max_redirects: usize,
    auth_challenge: Option<Hook>,
    pub(super) dial: Dialer,
}

impl Default for ClientBuilder {
    fn default() -> Self {
        ClientBuilder {
            config: Config::default(),
            subprotocols: Vec::new(),
            headers: HeaderMap::new(),
            origin: None,
            edit_request: None,
            max_redirects: 0,
            auth_challenge: None,
            dial: Dialer::default(),
        }
    }
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("ClientBuilder");
        debug
            .field("config", &self.config)
            .field("subprotocols", &self.subprotocols)
            .field("headers", &self.headers)
            .field("origin", &self.origin)
            .field("edit_request", &self.edit_request.is_some())
            .field("max_redirects", &self.max_redirects)
            .field("on_auth_challenge", &self.auth_challenge.is_some())
            .field("connect_timeout", &self.dial.connect_timeout)
            .field("connect_attempt_timeout", &self.dial.attempt_timeout)
            .field("nodelay", &self.dial.nodelay)
            .field("unsent_limit", &self.dial.unsent_limit);
        #[cfg(feature = "tls")]
        debug
            .field("tls_config", &self.dial.tls_config.is_some())
            .field("root_certificates", &self.dial.root_certificates.len());
        debug.field("proxy", &self.dial.proxy).finish()
    }
}

impl ClientBuilder {
    /// Default settings: no subprotocol, no extra headers, no redirects, a 60 s connect timeout,
    /// `TCP_NODELAY`, the Mozilla roots for `wss://`, default [`Config`] (whose
    /// [`handshake_timeout`](Config::handshake_timeout) bounds the handshake).
    pub fn new() -> Self {
        Self::default()
    }

    /// Use `config` for the handshake limits and timeout, and for the connection.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Offer these subprotocols, in order of preference (`Sec-WebSocket-Protocol`). The one the
    /// server chose is in the response's `Sec-WebSocket-Protocol` header; a server that chooses
    /// one not offered fails the handshake.
    pub fn subprotocols<I, P>(mut self, protocols: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: Into<String>,
    {
        self.subprotocols = protocols.into_iter().map(Into::into).collect();
        self
    }

    /// Send this header with the request (added to those of a request passed to `connect`).
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.append(name, value);
        self
    }

    /// Send `Origin: origin` (e.g. `"https://example.com"`), as a browser does; servers that
    /// check origins need it. Replaces an `Origin` the request has. An origin that is not a valid
    /// header value fails `connect` before any I/O.
    pub fn origin(mut self, origin: impl Into<String>) -> Self {
        self.origin = Some(origin.into());
        self
    }

    /// Call `edit` with each request just before it is sent (once per redirect followed), to
    /// add cookies, tokens or anything else. It sees the request with the builder's headers,
    /// `Origin`, subprotocols and `Authorization` already set, and the user info removed from
    /// the URI; the handshake headers it has not set (`Host`, `Upgrade`, `Connection`,
    /// `Sec-WebSocket-Key`, `Sec-WebSocket-Version`) are added after it, and what it sets is
    /// checked as in [`ClientHandshake::new`].
    pub fn edit_request<F>(mut self, edit: F) -> Self
    where
        F: Fn(&mut Request<()>) + Send + Sync + 'static,
    {
        self.edit_request = Some(Arc::new(edit));
        self
    }

    /// Follow up to `count` redirects (`301`, `302`, `303`, `307`, `308` with a `Location`).
    /// A relative location is resolved against the URL requested; `http` and `https` locations
    /// become `ws` and `wss`. Following fails with
    /// [`HandshakeError::InvalidRedirect`] for a redirect from `wss` to `ws` (a downgrade), a
    /// URL already visited (a loop), one more than `count` redirects, or a location that is not
    /// a `ws`, `wss`, `http` or `https` URL.
    ///
    /// A redirect to another host or port does not carry `Authorization`, `Proxy-Authorization`
    /// or `Cookie` headers of the request or the builder (credentials in the new URL's user info,
    /// and what [`edit_request`](Self::edit_request) adds, are still sent).
    ///
    /// Only [`connect`](Self::connect) follows redirects. Default: 0, a redirect is returned as
    /// [`HandshakeError::Refused`] (kind [`HandshakeRefused`](crate::ErrorKind::HandshakeRefused))
    /// with its `Location` header.
    pub fn max_redirects(mut self, count: usize) -> Self {
        self.max_redirects = count;
        self
    }

    /// Answer a server that refuses the upgrade with `401 Unauthorized`: `answer` is called
    /// with the [`Challenge`] (its `WWW-Authenticate`, `Set-Cookie` and the rest of the
    /// refusal) and returns the future of the headers to send the request once more with (an
    /// `Authorization: Bearer` token just fetched, a Digest response, a cookie), or of `None`
    /// to give up, which returns the refusal as the error. Take from the challenge what the
    /// future needs first (it must not borrow it):
    ///
    /// ```no_run
    /// use http::{header::AUTHORIZATION, HeaderMap, HeaderValue};
    /// # async fn fetch_token(_: &str) -> Option<String> { None }
    /// # async fn demo() -> wsio::Result<()> {
    /// let client = wsio::ClientBuilder::new().on_auth_challenge(|challenge| {
    ///     let bearer = challenge.www_authenticate().any(|c| c.starts_with("Bearer"));
    ///     let url = challenge.uri().to_string();
    ///     async move {
    ///         let token = fetch_token(&url).await.filter(|_| bearer)?;
    ///         let mut headers = HeaderMap::new();
    ///         headers.insert(AUTHORIZATION, HeaderValue::try_from(format!("Bearer {token}")).ok()?);
    ///         Some(headers)
    ///     }
    /// });
    /// let (ws, _) = client.connect("wss://example.com/chat").await?;
    /// # Ok(()) }
    /// ```
    ///
    /// The retry is one more request on a new connection, made at most once per
    /// [`connect`](Self::connect), beside the redirects (a connection makes at most
    /// `max_redirects + 2` requests). Its headers replace those of the same name and go only to
    /// the host and port that asked for them, not to one a later redirect leads to. A second
    /// refusal is returned as the error it is. [`connect_on`](Self::connect_on), which has one
    /// stream and cannot dial again, does not call the hook.
    pub fn on_auth_challenge<F, Fut>(mut self, answer: F) -> Self
    where
        F: Fn(&Challenge) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Option<HeaderMap>> + Send + 'static,
    {
        self.auth_challenge = Some(Arc::new(move |challenge| Box::pin(answer(challenge))));
        self
    }

    /// How long [`connect`](Self::connect) may take to resolve the host, connect TCP and finish
    /// the TLS handshake (through a [`proxy`](Self::proxy), the proxy leg too), in total; past it, it fails with [`Error::Timeout`] of
    /// [`Timeout::Connect`](crate::error::Timeout::Connect). The WebSocket handshake that follows has its own
    /// [`Config::handshake_timeout`]. Default: 60 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.dial.connect_timeout = timeout;
        self
    }

    /// How long one TCP connection attempt may take before [`connect`](Self::connect) tries the
    /// host's next address (within [`connect_timeout`](Self::connect_timeout)). Default: the time
    /// left split evenly among the addresses left, but at least 2 s each (as Go's dialer does), so
    /// that an unreachable first address does not use up all the time.
    pub fn connect_attempt_timeout(mut self, timeout: Duration) -> Self {
        self.dial.attempt_timeout = Some(timeout);
        self
    }

    /// Set `TCP_NODELAY` on the connection (disable Nagle's algorithm), so that small messages
    /// leave at once. Default: `true`.
    pub fn nodelay(mut self, nodelay: bool) -> Self {
        self.dial.nodelay = nodelay;
        self
    }

    /// At most this many bytes not yet sent may wait in the OS for the TCP connection, or no
    /// limit with `None`; see [`transport::limit_unsent`](crate::transport::limit_unsent) for
    /// why (pongs, closes and keepalive pings stay prompt during an upload on a slow link).
    /// Linux and Android; elsewhere it has no effect. Default:
    /// [`DEFAULT_UNSENT_LIMIT`](crate::transport::DEFAULT_UNSENT_LIMIT), 128 KiB.
    pub fn unsent_limit(mut self, bytes: Option<u32>) -> Self {
        self.dial.unsent_limit = bytes;
        self
    }

    /// Use this rustls config for `wss://`, instead of the default one (the default root store, ALPN
    /// `http/1.1`, see [`tls::client_config`](crate::tls::client_config)). It overrides every TLS default and
    /// [`add_root_certificate`](Self::add_root_certificate): it is used as it is, so set its
    /// `alpn_protocols` if you want ALPN. Use it for a private CA only, the OS trust store
    /// (`rustls-platform-verifier`), client certificates or a different crypto provider.
    #[cfg(feature = "tls")]
    pub fn tls_config(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        self.dial.tls_config = Some(config);
        self
    }

    /// Trust `certificate` (DER) as a root for `wss://`, in addition to the default root store
    /// ([`tls::default_root_store`](crate::tls::default_root_store)): for a
    /// private CA, or a self-signed server. An unusable certificate fails `connect` with
    /// [`Error::Tls`].
    #[cfg(feature = "tls")]
    pub fn add_root_certificate(mut self, certificate: CertificateDer<'static>) -> Self {
        self.dial.root_certificates.push(certificate);
        self
    }

    /// Connect through `proxy` (an `http://`, `https://`, `socks5://` or `socks5h://` proxy; see
    /// [`Proxy`]), whatever the URL: TCP goes to the proxy (with [`nodelay`](Self::nodelay) and
    /// [`unsent_limit`](Self::unsent_limit) set on that socket), the tunnel to the server's host
    /// and port is opened, and `wss://` runs its TLS with the server inside the tunnel. The
    /// [`connect_timeout`](Self::connect_timeout) covers the whole proxy leg: TCP to the proxy,
    /// TLS to an `https://` proxy (verified with the builder's roots, or its
    /// [`tls_config`](Self::tls_config), against the proxy's name; the
    /// [`client_identity`](Self::client_identity) is for the server only), and the `CONNECT` or
    /// SOCKS5 exchange.
    ///
    /// The proxy's credentials go to the proxy only, on every connection (redirects included),
    /// never to the server. A proxy's refusal is [`Error::Proxy`] (kind
    /// [`Proxy`](crate::ErrorKind::Proxy)) with the proxy's status or SOCKS5 reply code, never
    /// taken for the server's answer.
    ///
    /// ```no_run
    /// # async fn demo() -> wsio::Result<()> {
    /// use wsio::client::Proxy;
    ///
    /// let client = wsio::ClientBuilder::new()
    ///     .proxy(Proxy::new("http://user:password@proxy.corp.example:3128")?);
    /// match client.connect("wss://example.com/chat").await {
    ///     Ok((ws, _response)) => drop(ws),
    ///     Err(wsio::Error::Proxy(refusal)) => {
    ///         eprintln!("{} said {:?}", refusal.proxy(), refusal.status()); // Some(407)...
    ///     }
    ///     Err(other) => return Err(other),
    /// }
    /// # Ok(()) }
    /// ```
    pub fn proxy(mut self, proxy: Proxy) -> Self {
        self.dial.proxy = Proxies::All(proxy);
        self
    }

    /// Connect directly, without a proxy (the default; undoes [`proxy`](Self::proxy) and
    /// [`proxy_env`](Self::proxy_env)).
    pub fn no_proxy(mut self) -> Self {
        self.dial.proxy = Proxies::None;
        self
    }

    /// Choose the proxy of each connection as `env` says (`HTTPS_PROXY` for `wss://`,
    /// `HTTP_PROXY` for `ws://`, `ALL_PROXY`, `NO_PROXY`: see [`ProxyEnv`]), including for each
    /// redirect followed.
    pub fn proxy_env(mut self, env: ProxyEnv) -> Self {
        self.dial.proxy = Proxies::Env(Box::new(env));
        self
    }

    /// [`proxy_env`](Self::proxy_env) of the process's environment, read now
    /// ([`ProxyEnv::from_env`]). Opt-in: without it, the environment is never read.
    pub fn proxy_from_env(self) -> Self {
        self.proxy_env(ProxyEnv::from_env())
    }

    /// Present `identity` (a certificate chain and its key) when a `wss://` server asks for a
    /// client certificate (mutual TLS). A server that requires one refuses the connection
    /// without it: the handshake then fails with [`Error::Tls`] (the server's alert, e.g.
    /// "certificate required"). Ignored when [`tls_config`](Self::tls_config) is set (give that
    /// config its own client certificate).
    ///
    /// ```no_run
    /// # async fn demo() -> wsio::Result<()> {
    /// let identity = wsio::tls::Identity::from_pem(
    ///     &std::fs::read("client-chain.pem")?,
    ///     &std::fs::read("client-key.pem")?,
    /// )?;
    /// let (ws, _) = wsio::ClientBuilder::new()
    ///     .client_identity(identity)
    ///     .connect("wss://internal.example.com/feed")
    ///     .await?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "tls")]
    pub fn client_identity(mut self, identity: crate::tls::Identity) -> Self {
        self.dial.identity = Some(identity);
        self
    }

    /// Completes `request` with the builder's settings into an HTTP/1.1 upgrade; `credentials`
    /// says whether the credential headers it carries (its own and the builder's) may be sent.
    fn handshake(
        &self,
        request: Request<()>,
        credentials: Credentials,
        answered: Option<(&Answered, &Target)>,
    ) -> Result<ClientHandshake> {
        let request = self.with_settings(request, credentials, answered)?;
        Ok(ClientHandshake::new(request)?.offer_deflate(self.deflate_offer())?)
    }

    /// The permessage-deflate parameters to offer, from the [`Config`]'s compression.
    pub(super) fn deflate_offer(&self) -> Option<crate::handshake::DeflateParams> {
        self.config
            .get_compression()
            .map(|c| c.params(crate::proto::Role::Client))
    }

    /// `request` with what the builder adds to every request, whatever HTTP version carries
    /// it: its headers, `Origin`, subprotocols, the credentials `credentials` allows (user info
    /// as `Authorization: Basic`) and an answered challenge's headers, then the
    /// [`edit_request`](Self::edit_request) hook's changes.
    pub(super) fn with_settings(
        &self,
        mut request: Request<()>,
        credentials: Credentials,
        answered: Option<(&Answered, &Target)>,
    ) -> Result<Request<()>> {
        for (name, value) in &self.headers {
            request.headers_mut().append(name.clone(), value.clone());
        }
        if let Some(origin) = &self.origin {
            let value = HeaderValue::try_from(origin.as_str()).map_err(|_| {
                HandshakeError::InvalidHeader {
                    name: "Origin",
                    reason: "the value is not a valid header value",
                }
            })?;
            request.headers_mut().insert(ORIGIN, value);
        }
        if !self.subprotocols.is_empty() {
            set_subprotocols(request.headers_mut(), &self.subprotocols)?;
        }
        credentials.apply(request.headers_mut());
        let (uri, userinfo) = split_userinfo(request.uri())?;
        *request.uri_mut() = uri;
        if let Some(credentials) = userinfo {
            if !request.headers().contains_key(AUTHORIZATION) {
                let basic = format!("Basic {}", BASE64.encode(credentials));
                let value = HeaderValue::try_from(basic).map_err(|_| {
                    Error::InvalidUrl("the user info cannot be sent as a header".into())
                })?;
                request.headers_mut().insert(AUTHORIZATION, value);
            }
        }
        if let Some((answered, target)) = answered {
            answered.apply(target, request.headers_mut());
        }
        if let Some(edit) = &self.edit_request {
            edit(&mut request);
        }
        Ok(request)
    }

    /// Resolves the URL's host, connects TCP (trying each address in turn) and, for `wss://`,
    /// TLS, then performs the handshake, following redirects if
    /// [`max_redirects`](Self::max_redirects) allows.
    ///
    /// # Errors
    /// - [`Error::InvalidUrl`] before any I/O: a scheme other than `ws`, `wss`, `http`,
    ///   `https`, no host, port 0 or out of range.
    /// - [`Error::Io`]: the host does not resolve, every address refused; [`Error::Timeout`] of
    ///   [`Timeout::Connect`](crate::error::Timeout::Connect) past [`connect_timeout`](Self::connect_timeout).
    /// - [`Error::Tls`]: the server's certificate did not verify (unknown issuer, expired, not
    ///   for this host...) or the TLS handshake failed.
    /// - [`Error::Timeout`] of [`Timeout::Handshake`](crate::error::Timeout::Handshake) past [`Config::handshake_timeout`];
    ///   [`Error::Handshake`]: the server refused (kind
    ///   [`HandshakeRefused`](crate::ErrorKind::HandshakeRefused), with the status, headers and
    ///   start of the body) or answered wrongly.
    ///
    /// # Cancel safety
    /// Dropping the future abandons the connection attempt; nothing else is affected.
    pub async fn connect(
        &self,
        request: impl IntoClientRequest,
    ) -> Result<(WebSocket<MaybeTlsStream>, Response<()>)> {
        self.config.validate()?;
        let mut request = request.into_client_request()?;
        let mut redirects = Redirects::new(self.max_redirects, Target::of(request.uri())?);
        let mut tls_config = None;
        let mut answered: Option<Answered> = None;
        loop {
            let target = Target::of(request.uri())?;
            let tls = self.dial.tls_for(&target, &mut tls_config)?;
            let credentials = redirects.credentials_for(&target);
            let answer = answered.as_ref().map(|a| (a, &target));
            let handshake = self.handshake(request.clone(), credentials, answer)?;
            let uri = handshake.request().uri().clone();
            let io = self.dial.open(&target, tls).await?;
            let deadline = deadline_after(self.config.get_handshake_timeout());
            let error = match handshake::client(io, handshake, self.config.clone(), deadline).await
            {
                Ok(done) => {
                    crate::trace::dialed(done.0.span(), done.0.get_ref());
                    return Ok(done);
                }
                Err(error) => error,
            };
            let error = match (&self.auth_challenge, &answered) {
                (Some(hook), None) => match into_challenge(error, &uri) {
                    Ok(challenge) => match hook(&challenge).await {
                        Some(headers) => {
                            answered = Some(Answered { target, headers });
                            continue;
                        }
                        None => return Err(challenge.into_error()),
                    },
                    Err(error) => error,
                },
                _ => error,
            };
            redirects.follow(&mut request, &target, error)?;
        }
    }

    /// Performs the handshake over `io`, already connected to the server (TLS included, if
    /// any), with the builder's headers, subprotocols, `Origin`, credentials, request hook and
    /// [`Config::handshake_timeout`]. Redirects are not followed: they are returned as
    /// [`HandshakeError::Refused`].
    ///
    /// # Cancel safety
    /// Dropping the future drops `io` mid-handshake; nothing else is affected.
    pub async fn connect_on<S>(
        &self,
        io: S,
        request: impl IntoClientRequest,
    ) -> Result<(WebSocket<S>, Response<()>)>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let handshake = self.handshake(request.into_client_request()?, Credentials::Keep, None)?;
        let deadline = deadline_after(self.config.get_handshake_timeout());
        handshake::client(io, handshake, self.config.clone(), deadline).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use http::header::COOKIE;

    fn request(uri: &str) -> Request<()> {
        let uri: http::Uri = uri.parse().unwrap();
        uri.into_client_request().unwrap()
    }

    #[test]
    fn handshake_request_carries_builder_settings() {
        let builder = ClientBuilder::new()
            .subprotocols(["v2", "v1"])
            .origin("https://example.com")
            .header(
                HeaderName::from_static("x-extra"),
                HeaderValue::from_static("1"),
            )
            .edit_request(|request| {
                request
                    .headers_mut()
                    .insert(COOKIE, HeaderValue::from_static("a=b"));
            });
        let hs = builder
            .handshake(request("ws://user:pw@h:1/p"), Credentials::Keep, None)
            .unwrap();
        let headers = hs.request().headers();
        assert_eq!(headers["origin"], "https://example.com");
        assert_eq!(headers["x-extra"], "1");
        assert_eq!(headers["cookie"], "a=b");
        assert_eq!(headers["sec-websocket-protocol"], "v2, v1");
        assert_eq!(headers["authorization"], "Basic dXNlcjpwdw==");
        assert_eq!(headers["host"], "h:1");
        assert_eq!(hs.request().uri(), "ws://h:1/p");

        // Crossing to another host drops carried credentials; the hook can add them back.
        let carried = Request::builder()
            .uri("ws://h/")
            .header(AUTHORIZATION, "Bearer t")
            .header(COOKIE, "x=y")
            .body(())
            .unwrap();
        let hs = ClientBuilder::new()
            .handshake(carried, Credentials::Strip, None)
            .unwrap();
        assert!(!hs.request().headers().contains_key(AUTHORIZATION));
        assert!(!hs.request().headers().contains_key(COOKIE));

        let e = ClientBuilder::new()
            .origin("bad\norigin")
            .handshake(request("ws://h/"), Credentials::Keep, None)
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Handshake);
    }

    #[test]
    fn user_info_in_a_stripped_request_is_still_sent() {
        let hs = ClientBuilder::new()
            .header(AUTHORIZATION, HeaderValue::from_static("Bearer old"))
            .handshake(request("ws://new:pw@other/"), Credentials::Strip, None)
            .unwrap();
        assert_eq!(hs.request().headers()[AUTHORIZATION], "Basic bmV3OnB3");
    }
}
