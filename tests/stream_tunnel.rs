//! The tunnel example (TCP forwarded over WebSockets with `ByteStream` and
//! `copy_bidirectional`), run in-process: its own code, both ends and an echo service on loopback.

mod support;

#[allow(dead_code, unreachable_pub)]
#[path = "../examples/tunnel.rs"]
mod tunnel;

use std::net::SocketAddr;
use std::time::Duration;

use support::stream::*;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wsio::Message;

const LIMIT: Duration = Duration::from_secs(8);

/// An echo service, a tunnel server forwarding to it and a tunnel client in front of that.
/// Returns the tunnel client's TCP address and the tunnel server's WebSocket address.
async fn tunnel_on_loopback() -> (SocketAddr, SocketAddr) {
    let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ws_side = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tcp_side = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (echo_addr, ws_addr, tcp_addr) = (
        echo.local_addr().unwrap(),
        ws_side.local_addr().unwrap(),
        tcp_side.local_addr().unwrap(),
    );
    tokio::spawn(tunnel::serve_echo(echo));
    tokio::spawn(tunnel::serve_websockets(ws_side, echo_addr.to_string()));
    tokio::spawn(tunnel::serve_tcp(tcp_side, format!("ws://{ws_addr}/")));
    (tcp_addr, ws_addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnel_demo_sends_megabytes_through_both_ends_and_gets_them_back() {
    within_for(LIMIT, "the demo", tunnel::demo(3 << 20, 2))
        .await
        .expect("the demo checks every byte");
}

/// Sends `data` through the tunnel at `addr` in writes of random sizes while reading the echo
/// in reads of random sizes; then closes and expects the tunnel to close too.
async fn echo_randomly(addr: SocketAddr, data: Vec<u8>, seed: u64) {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let (mut rx, mut tx) = tcp.split();
    let send = async {
        let mut rng = XorShift::new(seed);
        write_chunked(&mut tx, &data, &mut rng, 100_000, 0)
            .await
            .unwrap();
    };
    let receive = async {
        let mut rng = XorShift::new(seed + 1);
        let mut back = Vec::with_capacity(data.len());
        let mut buf = vec![0u8; 128 * 1024];
        while back.len() < data.len() {
            let len = chunk_len(&mut rng, buf.len());
            let n = rx.read(&mut buf[..len]).await.unwrap();
            assert!(n > 0, "the tunnel closed after {} bytes", back.len());
            back.extend_from_slice(&buf[..n]);
        }
        back
    };
    let ((), back) = tokio::join!(send, receive);
    assert_same_bytes(&back, &data, &format!("echo of connection {seed}"));
    tx.shutdown().await.unwrap();
    let mut rest = Vec::new();
    rx.read_to_end(&mut rest).await.expect("a clean close");
    assert!(rest.is_empty(), "{} bytes after the echo", rest.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnel_carries_randomly_chunked_traffic_on_several_connections_at_once() {
    let (tcp_addr, _) = tunnel_on_loopback().await;
    let connections = (0..4u64).map(|i| {
        let len = [0, 1, 300_000, 2 << 20][i as usize];
        tokio::spawn(echo_randomly(tcp_addr, pattern(i + 100, len), i * 10))
    });
    within_for(LIMIT, "four connections", async {
        for connection in connections {
            connection.await.expect("connection");
        }
    })
    .await;
}

#[tokio::test]
async fn tunnel_server_end_speaks_plain_binary_messages_to_a_message_peer() {
    // Like a browser talking to websockify: whole binary messages in, whole binary messages out.
    let (_, ws_addr) = tunnel_on_loopback().await;
    let (mut ws, _) = within("connect", wsio::connect(format!("ws://{ws_addr}/")))
        .await
        .expect("connect");
    let sent: Vec<Vec<u8>> = (0..20)
        .map(|i| pattern(i, 1 + i as usize * 7_919))
        .collect();
    let want = sent.concat();
    let mut back = Vec::new();
    within("messages through the tunnel", async {
        for message in &sent {
            ws.send_binary(message.clone()).await.unwrap();
        }
        while back.len() < want.len() {
            match ws.recv().await {
                Some(Ok(Message::Binary(data))) => back.extend_from_slice(&data),
                other => panic!("expected binary messages, got {other:?}"),
            }
        }
    })
    .await;
    assert_same_bytes(&back, &want, "the echo as binary messages");
    within("close", ws.close(wsio::CloseCode::NORMAL, ""))
        .await
        .expect("the tunnel completes the closing handshake");
}
