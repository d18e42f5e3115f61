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
use std::task::{Wake, Waker};

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
#[derive(Debug, Default)]
pub(crate) struct TaskWakers {
    read: Slot,
    write: Slot,
}

/// One side's waker, and whether a wake took it since it was registered.
#[derive(Debug, Default)]
struct Slot {
    waker: AtomicWaker,
    taken: AtomicBool,
}

impl Slot {
    fn wake(&self) {
        self.taken.store(true, Ordering::Release);
        self.waker.wake();
    }
}

/// What a driver remembers of its last registration on each side, to skip registering the
/// same waker again on every poll (most polls come from the task that polled last).
#[derive(Debug, Default)]
pub(crate) struct Registered {
    read: Option<Waker>,
    write: Option<Waker>,
}

impl Registered {
    /// Whether `waker` is the task that polled the other side (or no other task has polled):
    /// remembers it for `side` either way.
    pub(crate) fn same_task(&mut self, side: Side, waker: &Waker) -> bool {
        let (mine, other) = match side {
            Side::Read => (&mut self.read, &self.write),
            Side::Write => (&mut self.write, &self.read),
        };
        if !mine.as_ref().is_some_and(|w| w.will_wake(waker)) {
            *mine = Some(waker.clone());
        }
        other.as_ref().is_none_or(|w| w.will_wake(waker))
    }
}

impl TaskWakers {
    /// A waker for the transport that wakes both sides, and the slots it wakes.
    pub(crate) fn new() -> (Arc<TaskWakers>, Waker) {
        let wakers = Arc::new(TaskWakers::default());
        let waker = Waker::from(wakers.clone());
        (wakers, waker)
    }

    /// Registers the task polling `side`, unless the same task's waker is registered there
    /// already and no wake has taken it since.
    pub(crate) fn register(&self, side: Side, waker: &Waker, registered: &mut Registered) {
        let (slot, last, other, other_last) = match side {
            Side::Read => (
                &self.read,
                &mut registered.read,
                &self.write,
                &registered.write,
            ),
            Side::Write => (
                &self.write,
                &mut registered.write,
                &self.read,
                &registered.read,
            ),
        };
        let current = last.as_ref().is_some_and(|w| w.will_wake(waker));
        if current && !slot.taken.load(Ordering::Acquire) {
            return;
        }
        if other_last.as_ref().is_some_and(|w| w.will_wake(waker))
            && !other.taken.load(Ordering::Acquire)
        {
            // One task polls both sides (no split): the other side's slot wakes it already.
            return;
        }
        // Cleared before registering: a wake from now on marks it taken again. A wake that
        // came earlier is not lost: the caller polls the transport after this.
        slot.taken.store(false, Ordering::Release);
        slot.waker.register(waker);
        if !current {
            *last = Some(waker.clone());
        }
    }

    /// The connection becomes split: both tasks seen so far are registered on their sides,
    /// the one that polled before included (it may be waiting on the transport, whose waker
    /// the next poll replaces with the one that wakes both).
    pub(crate) fn adopt(&self, registered: &Registered) {
        for (slot, waker) in [
            (&self.read, &registered.read),
            (&self.write, &registered.write),
        ] {
            if let Some(waker) = waker {
                slot.taken.store(false, Ordering::Release);
                slot.waker.register(waker);
            }
        }
    }

    /// Wakes the task waiting on `side`, if one is: the other side made progress for it that no
    /// transport event will announce (data read ahead, replies written).
    pub(crate) fn wake(&self, side: Side) {
        match side {
            Side::Read => self.read.wake(),
            Side::Write => self.write.wake(),
        }
    }
}

impl Wake for TaskWakers {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.read.wake();
        self.write.wake();
    }
}
