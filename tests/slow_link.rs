//! A large upload over a slow link: a wsio client streams one message through a
//! `MessageWriter` to a wsio server, through the fault-injecting proxy of `support::faulty`
//! throttled to a few Mbit/s each way, with keepalive on. It shows that:
//!
//! - the message arrives intact: the receiver checks every byte against the deterministic
//!   pattern as it reads it through a `MessageReader`, never holding the message;
//! - memory stays flat on both sides: this process's resident set (both ends live in it) grows
//!   by far less than the message while it streams ([`MEMORY_BOUND`] says how much and why);
//! - keepalive does not kill a connection that is merely slow: the upload takes many
//!   `ping_interval + pong_timeout` periods. The receiver hears the upload's bytes all along.
//!   The uploader's own pings would wait behind the upload in its kernel send buffer (megabytes
//!   on Linux loopback, where the buffers autotune up to `tcp_wmem`'s 4 MiB) and their pongs
//!   come back seconds late; with the unsent limit wsio's dialer sets
//!   (`wsio::transport::limit_unsent`, 128 KiB) they wait behind at most that, and the
//!   uploader's transport draining counts as a sign of life. One test runs keepalive on the
//!   receiver only, one on both sides.
//!
//! By default (CI) it sends 4 MiB at 4 Mbit/s, about 8 s. `WSIO_LONG=1` in the environment
//! runs the long version: 64 MiB at 1 Mbit/s, about 9 minutes.
//!
//! The tests take turns ([`ONE_AT_A_TIME`]), so that nothing else streams in the process while
//! one measures the resident set.

mod support;

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;
use wsio::{Config, DataKind, Message};

use support::faulty::{ws_pair_through_proxy, Direction, ProxyOptions};
use support::stream::{Repeating, TcpWs};
use support::within_for;

/// The size of the upload and the rate of the link, each way.
struct Plan {
    message_size: u64,
    bytes_per_sec: u64,
}

fn plan() -> Plan {
    if std::env::var("WSIO_LONG").is_ok_and(|v| v == "1") {
        Plan {
            message_size: 64 << 20,
            bytes_per_sec: 1_000_000 / 8, // 1 Mbit/s
        }
    } else {
        Plan {
            message_size: 4 << 20,
            bytes_per_sec: 4_000_000 / 8, // 4 Mbit/s
        }
    }
}

/// Keepalive well inside the upload's duration, so that it runs many times during it.
const PING_INTERVAL: Duration = Duration::from_millis(500);
const PONG_TIMEOUT: Duration = Duration::from_secs(1);

/// Frames of 64 KiB rather than the default 1 MiB: the size a slow-link application picks, as a
/// control frame queued in the library waits behind at most one frame (1 MiB takes 8 s at
/// 1 Mbit/s), and the writer's frame buffer, which grows to the fragment size, stays small
/// next to the CI message, so that the memory bound below means something at 4 MiB.
const FRAGMENT: usize = 64 * 1024;

/// How much the resident set may grow while the message streams, for both ends together. What
/// the library may hold, by its documented bounds (`src/config.rs`): on the sending side the
/// writer's frame buffer (at most `stream_fragment_size`, [`FRAGMENT`] here) and the transmit
/// queue (`write_buffer_size`, 128 KiB); on the receiving side the read buffer
/// (`read_buffer_size`, 8 KiB, growing to at most a frame) and the read-ahead
/// (`read_ahead_size`, 1 MiB, used only while nobody receives: here someone always does). That
/// is under 0.5 MiB with the test's own 64 KiB pieces; measured, the resident set grows by
/// about 0.85 MiB (allocator and runtime slack), the same for 4 MiB and 64 MiB. The bound is
/// twice the measurement plus a little, and half the CI message: a library that held the
/// message would pass it (4 MiB in CI, 64 MiB in the long run).
const MEMORY_BOUND: u64 = 2 << 20;

/// Taken by each test for its whole run: only one streams while it measures the resident set.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The pieces the uploader writes and the receiver reads.
const PIECE: usize = 64 * 1024;

/// The config of both ends, with keepalive or without. Compression off: the payload does not
/// compress, so deflate would only add its fixed state (about 1 MiB of resident set, measured)
/// to the measurement; its memory is measured by `examples/idle_memory.rs`.
fn config(keepalive: bool) -> Config {
    let config = Config::default()
        .stream_fragment_size(FRAGMENT)
        .compression(None);
    if keepalive {
        config
            .ping_interval(Some(PING_INTERVAL))
            .pong_timeout(PONG_TIMEOUT)
    } else {
        config
    }
}

/// This process's resident set in bytes (`VmRSS` of `/proc/self/status`).
fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .expect("a VmRSS line");
    let kib: u64 = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .expect("VmRSS in kB");
    kib * 1024
}

/// Streams `size` bytes of `pattern` as one binary message, then waits for the receiver's
/// acknowledgement (a text message with the count it checked) while still answering pings.
async fn upload(ws: &mut TcpWs, pattern: &Repeating, size: u64) -> (u64, Instant) {
    let mut piece = vec![0u8; PIECE];
    {
        let mut writer = ws.send_stream(DataKind::Binary);
        let mut offset = 0u64;
        while offset < size {
            let len = PIECE.min((size - offset) as usize);
            pattern.fill(offset, &mut piece[..len]);
            writer
                .write_all(&piece[..len])
                .await
                .unwrap_or_else(|e| panic!("uploader: write at offset {offset} failed: {e:?}"));
            offset += len as u64;
        }
        writer
            .shutdown()
            .await
            .unwrap_or_else(|e| panic!("uploader: the final frame failed: {e:?}"));
    }
    let written = Instant::now();
    loop {
        match ws.recv().await {
            Some(Ok(Message::Text(ack))) => {
                let checked = ack.as_str().parse().expect("a byte count");
                return (checked, written);
            }
            Some(Ok(_)) => {} // pings and pongs
            Some(Err(e)) => panic!(
                "uploader: waiting for the acknowledgement failed {:?} after the writer was done: \
                 {e:?}",
                written.elapsed()
            ),
            None => panic!("uploader: the connection ended before the acknowledgement"),
        }
    }
}

/// Reads one message through a `MessageReader`, checking every byte against `pattern` as it
/// arrives; samples the resident set every piece. Acknowledges with the byte count. Returns
/// the count and the largest resident set seen.
async fn receive_and_check(ws: &mut TcpWs, pattern: &Repeating) -> (u64, u64) {
    let mut buf = vec![0u8; PIECE];
    let mut want = vec![0u8; PIECE];
    let mut checked = 0u64;
    let mut peak = resident_bytes();
    {
        let mut reader = match ws.recv_stream().await {
            Some(Ok(reader)) => reader,
            other => panic!("receiver: expected a message, got {other:?}"),
        };
        assert_eq!(reader.kind(), DataKind::Binary);
        loop {
            let n = reader
                .read(&mut buf)
                .await
                .unwrap_or_else(|e| panic!("receiver: read at offset {checked} failed: {e:?}"));
            if n == 0 {
                break;
            }
            pattern.fill(checked, &mut want[..n]);
            if buf[..n] != want[..n] {
                let at = buf[..n].iter().zip(&want[..n]).position(|(a, b)| a != b);
                panic!(
                    "receiver: wrong byte at offset {}",
                    checked + at.unwrap() as u64
                );
            }
            checked += n as u64;
            peak = peak.max(resident_bytes());
        }
        assert!(reader.is_finished());
    }
    ws.send_text(checked.to_string())
        .await
        .unwrap_or_else(|e| panic!("receiver: the acknowledgement failed: {e:?}"));
    (checked, peak)
}

/// The upload of [`plan`] from a client to a server, with keepalive on the uploader or not (the
/// receiver always has it), checked as the file's docs say.
async fn slow_upload(uploader_keepalive: bool) {
    let _alone = ONE_AT_A_TIME.lock().await;
    let Plan {
        message_size,
        bytes_per_sec,
    } = plan();
    // Both ends limit what waits unsent in the kernel, as wsio's dialer does by default
    // (`ClientBuilder::unsent_limit`) and its docs advise servers to: without a limit, the
    // uploader's kernel takes megabytes (loopback autotunes its buffer to 4 MiB), its pings
    // wait seconds behind them, and a blocked writer is woken only after a third of that has
    // drained, seconds apart at these rates, so a keepalive of a second's patience gives up.
    let options = ProxyOptions {
        unsent_limit: Some(wsio::transport::DEFAULT_UNSENT_LIMIT),
        ..ProxyOptions::default()
    };
    let (proxy, mut client, mut server) =
        ws_pair_through_proxy(config(uploader_keepalive), config(true), options).await;
    proxy.throttle(Direction::ToTarget, Some(bytes_per_sec));
    proxy.throttle(Direction::FromTarget, Some(bytes_per_sec));
    let pattern = Repeating::new(0x510_711);
    let baseline = resident_bytes();

    let expected = Duration::from_secs_f64(message_size as f64 / bytes_per_sec as f64);
    // Generous: the rate is a ceiling the proxy enforces; a loaded machine only adds to it.
    let bound = expected * 3 + Duration::from_secs(30);
    let started = Instant::now();
    let ((acknowledged, written), (checked, peak)) = within_for(bound, "the slow upload", async {
        tokio::join!(
            upload(&mut client, &pattern, message_size),
            receive_and_check(&mut server, &pattern),
        )
    })
    .await;
    let took = started.elapsed();

    assert_eq!(checked, message_size, "the receiver checked every byte");
    assert_eq!(acknowledged, message_size, "the uploader heard so");
    let growth = peak.saturating_sub(baseline);
    eprintln!(
        "{} MiB at {} KiB/s: {took:?} (the writer was done after {:?}); resident set grew by {} KiB",
        message_size >> 20,
        bytes_per_sec / 1024,
        written.duration_since(started),
        growth / 1024
    );
    // The link was really slow: the token bucket lets at most a tenth of a second's burst
    // through ahead of the rate, so the upload took at least this long (a ceiling on speed the
    // proxy guarantees, not a measurement of the machine).
    let at_least = expected.saturating_sub(Duration::from_millis(200));
    assert!(
        took >= at_least,
        "the link was not throttled: {took:?} < {at_least:?}"
    );
    assert!(
        took > (PING_INTERVAL + PONG_TIMEOUT) * 4,
        "too short to show keepalive living with it: {took:?}"
    );
    assert!(
        growth < MEMORY_BOUND,
        "resident set grew by {} KiB while {} MiB streamed (bound {} KiB)",
        growth / 1024,
        message_size >> 20,
        MEMORY_BOUND / 1024
    );

    // Still alive at the end, both ways: a round trip, then a normal close.
    within_for(bound, "a message after the upload", async {
        client.send_text("done").await.unwrap();
        match server.recv().await {
            Some(Ok(Message::Text(text))) => assert_eq!(text.as_str(), "done"),
            other => panic!("server: {other:?}"),
        }
    })
    .await;
    let (client_closed, server_end) = within_for(bound, "closing", async {
        tokio::join!(client.close(1000, "bye"), async {
            while let Some(message) = server.recv().await {
                message?;
            }
            Ok::<_, wsio::Error>(())
        })
    })
    .await;
    client_closed.expect("client close");
    server_end.expect("server end");
}

#[tokio::test]
async fn a_large_upload_over_a_slow_link_arrives_intact_in_flat_memory_with_a_keepalive_receiver() {
    slow_upload(false).await;
}

#[tokio::test]
async fn keepalive_on_both_sides_lets_a_slow_upload_live() {
    slow_upload(true).await;
}
