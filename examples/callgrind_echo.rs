//! Instructions per message, for `valgrind --tool=callgrind` (`scripts/callgrind.sh` runs it and
//! prints the table in BENCHMARKS.md): one wsio client and one wsio server in one process,
//! loopback TCP, current-thread runtime, default Config but without permessage-deflate,
//! which the peers cannot negotiate.
//!
//! Usage: callgrind_echo echo SIZE INFLIGHT N      (N echoed binary messages, N a multiple of INFLIGHT)
//!        callgrind_echo stream MIB                (one MIB MiB stream message client -> server)
#![allow(missing_docs)]

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn pair() -> (wsio::WebSocket<TcpStream>, wsio::WebSocket<TcpStream>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (c, s) = tokio::join!(TcpStream::connect(addr), listener.accept());
    let (c, s) = (c.unwrap(), s.unwrap().0);
    c.set_nodelay(true).unwrap();
    s.set_nodelay(true).unwrap();
    // Without permessage-deflate, as against the peers, which cannot negotiate it.
    let config = wsio::Config::default().compression(None);
    let client = wsio::ClientBuilder::new().config(config.clone());
    let acceptor = wsio::Acceptor::new().config(config);
    let (c, s) = tokio::join!(
        client.connect_on(c, "ws://127.0.0.1/bench"),
        acceptor.accept(s)
    );
    (c.unwrap().0, s.unwrap().0)
}

async fn echo(size: usize, inflight: usize, n: usize) {
    let (mut client, mut server) = pair().await;
    let server = tokio::spawn(async move {
        loop {
            match server.recv().await {
                Some(Ok(m @ wsio::Message::Binary(_))) => server.send(m).await.unwrap(),
                Some(Ok(_)) => {}
                _ => break,
            }
        }
    });
    let payload = Bytes::from(vec![0x5au8; size]);
    for _ in 0..n / inflight {
        for _ in 0..inflight {
            client
                .send(wsio::Message::Binary(payload.clone()))
                .await
                .unwrap();
        }
        for _ in 0..inflight {
            match client.recv().await {
                Some(Ok(wsio::Message::Binary(b))) => assert_eq!(b.len(), size),
                other => panic!("client recv: {other:?}"),
            }
        }
    }
    drop(client);
    server.await.unwrap();
}

async fn stream(mib: u64) {
    let (mut client, mut server) = pair().await;
    let bytes = mib << 20;
    let receiver = tokio::spawn(async move {
        let mut reader = server.recv_stream().await.unwrap().unwrap();
        let got = tokio::io::copy(&mut reader, &mut tokio::io::sink())
            .await
            .unwrap();
        assert_eq!(got, bytes);
    });
    let mut source = tokio::io::repeat(0x5a).take(bytes);
    let mut writer = client.send_stream(wsio::DataKind::Binary);
    tokio::io::copy(&mut source, &mut writer).await.unwrap();
    writer.shutdown().await.unwrap();
    receiver.await.unwrap();
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize| args[i].parse::<usize>().unwrap();
    // CG_MT=1: a 2-worker multi-thread runtime instead (for strace; callgrind wants one thread).
    let rt = if std::env::var_os("CG_MT").is_some() {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    };
    match args[0].as_str() {
        "echo" => rt.block_on(echo(num(1), num(2), num(3))),
        "stream" => rt.block_on(stream(num(1) as u64)),
        _ => panic!("usage"),
    }
}
