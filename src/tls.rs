//! TLS for `wss://`: [rustls] 0.23 through [tokio_rustls] 0.26, with the *ring* crypto provider
//! (the `ring` feature, on by default) or aws-lc-rs (the `aws-lc-rs` feature, which wins when
//! both are on). Without either feature this module does not exist and the crate is
//! `ws://`-only: a `wss://` URL or an `https://` proxy then fails before any I/O with
//! [`TlsError::NotCompiled`].
//!
//! # Client
//!
//! [`connect`](crate::connect) and [`ClientBuilder::connect`](crate::client::ClientBuilder::connect)
//! open `wss://` URLs over TLS with certificate verification always on. The host name of the URL
//! is sent as SNI and checked against the server's certificate; ALPN offers `http/1.1`.
//!
//! **Trust roots.** By default the server's chain must lead to a root of the Mozilla root program
//! as compiled into [`webpki-roots`](https://docs.rs/webpki-roots) ([`default_root_store`]; the
//! `webpki-roots` feature, on by default). The `native-roots` feature adds the operating
//! system's trust store, read once through
//! [`rustls-native-certs`](https://docs.rs/rustls-native-certs); with both features on, the
//! default store holds both sets, and with neither it is empty (add roots yourself). The Mozilla
//! roots were chosen as the default over the operating system's trust store because they
//! behave the same on every machine: a minimal container without `ca-certificates`, a CI runner
//! and a laptop all trust the same roots, and a connection that works in a test works in
//! production. The price is that the roots change only when this crate's dependencies are updated,
//! and that enterprise roots installed in the OS (unless `native-roots` is on) and the OS's
//! revocation checks are not used.
//! When you need those, or a private CA, either add roots with
//! [`ClientBuilder::add_root_certificate`](crate::client::ClientBuilder::add_root_certificate) or
//! pass a complete [`rustls::ClientConfig`] (built with any verifier, e.g.
//! `rustls-platform-verifier`) to
//! [`ClientBuilder::tls_config`](crate::client::ClientBuilder::tls_config), which then overrides
//! every TLS default. There is deliberately no switch that turns verification off: a test that
//! needs a self-signed server adds its certificate as a root.
//!
//! **Client certificates** (mutual TLS): [`ClientBuilder::client_identity`](crate::client::ClientBuilder::client_identity)
//! presents an [`Identity`] to servers that ask for one.
//!
//! # Server
//!
//! Build a [`TlsAcceptor`] from a certificate chain and key with [`acceptor_from_pem`] or
//! [`acceptor`], then hand each TCP connection to
//! [`Acceptor::accept_tls`](crate::server::Acceptor::accept_tls) (TLS and WebSocket handshakes
//! under one deadline), or accept TLS yourself and pass the `TlsStream` to
//! [`accept`](crate::accept), which takes any stream. To ask clients for certificates, build the
//! config with [`server_config_with_client_auth`] and a [`ClientAuth`].
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

use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, ServerConfig};
use tokio::net::TcpStream;

pub use crate::error::TlsError;
use crate::error::{Error, Result};

pub use rustls;
pub use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
pub use rustls::RootCertStore;
pub use tokio_rustls;
pub use tokio_rustls::TlsAcceptor;

/// The ALPN protocol a WebSocket handshake runs over (RFC 6455 is HTTP/1.1 only).
const ALPN_HTTP_1_1: &[u8] = b"http/1.1";

#[cfg(not(any(feature = "ring", feature = "aws-lc-rs")))]
compile_error!("wsio's `tls` feature needs a crypto provider: enable `ring` or `aws-lc-rs`");

/// The crypto provider every config built here uses: aws-lc-rs with the `aws-lc-rs` feature,
/// else *ring*; named explicitly so that the process-wide default (which may be unset, or
/// ambiguous when several providers are compiled in) never matters.
fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| {
            #[cfg(feature = "aws-lc-rs")]
            let provider = rustls::crypto::aws_lc_rs::default_provider();
            #[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
            let provider = rustls::crypto::ring::default_provider();
            Arc::new(provider)
        })
        .clone()
}

/// What `wss://` connections trust by default (see the [module docs](self) for why): the
/// Mozilla root program's trust anchors from `webpki-roots` (the `webpki-roots` feature) and
/// the operating system's trust store (the `native-roots` feature), both when both are on;
/// empty with neither. The OS store is read at the first call only; certificates in it that
/// cannot be parsed are skipped.
pub fn default_root_store() -> RootCertStore {
    static ROOTS: OnceLock<RootCertStore> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            #[allow(unused_mut)] // with neither roots feature
            let mut roots = RootCertStore::empty();
            #[cfg(feature = "webpki-roots")]
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            #[cfg(feature = "native-roots")]
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            roots
        })
        .clone()
}

/// A client's certificate chain (its own certificate first) and private key, for mutual TLS:
/// presented when the server asks for a client certificate. Set it with
/// [`ClientBuilder::client_identity`](crate::client::ClientBuilder::client_identity).
pub struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl Identity {
    /// An identity of `chain` (end-entity certificate first) and its `key`. Whether they match
    /// is checked when a connection is made (an [`Error::Tls`] then).
    pub fn new(chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> Self {
        Identity { chain, key }
    }

    /// An identity from a PEM certificate chain and a PEM private key.
    ///
    /// # Errors
    /// [`TlsError::Pem`] for unreadable PEM.
    pub fn from_pem(chain_pem: &[u8], key_pem: &[u8]) -> Result<Self> {
        Ok(Identity::new(
            certificates_from_pem(chain_pem)?,
            private_key_from_pem(key_pem)?,
        ))
    }

    /// The certificate chain, the client's own certificate first.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }
}

impl Clone for Identity {
    fn clone(&self) -> Self {
        Identity {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl std::fmt::Debug for Identity {
    /// The chain's length only: a private key is never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("certificates", &self.chain.len())
            .finish_non_exhaustive()
    }
}

/// A client config that trusts `roots`, with the crate's provider (*ring* or aws-lc-rs), its safe default protocol
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

/// Like [`client_config`], presenting `identity` when the server asks for a client
/// certificate (mutual TLS).
///
/// # Errors
/// [`TlsError::Rustls`] when the key is unusable or does not match the certificate.
pub fn client_config_with_identity(
    roots: RootCertStore,
    identity: &Identity,
) -> Result<Arc<ClientConfig>> {
    let identity = identity.clone();
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_client_auth_cert(identity.chain, identity.key)?;
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
        .map_err(Error::from)
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

/// A server config presenting `chain` (end-entity certificate first) with `key`, with the
/// crate's provider (*ring* or aws-lc-rs), TLS 1.2 and 1.3, no client authentication and ALPN `http/1.1`.
///
/// # Errors
/// [`TlsError::Rustls`] when the key is unusable or does not match the certificate.
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>> {
    server_config_with_client_auth(chain, key, ClientAuth::None)
}

/// Whether a server asks TLS clients for a certificate, and which authorities it trusts for
/// them (mutual TLS). A certificate a client presents must verify against the roots, be valid
/// now and allowed for client authentication; the verified chain is then readable on the
/// connection with [`TransportInfo::tls_peer_certificates`](crate::TransportInfo::tls_peer_certificates)
/// (and the same method of the `WebSocket`).
#[derive(Debug, Clone)]
pub enum ClientAuth {
    /// No certificate is asked for.
    None,
    /// A certificate is asked for; a client without one is let in (and has no peer
    /// certificates), one with a certificate that does not verify is refused.
    Optional(RootCertStore),
    /// A client without a certificate that verifies is refused in the TLS handshake.
    Required(RootCertStore),
}

/// Like [`server_config`], asking clients for certificates as `client_auth` says.
///
/// ```no_run
/// # fn demo() -> wsio::Result<()> {
/// use wsio::tls::{certificates_from_pem, ClientAuth, RootCertStore};
/// let mut client_cas = RootCertStore::empty();
/// for ca in certificates_from_pem(&std::fs::read("clients-ca.pem")?)? {
///     client_cas.add(ca).map_err(wsio::tls::TlsError::Rustls)?;
/// }
/// let config = wsio::tls::server_config_with_client_auth(
///     wsio::tls::certificates_from_pem(&std::fs::read("cert.pem")?)?,
///     wsio::tls::private_key_from_pem(&std::fs::read("key.pem")?)?,
///     ClientAuth::Required(client_cas),
/// )?;
/// let acceptor = wsio::tls::TlsAcceptor::from(config);
/// # Ok(()) }
/// ```
///
/// # Errors
/// [`TlsError::Rustls`] when the key is unusable or does not match the certificate;
/// [`TlsError::ClientRoots`] when the roots hold no usable authority.
pub fn server_config_with_client_auth(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    client_auth: ClientAuth,
) -> Result<Arc<ServerConfig>> {
    let builder =
        ServerConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()?;
    let builder = match client_auth {
        ClientAuth::None => builder.with_no_client_auth(),
        ClientAuth::Optional(roots) | ClientAuth::Required(roots) if roots.is_empty() => {
            return Err(TlsError::ClientRoots("no certificate authority given".into()).into())
        }
        ClientAuth::Optional(roots) => builder.with_client_cert_verifier(
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .allow_unauthenticated()
                .build()
                .map_err(|e| TlsError::ClientRoots(e.to_string()))?,
        ),
        ClientAuth::Required(roots) => builder.with_client_cert_verifier(
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .map_err(|e| TlsError::ClientRoots(e.to_string()))?,
        ),
    };
    let mut config = builder.with_single_cert(chain, key)?;
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
    use std::io;

    use super::*;

    #[test]
    fn default_store_has_roots_and_configs_build() {
        #[cfg(feature = "webpki-roots")]
        assert!(default_root_store().len() >= webpki_roots::TLS_SERVER_ROOTS.len());
        let config = default_client_config().unwrap();
        assert_eq!(config.alpn_protocols, [b"http/1.1".to_vec()]);
        assert!(Arc::ptr_eq(&config, &default_client_config().unwrap()));
    }

    /// The key exchange groups tell the providers apart: aws-lc-rs offers the post-quantum
    /// hybrid X25519MLKEM768 first, *ring* does not have it.
    #[test]
    fn the_provider_is_the_one_the_features_pick() {
        let groups = |p: &CryptoProvider| format!("{:?}", p.kx_groups);
        #[cfg(feature = "aws-lc-rs")]
        let expected = rustls::crypto::aws_lc_rs::default_provider();
        #[cfg(not(feature = "aws-lc-rs"))]
        let expected = rustls::crypto::ring::default_provider();
        assert_eq!(groups(&provider()), groups(&expected));
        #[cfg(all(feature = "aws-lc-rs", feature = "ring"))]
        assert_ne!(
            groups(&provider()),
            groups(&rustls::crypto::ring::default_provider()),
            "the two providers must be told apart for this test to mean anything"
        );
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
        let e = Error::from(io::Error::new(
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
        let e = Error::from(io::Error::from(io::ErrorKind::ConnectionReset));
        assert_eq!(e.kind(), crate::ErrorKind::Io);
    }
}
