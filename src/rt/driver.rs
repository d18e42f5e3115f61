//! Drives a [`Connection`] over an `AsyncRead + AsyncWrite`: the one place that reads and writes.
//!
//! Every method is a `poll_*` that keeps all its progress in the struct, which is what makes the
//! public async methods built on it cancel-safe. Whoever polls, for whatever reason, moves the
//! connection along: a receiver writes the replies the core queued, a sender reads ahead what
//! the peer sent (bounded), so pings are answered and the peer's close is seen whether the
//! application reads, writes or both. The transport is always polled with the waker of
//! [`TaskWakers`], so a reader and a writer in two tasks never take each other's wake-ups.

use std::collections::VecDeque;
use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll, Waker};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::oneshot;
use tokio::time::{Instant, Sleep};

use super::shutdown::{Ending, Registration, Shutdown};
use super::wakers::{Registered, Side, TaskWakers};
use crate::config::Config;
use crate::error::Error;
use crate::handshake::Negotiated;
use crate::proto::close::CloseFrame;
use crate::proto::connection::Connection;
use crate::proto::decoder::{DataKind, DirectChunk};
use crate::proto::encoder::MAX_IO_SLICES;
use crate::proto::{Consumer, Expired, Received, Role};
use crate::trace::{self, conn_event, ConnSpan};

/// The largest read of the stream API. Streamed reads start at `Config::read_buffer_size`
/// and double while reads fill the room they are given, so a bulk transfer reaches few, large
/// reads while a trickle of small messages keeps small buffers.
const STREAM_READ_MAX: usize = 1024 * 1024;

/// The most a read into the stack takes (see `Driver::poll_probe`): a burst of small messages
/// at once, little enough that a large frame's first read copies little.
const PROBE_READ: usize = 4 * 1024;

/// How often a sender that is the only one polling reads what the peer sent, at most (it reads
/// only when the transport has news): often enough that pings are answered and a close is seen
/// at once on a human scale, rarely enough that a burst of sends is not cut into small reads.
/// The real clock, not tokio's: a paused test clock must not stop reading. A sender waiting for
/// room in the write buffer reads at once, whatever the interval (the peer may be waiting for
/// us to read before it reads).
const SENDER_READ_INTERVAL: Duration = Duration::from_millis(1);

/// A connection and its transport.
#[derive(Debug)]
pub(crate) struct Driver<S> {
    io: S,
    conn: Connection,
    read_buf: BytesMut,
    config: Config,
    wakers: Arc<TaskWakers>,
    registered: Registered,
    /// Two tasks have polled the connection (one per side): see [`on_side`](Self::on_side).
    split: bool,
    /// Wakes both sides: what the transport and the timer are polled with.
    io_waker: Waker,
    /// The one timer, armed at the core's next deadline.
    timer: Option<Pin<Box<Sleep>>>,
    timer_at: Option<std::time::Instant>,
    /// The room the next streamed read is given (see [`STREAM_READ_MAX`]).
    stream_read: usize,
    /// The transport ended or failed; nothing more will be read.
    read_done: bool,
    /// Why reading failed, for the next receiver.
    read_error: Option<io::Error>,
    /// The write side failed; nothing more will be written.
    write_failed: bool,
    /// A receiver waits for the replies it queued to be written.
    reader_waits_on_replies: bool,
    /// A receiver polled since a sender last read ahead: the receiving side is being looked
    /// after, so the next send need not read ahead (an echo loop, a read half's task).
    receiver_active: bool,
    /// The last read of the transport was a sender's, found nothing, and was polled with
    /// `io_waker`: until that waker is woken the transport has nothing new, and a sender's read
    /// ahead can skip polling it. A receiver's poll disarms it (it polls with its own waker).
    probe_armed: bool,
    /// The last read of the transport took less than [`PROBE_READ`]: small messages, for which
    /// a read with no buffer held goes through the stack (see `poll_fill`).
    small_reads: bool,
    /// When a sender last polled the transport (see [`SENDER_READ_INTERVAL`]).
    last_probe: Option<std::time::Instant>,
    /// The closing sequence finished and the end was reported.
    finished: bool,
    /// What the opening handshake agreed on.
    negotiated: Negotiated,
    /// The connection's `tracing` span (`crate::trace`).
    span: ConnSpan,
    /// Pings sent with [`WebSocket::ping`](crate::WebSocket::ping), oldest first.
    pings: VecDeque<PendingPing>,
    /// The server's shutdown this connection is registered with, if any (`rt/shutdown.rs`).
    shutdown: Option<Box<Registration>>,
}

#[derive(Debug)]
struct PendingPing {
    payload: Bytes,
    sent: Instant,
    reply: oneshot::Sender<Duration>,
}

/// The clock the core is given: tokio's, so that tests can pause and advance it.
fn now() -> std::time::Instant {
    Instant::now().into_std()
}

impl<S> Driver<S> {
    pub(crate) fn new(
        io: S,
        role: Role,
        config: Config,
        read_buf: BytesMut,
        negotiated: Negotiated,
    ) -> Self {
        let read_size = config.get_read_buffer_size();
        let mut proto = config.proto();
        proto.deflate = negotiated.permessage_deflate().map(|agreed| {
            config
                .get_compression()
                .copied()
                .unwrap_or_default()
                .settings(role, &agreed)
        });
        let mut conn = Connection::new(role, proto);
        // Bytes read past the opening handshake are frames: count them as received.
        conn.record_wire(read_buf.len(), 0);
        let (wakers, io_waker) = TaskWakers::new();
        Driver {
            io,
            conn,
            read_buf,
            config,
            wakers,
            registered: Registered::default(),
            split: false,
            io_waker,
            timer: None,
            timer_at: None,
            stream_read: read_size,
            read_done: false,
            read_error: None,
            write_failed: false,
            reader_waits_on_replies: false,
            receiver_active: false,
            probe_armed: false,
            last_probe: None,
            small_reads: true,
            finished: false,
            span: trace::conn_span(role, &negotiated),
            negotiated,
            pings: VecDeque::new(),
            shutdown: None,
        }
    }

    /// Registers the connection with `shutdown`, when there is one: from then on a shutdown
    /// reaches it (see [`heed_shutdown`](Self::heed_shutdown)), and its end is counted.
    pub(crate) fn join(&mut self, shutdown: Option<&Shutdown>) {
        if let Some(shutdown) = shutdown {
            self.shutdown = Some(Box::new(shutdown.register(self.wakers.clone())));
        }
    }

    /// On every poll: once the shutdown the connection is registered with has begun, starts
    /// the closing handshake it asks for, with its deadline in the core. The poll that runs
    /// next writes the close, and the core's timer cuts the peer off at the deadline.
    #[inline(always)]
    fn heed_shutdown(&mut self) {
        if let Some(order) = self.shutdown.as_mut().and_then(|r| r.take_order()) {
            // A 1001 with a reason cut to size: a frame `close_by` accepts.
            let _ = self.conn.close_by(Some(order.frame), order.deadline);
            conn_event!(&self.span, DEBUG, "closing: the server shuts down");
        }
    }

    /// How the connection ended, for the shutdown's report.
    fn ending(&self) -> Ending {
        let conn = &self.conn;
        if conn.failure().is_none() && conn.sent_close() && conn.received_close() {
            Ending::Closed
        } else if conn.expired() == Some(Expired::Close) {
            Ending::Cut
        } else {
            Ending::Ended
        }
    }

    /// Takes the connection out of its shutdown's set, saying how it ended.
    fn leave_shutdown(&mut self) {
        if let Some(registration) = self.shutdown.take() {
            registration.end(self.ending());
        }
    }

    /// The connection's `tracing` span (an empty struct without the `tracing` feature).
    pub(crate) fn span(&self) -> &ConnSpan {
        &self.span
    }

    /// The protocol state.
    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }

    /// The protocol state, to queue frames into.
    pub(crate) fn conn_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }

    /// The settings in force.
    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    /// The transport.
    pub(crate) fn io(&self) -> &S {
        &self.io
    }

    /// The transport, mutably.
    pub(crate) fn io_mut(&mut self) -> &mut S {
        &mut self.io
    }

    /// What the opening handshake agreed on.
    pub(crate) fn negotiated(&self) -> &Negotiated {
        &self.negotiated
    }

    /// Starts the closing handshake (once).
    pub(crate) fn start_close(&mut self, frame: Option<CloseFrame>) -> Result<(), Error> {
        if self.conn.can_send() {
            self.conn.close(frame)?;
        }
        Ok(())
    }

    /// Marks the end: nothing more is received, and pings still waiting for a pong fail.
    fn finish(&mut self) {
        if !self.finished {
            conn_event!(
                &self.span,
                DEBUG,
                closed_by = if self.conn.peer_closed_first() {
                    "peer"
                } else if self.conn.sent_close() {
                    "us"
                } else {
                    "nobody (the transport ended)"
                },
                peer_code = self.conn.peer_close().map(|f| f.code.0),
                peer_reason = self.conn.peer_close().map(|f| f.reason.as_str()),
                sent_code = self.conn.sent_close_code().map(|c| c.0),
                "connection closed"
            );
        }
        self.finished = true;
        self.pings.clear();
        self.leave_shutdown();
    }

    /// Whether the stream of events has ended.
    pub(crate) fn is_finished(&self) -> bool {
        self.finished
    }

    /// Runs `f` for the task polling `side`, with the context to poll the transport with.
    ///
    /// While one task polls both sides (no split), that is its own context: nothing to keep
    /// apart, nothing to register. From the first poll by another task on, the connection is
    /// split for good: each side's task is registered on its side, and the transport is polled
    /// with the waker that wakes both.
    #[inline(always)]
    fn on_side<R>(
        &mut self,
        cx: &mut Context<'_>,
        side: Side,
        f: impl FnOnce(&mut Self, &mut Context<'_>) -> R,
    ) -> R {
        // The task is registered first, then the shutdown is looked at: a shutdown that begins
        // in between wakes the task registered.
        if !self.split && self.registered.same_task(side, cx.waker(), &self.wakers) {
            self.heed_shutdown();
            return f(self, cx);
        }
        if !self.split {
            self.split = true;
            self.wakers.adopt(&self.registered);
        }
        self.wakers.register(side, cx.waker());
        self.heed_shutdown();
        let waker = self.io_waker.clone();
        f(self, &mut Context::from_waker(&waker))
    }

    /// The error a send gets once nothing more can be sent: the violation that failed the
    /// connection, the keepalive or idle timeout that gave up on the peer (a sender blocked by
    /// a vanished peer learns why as the receiver does), or the peer's close.
    pub(crate) fn send_error(&self) -> Error {
        if let Some(reason) = self.conn.failure() {
            return reason.clone().into();
        }
        match self.conn.expired() {
            Some(expired @ (Expired::Pong | Expired::Idle)) => {
                return Error::Timeout(expired.into())
            }
            Some(Expired::Close) | None => {}
        }
        if self.conn.received_close() {
            return Error::PeerClosed(self.conn.peer_close().cloned());
        }
        Error::Closed
    }

    /// Matches received pongs against the pings sent. A pong answers the ping with the same
    /// payload and, as a peer may answer only the latest of several pings (RFC 6455 §5.5.3),
    /// every ping sent before it.
    #[inline(always)]
    fn resolve_pings(&mut self) {
        if self.pings.is_empty() && !self.conn.has_pongs() {
            return; // the common case, checked where it is called
        }
        self.resolve_pings_slow();
    }

    #[inline(never)]
    fn resolve_pings_slow(&mut self) {
        if self.pings.is_empty() {
            self.conn.take_pongs().for_each(drop);
            return;
        }
        if self.conn.has_pongs() {
            let now = Instant::now();
            let pongs: Vec<Bytes> = self.conn.take_pongs().collect();
            for pong in pongs {
                if let Some(at) = self.pings.iter().position(|p| p.payload == pong) {
                    for ping in self.pings.drain(..=at) {
                        let _ = ping.reply.send(now - ping.sent);
                    }
                }
            }
        }
        if self.conn.is_receive_done() {
            // No pong can arrive after the peer's close (or a failure): dropping the senders
            // fails the waiting `Pong`s. (`finish` does the same when the connection ends.)
            self.pings.clear();
        }
    }

    /// Sends a ping whose pong resolves the returned receiver with the round-trip time.
    pub(crate) fn send_tracked_ping(
        &mut self,
        payload: Bytes,
    ) -> Result<oneshot::Receiver<Duration>, Error> {
        self.conn
            .send_message(crate::Message::Ping(payload.clone()))?;
        let (reply, receiver) = oneshot::channel();
        self.pings.retain(|p| !p.reply.is_closed());
        self.pings.push_back(PendingPing {
            payload,
            sent: Instant::now(),
            reply,
        });
        Ok(receiver)
    }

    /// Feeds time to the core where it needs it and arms the one timer at its next deadline.
    /// Returns whether a deadline passed (the core may have queued a ping or given up).
    #[inline(always)]
    fn poll_timers(&mut self, cx: &mut Context<'_>) -> bool {
        if self.timer.is_none() && !self.conn.needs_now() && self.conn.poll_timeout().is_none() {
            return false; // no deadline: the common case without keepalive, checked inline
        }
        self.poll_timers_slow(cx)
    }

    /// Passes the time to the core; with `tracing`, says when a deadline gave up on the peer.
    fn feed_time(&mut self) {
        #[cfg(feature = "tracing")]
        let expired_before = self.conn.expired();
        self.conn.handle_timeout(now());
        #[cfg(feature = "tracing")]
        if let (None, Some(expired)) = (expired_before, self.conn.expired()) {
            conn_event!(
                &self.span,
                INFO,
                timeout = ?expired,
                "gave up on the peer: {}",
                crate::error::Timeout::from(expired)
            );
        }
    }

    #[inline(never)]
    fn poll_timers_slow(&mut self, cx: &mut Context<'_>) -> bool {
        if self.conn.needs_now() {
            self.feed_time();
        }
        let mut fired = false;
        while let Some(deadline) = self.conn.poll_timeout() {
            let at = Instant::from_std(deadline);
            match &mut self.timer {
                Some(timer) if self.timer_at == Some(deadline) => {
                    if timer.as_mut().poll(cx).is_pending() {
                        return fired;
                    }
                }
                Some(timer) => {
                    timer.as_mut().reset(at);
                    self.timer_at = Some(deadline);
                    continue;
                }
                None => {
                    self.timer = Some(Box::pin(tokio::time::sleep_until(at)));
                    self.timer_at = Some(deadline);
                    continue;
                }
            }
            self.feed_time();
            fired = true;
            if self.conn.poll_timeout() == Some(deadline) {
                // Not due yet by the clock the core was given; look again at the next wake-up.
                return fired;
            }
        }
        if self.timer.is_some() {
            self.timer = None;
            self.timer_at = None;
        }
        fired
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Driver<S> {
    // ----- writing -----

    /// Writes everything queued and flushes the transport; then reads ahead for the receiving
    /// side. What the sender queued leaves first: a violation found while reading ahead fails
    /// the connection after the messages sent before it, as a receiver would have found it.
    pub(crate) fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.sending(cx, Self::poll_flush_io)
    }

    /// Runs a sender's step `f` with the context the transport is polled with, once the
    /// calling task is registered on the sending side: one registration for a whole `send`.
    pub(crate) fn sending<R>(
        &mut self,
        cx: &mut Context<'_>,
        f: impl FnOnce(&mut Self, &mut Context<'_>) -> R,
    ) -> R {
        self.on_side(cx, Side::Write, f)
    }

    /// [`poll_flush`](Self::poll_flush), inside [`sending`](Self::sending).
    pub(crate) fn poll_flush_io(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let flushed = self.poll_flush_all(cx);
        self.read_ahead_unless_received(cx);
        if flushed.is_pending() {
            self.poll_gave_up(cx)
        } else {
            flushed
        }
    }

    /// A sender waiting for a full transport: a vanished peer never drains it, so the wake-up
    /// that ends the wait is a deadline's. The timers run here (the read ahead may have skipped
    /// them) and are armed with this context; once the connection has given up on the peer or
    /// failed, the sender learns why instead of waiting for a transport that never drains.
    #[inline(never)]
    fn poll_gave_up(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.poll_timers(cx);
        if self.conn.expired() == Some(Expired::Close) {
            // The closing handshake is over by its deadline: nothing more will be written.
            self.cut_transport(cx);
        }
        if self.conn.expired().is_some() || self.conn.failure().is_some() {
            Poll::Ready(Err(self.send_error()))
        } else {
            Poll::Pending
        }
    }

    /// A sender's read ahead, skipped when a receiver has polled since the last one: then the
    /// receiving side reads for itself (an echo loop, or a read half in its own task), and a
    /// send costs no extra poll of the transport. A sender that is the only one polling reads
    /// ahead when the transport has news, at most once per [`SENDER_READ_INTERVAL`]: what
    /// arrives during a burst of sends (the echoes of the first messages, mostly) is read in
    /// one go rather than one small read per send.
    #[inline(always)]
    pub(crate) fn read_ahead_unless_received(&mut self, cx: &mut Context<'_>) {
        if std::mem::take(&mut self.receiver_active) {
            return;
        }
        self.read_ahead_unless_recent(cx);
    }

    #[inline(never)]
    fn read_ahead_unless_recent(&mut self, cx: &mut Context<'_>) {
        if self.probe_armed
            && self.wakers.signalled()
            && self
                .last_probe
                .is_some_and(|at| at.elapsed() < SENDER_READ_INTERVAL)
        {
            return;
        }
        self.poll_background(cx);
    }

    fn poll_flush_all(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if self.write_failed {
            return Poll::Ready(Err(self.send_error()));
        }
        let result = ready!(self.poll_flush_inner(cx));
        if result.is_err() {
            self.write_failed = true;
        }
        Poll::Ready(result.map_err(Error::Io))
    }

    fn poll_flush_inner(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.conn.wants_write() {
            ready!(self.poll_write_once(cx))?;
        }
        Pin::new(&mut self.io).poll_flush(cx)
    }

    /// One write of what is queued (as much as one vectored write takes).
    fn poll_write_once(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let transmit = self.conn.transmit();
        let polled = if let Some(staged) = transmit.staged_only() {
            // Small frames only: one plain write, without setting up (and zeroing) an array of
            // slices, which costs more than the rest of a small send's bookkeeping.
            Pin::new(&mut self.io).poll_write(cx, staged)
        } else if self.io.is_write_vectored() {
            transmit.prepare();
            let mut slices = [IoSlice::new(&[]); MAX_IO_SLICES];
            match transmit.io_slices(&mut slices) {
                // One slice (the common small message): a plain write is the cheaper syscall.
                1 => Pin::new(&mut self.io).poll_write(cx, &slices[0]),
                n => Pin::new(&mut self.io).poll_write_vectored(cx, &slices[..n]),
            }
        } else {
            transmit.prepare();
            Pin::new(&mut self.io).poll_write(cx, transmit.first_chunk())
        };
        let Poll::Ready(written) = polled else {
            self.conn.record_write_blocked();
            return Poll::Pending;
        };
        let written = written?;
        if written == 0 {
            return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
        }
        self.conn.transmit().advance(written);
        self.conn.record_wire(0, written);
        Poll::Ready(Ok(()))
    }

    /// Waits until the transmit queue is below the write buffer size, so one more message may be
    /// queued. Fails, saying why, once nothing more can be sent.
    pub(crate) fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.sending(cx, Self::poll_ready_io)
    }

    /// [`poll_ready`](Self::poll_ready), inside [`sending`](Self::sending).
    #[inline(always)]
    pub(crate) fn poll_ready_io(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if self.conn.can_send() && self.conn.buffered_amount() < self.config.get_write_buffer_size()
        {
            return Poll::Ready(Ok(())); // the common case: room for the next message
        }
        self.poll_room(cx)
    }

    /// [`poll_ready_io`](Self::poll_ready_io) when the connection is closed or the queue full.
    #[inline(never)]
    fn poll_room(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if !self.conn.can_send() {
            return self.poll_refused(cx);
        }
        if self.conn.buffered_amount() >= self.config.get_write_buffer_size() {
            // Waiting for room: meanwhile the peer is read (it may be waiting for our pongs,
            // or itself blocked writing to us).
            self.poll_background(cx);
            if !self.conn.can_send() {
                return Poll::Ready(Err(self.send_error()));
            }
        }
        while self.conn.buffered_amount() >= self.config.get_write_buffer_size() {
            // One write at a time: room for the next message is all that is needed, so a sender
            // can queue while earlier bytes are still draining.
            if self.write_failed {
                return Poll::Ready(Err(self.send_error()));
            }
            if let Err(e) = ready!(self.poll_write_once(cx)) {
                self.write_failed = true;
                return Poll::Ready(Err(Error::Io(e)));
            }
        }
        Poll::Ready(Ok(()))
    }

    /// A send refused because the connection is closing: what is queued (our close frame
    /// among it, a shutdown's 1001) is written first, so that a sender that gives up at the
    /// error, dropping the connection, does not drop the close with it. A peer that reads
    /// nothing holds this until the closing handshake's deadline.
    #[inline(never)]
    fn poll_refused(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if self.conn.wants_write() && !self.write_failed && self.poll_flush_all(cx).is_pending() {
            self.read_ahead_unless_received(cx);
            return self.poll_gave_up(cx);
        }
        Poll::Ready(Err(self.send_error()))
    }

    /// A sender's turn for the receiving side once its bytes are queued: see
    /// [`poll_background`](Self::poll_background).
    pub(crate) fn read_ahead(&mut self, cx: &mut Context<'_>) {
        self.sending(cx, Self::read_ahead_unless_received);
    }

    /// What a sender does for the receiving side, without ever waiting: reads ahead what the
    /// peer sent (the core answers pings and the close, and keeps data for the next receiver,
    /// up to `Config::read_ahead_size`), writes the replies, and runs the timers.
    fn poll_background(&mut self, cx: &mut Context<'_>) {
        if self.finished {
            return;
        }
        let frames_before = self.conn.stats().frames_received;
        // Nothing new on the transport since a sender last found nothing there: a pipelined
        // burst of sends polls it once, not once per send.
        let quiet = self.probe_armed && !self.wakers.signalled();
        if !quiet {
            self.read_ahead_while_room(cx);
        }
        let queued = self.conn.transmit().end_position();
        if self.poll_timers(cx)
            && self.conn.transmit().end_position() != queued
            && !self.write_failed
        {
            // A keepalive ping or a timeout's close: on its way now.
            if let Poll::Ready(Err(_)) = self.poll_flush_inner(cx) {
                self.write_failed = true;
            }
        }
        self.resolve_pings();
        let replies_written = self.reader_waits_on_replies && !self.conn.wants_write();
        if replies_written || self.conn.stats().frames_received != frames_before || self.read_done {
            // The receiving side may wait for exactly this; no transport event will say so.
            self.reader_waits_on_replies = false;
            self.wakers.wake(Side::Read);
        }
    }

    /// Reads what the peer sent and lets the core take it, until the transport has nothing
    /// more or the read-ahead room is full; writes the replies the core queued on the way.
    fn read_ahead_while_room(&mut self, cx: &mut Context<'_>) {
        loop {
            let queued = self.conn.transmit().end_position();
            if !self.read_buf.is_empty() {
                let max_unread = self.config.get_read_ahead_size();
                self.conn.read_ahead(&mut self.read_buf, max_unread);
            }
            if self.conn.transmit().end_position() != queued && !self.write_failed {
                // Replies to what was read (pongs, the close echo) leave now; data the sender
                // queued is written when it flushes, so a burst still leaves in one write.
                if let Poll::Ready(Err(_)) = self.poll_flush_inner(cx) {
                    self.write_failed = true;
                }
            }
            if !self.may_read_ahead() {
                break;
            }
            match self.poll_probe_fill(cx) {
                Poll::Pending => break,
                Poll::Ready(Ok(0)) => {
                    self.read_done = true;
                    break;
                }
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => {
                    self.read_done = true;
                    self.read_error = Some(e);
                    break;
                }
            }
        }
    }

    /// A receiver is about to poll: senders need not read ahead for it, and it may poll the
    /// transport with its own waker (see `probe_armed`).
    fn receiver_polls(&mut self) {
        self.receiver_active = true;
        self.probe_armed = false;
    }

    /// A sender's read of the transport, polled with the waker of both sides so that the next
    /// transport event sets the signal that ends the quiet (see `probe_armed`).
    fn poll_probe_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        self.wakers.clear_signal();
        self.last_probe = Some(std::time::Instant::now());
        let polled = if self.split {
            self.poll_fill(cx, None) // `cx` wakes both sides already
        } else {
            // One task, polling both sides with its own context: registered on the sending side,
            // so that the waker the transport is polled with reaches it.
            self.wakers.register(Side::Write, cx.waker());
            let waker = self.io_waker.clone();
            self.poll_fill(&mut Context::from_waker(&waker), None)
        };
        self.probe_armed = polled.is_pending();
        polled
    }

    /// Whether a sender should read more from the transport for the receiving side.
    fn may_read_ahead(&mut self) -> bool {
        !self.read_done
            && !self.conn.is_receive_done()
            && !self.conn.is_parked()
            && !self.conn.has_undelivered()
            && self.read_buf.len() + self.conn.unread_bytes() < self.config.get_read_ahead_size()
            && self.conn.unsent_pong_bytes() < self.config.get_write_buffer_size()
    }

    /// Writes the replies the core queued (pongs, a close echo, a failure's close). Pending only
    /// when receiving must wait for them: a close or failure is handed out only once its reply
    /// is written, and a peer that does not read our pongs is not read from either, so its
    /// pings cannot pile up replies here. Queued data never holds receiving back: two peers
    /// both waiting to write would otherwise wait for each other forever.
    #[inline(always)]
    fn poll_replies(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if !self.conn.wants_write() {
            return Poll::Ready(Ok(())); // the common case, checked inline
        }
        self.poll_queued_replies(cx)
    }

    #[inline(never)]
    fn poll_queued_replies(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if self.write_failed {
            // Nothing queued can leave any more; dropping it lets a close or failure the core
            // holds back until its reply is written be handed out.
            if self.conn.wants_write() {
                self.conn.transmit().clear();
            }
            return Poll::Ready(Ok(()));
        }
        match self.poll_flush_all(cx) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(())),
            Poll::Ready(Err(e)) => {
                if self.conn.is_receive_done() {
                    // The peer is gone after the handshake ended: not worth an error.
                    self.conn.transmit().clear();
                    Poll::Ready(Ok(()))
                } else {
                    self.finish();
                    Poll::Ready(Err(e))
                }
            }
            Poll::Pending => {
                // Closing or failed, yet the peer reads nothing: our close cannot go out. The
                // closing handshake's deadline gives up on what is queued, so the end is
                // reported.
                self.poll_timers(cx);
                if self.conn.expired().is_some() {
                    self.conn.transmit().clear();
                    self.write_failed = true;
                    Poll::Ready(Ok(()))
                } else if self.conn.has_undelivered()
                    || self.conn.unsent_pong_bytes() >= self.config.get_write_buffer_size()
                {
                    self.reader_waits_on_replies = true;
                    Poll::Pending
                } else {
                    Poll::Ready(Ok(()))
                }
            }
        }
    }

    // ----- receiving -----

    /// Reads and decodes until the core hands `consumer` something, the connection ends
    /// (`None`), or an error.
    pub(crate) fn poll_receive(
        &mut self,
        cx: &mut Context<'_>,
        consumer: Consumer,
    ) -> Poll<Option<Result<Received, Error>>> {
        self.on_side(cx, Side::Read, |driver, cx| {
            driver.poll_receive_io(cx, consumer)
        })
    }

    fn poll_receive_io(
        &mut self,
        cx: &mut Context<'_>,
        consumer: Consumer,
    ) -> Poll<Option<Result<Received, Error>>> {
        self.receiver_polls();
        loop {
            if self.finished {
                return Poll::Ready(None);
            }
            if let Err(e) = ready!(self.poll_replies(cx)) {
                return Poll::Ready(Some(Err(e)));
            }
            let queued = self.conn.transmit().end_position();
            let received = self.conn.receive(&mut self.read_buf, consumer);
            self.resolve_pings();
            match received {
                Some(Ok(item)) => {
                    self.release_idle_read_buffer();
                    // A ping's pong is queued with it: start writing it now, as the caller may
                    // not poll again soon. What does not fit (or fails) waits for the next call.
                    if self.conn.wants_write() && !self.write_failed {
                        let _ = self.poll_flush_all(cx);
                    }
                    return Poll::Ready(Some(Ok(item)));
                }
                Some(Err(reason)) => {
                    conn_event!(
                        &self.span,
                        WARN,
                        close_code = reason.close_code().0,
                        "connection failed: {}",
                        Error::from(reason.clone())
                    );
                    return Poll::Ready(Some(Err(reason.into())));
                }
                None if self.conn.transmit().end_position() != queued => {
                    continue; // replies to what was decoded (a ping the stream API skips)
                }
                None => {}
            }
            if let Some(expired) = self.conn.take_expiry() {
                self.give_up(cx);
                return Poll::Ready(Some(Err(Error::Timeout(expired.into()))));
            }
            if self.conn.has_undelivered() && !self.write_failed && self.conn.wants_write() {
                continue; // its reply is still being written
            }
            if self.conn.is_drained() {
                return self.poll_finish(cx).map(|r| r.err().map(Err));
            }
            if self.poll_timers(cx) {
                continue;
            }
            if self.read_done {
                self.finish();
                let error = match self.read_error.take() {
                    Some(e) => Error::from(e),
                    None => Error::abnormal_closure(),
                };
                return Poll::Ready(Some(Err(error)));
            }
            match ready!(self.poll_fill(cx, Some(consumer))) {
                Ok(0) => self.read_done = true,
                Ok(_) => {}
                Err(e) => {
                    self.read_done = true;
                    self.read_error = Some(e);
                }
            }
        }
    }

    /// Ends the connection after a deadline passed: writes what it can of the close at once,
    /// then closes the transport, so the peer sees the end without waiting for the
    /// `WebSocket` to be dropped.
    fn give_up(&mut self, cx: &mut Context<'_>) {
        self.cut_transport(cx);
        self.finish();
    }

    /// Writes what it can of what is queued at once, then shuts the transport down: nothing
    /// more is written.
    fn cut_transport(&mut self, cx: &mut Context<'_>) {
        if !self.write_failed {
            // Best effort: a transport that cannot take the close or shut down now is closed
            // when dropped.
            let _ = self.poll_flush_inner(cx);
            let _ = Pin::new(&mut self.io).poll_shutdown(cx);
            self.write_failed = true;
        }
    }

    /// After the last frame: flush, then close the transport. A server (or anyone failing the
    /// connection) closes TCP first; a client waits for the server to close it, within the
    /// closing handshake's deadline (RFC 6455 §7.1.1).
    fn poll_finish(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if !self.write_failed && ready!(self.poll_flush_all(cx)).is_err() {
            self.finish();
            return Poll::Ready(Ok(()));
        }
        let client_waits = self.conn.role() == Role::Client && self.conn.failure().is_none();
        if client_waits {
            while !self.read_done {
                self.poll_timers(cx);
                if self.conn.expired().is_some() {
                    break;
                }
                self.read_buf.clear();
                match ready!(self.poll_fill(cx, Some(Consumer::Stream))) {
                    Ok(0) | Err(_) => self.read_done = true,
                    Ok(_) => {}
                }
            }
        }
        if !self.write_failed {
            // Errors here change nothing: the connection is over either way.
            let _ = ready!(Pin::new(&mut self.io).poll_shutdown(cx));
        }
        self.finish();
        self.read_buf = BytesMut::new();
        Poll::Ready(Ok(()))
    }

    /// Reads more bytes into the read buffer: room for the frame in hand when `consumer` takes
    /// whole frames; when reading ahead for nobody, no more than the read-ahead bound allows.
    fn poll_fill(
        &mut self,
        cx: &mut Context<'_>,
        consumer: Option<Consumer>,
    ) -> Poll<io::Result<usize>> {
        let min = self.config.get_read_buffer_size();
        let buffered = self.read_buf.len();
        let streaming = consumer == Some(Consumer::Stream);
        if self.small_reads && !streaming && buffered == 0 && self.read_buf.capacity() == 0 {
            // Nothing held, and small messages coming: read into the stack first. A read that
            // finds nothing then costs no buffer, and what arrives is copied into one of exactly
            // its size, which a frame filling it takes whole (see the decoder's `take_front`):
            // one allocation per small message received, the message's own. (Large reads go
            // straight to the heap: for them the copy and the extra read would cost more.)
            return self.poll_probe(cx);
        }
        let mut extra = if streaming {
            self.stream_read
        } else {
            let wanted = self.conn.read_wanted(buffered, consumer);
            wanted.saturating_sub(buffered).max(min)
        };
        if consumer.is_none() {
            if self.read_buf.capacity() == buffered {
                return self.poll_probe(cx);
            }
            let room = self
                .config
                .get_read_ahead_size()
                .saturating_sub(buffered + self.conn.unread_bytes());
            extra = extra.min(room.max(1));
        }
        self.read_buf.reserve(extra);
        let result = tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.read_buf);
        if result.is_pending() && self.read_buf.is_empty() {
            // Nothing to read and nothing held: give the buffer back, so an idle connection
            // holds no read buffer while it waits (the next read makes a new one).
            self.read_buf = BytesMut::new();
        }
        if let Poll::Ready(Ok(n)) = result {
            self.conn.record_wire(n, 0);
            self.small_reads = n < PROBE_READ;
            if streaming {
                if n >= self.stream_read {
                    self.stream_read = (self.stream_read * 2).min(STREAM_READ_MAX.max(min));
                } else if n < self.stream_read / 4 {
                    self.stream_read = (self.stream_read / 2).max(min);
                }
            }
        }
        result
    }

    /// A read into the stack, its bytes then appended to the read buffer: for a sender's read
    /// ahead when the read buffer has no room, as most sends find nothing to read, and for a
    /// receiver that holds no buffer. A buffer made and dropped on every read that finds
    /// nothing would cost an allocation each.
    fn poll_probe(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let mut probe = [std::mem::MaybeUninit::<u8>::uninit(); PROBE_READ];
        let mut buf = ReadBuf::uninit(&mut probe);
        ready!(Pin::new(&mut self.io).poll_read(cx, &mut buf))?;
        let n = buf.filled().len();
        if self.read_buf.capacity() == 0 {
            // A buffer made to measure costs less than growing an empty one (`reserve`).
            self.read_buf = BytesMut::from(buf.filled());
        } else {
            self.read_buf.extend_from_slice(buf.filled());
        }
        self.conn.record_wire(n, 0);
        self.small_reads = n < PROBE_READ;
        Poll::Ready(Ok(n))
    }

    /// Gives a large read buffer back once it is empty, so an idle connection holds little.
    fn release_idle_read_buffer(&mut self) {
        if self.read_buf.is_empty()
            && self.read_buf.capacity() > 4 * self.config.get_read_buffer_size()
        {
            self.read_buf = BytesMut::new();
        }
    }
}

impl<S> Drop for Driver<S> {
    fn drop(&mut self) {
        self.leave_shutdown();
    }
}

/// Reads and writes straight between the transport and a caller's buffer, for the stream API.
impl<S: AsyncRead + AsyncWrite + Unpin> Driver<S> {
    /// How many payload bytes may be read straight into a stream reader's buffer now.
    pub(crate) fn direct_read_len(&self) -> usize {
        if self.finished || self.read_done {
            return 0;
        }
        usize::try_from(self.conn.direct_len(self.read_buf.len())).unwrap_or(usize::MAX)
    }

    /// Reads payload straight from the transport into `dst` (at most
    /// [`direct_read_len`](Self::direct_read_len) bytes) and unmasks it there: one copy in all,
    /// kernel to caller. `Ok(None)`: nothing was taken (the connection failed on these bytes, or
    /// the transport ended); the next [`poll_receive`](Self::poll_receive) reports why.
    pub(crate) fn poll_read_direct(
        &mut self,
        cx: &mut Context<'_>,
        dst: &mut [u8],
    ) -> Poll<Result<Option<(usize, DirectChunk)>, Error>> {
        self.on_side(cx, Side::Read, |driver, cx| {
            driver.poll_read_direct_io(cx, dst)
        })
    }

    fn poll_read_direct_io(
        &mut self,
        cx: &mut Context<'_>,
        dst: &mut [u8],
    ) -> Poll<Result<Option<(usize, DirectChunk)>, Error>> {
        self.receiver_polls();
        ready!(self.poll_replies(cx))?;
        if self.poll_timers(cx) && self.conn.wants_write() {
            // A keepalive ping went into the queue; the next call writes it.
            return Poll::Ready(Ok(None));
        }
        let len = dst.len().min(self.direct_read_len());
        if len == 0 {
            return Poll::Ready(Ok(None));
        }
        let mut read_buf = ReadBuf::new(&mut dst[..len]);
        if let Err(e) = ready!(Pin::new(&mut self.io).poll_read(cx, &mut read_buf)) {
            self.read_done = true;
            self.read_error = Some(e);
            return Poll::Ready(Ok(None));
        }
        let n = read_buf.filled().len();
        if n == 0 {
            self.read_done = true;
            return Poll::Ready(Ok(None));
        }
        self.conn.record_wire(n, 0);
        Poll::Ready(Ok(self
            .conn
            .consume_direct(&mut dst[..n])
            .map(|chunk| (n, chunk))))
    }

    /// Sends `data` as one fragment of a `kind` message straight from the caller's memory: one
    /// vectored write of header and payload, no copy. Only for servers, with nothing queued.
    /// Whatever of the frame the transport does not take at once is copied into the transmit
    /// queue, so the frame is always completed and `data.len()` is always accepted.
    pub(crate) fn poll_write_direct(
        &mut self,
        cx: &mut Context<'_>,
        kind: DataKind,
        fin: bool,
        data: &[u8],
    ) -> Poll<Result<usize, Error>> {
        self.sending(cx, |driver, cx| {
            driver.poll_write_direct_io(cx, kind, fin, data)
        })
    }

    fn poll_write_direct_io(
        &mut self,
        cx: &mut Context<'_>,
        kind: DataKind,
        fin: bool,
        data: &[u8],
    ) -> Poll<Result<usize, Error>> {
        let (head, head_len) = match self.conn.direct_fragment_header(kind, fin, data.len()) {
            Ok(header) => header,
            Err(_) => return Poll::Ready(Err(self.send_error())),
        };
        let slices = [IoSlice::new(&head[..head_len]), IoSlice::new(data)];
        let Poll::Ready(written) = Pin::new(&mut self.io).poll_write_vectored(cx, &slices) else {
            self.conn.record_write_blocked();
            return Poll::Pending;
        };
        let written = match written {
            Ok(0) => Err(io::Error::from(io::ErrorKind::WriteZero)),
            other => other,
        };
        let written = match written {
            Ok(n) => n,
            Err(e) => {
                self.write_failed = true;
                return Poll::Ready(Err(Error::Io(e)));
            }
        };
        self.conn.record_wire(0, written);
        let mut unwritten = BytesMut::new();
        if written < head_len {
            unwritten.extend_from_slice(&head[written..head_len]);
            unwritten.extend_from_slice(data);
        } else {
            unwritten.extend_from_slice(&data[written - head_len..]);
        }
        self.conn
            .commit_direct_fragment(kind, fin, data.len(), unwritten.freeze());
        Poll::Ready(Ok(data.len()))
    }
}
