//! The closing handshake (RFC 6455 §5.5.1, §7): who sends what, who closes TCP, and what the
//! application sees on each side.

mod support;

use std::time::{Duration, Instant};

use support::*;
use wsio::{CloseCode, CloseFrame, Config, ErrorKind, Message, ReadyState, Role};

fn close_message(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame::new(CloseCode(code), reason)))
}

#[tokio::test]
async fn client_initiated_close_is_seen_by_the_server_and_ends_both() {
    let (mut client, mut server) = pair(Config::default());
    let (closed, seen) = within(
        "closing handshake",
        futures::future::join(client.close(1000, "bye"), async {
            let first = server.recv().await;
            let second = server.recv().await;
            (first, second)
        }),
    )
    .await;
    closed.expect("client close");
    assert_eq!(seen.0.unwrap().unwrap(), close_message(1000, "bye"));
    assert!(seen.1.is_none(), "the server's stream ends after the close");

    assert_eq!(server.close_code(), Some(CloseCode::NORMAL));
    assert_eq!(server.close_reason(), Some("bye"));
    // The server echoed the code.
    assert_eq!(client.close_code(), Some(CloseCode::NORMAL));
    assert_eq!(client.ready_state(), ReadyState::Closed);
    assert_eq!(server.ready_state(), ReadyState::Closed);
    assert!(within("client recv", client.recv()).await.is_none());
    assert!(within("server recv", server.recv()).await.is_none());
}

#[tokio::test]
async fn server_initiated_close_is_seen_by_the_client_and_ends_both() {
    let (mut client, mut server) = pair(Config::default());
    let (closed, seen) = within(
        "closing handshake",
        futures::future::join(server.close(4001, "shutting down"), async {
            let first = client.recv().await;
            let second = client.recv().await;
            (first, second)
        }),
    )
    .await;
    closed.expect("server close");
    assert_eq!(
        seen.0.unwrap().unwrap(),
        close_message(4001, "shutting down")
    );
    assert!(seen.1.is_none(), "the client's stream ends after the close");
    assert_eq!(client.close_code(), Some(CloseCode(4001)));
    assert_eq!(client.close_reason(), Some("shutting down"));
    assert_eq!(server.close_code(), Some(CloseCode(4001)));
    assert_eq!(client.ready_state(), ReadyState::Closed);
    assert_eq!(server.ready_state(), ReadyState::Closed);
}

#[tokio::test]
async fn close_code_is_none_before_any_close() {
    let (client, server) = pair(Config::default());
    assert_eq!(client.close_code(), None);
    assert_eq!(client.close_reason(), None);
    assert_eq!(server.ready_state(), ReadyState::Open);
}

#[tokio::test]
async fn peer_close_code_is_echoed_without_the_reason() {
    for role in [Role::Server, Role::Client] {
        for code in [1000u16, 1001, 1003, 1011, 3000, 4999] {
            let (mut ws, mut peer) = scripted(role, Config::default());
            peer.send_close(code, b"why not").await;
            assert_eq!(
                within("recv close", ws.recv()).await.unwrap().unwrap(),
                close_message(code, "why not")
            );
            let echo = peer.expect_close(Some(code)).await;
            assert_eq!(echo.close_reason(), b"");
            assert_eq!(ws.ready_state(), ReadyState::Closed);
            if role == Role::Client {
                // The server closes TCP first; the client waits for it.
                peer.shutdown().await;
            }
            assert!(within("recv end", ws.recv()).await.is_none());
            peer.expect_eof().await;
            assert_eq!(ws.close_code(), Some(CloseCode(code)));
            assert_eq!(ws.close_reason(), Some("why not"));
        }
    }
}

#[tokio::test]
async fn empty_close_is_echoed_empty() {
    for role in [Role::Server, Role::Client] {
        let (mut ws, mut peer) = scripted(role, Config::default());
        peer.send(true, OP_CLOSE, b"").await;
        assert_eq!(
            within("recv close", ws.recv()).await.unwrap().unwrap(),
            Message::Close(None)
        );
        peer.expect_close(None).await;
        if role == Role::Client {
            peer.shutdown().await;
        }
        assert!(within("recv end", ws.recv()).await.is_none());
        peer.expect_eof().await;
        assert_eq!(ws.close_code(), None, "an empty close has no code");
    }
}

#[tokio::test]
async fn server_closes_the_transport_right_after_the_echo() {
    let (mut ws, mut peer) = scripted(Role::Server, Config::default());
    peer.send_close(1000, b"").await;
    assert!(matches!(
        within("recv", ws.recv()).await,
        Some(Ok(Message::Close(_)))
    ));
    assert!(within("recv end", ws.recv()).await.is_none());
    // The client peer never closed its side; the server did not wait for it.
    peer.expect_close(Some(1000)).await;
    peer.expect_eof().await;
}

#[tokio::test]
async fn client_close_completes_after_close_timeout_when_server_keeps_tcp_open() {
    let timeout = Duration::from_millis(200);
    let (mut ws, mut peer) = scripted(Role::Client, Config::default().close_timeout(timeout));
    let server = async {
        peer.expect_close(Some(1000)).await;
        peer.send_close(1000, b"").await;
        // Keep the transport open: the library must give up waiting on its own.
        let start = Instant::now();
        peer.expect_eof().await;
        (peer, start.elapsed())
    };
    let start = Instant::now();
    let (closed, (_peer, eof_after)) = within(
        "client close",
        futures::future::join(ws.close(1000, ""), server),
    )
    .await;
    let took = start.elapsed();
    closed.expect("a close whose reply arrived is not an error");
    assert!(took >= timeout - Duration::from_millis(20), "took {took:?}");
    assert!(took < Duration::from_secs(2), "took {took:?}");
    assert!(
        eof_after >= Duration::from_millis(100),
        "closed TCP after {eof_after:?}"
    );
    assert_eq!(ws.ready_state(), ReadyState::Closed);
    assert!(within("recv", ws.recv()).await.is_none());
}

#[tokio::test]
async fn client_close_completes_at_once_when_server_closes_tcp() {
    let (mut ws, mut peer) = scripted(
        Role::Client,
        Config::default().close_timeout(Duration::from_secs(3)),
    );
    let server = async {
        peer.expect_close(Some(3000)).await;
        peer.send_close(3000, b"").await;
        peer.shutdown().await;
        peer.expect_eof().await;
    };
    let start = Instant::now();
    let (closed, ()) = within(
        "client close",
        futures::future::join(ws.close(3000, "x"), server),
    )
    .await;
    closed.expect("client close");
    assert!(start.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn close_times_out_when_the_peer_never_answers() {
    for role in [Role::Client, Role::Server] {
        let timeout = Duration::from_millis(150);
        let (mut ws, mut peer) = scripted(role, Config::default().close_timeout(timeout));
        let start = Instant::now();
        let err = within("close", ws.close(1000, ""))
            .await
            .expect_err("the peer never sent its close");
        assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
        assert!(start.elapsed() >= timeout - Duration::from_millis(20));
        peer.expect_close(Some(1000)).await;
        assert!(within("recv", ws.recv()).await.is_none());
    }
}

#[tokio::test]
async fn data_arriving_while_closing_is_dropped_by_close() {
    let (mut ws, mut peer) = scripted(Role::Server, Config::default());
    let peer_side = async {
        peer.expect_close(Some(1000)).await;
        peer.send(true, OP_TEXT, b"late").await;
        peer.send(true, OP_PING, b"late ping").await;
        peer.send_close(1000, b"").await;
        // A ping that arrives after our close is not answered: the next frame is nothing.
        peer.expect_eof().await;
    };
    let (closed, ()) = within(
        "close",
        futures::future::join(ws.close(1000, ""), peer_side),
    )
    .await;
    closed.expect("close");
}

#[tokio::test]
async fn close_with_an_application_forbidden_code_is_a_usage_error_and_sends_nothing() {
    for role in [Role::Client, Role::Server] {
        let (mut ws, mut peer) = scripted(role, Config::default());
        for code in [
            0u16, 999, 1001, 1002, 1004, 1005, 1006, 1015, 2000, 2999, 5000,
        ] {
            let err = within("close", ws.close(code, ""))
                .await
                .expect_err("forbidden code");
            assert_eq!(err.kind(), ErrorKind::Usage, "code {code}: {err}");
        }
        peer.expect_silence().await;
        assert_eq!(ws.ready_state(), ReadyState::Open);
        // The connection is untouched.
        within("send", ws.send(Message::text("still open")))
            .await
            .unwrap();
        peer.expect_frame(OP_TEXT, b"still open").await;
    }
}

#[tokio::test]
async fn close_reason_over_123_bytes_is_a_usage_error_and_sends_nothing() {
    let (mut ws, mut peer) = scripted(Role::Client, Config::default());
    let long = "r".repeat(124);
    let err = within("close", ws.close(1000, &long))
        .await
        .expect_err("reason too long");
    assert_eq!(err.kind(), ErrorKind::Usage, "{err}");
    // Multi-byte characters count in bytes: 62 × 2 = 124.
    let err = within("close", ws.close(1000, &"é".repeat(62)))
        .await
        .expect_err("reason too long");
    assert_eq!(err.kind(), ErrorKind::Usage, "{err}");
    peer.expect_silence().await;
    assert_eq!(ws.ready_state(), ReadyState::Open);

    // 123 bytes is allowed.
    let reason = "r".repeat(123);
    let peer_side = async {
        let f = peer.expect_close(Some(1000)).await;
        assert_eq!(f.close_reason(), reason.as_bytes());
        peer.send_close(1000, b"").await;
        peer.shutdown().await;
    };
    let (closed, ()) = within(
        "close",
        futures::future::join(ws.close(1000, &reason), peer_side),
    )
    .await;
    closed.expect("close with a 123-byte reason");
}

#[tokio::test]
async fn sending_after_close_fails_with_closed() {
    let (mut client, mut server) = pair(Config::default());
    let (closed, _) = within(
        "handshake",
        futures::future::join(client.close(1000, ""), async {
            while server.recv().await.is_some() {}
        }),
    )
    .await;
    closed.unwrap();
    for ws in [&mut client, &mut server] {
        for message in [
            Message::text("x"),
            Message::binary(vec![1]),
            Message::Ping("p".into()),
        ] {
            let err = within("send", ws.send(message)).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Closed, "{err}");
        }
    }
    // Closing again is not an error.
    within("close again", client.close(1000, "")).await.unwrap();
}

#[tokio::test]
async fn sending_after_queueing_a_close_fails_with_closed_and_sends_nothing_more() {
    let (mut ws, mut peer) = scripted(Role::Server, Config::default());
    within("send close", ws.send(close_message(1000, "done")))
        .await
        .unwrap();
    let err = within("send", ws.send(Message::text("after")))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Closed, "{err}");
    let f = peer.expect_close(Some(1000)).await;
    assert_eq!(f.close_reason(), b"done");
    peer.expect_silence().await;
}

#[tokio::test]
async fn sink_close_sends_a_normal_close() {
    use futures::SinkExt;
    let (mut ws, mut peer) = scripted(Role::Client, Config::default());
    within("sink close", SinkExt::close(&mut ws)).await.unwrap();
    peer.expect_close(Some(1000)).await;
    peer.send_close(1000, b"").await;
    peer.shutdown().await;
    assert_eq!(
        within("recv", ws.recv()).await.unwrap().unwrap(),
        close_message(1000, "")
    );
    assert!(within("recv", ws.recv()).await.is_none());
    peer.expect_eof().await;
}

#[tokio::test]
async fn both_sides_closing_at_once_completes_on_both() {
    let (mut client, mut server) = pair(Config::default().close_timeout(Duration::from_secs(3)));
    let start = Instant::now();
    let (a, b) = within(
        "simultaneous close",
        futures::future::join(client.close(1000, "c"), server.close(1000, "s")),
    )
    .await;
    a.expect("client close");
    b.expect("server close");
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(client.close_reason(), Some("s"));
    assert_eq!(server.close_reason(), Some("c"));
}

#[tokio::test]
async fn client_stream_ends_after_close_timeout_when_server_closes_but_keeps_tcp_open() {
    let timeout = Duration::from_millis(200);
    let (mut ws, mut peer) = scripted(Role::Client, Config::default().close_timeout(timeout));
    peer.send_close(1001, b"going away").await;
    assert_eq!(
        within("recv close", ws.recv()).await.unwrap().unwrap(),
        close_message(1001, "going away")
    );
    peer.expect_close(Some(1001)).await;
    // The server never closes TCP; the client gives up after the close timeout.
    let start = Instant::now();
    assert!(within("recv end", ws.recv()).await.is_none());
    let took = start.elapsed();
    assert!(took >= timeout - Duration::from_millis(20), "took {took:?}");
    peer.expect_eof().await;
}

#[tokio::test]
async fn close_times_out_when_the_peer_reads_nothing_and_the_buffer_is_full() {
    let timeout = Duration::from_millis(200);
    let config = Config::default()
        .close_timeout(timeout)
        .write_buffer_size(4096);
    let (mut ws, _peer) = scripted_with_capacity(Role::Server, config, 1024);
    // A message larger than the write buffer waits for a peer that never reads.
    let big = Message::binary(vec![0; 100_000]);
    assert!(
        tokio::time::timeout(Duration::from_millis(20), ws.send(big))
            .await
            .is_err()
    );
    assert!(ws.buffered_amount() > 4096);
    let start = Instant::now();
    let err = within("close", ws.close(1000, ""))
        .await
        .expect_err("the peer never answered");
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    assert!(within("recv", ws.recv()).await.is_none());
}

#[tokio::test]
async fn close_after_receiving_the_peer_close_returns_ok() {
    for role in [Role::Client, Role::Server] {
        let (mut ws, mut peer) = scripted(role, Config::default());
        peer.send_close(1000, b"").await;
        assert!(matches!(
            within("recv", ws.recv()).await,
            Some(Ok(Message::Close(_)))
        ));
        peer.expect_close(Some(1000)).await;
        if role == Role::Client {
            peer.shutdown().await;
        }
        within("close", ws.close(1000, "")).await.unwrap();
        // The echo was the only close sent.
        peer.expect_eof().await;
    }
}
