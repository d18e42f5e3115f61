//! Connects to a WebSocket URL, sends each line of standard input as a text message and prints
//! every message it receives.
//!
//! ```text
//! cargo run --example client -- ws://127.0.0.1:9002/
//! ```

use tokio::io::{AsyncBufReadExt, BufReader};
use wsio::Message;

#[tokio::main]
async fn main() -> wsio::Result<()> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "ws://127.0.0.1:9002/".into());
    let (ws, response) = wsio::connect(url.as_str()).await?;
    eprintln!("connected: {}", response.status());
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
