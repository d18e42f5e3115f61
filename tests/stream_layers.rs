//! Real protocols layered over `ByteStream`, itself over WebSockets on loopback TCP: a TLS
//! session, HTTP/1.1 with hyper, and a length-delimited codec. Every payload is checked byte for
//! byte.

mod support;

use std::convert::Infallible;
#[cfg(feature = "tls")]
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use support::stream::*;
use support::*;
#[cfg(feature = "tls")]
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};
#[cfg(feature = "tls")]
use wsio::tls::{rustls, tokio_rustls, CertificateDer, PrivateKeyDer, ServerName};
use wsio::{ByteStream, Config};

/// Generous for a debug build on two cores; each test moves a few MiB at most.
const LIMIT: Duration = Duration::from_secs(8);

/// Frames smaller than most payloads, so that each crosses several WebSocket messages.
fn config() -> Config {
    Config::default().stream_fragment_size(24 * 1024)
}

/// A certificate for `localhost` made on the spot, and TLS configs (wsio's, with the crate's
/// provider) trusting only it.
#[cfg(feature = "tls")]
fn tls_configs() -> (Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert: CertificateDer<'static> = certified.cert.der().clone();
    let key = PrivateKeyDer::from(rustls::pki_types::PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let server = wsio::tls::server_config(vec![cert.clone()], key).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let client = wsio::tls::client_config(roots).unwrap();
    (server, client)
}

/// `count` payloads of random sizes up to `max` (some empty), from `seed`.
fn payloads(seed: u64, count: usize, max: usize) -> Vec<Vec<u8>> {
    let mut rng = XorShift::new(seed);
    (0..count)
        .map(|i| {
            let len = if rng.one_in(6) {
                0
            } else {
                rng.below(max as u64 + 1) as usize
            };
            pattern(seed * 1000 + i as u64, len)
        })
        .collect()
}

#[cfg(feature = "tls")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_session_inside_a_byte_stream_echoes_random_payloads() {
    let (server_tls, client_tls) = tls_configs();
    let (client, server) = tcp_pair(config()).await;
    let sent = payloads(11, 16, 200_000).concat();
    let total = sent.len();

    let server = tokio::spawn(async move {
        let acceptor = tokio_rustls::TlsAcceptor::from(server_tls);
        let mut tls = acceptor
            .accept(ByteStream::new(server))
            .await
            .expect("TLS accept");
        // Echo exactly what the client sends, in pieces of random sizes.
        let mut rng = XorShift::new(12);
        let mut buf = vec![0u8; 128 * 1024];
        let mut echoed = 0;
        while echoed < total {
            let len = chunk_len(&mut rng, buf.len());
            let n = tls.read(&mut buf[..len]).await.expect("server read");
            assert!(n > 0, "EOF after {echoed} of {total} bytes");
            tls.write_all(&buf[..n]).await.expect("server write");
            tls.flush().await.expect("server flush");
            echoed += n;
        }
        // TLS close_notify, then the WebSocket closing handshake.
        tls.shutdown().await.expect("server shutdown");
        let (mut stream, _) = tls.into_inner();
        // The client answers the close: EOF.
        let n = stream.read(&mut buf).await.expect("read after shutdown");
        assert_eq!(n, 0, "nothing may follow the client's close_notify");
        echoed
    });

    let connector = tokio_rustls::TlsConnector::from(client_tls);
    let name = ServerName::try_from("localhost").unwrap();
    let client = async {
        let tls = connector
            .connect(name, ByteStream::new(client))
            .await
            .expect("TLS connect");
        let (mut rx, mut tx) = tokio::io::split(tls);
        let write = async {
            let mut rng = XorShift::new(13);
            write_chunked(&mut tx, &sent, &mut rng, 64 * 1024, 5)
                .await
                .expect("client write");
            tx.flush().await.expect("client flush");
        };
        let read = async {
            let mut rng = XorShift::new(14);
            // Reads until the server's close_notify: the whole echo, then a clean EOF.
            read_chunked(&mut rx, &mut rng, 64 * 1024)
                .await
                .expect("client read")
        };
        let ((), echoed) = tokio::join!(write, read);
        let (mut stream, _) = rx.unsplit(tx).into_inner();
        // Under TLS, the server's WebSocket close reads as EOF; shutting down answers it.
        assert_eq!(stream.read(&mut [0u8; 16]).await.unwrap(), 0);
        stream.shutdown().await.expect("client shutdown");
        assert_eq!(stream.close_code(), Some(wsio::CloseCode::NORMAL));
        echoed
    };
    let echoed = within_for(LIMIT, "TLS echo", client).await;
    assert_same_bytes(&echoed, &sent, "the echo through TLS");
    let server_echoed = within_for(LIMIT, "TLS server", server).await.unwrap();
    assert_eq!(server_echoed, total);
}

/// The test's HTTP service: answers each request with its body reversed, and the request's path
/// and body length in headers.
async fn reverse(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path().to_owned();
    let mut body = request
        .into_body()
        .collect()
        .await
        .expect("request body")
        .to_bytes()
        .to_vec();
    let len = body.len();
    body.reverse();
    Ok(Response::builder()
        .header("x-path", path)
        .header("x-request-length", len)
        .body(Full::new(Bytes::from(body)))
        .unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_requests_and_responses_with_hyper_over_a_byte_stream() {
    let (client, server) = tcp_pair(config()).await;
    let server = tokio::spawn(async move {
        hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(ByteStream::new(server)), service_fn(reverse))
            .await
    });
    let (mut sender, connection) = within(
        "HTTP handshake",
        hyper::client::conn::http1::handshake(TokioIo::new(ByteStream::new(client))),
    )
    .await
    .expect("HTTP handshake");
    let connection = tokio::spawn(connection);

    let bodies = payloads(21, 10, 400_000);
    within_for(LIMIT, "HTTP requests", async {
        for (i, body) in bodies.iter().enumerate() {
            let request = Request::post(format!("/item/{i}"))
                .header("host", "localhost")
                .body(Full::new(Bytes::from(body.clone())))
                .unwrap();
            sender
                .ready()
                .await
                .expect("connection ready for a request");
            let response = sender
                .send_request(request)
                .await
                .unwrap_or_else(|e| panic!("response {i}: {e:?}"));
            assert_eq!(response.status(), 200);
            assert_eq!(response.headers()["x-path"], format!("/item/{i}").as_str());
            assert_eq!(
                response.headers()["x-request-length"],
                body.len().to_string().as_str()
            );
            let got = response.into_body().collect().await.unwrap().to_bytes();
            let mut want = body.clone();
            want.reverse();
            assert_same_bytes(&got, &want, &format!("response {i}"));
        }
    })
    .await;
    // Dropping the sender ends the client's connection, which shuts the byte stream down:
    // the WebSocket closing handshake, read by the server as EOF.
    drop(sender);
    within("client connection", connection)
        .await
        .unwrap()
        .expect("client connection");
    within("server connection", server)
        .await
        .unwrap()
        .expect("the server sees a clean end");
}

/// Sends `FRAMES` frames made from `seed` while reading the `FRAMES` frames the other side makes
/// from `peer_seed`; then closes and expects EOF.
async fn framed_side(stream: ByteStream<tokio::net::TcpStream>, seed: u64, peer_seed: u64) {
    const FRAMES: usize = 40;
    let (rx, tx) = stream.into_split();
    let mut sink = FramedWrite::new(tx, LengthDelimitedCodec::new());
    let mut source = FramedRead::new(rx, LengthDelimitedCodec::new());
    let send = async {
        let mut rng = XorShift::new(seed);
        for frame in payloads(seed, FRAMES, 150_000) {
            // Sometimes queue without flushing: the codec and the stream batch them.
            if rng.one_in(3) {
                sink.feed(Bytes::from(frame)).await.expect("feed");
            } else {
                sink.send(Bytes::from(frame)).await.expect("send");
            }
        }
        SinkExt::<Bytes>::flush(&mut sink).await.expect("flush");
    };
    let receive = async {
        for (i, want) in payloads(peer_seed, FRAMES, 150_000).iter().enumerate() {
            let got = source
                .next()
                .await
                .unwrap_or_else(|| panic!("EOF before frame {i}"))
                .expect("frame");
            assert_same_bytes(&got, want, &format!("frame {i} from seed {peer_seed}"));
        }
    };
    tokio::join!(send, receive);
    // Both directions are done (WebSocket has no half-close): close, and the peer's close reads
    // as EOF.
    SinkExt::<Bytes>::close(&mut sink).await.expect("close");
    assert!(
        source.next().await.is_none(),
        "nothing may follow the frames"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn length_delimited_frames_flow_both_ways_at_once_over_split_byte_streams() {
    let (client, server) = tcp_pair(config()).await;
    let a = tokio::spawn(framed_side(ByteStream::new(client), 31, 32));
    let b = tokio::spawn(framed_side(ByteStream::new(server), 32, 31));
    within_for(LIMIT, "frames both ways", async {
        a.await.expect("client side");
        b.await.expect("server side");
    })
    .await;
}
