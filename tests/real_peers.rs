//! wsio against real peers: Python `websockets` and Node `ws`, run as child processes from
//! `tests/peers/` (installed by `scripts/install-peers.sh`; without them these tests fail and
//! say so).
//!
//! - **Writing keeps a connection alive.** A wsio client streams an upload (64 KiB every
//!   100 ms for 5 s) without calling `recv` until it is done, through `send`, a
//!   `MessageWriter` and a `ByteStream`, to a `websockets` server that pings every second and
//!   gives each pong one second, and to a `ws` server running the usual heartbeat (every second:
//!   terminate a client that did not answer the previous ping, ping the others). The server
//!   hashes what it gets and reports the byte count and SHA-256 once it has everything; the
//!   test compares them with what it sent.
//! - **A big single frame streams through the stream API.** A `websockets` client and a `ws`
//!   client each send one big binary message as a single frame (their ordinary `send`), then
//!   its SHA-256 in hex. A wsio server with the default `Config` hashes it as it streams,
//!   through `recv_stream` and through a `ByteStream`, and the process's peak RSS must grow by
//!   far less than the payload. The frame is 1 GiB with `WSIO_LONG=1`; by default it is
//!   256 MiB (16 times the default `max_frame_size`, 4 times the default `max_message_size`),
//!   which keeps the suite quick on two cores: the peers take most of the time, generating,
//!   hashing, masking and copying the payload.
//!
//! Every peer prints what it does; a failing test shows the peer's output with its own error.

mod support;

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wsio::{ByteStream, CloseCode, DataKind, Message, WebSocket};

use support::peers::{describe_io, HashSink, Memory, PeerProcess, RealPeer, Tally};
use support::within_for;

/// One step that must not take long: connecting, a report after the upload, a process exit.
const STEP: Duration = Duration::from_secs(10);

/// What the peer server prints for each keepalive ping it sends.
fn ping_line(peer: RealPeer) -> &'static str {
    match peer {
        RealPeer::Python => "% sent keepalive ping", // websockets' own debug line
        RealPeer::Node => "heartbeat: sent ping",
    }
}

// ---------------------------------------------------------------------------------------------
// Writing keeps a connection alive: a wsio client uploads to a peer server that pings.

/// Each chunk of the upload, one every [`PERIOD`], [`CHUNKS`] of them: 5 s of writing.
const CHUNK: usize = 64 * 1024;
const CHUNKS: usize = 50;
const PERIOD: Duration = Duration::from_millis(100);
/// The whole upload test: 5 s of writing plus the report and the close.
const UPLOAD_LIMIT: Duration = Duration::from_secs(30);

/// How the wsio client writes the upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriteWith {
    /// `ws.send(Message::binary(chunk))`, one message per chunk.
    Send,
    /// One `MessageWriter` (`ws.send_stream(DataKind::Binary)`): `write_all` per chunk, then
    /// `shutdown`.
    MessageWriter,
    /// `ByteStream::new(ws)`: `write_all` per chunk, then `flush`.
    ByteStream,
}

fn upload_chunks() -> Vec<Bytes> {
    (0..CHUNKS)
        .map(|i| Bytes::from(support::pattern(0xC0FFEE + i as u64, CHUNK)))
        .collect()
}

/// Starts `server` (keepalive on), uploads to it with `writer` without receiving until the
/// upload is done, then checks that the server's report matches what was sent.
async fn upload_to(server: RealPeer, writer: WriteWith) {
    let report_as = if writer == WriteWith::ByteStream {
        "binary" // a ByteStream reads binary messages only
    } else {
        "text"
    };
    let total = (CHUNK * CHUNKS).to_string();
    let peer_timeout = (UPLOAD_LIMIT + STEP).as_secs().to_string();
    let mut args = vec!["server", "--expect", &total, "--report-as", report_as];
    match server {
        // websockets' keepalive: a ping every second, failed (1011) if its pong takes > 1 s.
        RealPeer::Python => args.extend(["--ping-interval", "1", "--ping-timeout", "1"]),
        // The heartbeat of the ws README: every second, terminate() or ping().
        RealPeer::Node => args.extend(["--heartbeat-ms", "1000"]),
    }
    args.extend(["--timeout", &peer_timeout]);
    let mut peer = PeerProcess::spawn(server, &args);
    let port = peer.port().await;

    let chunks = upload_chunks();
    let sent = Tally::of(chunks.iter().map(|c| &c[..]));
    let url = format!("ws://127.0.0.1:{port}/upload");
    let start = Instant::now();
    let (ws, _) = within_for(STEP, "connecting", wsio::connect(url.as_str()))
        .await
        .unwrap_or_else(|e| panic!("connecting to {url}: {e}\npeer output:\n{}", peer.output()));
    let outcome = match tokio::time::timeout(UPLOAD_LIMIT, upload(ws, writer, &chunks)).await {
        Ok(outcome) => outcome,
        Err(_) => Err(format!("the upload did not finish within {UPLOAD_LIMIT:?}")),
    };
    let elapsed = start.elapsed();
    let (status, output) = peer.finish(STEP).await;
    let report = outcome.unwrap_or_else(|why| {
        panic!(
            "{writer:?} upload of {} bytes to the {server:?} server failed after {elapsed:.1?}: \
             {why}\npeer exit: {status:?}, output:\n{output}",
            sent.bytes
        )
    });
    println!("{writer:?} upload to {server:?} in {elapsed:.1?}; peer output:\n{output}");
    let got = Tally::parse(&report)
        .unwrap_or_else(|| panic!("unreadable report {report:?}\npeer output:\n{output}"));
    assert_eq!(
        got, sent,
        "the {server:?} server received other bytes than were sent\npeer output:\n{output}"
    );
    // The upload ran through several keepalive rounds (else it proves nothing).
    let pings = output.matches(ping_line(server)).count();
    assert!(
        pings >= 4,
        "the {server:?} server sent only {pings} pings during the upload\npeer output:\n{output}"
    );
    assert!(
        status.is_some_and(|s| s.success()),
        "the {server:?} server exited with {status:?}\npeer output:\n{output}"
    );
}

/// Writes every chunk with `writer`, one per [`PERIOD`], calling nothing that receives; then
/// reads the server's report and closes. Returns the report, or what went wrong.
async fn upload<S>(ws: WebSocket<S>, writer: WriteWith, chunks: &[Bytes]) -> Result<String, String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match writer {
        WriteWith::Send => upload_with_send(ws, chunks).await,
        WriteWith::MessageWriter => upload_with_message_writer(ws, chunks).await,
        WriteWith::ByteStream => upload_with_byte_stream(ws, chunks).await,
    }
}

fn write_failed(i: usize, start: Instant, e: &dyn std::fmt::Display) -> String {
    format!(
        "writing chunk {i} of {CHUNKS} failed {:.1?} into the upload: {e}",
        start.elapsed()
    )
}

/// After a failed write: what receiving now shows (the peer's close, if it is still readable).
async fn after_failure<S>(ws: &mut WebSocket<S>) -> String
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(2);
    while let Ok(next) = tokio::time::timeout_at(deadline.into(), ws.recv()).await {
        match next {
            Some(Ok(message)) => seen.push(format!("{message:?}")),
            Some(Err(e)) => {
                seen.push(format!("error: {e}"));
                break;
            }
            None => break,
        }
    }
    format!(
        "; receiving afterwards gave [{}], peer's close code {:?}",
        seen.join(", "),
        ws.close_code()
    )
}

/// Receives until the server's text report arrives, then closes.
async fn report_and_close<S>(ws: &mut WebSocket<S>) -> Result<String, String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let report = loop {
        match within_for(STEP, "the server's report", ws.recv()).await {
            Some(Ok(Message::Text(text))) => break text.as_str().to_string(),
            Some(Ok(Message::Close(frame))) => {
                return Err(format!(
                    "the server closed ({frame:?}) instead of reporting"
                ))
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(format!("waiting for the report: {e}")),
            None => return Err("the connection ended before the report".into()),
        }
    };
    ws.close(CloseCode::NORMAL, "done")
        .await
        .map_err(|e| format!("closing after the report {report:?}: {e}"))?;
    Ok(report)
}

async fn upload_with_send<S>(mut ws: WebSocket<S>, chunks: &[Bytes]) -> Result<String, String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let start = Instant::now();
    for (i, chunk) in chunks.iter().enumerate() {
        if let Err(e) = ws.send(Message::binary(chunk.clone())).await {
            return Err(write_failed(i, start, &e) + &after_failure(&mut ws).await);
        }
        tokio::time::sleep(PERIOD).await;
    }
    report_and_close(&mut ws).await
}

async fn upload_with_message_writer<S>(
    mut ws: WebSocket<S>,
    chunks: &[Bytes],
) -> Result<String, String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let start = Instant::now();
    let mut failed = None;
    {
        let mut writer = ws.send_stream(DataKind::Binary);
        for (i, chunk) in chunks.iter().enumerate() {
            if let Err(e) = writer.write_all(chunk).await {
                failed = Some(write_failed(i, start, &describe_io(&e)));
                break;
            }
            tokio::time::sleep(PERIOD).await;
        }
        if failed.is_none() {
            if let Err(e) = writer.shutdown().await {
                failed = Some(write_failed(CHUNKS, start, &describe_io(&e)));
            }
        }
    }
    match failed {
        Some(why) => Err(why + &after_failure(&mut ws).await),
        None => report_and_close(&mut ws).await,
    }
}

async fn upload_with_byte_stream<S>(ws: WebSocket<S>, chunks: &[Bytes]) -> Result<String, String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let start = Instant::now();
    let mut stream = ByteStream::new(ws);
    for (i, chunk) in chunks.iter().enumerate() {
        if let Err(e) = stream.write_all(chunk).await {
            let why = write_failed(i, start, &describe_io(&e));
            return Err(why + &after_byte_stream_failure(&mut stream).await);
        }
        tokio::time::sleep(PERIOD).await;
    }
    if let Err(e) = stream.flush().await {
        let why = write_failed(CHUNKS, start, &describe_io(&e));
        return Err(why + &after_byte_stream_failure(&mut stream).await);
    }
    // The report is a binary message, so bytes in the stream, ending with a newline. Closing
    // before it has arrived could cut it off (the server may see the close first).
    let mut report = Vec::new();
    let read_report = async {
        while !report.ends_with(b"\n") {
            let mut buf = [0; 256];
            match stream.read(&mut buf).await? {
                0 => break,
                n => report.extend_from_slice(&buf[..n]),
            }
        }
        io::Result::Ok(())
    };
    within_for(STEP, "the server's report", read_report)
        .await
        .map_err(|e| {
            format!(
                "reading the report (got {:?}): {}",
                String::from_utf8_lossy(&report),
                describe_io(&e)
            )
        })?;
    let report = String::from_utf8_lossy(&report).into_owned();
    // Shut down (close 1000) and read to the server's close: nothing more may come.
    let mut rest = Vec::new();
    let close = async {
        stream.shutdown().await?;
        stream.read_to_end(&mut rest).await
    };
    within_for(STEP, "the closing handshake", close)
        .await
        .map_err(|e| format!("closing after the report {report:?}: {}", describe_io(&e)))?;
    // A ByteStream reads any close as EOF: the code tells a report from a failed connection.
    match stream.close_code() {
        Some(CloseCode::NORMAL) if rest.is_empty() => Ok(report),
        code => Err(format!(
            "the server closed with {code:?} after {report:?} and {} more bytes",
            rest.len()
        )),
    }
}

async fn after_byte_stream_failure<S>(stream: &mut ByteStream<S>) -> String
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut buf = vec![0; 4096];
    let read = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf)).await;
    let read = match read {
        Ok(Ok(n)) => format!("{n} bytes"),
        Ok(Err(e)) => describe_io(&e),
        Err(_) => "nothing within 2 s".into(),
    };
    format!(
        "; reading afterwards gave {read}, peer's close code {:?}",
        stream.close_code()
    )
}

#[tokio::test]
async fn upload_via_send_survives_python_keepalive() {
    upload_to(RealPeer::Python, WriteWith::Send).await;
}

#[tokio::test]
async fn upload_via_message_writer_survives_python_keepalive() {
    upload_to(RealPeer::Python, WriteWith::MessageWriter).await;
}

#[tokio::test]
async fn upload_via_byte_stream_survives_python_keepalive() {
    upload_to(RealPeer::Python, WriteWith::ByteStream).await;
}

#[tokio::test]
async fn upload_via_send_survives_node_heartbeat() {
    upload_to(RealPeer::Node, WriteWith::Send).await;
}

#[tokio::test]
async fn upload_via_message_writer_survives_node_heartbeat() {
    upload_to(RealPeer::Node, WriteWith::MessageWriter).await;
}

#[tokio::test]
async fn upload_via_byte_stream_survives_node_heartbeat() {
    upload_to(RealPeer::Node, WriteWith::ByteStream).await;
}

// ---------------------------------------------------------------------------------------------
// A big single frame streams through the stream API: a peer client uploads one huge frame.

/// `WSIO_LONG=1`: the big frame is 1 GiB rather than 256 MiB.
fn long_run() -> bool {
    std::env::var("WSIO_LONG").is_ok_and(|v| v == "1")
}

/// The single frame's size.
fn big_frame_size() -> u64 {
    if long_run() {
        1 << 30
    } else {
        256 << 20
    }
}

/// The whole big-frame test, from the peer's start until the server has closed. The peers
/// take most of it: they generate, hash and mask the payload, and copy it a few times.
fn big_limit() -> Duration {
    Duration::from_secs(if long_run() { 150 } else { 60 })
}

/// How much the test process's peak RSS may grow while it receives the frame.
const RSS_BUDGET_KIB: u64 = 64 << 10;

/// The big uploads run one at a time: each peer holds the payload in memory (a few times over)
/// and both cores are busy, and the peak RSS measured is the whole test process's.
static ONE_BIG_UPLOAD_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How the wsio server reads the upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadWith {
    /// `ws.recv_stream()` and `tokio::io::copy` of the message into a hashing sink; the digest
    /// follows as a text message.
    RecvStream,
    /// `ByteStream::new(ws)`: the frame's bytes then the digest, as one byte stream.
    ByteStream,
}

/// The test process's memory, from `/proc/self/status`, in KiB.
async fn big_upload_from(client: RealPeer, reader: ReadWith) {
    let _turn = ONE_BIG_UPLOAD_AT_A_TIME.lock().await;
    let size = big_frame_size();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("ws://{}/upload", listener.local_addr().expect("addr"));
    let digest_as = match reader {
        ReadWith::RecvStream => "text",
        ReadWith::ByteStream => "binary", // a ByteStream reads binary messages only
    };
    let limit = big_limit();
    let (size_arg, timeout_arg) = (size.to_string(), (limit + STEP).as_secs().to_string());
    let peer = PeerProcess::spawn(
        client,
        &[
            "upload",
            "--url",
            &url,
            "--size",
            &size_arg,
            "--digest-as",
            digest_as,
            "--timeout",
            &timeout_arg,
        ],
    );

    let start = Instant::now();
    let peak_was_reset = Memory::reset_peak();
    let before = Memory::now();
    let served = tokio::time::timeout(limit, serve_big_upload(listener, reader, size)).await;
    let after = Memory::now();
    let elapsed = start.elapsed();
    let (status, output) = peer.finish(STEP).await;
    let served = served.unwrap_or_else(|_| Err(format!("not done within {limit:?}")));
    let (got, claimed) = served.unwrap_or_else(|why| {
        panic!(
            "wsio server ({reader:?}, default Config) receiving one {size}-byte frame from \
             the {client:?} client failed after {elapsed:.1?}: {why}\npeer exit: {status:?}, \
             output:\n{output}"
        )
    });
    let growth = after.peak.saturating_sub(before.rss);
    println!(
        "{reader:?} server, {client:?} client: {size} bytes in one frame in {elapsed:.1?}; \
         test process RSS before {} MiB, peak after {} MiB (peak reset: {peak_was_reset}), \
         growth {} MiB\npeer output:\n{output}",
        before.rss >> 10,
        after.peak >> 10,
        growth >> 10
    );
    assert_eq!(
        got.bytes, size,
        "byte count received\npeer output:\n{output}"
    );
    assert_eq!(
        got.sha256, claimed,
        "SHA-256 of what was received vs. the {client:?} client's\npeer output:\n{output}"
    );
    assert!(
        growth < RSS_BUDGET_KIB,
        "peak RSS grew by {} MiB receiving {} MiB (budget {} MiB)",
        growth >> 10,
        size >> 20,
        RSS_BUDGET_KIB >> 10
    );
    assert!(
        status.is_some_and(|s| s.success()),
        "the {client:?} client exited with {status:?}\npeer output:\n{output}"
    );
}

/// Accepts one connection with the default `Config`, hashes the upload as it streams, reads
/// the peer's digest, closes. Returns what was received and the digest the peer claims.
async fn serve_big_upload(
    listener: TcpListener,
    reader: ReadWith,
    size: u64,
) -> Result<(Tally, String), String> {
    let (tcp, _) = within_for(STEP, "the peer's connection", listener.accept())
        .await
        .map_err(|e| format!("accept: {e}"))?;
    let ws: WebSocket<TcpStream> = within_for(STEP, "the opening handshake", wsio::accept(tcp))
        .await
        .map_err(|e| format!("opening handshake: {e}"))?;
    match reader {
        ReadWith::RecvStream => receive_messages(ws).await,
        ReadWith::ByteStream => receive_bytes(ws, size).await,
    }
}

async fn receive_messages(mut ws: WebSocket<TcpStream>) -> Result<(Tally, String), String> {
    let mut sink = HashSink::default();
    {
        let mut message = match ws.recv_stream().await {
            Some(Ok(message)) => message,
            Some(Err(e)) => {
                return Err(format!(
                    "recv_stream for the upload failed: {e} (kind {:?}, wsio sent close code {:?})",
                    e.kind(),
                    e.close_code()
                ))
            }
            None => {
                return Err(format!(
                    "the connection ended before the upload (peer's close {:?})",
                    ws.close_code()
                ))
            }
        };
        if message.kind() != DataKind::Binary {
            return Err(format!("the upload came as {:?}", message.kind()));
        }
        tokio::io::copy(&mut message, &mut sink)
            .await
            .map_err(|e| {
                format!(
                    "reading the upload after {} bytes: {}",
                    sink.bytes(),
                    describe_io(&e)
                )
            })?;
    }
    let claimed = {
        let mut message = match ws.recv_stream().await {
            Some(Ok(message)) => message,
            Some(Err(e)) => return Err(format!("recv_stream for the digest failed: {e}")),
            None => return Err("the connection ended before the digest".into()),
        };
        let mut digest = String::new();
        message
            .read_to_string(&mut digest)
            .await
            .map_err(|e| format!("reading the digest: {}", describe_io(&e)))?;
        digest
    };
    ws.close(CloseCode::NORMAL, "verified")
        .await
        .map_err(|e| format!("closing: {e}"))?;
    Ok((sink.tally(), claimed))
}

async fn receive_bytes(ws: WebSocket<TcpStream>, size: u64) -> Result<(Tally, String), String> {
    let mut stream = ByteStream::new(ws);
    let mut sink = HashSink::default();
    tokio::io::copy(&mut (&mut stream).take(size), &mut sink)
        .await
        .map_err(|e| {
            format!(
                "reading the byte stream after {} bytes: {} (peer's close {:?})",
                sink.bytes(),
                describe_io(&e),
                stream.close_code()
            )
        })?;
    if sink.bytes() != size {
        return Err(format!(
            "the byte stream ended after {} of {size} bytes (peer's close {:?})",
            sink.bytes(),
            stream.close_code()
        ));
    }
    let mut digest = vec![0; 64];
    stream
        .read_exact(&mut digest)
        .await
        .map_err(|e| format!("reading the digest: {}", describe_io(&e)))?;
    stream
        .shutdown()
        .await
        .map_err(|e| format!("shutting down: {}", describe_io(&e)))?;
    // Up to the peer's close: nothing more may come.
    let mut rest = Vec::new();
    within_for(STEP, "the peer's close", stream.read_to_end(&mut rest))
        .await
        .map_err(|e| format!("reading to the peer's close: {}", describe_io(&e)))?;
    if !rest.is_empty() {
        return Err(format!("{} unexpected bytes after the digest", rest.len()));
    }
    let claimed = String::from_utf8(digest).map_err(|e| format!("digest not UTF-8: {e}"))?;
    Ok((sink.tally(), claimed))
}

#[tokio::test]
async fn single_frame_upload_from_python_streams_through_recv_stream() {
    big_upload_from(RealPeer::Python, ReadWith::RecvStream).await;
}

#[tokio::test]
async fn single_frame_upload_from_node_streams_through_recv_stream() {
    big_upload_from(RealPeer::Node, ReadWith::RecvStream).await;
}

#[tokio::test]
async fn single_frame_upload_from_python_streams_through_byte_stream() {
    big_upload_from(RealPeer::Python, ReadWith::ByteStream).await;
}

#[tokio::test]
async fn single_frame_upload_from_node_streams_through_byte_stream() {
    big_upload_from(RealPeer::Node, ReadWith::ByteStream).await;
}

// ---------------------------------------------------------------------------------------------
// Authentication challenges: a `websockets` server whose `process_request` answers 401 with
// `WWW-Authenticate: Bearer` until the request carries the token.

/// The token the Python server wants, and a hook that fetches it (after a pause, as a call to
/// an identity provider would) and counts its calls. `token` is what the hook answers with:
/// `None` gives up.
fn token_hook(
    token: Option<&'static str>,
    calls: Arc<std::sync::atomic::AtomicUsize>,
) -> wsio::ClientBuilder {
    wsio::ClientBuilder::new().on_auth_challenge(move |challenge| {
        calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(challenge.status(), http::StatusCode::UNAUTHORIZED);
        let schemes: Vec<&str> = challenge.www_authenticate().collect();
        assert_eq!(schemes, [r#"Bearer realm="wsio-test""#]);
        assert!(challenge
            .set_cookies()
            .any(|c| c.starts_with("challenge=1")));
        assert_eq!(challenge.uri().path(), "/private");
        async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let token = token?;
            let mut headers = http::HeaderMap::new();
            let value = http::HeaderValue::try_from(format!("Bearer {token}")).unwrap();
            headers.insert(http::header::AUTHORIZATION, value);
            Some(headers)
        }
    })
}

async fn auth_server() -> (PeerProcess, String) {
    let mut server = PeerProcess::spawn(RealPeer::Python, &["auth-server", "--token", "s3cret"]);
    let url = format!("ws://127.0.0.1:{}/private", server.port().await);
    (server, url)
}

#[tokio::test]
async fn client_answers_a_401_from_python_with_a_token_and_retries_once() {
    let (server, url) = auth_server().await;
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let client = token_hook(Some("s3cret"), calls.clone());
    let (mut ws, response) = within_for(STEP, "connect", client.connect(url.as_str()))
        .await
        .unwrap_or_else(|e| panic!("connect: {e}; server printed:\n{}", server.output()));
    assert_eq!(response.status(), http::StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    ws.send_text("after the challenge").await.unwrap();
    let echo = within_for(STEP, "echo", ws.recv()).await.unwrap().unwrap();
    assert_eq!(echo, Message::text("after the challenge"));
    ws.close(1000, "").await.unwrap();
    let (status, output) = server.finish(STEP).await;
    assert_eq!(
        output.matches("refused authorization=None").count(),
        1,
        "{output}"
    );
    assert!(output.contains("accepted"), "{output}");
    assert!(status.is_some_and(|s| s.success()), "{output}");
}

#[tokio::test]
async fn client_that_gives_up_on_a_401_gets_the_refusal() {
    let (server, url) = auth_server().await;
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let client = token_hook(None, calls.clone());
    let error = within_for(STEP, "connect", client.connect(url.as_str()))
        .await
        .expect_err("no token, no connection");
    let response = refusal(&error);
    assert_eq!(response.status(), http::StatusCode::UNAUTHORIZED);
    assert_eq!(&response.body()[..], b"a bearer token is required\n");
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert!(!server.output().contains("accepted"), "{}", server.output());
}

#[tokio::test]
async fn a_second_401_after_the_retry_is_the_error() {
    let (server, url) = auth_server().await;
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let client = token_hook(Some("wrong"), calls.clone());
    let error = within_for(STEP, "connect", client.connect(url.as_str()))
        .await
        .expect_err("a wrong token is refused");
    assert_eq!(refusal(&error).status(), http::StatusCode::UNAUTHORIZED);
    assert_eq!(
        calls.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "one retry only"
    );
    let output = printed(&server, "refused authorization='Bearer wrong'").await;
    assert_eq!(output.matches("refused").count(), 2, "{output}");
}

/// What `peer` printed, once it has printed `text` (its output is collected as it comes).
async fn printed(peer: &PeerProcess, text: &str) -> String {
    let wait = async {
        while !peer.output().contains(text) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    if tokio::time::timeout(STEP, wait).await.is_err() {
        panic!(
            "{} never printed {text:?}; it printed:\n{}",
            peer.what(),
            peer.output()
        );
    }
    peer.output()
}

/// The server's refusal inside a handshake error.
fn refusal(error: &wsio::Error) -> &http::Response<Bytes> {
    match error {
        wsio::Error::Handshake(e) => match &**e {
            wsio::handshake::HandshakeError::Refused(response) => response,
            other => panic!("not a refusal: {other}"),
        },
        other => panic!("not a handshake error: {other}"),
    }
}
