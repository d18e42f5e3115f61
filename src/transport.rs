//! The transports a WebSocket runs over, and what they can tell about the connection.
//!
//! [`MaybeTlsStream`] is what [`connect`](crate::connect) returns a WebSocket over: plain TCP for
//! `ws://`, rustls over TCP for `wss://`. [`TransportInfo`] gives addresses and TLS parameters
//! of a transport; a [`WebSocket`](crate::WebSocket) over such a transport offers the same
//! methods.

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

#[cfg(feature = "tls")]
use rustls::pki_types::CertificateDer;
#[cfg(feature = "tls")]
use rustls::{ProtocolVersion, SupportedCipherSuite};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// The unsent bytes the client asks the OS to hold at most on the TCP connections it opens,
/// unless [`ClientBuilder::unsent_limit`](crate::ClientBuilder::unsent_limit) says otherwise.
pub const DEFAULT_UNSENT_LIMIT: u32 = 128 * 1024;

/// Asks the OS to hold at most `bytes` not yet sent on `tcp` (`TCP_NOTSENT_LOWAT`, on Linux and
/// Android; elsewhere this does nothing and returns `Ok`). What is in flight is still as much
/// as TCP's window allows, so throughput does not suffer; what waits behind it does.
///
/// Without a limit, the OS takes megabytes of an upload into its send buffer (Linux grows it up
/// to `tcp_wmem`'s maximum, 4 MiB by default): a pong, a close or a keepalive ping written after
/// them waits until they are sent, seconds on a slow link, long enough for the peer (or this
/// side's own keepalive) to give up on a connection that is only slow. With a limit, they wait
/// behind at most `bytes`, and a blocked writer is woken as the link drains, which keepalive
/// counts as a sign of life (see [`Config::ping_interval`](crate::Config::ping_interval)).
/// The client sets [`DEFAULT_UNSENT_LIMIT`] on the connections it opens; a server can set it on
/// the connections it accepts:
///
/// ```no_run
/// # async fn demo(listener: tokio::net::TcpListener) -> wsio::Result<()> {
/// let (tcp, _) = listener.accept().await?;
/// wsio::transport::limit_unsent(&tcp, wsio::transport::DEFAULT_UNSENT_LIMIT)?;
/// let ws = wsio::accept(tcp).await?;
/// # Ok(()) }
/// ```
///
/// # Errors
/// The OS refused the option.
pub fn limit_unsent(tcp: &TcpStream, bytes: u32) -> io::Result<()> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    socket2::SockRef::from(tcp).set_tcp_notsent_lowat(bytes)?;
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = (tcp, bytes);
    Ok(())
}

/// A TCP connection, with or without TLS: the transport of a connection opened by
/// [`connect`](crate::connect).
#[non_exhaustive]
#[derive(Debug)]
pub enum MaybeTlsStream {
    /// `ws://`: plain TCP.
    Plain(TcpStream),
    /// `wss://`: TLS (rustls) over TCP.
    #[cfg(feature = "tls")]
    Rustls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    /// `ws://` through an `https://` proxy: TLS to the proxy, and inside it the tunnel to the
    /// server, which is not encrypted past the proxy.
    #[cfg(feature = "tls")]
    ProxyTls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    /// `wss://` through an `https://` proxy: the server's TLS inside TLS to the proxy.
    #[cfg(feature = "tls")]
    ProxyTlsRustls(Box<TlsInTls>),
}

/// The server's TLS inside TLS to an `https://` proxy.
#[cfg(feature = "tls")]
pub type TlsInTls = tokio_rustls::client::TlsStream<tokio_rustls::client::TlsStream<TcpStream>>;

impl MaybeTlsStream {
    /// The TCP connection under any TLS (to the proxy, through a proxy).
    pub fn tcp(&self) -> &TcpStream {
        match self {
            MaybeTlsStream::Plain(tcp) => tcp,
            #[cfg(feature = "tls")]
            MaybeTlsStream::Rustls(tls) | MaybeTlsStream::ProxyTls(tls) => tls.get_ref().0,
            #[cfg(feature = "tls")]
            MaybeTlsStream::ProxyTlsRustls(tls) => tls.get_ref().0.get_ref().0,
        }
    }

    /// `true` when the connection runs over TLS with the server (`wss://`); TLS to an
    /// `https://` proxy alone does not count.
    pub fn is_tls(&self) -> bool {
        #[cfg(feature = "tls")]
        return matches!(
            self,
            MaybeTlsStream::Rustls(_) | MaybeTlsStream::ProxyTlsRustls(_)
        );
        #[cfg(not(feature = "tls"))]
        false
    }
}

impl AsyncRead for MaybeTlsStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            #[cfg(feature = "tls")]
            MaybeTlsStream::Rustls(s) | MaybeTlsStream::ProxyTls(s) => {
                Pin::new(&mut **s).poll_read(cx, buf)
            }
            #[cfg(feature = "tls")]
            MaybeTlsStream::ProxyTlsRustls(s) => Pin::new(&mut **s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for MaybeTlsStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            #[cfg(feature = "tls")]
            MaybeTlsStream::Rustls(s) | MaybeTlsStream::ProxyTls(s) => {
                Pin::new(&mut **s).poll_write(cx, buf)
            }
            #[cfg(feature = "tls")]
            MaybeTlsStream::ProxyTlsRustls(s) => Pin::new(&mut **s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            #[cfg(feature = "tls")]
            MaybeTlsStream::Rustls(s) | MaybeTlsStream::ProxyTls(s) => {
                Pin::new(&mut **s).poll_write_vectored(cx, bufs)
            }
            #[cfg(feature = "tls")]
            MaybeTlsStream::ProxyTlsRustls(s) => Pin::new(&mut **s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            MaybeTlsStream::Plain(s) => s.is_write_vectored(),
            #[cfg(feature = "tls")]
            MaybeTlsStream::Rustls(s) | MaybeTlsStream::ProxyTls(s) => s.is_write_vectored(),
            #[cfg(feature = "tls")]
            MaybeTlsStream::ProxyTlsRustls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(s) => Pin::new(s).poll_flush(cx),
            #[cfg(feature = "tls")]
            MaybeTlsStream::Rustls(s) | MaybeTlsStream::ProxyTls(s) => {
                Pin::new(&mut **s).poll_flush(cx)
            }
            #[cfg(feature = "tls")]
            MaybeTlsStream::ProxyTlsRustls(s) => Pin::new(&mut **s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            #[cfg(feature = "tls")]
            MaybeTlsStream::Rustls(s) | MaybeTlsStream::ProxyTls(s) => {
                Pin::new(&mut **s).poll_shutdown(cx)
            }
            #[cfg(feature = "tls")]
            MaybeTlsStream::ProxyTlsRustls(s) => Pin::new(&mut **s).poll_shutdown(cx),
        }
    }
}

/// What a transport can tell about its connection: addresses and, over TLS, the negotiated
/// parameters. The TLS methods return `None` on a transport without TLS (and before a TLS
/// handshake has completed, which never shows once a WebSocket runs over it).
///
/// Implemented for [`TcpStream`], the tokio-rustls client and server streams over any
/// `TransportInfo`, and [`MaybeTlsStream`]; implement it for your own transport to get the same
/// methods on [`WebSocket`](crate::WebSocket).
pub trait TransportInfo {
    /// The local address of the connection.
    fn local_addr(&self) -> io::Result<SocketAddr>;

    /// The remote address of the connection.
    fn peer_addr(&self) -> io::Result<SocketAddr>;

    #[cfg(feature = "tls")]
    /// The TLS version negotiated (`TLSv1_3`, `TLSv1_2`).
    fn tls_protocol_version(&self) -> Option<ProtocolVersion> {
        None
    }

    #[cfg(feature = "tls")]
    /// The TLS cipher suite negotiated.
    fn tls_cipher_suite(&self) -> Option<SupportedCipherSuite> {
        None
    }

    #[cfg(feature = "tls")]
    /// The certificates the peer presented, its own first. A client sees the server's chain; a
    /// server sees `None` unless it asked for client certificates.
    fn tls_peer_certificates(&self) -> Option<&[CertificateDer<'static>]> {
        None
    }

    #[cfg(feature = "tls")]
    /// The ALPN protocol agreed on, if any (`b"http/1.1"` when both sides offered it).
    fn tls_alpn_protocol(&self) -> Option<&[u8]> {
        None
    }
}

impl TransportInfo for TcpStream {
    fn local_addr(&self) -> io::Result<SocketAddr> {
        TcpStream::local_addr(self)
    }

    fn peer_addr(&self) -> io::Result<SocketAddr> {
        TcpStream::peer_addr(self)
    }
}

/// Implements `TransportInfo` for a TLS stream type whose `get_ref()` gives
/// `(&inner transport, &rustls connection)`.
#[cfg(feature = "tls")]
macro_rules! tls_transport_info {
    ($stream:ty) => {
        impl<S: TransportInfo> TransportInfo for $stream {
            fn local_addr(&self) -> io::Result<SocketAddr> {
                self.get_ref().0.local_addr()
            }

            fn peer_addr(&self) -> io::Result<SocketAddr> {
                self.get_ref().0.peer_addr()
            }

            fn tls_protocol_version(&self) -> Option<ProtocolVersion> {
                self.get_ref().1.protocol_version()
            }

            fn tls_cipher_suite(&self) -> Option<SupportedCipherSuite> {
                self.get_ref().1.negotiated_cipher_suite()
            }

            fn tls_peer_certificates(&self) -> Option<&[CertificateDer<'static>]> {
                self.get_ref().1.peer_certificates()
            }

            fn tls_alpn_protocol(&self) -> Option<&[u8]> {
                self.get_ref().1.alpn_protocol()
            }
        }
    };
}

#[cfg(feature = "tls")]
tls_transport_info!(tokio_rustls::client::TlsStream<S>);
#[cfg(feature = "tls")]
tls_transport_info!(tokio_rustls::server::TlsStream<S>);
#[cfg(feature = "tls")]
tls_transport_info!(tokio_rustls::TlsStream<S>);

impl TransportInfo for MaybeTlsStream {
    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.tcp().local_addr()
    }

    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.tcp().peer_addr()
    }

    #[cfg(feature = "tls")]
    fn tls_protocol_version(&self) -> Option<ProtocolVersion> {
        match self {
            MaybeTlsStream::Plain(_) | MaybeTlsStream::ProxyTls(_) => None,
            MaybeTlsStream::Rustls(tls) => tls.tls_protocol_version(),
            MaybeTlsStream::ProxyTlsRustls(tls) => tls.tls_protocol_version(),
        }
    }

    #[cfg(feature = "tls")]
    fn tls_cipher_suite(&self) -> Option<SupportedCipherSuite> {
        match self {
            MaybeTlsStream::Plain(_) | MaybeTlsStream::ProxyTls(_) => None,
            MaybeTlsStream::Rustls(tls) => tls.tls_cipher_suite(),
            MaybeTlsStream::ProxyTlsRustls(tls) => tls.tls_cipher_suite(),
        }
    }

    #[cfg(feature = "tls")]
    fn tls_peer_certificates(&self) -> Option<&[CertificateDer<'static>]> {
        match self {
            MaybeTlsStream::Plain(_) | MaybeTlsStream::ProxyTls(_) => None,
            MaybeTlsStream::Rustls(tls) => tls.tls_peer_certificates(),
            MaybeTlsStream::ProxyTlsRustls(tls) => tls.tls_peer_certificates(),
        }
    }

    #[cfg(feature = "tls")]
    fn tls_alpn_protocol(&self) -> Option<&[u8]> {
        match self {
            MaybeTlsStream::Plain(_) | MaybeTlsStream::ProxyTls(_) => None,
            MaybeTlsStream::Rustls(tls) => tls.tls_alpn_protocol(),
            MaybeTlsStream::ProxyTlsRustls(tls) => tls.tls_alpn_protocol(),
        }
    }
}
