//! Graceful shutdown: a server asks every connection its [`Acceptor`](crate::server::Acceptor)
//! built to close with 1001 (going away), waits for the closing handshakes until a deadline,
//! and reports how each connection ended.
//!
//! The registry is touched twice per connection (when the handshake builds it, and when it ends
//! or is dropped), never per message. A connection learns of the shutdown from the order set
//! here once for all ([`Registry::order`]), which its driver reads on each poll (a load, no
//! read-modify-write), and is woken through its [`TaskWakers`], whoever polls it: a task that
//! only reads, one parked on a full transport, or the two halves of a split connection. The
//! deadline is handed to the sans-io core (`Connection::close_by`), whose timer cuts off a peer
//! that does not answer: this module keeps no clock of its own for the connections.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;

use super::deadline_after;
use super::wakers::TaskWakers;
use crate::handshake::server::Reject;
use crate::proto::close::{CloseCode, CloseFrame, MAX_REASON_LEN};

/// A server's graceful shutdown: the set of its open WebSocket connections, and the means to
/// close them all with 1001 (going away) within a deadline.
///
/// Give it to the [`Acceptor`](crate::server::Acceptor) with
/// [`Acceptor::shutdown`](crate::server::Acceptor::shutdown): every connection the acceptor
/// builds is registered (once, when its handshake completes; nothing is done per message), and
/// leaves the set when it ends or is dropped. When the server stops,
/// [`close_all`](Self::close_all) sends each connection's peer a close frame with 1001 and the
/// [`reason`](Self::with_reason), waits for the closing handshakes until the deadline, cuts off
/// the connections still open then, and returns a [`ShutdownReport`]. From the start of
/// `close_all` on, the acceptor answers new upgrade requests with `503 Service Unavailable`.
///
/// The close goes out whatever the application's task is doing with the connection, as long
/// as it polls it: waiting in `recv` on an idle connection, only sending (even when parked on a
/// full transport), reading a [`MessageReader`](crate::MessageReader) or a
/// [`ByteStream`](crate::ByteStream), or as two split halves. The task sees the closing
/// handshake as it sees a peer's: `recv` returns the peer's answer (a [`Message::Close`]) and
/// then `None`; a send returns an error of kind `Closed` once the close frame is written. A
/// connection cut off at the deadline returns [`Error::Timeout`] of [`Timeout::Close`] to its
/// next receive (an error to its next send), and its transport is shut down. A connection no
/// task polls at all cannot write anything: wsio, like every poll-driven library, moves a
/// connection only when it is polled. It is counted as cut at the deadline, and its next poll
/// writes what it can of the close and ends it.
///
/// Cheap to clone: the clones share one set.
///
/// [`Message::Close`]: crate::Message::Close
/// [`Error::Timeout`]: crate::Error::Timeout
/// [`Timeout::Close`]: crate::error::Timeout::Close
///
/// ```no_run
/// use std::time::Duration;
/// use wsio::server::{Acceptor, Shutdown};
///
/// # async fn demo() -> std::io::Result<()> {
/// let shutdown = Shutdown::new().with_reason("server restarting");
/// let acceptor = Acceptor::new().shutdown(&shutdown);
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:9002").await?;
/// loop {
///     tokio::select! {
///         accepted = listener.accept() => {
///             let (tcp, _) = accepted?;
///             let acceptor = acceptor.clone();
///             tokio::spawn(async move {
///                 let (mut ws, _request) = acceptor.accept(tcp).await?;
///                 // The peer's close, 1001 from the shutdown's included, ends this loop.
///                 while let Some(message) = ws.recv().await {
///                     let message = message?;
///                     if message.is_data() {
///                         ws.send(message).await?;
///                     }
///                 }
///                 Ok::<_, wsio::Error>(())
///             });
///         }
///         _ = tokio::signal::ctrl_c() => break,
///     }
/// }
/// drop(listener); // no new connections
/// let report = shutdown.close_all(Duration::from_secs(10)).await;
/// println!(
///     "{} open: {} closed, {} ended otherwise, {} cut off",
///     report.open, report.closed, report.ended, report.cut
/// );
/// # Ok(()) }
/// ```
#[derive(Clone, Default)]
pub struct Shutdown {
    registry: Arc<Registry>,
}

/// What the clones of one [`Shutdown`] share.
#[derive(Default)]
struct Registry {
    /// Set once, when the shutdown begins: what every connection is asked to do. Connections
    /// read it without the lock.
    order: OnceLock<Order>,
    state: Mutex<State>,
    /// Notified when a connection leaves the set while the shutdown runs.
    left: Notify,
}

/// What a shutdown asks of each connection: to send `frame` and be done by `deadline`.
#[derive(Debug, Clone)]
pub(crate) struct Order {
    pub(crate) frame: CloseFrame,
    pub(crate) deadline: std::time::Instant,
}

#[derive(Debug, Default)]
struct State {
    /// The open connections, by registration number, with the wakers of their tasks.
    connections: HashMap<u64, Arc<TaskWakers>>,
    next_id: u64,
    reason: String,
    /// How connections fared since the shutdown began.
    tally: Tally,
}

/// Counts since the shutdown began.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    /// Connections registered after it began (a handshake that was being answered).
    joined: usize,
    closed: usize,
    ended: usize,
    cut: usize,
}

/// How a connection ended, as its driver saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// Both close frames were exchanged.
    Closed,
    /// The closing handshake's deadline passed first.
    Cut,
    /// Anything else: the peer vanished, the connection failed, or it was dropped.
    Ended,
}

/// What [`Shutdown::close_all`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Connections open when the shutdown began, and any whose handshake completed while it
    /// ran (each was told to close at once).
    pub open: usize,
    /// Connections whose closing handshake completed: both close frames were exchanged.
    pub closed: usize,
    /// Connections that ended otherwise before the deadline: the peer went away without
    /// answering, the connection failed, or the application dropped it.
    pub ended: usize,
    /// Connections still open at the deadline, cut off.
    pub cut: usize,
}

impl fmt::Debug for Shutdown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shutdown")
            .field("open", &self.open())
            .field("closing", &self.is_closing())
            .finish()
    }
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update leaves the state whole: a panic elsewhere changes nothing here.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn deregister(&self, id: u64, ending: Ending) {
        let mut state = self.lock();
        if state.connections.remove(&id).is_none() {
            return;
        }
        // A server that has run for days with churn holds what its open connections need.
        let (len, capacity) = (state.connections.len(), state.connections.capacity());
        if capacity > 64 && len < capacity / 4 {
            state.connections.shrink_to(len * 2);
        }
        if self.order.get().is_some() {
            let tally = &mut state.tally;
            match ending {
                Ending::Closed => tally.closed += 1,
                Ending::Cut => tally.cut += 1,
                Ending::Ended => tally.ended += 1,
            }
            drop(state);
            self.left.notify_waiters();
        }
    }
}

/// The refusal of an upgrade once `shutdown` has begun: 503, which tells a client to come back
/// later (to another instance, behind a load balancer); `None` without a shutdown or before it
/// began.
pub(crate) fn refusal(shutdown: Option<&Shutdown>) -> Option<Reject> {
    shutdown.filter(|shutdown| shutdown.is_closing()).map(|_| {
        Reject::new(http::StatusCode::SERVICE_UNAVAILABLE).body("the server is shutting down")
    })
}

impl Shutdown {
    /// A shutdown with no connections yet, and an empty close reason.
    pub fn new() -> Self {
        Self::default()
    }

    /// The reason sent in the close frames, beside the code 1001 (default: empty). A reason
    /// longer than a close frame holds (123 bytes) is cut at the last character that fits.
    pub fn with_reason(self, reason: impl Into<String>) -> Self {
        let mut reason = reason.into();
        let mut end = reason.len().min(MAX_REASON_LEN);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason.truncate(end);
        self.registry.lock().reason = reason;
        self
    }

    /// Whether the shutdown has begun ([`close_all`](Self::close_all) was called).
    pub fn is_closing(&self) -> bool {
        self.registry.order.get().is_some()
    }

    /// How many connections are open now (built and not yet ended or dropped).
    pub fn open(&self) -> usize {
        self.registry.lock().connections.len()
    }

    /// Closes every open connection: each is sent a close frame with 1001 (going away) and
    /// the reason, and has until `timeout` from now to finish its closing handshake; then
    /// the ones still open are cut off (their transport is shut down). Returns once every
    /// connection has ended, or at the deadline, with what happened to them. With no
    /// connection open, it returns at once.
    ///
    /// From this call on, [`is_closing`](Self::is_closing) is true and the acceptor refuses new
    /// upgrades with 503; a connection whose handshake completes meanwhile is told to close at
    /// once. The deadline of the first call is the connections'; a later call waits on the
    /// same connections, until its own deadline.
    ///
    /// ```
    /// use std::time::Duration;
    /// use wsio::server::{Acceptor, Shutdown};
    /// use wsio::{CloseCode, Message};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> wsio::Result<()> {
    /// let shutdown = Shutdown::new().with_reason("maintenance");
    /// let acceptor = Acceptor::new().shutdown(&shutdown);
    /// let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    /// let server = tokio::spawn(async move {
    ///     let (mut ws, _) = acceptor.accept(server_io).await?;
    ///     while let Some(message) = ws.recv().await {
    ///         message?; // the client's answer to the 1001 comes here, then `None`
    ///     }
    ///     Ok::<_, wsio::Error>(())
    /// });
    /// let (mut client, _) = wsio::connect_on(client_io, "ws://example.com/").await?;
    /// while shutdown.open() == 0 {
    ///     tokio::task::yield_now().await;
    /// }
    ///
    /// let (report, message) = tokio::join!(
    ///     shutdown.close_all(Duration::from_secs(5)),
    ///     client.recv(), // the client sees the close (and wsio answers it)
    /// );
    /// let Some(Ok(Message::Close(Some(frame)))) = message else { panic!("{message:?}") };
    /// assert_eq!((frame.code, frame.reason.as_str()), (CloseCode::GOING_AWAY, "maintenance"));
    /// assert!(client.recv().await.is_none());
    /// assert_eq!((report.open, report.closed, report.cut), (1, 1, 0));
    /// server.await.unwrap()?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Cancel safety
    /// Dropping the future stops the waiting only: the connections were told to close, and
    /// still close by the deadline.
    pub async fn close_all(&self, timeout: Duration) -> ShutdownReport {
        let deadline = deadline_after(timeout);
        let (open, before, to_wake) = {
            let state = self.registry.lock();
            self.registry.order.get_or_init(|| Order {
                frame: CloseFrame::new(CloseCode::GOING_AWAY, state.reason.as_str()),
                deadline: deadline.into_std(),
            });
            let to_wake: Vec<_> = state.connections.values().cloned().collect();
            (state.connections.len(), state.tally, to_wake)
        };
        // Outside the lock: a connection that wakes at once may end, and deregister, at once.
        for wakers in to_wake {
            wakers.wake_all();
        }
        loop {
            let left = self.registry.left.notified();
            tokio::pin!(left);
            // Registered before the check, so a connection leaving in between is not missed.
            left.as_mut().enable();
            if self.registry.lock().connections.is_empty() {
                break;
            }
            if tokio::time::timeout_at(deadline, left).await.is_err() {
                break;
            }
        }
        let state = self.registry.lock();
        let now = state.tally;
        ShutdownReport {
            open: open + now.joined - before.joined,
            closed: now.closed - before.closed,
            ended: now.ended - before.ended,
            cut: now.cut - before.cut + state.connections.len(),
        }
    }

    /// Adds a connection whose tasks `wakers` wakes. Told to close at once (by its first
    /// poll) when the shutdown has begun.
    pub(crate) fn register(&self, wakers: Arc<TaskWakers>) -> Registration {
        let mut state = self.registry.lock();
        let id = state.next_id;
        state.next_id += 1;
        state.connections.insert(id, wakers);
        if self.is_closing() {
            state.tally.joined += 1;
        }
        Registration {
            registry: self.registry.clone(),
            id,
            heeded: false,
            ending: Ending::Ended,
        }
    }
}

/// A connection's place in a [`Shutdown`]'s set, held by its driver; dropping it takes the
/// connection out of the set.
pub(crate) struct Registration {
    registry: Arc<Registry>,
    id: u64,
    /// The driver has taken the order.
    heeded: bool,
    /// How the connection ended, for the tally.
    ending: Ending,
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("id", &self.id)
            .field("heeded", &self.heeded)
            .finish_non_exhaustive()
    }
}

impl Registration {
    /// The shutdown's order, the first time it is asked for once the shutdown has begun: the
    /// driver's check on every poll, a load and a branch.
    #[inline(always)]
    pub(crate) fn take_order(&mut self) -> Option<Order> {
        if self.heeded {
            return None;
        }
        let order = self.registry.order.get()?;
        self.heeded = true;
        Some(order.clone())
    }

    /// The connection ended as `ending` says: it leaves the set.
    pub(crate) fn end(mut self, ending: Ending) {
        self.ending = ending;
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.deregister(self.id, self.ending);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn churn_leaves_the_set_empty_and_small() {
        let shutdown = Shutdown::new();
        for _ in 0..3 {
            let held: Vec<_> = (0..2000)
                .map(|_| shutdown.register(TaskWakers::new().0))
                .collect();
            assert_eq!(shutdown.open(), 2000);
            drop(held);
            assert_eq!(shutdown.open(), 0);
            assert!(shutdown.registry.lock().connections.capacity() <= 64 * 2);
        }
        assert!(!shutdown.is_closing());
    }

    #[test]
    fn a_reason_too_long_for_a_close_frame_is_cut_at_a_character() {
        let shutdown = Shutdown::new().with_reason("é".repeat(100));
        let reason = shutdown.registry.lock().reason.clone();
        assert_eq!(reason.len(), 122);
        assert!(reason.chars().all(|c| c == 'é'));
    }

    #[tokio::test]
    async fn connections_that_end_during_the_shutdown_are_tallied_by_how_they_ended() {
        let shutdown = Shutdown::new();
        let before = shutdown.register(TaskWakers::new().0);
        drop(before); // ended before the shutdown: not counted
        let closed = shutdown.register(TaskWakers::new().0);
        let ended = shutdown.register(TaskWakers::new().0);
        let _stuck = shutdown.register(TaskWakers::new().0);
        let ends = async {
            tokio::task::yield_now().await;
            closed.end(Ending::Closed);
            ended.end(Ending::Ended);
        };
        let (report, ()) = tokio::join!(shutdown.close_all(Duration::from_millis(50)), ends);
        let expected = ShutdownReport {
            open: 3,
            closed: 1,
            ended: 1,
            cut: 1,
        };
        assert_eq!(report, expected);
        assert!(shutdown.is_closing());
        assert_eq!(shutdown.open(), 1);
    }

    #[tokio::test]
    async fn a_connection_registered_while_the_shutdown_runs_is_told_once_and_counted() {
        let shutdown = Shutdown::new();
        let _stuck = shutdown.register(TaskWakers::new().0);
        let late = async {
            tokio::task::yield_now().await;
            let mut late = shutdown.register(TaskWakers::new().0);
            let order = late.take_order().expect("told at once");
            assert_eq!(order.frame.code, CloseCode::GOING_AWAY);
            assert!(late.take_order().is_none(), "the order is taken once");
            late.end(Ending::Closed);
        };
        let (report, ()) = tokio::join!(shutdown.close_all(Duration::from_millis(50)), late);
        let counts = [report.open, report.closed, report.ended, report.cut];
        assert_eq!(counts, [2, 1, 0, 1]);
    }
}
