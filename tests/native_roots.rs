//! The `native-roots` feature: the default root store holds the operating system's trust
//! store. A CA that only the OS store holds (here through `SSL_CERT_FILE`, which
//! rustls-native-certs reads like OpenSSL does) verifies a `wss://` server with no root added
//! on the builder, while a CA outside it is still refused as an unknown issuer.
//!
//! One test in this binary: the OS store is read once per process, at the first `wss://`
//! connection, so `SSL_CERT_FILE` is set before anything else runs.

#![cfg(all(feature = "tls", feature = "native-roots"))]

mod support;

use support::certs::{wss_echo_server, Ca};
use wsio::tls::rustls::CertificateError;
use wsio::{ClientBuilder, ErrorKind, Message};

#[tokio::test]
async fn the_os_trust_store_verifies_servers_and_nothing_else() {
    let trusted = Ca::new("wsio native roots CA");
    let dir = std::env::temp_dir().join(format!("wsio-native-roots-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bundle = dir.join("ca.pem");
    std::fs::write(&bundle, trusted.pem()).unwrap();
    // The only thread of this process that reads the environment is this one, here.
    std::env::set_var("SSL_CERT_FILE", &bundle);
    std::env::remove_var("SSL_CERT_DIR");

    let leaf = trusted.leaf(&["localhost"], None);
    let port = wss_echo_server(wsio::tls::acceptor(leaf.chain, leaf.key).unwrap()).await;
    let (mut ws, _) = ClientBuilder::new()
        .connect(format!("wss://localhost:{port}/"))
        .await
        .expect("a CA in the OS store verifies the server");
    assert!(ws.get_ref().is_tls());
    ws.send(Message::text("trusted")).await.unwrap();
    assert_eq!(ws.recv().await.unwrap().unwrap(), Message::text("trusted"));

    let stranger = Ca::new("wsio CA outside the OS store");
    let leaf = stranger.leaf(&["localhost"], None);
    let port = wss_echo_server(wsio::tls::acceptor(leaf.chain, leaf.key).unwrap()).await;
    let e = ClientBuilder::new()
        .connect(format!("wss://localhost:{port}/"))
        .await
        .map(|_| ())
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Tls, "{e:?}");
    let wsio::Error::Tls(tls) = &e else {
        unreachable!()
    };
    assert_eq!(
        tls.certificate_error(),
        Some(&CertificateError::UnknownIssuer),
        "{e:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
