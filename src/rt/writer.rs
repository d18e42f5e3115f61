//! `MessageWriter`: one outgoing message as an `AsyncWrite`, sent in fragments.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite};

use super::socket::WebSocket;
use super::split::WriteHalf;
use super::stream::{Target, WriteScope, WriteState};
use crate::proto::decoder::DataKind;

/// One outgoing message written as a byte stream: `AsyncWrite`.
///
/// From [`WebSocket::send_stream`] or [`WriteHalf::send_stream`]. Written bytes leave as a
/// Binary (or Text) frame and Continuation frames of at most `Config::stream_fragment_size`
/// bytes; [`poll_flush`](AsyncWrite::poll_flush) sends what is buffered as a frame, and
/// [`poll_shutdown`](AsyncWrite::poll_shutdown) sends the final frame, ending the message.
/// Memory stays bounded: a write waits (returns `Pending`) while the connection's write buffer
/// is full. A server writes large slices straight from the caller's memory (one vectored write
/// of header and payload); a client masks while copying into a reused frame buffer.
///
/// Dropping the writer without shutting it down ends the message with what was written (the
/// final frame is queued and leaves with the connection's next write), like a QUIC stream
/// finished on drop. A text writer checks UTF-8 as bytes are written.
///
/// ```no_run
/// # async fn demo(mut ws: wsio::WebSocket<tokio::net::TcpStream>) -> std::io::Result<()> {
/// use tokio::io::AsyncWriteExt;
/// let mut file = tokio::fs::File::open("video.mp4").await?;
/// let mut writer = ws.send_stream(wsio::DataKind::Binary);
/// tokio::io::copy(&mut file, &mut writer).await?;
/// writer.shutdown().await?; // the final frame
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct MessageWriter<'a, S> {
    target: Target<'a, S>,
    state: WriteState,
}

impl<S> WebSocket<S> {
    /// Starts an outgoing message of `kind` written as a byte stream. Nothing is sent until
    /// bytes are written, flushed or the writer is shut down.
    pub fn send_stream(&mut self, kind: DataKind) -> MessageWriter<'_, S> {
        let state = WriteState::new(
            kind,
            WriteScope::Message,
            self.driver.config().get_stream_fragment_size(),
        );
        MessageWriter {
            target: Target::Socket(&mut self.driver),
            state,
        }
    }
}

impl<S> WriteHalf<S> {
    /// Starts an outgoing message of `kind`; see [`WebSocket::send_stream`].
    pub fn send_stream(&mut self, kind: DataKind) -> MessageWriter<'_, S> {
        let fragment_size = self.shared.lock().config().get_stream_fragment_size();
        MessageWriter {
            target: Target::Half(&self.shared),
            state: WriteState::new(kind, WriteScope::Message, fragment_size),
        }
    }
}

impl<S> MessageWriter<'_, S> {
    /// Bytes accepted by this writer and the connection but not yet written to the transport.
    pub fn buffered_amount(&mut self) -> usize {
        let pending = self.state.pending();
        pending + self.target.with(|driver| driver.conn().buffered_amount())
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for MessageWriter<'_, S> {
    /// # Cancel safety
    /// A write either takes bytes (and returns how many) or takes none.
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let state = &mut this.state;
        this.target
            .drive(cx, |driver, cx| state.poll_write(driver, cx, data))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let state = &mut this.state;
        this.target
            .drive(cx, |driver, cx| state.poll_flush(driver, cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let state = &mut this.state;
        this.target
            .drive(cx, |driver, cx| state.poll_finish(driver, cx))
    }
}

impl<S> Drop for MessageWriter<'_, S> {
    fn drop(&mut self) {
        if self.state.finished {
            return;
        }
        let state = &mut self.state;
        self.target.with(|driver| {
            if state.pending() > 0 || driver.conn().sending_message() {
                // The connection may be closed already; then there is nothing left to end.
                let _ = state.queue_final(driver);
            }
        });
    }
}
