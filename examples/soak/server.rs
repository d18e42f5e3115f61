//! The server under test, run as a child process (`soak --server`) so that the memory, files
//! and CPU the soak reads from `/proc/<pid>` are the server's alone.
//!
//! It listens on an ephemeral loopback port, writes `listening <addr>` on standard output,
//! then a status line every second (`status open=… accepted=… clean=… ended=kind:n,…`) that
//! the soak reads. Each connection's URL path says how it echoes:
//! `/message` and `/churn` and `/idle` with `recv`/`send`, `/stream` with
//! `recv_stream` → `send_stream` (never assembling a message), `/bytes` as a `ByteStream`
//! copied back into itself.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};
use wsio::server::Acceptor;
use wsio::{ByteStream, WebSocket};

use crate::options::Options;

/// The accept backlog: the ramp opens connections hundreds at a time and the churn adds 500
/// a second; the kernel caps it at `net.core.somaxconn`.
const BACKLOG: u32 = 4096;

/// What the server counts, printed in its status lines.
#[derive(Default)]
struct Counts {
    open: AtomicI64,
    accepted: AtomicU64,
    /// Connections that ended with a closing handshake.
    clean: AtomicU64,
    /// Connections that ended otherwise, by how (the error's kind); rare enough for a lock.
    ended: Mutex<BTreeMap<String, u64>>,
}

impl Counts {
    fn ended(&self, how: String) {
        *self
            .ended
            .lock()
            .expect("no panics while locked")
            .entry(how)
            .or_default() += 1;
    }

    fn line(&self) -> String {
        let ended = self.ended.lock().expect("no panics while locked");
        let ended: Vec<String> = ended.iter().map(|(k, n)| format!("{k}:{n}")).collect();
        format!(
            "status open={} accepted={} clean={} ended={}",
            self.open.load(Ordering::Relaxed),
            self.accepted.load(Ordering::Relaxed),
            self.clean.load(Ordering::Relaxed),
            if ended.is_empty() {
                "-".into()
            } else {
                ended.join(",")
            }
        )
    }
}

/// Runs the server child until the soak kills it.
pub(crate) fn run(options: &Options) -> ExitCode {
    if let Some(parent) = options.parent_pid {
        if !crate::system::die_with_parent(parent) {
            return ExitCode::FAILURE;
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match runtime.block_on(serve(options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("soak server: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(options: &Options) -> std::io::Result<()> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    let listener = socket.listen(BACKLOG)?;
    let acceptor = Acceptor::new().config(crate::config(options));
    let counts = Arc::new(Counts::default());
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening {}", listener.local_addr()?)?;
        out.flush()?;
    }
    tokio::spawn(status(counts.clone()));
    loop {
        let tcp = match listener.accept().await {
            Ok((tcp, _)) => tcp,
            Err(e) => {
                // Out of files, most likely: count it, let the soak see it, and do not spin.
                counts.ended(format!("accept-{:?}", e.kind()));
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        counts.accepted.fetch_add(1, Ordering::Relaxed);
        let (acceptor, counts) = (acceptor.clone(), counts.clone());
        tokio::spawn(async move {
            counts.open.fetch_add(1, Ordering::Relaxed);
            match connection(&acceptor, tcp).await {
                Ok(()) => counts.clean.fetch_add(1, Ordering::Relaxed),
                Err(how) => {
                    counts.ended(how);
                    0
                }
            };
            counts.open.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

/// A status line a second on standard output.
async fn status(counts: Arc<Counts>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let mut out = std::io::stdout().lock();
        // The soak reading the other end is gone if this fails; the kill follows.
        let _ = writeln!(out, "{}", counts.line()).and_then(|()| out.flush());
    }
}

/// Accepts one connection and echoes on it as its path says. `Err` says how it ended when
/// not with a closing handshake.
async fn connection(acceptor: &Acceptor, tcp: TcpStream) -> Result<(), String> {
    tcp.set_nodelay(true)
        .map_err(|e| format!("nodelay-{:?}", e.kind()))?;
    let (ws, request) = acceptor
        .accept(tcp)
        .await
        .map_err(|e| format!("handshake-{:?}", e.kind()))?;
    let result = match request.uri().path() {
        "/stream" => echo_streams(ws).await,
        "/bytes" => echo_bytes(ws).await,
        _ => echo_messages(ws).await,
    };
    result.map_err(|e| format!("{:?}", e.kind()))
}

/// Sends every data message back with `send`.
async fn echo_messages(mut ws: WebSocket<TcpStream>) -> wsio::Result<()> {
    while let Some(message) = ws.recv().await {
        let message = message?;
        if message.is_data() {
            ws.send(message).await?;
        }
    }
    Ok(())
}

/// Sends every data message back as it arrives, through a `MessageReader` copied into a
/// `MessageWriter` of the same kind: fragments go out as the copy flushes them, nothing is
/// assembled.
async fn echo_streams(ws: WebSocket<TcpStream>) -> wsio::Result<()> {
    let (mut rx, mut tx) = ws.into_split();
    while let Some(reader) = rx.recv_stream().await {
        let mut reader = reader?;
        let mut writer = tx.send_stream(reader.kind());
        tokio::io::copy(&mut reader, &mut writer).await?;
        writer.shutdown().await?;
    }
    Ok(())
}

/// Copies the connection's byte stream back into itself, then closes once the peer has.
async fn echo_bytes(ws: WebSocket<TcpStream>) -> wsio::Result<()> {
    let (mut rx, mut tx) = ByteStream::new(ws).into_split();
    tokio::io::copy(&mut rx, &mut tx).await?;
    tx.shutdown().await?;
    Ok(())
}
