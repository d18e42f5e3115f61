//! What the `tracing` feature emits (run with `cargo test --features tracing --test tracing`):
//! a `websocket` span per connection with its role, peer and negotiation, and events for the
//! opening handshake, TLS, the closing handshake, a failure and a keepalive timeout, and for a
//! refused upgrade. Each test captures its own thread's events (current-thread runtime).
#![cfg(feature = "tracing")]

mod support;

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[cfg(feature = "tls")]
use support::certs::Ca;
use support::*;
use tokio::net::TcpListener;
use wsio::server::Acceptor;
use wsio::{ClientBuilder, CloseCode, Config, Message, Role};

/// Everything formatted so far, shared with the subscriber's writer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn lines(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// The one line that contains every one of `parts`.
    fn line_with(&self, parts: &[&str]) -> String {
        let lines = self.lines();
        lines
            .iter()
            .find(|line| parts.iter().all(|part| line.contains(part)))
            .unwrap_or_else(|| panic!("no line with {parts:?} in:\n{}", lines.join("\n")))
            .clone()
    }
}

/// Captures this thread's events at every level until the guard is dropped.
fn capture() -> (Captured, tracing::subscriber::DefaultGuard) {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    (captured, tracing::subscriber::set_default(subscriber))
}

/// An echo server on loopback; the accept loop runs on this thread, so its events are captured.
async fn echo_server(acceptor: Acceptor) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok((mut ws, _)) = acceptor.accept(tcp).await {
                    while let Some(Ok(message)) = ws.recv().await {
                        if message.is_data() && ws.send(message).await.is_err() {
                            break;
                        }
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_connection_has_a_span_and_its_handshakes_are_events() {
    let (captured, _guard) = capture();
    let addr = echo_server(Acceptor::new()).await;
    let (mut ws, _) = ClientBuilder::new()
        .subprotocols(["chat"])
        .connect(format!("ws://{addr}/room"))
        .await
        .unwrap();
    within("echo", ws.send_text("hi")).await.unwrap();
    assert_eq!(
        within("echo", ws.recv()).await.unwrap().unwrap(),
        Message::text("hi")
    );
    within("close", ws.close(CloseCode::NORMAL, "done"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await; // the server's end

    let client_span = "websocket{role=Client";
    let peer = format!("peer={addr}");
    captured.line_with(&[client_span, "opening handshake done"]);
    captured.line_with(&[
        "websocket{role=Server",
        "opening handshake done",
        "path=/room",
    ]);
    // Who closed, and with what, from both sides.
    captured.line_with(&[
        client_span,
        &peer,
        "connection closed",
        "closed_by=\"us\"",
        "sent_code=1000",
    ]);
    captured.line_with(&[
        "websocket{role=Server",
        "connection closed",
        "closed_by=\"peer\"",
        "peer_code=1000",
        "peer_reason=\"done\"",
    ]);
    // Nothing per message, at any level.
    assert!(
        captured.lines().iter().all(|line| !line.contains("hi")),
        "{:#?}",
        captured.lines()
    );
}

#[tokio::test]
async fn a_failure_and_a_timeout_are_events_with_their_codes() {
    let (captured, _guard) = capture();
    let (mut ws, mut peer) = scripted(Role::Server, Config::default());
    peer.send(true, 0x3, b"reserved opcode").await;
    assert!(within("recv", ws.recv()).await.unwrap().is_err());
    captured.line_with(&[
        "WARN",
        "websocket{role=Server",
        "connection failed",
        "close_code=1002",
    ]);

    let config = Config::default()
        .ping_interval(Some(Duration::from_millis(50)))
        .pong_timeout(Duration::from_millis(50));
    let (mut ws, _silent_peer) = scripted(Role::Client, config);
    assert!(within("recv", ws.recv()).await.unwrap().is_err());
    captured.line_with(&[
        "INFO",
        "websocket{role=Client",
        "gave up on the peer",
        "Pong",
    ]);
}

#[tokio::test]
async fn a_refused_upgrade_is_an_event_on_both_sides() {
    let (captured, _guard) = capture();
    let addr = echo_server(Acceptor::new().allowed_origins(["https://good.example"])).await;
    let error = ClientBuilder::new()
        .origin("https://evil.example")
        .connect(format!("ws://{addr}/"))
        .await
        .err()
        .unwrap();
    assert_eq!(error.kind(), wsio::ErrorKind::HandshakeRefused);
    captured.line_with(&["refused an upgrade request", "status=403"]);
    captured.line_with(&["the server refused the upgrade", "status=403"]);
}

#[cfg(feature = "tls")]
#[tokio::test]
async fn tls_details_are_an_event_on_both_sides() {
    let (captured, _guard) = capture();
    let ca = Ca::new("wsio tracing CA");
    let leaf = ca.leaf(&["localhost"], None);
    let tls = wsio::tls::acceptor(leaf.chain, leaf.key).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let (mut ws, _) = Acceptor::new().accept_tls(&tls, tcp).await.unwrap();
        while ws.recv().await.is_some() {}
    });
    let (mut ws, _) = ClientBuilder::new()
        .add_root_certificate(ca.der())
        .connect(format!("wss://localhost:{port}/"))
        .await
        .unwrap();
    within("close", ws.close(CloseCode::NORMAL, ""))
        .await
        .unwrap();
    captured.line_with(&[
        "websocket{role=Client",
        "TLS in use",
        "TLSv1_3",
        "alpn=\"http/1.1\"",
    ]);
    captured.line_with(&["websocket{role=Server", "TLS in use", "TLSv1_3"]);
}
