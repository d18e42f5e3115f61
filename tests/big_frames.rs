//! Which limit applies to a big frame: the stream API is bound by `max_stream_message_size`
//! only, the message API by `max_frame_size` and `max_message_size`, and a frame that arrives
//! before anyone asks waits for the receiver whose limits then decide.

mod support;

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wsio::{ByteStream, Config, ErrorKind, Message, Role};

use support::*;

const BIG: usize = 20 << 20; // more than the default max_frame_size (16 MiB)

/// Streams one frame of `len` pattern bytes, masked, from the peer, without holding it whole.
async fn send_one_big_frame(peer: &mut Peer, len: usize) {
    let key = peer.key().expect("the peer plays the client");
    peer.write(&header(true, 0, OP_BINARY, Some(key), len as u64))
        .await;
    let mut offset = 0;
    let mut piece = vec![0u8; 256 * 1024];
    while offset < len {
        let n = piece.len().min(len - offset);
        for (i, b) in piece[..n].iter_mut().enumerate() {
            *b = pattern_byte(offset + i) ^ key[(offset + i) % 4];
        }
        peer.write(&piece[..n]).await;
        offset += n;
    }
}

fn pattern_byte(i: usize) -> u8 {
    (i.wrapping_mul(31) >> 3) as u8
}

/// Reads everything and checks it against the pattern; returns the length.
async fn check_pattern<R: tokio::io::AsyncRead + Unpin>(mut reader: R, len: usize) -> usize {
    let mut buf = vec![0u8; 128 * 1024];
    let mut at = 0;
    while at < len {
        let n = reader.read(&mut buf).await.expect("read");
        assert!(n > 0, "EOF at {at} of {len}");
        for (i, &b) in buf[..n].iter().enumerate() {
            assert_eq!(b, pattern_byte(at + i), "byte {}", at + i);
        }
        at += n;
    }
    at
}

#[tokio::test]
async fn a_message_reader_takes_one_frame_larger_than_max_frame_size() {
    let (mut ws, mut peer) = scripted(Role::Server, Config::default());
    let sender = tokio::spawn(async move {
        send_one_big_frame(&mut peer, BIG).await;
        peer
    });
    let reader = within("recv_stream", ws.recv_stream())
        .await
        .unwrap()
        .unwrap();
    let got = within_for(Duration::from_secs(60), "read", check_pattern(reader, BIG)).await;
    assert_eq!(got, BIG);
    within("sender", sender).await.unwrap();
}

#[tokio::test]
async fn a_byte_stream_takes_one_frame_larger_than_max_frame_size() {
    let (ws, mut peer) = scripted(Role::Server, Config::default());
    let sender = tokio::spawn(async move {
        send_one_big_frame(&mut peer, BIG).await;
        peer
    });
    let mut stream = ByteStream::new(ws);
    let got = within_for(
        Duration::from_secs(60),
        "read",
        check_pattern(&mut stream, BIG),
    )
    .await;
    assert_eq!(got, BIG);
    within("sender", sender).await.unwrap();
}

#[tokio::test]
async fn the_message_api_refuses_a_frame_over_max_frame_size_as_soon_as_its_header_arrives() {
    let (mut ws, mut peer) = scripted(Role::Server, Config::default());
    let key = peer.key();
    // Only the header: the library must not wait for (or buffer) any of the payload.
    peer.write(&header(true, 0, OP_BINARY, key, BIG as u64))
        .await;
    let err = within("recv", ws.recv()).await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Capacity, "{err:?}");
    peer.expect_close(Some(1009)).await;
}

#[tokio::test]
async fn a_big_frame_that_arrives_while_nobody_receives_waits_for_the_receiver() {
    // First the stream API asks: it takes the frame.
    let (mut ws, mut peer) = scripted(Role::Server, Config::default());
    let sender = tokio::spawn(async move {
        send_one_big_frame(&mut peer, BIG).await;
        peer
    });
    // Only writing meanwhile: the big frame is not refused, just left unread.
    for _ in 0..20 {
        ws.send(Message::text("busy")).await.unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(
        ws.stats().bytes_received < (4 << 20),
        "not buffered: {:?}",
        ws.stats()
    );
    let reader = within("recv_stream", ws.recv_stream())
        .await
        .unwrap()
        .unwrap();
    let got = within_for(Duration::from_secs(60), "read", check_pattern(reader, BIG)).await;
    assert_eq!(got, BIG);
    within("sender", sender).await.unwrap();

    // Then the message API asks: its limit refuses the frame, with 1009.
    let (mut ws, mut peer) = scripted(Role::Server, Config::default());
    let key = peer.key();
    peer.write(&header(true, 0, OP_BINARY, key, BIG as u64))
        .await;
    ws.send(Message::text("busy")).await.unwrap();
    peer.expect_frame(OP_TEXT, b"busy").await;
    peer.expect_silence().await; // not refused while nobody asked
    let err = within("recv", ws.recv()).await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Capacity, "{err:?}");
    peer.expect_close(Some(1009)).await;
}

#[tokio::test]
async fn max_stream_message_size_bounds_a_single_frame_on_the_stream_api() {
    let config = Config::default().max_stream_message_size(Some(1 << 20));
    let (mut ws, mut peer) = scripted(Role::Server, config);
    let key = peer.key();
    peer.write(&header(true, 0, OP_BINARY, key, 2 << 20)).await;
    let err = within("recv_stream", ws.recv_stream())
        .await
        .unwrap()
        .expect_err("refused");
    assert_eq!(err.kind(), ErrorKind::Capacity, "{err:?}");
    peer.expect_close(Some(1009)).await;
    // Writing half of a frame into a dead connection is fine for the peer; nothing else.
    let _ = peer.io().write_all(&[0u8; 16]).await;
}
