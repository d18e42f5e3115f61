//! Stream API throughput over loopback TCP, beside raw TCP moving the same bytes in the same run.
//!
//! Each iteration opens a connection and moves `SIZE` bytes one way with `tokio::io::copy`:
//! from an in-memory source into a `MessageWriter` on one end, from a `MessageReader` into a
//! sink on the other. The raw cases move the same bytes over a bare `TcpStream`: with the same
//! `tokio::io::copy` (8 KiB buffers), and with 1 MiB writes and reads (the ceiling).
//!
//! ```text
//! cargo bench --bench stream_throughput
//! WSIO_BENCH_MIB=1024 cargo bench --bench stream_throughput
//! ```

#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;

fn size() -> u64 {
    let mib: u64 = std::env::var("WSIO_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    mib << 20
}

async fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (client, server) = tokio::join!(TcpStream::connect(addr), listener.accept());
    let client = client.unwrap();
    let (server, _) = server.unwrap();
    client.set_nodelay(true).unwrap();
    server.set_nodelay(true).unwrap();
    (client, server)
}

async fn raw_tcp(size: u64) {
    let (mut a, mut b) = tcp_pair().await;
    let sender = tokio::spawn(async move {
        let mut source = tokio::io::repeat(0x5a).take(size);
        tokio::io::copy(&mut source, &mut a).await.unwrap();
        a.shutdown().await.unwrap();
    });
    let got = tokio::io::copy(&mut b, &mut tokio::io::sink())
        .await
        .unwrap();
    sender.await.unwrap();
    assert_eq!(got, size);
}

/// Raw TCP with 1 MiB writes and reads: the ceiling a byte stream can hope for.
async fn raw_tcp_large_io(size: u64) {
    const IO: usize = 1 << 20;
    let (mut a, mut b) = tcp_pair().await;
    let sender = tokio::spawn(async move {
        let chunk = vec![0x5a; IO];
        let mut left = size;
        while left > 0 {
            let n = left.min(IO as u64) as usize;
            a.write_all(&chunk[..n]).await.unwrap();
            left -= n as u64;
        }
        a.shutdown().await.unwrap();
    });
    let mut buf = vec![0; IO];
    let mut got = 0u64;
    loop {
        let n = b.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        got += n as u64;
    }
    sender.await.unwrap();
    assert_eq!(got, size);
}

/// `client_sends`: the client streams to the server (masked frames); else the reverse.
async fn websocket_stream(size: u64, client_sends: bool) {
    let (client_tcp, server_tcp) = tcp_pair().await;
    let server = tokio::spawn(wsio::accept(server_tcp));
    let (client, _) = wsio::connect_on(client_tcp, "ws://127.0.0.1/bench")
        .await
        .unwrap();
    let server = server.await.unwrap().unwrap();
    let (sender, receiver) = (client, server);
    let (mut sender, mut receiver) = if client_sends {
        (sender.into_split(), receiver.into_split())
    } else {
        (receiver.into_split(), sender.into_split())
    };
    let send = tokio::spawn(async move {
        let mut source = tokio::io::repeat(0x5a).take(size);
        let mut writer = sender.1.send_stream(wsio::DataKind::Binary);
        tokio::io::copy(&mut source, &mut writer).await.unwrap();
        writer.shutdown().await.unwrap();
        drop(writer);
        sender
    });
    let mut reader = receiver.0.recv_stream().await.unwrap().unwrap();
    let got = tokio::io::copy(&mut reader, &mut tokio::io::sink())
        .await
        .unwrap();
    drop(reader);
    assert_eq!(got, size);
    send.await.unwrap();
}

fn bench(c: &mut Criterion) {
    let runtime = Runtime::new().unwrap();
    let size = size();
    let mut group = c.benchmark_group(format!("stream_{}MiB", size >> 20));
    group.throughput(Throughput::Bytes(size));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(8));
    group.bench_function("raw_tcp_copy", |b| {
        b.to_async(&runtime).iter(|| raw_tcp(size))
    });
    group.bench_function("raw_tcp_1MiB_io", |b| {
        b.to_async(&runtime).iter(|| raw_tcp_large_io(size))
    });
    group.bench_function("wsio_client_to_server", |b| {
        b.to_async(&runtime).iter(|| websocket_stream(size, true))
    });
    group.bench_function("wsio_server_to_client", |b| {
        b.to_async(&runtime).iter(|| websocket_stream(size, false))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
