//! TLS for `wss://`: [rustls] 0.23 through [tokio_rustls] 0.26, with the *ring* crypto provider.
//!
//! # Client
//!
//! [`connect`](crate::connect) and [`ClientBuilder::connect`](crate::client::ClientBuilder::connect)
//! open `wss://` URLs over TLS with certificate verification always on. The host name of the URL
//! is sent as SNI and checked against the server's certificate; ALPN offers `http/1.1`.
//!
//! **Trust roots.** By default the server's chain must lead to a root of the Mozilla root program
//! as compiled into [`webpki-roots`](https://docs.rs/webpki-roots) ([`default_root_store`]). This
//! was chosen over the operating system's trust store (`rustls-platform-verifier`) because it
//! behaves the same on every machine: a minimal container without `ca-certificates`, a CI runner
//! and a laptop all trust the same roots, and a connection that works in a test works in
//! production. The price is that the roots change only when this crate's dependencies are updated,
//! and that enterprise roots installed in the OS, and the OS's revocation checks, are not used.
//! When you need those, or a private CA, either add roots with
//! [`ClientBuilder::add_root_certificate`](crate::client::ClientBuilder::add_root_certificate) or
//! pass a complete [`rustls::ClientConfig`] (built with any verifier, e.g.
//! `rustls-platform-verifier`) to
//! [`ClientBuilder::tls_config`](crate::client::ClientBuilder::tls_config), which then overrides
//! every TLS default. There is deliberately no switch that turns verification off: a test that
//! needs a self-signed server adds its certificate as a root.
//!
//! # Server
//!
//! Build a [`TlsAcceptor`] from a certificate chain and key with [`acceptor_from_pem`] or
//! [`acceptor`], then hand each TCP connection to
//! [`Acceptor::accept_tls`](crate::server::Acceptor::accept_tls) (TLS and WebSocket handshakes
//! under one deadline), or accept TLS yourself and pass the `TlsStream` to
//! [`accept`](crate::accept), which takes any stream.
//!
//! ```no_run
//! # async fn demo() -> wsio::Result<()> {
//! let tls = wsio::tls::acceptor_from_pem(
//!     &std::fs::read("cert.pem")?,
//!     &std::fs::read("key.pem")?,
//! )?;
//! let listener = tokio::net::TcpListener::bind("0.0.0.0:443").await?;
//! let acceptor = wsio::server::Acceptor::new();
//! loop {
//!     let (tcp, _) = listener.accept().await?;
//!     let (tls, acceptor) = (tls.clone(), acceptor.clone());
//!     tokio::spawn(async move {
//!         let (mut ws, _request) = acceptor.accept_tls(&tls, tcp).await?;
//!         ws.send_text("hello over TLS").await?;
//!         Ok::<_, wsio::Error>(())
//!     });
//! }
//! # }
//! ```

use std::io;
use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::net::TcpStream;

pub use crate::error::TlsError;
use crate::error::{Error, Result};

pub use rustls;
pub use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
pub use tokio_rustls;
pub use tokio_rustls::TlsAcceptor;

/// The ALPN protocol a WebSocket handshake runs over (RFC 6455 is HTTP/1.1 only).
const ALPN_HTTP_1_1: &[u8] = b"http/1.1";

/// Classifies an error from a tokio-rustls handshake: a rustls error travels inside the
/// `io::Error` and becomes [`Error::Tls`]; anything else is transport I/O.
pub(crate) fn from_io(e: io::Error) -> Error {
    if !e.get_ref().is_some_and(|inner| inner.is::<rustls::Error>()) {
        return Error::Io(e);
    }
    match e
        .into_inner()
        .map(|inner| inner.downcast::<rustls::Error>())
    {
        Some(Ok(rustls)) => (*rustls).into(),
        // Unreachable after the check above; keep the error rather than panic.
        Some(Err(inner)) => Error::Io(io::Error::new(io::ErrorKind::InvalidData, inner)),
        None => Error::Io(io::Error::from(io::ErrorKind::InvalidData)),
    }
}

/// The crypto provider every config built here uses: *ring*, named explicitly so that the
/// process-wide default (which may be unset, or ambiguous when several providers are compiled
/// in) never matters.
fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// The Mozilla root program's trust anchors, from `webpki-roots`: what `wss://` connections
/// trust by default (see the [module docs](self) for why).
pub fn default_root_store() -> RootCertStore {
    RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    }
}

/// A client config that trusts `roots`, with the *ring* provider, its safe default protocol
/// versions (TLS 1.2 and 1.3) and ALPN `http/1.1`: what `wss://` uses unless
/// [`ClientBuilder::tls_config`](crate::client::ClientBuilder::tls_config) overrides it.
///
/// ```
/// let mut roots = wsio::tls::default_root_store();
/// # let my_ca_der = Vec::<wsio::tls::CertificateDer<'static>>::new();
/// roots.add_parsable_certificates(my_ca_der);
/// let config = wsio::tls::client_config(roots)?;
/// let builder = wsio::client::ClientBuilder::new().tls_config(config);
/// # Ok::<_, wsio::Error>(())
/// ```
pub fn client_config(roots: RootCertStore) -> Result<Arc<ClientConfig>> {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN_HTTP_1_1.to_vec()];
    Ok(Arc::new(config))
}

/// The default client config ([`client_config`] of [`default_root_store`]), built once.
pub(crate) fn default_client_config() -> Result<Arc<ClientConfig>> {
    static DEFAULT: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    if let Some(config) = DEFAULT.get() {
        return Ok(config.clone());
    }
    let config = client_config(default_root_store())?;
    Ok(DEFAULT.get_or_init(|| config).clone())
}

/// Runs the TLS client handshake over `tcp` with `config`, naming `server_name` (SNI and
/// certificate check).
pub(crate) async fn connect(
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
    tcp: TcpStream,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>> {
    tokio_rustls::TlsConnector::from(config)
        .connect(server_name, tcp)
        .await
        .map_err(from_io)
}

/// The server name to verify for `host` (a DNS name or an IP address, without brackets).
pub(crate) fn server_name(host: &str) -> Result<ServerName<'static>> {
    ServerName::try_from(host.to_owned())
        .map_err(|_| TlsError::InvalidServerName(host.to_owned()).into())
}

/// Reads every certificate from PEM data (`-----BEGIN CERTIFICATE-----` sections), in order:
/// a chain starts with the end-entity certificate.
///
/// # Errors
/// [`TlsError::Pem`] when the PEM is malformed or holds no certificate.
pub fn certificates_from_pem(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem(format!("certificates: {e}")))?;
    if certs.is_empty() {
        return Err(TlsError::Pem("no certificate found".into()).into());
    }
    Ok(certs)
}

/// Reads the first private key from PEM data (PKCS#8, PKCS#1 RSA or SEC1 EC).
///
/// # Errors
/// [`TlsError::Pem`] when the PEM is malformed or holds no private key.
pub fn private_key_from_pem(pem: &[u8]) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(pem)
        .map_err(|e| TlsError::Pem(format!("private key: {e}")).into())
}

/// A server config presenting `chain` (end-entity certificate first) with `key`, with the *ring*
/// provider, TLS 1.2 and 1.3, no client authentication and ALPN `http/1.1`.
///
/// # Errors
/// [`TlsError::Rustls`] when the key is unusable or does not match the certificate.
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![ALPN_HTTP_1_1.to_vec()];
    Ok(Arc::new(config))
}

/// A [`TlsAcceptor`] presenting `chain` with `key`; see [`server_config`].
///
/// # Errors
/// As [`server_config`].
pub fn acceptor(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<TlsAcceptor> {
    Ok(TlsAcceptor::from(server_config(chain, key)?))
}

/// A [`TlsAcceptor`] from a PEM certificate chain (end-entity certificate first) and a PEM
/// private key, e.g. the `fullchain.pem` and `privkey.pem` of an ACME client.
///
/// # Errors
/// [`TlsError::Pem`] for unreadable PEM; otherwise as [`server_config`].
pub fn acceptor_from_pem(chain_pem: &[u8], key_pem: &[u8]) -> Result<TlsAcceptor> {
    acceptor(
        certificates_from_pem(chain_pem)?,
        private_key_from_pem(key_pem)?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_store_has_roots_and_configs_build() {
        assert!(!default_root_store().is_empty());
        let config = default_client_config().unwrap();
        assert_eq!(config.alpn_protocols, [b"http/1.1".to_vec()]);
        assert!(Arc::ptr_eq(&config, &default_client_config().unwrap()));
    }

    #[test]
    fn pem_errors_are_tls_errors() {
        let e = certificates_from_pem(b"not pem").unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Tls);
        assert!(e.to_string().contains("no certificate"), "{e}");
        let e = private_key_from_pem(b"").unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Tls);
    }

    #[test]
    fn server_names() {
        assert!(server_name("example.com").is_ok());
        assert!(matches!(
            server_name("127.0.0.1").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            server_name("::1").unwrap(),
            ServerName::IpAddress(_)
        ));
        let e = server_name("bad name!").unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Tls);
    }

    #[test]
    fn io_errors_carrying_rustls_errors_become_tls_errors() {
        let e = from_io(io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        ));
        match &e {
            Error::Tls(tls) => assert_eq!(
                tls.certificate_error(),
                Some(&rustls::CertificateError::UnknownIssuer)
            ),
            other => panic!("{other:?}"),
        }
        let e = from_io(io::Error::from(io::ErrorKind::ConnectionReset));
        assert_eq!(e.kind(), crate::ErrorKind::Io);
    }
}
