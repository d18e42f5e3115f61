//! Streams a large payload through a real WebSocket connection on loopback with the stream API,
//! and proves it arrived intact.
//!
//! A server and a client run in this process. The client opens a [`wsio::MessageWriter`] and
//! `tokio::io::copy`s the payload into it; the server `tokio::io::copy`s from a
//! [`wsio::MessageReader`] into a file. Both sides compute SHA-256 as the bytes pass; the run
//! fails (exit 1) if the digests differ.
//!
//! ```text
//! cargo run --release --example stream_file                  # 1 GiB of generated data
//! cargo run --release --example stream_file -- --size 4G     # any size: K, M, G suffixes
//! cargo run --release --example stream_file -- PATH          # a file of yours
//! ```

use std::io::IsTerminal;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpListener;

const USAGE: &str = "usage: stream_file [PATH | --size BYTES[K|M|G]] [--keep]";

/// Deterministic pseudo-random bytes (xorshift64*), produced far faster than they are sent.
struct Generated {
    left: u64,
    state: u64,
}

impl AsyncRead for Generated {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let n = (buf.remaining() as u64).min(self.left) as usize / 8 * 8;
        let n = if n == 0 {
            (buf.remaining() as u64).min(self.left) as usize
        } else {
            n
        };
        let mut out = vec![0u8; n];
        for chunk in out.chunks_mut(8) {
            self.state ^= self.state >> 12;
            self.state ^= self.state << 25;
            self.state ^= self.state >> 27;
            let word = self.state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
        buf.put_slice(&out);
        self.left -= n as u64;
        Poll::Ready(Ok(()))
    }
}

/// Passes reads through, hashing and counting them.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
    count: Arc<AtomicU64>,
}

impl<R: AsyncRead + Unpin> AsyncRead for Hashing<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        let fresh = &buf.filled()[before..];
        self.hasher.update(fresh);
        self.count.fetch_add(fresh.len() as u64, Ordering::Relaxed);
        result
    }
}

/// Passes writes through, hashing them.
struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
}

impl<W: AsyncWrite + Unpin> AsyncWrite for HashingWriter<W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, data);
        if let Poll::Ready(Ok(n)) = result {
            self.hasher.update(&data[..n]);
        }
        result
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

fn parse_size(text: &str) -> Option<u64> {
    let (digits, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((at, _)) => text.split_at(at),
        None => (text, ""),
    };
    let shift = match unit
        .to_ascii_uppercase()
        .trim_end_matches("IB")
        .trim_end_matches('B')
    {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => return None,
    };
    digits.parse::<u64>().ok()?.checked_mul(1 << shift)
}

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn human(bytes: f64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < units.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.2} {}", units[unit])
}

enum Source {
    File(PathBuf),
    Generated(u64),
}

fn parse_args() -> Result<(Source, bool), String> {
    let mut source = Source::Generated(1 << 30);
    let mut keep = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--size" => {
                let size = args.next().ok_or(USAGE)?;
                source = Source::Generated(
                    parse_size(&size).ok_or_else(|| format!("bad size {size}\n{USAGE}"))?,
                );
            }
            "--keep" => keep = true,
            "-h" | "--help" => return Err(USAGE.into()),
            path => source = Source::File(PathBuf::from(path)),
        }
    }
    Ok((source, keep))
}

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("stream_file: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let (source, keep) = parse_args()?;
    // permessage-deflate is negotiated by default; random bytes do not compress, so the
    // generated payload goes uncompressed, and a file of yours is compressed as it streams.
    let compress = match &source {
        Source::Generated(_) => wsio::Compress::Never,
        Source::File(_) => wsio::Compress::Auto,
    };
    let (reader, total, label): (Box<dyn AsyncRead + Send + Unpin>, u64, String) = match &source {
        Source::File(path) => {
            let file = tokio::fs::File::open(path).await?;
            let len = file.metadata().await?.len();
            (Box::new(file), len, path.display().to_string())
        }
        Source::Generated(size) => (
            Box::new(Generated {
                left: *size,
                state: 0x9E37_79B9_7F4A_7C15,
            }),
            *size,
            "generated data".into(),
        ),
    };
    let out_path =
        std::env::temp_dir().join(format!("wsio-stream-file-{}.bin", std::process::id()));

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    eprintln!(
        "streaming {} ({}) over ws://{addr}/upload",
        label,
        human(total as f64)
    );

    let server_out = out_path.clone();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await?;
        tcp.set_nodelay(true)?;
        let mut ws = wsio::accept(tcp).await?;
        let file = tokio::fs::File::create(&server_out).await?;
        let mut sink = HashingWriter {
            inner: tokio::io::BufWriter::with_capacity(1 << 20, file),
            hasher: Sha256::new(),
        };
        let received = match ws.recv_stream().await {
            Some(reader) => tokio::io::copy(&mut reader?, &mut sink).await?,
            None => return Err("the client closed before sending a message".into()),
        };
        sink.shutdown().await?;
        // Wait for the client's close so the connection ends cleanly.
        while let Some(message) = ws.recv().await {
            message?;
        }
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>((received, sink.hasher.finalize()))
    });

    let sent = Arc::new(AtomicU64::new(0));
    let progress = std::io::stderr().is_terminal().then(|| {
        let sent = sent.clone();
        tokio::spawn(async move {
            let start = Instant::now();
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let done = sent.load(Ordering::Relaxed);
                let fraction = if total == 0 {
                    1.0
                } else {
                    done as f64 / total as f64
                };
                let width = 40;
                let filled = (fraction * width as f64) as usize;
                let rate = done as f64 / start.elapsed().as_secs_f64().max(1e-9);
                eprint!(
                    "\r[{}{}] {:5.1}% {} / {}  {}/s   ",
                    "#".repeat(filled),
                    "-".repeat(width - filled),
                    fraction * 100.0,
                    human(done as f64),
                    human(total as f64),
                    human(rate)
                );
            }
        })
    });

    let start = Instant::now();
    let (mut ws, _) = wsio::connect(format!("ws://{addr}/upload")).await?;
    let mut source = Hashing {
        inner: reader,
        hasher: Sha256::new(),
        count: sent.clone(),
    };
    println!(
        "extensions       {}",
        match ws.extensions() {
            "" => "none",
            agreed => agreed,
        }
    );
    let mut writer = ws.send_stream_with(wsio::DataKind::Binary, compress);
    let copied = tokio::io::copy(&mut source, &mut writer).await?;
    writer.shutdown().await?;
    drop(writer);
    let (received, server_digest) = server_wait(&mut ws, server).await?;
    let elapsed = start.elapsed();
    if let Some(progress) = progress {
        progress.abort();
        eprintln!();
    }
    let client_digest = source.hasher.finalize();
    if !keep {
        let _ = std::fs::remove_file(&out_path);
    }

    let client_hex = hex(&client_digest);
    let server_hex = hex(&server_digest);
    println!(
        "payload bytes    {copied} ({})",
        match compress {
            wsio::Compress::Never => "sent uncompressed",
            _ => "compressed as they streamed",
        }
    );
    println!("wire bytes sent  {}", ws.stats().bytes_sent);
    println!("bytes received   {received}");
    println!("seconds          {:.3}", elapsed.as_secs_f64());
    println!(
        "throughput       {}/s",
        human(received as f64 / elapsed.as_secs_f64())
    );
    println!("sha256 (client)  {client_hex}");
    println!("sha256 (server)  {server_hex}");
    match peak_rss_kib() {
        Some(kib) => println!(
            "peak memory      {} (VmHWM, whole process)",
            human(kib as f64 * 1024.0)
        ),
        None => println!("peak memory      unknown (no /proc/self/status)"),
    }
    if keep {
        println!("file             {}", out_path.display());
    }
    if copied != received || client_hex != server_hex {
        return Err("MISMATCH: the server did not receive what the client sent".into());
    }
    println!("OK: digests match");
    Ok(())
}

type ServerResult =
    Result<(u64, sha2::digest::Output<Sha256>), Box<dyn std::error::Error + Send + Sync>>;

/// Closes the client side and waits for the server task's result.
async fn server_wait<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut wsio::WebSocket<S>,
    server: tokio::task::JoinHandle<ServerResult>,
) -> ServerResult {
    ws.close(wsio::CloseCode::NORMAL, "done").await?;
    server.await?
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
