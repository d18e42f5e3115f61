//! What connections bring back (counts, errors, the timings they share) and the error kinds
//! the report counts.

use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;

/// Why a connection failed, as the report counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Failure {
    /// TCP: nobody listens at the address.
    ConnectRefused,
    /// TCP did not connect in time.
    ConnectTimeout,
    /// TCP failed otherwise (unreachable, resolution...).
    ConnectFailed,
    /// TLS failed (certificate, handshake).
    Tls,
    /// The server answered the upgrade with something other than 101.
    HandshakeRefused,
    /// The handshake was malformed, invalid or too slow.
    HandshakeFailed,
    /// The server closed the connection (or it vanished) while the run was going on.
    ClosedEarly,
    /// The server broke RFC 6455 or a size limit.
    Protocol,
    /// An echo did not match what was sent (wrong sequence, no prefix): not an echo server.
    BadEcho,
    /// Echoes were still missing well after the run ended, or a wsio timeout fired.
    Timeout,
    /// The closing handshake at the end did not complete.
    Close,
    /// Any other I/O error.
    Io,
}

impl Failure {
    /// The name in the report.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Failure::ConnectRefused => "connect_refused",
            Failure::ConnectTimeout => "connect_timeout",
            Failure::ConnectFailed => "connect_failed",
            Failure::Tls => "tls",
            Failure::HandshakeRefused => "handshake_refused",
            Failure::HandshakeFailed => "handshake_failed",
            Failure::ClosedEarly => "closed_early",
            Failure::Protocol => "protocol",
            Failure::BadEcho => "bad_echo",
            Failure::Timeout => "timeout",
            Failure::Close => "close",
            Failure::Io => "io",
        }
    }

    /// The kind of a TCP connect error.
    pub(crate) fn of_connect(e: &io::Error) -> Failure {
        match e.kind() {
            io::ErrorKind::ConnectionRefused => Failure::ConnectRefused,
            io::ErrorKind::TimedOut => Failure::ConnectTimeout,
            _ => Failure::ConnectFailed,
        }
    }

    /// The kind of an error from wsio during the handshake.
    pub(crate) fn of_handshake(e: &wsio::Error) -> Failure {
        match e.kind() {
            wsio::ErrorKind::Tls => Failure::Tls,
            wsio::ErrorKind::HandshakeRefused => Failure::HandshakeRefused,
            wsio::ErrorKind::Io if is_disconnect(e) => Failure::ClosedEarly,
            _ => Failure::HandshakeFailed,
        }
    }

    /// The kind of an error from wsio once the connection is open.
    pub(crate) fn of_open(e: &wsio::Error) -> Failure {
        match e.kind() {
            wsio::ErrorKind::Closed => Failure::ClosedEarly,
            wsio::ErrorKind::Io if is_disconnect(e) => Failure::ClosedEarly,
            wsio::ErrorKind::Io => Failure::Io,
            wsio::ErrorKind::Protocol
            | wsio::ErrorKind::InvalidUtf8
            | wsio::ErrorKind::Capacity => Failure::Protocol,
            wsio::ErrorKind::Timeout => Failure::Timeout,
            _ => Failure::Io,
        }
    }
}

/// The peer went away: end of stream, reset, broken pipe.
fn is_disconnect(e: &wsio::Error) -> bool {
    let wsio::Error::Io(e) = e else { return false };
    matches!(
        e.kind(),
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}

/// A failure and what it said.
#[derive(Debug, Clone)]
pub(crate) struct Failed {
    pub(crate) kind: Failure,
    pub(crate) message: String,
}

impl Failed {
    pub(crate) fn new(kind: Failure, message: impl std::fmt::Display) -> Failed {
        Failed {
            kind,
            message: message.to_string(),
        }
    }
}

/// What one connection counts as it goes; the counts of all of them merged.
#[derive(Debug, Clone, Default)]
pub(crate) struct Counts {
    /// Messages scheduled inside the measured window, and their bytes.
    pub(crate) sent: u64,
    pub(crate) sent_bytes: u64,
    /// Echoes of those messages, and their bytes.
    pub(crate) received: u64,
    pub(crate) received_bytes: u64,
    /// Connections opened (handshake done), and those with permessage-deflate agreed.
    pub(crate) opened: u64,
    pub(crate) deflate: u64,
    /// Connections that ran to the end without failing.
    pub(crate) completed: u64,
    /// Errors by kind: how many, and the first one's message.
    pub(crate) errors: BTreeMap<Failure, (u64, String)>,
}

impl Counts {
    pub(crate) fn error(&mut self, failed: Failed) {
        let entry = self
            .errors
            .entry(failed.kind)
            .or_insert_with(|| (0, failed.message));
        entry.0 += 1;
    }

    pub(crate) fn merge(&mut self, other: Counts) {
        self.sent += other.sent;
        self.sent_bytes += other.sent_bytes;
        self.received += other.received;
        self.received_bytes += other.received_bytes;
        self.opened += other.opened;
        self.deflate += other.deflate;
        self.completed += other.completed;
        for (kind, (count, message)) in other.errors {
            self.errors.entry(kind).or_insert((0, message)).0 += count;
        }
    }
}

/// Up to an hour, at 3 significant digits: about 270 KB of counters per histogram, which is
/// why connections share [`Timings`] instead of keeping their own (10,000 connections with
/// four each came to 10 GB, and the page faults of filling them to most of the client's time).
pub(crate) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("valid bounds")
}

/// Records `value` in nanoseconds, clamped to the histogram's range.
pub(crate) fn record(histogram: &mut Histogram<u64>, value: Duration) {
    let ns = u64::try_from(value.as_nanos()).unwrap_or(u64::MAX).max(1);
    histogram.saturating_record(ns);
}

/// One histogram that every connection records into, split into shards so that connections
/// on different threads seldom wait for each other's lock.
#[derive(Debug)]
pub(crate) struct Sharded {
    shards: Box<[Mutex<Histogram<u64>>]>,
}

/// Shards per histogram: a few per thread of a 2-to-8-core client keeps collisions rare.
const SHARDS: usize = 16;

impl Sharded {
    fn new() -> Sharded {
        Sharded {
            shards: (0..SHARDS).map(|_| Mutex::new(histogram())).collect(),
        }
    }

    /// Records `value` for connection `id`.
    pub(crate) fn record(&self, id: u32, value: Duration) {
        let shard = &self.shards[id as usize % SHARDS];
        record(&mut shard.lock().expect("never poisoned"), value);
    }

    /// All shards in one histogram.
    pub(crate) fn merged(&self) -> Histogram<u64> {
        let mut all = histogram();
        for shard in &self.shards {
            all.add(&*shard.lock().expect("never poisoned"))
                .expect("same bounds");
        }
        all
    }
}

/// The timings every connection records into.
#[derive(Debug)]
pub(crate) struct Timings {
    /// Nanoseconds from each measured message's scheduled send time to its echo.
    pub(crate) latency: Sharded,
    /// Nanoseconds to connect TCP, and then for TLS (if any) and the WebSocket handshake.
    pub(crate) connect: Sharded,
    pub(crate) handshake: Sharded,
}

impl Timings {
    pub(crate) fn new() -> Timings {
        Timings {
            latency: Sharded::new(),
            connect: Sharded::new(),
            handshake: Sharded::new(),
        }
    }
}

/// What the whole run measured: the merged counts and histograms.
#[derive(Debug)]
pub(crate) struct Tally {
    pub(crate) counts: Counts,
    pub(crate) latency: Histogram<u64>,
    /// Open loop: nanoseconds the pacer released each message after its scheduled time.
    pub(crate) pacer_lag: Histogram<u64>,
    pub(crate) connect: Histogram<u64>,
    pub(crate) handshake: Histogram<u64>,
}

/// What every connection adds to as it goes: the counters of the progress line, and the
/// timings.
#[derive(Debug)]
pub(crate) struct Live {
    pub(crate) timings: Timings,
    /// Echoes received (warm-up included) and their bytes.
    pub(crate) messages: AtomicU64,
    pub(crate) bytes: AtomicU64,
    /// Connections open now.
    pub(crate) open: AtomicU64,
    /// Connections failed so far.
    pub(crate) errors: AtomicU64,
}

impl Live {
    pub(crate) fn new() -> Live {
        Live {
            timings: Timings::new(),
            messages: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            open: AtomicU64::new(0),
            errors: AtomicU64::new(0),
        }
    }

    pub(crate) fn echo(&self, bytes: usize) {
        self.messages.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }
}
