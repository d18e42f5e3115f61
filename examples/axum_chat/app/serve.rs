//! HTTPS for the app: TLS (tokio-rustls) and then HTTP/1.1 or HTTP/2, whichever ALPN agreed,
//! on one port (hyper-util's `auto` builder), with RFC 8441's extended CONNECT turned on so that
//! browsers open their WebSockets on the page's own HTTP/2 connection.

use std::io;
use std::sync::Arc;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use wsio::tls::rustls::ServerConfig;
use wsio::tls::{CertificateDer, PrivateKeyDer, TlsAcceptor};

/// Which HTTP versions the server offers in ALPN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Alpn {
    /// `h2`, then `http/1.1`: what browsers pick when both are offered is HTTP/2.
    H2AndHttp11,
    /// `http/1.1` alone.
    Http11,
}

/// A TLS config presenting `chain` with `key`, with wsio's provider and ALPN as `alpn` says.
pub(crate) fn tls_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    alpn: Alpn,
) -> wsio::Result<Arc<ServerConfig>> {
    let mut config = Arc::unwrap_or_clone(wsio::tls::server_config(chain, key)?);
    config.alpn_protocols = match alpn {
        Alpn::H2AndHttp11 => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        Alpn::Http11 => vec![b"http/1.1".to_vec()],
    };
    Ok(Arc::new(config))
}

/// Serves `app` on every connection `listener` accepts, over TLS with `tls`, until the
/// listener fails. A connection whose TLS or HTTP fails ends alone.
pub(crate) async fn serve_tls(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    app: Router,
) -> io::Result<()> {
    let tls = TlsAcceptor::from(tls);
    let mut http = auto::Builder::new(TokioExecutor::new());
    // SETTINGS_ENABLE_CONNECT_PROTOCOL: without it an HTTP/2 client may not send
    // `:protocol`, and browsers fall back to a second connection over HTTP/1.1.
    http.http2().enable_connect_protocol();
    let http = Arc::new(http);
    loop {
        let (tcp, _) = listener.accept().await?;
        // Chat lines and progress reports are small: no Nagle delay.
        let _ = tcp.set_nodelay(true);
        let (tls, http, app) = (tls.clone(), http.clone(), app.clone());
        tokio::spawn(async move {
            let Ok(stream) = tls.accept(tcp).await else {
                return;
            };
            let service = TowerToHyperService::new(app);
            // `with_upgrades`: HTTP/1.1's WebSockets take the connection over once answered.
            let _ = http
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// A self-signed certificate for `localhost` and `127.0.0.1`, made at startup.
pub(crate) struct ThrowawayCertificate {
    pub(crate) chain: Vec<CertificateDer<'static>>,
    pub(crate) key: PrivateKeyDer<'static>,
    /// The base64 SHA-256 of its public key (SubjectPublicKeyInfo): what Chromium's
    /// `--ignore-certificate-errors-spki-list` takes, to trust this certificate and no other.
    pub(crate) spki_sha256: String,
}

impl ThrowawayCertificate {
    pub(crate) fn new() -> ThrowawayCertificate {
        use base64::Engine as _;
        use rcgen::PublicKeyData as _;
        use sha2::Digest as _;

        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        let made = rcgen::generate_simple_self_signed(names).expect("rcgen makes a certificate");
        let spki = sha2::Sha256::digest(made.signing_key.subject_public_key_info());
        ThrowawayCertificate {
            chain: vec![made.cert.der().clone()],
            key: PrivateKeyDer::Pkcs8(made.signing_key.serialize_der().into()),
            spki_sha256: base64::engine::general_purpose::STANDARD.encode(spki),
        }
    }
}
