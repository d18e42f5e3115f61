//! The `ws://`-only build (`--no-default-features`): `ws://` works end to end, while a
//! `wss://` URL, an `https://` proxy and a redirect to `wss://` fail with
//! `TlsError::NotCompiled` before any byte reaches the server or the proxy.

#![cfg(not(feature = "tls"))]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use http::header::LOCATION;
use http::{HeaderValue, StatusCode};
use tokio::net::TcpListener;
use wsio::client::Proxy;
use wsio::error::TlsError;
use wsio::server::{Acceptor, Reject};
use wsio::{ClientBuilder, Error, ErrorKind, Message};

/// A listener that counts the connections it accepts and closes them at once.
async fn counting_listener() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            drop(tcp);
        }
    });
    (port, accepted)
}

fn assert_not_compiled(e: &Error) {
    assert!(
        matches!(e, Error::Tls(tls) if **tls == TlsError::NotCompiled),
        "{e:?}"
    );
    assert_eq!(e.kind(), ErrorKind::Tls);
    let text = e.to_string();
    assert!(text.contains("`ring` or `aws-lc-rs`"), "{text}");
}

#[tokio::test]
async fn ws_echoes_without_any_tls_crate() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let (mut ws, _) = Acceptor::new().accept(tcp).await.unwrap();
        while let Some(Ok(message)) = ws.recv().await {
            ws.send(message).await.unwrap();
        }
    });
    let (mut ws, _) = ClientBuilder::new()
        .connect(format!("ws://{addr}/"))
        .await
        .unwrap();
    assert!(!ws.get_ref().is_tls());
    ws.send(Message::text("plain")).await.unwrap();
    assert_eq!(ws.recv().await.unwrap().unwrap(), Message::text("plain"));
}

#[tokio::test]
async fn wss_fails_before_connecting() {
    let (port, accepted) = counting_listener().await;
    let e = ClientBuilder::new()
        .connect(format!("wss://127.0.0.1:{port}/"))
        .await
        .unwrap_err();
    assert_not_compiled(&e);
    assert_eq!(accepted.load(Ordering::SeqCst), 0, "nothing was dialed");
}

#[tokio::test]
async fn an_https_proxy_fails_before_connecting_to_it() {
    let (proxy_port, to_proxy) = counting_listener().await;
    let (server_port, to_server) = counting_listener().await;
    let proxy = Proxy::new(&format!("https://127.0.0.1:{proxy_port}")).unwrap();
    let e = ClientBuilder::new()
        .proxy(proxy)
        .connect(format!("ws://127.0.0.1:{server_port}/"))
        .await
        .unwrap_err();
    assert_not_compiled(&e);
    assert_eq!(
        to_proxy.load(Ordering::SeqCst),
        0,
        "the proxy was not dialed"
    );
    assert_eq!(to_server.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_redirect_to_wss_fails_before_following_it() {
    let (tls_port, accepted) = counting_listener().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let location = format!("wss://127.0.0.1:{tls_port}/elsewhere");
    tokio::spawn(async move {
        let acceptor = Acceptor::new().on_request(move |_| {
            Err(Reject::new(StatusCode::MOVED_PERMANENTLY)
                .header(LOCATION, HeaderValue::from_str(&location).unwrap()))
        });
        while let Ok((tcp, _)) = listener.accept().await {
            let _ = acceptor.accept(tcp).await;
        }
    });
    let e = ClientBuilder::new()
        .max_redirects(1)
        .connect(format!("ws://{addr}/"))
        .await
        .unwrap_err();
    assert_not_compiled(&e);
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        0,
        "the redirect was not dialed"
    );
}
