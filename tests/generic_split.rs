//! Two tasks polling one connection through generic splitters (`futures::StreamExt::split`,
//! `tokio::io::split`) or wsio's own halves: neither side may take the other's wake-up, though
//! both read and write the transport (a reader writes pongs, a writer reads ahead).
//!
//! The deterministic cases run over [`pipe`], which keeps only the latest waker per direction
//! like `TcpStream`: the writer blocks on a full transport, the reader then blocks writing a
//! pong on the same transport, and the peer starts reading. A library that polled the
//! transport with each task's own waker would leave the writer asleep forever.

mod support;

use std::time::Duration;

use bytes::BytesMut;
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use wsio::{ByteStream, Config, Message, Role, WebSocket};

use support::pipe::{pipe, PipeEnd};
use support::within;

const CAPACITY: usize = 4096;
const MESSAGES: usize = 8;
const SIZE: usize = 64 * 1024;

fn pair() -> (WebSocket<PipeEnd>, WebSocket<PipeEnd>) {
    let (a, b) = pipe(CAPACITY);
    let server = WebSocket::from_raw_socket(a, Role::Server, Config::default(), BytesMut::new());
    let client = WebSocket::from_raw_socket(b, Role::Client, Config::default(), BytesMut::new());
    (server.unwrap(), client.unwrap())
}

/// The peer: pings once the library's writer is stuck, then reads everything.
async fn ping_then_read(mut client: WebSocket<PipeEnd>, expect_bytes: usize) -> usize {
    tokio::time::sleep(Duration::from_millis(20)).await; // the writer fills the pipe
    client.send(Message::Ping("hi".into())).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await; // the reader blocks on its pong
    let mut got = 0;
    let mut pong = false;
    while got < expect_bytes || !pong {
        match client.recv().await {
            Some(Ok(Message::Binary(b))) => got += b.len(),
            Some(Ok(Message::Pong(p))) => {
                assert_eq!(p, "hi");
                pong = true;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    client.send(Message::text("done")).await.unwrap();
    got
}

#[tokio::test]
async fn futures_split_writer_is_woken_after_the_reader_wrote_a_pong() {
    let (server, client) = pair();
    let (mut sink, mut stream) = server.split();
    let writer = tokio::spawn(async move {
        for i in 0..MESSAGES {
            sink.send(Message::binary(vec![i as u8; SIZE]))
                .await
                .unwrap();
        }
        sink
    });
    let reader = tokio::spawn(async move {
        loop {
            match stream.next().await {
                Some(Ok(Message::Text(t))) if t == "done" => return stream,
                Some(Ok(_)) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    });
    let peer = tokio::spawn(ping_then_read(client, MESSAGES * SIZE));
    let sink = within("the writer", writer).await.unwrap();
    assert_eq!(within("the peer", peer).await.unwrap(), MESSAGES * SIZE);
    let stream = within("the reader", reader).await.unwrap();
    drop(stream.reunite(sink).expect("halves of one connection"));
}

#[tokio::test]
async fn tokio_split_of_a_byte_stream_writer_is_woken_after_the_reader_wrote_a_pong() {
    let (server, client) = pair();
    let (mut rd, mut wr) = tokio::io::split(ByteStream::new(server));
    let writer = tokio::spawn(async move {
        let data = vec![5u8; MESSAGES * SIZE];
        // Odd-sized pieces, as a user's copy loop would write.
        for piece in data.chunks(100_003) {
            wr.write_all(piece).await.unwrap();
            wr.flush().await.unwrap();
        }
        wr
    });
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; 1024];
        // The peer's "done" is a text message: a byte stream refuses it, which ends the test.
        let err = rd.read(&mut buf).await.expect_err("a text message");
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
        rd
    });
    let peer = tokio::spawn(ping_then_read(client, MESSAGES * SIZE));
    drop(within("the writer", writer).await.unwrap());
    assert_eq!(within("the peer", peer).await.unwrap(), MESSAGES * SIZE);
    drop(within("the reader", reader).await.unwrap());
}

#[tokio::test]
async fn native_halves_writer_is_woken_after_the_reader_wrote_a_pong() {
    let (server, client) = pair();
    let (mut rx, mut tx) = server.into_split();
    let writer = tokio::spawn(async move {
        for i in 0..MESSAGES {
            tx.send(Message::binary(vec![i as u8; SIZE])).await.unwrap();
        }
        tx
    });
    let reader = tokio::spawn(async move {
        loop {
            match rx.recv().await {
                Some(Ok(Message::Text(t))) if t == "done" => return rx,
                Some(Ok(_)) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    });
    let peer = tokio::spawn(ping_then_read(client, MESSAGES * SIZE));
    let tx = within("the writer", writer).await.unwrap();
    assert_eq!(within("the peer", peer).await.unwrap(), MESSAGES * SIZE);
    let rx = within("the reader", reader).await.unwrap();
    drop(rx.reunite(tx).expect("halves of one connection"));
}

/// A wsio echo server over TCP: every data message comes back.
async fn echo_server() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut ws = wsio::accept(tcp).await.unwrap();
                while let Some(Ok(message)) = ws.recv().await {
                    if message.is_data() && ws.send(message).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

/// The load of the defect report: the sink in one task sends binary messages of 64 KiB, the
/// stream in another counts the echoes. `WSIO_LONG=1` runs the report's 4,000 messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn futures_split_under_echo_load_over_tcp() {
    let count = if std::env::var_os("WSIO_LONG").is_some() {
        4000
    } else {
        600
    };
    let addr = echo_server().await;
    let (ws, _) = wsio::connect(format!("ws://{addr}/")).await.unwrap();
    let (mut sink, mut stream) = ws.split();
    let sender = tokio::spawn(async move {
        for i in 0..count {
            sink.send(Message::binary(vec![i as u8; SIZE]))
                .await
                .unwrap();
        }
        sink
    });
    let counted = within_long(async {
        let mut n = 0;
        while n < count {
            match stream.next().await {
                Some(Ok(Message::Binary(b))) => {
                    assert_eq!(b.len(), SIZE);
                    assert!(b.iter().all(|&x| x == n as u8), "echo {n} in order");
                    n += 1;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        n
    })
    .await;
    assert_eq!(counted, count);
    let sink = within("sender", sender).await.unwrap();
    let mut ws = stream.reunite(sink).unwrap();
    within("close", ws.close(1000, "")).await.unwrap();
}

/// The byte-stream load of the defect report: a writer task `write_all`s in 100,003-byte
/// pieces, the reader reads the echo. `WSIO_LONG=1` runs the report's 64 MiB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_split_of_a_byte_stream_under_echo_load_over_tcp() {
    let total: usize = if std::env::var_os("WSIO_LONG").is_some() {
        64 << 20
    } else {
        16 << 20
    };
    let addr = echo_server().await;
    let (ws, _) = wsio::connect(format!("ws://{addr}/")).await.unwrap();
    let (mut rd, mut wr) = tokio::io::split(ByteStream::new(ws));
    let writer = tokio::spawn(async move {
        let data: Vec<u8> = (0..total).map(|i| (i % 251) as u8).collect();
        for piece in data.chunks(100_003) {
            wr.write_all(piece).await.unwrap();
        }
        wr.flush().await.unwrap();
        wr
    });
    let read = within_long(async {
        let mut buf = vec![0u8; 256 * 1024];
        let mut at = 0usize;
        while at < total {
            let n = rd.read(&mut buf).await.unwrap();
            assert!(n > 0, "the echo ended early at {at}");
            for (i, &b) in buf[..n].iter().enumerate() {
                assert_eq!(b, ((at + i) % 251) as u8, "byte {}", at + i);
            }
            at += n;
        }
        at
    })
    .await;
    assert_eq!(read, total);
    let mut wr = within("writer", writer).await.unwrap();
    within("shutdown", wr.shutdown()).await.unwrap();
}

async fn within_long<F: std::future::Future>(fut: F) -> F::Output {
    support::within_for(Duration::from_secs(60), "the load", fut).await
}
