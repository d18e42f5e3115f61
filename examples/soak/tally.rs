//! The counters every client task adds to, and the errors by kind, read by the 10-s lines and
//! the verdict.

use std::fmt;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

/// What can go wrong on the client side. Every kind fails the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// A sequence number skipped, or a message never echoed by the end.
    Lost,
    /// A sequence number that came again, or came after a later one (a reordering therefore
    /// counts one lost, when the later message arrives, and one duplicated).
    Duplicated,
    /// An echo whose header, length, checksum or kind is not what was sent.
    Corrupted,
    /// A held connection could not be opened during the ramp.
    OpenFailed,
    /// An echoing connection ended with an error.
    EchoFailed,
    /// A short-lived connection failed: connect, handshake, echo or close.
    ChurnFailed,
    /// An idle connection ended, or received something, before the end.
    IdleLost,
    /// An idle connection did not echo its check message at the end, or did not close.
    IdleCheckFailed,
}

impl Fault {
    pub(crate) const ALL: [Fault; 8] = [
        Fault::Lost,
        Fault::Duplicated,
        Fault::Corrupted,
        Fault::OpenFailed,
        Fault::EchoFailed,
        Fault::ChurnFailed,
        Fault::IdleLost,
        Fault::IdleCheckFailed,
    ];

    fn name(self) -> &'static str {
        match self {
            Fault::Lost => "lost",
            Fault::Duplicated => "duplicated",
            Fault::Corrupted => "corrupted",
            Fault::OpenFailed => "open-failed",
            Fault::EchoFailed => "echo-failed",
            Fault::ChurnFailed => "churn-failed",
            Fault::IdleLost => "idle-lost",
            Fault::IdleCheckFailed => "idle-check-failed",
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Shared counters; relaxed atomics, since each is read on its own.
#[derive(Default)]
pub(crate) struct Tally {
    /// Echoes checked on the echoing connections.
    pub(crate) messages: AtomicU64,
    /// Bytes of those echoes (headers and bodies).
    pub(crate) bytes: AtomicU64,
    /// Messages sent on the echoing connections.
    pub(crate) sent: AtomicU64,
    /// Held connections (echoing and idle) open on the client side.
    pub(crate) held_open: AtomicI64,
    /// Short-lived connections under way.
    pub(crate) churn_open: AtomicI64,
    /// Short-lived connections that ended with a closing handshake.
    pub(crate) churn_clean: AtomicU64,
    /// Short-lived connections dropped without one.
    pub(crate) churn_dropped: AtomicU64,
    /// Idle connections that echoed their check message at the end.
    pub(crate) idle_checked: AtomicU64,
    /// Short-lived connections not started because too many were under way.
    pub(crate) churn_skipped: AtomicU64,
    faults: [AtomicU64; Fault::ALL.len()],
    /// The first occurrence of each fault, to show what it was.
    examples: Mutex<[Option<String>; Fault::ALL.len()]>,
}

impl Tally {
    /// Counts `count` faults of `kind`, keeping the first description.
    pub(crate) fn fault(&self, kind: Fault, count: u64, what: impl fmt::Display) {
        if count == 0 {
            return;
        }
        let index = kind as usize;
        if self.faults[index].fetch_add(count, Ordering::Relaxed) == 0 {
            let mut examples = self.examples.lock().expect("no panics while locked");
            examples[index].get_or_insert_with(|| what.to_string());
        }
    }

    pub(crate) fn faults(&self, kind: Fault) -> u64 {
        self.faults[kind as usize].load(Ordering::Relaxed)
    }

    pub(crate) fn total_faults(&self) -> u64 {
        Fault::ALL.iter().map(|&kind| self.faults(kind)).sum()
    }

    /// `kind=count` for every fault seen so far, or `none`.
    pub(crate) fn faults_line(&self) -> String {
        let seen: Vec<String> = Fault::ALL
            .iter()
            .filter(|&&kind| self.faults(kind) > 0)
            .map(|&kind| format!("{kind}={}", self.faults(kind)))
            .collect();
        if seen.is_empty() {
            "none".into()
        } else {
            seen.join(",")
        }
    }

    /// One line per fault kind seen: its count and its first occurrence.
    pub(crate) fn fault_examples(&self) -> Vec<String> {
        let examples = self.examples.lock().expect("no panics while locked");
        Fault::ALL
            .iter()
            .filter(|&&kind| self.faults(kind) > 0)
            .map(|&kind| {
                let example = examples[kind as usize].as_deref().unwrap_or("?");
                format!("{kind} × {}: first: {example}", self.faults(kind))
            })
            .collect()
    }

    pub(crate) fn churn_done(&self) -> u64 {
        self.churn_clean.load(Ordering::Relaxed) + self.churn_dropped.load(Ordering::Relaxed)
    }
}

/// Keeps a gauge up while it lives: `held_open` or `churn_open`.
pub(crate) struct Gauge<'a>(&'a AtomicI64);

impl<'a> Gauge<'a> {
    pub(crate) fn up(gauge: &'a AtomicI64) -> Self {
        gauge.fetch_add(1, Ordering::Relaxed);
        Gauge(gauge)
    }
}

impl Drop for Gauge<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
