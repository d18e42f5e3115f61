//! `wss://` over real loopback TCP and real rustls, with certificates made by rcgen: a good chain
//! connects and reports its TLS parameters; an unknown CA, a wrong host name and an expired
//! certificate each fail with `ErrorKind::Tls`.

#![cfg(feature = "tls")]

use std::sync::Arc;
use std::time::Duration;

use http::header::LOCATION;
use http::{HeaderValue, StatusCode};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use wsio::error::{HandshakeError, Timeout};
use wsio::server::{Accept, Acceptor, Reject};
use wsio::tls::rustls::{self, CertificateError, ProtocolVersion, RootCertStore};
use wsio::tls::{CertificateDer, ClientAuth, Identity, TlsAcceptor, TlsError};
mod support;

use support::certs::{wss_echo_server, Ca};
use wsio::{ClientBuilder, Config, Error, ErrorKind, MaybeTlsStream, Message, TransportInfo};

type Served = wsio::Result<(
    wsio::WebSocket<wsio::tls::tokio_rustls::server::TlsStream<TcpStream>>,
    http::Request<()>,
)>;

/// A TLS WebSocket server on loopback that echoes one message per connection. Each connection's
/// accept outcome (the server-side TLS info, or the error) goes to the receiver.
async fn serve(
    tls: TlsAcceptor,
    acceptor: Acceptor,
) -> (u16, mpsc::UnboundedReceiver<wsio::Result<ServerSaw>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (tls, acceptor, tx) = (tls.clone(), acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                let served: Served = acceptor.accept_tls(&tls, tcp).await;
                match served {
                    Ok((mut ws, _)) => {
                        let _ = tx.send(Ok(ServerSaw {
                            version: ws.tls_protocol_version(),
                            alpn: ws.tls_alpn_protocol().map(<[u8]>::to_vec),
                            client_certificates: ws.tls_peer_certificates().map(<[_]>::len),
                            client_certificate: ws
                                .tls_peer_certificates()
                                .and_then(|chain| chain.first().cloned()),
                            cipher_suite: ws.tls_cipher_suite().is_some(),
                            peer: ws.peer_addr().unwrap(),
                        }));
                        if let Some(Ok(message)) = ws.recv().await {
                            let _ = ws.send(message).await;
                        }
                        while ws.recv().await.is_some() {}
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                    }
                }
            });
        }
    });
    (port, rx)
}

/// What the server saw of an accepted connection.
#[derive(Debug)]
struct ServerSaw {
    version: Option<ProtocolVersion>,
    alpn: Option<Vec<u8>>,
    client_certificates: Option<usize>,
    /// The client's own certificate, when it presented one (mutual TLS).
    client_certificate: Option<CertificateDer<'static>>,
    cipher_suite: bool,
    peer: std::net::SocketAddr,
}

fn trusting(ca: &Ca) -> Arc<rustls::ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(ca.der()).unwrap();
    wsio::tls::client_config(roots).unwrap()
}

async fn echo(ws: &mut wsio::WebSocket<MaybeTlsStream>) {
    ws.send_text("over TLS").await.unwrap();
    assert_eq!(ws.recv().await.unwrap().unwrap(), Message::text("over TLS"));
}

/// The certificate error behind a failed connect.
fn certificate_error(error: &Error) -> CertificateError {
    assert_eq!(error.kind(), ErrorKind::Tls, "{error:?}");
    match error {
        Error::Tls(tls) => tls
            .certificate_error()
            .unwrap_or_else(|| panic!("not a certificate error: {tls:?}"))
            .clone(),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_good_chain_connects_and_reports_its_tls_parameters() {
    let ca = Ca::new("wsio test CA");
    let leaf = ca.leaf(&["localhost"], None);
    let tls = wsio::tls::acceptor(leaf.chain.clone(), leaf.key.clone_key()).unwrap();
    let (port, mut saw) = serve(tls, Acceptor::new()).await;

    let (mut ws, response) = ClientBuilder::new()
        .tls_config(trusting(&ca))
        .connect(format!("wss://localhost:{port}/secure"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    assert!(ws.get_ref().is_tls());
    assert!(matches!(ws.get_ref(), MaybeTlsStream::Rustls(_)));
    assert_eq!(ws.tls_protocol_version(), Some(ProtocolVersion::TLSv1_3));
    let suite = ws.tls_cipher_suite().unwrap();
    assert_eq!(suite.version().version, ProtocolVersion::TLSv1_3);
    assert_eq!(ws.tls_alpn_protocol(), Some(&b"http/1.1"[..]));
    let certificates = ws.tls_peer_certificates().unwrap();
    assert_eq!(certificates, &leaf.chain[..]);
    assert_eq!(ws.peer_addr().unwrap().port(), port);
    assert!(ws.peer_addr().unwrap().ip().is_loopback());
    echo(&mut ws).await;

    let server = saw.recv().await.unwrap().unwrap();
    assert_eq!(server.version, Some(ProtocolVersion::TLSv1_3));
    assert_eq!(server.alpn.as_deref(), Some(&b"http/1.1"[..]));
    assert_eq!(server.client_certificates, None);
    assert!(server.cipher_suite);
    assert_eq!(server.peer, ws.local_addr().unwrap());
}

#[tokio::test]
async fn an_added_root_certificate_is_trusted() {
    let ca = Ca::new("wsio added root");
    let leaf = ca.leaf(&["localhost", "127.0.0.1"], None);
    let tls =
        wsio::tls::acceptor_from_pem(leaf.chain_pem.as_bytes(), leaf.key_pem.as_bytes()).unwrap();
    let (port, _saw) = serve(tls, Acceptor::new()).await;
    let builder = ClientBuilder::new().add_root_certificate(ca.der());
    for host in ["localhost", "127.0.0.1"] {
        let (mut ws, _) = builder
            .connect(format!("wss://{host}:{port}/"))
            .await
            .unwrap_or_else(|e| panic!("{host}: {e}"));
        echo(&mut ws).await;
    }
}

#[tokio::test]
async fn an_unknown_ca_fails_with_a_tls_error_on_both_sides() {
    let ca = Ca::new("wsio private CA");
    let leaf = ca.leaf(&["localhost"], None);
    let tls = wsio::tls::acceptor(leaf.chain, leaf.key).unwrap();
    let (port, mut saw) = serve(tls, Acceptor::new()).await;

    // The default roots (Mozilla's) do not know the test CA.
    let error = wsio::connect(format!("wss://localhost:{port}/"))
        .await
        .err()
        .unwrap();
    assert_eq!(certificate_error(&error), CertificateError::UnknownIssuer);
    assert!(error.to_string().contains("UnknownIssuer"), "{error}");
    // The client's alert reaches the server as a TLS error too.
    let server_error = saw.recv().await.unwrap().err().unwrap();
    assert_eq!(server_error.kind(), ErrorKind::Tls, "{server_error:?}");

    // A user config overrides everything, added roots included.
    let other = Ca::new("another CA");
    let error = ClientBuilder::new()
        .add_root_certificate(ca.der())
        .tls_config(trusting(&other))
        .connect(format!("wss://localhost:{port}/"))
        .await
        .err()
        .unwrap();
    assert_eq!(certificate_error(&error), CertificateError::UnknownIssuer);
}

#[tokio::test]
async fn a_wrong_host_name_fails_with_a_tls_error() {
    let ca = Ca::new("wsio test CA");
    let leaf = ca.leaf(&["server.example"], None);
    let tls = wsio::tls::acceptor(leaf.chain, leaf.key).unwrap();
    let (port, _saw) = serve(tls, Acceptor::new()).await;
    for host in ["localhost", "127.0.0.1"] {
        let error = ClientBuilder::new()
            .tls_config(trusting(&ca))
            .connect(format!("wss://{host}:{port}/"))
            .await
            .err()
            .unwrap();
        let reason = certificate_error(&error);
        assert!(
            matches!(
                reason,
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
            ),
            "{host}: {reason:?}"
        );
    }
}

#[tokio::test]
async fn an_expired_certificate_fails_with_a_tls_error() {
    let ca = Ca::new("wsio test CA");
    let leaf = ca.leaf(&["localhost"], Some((2000, 2001)));
    let tls = wsio::tls::acceptor(leaf.chain, leaf.key).unwrap();
    let (port, _saw) = serve(tls, Acceptor::new()).await;
    let error = ClientBuilder::new()
        .tls_config(trusting(&ca))
        .connect(format!("wss://localhost:{port}/"))
        .await
        .err()
        .unwrap();
    let reason = certificate_error(&error);
    assert!(
        matches!(
            reason,
            CertificateError::Expired | CertificateError::ExpiredContext { .. }
        ),
        "{reason:?}"
    );
}

#[tokio::test]
async fn a_redirect_from_wss_to_ws_is_refused() {
    let ca = Ca::new("wsio test CA");
    let leaf = ca.leaf(&["localhost"], None);
    let tls = wsio::tls::acceptor(leaf.chain, leaf.key).unwrap();
    let acceptor = Acceptor::new().on_request(|_| {
        Err(Reject::new(StatusCode::MOVED_PERMANENTLY)
            .header(LOCATION, HeaderValue::from_static("ws://localhost:1/plain")))
    });
    let (port, _saw) = serve(tls, acceptor).await;
    let error = ClientBuilder::new()
        .tls_config(trusting(&ca))
        .max_redirects(5)
        .connect(format!("wss://localhost:{port}/"))
        .await
        .err()
        .unwrap();
    assert_eq!(error.kind(), ErrorKind::Handshake);
    match &error {
        Error::Handshake(e) => match &**e {
            HandshakeError::InvalidRedirect { reason, .. } => {
                assert!(reason.contains("downgrade"), "{reason}")
            }
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_client_that_never_starts_tls_is_cut_off() {
    let ca = Ca::new("wsio test CA");
    let leaf = ca.leaf(&["localhost"], None);
    let tls = wsio::tls::acceptor(leaf.chain, leaf.key).unwrap();
    let acceptor =
        Acceptor::new().config(Config::default().handshake_timeout(Duration::from_millis(300)));
    let (port, mut saw) = serve(tls, acceptor).await;
    let _silent = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let error = tokio::time::timeout(Duration::from_secs(5), saw.recv())
        .await
        .unwrap()
        .unwrap()
        .err()
        .unwrap();
    assert!(
        matches!(error, Error::Timeout(Timeout::Handshake)),
        "{error:?}"
    );
}

#[tokio::test]
async fn unusable_certificates_and_keys_are_tls_errors() {
    let error = ClientBuilder::new()
        .add_root_certificate(CertificateDer::from(vec![1, 2, 3]))
        .connect("wss://localhost:1/")
        .await
        .err()
        .unwrap();
    assert_eq!(error.kind(), ErrorKind::Tls, "{error:?}");

    let ca = Ca::new("wsio test CA");
    let leaf = ca.leaf(&["localhost"], None);
    let other = ca.leaf(&["localhost"], None);
    // A key that does not belong to the certificate.
    let error = wsio::tls::acceptor(leaf.chain, other.key).err().unwrap();
    assert_eq!(error.kind(), ErrorKind::Tls, "{error:?}");
    let error = wsio::tls::acceptor_from_pem(leaf.chain_pem.as_bytes(), b"no key here")
        .err()
        .unwrap();
    assert!(matches!(&error, Error::Tls(e) if matches!(**e, TlsError::Pem(_))));
}

/// A TLS acceptor with a certificate for `localhost` from `ca`, and a loopback listener.
async fn localhost_listener(ca: &Ca) -> (TlsAcceptor, TcpListener, u16) {
    let leaf = ca.leaf(&["localhost"], None);
    let tls = wsio::tls::acceptor(leaf.chain, leaf.key).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    (tls, listener, port)
}

#[tokio::test]
async fn a_stream_accepted_by_hand_works_with_the_generic_accept() {
    let ca = Ca::new("wsio test CA");
    let (tls, listener, port) = localhost_listener(&ca).await;
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let stream = tls.accept(tcp).await.unwrap();
        assert!(stream.tls_protocol_version().is_some());
        let mut ws = wsio::accept(stream).await.unwrap();
        let message = ws.recv().await.unwrap().unwrap();
        ws.send(message).await.unwrap();
    });
    let (mut ws, _) = ClientBuilder::new()
        .tls_config(trusting(&ca))
        .connect(format!("wss://localhost:{port}/"))
        .await
        .unwrap();
    echo(&mut ws).await;
    server.await.unwrap();
}

#[tokio::test]
async fn a_pending_upgrade_over_tls_is_answered_after_an_async_decision() {
    let ca = Ca::new("wsio test CA");
    let (tls, listener, port) = localhost_listener(&ca).await;
    let server = tokio::spawn(async move {
        let acceptor = Acceptor::new();
        for refuse in [true, false] {
            let (tcp, _) = listener.accept().await.unwrap();
            let pending = acceptor.read_request_tls(&tls, tcp).await.unwrap();
            assert!(pending.transport().tls_protocol_version().is_some());
            tokio::time::sleep(Duration::from_millis(20)).await; // an async decision
            if refuse {
                pending
                    .reject(Reject::new(StatusCode::UNAUTHORIZED))
                    .await
                    .unwrap();
                continue;
            }
            let (mut ws, _request) = pending.accept(Accept::new()).await.unwrap();
            let message = ws.recv().await.unwrap().unwrap();
            ws.send(message).await.unwrap();
        }
    });
    let client = ClientBuilder::new().tls_config(trusting(&ca));
    let url = format!("wss://localhost:{port}/");
    let error = client.connect(url.as_str()).await.err().unwrap();
    assert_eq!(error.kind(), ErrorKind::HandshakeRefused, "{error:?}");
    let (mut ws, _) = client.connect(url.as_str()).await.unwrap();
    echo(&mut ws).await;
    server.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generic_splitters_work_over_tls_under_load_both_ways() {
    use futures::{SinkExt, StreamExt};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const MESSAGES: usize = 300;
    const SIZE: usize = 64 * 1024;
    let ca = Ca::new("wsio split over TLS");
    let leaf = ca.leaf(&["localhost"], None);
    let tls =
        wsio::tls::acceptor_from_pem(leaf.chain_pem.as_bytes(), leaf.key_pem.as_bytes()).unwrap();
    let port = wss_echo_server(tls).await;
    let builder = ClientBuilder::new().add_root_certificate(ca.der());
    let url = format!("wss://localhost:{port}/");
    let limit = Duration::from_secs(60);

    // `futures::StreamExt::split` of the message API: the sink in one task, the stream here.
    let (ws, _) = builder.connect(url.as_str()).await.unwrap();
    let (mut sink, mut stream) = ws.split();
    let sender = tokio::spawn(async move {
        for i in 0..MESSAGES {
            sink.send(Message::binary(vec![i as u8; SIZE]))
                .await
                .unwrap();
        }
        sink
    });
    let counted = tokio::time::timeout(limit, async {
        for i in 0..MESSAGES {
            match stream.next().await {
                Some(Ok(Message::Binary(b))) => assert!(b.len() == SIZE && b[0] == i as u8),
                other => panic!("echo {i}: {other:?}"),
            }
        }
    })
    .await;
    assert!(counted.is_ok(), "the split message API stalled over TLS");
    drop(sender.await.unwrap());

    // `tokio::io::split` of a byte stream: the writer in one task, the reader here.
    let (ws, _) = builder.connect(url.as_str()).await.unwrap();
    let (mut rd, mut wr) = tokio::io::split(wsio::ByteStream::new(ws));
    let total = MESSAGES * SIZE / 2;
    let writer = tokio::spawn(async move {
        let data: Vec<u8> = (0..total).map(|i| (i % 251) as u8).collect();
        for piece in data.chunks(100_003) {
            wr.write_all(piece).await.unwrap();
        }
        wr.flush().await.unwrap();
        wr
    });
    let read = tokio::time::timeout(limit, async {
        let mut buf = vec![0u8; 64 * 1024];
        let mut at = 0;
        while at < total {
            let n = rd.read(&mut buf).await.unwrap();
            assert!(n > 0, "EOF at {at}");
            assert!(buf[..n]
                .iter()
                .enumerate()
                .all(|(i, &b)| b == ((at + i) % 251) as u8));
            at += n;
        }
    })
    .await;
    assert!(read.is_ok(), "the split byte stream stalled over TLS");
    drop(writer.await.unwrap());
}

/// A server presenting a `localhost` certificate from `server_ca`, asking clients for
/// certificates as `client_auth` says.
async fn serve_mutual(
    server_ca: &Ca,
    client_auth: ClientAuth,
) -> (u16, mpsc::UnboundedReceiver<wsio::Result<ServerSaw>>) {
    let leaf = server_ca.leaf(&["localhost"], None);
    let config =
        wsio::tls::server_config_with_client_auth(leaf.chain, leaf.key, client_auth).unwrap();
    serve(TlsAcceptor::from(config), Acceptor::new()).await
}

fn roots_of(ca: &Ca) -> RootCertStore {
    let mut roots = RootCertStore::empty();
    roots.add(ca.der()).unwrap();
    roots
}

#[tokio::test]
async fn a_client_certificate_is_verified_and_readable_on_the_server() {
    let (server_ca, client_ca) = (Ca::new("wsio server CA"), Ca::new("wsio client CA"));
    let (port, mut saw) =
        serve_mutual(&server_ca, ClientAuth::Required(roots_of(&client_ca))).await;
    let client = client_ca.client_leaf("alice");
    let identity =
        Identity::from_pem(client.chain_pem.as_bytes(), client.key_pem.as_bytes()).unwrap();
    assert_eq!(identity.chain(), &client.chain[..]);
    assert!(
        !format!("{identity:?}").contains("PRIVATE"),
        "a key is never printed"
    );
    let (mut ws, _) = ClientBuilder::new()
        .add_root_certificate(server_ca.der())
        .client_identity(identity)
        .connect(format!("wss://localhost:{port}/"))
        .await
        .unwrap();
    echo(&mut ws).await;
    let server = saw.recv().await.unwrap().unwrap();
    assert_eq!(server.client_certificates, Some(client.chain.len()));
    assert_eq!(server.client_certificate.as_ref(), Some(&client.chain[0]));
}

#[tokio::test]
async fn a_required_client_certificate_that_is_missing_or_untrusted_fails_on_both_sides() {
    let (server_ca, client_ca) = (Ca::new("wsio server CA"), Ca::new("wsio client CA"));
    let (port, mut saw) =
        serve_mutual(&server_ca, ClientAuth::Required(roots_of(&client_ca))).await;
    let builder = ClientBuilder::new().add_root_certificate(server_ca.der());

    // No certificate at all.
    let error = builder
        .connect(format!("wss://localhost:{port}/"))
        .await
        .err()
        .unwrap();
    assert_eq!(error.kind(), ErrorKind::Tls, "{error:?}");
    assert!(
        error.to_string().to_lowercase().contains("certificate"),
        "{error}"
    );
    let server_error = saw.recv().await.unwrap().err().unwrap();
    assert_eq!(server_error.kind(), ErrorKind::Tls, "{server_error:?}");
    assert!(
        matches!(&server_error, Error::Tls(tls)
            if matches!(**tls, TlsError::Rustls(rustls::Error::NoCertificatesPresented))),
        "{server_error:?}"
    );

    // A certificate from an authority the server does not trust.
    let stranger = Ca::new("some other CA").client_leaf("mallory");
    let error = builder
        .clone()
        .client_identity(Identity::new(stranger.chain, stranger.key))
        .connect(format!("wss://localhost:{port}/"))
        .await
        .err()
        .unwrap();
    assert_eq!(error.kind(), ErrorKind::Tls, "{error:?}");
    let server_error = saw.recv().await.unwrap().err().unwrap();
    assert_eq!(
        certificate_error(&server_error),
        CertificateError::UnknownIssuer
    );

    // A certificate for servers only (no client-authentication usage) is refused too.
    let server_only = client_ca.leaf(&["alice"], None);
    let error = builder
        .clone()
        .client_identity(Identity::new(server_only.chain, server_only.key))
        .connect(format!("wss://localhost:{port}/"))
        .await
        .err()
        .unwrap();
    assert_eq!(error.kind(), ErrorKind::Tls, "{error:?}");
    let server_error = saw.recv().await.unwrap().err().unwrap();
    assert_eq!(server_error.kind(), ErrorKind::Tls, "{server_error:?}");
}

#[tokio::test]
async fn an_optional_client_certificate_lets_anonymous_clients_in() {
    let (server_ca, client_ca) = (Ca::new("wsio server CA"), Ca::new("wsio client CA"));
    let (port, mut saw) =
        serve_mutual(&server_ca, ClientAuth::Optional(roots_of(&client_ca))).await;
    let builder = ClientBuilder::new().add_root_certificate(server_ca.der());
    let (mut ws, _) = builder
        .connect(format!("wss://localhost:{port}/"))
        .await
        .unwrap();
    echo(&mut ws).await;
    assert_eq!(saw.recv().await.unwrap().unwrap().client_certificate, None);
    let client = client_ca.client_leaf("bob");
    let (mut ws, _) = builder
        .client_identity(Identity::new(client.chain.clone(), client.key))
        .connect(format!("wss://localhost:{port}/"))
        .await
        .unwrap();
    echo(&mut ws).await;
    assert_eq!(
        saw.recv()
            .await
            .unwrap()
            .unwrap()
            .client_certificate
            .as_ref(),
        Some(&client.chain[0])
    );
}

#[test]
fn client_authentication_needs_an_authority() {
    let ca = Ca::new("wsio server CA");
    let leaf = ca.leaf(&["localhost"], None);
    let error = wsio::tls::server_config_with_client_auth(
        leaf.chain,
        leaf.key,
        ClientAuth::Required(RootCertStore::empty()),
    )
    .err()
    .unwrap();
    assert!(
        matches!(&error, Error::Tls(tls) if matches!(**tls, TlsError::ClientRoots(_))),
        "{error:?}"
    );
    let error = Identity::from_pem(b"junk", b"junk").unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Tls);
}
