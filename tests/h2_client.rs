//! The HTTP/2 client (RFC 8441) against hyper's HTTP/2 server: WebSockets as extended CONNECT
//! streams, over h2c and over TLS with ALPN `h2`, several on one connection, the stream API
//! with flow control, and every way the server can say no.

mod support;

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{Method, Request, Response, StatusCode, Version};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use wsio::client::Http2Connection;
use wsio::handshake::{HandshakeError, Negotiated};
use wsio::{ByteStream, ClientBuilder, Config, Error, ErrorKind, Message, Role, WebSocket};

use support::{within, within_for};

/// How the test server answers an extended CONNECT.
#[derive(Clone, Copy, Default)]
struct Server {
    /// Send `SETTINGS_ENABLE_CONNECT_PROTOCOL` (hyper's `enable_connect_protocol`).
    connect_protocol: bool,
    /// Answer 403 with a body instead of accepting.
    refuse: bool,
    /// Select the last subprotocol the client offers.
    select_subprotocol: bool,
}

const ECHO: Server = Server {
    connect_protocol: true,
    refuse: false,
    select_subprotocol: false,
};

/// What the server saw of the requests it accepted, to check they came as RFC 8441 says.
#[derive(Default)]
struct Seen {
    extended_connects: AtomicUsize,
    connections: AtomicUsize,
    /// The headers of the last extended CONNECT.
    last_headers: Mutex<http::HeaderMap>,
}

/// Serves HTTP/2 (hyper) over `io` as `server` says: each extended CONNECT becomes a WebSocket
/// that echoes every data message.
async fn serve_connection<S>(io: S, server: Server, seen: Arc<Seen>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    seen.connections.fetch_add(1, Ordering::SeqCst);
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    if server.connect_protocol {
        builder.enable_connect_protocol();
    }
    let service = service_fn(move |request| answer(request, server, seen.clone()));
    let _ = builder.serve_connection(TokioIo::new(io), service).await;
}

/// The answer to one request, and for an accepted one the echoing WebSocket, spawned.
async fn answer(
    mut request: Request<Incoming>,
    server: Server,
    seen: Arc<Seen>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let protocol = request.extensions().get::<hyper::ext::Protocol>();
    let is_extended_connect = request.method() == Method::CONNECT
        && request.version() == Version::HTTP_2
        && protocol.map(|p| p.as_str()) == Some("websocket")
        && request.headers()["sec-websocket-version"] == "13"
        && !request.headers().contains_key("sec-websocket-key");
    if !is_extended_connect {
        let mut response = Response::new(Full::new(Bytes::from_static(b"not RFC 8441")));
        *response.status_mut() = StatusCode::BAD_REQUEST;
        return Ok(response);
    }
    seen.extended_connects.fetch_add(1, Ordering::SeqCst);
    *seen.last_headers.lock().unwrap() = request.headers().clone();
    if server.refuse {
        let mut response = Response::new(Full::new(Bytes::from_static(b"no WebSockets here")));
        *response.status_mut() = StatusCode::FORBIDDEN;
        response
            .headers_mut()
            .insert("x-refused-by", "test".parse().unwrap());
        return Ok(response);
    }
    let mut negotiated = Negotiated::default();
    let mut response = Response::new(Full::new(Bytes::new()));
    let offered = request.headers().get("sec-websocket-protocol").cloned();
    if let (true, Some(offered)) = (server.select_subprotocol, offered) {
        let chosen = offered.to_str().unwrap().rsplit(',').next().unwrap().trim();
        negotiated = negotiated.with_subprotocol(chosen);
        response
            .headers_mut()
            .insert("sec-websocket-protocol", chosen.parse().unwrap());
    }
    let upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else { return };
        let io = TokioIo::new(upgraded);
        let mut ws = WebSocket::from_negotiated(
            io,
            Role::Server,
            Config::default(),
            BytesMut::new(),
            negotiated,
        )
        .unwrap();
        while let Some(Ok(message)) = ws.recv().await {
            if message.is_data() && ws.send(message).await.is_err() {
                break;
            }
        }
    });
    Ok(response)
}

/// An h2c (cleartext HTTP/2) server on loopback; what it saw.
async fn h2c_server(server: Server) -> (SocketAddr, Arc<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let counts = seen.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(serve_connection(tcp, server, counts.clone()));
        }
    });
    (addr, seen)
}

/// An h2c connection to `addr`, with the default settings.
async fn connect(addr: SocketAddr) -> Http2Connection {
    within("connect", Http2Connection::connect(format!("ws://{addr}")))
        .await
        .unwrap()
}

async fn echo_once(ws: &mut WebSocket<wsio::H2Stream>, text: &str) {
    within("send", ws.send_text(text)).await.unwrap();
    let echoed = within("echo", ws.recv()).await.unwrap().unwrap();
    assert_eq!(echoed, Message::text(text));
}

#[tokio::test]
async fn echo_over_h2c() {
    let (addr, seen) = h2c_server(ECHO).await;
    let h2 = connect(addr).await;
    let (mut ws, response) = within("websocket", h2.websocket("/echo")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), Version::HTTP_2);
    assert!(!response.headers().contains_key("sec-websocket-accept"));
    echo_once(&mut ws, "hello over HTTP/2").await;
    within("binary", ws.send_binary(vec![1u8, 2, 3]))
        .await
        .unwrap();
    assert_eq!(
        within("binary echo", ws.recv()).await.unwrap().unwrap(),
        Message::binary(vec![1u8, 2, 3])
    );
    within("close", ws.close(wsio::CloseCode::NORMAL, "bye"))
        .await
        .unwrap();
    assert_eq!(ws.close_code(), Some(wsio::CloseCode::NORMAL));
    assert_eq!(seen.extended_connects.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn several_websockets_share_one_connection_concurrently() {
    let (addr, seen) = h2c_server(ECHO).await;
    let h2 = connect(addr).await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let h2 = h2.clone();
        tasks.push(tokio::spawn(async move {
            let (mut ws, _) = h2.websocket(format!("/echo?n={i}")).await.unwrap();
            for round in 0..20 {
                let text = format!("stream {i} round {round}");
                ws.send_text(text.clone()).await.unwrap();
                let payload = vec![i as u8; 1000 + round * 997];
                ws.send_binary(payload.clone()).await.unwrap();
                assert_eq!(ws.recv().await.unwrap().unwrap(), Message::text(text));
                assert_eq!(ws.recv().await.unwrap().unwrap(), Message::binary(payload));
            }
            ws.close(wsio::CloseCode::NORMAL, "").await.unwrap();
        }));
    }
    for task in tasks {
        within_for(Duration::from_secs(30), "a multiplexed echo", task)
            .await
            .unwrap();
    }
    assert_eq!(seen.connections.load(Ordering::SeqCst), 1);
    assert_eq!(seen.extended_connects.load(Ordering::SeqCst), 8);
}

#[tokio::test]
async fn dropping_an_opening_or_an_open_websocket_leaves_the_others_working() {
    let (addr, _) = h2c_server(ECHO).await;
    let h2 = connect(addr).await;
    let (mut kept, _) = within("websocket", h2.websocket("/kept")).await.unwrap();
    for _ in 0..3 {
        let mut opening = Box::pin(h2.websocket("/dropped"));
        let _ = futures::poll!(opening.as_mut());
        tokio::task::yield_now().await;
        let _ = futures::poll!(opening.as_mut());
        drop(opening);
    }
    // One dropped mid-message: its stream is reset, the connection goes on.
    let (mut dropped, _) = within("websocket", h2.websocket("/mid")).await.unwrap();
    let mut writer = dropped.send_stream(wsio::DataKind::Binary);
    within("a first fragment", writer.write_all(&[7u8; 70_000]))
        .await
        .unwrap();
    drop(writer);
    drop(dropped);
    echo_once(&mut kept, "still here").await;
    let (mut fresh, _) = within("websocket", h2.websocket("/fresh")).await.unwrap();
    echo_once(&mut fresh, "and a new one").await;
}

/// The byte at `offset` of the bulk transfer: a pattern that a shifted, dropped or repeated
/// chunk breaks.
fn pattern(offset: usize) -> u8 {
    (offset.wrapping_mul(31) ^ (offset >> 13)) as u8
}

#[tokio::test]
async fn a_byte_stream_carries_64_mib_both_ways_with_flow_control() {
    const TOTAL: usize = 64 << 20;
    let (addr, _) = h2c_server(ECHO).await;
    let h2 = connect(addr).await;
    let (ws, _) = within("websocket", h2.websocket("/bulk")).await.unwrap();
    let (mut reader, mut writer) = ByteStream::new(ws).into_split();
    let write = tokio::spawn(async move {
        let mut chunk = vec![0u8; 100_003];
        let mut offset = 0;
        while offset < TOTAL {
            let len = chunk.len().min(TOTAL - offset);
            for (i, byte) in chunk[..len].iter_mut().enumerate() {
                *byte = pattern(offset + i);
            }
            writer.write_all(&chunk[..len]).await?;
            offset += len;
        }
        writer.shutdown().await?;
        io::Result::Ok(())
    });
    let read = async {
        let mut buf = vec![0u8; 65_536];
        let mut offset = 0;
        loop {
            let n = reader.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            for (i, byte) in buf[..n].iter().enumerate() {
                assert_eq!(*byte, pattern(offset + i), "byte {}", offset + i);
            }
            offset += n;
        }
        io::Result::Ok(offset)
    };
    let received = within_for(Duration::from_secs(240), "64 MiB echoed", read)
        .await
        .unwrap();
    assert_eq!(received, TOTAL);
    within("the writer", write).await.unwrap().unwrap();
}

#[tokio::test]
async fn the_subprotocol_and_the_builders_headers_go_over_http2() {
    let (addr, seen) = h2c_server(Server {
        select_subprotocol: true,
        ..ECHO
    })
    .await;
    let h2 = ClientBuilder::new()
        .subprotocols(["chat.v2", "chat.v1"])
        .origin("https://example.com")
        .header(
            http::HeaderName::from_static("x-token"),
            http::HeaderValue::from_static("t0"),
        )
        .connect_http2(format!("ws://{addr}"))
        .await
        .unwrap();
    let (mut ws, response) = within("websocket", h2.websocket("/chat")).await.unwrap();
    assert_eq!(response.headers()["sec-websocket-protocol"], "chat.v1");
    assert_eq!(ws.negotiated().subprotocol(), Some("chat.v1"));
    {
        let sent = seen.last_headers.lock().unwrap();
        assert_eq!(sent["sec-websocket-protocol"], "chat.v2, chat.v1");
        assert_eq!(sent["origin"], "https://example.com");
        assert_eq!(sent["x-token"], "t0");
        assert!(!sent.contains_key("host"));
    }
    echo_once(&mut ws, "typed chat").await;
}

#[tokio::test]
async fn a_server_without_extended_connect_is_refused_before_any_request() {
    let (addr, seen) = h2c_server(Server::default()).await;
    let error = within("connect", Http2Connection::connect(format!("ws://{addr}")))
        .await
        .unwrap_err();
    let not_enabled = |e: &HandshakeError| matches!(e, HandshakeError::ExtendedConnectNotEnabled);
    assert!(
        matches!(&error, Error::Handshake(e) if not_enabled(e)),
        "{error:?}"
    );
    assert_eq!(error.kind(), ErrorKind::Handshake);
    assert_eq!(seen.extended_connects.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_refusal_is_returned_with_its_status_headers_and_body() {
    let (addr, _) = h2c_server(Server {
        refuse: true,
        ..ECHO
    })
    .await;
    let h2 = connect(addr).await;
    let error = within("websocket", h2.websocket("/private"))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::HandshakeRefused);
    match error {
        Error::Handshake(e) => match *e {
            HandshakeError::Refused(response) => {
                assert_eq!(response.status(), StatusCode::FORBIDDEN);
                assert_eq!(response.headers()["x-refused-by"], "test");
                assert_eq!(&response.body()[..], b"no WebSockets here");
            }
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
    // The connection is still good for another try.
    assert!(matches!(
        within("again", h2.websocket("/private"))
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::HandshakeRefused
    ));
}

#[tokio::test]
async fn a_connection_of_your_own_needs_full_urls() {
    let (addr, _) = h2c_server(ECHO).await;
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let h2 = within("handshake", Http2Connection::handshake(tcp))
        .await
        .unwrap();
    let error = h2.websocket("/echo").await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidUrl);
    let (mut ws, _) = within("websocket", h2.websocket(format!("ws://{addr}/echo")))
        .await
        .unwrap();
    echo_once(&mut ws, "on my own connection").await;
}

/// What a raw h2 server does after a request.
enum Then {
    /// Goes on serving the connection.
    Serve,
    /// Ends the connection at once: `GOAWAY` with `INTERNAL_ERROR`, then close.
    GoAway,
}

/// An HTTP/2 server on loopback written with h2 itself, for control that hyper does not give:
/// it enables extended CONNECT on the first connection and hands each request to `handle`.
async fn raw_h2_server<F>(mut handle: F) -> SocketAddr
where
    F: FnMut(Request<h2::RecvStream>, h2::server::SendResponse<Bytes>) -> Then + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut connection = h2::server::Builder::new()
            .enable_connect_protocol()
            .handshake::<_, Bytes>(tcp)
            .await
            .unwrap();
        while let Some(Ok((request, respond))) = connection.accept().await {
            if let Then::GoAway = handle(request, respond) {
                connection.abrupt_shutdown(h2::Reason::INTERNAL_ERROR);
                let _ = std::future::poll_fn(|cx| connection.poll_closed(cx)).await;
                return;
            }
        }
    });
    addr
}

/// Accepts each extended CONNECT with 200 and resets the stream after its first DATA frame.
async fn resetting_server() -> SocketAddr {
    raw_h2_server(|request, mut respond| {
        tokio::spawn(async move {
            let mut send = respond.send_response(Response::new(()), false).unwrap();
            let _first = request.into_body().data().await;
            send.send_reset(h2::Reason::INTERNAL_ERROR);
        });
        Then::Serve
    })
    .await
}

#[tokio::test]
async fn a_reset_stream_is_an_error_not_a_hang() {
    let addr = resetting_server().await;
    let h2 = connect(addr).await;
    let (mut ws, _) = within("websocket", h2.websocket("/reset")).await.unwrap();
    within("send", ws.send_text("anyone?")).await.unwrap();
    let error = within("recv after the reset", ws.recv())
        .await
        .expect("an error, not the end")
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Io, "{error:?}");
    let io_error = io::Error::from(error);
    assert_eq!(
        io_error.kind(),
        io::ErrorKind::ConnectionReset,
        "{io_error:?}"
    );
    // Writing on the reset stream fails too.
    let mut failed = false;
    for _ in 0..10 {
        if within("send after the reset", ws.send_binary(vec![0u8; 100_000]))
            .await
            .is_err()
        {
            failed = true;
            break;
        }
    }
    assert!(failed, "sends after a reset kept succeeding");
}

#[tokio::test]
async fn a_connection_the_server_ends_is_an_error_not_a_hang() {
    let addr = raw_h2_server(|_request, mut respond| {
        let _accepted = respond.send_response(Response::new(()), false).unwrap();
        Then::GoAway
    })
    .await;
    let h2 = connect(addr).await;
    // The 200 and the GOAWAY travel together: the error is the handshake's or the first read's.
    let error = match within("websocket", h2.websocket("/going")).await {
        Ok((mut ws, _)) => within("recv after GOAWAY", ws.recv())
            .await
            .expect("an error, not the end")
            .unwrap_err(),
        Err(error) => error,
    };
    assert_eq!(error.kind(), ErrorKind::Io, "{error:?}");
    // And the connection opens nothing more.
    let error = within("websocket after GOAWAY", h2.websocket("/again"))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Io, "{error:?}");
}

/// Never answers a request (and keeps it, so that it is not reset).
async fn silent_server() -> SocketAddr {
    let mut unanswered = Vec::new();
    raw_h2_server(move |request, respond| {
        unanswered.push((request, respond));
        Then::Serve
    })
    .await
}

fn is_handshake_timeout(error: &Error) -> bool {
    matches!(error, Error::Timeout(wsio::error::Timeout::Handshake))
}

#[tokio::test]
async fn the_handshake_timeout_bounds_the_start_and_each_extended_connect() {
    let quick = ClientBuilder::new()
        .config(Config::default().handshake_timeout(Duration::from_millis(300)));
    // A server that never answers the request.
    let addr = silent_server().await;
    let h2 = within("connect", quick.connect_http2(format!("ws://{addr}")))
        .await
        .unwrap();
    let error = within("websocket", h2.websocket("/never"))
        .await
        .unwrap_err();
    assert!(is_handshake_timeout(&error), "{error:?}");
    // A TCP server that never speaks HTTP/2: its SETTINGS never come.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let held = tokio::spawn(async move { listener.accept().await });
    let error = within("connect", quick.connect_http2(format!("ws://{addr}")))
        .await
        .unwrap_err();
    assert!(is_handshake_timeout(&error), "{error:?}");
    drop(held);
}

#[cfg(feature = "tls")]
mod over_tls {
    use super::*;
    use support::certs::Ca;
    use wsio::tls::rustls::ServerConfig;

    /// A TLS server on loopback presenting a certificate for `localhost` signed by `ca`,
    /// offering `alpn`, serving HTTP/2 when the client and it agree on `h2`.
    async fn tls_server(ca: &Ca, alpn: &[&[u8]]) -> (u16, Arc<Seen>) {
        let leaf = ca.leaf(&["localhost"], None);
        let mut config =
            ServerConfig::clone(&wsio::tls::server_config(leaf.chain, leaf.key).unwrap());
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let acceptor = wsio::tls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Seen::default());
        let counts = seen.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, counts) = (acceptor.clone(), counts.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    if tls.get_ref().1.alpn_protocol() == Some(b"h2") {
                        serve_connection(tls, ECHO, counts).await;
                    }
                });
            }
        });
        (port, seen)
    }

    #[tokio::test]
    async fn wss_negotiates_h2_with_alpn() {
        let ca = Ca::new("h2 test CA");
        let (port, seen) = tls_server(&ca, &[b"h2"]).await;
        let h2 = within(
            "connect",
            ClientBuilder::new()
                .add_root_certificate(ca.der())
                .connect_http2(format!("wss://localhost:{port}")),
        )
        .await
        .unwrap();
        let (mut first, _) = within("websocket", h2.websocket("/one")).await.unwrap();
        let (mut second, _) = within("websocket", h2.websocket("/two")).await.unwrap();
        echo_once(&mut first, "over TLS").await;
        echo_once(&mut second, "and again").await;
        assert_eq!(seen.connections.load(Ordering::SeqCst), 1);
        assert_eq!(seen.extended_connects.load(Ordering::SeqCst), 2);
    }

    fn is_http2_not_negotiated(error: &Error) -> bool {
        matches!(error, Error::Handshake(e) if matches!(**e, HandshakeError::Http2NotNegotiated))
    }

    #[tokio::test]
    async fn a_tls_server_that_picks_http1_is_http2_not_negotiated() {
        let ca = Ca::new("h2 test CA");
        // Speaks http/1.1 only: refuses an offer of h2 alone with no_application_protocol.
        let (port, _) = tls_server(&ca, &[b"http/1.1"]).await;
        let builder = ClientBuilder::new().add_root_certificate(ca.der());
        let error = within(
            "connect",
            builder.connect_http2(format!("wss://localhost:{port}")),
        )
        .await
        .unwrap_err();
        assert!(is_http2_not_negotiated(&error), "{error:?}");
        // Without ALPN at all: the TLS handshake succeeds, and nothing says h2.
        let (port, _) = tls_server(&ca, &[]).await;
        let error = within(
            "connect",
            builder.connect_http2(format!("wss://localhost:{port}")),
        )
        .await
        .unwrap_err();
        assert!(is_http2_not_negotiated(&error), "{error:?}");
    }
}
