//! Clients of the hyper and axum upgrade tests (tests/upgrade_hyper.rs, tests/axum.rs): a raw
//! HTTP/1.1 exchange that shows the answer byte for byte, an HTTP/2 client that sends an
//! RFC 8441 extended CONNECT, and the exchange a server runs with a real peer's echo client.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{Method, Request, StatusCode};
use http_body_util::Empty;
use hyper::upgrade::Upgraded;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use wsio::{CloseCode, Config, Message, Role, WebSocket};

use super::peers::{PeerProcess, RealPeer};
use super::{within, within_for};

/// The key of RFC 6455 §1.3 and the accept it gets.
pub(crate) const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
pub(crate) const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// A valid HTTP/1.1 upgrade request for `path` with `extra` header lines (each ending in
/// `\r\n`), and the line `Sec-WebSocket-Version: {version}`.
pub(crate) fn upgrade_request(path: &str, version: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: {version}\r\n{extra}\r\n"
    )
}

/// An HTTP/1.1 answer as it arrived: the head's text, the body its `Content-Length` announced,
/// and the connection with what came after.
pub(crate) struct RawAnswer {
    pub(crate) head: String,
    pub(crate) body: Vec<u8>,
    pub(crate) tcp: TcpStream,
    /// What arrived past the head and its body.
    pub(crate) rest: Vec<u8>,
}

impl RawAnswer {
    /// The status code of the status line.
    pub(crate) fn status(&self) -> u16 {
        let code = self.head.split(' ').nth(1).unwrap_or_default();
        code.parse()
            .unwrap_or_else(|_| panic!("no status in {:?}", self.head))
    }

    /// The value of header `name` (case-insensitive), if present once or more (the first).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.head.split("\r\n").skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// Writes `bytes` to `addr` in one write and reads the answer's head and body.
pub(crate) async fn raw_exchange(addr: SocketAddr, bytes: &[u8]) -> RawAnswer {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(bytes).await.expect("write the request");
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let mut chunk = [0u8; 4096];
        let n = within("reading the answer's head", tcp.read(&mut chunk))
            .await
            .expect("read");
        assert!(
            n > 0,
            "closed before the head ended: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buf[..head_end - 4].to_vec()).expect("a text head");
    let mut answer = RawAnswer {
        head,
        body: Vec::new(),
        tcp,
        rest: Vec::new(),
    };
    let length: usize = answer
        .header("content-length")
        .map_or(0, |v| v.parse().expect("a length"));
    while buf.len() < head_end + length {
        let mut chunk = [0u8; 4096];
        let n = within("reading the answer's body", answer.tcp.read(&mut chunk))
            .await
            .expect("read");
        assert!(n > 0, "closed before the body ended");
        buf.extend_from_slice(&chunk[..n]);
    }
    answer.body = buf[head_end..head_end + length].to_vec();
    answer.rest = buf[head_end + length..].to_vec();
    answer
}

/// An HTTP/2 connection (prior knowledge, over plain TCP) to `addr`, ready for requests once
/// the server's SETTINGS have arrived.
pub(crate) async fn h2_connect(
    addr: SocketAddr,
) -> hyper::client::conn::http2::SendRequest<Empty<Bytes>> {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let (sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .expect("the h2 handshake");
    tokio::spawn(connection);
    sender
}

/// Sends an RFC 8441 extended CONNECT for `path` with `headers` on `sender`: the response,
/// and the stream when the server accepted it (any 2xx).
pub(crate) async fn extended_connect(
    sender: &mut hyper::client::conn::http2::SendRequest<Empty<Bytes>>,
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> (http::Response<hyper::body::Incoming>, Option<Upgraded>) {
    let mut builder = Request::builder()
        .method(Method::CONNECT)
        .uri(format!("http://{addr}{path}"));
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let mut request = builder.body(Empty::new()).expect("a request");
    request
        .extensions_mut()
        .insert(hyper::ext::Protocol::from_static("websocket"));
    // The server's SETTINGS (with ENABLE_CONNECT_PROTOCOL) may still be on their way: until
    // they arrive, the client refuses to send an extended CONNECT.
    let mut response = None;
    for _ in 0..50 {
        within("the h2 sender is ready", sender.ready())
            .await
            .expect("the h2 connection is open");
        let attempt = clone_request(&request);
        match within("the extended CONNECT", sender.send_request(attempt)).await {
            Ok(answer) => {
                response = Some(answer);
                break;
            }
            Err(e) if e.to_string().contains("connect") || e.is_user() => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("sending the extended CONNECT: {e}"),
        }
    }
    let mut response = response.expect("the server never enabled the CONNECT protocol");
    let stream = if response.status().is_success() {
        Some(
            within("the h2 stream", hyper::upgrade::on(&mut response))
                .await
                .expect("the stream of the accepted CONNECT"),
        )
    } else {
        None
    };
    (response, stream)
}

fn clone_request(request: &Request<Empty<Bytes>>) -> Request<Empty<Bytes>> {
    let mut copy = Request::new(Empty::new());
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.headers_mut() = request.headers().clone();
    copy.extensions_mut()
        .insert(hyper::ext::Protocol::from_static("websocket"));
    copy
}

/// A wsio client WebSocket over an accepted h2 stream.
pub(crate) fn h2_websocket(stream: Upgraded) -> WebSocket<TokioIo<Upgraded>> {
    WebSocket::from_raw_socket(
        TokioIo::new(stream),
        Role::Client,
        Config::default(),
        BytesMut::new(),
    )
    .expect("the default config is valid")
}

/// Echoes every data message `ws` receives until it closes; returns the close code the peer
/// sent.
pub(crate) async fn echo<S>(mut ws: WebSocket<S>) -> Option<CloseCode>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    while let Some(message) = ws.recv().await {
        match message {
            Ok(message) if message.is_data() => {
                if ws.send(message).await.is_err() {
                    break;
                }
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    ws.close_code()
}

/// Sends a text and a binary message on `ws` and checks they come back, then closes with 1000.
pub(crate) async fn round_trip<S>(ws: &mut WebSocket<S>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let messages = [
        Message::text("héllo over an upgrade"),
        Message::binary(vec![0u8, 1, 2, 255, 254]),
        Message::binary(vec![7u8; 200_000]),
    ];
    for message in messages {
        within("sending", ws.send(message.clone()))
            .await
            .expect("send");
        let back = within("the echo", ws.recv())
            .await
            .expect("a message")
            .expect("no error");
        assert_eq!(back, message);
    }
    within("closing", ws.close(CloseCode::NORMAL, "done"))
        .await
        .expect("the closing handshake");
}

/// [`round_trip`] on `client` against `server` echoing; checks the server saw the close 1000.
pub(crate) async fn echo_round_trip<S, C>(server: WebSocket<S>, client: &mut WebSocket<C>)
where
    S: AsyncRead + AsyncWrite + Unpin,
    C: AsyncRead + AsyncWrite + Unpin,
{
    let (code, ()) = tokio::join!(echo(server), round_trip(client));
    assert_eq!(code, Some(CloseCode::NORMAL));
}

/// Starts `peer`'s echo client against `url`; the server's side of it is [`drive_peer`].
pub(crate) fn spawn_echo_client(peer: RealPeer, url: &str) -> PeerProcess {
    PeerProcess::spawn(peer, &["echo-client", "--url", url, "--timeout", "30"])
}

/// The server's side of a real peer's echo client: messages out and back, a close with 1000,
/// and the peer exits 0 (it does when the close is 1000).
pub(crate) async fn drive_peer<S>(mut ws: WebSocket<S>, mut process: PeerProcess)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let extensions = process.line_after("extensions ").await;
    assert_eq!(extensions.trim(), "none", "{}", process.output());
    round_trip(&mut ws).await;
    let (status, output) = within_for(
        Duration::from_secs(10),
        "the peer exits",
        process.finish(Duration::from_secs(10)),
    )
    .await;
    assert!(
        status.is_some_and(|s| s.success()),
        "the peer failed ({status:?}):\n{output}"
    );
}

/// Checks an HTTP/2 answer's status, showing the whole answer when it is another.
pub(crate) fn assert_status(response: &http::Response<hyper::body::Incoming>, status: StatusCode) {
    assert_eq!(response.status(), status, "{response:?}");
}
