//! permessage-deflate end to end over loopback TCP: wsio beside yawc (a Rust crate with
//! permessage-deflate), both on zlib-rs at the same level, with the compressor alone on the same
//! data as the ceiling.
//!
//! Both ends of every connection live in this process, on a tokio runtime with two workers.
//! Connections start with permessage-deflate already agreed (`permessage-deflate`: context
//! takeover both ways, 15-bit windows) so that both libraries compress the same way; every
//! message is compressed (threshold 0), at level 1 unless `WSIO_BENCH_LEVEL` says otherwise.
//!
//! - `json_1KiB_echo_16inflight`: the client sends 16 JSON-like 1 KiB text messages, then reads
//!   the 16 echoes, and again. Messages/s, each round trip counted once.
//! - `stream_1MiB_{text,random}`: batches of 8 messages of 1 MiB client to server, the last one
//!   acknowledged. wsio streams each through a
//!   `MessageWriter` (64 KiB writes) into a `MessageReader`; yawc sends each as one message.
//!   `random_uncompressed` is the same random bytes with compression off for the message
//!   (wsio: `Compress::Never`; yawc: a connection without compression). `deflate_only` is
//!   zlib-rs compressing the same bytes with one sync flush a message: the ceiling. Bytes/s.
//!
//! Before the timed runs it prints, per case and library, the bytes the client wrote per byte
//! of payload (the compression ratio on the wire, headers included), so that the throughputs
//! are seen at the ratio they were reached with.
//!
//! ```text
//! cargo bench --bench compression                 # criterion
//! WSIO_BENCH_QUICK=1 cargo bench --bench compression
//! ```

#![allow(missing_docs)] // a benchmark binary

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, Throughput};
use futures::SinkExt;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use wsio::handshake::{DeflateParams, Negotiated};
use wsio::{Compress, Compression, Config, DataKind, Message, Role, WebSocket};

const IN_FLIGHT: usize = 16;
const STREAM_MESSAGE: usize = 1 << 20;
/// 1 MiB messages per iteration of a stream case; the server acknowledges the last of them, so
/// compressing and inflating overlap as they would in a long transfer.
const STREAM_BATCH: usize = 8;

fn level() -> u8 {
    std::env::var("WSIO_BENCH_LEVEL")
        .ok()
        .and_then(|l| l.parse().ok())
        .unwrap_or(1)
}

/// wsio's compressor memory level: `WSIO_BENCH_MEM_LEVEL`, default wsio's own (5). yawc's is
/// flate2's fixed 8; the ratios printed show what either costs on the wire.
fn mem_level() -> u8 {
    std::env::var("WSIO_BENCH_MEM_LEVEL")
        .ok()
        .and_then(|l| l.parse().ok())
        .unwrap_or_else(|| Compression::default().get_mem_level())
}

fn quick() -> bool {
    std::env::var_os("WSIO_BENCH_QUICK").is_some()
}

// ---------------------------------------------------------------------------------------------
// Data

/// `n` JSON-like messages of 1 KiB: market-data records with repeated keys.
fn json_messages(n: usize) -> Vec<Bytes> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..n)
        .map(|_| {
            let mut s = String::from("[");
            while s.len() < 1000 {
                let r = next();
                s.push_str(&format!(
                    "{{\"sym\":\"{}\",\"bid\":{}.{:02},\"ask\":{}.{:02},\"qty\":{},\"ts\":{}}},",
                    ["AAPL", "MSFT", "GOOG", "AMZN", "NVDA", "TSLA"][(r % 6) as usize],
                    100 + r % 400,
                    r % 100,
                    100 + (r >> 8) % 400,
                    (r >> 16) % 100,
                    (r >> 24) % 10_000,
                    1_700_000_000_000u64 + (r >> 32) % 1_000_000
                ));
            }
            s.truncate(1023);
            s.push(']');
            Bytes::from(s)
        })
        .collect()
}

/// 1 MiB of English-like text.
fn text_mib() -> Bytes {
    let words = [
        "the", "stream", "of", "bytes", "arrives", "in", "frames", "and", "each", "piece",
        "inflates", "as", "it", "comes", "window", "deflate", "message", "server", "client",
    ];
    let mut x = 12345u64;
    let mut out = Vec::with_capacity(STREAM_MESSAGE + 16);
    while out.len() < STREAM_MESSAGE {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        out.extend_from_slice(words[(x >> 33) as usize % words.len()].as_bytes());
        out.push(if x & 0xF00 == 0 { b'\n' } else { b' ' });
    }
    out.truncate(STREAM_MESSAGE);
    Bytes::from(out)
}

fn random_mib() -> Bytes {
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    Bytes::from(
        (0..STREAM_MESSAGE)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect::<Vec<u8>>(),
    )
}

// ---------------------------------------------------------------------------------------------
// Connections

/// A transport that counts the bytes written through it.
struct Counted {
    tcp: TcpStream,
    written: Arc<AtomicU64>,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.tcp).poll_write(cx, data);
        if let Poll::Ready(Ok(n)) = polled {
            self.written.fetch_add(n as u64, Ordering::Relaxed);
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = polled {
            self.written.fetch_add(n as u64, Ordering::Relaxed);
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

/// A connected loopback pair (client, server); the client's writes are counted.
async fn tcp_pair() -> (Counted, TcpStream, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (client, server) = tokio::join!(TcpStream::connect(addr), listener.accept());
    let (client, server) = (client.unwrap(), server.unwrap().0);
    client.set_nodelay(true).unwrap();
    server.set_nodelay(true).unwrap();
    let written = Arc::new(AtomicU64::new(0));
    let client = Counted {
        tcp: client,
        written: written.clone(),
    };
    (client, server, written)
}

const AGREED: &str = "permessage-deflate";

fn wsio_config(compressed: bool) -> Config {
    Config::default()
        .max_message_size(64 << 20)
        .compression(compressed.then(|| {
            Compression::default()
                .level(level())
                .mem_level(mem_level())
                .threshold(0)
        }))
}

fn wsio_negotiated(compressed: bool) -> Negotiated {
    match compressed {
        true => Negotiated::default()
            .with_extensions(AGREED)
            .with_permessage_deflate(DeflateParams::default()),
        false => Negotiated::default(),
    }
}

type WsioClient = WebSocket<Counted>;
type WsioServer = WebSocket<TcpStream>;

async fn wsio_pair(compressed: bool) -> (WsioClient, WsioServer, Arc<AtomicU64>) {
    let (client, server, written) = tcp_pair().await;
    let client = WebSocket::from_negotiated(
        client,
        Role::Client,
        wsio_config(compressed),
        Default::default(),
        wsio_negotiated(compressed),
    )
    .unwrap();
    let server = WebSocket::from_negotiated(
        server,
        Role::Server,
        wsio_config(compressed),
        Default::default(),
        wsio_negotiated(compressed),
    )
    .unwrap();
    (client, server, written)
}

fn yawc_options(compressed: bool) -> yawc::Options {
    let options = yawc::Options::default().with_limits(8 << 20, 16 << 20);
    match compressed {
        true => options
            .with_low_latency_compression()
            .with_compression_level(yawc::CompressionLevel::new(u32::from(level()))),
        false => options.without_compression(),
    }
}

async fn yawc_pair(
    compressed: bool,
) -> (
    yawc::WebSocket<Counted>,
    yawc::WebSocket<TcpStream>,
    Arc<AtomicU64>,
) {
    let (client, server, written) = tcp_pair().await;
    let agreed = compressed.then_some(AGREED);
    let client =
        yawc::WebSocket::from_stream_with_extensions(client, yawc::Role::Client, agreed, {
            yawc_options(compressed)
        })
        .unwrap();
    let server =
        yawc::WebSocket::from_stream_with_extensions(server, yawc::Role::Server, agreed, {
            yawc_options(compressed)
        })
        .unwrap();
    (client, server, written)
}

// ---------------------------------------------------------------------------------------------
// Echo of 1 KiB JSON, 16 in flight

/// Runs `rounds` bursts of 16 through an echoing wsio server; returns the time taken.
async fn wsio_echo(client: &mut WsioClient, messages: &[Bytes], rounds: usize) -> Duration {
    let start = Instant::now();
    for round in 0..rounds {
        for i in 0..IN_FLIGHT {
            let payload = messages[(round * IN_FLIGHT + i) % messages.len()].clone();
            let text = wsio::Utf8Bytes::try_from(payload).unwrap();
            client.feed(Message::Text(text)).await.unwrap();
        }
        client.flush().await.unwrap();
        for _ in 0..IN_FLIGHT {
            client.recv().await.unwrap().unwrap();
        }
    }
    start.elapsed()
}

async fn wsio_echo_server(mut server: WsioServer) {
    while let Some(Ok(message)) = server.recv().await {
        if message.is_data() && server.send(message).await.is_err() {
            break;
        }
    }
}

async fn yawc_echo(
    client: &mut yawc::WebSocket<Counted>,
    messages: &[Bytes],
    rounds: usize,
) -> Duration {
    let start = Instant::now();
    for round in 0..rounds {
        for i in 0..IN_FLIGHT {
            let payload = messages[(round * IN_FLIGHT + i) % messages.len()].clone();
            client.feed(yawc::Frame::text(payload)).await.unwrap();
        }
        client.flush().await.unwrap();
        for _ in 0..IN_FLIGHT {
            client.next_frame().await.unwrap();
        }
    }
    start.elapsed()
}

async fn yawc_echo_server(mut server: yawc::WebSocket<TcpStream>) {
    while let Ok(frame) = server.next_frame().await {
        let data = matches!(frame.opcode(), yawc::OpCode::Text | yawc::OpCode::Binary);
        if frame.opcode() == yawc::OpCode::Close || (data && server.send(frame).await.is_err()) {
            break;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 1 MiB messages, client to server

async fn wsio_stream(
    client: &mut WsioClient,
    data: &Bytes,
    compress: Compress,
    count: usize,
) -> Duration {
    let start = Instant::now();
    for _ in 0..count {
        let mut writer = client.send_stream_with(DataKind::Binary, compress);
        for piece in data.chunks(64 * 1024) {
            writer.write_all(piece).await.unwrap();
        }
        writer.shutdown().await.unwrap();
    }
    // The server acknowledges the last message once it has read all of it.
    client.recv().await.unwrap().unwrap();
    start.elapsed()
}

async fn wsio_stream_server(mut server: WsioServer, count_per_ack: usize) {
    loop {
        for _ in 0..count_per_ack {
            let Some(Ok(mut reader)) = server.recv_stream().await else {
                return;
            };
            let mut sink = tokio::io::sink();
            if tokio::io::copy(&mut reader, &mut sink).await.is_err() {
                return;
            }
        }
        if server.send(Message::text("ack")).await.is_err() {
            return;
        }
    }
}

async fn yawc_stream(
    client: &mut yawc::WebSocket<Counted>,
    data: &Bytes,
    count: usize,
) -> Duration {
    let start = Instant::now();
    for _ in 0..count {
        client
            .send(yawc::Frame::binary(data.clone()))
            .await
            .unwrap();
    }
    client.next_frame().await.unwrap();
    start.elapsed()
}

async fn yawc_stream_server(mut server: yawc::WebSocket<TcpStream>, count_per_ack: usize) {
    loop {
        let mut got = 0;
        while got < count_per_ack {
            match server.next_frame().await {
                Ok(frame) if frame.opcode() == yawc::OpCode::Binary => got += 1,
                Ok(frame) if frame.opcode() == yawc::OpCode::Close => return,
                Ok(_) => {}
                Err(_) => return,
            }
        }
        if server.send(yawc::Frame::text("ack")).await.is_err() {
            return;
        }
    }
}

/// zlib-rs compressing `data` as one message (sync flush), `count` times in one stream.
fn deflate_only(data: &[u8], count: usize) -> Duration {
    let mut stream = zlib_rs::Deflate::new_with_config(zlib_rs::DeflateConfig {
        level: i32::from(level()),
        method: zlib_rs::Method::Deflated,
        window_bits: -15,
        mem_level: 8,
        strategy: zlib_rs::Strategy::Default,
    });
    let mut out = vec![0u8; data.len() + data.len() / 8 + 1024];
    let start = Instant::now();
    for _ in 0..count {
        stream
            .compress(data, &mut out, zlib_rs::DeflateFlush::SyncFlush)
            .unwrap();
    }
    start.elapsed()
}

// ---------------------------------------------------------------------------------------------

fn ratio(written: &AtomicU64, payload: u64) -> f64 {
    written.swap(0, Ordering::Relaxed) as f64 / payload as f64
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut criterion = Criterion::default().configure_from_args();
    if quick() {
        criterion = criterion
            .warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_secs(1))
            .sample_size(10);
    } else {
        criterion = criterion
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(5))
            .sample_size(20);
    }
    println!("compression level {}", level());
    echo_cases(&rt, &mut criterion);
    stream_cases(&rt, &mut criterion);
    criterion.final_summary();
}

fn echo_cases(rt: &Runtime, criterion: &mut Criterion) {
    let messages = json_messages(512);
    let payload: u64 = messages.iter().map(|m| m.len() as u64).sum();
    let (mut wsio_client, wsio_server, wsio_written) = rt.block_on(wsio_pair(true));
    rt.spawn(wsio_echo_server(wsio_server));
    let (mut yawc_client, yawc_server, yawc_written) = rt.block_on(yawc_pair(true));
    rt.spawn(yawc_echo_server(yawc_server));

    // The wire ratio over one pass through the 512 messages, after a warm pass.
    let rounds = messages.len() / IN_FLIGHT;
    rt.block_on(wsio_echo(&mut wsio_client, &messages, rounds));
    rt.block_on(yawc_echo(&mut yawc_client, &messages, rounds));
    wsio_written.store(0, Ordering::Relaxed);
    yawc_written.store(0, Ordering::Relaxed);
    rt.block_on(wsio_echo(&mut wsio_client, &messages, rounds));
    rt.block_on(yawc_echo(&mut yawc_client, &messages, rounds));
    println!(
        "json_1KiB_echo_16inflight: client bytes written per payload byte: wsio {:.3}, yawc {:.3}",
        ratio(&wsio_written, payload),
        ratio(&yawc_written, payload)
    );

    let mut group = criterion.benchmark_group("json_1KiB_echo_16inflight");
    group.throughput(Throughput::Elements(IN_FLIGHT as u64));
    group.bench_function("wsio", |b| {
        b.iter_custom(|iters| rt.block_on(wsio_echo(&mut wsio_client, &messages, iters as usize)))
    });
    group.bench_function("yawc", |b| {
        b.iter_custom(|iters| rt.block_on(yawc_echo(&mut yawc_client, &messages, iters as usize)))
    });
    group.finish();
}

fn stream_cases(rt: &Runtime, criterion: &mut Criterion) {
    let text = text_mib();
    let random = random_mib();
    let cases = [
        ("stream_1MiB_text", &text, Compress::Auto, true),
        ("stream_1MiB_random", &random, Compress::Auto, true),
        (
            "stream_1MiB_random_uncompressed",
            &random,
            Compress::Never,
            false,
        ),
    ];
    for (name, data, compress, yawc_compressed) in cases {
        // An iteration is a batch of messages, end to end (the last one acknowledged).
        let batch = STREAM_BATCH;
        let (mut wsio_client, wsio_server, wsio_written) = rt.block_on(wsio_pair(true));
        rt.spawn(wsio_stream_server(wsio_server, batch));
        let (mut yawc_client, yawc_server, yawc_written) = rt.block_on(yawc_pair(yawc_compressed));
        rt.spawn(yawc_stream_server(yawc_server, batch));

        rt.block_on(wsio_stream(&mut wsio_client, data, compress, batch));
        rt.block_on(yawc_stream(&mut yawc_client, data, batch));
        let payload = (STREAM_MESSAGE * batch) as u64;
        println!(
            "{name}: client bytes written per payload byte: wsio {:.3}, yawc {:.3}",
            ratio(&wsio_written, payload),
            ratio(&yawc_written, payload)
        );

        let mut group = criterion.benchmark_group(name);
        group.throughput(Throughput::Bytes(payload));
        group.bench_function("wsio", |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += rt.block_on(wsio_stream(&mut wsio_client, data, compress, batch));
                }
                total
            })
        });
        group.bench_function("yawc", |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += rt.block_on(yawc_stream(&mut yawc_client, data, batch));
                }
                total
            })
        });
        if compress != Compress::Never {
            group.bench_function("deflate_only", |b| {
                b.iter_custom(|iters| deflate_only(data, iters as usize * batch))
            });
        }
        group.finish();
    }
}
