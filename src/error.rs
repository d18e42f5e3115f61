//! The crate's error type.

use std::{fmt, io};

pub use crate::handshake::HandshakeError;
pub use crate::proto::error::{CapacityError, FailReason, ProtocolError, UsageError};

use crate::proto::close::{CloseCode, CloseFrame};
use crate::proto::connection::SendError;
use crate::proto::message::Message;
use crate::proto::Expired;

/// A `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong. Match on [`Error::kind`] to branch; the variants carry detail.
///
/// A normal close is not an error: `recv` yields the close frame and then `None`.
#[non_exhaustive]
#[derive(Debug)]
pub enum Error {
    /// The underlying transport failed, or the peer vanished without a closing handshake.
    Io(io::Error),
    /// The peer broke RFC 6455; the connection was failed with [`ProtocolError::close_code`].
    Protocol(ProtocolError),
    /// The peer exceeded a configured size limit; the connection was failed with 1009.
    Capacity(CapacityError),
    /// The opening handshake failed or was refused.
    Handshake(Box<HandshakeError>),
    /// The connection is closed (or closing): nothing more can be sent.
    Closed,
    /// The peer closed the connection (its close frame, when it had a code): nothing more can
    /// be sent. Its close was answered.
    PeerClosed(Option<CloseFrame>),
    /// An operation did not finish in time.
    Timeout(Timeout),
    /// The URL cannot be used to open a WebSocket.
    InvalidUrl(String),
    /// The caller asked for something the protocol forbids; nothing was sent.
    Usage(UsageError),
    /// A configuration value is out of range.
    InvalidConfig(&'static str),
    /// A value could not be encoded into a message by a typed send (`send_json`,
    /// `send_with_codec`): nothing was sent, and the connection is as it was.
    Encode(EncodeError),
    /// A received message could not be decoded into the type asked for by a typed receive
    /// (`recv_json`, `recv_with_codec`). Not a protocol violation: the connection stays open and
    /// the next receive gets the next message. The error holds the message and the format's
    /// error.
    Decode(Box<DecodeError>),
    /// TLS failed: the peer's certificate did not verify, the TLS handshake failed, or a
    /// certificate or key could not be loaded; or TLS was needed in a build without it
    /// ([`TlsError::NotCompiled`]).
    Tls(Box<TlsError>),
    /// The proxy, not the server, refused or failed to open the tunnel to the server: an HTTP
    /// proxy's status (407, 403, 502...) or a SOCKS5 proxy's reply code.
    Proxy(Box<ProxyError>),
}

/// What [`Error::kind`] returns: the category of an error, for callers that branch on it.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Transport I/O.
    Io,
    /// The server answered the handshake with something other than 101.
    HandshakeRefused,
    /// The handshake was malformed or did not validate.
    Handshake,
    /// A protocol violation by the peer (close code 1002).
    Protocol,
    /// Invalid UTF-8 from the peer (close code 1007).
    InvalidUtf8,
    /// A size limit (close code 1009).
    Capacity,
    /// The connection is closed.
    Closed,
    /// A timeout.
    Timeout,
    /// A URL that cannot be used.
    InvalidUrl,
    /// A call the protocol does not allow (bad close code, oversized ping...).
    Usage,
    /// A configuration value out of range.
    InvalidConfig,
    /// A typed send could not encode its value ([`Error::Encode`]).
    Encode,
    /// A typed receive could not decode a message ([`Error::Decode`]); the connection is open.
    Decode,
    /// TLS: certificate verification, the TLS handshake, or loading certificates and keys; or
    /// TLS needed in a build without it.
    Tls,
    /// A proxy refused or failed to open the tunnel to the server.
    Proxy,
}

/// Which deadline passed.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timeout {
    /// The opening handshake.
    Handshake,
    /// The peer did not finish the closing handshake in time.
    Close,
    /// Connecting the transport.
    Connect,
    /// A keepalive ping went unanswered for `Config::pong_timeout`.
    Pong,
    /// Nothing was sent or received for `Config::idle_timeout`.
    Idle,
}

impl fmt::Display for Timeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Timeout::Handshake => "the opening handshake did not finish in time",
            Timeout::Close => "the peer did not finish the closing handshake in time",
            Timeout::Connect => "connecting did not finish in time",
            Timeout::Pong => "the peer did not answer a keepalive ping in time",
            Timeout::Idle => "the connection was idle for too long",
        })
    }
}

/// Why TLS failed. Found in [`Error::Tls`], whose [`kind`](Error::kind) is
/// [`ErrorKind::Tls`].
///
/// The type and [`Error::Tls`] exist in every build, so that code matching on errors compiles
/// with and without the TLS features; only [`Rustls`](Self::Rustls), which holds a rustls
/// type, needs them.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq)]
pub enum TlsError {
    /// rustls refused the connection or a configuration: the peer's certificate did not verify
    /// (see [`certificate_error`](Self::certificate_error): unknown issuer, expired, not valid for
    /// the host name...), the peer sent an alert, no protocol version or cipher suite in common,
    /// a private key that does not match its certificate...
    #[cfg(feature = "tls")]
    Rustls(rustls::Error),
    /// The URL's host cannot be used as a TLS server name.
    InvalidServerName(String),
    /// PEM data could not be read, or holds no certificate or no private key; the text says which.
    Pem(String),
    /// The certificate authorities given to verify client certificates cannot be used (none
    /// given, or none usable); the text says why.
    ClientRoots(String),
    /// The connection needs TLS (a `wss://` URL, or an `https://` proxy) and this build of wsio
    /// has none: its features `ring` and `aws-lc-rs` are both off. Returned before any I/O.
    NotCompiled,
}

#[cfg(feature = "tls")]
impl TlsError {
    /// The reason the peer's certificate was refused, when that is what failed.
    pub fn certificate_error(&self) -> Option<&rustls::CertificateError> {
        match self {
            TlsError::Rustls(rustls::Error::InvalidCertificate(e)) => Some(e),
            _ => None,
        }
    }
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            #[cfg(feature = "tls")]
            TlsError::Rustls(e) => fmt::Display::fmt(e, f),
            TlsError::InvalidServerName(host) => {
                write!(f, "{host:?} is not a valid TLS server name")
            }
            TlsError::Pem(why) => write!(f, "cannot read PEM: {why}"),
            TlsError::ClientRoots(why) => {
                write!(f, "cannot verify client certificates: {why}")
            }
            TlsError::NotCompiled => f.write_str(
                "wss:// and https:// proxies need TLS, which this build of wsio leaves out \
                 (enable its `ring` or `aws-lc-rs` feature)",
            ),
        }
    }
}

impl std::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            #[cfg(feature = "tls")]
            TlsError::Rustls(e) => Some(e),
            _ => None,
        }
    }
}

/// A proxy did not open the tunnel to the server. Found in [`Error::Proxy`], whose
/// [`kind`](Error::kind) is [`ErrorKind::Proxy`]: the refusal came from the proxy, not from the
/// server, which was never reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyError {
    proxy: String,
    target: String,
    failure: ProxyFailure,
}

/// What went wrong with a proxy: see [`ProxyError::failure`].
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyFailure {
    /// An HTTP proxy answered `CONNECT` with this status instead of 2xx: `407 Proxy
    /// Authentication Required` (credentials missing or wrong), `403 Forbidden` (a destination
    /// or port it does not allow), `502 Bad Gateway` (it could not reach the server)...
    Refused(http::StatusCode),
    /// A SOCKS5 proxy answered `CONNECT` with this reply code (RFC 1928 §6): 1 general failure,
    /// 2 not allowed by its rules, 3 network unreachable, 4 host unreachable, 5 connection
    /// refused, 6 TTL expired, 7 command not supported, 8 address type not supported.
    SocksRefused(u8),
    /// A SOCKS5 proxy accepted none of the authentication methods offered: no authentication,
    /// and username/password (RFC 1929) when the proxy URL has credentials.
    SocksNoAcceptableMethod,
    /// A SOCKS5 proxy refused the username and password (RFC 1929), with this status.
    SocksAuthFailed(u8),
    /// The proxy's answer broke its protocol (not HTTP, a header too long, a wrong SOCKS
    /// version, data after the answer...); the text says how.
    Malformed(&'static str),
    /// The proxy closed the connection before it answered.
    Closed,
}

impl ProxyError {
    pub(crate) fn new(proxy: String, target: String, failure: ProxyFailure) -> ProxyError {
        ProxyError {
            proxy,
            target,
            failure,
        }
    }

    /// The proxy, as a URL without credentials (`http://proxy.example:3128`).
    pub fn proxy(&self) -> &str {
        &self.proxy
    }

    /// The `host:port` the proxy was asked to connect to.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// What went wrong.
    pub fn failure(&self) -> &ProxyFailure {
        &self.failure
    }

    /// The status of an HTTP proxy's refusal ([`ProxyFailure::Refused`]).
    pub fn status(&self) -> Option<http::StatusCode> {
        match self.failure {
            ProxyFailure::Refused(status) => Some(status),
            _ => None,
        }
    }

    /// The reply code of a SOCKS5 proxy's refusal ([`ProxyFailure::SocksRefused`]).
    pub fn socks_reply(&self) -> Option<u8> {
        match self.failure {
            ProxyFailure::SocksRefused(code) => Some(code),
            _ => None,
        }
    }
}

impl fmt::Display for ProxyFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProxyFailure::Refused(status) => write!(f, "it answered CONNECT with {status}"),
            ProxyFailure::SocksRefused(code) => {
                let meaning = match code {
                    1 => "general failure",
                    2 => "connection not allowed by ruleset",
                    3 => "network unreachable",
                    4 => "host unreachable",
                    5 => "connection refused",
                    6 => "TTL expired",
                    7 => "command not supported",
                    8 => "address type not supported",
                    _ => "unassigned code",
                };
                write!(f, "it replied {code} ({meaning}) to SOCKS5 CONNECT")
            }
            ProxyFailure::SocksNoAcceptableMethod => {
                f.write_str("it accepted none of the SOCKS5 authentication methods offered")
            }
            ProxyFailure::SocksAuthFailed(status) => write!(
                f,
                "it refused the SOCKS5 username and password (status {status})"
            ),
            ProxyFailure::Malformed(why) => write!(f, "its answer is malformed: {why}"),
            ProxyFailure::Closed => f.write_str("it closed the connection before answering"),
        }
    }
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the proxy {} did not open a tunnel to {}: {}",
            self.proxy, self.target, self.failure
        )
    }
}

impl std::error::Error for ProxyError {}

impl From<ProxyError> for Error {
    fn from(e: ProxyError) -> Self {
        Error::Proxy(Box::new(e))
    }
}

/// An error from a codec or a serde format, boxed.
type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A value that a typed send could not encode. Found in [`Error::Encode`], whose
/// [`kind`](Error::kind) is [`ErrorKind::Encode`]. Nothing was sent.
///
/// The format's error is its [`source`](std::error::Error::source) (for JSON a
/// `serde_json::Error`: a map with keys that are not strings, a `Serialize` impl that failed).
#[derive(Debug)]
pub struct EncodeError(BoxError);

impl EncodeError {
    // Made by the typed senders and receivers of the `serde` feature only.
    #[cfg_attr(not(feature = "serde"), allow(dead_code))]
    pub(crate) fn new(source: impl Into<BoxError>) -> Self {
        EncodeError(source.into())
    }

    /// The format's error.
    pub fn inner(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.0
    }

    /// The format's error, to downcast (`serde_json::Error` for JSON).
    pub fn into_inner(self) -> BoxError {
        self.0
    }
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot encode the value: {}", self.0)
    }
}

impl std::error::Error for EncodeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

/// A received message that a typed receive could not decode into the type asked for. Found
/// in [`Error::Decode`], whose [`kind`](Error::kind) is [`ErrorKind::Decode`].
///
/// The peer did nothing wrong by the protocol, so the connection stays open and the next
/// receive gets the next message. Nothing received is lost: the error holds the message
/// ([`message`](Self::message), [`into_message`](Self::into_message)), to log it or to decode
/// it some other way, and the format's error ([`inner`](Self::inner), also its
/// [`source`](std::error::Error::source); for JSON a `serde_json::Error` with its line and
/// column, or "expected a text message" for a binary one).
#[derive(Debug)]
pub struct DecodeError {
    message: Message,
    source: BoxError,
}

impl DecodeError {
    // Made by the typed senders and receivers of the `serde` feature only.
    #[cfg_attr(not(feature = "serde"), allow(dead_code))]
    pub(crate) fn new(message: Message, source: impl Into<BoxError>) -> Self {
        DecodeError {
            message,
            source: source.into(),
        }
    }

    /// The message that did not decode.
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// The message that did not decode, handed back.
    pub fn into_message(self) -> Message {
        self.message
    }

    /// The format's error.
    pub fn inner(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.source
    }

    /// The message and the format's error (to downcast: `serde_json::Error` for JSON).
    pub fn into_parts(self) -> (Message, BoxError) {
        (self.message, self.source)
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.message {
            Message::Text(_) => "text",
            Message::Binary(_) => "binary",
            _ => "control",
        };
        write!(
            f,
            "cannot decode a {kind} message of {} bytes: {}",
            self.message.len(),
            self.source
        )
    }
}

impl std::error::Error for DecodeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}

impl Error {
    /// The category of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Io(_) => ErrorKind::Io,
            Error::Protocol(ProtocolError::InvalidUtf8) => ErrorKind::InvalidUtf8,
            Error::Protocol(_) => ErrorKind::Protocol,
            Error::Capacity(_) => ErrorKind::Capacity,
            Error::Handshake(h) if matches!(**h, HandshakeError::Refused(_)) => {
                ErrorKind::HandshakeRefused
            }
            Error::Handshake(_) => ErrorKind::Handshake,
            Error::Closed | Error::PeerClosed(_) => ErrorKind::Closed,
            Error::Timeout(_) => ErrorKind::Timeout,
            Error::InvalidUrl(_) => ErrorKind::InvalidUrl,
            Error::Usage(_) => ErrorKind::Usage,
            Error::InvalidConfig(_) => ErrorKind::InvalidConfig,
            Error::Encode(_) => ErrorKind::Encode,
            Error::Decode(_) => ErrorKind::Decode,
            Error::Tls(_) => ErrorKind::Tls,
            Error::Proxy(_) => ErrorKind::Proxy,
        }
    }

    /// The close code sent to the peer because of this error, when it failed the connection.
    pub fn close_code(&self) -> Option<CloseCode> {
        match self {
            Error::Protocol(e) => Some(e.close_code()),
            Error::Capacity(e) => Some(e.close_code()),
            _ => None,
        }
    }

    pub(crate) fn abnormal_closure() -> Error {
        Error::Io(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed without a closing handshake",
        ))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(e) => write!(f, "I/O error: {e}"),
            Error::Protocol(e) => write!(f, "protocol error: {e}"),
            Error::Capacity(e) => write!(f, "limit exceeded: {e}"),
            Error::Handshake(e) => write!(f, "handshake failed: {e}"),
            Error::Closed => f.write_str("connection closed"),
            Error::PeerClosed(Some(frame)) => write!(f, "the peer closed the connection: {frame}"),
            Error::PeerClosed(None) => f.write_str("the peer closed the connection"),
            Error::Timeout(which) => write!(f, "timed out: {which}"),
            Error::InvalidUrl(why) => write!(f, "invalid WebSocket URL: {why}"),
            Error::Usage(e) => write!(f, "invalid call: {e}"),
            Error::InvalidConfig(why) => write!(f, "invalid configuration: {why}"),
            Error::Encode(e) => fmt::Display::fmt(e, f),
            Error::Decode(e) => fmt::Display::fmt(e, f),
            Error::Tls(e) => write!(f, "TLS error: {e}"),
            Error::Proxy(e) => write!(f, "proxy error: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            Error::Protocol(e) => Some(e),
            Error::Capacity(e) => Some(e),
            Error::Handshake(e) => Some(&**e),
            Error::Encode(e) => Some(e),
            Error::Decode(e) => Some(&**e),
            Error::Tls(e) => Some(&**e),
            Error::Proxy(e) => Some(&**e),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    /// Transport I/O, except a rustls error travelling inside the `io::Error` (tokio-rustls
    /// reports TLS failures so, also after the TLS handshake: a TLS 1.3 client learns that the
    /// server refused its certificate when it reads the upgrade response), which is
    /// [`Error::Tls`].
    fn from(e: io::Error) -> Self {
        #[cfg(feature = "tls")]
        if e.get_ref().is_some_and(|inner| inner.is::<rustls::Error>()) {
            return match e
                .into_inner()
                .map(|inner| inner.downcast::<rustls::Error>())
            {
                Some(Ok(rustls)) => (*rustls).into(),
                // Unreachable after the check above; keep the error rather than panic.
                Some(Err(inner)) => Error::Io(io::Error::new(io::ErrorKind::InvalidData, inner)),
                None => Error::Io(io::Error::from(io::ErrorKind::InvalidData)),
            };
        }
        Error::Io(e)
    }
}

impl From<ProtocolError> for Error {
    fn from(e: ProtocolError) -> Self {
        Error::Protocol(e)
    }
}

impl From<CapacityError> for Error {
    fn from(e: CapacityError) -> Self {
        Error::Capacity(e)
    }
}

impl From<FailReason> for Error {
    fn from(e: FailReason) -> Self {
        match e {
            FailReason::Protocol(p) => Error::Protocol(p),
            FailReason::Capacity(c) => Error::Capacity(c),
        }
    }
}

impl From<HandshakeError> for Error {
    fn from(e: HandshakeError) -> Self {
        Error::Handshake(Box::new(e))
    }
}

impl From<SendError> for Error {
    fn from(e: SendError) -> Self {
        match e {
            SendError::Usage(usage) => Error::Usage(usage),
            // The compressor's own failure (never the data's): the message could not go.
            SendError::Compression(e) => Error::Io(std::io::Error::other(e)),
            _ => Error::Closed,
        }
    }
}

impl From<Expired> for Timeout {
    fn from(e: Expired) -> Self {
        match e {
            Expired::Close => Timeout::Close,
            Expired::Pong => Timeout::Pong,
            Expired::Idle => Timeout::Idle,
        }
    }
}

impl From<UsageError> for Error {
    fn from(e: UsageError) -> Self {
        Error::Usage(e)
    }
}

impl From<TlsError> for Error {
    fn from(e: TlsError) -> Self {
        Error::Tls(Box::new(e))
    }
}

#[cfg(feature = "tls")]
impl From<rustls::Error> for Error {
    fn from(e: rustls::Error) -> Self {
        TlsError::Rustls(e).into()
    }
}

/// For use inside `AsyncRead`/`AsyncWrite` adapters: the error travels inside an `io::Error`
/// and can be recovered with [`io::Error::into_inner`] and `downcast`.
impl From<Error> for io::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Io(e) => e,
            Error::Timeout(_) => io::Error::new(io::ErrorKind::TimedOut, e),
            Error::Closed | Error::PeerClosed(_) => io::Error::new(io::ErrorKind::BrokenPipe, e),
            Error::Protocol(_) | Error::Capacity(_) | Error::Decode(_) => {
                io::Error::new(io::ErrorKind::InvalidData, e)
            }
            Error::Encode(_) => io::Error::new(io::ErrorKind::InvalidInput, e),
            other => io::Error::other(other),
        }
    }
}
