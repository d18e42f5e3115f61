//! `MessageReader`: one incoming message as an `AsyncRead`, never assembled in memory.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncBufRead, AsyncRead, AsyncWrite, ReadBuf};

use super::driver::Driver;
use super::socket::WebSocket;
use super::split::ReadHalf;
use super::stream::{ReadScope, ReadState, Target};
use crate::error::Result;
use crate::proto::decoder::DataKind;
use crate::proto::{Chunk, Consumer, Received};

/// The bytes of one incoming message, read as they arrive: `AsyncRead` and `AsyncBufRead`,
/// ending (EOF) with the message's last frame.
///
/// From [`WebSocket::recv_stream`] or [`ReadHalf::recv_stream`]. The message is never assembled,
/// so it is not bound by `max_message_size` (see `Config::max_stream_message_size`). Pings that
/// arrive mid-message are answered underneath.
///
/// - If the connection closes before the message ends (a close frame or the transport ending),
///   a read fails with `UnexpectedEof`; a protocol violation fails it with `InvalidData` (the
///   [`Error`](crate::Error) is inside, see `io::Error::into_inner`).
/// - A text message's bytes are UTF-8 checked as they arrive; a reader may still split a code
///   point between two reads.
/// - Dropping the reader before EOF discards the rest of the message; the connection's next
///   receiver (of either API) gets the next message.
/// - A message sent as one huge frame streams through like a fragmented one: the stream API
///   has no frame limit, only `Config::max_stream_message_size`.
///
/// ```no_run
/// # async fn demo(mut ws: wsio::WebSocket<tokio::net::TcpStream>) -> std::io::Result<()> {
/// while let Some(reader) = ws.recv_stream().await {
///     let mut reader = reader?;
///     let mut file = tokio::fs::File::create("upload.bin").await?;
///     tokio::io::copy(&mut reader, &mut file).await?;
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct MessageReader<'a, S> {
    target: Target<'a, S>,
    kind: DataKind,
    state: ReadState,
}

/// Waits for the first bytes of the next data message. `None` when the connection ends first.
fn poll_message_start<S: AsyncRead + AsyncWrite + Unpin>(
    driver: &mut Driver<S>,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<(DataKind, Bytes, bool)>>> {
    // A reader borrows the connection, so a new call proves the previous reader is gone: the
    // rest of its message, if it stopped early, is discarded.
    driver.conn_mut().abandon_stream();
    loop {
        match ready!(driver.poll_receive(cx, Consumer::Stream)) {
            None => return Poll::Ready(None),
            Some(Err(e)) => return Poll::Ready(Some(Err(e))),
            Some(Ok(Received::Chunk(Chunk {
                kind,
                data,
                start: true,
                end,
            }))) => return Poll::Ready(Some(Ok((kind, data, end)))),
            // The rest of a message whose reader was leaked, or the peer's close (the next
            // poll ends the connection).
            Some(Ok(Received::Chunk(_) | Received::Message(_))) => {}
        }
    }
}

impl<'a, S> MessageReader<'a, S> {
    fn new(target: Target<'a, S>, (kind, chunk, end): (DataKind, Bytes, bool)) -> Self {
        MessageReader {
            target,
            kind,
            state: ReadState::in_message(chunk, end),
        }
    }

    /// Whether the message is text or binary.
    pub fn kind(&self) -> DataKind {
        self.kind
    }

    /// Whether every byte of the message has been read.
    pub fn is_finished(&self) -> bool {
        self.state.message_ended && self.state.chunk.is_empty()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocket<S> {
    /// Waits for the next incoming data message and returns a reader of its bytes; `None` once
    /// the connection has ended (after a close, [`close_code`](Self::close_code) tells why).
    /// Pings and pongs before it are handled and skipped.
    ///
    /// # Cancel safety
    /// Cancel-safe: nothing is consumed until the message's first bytes are returned in the
    /// reader.
    pub async fn recv_stream(&mut self) -> Option<Result<MessageReader<'_, S>>> {
        let start = poll_fn(|cx| poll_message_start(&mut self.driver, cx)).await?;
        Some(start.map(|start| MessageReader::new(Target::Socket(&mut self.driver), start)))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> ReadHalf<S> {
    /// Waits for the next incoming data message; see [`WebSocket::recv_stream`].
    ///
    /// # Cancel safety
    /// Cancel-safe, as [`WebSocket::recv_stream`].
    pub async fn recv_stream(&mut self) -> Option<Result<MessageReader<'_, S>>> {
        let start = poll_fn(|cx| self.shared.poll_with(cx, poll_message_start)).await?;
        Some(start.map(|start| MessageReader::new(Target::Half(&self.shared), start)))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for MessageReader<'_, S> {
    /// # Cancel safety
    /// Bytes are only taken from the connection when they are put in `buf`.
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let state = &mut this.state;
        this.target.drive(cx, |driver, cx| {
            state.poll_read(driver, cx, buf, ReadScope::Message)
        })
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncBufRead for MessageReader<'_, S> {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let this = self.get_mut();
        let state = &mut this.state;
        ready!(this.target.drive(cx, |driver, cx| state.poll_fill(
            driver,
            cx,
            ReadScope::Message
        )))?;
        Poll::Ready(Ok(&this.state.chunk))
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        let chunk = &mut self.get_mut().state.chunk;
        chunk.advance(amt.min(chunk.len()));
    }
}
