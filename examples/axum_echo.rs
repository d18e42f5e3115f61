//! Echoes every text and binary message on any path, like `echo_server`, but as an axum app:
//! wsio's [`WebSocketUpgrade`] extractor under `axum::serve` (HTTP/1.1, and HTTP/2 with RFC
//! 8441's extended CONNECT). `scripts/axum_bench.sh` measures it beside `echo_server` (wsio's
//! own `Acceptor`) and beside axum's built-in `ws` (`peer_echo_server axum-ws`).
//!
//! ```text
//! cargo run --release --features axum --example axum_echo -- 127.0.0.1:9007
//! ```

use axum::response::Response;
use axum::serve::ListenerExt;
use wsio::axum::WebSocketUpgrade;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9007".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!("echo server on ws://{}", listener.local_addr()?);
    // Small echoes must not wait for Nagle, as in echo_server.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, axum::Router::new().fallback(echo)).await
}

async fn echo(upgrade: WebSocketUpgrade) -> Response {
    upgrade
        .on_upgrade(|mut ws| async move {
            while let Some(Ok(message)) = ws.recv().await {
                if message.is_data() && ws.send(message).await.is_err() {
                    return;
                }
            }
        })
        .await
}
