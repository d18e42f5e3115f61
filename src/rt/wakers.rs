//! The wakers of the tasks that wait on one connection, kept apart by side.
//!
//! A connection may be polled from two tasks at once: a reader and a writer (wsio's own halves,
//! or a generic splitter such as `futures::StreamExt::split` or `tokio::io::split`). Both sides
//! read and write the transport (a reader writes pongs and the close echo, a writer reads ahead
//! to answer pings), and a transport keeps one waker per direction, like `TcpStream`: if each
//! side polled the transport with its own waker, one would replace the other's and that task
//! would never be woken. So the transport is always polled with one waker, [`TaskWakers`], that
//! wakes whichever tasks have registered on either side.

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
    read: AtomicWaker,
    write: AtomicWaker,
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
        match side {
            Side::Read => self.read.register(waker),
            Side::Write => self.write.register(waker),
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
