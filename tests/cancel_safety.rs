//! Dropping `recv`, `send` and `close` futures part-way must lose nothing and corrupt nothing:
//! a message is received whole exactly once, and sent whole or not at all.

mod support;

use std::time::Duration;

use futures::FutureExt;
use support::*;
use wsio::{CloseCode, CloseFrame, Config, Message, Role};

/// The wire for: a fragmented text message with a ping between its fragments, then a binary
/// message; and the messages `recv` should yield for it.
fn big_traffic(peer: &mut Peer) -> (Vec<u8>, Vec<Message>) {
    // Multi-byte characters guarantee that chunk boundaries fall inside code points.
    let text: String = "κόσμε €𝄞 ".repeat(8_000);
    let bytes = text.as_bytes();
    let (a, b) = bytes.split_at(bytes.len() / 2 + 1);
    let binary = pattern(7, 150_000);
    let mut wire = Vec::new();
    wire.extend(frame(false, 0, OP_TEXT, peer.key(), a));
    wire.extend(frame(true, 0, OP_PING, peer.key(), b"mid-message"));
    wire.extend(frame(true, 0, OP_CONT, peer.key(), b));
    wire.extend(frame(true, 0, OP_BINARY, peer.key(), &binary));
    let want = vec![
        Message::Ping("mid-message".into()),
        Message::text(text),
        Message::binary(binary),
    ];
    (wire, want)
}

#[tokio::test]
async fn recv_dropped_after_every_chunk_loses_nothing() {
    for role in [Role::Client, Role::Server] {
        let (mut ws, mut peer) = scripted(role, Config::default());
        let (wire, want) = big_traffic(&mut peer);
        let mut got = Vec::new();
        let mut dropped = 0;
        for chunk in wire.chunks(997) {
            peer.write(chunk).await;
            // Poll once, then drop the future: it has read the chunk and is waiting for more.
            match ws.recv().now_or_never() {
                None => dropped += 1,
                Some(item) => got.push(item.expect("stream ended").expect("recv")),
            }
        }
        while got.len() < want.len() {
            got.push(within("recv", ws.recv()).await.unwrap().unwrap());
        }
        assert!(dropped > 250, "only {dropped} recv futures were dropped");
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            assert!(g == w, "a message of {} bytes changed", w.len());
        }
        peer.expect_frame(OP_PONG, b"mid-message").await;
        peer.expect_silence().await;
    }
}

#[tokio::test]
async fn recv_raced_against_timeouts_while_the_peer_writes_slowly_loses_nothing() {
    for role in [Role::Client, Role::Server] {
        let (mut ws, mut peer) = scripted(role, Config::default());
        let (wire, want) = big_traffic(&mut peer);
        let writer = tokio::spawn(async move {
            for (i, chunk) in wire.chunks(1500).enumerate() {
                peer.write(chunk).await;
                if i % 4 == 0 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                } else {
                    tokio::task::yield_now().await;
                }
            }
            peer
        });
        let mut got = Vec::new();
        let mut timeouts = 0;
        within("receiving under timeouts", async {
            while got.len() < want.len() {
                match tokio::time::timeout(Duration::from_micros(300), ws.recv()).await {
                    Err(_) => timeouts += 1,
                    Ok(item) => got.push(item.expect("stream ended").expect("recv")),
                }
            }
        })
        .await;
        assert!(timeouts > 10, "only {timeouts} recv futures timed out");
        for (g, w) in got.iter().zip(&want) {
            assert!(g == w, "a message of {} bytes changed", w.len());
        }
        let mut peer = within("writer", writer).await.unwrap();
        peer.expect_frame(OP_PONG, b"mid-message").await;
    }
}

/// Binary message number `id`, `len` bytes: the id, then bytes derived from it.
fn numbered(id: u32, len: usize) -> Message {
    let mut payload = id.to_be_bytes().to_vec();
    payload.extend(pattern(u64::from(id), len - 4));
    Message::binary(payload)
}

/// Checks a received numbered message and returns its id.
fn check_numbered(message: &Message) -> u32 {
    let Message::Binary(payload) = message else {
        panic!("unexpected {message:?}");
    };
    let id = u32::from_be_bytes(payload[..4].try_into().unwrap());
    let want = numbered(id, payload.len());
    assert!(
        want.as_payload() == &payload[..],
        "message {id} arrived corrupted"
    );
    id
}

#[tokio::test]
async fn send_dropped_mid_write_sends_whole_messages_or_none() {
    for sender_role in [Role::Client, Role::Server] {
        let (client, server) =
            pair_with_capacity(Config::default().write_buffer_size(64 * 1024), 4096);
        let (mut tx, mut rx) = match sender_role {
            Role::Client => (client, server),
            Role::Server => (server, client),
        };
        // The receiver reads slowly: a pause after every message.
        let receiver = tokio::spawn(async move {
            let mut ids = Vec::new();
            loop {
                match rx.recv().await {
                    Some(Ok(Message::Text(t))) if t == "end" => return (ids, rx),
                    Some(Ok(m)) => ids.push(check_numbered(&m)),
                    other => panic!("receiver got {other:?}"),
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        });

        let mut rng = XorShift::new(99);
        let mut cancelled = Vec::new();
        for id in 0..40u32 {
            let len = 4 + rng.below(300_000) as usize;
            let send = tx.send(numbered(id, len));
            let done = if id % 3 == 0 {
                send.now_or_never().is_some()
            } else {
                let limit = Duration::from_micros(200 + rng.below(3000));
                tokio::time::timeout(limit, send).await.is_ok()
            };
            if !done {
                cancelled.push(id);
            }
        }
        // The connection still works: everything queued goes out, then one more message.
        within("send end", tx.send(Message::text("end")))
            .await
            .unwrap();
        let (ids, mut rx) = within("receiver", receiver).await.unwrap();

        assert!(
            cancelled.len() > 10,
            "only {} sends cancelled",
            cancelled.len()
        );
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "out of order or repeated: {ids:?}"
        );
        assert_eq!(ids.len() as u64 + 1, tx.stats().messages_sent);
        // Messages whose send was dropped after queueing were still delivered whole.
        assert!(
            cancelled.iter().any(|id| ids.contains(id)),
            "no cancelled send was mid-write: {cancelled:?} vs {ids:?}"
        );

        // And it keeps working both ways.
        let (sent, got) = within(
            "after cancellations",
            futures::future::join(tx.send(Message::text("still here")), rx.recv()),
        )
        .await;
        sent.unwrap();
        assert_eq!(got.unwrap().unwrap(), Message::text("still here"));
        let (sent, got) = within(
            "reverse direction",
            futures::future::join(rx.send(Message::text("me too")), tx.recv()),
        )
        .await;
        sent.unwrap();
        assert_eq!(got.unwrap().unwrap(), Message::text("me too"));
    }
}

#[tokio::test]
async fn close_dropped_before_the_reply_resumes_on_the_next_call() {
    let (mut client, mut server) = pair(Config::default());
    // The server is not polled yet, so the close cannot complete.
    assert!(
        tokio::time::timeout(Duration::from_millis(20), client.close(1000, "later"))
            .await
            .is_err()
    );
    let seen = within("server recv", server.recv()).await.unwrap().unwrap();
    assert_eq!(
        seen,
        Message::Close(Some(CloseFrame::new(CloseCode::NORMAL, "later")))
    );
    let (closed, end) = within(
        "finish closing",
        futures::future::join(client.close(1000, "later"), server.recv()),
    )
    .await;
    closed.expect("the resumed close completes");
    assert!(end.is_none());
}
