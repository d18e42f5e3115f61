//! A chat room and file uploads over WebSockets, in an axum app built on wsio's
//! `axum::WebSocketUpgrade`: `/` serves a page, `/chat` is a broadcast chat room, `/upload`
//! streams files from the browser straight to disk through `MessageReader`, with progress
//! reports on the same socket and the SHA-256 of what was written at the end.
//!
//! ```text
//! cargo run --features axum --example axum_chat                 # http://127.0.0.1:8080/
//! cargo run --features axum --example axum_chat -- --https      # https://127.0.0.1:8443/
//! cargo run --features axum --example axum_chat -- --https --cert chain.pem --key key.pem
//! ```
//!
//! `--http` (the default) serves plain HTTP/1.1 with `axum::serve`. `--https` serves TLS with
//! ALPN `h2` and `http/1.1` through hyper-util's `auto` server, RFC 8441's extended CONNECT on:
//! a browser loads the page over HTTP/2 and then opens its `wss://` sockets as streams of that
//! same connection, which the log shows (`a WebSocket over HTTP/2.0`). Without `--cert` it makes
//! a throwaway self-signed certificate and prints the flag that makes Chromium trust it.
//! `tests/browser_h2.rs` serves this app to headless Chromium over both HTTP versions.

mod app;

use std::path::PathBuf;

use axum::serve::ListenerExt;
use clap::Parser;

use app::serve::{serve_tls, tls_config, Alpn, ThrowawayCertificate};
use app::App;

/// A chat room and file uploads over WebSockets (axum and wsio).
#[derive(Debug, Parser)]
struct Options {
    /// Address to listen on [default: 127.0.0.1:8080, or 127.0.0.1:8443 with --https].
    addr: Option<String>,
    /// Plain HTTP/1.1 (the default).
    #[arg(long, conflicts_with = "https")]
    http: bool,
    /// HTTPS, with HTTP/2 (and RFC 8441 WebSockets) and HTTP/1.1.
    #[arg(long)]
    https: bool,
    /// HTTPS: the certificate chain to present (PEM) [default: a throwaway self-signed one].
    #[arg(long, requires_all = ["key", "https"])]
    cert: Option<PathBuf>,
    /// HTTPS: the private key of --cert (PEM).
    #[arg(long, requires = "cert")]
    key: Option<PathBuf>,
    /// HTTPS: offer HTTP/1.1 alone in ALPN (a browser then opens a connection per WebSocket).
    #[arg(long, requires = "https")]
    no_h2: bool,
    /// Where uploaded files go (created if missing).
    #[arg(long, default_value = "uploads")]
    uploads: PathBuf,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let options = Options::parse();
    std::fs::create_dir_all(&options.uploads)?;
    let app = App::new(options.uploads.clone(), |event| eprintln!("{event}")).router();
    let default_addr = if options.https {
        "127.0.0.1:8443"
    } else {
        "127.0.0.1:8080"
    };
    let listener =
        tokio::net::TcpListener::bind(options.addr.as_deref().unwrap_or(default_addr)).await?;
    let addr = listener.local_addr()?;
    eprintln!("uploads go to {}", options.uploads.display());
    if !options.https {
        eprintln!("chat on http://{addr}/");
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(listener, app).await?;
        return Ok(());
    }
    let (chain, key) = match (&options.cert, &options.key) {
        (Some(cert), Some(key)) => (
            wsio::tls::certificates_from_pem(&std::fs::read(cert)?)?,
            wsio::tls::private_key_from_pem(&std::fs::read(key)?)?,
        ),
        _ => {
            let throwaway = ThrowawayCertificate::new();
            eprintln!(
                "a throwaway certificate; to trust it, start Chromium with \
                 --ignore-certificate-errors-spki-list={}",
                throwaway.spki_sha256
            );
            (throwaway.chain, throwaway.key)
        }
    };
    let (alpn, versions) = if options.no_h2 {
        (Alpn::Http11, "HTTP/1.1 only")
    } else {
        (Alpn::H2AndHttp11, "HTTP/2 and HTTP/1.1")
    };
    eprintln!("chat on https://{addr}/ ({versions})");
    serve_tls(listener, tls_config(chain, key, alpn)?, app).await?;
    Ok(())
}
