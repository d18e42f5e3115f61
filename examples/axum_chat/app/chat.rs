//! The chat room: every line a member sends goes to every member, through one bounded
//! broadcast channel.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::Response;
use serde::Deserialize;
use tokio::sync::broadcast::{self, error::RecvError};
use wsio::axum::WebSocketUpgrade;
use wsio::upgrade::UpgradedIo;
use wsio::{Config, Message, Utf8Bytes, WebSocket};

use super::{App, Event};

/// Lines the room keeps for a member who has not sent them on yet. A member further behind
/// skips the oldest and is told how many (a slow reader costs the room this much memory, no
/// more, and never slows the others).
const BACKLOG: usize = 256;
/// The longest line a member may send; a longer one closes its connection with 1009.
const MAX_LINE: usize = 4 << 10;
const MAX_NAME: usize = 32;

#[derive(Clone)]
pub(super) struct Room {
    lines: broadcast::Sender<Utf8Bytes>,
    guests: Arc<AtomicU64>,
}

impl Room {
    pub(super) fn new() -> Room {
        Room {
            lines: broadcast::channel(BACKLOG).0,
            guests: Arc::new(AtomicU64::new(0)),
        }
    }

    fn say(&self, line: String) {
        // An error only means that nobody is in the room.
        let _ = self.lines.send(line.into());
    }
}

#[derive(Deserialize)]
pub(super) struct Who {
    name: Option<String>,
}

/// `/chat?name=NAME`: joins the room as NAME (letters, digits, `-` and `_`), or as a guest.
pub(super) async fn join(
    upgrade: WebSocketUpgrade,
    Query(who): Query<Who>,
    State(app): State<App>,
) -> Response {
    let name = who
        .name
        .map(|name| {
            name.chars()
                .filter(|c| c.is_alphanumeric() || *c == '-' || *c == '_')
                .take(MAX_NAME)
                .collect::<String>()
        })
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| {
            let n = app.room.guests.fetch_add(1, Ordering::Relaxed) + 1;
            format!("guest-{n}")
        });
    let version = upgrade.version();
    upgrade
        .config(Config::default().max_message_size(MAX_LINE))
        .on_upgrade(move |ws| async move {
            app.log(Event::Opened {
                path: "/chat",
                version,
            });
            member(ws, name, app).await;
        })
        .await
}

/// One member's connection: what the room says goes out, what the member says goes to the
/// room, until either side ends.
async fn member(ws: WebSocket<UpgradedIo>, name: String, app: App) {
    // Subscribed before the join is announced: whoever sees the announcement knows that this
    // member hears what is said from then on.
    let mut heard = app.room.lines.subscribe();
    app.room.say(format!("* {name} joined"));
    let (mut read, mut write) = ws.into_split();
    let relay = async {
        loop {
            let line = match heard.recv().await {
                Ok(line) => line,
                Err(RecvError::Lagged(missed)) => {
                    format!("* you missed {missed} lines: your connection is too slow").into()
                }
                Err(RecvError::Closed) => return,
            };
            if write.send_text(line).await.is_err() {
                return;
            }
        }
    };
    let listen = async {
        while let Some(Ok(message)) = read.recv().await {
            if let Message::Text(text) = message {
                app.log(Event::Said {
                    name: name.clone(),
                    text: text.as_str().to_owned(),
                });
                app.room.say(format!("{name}: {}", text.as_str()));
            }
        }
    };
    // When the member leaves (or its connection fails) the relay ends with it, and the other
    // way round.
    tokio::select! {
        () = relay => {}
        () = listen => {}
    }
    app.room.say(format!("* {name} left"));
}
