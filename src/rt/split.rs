//! Owned read and write halves of a [`WebSocket`], for two tasks.
//!
//! Both halves drive one [`Driver`] behind a mutex that is held only inside a poll, never across
//! an `.await`. The read half writes too (pongs, the close echo), so both halves may wait on the
//! transport's write readiness, which keeps one waker: writes are therefore polled with a waker
//! that wakes both halves, and neither can miss its turn.

use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{ready, Context, Poll, Wake, Waker};

use bytes::Bytes;
use futures_core::Stream;
use futures_sink::Sink;
use tokio::io::{AsyncRead, AsyncWrite};

use super::driver::Driver;
use super::socket::{decode_message, WebSocket};
use crate::error::{Error, Result};
use crate::proto::close::{CloseCode, CloseFrame};
use crate::proto::connection::ReadyState;
use crate::proto::decoder::Delivery;
use crate::proto::message::{Message, Utf8Bytes};

#[derive(Debug, Default)]
struct BothWakers {
    reader: Mutex<Option<Waker>>,
    writer: Mutex<Option<Waker>>,
}

impl BothWakers {
    fn set(slot: &Mutex<Option<Waker>>, waker: &Waker) {
        let mut slot = slot.lock().unwrap_or_else(PoisonError::into_inner);
        match &*slot {
            Some(w) if w.will_wake(waker) => {}
            _ => *slot = Some(waker.clone()),
        }
    }
}

impl Wake for BothWakers {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        for slot in [&self.reader, &self.writer] {
            if let Some(w) = slot.lock().unwrap_or_else(PoisonError::into_inner).take() {
                w.wake();
            }
        }
    }
}

#[derive(Debug)]
pub(crate) struct Shared<S> {
    driver: Mutex<Driver<S>>,
    wakers: Arc<BothWakers>,
}

impl<S> Shared<S> {
    pub(crate) fn new(driver: Driver<S>) -> Arc<Self> {
        Arc::new(Shared {
            driver: Mutex::new(driver),
            wakers: Arc::default(),
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Driver<S>> {
        // A panic while polling leaves no half-updated state that matters more than the panic.
        self.driver.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` with the driver and a context whose waker wakes both halves.
    pub(crate) fn poll_with<R>(
        &self,
        cx: &mut Context<'_>,
        reader: bool,
        f: impl FnOnce(&mut Driver<S>, &mut Context<'_>) -> R,
    ) -> R {
        BothWakers::set(
            if reader {
                &self.wakers.reader
            } else {
                &self.wakers.writer
            },
            cx.waker(),
        );
        let waker = Waker::from(self.wakers.clone());
        let mut shared_cx = Context::from_waker(&waker);
        f(&mut self.lock(), &mut shared_cx)
    }
}

/// The receiving half of a [`WebSocket`], from [`WebSocket::into_split`].
///
/// It answers pings and completes the closing handshake by itself, even when the write half is
/// idle.
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
            driver.conn.ready_state()
        }
    }

    /// The code of the peer's close frame, once received.
    pub fn close_code(&self) -> Option<CloseCode> {
        self.shared.lock().conn.peer_close().map(|f| f.code)
    }

    /// The reason in the peer's close frame, once received.
    pub fn close_reason(&self) -> Option<String> {
        self.shared
            .lock()
            .conn
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
        self.shared.poll_with(cx, true, |d, cx| {
            d.poll_next(cx, Delivery::WholeFrames, decode_message)
        })
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
        self.shared.lock().conn.buffered_amount()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WriteHalf<S> {
    /// Sends a message and waits until it is written; see [`WebSocket::send`].
    ///
    /// # Cancel safety
    /// As [`WebSocket::send`]: a message is queued whole or not at all.
    pub async fn send(&mut self, message: Message) -> Result<()> {
        let mut message = Some(message);
        poll_fn(|cx| {
            self.shared.poll_with(cx, false, |d, cx| {
                if message.is_some() {
                    // Take the message only once there is room: on `Pending` it must stay here.
                    if let Err(e) = ready!(d.poll_ready(cx)) {
                        return Poll::Ready(Err(e));
                    }
                    if let Some(m) = message.take() {
                        queue(d, m)?;
                    }
                }
                d.poll_flush(cx)
            })
        })
        .await
    }

    /// Sends a ping; the returned [`Pong`](crate::Pong) resolves with the round-trip time when
    /// the read half receives the matching pong. See [`WebSocket::ping`].
    ///
    /// # Cancel safety
    /// As [`WebSocket::send`].
    pub async fn ping(&mut self, payload: impl Into<Bytes>) -> Result<crate::Pong> {
        let mut payload = Some(payload.into());
        let mut pong = None;
        poll_fn(|cx| {
            self.shared.poll_with(cx, false, |d, cx| {
                if let Some(p) = payload.take() {
                    if let Err(e) = ready!(d.poll_ready(cx)) {
                        return Poll::Ready(Err(e));
                    }
                    pong = Some(d.send_tracked_ping(p)?);
                }
                d.poll_flush(cx)
            })
        })
        .await?;
        Ok(crate::Pong(pong.expect("set before the flush")))
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
        let code = code.into();
        if !code.is_allowed_for_application() {
            return Err(crate::error::UsageError::InvalidCloseCode(code.0).into());
        }
        self.shared
            .lock()
            .start_close(Some(CloseFrame::new(code, reason)))?;
        poll_fn(|cx| self.shared.poll_with(cx, false, |d, cx| d.poll_flush(cx))).await
    }
}

fn queue<S>(driver: &mut Driver<S>, message: Message) -> Result<()> {
    match message {
        Message::Close(frame) => driver.start_close(frame),
        other => driver.conn.send_message(other),
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Sink<Message> for WriteHalf<S> {
    type Error = Error;

    fn poll_ready(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.shared.poll_with(cx, false, |d, cx| d.poll_ready(cx))
    }

    fn start_send(self: std::pin::Pin<&mut Self>, item: Message) -> Result<()> {
        queue(&mut self.shared.lock(), item)
    }

    fn poll_flush(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.shared.poll_with(cx, false, |d, cx| d.poll_flush(cx))
    }

    fn poll_close(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.shared.poll_with(cx, false, |d, cx| {
            if !d.conn.sent_close() && d.conn.failure().is_none() && !d.is_finished() {
                d.start_close(Some(CloseFrame::new(CloseCode::NORMAL, "")))?;
            }
            d.poll_flush(cx)
        })
    }
}
