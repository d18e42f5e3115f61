//! Each incoming message goes whole to exactly one consumer, or is discarded: whatever the mix
//! of `recv`, `recv_stream` and dropped readers, and wherever a receive is cancelled.

mod support;

use std::time::Duration;

use tokio::io::AsyncReadExt;
use wsio::{Config, DataKind, Message, Role};

use support::{scripted, within, XorShift, OP_BINARY, OP_CONT, OP_PING, OP_TEXT};

#[tokio::test]
async fn a_cancelled_recv_then_a_dropped_reader_never_splice_two_messages() {
    let (mut ws, mut peer) = scripted(Role::Client, Config::default());
    // The first message starts, cut inside a code point: `recv` is cancelled while waiting.
    peer.send(false, OP_TEXT, b"ab\xC3").await;
    let waited = tokio::time::timeout(Duration::from_millis(50), ws.recv()).await;
    assert!(waited.is_err(), "the message is not complete yet");
    peer.send(true, OP_CONT, b"\xA9").await;
    peer.send(false, OP_TEXT, b"XY").await;

    // The stream API takes the next message: the one `recv` began, whole.
    let mut reader = within("recv_stream", ws.recv_stream())
        .await
        .expect("a message")
        .expect("no error");
    let mut two = [0u8; 2];
    within("read", reader.read_exact(&mut two)).await.unwrap();
    assert_eq!(&two, b"ab", "the reader has the message recv began");
    drop(reader); // the rest ("é" of it) is discarded

    peer.send(true, OP_CONT, b"Z").await;
    let message = within("recv", ws.recv()).await.expect("open").expect("ok");
    assert_eq!(message, Message::text("XYZ"), "the next message, whole");
}

#[tokio::test]
async fn a_reader_takes_over_the_message_a_cancelled_recv_began() {
    let (mut ws, mut peer) = scripted(Role::Server, Config::default());
    peer.send(false, OP_BINARY, b"first half, ").await;
    assert!(tokio::time::timeout(Duration::from_millis(50), ws.recv())
        .await
        .is_err());
    peer.send(true, OP_CONT, b"second half").await;
    let mut reader = within("recv_stream", ws.recv_stream())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reader.kind(), DataKind::Binary);
    let mut all = Vec::new();
    within("read", reader.read_to_end(&mut all)).await.unwrap();
    assert_eq!(all, b"first half, second half");
}

/// A random peer sends random messages, fragmented at random with pings between fragments;
/// the library receives them through a random mix of `recv` (sometimes cancelled), and
/// readers that read some or all of a message and are dropped. Every message handed out must
/// be one the peer sent, whole and in order; a text message must be valid UTF-8 (it is a
/// `&str`); a reader that reads to the end must see a whole message too.
#[tokio::test]
async fn random_mixes_of_the_apis_deliver_whole_messages_in_order() {
    for seed in 1..=40u64 {
        let mut rng = XorShift::new(seed);
        let role = if seed % 2 == 0 {
            Role::Client
        } else {
            Role::Server
        };
        let (mut ws, mut peer) = scripted(role, Config::default());
        let mut sent: Vec<(bool, Vec<u8>)> = Vec::new();
        for _ in 0..30 {
            let text = rng.one_in(2);
            let len = rng.below(40) as usize;
            let payload: Vec<u8> = if text {
                // Multi-byte characters, so that fragments cut code points.
                "aé€𝄞".repeat(len / 4 + 1).into_bytes()[..].to_vec()
            } else {
                rng.bytes(len)
            };
            sent.push((text, payload));
        }
        let script_messages = sent.clone();
        let script_seed = seed;
        let script = tokio::spawn(async move {
            let mut rng = XorShift::new(script_seed ^ 0xABCD);
            for (text, payload) in &script_messages {
                let mut at = 0;
                let mut first = true;
                while first || at < payload.len() {
                    let take = if rng.one_in(2) {
                        payload.len() - at
                    } else {
                        (rng.below(payload.len() as u64 - at as u64 + 1)) as usize
                    };
                    let fin = at + take == payload.len();
                    let opcode = match (first, text) {
                        (false, _) => OP_CONT,
                        (true, true) => OP_TEXT,
                        (true, false) => OP_BINARY,
                    };
                    peer.send(fin, opcode, &payload[at..at + take]).await;
                    at += take;
                    first = false;
                    if rng.one_in(4) {
                        peer.send(true, OP_PING, b"p").await;
                    }
                    if rng.one_in(3) {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
            }
            peer
        });
        // What the library hands out, matched against what was sent, in order.
        let mut next = 0;
        let find = |got: &[u8], text: bool, whole: bool, next: &mut usize| {
            let start = *next;
            while *next < sent.len() {
                let (t, payload) = &sent[*next];
                *next += 1;
                let matches = *t == text
                    && if whole {
                        payload[..] == *got
                    } else {
                        payload.starts_with(got)
                    };
                if matches {
                    return;
                }
            }
            panic!("seed {seed}: {got:?} (text {text}) is no message sent after #{start}");
        };
        let mut rng = XorShift::new(seed ^ 0x5EED);
        while next < sent.len() {
            match rng.below(3) {
                0 => {
                    let got = tokio::time::timeout(Duration::from_millis(2), ws.recv()).await;
                    match got {
                        Err(_) => {} // cancelled mid-message, perhaps
                        Ok(Some(Ok(Message::Text(t)))) => {
                            assert!(std::str::from_utf8(t.as_bytes()).is_ok(), "seed {seed}");
                            find(t.as_bytes(), true, true, &mut next)
                        }
                        Ok(Some(Ok(Message::Binary(b)))) => find(&b, false, true, &mut next),
                        Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => {}
                        Ok(other) => panic!("seed {seed}: {other:?}"),
                    }
                }
                mode => {
                    let got =
                        tokio::time::timeout(Duration::from_millis(2), ws.recv_stream()).await;
                    let Ok(reader) = got else { continue };
                    let mut reader = reader.expect("open").expect("ok");
                    let text = reader.kind() == DataKind::Text;
                    let mut bytes = Vec::new();
                    if mode == 1 {
                        within("read to end", reader.read_to_end(&mut bytes))
                            .await
                            .unwrap();
                        if text {
                            assert!(std::str::from_utf8(&bytes).is_ok(), "seed {seed}");
                        }
                        find(&bytes, text, true, &mut next);
                    } else {
                        let mut some = vec![0u8; rng.below(8) as usize];
                        let n = within("read some", reader.read(&mut some)).await.unwrap();
                        bytes.extend_from_slice(&some[..n]);
                        find(&bytes, text, false, &mut next);
                        // dropped here: the rest of the message is discarded
                    }
                }
            }
        }
        drop(within("script", script).await.unwrap());
    }
}
