//! Opening WebSocket connections.
//!
//! [`connect`] takes a `ws://` URL, resolves the host, connects TCP and performs the handshake;
//! [`connect_on`] performs the handshake over a stream you already have. A [`ClientBuilder`]
//! adds subprotocols, headers and a [`Config`].
//!
//! ```no_run
//! # async fn demo() -> wsio::Result<()> {
//! let (mut ws, response) = wsio::client::ClientBuilder::new()
//!     .subprotocols(["chat.v2", "chat.v1"])
//!     .header(http::header::ORIGIN, http::HeaderValue::from_static("https://example.com"))
//!     .connect("ws://127.0.0.1:9002/chat")
//!     .await?;
//! println!("server chose {:?}", response.headers().get("sec-websocket-protocol"));
//! ws.send_text("hi").await?;
//! # Ok(()) }
//! ```

use std::io;

use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, Uri};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::handshake::client::{set_subprotocols, ClientHandshake};
use crate::rt::handshake;
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

/// Connects to a `ws://` URL with the default [`Config`].
/// Returns the connection and the server's 101 response.
///
/// # Cancel safety
/// Dropping the future abandons the connection attempt; nothing else is affected.
pub async fn connect(
    request: impl IntoClientRequest,
) -> Result<(WebSocket<TcpStream>, Response<()>)> {
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

/// Options for opening a connection.
#[derive(Debug, Clone, Default)]
pub struct ClientBuilder {
    config: Config,
    subprotocols: Vec<String>,
    headers: HeaderMap,
}

/// The host and port a `ws://` or `wss://` URI points to, checked before any I/O.
pub(crate) struct Target {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) secure: bool,
}

pub(crate) fn target_of(uri: &Uri) -> Result<Target> {
    let secure = match uri.scheme_str() {
        Some("ws") | Some("http") => false,
        Some("wss") | Some("https") => true,
        Some(other) => {
            return Err(Error::InvalidUrl(format!(
                "{uri}: scheme {other} is not ws or wss"
            )))
        }
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
    let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
    if port == 0 {
        return Err(Error::InvalidUrl(format!("{uri}: port 0")));
    }
    Ok(Target { host, port, secure })
}

impl ClientBuilder {
    /// Default settings: no subprotocol, no extra headers, default [`Config`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Use `config` for the handshake limits and the connection.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Offer these subprotocols, in order of preference (`Sec-WebSocket-Protocol`).
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

    fn handshake(&self, request: impl IntoClientRequest) -> Result<ClientHandshake> {
        let mut request = request.into_client_request()?;
        for (name, value) in &self.headers {
            request.headers_mut().append(name.clone(), value.clone());
        }
        if !self.subprotocols.is_empty() {
            set_subprotocols(request.headers_mut(), &self.subprotocols)?;
        }
        Ok(ClientHandshake::new(request)?)
    }

    /// Resolves the URL's host, connects TCP (trying each address in turn, with `TCP_NODELAY`)
    /// and performs the handshake.
    ///
    /// # Cancel safety
    /// Dropping the future abandons the connection attempt; nothing else is affected.
    pub async fn connect(
        &self,
        request: impl IntoClientRequest,
    ) -> Result<(WebSocket<TcpStream>, Response<()>)> {
        let request = request.into_client_request()?;
        let target = target_of(request.uri())?;
        if target.secure {
            return Err(Error::InvalidUrl(format!(
                "{}: wss:// needs a TLS transport; connect one and use connect_on",
                request.uri()
            )));
        }
        let handshake = self.handshake(request)?;
        self.config.validate()?;
        let tcp = connect_tcp(&target.host, target.port).await?;
        handshake::client(tcp, handshake, self.config.clone()).await
    }

    /// Performs the handshake over `io`, already connected to the server.
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
        let handshake = self.handshake(request)?;
        handshake::client(io, handshake, self.config.clone()).await
    }
}

/// Connects to the first address of `host` that answers.
async fn connect_tcp(host: &str, port: u16) -> Result<TcpStream> {
    let mut last_error = None;
    for addr in tokio::net::lookup_host((host, port)).await? {
        match TcpStream::connect(addr).await {
            Ok(tcp) => {
                tcp.set_nodelay(true)?;
                return Ok(tcp);
            }
            Err(e) => last_error = Some(e),
        }
    }
    Err(Error::Io(last_error.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("{host} resolved to no address"),
        )
    })))
}
