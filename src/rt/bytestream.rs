//! `ByteStream`: a whole connection as `AsyncRead + AsyncWrite`, for layering other protocols.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::driver::Driver;
use super::socket::WebSocket;
use super::split::Shared;
use super::stream::{ReadScope, ReadState, WriteScope, WriteState};
use crate::proto::close::{CloseCode, CloseFrame};
use crate::proto::decoder::DataKind;
use crate::proto::deflate::Compress;

/// A WebSocket connection as a byte stream, for running another protocol over it (TLS, HTTP,
/// a length-delimited codec, a multiplexer, a TCP tunnel).
///
/// - **Reading** yields the payloads of incoming binary messages, concatenated; message
///   boundaries are not visible. A text message is an error (`InvalidData`). The peer's close
///   with 1000 (what shutdown sends) reads as EOF; so does a close without a code. Anything
///   else is an error, so that a cut-off transfer never looks complete: a close with another
///   code (`ConnectionAborted`, naming it), a close in the middle of a message or a connection
///   that ends without a close (`UnexpectedEof`), a protocol violation.
/// - **Writing**: bytes are buffered up to `Config::stream_fragment_size` and each time that
///   fills, or on [`poll_flush`](AsyncWrite::poll_flush), they leave as **one complete binary
///   message** (a single frame with FIN set). A peer that only knows messages (a browser, Node
///   `ws`) therefore sees ordinary binary messages, each at most the fragment size (1 MiB by
///   default), and nothing is held back after a flush. A server sends large writes straight from
///   the caller's memory.
/// - **Shutdown** sends a close frame (1000) after everything written; the peer's remaining
///   data can still be read until its close arrives (then EOF). WebSocket has no half-close:
///   once the peer's close arrives, writes fail with `BrokenPipe`.
/// - Writes wait while the connection's write buffer is full, so memory stays bounded.
///
/// ```no_run
/// # async fn demo(ws: wsio::WebSocket<tokio::net::TcpStream>) -> std::io::Result<()> {
/// // Forward a local TCP connection through the WebSocket, both ways.
/// let mut tcp = tokio::net::TcpStream::connect("127.0.0.1:22").await?;
/// let mut stream = wsio::ByteStream::new(ws);
/// tokio::io::copy_bidirectional(&mut tcp, &mut stream).await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct ByteStream<S> {
    driver: Driver<S>,
    read: ReadState,
    write: WriteState,
}

impl<S> ByteStream<S> {
    /// Turns a connection into a byte stream. When permessage-deflate was agreed, its messages
    /// are compressed (see [`with_compress`](Self::with_compress)).
    pub fn new(ws: WebSocket<S>) -> Self {
        Self::with_compress(ws, Compress::Auto)
    }

    /// Turns a connection into a byte stream whose messages are compressed or not as
    /// `compress` says, when permessage-deflate was agreed: [`Compress::Never`] for data that
    /// is compressed already (video, archives), where deflate only costs CPU. A compressed
    /// stream's messages each carry at most `Config::stream_fragment_size` bytes once
    /// inflated; incoming messages are inflated as they arrive either way.
    pub fn with_compress(ws: WebSocket<S>, compress: Compress) -> Self {
        let mut driver = ws.driver;
        // A message a reader let go of before its end is not part of the byte stream.
        driver.conn_mut().abandon_stream();
        let write = WriteState::new(
            DataKind::Binary,
            WriteScope::Connection,
            driver.config().get_stream_fragment_size(),
            driver.conn().compresses_stream(compress),
        );
        ByteStream {
            driver,
            read: ReadState::between_messages(),
            write,
        }
    }

    /// Splits into owned read and write halves for two tasks.
    pub fn into_split(self) -> (ByteReadHalf<S>, ByteWriteHalf<S>) {
        let shared = Shared::new(self.driver);
        (
            ByteReadHalf {
                shared: shared.clone(),
                state: self.read,
            },
            ByteWriteHalf {
                shared,
                state: self.write,
            },
        )
    }

    /// The code of the peer's close frame, once it has arrived.
    pub fn close_code(&self) -> Option<CloseCode> {
        self.driver.conn().peer_close().map(|f| f.code)
    }

    /// Bytes accepted but not yet written to the transport (buffered in the stream or queued
    /// in the connection).
    pub fn buffered_amount(&self) -> usize {
        self.write.pending() + self.driver.conn().buffered_amount()
    }

    /// The transport.
    pub fn get_ref(&self) -> &S {
        self.driver.io()
    }
}

impl<S> WebSocket<S> {
    /// Turns this connection into a [`ByteStream`].
    pub fn into_byte_stream(self) -> ByteStream<S> {
        ByteStream::new(self)
    }
}

/// Sends what is buffered, then a close frame (once), and flushes.
fn poll_shutdown<S: AsyncRead + AsyncWrite + Unpin>(
    driver: &mut Driver<S>,
    write: &mut WriteState,
    cx: &mut Context<'_>,
) -> Poll<io::Result<()>> {
    if !write.finished {
        // After the peer's close this fails with Closed: the stream is shut either way.
        let _ = write.queue_final(driver);
        let _ = driver.start_close(Some(CloseFrame::new(CloseCode::NORMAL, "")));
    }
    match ready!(driver.poll_flush(cx)) {
        Ok(()) | Err(crate::Error::Closed) => Poll::Ready(Ok(())),
        Err(e) => Poll::Ready(Err(e.into())),
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for ByteStream<S> {
    /// # Cancel safety
    /// Bytes are only taken from the connection when they are put in `buf`.
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.read
            .poll_read(&mut this.driver, cx, buf, ReadScope::Connection)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for ByteStream<S> {
    /// # Cancel safety
    /// A write either takes bytes (and returns how many) or takes none.
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.write.poll_write(&mut this.driver, cx, data)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.write.poll_flush(&mut this.driver, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        poll_shutdown(&mut this.driver, &mut this.write, cx)
    }
}

/// The read half of a [`ByteStream`], from [`ByteStream::into_split`]. It also answers pings
/// and the peer's close while the write half is idle.
#[derive(Debug)]
pub struct ByteReadHalf<S> {
    shared: Arc<Shared<S>>,
    state: ReadState,
}

/// The write half of a [`ByteStream`], from [`ByteStream::into_split`].
#[derive(Debug)]
pub struct ByteWriteHalf<S> {
    shared: Arc<Shared<S>>,
    state: WriteState,
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for ByteReadHalf<S> {
    /// # Cancel safety
    /// Bytes are only taken from the connection when they are put in `buf`.
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let state = &mut this.state;
        this.shared.poll_with(cx, |driver, cx| {
            state.poll_read(driver, cx, buf, ReadScope::Connection)
        })
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for ByteWriteHalf<S> {
    /// # Cancel safety
    /// A write either takes bytes (and returns how many) or takes none.
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let state = &mut this.state;
        this.shared
            .poll_with(cx, |driver, cx| state.poll_write(driver, cx, data))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let state = &mut this.state;
        this.shared
            .poll_with(cx, |driver, cx| state.poll_flush(driver, cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let state = &mut this.state;
        this.shared
            .poll_with(cx, |driver, cx| poll_shutdown(driver, state, cx))
    }
}

impl<S> ByteWriteHalf<S> {
    /// Bytes accepted but not yet written to the transport.
    pub fn buffered_amount(&self) -> usize {
        self.state.pending() + self.shared.lock().conn().buffered_amount()
    }
}
