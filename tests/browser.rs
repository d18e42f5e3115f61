//! wsio against a real browser: headless Chromium (Debian's `chromium` at `/usr/bin/chromium`,
//! installed by `scripts/install-browser.sh`; without it this test fails and says so) opens
//! `tests/browser/page.html` from a file, which talks to an in-process wsio server with the
//! default `Acceptor`.
//!
//! - **The browser negotiates permessage-deflate.** The page reports its `WebSocket.extensions`;
//!   it must name permessage-deflate and equal what the server's `ws.extensions()` says was
//!   agreed, and `ws.permessage_deflate()` must be `Some`.
//! - **Compressed messages echo byte for byte.** The page sends text (a phrase with 1- to 4-byte
//!   UTF-8 characters), compressible binary and pseudo-random binary, as `ArrayBuffer`s, of
//!   0, 1, 100, 10 000, 100 000 and 1 000 000 bytes each, one at a time; the server echoes
//!   every data message; the page compares each echo with what it sent (type and bytes) and
//!   sends its verdict, one line per case, on a second connection to `/report`. The server
//!   counts the messages and bytes it echoed, and its wire counters show that both sides really
//!   compressed: far fewer payload bytes crossed the wire than the messages held.
//!
//! Chromium runs in its own process group, killed as a whole when the test ends, pass or fail;
//! a failing test prints Chromium's log.

mod support;

use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use wsio::handshake::DeflateParams;
use wsio::{Acceptor, CloseCode, Message, Stats, WebSocket};

use support::browser::{Browser, TempDir};
use support::within_for;

/// The sizes of each kind of message the page sends (tests/browser/page.html's `SIZES`).
const SIZES: [u64; 6] = [0, 1, 100, 10_000, 100_000, 1_000_000];
/// Kinds of message: text, compressible binary, pseudo-random binary.
const KINDS: usize = 3;
const CASES: usize = SIZES.len() * KINDS;

/// From Chromium's start to the page's verdict: startup takes a second or two, the echoes
/// less than that.
const VERDICT: Duration = Duration::from_secs(20);

/// What the server saw on the page's echo connection, once it ended.
#[derive(Debug)]
struct Echoed {
    extensions: String,
    deflate: Option<DeflateParams>,
    texts: usize,
    binaries: usize,
    /// Payload bytes of the echoed messages, as the application saw them (inflated).
    bytes: u64,
    stats: Stats,
    close: Option<CloseCode>,
    error: Option<String>,
}

/// What one connection to the server amounted to.
#[derive(Debug)]
enum Seen {
    Echo(Echoed),
    Report(String),
    Failed(String),
}

/// Accepts connections until the test ends: `/echo` echoes data messages, `/report` takes the
/// page's verdict.
async fn serve(listener: TcpListener, seen: mpsc::UnboundedSender<Seen>) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let seen = seen.clone();
        tokio::spawn(async move {
            let _ = seen.send(handle(tcp).await);
        });
    }
}

async fn handle(tcp: TcpStream) -> Seen {
    let (ws, request) = match Acceptor::new().accept(tcp).await {
        Ok(accepted) => accepted,
        Err(e) => return Seen::Failed(format!("handshake: {e}")),
    };
    match request.uri().path() {
        "/echo" => Seen::Echo(echo(ws).await),
        "/report" => report(ws).await,
        path => Seen::Failed(format!("a connection to the unknown path {path}")),
    }
}

async fn echo(mut ws: WebSocket<TcpStream>) -> Echoed {
    let (mut texts, mut binaries, mut bytes, mut error) = (0, 0, 0, None);
    while let Some(message) = ws.recv().await {
        let message = match message {
            Ok(message) => message,
            Err(e) => {
                error = Some(format!("recv: {e}"));
                break;
            }
        };
        match &message {
            Message::Text(_) => texts += 1,
            Message::Binary(_) => binaries += 1,
            _ => continue,
        }
        bytes += message.len() as u64;
        if let Err(e) = ws.send(message).await {
            error = Some(format!("send: {e}"));
            break;
        }
    }
    Echoed {
        extensions: ws.extensions().to_owned(),
        deflate: ws.permessage_deflate(),
        texts,
        binaries,
        bytes,
        stats: ws.stats(),
        close: ws.close_code(),
        error,
    }
}

async fn report(mut ws: WebSocket<TcpStream>) -> Seen {
    let verdict = match ws.recv().await {
        Some(Ok(Message::Text(text))) => Seen::Report(text.as_str().to_owned()),
        other => Seen::Failed(format!("the report connection got {other:?}")),
    };
    // Finish the closing handshake the page starts.
    while let Some(Ok(_)) = ws.recv().await {}
    verdict
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_negotiates_permessage_deflate_and_echoes_byte_for_byte() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let server = tokio::spawn(serve(listener, seen_tx));

    let dir = TempDir::new("wsio-browser");
    let page = dir.path().join("page.html");
    std::fs::write(&page, include_str!("browser/page.html")).unwrap();
    let browser = Browser::launch(
        &format!("file://{}?server={addr}", page.display()),
        dir.path(),
        &[],
    );

    let (mut verdict, mut echoed) = (None, None);
    within_for(
        VERDICT,
        "the page's verdict and the end of its echo connection",
        async {
            while verdict.is_none() || echoed.is_none() {
                match seen.recv().await.expect("the server runs") {
                    Seen::Echo(e) => echoed = Some(e),
                    Seen::Report(r) => verdict = Some(r),
                    Seen::Failed(why) => panic!("{why}"),
                }
            }
        },
    )
    .await;
    let (verdict, echoed) = (verdict.unwrap(), echoed.unwrap());

    // The page's side: the negotiated extension, then one `ok` per case.
    let lines: Vec<&str> = verdict.lines().collect();
    let browser_extensions = lines[0]
        .strip_prefix("extensions ")
        .unwrap_or_else(|| panic!("the verdict starts with the extensions:\n{verdict}"));
    assert!(
        browser_extensions.starts_with("permessage-deflate"),
        "Chromium's WebSocket.extensions is {browser_extensions:?}\n{verdict}"
    );
    let oks = lines.iter().filter(|l| l.starts_with("ok ")).count();
    let bad: Vec<&&str> = lines[1..]
        .iter()
        .filter(|l| !l.starts_with("ok ") && !l.starts_with("done "))
        .collect();
    assert!(bad.is_empty(), "the page found problems: {bad:#?}");
    assert_eq!(oks, CASES, "cases that echoed byte for byte:\n{verdict}");
    assert_eq!(
        lines.last().copied(),
        Some(&*format!("done {CASES}")),
        "{verdict}"
    );

    // The server's side: the same extension, every message echoed, a normal close.
    assert_eq!(echoed.extensions, browser_extensions, "{echoed:#?}");
    assert!(echoed.deflate.is_some(), "{echoed:#?}");
    assert_eq!(echoed.error, None, "{echoed:#?}");
    assert_eq!(echoed.close, Some(CloseCode::NORMAL), "{echoed:#?}");
    assert_eq!(
        (echoed.texts, echoed.binaries),
        (SIZES.len(), SIZES.len() * 2),
        "{echoed:#?}"
    );
    let total = SIZES.iter().sum::<u64>() * KINDS as u64;
    assert_eq!(echoed.bytes, total, "{echoed:#?}");
    // A third of the bytes are random and stay their size; the rest shrink to almost nothing.
    // Uncompressed, each direction would carry all of them.
    let stats = echoed.stats;
    assert!(
        stats.payload_bytes_received < total / 2 && stats.payload_bytes_sent < total / 2,
        "too many payload bytes on the wire for {total} bytes of messages each way, \
         compressed: {stats:?}"
    );
    println!(
        "Chromium's WebSocket.extensions: {browser_extensions}\n\
         {total} bytes each way in {CASES} messages; on the wire, {} bytes from Chromium and \
         {} bytes from wsio",
        stats.payload_bytes_received, stats.payload_bytes_sent
    );

    drop(browser);
    server.abort();
}
