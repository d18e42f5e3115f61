//! Echoes every text and binary message on any path; text stays text. Accepts the first
//! subprotocol the client offers, if any.
//!
//! ```text
//! cargo run --release --example echo_server -- 127.0.0.1:9002
//! ```

use wsio::server::{requested_subprotocols, Accept, Acceptor};

#[tokio::main]
async fn main() -> wsio::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9002".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!("echo server on ws://{}", listener.local_addr()?);
    let acceptor = Acceptor::new()
        .on_request(|request| Ok(Accept::new().protocol(requested_subprotocols(request).next())));
    loop {
        let (tcp, peer) = listener.accept().await?;
        tcp.set_nodelay(true)?;
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let result: wsio::Result<Option<wsio::CloseCode>> = async {
                let (mut ws, request) = acceptor.accept(tcp).await?;
                eprintln!("{peer}: connected to {}", request.uri());
                while let Some(message) = ws.recv().await {
                    let message = message?;
                    if message.is_data() {
                        ws.send(message).await?;
                    }
                }
                Ok(ws.close_code())
            }
            .await;
            match result {
                Ok(code) => eprintln!("{peer}: closed ({code:?})"),
                Err(e) => eprintln!("{peer}: {e}"),
            }
        });
    }
}
