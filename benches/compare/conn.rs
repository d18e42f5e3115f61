//! One end of an upgraded connection, of any of the libraries compared, and connection setup,
//! over loopback TCP or TLS over it.

use std::io::IoSlice;

use bytes::{Buf, Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wsio::tls::rustls;
use wsio::tls::tokio_rustls::{TlsConnector, TlsStream};

const URL: &str = "ws://127.0.0.1/bench";

/// A library, or raw TCP.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Lib {
    Wsio,
    Tungstenite,
    Fastwebsockets,
    TokioWebsockets,
    Raw,
}

pub(crate) const LIBS: [Lib; 5] = [
    Lib::Wsio,
    Lib::Tungstenite,
    Lib::Fastwebsockets,
    Lib::TokioWebsockets,
    Lib::Raw,
];

impl Lib {
    /// The benchmark's function id; `scripts/bench_table.py` knows these names.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Lib::Wsio => "wsio",
            Lib::Tungstenite => "tokio-tungstenite",
            Lib::Fastwebsockets => "fastwebsockets",
            Lib::TokioWebsockets => "tokio-websockets",
            Lib::Raw => "raw_tcp",
        }
    }

    /// The library a function id names (`raw_tcp_copy` is raw TCP too).
    pub(crate) fn from_name(name: &str) -> Lib {
        LIBS.into_iter()
            .find(|lib| lib.name() == name)
            .unwrap_or(Lib::Raw)
    }
}

/// One end of an upgraded connection. Every variant is inline (no `Box`), so that no library
/// pays an indirection the others do not.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Conn<S = TcpStream> {
    Wsio(wsio::WebSocket<S>),
    Tungstenite(tokio_tungstenite::WebSocketStream<S>),
    Fastwebsockets(fastwebsockets::WebSocket<S>),
    TokioWebsockets(tokio_websockets::WebSocketStream<S>),
    Raw(Raw<S>),
}

/// TLS over loopback TCP, either end (tokio-rustls, wsio's own TLS stack).
pub(crate) type Tls = TlsStream<TcpStream>;

/// Raw TCP (or TLS) with a 4-byte big-endian length prefix per message: the least framing can
/// cost.
pub(crate) struct Raw<S = TcpStream> {
    pub(crate) io: S,
    buf: BytesMut,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Raw<S> {
    fn new(io: S) -> Self {
        Raw {
            io,
            buf: BytesMut::with_capacity(64 << 10),
        }
    }

    /// Writes `head` and `body` with vectored writes, without copying them together.
    async fn write_two(&mut self, head: &[u8], body: &[u8]) -> std::io::Result<()> {
        let total = head.len() + body.len();
        let mut done = 0;
        while done < total {
            let n = if done < head.len() {
                let bufs = [IoSlice::new(&head[done..]), IoSlice::new(body)];
                self.io.write_vectored(&bufs).await?
            } else {
                self.io.write(&body[done - head.len()..]).await?
            };
            if n == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            done += n;
        }
        Ok(())
    }

    async fn send(&mut self, payload: &[u8]) {
        let head = (payload.len() as u32).to_be_bytes();
        self.write_two(&head, payload).await.unwrap();
    }

    /// Reads until `buf` holds `n` bytes; false on EOF or error.
    async fn fill(&mut self, n: usize) -> bool {
        while self.buf.len() < n {
            self.buf.reserve((n - self.buf.len()).max(16 << 10));
            match self.io.read_buf(&mut self.buf).await {
                Ok(0) | Err(_) => return false,
                Ok(_) => {}
            }
        }
        true
    }

    /// Reads one whole frame into the front of `buf`; returns its payload length.
    async fn read_frame(&mut self) -> Option<usize> {
        if !self.fill(4).await {
            return None;
        }
        let len = u32::from_be_bytes(self.buf[..4].try_into().unwrap()) as usize;
        if !self.fill(4 + len).await {
            return None;
        }
        Some(len)
    }

    async fn recv(&mut self) -> usize {
        let len = self.read_frame().await.expect("raw frame");
        self.buf.advance(4 + len);
        len
    }

    async fn echo_one(&mut self) -> bool {
        let Some(len) = self.read_frame().await else {
            return false;
        };
        let frame = self.buf.split_to(4 + len);
        self.io.write_all(&frame).await.is_ok()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    /// Sends one binary message (and flushes it).
    pub(crate) async fn send(&mut self, payload: &Bytes) {
        match self {
            Conn::Wsio(ws) => ws
                .send(wsio::Message::Binary(payload.clone()))
                .await
                .unwrap(),
            Conn::Tungstenite(ws) => ws
                .send(tokio_tungstenite::tungstenite::Message::Binary(
                    payload.clone(),
                ))
                .await
                .unwrap(),
            Conn::Fastwebsockets(ws) => ws
                .write_frame(fastwebsockets::Frame::binary(
                    fastwebsockets::Payload::Borrowed(payload),
                ))
                .await
                .unwrap(),
            Conn::TokioWebsockets(ws) => ws
                .send(tokio_websockets::Message::binary(payload.clone()))
                .await
                .unwrap(),
            Conn::Raw(raw) => raw.send(payload).await,
        }
    }

    /// Queues one binary message without flushing it (fastwebsockets, which has no queue of
    /// its own, writes it at once; raw TCP copies it into its write buffer).
    pub(crate) async fn feed(&mut self, payload: &Bytes) {
        match self {
            Conn::Wsio(ws) => ws
                .feed(wsio::Message::Binary(payload.clone()))
                .await
                .unwrap(),
            Conn::Tungstenite(ws) => ws
                .feed(tokio_tungstenite::tungstenite::Message::Binary(
                    payload.clone(),
                ))
                .await
                .unwrap(),
            Conn::TokioWebsockets(ws) => ws
                .feed(tokio_websockets::Message::binary(payload.clone()))
                .await
                .unwrap(),
            other => other.send(payload).await,
        }
    }

    /// Writes out whatever [`feed`](Self::feed) queued.
    pub(crate) async fn flush(&mut self) {
        match self {
            Conn::Wsio(ws) => SinkExt::flush(ws).await.unwrap(),
            Conn::Tungstenite(ws) => SinkExt::flush(ws).await.unwrap(),
            Conn::TokioWebsockets(ws) => SinkExt::flush(ws).await.unwrap(),
            Conn::Fastwebsockets(_) | Conn::Raw(_) => {}
        }
    }

    /// Receives the next data message and returns its length.
    pub(crate) async fn recv(&mut self) -> usize {
        match self {
            Conn::Wsio(ws) => loop {
                match ws.recv().await {
                    Some(Ok(wsio::Message::Binary(b))) => return b.len(),
                    Some(Ok(wsio::Message::Text(t))) => return t.len(),
                    Some(Ok(_)) => {}
                    other => panic!("wsio recv: {other:?}"),
                }
            },
            Conn::Tungstenite(ws) => loop {
                match ws.next().await {
                    Some(Ok(m)) if m.is_binary() || m.is_text() => return m.len(),
                    Some(Ok(_)) => {}
                    other => panic!("tokio-tungstenite recv: {other:?}"),
                }
            },
            Conn::Fastwebsockets(ws) => loop {
                let frame = ws.read_frame().await.expect("fastwebsockets recv");
                match frame.opcode {
                    fastwebsockets::OpCode::Binary | fastwebsockets::OpCode::Text => {
                        assert!(frame.fin, "fastwebsockets: fragmented message");
                        return frame.payload.len();
                    }
                    fastwebsockets::OpCode::Close => panic!("fastwebsockets recv: closed"),
                    _ => {}
                }
            },
            Conn::TokioWebsockets(ws) => loop {
                match ws.next().await {
                    Some(Ok(m)) if m.is_binary() || m.is_text() => return m.as_payload().len(),
                    Some(Ok(m)) if m.is_close() => panic!("tokio-websockets recv: closed"),
                    Some(Ok(_)) => {}
                    other => panic!("tokio-websockets recv: {other:?}"),
                }
            },
            Conn::Raw(raw) => raw.recv().await,
        }
    }

    /// Receives one message and sends it back; false once the connection has ended.
    pub(crate) async fn echo_one(&mut self) -> bool {
        match self {
            Conn::Wsio(ws) => match ws.recv().await {
                Some(Ok(m @ (wsio::Message::Binary(_) | wsio::Message::Text(_)))) => {
                    ws.send(m).await.is_ok()
                }
                Some(Ok(_)) => true,
                _ => false,
            },
            Conn::Tungstenite(ws) => match ws.next().await {
                Some(Ok(m)) if m.is_binary() || m.is_text() => ws.send(m).await.is_ok(),
                Some(Ok(_)) => true,
                _ => false,
            },
            Conn::Fastwebsockets(ws) => match ws.read_frame().await {
                Ok(frame) => match frame.opcode {
                    fastwebsockets::OpCode::Binary | fastwebsockets::OpCode::Text => {
                        // A new frame: the one read still carries the client's masking key.
                        let reply =
                            fastwebsockets::Frame::new(true, frame.opcode, None, frame.payload);
                        ws.write_frame(reply).await.is_ok()
                    }
                    fastwebsockets::OpCode::Close => false,
                    _ => true,
                },
                Err(_) => false,
            },
            Conn::TokioWebsockets(ws) => match ws.next().await {
                Some(Ok(m)) if m.is_binary() || m.is_text() => ws.send(m).await.is_ok(),
                Some(Ok(m)) => !m.is_close(),
                _ => false,
            },
            Conn::Raw(raw) => raw.echo_one().await,
        }
    }

    /// Bulk sending: raw TCP writes the payload as it is, the others send a message.
    pub(crate) async fn bulk_send(&mut self, payload: &Bytes) {
        match self {
            Conn::Raw(raw) => raw.io.write_all(payload).await.unwrap(),
            other => other.send(payload).await,
        }
    }

    /// Bulk receiving of `count` messages of `size` bytes (raw TCP: that many bytes, read
    /// into a 1 MiB buffer).
    pub(crate) async fn bulk_recv(&mut self, count: usize, size: usize, scratch: &mut [u8]) {
        match self {
            Conn::Raw(raw) => {
                let mut left = count * size;
                while left > 0 {
                    let n = raw.io.read(scratch).await.unwrap();
                    assert!(n > 0, "raw_tcp: unexpected EOF");
                    left = left.checked_sub(n).expect("raw_tcp: too many bytes");
                }
            }
            other => {
                for _ in 0..count {
                    assert_eq!(other.recv().await, size);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Connection setup: not timed.

/// The fixed key of RFC 6455 §1.3 and its accept value, for the hand-written handshake.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// Reads an HTTP head byte by byte, so that nothing past it is consumed.
async fn read_head<S: AsyncRead + Unpin>(io: &mut S) -> Vec<u8> {
    let mut head = Vec::with_capacity(256);
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        io.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    head
}

async fn manual_client_handshake<S: AsyncRead + AsyncWrite + Unpin>(mut io: S) -> S {
    let request = format!(
        "GET /bench HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    io.write_all(request.as_bytes()).await.unwrap();
    let head = read_head(&mut io).await;
    assert!(head.starts_with(b"HTTP/1.1 101"), "handshake refused");
    io
}

async fn manual_server_handshake<S: AsyncRead + AsyncWrite + Unpin>(mut io: S) -> S {
    let head = read_head(&mut io).await;
    assert!(head.starts_with(b"GET "), "not an upgrade request");
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {ACCEPT}\r\n\r\n"
    );
    io.write_all(response.as_bytes()).await.unwrap();
    io
}

/// Upgrades a connected TCP pair with `lib`: (client end, server end).
async fn upgrade<S>(lib: Lib, client: S, server: S) -> (Conn<S>, Conn<S>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    match lib {
        Lib::Wsio => {
            // The peers cannot negotiate permessage-deflate, so wsio does not either: the same
            // bytes cross the wire for every library (benches/compression.rs measures it).
            let config = wsio::Config::default().compression(None);
            let client_builder = wsio::ClientBuilder::new().config(config.clone());
            let acceptor = wsio::Acceptor::new().config(config);
            let (c, s) = tokio::join!(
                client_builder.connect_on(client, URL),
                acceptor.accept(server)
            );
            (Conn::Wsio(c.unwrap().0), Conn::Wsio(s.unwrap().0))
        }
        Lib::Tungstenite => {
            let (c, s) = tokio::join!(
                tokio_tungstenite::client_async(URL, client),
                tokio_tungstenite::accept_async(server)
            );
            (
                Conn::Tungstenite(c.unwrap().0),
                Conn::Tungstenite(s.unwrap()),
            )
        }
        Lib::Fastwebsockets => {
            let (c, s) = tokio::join!(
                manual_client_handshake(client),
                manual_server_handshake(server)
            );
            use fastwebsockets::{Role, WebSocket};
            (
                Conn::Fastwebsockets(WebSocket::after_handshake(c, Role::Client)),
                Conn::Fastwebsockets(WebSocket::after_handshake(s, Role::Server)),
            )
        }
        Lib::TokioWebsockets => {
            let builder = tokio_websockets::ClientBuilder::new().uri(URL).unwrap();
            let server_builder = tokio_websockets::ServerBuilder::new();
            let (c, s) = tokio::join!(builder.connect_on(client), server_builder.accept(server));
            (
                Conn::TokioWebsockets(c.unwrap().0),
                Conn::TokioWebsockets(s.unwrap().1),
            )
        }
        Lib::Raw => (Conn::Raw(Raw::new(client)), Conn::Raw(Raw::new(server))),
    }
}

/// `n` upgraded connections: (client end, server end) each.
pub(crate) async fn connect(lib: Lib, n: usize) -> Vec<(Conn, Conn)> {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut pairs = Vec::with_capacity(n);
    for _ in 0..n {
        let (client, server) = tcp_pair(&listener).await;
        pairs.push(upgrade(lib, client, server).await);
    }
    pairs
}

/// One upgraded connection over TLS (TLS 1.3, the provider's first cipher suite, the same for
/// every library and for raw TLS): (client end, server end).
pub(crate) async fn connect_tls(lib: Lib) -> (Conn<Tls>, Conn<Tls>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (client, server) = tcp_pair(&listener).await;
    let (acceptor, connector) = tls_ends();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let (client, server) = tokio::join!(connector.connect(name, client), acceptor.accept(server));
    let (client, server) = (
        TlsStream::from(client.unwrap()),
        TlsStream::from(server.unwrap()),
    );
    upgrade(lib, client, server).await
}

/// A connected loopback TCP pair with `TCP_NODELAY` on both ends: (client end, server end).
async fn tcp_pair(listener: &TcpListener) -> (TcpStream, TcpStream) {
    let addr = listener.local_addr().unwrap();
    let (client, server) = tokio::join!(TcpStream::connect(addr), listener.accept());
    let (client, server) = (client.unwrap(), server.unwrap().0);
    client.set_nodelay(true).unwrap();
    server.set_nodelay(true).unwrap();
    (client, server)
}

/// A TLS server with a fresh self-signed certificate for `localhost`, and a client that trusts
/// only it.
fn tls_ends() -> (wsio::tls::TlsAcceptor, TlsConnector) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let chain = vec![cert.cert.der().clone()];
    let key = rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
    let acceptor = wsio::tls::acceptor(chain.clone(), key).unwrap();
    let mut roots = wsio::tls::RootCertStore::empty();
    roots.add(chain[0].clone()).unwrap();
    let connector = TlsConnector::from(wsio::tls::client_config(roots).unwrap());
    (acceptor, connector)
}
