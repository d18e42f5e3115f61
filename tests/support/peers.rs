//! Real peers run as child processes: Python `websockets` and Node `ws`, from `tests/peers/`
//! (installed by `scripts/install-peers.sh`; without them a test fails and says so). A peer
//! prints what it does; [`PeerProcess`] collects it for failure messages and hands its stdout
//! lines to the test.
//!
//! Also the byte count and SHA-256 that the peers report ([`Tally`]) and an `AsyncWrite` that
//! computes one without keeping the bytes ([`HashSink`]).

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// How long a peer may take to print a line the test waits for.
pub(crate) const LINE_WAIT: Duration = Duration::from_secs(10);

pub(crate) fn peers_dir() -> PathBuf {
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RealPeer {
    /// Python `websockets` (its asyncio implementation): `tests/peers/python/peer.py`.
    Python,
    /// Node `ws`: `tests/peers/node/peer.js`.
    Node,
}

impl RealPeer {
    /// The command line that runs `args` in this peer's program.
    fn command(self, args: &[String]) -> (PathBuf, Vec<String>) {
        let (program, script) = match self {
            RealPeer::Python => (python(), peers_dir().join("python/peer.py")),
            RealPeer::Node => (node(), peers_dir().join("node/peer.js")),
        };
        let mut all = vec![script.display().to_string()];
        all.extend_from_slice(args);
        (program.to_path_buf(), all)
    }
}

/// A peer program running as a child process, killed when dropped. Its stdout and stderr are
/// collected (for failure messages, and printed when a panicking test drops it), and stdout
/// lines are also handed to the test.
pub(crate) struct PeerProcess {
    what: String,
    child: Child,
    output: Arc<Mutex<String>>,
    lines: mpsc::UnboundedReceiver<String>,
    readers: Vec<JoinHandle<()>>,
}

impl PeerProcess {
    pub(crate) fn spawn(peer: RealPeer, args: &[&str]) -> Self {
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

    /// What runs, for messages: "Python peer `echo-server --deflate`".
    pub(crate) fn what(&self) -> &str {
        &self.what
    }

    /// Everything the peer printed so far.
    pub(crate) fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// Waits for the stdout line that starts with `prefix` and returns the rest of it.
    pub(crate) async fn line_after(&mut self, prefix: &str) -> String {
        let wait = async {
            while let Some(line) = self.lines.recv().await {
                if let Some(rest) = line.strip_prefix(prefix) {
                    return Some(rest.to_string());
                }
            }
            None
        };
        match tokio::time::timeout(LINE_WAIT, wait).await {
            Ok(Some(rest)) => rest,
            Ok(None) => panic!(
                "{} exited before printing {prefix:?}; it printed:\n{}",
                self.what,
                self.output()
            ),
            Err(_) => panic!(
                "{} printed no {prefix:?} within {LINE_WAIT:?}; it printed:\n{}",
                self.what,
                self.output()
            ),
        }
    }

    /// The port a peer server listens on (its first line says).
    pub(crate) async fn port(&mut self) -> u16 {
        let port = self.line_after("listening ").await;
        port.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{}: bad port line {port:?}", self.what))
    }

    /// Waits (up to `limit`) for the peer to exit by itself, kills it otherwise, and returns its
    /// exit status (`None` when it had to be killed) and everything it printed.
    pub(crate) async fn finish(mut self, limit: Duration) -> (Option<ExitStatus>, String) {
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

impl Drop for PeerProcess {
    /// A test that panics with the peer still running shows what the peer printed.
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{} printed:\n{}", self.what, self.output());
        }
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

/// Byte count and SHA-256, as the peers report them: `bytes=N sha256=HEX`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Tally {
    pub(crate) bytes: u64,
    pub(crate) sha256: String,
}

impl Tally {
    pub(crate) fn of<'a>(pieces: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let mut sink = HashSink::default();
        for piece in pieces {
            sink.update(piece);
        }
        sink.tally()
    }

    pub(crate) fn parse(report: &str) -> Option<Self> {
        let mut words = report.split_whitespace();
        let bytes = words.next()?.strip_prefix("bytes=")?.parse().ok()?;
        let sha256 = words.next()?.strip_prefix("sha256=")?.to_string();
        if words.next().is_some() {
            return None;
        }
        Some(Tally { bytes, sha256 })
    }
}

/// An `AsyncWrite` that counts and hashes what is written to it and keeps none of it.
#[derive(Default)]
pub(crate) struct HashSink {
    hasher: Sha256,
    bytes: u64,
}

impl HashSink {
    pub(crate) fn update(&mut self, data: &[u8]) {
        self.hasher.update(data);
        self.bytes += data.len() as u64;
    }

    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    pub(crate) fn tally(&self) -> Tally {
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

/// An io::Error from the stream API, with the close code wsio sent because of it, if any.
pub(crate) fn describe_io(e: &io::Error) -> String {
    let code = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<wsio::Error>())
        .and_then(wsio::Error::close_code);
    match code {
        Some(code) => format!("{e} (wsio failed the connection with {code})"),
        None => format!("{e} ({:?})", e.kind()),
    }
}

/// The test process's resident memory, from `/proc/self/status`, in KiB.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Memory {
    pub(crate) rss: u64,
    pub(crate) peak: u64,
}

impl Memory {
    /// The process's RSS and peak RSS now.
    pub(crate) fn now() -> Self {
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
    pub(crate) fn reset_peak() -> bool {
        std::fs::write("/proc/self/clear_refs", "5").is_ok()
    }
}
