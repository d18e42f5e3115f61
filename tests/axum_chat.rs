//! The chat room of examples/axum_chat (its app included by path, served by `axum::serve`)
//! keeps a slow member bounded: a member who stops reading while another talks skips the
//! oldest lines once the room's backlog is full, is told how many it missed, and then hears
//! the newest lines; the talker is never held up by it.

#![cfg(all(feature = "axum", feature = "tls"))]

// The app's TLS server (app::serve) is unused here: tests/browser_h2.rs runs it.
#[allow(dead_code)]
#[path = "../examples/axum_chat/app/mod.rs"]
mod app;
mod support;

use std::time::Duration;

use tokio::net::TcpListener;
use wsio::Message;

use app::App;
use support::browser::TempDir;
use support::within_for;

/// Lines the talker says, each about 4 KB (the room takes 4 KiB at most): some 20 MB, more
/// than the socket buffers between the room and a member who does not read can hold.
const LINES: usize = 5_000;

async fn next_text(ws: &mut wsio::WebSocket<wsio::MaybeTlsStream>) -> String {
    loop {
        match ws.recv().await.expect("the room is open").unwrap() {
            Message::Text(text) => return text.as_str().to_owned(),
            _ => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_who_stops_reading_skips_old_lines_and_is_told() {
    let dir = TempDir::new("wsio-axum-chat");
    let app = App::new(dir.path().to_owned(), |_| {}).router();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let (mut slow, _) = wsio::connect(&format!("ws://{addr}/chat?name=slow"))
        .await
        .unwrap();
    assert_eq!(next_text(&mut slow).await, "* slow joined");
    let (mut talker, _) = wsio::connect(&format!("ws://{addr}/chat?name=talker"))
        .await
        .unwrap();
    assert_eq!(next_text(&mut slow).await, "* talker joined");

    // The talker talks (and reads nothing either): the room must take every line.
    let padding = "x".repeat(4_000);
    within_for(Duration::from_secs(60), "the talker's lines", async {
        for i in 0..LINES {
            talker.send_text(format!("{i:05} {padding}")).await.unwrap();
        }
    })
    .await;

    // Now the slow member reads: some lines, the notice, and the newest lines to the last.
    let last = format!("talker: {:05} {padding}", LINES - 1);
    let (mut heard, mut missed) = (0, 0);
    within_for(Duration::from_secs(60), "the slow member's lines", async {
        loop {
            let line = next_text(&mut slow).await;
            if let Some(rest) = line.strip_prefix("* you missed ") {
                let n: usize = rest.split(' ').next().unwrap().parse().unwrap();
                missed += n;
            } else if line.starts_with("talker: ") {
                heard += 1;
                if line == last {
                    return;
                }
            }
        }
    })
    .await;
    assert!(missed > 0, "the slow member heard all {heard} lines");
    assert_eq!(
        heard + missed,
        LINES,
        "heard {heard}, told of {missed} missed"
    );
    server.abort();
}
