//! The connection's deadlines: keepalive pings, the pong deadline, the idle timeout and the
//! closing handshake's timeout, decided from the `now` values the runtime passes in.
//!
//! Activity is noticed lazily, when a check runs: the check runs at least every quarter of each
//! period, so a deadline is met within 1.25 times its duration, and the hot path (frames in and
//! out) never touches a clock or a timer.

use std::time::{Duration, Instant};

/// Which deadline passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Expired {
    /// The peer did not finish the closing handshake within the close timeout.
    Close,
    /// A keepalive ping went unanswered within the pong timeout.
    Pong,
    /// Nothing was sent or received within the idle timeout.
    Idle,
}

/// What a check asks of the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Due {
    /// Send a keepalive ping.
    Ping,
    /// Give up on the peer.
    Expired(Expired),
}

/// The durations the deadlines are made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Periods {
    pub(crate) ping_interval: Option<Duration>,
    pub(crate) pong_timeout: Duration,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) close_timeout: Duration,
}

/// Counters the checks compare to notice activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Activity {
    /// Frames received (any frame shows the peer is alive).
    pub(crate) frames_received: u64,
    /// Bytes read from the transport: a frame that takes long to arrive (a large one on a slow
    /// link) shows the peer alive all along, not only at its header.
    pub(crate) bytes_received: u64,
    /// Times the transport took bytes again after it had been full. A full transport drains
    /// only as the peer acknowledges what it was sent, so an upload on a slow link shows the
    /// peer alive even while the pong to our ping waits behind the upload's bytes; a peer that
    /// vanished never drains it.
    pub(crate) write_drains: u64,
    /// Data frames sent or received (what the idle timeout watches).
    pub(crate) data_events: u64,
}

impl Activity {
    /// Whether `self` shows a sign of life from the peer since `before`.
    #[inline]
    fn heard_since(&self, before: &Activity) -> bool {
        self.frames_received != before.frames_received
            || self.bytes_received != before.bytes_received
            || self.write_drains != before.write_drains
    }
}

#[derive(Debug)]
struct Watch {
    next_check: Instant,
    seen: Activity,
    last_heard: Instant,
    idle_since: Instant,
    /// A keepalive ping is out; the deadline for any frame from the peer.
    pong_deadline: Option<Instant>,
}

/// The deadlines of one connection.
#[derive(Debug)]
pub(crate) struct Timers {
    periods: Periods,
    /// Keepalive and idle watch, once started (at the first `now`), when either is configured.
    watch: Option<Box<Watch>>,
    /// The closing handshake began; its deadline is set at the next `now`.
    closing: bool,
    close_deadline: Option<Instant>,
    /// The latest the closing handshake may end, whatever the close timeout says (a server's
    /// shutdown gives every connection the same instant).
    close_limit: Option<Instant>,
}

impl Timers {
    pub(crate) fn new(periods: Periods) -> Self {
        Timers {
            periods,
            watch: None,
            closing: false,
            close_deadline: None,
            close_limit: None,
        }
    }

    #[inline]
    fn watches(&self) -> bool {
        self.periods.ping_interval.is_some() || self.periods.idle_timeout.is_some()
    }

    /// Whether a check should run at the next `now` rather than at the next deadline: a
    /// deadline waits to be set, or a keepalive ping was answered (the next interval starts
    /// from the answer, not from the pong deadline).
    #[inline]
    pub(crate) fn needs_now(&self, activity: Activity) -> bool {
        if self.closing {
            return self.close_deadline.is_none();
        }
        match &self.watch {
            None => self.watches(),
            Some(watch) => watch.pong_deadline.is_some() && activity.heard_since(&watch.seen),
        }
    }

    /// The closing handshake began (idempotent).
    pub(crate) fn start_closing(&mut self) {
        self.closing = true;
    }

    /// The closing handshake must end by `deadline`. When it begins with this call, `deadline`
    /// is its deadline (the caller chose how long it may take, in place of the close timeout);
    /// when it began before, the earlier of the two deadlines holds.
    pub(crate) fn close_by(&mut self, deadline: Instant) {
        let limit = self
            .close_limit
            .map_or(deadline, |limit| limit.min(deadline));
        self.close_limit = Some(limit);
        self.close_deadline = match (self.closing, self.close_deadline) {
            (false, _) => Some(limit),
            (true, Some(set)) => Some(set.min(limit)),
            // Set at the next `now`, from the close timeout and the limit.
            (true, None) => None,
        };
        self.closing = true;
    }

    /// The earliest deadline, once set.
    #[inline]
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let watch = self.watch.as_ref().map(|w| w.next_check);
        match (watch, self.close_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Sets pending deadlines from `now` and checks them against `activity`.
    pub(crate) fn check(&mut self, now: Instant, activity: Activity) -> Option<Due> {
        if self.closing && self.close_deadline.is_none() {
            let deadline = now + self.periods.close_timeout;
            self.close_deadline = Some(self.close_limit.map_or(deadline, |l| l.min(deadline)));
        }
        if self.close_deadline.is_some_and(|deadline| now >= deadline) {
            return Some(Due::Expired(Expired::Close));
        }
        if self.closing {
            // The closing handshake's own deadline is the only one that matters now.
            self.watch = None;
            return None;
        }
        if self.watch.is_none() && self.watches() {
            self.watch = Some(Box::new(Watch {
                next_check: now,
                seen: activity,
                last_heard: now,
                idle_since: now,
                pong_deadline: None,
            }));
        }
        let periods = self.periods;
        let watch = self.watch.as_mut()?;
        if now < watch.next_check
            && !(watch.pong_deadline.is_some() && activity.heard_since(&watch.seen))
        {
            return None;
        }
        if activity.heard_since(&watch.seen) {
            watch.last_heard = now;
            watch.pong_deadline = None;
        }
        if activity.data_events != watch.seen.data_events {
            watch.idle_since = now;
        }
        watch.seen = activity;
        let due = match watch.pong_deadline {
            Some(deadline) if now >= deadline => Some(Due::Expired(Expired::Pong)),
            _ => periods
                .idle_timeout
                .filter(|idle| now >= watch.idle_since + *idle)
                .map(|_| Due::Expired(Expired::Idle)),
        };
        if due.is_some() {
            return due;
        }
        let mut ping = None;
        if let (None, Some(interval)) = (watch.pong_deadline, periods.ping_interval) {
            if now >= watch.last_heard + interval {
                watch.pong_deadline = Some(now + periods.pong_timeout);
                ping = Some(Due::Ping);
            }
        }
        watch.next_check = next_check(watch, &periods, now);
        ping
    }
}

/// When the watch looks again: the pong deadline while a ping is out, else the earliest of the
/// keepalive and idle deadlines, and never later than a quarter of either period from now.
fn next_check(watch: &Watch, periods: &Periods, now: Instant) -> Instant {
    let mut next = now + Duration::from_secs(86_400);
    match (watch.pong_deadline, periods.ping_interval) {
        (Some(deadline), _) => next = next.min(deadline),
        (None, Some(interval)) => {
            next = next.min((watch.last_heard + interval).min(now + interval / 4))
        }
        (None, None) => {}
    }
    if let Some(idle) = periods.idle_timeout {
        next = next.min((watch.idle_since + idle).min(now + idle / 4));
    }
    next
}
