//! `ByteStream`'s contract with the peer, frame by frame, against a scripted peer: writes leave
//! as whole binary messages, a close with 1000 (or no code) between messages reads as EOF, and
//! anything else as an error: another code, a close mid-message, no close at all.

mod support;

use std::io;

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wsio::{ByteStream, Config, Role};

#[tokio::test]
async fn byte_stream_writes_whole_binary_messages_of_at_most_the_fragment_size() {
    const FRAGMENT: usize = 1000;
    for role in [Role::Client, Role::Server] {
        let config = Config::default().stream_fragment_size(FRAGMENT);
        let (ws, mut peer) = scripted(role, config);
        let mut stream = ByteStream::new(ws);
        let data = pattern(1, 3 * FRAGMENT + 10);
        within("writing", async {
            stream.write_all(&data[..2500]).await.unwrap();
            // A flush sends what is buffered at once, as a shorter message.
            stream.flush().await.unwrap();
            stream.write_all(&data[2500..]).await.unwrap();
            stream.flush().await.unwrap();
        })
        .await;
        let mut got = Vec::new();
        let mut sizes = Vec::new();
        while got.len() < data.len() {
            let frame = peer.read_frame().await.expect("a frame");
            assert_eq!(frame.opcode, OP_BINARY, "{role:?}: {frame:?}");
            assert!(frame.fin, "{role:?}: every frame is a whole message");
            sizes.push(frame.payload.len());
            got.extend_from_slice(&frame.payload);
        }
        assert_eq!(got, data, "{role:?}");
        assert_eq!(sizes, [1000, 1000, 500, 510], "{role:?}: message sizes");
        // Shutdown is the closing handshake.
        within("shutdown", stream.shutdown()).await.unwrap();
        peer.expect_close(Some(1000)).await;
    }
}

#[tokio::test]
async fn byte_stream_reads_the_peers_close_as_eof_after_its_data() {
    let (ws, mut peer) = scripted(Role::Client, Config::default());
    let mut stream = ByteStream::new(ws);
    peer.send(true, OP_BINARY, b"one ").await;
    peer.send(false, OP_BINARY, b"two ").await;
    peer.send(true, OP_PING, b"p").await;
    peer.send(true, OP_CONT, b"three").await;
    peer.send_close(1000, b"").await;
    let mut got = Vec::new();
    within("read to EOF", stream.read_to_end(&mut got))
        .await
        .expect("a clean close is EOF");
    assert_eq!(got, b"one two three");
    assert_eq!(stream.close_code(), Some(wsio::CloseCode::NORMAL));
    peer.expect_frame(OP_PONG, b"p").await;
    peer.expect_close(Some(1000)).await;
}

#[tokio::test]
async fn byte_stream_reads_a_transport_ending_without_close_as_an_error() {
    let (ws, mut peer) = scripted(Role::Server, Config::default());
    let mut stream = ByteStream::new(ws);
    peer.send(true, OP_BINARY, b"data").await;
    peer.shutdown().await;
    let mut got = Vec::new();
    let e = within("read", stream.read_to_end(&mut got))
        .await
        .expect_err("no closing handshake: not a clean EOF");
    assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}");
    assert_eq!(got, b"data");
}

#[tokio::test]
async fn byte_stream_refuses_a_text_message() {
    let (ws, mut peer) = scripted(Role::Client, Config::default());
    let mut stream = ByteStream::new(ws);
    peer.send(true, OP_TEXT, b"text").await;
    let e = within("read", stream.read(&mut [0u8; 64]))
        .await
        .expect_err("a byte stream carries binary messages only");
    assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
}

#[tokio::test]
async fn byte_stream_reads_a_close_with_an_error_code_as_an_error_every_time() {
    for code in [1001u16, 1011, 4000] {
        let (ws, mut peer) = scripted(Role::Client, Config::default());
        let mut stream = ByteStream::new(ws);
        peer.send(true, OP_BINARY, b"part").await;
        peer.send_close(code, b"upstream failed").await;
        let mut got = Vec::new();
        let e = within("read", stream.read_to_end(&mut got))
            .await
            .expect_err("a writer that did not finish: not EOF");
        assert_eq!(e.kind(), io::ErrorKind::ConnectionAborted, "{code}: {e}");
        assert!(e.to_string().contains(&code.to_string()), "{e}");
        assert!(e.to_string().contains("upstream failed"), "{e}");
        assert_eq!(got, b"part", "{code}: what came before is still read");
        // Reading again does not turn the failure into EOF.
        let again = within("read again", stream.read(&mut [0u8; 16])).await;
        assert_eq!(
            again.map_err(|e| e.kind()).expect_err("still an error"),
            io::ErrorKind::ConnectionAborted
        );
        peer.expect_close(Some(code)).await;
    }
}

#[tokio::test]
async fn byte_stream_reads_a_close_in_the_middle_of_a_message_as_an_error() {
    for close in [1000u16, 1011] {
        let (ws, mut peer) = scripted(Role::Server, Config::default());
        let mut stream = ByteStream::new(ws);
        peer.send(true, OP_BINARY, b"whole ").await;
        peer.send(false, OP_BINARY, b"cut").await;
        peer.send_close(close, b"").await;
        let mut got = Vec::new();
        let e = within("read", stream.read_to_end(&mut got))
            .await
            .expect_err("a message cut short: not EOF");
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{close}: {e}");
        assert_eq!(got, b"whole cut");
    }
}

#[tokio::test]
async fn byte_stream_reads_a_close_without_a_code_as_eof() {
    let (ws, mut peer) = scripted(Role::Client, Config::default());
    let mut stream = ByteStream::new(ws);
    peer.send(true, OP_BINARY, b"all").await;
    peer.send(true, OP_CLOSE, b"").await;
    let mut got = Vec::new();
    within("read to EOF", stream.read_to_end(&mut got))
        .await
        .expect("a close without a code (1005) ends the stream");
    assert_eq!(got, b"all");
}
