//! `into_split`: read and write halves driven from different tasks.

mod support;

use std::time::Duration;

use support::*;
use wsio::{CloseCode, Config, Message, ReadyState, Role};

/// Many short rounds of four tasks (both halves of both ends) on four worker threads: a wake
/// that races with a registration must never be lost. Before the fix, about one round in ten
/// hung with the receiver's wake-up gone and its messages waiting in the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn halves_under_load_never_lose_a_wake_up() {
    const N: u32 = 1000;
    fn message(from: &str, i: u32) -> Message {
        let mut text = format!("{from} {i} ");
        text.push_str(&"x".repeat((i as usize * 37) % 3000));
        Message::text(text)
    }
    for round in 0..60 {
        let (client, server) = pair_with_capacity(Config::default(), 8 * 1024);
        let (mut client_rx, mut client_tx) = client.into_split();
        let (mut server_rx, mut server_tx) = server.into_split();
        let tasks = [
            tokio::spawn(async move {
                for i in 0..N {
                    client_tx.send(message("client", i)).await.unwrap();
                }
            }),
            tokio::spawn(async move {
                for i in 0..N {
                    server_tx.send(message("server", i)).await.unwrap();
                }
            }),
            tokio::spawn(async move {
                for i in 0..N {
                    let got = client_rx.recv().await.expect("ended").expect("recv");
                    assert_eq!(got, message("server", i));
                }
            }),
            tokio::spawn(async move {
                for i in 0..N {
                    let got = server_rx.recv().await.expect("ended").expect("recv");
                    assert_eq!(got, message("client", i));
                }
            }),
        ];
        let done = within(
            &format!("round {round}: {N} messages each way"),
            futures::future::try_join_all(tasks),
        )
        .await;
        done.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn halves_send_and_receive_concurrently_in_two_tasks() {
    const N: u32 = 1000;
    let (client, server) = pair_with_capacity(Config::default(), 8 * 1024);
    let (mut client_rx, mut client_tx) = client.into_split();
    let (mut server_rx, mut server_tx) = server.into_split();

    fn message(from: &str, i: u32) -> Message {
        // Sizes vary so that some writes wait for the transport.
        let mut text = format!("{from} {i} ");
        text.push_str(&"x".repeat((i as usize * 37) % 3000));
        Message::text(text)
    }
    async fn receive_all<S>(rx: &mut wsio::ReadHalf<S>, from: &str)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        for i in 0..N {
            let got = rx.recv().await.expect("stream ended").expect("recv");
            assert_eq!(got, message(from, i), "message {i} from the {from}");
        }
    }

    let tasks = [
        tokio::spawn(async move {
            for i in 0..N {
                client_tx.send(message("client", i)).await.unwrap();
            }
            client_tx
        }),
        tokio::spawn(async move {
            for i in 0..N {
                server_tx.send(message("server", i)).await.unwrap();
            }
            server_tx
        }),
    ];
    let readers = [
        tokio::spawn(async move {
            receive_all(&mut client_rx, "server").await;
            client_rx
        }),
        tokio::spawn(async move {
            receive_all(&mut server_rx, "client").await;
            server_rx
        }),
    ];
    let (writers, readers) = within(
        "1000 messages each way",
        futures::future::join(
            futures::future::try_join_all(tasks),
            futures::future::try_join_all(readers),
        ),
    )
    .await;
    let mut writers = writers.unwrap();
    let mut readers = readers.unwrap();

    // Put both connections back together and close them properly.
    let server_tx = writers.pop().unwrap();
    let client_tx = writers.pop().unwrap();
    let server_rx = readers.pop().unwrap();
    let client_rx = readers.pop().unwrap();
    let mut client = client_rx.reunite(client_tx).expect("same connection");
    let mut server = server_rx.reunite(server_tx).expect("same connection");
    let (closed, end) = within(
        "close",
        futures::future::join(client.close(1000, ""), async {
            let close = server.recv().await;
            (close, server.recv().await)
        }),
    )
    .await;
    closed.unwrap();
    assert!(matches!(end.0, Some(Ok(Message::Close(_)))));
    assert!(end.1.is_none());
}

#[tokio::test]
async fn read_half_alone_answers_pings() {
    for role in [Role::Client, Role::Server] {
        let (ws, mut peer) = scripted(role, Config::default());
        let (mut rx, tx) = ws.into_split();
        let reader = tokio::spawn(async move {
            let mut pings = 0;
            while let Some(item) = rx.recv().await {
                if let Message::Ping(_) = item.expect("recv") {
                    pings += 1;
                }
            }
            (pings, rx)
        });
        for i in 0..10u8 {
            peer.send(true, OP_PING, &[i; 10]).await;
            peer.expect_frame(OP_PONG, &[i; 10]).await;
        }
        // The read half completes the closing handshake by itself too.
        peer.send_close(1000, b"bye").await;
        peer.expect_close(Some(1000)).await;
        peer.shutdown().await;
        peer.expect_eof().await;
        let (pings, rx) = within("reader", reader).await.unwrap();
        assert_eq!(pings, 10);
        assert_eq!(rx.close_code(), Some(CloseCode::NORMAL));
        assert_eq!(rx.close_reason().as_deref(), Some("bye"));
        assert_eq!(rx.ready_state(), ReadyState::Closed);
        drop(tx);
    }
}

#[tokio::test]
async fn read_half_answers_a_ping_while_the_write_half_waits_on_a_full_transport() {
    // The write half is stuck mid-message; the pong must not be lost or break into its frame.
    let config = Config::default();
    let (ws, mut peer) = scripted_with_capacity(Role::Client, config, 2048);
    let (mut rx, mut tx) = ws.into_split();
    let big = Message::binary(pattern(3, 50_000));
    let writer = tokio::spawn({
        let big = big.clone();
        async move {
            tx.send(big).await.unwrap();
            tx
        }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    peer.send(true, OP_PING, b"still alive?").await;
    let reader = tokio::spawn(async move {
        let got = rx.recv().await;
        (got, rx)
    });
    let first = peer.read_frame().await.unwrap();
    let second = peer.read_frame().await.unwrap();
    assert_eq!(
        (first.opcode, first.payload.as_slice()),
        (OP_BINARY, big.as_payload())
    );
    assert_eq!(
        (second.opcode, second.payload.as_slice()),
        (OP_PONG, &b"still alive?"[..])
    );
    let (got, _rx) = within("reader", reader).await.unwrap();
    assert_eq!(got.unwrap().unwrap(), Message::Ping("still alive?".into()));
    within("writer", writer).await.unwrap();
}

#[tokio::test]
async fn write_half_close_is_completed_by_the_read_half() {
    let (client, mut server) = pair(Config::default());
    let (mut rx, mut tx) = client.into_split();
    within("close", tx.close(4000, "done")).await.unwrap();
    let (seen, end) = within(
        "handshake",
        futures::future::join(
            async {
                let close = server.recv().await;
                // The server closes TCP after its echo; the client waits for that.
                assert!(server.recv().await.is_none());
                close
            },
            async {
                let mut got = Vec::new();
                while let Some(item) = rx.recv().await {
                    got.push(item.unwrap());
                }
                got
            },
        ),
    )
    .await;
    assert_eq!(
        seen.unwrap().unwrap(),
        Message::Close(Some(wsio::CloseFrame::new(CloseCode(4000), "done")))
    );
    assert_eq!(
        end.len(),
        1,
        "the client sees the echo, then the end: {end:?}"
    );
    let err = within("send after close", tx.send(Message::text("late")))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), wsio::ErrorKind::Closed);
}

#[tokio::test]
async fn reunite_gives_back_a_working_connection() {
    let (client, mut server) = pair(Config::default());
    let (rx, tx) = client.into_split();
    let mut client = rx.reunite(tx).expect("halves of one connection");
    let (sent, got) = within(
        "roundtrip",
        futures::future::join(client.send(Message::text("whole again")), server.recv()),
    )
    .await;
    sent.unwrap();
    assert_eq!(got.unwrap().unwrap(), Message::text("whole again"));
    let (sent, got) = within(
        "roundtrip back",
        futures::future::join(server.send(Message::binary(vec![1, 2, 3])), client.recv()),
    )
    .await;
    sent.unwrap();
    assert_eq!(got.unwrap().unwrap(), Message::binary(vec![1, 2, 3]));
}

#[tokio::test]
async fn reunite_refuses_halves_of_different_connections() {
    let (a, _a_peer) = pair(Config::default());
    let (b, _b_peer) = pair(Config::default());
    let (a_rx, a_tx) = a.into_split();
    let (b_rx, b_tx) = b.into_split();
    let wsio::ReuniteError(a_rx, b_tx) = a_rx.reunite(b_tx).expect_err("mismatched halves");
    let wsio::ReuniteError(b_rx, a_tx) = b_rx.reunite(a_tx).expect_err("mismatched halves");
    // The halves handed back are intact and pair up correctly.
    a_rx.reunite(a_tx).expect("a's halves");
    b_rx.reunite(b_tx).expect("b's halves");
}
