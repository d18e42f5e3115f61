//! The app of `examples/axum_chat`: its router, its state and the TLS server that speaks
//! HTTP/1.1 and HTTP/2 on one port. `tests/browser_h2.rs` includes this module by path and
//! serves the very same app to headless Chromium.

mod chat;
pub(crate) mod serve;
mod upload;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use axum::response::Html;
use axum::routing::{any, get};
use axum::Router;
use wsio::http::Version;

/// What the app did, for its log: the example prints each event, the browser test checks them.
#[derive(Debug, Clone)]
pub(crate) enum Event {
    /// A WebSocket opened on `path`; over HTTP/2 it came as an RFC 8441 extended CONNECT.
    Opened {
        path: &'static str,
        version: Version,
    },
    /// A chat member said `text`.
    Said { name: String, text: String },
    /// A file was written to disk whole.
    Stored {
        file: PathBuf,
        bytes: u64,
        sha256: String,
    },
    /// An upload ended before its file was whole, or was refused.
    UploadFailed { why: String },
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Opened { path, version } => write!(f, "{path}: a WebSocket over {version:?}"),
            Event::Said { name, text } => write!(f, "chat: {name}: {text}"),
            Event::Stored {
                file,
                bytes,
                sha256,
            } => write!(
                f,
                "upload: {} ({bytes} bytes, SHA-256 {sha256})",
                file.display()
            ),
            Event::UploadFailed { why } => write!(f, "upload failed: {why}"),
        }
    }
}

/// The app's state: the chat room, where uploads go, and where events go.
#[derive(Clone)]
pub(crate) struct App {
    room: chat::Room,
    uploads: Arc<PathBuf>,
    log: Arc<dyn Fn(Event) + Send + Sync>,
}

impl App {
    /// An app that stores uploads in `uploads` (which must exist) and hands every event to `log`.
    pub(crate) fn new(uploads: PathBuf, log: impl Fn(Event) + Send + Sync + 'static) -> App {
        App {
            room: chat::Room::new(),
            uploads: Arc::new(uploads),
            log: Arc::new(log),
        }
    }

    fn log(&self, event: Event) {
        (self.log)(event);
    }

    /// `/` the page, `/chat` the room, `/upload` the uploads. The WebSocket routes take any
    /// method: HTTP/1.1 upgrades with `GET`, HTTP/2 with `CONNECT` (RFC 8441).
    pub(crate) fn router(self) -> Router {
        Router::new()
            .route("/", get(|| async { Html(include_str!("page.html")) }))
            .route("/chat", any(chat::join))
            .route("/upload", any(upload::open))
            .with_state(self)
    }
}
