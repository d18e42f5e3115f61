//! The axum_chat example against a real browser over HTTPS: headless Chromium (as in
//! tests/browser.rs) loads `tests/browser/chat_upload.html` from the app itself (the example's
//! own router and TLS server, included by path, with a throwaway certificate that Chromium is
//! told to trust by its key's hash), and the page opens its WebSockets to the same origin.
//!
//! - **Over HTTP/2** (ALPN `h2`, `http/1.1`): Chromium loads the page over HTTP/2 and opens its
//!   `wss://` sockets as RFC 8441 extended CONNECT streams of that connection; the server's
//!   extractor says so (`WebSocketUpgrade::version() == HTTP/2.0`) for every socket.
//! - **Over HTTP/1.1** (ALPN `http/1.1` alone): the same page, each socket an HTTP/1.1 upgrade.
//!
//! Both check that two chat members hear each other's lines (on the page, and the server logged
//! exactly those lines) and that a 64 MiB upload, made in the page, arrives byte for byte: the
//! page's SHA-256, the server's and that of the file on disk all equal the hash of the same
//! bytes made here, and the server reported progress on the way.

#![cfg(all(feature = "axum", feature = "tls"))]

#[path = "../examples/axum_chat/app/mod.rs"]
mod app;
mod support;

use std::time::Duration;

use axum::response::{Html, Response};
use axum::routing::{any, get};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use wsio::axum::WebSocketUpgrade;
use wsio::http::Version;
use wsio::Message;

use app::serve::{serve_tls, tls_config, Alpn, ThrowawayCertificate};
use app::{App, Event};
use support::browser::{Browser, TempDir};
use support::within_for;

/// The page's upload (chat_upload.html's `UPLOAD_BYTES` and `SEED`).
const UPLOAD_BYTES: usize = 64 << 20;
const SEED: u32 = 0x2545_f491;
/// The server reports progress every MiB (examples/axum_chat/app/upload.rs).
const PROGRESS_EVERY: usize = 1 << 20;

/// From Chromium's start to the page's verdict: startup takes a second or two, making and
/// hashing 64 MiB in the page one or two more, and the upload a few seconds through this
/// unoptimised build.
const VERDICT: Duration = Duration::from_secs(120);

/// What the server saw: the app's events and the page's verdict.
#[derive(Debug)]
enum Seen {
    App(Event),
    Verdict(String),
}

/// The bytes the page uploads: xorshift32 words, little-endian.
fn upload_bytes() -> Vec<u8> {
    let mut x = SEED;
    let mut bytes = Vec::with_capacity(UPLOAD_BYTES);
    while bytes.len() < UPLOAD_BYTES {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    bytes
}

fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// Takes the page's verdict on `/report`.
async fn report(upgrade: WebSocketUpgrade, seen: mpsc::UnboundedSender<Seen>) -> Response {
    upgrade
        .on_upgrade(move |mut ws| async move {
            if let Some(Ok(Message::Text(verdict))) = ws.recv().await {
                let _ = seen.send(Seen::Verdict(verdict.as_str().to_owned()));
            }
            // Finish the closing handshake the page starts.
            while let Some(Ok(_)) = ws.recv().await {}
        })
        .await
}

/// Serves the app with `alpn`, runs the page in Chromium, and checks what both sides saw.
async fn chat_and_upload(alpn: Alpn, version: Version) {
    let dir = TempDir::new("wsio-browser-h2");
    let uploads = dir.path().join("uploads");
    std::fs::create_dir_all(&uploads).unwrap();
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let events = seen_tx.clone();
    let app = App::new(uploads.clone(), move |event| {
        let _ = events.send(Seen::App(event));
    })
    .router()
    .route(
        "/test",
        get(|| async { Html(include_str!("browser/chat_upload.html")) }),
    )
    .route(
        "/report",
        any(move |upgrade: WebSocketUpgrade| report(upgrade, seen_tx.clone())),
    );
    let certificate = ThrowawayCertificate::new();
    let tls = tls_config(certificate.chain, certificate.key, alpn).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(serve_tls(listener, tls, app));

    let browser = Browser::launch(
        &format!("https://127.0.0.1:{port}/test"),
        dir.path(),
        &[format!(
            "--ignore-certificate-errors-spki-list={}",
            certificate.spki_sha256
        )],
    );

    let mut events = Vec::new();
    let verdict = within_for(VERDICT, "the page's verdict", async {
        loop {
            match seen.recv().await.expect("the server runs") {
                Seen::App(event) => events.push(event),
                Seen::Verdict(verdict) => return verdict,
            }
        }
    })
    .await;
    // The upload socket's close and the chat's "left" lines may still be on their way; the
    // events checked below all come before the page's verdict.
    while let Ok(Seen::App(event)) = seen.try_recv() {
        events.push(event);
    }

    let expected = upload_bytes();
    let expected_sha256 = sha256_hex(&expected);

    // The page's side.
    let lines: Vec<&str> = verdict.lines().collect();
    let errors: Vec<&&str> = lines.iter().filter(|l| l.starts_with("error")).collect();
    assert!(
        errors.is_empty(),
        "the page found problems: {errors:#?}\n{verdict}"
    );
    for line in [
        "ok chat alice".to_owned(),
        "ok chat bob".to_owned(),
        format!("upload {UPLOAD_BYTES} {expected_sha256}"),
        format!("stored {UPLOAD_BYTES} {expected_sha256}"),
    ] {
        assert!(
            lines.contains(&line.as_str()),
            "no {line:?} in the verdict:\n{verdict}"
        );
    }
    // Progress came while the upload ran (a report before the last), and the last one at the
    // end: the size is a multiple of the server's step.
    let progress = lines
        .iter()
        .find_map(|l| l.strip_prefix("progress "))
        .unwrap_or_else(|| panic!("no progress line in the verdict:\n{verdict}"));
    let (reports, last) = progress.split_once(' ').unwrap();
    let reports: usize = reports.parse().unwrap();
    assert!(
        (2..=UPLOAD_BYTES / PROGRESS_EVERY).contains(&reports),
        "{reports} progress reports:\n{verdict}"
    );
    assert_eq!(last, UPLOAD_BYTES.to_string(), "{verdict}");
    assert_eq!(lines.last(), Some(&"done"), "{verdict}");

    // The server's side: every socket came over `version`, ...
    let opened: Vec<(&str, Version)> = events
        .iter()
        .filter_map(|e| match e {
            Event::Opened { path, version } => Some((*path, *version)),
            _ => None,
        })
        .collect();
    assert_eq!(
        opened,
        [("/chat", version), ("/chat", version), ("/upload", version)],
        "{events:#?}"
    );
    // ... it relayed the two lines the page sent, ...
    let said: Vec<(&str, &str)> = events
        .iter()
        .filter_map(|e| match e {
            Event::Said { name, text } => Some((name.as_str(), text.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(said.len(), 2, "{events:#?}");
    assert!(
        said.contains(&("alice", "hello from alice — ✓ 😀")),
        "{said:?}"
    );
    assert!(
        said.contains(&("bob", "hi from bob, über 中文")),
        "{said:?}"
    );
    // ... and wrote the page's bytes to disk, whole.
    let stored: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Stored {
                file,
                bytes,
                sha256,
            } => Some((file, *bytes, sha256)),
            Event::UploadFailed { why } => panic!("the upload failed: {why}"),
            _ => None,
        })
        .collect();
    let [(file, bytes, sha256)] = stored[..] else {
        panic!("one file stored: {events:#?}");
    };
    assert_eq!(file, &uploads.join("browser-64MiB.bin"));
    assert_eq!((bytes, sha256), (UPLOAD_BYTES as u64, &expected_sha256));
    let on_disk = std::fs::read(file).unwrap();
    assert!(
        on_disk == expected,
        "the file on disk differs from the page's bytes"
    );

    println!(
        "Chromium over {version:?}: {} WebSockets, 2 chat lines, {UPLOAD_BYTES} bytes uploaded \
         (SHA-256 {expected_sha256})",
        opened.len()
    );
    drop(browser);
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_chats_and_uploads_over_http2_extended_connect() {
    chat_and_upload(Alpn::H2AndHttp11, Version::HTTP_2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_chats_and_uploads_over_http11_upgrades() {
    chat_and_upload(Alpn::Http11, Version::HTTP_11).await;
}
