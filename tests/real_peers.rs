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

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use wsio::{ByteStream, CloseCode, DataKind, Message, WebSocket};

use support::within_for;

/// One step that must not take long: connecting, a report after the upload, a process exit.
const STEP: Duration = Duration::from_secs(10);

fn peers_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers")
}

const NOT_INSTALLED: &str =
    "run `bash scripts/install-peers.sh` (scripts/test.sh does) to install them";

/// The Python interpreter of the peers' virtualenv, once `websockets` imports in it.
fn python() -> &'static Path {
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let found = PYTHON.get_or_init(|| {
        let python = peers_dir().join("python/.venv/bin/python");
        let check = std::process::Command::new(&python)
            .args(["-c", "import websockets; print(websockets.__version__)"])
            .output();
        match check {
            Ok(out) if out.status.success() => Ok(python),
            Ok(out) => Err(format!(
                "{} cannot import websockets: {}",
                python.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            )),
            Err(e) => Err(format!("{}: {e}", python.display())),
        }
    });
    match found {
        Ok(python) => python,
        Err(why) => panic!("the Python websockets peer is not installed ({why}): {NOT_INSTALLED}"),
    }
}

/// `node`, once the `ws` package is in the peers' `node_modules`.
fn node() -> &'static Path {
    static NODE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let found = NODE.get_or_init(|| {
        let ws = peers_dir().join("node/node_modules/ws/package.json");
        if !ws.exists() {
            return Err(format!("{} is missing", ws.display()));
        }
        match std::process::Command::new("node").arg("--version").output() {
            Ok(out) if out.status.success() => Ok(PathBuf::from("node")),
            Ok(out) => Err(format!("node --version failed: {}", out.status)),
            Err(e) => Err(format!("node: {e}")),
        }
    });
    match found {
        Ok(node) => node,
        Err(why) => panic!("the Node ws peer is not installed ({why}): {NOT_INSTALLED}"),
    }
}

/// Which real implementation plays the other end.
#[derive(Debug, Clone, Copy)]
enum Peer {
    /// Python `websockets` (its asyncio implementation).
    Python,
    /// Node `ws`.
    Node,
}

impl Peer {
    /// What the peer server prints for each keepalive ping it sends.
    fn ping_line(self) -> &'static str {
        match self {
            Peer::Python => "% sent keepalive ping", // websockets' own debug line
            Peer::Node => "heartbeat: sent ping",
        }
    }

    /// The command line that runs `args` in this peer's program.
    fn command(self, args: &[String]) -> (PathBuf, Vec<String>) {
        let (program, script) = match self {
            Peer::Python => (python(), peers_dir().join("python/peer.py")),
            Peer::Node => (node(), peers_dir().join("node/peer.js")),
        };
        let mut all = vec![script.display().to_string()];
        all.extend_from_slice(args);
        (program.to_path_buf(), all)
    }
}

/// A peer program running as a child process, killed when dropped. Its stdout and stderr are
/// collected (for failure messages), and stdout lines are also handed to the test.
struct PeerProcess {
    what: String,
    child: Child,
    output: Arc<Mutex<String>>,
    lines: mpsc::UnboundedReceiver<String>,
    readers: Vec<JoinHandle<()>>,
}

impl PeerProcess {
    fn spawn(peer: Peer, args: &[&str]) -> Self {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let (program, argv) = peer.command(&args);
        let what = format!("{peer:?} peer `{}`", args.join(" "));
        let mut child = Command::new(&program)
            .args(&argv)
            .current_dir(peers_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what} ({}): {e}", program.display()));
        let output = Arc::new(Mutex::new(String::new()));
        let (tx, lines) = mpsc::unbounded_channel();
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let readers = vec![
            tokio::spawn(collect(stdout, output.clone(), "", Some(tx))),
            tokio::spawn(collect(stderr, output.clone(), "stderr: ", None)),
        ];
        PeerProcess {
            what,
            child,
            output,
            lines,
            readers,
        }
    }

    /// Everything the peer printed so far.
    fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// Waits for the stdout line that starts with `prefix` and returns the rest of it.
    async fn line_after(&mut self, prefix: &str) -> String {
        let wait = async {
            while let Some(line) = self.lines.recv().await {
                if let Some(rest) = line.strip_prefix(prefix) {
                    return Some(rest.to_string());
                }
            }
            None
        };
        match tokio::time::timeout(STEP, wait).await {
            Ok(Some(rest)) => rest,
            Ok(None) => panic!(
                "{} exited before printing {prefix:?}; it printed:\n{}",
                self.what,
                self.output()
            ),
            Err(_) => panic!(
                "{} printed no {prefix:?} within {STEP:?}; it printed:\n{}",
                self.what,
                self.output()
            ),
        }
    }

    /// The port a peer server listens on (its first line says).
    async fn port(&mut self) -> u16 {
        let port = self.line_after("listening ").await;
        port.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{}: bad port line {port:?}", self.what))
    }

    /// Waits (up to `limit`) for the peer to exit by itself, kills it otherwise, and returns its
    /// exit status (`None` when it had to be killed) and everything it printed.
    async fn finish(mut self, limit: Duration) -> (Option<ExitStatus>, String) {
        let status = match tokio::time::timeout(limit, self.child.wait()).await {
            Ok(Ok(status)) => Some(status),
            Ok(Err(e)) => panic!("waiting for {}: {e}", self.what),
            Err(_) => {
                let _ = self.child.kill().await;
                None
            }
        };
        for reader in self.readers.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(2), reader).await;
        }
        (status, self.output())
    }
}

async fn collect(
    from: impl AsyncRead + Unpin,
    output: Arc<Mutex<String>>,
    tag: &'static str,
    lines: Option<mpsc::UnboundedSender<String>>,
) {
    let mut from = BufReader::new(from).lines();
    while let Ok(Some(line)) = from.next_line().await {
        writeln!(output.lock().unwrap(), "  | {tag}{line}").unwrap();
        if let Some(tx) = &lines {
            let _ = tx.send(line);
        }
    }
}

/// Byte count and SHA-256, as the peers report them: `bytes=N sha256=HEX\n`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Tally {
    bytes: u64,
    sha256: String,
}

impl Tally {
    fn of<'a>(pieces: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let mut sink = HashSink::default();
        for piece in pieces {
            sink.update(piece);
        }
        sink.tally()
    }

    fn parse(report: &str) -> Option<Self> {
        let mut words = report.split_whitespace();
        let bytes = words.next()?.strip_prefix("bytes=")?.parse().ok()?;
        let sha256 = words.next()?.strip_prefix("sha256=")?.to_string();
        Some(Tally { bytes, sha256 })
    }
}

/// An `AsyncWrite` that counts and hashes what is written to it and keeps none of it.
#[derive(Default)]
struct HashSink {
    hasher: Sha256,
    bytes: u64,
}

impl HashSink {
    fn update(&mut self, data: &[u8]) {
        self.hasher.update(data);
        self.bytes += data.len() as u64;
    }

    fn tally(&self) -> Tally {
        let digest = self.hasher.clone().finalize();
        Tally {
            bytes: self.bytes,
            sha256: digest.iter().fold(String::new(), |mut s, b| {
                let _ = write!(s, "{b:02x}");
                s
            }),
        }
    }
}

impl AsyncWrite for HashSink {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().update(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// The `wsio::Error` inside an `io::Error` from a stream reader or writer, if there is one.
fn ws_error(e: &io::Error) -> Option<&wsio::Error> {
    e.get_ref()?.downcast_ref::<wsio::Error>()
}

/// An io::Error from the stream API with the close code wsio sent because of it, if any.
fn describe_io(e: &io::Error) -> String {
    match ws_error(e).and_then(wsio::Error::close_code) {
        Some(code) => format!("{e} (wsio failed the connection with {code})"),
        None => format!("{e} ({:?})", e.kind()),
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
async fn upload_to(server: Peer, writer: WriteWith) {
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
        Peer::Python => args.extend(["--ping-interval", "1", "--ping-timeout", "1"]),
        // The heartbeat of the ws README: every second, terminate() or ping().
        Peer::Node => args.extend(["--heartbeat-ms", "1000"]),
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
    let pings = output.matches(server.ping_line()).count();
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
    upload_to(Peer::Python, WriteWith::Send).await;
}

#[tokio::test]
async fn upload_via_message_writer_survives_python_keepalive() {
    upload_to(Peer::Python, WriteWith::MessageWriter).await;
}

#[tokio::test]
async fn upload_via_byte_stream_survives_python_keepalive() {
    upload_to(Peer::Python, WriteWith::ByteStream).await;
}

#[tokio::test]
async fn upload_via_send_survives_node_heartbeat() {
    upload_to(Peer::Node, WriteWith::Send).await;
}

#[tokio::test]
async fn upload_via_message_writer_survives_node_heartbeat() {
    upload_to(Peer::Node, WriteWith::MessageWriter).await;
}

#[tokio::test]
async fn upload_via_byte_stream_survives_node_heartbeat() {
    upload_to(Peer::Node, WriteWith::ByteStream).await;
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
#[derive(Debug, Clone, Copy)]
struct Memory {
    rss: u64,
    peak: u64,
}

impl Memory {
    fn now() -> Self {
        let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or_else(|| panic!("no {name} in /proc/self/status"))
        };
        Memory {
            rss: field("VmRSS:"),
            peak: field("VmHWM:"),
        }
    }

    /// Resets the peak (VmHWM) to the current RSS, where the kernel allows it.
    fn reset_peak() -> bool {
        std::fs::write("/proc/self/clear_refs", "5").is_ok()
    }
}

async fn big_upload_from(client: Peer, reader: ReadWith) {
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
                    sink.bytes,
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
                sink.bytes,
                describe_io(&e),
                stream.close_code()
            )
        })?;
    if sink.bytes != size {
        return Err(format!(
            "the byte stream ended after {} of {size} bytes (peer's close {:?})",
            sink.bytes,
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
    big_upload_from(Peer::Python, ReadWith::RecvStream).await;
}

#[tokio::test]
async fn single_frame_upload_from_node_streams_through_recv_stream() {
    big_upload_from(Peer::Node, ReadWith::RecvStream).await;
}

#[tokio::test]
async fn single_frame_upload_from_python_streams_through_byte_stream() {
    big_upload_from(Peer::Python, ReadWith::ByteStream).await;
}

#[tokio::test]
async fn single_frame_upload_from_node_streams_through_byte_stream() {
    big_upload_from(Peer::Node, ReadWith::ByteStream).await;
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
    let mut server = PeerProcess::spawn(Peer::Python, &["auth-server", "--token", "s3cret"]);
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
            peer.what,
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
