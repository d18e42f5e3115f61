//! The server side of the opening handshake over real loopback TCP: the handshake timeout, the
//! bounds on the request head, the origin allow-list, refusals with any status and body, and
//! decisions that await (`on_request_async`, and `read_request` with its `PendingUpgrade`).

use std::time::{Duration, Instant};

use http::{HeaderValue, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use wsio::error::{HandshakeError, Timeout};
use wsio::server::{Accept, Acceptor, PendingUpgrade, Reject};
use wsio::{ClientBuilder, Config, Error, ErrorKind, Message};

type Accepted = wsio::Result<(wsio::WebSocket<TcpStream>, http::Request<()>)>;

/// Serves one connection with `acceptor`; the handle yields what `accept` returned.
async fn serve_one(acceptor: Acceptor) -> (String, JoinHandle<Accepted>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        acceptor.accept(tcp).await
    });
    (url, task)
}

fn host_of(url: &str) -> &str {
    url.trim_start_matches("ws://").trim_end_matches('/')
}

/// Everything the server sends until it closes (or 5 s pass).
async fn read_to_end(tcp: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut out)).await;
    out
}

fn request_head(host: &str, extra: &str) -> String {
    format!(
        "GET / HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

fn status_line(response: &[u8]) -> String {
    let text = String::from_utf8_lossy(response);
    text.lines().next().unwrap_or_default().to_owned()
}

/// The server's refusal inside a client's handshake error.
fn refusal(error: &Error) -> &http::Response<bytes::Bytes> {
    let Error::Handshake(refused) = error else {
        panic!("{error:?}")
    };
    let HandshakeError::Refused(response) = &**refused else {
        panic!("{refused:?}")
    };
    response
}

fn short_handshake(timeout: Duration) -> Acceptor {
    Acceptor::new().config(Config::default().handshake_timeout(timeout))
}

#[tokio::test]
async fn a_client_sending_a_byte_at_a_time_is_cut_off() {
    let (url, server) = serve_one(short_handshake(Duration::from_millis(400))).await;
    let mut tcp = TcpStream::connect(host_of(&url)).await.unwrap();
    let request = request_head(host_of(&url), "");
    let started = Instant::now();
    let trickle = async {
        for byte in request.as_bytes() {
            if tcp.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let outcome = tokio::time::timeout(Duration::from_secs(5), server);
    let (_, result) = tokio::join!(trickle, outcome);
    let error = result
        .expect("server cut off in time")
        .unwrap()
        .err()
        .unwrap();
    assert!(
        matches!(error, Error::Timeout(Timeout::Handshake)),
        "{error:?}"
    );
    assert_eq!(error.kind(), ErrorKind::Timeout);
    assert!(started.elapsed() < Duration::from_secs(3));
    // The server dropped the connection: the client reads its end.
    assert_eq!(read_to_end(&mut tcp).await, b"");
}

#[tokio::test]
async fn a_silent_client_is_cut_off() {
    let (url, server) = serve_one(short_handshake(Duration::from_millis(200))).await;
    let _tcp = TcpStream::connect(host_of(&url)).await.unwrap();
    let error = tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .unwrap()
        .unwrap()
        .err()
        .unwrap();
    assert!(matches!(error, Error::Timeout(Timeout::Handshake)));
}

#[tokio::test]
async fn the_handshake_timeout_applies_to_clients_too() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    // Accepts TCP and never answers.
    let _server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(tcp);
    });
    let started = Instant::now();
    let error = ClientBuilder::new()
        .config(Config::default().handshake_timeout(Duration::from_millis(300)))
        .connect(url.as_str())
        .await
        .err()
        .unwrap();
    assert!(
        matches!(error, Error::Timeout(Timeout::Handshake)),
        "{error:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn an_oversized_request_head_is_answered_431() {
    let acceptor = Acceptor::new().config(Config::default().max_handshake_size(1024));
    let (url, server) = serve_one(acceptor).await;
    let mut tcp = TcpStream::connect(host_of(&url)).await.unwrap();
    let big = format!("X-Big: {}\r\n", "a".repeat(4000));
    let _ = tcp
        .write_all(request_head(host_of(&url), &big).as_bytes())
        .await;
    let response = read_to_end(&mut tcp).await;
    assert_eq!(
        status_line(&response),
        "HTTP/1.1 431 Request Header Fields Too Large"
    );
    let error = server.await.unwrap().err().unwrap();
    match &error {
        Error::Handshake(e) => {
            assert!(matches!(
                **e,
                HandshakeError::HeaderTooLarge { limit: 1024 }
            ))
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_head_that_never_ends_is_cut_at_the_size_limit() {
    // The default limit (16 KiB): the server answers once that much arrived without an end.
    let (url, server) = serve_one(Acceptor::new()).await;
    let mut tcp = TcpStream::connect(host_of(&url)).await.unwrap();
    let mut head = request_head(host_of(&url), "").into_bytes();
    head.truncate(head.len() - 2);
    let _ = tcp.write_all(&head).await;
    let pad = format!("X-Pad: {}\r\n", "a".repeat(500));
    for _ in 0..40 {
        if tcp.write_all(pad.as_bytes()).await.is_err() {
            break;
        }
    }
    let response = read_to_end(&mut tcp).await;
    assert!(
        status_line(&response).starts_with("HTTP/1.1 431"),
        "{response:?}"
    );
    let error = server.await.unwrap().err().unwrap();
    assert_eq!(error.kind(), ErrorKind::Handshake);
}

#[tokio::test]
async fn too_many_header_lines_are_answered_431() {
    let acceptor = Acceptor::new().config(Config::default().max_handshake_headers(16));
    let (url, server) = serve_one(acceptor).await;
    let mut tcp = TcpStream::connect(host_of(&url)).await.unwrap();
    let extra: String = (0..20).map(|i| format!("X-H{i}: v\r\n")).collect();
    tcp.write_all(request_head(host_of(&url), &extra).as_bytes())
        .await
        .unwrap();
    let response = read_to_end(&mut tcp).await;
    assert_eq!(
        status_line(&response),
        "HTTP/1.1 431 Request Header Fields Too Large"
    );
    let error = server.await.unwrap().err().unwrap();
    match &error {
        Error::Handshake(e) => assert!(matches!(**e, HandshakeError::TooManyHeaders)),
        other => panic!("{other:?}"),
    }

    // Within the bound, the same request is accepted.
    let acceptor = Acceptor::new().config(Config::default().max_handshake_headers(32));
    let (url, server) = serve_one(acceptor).await;
    let mut tcp = TcpStream::connect(host_of(&url)).await.unwrap();
    tcp.write_all(request_head(host_of(&url), &extra).as_bytes())
        .await
        .unwrap();
    let mut head = [0u8; 12];
    tcp.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 101");
    assert!(server.await.unwrap().is_ok());
}

#[tokio::test]
async fn allowed_origins_answer_403_to_other_sites() {
    let allow = || Acceptor::new().allowed_origins(["https://good.example"]);

    // An allowed origin (any case) and a request without Origin are accepted.
    for client in [
        ClientBuilder::new().origin("https://GOOD.example"),
        ClientBuilder::new(),
    ] {
        let (url, server) = serve_one(allow()).await;
        let (mut ws, _) = client.connect(url.as_str()).await.unwrap();
        let (mut accepted, _) = server.await.unwrap().unwrap();
        ws.send_text("hi").await.unwrap();
        assert_eq!(accepted.recv().await.unwrap().unwrap(), Message::text("hi"));
    }

    let (url, server) = serve_one(allow()).await;
    let error = ClientBuilder::new()
        .origin("https://evil.example")
        .connect(url.as_str())
        .await
        .err()
        .unwrap();
    assert_eq!(error.kind(), ErrorKind::HandshakeRefused);
    let response = refusal(&error);
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let server_error = server.await.unwrap().err().unwrap();
    match &server_error {
        Error::Handshake(e) => assert!(matches!(
            **e,
            HandshakeError::Rejected {
                status: StatusCode::FORBIDDEN
            }
        )),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn on_request_runs_after_the_origin_check() {
    let acceptor = Acceptor::new()
        .allowed_origins(["https://good.example"])
        .on_request(|request| match request.uri().path() {
            "/ok" => Ok(Accept::new()),
            _ => Err(Reject::new(StatusCode::NOT_FOUND)),
        });
    let (url, server) = serve_one(acceptor).await;
    let error = ClientBuilder::new()
        .origin("https://good.example")
        .connect(format!("{url}nope"))
        .await
        .err()
        .unwrap();
    assert!(error.to_string().contains("404"), "{error}");
    drop(server.await);
}

#[tokio::test]
async fn a_refusal_reaches_the_client_with_status_headers_and_body() {
    let acceptor = Acceptor::new().on_request(|_| {
        Err(Reject::new(StatusCode::IM_A_TEAPOT)
            .header(
                http::header::HeaderName::from_static("x-reason"),
                HeaderValue::from_static("teapot"),
            )
            .body("short and stout"))
    });
    let (url, server) = serve_one(acceptor).await;
    let error = wsio::connect(url.as_str()).await.err().unwrap();
    assert_eq!(error.kind(), ErrorKind::HandshakeRefused);
    let response = refusal(&error);
    assert_eq!(response.status(), StatusCode::IM_A_TEAPOT);
    assert_eq!(response.headers()["x-reason"], "teapot");
    assert_eq!(&response.body()[..], b"short and stout");
    let server_error = server.await.unwrap().err().unwrap();
    assert_eq!(server_error.kind(), ErrorKind::Handshake);
}

#[tokio::test]
async fn a_long_refusal_body_reaches_the_client_as_a_bounded_prefix() {
    let body: String = (0..10_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let expected = body.clone();
    let acceptor = Acceptor::new()
        .on_request(move |_| Err(Reject::new(StatusCode::SERVICE_UNAVAILABLE).body(body.clone())));
    let (url, _server) = serve_one(acceptor).await;
    let error = wsio::connect(url.as_str()).await.err().unwrap();
    let response = refusal(&error);
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let prefix = response.body();
    assert_eq!(prefix.len(), wsio::handshake::client::MAX_REFUSED_BODY);
    assert_eq!(&prefix[..], &expected.as_bytes()[..prefix.len()]);
}

#[tokio::test]
async fn accepted_headers_and_subprotocol_reach_the_client() {
    let acceptor = Acceptor::new().on_request(|request| {
        let chosen = wsio::server::requested_subprotocols(request).find(|p| *p == "v1");
        Ok(Accept::new().protocol(chosen).header(
            http::header::HeaderName::from_static("x-server"),
            HeaderValue::from_static("wsio"),
        ))
    });
    let (url, server) = serve_one(acceptor).await;
    let (_ws, response) = ClientBuilder::new()
        .subprotocols(["v2", "v1"])
        .connect(url.as_str())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(response.headers()["x-server"], "wsio");
    assert_eq!(response.headers()["sec-websocket-protocol"], "v1");
    let (_accepted, request) = server.await.unwrap().unwrap();
    assert_eq!(request.headers()["sec-websocket-protocol"], "v2, v1");
}

#[tokio::test]
async fn a_zero_handshake_timeout_is_an_invalid_config() {
    let (url, _server) = serve_one(Acceptor::new()).await;
    let error = ClientBuilder::new()
        .config(Config::default().handshake_timeout(Duration::ZERO))
        .connect(url.as_str())
        .await
        .err()
        .unwrap();
    assert_eq!(error.kind(), ErrorKind::InvalidConfig);
}

// ---------------------------------------------------------------------------------------------
// Decisions that await.

/// Waits for the server to close the connection: what it sent before closing, or a panic if it
/// is still open after 5 s.
async fn until_closed(tcp: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut out))
        .await
        .expect("the server closed the connection")
        .expect("read");
    out
}

/// A listener and a raw client connected to it: the server's side of the TCP connection.
async fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap());
    let (client, accepted) = tokio::join!(client, listener.accept());
    (client.unwrap(), accepted.unwrap().0)
}

/// A raw client that sent a valid upgrade request, and the request as `acceptor` read it.
async fn pending_upgrade(acceptor: &Acceptor) -> (TcpStream, PendingUpgrade<TcpStream>) {
    let (mut client, tcp) = tcp_pair().await;
    client
        .write_all(request_head("localhost", "").as_bytes())
        .await
        .unwrap();
    (client, acceptor.read_request(tcp).await.unwrap())
}

#[tokio::test]
async fn an_async_decision_waiting_on_a_channel_accepts() {
    let gate = std::sync::Arc::new(tokio::sync::Notify::new());
    let acceptor = Acceptor::new().on_request_async({
        let gate = gate.clone();
        move |request| {
            let path = request.uri().path().to_owned();
            let gate = gate.clone();
            async move {
                gate.notified().await;
                assert_eq!(path, "/");
                Ok(Accept::new().protocol(Some("chat")))
            }
        }
    });
    let (url, server) = serve_one(acceptor).await;
    let client = tokio::spawn(async move {
        ClientBuilder::new()
            .subprotocols(["chat"])
            .connect(url.as_str())
            .await
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!client.is_finished(), "answered before the decision");
    gate.notify_one();
    let (mut ws, response) = client.await.unwrap().unwrap();
    assert_eq!(response.headers()["sec-websocket-protocol"], "chat");
    let (mut server_ws, _request) = server.await.unwrap().unwrap();
    ws.send_text("decided").await.unwrap();
    assert_eq!(
        server_ws.recv().await.unwrap().unwrap(),
        Message::text("decided")
    );
}

#[tokio::test]
async fn an_async_decision_after_a_timer_rejects_with_status_and_body() {
    let acceptor = Acceptor::new().on_request_async(|_| async {
        tokio::time::sleep(Duration::from_millis(30)).await;
        Err(Reject::new(StatusCode::UNAUTHORIZED).body("who are you?"))
    });
    let (url, server) = serve_one(acceptor).await;
    let error = wsio::connect(url.as_str()).await.err().unwrap();
    let response = refusal(&error);
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(&response.body()[..], b"who are you?");
    match server.await.unwrap().err().unwrap() {
        Error::Handshake(e) => assert!(
            matches!(*e, HandshakeError::Rejected { status } if status == StatusCode::UNAUTHORIZED),
            "{e:?}"
        ),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn the_handshake_timeout_fires_while_an_async_decision_deliberates() {
    let acceptor = short_handshake(Duration::from_millis(200))
        .on_request_async(|_| std::future::pending::<Result<Accept, Reject>>());
    let (url, server) = serve_one(acceptor).await;
    let mut tcp = TcpStream::connect(host_of(&url)).await.unwrap();
    tcp.write_all(request_head(host_of(&url), "").as_bytes())
        .await
        .unwrap();
    assert_eq!(
        until_closed(&mut tcp).await,
        b"",
        "closed without an answer"
    );
    let error = server.await.unwrap().err().unwrap();
    assert!(
        matches!(error, Error::Timeout(Timeout::Handshake)),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_pending_upgrade_accepted_later_keeps_the_bytes_sent_after_the_request() {
    let (mut client, tcp) = tcp_pair().await;
    // The request and a first frame in one write: a masked text frame "early" (key 0).
    let mut sent = request_head("localhost", "").into_bytes();
    sent.extend_from_slice(&[0x81, 0x85, 0, 0, 0, 0]);
    sent.extend_from_slice(b"early");
    client.write_all(&sent).await.unwrap();
    let pending = Acceptor::new().read_request(tcp).await.unwrap();
    assert_eq!(pending.request().headers()["host"], "localhost");
    assert!(pending.deadline() > tokio::time::Instant::now());
    tokio::time::sleep(Duration::from_millis(20)).await; // deliberating
    let (mut ws, request) = pending.accept(Accept::new()).await.unwrap();
    assert_eq!(request.uri().path(), "/");
    assert_eq!(ws.recv().await.unwrap().unwrap(), Message::text("early"));
    let mut head = [0u8; 12];
    client.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 101");
}

#[tokio::test]
async fn a_pending_upgrade_rejected_later_answers_with_the_refusal() {
    let (mut client, pending) = pending_upgrade(&Acceptor::new()).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    pending
        .reject(Reject::new(StatusCode::FORBIDDEN).body("not today"))
        .await
        .unwrap();
    let answer = until_closed(&mut client).await;
    assert_eq!(status_line(&answer), "HTTP/1.1 403 Forbidden");
    assert!(answer.ends_with(b"not today"), "{answer:?}");
}

#[tokio::test]
async fn answering_a_pending_upgrade_after_the_deadline_is_a_timeout() {
    for accept in [true, false] {
        let acceptor = short_handshake(Duration::from_millis(100));
        let (mut client, pending) = pending_upgrade(&acceptor).await;
        tokio::time::sleep_until(pending.deadline()).await;
        let error = if accept {
            pending.accept(Accept::new()).await.err().unwrap()
        } else {
            pending
                .reject(Reject::new(StatusCode::FORBIDDEN))
                .await
                .err()
                .unwrap()
        };
        assert!(
            matches!(error, Error::Timeout(Timeout::Handshake)),
            "{error:?}"
        );
        assert_eq!(
            until_closed(&mut client).await,
            b"",
            "closed without an answer"
        );
    }
}

#[tokio::test]
async fn dropping_a_pending_upgrade_closes_the_connection() {
    let (mut client, pending) = pending_upgrade(&Acceptor::new()).await;
    drop(pending);
    assert_eq!(until_closed(&mut client).await, b"");
}

#[tokio::test]
async fn read_request_applies_the_checks_with_their_refusals() {
    let acceptor = Acceptor::new().allowed_origins(["https://good.example"]);
    for (extra, status) in [
        ("Origin: https://evil.example\r\n", "HTTP/1.1 403 Forbidden"),
        (
            "Sec-WebSocket-Version: 8\r\n",
            "HTTP/1.1 426 Upgrade Required",
        ),
    ] {
        let (mut client, tcp) = tcp_pair().await;
        let head = request_head("localhost", extra).replace(
            "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Version: 8",
            "Sec-WebSocket-Version: 8",
        );
        client.write_all(head.as_bytes()).await.unwrap();
        let error = acceptor.read_request(tcp).await.err().unwrap();
        assert_eq!(error.kind(), ErrorKind::Handshake, "{extra}: {error:?}");
        assert_eq!(
            status_line(&until_closed(&mut client).await),
            status,
            "{extra}"
        );
    }
}
