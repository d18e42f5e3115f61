//! A server's graceful shutdown (`wsio::server::Shutdown`): every connection its acceptor built
//! is sent a close with 1001 whatever its task is doing (reading, parked on a full transport,
//! reading a stream, nothing at all), a peer that does not answer is cut off at the deadline,
//! new upgrades are refused with 503, and the set of connections holds only the open ones.

mod support;

use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use futures::SinkExt;
use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::task::JoinHandle;
use wsio::error::{HandshakeError, Timeout};
use wsio::server::{Accept, Acceptor, Shutdown, ShutdownReport};
use wsio::{ClientBuilder, CloseCode, Config, Error, ErrorKind, Message, WebSocket};

use support::{frame, parse_frame, within, Frame, OP_BINARY, OP_CLOSE, STEP};

type Ws = WebSocket<DuplexStream>;

const URL: &str = "ws://example.com/";
const REASON: &str = "server restarting";

fn config() -> Config {
    // Uncompressed, so that the bytes sent fill the pipe as the tests expect.
    Config::default().compression(None)
}

fn shutdown_and_acceptor() -> (Shutdown, Acceptor) {
    let shutdown = Shutdown::new().with_reason(REASON);
    let acceptor = Acceptor::new().config(config()).shutdown(&shutdown);
    (shutdown, acceptor)
}

/// A server connection built by `acceptor` and a wsio client on the other end of a pipe of
/// `capacity` bytes each way.
async fn connect(acceptor: &Acceptor, capacity: usize) -> (Ws, Ws) {
    let (client_io, server_io) = tokio::io::duplex(capacity);
    let client = ClientBuilder::new().config(config());
    let (server, client) = within("handshake", async {
        tokio::join!(
            acceptor.accept(server_io),
            client.connect_on(client_io, URL)
        )
    })
    .await;
    (server.expect("accept").0, client.expect("connect").0)
}

/// What a report says: open, closed, ended otherwise, cut.
fn counts(report: &ShutdownReport) -> [usize; 4] {
    [report.open, report.closed, report.ended, report.cut]
}

fn assert_going_away(message: Option<wsio::Result<Message>>) {
    match message {
        Some(Ok(Message::Close(Some(frame)))) => {
            assert_eq!(frame.code, CloseCode::GOING_AWAY);
            assert_eq!(frame.reason.as_str(), REASON);
        }
        other => panic!("expected a close with 1001: {other:?}"),
    }
}

/// Receives until the connection ends, returning the last thing received.
async fn recv_to_end(ws: &mut Ws) -> Option<wsio::Result<Message>> {
    let mut last = None;
    while let Some(message) = ws.recv().await {
        let failed = message.is_err();
        last = Some(message);
        if failed {
            break;
        }
    }
    last
}

/// Runs `close_all` with a deadline 5 s away in a task of its own.
fn spawn_close_all(shutdown: &Shutdown) -> JoinHandle<ShutdownReport> {
    let shutdown = shutdown.clone();
    tokio::spawn(async move { shutdown.close_all(Duration::from_secs(5)).await })
}

/// Waits until `shutdown` holds `n` connections.
async fn until_open(shutdown: &Shutdown, n: usize) {
    within("the connections to register or leave", async {
        while shutdown.open() != n {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn a_task_waiting_in_recv_sends_the_going_away_and_completes_the_handshake() {
    let (shutdown, acceptor) = shutdown_and_acceptor();
    let (mut server, mut client) = connect(&acceptor, 64 * 1024).await;
    let server = tokio::spawn(async move { recv_to_end(&mut server).await });
    let client = tokio::spawn(async move {
        let close = client.recv().await;
        let end = client.recv().await;
        (close, end.map(|r| r.map_err(|e| e.kind())))
    });
    tokio::time::sleep(Duration::from_millis(20)).await; // both parked, the pipe quiet
    let report = within("close_all", shutdown.close_all(Duration::from_secs(5))).await;
    let (close, end) = within("the client", client).await.unwrap();
    assert_going_away(close);
    assert!(end.is_none(), "the client then sees the end: {end:?}");
    match within("the server task", server).await.unwrap() {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(frame.code, CloseCode::GOING_AWAY),
        other => panic!("the server's task gets the client's answer: {other:?}"),
    }
    assert_eq!(counts(&report), [1, 1, 0, 0], "{report:?}");
    assert_eq!(shutdown.open(), 0);
}

#[tokio::test]
async fn a_task_parked_on_a_full_transport_sends_the_close_after_its_data() {
    // `send` parks waiting for its message to be written; the `Sink`'s `feed` parks waiting
    // for room in the write buffer, with the close queued behind what fills it.
    for sink in [false, true] {
        parked_writer_sends_the_close(sink).await;
    }
}

async fn parked_writer_sends_the_close(sink: bool) {
    let (shutdown, acceptor) = shutdown_and_acceptor();
    let (mut server, mut client) = connect(&acceptor, 4096).await;
    let payload = vec![0xA5u8; 1024];
    let writer = tokio::spawn(async move {
        let mut sent = 0usize;
        loop {
            let message = Message::binary(payload.clone());
            let result = match sink {
                false => server.send(message).await,
                true => server.feed(message).await,
            };
            match result {
                Ok(()) => sent += 1,
                Err(e) => return (sent, e),
            }
        }
    });
    // The client reads nothing: the server's task fills the pipe and its buffer, and parks.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!writer.is_finished());
    let closing = spawn_close_all(&shutdown);
    tokio::time::sleep(Duration::from_millis(50)).await;
    // Now the client reads: all the data, then the close, which it answers.
    let mut data = 0usize;
    let close = within("the client reading to the close", async {
        loop {
            match client.recv().await {
                Some(Ok(Message::Binary(_))) => data += 1,
                other => break other,
            }
        }
    })
    .await;
    assert_going_away(close);
    let (sent, error) = within("the server's send", writer).await.unwrap();
    assert_eq!(error.kind(), ErrorKind::Closed, "{error:?}");
    assert!(
        data == sent && data > 0,
        "{data} messages read, {sent} sent"
    );
    let report = within("close_all", closing).await.unwrap();
    assert_eq!((report.open, report.cut), (1, 0), "{report:?}");
    assert_eq!(report.closed + report.ended, 1, "{report:?}");
}

#[tokio::test]
async fn a_connection_no_task_polls_is_cut_at_the_deadline_and_fails_at_once_when_used() {
    let (shutdown, acceptor) = shutdown_and_acceptor();
    let (mut server, mut client) = connect(&acceptor, 64 * 1024).await;
    let started = Instant::now();
    let report = within("close_all", shutdown.close_all(Duration::from_millis(200))).await;
    assert!(started.elapsed() >= Duration::from_millis(190));
    assert_eq!(counts(&report), [1, 0, 0, 1], "{report:?}");
    // The first poll after the deadline ends it: what it can of the close, then the end.
    let used = Instant::now();
    match within("recv after the cut", server.recv()).await {
        Some(Err(Error::Timeout(Timeout::Close))) => {}
        other => panic!("expected the close timeout: {other:?}"),
    }
    assert!(used.elapsed() < Duration::from_secs(1));
    let send = within("send after the cut", server.send(Message::text("late"))).await;
    assert!(send.is_err(), "{send:?}");
    assert!(within("recv again", server.recv()).await.is_none());
    assert_going_away(within("the client", client.recv()).await);
    drop(server);
    until_open(&shutdown, 0).await;
}

/// A client that speaks frames by hand, answering nothing unless told to.
struct RawClient {
    io: DuplexStream,
    buf: BytesMut,
}

impl RawClient {
    const KEY: [u8; 4] = [0x11, 0x22, 0x33, 0x44];

    async fn connect(acceptor: &Acceptor) -> (Ws, RawClient) {
        let (mut client_io, server_io) = tokio::io::duplex(64 * 1024);
        let request = "GET / HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n\
                       Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                       Sec-WebSocket-Version: 13\r\n\r\n";
        let handshake = async {
            client_io.write_all(request.as_bytes()).await.unwrap();
            let mut buf = BytesMut::new();
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                assert_ne!(client_io.read_buf(&mut buf).await.unwrap(), 0);
            }
            buf
        };
        let (accepted, mut buf) = within("raw handshake", async {
            tokio::join!(acceptor.accept(server_io), handshake)
        })
        .await;
        let head = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        assert!(buf.starts_with(b"HTTP/1.1 101"));
        buf.advance(head);
        let client = RawClient { io: client_io, buf };
        (accepted.expect("accept").0, client)
    }

    async fn send(&mut self, fin: bool, opcode: u8, payload: &[u8]) {
        let bytes = frame(fin, 0, opcode, Some(Self::KEY), payload);
        within("raw write", self.io.write_all(&bytes))
            .await
            .unwrap();
    }

    async fn read_frame(&mut self) -> Option<Frame> {
        within("a frame from the server", async {
            loop {
                if let Some((frame, n)) = parse_frame(&self.buf) {
                    self.buf.advance(n);
                    return Some(frame);
                }
                if self.io.read_buf(&mut self.buf).await.unwrap_or(0) == 0 {
                    return None;
                }
            }
        })
        .await
    }

    /// Reads frames until the close, which must be the shutdown's.
    async fn expect_going_away(&mut self) {
        loop {
            let frame = self.read_frame().await.expect("a close frame");
            if frame.opcode == OP_CLOSE {
                assert_eq!(frame.close_code(), Some(1001));
                assert_eq!(frame.close_reason(), REASON.as_bytes());
                return;
            }
        }
    }

    /// Reads the shutdown's close and answers it, echoing the code as RFC 6455 §5.5.1 says.
    async fn answer_going_away(&mut self) {
        self.expect_going_away().await;
        self.send(true, OP_CLOSE, &1001u16.to_be_bytes()).await;
    }
}

#[tokio::test]
async fn a_peer_that_never_answers_is_cut_at_the_deadline_and_the_task_learns_it_at_once() {
    let (shutdown, acceptor) = shutdown_and_acceptor();
    let (mut server, mut peer) = RawClient::connect(&acceptor).await;
    let server = tokio::spawn(async move {
        let last = recv_to_end(&mut server).await;
        let ended = Instant::now();
        let send = server.send(Message::text("after")).await;
        (last, ended, send)
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    let started = Instant::now();
    let deadline = Duration::from_millis(300);
    let report = within("close_all", shutdown.close_all(deadline)).await;
    assert_eq!(
        (report.open, report.cut, report.closed),
        (1, 1, 0),
        "{report:?}"
    );
    peer.expect_going_away().await;
    let (last, ended, send) = within("the server task", server).await.unwrap();
    match last {
        Some(Err(Error::Timeout(Timeout::Close))) => {}
        other => panic!("the task's recv gets the close timeout: {other:?}"),
    }
    let waited = ended - started;
    assert!(
        waited >= deadline - Duration::from_millis(10) && waited < deadline + STEP / 3,
        "the cut came after {waited:?}"
    );
    assert!(send.is_err(), "{send:?}");
    // The transport was shut down: the peer reads the end.
    assert!(peer.read_frame().await.is_none());
}

#[tokio::test]
async fn new_upgrades_after_the_shutdown_began_are_refused_with_503() {
    let (shutdown, acceptor) = shutdown_and_acceptor();
    // A request read before the shutdown, answered after it began.
    let (mut early_client, early_server) = tokio::io::duplex(64 * 1024);
    let request = "GET / HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n\
                   Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                   Sec-WebSocket-Version: 13\r\n\r\n";
    early_client.write_all(request.as_bytes()).await.unwrap();
    let pending = within("read_request", acceptor.read_request(early_server))
        .await
        .unwrap();

    let report = within("close_all", shutdown.close_all(Duration::from_secs(5))).await;
    assert_eq!(report, ShutdownReport::default());
    assert!(shutdown.is_closing());

    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let (accepted, connected) = within("handshake", async {
        tokio::join!(acceptor.accept(server_io), wsio::connect_on(client_io, URL))
    })
    .await;
    let refused = |e: &Error| match e {
        Error::Handshake(e) => match &**e {
            HandshakeError::Rejected { status } => Some(*status),
            HandshakeError::Refused(response) => Some(response.status()),
            _ => None,
        },
        _ => None,
    };
    let accepted = accepted.expect_err("accepted during the shutdown");
    assert_eq!(refused(&accepted), Some(StatusCode::SERVICE_UNAVAILABLE));
    let connected = connected.expect_err("connected during the shutdown");
    assert_eq!(refused(&connected), Some(StatusCode::SERVICE_UNAVAILABLE));

    let late = within("accept", pending.accept(Accept::new())).await;
    assert_eq!(
        refused(&late.expect_err("accepted")),
        Some(StatusCode::SERVICE_UNAVAILABLE)
    );
    let mut answer = Vec::new();
    within("the refusal", early_client.read_to_end(&mut answer))
        .await
        .unwrap();
    assert!(answer.starts_with(b"HTTP/1.1 503"), "{answer:?}");
    assert_eq!(shutdown.open(), 0);
}

#[tokio::test]
async fn connections_closed_before_the_shutdown_are_not_counted() {
    let (shutdown, acceptor) = shutdown_and_acceptor();
    let mut servers: Vec<JoinHandle<_>> = Vec::new();
    let mut clients = Vec::new();
    for _ in 0..3 {
        let (mut server, client) = connect(&acceptor, 64 * 1024).await;
        servers.push(tokio::spawn(async move { recv_to_end(&mut server).await }));
        clients.push(client);
    }
    assert_eq!(shutdown.open(), 3);
    for client in &mut clients[..2] {
        within("close", client.close(CloseCode::NORMAL, "bye"))
            .await
            .unwrap();
    }
    until_open(&shutdown, 1).await;
    let mut last = clients.pop().unwrap();
    let answer = tokio::spawn(async move { recv_to_end(&mut last).await });
    let report = within("close_all", shutdown.close_all(Duration::from_secs(5))).await;
    assert_eq!(counts(&report), [1, 1, 0, 0], "{report:?}");
    assert_going_away(within("the last client", answer).await.unwrap());
    for server in servers {
        within("server task", server).await.unwrap();
    }
}

#[tokio::test]
async fn a_message_reader_waiting_inside_a_message_sees_the_close() {
    let (shutdown, acceptor) = shutdown_and_acceptor();
    let (mut server, mut peer) = RawClient::connect(&acceptor).await;
    peer.send(false, OP_BINARY, &[7; 100]).await; // a message begun, not ended
    let server = tokio::spawn(async move {
        let read = {
            let mut reader = server.recv_stream().await.expect("a message").unwrap();
            let mut buf = vec![0; 100];
            reader.read_exact(&mut buf).await.unwrap();
            // Parked inside the message: the rest never comes.
            reader.read(&mut buf).await
        };
        let end = recv_to_end(&mut server).await;
        (read, end.map(|r| r.map_err(|e| e.kind())))
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    let closing = spawn_close_all(&shutdown);
    peer.answer_going_away().await;
    let (read, end) = within("the reader", server).await.unwrap();
    // The message was cut by the close: not an EOF, which would pass it off as whole.
    let error = read.expect_err("the reader must not see a whole message");
    assert_eq!(error.kind(), std::io::ErrorKind::UnexpectedEof, "{error:?}");
    assert!(
        end.is_none(),
        "the connection ended cleanly after it: {end:?}"
    );
    let report = within("close_all", closing).await.unwrap();
    assert_eq!((report.open, report.closed), (1, 1), "{report:?}");
}

#[tokio::test]
async fn a_byte_stream_waiting_to_read_sees_the_close() {
    let (shutdown, acceptor) = shutdown_and_acceptor();
    let (server, mut peer) = RawClient::connect(&acceptor).await;
    let server = tokio::spawn(async move {
        let mut stream = server.into_byte_stream();
        let mut out = Vec::new();
        let read = stream.read_to_end(&mut out).await;
        (read.map_err(|e| e.kind()), stream.close_code())
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    let closing = spawn_close_all(&shutdown);
    peer.answer_going_away().await;
    let (read, code) = within("the byte stream", server).await.unwrap();
    // Not an EOF: only a close with 1000 (the peer's shutdown of its stream) says the bytes
    // came whole.
    assert_eq!(read, Err(std::io::ErrorKind::ConnectionAborted));
    assert_eq!(code, Some(CloseCode::GOING_AWAY));
    let report = within("close_all", closing).await.unwrap();
    assert_eq!((report.open, report.closed), (1, 1), "{report:?}");
}

#[tokio::test]
async fn split_halves_send_the_close_whichever_half_is_polled() {
    let (shutdown, acceptor) = shutdown_and_acceptor();
    let (server, mut client) = connect(&acceptor, 64 * 1024).await;
    let (mut read, write) = server.into_split();
    let reader = tokio::spawn(async move {
        let mut last = None;
        while let Some(message) = read.recv().await {
            last = Some(message.map_err(|e| e.kind()));
        }
        (last, write)
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    let closing = spawn_close_all(&shutdown);
    assert_going_away(within("the client", client.recv()).await);
    assert!(within("the client's end", client.recv()).await.is_none());
    let (last, _write) = within("the read half", reader).await.unwrap();
    assert!(matches!(last, Some(Ok(Message::Close(_)))), "{last:?}");
    let report = within("close_all", closing).await.unwrap();
    assert_eq!((report.open, report.closed), (1, 1), "{report:?}");
}

/// A normal close from the client, with the server's task receiving to the end.
async fn close_normally(server: &mut Ws, client: &mut Ws) {
    let (served, closed) = tokio::join!(recv_to_end(server), client.close(CloseCode::NORMAL, ""));
    assert!(matches!(served, Some(Ok(Message::Close(_)))), "{served:?}");
    closed.unwrap();
}

#[tokio::test]
async fn the_set_holds_only_open_connections_through_churn() {
    let (shutdown, acceptor) = shutdown_and_acceptor();
    for round in 0..300 {
        let (mut server, mut client) = connect(&acceptor, 16 * 1024).await;
        assert_eq!(shutdown.open(), 1);
        if round % 2 == 0 {
            within("a normal close", close_normally(&mut server, &mut client)).await;
            // Ended, though not dropped yet: it left the set at its end.
            assert_eq!(shutdown.open(), 0, "round {round}");
        } else {
            drop(server); // dropped mid-connection: it leaves the set too
            drop(client);
            assert_eq!(shutdown.open(), 0, "round {round}");
        }
    }
    let started = Instant::now();
    let report = within("close_all", shutdown.close_all(Duration::from_secs(30))).await;
    assert_eq!(report, ShutdownReport::default());
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn a_shutdown_with_no_connections_returns_at_once() {
    let shutdown = Shutdown::new();
    let started = Instant::now();
    let report = within("close_all", shutdown.close_all(Duration::from_secs(60))).await;
    assert_eq!(report, ShutdownReport::default());
    assert!(started.elapsed() < Duration::from_millis(500));
    assert!(shutdown.is_closing());
}
