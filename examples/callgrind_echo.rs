//! Instructions per message, for `valgrind --tool=callgrind` (`scripts/callgrind.sh` and
//! `scripts/instructions.sh` run it and print the tables in BENCHMARKS.md): one client and one
//! server in one process, loopback TCP, current-thread runtime, each library with its default
//! settings and its own handshake (benches/compare/conn.rs, shared with the criterion
//! comparison, so both measure the same code); wsio without permessage-deflate, which the peers
//! cannot negotiate.
//!
//! Usage: callgrind_echo echo SIZE INFLIGHT N [LIB]  (N echoed binary messages, N a multiple of
//!                                                    INFLIGHT; LIB: wsio (default),
//!                                                    tokio-tungstenite, fastwebsockets,
//!                                                    tokio-websockets, raw_tcp)
//!        callgrind_echo stream MIB                  (one MIB MiB stream message client -> server)
#![allow(missing_docs)]

#[path = "../benches/compare/conn.rs"]
#[allow(dead_code)]
mod conn;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use conn::{Conn, Lib};

async fn pair(lib: Lib) -> (Conn, Conn) {
    conn::connect(lib, 1).await.pop().expect("one connection")
}

async fn echo(size: usize, inflight: usize, n: usize, lib: Lib) {
    let (mut client, mut server) = pair(lib).await;
    let server = tokio::spawn(async move { while server.echo_one().await {} });
    let payload = Bytes::from(vec![0x5au8; size]);
    for _ in 0..n / inflight {
        for _ in 0..inflight {
            client.send(&payload).await;
        }
        for _ in 0..inflight {
            assert_eq!(client.recv().await, size);
        }
    }
    drop(client);
    server.await.unwrap();
}

async fn stream(mib: u64) {
    let (Conn::Wsio(mut client), Conn::Wsio(mut server)) = pair(Lib::Wsio).await else {
        unreachable!("a wsio pair");
    };
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
        "echo" => {
            let lib = args.get(4).map_or(Lib::Wsio, |name| {
                let lib = Lib::from_name(name);
                assert_eq!(lib.name(), name, "unknown library {name}");
                lib
            });
            rt.block_on(echo(num(1), num(2), num(3), lib))
        }
        "stream" => rt.block_on(stream(num(1) as u64)),
        _ => panic!("usage"),
    }
}
