//! Timeouts on an open connection, over real loopback TCP: keepalive pings with a pong timeout,
//! the idle timeout, and the close timeout.
//!
//! A "silent" peer is a wsio connection that the test does not poll: its kernel socket takes
//! what the library sends, but nothing is read or answered until the test looks afterwards.

mod support;

use std::time::Duration;

use tokio::time::Instant;
use wsio::error::Timeout;
use wsio::{CloseCode, Config, Error, ErrorKind, Message, ReadyState};

use support::stream::{tcp_pair_with, TcpWs};
use support::within;

const INTERVAL: Duration = Duration::from_millis(100);
const PONG_TIMEOUT: Duration = Duration::from_millis(200);
const IDLE: Duration = Duration::from_millis(250);
const CLOSE_TIMEOUT: Duration = Duration::from_millis(300);
/// How late a timeout may fire and still count as on time.
const SLACK: Duration = Duration::from_millis(1000);

fn keepalive() -> Config {
    Config::default()
        .ping_interval(Some(INTERVAL))
        .pong_timeout(PONG_TIMEOUT)
}

/// The library connection with `config` and a peer with the default config; `library_is_client`
/// picks the library's role.
async fn library_and_peer(config: Config, library_is_client: bool) -> (TcpWs, TcpWs) {
    if library_is_client {
        tcp_pair_with(config, Config::default()).await
    } else {
        let (client, server) = tcp_pair_with(Config::default(), config).await;
        (server, client)
    }
}

/// A peer that receives (answering pings, echoing data) until the close frame, which it
/// returns with the number of pings it saw; the close is answered before `recv` returns it.
async fn answering_peer(mut peer: TcpWs) -> (usize, Option<Message>) {
    let mut pings = 0;
    let mut close = None;
    while let Some(message) = peer.recv().await {
        match message {
            Ok(Message::Ping(_)) => pings += 1,
            Ok(m @ Message::Close(_)) => {
                close = Some(m);
                break;
            }
            Ok(m) if m.is_data() => {
                let _ = peer.send(m).await;
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    (pings, close)
}

fn going_away(message: &Option<Message>) -> bool {
    matches!(message, Some(Message::Close(Some(f))) if f.code == CloseCode::GOING_AWAY)
}

async fn silent_peer_fails_with_a_pong_timeout(library_is_client: bool) {
    let start = Instant::now();
    let (mut ws, mut peer) = library_and_peer(keepalive(), library_is_client).await;

    let err = within("keepalive timeout", ws.recv())
        .await
        .expect("an error, not the end")
        .expect_err("the silent peer must time out");
    let elapsed = start.elapsed();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err:?}");
    assert!(matches!(err, Error::Timeout(Timeout::Pong)), "{err:?}");
    // One interval before the ping, then the pong timeout.
    assert!(
        elapsed >= INTERVAL + PONG_TIMEOUT,
        "fired early: {elapsed:?}"
    );
    assert!(
        elapsed < INTERVAL + PONG_TIMEOUT + SLACK,
        "fired late: {elapsed:?}"
    );
    assert_eq!(ws.ready_state(), ReadyState::Closed);
    assert!(within("after the timeout", ws.recv()).await.is_none());
    // A send afterwards says why nothing can be sent any more, as the receiver was told.
    let err = within("send after", ws.send_text("late"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout(Timeout::Pong)), "{err:?}");

    // What reached the peer meanwhile: exactly one keepalive ping, then a 1001 close.
    assert_eq!(
        within("peer", peer.recv()).await.unwrap().unwrap(),
        Message::Ping(Default::default())
    );
    let close = within("peer", peer.recv()).await.unwrap().ok();
    assert!(going_away(&close), "expected a 1001 close, got {close:?}");
    // The transport was closed with the timeout, while `ws` is still alive: the peer's
    // connection ends now, not after its close timeout or when `ws` is dropped.
    let started = Instant::now();
    while let Some(Ok(_)) = within("peer end", peer.recv()).await {}
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "peer ended late: {:?}",
        started.elapsed()
    );
    drop(ws);
}

#[tokio::test]
async fn keepalive_fails_a_silent_peer_with_a_pong_timeout_and_closes_1001_as_client() {
    silent_peer_fails_with_a_pong_timeout(true).await;
}

#[tokio::test]
async fn keepalive_fails_a_silent_peer_with_a_pong_timeout_and_closes_1001_as_server() {
    silent_peer_fails_with_a_pong_timeout(false).await;
}

async fn responsive_peer_stays_connected(library_is_client: bool) {
    let (mut ws, peer) = library_and_peer(keepalive(), library_is_client).await;
    let peer = tokio::spawn(answering_peer(peer));

    // Receive for five intervals: only keepalive pongs arrive, and nothing fails.
    let until = Instant::now() + 5 * INTERVAL + INTERVAL / 2;
    let mut pongs = 0;
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(until) => break,
            message = ws.recv() => match message {
                Some(Ok(Message::Pong(payload))) => {
                    assert!(payload.is_empty(), "keepalive pings are empty");
                    pongs += 1;
                }
                other => panic!("the connection did not stay quietly open: {other:?}"),
            },
        }
    }
    assert!(pongs >= 3, "only {pongs} keepalive pongs in five intervals");

    // Messages still flow.
    within("send", ws.send_text("still here")).await.unwrap();
    let echo = within("echo", async {
        loop {
            match ws.recv().await {
                Some(Ok(Message::Pong(_))) => {}
                other => return other,
            }
        }
    })
    .await;
    assert_eq!(echo.unwrap().unwrap(), Message::text("still here"));

    within("close", ws.close(1000, "")).await.unwrap();
    let (pings, _) = within("peer", peer).await.unwrap();
    assert!(
        pings >= pongs,
        "the peer saw {pings} pings, we saw {pongs} pongs"
    );
}

#[tokio::test]
async fn keepalive_keeps_a_responsive_peer_connected_as_client() {
    responsive_peer_stays_connected(true).await;
}

#[tokio::test]
async fn keepalive_keeps_a_responsive_peer_connected_as_server() {
    responsive_peer_stays_connected(false).await;
}

#[tokio::test]
async fn keepalive_does_not_ping_while_frames_keep_arriving() {
    let (mut ws, mut peer) = library_and_peer(keepalive(), true).await;
    let sender = tokio::spawn(async move {
        for i in 0..20 {
            peer.send_text(format!("{i}")).await.unwrap();
            tokio::time::sleep(INTERVAL / 5).await;
        }
        // Then receive: whatever the library sent meanwhile, up to its close.
        answering_peer(peer).await
    });
    for i in 0..20 {
        let message = within("message", ws.recv()).await.unwrap().unwrap();
        assert_eq!(message, Message::text(format!("{i}")));
    }
    within("close", ws.close(1000, "")).await.unwrap();
    let (pings, _) = within("peer", sender).await.unwrap();
    assert_eq!(pings, 0, "keepalive pinged a peer that kept sending");
}

#[tokio::test]
async fn idle_timeout_closes_a_connection_without_data() {
    let start = Instant::now();
    let config = Config::default().idle_timeout(Some(IDLE));
    let (mut ws, peer) = library_and_peer(config, false).await;
    let peer = tokio::spawn(answering_peer(peer));

    let err = within("idle timeout", ws.recv())
        .await
        .expect("an error, not the end")
        .unwrap_err();
    let elapsed = start.elapsed();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err:?}");
    assert!(matches!(err, Error::Timeout(Timeout::Idle)), "{err:?}");
    assert!(elapsed >= IDLE, "fired early: {elapsed:?}");
    assert!(elapsed < IDLE + SLACK, "fired late: {elapsed:?}");

    let (_, close) = within("peer", peer).await.unwrap();
    assert!(going_away(&close), "expected a 1001 close, got {close:?}");
}

#[tokio::test]
async fn idle_timeout_does_not_fire_while_messages_arrive() {
    const MESSAGES: usize = 16;
    let config = Config::default().idle_timeout(Some(IDLE));
    let (mut ws, mut peer) = library_and_peer(config, false).await;
    let peer = tokio::spawn(async move {
        for i in 0..MESSAGES {
            peer.send_text(format!("{i}")).await.unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        answering_peer(peer).await
    });

    // 16 messages 50 ms apart: over three idle timeouts long, never idle for one.
    for i in 0..MESSAGES {
        let message = within("message", ws.recv()).await.unwrap().unwrap();
        assert_eq!(message, Message::text(format!("{i}")));
    }
    // Once the messages stop, the timeout does fire: it was armed all along.
    let stopped = Instant::now();
    let err = within("idle timeout", ws.recv())
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, Error::Timeout(Timeout::Idle)), "{err:?}");
    assert!(stopped.elapsed() < IDLE + SLACK);
    let (_, close) = within("peer", peer).await.unwrap();
    assert!(going_away(&close), "{close:?}");
}

#[tokio::test]
async fn idle_timeout_counts_messages_sent_as_activity() {
    const MESSAGES: usize = 16;
    let config = Config::default().idle_timeout(Some(IDLE));
    let (mut ws, peer) = library_and_peer(config, false).await;
    let peer = tokio::spawn(async move {
        let mut peer = peer;
        let mut received = 0;
        while let Some(Ok(message)) = peer.recv().await {
            if message.is_data() {
                received += 1;
            }
        }
        received
    });

    // Only the library sends, one message every 50 ms, while it receives (the timeout is
    // watched by receiving): nothing arrives, yet the connection is not idle.
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    let mut sent = 0;
    while sent < MESSAGES {
        tokio::select! {
            _ = tick.tick() => {
                within("send", ws.send_text("tick")).await.unwrap();
                sent += 1;
            }
            message = ws.recv() => panic!("nothing should arrive: {message:?}"),
        }
    }
    within("close", ws.close(1000, "")).await.unwrap();
    assert_eq!(within("peer", peer).await.unwrap(), MESSAGES);
}

#[tokio::test]
async fn pings_from_the_peer_do_not_hold_off_the_idle_timeout() {
    let start = Instant::now();
    let config = Config::default().idle_timeout(Some(IDLE));
    let (mut ws, mut peer) = library_and_peer(config, false).await;
    let peer = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(40));
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if peer.send(Message::Ping("hello?".into())).await.is_err() {
                        return None;
                    }
                }
                message = peer.recv() => match message {
                    Some(Ok(m @ Message::Close(_))) => return Some(m),
                    Some(Ok(_)) => {}
                    _ => return None,
                },
            }
        }
    });

    let mut pings = 0;
    let err = within("idle timeout", async {
        loop {
            match ws.recv().await {
                Some(Ok(Message::Ping(_))) => pings += 1,
                Some(Err(e)) => return e,
                other => panic!("unexpected: {other:?}"),
            }
        }
    })
    .await;
    assert!(matches!(err, Error::Timeout(Timeout::Idle)), "{err:?}");
    assert!(start.elapsed() < IDLE + SLACK);
    assert!(pings >= 3, "the peer pinged only {pings} times");
    let close = within("peer", peer).await.unwrap();
    assert!(going_away(&close), "{close:?}");
}

#[tokio::test]
async fn keepalive_pings_do_not_hold_off_the_idle_timeout() {
    let config = Config::default()
        .idle_timeout(Some(IDLE))
        .ping_interval(Some(Duration::from_millis(40)))
        .pong_timeout(Duration::from_secs(2));
    let (mut ws, peer) = library_and_peer(config, true).await;
    let peer = tokio::spawn(answering_peer(peer));

    let err = within("idle timeout", async {
        loop {
            match ws.recv().await {
                Some(Ok(Message::Pong(_))) => {}
                Some(Err(e)) => return e,
                other => panic!("unexpected: {other:?}"),
            }
        }
    })
    .await;
    assert!(matches!(err, Error::Timeout(Timeout::Idle)), "{err:?}");
    let (pings, close) = within("peer", peer).await.unwrap();
    assert!(pings >= 2, "keepalive sent only {pings} pings");
    assert!(going_away(&close), "{close:?}");
}

async fn close_gives_up_on_a_silent_peer(library_is_client: bool) {
    let config = Config::default().close_timeout(CLOSE_TIMEOUT);
    let (mut ws, mut peer) = library_and_peer(config, library_is_client).await;

    let start = Instant::now();
    let err = within("close", ws.close(1000, "bye"))
        .await
        .expect_err("the peer never answered");
    let elapsed = start.elapsed();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err:?}");
    assert!(matches!(err, Error::Timeout(Timeout::Close)), "{err:?}");
    assert!(elapsed >= CLOSE_TIMEOUT, "gave up early: {elapsed:?}");
    assert!(elapsed < CLOSE_TIMEOUT + SLACK, "gave up late: {elapsed:?}");
    assert_eq!(ws.ready_state(), ReadyState::Closed);
    // Closing again is a no-op, not another wait.
    within_quickly(ws.close(1000, "again")).await.unwrap();

    // The close frame did go out.
    match within("peer", peer.recv()).await.unwrap().unwrap() {
        Message::Close(Some(frame)) => {
            assert_eq!(frame.code, CloseCode::NORMAL);
            assert_eq!(frame.reason.as_str(), "bye");
        }
        other => panic!("expected the close frame, got {other:?}"),
    }
}

async fn within_quickly<F: std::future::Future>(fut: F) -> F::Output {
    support::within_for(Duration::from_millis(100), "an immediate result", fut).await
}

#[tokio::test]
async fn close_returns_a_timeout_when_the_peer_never_answers_as_client() {
    close_gives_up_on_a_silent_peer(true).await;
}

#[tokio::test]
async fn close_returns_a_timeout_when_the_peer_never_answers_as_server() {
    close_gives_up_on_a_silent_peer(false).await;
}

#[tokio::test]
async fn read_half_ends_with_a_close_timeout_when_the_peer_never_answers() {
    let config = Config::default().close_timeout(CLOSE_TIMEOUT);
    let (ws, _peer) = library_and_peer(config, true).await;
    let (mut read, mut write) = ws.into_split();
    let start = Instant::now();
    within("close", write.close(1000, "")).await.unwrap();
    let err = within("read half", read.recv())
        .await
        .expect("an error, not the end")
        .unwrap_err();
    assert!(matches!(err, Error::Timeout(Timeout::Close)), "{err:?}");
    assert!(start.elapsed() >= CLOSE_TIMEOUT);
    assert!(start.elapsed() < CLOSE_TIMEOUT + SLACK);
}

#[tokio::test]
async fn client_close_waits_at_most_the_close_timeout_for_the_server_to_end_tcp() {
    let config = Config::default().close_timeout(CLOSE_TIMEOUT);
    let (mut ws, mut peer) = library_and_peer(config, true).await;
    let start = Instant::now();
    let (closed, received) = tokio::join!(
        within("close", ws.close(1000, "")),
        // The server answers the close (its recv writes the echo), then holds TCP open.
        within("peer", peer.recv()),
    );
    assert!(
        matches!(received, Some(Ok(Message::Close(_)))),
        "{received:?}"
    );
    // The handshake completed, so it is no error; the client just stopped waiting for TCP.
    closed.unwrap();
    let elapsed = start.elapsed();
    assert!(
        elapsed >= CLOSE_TIMEOUT,
        "did not wait for the server: {elapsed:?}"
    );
    assert!(
        elapsed < CLOSE_TIMEOUT + SLACK,
        "waited too long: {elapsed:?}"
    );
    assert_eq!(ws.close_code(), Some(CloseCode::NORMAL));
    drop(peer);
}
