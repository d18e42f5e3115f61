//! WebSocket upgrades inside a hyper 1 server (`wsio::upgrade`): over HTTP/1.1 with wsio's
//! client and real peers (Python `websockets`, Node `ws`), the answers to bad requests, a
//! first frame pipelined behind the request, a subprotocol chosen by the acceptor; over
//! HTTP/2 as an RFC 8441 extended CONNECT from hyper's h2 client.

#![cfg(feature = "hyper")]

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use wsio::server::{requested_subprotocols, Accept};
use wsio::upgrade::{is_upgrade_request, upgrade, UpgradedIo};
use wsio::{Acceptor, ClientBuilder, CloseCode, ErrorKind, Message, WebSocket};

use support::http::{
    assert_status, drive_peer, echo_round_trip, extended_connect, h2_connect, h2_websocket,
    raw_exchange, spawn_echo_client, upgrade_request, ACCEPT,
};
use support::peers::RealPeer;
use support::{frame, within, OP_TEXT};

/// Which HTTP the test server speaks.
#[derive(Clone, Copy)]
enum Http {
    One,
    /// HTTP/2 with prior knowledge, the CONNECT protocol enabled (RFC 8441 §3).
    Two,
}

/// A hyper server that upgrades every WebSocket request with `acceptor`: the test receives
/// each connection (or the error of its upgrade) and each refusal's error text.
struct Server {
    addr: SocketAddr,
    sockets: mpsc::UnboundedReceiver<wsio::Result<WebSocket<UpgradedIo>>>,
    refusals: mpsc::UnboundedReceiver<String>,
}

impl Server {
    async fn start(http: Http, acceptor: Acceptor) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (socket_tx, sockets) = mpsc::unbounded_channel();
        let (refusal_tx, refusals) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (acceptor, socket_tx, refusal_tx) =
                    (acceptor.clone(), socket_tx.clone(), refusal_tx.clone());
                let service = service_fn(move |request| {
                    serve(
                        request,
                        acceptor.clone(),
                        socket_tx.clone(),
                        refusal_tx.clone(),
                    )
                });
                let io = TokioIo::new(tcp);
                tokio::spawn(async move {
                    let _ = match http {
                        Http::One => {
                            hyper::server::conn::http1::Builder::new()
                                .serve_connection(io, service)
                                .with_upgrades()
                                .await
                        }
                        Http::Two => {
                            hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                                .enable_connect_protocol()
                                .serve_connection(io, service)
                                .await
                        }
                    };
                });
            }
        });
        Server {
            addr,
            sockets,
            refusals,
        }
    }

    /// The next upgraded connection.
    async fn socket(&mut self) -> WebSocket<UpgradedIo> {
        within("the upgraded connection", self.sockets.recv())
            .await
            .expect("the server runs")
            .expect("the upgrade completes")
    }

    /// The error of the next refusal, as text.
    async fn refusal(&mut self) -> String {
        within("a refusal", self.refusals.recv())
            .await
            .expect("the server runs")
    }
}

async fn serve(
    mut request: Request<Incoming>,
    acceptor: Acceptor,
    sockets: mpsc::UnboundedSender<wsio::Result<WebSocket<UpgradedIo>>>,
    refusals: mpsc::UnboundedSender<String>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if request.uri().path() == "/plain" && !is_upgrade_request(&request) {
        return Ok(Response::new(Full::new(Bytes::from_static(b"plain"))));
    }
    match upgrade(&mut request, &acceptor).await {
        Ok((response, websocket)) => {
            tokio::spawn(async move {
                let _ = sockets.send(websocket.await);
            });
            Ok(response)
        }
        Err(refusal) => {
            let _ = refusals.send(refusal.error().to_string());
            Ok(refusal.into_response())
        }
    }
}

#[tokio::test]
async fn wsio_client_echoes_through_a_hyper_h1_upgrade() {
    let mut server = Server::start(Http::One, Acceptor::new()).await;
    let url = format!("ws://{}/echo", server.addr);
    let (mut client, response) = within("connecting", wsio::connect(url.as_str()))
        .await
        .expect("the upgrade");
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    echo_round_trip(server.socket().await, &mut client).await;
}

#[tokio::test]
async fn a_plain_request_is_left_to_the_application() {
    let server = Server::start(Http::One, Acceptor::new()).await;
    let answer = raw_exchange(
        server.addr,
        b"GET /plain HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n",
    )
    .await;
    assert_eq!(answer.status(), 200, "{}", answer.head);
    assert_eq!(answer.body, b"plain");
}

async fn real_peer_client(peer: RealPeer) {
    let mut server = Server::start(Http::One, Acceptor::new()).await;
    let process = spawn_echo_client(peer, &format!("ws://{}/echo", server.addr));
    let ws = server.socket().await;
    drive_peer(ws, process).await;
}

#[tokio::test]
async fn python_websockets_client_through_a_hyper_h1_upgrade() {
    real_peer_client(RealPeer::Python).await;
}

#[tokio::test]
async fn node_ws_client_through_a_hyper_h1_upgrade() {
    real_peer_client(RealPeer::Node).await;
}

#[tokio::test]
async fn bad_requests_get_the_acceptors_refusals() {
    let acceptor = Acceptor::new().allowed_origins(["https://good.example"]);
    let mut server = Server::start(Http::One, acceptor).await;

    let no_key = upgrade_request("/echo", "13", "").replace("Sec-WebSocket-Key", "X-Key");
    let answer = raw_exchange(server.addr, no_key.as_bytes()).await;
    assert_eq!(answer.status(), 400, "{}", answer.head);
    assert!(
        String::from_utf8_lossy(&answer.body).contains("Sec-WebSocket-Key"),
        "{:?}",
        answer.body
    );
    assert_eq!(answer.header("connection"), Some("close"));
    assert!(server.refusal().await.contains("Sec-WebSocket-Key"));

    let old_draft = upgrade_request("/echo", "8", "");
    let answer = raw_exchange(server.addr, old_draft.as_bytes()).await;
    assert_eq!(answer.status(), 426, "{}", answer.head);
    assert_eq!(answer.header("sec-websocket-version"), Some("13"));
    server.refusal().await;

    let post = upgrade_request("/echo", "13", "Content-Length: 0\r\n").replacen("GET", "POST", 1);
    let answer = raw_exchange(server.addr, post.as_bytes()).await;
    assert_eq!(answer.status(), 405, "{}", answer.head);
    assert_eq!(answer.header("allow"), Some("GET"));
    server.refusal().await;

    let evil = upgrade_request("/echo", "13", "Origin: https://evil.example\r\n");
    let answer = raw_exchange(server.addr, evil.as_bytes()).await;
    assert_eq!(answer.status(), 403, "{}", answer.head);
    assert_eq!(answer.body, b"origin not allowed");
    assert!(server.refusal().await.contains("403"));

    let good = upgrade_request("/echo", "13", "Origin: https://good.example\r\n");
    let answer = raw_exchange(server.addr, good.as_bytes()).await;
    assert_eq!(answer.status(), 101, "{}", answer.head);
    assert_eq!(answer.header("sec-websocket-accept"), Some(ACCEPT));
}

#[tokio::test]
async fn a_refusal_of_on_request_is_sent_with_its_headers_and_body() {
    let acceptor = Acceptor::new().on_request(|request| {
        if request.uri().path() == "/private" {
            let reject = wsio::server::Reject::new(StatusCode::UNAUTHORIZED)
                .header(
                    http::header::WWW_AUTHENTICATE,
                    http::HeaderValue::from_static("Bearer"),
                )
                .body("who are you?");
            return Err(reject);
        }
        Ok(Accept::new())
    });
    let mut server = Server::start(Http::One, acceptor).await;
    let answer = raw_exchange(
        server.addr,
        upgrade_request("/private", "13", "").as_bytes(),
    )
    .await;
    assert_eq!(answer.status(), 401, "{}", answer.head);
    assert_eq!(answer.header("www-authenticate"), Some("Bearer"));
    assert_eq!(answer.body, b"who are you?");
    assert!(server.refusal().await.contains("401"));
}

#[tokio::test]
async fn a_first_frame_pipelined_behind_the_request_is_not_lost() {
    let mut server = Server::start(Http::One, Acceptor::new()).await;
    let mut bytes = upgrade_request("/echo", "13", "").into_bytes();
    bytes.extend(frame(true, 0, OP_TEXT, Some([1, 2, 3, 4]), b"early bird"));
    let answer = raw_exchange(server.addr, &bytes).await;
    assert_eq!(answer.status(), 101, "{}", answer.head);
    let mut ws = server.socket().await;
    let first = within("the pipelined frame", ws.recv())
        .await
        .expect("a message")
        .expect("no error");
    assert_eq!(first, Message::text("early bird"));
}

#[tokio::test]
async fn the_acceptor_chooses_a_subprotocol_the_client_offered() {
    let acceptor = Acceptor::new().on_request(|request| {
        let v2 = requested_subprotocols(request).any(|p| p == "chat.v2");
        Ok(Accept::new().protocol(v2.then_some("chat.v2")))
    });
    let mut server = Server::start(Http::One, acceptor).await;
    let url = format!("ws://{}/chat", server.addr);
    let (client, response) = within(
        "connecting",
        ClientBuilder::new()
            .subprotocols(["chat.v1", "chat.v2"])
            .connect(url.as_str()),
    )
    .await
    .expect("the upgrade");
    assert_eq!(response.headers()["sec-websocket-protocol"], "chat.v2");
    assert_eq!(client.protocol(), Some("chat.v2"));
    assert_eq!(server.socket().await.protocol(), Some("chat.v2"));
}

#[tokio::test]
async fn an_h2_extended_connect_gets_200_without_accept_and_echoes() {
    let mut server = Server::start(Http::Two, Acceptor::new()).await;
    let mut sender = h2_connect(server.addr).await;
    let (response, stream) = extended_connect(
        &mut sender,
        server.addr,
        "/echo",
        &[
            ("sec-websocket-version", "13"),
            ("sec-websocket-protocol", "chat"),
        ],
    )
    .await;
    assert_status(&response, StatusCode::OK);
    assert_eq!(response.version(), http::Version::HTTP_2);
    assert!(!response.headers().contains_key("sec-websocket-accept"));
    assert!(!response.headers().contains_key("sec-websocket-protocol"));
    let mut client = h2_websocket(stream.expect("the stream"));
    echo_round_trip(server.socket().await, &mut client).await;
}

#[tokio::test]
async fn two_websockets_share_one_h2_connection() {
    let mut server = Server::start(Http::Two, Acceptor::new()).await;
    let mut sender = h2_connect(server.addr).await;
    let version = [("sec-websocket-version", "13")];
    let (_, first) = extended_connect(&mut sender, server.addr, "/a", &version).await;
    let (_, second) = extended_connect(&mut sender, server.addr, "/b", &version).await;
    let mut first = h2_websocket(first.expect("a stream"));
    let mut second = h2_websocket(second.expect("a stream"));
    let (server_a, server_b) = (server.socket().await, server.socket().await);
    // Both streams carry messages at once, each to its own server connection.
    tokio::join!(
        echo_round_trip(server_a, &mut first),
        echo_round_trip(server_b, &mut second)
    );
}

#[tokio::test]
async fn an_h2_extended_connect_with_a_wrong_version_gets_426() {
    let mut server = Server::start(Http::Two, Acceptor::new()).await;
    let mut sender = h2_connect(server.addr).await;
    let (response, stream) = extended_connect(
        &mut sender,
        server.addr,
        "/echo",
        &[("sec-websocket-version", "8")],
    )
    .await;
    assert_status(&response, StatusCode::UPGRADE_REQUIRED);
    assert_eq!(response.headers()["sec-websocket-version"], "13");
    assert!(!response.headers().contains_key("connection"));
    assert!(stream.is_none());
    assert!(server.refusal().await.contains("Sec-WebSocket-Version"));
    // The refusal ends only its stream: the connection takes the next one.
    let (response, stream) = extended_connect(
        &mut sender,
        server.addr,
        "/echo",
        &[("sec-websocket-version", "13")],
    )
    .await;
    assert_status(&response, StatusCode::OK);
    assert!(stream.is_some());
}

/// A valid HTTP/1.1 upgrade request, as hyper would hand it over (without its `OnUpgrade`).
fn built_request() -> Request<()> {
    Request::builder()
        .uri("/echo")
        .header("host", "localhost")
        .header("upgrade", "websocket")
        .header("connection", "upgrade")
        .header("sec-websocket-key", support::http::KEY)
        .header("sec-websocket-version", "13")
        .body(())
        .unwrap()
}

#[tokio::test]
async fn an_invalid_config_is_refused_with_500_before_any_101() {
    let acceptor = Acceptor::new().config(wsio::Config::default().max_frame_size(0));
    let refusal = upgrade(&mut built_request(), &acceptor)
        .await
        .expect_err("an invalid config");
    assert_eq!(
        refusal.response().status(),
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(refusal.error().kind(), ErrorKind::InvalidConfig);
}

#[tokio::test]
async fn an_accept_of_a_subprotocol_never_offered_is_a_500() {
    let acceptor = Acceptor::new().on_request(|_| Ok(Accept::new().protocol(Some("mqtt"))));
    let refusal = upgrade(&mut built_request(), &acceptor)
        .await
        .expect_err("a subprotocol the client did not offer");
    assert_eq!(
        refusal.response().status(),
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert!(refusal.error().to_string().contains("mqtt"), "{}", refusal);
}

#[tokio::test]
async fn an_async_decision_not_made_in_time_is_a_503_and_a_timeout() {
    let config = wsio::Config::default().handshake_timeout(std::time::Duration::from_millis(50));
    let acceptor = Acceptor::new().config(config).on_request_async(|_| async {
        std::future::pending::<()>().await;
        Ok(Accept::new())
    });
    let refusal = within(
        "the decision's timeout",
        upgrade(&mut built_request(), &acceptor),
    )
    .await
    .expect_err("no decision");
    assert_eq!(refusal.response().status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refusal.error().kind(), ErrorKind::Timeout);
}

#[tokio::test]
async fn a_shutdown_closes_upgraded_connections_and_refuses_new_upgrades_with_503() {
    let shutdown = wsio::server::Shutdown::new().with_reason("bye");
    let mut server = Server::start(Http::One, Acceptor::new().shutdown(&shutdown)).await;
    let url = format!("ws://{}/", server.addr);
    let (mut client, _) = within("connecting", wsio::connect(url.as_str()))
        .await
        .expect("the upgrade");
    let mut ws = server.socket().await;
    assert_eq!(
        shutdown.open(),
        1,
        "the upgraded connection joined the shutdown"
    );
    let serving = tokio::spawn(async move { while let Some(Ok(_)) = ws.recv().await {} });
    let (report, close) = within("the shutdown", async {
        tokio::join!(
            shutdown.close_all(std::time::Duration::from_secs(5)),
            client.recv()
        )
    })
    .await;
    match close {
        Some(Ok(Message::Close(Some(frame)))) => {
            assert_eq!(
                (frame.code, frame.reason.as_str()),
                (CloseCode::GOING_AWAY, "bye")
            )
        }
        other => panic!("expected the shutdown's close: {other:?}"),
    }
    assert_eq!(
        (report.open, report.closed, report.cut),
        (1, 1, 0),
        "{report:?}"
    );
    within("the server's task", serving).await.unwrap();
    let refused = within("connecting", wsio::connect(url.as_str()))
        .await
        .expect_err("an upgrade during the shutdown");
    assert_eq!(refused.kind(), ErrorKind::HandshakeRefused, "{refused:?}");
    assert!(refused.to_string().contains("503"), "{refused}");
}
