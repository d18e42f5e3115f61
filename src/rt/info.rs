//! What a [`WebSocket`] can tell about its transport: addresses and TLS parameters.

use std::io;
use std::net::SocketAddr;

#[cfg(feature = "tls")]
use rustls::pki_types::CertificateDer;
#[cfg(feature = "tls")]
use rustls::{ProtocolVersion, SupportedCipherSuite};

use super::socket::WebSocket;
use crate::transport::TransportInfo;

/// Connection information, for a transport that implements [`TransportInfo`] (TCP, TLS over
/// TCP, and [`MaybeTlsStream`](crate::MaybeTlsStream), the transport of [`connect`](crate::connect)).
///
/// ```no_run
/// # async fn demo() -> wsio::Result<()> {
/// let (ws, _) = wsio::connect("wss://example.com/socket").await?;
/// println!("{} -> {}", ws.local_addr()?, ws.peer_addr()?);
/// println!("{:?} {:?}", ws.tls_protocol_version(), ws.tls_cipher_suite().map(|s| s.suite()));
/// # Ok(()) }
/// ```
impl<S: TransportInfo> WebSocket<S> {
    /// The local address of the connection.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.get_ref().local_addr()
    }

    /// The remote address of the connection.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.get_ref().peer_addr()
    }

    #[cfg(feature = "tls")]
    /// The TLS version negotiated, or `None` without TLS.
    pub fn tls_protocol_version(&self) -> Option<ProtocolVersion> {
        self.get_ref().tls_protocol_version()
    }

    #[cfg(feature = "tls")]
    /// The TLS cipher suite negotiated, or `None` without TLS.
    pub fn tls_cipher_suite(&self) -> Option<SupportedCipherSuite> {
        self.get_ref().tls_cipher_suite()
    }

    #[cfg(feature = "tls")]
    /// The certificate chain the peer presented (its own certificate first), or `None` without
    /// TLS (or, on a server, when the client sent none).
    pub fn tls_peer_certificates(&self) -> Option<&[CertificateDer<'static>]> {
        self.get_ref().tls_peer_certificates()
    }

    #[cfg(feature = "tls")]
    /// The ALPN protocol agreed on in the TLS handshake, if any.
    pub fn tls_alpn_protocol(&self) -> Option<&[u8]> {
        self.get_ref().tls_alpn_protocol()
    }
}
