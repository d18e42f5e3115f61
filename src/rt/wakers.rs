//! The wakers of the tasks that wait on one connection, kept apart by side.
//!
//! A connection may be polled from two tasks at once: a reader and a writer (wsio's own halves,
//! or a generic splitter such as `futures::StreamExt::split` or `tokio::io::split`). Both sides
//! read and write the transport (a reader writes pongs and the close echo, a writer reads ahead
//! to answer pings), and a transport keeps one waker per direction, like `TcpStream`: if each
//! side polled the transport with its own waker, one would replace the other's and that task
//! would never be woken. So the transport is always polled with one waker, [`TaskWakers`], that
//! wakes whichever tasks have registered on either side.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{RawWakerVTable, Wake, Waker};

use atomic_waker::AtomicWaker;

/// Which side of the connection a poll serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// Receiving: `recv`, a stream reader, the read half.
    Read,
    /// Sending: `send`, `flush`, a stream writer, the write half.
    Write,
}

/// The latest waker of each side.
///
/// Each side is an `AtomicWaker` and nothing more: a registration is never skipped on the
/// strength of a flag of our own, as a wake racing with a registration can leave the
/// `AtomicWaker` empty (it wakes the new waker at once instead of keeping it), and a flag set
/// beside it cannot tell. `AtomicWaker::register` keeps the stored waker when it would wake
/// the same task, so registering on every poll costs two compare-and-swaps and no clone.
#[derive(Debug, Default)]
pub(crate) struct TaskWakers {
    read: AtomicWaker,
    write: AtomicWaker,
    /// The waker was woken since [`clear_signal`](Self::clear_signal): the transport (or the
    /// timer) has something new.
    signalled: AtomicBool,
    /// The task that polls the connection while it is not split. It polls the transport with
    /// its own waker, so only this slot lets news from outside the connection (a server's
    /// shutdown, see `rt/shutdown.rs`) reach it. Registered when a new task is seen, not on
    /// every poll.
    owner: AtomicWaker,
}

/// The tasks seen on each side before the connection is split: to tell whether a second task
/// has started polling, and to register both once it has.
#[derive(Debug, Default)]
pub(crate) struct Registered {
    /// A clone of the waker each side (by [`Side::index`]) was last polled with.
    tasks: [Option<Waker>; 2],
    /// The waker each side was last polled with, as it came (not a clone): while one task polls
    /// both sides, a comparison of two pointer pairs tells it is the same one again. (Only a
    /// dead task's address can be reused, and a dead task polls nothing.)
    last_polled: [Option<WakerId>; 2],
}

/// A waker's identity as `Waker::will_wake` sees it: the addresses of its data and vtable
/// (only compared, never dereferenced).
type WakerId = (usize, usize);

#[inline(always)]
fn id(waker: &Waker) -> WakerId {
    (
        waker.data() as usize,
        waker.vtable() as *const RawWakerVTable as usize,
    )
}

impl Side {
    const BOTH: [Side; 2] = [Side::Read, Side::Write];

    fn index(self) -> usize {
        match self {
            Side::Read => 0,
            Side::Write => 1,
        }
    }

    fn other(self) -> Side {
        match self {
            Side::Read => Side::Write,
            Side::Write => Side::Read,
        }
    }
}

/// Whether two wakers wake the same task: the same data under vtables with the same functions.
/// Not `Waker::will_wake`, which compares the vtable by address: the same vtable may exist at
/// two addresses (a constant instantiated in two codegen units), and tokio's `block_on` polls
/// with a waker whose clones carry another copy of its vtable, so a stored clone never
/// `will_wake` the waker it came from.
fn wakes_same(a: &Waker, b: &Waker) -> bool {
    a.data() == b.data() && a.vtable() == b.vtable()
}

impl Registered {
    /// Whether `waker` is the task that polled the other side (or no other task has polled):
    /// remembers it for `side` either way, and a task not seen before as the owner in
    /// `wakers`.
    #[inline(always)]
    pub(crate) fn same_task(&mut self, side: Side, waker: &Waker, wakers: &TaskWakers) -> bool {
        let seen = Some(id(waker));
        if self.last_polled == [seen, seen] {
            return true; // the common case: one task, polling again
        }
        self.same_task_slow(side, waker, seen, wakers)
    }

    #[inline(never)]
    fn same_task_slow(
        &mut self,
        side: Side,
        waker: &Waker,
        seen: Option<WakerId>,
        wakers: &TaskWakers,
    ) -> bool {
        self.last_polled[side.index()] = seen;
        let mine = &mut self.tasks[side.index()];
        if !mine.as_ref().is_some_and(|w| wakes_same(w, waker)) {
            *mine = Some(waker.clone());
            wakers.owner.register(waker);
        }
        self.tasks[side.other().index()]
            .as_ref()
            .is_none_or(|w| wakes_same(w, waker))
    }
}

impl TaskWakers {
    /// A waker for the transport that wakes both sides, and the slots it wakes.
    pub(crate) fn new() -> (Arc<TaskWakers>, Waker) {
        let wakers = Arc::new(TaskWakers::default());
        let waker = Waker::from(wakers.clone());
        (wakers, waker)
    }

    /// Registers the task polling `side`.
    pub(crate) fn register(&self, side: Side, waker: &Waker) {
        self.slot(side).register(waker);
    }

    fn slot(&self, side: Side) -> &AtomicWaker {
        match side {
            Side::Read => &self.read,
            Side::Write => &self.write,
        }
    }

    /// Forgets earlier wakes, before the transport is polled: a wake from then on is news.
    pub(crate) fn clear_signal(&self) {
        self.signalled.store(false, Ordering::Release);
    }

    /// Whether the waker was woken since [`clear_signal`](Self::clear_signal).
    pub(crate) fn signalled(&self) -> bool {
        self.signalled.load(Ordering::Acquire)
    }

    /// The connection becomes split: both tasks seen so far are registered on their sides,
    /// the one that polled before included (it may be waiting on the transport, whose waker
    /// the next poll replaces with the one that wakes both).
    pub(crate) fn adopt(&self, registered: &Registered) {
        for side in Side::BOTH {
            if let Some(waker) = &registered.tasks[side.index()] {
                self.register(side, waker);
            }
        }
    }

    /// Wakes the task waiting on `side`, if one is: the other side made progress for it that no
    /// transport event will announce (data read ahead, replies written).
    pub(crate) fn wake(&self, side: Side) {
        self.slot(side).wake();
    }

    /// Wakes every task the connection knows of, for news from outside it that no transport
    /// event will announce (a server's shutdown): its owner, and each side's task once split.
    pub(crate) fn wake_all(&self) {
        self.owner.wake();
        self.read.wake();
        self.write.wake();
    }
}

impl Wake for TaskWakers {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.signalled.store(true, Ordering::Release);
        self.read.wake();
        self.write.wake();
    }
}
