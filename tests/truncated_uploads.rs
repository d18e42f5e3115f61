//! Truncated uploads never look complete. A message streamed through `MessageWriter`, or bytes
//! written through a `ByteStream`, is cut before it ends, and the receiving `MessageReader` or
//! `ByteStream` must fail — never return `Ok(0)` — so that `tokio::io::copy` into a file fails
//! instead of leaving a short file that looks whole. The cuts:
//!
//! - the uploading **process is killed** (`SIGKILL`) once the receiver has some random number
//!   of bytes: the test binary re-executes itself as the uploader child;
//! - the TCP connection is **reset** (RST) or **half-closed** (FIN, no close frame) at a random
//!   byte offset, by a cutting proxy between the uploader and the receiver;
//! - the same cuts **under TLS**: a TLS stream that ends without `close_notify` is an error.
//!
//! And the close frames a `ByteStream` reads: a normal close (1000) between messages is the
//! stream's EOF; a close with an error code, or any close in the middle of a message, is a
//! truncation and must read as an error.
//!
//! Every run prints its seed; `WSIO_TRUNCATE_SEED=<seed>` replays the same cut points.

mod support;

use std::env;
use std::io;
use std::net::SocketAddr;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::Stdio;
#[cfg(feature = "tls")]
use std::sync::Arc;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use wsio::server::Acceptor;
#[cfg(feature = "tls")]
use wsio::tls::rustls::{self, RootCertStore};
use wsio::{ByteStream, ClientBuilder, Config, DataKind, Role, WebSocket};

#[cfg(feature = "tls")]
use support::certs::Ca;
use support::{scripted, within, within_for, XorShift, OP_BINARY, STEP};

/// The environment variable that makes the kill test's process the uploader child; its value
/// is the receiver's address.
const CHILD_ENV: &str = "WSIO_TRUNCATE_CHILD";
/// Which API the child uploads through (`message` or `bytestream`).
const CHILD_API_ENV: &str = "WSIO_TRUNCATE_API";
/// Whether the child offers permessage-deflate (`1`) or not (`0`).
const CHILD_COMPRESS_ENV: &str = "WSIO_TRUNCATE_COMPRESS";
/// The seed of the child's write sizes and flushes.
const CHILD_WRITES_ENV: &str = "WSIO_TRUNCATE_WRITES";
/// The name of the test that re-executes itself as the child (for `--exact`).
const KILL_TEST_NAME: &str = "a_killed_uploader_process_never_looks_complete";

/// How long a whole truncated upload may take to end at the receiver: a few MiB through an
/// unoptimised library on a loaded 2-core machine take a second or two; ten times that is a
/// hang, not slowness.
const UPLOAD_ENDS: Duration = Duration::from_secs(30);
/// How long the child process may take to start and connect: a fresh test binary on a loaded
/// machine (other builds running) can take a few seconds to be scheduled.
const CHILD_CONNECTS: Duration = Duration::from_secs(30);
/// How long one side of a handshake may take on a loaded machine before it counts as a hang.
const HANDSHAKE_BOUND: Duration = Duration::from_secs(20);

/// The uploader child gives up by itself after this long, should its parent vanish without
/// killing it (the parent kills it long before; `kill_on_drop` covers a panicking parent).
const CHILD_LIFETIME: Duration = Duration::from_secs(120);

/// Length of the repeating pattern every upload carries: byte `p` of any upload is
/// `pattern[p % PATTERN_LEN]`, so the receiver can check what reached the file. Not a power of
/// two, so the pattern's period does not line up with frame sizes.
const PATTERN_LEN: usize = (1 << 20) + 7;

/// Largest single write of an uploader (each write's size is random up to this).
const MAX_WRITE: u64 = 64 * 1024;

/// The most message bytes a receiver takes before the cut is triggered.
const MAX_CUT_AFTER: u64 = 3 << 20;

/// The repeating upload pattern (see [`PATTERN_LEN`]); the same in every process.
fn upload_pattern() -> &'static [u8] {
    static PATTERN: OnceLock<Vec<u8>> = OnceLock::new();
    PATTERN.get_or_init(|| XorShift::new(0x7472_756e_6361_7465).bytes(PATTERN_LEN))
}

/// This run's seed: `WSIO_TRUNCATE_SEED` if set, otherwise the clock. Printed, so a failing
/// run can be replayed.
fn seed(test: &str) -> u64 {
    let seed = env::var("WSIO_TRUNCATE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .expect("clock after 1970")
                .as_nanos() as u64
        });
    println!("{test}: seed {seed} (WSIO_TRUNCATE_SEED={seed} replays it)");
    seed
}

/// Which API an upload goes through, on both ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    /// One endless message: `send_stream` on the uploader, `recv_stream` on the receiver.
    Message,
    /// `ByteStream` on both ends: a flush ends one binary message, the next write starts another.
    ByteStream,
}

impl Api {
    fn name(self) -> &'static str {
        match self {
            Api::Message => "message",
            Api::ByteStream => "bytestream",
        }
    }

    fn from_name(name: &str) -> Api {
        match name {
            "message" => Api::Message,
            "bytestream" => Api::ByteStream,
            other => panic!("unknown API {other:?}"),
        }
    }
}

/// How the receiver empties its reader into the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Drain {
    /// `tokio::io::copy` (8 KiB reads, the library's buffered path).
    Copy,
    /// 256 KiB reads: large enough for the library to read payload straight into the buffer.
    LargeReads,
}

/// The connection settings of a round: permessage-deflate on (the default) or off.
fn config(compressed: bool) -> Config {
    if compressed {
        Config::default()
    } else {
        Config::default().compression(None)
    }
}

/// Writes the upload pattern through `writer` forever, in writes of random sizes with a flush
/// now and then (a fragment boundary for a message writer, a message boundary for a byte
/// stream). Returns only when a write fails: the upload never finishes by itself.
async fn write_pattern_forever<W: AsyncWrite + Unpin>(
    writer: &mut W,
    writes_seed: u64,
) -> io::Error {
    let pattern = upload_pattern();
    let mut rng = XorShift::new(writes_seed);
    let mut offset = 0usize;
    loop {
        let start = offset % PATTERN_LEN;
        let len = 1 + rng.below(MAX_WRITE) as usize;
        let end = (start + len).min(PATTERN_LEN);
        if let Err(e) = writer.write_all(&pattern[start..end]).await {
            return e;
        }
        offset += end - start;
        if rng.one_in(8) {
            if let Err(e) = writer.flush().await {
                return e;
            }
        }
    }
}

/// Uploads the pattern over `ws` through `api` until the connection fails.
async fn upload_forever<S>(mut ws: WebSocket<S>, api: Api, writes_seed: u64) -> io::Error
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match api {
        Api::Message => {
            let mut writer = ws.send_stream(DataKind::Binary);
            write_pattern_forever(&mut writer, writes_seed).await
        }
        Api::ByteStream => {
            let mut stream = ByteStream::new(ws);
            write_pattern_forever(&mut stream, writes_seed).await
        }
    }
}

/// An `AsyncRead` that counts the bytes it passes on, calls `on_trip` once when the count
/// reaches `trip_at` (that is where the test cuts the upload), and notes any end of stream.
struct Tripwire<R, F> {
    inner: R,
    passed: u64,
    trip_at: u64,
    on_trip: Option<F>,
    tripped: bool,
    saw_eof: bool,
}

impl<R, F> Tripwire<R, F> {
    fn new(inner: R, trip_at: u64, on_trip: Option<F>) -> Self {
        Tripwire {
            inner,
            passed: 0,
            trip_at,
            on_trip,
            tripped: false,
            saw_eof: false,
        }
    }
}

impl<R: AsyncRead + Unpin, F: FnOnce() + Unpin> AsyncRead for Tripwire<R, F> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let asked = buf.remaining() > 0;
        let poll = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = poll {
            let n = (buf.filled().len() - before) as u64;
            this.saw_eof |= asked && n == 0;
            this.passed += n;
            if this.passed >= this.trip_at {
                if let Some(trip) = this.on_trip.take() {
                    this.tripped = true;
                    trip();
                }
            }
        }
        poll
    }
}

/// A file in the temporary directory, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new(case: &str) -> TempFile {
        TempFile(env::temp_dir().join(format!("wsio-truncated-{}-{case}.bin", std::process::id())))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Empties `reader` into `file` as `drain` says; `Ok` only at an end of stream.
async fn drain_into<R: AsyncRead + Unpin>(
    reader: &mut R,
    drain: Drain,
    file: &mut tokio::fs::File,
) -> io::Result<u64> {
    match drain {
        Drain::Copy => tokio::io::copy(reader, file).await,
        Drain::LargeReads => {
            let mut buf = vec![0u8; 256 * 1024];
            let mut total = 0u64;
            loop {
                let n = reader.read(&mut buf).await?;
                if n == 0 {
                    return Ok(total);
                }
                file.write_all(&buf[..n]).await?;
                total += n as u64;
            }
        }
    }
}

/// How a truncated upload ended at the receiver.
#[derive(Debug)]
struct Truncated {
    /// Bytes of the upload the receiver got (and wrote to the file) before the error.
    received: u64,
    error: io::Error,
}

impl std::fmt::Display for Truncated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} bytes, then {:?}: {}",
            self.received,
            self.error.kind(),
            self.error
        )
    }
}

/// Receives an upload that is going to be cut, into a temporary file, and checks that it ends
/// with an error, never as a complete upload: `tokio::io::copy` (or the read loop) fails, no
/// read returns `Ok(0)`, and `recv_stream` does not end as if the connection had closed
/// cleanly. The file must hold a correct prefix of the pattern. When `on_trip` is given, it is
/// called once `trip_at` bytes have arrived (it makes the cut), and the upload must not end
/// before that.
async fn receive_truncated<S, F>(
    mut ws: WebSocket<S>,
    api: Api,
    drain: Drain,
    trip_at: u64,
    on_trip: Option<F>,
    case: &str,
) -> Truncated
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: FnOnce() + Unpin,
{
    let must_trip = on_trip.is_some();
    let path = TempFile::new(case);
    let mut file = tokio::fs::File::create(&path.0).await.unwrap();
    let (result, tripped, saw_eof) = match api {
        Api::Message => match ws.recv_stream().await {
            None => panic!("{case}: recv_stream ended as if the connection had closed cleanly"),
            // Cut before the message's first payload byte (inside the first frame's header):
            // the message never started, which is an error too.
            Some(Err(e)) => (Err(io::Error::from(e)), false, false),
            Some(Ok(reader)) => {
                let mut reader = Tripwire::new(reader, trip_at, on_trip);
                let result = drain_into(&mut reader, drain, &mut file).await;
                (result, reader.tripped, reader.saw_eof)
            }
        },
        Api::ByteStream => {
            let mut reader = Tripwire::new(ByteStream::new(ws), trip_at, on_trip);
            let result = drain_into(&mut reader, drain, &mut file).await;
            (result, reader.tripped, reader.saw_eof)
        }
    };
    file.flush().await.unwrap();
    drop(file);
    let error = match result {
        Ok(n) => panic!("{case}: the truncated upload looked complete: copy returned Ok({n})"),
        Err(e) => e,
    };
    assert!(
        !saw_eof,
        "{case}: a read returned Ok(0) before the error {error:?}"
    );
    if must_trip {
        assert!(
            tripped,
            "{case}: the upload failed before it was cut: {error:?}"
        );
    }
    let written = std::fs::read(&path.0).unwrap();
    let pattern = upload_pattern();
    if let Some(at) = written
        .iter()
        .enumerate()
        .position(|(i, b)| *b != pattern[i % PATTERN_LEN])
    {
        panic!("{case}: byte {at} of the file differs from what was sent");
    }
    Truncated {
        received: written.len() as u64,
        error,
    }
}

/// Picks the API, the drain and compression of round `round`, so that every combination
/// comes up in a few rounds.
fn round_settings(round: usize) -> (Api, Drain, bool) {
    let api = if round.is_multiple_of(2) {
        Api::Message
    } else {
        Api::ByteStream
    };
    let drain = if round % 4 < 2 {
        Drain::Copy
    } else {
        Drain::LargeReads
    };
    let compressed = round % 8 >= 4;
    (api, drain, compressed)
}

// ---------------------------------------------------------------------------------------------
// kill -9

/// The uploader child: connects to the receiver at `addr` and uploads forever, until the
/// parent kills it (or, should the parent vanish, until the connection fails or
/// [`CHILD_LIFETIME`] passes).
async fn run_uploader_child(addr: &str) {
    let api = Api::from_name(&env::var(CHILD_API_ENV).expect("the child's API"));
    let compressed = env::var(CHILD_COMPRESS_ENV).as_deref() == Ok("1");
    let writes_seed: u64 = env::var(CHILD_WRITES_ENV)
        .expect("the child's write seed")
        .parse()
        .unwrap();
    let upload = async {
        let (ws, _) = ClientBuilder::new()
            .config(config(compressed))
            .connect(format!("ws://{addr}/upload"))
            .await
            .expect("the child connects to its parent");
        upload_forever(ws, api, writes_seed).await
    };
    let _ = tokio::time::timeout(CHILD_LIFETIME, upload).await;
}

/// Kills the uploading process with SIGKILL at a random point of its upload (once the receiver
/// has between 1 byte and 3 MiB of it): the kernel closes its socket, and whatever the
/// receiver reads after the last byte that made it must be an error.
#[tokio::test]
async fn a_killed_uploader_process_never_looks_complete() {
    if let Ok(addr) = env::var(CHILD_ENV) {
        return run_uploader_child(&addr).await;
    }
    const ROUNDS: usize = 8;
    let mut rng = XorShift::new(seed(KILL_TEST_NAME));
    for round in 0..ROUNDS {
        let (api, drain, compressed) = round_settings(round);
        let kill_after = 1 + rng.below(MAX_CUT_AFTER);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut child = tokio::process::Command::new(env::current_exe().unwrap())
            .args(["--exact", KILL_TEST_NAME, "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, addr.to_string())
            .env(CHILD_API_ENV, api.name())
            .env(CHILD_COMPRESS_ENV, if compressed { "1" } else { "0" })
            .env(CHILD_WRITES_ENV, rng.next_u64().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let (tcp, _) = within_for(
            CHILD_CONNECTS,
            "the uploader child connects (is KILL_TEST_NAME this test's name?)",
            listener.accept(),
        )
        .await
        .unwrap();
        let (ws, _) = within_for(
            HANDSHAKE_BOUND,
            "the child's handshake",
            Acceptor::new().config(config(compressed)).accept(tcp),
        )
        .await
        .unwrap();
        let case = format!(
            "kill round {round} ({api:?}, {drain:?}, compressed {compressed}, \
             kill after {kill_after} bytes)"
        );
        let kill = || child.start_kill().expect("SIGKILL the child");
        let truncated = within_for(
            UPLOAD_ENDS,
            &case,
            receive_truncated(
                ws,
                api,
                drain,
                kill_after,
                Some(kill),
                &format!("kill{round}"),
            ),
        )
        .await;
        let status = within("the killed child is reaped", child.wait())
            .await
            .unwrap();
        assert_eq!(
            status.signal(),
            Some(libc::SIGKILL),
            "{case}: the child was not killed: {status:?}"
        );
        println!("{case}: {truncated}");
    }
}

// ---------------------------------------------------------------------------------------------
// TCP reset and FIN, plain and under TLS, through a cutting proxy

/// How the proxy ends the receiver's connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    /// SO_LINGER 0, then close: an RST, nothing more.
    Reset,
    /// Shut down the sending direction: a FIN without a close frame. The socket stays open.
    Fin,
}

/// When the proxy cuts.
enum CutAt {
    /// This many bytes after the end of the upgrade request (the proxy finds its blank line):
    /// an exact byte offset of the WebSocket stream, inside a frame header or a payload.
    AfterUpgrade(u64),
    /// This many bytes after the value arrives on the channel (under TLS, where the proxy
    /// cannot see the stream; the receiver arms it once it has some of the upload).
    WhenArmed(watch::Receiver<Option<u64>>),
}

/// A TCP proxy for one connection that forwards the uploader's bytes to the receiver (and the
/// receiver's back) until its cut point, then cuts the receiver's connection. It reports
/// how many uploader bytes it forwarded. Dropping the handle's task drops both connections.
async fn cutting_proxy(
    receiver: SocketAddr,
    cut: Cut,
    cut_at: CutAt,
) -> (
    SocketAddr,
    oneshot::Receiver<u64>,
    tokio::task::JoinHandle<()>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (report, reported) = oneshot::channel();
    let task = tokio::spawn(async move {
        let (mut uploader, _) = listener.accept().await.unwrap();
        let mut downstream = TcpStream::connect(receiver).await.unwrap();
        if cut == Cut::Reset {
            // Only matters at close: dropping the socket then sends an RST.
            downstream.set_zero_linger().unwrap();
        }
        let forwarded = forward_until_cut(&mut uploader, &mut downstream, cut_at).await;
        let _ = report.send(forwarded);
        match cut {
            Cut::Reset => drop(downstream),
            Cut::Fin => {
                let _ = downstream.shutdown().await;
                // Hold both sockets open (no RST, no FIN towards the uploader) until the test
                // drops this task.
                std::future::pending::<()>().await;
            }
        }
        drop(uploader);
    });
    (addr, reported, task)
}

/// Where the proxy stands towards its cut.
enum Plan {
    /// Looking for the end of the upgrade request in `head`; the cut comes `after` bytes later.
    FindUpgradeEnd { head: Vec<u8>, after: u64 },
    /// Waiting for the receiver to arm the cut.
    WaitForArming(watch::Receiver<Option<u64>>),
    /// Cutting once this many uploader bytes have gone through.
    CutAt(u64),
}

/// What the forwarding loop waited for.
enum Event {
    Read(io::Result<usize>),
    Armed(u64),
}

/// Forwards bytes both ways until `cut_at`; returns how many uploader bytes went through.
async fn forward_until_cut(
    uploader: &mut TcpStream,
    receiver: &mut TcpStream,
    cut_at: CutAt,
) -> u64 {
    let (mut from_uploader, mut to_uploader) = uploader.split();
    let (mut from_receiver, mut to_receiver) = receiver.split();
    // The receiver's bytes (the 101, TLS records, a close) go back untouched, until the cut.
    let back = async {
        let _ = tokio::io::copy(&mut from_receiver, &mut to_uploader).await;
        std::future::pending::<()>().await
    };
    let forth = async {
        let mut plan = match cut_at {
            CutAt::AfterUpgrade(after) => Plan::FindUpgradeEnd {
                head: Vec::new(),
                after,
            },
            CutAt::WhenArmed(rx) => Plan::WaitForArming(rx),
        };
        let mut forwarded = 0u64;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            if let Plan::CutAt(point) = plan {
                if forwarded == point {
                    return forwarded;
                }
            }
            let event = match &mut plan {
                Plan::WaitForArming(rx) => tokio::select! {
                    read = from_uploader.read(&mut buf) => Event::Read(read),
                    armed = rx.wait_for(Option::is_some) => {
                        Event::Armed(armed.expect("the receiver arms the cut").expect("armed"))
                    }
                },
                _ => Event::Read(from_uploader.read(&mut buf).await),
            };
            let n = match event {
                Event::Armed(after) => {
                    plan = Plan::CutAt(forwarded + after);
                    continue;
                }
                Event::Read(Ok(n)) if n > 0 => n,
                // The uploader went away before the cut: the receiver sees whatever that
                // causes; wait for the test to end.
                Event::Read(_) => std::future::pending().await,
            };
            if let Plan::FindUpgradeEnd { head, after } = &mut plan {
                head.extend_from_slice(&buf[..n]);
                if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                    plan = Plan::CutAt((end + 4) as u64 + *after);
                }
            }
            let take = match plan {
                Plan::CutAt(point) => (point - forwarded).min(n as u64) as usize,
                _ => n,
            };
            if to_receiver.write_all(&buf[..take]).await.is_err() {
                return forwarded;
            }
            forwarded += take as u64;
        }
    };
    tokio::select! {
        forwarded = forth => forwarded,
        () = back => unreachable!("copying back never ends by itself"),
    }
}

/// A client TLS config that trusts `ca` alone.
#[cfg(feature = "tls")]
fn trusting(ca: &Ca) -> Arc<rustls::ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(ca.der()).unwrap();
    wsio::tls::client_config(roots).unwrap()
}

/// Runs rounds of an in-process upload through a [`cutting_proxy`] that cuts with one of
/// `cuts`; under `tls`, the receiver is a `wss://` server and the cut falls at a random point
/// of the TLS records once the receiver has part of the upload. Bits of the round number pick
/// the API, the drain, compression and the cut, so 8 rounds (16 with two cuts) cover them all.
async fn proxied_rounds(test: &str, cuts: &[Cut], tls: bool, rounds: usize) {
    let mut rng = XorShift::new(seed(test));
    #[cfg(not(feature = "tls"))]
    assert!(!tls, "TLS rounds need the `tls` feature");
    #[cfg(feature = "tls")]
    let (server_tls, client_tls) = {
        let ca = Ca::new("wsio truncated uploads CA");
        let leaf = ca.leaf(&["localhost"], None);
        (
            wsio::tls::acceptor(leaf.chain, leaf.key).unwrap(),
            trusting(&ca),
        )
    };
    for round in 0..rounds {
        let (api, drain, compressed) = round_settings(round);
        let cut = cuts[(round / 8) % cuts.len()];
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (arm, armed) = watch::channel(None);
        // Plain: an exact offset of the WebSocket stream, one round in four inside the first
        // frame's header or first payload bytes. TLS: once the receiver has `trip_at` bytes,
        // a random number of TLS bytes later.
        let (trip_at, tls_bytes, cut_at, when) = if tls {
            let trip_at = 1 + rng.below(MAX_CUT_AFTER);
            let tls_bytes = rng.below(64 * 1024);
            let when = format!("{tls_bytes} TLS bytes after the receiver had {trip_at}");
            (trip_at, tls_bytes, CutAt::WhenArmed(armed), when)
        } else {
            let after = if rng.one_in(4) {
                1 + rng.below(32)
            } else {
                1 + rng.below(MAX_CUT_AFTER)
            };
            let when = format!("{after} bytes after the upgrade request");
            (u64::MAX, 0, CutAt::AfterUpgrade(after), when)
        };
        let (proxy_addr, forwarded, proxy) =
            cutting_proxy(listener.local_addr().unwrap(), cut, cut_at).await;

        #[cfg_attr(not(feature = "tls"), allow(unused_mut))]
        let mut builder = ClientBuilder::new().config(config(compressed));
        let url = if tls {
            #[cfg(feature = "tls")]
            {
                builder = builder.tls_config(client_tls.clone());
            }
            format!("wss://localhost:{}/upload", proxy_addr.port())
        } else {
            format!("ws://{proxy_addr}/upload")
        };
        let writes_seed = rng.next_u64();
        let uploader = tokio::spawn(async move {
            let (ws, _) = builder
                .connect(url)
                .await
                .expect("connect through the proxy");
            upload_forever(ws, api, writes_seed).await
        });

        let case = format!(
            "{test} round {round} ({cut:?}, {api:?}, {drain:?}, compressed {compressed}, cut {when})"
        );
        let tag = format!("{}{round}", if tls { "tls" } else { "tcp" });
        let (tcp, _) = within_for(HANDSHAKE_BOUND, "the proxy connects", listener.accept())
            .await
            .unwrap();
        let acceptor = Acceptor::new().config(config(compressed));
        #[cfg_attr(not(feature = "tls"), allow(unused_labels))]
        let truncated = 'round: {
            #[cfg(feature = "tls")]
            if tls {
                let (ws, _) = within_for(
                    HANDSHAKE_BOUND,
                    "the TLS and WebSocket handshakes",
                    acceptor.accept_tls(&server_tls, tcp),
                )
                .await
                .unwrap();
                let arm_cut = move || {
                    let _ = arm.send(Some(tls_bytes));
                };
                let receive = receive_truncated(ws, api, drain, trip_at, Some(arm_cut), &tag);
                break 'round within_for(UPLOAD_ENDS, &case, receive).await;
            }
            // Only TLS rounds arm the cut from the receiver's side.
            #[cfg(not(feature = "tls"))]
            let _ = (&arm, tls_bytes);
            let (ws, _) = within_for(HANDSHAKE_BOUND, "the handshake", acceptor.accept(tcp))
                .await
                .unwrap();
            let receive = receive_truncated(ws, api, drain, trip_at, None::<fn()>, &tag);
            within_for(UPLOAD_ENDS, &case, receive).await
        };
        let forwarded = within("the proxy reports its cut", forwarded)
            .await
            .expect("the proxy cut the connection");
        uploader.abort();
        proxy.abort();
        println!("{case}: the proxy cut after {forwarded} uploader bytes; received {truncated}");
    }
}

/// The TCP connection under the upload is reset (an RST, as when a peer's socket is closed
/// with SO_LINGER 0 or a middlebox kills the flow) at a random byte of the WebSocket stream.
#[tokio::test]
async fn a_reset_tcp_connection_never_looks_complete() {
    proxied_rounds(
        "a_reset_tcp_connection_never_looks_complete",
        &[Cut::Reset],
        false,
        8,
    )
    .await;
}

/// The uploader's TCP sending direction ends (a FIN) at a random byte of the WebSocket stream,
/// with no close frame: a clean TCP end is still a truncated upload.
#[tokio::test]
async fn a_tcp_fin_without_a_close_frame_never_looks_complete() {
    proxied_rounds(
        "a_tcp_fin_without_a_close_frame_never_looks_complete",
        &[Cut::Fin],
        false,
        8,
    )
    .await;
}

/// Under TLS, the TCP connection is reset or ended (FIN) mid-upload, without the TLS
/// `close_notify`: the TLS layer must report a truncation, not EOF.
#[cfg(feature = "tls")]
#[tokio::test]
async fn a_tls_stream_cut_without_close_notify_never_looks_complete() {
    proxied_rounds(
        "a_tls_stream_cut_without_close_notify_never_looks_complete",
        &[Cut::Reset, Cut::Fin],
        true,
        16,
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// Close frames read through a ByteStream

/// A library server turned into a `ByteStream`, and the scripted client that feeds it frames.
fn byte_stream_and_peer() -> (ByteStream<tokio::io::DuplexStream>, support::Peer) {
    let (ws, peer) = scripted(Role::Server, Config::default());
    (ByteStream::new(ws), peer)
}

/// Reads `stream` to its end, bounded: what it read, and how it ended.
async fn read_all<R: AsyncRead + Unpin>(
    stream: &mut R,
    what: &str,
) -> (Vec<u8>, io::Result<usize>) {
    let mut got = Vec::new();
    let result = within_for(STEP, what, stream.read_to_end(&mut got)).await;
    (got, result)
}

/// A normal close (1000) after a whole message is where a byte stream ends: EOF, with every
/// byte before it read.
#[tokio::test]
async fn a_byte_stream_ends_at_a_normal_close_between_messages() {
    let (mut stream, mut peer) = byte_stream_and_peer();
    peer.send(true, OP_BINARY, b"a whole message").await;
    peer.send_close(1000, b"done").await;
    let (got, result) = read_all(&mut stream, "reading up to a normal close").await;
    assert_eq!(
        result.expect("a normal close is the stream's EOF"),
        got.len()
    );
    assert_eq!(got, b"a whole message");
    assert_eq!(stream.close_code(), Some(wsio::CloseCode::NORMAL));
}

/// A close with an error code (1011 internal error, 1002 protocol error) after a whole
/// message says the peer's side broke: the byte stream did not end as it should, so reading
/// must fail after the bytes that arrived, not end in EOF.
#[tokio::test]
async fn a_byte_stream_fails_at_an_error_close_between_messages() {
    for code in [1011, 1002] {
        let (mut stream, mut peer) = byte_stream_and_peer();
        peer.send(true, OP_BINARY, b"a whole message").await;
        peer.send_close(code, b"broke").await;
        let (got, result) = read_all(&mut stream, "reading up to an error close").await;
        assert_eq!(got, b"a whole message", "close {code}");
        match result {
            Ok(n) => panic!("close {code} read as EOF (Ok after {n} bytes): it must be an error"),
            Err(e) => println!("close {code} between messages: {:?}: {e}", e.kind()),
        }
    }
}

/// A close in the middle of a message (its first fragment arrived, not its last) truncates
/// the message, whatever the code: the byte stream must fail, not end in EOF.
#[tokio::test]
async fn a_byte_stream_fails_at_any_close_in_the_middle_of_a_message() {
    for code in [1000, 1011] {
        let (mut stream, mut peer) = byte_stream_and_peer();
        peer.send(false, OP_BINARY, b"the first fragment").await;
        peer.send_close(code, b"").await;
        let (got, result) = read_all(&mut stream, "reading up to a close mid-message").await;
        assert_eq!(got, b"the first fragment", "close {code}");
        match result {
            Ok(n) => panic!(
                "close {code} mid-message read as EOF (Ok after {n} bytes): it must be an error"
            ),
            Err(e) => println!("close {code} mid-message: {:?}: {e}", e.kind()),
        }
    }
}

/// The same for a `MessageReader`: a close before the message's last fragment fails the read.
#[tokio::test]
async fn a_message_reader_fails_at_any_close_in_the_middle_of_its_message() {
    for code in [1000, 1011] {
        let (mut ws, mut peer) = scripted(Role::Server, Config::default());
        peer.send(false, OP_BINARY, b"the first fragment").await;
        peer.send_close(code, b"").await;
        let mut reader = within("the message starts", ws.recv_stream())
            .await
            .expect("a message")
            .expect("its first fragment");
        let (got, result) = read_all(&mut reader, "reading up to a close mid-message").await;
        assert_eq!(got, b"the first fragment", "close {code}");
        match result {
            Ok(n) => panic!("close {code} mid-message read as EOF (Ok after {n} bytes)"),
            Err(e) => {
                assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "close {code}: {e}");
                println!(
                    "MessageReader, close {code} mid-message: {:?}: {e}",
                    e.kind()
                );
            }
        }
    }
}
