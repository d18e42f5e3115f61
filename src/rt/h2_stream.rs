//! [`H2Stream`]: one HTTP/2 stream as `AsyncRead + AsyncWrite`, the transport of a WebSocket
//! opened by an extended CONNECT (RFC 8441), with HTTP/2 flow control in both directions.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use h2::{RecvStream, SendStream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The most bytes one write hands to h2, and so the most send capacity a stream asks for at a
/// time: enough for full DATA frames in a row, little enough that an idle stream does not hold
/// much of the connection's window that other streams could use.
const MAX_WRITE: usize = 64 * 1024;

/// One HTTP/2 stream (an extended CONNECT tunnel) as a byte stream: the transport of the
/// `WebSocket`s that [`Http2Connection::websocket`](crate::client::Http2Connection::websocket)
/// opens, so that the message API and the stream API work over it as over TCP.
///
/// Flow control is what bounds memory: reading gives window back to the server only as bytes
/// are read out (a reader that stops stops the server's sending once the stream's window is
/// used up), and writing waits for send capacity before it hands bytes to h2, so at most
/// 64 KiB per write waits in h2's buffers. Shutting the write side down sends `END_STREAM`;
/// a stream the server resets (`RST_STREAM`) or a connection it ends (`GOAWAY`, or the
/// transport closing) makes reads and writes fail with an [`io::Error`] (`ConnectionReset`,
/// `ConnectionAborted`, or the transport's), never wait forever. Dropping the stream before
/// both sides ended resets it (`CANCEL`).
#[derive(Debug)]
pub struct H2Stream {
    send: SendStream<Bytes>,
    recv: RecvStream,
    /// The rest of the last DATA frame received, not read yet; its window is released as it is
    /// read.
    unread: Bytes,
    /// The server ended its side (`END_STREAM`): reads return end of file.
    recv_ended: bool,
    /// `END_STREAM` was sent: writes fail.
    send_ended: bool,
}

impl H2Stream {
    /// The stream of a request sent with `send`, whose response body is `recv`.
    pub(crate) fn new(send: SendStream<Bytes>, recv: RecvStream) -> Self {
        H2Stream {
            send,
            recv,
            unread: Bytes::new(),
            recv_ended: false,
            send_ended: false,
        }
    }

    /// Waits until h2 has assigned the stream send capacity, having asked for `wanted` bytes;
    /// returns how much it has.
    fn poll_send_capacity(
        &mut self,
        cx: &mut Context<'_>,
        wanted: usize,
    ) -> Poll<io::Result<usize>> {
        self.send.reserve_capacity(wanted);
        loop {
            // `poll_capacity` reports increases only: capacity assigned before this poll would
            // never be reported, so what is there is looked at first.
            let capacity = self.send.capacity();
            if capacity > 0 {
                return Poll::Ready(Ok(capacity));
            }
            match self.send.poll_capacity(cx) {
                Poll::Ready(Some(Ok(_))) => continue,
                Poll::Ready(Some(Err(error))) => return Poll::Ready(Err(io_error(error))),
                Poll::Ready(None) => return Poll::Ready(Err(self.closed_for_sending(cx))),
                // A reset while waiting would not wake the capacity waiter: wait for both.
                Poll::Pending => {
                    return match self.send.poll_reset(cx) {
                        Poll::Ready(reset) => Poll::Ready(Err(reset_error(reset))),
                        Poll::Pending => Poll::Pending,
                    }
                }
            }
        }
    }

    /// Why the stream cannot be sent on any more: the server reset it, or it is closed.
    fn closed_for_sending(&mut self, cx: &mut Context<'_>) -> io::Error {
        match self.send.poll_reset(cx) {
            Poll::Ready(reset) => reset_error(reset),
            Poll::Pending => io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the HTTP/2 stream is closed for sending",
            ),
        }
    }
}

impl AsyncRead for H2Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        while this.unread.is_empty() {
            if this.recv_ended {
                return Poll::Ready(Ok(()));
            }
            match ready!(this.recv.poll_data(cx)) {
                Some(Ok(data)) => this.unread = data,
                Some(Err(error)) => return Poll::Ready(Err(io_error(error))),
                None => this.recv_ended = true,
            }
        }
        let n = this.unread.len().min(buf.remaining());
        buf.put_slice(&this.unread[..n]);
        this.unread.advance(n);
        // The window reopens as the application consumes, not as frames arrive: that is the
        // backpressure on the server, and what bounds the bytes h2 holds for this stream.
        this.recv
            .flow_control()
            .release_capacity(n)
            .map_err(io_error)?;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for H2Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    /// Copies what fits in the stream's send capacity (at most 64 KiB) from `bufs` into one
    /// DATA frame's worth of bytes: a WebSocket frame's header and payload leave together.
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.send_ended {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "write after shutdown of the HTTP/2 stream",
            )));
        }
        let total: usize = bufs.iter().map(|buf| buf.len()).sum();
        if total == 0 {
            return Poll::Ready(Ok(0));
        }
        let capacity = ready!(this.poll_send_capacity(cx, total.min(MAX_WRITE)))?;
        let len = capacity.min(total).min(MAX_WRITE);
        let mut data = BytesMut::with_capacity(len);
        for buf in bufs {
            let take = buf.len().min(len - data.len());
            data.extend_from_slice(&buf[..take]);
            if data.len() == len {
                break;
            }
        }
        this.send
            .send_data(data.freeze(), false)
            .map_err(io_error)?;
        Poll::Ready(Ok(len))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    /// Nothing to do: h2's connection task writes what the stream was given as soon as it can,
    /// and a stream has no flush of its own.
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// Sends `END_STREAM` (an empty DATA frame that ends the client's side), once.
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.send_ended {
            this.send_ended = true;
            this.send.send_data(Bytes::new(), true).map_err(io_error)?;
        }
        Poll::Ready(Ok(()))
    }
}

/// An h2 error as an I/O error: the transport's own error when there is one, else
/// `ConnectionReset` for a reset stream, `ConnectionAborted` for a connection the server ended
/// (`GOAWAY`), `Other` for the rest; the h2 error (with its reason) is the source.
pub(crate) fn io_error(error: h2::Error) -> io::Error {
    if error.is_io() {
        return error
            .into_io()
            .unwrap_or_else(|| io::Error::other("HTTP/2 transport error"));
    }
    let kind = if error.is_reset() {
        io::ErrorKind::ConnectionReset
    } else if error.is_go_away() {
        io::ErrorKind::ConnectionAborted
    } else {
        io::ErrorKind::Other
    };
    io::Error::new(kind, error)
}

/// What `poll_reset` answered, as the error of the write it ended.
fn reset_error(reset: Result<h2::Reason, h2::Error>) -> io::Error {
    match reset {
        Ok(reason) => io::Error::new(
            io::ErrorKind::ConnectionReset,
            format!("the server reset the HTTP/2 stream: {reason}"),
        ),
        Err(error) => io_error(error),
    }
}
