//! Connects to a `wss://` (or `ws://`) URL, prints the TLS parameters, sends each line of
//! standard input as a text message and prints every message it receives.
//!
//! The server's certificate must lead to one of the Mozilla roots, or to a root in `CA_PEM`:
//!
//! ```text
//! cargo run --example wss_client -- URL [CA_PEM]
//! cargo run --example wss_client -- wss://localhost:9443/ /tmp/wsio-example-ca.pem
//! ```

use tokio::io::{AsyncBufReadExt, BufReader};
use wsio::{ClientBuilder, Message};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "wss://localhost:9443/".into());
    let mut builder = ClientBuilder::new();
    if let Some(ca_path) = args.next() {
        for root in wsio::tls::certificates_from_pem(&std::fs::read(ca_path)?)? {
            builder = builder.add_root_certificate(root);
        }
    }
    let (ws, response) = builder.connect(url.as_str()).await?;
    eprintln!(
        "connected: {} from {} to {}",
        response.status(),
        ws.local_addr()?,
        ws.peer_addr()?
    );
    if let (Some(version), Some(suite)) = (ws.tls_protocol_version(), ws.tls_cipher_suite()) {
        let chain = ws.tls_peer_certificates().map_or(0, <[_]>::len);
        eprintln!(
            "TLS: {version:?}, {:?}, {chain} certificate(s) from the server",
            suite.suite()
        );
    }
    let (mut reader, mut writer) = ws.into_split();
    let printer = tokio::spawn(async move {
        while let Some(message) = reader.recv().await {
            match message {
                Ok(Message::Text(text)) => println!("{text}"),
                Ok(Message::Binary(data)) => println!("<{} bytes>", data.len()),
                Ok(Message::Close(frame)) => eprintln!("server closed: {frame:?}"),
                Ok(_) => {}
                Err(e) => {
                    eprintln!("error: {e}");
                    break;
                }
            }
        }
    });
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        writer.send_text(line).await?;
    }
    writer.close(wsio::CloseCode::NORMAL, "bye").await?;
    let _ = printer.await;
    Ok(())
}
