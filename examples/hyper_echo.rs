//! A WebSocket echo server on hyper alone (no axum), through `wsio::upgrade`: HTTP/1.1
//! upgrades and, on the same port, HTTP/2 with prior knowledge (h2c) with RFC 8441's extended
//! CONNECT, so that several WebSockets can share one HTTP/2 connection. Every text and binary
//! message is echoed; any other request gets a short text answer.
//!
//! ```text
//! cargo run --features hyper --example hyper_echo -- 127.0.0.1:9008
//! ```

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use wsio::upgrade::{is_upgrade_request, upgrade, UpgradedIo};
use wsio::{Acceptor, WebSocket};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9008".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!(
        "echo server on ws://{} (HTTP/1.1 and h2c)",
        listener.local_addr()?
    );
    // One builder for every connection: HTTP/1.1 or HTTP/2, told apart by the first bytes.
    let mut http = auto::Builder::new(TokioExecutor::new());
    // SETTINGS_ENABLE_CONNECT_PROTOCOL: lets HTTP/2 clients send extended CONNECTs.
    http.http2().enable_connect_protocol();
    let acceptor = Acceptor::new();
    loop {
        let (tcp, peer) = listener.accept().await?;
        tcp.set_nodelay(true)?;
        let (http, acceptor) = (http.clone(), acceptor.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let acceptor = acceptor.clone();
                async move { Ok::<_, Infallible>(answer(request, &acceptor).await) }
            });
            // `with_upgrades`: an HTTP/1.1 connection is handed over once its 101 is sent.
            if let Err(e) = http
                .serve_connection_with_upgrades(TokioIo::new(tcp), service)
                .await
            {
                eprintln!("{peer}: {e}");
            }
        });
    }
}

/// The response to one request; a WebSocket it accepts runs in a task of its own.
async fn answer(mut request: Request<Incoming>, acceptor: &Acceptor) -> Response<Full<Bytes>> {
    if !is_upgrade_request(&request) {
        return Response::new(Full::new(Bytes::from_static(
            b"a WebSocket echo server: connect with ws://\n",
        )));
    }
    let version = request.version();
    match upgrade(&mut request, acceptor).await {
        Ok((response, websocket)) => {
            tokio::spawn(async move {
                match websocket.await {
                    Ok(ws) => echo(ws, version).await,
                    Err(e) => eprintln!("the upgrade failed: {e}"),
                }
            });
            response
        }
        Err(refusal) => {
            eprintln!("refused: {}", refusal.error());
            refusal.into_response()
        }
    }
}

async fn echo(mut ws: WebSocket<UpgradedIo>, version: http::Version) {
    eprintln!("a WebSocket over {version:?}");
    while let Some(message) = ws.recv().await {
        match message {
            Ok(message) if message.is_data() => {
                if let Err(e) = ws.send(message).await {
                    eprintln!("send: {e}");
                    return;
                }
            }
            Ok(_) => {}
            Err(e) => {
                eprintln!("recv: {e}");
                return;
            }
        }
    }
    eprintln!("closed ({:?})", ws.close_code());
}
