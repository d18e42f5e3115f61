//! A connection that only sends still reads what the peer sends: it answers pings, notices the
//! peer's close, fails with the right close code on a violation, and runs its keepalive, while
//! holding no more than `Config::read_ahead_size` of unread data.

mod support;

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use wsio::error::Timeout;
use wsio::{ByteStream, Config, DataKind, Error, ErrorKind, Message, Role};

use support::*;

/// How the library writes, never receiving.
#[derive(Debug, Clone, Copy)]
enum Writer {
    Send,
    Stream,
    Bytes,
}

const WRITERS: [Writer; 3] = [Writer::Send, Writer::Stream, Writer::Bytes];

/// Writes `pieces` pieces of 1 KiB, 5 ms apart, in the given way; returns the first error.
async fn write_for_a_while(ws: Ws, how: Writer, pieces: usize) -> (Option<Error>, Option<Ws>) {
    let piece = vec![0x5Au8; 1024];
    let pause = || tokio::time::sleep(Duration::from_millis(5));
    match how {
        Writer::Send => {
            let mut ws = ws;
            for _ in 0..pieces {
                if let Err(e) = ws.send(Message::binary(piece.clone())).await {
                    return (Some(e), Some(ws));
                }
                pause().await;
            }
            (None, Some(ws))
        }
        Writer::Stream => {
            let mut ws = ws;
            let mut writer = ws.send_stream(DataKind::Binary);
            for _ in 0..pieces {
                let written = async {
                    writer.write_all(&piece).await?;
                    writer.flush().await
                };
                if let Err(e) = written.await {
                    drop(writer);
                    return (Some(io_to_wsio(e)), Some(ws));
                }
                pause().await;
            }
            let end = writer.shutdown().await.err();
            drop(writer);
            (end.map(io_to_wsio), Some(ws))
        }
        Writer::Bytes => {
            let mut stream = ByteStream::new(ws);
            for _ in 0..pieces {
                let written = async {
                    stream.write_all(&piece).await?;
                    stream.flush().await
                };
                if let Err(e) = written.await {
                    return (Some(io_to_wsio(e)), None);
                }
                pause().await;
            }
            (None, None)
        }
    }
}

fn io_to_wsio(e: std::io::Error) -> Error {
    match e.into_inner().map(|inner| inner.downcast::<Error>()) {
        Some(Ok(e)) => *e,
        Some(Err(other)) => Error::Io(std::io::Error::other(other)),
        None => Error::Closed,
    }
}

/// Reads frames until one with `opcode`, skipping data; fails if the stream ends first.
async fn frame_with(peer: &mut Peer, opcode: u8) -> Frame {
    loop {
        let frame = peer.read_frame().await.expect("the library ended early");
        if frame.opcode == opcode {
            return frame;
        }
        assert!(
            matches!(frame.opcode, OP_BINARY | OP_CONT),
            "unexpected {frame:?}"
        );
    }
}

#[tokio::test]
async fn a_connection_that_only_writes_answers_pings() {
    for how in WRITERS {
        for role in [Role::Client, Role::Server] {
            let (ws, mut peer) = scripted(role, Config::default());
            let writer = tokio::spawn(write_for_a_while(ws, how, 60));
            for i in 0..5u8 {
                tokio::time::sleep(Duration::from_millis(20)).await;
                peer.send(true, OP_PING, &[i; 3]).await;
                let pong = frame_with(&mut peer, OP_PONG).await;
                assert_eq!(pong.payload, [i; 3], "{how:?} as {role:?}");
            }
            let (error, _) = within_for(Duration::from_secs(10), "writer", writer)
                .await
                .unwrap();
            assert!(error.is_none(), "{how:?} as {role:?}: {error:?}");
        }
    }
}

/// Sends back to back, without pausing, until the peer has its pong: a sender polls the
/// transport once per burst rather than once per send, and must still look again once the
/// transport has news. A ping missed for good would leave the peer waiting and time out.
#[test]
fn a_connection_that_sends_back_to_back_answers_pings_sent_mid_burst() {
    for flavor in ["current_thread", "multi_thread"] {
        let runtime = match flavor {
            "current_thread" => tokio::runtime::Builder::new_current_thread(),
            _ => tokio::runtime::Builder::new_multi_thread(),
        }
        .enable_all()
        .build()
        .unwrap();
        runtime.block_on(async {
            for role in [Role::Client, Role::Server] {
                let (mut ws, mut peer) = scripted(role, Config::default());
                let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
                let writer = tokio::spawn({
                    let done = done.clone();
                    async move {
                        let mut sent = 0u64;
                        while !done.load(std::sync::atomic::Ordering::Acquire) {
                            ws.send(Message::binary(vec![0x5Au8; 64])).await.unwrap();
                            sent += 1;
                        }
                        sent
                    }
                });
                for i in 0..3u8 {
                    frame_with(&mut peer, OP_BINARY).await; // the burst is under way
                    peer.send(true, OP_PING, &[i; 3]).await;
                    let pong = frame_with(&mut peer, OP_PONG).await;
                    assert_eq!(pong.payload, [i; 3], "{flavor}, as {role:?}");
                }
                done.store(true, std::sync::atomic::Ordering::Release);
                // The writer stops after its current send, which may wait for the peer to read.
                let drain = async { while peer.read_frame().await.is_some() {} };
                let (sent, ()) = tokio::join!(
                    within_for(Duration::from_secs(10), "writer", writer),
                    within_for(Duration::from_secs(10), "drain", drain)
                );
                assert!(sent.unwrap() > 0);
            }
        });
    }
}

#[tokio::test]
async fn a_connection_that_only_writes_notices_the_peer_close_and_answers_it() {
    for how in WRITERS {
        let (ws, mut peer) = scripted(Role::Server, Config::default());
        let writer = tokio::spawn(write_for_a_while(ws, how, 1000));
        tokio::time::sleep(Duration::from_millis(30)).await;
        peer.send_close(4001, b"enough").await;
        let echo = frame_with(&mut peer, OP_CLOSE).await;
        assert_eq!(
            echo.close_code(),
            Some(4001),
            "{how:?}: the close is answered"
        );
        let (error, ws) = within("writer", writer).await.unwrap();
        let error = error.expect("a write fails once the peer closed");
        assert_eq!(error.kind(), ErrorKind::Closed, "{how:?}: {error:?}");
        if let Writer::Send = how {
            // The message API says why, with the peer's code and reason.
            match &error {
                Error::PeerClosed(Some(frame)) => {
                    assert_eq!(frame.code.0, 4001);
                    assert_eq!(frame.reason, "enough");
                }
                other => panic!("expected PeerClosed, got {other:?}"),
            }
            // A receiver then still gets the close, and the end.
            let mut ws = ws.unwrap();
            let close = within("recv", ws.recv()).await.unwrap().unwrap();
            assert!(matches!(close, Message::Close(Some(f)) if f.code.0 == 4001));
            peer.shutdown().await;
            assert!(within("end", ws.recv()).await.is_none());
        }
    }
}

#[tokio::test]
async fn a_connection_that_only_writes_fails_a_violation_with_its_close_code() {
    // (what the peer sends, the close code the library must answer with). A frame too large
    // for the message API but not for the stream API waits for a receiver instead (see
    // tests/big_frames.rs); with a stream limit too, no receiver could take it.
    let key = Some([1, 2, 3, 4]);
    let cases: [(Vec<u8>, u16); 3] = [
        (frame(true, 0, 0x3, key, b""), 1002), // reserved opcode
        (frame(true, 0, OP_TEXT, key, b"\xFF"), 1007), // invalid UTF-8
        (header(true, 0, OP_BINARY, key, 1 << 40), 1009), // larger than both APIs take
    ];
    let config = Config::default().max_stream_message_size(Some(1 << 30));
    for how in WRITERS {
        for (bytes, code) in &cases {
            let (ws, mut peer) = scripted(Role::Server, config.clone());
            let writer = tokio::spawn(write_for_a_while(ws, how, 1000));
            tokio::time::sleep(Duration::from_millis(20)).await;
            peer.write(bytes).await;
            let close = frame_with(&mut peer, OP_CLOSE).await;
            assert_eq!(close.close_code(), Some(*code), "{how:?}");
            let (error, _) = within("writer", writer).await.unwrap();
            assert!(error.is_some(), "{how:?}: writes fail after the violation");
        }
    }
}

#[tokio::test]
async fn data_that_arrives_while_only_writing_is_bounded_then_delivered_in_order() {
    const BOUND: usize = 64 * 1024;
    const MESSAGES: usize = 200;
    const SIZE: usize = 4096;
    let config = Config::default().read_ahead_size(BOUND);
    let (mut ws, mut peer) = scripted_with_capacity(Role::Server, config, 16 * 1024);
    // The peer floods 800 KiB of data frames while the library only writes.
    let flood = tokio::spawn(async move {
        for i in 0..MESSAGES {
            let key = peer.key();
            let bytes = frame(true, 0, OP_BINARY, key, &[i as u8; SIZE]);
            if peer.try_write(&bytes).await.is_err() {
                panic!("the peer's write failed at message {i}");
            }
        }
        peer
    });
    for _ in 0..100 {
        ws.send(Message::binary(vec![1u8; 100])).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // The library read ahead no more than the bound (plus one read buffer), so the flood is
    // stuck: TCP-like backpressure towards the peer.
    let read = ws.stats().bytes_received as usize;
    assert!(
        read <= BOUND + Config::default().get_read_buffer_size() + SIZE,
        "read {read} bytes ahead with a bound of {BOUND}"
    );
    assert!(!flood.is_finished(), "the flood should be held back");
    // Receiving takes everything, in order.
    for i in 0..MESSAGES {
        let message = within("recv", ws.recv()).await.unwrap().unwrap();
        assert_eq!(message, Message::binary(vec![i as u8; SIZE]), "message {i}");
    }
    let _peer = within("flood", flood).await.unwrap();
}

#[tokio::test]
async fn keepalive_runs_while_only_writing_and_fails_a_silent_peer() {
    let config = Config::default()
        .ping_interval(Some(Duration::from_millis(100)))
        .pong_timeout(Duration::from_millis(100));
    let (ws, mut peer) = scripted(Role::Client, config);
    let writer = tokio::spawn(write_for_a_while(ws, Writer::Send, 400));
    // The peer reads but never answers: the keepalive ping, then the 1001 close.
    frame_with(&mut peer, OP_PING).await;
    let close = frame_with(&mut peer, OP_CLOSE).await;
    assert_eq!(close.close_code(), Some(1001));
    let (error, ws) = within("writer", writer).await.unwrap();
    // The writer learns why it cannot write any more...
    let error = error.expect("writes fail");
    assert!(matches!(error, Error::Timeout(Timeout::Pong)), "{error:?}");
    // ...and so does a receiver.
    let err = within("recv", ws.unwrap().recv())
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err:?}");
}
