//! One message as a byte stream: `MessageWriter` on one side, `MessageReader` on the other, over
//! real loopback TCP; plus the protocol rules that hold underneath (pings, closes, limits) checked
//! against a scripted peer.

mod support;

use std::io;
use std::time::Duration;

use support::stream::*;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wsio::{Config, DataKind, ErrorKind, Message, Role};

/// Bytes per frame in most tests: not a power of two, so nothing lines up by accident.
const FRAGMENT: usize = 20_000;

fn config(fragment: usize) -> Config {
    Config::default().stream_fragment_size(fragment)
}

/// Message sizes around the fragment size, and one of several MiB.
fn sizes(fragment: usize) -> Vec<usize> {
    vec![
        0,
        1,
        fragment - 1,
        fragment,
        fragment + 1,
        2 * fragment + 3,
        100_003,
        (5 << 20) + 17,
    ]
}

/// The `io::Error` carries a `wsio::Error`; returns its kind.
fn wsio_kind(e: &io::Error) -> ErrorKind {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<wsio::Error>())
        .unwrap_or_else(|| panic!("no wsio::Error inside {e:?}"))
        .kind()
}

/// Streams one message of each size from `from` to `to`, with writes, flushes and reads cut at
/// random sizes, and checks every byte and every message boundary.
async fn stream_each_size(mut from: TcpWs, mut to: TcpWs, fragment: usize, seed: u64) {
    let payloads: Vec<Vec<u8>> = sizes(fragment)
        .into_iter()
        .enumerate()
        .map(|(i, n)| pattern(seed + i as u64, n))
        .collect();
    let send = async {
        let mut rng = XorShift::new(seed);
        for payload in &payloads {
            let mut writer = from.send_stream(DataKind::Binary);
            write_chunked(&mut writer, payload, &mut rng, 3 * fragment, 11)
                .await
                .expect("write");
            writer.shutdown().await.expect("shutdown ends the message");
        }
    };
    let receive = async {
        let mut rng = XorShift::new(seed ^ 0x5EED);
        for (i, payload) in payloads.iter().enumerate() {
            let mut reader = to
                .recv_stream()
                .await
                .expect("the connection ended early")
                .expect("recv_stream");
            assert_eq!(reader.kind(), DataKind::Binary);
            let got = read_chunked(&mut reader, &mut rng, 256 * 1024)
                .await
                .expect("read");
            assert!(reader.is_finished());
            assert_same_bytes(&got, payload, &format!("message {i}"));
        }
    };
    within_for(
        Duration::from_secs(8),
        "streaming messages of every size",
        async { tokio::join!(send, receive) },
    )
    .await;
}

#[tokio::test]
async fn streamed_messages_of_every_size_arrive_intact_from_client_to_server() {
    // Small frames, then frames large enough that most big reads go straight to the caller.
    for (seed, fragment) in [(1, FRAGMENT), (2, 1 << 20)] {
        let (client, server) = tcp_pair(config(fragment)).await;
        stream_each_size(client, server, fragment, seed).await;
    }
}

#[tokio::test]
async fn streamed_messages_of_every_size_arrive_intact_from_server_to_client() {
    for (seed, fragment) in [(3, FRAGMENT), (4, 1 << 20)] {
        let (client, server) = tcp_pair(config(fragment)).await;
        stream_each_size(server, client, fragment, seed).await;
    }
}

/// Text with one-, two-, three- and four-byte code points.
fn multibyte_text(len: usize) -> String {
    "κόσμε €𝄞 plain ascii, ".chars().cycle().take(len).collect()
}

#[tokio::test]
async fn text_writer_accepts_code_points_split_across_writes_and_flushes() {
    let text = multibyte_text(40_000);
    for sender in [Role::Client, Role::Server] {
        let (client, server) = tcp_pair(config(1000)).await;
        let (mut from, mut to) = match sender {
            Role::Client => (client, server),
            Role::Server => (server, client),
        };
        let mut rng = XorShift::new(7);
        within("streaming text", async {
            for _ in 0..2 {
                let mut writer = from.send_stream(DataKind::Text);
                let bytes = text.as_bytes();
                let mut at = 0;
                while at < bytes.len() {
                    // Mostly 1 to 6 bytes, so that most writes end inside a code point.
                    let len = if rng.one_in(8) {
                        3000
                    } else {
                        1 + rng.below(6) as usize
                    };
                    let len = len.min(bytes.len() - at);
                    at += writer.write(&bytes[at..at + len]).await.expect("write");
                    if rng.one_in(5) {
                        writer.flush().await.expect("flush");
                    }
                }
                writer.shutdown().await.expect("shutdown");
            }
        })
        .await;
        within("receiving text", async {
            // Once as a whole message, once as a stream.
            match to.recv().await {
                Some(Ok(Message::Text(got))) => assert!(got == text.as_str(), "text changed"),
                other => panic!("expected the text message, got {other:?}"),
            }
            let mut reader = to.recv_stream().await.unwrap().unwrap();
            assert_eq!(reader.kind(), DataKind::Text);
            let mut got = String::new();
            reader.read_to_string(&mut got).await.expect("valid text");
            assert!(got == text, "streamed text changed");
        })
        .await;
    }
}

#[tokio::test]
async fn text_writer_refuses_invalid_utf8_and_sends_none_of_it() {
    for sender in [Role::Client, Role::Server] {
        let (client, server) = tcp_pair(config(FRAGMENT)).await;
        let (mut from, mut to) = match sender {
            Role::Client => (client, server),
            Role::Server => (server, client),
        };
        within("writing text with bad bytes", async {
            let mut writer = from.send_stream(DataKind::Text);
            writer.write_all("valid €".as_bytes()).await.unwrap();
            let e = writer
                .write(b"\xff")
                .await
                .expect_err("0xFF is never UTF-8");
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
            // The start of a euro sign, then a byte that cannot continue it, then its real end.
            writer.write_all(b"\xe2\x82").await.unwrap();
            let e = writer
                .write(b"A")
                .await
                .expect_err("not a continuation byte");
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
            writer.write_all(b"\xac rest").await.unwrap();
            writer.shutdown().await.expect("the text written is valid");
        })
        .await;
        within("receiving", async {
            match to.recv().await {
                Some(Ok(Message::Text(got))) => assert_eq!(got, "valid €€ rest"),
                other => panic!("expected the valid text alone, got {other:?}"),
            }
        })
        .await;
        // The connection is still usable both ways.
        within("after", async {
            from.send_text("next").await.unwrap();
            assert_eq!(to.recv().await.unwrap().unwrap(), Message::text("next"));
        })
        .await;
    }
}

#[tokio::test]
async fn text_writer_shut_down_inside_a_code_point_errors_and_sends_no_broken_text() {
    let (mut client, mut server) = tcp_pair(config(FRAGMENT)).await;
    within("writing", async {
        let mut writer = client.send_stream(DataKind::Text);
        writer.write_all(b"euro: \xe2\x82").await.unwrap();
        let e = writer
            .shutdown()
            .await
            .expect_err("the message ends inside a code point");
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        // The refusal changed nothing: the rest of the code point completes the message.
        writer.write_all(b"\xac").await.unwrap();
        writer.shutdown().await.expect("the text is whole now");
    })
    .await;
    match within("receiving", server.recv()).await {
        Some(Ok(Message::Text(got))) => assert_eq!(got, "euro: €"),
        other => panic!("expected the completed text, got {other:?}"),
    }

    // A text writer dropped inside a code point must not send the broken text either (the
    // peer would fail the connection with 1007).
    within("writing", async {
        let mut writer = client.send_stream(DataKind::Text);
        writer.write_all(b"cut \xe2").await.unwrap();
        assert!(writer.shutdown().await.is_err());
        drop(writer);
        let _ = client.flush().await;
    })
    .await;
    let got = tokio::time::timeout(QUIET, server.recv()).await;
    assert!(
        !matches!(&got, Ok(Some(Err(e))) if e.kind() == ErrorKind::InvalidUtf8),
        "the peer received invalid UTF-8: {got:?}"
    );
}

#[tokio::test]
async fn ping_in_the_middle_of_a_message_is_answered_while_the_reader_reads() {
    for role in [Role::Client, Role::Server] {
        let (mut ws, mut peer) = scripted(role, Config::default());
        let first = pattern(1, 30_000);
        let second = pattern(2, 50_000);
        let read = async {
            let mut reader = ws.recv_stream().await.unwrap().expect("recv_stream");
            let mut got = Vec::new();
            reader.read_to_end(&mut got).await.expect("read");
            got
        };
        let script = async {
            peer.send(false, OP_BINARY, &first).await;
            peer.send(true, OP_PING, b"still there?").await;
            // The message is unfinished, so only a reader that keeps the connection going
            // underneath can answer.
            peer.expect_frame(OP_PONG, b"still there?").await;
            peer.send(true, OP_CONT, &second).await;
        };
        let (got, ()) = within("ping mid-message", async { tokio::join!(read, script) }).await;
        assert_same_bytes(
            &got,
            &[first, second].concat(),
            "the message around the ping",
        );
    }
}

#[tokio::test]
async fn close_in_the_middle_of_a_message_ends_the_reader_with_unexpected_eof() {
    for role in [Role::Client, Role::Server] {
        let (mut ws, mut peer) = scripted(role, Config::default());
        let first = pattern(3, 10_000);
        let script = async {
            peer.send(false, OP_BINARY, &first).await;
            peer.send_close(1000, b"bye").await;
            peer.expect_close(Some(1000)).await;
            // As a server would (a client library waits for it).
            peer.shutdown().await;
        };
        let read = async {
            let mut reader = ws.recv_stream().await.unwrap().expect("recv_stream");
            let mut got = Vec::new();
            let mut buf = vec![0u8; 4096];
            let e = loop {
                match reader.read(&mut buf).await {
                    Ok(0) => panic!("EOF instead of an error after {} bytes", got.len()),
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                    Err(e) => break e,
                }
            };
            assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}");
            // The error stays.
            let again = reader.read(&mut buf).await;
            assert!(
                matches!(&again, Err(e) if e.kind() == io::ErrorKind::UnexpectedEof),
                "after the error: {again:?}"
            );
            got
        };
        let (got, ()) = within("close mid-message", async { tokio::join!(read, script) }).await;
        assert_same_bytes(&got, &first, "the bytes before the close");
        assert_eq!(ws.close_code(), Some(wsio::CloseCode::NORMAL));
    }
}

#[tokio::test]
async fn transport_ending_in_the_middle_of_a_message_ends_the_reader_with_unexpected_eof() {
    let (mut ws, mut peer) = scripted(Role::Client, Config::default());
    let first = pattern(4, 10_000);
    peer.send(false, OP_BINARY, &first).await;
    peer.shutdown().await;
    let mut reader = within("recv_stream", ws.recv_stream())
        .await
        .unwrap()
        .unwrap();
    let mut got = Vec::new();
    let e = within("read", reader.read_to_end(&mut got))
        .await
        .expect_err("the message never ended");
    assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}");
    assert_same_bytes(&got, &first, "the bytes before the end");
}

#[tokio::test]
async fn message_over_max_stream_message_size_fails_with_1009() {
    const LIMIT: usize = 50_000;
    for role in [Role::Client, Role::Server] {
        let (mut ws, mut peer) =
            scripted(role, Config::default().max_stream_message_size(Some(LIMIT)));
        // Exactly the limit is fine.
        let exact = pattern(5, LIMIT);
        let (a, b) = exact.split_at(LIMIT / 2);
        peer.send(false, OP_BINARY, a).await;
        peer.send(true, OP_CONT, b).await;
        let mut reader = within("recv_stream", ws.recv_stream())
            .await
            .unwrap()
            .unwrap();
        let mut got = Vec::new();
        within("read", reader.read_to_end(&mut got)).await.unwrap();
        assert_same_bytes(&got, &exact, "a message of exactly the limit");

        // One byte more fails as soon as the header announcing it arrives.
        peer.send(false, OP_BINARY, a).await;
        let key = peer.key();
        peer.write(&header(true, 0, OP_CONT, key, (LIMIT / 2 + 1) as u64))
            .await;
        let mut reader = within("recv_stream", ws.recv_stream())
            .await
            .unwrap()
            .unwrap();
        let mut got = Vec::new();
        let e = within("read", reader.read_to_end(&mut got))
            .await
            .expect_err("over the limit");
        assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
        assert_eq!(wsio_kind(&e), ErrorKind::Capacity);
        assert_same_bytes(&got, a, "the bytes within the limit");
        peer.expect_close(Some(1009)).await;
    }
}

#[tokio::test]
async fn streamed_message_is_not_bound_by_max_message_size() {
    const MAX: usize = 64 * 1024;
    let limited = Config::default()
        .max_message_size(MAX)
        .stream_fragment_size(16 * 1024);
    let (mut client, mut server) = tcp_pair(limited).await;
    let big = pattern(6, 4 * MAX + 1);
    let send = async {
        {
            let mut writer = client.send_stream(DataKind::Binary);
            writer.write_all(&big).await.unwrap();
            writer.shutdown().await.unwrap();
        }
        // The same size as a whole message: the limit is in force for `recv`.
        client.send_binary(big.clone()).await.unwrap();
    };
    let receive = async {
        let mut reader = server.recv_stream().await.unwrap().unwrap();
        let mut got = Vec::new();
        reader
            .read_to_end(&mut got)
            .await
            .expect("a streamed message has no such limit");
        assert_same_bytes(&got, &big, "the streamed message");
        match server.recv().await {
            Some(Err(e)) => assert_eq!(e.kind(), ErrorKind::Capacity, "{e}"),
            other => panic!("recv must refuse a message over max_message_size: {other:?}"),
        }
    };
    within("over max_message_size", async {
        tokio::join!(send, receive)
    })
    .await;
}

/// Sends `first` as a streamed message in 16 KiB frames, then three small whole messages.
async fn send_then_smalls(ws: &mut TcpWs, first: &[u8]) {
    {
        let mut writer = ws.send_stream(DataKind::Binary);
        writer.write_all(first).await.unwrap();
        writer.shutdown().await.unwrap();
    }
    for text in ["second", "third", "fourth"] {
        ws.send_text(text).await.unwrap();
    }
}

#[tokio::test]
async fn dropping_a_reader_mid_message_discards_the_rest_and_the_next_message_is_intact() {
    let config = Config::default().stream_fragment_size(16 * 1024);
    let (mut client, mut server) = tcp_pair(config).await;
    let first = pattern(8, 300_000);
    let receive = async {
        let mut reader = server.recv_stream().await.unwrap().unwrap();
        let mut head = vec![0u8; 1000];
        reader.read_exact(&mut head).await.unwrap();
        assert_eq!(head, first[..1000]);
        drop(reader);
        assert_eq!(
            server.recv().await.unwrap().unwrap(),
            Message::text("second")
        );
        // The same with `recv_stream` after a reader that read a little.
        let mut reader = server.recv_stream().await.unwrap().unwrap();
        let mut byte = [0u8; 1];
        reader.read_exact(&mut byte).await.unwrap();
        assert_eq!(&byte, b"t");
        drop(reader);
        let mut reader = server.recv_stream().await.unwrap().unwrap();
        let mut got = String::new();
        reader.read_to_string(&mut got).await.unwrap();
        assert_eq!(got, "fourth");
    };
    within("drop a reader, then receive", async {
        tokio::join!(send_then_smalls(&mut client, &first), receive)
    })
    .await;
}

#[tokio::test]
async fn rest_of_a_dropped_message_is_not_counted_against_max_message_size() {
    // The dropped message is larger than `recv` would assemble; its rest is discarded, never
    // assembled, so it must not fail the connection.
    let config = Config::default()
        .stream_fragment_size(16 * 1024)
        .max_message_size(64 * 1024);
    let (mut client, mut server) = tcp_pair(config).await;
    let first = pattern(9, 300_000);
    let receive = async {
        let mut reader = server.recv_stream().await.unwrap().unwrap();
        let mut head = vec![0u8; 1000];
        reader.read_exact(&mut head).await.unwrap();
        drop(reader);
        for text in ["second", "third", "fourth"] {
            match server.recv().await {
                Some(Ok(m)) => assert_eq!(m, Message::text(text)),
                other => panic!("expected {text:?}, got {other:?}"),
            }
        }
    };
    within("drop a large reader, then recv", async {
        tokio::join!(send_then_smalls(&mut client, &first), receive)
    })
    .await;
}

#[tokio::test]
async fn a_leaked_writer_never_corrupts_the_next_message() {
    for compression in [true, false] {
        let mut config = config(FRAGMENT);
        if !compression {
            config = config.compression(None);
        }
        let (mut client, mut server) = tcp_pair(config).await;
        assert_eq!(client.permessage_deflate().is_some(), compression);
        within(
            "leaking a writer before its first frame, then writing",
            async {
                let mut leaked = client.send_stream(DataKind::Binary);
                leaked.write_all(&pattern(7, 3000)).await.unwrap();
                std::mem::forget(leaked);
                let mut writer = client.send_stream(DataKind::Binary);
                writer.write_all(b"the next message").await.unwrap();
                writer.shutdown().await.unwrap();
            },
        )
        .await;
        match within("receiving", server.recv()).await {
            Some(Ok(Message::Binary(got))) => {
                assert_eq!(&got[..], b"the next message", "compression {compression}")
            }
            other => panic!("compression {compression}: expected the next message, got {other:?}"),
        }

        // Leaked after a frame left: its message stays open, so later messages are refused,
        // as `send` refuses them, rather than continuing it or interleaving with it.
        within("leaking a writer after a frame", async {
            let mut leaked = client.send_stream(DataKind::Binary);
            leaked.write_all(b"first part").await.unwrap();
            leaked.flush().await.unwrap();
            std::mem::forget(leaked);
            let mut writer = client.send_stream(DataKind::Binary);
            let e = writer
                .write_all(b"must not join the leaked message")
                .await
                .expect_err("another message is open");
            assert!(e.to_string().contains("another message"), "{e}");
            assert!(writer.shutdown().await.is_err());
            drop(writer);
            let e = client
                .send(Message::binary("whole"))
                .await
                .expect_err("send refuses too");
            assert!(e.to_string().contains("another message"), "{e}");
        })
        .await;
        // The peer saw only the leaked message's first frame: no second message, no failure.
        let got = tokio::time::timeout(QUIET, server.recv()).await;
        assert!(got.is_err(), "compression {compression}: {got:?}");
    }
}
