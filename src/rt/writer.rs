//! `MessageWriter`: one outgoing message as an `AsyncWrite`, sent in fragments.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite};

use super::driver::Driver;
use super::socket::WebSocket;
use super::split::WriteHalf;
use super::stream::{Target, WriteScope, WriteState};
use crate::proto::decoder::DataKind;
use crate::proto::deflate::Compress;

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

/// The writer state for a message of `kind` on `driver`'s connection.
fn message_writer<S>(driver: &Driver<S>, kind: DataKind, compress: Compress) -> WriteState {
    WriteState::new(
        kind,
        WriteScope::Message,
        driver.config().get_stream_fragment_size(),
        driver.conn().compresses_stream(compress),
    )
}

impl<S> WebSocket<S> {
    /// Starts an outgoing message of `kind` written as a byte stream. Nothing is sent until
    /// bytes are written, flushed or the writer is shut down. When permessage-deflate was
    /// agreed, the message is compressed as it is written (see
    /// [`send_stream_with`](Self::send_stream_with)).
    pub fn send_stream(&mut self, kind: DataKind) -> MessageWriter<'_, S> {
        self.send_stream_with(kind, Compress::Auto)
    }

    /// Starts an outgoing message of `kind`, compressed or not as `compress` says, when
    /// permessage-deflate was agreed: [`Compress::Never`] for data that is compressed already.
    /// A compressed message is compressed as it is written: each frame is a piece of one
    /// DEFLATE stream, and a flush makes everything written so far inflatable by the peer.
    pub fn send_stream_with(&mut self, kind: DataKind, compress: Compress) -> MessageWriter<'_, S> {
        let state = message_writer(&self.driver, kind, compress);
        MessageWriter {
            target: Target::Socket(&mut self.driver),
            state,
        }
    }
}

impl<S> WriteHalf<S> {
    /// Starts an outgoing message of `kind`; see [`WebSocket::send_stream`].
    pub fn send_stream(&mut self, kind: DataKind) -> MessageWriter<'_, S> {
        self.send_stream_with(kind, Compress::Auto)
    }

    /// Starts an outgoing message of `kind`; see [`WebSocket::send_stream_with`].
    pub fn send_stream_with(&mut self, kind: DataKind, compress: Compress) -> MessageWriter<'_, S> {
        let state = message_writer(&self.shared.lock(), kind, compress);
        MessageWriter {
            target: Target::Half(&self.shared),
            state,
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
            // Only its own message: one a leaked writer left open is not this writer's to end.
            if state.begun && (state.has_unframed() || driver.conn().sending_message()) {
                // The connection may be closed already; then there is nothing left to end.
                let _ = state.queue_final(driver);
            }
        });
    }
}
