//! Opening WebSocket connections.
//!
//! [`connect`] takes a `ws://` or `wss://` URL, resolves the host, connects TCP (and TLS) and
//! performs the handshake; [`connect_on`] performs the handshake over a stream you already have.
//! A [`ClientBuilder`] adds subprotocols, headers, `Origin`, a hook that edits the request,
//! redirects, timeouts, TLS roots and a [`Config`].
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
//! Everything that can be checked before any I/O is: a URL that is not `ws`, `wss` (or `http`,
//! `https`, taken as aliases), has no host or a bad port fails at once with
//! [`ErrorKind::InvalidUrl`](crate::ErrorKind::InvalidUrl).

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use http::header::{AUTHORIZATION, COOKIE, HOST, LOCATION, ORIGIN, PROXY_AUTHORIZATION};
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, Uri};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::{timeout, timeout_at, Instant};

use crate::config::Config;
use crate::error::{Error, HandshakeError, Result, Timeout};
use crate::handshake::client::{set_subprotocols, ClientHandshake};
use crate::handshake::Scheme;
use crate::rt::handshake::{self, deadline_after};
use crate::tls::{self, CertificateDer, ServerName};
use crate::transport::MaybeTlsStream;
use crate::WebSocket;

/// What can name the target of a client connection: a URL string, an [`http::Uri`], or a full
/// [`http::Request`] whose headers are sent as they are.
pub trait IntoClientRequest {
    /// Converts into a request (method GET, HTTP/1.1, no body).
    fn into_client_request(self) -> Result<Request<()>>;
}

impl IntoClientRequest for &str {
    fn into_client_request(self) -> Result<Request<()>> {
        let uri: Uri = self
            .parse()
            .map_err(|e| Error::InvalidUrl(format!("{self}: {e}")))?;
        uri.into_client_request()
    }
}

impl IntoClientRequest for String {
    fn into_client_request(self) -> Result<Request<()>> {
        self.as_str().into_client_request()
    }
}

impl IntoClientRequest for &String {
    fn into_client_request(self) -> Result<Request<()>> {
        self.as_str().into_client_request()
    }
}

impl IntoClientRequest for Uri {
    fn into_client_request(self) -> Result<Request<()>> {
        let mut request = Request::new(());
        *request.uri_mut() = self;
        Ok(request)
    }
}

impl IntoClientRequest for Request<()> {
    fn into_client_request(self) -> Result<Request<()>> {
        Ok(self)
    }
}

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

type EditRequest = dyn Fn(&mut Request<()>) + Send + Sync;

/// Options for opening a connection. Cheap to clone; one builder can open many connections.
#[derive(Clone)]
pub struct ClientBuilder {
    config: Config,
    subprotocols: Vec<String>,
    headers: HeaderMap,
    origin: Option<String>,
    edit_request: Option<Arc<EditRequest>>,
    max_redirects: usize,
    connect_timeout: Duration,
    connect_attempt_timeout: Option<Duration>,
    nodelay: bool,
    tls_config: Option<Arc<rustls::ClientConfig>>,
    root_certificates: Vec<CertificateDer<'static>>,
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
            connect_timeout: Duration::from_secs(60),
            connect_attempt_timeout: None,
            nodelay: true,
            tls_config: None,
            root_certificates: Vec::new(),
        }
    }
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("config", &self.config)
            .field("subprotocols", &self.subprotocols)
            .field("headers", &self.headers)
            .field("origin", &self.origin)
            .field("edit_request", &self.edit_request.is_some())
            .field("max_redirects", &self.max_redirects)
            .field("connect_timeout", &self.connect_timeout)
            .field("connect_attempt_timeout", &self.connect_attempt_timeout)
            .field("nodelay", &self.nodelay)
            .field("tls_config", &self.tls_config.is_some())
            .field("root_certificates", &self.root_certificates.len())
            .finish()
    }
}

/// The scheme, host and port a `ws://` or `wss://` URI points to, checked before any I/O.
pub(crate) struct Target {
    pub(crate) scheme: Scheme,
    pub(crate) host: String,
    pub(crate) port: u16,
}

pub(crate) fn target_of(uri: &Uri) -> Result<Target> {
    let scheme = match uri.scheme_str() {
        Some(name) => Scheme::parse(name)
            .ok_or_else(|| Error::InvalidUrl(format!("{uri}: scheme {name} is not ws or wss")))?,
        None => {
            return Err(Error::InvalidUrl(format!(
                "{uri}: no scheme (expected ws:// or wss://)"
            )))
        }
    };
    let host = uri
        .host()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| Error::InvalidUrl(format!("{uri}: no host")))?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = match port_text(uri) {
        None | Some("") => scheme.default_port(),
        Some(text) => match text.parse::<u16>() {
            Ok(port) if port != 0 => port,
            _ => return Err(Error::InvalidUrl(format!("{uri}: bad port {text}"))),
        },
    };
    Ok(Target { scheme, host, port })
}

impl Target {
    /// Whether `other` has the same host (ASCII case ignored) and port: what decides whether
    /// credentials may follow a redirect.
    pub(crate) fn same_origin(&self, other: &Target) -> bool {
        self.host.eq_ignore_ascii_case(&other.host) && self.port == other.port
    }
}

/// The port as written in the URI's authority, if any: `http` accepts and hides ports that do
/// not fit in 16 bits, which must not silently become the default port.
fn port_text(uri: &Uri) -> Option<&str> {
    let authority = uri.authority()?.as_str();
    let host_port = authority
        .rsplit_once('@')
        .map_or(authority, |(_, rest)| rest);
    let after_host = match host_port.strip_prefix('[') {
        Some(bracketed) => bracketed.split_once(']')?.1,
        None => host_port.find(':').map_or("", |colon| &host_port[colon..]),
    };
    after_host.strip_prefix(':')
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

    /// How long [`connect`](Self::connect) may take to resolve the host, connect TCP and finish
    /// the TLS handshake, in total; past it, it fails with [`Error::Timeout`] of
    /// [`Timeout::Connect`]. The WebSocket handshake that follows has its own
    /// [`Config::handshake_timeout`]. Default: 60 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long one TCP connection attempt may take before [`connect`](Self::connect) tries the
    /// host's next address (within [`connect_timeout`](Self::connect_timeout)). Default: the time
    /// left split evenly among the addresses left, but at least 2 s each (as Go's dialer does), so
    /// that an unreachable first address does not use up all the time.
    pub fn connect_attempt_timeout(mut self, timeout: Duration) -> Self {
        self.connect_attempt_timeout = Some(timeout);
        self
    }

    /// Set `TCP_NODELAY` on the connection (disable Nagle's algorithm), so that small messages
    /// leave at once. Default: `true`.
    pub fn nodelay(mut self, nodelay: bool) -> Self {
        self.nodelay = nodelay;
        self
    }

    /// Use this rustls config for `wss://`, instead of the default one (the Mozilla roots, ALPN
    /// `http/1.1`, see [`tls::client_config`]). It overrides every TLS default and
    /// [`add_root_certificate`](Self::add_root_certificate): it is used as it is, so set its
    /// `alpn_protocols` if you want ALPN. Use it for a private CA only, the OS trust store
    /// (`rustls-platform-verifier`), client certificates or a different crypto provider.
    pub fn tls_config(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        self.tls_config = Some(config);
        self
    }

    /// Trust `certificate` (DER) as a root for `wss://`, in addition to the Mozilla roots: for a
    /// private CA, or a self-signed server. An unusable certificate fails `connect` with
    /// [`Error::Tls`].
    pub fn add_root_certificate(mut self, certificate: CertificateDer<'static>) -> Self {
        self.root_certificates.push(certificate);
        self
    }

    /// The rustls config for `wss://`.
    fn client_tls_config(&self) -> Result<Arc<rustls::ClientConfig>> {
        if let Some(config) = &self.tls_config {
            return Ok(config.clone());
        }
        if self.root_certificates.is_empty() {
            return tls::default_client_config();
        }
        let mut roots = tls::default_root_store();
        for certificate in &self.root_certificates {
            roots.add(certificate.clone())?;
        }
        tls::client_config(roots)
    }

    /// Completes `request` with the builder's settings; `strip_credentials` drops credential
    /// headers carried over from another host.
    fn handshake(
        &self,
        mut request: Request<()>,
        strip_credentials: bool,
    ) -> Result<ClientHandshake> {
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
        if strip_credentials {
            for name in [AUTHORIZATION, PROXY_AUTHORIZATION, COOKIE] {
                request.headers_mut().remove(name);
            }
        }
        let (uri, credentials) = split_userinfo(request.uri())?;
        *request.uri_mut() = uri;
        if let Some(credentials) = credentials {
            if !request.headers().contains_key(AUTHORIZATION) {
                let basic = format!("Basic {}", BASE64.encode(credentials));
                let value = HeaderValue::try_from(basic).map_err(|_| {
                    Error::InvalidUrl("the user info cannot be sent as a header".into())
                })?;
                request.headers_mut().insert(AUTHORIZATION, value);
            }
        }
        if let Some(edit) = &self.edit_request {
            edit(&mut request);
        }
        Ok(ClientHandshake::new(request)?)
    }

    /// Resolves the URL's host, connects TCP (trying each address in turn) and, for `wss://`,
    /// TLS, then performs the handshake, following redirects if
    /// [`max_redirects`](Self::max_redirects) allows.
    ///
    /// # Errors
    /// - [`Error::InvalidUrl`] before any I/O: a scheme other than `ws`, `wss`, `http`,
    ///   `https`, no host, port 0 or out of range.
    /// - [`Error::Io`]: the host does not resolve, every address refused; [`Error::Timeout`] of
    ///   [`Timeout::Connect`] past [`connect_timeout`](Self::connect_timeout).
    /// - [`Error::Tls`]: the server's certificate did not verify (unknown issuer, expired, not
    ///   for this host...) or the TLS handshake failed.
    /// - [`Error::Timeout`] of [`Timeout::Handshake`] past [`Config::handshake_timeout`];
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
        let first = target_of(request.uri())?;
        let mut visited: Vec<String> = Vec::new();
        let mut tls_config = None;
        loop {
            let target = target_of(request.uri())?;
            let tls = match target.scheme.is_secure() {
                false => None,
                true => {
                    let config = match &tls_config {
                        Some(config) => Arc::clone(config),
                        None => tls_config.insert(self.client_tls_config()?).clone(),
                    };
                    Some((config, tls::server_name(&target.host)?))
                }
            };
            let strip_credentials = !target.same_origin(&first);
            let handshake = self.handshake(request.clone(), strip_credentials)?;
            let io = self.open(&target, tls).await?;
            let deadline = deadline_after(self.config.get_handshake_timeout());
            let error = match handshake::client(io, handshake, self.config.clone(), deadline).await
            {
                Ok(done) => return Ok(done),
                Err(error) => error,
            };
            let location = match redirect_location(&error) {
                Some(location) if self.max_redirects > 0 => location,
                _ => return Err(error),
            };
            let next = resolve_redirect(request.uri(), target.scheme, location)?;
            visited.push(normalized(request.uri()));
            if visited.contains(&normalized(&next)) {
                return Err(invalid_redirect(location, "redirect loop"));
            }
            if visited.len() > self.max_redirects {
                return Err(invalid_redirect(location, "too many redirects"));
            }
            *request.uri_mut() = next;
            request.headers_mut().remove(HOST);
        }
    }

    /// Resolves, connects TCP and TLS within the connect timeout.
    async fn open(
        &self,
        target: &Target,
        tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
    ) -> Result<MaybeTlsStream> {
        let deadline = deadline_after(self.connect_timeout);
        let open = async {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((target.host.as_str(), target.port))
                    .await?
                    .collect();
            let tcp =
                connect_addrs(&addrs, deadline, self.connect_attempt_timeout, &target.host).await?;
            tcp.set_nodelay(self.nodelay)?;
            Ok(match tls {
                None => MaybeTlsStream::Plain(tcp),
                Some((config, name)) => {
                    MaybeTlsStream::Rustls(Box::new(tls::connect(config, name, tcp).await?))
                }
            })
        };
        timeout_at(deadline, open)
            .await
            .map_err(|_elapsed| Error::Timeout(Timeout::Connect))?
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
        let handshake = self.handshake(request.into_client_request()?, false)?;
        let deadline = deadline_after(self.config.get_handshake_timeout());
        handshake::client(io, handshake, self.config.clone(), deadline).await
    }
}

/// The shortest time an attempt gets when the connect timeout is split among addresses.
const MIN_ATTEMPT: Duration = Duration::from_secs(2);

/// Connects to the first of `addrs` that answers, each attempt bounded by `per_attempt` (or its
/// share of the time left) and all by `deadline`.
async fn connect_addrs(
    addrs: &[SocketAddr],
    deadline: Instant,
    per_attempt: Option<Duration>,
    host: &str,
) -> Result<TcpStream> {
    let mut last_error = None;
    for (i, addr) in addrs.iter().enumerate() {
        let left = deadline.saturating_duration_since(Instant::now());
        let share = left / u32::try_from(addrs.len() - i).unwrap_or(u32::MAX);
        let budget = per_attempt
            .unwrap_or_else(|| share.max(MIN_ATTEMPT))
            .min(left);
        match timeout(budget, TcpStream::connect(addr)).await {
            Ok(Ok(tcp)) => return Ok(tcp),
            Ok(Err(e)) => last_error = Some(Error::Io(e)),
            Err(_elapsed) => last_error = Some(Error::Timeout(Timeout::Connect)),
        }
    }
    Err(last_error.unwrap_or_else(|| {
        Error::Io(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{host} resolved to no address"),
        ))
    }))
}

/// The `Location` of a redirect that may be followed.
fn redirect_location(error: &Error) -> Option<&HeaderValue> {
    let Error::Handshake(handshake) = error else {
        return None;
    };
    let HandshakeError::Refused(response) = &**handshake else {
        return None;
    };
    match response.status() {
        StatusCode::MOVED_PERMANENTLY
        | StatusCode::FOUND
        | StatusCode::SEE_OTHER
        | StatusCode::TEMPORARY_REDIRECT
        | StatusCode::PERMANENT_REDIRECT => response.headers().get(LOCATION),
        _ => None,
    }
}

fn invalid_redirect(location: &HeaderValue, reason: &'static str) -> Error {
    HandshakeError::InvalidRedirect {
        location: String::from_utf8_lossy(location.as_bytes()).into_owned(),
        reason,
    }
    .into()
}

/// The URL a redirect from `current` (of scheme `from`) to `location` leads to, as `ws` or `wss`.
fn resolve_redirect(current: &Uri, from: Scheme, location: &HeaderValue) -> Result<Uri> {
    let invalid = |reason| invalid_redirect(location, reason);
    let text = location
        .to_str()
        .map_err(|_| invalid("the location is not ASCII"))?;
    let base = url::Url::parse(&current.to_string())
        .map_err(|_| invalid("the URL requested cannot be a base"))?;
    let mut next = base
        .join(text)
        .map_err(|_| invalid("the location is not a valid URL"))?;
    next.set_fragment(None);
    let scheme = Scheme::parse(next.scheme())
        .ok_or_else(|| invalid("the location's scheme is not ws, wss, http or https"))?;
    if from.is_secure() && !scheme.is_secure() {
        return Err(invalid("the redirect would downgrade wss to ws"));
    }
    let scheme = scheme.as_str();
    if next.scheme() != scheme && next.set_scheme(scheme).is_err() {
        return Err(invalid("the location's scheme cannot become ws or wss"));
    }
    next.as_str()
        .parse()
        .map_err(|_| invalid("the location is not a valid URI"))
}

/// `uri` as the `url` crate normalizes it, to recognise a URL visited before.
fn normalized(uri: &Uri) -> String {
    let text = uri.to_string();
    url::Url::parse(&text).map(String::from).unwrap_or(text)
}

/// Splits the user info off `uri`: the URI without it, and `user:password` percent-decoded,
/// ready for `Authorization: Basic`.
fn split_userinfo(uri: &Uri) -> Result<(Uri, Option<Vec<u8>>)> {
    let Some((userinfo, host_port)) = uri
        .authority()
        .and_then(|authority| authority.as_str().rsplit_once('@'))
    else {
        return Ok((uri.clone(), None));
    };
    let bad = |what: &str| Error::InvalidUrl(format!("{uri}: {what}"));
    let mut parts = uri.clone().into_parts();
    parts.authority = Some(host_port.parse().map_err(|_| bad("invalid host"))?);
    let stripped = Uri::from_parts(parts).map_err(|_| bad("invalid URI"))?;
    if userinfo.is_empty() {
        return Ok((stripped, None));
    }
    let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
    let mut credentials = percent_decode(user);
    credentials.push(b':');
    credentials.extend(percent_decode(password));
    Ok((stripped, Some(credentials)))
}

/// Decodes `%XX` escapes; a `%` not followed by two hex digits stays as it is.
fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match bytes.get(i + 1..i + 3) {
            Some(&[hi, lo]) if bytes[i] == b'%' => hex(hi).zip(hex(lo)),
            _ => None,
        };
        match escaped {
            Some((hi, lo)) => {
                out.push(hi << 4 | lo);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    out
}

fn hex(digit: u8) -> Option<u8> {
    char::from(digit)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
