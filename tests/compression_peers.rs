//! permessage-deflate (RFC 7692) against real peers: Python `websockets` and Node `ws`, run as
//! child processes from `tests/peers/` with `--deflate` (installed by
//! `scripts/install-peers.sh`; without them these tests fail and say so). wsio runs with the
//! default `Config`, which offers (client) and accepts (server) compression; each peer plays
//! the other role, as an echo server or an echo client.
//!
//! - **The handshake agrees on permessage-deflate**, with the exact parameters each pairing
//!   should settle on, and the header wsio reports is the one the peer saw.
//! - **Every message echoes back byte for byte**, compressed both ways: sizes around every
//!   length encoding and up to 4 MiB; multi-byte UTF-8 text, compressible binary (JSON lines)
//!   and incompressible binary; sent whole (`send`) and as a stream (`MessageWriter`, flushed
//!   in the middle and cut into random writes); the peer's compressed replies read whole
//!   (`recv`) and as a stream (`MessageReader`, random reads). wsio's payload counters show
//!   that both sides compressed what compresses, and that wsio sends a whole message below
//!   the threshold as it is.
//! - **`Compress::Never` and `Compress::Always`**: an uncompressed message (whole or
//!   streamed) between compressed ones reaches the peer intact and leaves the DEFLATE context
//!   usable; a tiny or empty message compressed on purpose does too.
//! - **64 MiB streams, flat memory.** wsio writes 64 MiB of JSON lines through one
//!   `MessageWriter` and the peer answers with its SHA-256; the peer sends 64 MiB in one
//!   message and wsio hashes it through `recv_stream` and `tokio::io::copy`, with a
//!   `max_message_size` of 1 MiB (so the message API could not have assembled it) and the
//!   process's peak RSS growing by far less than the message.

mod support;

use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::RwLock;
use wsio::handshake::DeflateParams;
use wsio::server::Acceptor;
use wsio::{ClientBuilder, CloseCode, Compress, Config, DataKind, Message, Role, WebSocket};

use support::peers::{describe_io, HashSink, Memory, PeerProcess, RealPeer, Tally};
use support::stream::{assert_same_bytes, read_chunked, write_chunked};
use support::{within_for, XorShift};

type Ws = WebSocket<TcpStream>;

/// One step: the handshake, one echo of up to 4 MiB, the closing handshake, a peer's exit.
const STEP: Duration = Duration::from_secs(10);

/// A 64 MiB transfer, either way.
const BIG_LIMIT: Duration = Duration::from_secs(60);

/// What the peers are told to give up after (seconds): longer than any test here.
const PEER_TIMEOUT: &str = "120";

/// The message sizes of the echo tests: each side of the 7-bit / 16-bit / 64-bit length
/// boundaries, a few frames' worth, and well past the default frame and read-ahead sizes.
const SIZES: [usize; 9] = [0, 1, 125, 126, 1000, 65535, 65536, 1 << 20, 4 << 20];

/// wsio's default threshold: whole messages shorter than this are sent uncompressed.
const THRESHOLD: usize = 128;

/// The size of the 64 MiB transfers.
const BIG: u64 = 64 << 20;

/// How much the test process's peak RSS may grow while it receives [`BIG`] bytes.
const RSS_BUDGET_KIB: u64 = 16 << 10;

/// The 64 MiB receptions measure the whole process's peak RSS: they run alone (write lock),
/// every other test here holds a read lock.
static MEMORY: RwLock<()> = RwLock::const_new(());

/// The commands of the peers' echo modes (see `tests/peers/*/peer.*`).
const DIGEST_NEXT: &str = "wsio-peer: digest";
fn send_command(size: u64) -> String {
    format!("wsio-peer: send {size}")
}

// ---------------------------------------------------------------------------------------------
// Connections

/// A wsio connection to a peer running in an echo mode with `--deflate`.
struct Session {
    ws: Ws,
    peer: PeerProcess,
    /// The `Sec-WebSocket-Extensions` of the handshake response, as the peer printed it.
    peer_extensions: String,
}

/// Starts `peer` in the role opposite to `wsio`'s and opens a connection to it with `config`.
async fn open(peer: RealPeer, wsio: Role, config: Config) -> Session {
    let (ws, mut process) = match wsio {
        Role::Client => {
            let mut process = PeerProcess::spawn(
                peer,
                &["echo-server", "--deflate", "--timeout", PEER_TIMEOUT],
            );
            let port = process.port().await;
            let url = format!("ws://127.0.0.1:{port}/echo");
            let connect = async {
                let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
                tcp.set_nodelay(true)?;
                ClientBuilder::new()
                    .config(config)
                    .connect_on(tcp, url.as_str())
                    .await
                    .map_err(std::io::Error::other)
            };
            let (ws, _) = within_for(STEP, "connecting", connect)
                .await
                .unwrap_or_else(|e| panic!("connecting to {url}: {e}"));
            (ws, process)
        }
        Role::Server => {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let url = format!("ws://{}/echo", listener.local_addr().expect("addr"));
            let process = PeerProcess::spawn(
                peer,
                &[
                    "echo-client",
                    "--url",
                    &url,
                    "--deflate",
                    "--timeout",
                    PEER_TIMEOUT,
                ],
            );
            let accept = async {
                let (tcp, _) = listener.accept().await?;
                tcp.set_nodelay(true)?;
                Acceptor::new()
                    .config(config)
                    .accept(tcp)
                    .await
                    .map_err(std::io::Error::other)
            };
            let (ws, _) = within_for(STEP, "accepting the peer", accept)
                .await
                .unwrap_or_else(|e| panic!("accepting the {peer:?} client: {e}"));
            (ws, process)
        }
    };
    let peer_extensions = process.line_after("extensions ").await;
    Session {
        ws,
        peer: process,
        peer_extensions,
    }
}

/// What each pairing agrees on with wsio's default `Compression`:
/// - a wsio client offers `client_max_window_bits` (it accepts a limit) and asks nothing of
///   the server; `websockets` serves with 12-bit windows both ways and says so, `ws` accepts
///   the offer as it is (15 bits both ways, the defaults, said by saying nothing);
/// - a wsio server compresses with at most 12 bits and says so; both clients offer
///   `client_max_window_bits` and the server asks no limit of them.
fn expected_agreement(peer: RealPeer, wsio: Role) -> (DeflateParams, &'static str) {
    let windows = |server, client| DeflateParams {
        server_no_context_takeover: false,
        client_no_context_takeover: false,
        server_max_window_bits: server,
        client_max_window_bits: client,
    };
    match (peer, wsio) {
        (RealPeer::Python, Role::Client) => (
            windows(12, 12),
            "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12",
        ),
        (RealPeer::Node, Role::Client) => (windows(15, 15), "permessage-deflate"),
        (_, Role::Server) => (
            windows(12, 15),
            "permessage-deflate; server_max_window_bits=12",
        ),
    }
}

/// Checks what the handshake of `session` agreed on, on both sides.
fn check_agreement(session: &Session, peer: RealPeer, wsio: Role) {
    let (params, header) = expected_agreement(peer, wsio);
    assert_eq!(
        session.ws.permessage_deflate(),
        Some(params),
        "wsio {wsio:?} with the {peer:?} peer agreed on other parameters (header {:?})",
        session.ws.extensions()
    );
    assert_eq!(session.ws.extensions(), header, "the header wsio reports");
    assert_eq!(
        session.peer_extensions, header,
        "the header the {peer:?} peer saw"
    );
}

/// Closes with 1000 and checks that the peer saw a normal close and exited 0.
async fn close(session: Session) {
    let Session { mut ws, peer, .. } = session;
    within_for(STEP, "closing", ws.close(CloseCode::NORMAL, "done"))
        .await
        .unwrap_or_else(|e| panic!("closing: {e}"));
    let what = peer.what().to_string();
    let (status, output) = peer.finish(STEP).await;
    assert!(
        status.is_some_and(|s| s.success()),
        "{what} exited with {status:?}; it printed:\n{output}"
    );
}

// ---------------------------------------------------------------------------------------------
// Payloads

/// What a message holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Content {
    /// UTF-8 text with two-, three- and four-byte characters, in repeated lines.
    Text,
    /// JSON lines as binary: compresses well.
    Json,
    /// Pseudo-random bytes: does not compress.
    Random,
}

impl Content {
    const ALL: [Content; 3] = [Content::Text, Content::Json, Content::Random];

    fn kind(self) -> DataKind {
        match self {
            Content::Text => DataKind::Text,
            Content::Json | Content::Random => DataKind::Binary,
        }
    }

    fn compresses(self) -> bool {
        self != Content::Random
    }

    /// `size` bytes of this content (valid UTF-8 for text).
    fn make(self, size: usize) -> Vec<u8> {
        match self {
            Content::Text => utf8_text(size),
            Content::Json => json_lines(size),
            Content::Random => support::pattern(0xDEF1A7E, size),
        }
    }
}

/// Exactly `size` bytes of valid UTF-8 with many multi-byte characters: whole characters
/// while they fit, spaces after.
fn utf8_text(size: usize) -> Vec<u8> {
    let mut out = String::with_capacity(size);
    'lines: for line in 0.. {
        let text = format!("Grüße, señor №{line}: ça coûte 5 € — 日本語テキスト 🎉🚀\n");
        for c in text.chars() {
            if out.len() + c.len_utf8() > size {
                break 'lines;
            }
            out.push(c);
        }
    }
    while out.len() < size {
        out.push(' ');
    }
    out.into_bytes()
}

/// Exactly `size` bytes of JSON lines.
fn json_lines(size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(size + 128);
    let mut i = 0u64;
    while out.len() < size {
        out.extend_from_slice(
            format!(
                r#"{{"seq":{i},"user":"wsio-{}","score":{},"tags":["alpha","beta"],"ok":true}}"#,
                i % 97,
                (i * 7919) % 100_003
            )
            .as_bytes(),
        );
        out.push(b'\n');
        i += 1;
    }
    out.truncate(size);
    out
}

/// Every (size, content) payload of the echo tests, made once for all of them.
fn payloads() -> &'static [(Content, Vec<u8>)] {
    static PAYLOADS: std::sync::OnceLock<Vec<(Content, Vec<u8>)>> = std::sync::OnceLock::new();
    PAYLOADS.get_or_init(|| {
        SIZES
            .iter()
            .flat_map(|&size| Content::ALL.map(|c| (c, c.make(size))))
            .collect()
    })
}

// ---------------------------------------------------------------------------------------------
// Echo

/// How wsio sends a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SendWith {
    /// `send_with(Message, compress)`: one message, whole.
    Whole,
    /// `send_stream_with(kind, compress)`: the first half in random writes, a flush, the rest
    /// in random writes, `shutdown`.
    Stream,
}

/// How wsio reads the peer's reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadWith {
    /// `recv`: the whole message.
    Recv,
    /// `recv_stream` and random-sized reads of the `MessageReader`.
    Stream,
}

async fn send(ws: &mut Ws, kind: DataKind, payload: &[u8], how: SendWith, compress: Compress) {
    let mut rng = XorShift::new(payload.len() as u64 ^ 0x5EED);
    match how {
        SendWith::Whole => {
            let message = match kind {
                DataKind::Text => {
                    Message::text(String::from_utf8(payload.to_vec()).expect("test text is UTF-8"))
                }
                DataKind::Binary => Message::binary(payload.to_vec()),
            };
            within_for(STEP, "send", ws.send_with(message, compress))
                .await
                .unwrap_or_else(|e| panic!("send of {} bytes: {e}", payload.len()));
        }
        SendWith::Stream => {
            let write = async {
                let mut writer = ws.send_stream_with(kind, compress);
                let half = payload.len() / 2;
                write_chunked(&mut writer, &payload[..half], &mut rng, 64 << 10, 8).await?;
                writer.flush().await?;
                write_chunked(&mut writer, &payload[half..], &mut rng, 64 << 10, 8).await?;
                writer.shutdown().await
            };
            within_for(STEP, "MessageWriter", write)
                .await
                .unwrap_or_else(|e| {
                    panic!(
                        "MessageWriter of {} bytes: {}",
                        payload.len(),
                        describe_io(&e)
                    )
                });
        }
    }
}

/// The next data message, as its kind and bytes.
async fn receive(ws: &mut Ws, how: ReadWith) -> (DataKind, Vec<u8>) {
    match how {
        ReadWith::Recv => loop {
            let message = within_for(STEP, "recv", ws.recv())
                .await
                .expect("the connection ended before the echo")
                .unwrap_or_else(|e| panic!("recv: {e}"));
            match message {
                Message::Text(text) => return (DataKind::Text, text.as_str().as_bytes().to_vec()),
                Message::Binary(data) => return (DataKind::Binary, data.to_vec()),
                Message::Ping(_) | Message::Pong(_) => {} // websockets' keepalive
                other => panic!("expected the echo, got {other:?}"),
            }
        },
        ReadWith::Stream => {
            let read = async {
                let mut reader = ws
                    .recv_stream()
                    .await
                    .expect("the connection ended before the echo")
                    .unwrap_or_else(|e| panic!("recv_stream: {e}"));
                let kind = reader.kind();
                let mut rng = XorShift::new(0xEAD);
                let data = read_chunked(&mut reader, &mut rng, 64 << 10).await?;
                std::io::Result::Ok((kind, data))
            };
            within_for(STEP, "MessageReader", read)
                .await
                .unwrap_or_else(|e| panic!("MessageReader: {}", describe_io(&e)))
        }
    }
}

/// The payload bytes wsio sent and received over one echo.
#[derive(Debug, Clone, Copy)]
struct Wire {
    sent: u64,
    received: u64,
}

/// Sends `payload`, reads the echo, checks it; returns what went over the wire.
async fn echo(
    ws: &mut Ws,
    kind: DataKind,
    payload: &[u8],
    send_with: SendWith,
    read_with: ReadWith,
    compress: Compress,
) -> Wire {
    let before = ws.stats();
    send(ws, kind, payload, send_with, compress).await;
    let (got_kind, got) = receive(ws, read_with).await;
    let after = ws.stats();
    let what = format!(
        "{kind:?} message of {} bytes sent {send_with:?} ({compress:?}), read with {read_with:?}",
        payload.len()
    );
    assert_eq!(got_kind, kind, "{what}: the echo's type");
    assert_same_bytes(&got, payload, &what);
    Wire {
        sent: after.payload_bytes_sent - before.payload_bytes_sent,
        received: after.payload_bytes_received - before.payload_bytes_received,
    }
}

/// Every payload, sent both ways and read both ways, then the `Compress` choices.
async fn echo_everything(peer: RealPeer, wsio: Role) {
    let _shared = MEMORY.read().await;
    let start = Instant::now();
    let mut session = open(peer, wsio, Config::default()).await;
    check_agreement(&session, peer, wsio);
    let ws = &mut session.ws;

    for (content, payload) in payloads() {
        let size = payload.len();
        for send_with in [SendWith::Whole, SendWith::Stream] {
            for read_with in [ReadWith::Recv, ReadWith::Stream] {
                let wire = echo(
                    ws,
                    content.kind(),
                    payload,
                    send_with,
                    read_with,
                    Compress::Auto,
                )
                .await;
                let what = format!("{content:?}, {size} bytes, sent {send_with:?}: {wire:?}");
                if send_with == SendWith::Whole && size < THRESHOLD {
                    assert_eq!(wire.sent, size as u64, "{what}: below the threshold");
                }
                if content.compresses() && size >= 1000 {
                    assert!(wire.sent < size as u64 / 2, "{what}: wsio compressed");
                    assert!(
                        wire.received < size as u64 / 2,
                        "{what}: the {peer:?} peer compressed its reply"
                    );
                }
            }
        }
    }

    // Compress::Never between compressed messages: sent as it is, whole and streamed, and the
    // compressed messages around it still inflate on both sides.
    for content in [Content::Text, Content::Json] {
        let payload = content.make(65536);
        for send_with in [SendWith::Whole, SendWith::Stream] {
            let what = format!("{content:?}, 65536 bytes, sent {send_with:?}");
            let plain = echo(
                ws,
                content.kind(),
                &payload,
                send_with,
                ReadWith::Recv,
                Compress::Never,
            )
            .await;
            assert_eq!(plain.sent, 65536, "{what} with Compress::Never: {plain:?}");
            assert!(
                plain.received < 65536 / 2,
                "{what}: the {peer:?} peer compressed its reply: {plain:?}"
            );
            let after = echo(
                ws,
                content.kind(),
                &payload,
                send_with,
                ReadWith::Stream,
                Compress::Auto,
            )
            .await;
            assert!(
                after.sent < 65536 / 2,
                "{what} with Compress::Auto after Compress::Never: {after:?}"
            );
        }
    }

    // Compress::Always below the threshold, down to the empty message.
    for size in [0, 1, 125] {
        for content in [Content::Text, Content::Random] {
            let payload = content.make(size);
            for send_with in [SendWith::Whole, SendWith::Stream] {
                echo(
                    ws,
                    content.kind(),
                    &payload,
                    send_with,
                    ReadWith::Recv,
                    Compress::Always,
                )
                .await;
            }
        }
    }

    let echoes = payloads().len() * 4 + 8 + 12;
    let stats = ws.stats();
    close(session).await;
    println!(
        "wsio {wsio:?} / {peer:?} peer: {echoes} echoes in {:.1?}; {stats:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn compressed_echo_wsio_client_python_server() {
    echo_everything(RealPeer::Python, Role::Client).await;
}

#[tokio::test]
async fn compressed_echo_wsio_server_python_client() {
    echo_everything(RealPeer::Python, Role::Server).await;
}

#[tokio::test]
async fn compressed_echo_wsio_client_node_server() {
    echo_everything(RealPeer::Node, Role::Client).await;
}

#[tokio::test]
async fn compressed_echo_wsio_server_node_client() {
    echo_everything(RealPeer::Node, Role::Server).await;
}

// ---------------------------------------------------------------------------------------------
// 64 MiB, streamed

/// A block of JSON lines of a prime length, repeated: cheap to stream in a debug build, and a
/// misplaced chunk changes the digest.
fn json_block() -> Vec<u8> {
    json_lines(1_000_003)
}

/// wsio writes [`BIG`] bytes of JSON lines through one `MessageWriter`; the peer hashes them.
async fn stream_to_peer(peer: RealPeer, wsio: Role) {
    let _shared = MEMORY.read().await;
    let mut session = open(peer, wsio, Config::default()).await;
    check_agreement(&session, peer, wsio);
    let ws = &mut session.ws;
    within_for(STEP, "send", ws.send_text(DIGEST_NEXT))
        .await
        .expect("the digest command");

    let block = json_block();
    let mut sink = HashSink::default();
    let start = Instant::now();
    let before = ws.stats();
    let write = async {
        let mut writer = ws.send_stream(DataKind::Binary);
        let mut at = 0u64;
        let mut writes = 0u64;
        while at < BIG {
            let offset = (at % block.len() as u64) as usize;
            let len = (64 << 10)
                .min(block.len() - offset)
                .min((BIG - at) as usize);
            let chunk = &block[offset..offset + len];
            writer.write_all(chunk).await?;
            sink.update(chunk);
            at += len as u64;
            writes += 1;
            if writes.is_multiple_of(16) {
                writer.flush().await?;
            }
        }
        writer.shutdown().await
    };
    within_for(BIG_LIMIT, "the 64 MiB MessageWriter", write)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "writing 64 MiB after {} bytes: {}",
                sink.bytes(),
                describe_io(&e)
            )
        });
    let report = loop {
        match within_for(STEP, "the peer's digest", ws.recv()).await {
            Some(Ok(Message::Text(text))) => break text.as_str().to_string(),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            other => panic!("expected the peer's digest, got {other:?}"),
        }
    };
    let elapsed = start.elapsed();
    let sent = ws.stats().payload_bytes_sent - before.payload_bytes_sent;
    assert_eq!(Tally::parse(&report), Some(sink.tally()), "the digests");
    assert!(
        sent < BIG / 4,
        "wsio compressed 64 MiB of JSON to {sent} bytes"
    );
    close(session).await;
    println!(
        "wsio {wsio:?} streamed 64 MiB to the {peer:?} peer in {elapsed:.1?}, {sent} bytes \
         compressed"
    );
}

/// The peer sends [`BIG`] bytes in one message; wsio hashes it as it streams.
async fn stream_from_peer(peer: RealPeer, wsio: Role) {
    let _alone = MEMORY.write().await;
    // The message API could not hold the message: only streaming can read it.
    let config = Config::default().max_message_size(1 << 20);
    let mut session = open(peer, wsio, config).await;
    check_agreement(&session, peer, wsio);
    let ws = &mut session.ws;
    within_for(STEP, "send", ws.send_text(send_command(BIG)))
        .await
        .expect("the send command");

    let peak_was_reset = Memory::reset_peak();
    let rss_before = Memory::now().rss;
    let start = Instant::now();
    let before = ws.stats();
    let mut sink = HashSink::default();
    let read = async {
        let mut reader = ws
            .recv_stream()
            .await
            .expect("the connection ended before the message")
            .unwrap_or_else(|e| panic!("recv_stream: {e}"));
        assert_eq!(reader.kind(), DataKind::Binary);
        tokio::io::copy(&mut reader, &mut sink).await
    };
    within_for(BIG_LIMIT, "the 64 MiB MessageReader", read)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "reading 64 MiB after {} bytes: {}",
                sink.bytes(),
                describe_io(&e)
            )
        });
    let peak_after = Memory::now().peak;
    let received = ws.stats().payload_bytes_received - before.payload_bytes_received;
    let report = match within_for(STEP, "the peer's digest", ws.recv()).await {
        Some(Ok(Message::Text(text))) => text.as_str().to_string(),
        other => panic!("expected the peer's digest, got {other:?}"),
    };
    let elapsed = start.elapsed();
    assert_eq!(sink.bytes(), BIG, "bytes received");
    assert_eq!(Tally::parse(&report), Some(sink.tally()), "the digests");
    assert!(
        received < BIG / 4,
        "the {peer:?} peer compressed 64 MiB of JSON to {received} bytes"
    );
    let growth = peak_after.saturating_sub(rss_before);
    if peak_was_reset {
        assert!(
            growth < RSS_BUDGET_KIB,
            "peak RSS grew by {} MiB while streaming 64 MiB (budget {} MiB)",
            growth >> 10,
            RSS_BUDGET_KIB >> 10
        );
    }
    close(session).await;
    println!(
        "wsio {wsio:?} streamed 64 MiB from the {peer:?} peer in {elapsed:.1?}, {received} \
         bytes compressed; peak RSS growth {} MiB (peak reset: {peak_was_reset})",
        growth >> 10
    );
}

#[tokio::test]
async fn streamed_64_mib_from_wsio_client_to_python_server() {
    stream_to_peer(RealPeer::Python, Role::Client).await;
}

#[tokio::test]
async fn streamed_64_mib_from_wsio_server_to_python_client() {
    stream_to_peer(RealPeer::Python, Role::Server).await;
}

#[tokio::test]
async fn streamed_64_mib_from_python_server_to_wsio_client() {
    stream_from_peer(RealPeer::Python, Role::Client).await;
}

#[tokio::test]
async fn streamed_64_mib_from_python_client_to_wsio_server() {
    stream_from_peer(RealPeer::Python, Role::Server).await;
}

#[tokio::test]
async fn streamed_64_mib_from_wsio_client_to_node_server() {
    stream_to_peer(RealPeer::Node, Role::Client).await;
}

#[tokio::test]
async fn streamed_64_mib_from_wsio_server_to_node_client() {
    stream_to_peer(RealPeer::Node, Role::Server).await;
}

#[tokio::test]
async fn streamed_64_mib_from_node_server_to_wsio_client() {
    stream_from_peer(RealPeer::Node, Role::Client).await;
}

#[tokio::test]
async fn streamed_64_mib_from_node_client_to_wsio_server() {
    stream_from_peer(RealPeer::Node, Role::Server).await;
}
