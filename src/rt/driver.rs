//! Drives a [`Connection`] over an `AsyncRead + AsyncWrite`: the one place that reads and writes.
//!
//! Every method is a `poll_*` that keeps all its progress in the struct, which is what makes the
//! public async methods built on it cancel-safe.

use std::collections::VecDeque;
use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::oneshot;
use tokio::time::{Instant, Sleep};

use crate::config::Config;
use crate::error::{Error, Timeout};
use crate::handshake::Negotiated;
use crate::proto::close::{CloseCode, CloseFrame};
use crate::proto::connection::Connection;
use crate::proto::decoder::{DataKind, Delivery, DirectChunk};
use crate::proto::encoder::MAX_IO_SLICES;
use crate::proto::error::FailReason;
use crate::proto::Role;

/// The largest read of the stream API. Streamed reads start at `Config::read_buffer_size`
/// and double while reads fill the room they are given, so a bulk transfer reaches few, large
/// reads while a trickle of small messages keeps small buffers.
const STREAM_READ_MAX: usize = 1024 * 1024;

/// A connection and its transport.
#[derive(Debug)]
pub(crate) struct Driver<S> {
    pub(crate) io: S,
    pub(crate) conn: Connection,
    pub(crate) read_buf: BytesMut,
    pub(crate) config: Config,
    /// Deadline of the closing handshake, armed when it starts.
    close_timer: Option<Pin<Box<Sleep>>>,
    /// The room the next streamed read is given (see [`STREAM_READ_MAX`]).
    stream_read: usize,
    /// The transport failed or ended; nothing more will be read.
    read_done: bool,
    /// The write side failed; nothing more will be written.
    write_failed: bool,
    /// The closing sequence finished and the end was reported.
    finished: bool,
    /// What the opening handshake agreed on.
    pub(crate) negotiated: Negotiated,
    /// Pings sent with [`WebSocket::ping`](crate::WebSocket::ping), oldest first.
    pings: VecDeque<PendingPing>,
    /// Keepalive and idle watch, when configured.
    watch: Option<Box<Watch>>,
}

#[derive(Debug)]
struct PendingPing {
    payload: Bytes,
    sent: Instant,
    reply: oneshot::Sender<Duration>,
}

/// Timers that watch the peer: keepalive pings and the idle timeout. One timer serves both;
/// it is re-armed lazily (when it fires), so activity costs nothing on the hot path.
#[derive(Debug)]
struct Watch {
    timer: Pin<Box<Sleep>>,
    /// Frames received when the keepalive phase began.
    frames_seen: u64,
    /// Data events when the idle period began, and when it began.
    data_seen: u64,
    idle_since: Instant,
    /// A keepalive ping is out; the deadline for any frame from the peer.
    pong_deadline: Option<Instant>,
    last_heard: Instant,
}

/// What a decode step hands the driver.
pub(crate) type Decode<T> = fn(&mut Connection, &mut BytesMut) -> Result<Option<T>, FailReason>;

impl<S> Driver<S> {
    pub(crate) fn new(
        io: S,
        role: Role,
        config: Config,
        read_buf: BytesMut,
        negotiated: Negotiated,
    ) -> Self {
        let read_size = config.get_read_buffer_size();
        let mut conn = Connection::new(role, config.proto());
        // Bytes read past the opening handshake are frames: count them as received.
        conn.record_wire(read_buf.len(), 0);
        Driver {
            io,
            conn,
            read_buf,
            config,
            close_timer: None,
            stream_read: read_size,
            read_done: false,
            write_failed: false,
            finished: false,
            negotiated,
            pings: VecDeque::new(),
            watch: None,
        }
        .with_watch()
    }

    fn with_watch(mut self) -> Self {
        if self.config.get_ping_interval().is_some() || self.config.get_idle_timeout().is_some() {
            let now = Instant::now();
            let mut watch = Box::new(Watch {
                timer: Box::pin(tokio::time::sleep_until(now)),
                frames_seen: 0,
                data_seen: 0,
                idle_since: now,
                pong_deadline: None,
                last_heard: now,
            });
            let next = self.next_watch_deadline(&watch);
            watch.timer.as_mut().reset(next);
            self.watch = Some(watch);
        }
        self
    }

    fn next_watch_deadline(&self, watch: &Watch) -> Instant {
        // Activity is only noticed when the timer fires, so it fires at least every quarter of
        // each period: a deadline is then met within 1.25 times the configured duration, and
        // activity itself never touches the timer.
        let now = Instant::now();
        let mut next = now + Duration::from_secs(86_400);
        match (watch.pong_deadline, self.config.get_ping_interval()) {
            (Some(deadline), _) => next = next.min(deadline),
            (None, Some(interval)) => {
                next = next.min((watch.last_heard + interval).min(now + interval / 4))
            }
            (None, None) => {}
        }
        if let Some(idle) = self.config.get_idle_timeout() {
            next = next.min((watch.idle_since + idle).min(now + idle / 4));
        }
        next
    }

    fn arm_close_timer(&mut self) {
        if self.close_timer.is_none() {
            self.close_timer = Some(Box::pin(tokio::time::sleep(
                self.config.get_close_timeout(),
            )));
        }
    }

    /// Whether the closing deadline has passed (registers for a wake-up when it has not).
    fn close_timer_expired(&mut self, cx: &mut Context<'_>) -> bool {
        match &mut self.close_timer {
            Some(timer) => timer.as_mut().poll(cx).is_ready(),
            None => false,
        }
    }

    /// Starts the closing handshake (once) and arms its deadline.
    pub(crate) fn start_close(&mut self, frame: Option<crate::CloseFrame>) -> Result<(), Error> {
        if !self.conn.sent_close() && self.conn.failure().is_none() {
            self.conn.close(frame)?;
        }
        self.arm_close_timer();
        Ok(())
    }

    /// Marks the end: nothing more is received, and pings still waiting for a pong fail.
    fn finish(&mut self) {
        self.finished = true;
        self.pings.clear();
    }

    /// Whether the stream of events has ended.
    pub(crate) fn is_finished(&self) -> bool {
        self.finished
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Driver<S> {
    /// Writes everything queued and flushes the transport.
    pub(crate) fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if self.write_failed {
            return Poll::Ready(Err(Error::Closed));
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
        transmit.prepare();
        let written = if self.io.is_write_vectored() {
            let mut slices = [IoSlice::new(&[]); MAX_IO_SLICES];
            match transmit.io_slices(&mut slices) {
                // One slice (the common small message): a plain write is the cheaper syscall.
                1 => ready!(Pin::new(&mut self.io).poll_write(cx, &slices[0]))?,
                n => ready!(Pin::new(&mut self.io).poll_write_vectored(cx, &slices[..n]))?,
            }
        } else {
            ready!(Pin::new(&mut self.io).poll_write(cx, transmit.first_chunk()))?
        };
        if written == 0 {
            return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
        }
        self.conn.transmit().advance(written);
        self.conn.record_wire(0, written);
        Poll::Ready(Ok(()))
    }

    /// Waits until the transmit queue is below the write buffer size, so one more message may be
    /// queued.
    pub(crate) fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if self.conn.sent_close() || self.conn.failure().is_some() {
            return Poll::Ready(Err(Error::Closed));
        }
        while self.conn.buffered_amount() >= self.config.get_write_buffer_size() {
            // One write at a time: room for the next message is all that is needed, so a sender
            // can queue while earlier bytes are still draining.
            if self.write_failed {
                return Poll::Ready(Err(Error::Closed));
            }
            if let Err(e) = ready!(self.poll_write_once(cx)) {
                self.write_failed = true;
                return Poll::Ready(Err(Error::Io(e)));
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Writes the replies the core queued (pongs, a close echo, a failure's close). Pending only
    /// when reading must wait for them: a close or failure is handed out only once its reply is
    /// written, and a peer that does not read our pongs is not read from either, so its pings
    /// cannot pile up replies here. Queued data never holds reading back: two peers both
    /// waiting to write would otherwise wait for each other forever.
    fn poll_replies(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if self.write_failed {
            // Nothing queued can leave any more; dropping it lets a close or failure the core
            // holds back until its reply is written be handed out.
            if self.conn.wants_write() {
                self.conn.transmit().clear();
            }
            return Poll::Ready(Ok(()));
        }
        if !self.conn.wants_write() {
            return Poll::Ready(Ok(()));
        }
        match self.poll_flush(cx) {
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
                // Closing or failed, yet the peer reads nothing: our close cannot go out. Give
                // up on what is queued once the close timeout passes, so the end is reported.
                if self.conn.is_receive_done() {
                    self.arm_close_timer();
                }
                if self.close_timer_expired(cx) {
                    self.conn.transmit().clear();
                    self.write_failed = true;
                    Poll::Ready(Ok(()))
                } else if self.conn.has_undelivered()
                    || self.conn.unsent_pong_bytes() >= self.config.get_write_buffer_size()
                {
                    Poll::Pending
                } else {
                    Poll::Ready(Ok(()))
                }
            }
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

    /// Matches a received pong against the pings sent. A pong answers the ping with the same
    /// payload and, as a peer may answer only the latest of several pings (RFC 6455 §5.5.3),
    /// every ping sent before it.
    fn resolve_pings(&mut self) {
        let Some(pong) = self.conn.take_pong() else {
            return;
        };
        let Some(at) = self.pings.iter().position(|p| p.payload == pong) else {
            return;
        };
        let now = Instant::now();
        for ping in self.pings.drain(..=at) {
            let _ = ping.reply.send(now - ping.sent);
        }
    }

    /// Checks keepalive and idle deadlines; returns the timeout that fails the connection.
    fn poll_watch(&mut self, cx: &mut Context<'_>) -> Option<Timeout> {
        let mut watch = self.watch.take()?;
        let result = loop {
            // While a keepalive ping is out the timer waits for the pong deadline; a frame that
            // answered it restarts the interval now, not when that deadline passes.
            let answered = watch.pong_deadline.is_some()
                && self.conn.stats().frames_received != watch.frames_seen;
            if !answered && watch.timer.as_mut().poll(cx).is_pending() {
                break None;
            }
            let now = Instant::now();
            let stats = self.conn.stats();
            if stats.frames_received != watch.frames_seen {
                watch.frames_seen = stats.frames_received;
                watch.last_heard = now;
                watch.pong_deadline = None;
            }
            if self.conn.data_events() != watch.data_seen {
                watch.data_seen = self.conn.data_events();
                watch.idle_since = now;
            }
            let timed_out = match watch.pong_deadline {
                Some(deadline) if now >= deadline => Some(Timeout::Pong),
                _ => self
                    .config
                    .get_idle_timeout()
                    .filter(|t| now >= watch.idle_since + *t)
                    .map(|_| Timeout::Idle),
            };
            if let Some(timeout) = timed_out {
                self.conn
                    .fail_locally(CloseFrame::new(CloseCode::GOING_AWAY, ""));
                let _ = self.poll_flush(cx);
                break Some(timeout);
            }
            if let (None, Some(interval)) = (watch.pong_deadline, self.config.get_ping_interval()) {
                if now >= watch.last_heard + interval && !self.conn.sent_close() {
                    let _ = self.conn.send_message(crate::Message::Ping(Bytes::new()));
                    let _ = self.poll_flush(cx);
                    watch.pong_deadline = Some(now + self.config.get_pong_timeout());
                }
            }
            let next = self.next_watch_deadline(&watch);
            watch.timer.as_mut().reset(next);
        };
        self.watch = Some(watch);
        result
    }

    /// Reads and decodes until `decode` yields an item, the connection ends (`None`), or an error.
    /// `delivery` sizes the reads: whole frames make room for the frame in hand, chunks never
    /// need more than one read's worth.
    pub(crate) fn poll_next<T>(
        &mut self,
        cx: &mut Context<'_>,
        delivery: Delivery,
        decode: Decode<T>,
    ) -> Poll<Option<Result<T, Error>>> {
        let next = self.poll_next_inner(cx, delivery, decode);
        if !self.pings.is_empty() && self.conn.is_receive_done() {
            // No pong can arrive after the peer's close (or a failure): dropping the senders
            // fails the waiting `Pong`s. (`finish` does the same when the connection ends.)
            self.pings.clear();
        }
        next
    }

    fn poll_next_inner<T>(
        &mut self,
        cx: &mut Context<'_>,
        delivery: Delivery,
        decode: Decode<T>,
    ) -> Poll<Option<Result<T, Error>>> {
        loop {
            if self.finished {
                return Poll::Ready(None);
            }
            if let Err(e) = ready!(self.poll_replies(cx)) {
                return Poll::Ready(Some(Err(e)));
            }
            let decoded = decode(&mut self.conn, &mut self.read_buf);
            if !self.pings.is_empty() {
                self.resolve_pings();
            }
            match decoded {
                Ok(Some(item)) => {
                    self.release_idle_read_buffer();
                    // A ping's pong is queued with it: start writing it now, as the caller may
                    // not poll again soon. What does not fit (or fails) waits for the next call.
                    if self.conn.wants_write() && !self.write_failed {
                        let _ = self.poll_flush(cx);
                    }
                    return Poll::Ready(Some(Ok(item)));
                }
                Err(reason) => return Poll::Ready(Some(Err(reason.into()))),
                Ok(None) => {}
            }
            if self.conn.has_undelivered() && !self.write_failed {
                continue; // its reply is still being written
            }
            if self.conn.is_receive_done() {
                return self.poll_finish(cx).map(|r| r.err().map(Err));
            }
            if self.close_timer_expired(cx) {
                self.give_up(cx);
                return Poll::Ready(Some(Err(Error::Timeout(Timeout::Close))));
            }
            if self.watch.is_some() {
                if let Some(timeout) = self.poll_watch(cx) {
                    self.give_up(cx);
                    return Poll::Ready(Some(Err(Error::Timeout(timeout))));
                }
            }
            if self.read_done {
                self.finish();
                return Poll::Ready(Some(Err(Error::abnormal_closure())));
            }
            match ready!(self.poll_fill(cx, delivery)) {
                Ok(0) => self.read_done = true,
                Ok(_) => {}
                Err(e) => {
                    self.read_done = true;
                    self.finish();
                    return Poll::Ready(Some(Err(Error::Io(e))));
                }
            }
        }
    }

    /// Ends the connection after a timeout: closes the transport at once (what could be flushed
    /// of our close frame was tried already), so the peer sees the end without waiting for the
    /// `WebSocket` to be dropped.
    fn give_up(&mut self, cx: &mut Context<'_>) {
        if !self.write_failed {
            // Best effort: a transport that cannot shut down now is closed when dropped.
            let _ = Pin::new(&mut self.io).poll_shutdown(cx);
            self.write_failed = true;
        }
        self.finish();
    }

    /// After the last frame: flush, then close the transport. A server (or anyone failing the
    /// connection) closes TCP first; a client waits for the server to close it, up to the close
    /// timeout (RFC 6455 §7.1.1).
    fn poll_finish(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if !self.write_failed && ready!(self.poll_flush(cx)).is_err() {
            self.finish();
            return Poll::Ready(Ok(()));
        }
        let client_waits = self.conn.role() == Role::Client && self.conn.failure().is_none();
        if client_waits {
            self.arm_close_timer();
            while !self.read_done {
                if self.close_timer_expired(cx) {
                    break;
                }
                self.read_buf.clear();
                match ready!(self.poll_fill(cx, Delivery::Chunks)) {
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

    /// Reads more bytes into the read buffer, making room for the frame in hand when whole
    /// frames are wanted.
    fn poll_fill(&mut self, cx: &mut Context<'_>, delivery: Delivery) -> Poll<io::Result<usize>> {
        let min = self.config.get_read_buffer_size();
        let extra = match delivery {
            Delivery::WholeFrames => {
                let wanted = self.conn.read_wanted(self.read_buf.len());
                wanted.saturating_sub(self.read_buf.len()).max(min)
            }
            Delivery::Chunks => self.stream_read,
        };
        self.read_buf.reserve(extra);
        let result = tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.read_buf);
        if result.is_pending() && self.read_buf.is_empty() {
            // Nothing to read and nothing held: give the buffer back, so an idle connection
            // holds no read buffer while it waits (the next read makes a new one).
            self.read_buf = BytesMut::new();
        }
        if let Poll::Ready(Ok(n)) = result {
            self.conn.record_wire(n, 0);
            if delivery == Delivery::Chunks {
                if n >= self.stream_read {
                    self.stream_read = (self.stream_read * 2).min(STREAM_READ_MAX.max(min));
                } else if n < self.stream_read / 4 {
                    self.stream_read = (self.stream_read / 2).max(min);
                }
            }
        }
        result
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

/// Reads and writes for the stream API.
impl<S: AsyncRead + AsyncWrite + Unpin> Driver<S> {
    /// How many payload bytes may be read straight into a caller's buffer now.
    pub(crate) fn direct_read_len(&self) -> usize {
        if self.finished || self.read_done {
            return 0;
        }
        usize::try_from(self.conn.direct_len(self.read_buf.len())).unwrap_or(usize::MAX)
    }

    /// Reads payload straight from the transport into `dst` (at most
    /// [`direct_read_len`](Self::direct_read_len) bytes) and unmasks it there: one copy in all,
    /// kernel to caller. `Ok(None)`: nothing was taken (the connection failed on these bytes, or
    /// the transport ended); the next [`poll_next`](Self::poll_next) reports why.
    pub(crate) fn poll_read_direct(
        &mut self,
        cx: &mut Context<'_>,
        dst: &mut [u8],
    ) -> Poll<Result<Option<(usize, DirectChunk)>, Error>> {
        ready!(self.poll_replies(cx))?;
        let len = dst.len().min(self.direct_read_len());
        if len == 0 {
            return Poll::Ready(Ok(None));
        }
        let mut read_buf = ReadBuf::new(&mut dst[..len]);
        if let Err(e) = ready!(Pin::new(&mut self.io).poll_read(cx, &mut read_buf)) {
            self.read_done = true;
            self.finish();
            return Poll::Ready(Err(Error::Io(e)));
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
            .ok()
            .flatten()
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
        let (head, head_len) = self.conn.direct_fragment_header(kind, fin, data.len())?;
        let slices = [IoSlice::new(&head[..head_len]), IoSlice::new(data)];
        let written = match ready!(Pin::new(&mut self.io).poll_write_vectored(cx, &slices)) {
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
