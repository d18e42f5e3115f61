//! The axum extractor (`wsio::axum::WebSocketUpgrade`) under `axum::serve`: over HTTP/1.1 with
//! wsio's client and real peers (Python `websockets`, Node `ws`), over HTTP/2 (h2c with prior
//! knowledge) as an RFC 8441 extended CONNECT from hyper's h2 client; the rejections, the
//! failed-upgrade hook, the subprotocol choice and the HTTP version the upgrade came on.

#![cfg(feature = "axum")]

mod support;

use std::net::SocketAddr;

use axum::extract::State;
use axum::response::Response;
use axum::routing::any;
use axum::Router;
use http::{StatusCode, Version};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use wsio::axum::WebSocketUpgrade;
use wsio::upgrade::UpgradedIo;
use wsio::{Acceptor, ClientBuilder, WebSocket};

use support::http::{
    assert_status, drive_peer, echo_round_trip, extended_connect, h2_connect, h2_websocket,
    raw_exchange, spawn_echo_client, upgrade_request,
};
use support::peers::RealPeer;
use support::within;

/// What the handler reports to the test, and the acceptor it answers with.
#[derive(Clone)]
struct App {
    acceptor: Acceptor,
    sockets: mpsc::UnboundedSender<(Version, WebSocket<UpgradedIo>)>,
    failures: mpsc::UnboundedSender<String>,
}

async fn handler(State(app): State<App>, ws: WebSocketUpgrade) -> Response {
    let version = ws.version();
    let (sockets, failures) = (app.sockets.clone(), app.failures.clone());
    ws.acceptor(app.acceptor.clone())
        .protocols(["chat.v2", "chat.v1"])
        .on_failed_upgrade(move |error| {
            let _ = failures.send(error.to_string());
        })
        .on_upgrade(move |ws| async move {
            let _ = sockets.send((version, ws));
        })
        .await
}

/// An `axum::serve` server with [`handler`] at `/ws`.
struct Server {
    addr: SocketAddr,
    sockets: mpsc::UnboundedReceiver<(Version, WebSocket<UpgradedIo>)>,
    failures: mpsc::UnboundedReceiver<String>,
}

impl Server {
    async fn start(acceptor: Acceptor) -> Server {
        let (sockets_tx, sockets) = mpsc::unbounded_channel();
        let (failures_tx, failures) = mpsc::unbounded_channel();
        let app = App {
            acceptor,
            sockets: sockets_tx,
            failures: failures_tx,
        };
        // `any`: an HTTP/2 upgrade is a CONNECT, an HTTP/1.1 one a GET.
        let router = Router::new().route("/ws", any(handler)).with_state(app);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, router).await });
        Server {
            addr,
            sockets,
            failures,
        }
    }

    /// The next upgraded connection, with the HTTP version its request came on.
    async fn socket(&mut self) -> (Version, WebSocket<UpgradedIo>) {
        within("the upgraded connection", self.sockets.recv())
            .await
            .expect("the server runs")
    }

    async fn failure(&mut self) -> String {
        within("the failed-upgrade hook", self.failures.recv())
            .await
            .expect("the server runs")
    }
}

#[tokio::test]
async fn wsio_client_echoes_through_axum_over_http1() {
    let mut server = Server::start(Acceptor::new()).await;
    let url = format!("ws://{}/ws", server.addr);
    let (mut client, response) = within("connecting", wsio::connect(url.as_str()))
        .await
        .expect("the upgrade");
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    // The client offered no subprotocol: none is chosen.
    assert_eq!(client.protocol(), None);
    let (version, ws) = server.socket().await;
    assert_eq!(version, Version::HTTP_11);
    echo_round_trip(ws, &mut client).await;
}

async fn real_peer_client(peer: RealPeer) {
    let mut server = Server::start(Acceptor::new()).await;
    let process = spawn_echo_client(peer, &format!("ws://{}/ws", server.addr));
    let (_, ws) = server.socket().await;
    drive_peer(ws, process).await;
}

#[tokio::test]
async fn python_websockets_client_through_axum() {
    real_peer_client(RealPeer::Python).await;
}

#[tokio::test]
async fn node_ws_client_through_axum() {
    real_peer_client(RealPeer::Node).await;
}

#[tokio::test]
async fn an_h2c_extended_connect_through_axum_serve_arrives_as_http2() {
    let mut server = Server::start(Acceptor::new()).await;
    let mut sender = h2_connect(server.addr).await;
    let (response, stream) = extended_connect(
        &mut sender,
        server.addr,
        "/ws",
        &[
            ("sec-websocket-version", "13"),
            ("sec-websocket-protocol", "chat.v1"),
        ],
    )
    .await;
    assert_status(&response, StatusCode::OK);
    assert!(!response.headers().contains_key("sec-websocket-accept"));
    assert_eq!(response.headers()["sec-websocket-protocol"], "chat.v1");
    let (version, ws) = server.socket().await;
    assert_eq!(version, Version::HTTP_2);
    assert_eq!(ws.protocol(), Some("chat.v1"));
    let mut client = h2_websocket(stream.expect("the stream"));
    echo_round_trip(ws, &mut client).await;
}

#[tokio::test]
async fn the_servers_preferred_protocol_among_the_offered_is_chosen() {
    let mut server = Server::start(Acceptor::new()).await;
    let url = format!("ws://{}/ws", server.addr);
    let (client, response) = within(
        "connecting",
        ClientBuilder::new()
            .subprotocols(["chat.v1", "chat.v2", "chat.v3"])
            .connect(url.as_str()),
    )
    .await
    .expect("the upgrade");
    // The client prefers chat.v1; the server's order (chat.v2 first) wins.
    assert_eq!(response.headers()["sec-websocket-protocol"], "chat.v2");
    assert_eq!(client.protocol(), Some("chat.v2"));
    let (_, ws) = server.socket().await;
    assert_eq!(ws.protocol(), Some("chat.v2"));
}

#[tokio::test]
async fn bad_requests_are_rejected_with_the_acceptors_answers() {
    let server = Server::start(Acceptor::new()).await;

    let no_key = upgrade_request("/ws", "13", "").replace("Sec-WebSocket-Key", "X-Key");
    let answer = raw_exchange(server.addr, no_key.as_bytes()).await;
    assert_eq!(answer.status(), 400, "{}", answer.head);
    assert!(String::from_utf8_lossy(&answer.body).contains("Sec-WebSocket-Key"));

    let old_draft = upgrade_request("/ws", "8", "");
    let answer = raw_exchange(server.addr, old_draft.as_bytes()).await;
    assert_eq!(answer.status(), 426, "{}", answer.head);
    assert_eq!(answer.header("sec-websocket-version"), Some("13"));

    let no_upgrade = "GET /ws HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let answer = raw_exchange(server.addr, no_upgrade.as_bytes()).await;
    assert_eq!(answer.status(), 400, "{}", answer.head);

    // Over HTTP/2 too.
    let mut sender = h2_connect(server.addr).await;
    let (response, stream) = extended_connect(
        &mut sender,
        server.addr,
        "/ws",
        &[("sec-websocket-version", "7")],
    )
    .await;
    assert_status(&response, StatusCode::UPGRADE_REQUIRED);
    assert_eq!(response.headers()["sec-websocket-version"], "13");
    assert!(stream.is_none());
}

#[tokio::test]
async fn a_refused_origin_is_a_403_and_calls_on_failed_upgrade() {
    let acceptor = Acceptor::new().allowed_origins(["https://good.example"]);
    let mut server = Server::start(acceptor).await;
    let evil = upgrade_request("/ws", "13", "Origin: https://evil.example\r\n");
    let answer = raw_exchange(server.addr, evil.as_bytes()).await;
    assert_eq!(answer.status(), 403, "{}", answer.head);
    assert_eq!(answer.body, b"origin not allowed");
    assert!(server.failure().await.contains("403"));

    let good = upgrade_request("/ws", "13", "Origin: https://good.example\r\n");
    let answer = raw_exchange(server.addr, good.as_bytes()).await;
    assert_eq!(answer.status(), 101, "{}", answer.head);
    server.socket().await;
}
