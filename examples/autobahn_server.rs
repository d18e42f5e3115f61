//! The Autobahn|Testsuite echo server (fuzzingclient mode): echoes every message on any path.
//!
//! ```text
//! cargo run --release --example autobahn_server -- 127.0.0.1:9002 &
//! bash ../shared/autobahn/run.sh server-under-test 127.0.0.1:9002
//! ```

#[tokio::main]
async fn main() -> wsio::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9002".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!("autobahn_server listening on {}", listener.local_addr()?);
    loop {
        let (tcp, _) = listener.accept().await?;
        tcp.set_nodelay(true)?;
        tokio::spawn(async move {
            let Ok(mut ws) = wsio::accept(tcp).await else {
                return;
            };
            while let Some(Ok(message)) = ws.recv().await {
                if message.is_data() && ws.send(message).await.is_err() {
                    break;
                }
            }
        });
    }
}
