//! An in-memory transport that keeps, like `TcpStream`, only the latest waker per direction:
//! a second task polling the same direction replaces the first one's waker, which is then never
//! woken. A library that lets two tasks poll one direction of its transport loses wake-ups here
//! deterministically, not by chance.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

#[derive(Debug, Default)]
struct Direction {
    bytes: VecDeque<u8>,
    capacity: usize,
    /// The latest task waiting to read: only it is woken when bytes arrive.
    reader: Option<Waker>,
    /// The latest task waiting to write: only it is woken when room appears.
    writer: Option<Waker>,
    closed: bool,
}

/// One end of a [`pipe`].
#[derive(Debug)]
pub(crate) struct PipeEnd {
    incoming: Arc<Mutex<Direction>>,
    outgoing: Arc<Mutex<Direction>>,
}

/// Two connected ends, each direction holding at most `capacity` bytes.
pub(crate) fn pipe(capacity: usize) -> (PipeEnd, PipeEnd) {
    let direction = || {
        Arc::new(Mutex::new(Direction {
            capacity,
            ..Direction::default()
        }))
    };
    let (a, b) = (direction(), direction());
    (
        PipeEnd {
            incoming: a.clone(),
            outgoing: b.clone(),
        },
        PipeEnd {
            incoming: b,
            outgoing: a,
        },
    )
}

impl AsyncRead for PipeEnd {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut d = self.incoming.lock().unwrap();
        if d.bytes.is_empty() {
            if d.closed {
                return Poll::Ready(Ok(()));
            }
            d.reader = Some(cx.waker().clone()); // replaces any earlier reader
            return Poll::Pending;
        }
        let n = buf.remaining().min(d.bytes.len());
        let (front, back) = d.bytes.as_slices();
        let from_front = n.min(front.len());
        buf.put_slice(&front[..from_front]);
        buf.put_slice(&back[..n - from_front]);
        d.bytes.drain(..n);
        if let Some(writer) = d.writer.take() {
            writer.wake();
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for PipeEnd {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut d = self.outgoing.lock().unwrap();
        if d.closed {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        let room = d.capacity - d.bytes.len();
        if room == 0 {
            d.writer = Some(cx.waker().clone()); // replaces any earlier writer
            return Poll::Pending;
        }
        let n = room.min(data.len());
        d.bytes.extend(&data[..n]);
        if let Some(reader) = d.reader.take() {
            reader.wake();
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut d = self.outgoing.lock().unwrap();
        d.closed = true;
        if let Some(reader) = d.reader.take() {
            reader.wake();
        }
        Poll::Ready(Ok(()))
    }
}

impl Drop for PipeEnd {
    fn drop(&mut self) {
        for direction in [&self.incoming, &self.outgoing] {
            let mut d = direction.lock().unwrap();
            d.closed = true;
            for waker in [d.reader.take(), d.writer.take()].into_iter().flatten() {
                waker.wake();
            }
        }
    }
}
