//! A peer that vanishes without a FIN: the cable is pulled between a wsio client and a wsio
//! server, through the fault-injecting proxy of `support::faulty` (no root or network namespace
//! needed). Neither end gets a FIN or an RST; each end's kernel keeps what it sent buffered.
//!
//! - With keepalive (`ping_interval` + `pong_timeout`), **both** roles notice and fail with a
//!   pong timeout, neither before `ping_interval + pong_timeout` after the last frame they heard
//!   nor later than `1.25 × ping_interval + pong_timeout` after the cable was pulled (the bound
//!   `Config::ping_interval` documents), plus [`SLACK`].
//! - Without keepalive nothing notices (`recv` stays pending: TCP alone cannot tell a dead peer
//!   from a silent one), and `close()` gives up after `close_timeout` with a close timeout.
//! - An end blocked in a send because the dead peer stopped reading (the kernel buffers on the
//!   path are full) fails with the pong timeout by the same deadline instead of hanging: whole
//!   messages through `send`, a `MessageWriter` upload, and a `ByteStream`'s write side.
//!
//! Each test prints its detection times (`--nocapture` shows them).

mod support;

use std::io;
use std::time::Duration;

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use wsio::error::Timeout;
use wsio::{Config, DataKind, Error, ErrorKind, Message};

use support::faulty::{ws_pair_through_proxy, Direction, ProxyOptions};
use support::stream::TcpWs;
use support::{pattern, within, within_for};

const INTERVAL: Duration = Duration::from_millis(300);
const PONG_TIMEOUT: Duration = Duration::from_millis(600);
const CLOSE_TIMEOUT: Duration = Duration::from_millis(500);

/// How much later than its documented bound a deadline may be noticed and still count as on
/// time. The bound is exact for the library's timer; what comes on top is the machine: the
/// timer wheel's millisecond rounding, and the test's tasks waiting for a core while other
/// test binaries and compilers share the two cores of the CI machine (observed: up to a few
/// tens of ms; the margin is ten times that).
const SLACK: Duration = Duration::from_millis(500);

/// The earliest a side may give up: a full interval of silence before its ping, then the whole
/// pong timeout, counted from the last frame it heard.
const EARLIEST: Duration = INTERVAL.saturating_add(PONG_TIMEOUT);

/// The latest a side may give up, counted from the moment the cable was pulled: silence is
/// noticed within a quarter interval (`Config::ping_interval`), so the ping leaves at most
/// 1.25 intervals after the last frame, and the pong deadline follows it.
const LATEST: Duration = Duration::from_millis(300 * 5 / 4 + 600).saturating_add(SLACK);

/// A keepalive configuration; compression off, so that the bytes a test sends are the bytes
/// that fill the buffers on the path.
fn keepalive() -> Config {
    Config::default()
        .ping_interval(Some(INTERVAL))
        .pong_timeout(PONG_TIMEOUT)
        .compression(None)
}

/// Small kernel buffers (Linux doubles the figure) on the ends and the proxy, so that a sender
/// facing a dead peer blocks after a few hundred KiB rather than after the megabytes that
/// loopback autotuning allows.
const SMALL_BUFFERS: ProxyOptions = ProxyOptions {
    socket_buffer: Some(64 * 1024),
    unsent_limit: None,
};

/// One message each way, so that both ends have just heard from the other: the last frame
/// each end hears is after `Instant::now()` at the start of this call.
async fn exchange(client: &mut TcpWs, server: &mut TcpWs) {
    within("client send", client.send_text("are you there?"))
        .await
        .unwrap();
    let got = within("server recv", server.recv()).await;
    assert_eq!(got.unwrap().unwrap(), Message::text("are you there?"));
    within("server send", server.send_text("yes"))
        .await
        .unwrap();
    let got = within("client recv", client.recv()).await;
    assert_eq!(got.unwrap().unwrap(), Message::text("yes"));
}

/// Receives until an error and returns it with when it came; panics if the connection ends
/// without one, or if nothing ends it within a generous bound.
async fn receive_until_error(ws: &mut TcpWs, what: &str) -> (Error, Instant) {
    let bound = LATEST + Duration::from_secs(3);
    within_for(bound, what, async {
        loop {
            match ws.recv().await {
                Some(Ok(_)) => {} // pings and pongs that crossed before the cable was pulled
                Some(Err(e)) => return (e, Instant::now()),
                None => panic!("{what}: ended without an error"),
            }
        }
    })
    .await
}

/// Checks that `err` is the pong timeout and that it came in the window: not before
/// [`EARLIEST`] after `last_heard_after`, not after [`LATEST`] after `pulled`.
fn assert_pong_timeout_in_window(
    what: &str,
    err: &Error,
    at: Instant,
    last_heard_after: Instant,
    pulled: Instant,
) {
    assert_eq!(err.kind(), ErrorKind::Timeout, "{what}: {err:?}");
    assert!(
        matches!(err, Error::Timeout(Timeout::Pong)),
        "{what}: {err:?}"
    );
    let since_heard = at.duration_since(last_heard_after);
    let since_pulled = at.duration_since(pulled);
    eprintln!("{what}: pong timeout {since_pulled:?} after the cable was pulled");
    assert!(
        since_heard >= EARLIEST,
        "{what}: gave up {since_heard:?} after the last exchange, before {EARLIEST:?}"
    );
    assert!(
        since_pulled <= LATEST,
        "{what}: gave up {since_pulled:?} after the cable was pulled, later than {LATEST:?}"
    );
}

#[tokio::test]
async fn keepalive_fails_both_roles_with_a_pong_timeout_when_the_cable_is_pulled() {
    let (proxy, mut client, mut server) =
        ws_pair_through_proxy(keepalive(), keepalive(), ProxyOptions::default()).await;
    let exchanged = Instant::now();
    exchange(&mut client, &mut server).await;
    proxy.blackhole();
    let pulled = Instant::now();
    let forwarded = [
        proxy.forwarded(Direction::ToTarget),
        proxy.forwarded(Direction::FromTarget),
    ];

    let ((client_err, client_at), (server_err, server_at)) = tokio::join!(
        receive_until_error(&mut client, "client"),
        receive_until_error(&mut server, "server"),
    );
    assert_pong_timeout_in_window("client", &client_err, client_at, exchanged, pulled);
    assert_pong_timeout_in_window("server", &server_err, server_at, exchanged, pulled);
    // Nothing crossed meanwhile: each end found out by itself (the first one's 1001 close and
    // FIN never reached the other).
    assert_eq!(
        forwarded,
        [
            proxy.forwarded(Direction::ToTarget),
            proxy.forwarded(Direction::FromTarget)
        ]
    );
    // Both are closed for good.
    assert!(within("client after", client.recv()).await.is_none());
    assert!(within("server after", server.recv()).await.is_none());
}

#[tokio::test]
async fn without_keepalive_a_pulled_cable_goes_unnoticed_until_close_times_out() {
    let config = Config::default()
        .close_timeout(CLOSE_TIMEOUT)
        .compression(None);
    let (proxy, mut client, mut server) =
        ws_pair_through_proxy(config.clone(), config, ProxyOptions::default()).await;
    exchange(&mut client, &mut server).await;
    proxy.blackhole();

    // Longer than keepalive of the other tests would take to notice, with room to spare:
    // without it, receiving waits as long as TCP does (for ever on an idle connection).
    const WATCH: Duration = Duration::from_millis(1500);
    let (client_recv, server_recv) = tokio::join!(
        tokio::time::timeout(WATCH, client.recv()),
        tokio::time::timeout(WATCH, server.recv()),
    );
    // `recv` is cancel-safe: dropping it after the watch loses nothing.
    assert!(client_recv.is_err(), "client noticed: {client_recv:?}");
    assert!(server_recv.is_err(), "server noticed: {server_recv:?}");

    // Closing is bounded even so: the close frame goes into the kernel buffer, the answer
    // never comes, and each role gives up after its close timeout.
    let ((client_closed, client_took), (server_closed, server_took)) =
        tokio::join!(close_timed(&mut client), close_timed(&mut server));
    for (what, result, took) in [
        ("client", client_closed, client_took),
        ("server", server_closed, server_took),
    ] {
        eprintln!("{what}: close gave up after {took:?}");
        let err = result.expect_err("nobody answered the close");
        assert!(
            matches!(err, Error::Timeout(Timeout::Close)),
            "{what}: {err:?}"
        );
        assert!(took >= CLOSE_TIMEOUT, "{what}: gave up early, {took:?}");
        assert!(
            took <= CLOSE_TIMEOUT + SLACK,
            "{what}: gave up late, {took:?}"
        );
    }
}

/// Closes `ws`; returns the result and how long it took.
async fn close_timed(ws: &mut TcpWs) -> (wsio::Result<()>, Duration) {
    let started = Instant::now();
    let result = within("close", ws.close(1000, "bye")).await;
    (result, started.elapsed())
}

/// The ways an application sends a lot.
#[derive(Debug, Clone, Copy)]
enum Upload {
    /// Whole 256 KiB messages through `send`.
    Messages,
    /// One endless message through `send_stream`, written in 64 KiB pieces.
    MessageWriter,
    /// The write side of a `ByteStream`, written in 64 KiB pieces.
    ByteStream,
}

/// What a sender did before it failed.
struct Stuck {
    err: Error,
    failed_at: Instant,
    /// When the last send or write that went through returned: from then on the sender made no
    /// progress.
    last_progress: Instant,
    bytes_accepted: usize,
}

/// Sends with `upload` until a send fails (it must, within the bound).
async fn send_until_error(ws: TcpWs, upload: Upload) -> Stuck {
    let bound = LATEST + Duration::from_secs(3);
    within_for(bound, "a sender blocked by a dead peer", async move {
        match upload {
            Upload::Messages => {
                let mut ws = ws;
                let message = Message::binary(pattern(1, 256 * 1024));
                let mut accepted = 0;
                let mut last_progress = Instant::now();
                loop {
                    match ws.send(message.clone()).await {
                        Ok(()) => {
                            accepted += 256 * 1024;
                            last_progress = Instant::now();
                        }
                        Err(err) => {
                            return Stuck {
                                err,
                                failed_at: Instant::now(),
                                last_progress,
                                bytes_accepted: accepted,
                            }
                        }
                    }
                }
            }
            Upload::MessageWriter => {
                let mut ws = ws;
                let mut writer = ws.send_stream(DataKind::Binary);
                write_until_error(&mut writer).await
            }
            Upload::ByteStream => {
                let mut stream = ws.into_byte_stream();
                write_until_error(&mut stream).await
            }
        }
    })
    .await
}

async fn write_until_error<W: AsyncWrite + Unpin>(writer: &mut W) -> Stuck {
    let piece = pattern(2, 64 * 1024);
    let mut accepted = 0;
    let mut last_progress = Instant::now();
    loop {
        match writer.write_all(&piece).await {
            Ok(()) => {
                accepted += piece.len();
                last_progress = Instant::now();
            }
            Err(err) => {
                return Stuck {
                    err: wsio_error(err),
                    failed_at: Instant::now(),
                    last_progress,
                    bytes_accepted: accepted,
                }
            }
        }
    }
}

/// The wsio error inside an I/O error from the stream API; the kind must be `TimedOut` for a
/// timeout, as `From<wsio::Error> for io::Error` promises.
fn wsio_error(err: io::Error) -> Error {
    let kind = err.kind();
    match err.into_inner().map(|inner| inner.downcast::<Error>()) {
        Some(Ok(inner)) => {
            if inner.kind() == ErrorKind::Timeout {
                assert_eq!(kind, io::ErrorKind::TimedOut, "{inner:?}");
            }
            *inner
        }
        Some(Err(other)) => Error::Io(io::Error::new(kind, other)),
        None => Error::Io(kind.into()),
    }
}

async fn blocked_sender_fails_with_a_pong_timeout(sender_is_client: bool, upload: Upload) {
    let (proxy, mut client, mut server) =
        ws_pair_through_proxy(keepalive(), keepalive(), SMALL_BUFFERS).await;
    let exchanged = Instant::now();
    exchange(&mut client, &mut server).await;
    proxy.blackhole();
    let pulled = Instant::now();
    let (sender, mut receiver, role) = if sender_is_client {
        (client, server, "client")
    } else {
        (server, client, "server")
    };

    // The receiver keeps receiving, as an application would; it never gets anything.
    let (stuck, (receiver_err, receiver_at)) = tokio::join!(
        send_until_error(sender, upload),
        receive_until_error(&mut receiver, "receiver"),
    );
    assert_pong_timeout_in_window(
        "the receiver of the upload",
        &receiver_err,
        receiver_at,
        exchanged,
        pulled,
    );
    let what = format!("{role} blocked in {upload:?}");
    let blocked_for = stuck.failed_at.duration_since(stuck.last_progress);
    eprintln!(
        "{what}: {} KiB accepted, then blocked for {blocked_for:?}",
        stuck.bytes_accepted / 1024
    );
    assert_pong_timeout_in_window(&what, &stuck.err, stuck.failed_at, exchanged, pulled);
    // It was blocked, not sending: the kernel buffers filled a few ms after the cable was
    // pulled, and the deadline is at least EARLIEST after the exchange, so the sender waited
    // most of that; half the pong timeout leaves room for a slow machine filling the buffers.
    assert!(
        blocked_for >= PONG_TIMEOUT / 2,
        "{what}: made progress until {blocked_for:?} before failing"
    );
}

#[tokio::test]
async fn a_client_blocked_in_send_by_a_dead_peer_fails_with_a_pong_timeout() {
    blocked_sender_fails_with_a_pong_timeout(true, Upload::Messages).await;
}

#[tokio::test]
async fn a_server_blocked_in_send_by_a_dead_peer_fails_with_a_pong_timeout() {
    blocked_sender_fails_with_a_pong_timeout(false, Upload::Messages).await;
}

#[tokio::test]
async fn a_client_blocked_in_a_message_writer_by_a_dead_peer_fails_with_a_pong_timeout() {
    blocked_sender_fails_with_a_pong_timeout(true, Upload::MessageWriter).await;
}

#[tokio::test]
async fn a_server_blocked_in_a_message_writer_by_a_dead_peer_fails_with_a_pong_timeout() {
    blocked_sender_fails_with_a_pong_timeout(false, Upload::MessageWriter).await;
}

#[tokio::test]
async fn a_client_blocked_in_a_byte_stream_write_by_a_dead_peer_fails_with_a_pong_timeout() {
    blocked_sender_fails_with_a_pong_timeout(true, Upload::ByteStream).await;
}

#[tokio::test]
async fn a_server_blocked_in_a_byte_stream_write_by_a_dead_peer_fails_with_a_pong_timeout() {
    blocked_sender_fails_with_a_pong_timeout(false, Upload::ByteStream).await;
}
