//! An echo server built on another Rust WebSocket library, for `scripts/load_bench.sh` to
//! measure beside wsio's `echo_server` with the same load generator: every text and binary
//! message is sent back as it came. Each library runs in its own process.
//!
//! ```text
//! cargo run --release --example peer_echo_server -- tokio-tungstenite 127.0.0.1:9003
//! cargo run --release --example peer_echo_server -- tokio-websockets 127.0.0.1:9004
//! cargo run --release --example peer_echo_server -- fastwebsockets 127.0.0.1:9005
//! cargo run --release --example peer_echo_server -- axum-ws 127.0.0.1:9006
//! ```
//!
//! `axum-ws` is axum's own built-in `ws` extractor (tokio-tungstenite underneath) under
//! `axum::serve`: the anchor that `scripts/axum_bench.sh` measures wsio's axum extractor
//! against. None of them negotiates permessage-deflate.

use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let lib = args.next().unwrap_or_default();
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:9003".into());
    let libs = [
        "tokio-tungstenite",
        "tokio-websockets",
        "fastwebsockets",
        "axum-ws",
    ];
    if !libs.contains(&lib.as_str()) {
        eprintln!("usage: peer_echo_server {} ADDR", libs.join("|"));
        std::process::exit(2);
    }
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!("{lib} echo server on ws://{}", listener.local_addr()?);
    if lib == "axum-ws" {
        return axum_ws_serve(listener).await;
    }
    loop {
        let (tcp, _) = listener.accept().await?;
        tcp.set_nodelay(true)?;
        let lib = lib.clone();
        tokio::spawn(async move {
            match lib.as_str() {
                "tokio-tungstenite" => tungstenite_echo(tcp).await,
                "tokio-websockets" => tokio_websockets_echo(tcp).await,
                _ => fastwebsockets_echo(tcp).await,
            }
        });
    }
}

async fn tungstenite_echo(tcp: TcpStream) {
    let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
        return;
    };
    while let Some(Ok(message)) = ws.next().await {
        if (message.is_binary() || message.is_text()) && ws.send(message).await.is_err() {
            return;
        }
    }
}

async fn tokio_websockets_echo(tcp: TcpStream) {
    let Ok((_, mut ws)) = tokio_websockets::ServerBuilder::new().accept(tcp).await else {
        return;
    };
    while let Some(Ok(message)) = ws.next().await {
        if (message.is_binary() || message.is_text()) && ws.send(message).await.is_err() {
            return;
        }
    }
}

/// fastwebsockets leaves the HTTP handshake to its caller (it uses hyper); this one reads the
/// request head, answers with the accept key, and hands the stream over.
async fn fastwebsockets_echo(mut tcp: TcpStream) {
    let mut head = Vec::with_capacity(1024);
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 16 << 10 || tcp.read_exact(&mut byte).await.is_err() {
            return;
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head);
    let Some(key) = text.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("sec-websocket-key")
            .then(|| value.trim().to_owned())
    }) else {
        return;
    };
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        wsio::handshake::derive_accept_key(key.as_bytes())
    );
    if tcp.write_all(response.as_bytes()).await.is_err() {
        return;
    }
    let ws = fastwebsockets::WebSocket::after_handshake(tcp, fastwebsockets::Role::Server);
    // Reassembles fragmented messages; pings and the peer's close are answered by the library.
    let mut ws = fastwebsockets::FragmentCollector::new(ws);
    while let Ok(frame) = ws.read_frame().await {
        match frame.opcode {
            fastwebsockets::OpCode::Binary | fastwebsockets::OpCode::Text => {
                let reply = fastwebsockets::Frame::new(true, frame.opcode, None, frame.payload);
                if ws.write_frame(reply).await.is_err() {
                    return;
                }
            }
            fastwebsockets::OpCode::Close => return,
            _ => {}
        }
    }
}

/// axum's built-in `ws` on every path, served by `axum::serve` (HTTP/1.1 and HTTP/2, RFC 8441
/// on), `TCP_NODELAY` on like the other servers here.
async fn axum_ws_serve(listener: tokio::net::TcpListener) -> std::io::Result<()> {
    use axum::extract::ws::WebSocketUpgrade;
    use axum::serve::ListenerExt;

    let nodelay = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let app = axum::Router::new().fallback(|upgrade: WebSocketUpgrade| async move {
        upgrade.on_upgrade(|mut ws| async move {
            while let Some(Ok(message)) = ws.recv().await {
                let data = matches!(
                    message,
                    axum::extract::ws::Message::Binary(_) | axum::extract::ws::Message::Text(_)
                );
                if data && ws.send(message).await.is_err() {
                    return;
                }
            }
        })
    });
    axum::serve(nodelay, app).await
}
