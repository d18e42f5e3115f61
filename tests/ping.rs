//! `ping()` and its `Pong`: the round-trip time of a ping, over real loopback TCP.
//!
//! A `Pong` resolves when whoever receives from the connection sees the matching pong, so every
//! test keeps the pinging side receiving while it waits.

mod support;

use std::time::Duration;

use bytes::{Buf, BytesMut};
use futures::stream::{FuturesUnordered, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use wsio::error::UsageError;
use wsio::server::Acceptor;
use wsio::{CloseCode, Config, Error, ErrorKind, Message, Pong};

use support::stream::{tcp_pair, TcpWs};
use support::{frame, parse_frame, within, Frame, OP_CLOSE, OP_PING, OP_PONG};

/// Receives on `ws` until `pong` resolves; panics if a data message or the end comes first.
/// Returns the pong's result and the pong payloads `recv` handed out meanwhile.
async fn drive_until_pong(
    ws: &mut TcpWs,
    mut pong: Pong,
) -> (wsio::Result<Duration>, Vec<Vec<u8>>) {
    let mut seen = Vec::new();
    within("the pong", async {
        loop {
            tokio::select! {
                biased;
                rtt = &mut pong => return (rtt, seen),
                message = ws.recv() => match message {
                    Some(Ok(Message::Pong(payload))) => seen.push(payload.to_vec()),
                    other => panic!("unexpected while waiting for a pong: {other:?}"),
                },
            }
        }
    })
    .await
}

/// Receives on `ws` until it ends, answering pings; returns the data messages received.
async fn receive_all(ws: &mut TcpWs) -> Vec<Message> {
    let mut data = Vec::new();
    while let Some(message) = ws.recv().await {
        match message {
            Ok(m) if m.is_data() => data.push(m),
            Ok(_) => {}
            Err(e) => panic!("receiving side failed: {e}"),
        }
    }
    data
}

#[tokio::test]
async fn ping_resolves_with_the_round_trip_time_once_the_peer_answers() {
    const PEER_DELAY: Duration = Duration::from_millis(150);
    let (mut client, mut server) = tcp_pair(Config::default()).await;

    let before = Instant::now();
    let pong = within("ping", client.ping("rtt")).await.expect("ping sent");
    // The peer starts receiving (and so answering) only after a delay that begins once the
    // ping is out: the round trip includes it.
    let peer = tokio::spawn(async move {
        tokio::time::sleep(PEER_DELAY).await;
        receive_all(&mut server).await
    });
    let (rtt, seen) = drive_until_pong(&mut client, pong).await;
    let elapsed = before.elapsed();
    let rtt = rtt.expect("the pong arrived");

    assert!(
        rtt >= PEER_DELAY,
        "rtt {rtt:?} is shorter than the peer's delay"
    );
    assert!(
        rtt <= elapsed,
        "rtt {rtt:?} is longer than the wait {elapsed:?}"
    );
    // `recv` returned the pong itself to the application too.
    assert_eq!(seen, [b"rtt".to_vec()]);

    within("close", client.close(1000, "")).await.unwrap();
    assert!(within("peer", peer).await.unwrap().is_empty());
}

#[tokio::test]
async fn pong_is_resolved_by_the_recv_that_returns_the_pong_message() {
    let (mut client, mut server) = tcp_pair(Config::default()).await;
    let peer = tokio::spawn(async move { receive_all(&mut server).await });

    let mut pong = within("ping", client.ping("x")).await.unwrap();
    let message = within("recv", client.recv()).await.unwrap().unwrap();
    assert_eq!(message, Message::Pong("x".into()));
    let rtt = futures::FutureExt::now_or_never(&mut pong)
        .expect("the pong was resolved when its frame was received")
        .unwrap();
    assert!(
        rtt > Duration::ZERO && rtt < Duration::from_secs(3),
        "{rtt:?}"
    );

    within("close", client.close(1000, "")).await.unwrap();
    within("peer", peer).await.unwrap();
}

#[tokio::test]
async fn several_pings_in_flight_resolve_in_the_order_they_were_sent() {
    let (mut client, mut server) = tcp_pair(Config::default()).await;
    let peer = tokio::spawn(async move { receive_all(&mut server).await });

    let mut pending = FuturesUnordered::new();
    for i in 0..5u8 {
        let pong = within("ping", client.ping(vec![b'0' + i])).await.unwrap();
        pending.push(async move { (i, pong.await) });
    }
    let mut resolved = Vec::new();
    let mut pongs_seen = Vec::new();
    within("all pongs", async {
        while resolved.len() < 5 {
            tokio::select! {
                biased;
                Some((i, rtt)) = pending.next() => {
                    rtt.unwrap_or_else(|e| panic!("ping {i} failed: {e}"));
                    resolved.push(i);
                }
                message = client.recv() => match message {
                    Some(Ok(Message::Pong(payload))) => pongs_seen.push(payload.to_vec()),
                    other => panic!("unexpected: {other:?}"),
                },
            }
        }
    })
    .await;
    assert_eq!(resolved, [0, 1, 2, 3, 4]);
    // Each pong reached the application too, in order.
    let expected: Vec<Vec<u8>> = (0..5u8).map(|i| vec![b'0' + i]).collect();
    assert_eq!(pongs_seen, expected);

    within("close", client.close(1000, "")).await.unwrap();
    within("peer", peer).await.unwrap();
}

#[tokio::test]
async fn write_half_ping_is_resolved_by_the_read_half_in_another_task() {
    let (client, mut server) = tcp_pair(Config::default()).await;
    let peer = tokio::spawn(async move { receive_all(&mut server).await });
    let (mut read, mut write) = client.into_split();
    let reader = tokio::spawn(async move {
        let mut pongs = 0;
        while let Some(message) = read.recv().await {
            if let Message::Pong(_) = message.expect("read half") {
                pongs += 1;
            }
        }
        pongs
    });

    let before = Instant::now();
    let pong = within("ping", write.ping("from the write half"))
        .await
        .unwrap();
    let rtt = within("pong via the read half", pong)
        .await
        .expect("the read half saw the pong");
    assert!(rtt <= before.elapsed(), "{rtt:?}");

    within("close", write.close(1000, "")).await.unwrap();
    assert_eq!(within("reader", reader).await.unwrap(), 1);
    within("peer", peer).await.unwrap();
}

#[tokio::test]
async fn ping_payload_over_125_bytes_is_a_usage_error_and_sends_nothing() {
    let (mut client, mut server) = tcp_pair(Config::default()).await;

    let err = within("ping", client.ping(vec![7u8; 126]))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Usage);
    assert!(
        matches!(err, Error::Usage(UsageError::ControlPayloadTooLong(126))),
        "{err:?}"
    );
    // Nothing went out: the first thing the peer sees is the next message; 125 bytes is fine.
    within("text", client.send_text("after")).await.unwrap();
    let pong = within("ping", client.ping(vec![7u8; 125])).await.unwrap();
    assert_eq!(
        within("peer", server.recv()).await.unwrap().unwrap(),
        Message::text("after")
    );
    assert_eq!(
        within("peer", server.recv()).await.unwrap().unwrap(),
        Message::Ping(vec![7u8; 125].into())
    );
    let (rtt, _) = drive_until_pong(&mut client, pong).await;
    rtt.expect("the 125-byte ping was answered");
}

#[tokio::test]
async fn ping_on_a_closed_connection_is_a_closed_error() {
    let (mut client, mut server) = tcp_pair(Config::default()).await;
    let peer = tokio::spawn(async move { receive_all(&mut server).await });
    within("close", client.close(1000, "")).await.unwrap();
    let err = within("ping", client.ping("late")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Closed, "{err:?}");
    within("peer", peer).await.unwrap();
}

/// A client that speaks WebSocket by hand over TCP, to a library server.
struct RawClient {
    tcp: TcpStream,
    buf: BytesMut,
}

impl RawClient {
    async fn send(&mut self, opcode: u8, payload: &[u8]) {
        let bytes = frame(true, 0, opcode, Some([0x11, 0x22, 0x33, 0x44]), payload);
        within("raw write", self.tcp.write_all(&bytes))
            .await
            .expect("raw write");
    }

    async fn read_frame(&mut self) -> Frame {
        within("raw read", async {
            loop {
                if let Some((frame, n)) = parse_frame(&self.buf) {
                    self.buf.advance(n);
                    assert!(!frame.masked, "a server must not mask: {frame:?}");
                    return frame;
                }
                let n = self.tcp.read_buf(&mut self.buf).await.expect("raw read");
                assert!(n > 0, "the library closed the connection");
            }
        })
        .await
    }
}

/// A library server and a raw client, after an opening handshake written by hand.
async fn raw_client_and_server() -> (RawClient, TcpWs) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = async {
        let (tcp, _) = listener.accept().await.unwrap();
        Acceptor::new()
            .accept(tcp)
            .await
            .expect("server handshake")
            .0
    };
    let client = async {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(
            b"GET /raw HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\
              Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
              Sec-WebSocket-Version: 13\r\n\r\n",
        )
        .await
        .unwrap();
        let mut buf = BytesMut::new();
        let end = loop {
            if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            assert!(tcp.read_buf(&mut buf).await.unwrap() > 0, "no response");
        };
        let head = String::from_utf8(buf.split_to(end).to_vec()).unwrap();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        // RFC 6455 §1.3: the accept value for the sample key.
        assert!(head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{head}");
        RawClient { tcp, buf }
    };
    within("raw handshake", async { tokio::join!(client, server) }).await
}

#[tokio::test]
async fn pong_answering_only_the_latest_ping_resolves_the_earlier_ones_too() {
    let (mut peer, mut ws) = raw_client_and_server().await;
    let mut pongs = Vec::new();
    for payload in ["a", "b", "c"] {
        pongs.push(within("ping", ws.ping(payload)).await.unwrap());
    }
    for payload in ["a", "b", "c"] {
        let f = peer.read_frame().await;
        assert_eq!(
            (f.opcode, f.payload.as_slice()),
            (OP_PING, payload.as_bytes())
        );
    }

    // A pong nobody asked for resolves nothing.
    peer.send(OP_PONG, b"unsolicited").await;
    assert_eq!(
        within("recv", ws.recv()).await.unwrap().unwrap(),
        Message::Pong("unsolicited".into())
    );
    for pong in &mut pongs {
        assert!(
            futures::FutureExt::now_or_never(pong).is_none(),
            "an unmatched pong resolved a ping"
        );
    }

    // The peer answers only the latest ping (RFC 6455 §5.5.3 allows it).
    peer.send(OP_PONG, b"c").await;
    assert_eq!(
        within("recv", ws.recv()).await.unwrap().unwrap(),
        Message::Pong("c".into())
    );
    let mut rtts = Vec::new();
    for pong in pongs {
        let rtt = futures::FutureExt::now_or_never(pong)
            .expect("resolved by the later pong")
            .expect("not an error");
        rtts.push(rtt);
    }
    // All resolved at the same instant, so an earlier ping has the longer round trip.
    assert!(rtts[0] >= rtts[1] && rtts[1] >= rtts[2], "{rtts:?}");
}

#[tokio::test]
async fn pong_fails_with_closed_when_the_connection_ends_before_the_answer() {
    let (mut peer, mut ws) = raw_client_and_server().await;
    let pong = within("ping", ws.ping("never answered")).await.unwrap();
    assert_eq!(peer.read_frame().await.opcode, OP_PING);

    // The peer closes instead of answering.
    peer.send(OP_CLOSE, &support::close_payload(1000, b""))
        .await;
    assert!(matches!(
        within("recv", ws.recv()).await.unwrap().unwrap(),
        Message::Close(_)
    ));
    assert!(within("end", ws.recv()).await.is_none());
    assert_eq!(peer.read_frame().await.opcode, OP_CLOSE);

    // The WebSocket is still alive, but no pong can arrive any more.
    let err = within("the pong of an ended connection", pong)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Closed, "{err:?}");
}

#[tokio::test]
async fn pong_fails_with_closed_when_the_websocket_is_dropped() {
    let (mut peer, mut ws) = raw_client_and_server().await;
    let pong = within("ping", ws.ping("dropped")).await.unwrap();
    drop(ws);
    let err = within("pong", pong).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Closed, "{err:?}");
    assert_eq!(peer.read_frame().await.opcode, OP_PING);
}

#[tokio::test]
async fn write_half_ping_payload_over_125_bytes_is_a_usage_error() {
    let (client, _server) = tcp_pair(Config::default()).await;
    let (_read, mut write) = client.into_split();
    let err = within("write half ping", write.ping(vec![7u8; 126]))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Usage);
    assert!(
        matches!(err, Error::Usage(UsageError::ControlPayloadTooLong(126))),
        "{err:?}"
    );
}

#[tokio::test]
async fn pong_fails_with_closed_when_the_peer_vanishes_without_a_close() {
    let (mut peer, mut ws) = raw_client_and_server().await;
    let pong = within("ping", ws.ping("lost")).await.unwrap();
    assert_eq!(peer.read_frame().await.opcode, OP_PING);
    drop(peer);

    let err = within("recv", ws.recv()).await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io, "{err:?}");
    let err = within("pong", pong).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Closed, "{err:?}");
}

#[tokio::test]
async fn ping_waits_for_room_when_the_write_buffer_is_full_and_its_pong_resolves() {
    // A tiny transport: a 4 MiB message fills everything between the two ends.
    let (mut client, mut server) = support::pair_with_capacity(Config::default(), 1024);
    let big = vec![7u8; 4 << 20];
    let cancelled = tokio::time::timeout(
        Duration::from_millis(100),
        server.send(Message::binary(big.clone())),
    )
    .await;
    assert!(
        cancelled.is_err(),
        "the send cannot finish while nobody reads"
    );
    // The peer starts reading only now, while the ping waits for room.
    let reader = tokio::spawn(async move {
        let mut messages = Vec::new();
        while let Some(message) = client.recv().await {
            let message = message.expect("the client receives cleanly");
            let done = matches!(message, Message::Close(_));
            messages.push(message);
            if done {
                break;
            }
        }
        messages
    });
    let pong = within("ping with a full buffer", server.ping("abc"))
        .await
        .expect("the ping is sent once there is room");
    let rtt = within("the pong", async {
        tokio::pin!(pong);
        loop {
            tokio::select! {
                rtt = &mut pong => break rtt,
                message = server.recv() => {
                    let message = message.expect("open").expect("no error");
                    assert!(matches!(message, Message::Pong(ref p) if p == "abc"), "{message:?}");
                }
            }
        }
    })
    .await;
    assert!(rtt.is_ok(), "the pong resolves: {rtt:?}");
    within("close", server.close(CloseCode::NORMAL, ""))
        .await
        .unwrap();
    let messages = within("reader", reader).await.unwrap();
    assert_eq!(
        messages.len(),
        3,
        "{:?}",
        messages.iter().map(Message::len).collect::<Vec<_>>()
    );
    assert_eq!(
        messages[0],
        Message::binary(big),
        "the cancelled send went out whole"
    );
    assert_eq!(messages[1], Message::Ping("abc".into()));
}
