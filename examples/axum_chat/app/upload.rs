//! Uploads: the browser sends a file's name as a text message and then the file as one binary
//! message; the server streams that message straight to disk through a `MessageReader` (never
//! holding more than a buffer of it), reporting progress on the same socket, and answers with
//! the byte count and SHA-256 of what it wrote.
//!
//! Replies, as JSON text messages: `{"progress": BYTES}` each time another `PROGRESS_EVERY`
//! bytes are on disk, then
//! `{"stored": NAME, "bytes": BYTES, "sha256": HEX}`, or `{"error": WHY}` (and the socket
//! closes). Several files may follow one another on one socket.

use std::io;
use std::path::{Path, PathBuf};

use axum::extract::State;
use axum::response::Response;
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufWriter};
use wsio::axum::WebSocketUpgrade;
use wsio::upgrade::UpgradedIo;
use wsio::{CloseCode, Config, DataKind, ReadHalf, WebSocket, WriteHalf};

use super::{App, Event};

/// How often the server reports how far an upload has got.
const PROGRESS_EVERY: u64 = 1 << 20;
/// The largest file the server takes.
const MAX_FILE: usize = 1 << 30;
const MAX_NAME: usize = 100;
/// Bytes gathered before each write to the file.
const WRITE_BUFFER: usize = 1 << 20;

/// `/upload`: a socket for uploads.
pub(super) async fn open(upgrade: WebSocketUpgrade, State(app): State<App>) -> Response {
    let version = upgrade.version();
    // Files arrive through the stream API, which only `max_stream_message_size` bounds.
    let config = Config::default().max_stream_message_size(Some(MAX_FILE));
    upgrade
        .config(config)
        .on_upgrade(move |ws| async move {
            app.log(Event::Opened {
                path: "/upload",
                version,
            });
            receive(ws, &app).await;
        })
        .await
}

/// A file on disk, whole.
struct Stored {
    file: PathBuf,
    bytes: u64,
    sha256: String,
}

async fn receive(ws: WebSocket<UpgradedIo>, app: &App) {
    let (mut read, mut write) = ws.into_split();
    loop {
        let stored = match next_name(&mut read).await {
            Ok(None) => return,
            Ok(Some(name)) => store(&mut read, &mut write, &app.uploads, &name).await,
            Err(e) => Err(e),
        };
        match stored {
            Ok(stored) => {
                let done = json!({
                    "stored": stored.file.file_name().map(|n| n.to_string_lossy()),
                    "bytes": stored.bytes,
                    "sha256": stored.sha256,
                });
                app.log(Event::Stored {
                    file: stored.file,
                    bytes: stored.bytes,
                    sha256: stored.sha256,
                });
                if write.send_text(done.to_string()).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                let why = e.to_string();
                app.log(Event::UploadFailed { why: why.clone() });
                let _ = write.send_text(json!({ "error": why }).to_string()).await;
                let code = match e.kind() {
                    io::ErrorKind::InvalidData => CloseCode::POLICY_VIOLATION,
                    _ => CloseCode::INTERNAL_ERROR,
                };
                let _ = write.close(code, "upload failed").await;
                // Finish the closing handshake (or see the connection end).
                while let Some(Ok(_)) = read.recv().await {}
                return;
            }
        }
    }
}

/// The next file's name, from a text message; `None` when the socket has closed.
async fn next_name(read: &mut ReadHalf<UpgradedIo>) -> io::Result<Option<String>> {
    let Some(message) = read.recv_stream().await else {
        return Ok(None);
    };
    let message = message?;
    if message.kind() != DataKind::Text {
        return Err(invalid("a file's name comes first, as a text message"));
    }
    let mut name = String::new();
    message
        .take(MAX_NAME as u64 + 1)
        .read_to_string(&mut name)
        .await?;
    safe_name(&name)
        .map(Some)
        .ok_or_else(|| invalid(format!("{name:?} is not a usable file name")))
}

/// `name` as a file name in the uploads directory: letters, digits, `.`, `-` and `_`, not
/// hidden, at most `MAX_NAME` bytes; anything else is replaced with `_`.
fn safe_name(name: &str) -> Option<String> {
    if name.len() > MAX_NAME || name.starts_with('.') {
        return None;
    }
    let safe: String = name
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '-' | '_' => c,
            _ => '_',
        })
        .collect();
    (!safe.is_empty()).then_some(safe)
}

/// Streams the next message, which must be binary, into `dir/name`: written under a temporary
/// name and renamed once whole, so that a file under its own name is always complete.
async fn store(
    read: &mut ReadHalf<UpgradedIo>,
    write: &mut WriteHalf<UpgradedIo>,
    dir: &Path,
    name: &str,
) -> io::Result<Stored> {
    let mut file_bytes = match read.recv_stream().await {
        Some(message) => message?,
        None => return Err(io::ErrorKind::UnexpectedEof.into()),
    };
    if file_bytes.kind() != DataKind::Binary {
        return Err(invalid("a file comes as a binary message after its name"));
    }
    let (file, partial) = (dir.join(name), dir.join(format!(".{name}.part")));
    let result = async {
        let mut out =
            BufWriter::with_capacity(WRITE_BUFFER, tokio::fs::File::create(&partial).await?);
        let (mut hash, mut bytes) = (Sha256::new(), 0);
        loop {
            // The reader's own buffer, uncopied: what arrived goes to the hash and the file.
            let chunk = file_bytes.fill_buf().await?;
            if chunk.is_empty() {
                break;
            }
            hash.update(chunk);
            out.write_all(chunk).await?;
            let n = chunk.len();
            file_bytes.consume(n);
            let before = bytes;
            bytes += n as u64;
            // At every `PROGRESS_EVERY` boundary the message crosses, and so at its end when
            // its size is a multiple.
            if bytes / PROGRESS_EVERY > before / PROGRESS_EVERY {
                let progress = json!({ "progress": bytes }).to_string();
                write.send_text(progress).await.map_err(io::Error::from)?;
            }
        }
        out.flush().await?;
        out.into_inner().sync_all().await?;
        tokio::fs::rename(&partial, &file).await?;
        Ok(Stored {
            file,
            bytes,
            sha256: format!("{:x}", hash.finalize()),
        })
    }
    .await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(&partial).await;
    }
    result
}

fn invalid(why: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why.into())
}

#[cfg(test)]
mod tests {
    use super::safe_name;

    #[test]
    fn names_stay_inside_the_uploads_directory() {
        assert_eq!(safe_name("report.pdf").as_deref(), Some("report.pdf"));
        assert_eq!(safe_name("../etc/passwd").as_deref(), None);
        assert_eq!(safe_name("a/../../b").as_deref(), Some("a_.._.._b"));
        assert_eq!(safe_name("été 1.txt").as_deref(), Some("_t__1.txt"));
        assert_eq!(safe_name(".hidden"), None);
        assert_eq!(safe_name(""), None);
        assert_eq!(safe_name(&"x".repeat(101)), None);
    }
}
