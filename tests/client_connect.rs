//! `connect` and `ClientBuilder` over real loopback TCP: what the request carries, redirects,
//! timeouts, URL checks and connection information.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http::header::{AUTHORIZATION, COOKIE, LOCATION, ORIGIN};
use http::{HeaderName, HeaderValue, Request, StatusCode};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;
use wsio::error::{HandshakeError, Timeout};
use wsio::server::{Accept, Acceptor, Reject};
use wsio::{ClientBuilder, Config, Error, ErrorKind, MaybeTlsStream, Message};

type Decide = Box<dyn Fn(&Request<()>) -> Result<Accept, Reject> + Send + Sync>;
type Seen = mpsc::UnboundedReceiver<Request<()>>;

/// A server that answers every connection as `decide` says and reports each request it saw.
/// Accepted connections echo one message.
async fn serve(decide: Decide) -> (SocketAddr, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (seen, rx) = mpsc::unbounded_channel();
    let acceptor = Acceptor::new().on_request(move |request| {
        let mut copy = Request::new(());
        *copy.uri_mut() = request.uri().clone();
        *copy.headers_mut() = request.headers().clone();
        let _ = seen.send(copy);
        decide(request)
    });
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok((mut ws, _)) = acceptor.accept(tcp).await {
                    if let Some(Ok(message)) = ws.recv().await {
                        let _ = ws.send(message).await;
                    }
                }
            });
        }
    });
    (addr, rx)
}

async fn accepting() -> (SocketAddr, Seen) {
    serve(Box::new(|_| Ok(Accept::new()))).await
}

async fn redirecting(location: String, status: StatusCode) -> (SocketAddr, Seen) {
    serve(Box::new(move |_| {
        let location = HeaderValue::try_from(location.as_str()).unwrap();
        Err(Reject::new(status).header(LOCATION, location))
    }))
    .await
}

async fn echo_once(ws: &mut wsio::WebSocket<MaybeTlsStream>) {
    ws.send_text("ping?").await.unwrap();
    assert_eq!(ws.recv().await.unwrap().unwrap(), Message::text("ping?"));
}

#[tokio::test]
async fn a_plain_connection_reports_addresses_and_no_tls() {
    let (addr, _seen) = accepting().await;
    let (mut ws, response) = wsio::connect(format!("ws://{addr}/")).await.unwrap();
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    assert!(matches!(ws.get_ref(), MaybeTlsStream::Plain(_)));
    assert!(!ws.get_ref().is_tls());
    assert_eq!(ws.peer_addr().unwrap(), addr);
    assert_eq!(ws.local_addr().unwrap().ip(), addr.ip());
    #[cfg(feature = "tls")]
    {
        assert_eq!(ws.tls_protocol_version(), None);
        assert!(ws.tls_cipher_suite().is_none());
        assert!(ws.tls_peer_certificates().is_none());
    }
    assert!(
        ws.get_ref().tcp().nodelay().unwrap(),
        "TCP_NODELAY is on by default"
    );
    echo_once(&mut ws).await;

    let (ws, _) = ClientBuilder::new()
        .nodelay(false)
        .connect(format!("ws://{addr}/"))
        .await
        .unwrap();
    assert!(!ws.get_ref().tcp().nodelay().unwrap());
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn the_connections_the_client_opens_limit_what_waits_unsent() {
    let notsent_lowat = |ws: &wsio::WebSocket<MaybeTlsStream>| {
        socket2::SockRef::from(ws.get_ref().tcp())
            .tcp_notsent_lowat()
            .unwrap()
    };
    let (addr, _seen) = accepting().await;
    let (ws, _) = wsio::connect(format!("ws://{addr}/")).await.unwrap();
    assert_eq!(notsent_lowat(&ws), wsio::transport::DEFAULT_UNSENT_LIMIT);
    let (ws, _) = ClientBuilder::new()
        .unsent_limit(Some(16 * 1024))
        .connect(format!("ws://{addr}/"))
        .await
        .unwrap();
    assert_eq!(notsent_lowat(&ws), 16 * 1024);
    // No limit: the kernel's own default, which the option reads as 0.
    let (ws, _) = ClientBuilder::new()
        .unsent_limit(None)
        .connect(format!("ws://{addr}/"))
        .await
        .unwrap();
    assert_eq!(notsent_lowat(&ws), 0);
}

#[tokio::test]
async fn the_request_carries_every_builder_setting() {
    let (addr, mut seen) = accepting().await;
    let (mut ws, _) = ClientBuilder::new()
        .subprotocols(["chat.v2", "chat.v1"])
        .origin("https://app.example")
        .header(
            HeaderName::from_static("x-client"),
            HeaderValue::from_static("wsio-test"),
        )
        .edit_request(|request| {
            request
                .headers_mut()
                .insert(COOKIE, HeaderValue::from_static("session=abc"));
        })
        .connect(format!("ws://alice:s%3Acret@{addr}/room?id=7"))
        .await
        .unwrap();
    echo_once(&mut ws).await;
    let request = seen.recv().await.unwrap();
    assert_eq!(request.uri(), "/room?id=7");
    let headers = request.headers();
    assert_eq!(headers["host"], addr.to_string().as_str());
    assert_eq!(headers[ORIGIN], "https://app.example");
    assert_eq!(headers["x-client"], "wsio-test");
    assert_eq!(headers[COOKIE], "session=abc");
    assert_eq!(headers["sec-websocket-protocol"], "chat.v2, chat.v1");
    // base64("alice:s:cret")
    assert_eq!(headers[AUTHORIZATION], "Basic YWxpY2U6czpjcmV0");
}

#[tokio::test]
async fn an_explicit_authorization_wins_over_user_info() {
    let (addr, mut seen) = accepting().await;
    let (mut ws, _) = ClientBuilder::new()
        .header(AUTHORIZATION, HeaderValue::from_static("Bearer token"))
        .connect(format!("ws://u:p@{addr}/"))
        .await
        .unwrap();
    echo_once(&mut ws).await;
    assert_eq!(
        seen.recv().await.unwrap().headers()[AUTHORIZATION],
        "Bearer token"
    );
}

#[tokio::test]
async fn redirects_are_returned_unless_following_is_on() {
    let (target, _) = accepting().await;
    let (addr, _) = redirecting(format!("ws://{target}/final"), StatusCode::FOUND).await;
    let error = wsio::connect(format!("ws://{addr}/start"))
        .await
        .err()
        .unwrap();
    assert_eq!(error.kind(), ErrorKind::HandshakeRefused);
    let Error::Handshake(refused) = &error else {
        panic!("{error:?}")
    };
    let HandshakeError::Refused(response) = &**refused else {
        panic!("{refused:?}")
    };
    assert_eq!(response.status(), StatusCode::FOUND);
    assert_eq!(
        response.headers()[LOCATION],
        format!("ws://{target}/final").as_str()
    );
}

#[tokio::test]
async fn redirects_are_followed_with_http_locations_mapped_to_ws() {
    for status in [301, 302, 303, 307, 308] {
        let status = StatusCode::from_u16(status).unwrap();
        let (target, mut at_target) = accepting().await;
        // An absolute http:// location.
        let (first, _) = redirecting(format!("http://{target}/middle"), status).await;
        let (mut ws, response) = ClientBuilder::new()
            .max_redirects(3)
            .connect(format!("ws://{first}/start"))
            .await
            .unwrap_or_else(|e| panic!("{status}: {e}"));
        assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
        assert_eq!(ws.peer_addr().unwrap(), target);
        echo_once(&mut ws).await;
        assert_eq!(at_target.recv().await.unwrap().uri(), "/middle");
    }
}

#[tokio::test]
async fn relative_locations_resolve_against_the_url_requested() {
    // One server that redirects /a/start to ../b/end (relative) and accepts /b/end.
    let decide: Decide = Box::new(|request| match request.uri().path() {
        "/a/start" => Err(Reject::new(StatusCode::TEMPORARY_REDIRECT)
            .header(LOCATION, HeaderValue::from_static("../b/end?q=2"))),
        _ => Ok(Accept::new()),
    });
    let (addr, mut seen) = serve(decide).await;
    let (mut ws, _) = ClientBuilder::new()
        .max_redirects(1)
        .connect(format!("ws://{addr}/a/start"))
        .await
        .unwrap();
    echo_once(&mut ws).await;
    assert_eq!(seen.recv().await.unwrap().uri(), "/a/start");
    assert_eq!(seen.recv().await.unwrap().uri(), "/b/end?q=2");
}

#[tokio::test]
async fn a_redirect_loop_is_an_error() {
    let decide: Decide = Box::new(|request| {
        let next = if request.uri().path() == "/one" {
            "/two"
        } else {
            "/one"
        };
        Err(Reject::new(StatusCode::FOUND).header(LOCATION, HeaderValue::from_static(next)))
    });
    let (addr, _) = serve(decide).await;
    let error = ClientBuilder::new()
        .max_redirects(10)
        .connect(format!("ws://{addr}/one"))
        .await
        .err()
        .unwrap();
    assert_eq!(error.kind(), ErrorKind::Handshake);
    match &error {
        Error::Handshake(e) => match &**e {
            HandshakeError::InvalidRedirect { location, reason } => {
                assert_eq!(location, "/one");
                assert!(reason.contains("loop"), "{reason}");
            }
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn more_redirects_than_allowed_is_an_error() {
    // /0 -> /1 -> /2 -> ... never ending, never looping.
    let decide: Decide = Box::new(|request| {
        let n: u32 = request.uri().path()[1..].parse().unwrap_or(0);
        let next = HeaderValue::try_from(format!("/{}", n + 1)).unwrap();
        Err(Reject::new(StatusCode::MOVED_PERMANENTLY).header(LOCATION, next))
    });
    let (addr, mut seen) = serve(decide).await;
    let error = ClientBuilder::new()
        .max_redirects(2)
        .connect(format!("ws://{addr}/0"))
        .await
        .err()
        .unwrap();
    assert!(error.to_string().contains("too many redirects"), "{error}");
    let mut requests = 0;
    while seen.try_recv().is_ok() {
        requests += 1;
    }
    assert_eq!(requests, 3, "the first request and two redirects");
}

#[tokio::test]
async fn credentials_do_not_follow_a_redirect_to_another_port() {
    let (other, mut at_other) = accepting().await;
    let (first, mut at_first) = redirecting(format!("ws://{other}/"), StatusCode::FOUND).await;
    let (mut ws, _) = ClientBuilder::new()
        .max_redirects(1)
        .header(COOKIE, HeaderValue::from_static("a=b"))
        .edit_request(|request| {
            request
                .headers_mut()
                .insert("x-per-hop", HeaderValue::from_static("yes"));
        })
        .connect(format!("ws://user:pw@{first}/"))
        .await
        .unwrap();
    echo_once(&mut ws).await;
    let at_first = at_first.recv().await.unwrap();
    assert!(at_first.headers().contains_key(AUTHORIZATION));
    assert!(at_first.headers().contains_key(COOKIE));
    let at_other = at_other.recv().await.unwrap();
    assert!(!at_other.headers().contains_key(AUTHORIZATION));
    assert!(!at_other.headers().contains_key(COOKIE));
    assert_eq!(at_other.headers()["x-per-hop"], "yes");
}

#[tokio::test]
async fn bad_urls_fail_before_any_io() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    for url in [
        format!("ftp://{addr}/"),
        format!("{addr}/"),
        "ws:///no-host".to_owned(),
        "ws://:80/".to_owned(),
        "ws://127.0.0.1:0/".to_owned(),
        "ws://127.0.0.1:65536/".to_owned(),
        "ws://127.0.0.1:http/".to_owned(),
        "ws://exa mple.com/".to_owned(),
        "not a url".to_owned(),
    ] {
        let error = wsio::connect(url.as_str()).await.err().unwrap();
        assert_eq!(error.kind(), ErrorKind::InvalidUrl, "{url}: {error}");
    }
    let nothing = tokio::time::timeout(Duration::from_millis(100), listener.accept()).await;
    assert!(nothing.is_err(), "no connection was attempted");
}

#[tokio::test]
async fn a_refused_connection_is_an_io_error() {
    let addr = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    };
    let error = wsio::connect(format!("ws://{addr}/")).await.err().unwrap();
    assert_eq!(error.kind(), ErrorKind::Io, "{error}");
}

/// A listener whose accept queue is full, so that connecting to it hangs; `None` where the
/// kernel answers anyway.
async fn unanswering() -> Option<(TcpListener, TcpStream, SocketAddr)> {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    let filler = TcpStream::connect(addr).await.unwrap();
    let probe = tokio::time::timeout(Duration::from_millis(300), TcpStream::connect(addr)).await;
    probe.is_err().then_some((listener, filler, addr))
}

#[tokio::test]
async fn a_connect_that_hangs_times_out() {
    let Some((_listener, _filler, addr)) = unanswering().await else {
        eprintln!("this kernel answers a full accept queue; skipping");
        return;
    };
    let started = Instant::now();
    let error = ClientBuilder::new()
        .connect_timeout(Duration::from_millis(300))
        .connect(format!("ws://{addr}/"))
        .await
        .err()
        .unwrap();
    assert!(
        matches!(error, Error::Timeout(Timeout::Connect)),
        "{error:?}"
    );
    assert_eq!(error.kind(), ErrorKind::Timeout);
    assert!(started.elapsed() < Duration::from_secs(3));

    // A per-attempt timeout shorter than the overall one ends the (only) attempt first.
    let error = ClientBuilder::new()
        .connect_attempt_timeout(Duration::from_millis(100))
        .connect(format!("ws://{addr}/"))
        .await
        .err()
        .unwrap();
    assert!(
        matches!(error, Error::Timeout(Timeout::Connect)),
        "{error:?}"
    );
}

#[tokio::test]
async fn connect_on_applies_the_builder_settings() {
    let (addr, mut seen) = accepting().await;
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut ws, _) = ClientBuilder::new()
        .origin("https://x.example")
        .config(Config::default().handshake_timeout(Duration::from_secs(2)))
        .connect_on(tcp, format!("ws://u:p@{addr}/on"))
        .await
        .unwrap();
    ws.send_text("hi").await.unwrap();
    assert_eq!(ws.recv().await.unwrap().unwrap(), Message::text("hi"));
    let request = seen.recv().await.unwrap();
    assert_eq!(request.uri(), "/on");
    assert_eq!(request.headers()[ORIGIN], "https://x.example");
    assert_eq!(request.headers()[AUTHORIZATION], "Basic dTpw");
}
