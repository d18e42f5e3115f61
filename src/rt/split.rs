//! Owned read and write halves of a [`WebSocket`], for two tasks.
//!
//! Both halves drive one [`Driver`] behind a mutex that is held only inside a poll, never across
//! an `.await`. Each half registers its task's waker on its own side of the driver, which polls
//! the transport with a waker that wakes both (see `rt/wakers.rs`), so neither half can take the
//! other's wake-up. The generic splitters (`futures::StreamExt::split`, `tokio::io::split`) are
//! just as safe; these halves add what a generic splitter cannot: `recv`, `send`, `ping`,
//! `close` and the stream API on each half, and the halves answer pings and the peer's close
//! whichever of them is polled.

use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;
use futures_sink::Sink;
use tokio::io::{AsyncRead, AsyncWrite};

use super::driver::Driver;
use super::facade::{application_close, PingSend};
use super::socket::{poll_message, WebSocket};
use crate::error::{Error, Result};
use crate::proto::close::CloseCode;
use crate::proto::connection::ReadyState;
use crate::proto::deflate::Compress;
use crate::proto::message::{Message, Utf8Bytes};

#[derive(Debug)]
pub(crate) struct Shared<S> {
    driver: Mutex<Driver<S>>,
}

impl<S> Shared<S> {
    pub(crate) fn new(driver: Driver<S>) -> Arc<Self> {
        Arc::new(Shared {
            driver: Mutex::new(driver),
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Driver<S>> {
        // A panic while polling leaves no half-updated state that matters more than the panic.
        self.driver.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` with the driver.
    pub(crate) fn poll_with<R>(
        &self,
        cx: &mut Context<'_>,
        f: impl FnOnce(&mut Driver<S>, &mut Context<'_>) -> R,
    ) -> R {
        f(&mut self.lock(), cx)
    }
}

/// The receiving half of a [`WebSocket`], from [`WebSocket::into_split`].
///
/// It answers pings and completes the closing handshake by itself, even when the write half is
/// idle; the write half does the same while this half is idle.
#[derive(Debug)]
pub struct ReadHalf<S> {
    pub(crate) shared: Arc<Shared<S>>,
}

/// The sending half of a [`WebSocket`], from [`WebSocket::into_split`].
#[derive(Debug)]
pub struct WriteHalf<S> {
    pub(crate) shared: Arc<Shared<S>>,
}

/// [`ReadHalf::reunite`] was given halves of two different connections.
#[derive(Debug)]
pub struct ReuniteError<S>(pub ReadHalf<S>, pub WriteHalf<S>);

impl<S> std::fmt::Display for ReuniteError<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the halves belong to different WebSockets")
    }
}

impl<S: std::fmt::Debug> std::error::Error for ReuniteError<S> {}

impl<S> WebSocket<S> {
    /// Splits the connection into a read half and a write half that can be moved to different
    /// tasks. The halves share the connection behind a lock taken only while one is polled.
    ///
    /// Prefer these halves to a generic splitter (`futures::StreamExt::split`) when a task needs
    /// more than the `Stream` or the `Sink`: they have `recv_stream`, `send_stream`, `ping`
    /// with its `Pong`, `close`, and the connection's state on each half. Both work under load
    /// in both directions: every poll registers its task on its own side of the connection.
    pub fn into_split(self) -> (ReadHalf<S>, WriteHalf<S>) {
        let shared = Shared::new(self.driver);
        (
            ReadHalf {
                shared: shared.clone(),
            },
            WriteHalf { shared },
        )
    }
}

impl<S> ReadHalf<S> {
    /// Puts the halves back together.
    pub fn reunite(self, write: WriteHalf<S>) -> Result<WebSocket<S>, ReuniteError<S>> {
        if !Arc::ptr_eq(&self.shared, &write.shared) {
            return Err(ReuniteError(self, write));
        }
        drop(write);
        let shared = Arc::into_inner(self.shared)
            .expect("both halves were given, so no other owner is left");
        let driver = shared
            .driver
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        Ok(WebSocket { driver })
    }

    /// The connection's state.
    pub fn ready_state(&self) -> ReadyState {
        let driver = self.shared.lock();
        if driver.is_finished() {
            ReadyState::Closed
        } else {
            driver.conn().ready_state()
        }
    }

    /// The code of the peer's close frame, once received.
    pub fn close_code(&self) -> Option<CloseCode> {
        self.shared.lock().conn().peer_close().map(|f| f.code)
    }

    /// The reason in the peer's close frame, once received.
    pub fn close_reason(&self) -> Option<String> {
        self.shared
            .lock()
            .conn()
            .peer_close()
            .map(|f| f.reason.as_str().to_owned())
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> ReadHalf<S> {
    /// Receives the next message; see [`WebSocket::recv`].
    ///
    /// # Cancel safety
    /// Cancel-safe, as [`WebSocket::recv`].
    pub async fn recv(&mut self) -> Option<Result<Message>> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Polls for the next message; see [`WebSocket::recv`].
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message>>> {
        self.shared.poll_with(cx, poll_message)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Stream for ReadHalf<S> {
    type Item = Result<Message>;

    fn poll_next(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_recv(cx)
    }
}

impl<S> WriteHalf<S> {
    /// Bytes accepted for sending but not yet written to the transport.
    pub fn buffered_amount(&self) -> usize {
        self.shared.lock().conn().buffered_amount()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WriteHalf<S> {
    /// Sends a message and waits until it is written; see [`WebSocket::send`].
    ///
    /// # Cancel safety
    /// As [`WebSocket::send`]: a message is queued whole or not at all.
    pub async fn send(&mut self, message: Message) -> Result<()> {
        self.send_with(message, Compress::Auto).await
    }

    /// Sends a message, compressed or not as `compress` says; see [`WebSocket::send_with`].
    ///
    /// # Cancel safety
    /// As [`WebSocket::send`].
    pub async fn send_with(&mut self, message: Message, compress: Compress) -> Result<()> {
        let mut slot = Some(message);
        poll_fn(|cx| {
            self.shared
                .poll_with(cx, |d, cx| d.poll_send(cx, &mut slot, compress))
        })
        .await
    }

    /// Sends a ping; the returned [`Pong`](crate::Pong) resolves with the round-trip time when
    /// the matching pong arrives. See [`WebSocket::ping`].
    ///
    /// # Cancel safety
    /// As [`WebSocket::ping`].
    pub async fn ping(&mut self, payload: impl Into<Bytes>) -> Result<crate::Pong> {
        let mut ping = PingSend::new(payload.into());
        poll_fn(|cx| {
            self.shared
                .poll_with(cx, |d, cx| d.poll_ping(cx, &mut ping))
        })
        .await
    }

    /// Sends a text message; see [`WebSocket::send`].
    ///
    /// # Cancel safety
    /// As [`WebSocket::send`].
    pub async fn send_text(&mut self, text: impl Into<Utf8Bytes>) -> Result<()> {
        self.send(Message::Text(text.into())).await
    }

    /// Sends a binary message; see [`WebSocket::send`].
    ///
    /// # Cancel safety
    /// As [`WebSocket::send`].
    pub async fn send_binary(&mut self, data: impl Into<Bytes>) -> Result<()> {
        self.send(Message::Binary(data.into())).await
    }

    /// Sends a close frame and flushes it. The read half then receives the peer's close and
    /// ends, completing the handshake. `code` must be 1000 or 3000–4999 and `reason` at most
    /// 123 bytes.
    ///
    /// # Cancel safety
    /// Cancel-safe: the close frame is queued at once and written by the next poll of either half.
    pub async fn close(&mut self, code: impl Into<CloseCode>, reason: &str) -> Result<()> {
        let frame = application_close(code.into(), reason)?;
        self.shared.lock().start_close(Some(frame))?;
        poll_fn(|cx| self.shared.poll_with(cx, |d, cx| d.poll_flush(cx))).await
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Sink<Message> for WriteHalf<S> {
    type Error = Error;

    fn poll_ready(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.shared.poll_with(cx, |d, cx| d.poll_ready(cx))
    }

    fn start_send(self: std::pin::Pin<&mut Self>, item: Message) -> Result<()> {
        self.shared.lock().queue(item, Compress::Auto)
    }

    fn poll_flush(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.shared.poll_with(cx, |d, cx| d.poll_flush(cx))
    }

    fn poll_close(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.shared.poll_with(cx, |d, cx| d.poll_sink_close(cx))
    }
}
