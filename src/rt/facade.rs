//! The sending and closing operations of the message API, written once on the [`Driver`] and
//! used by both [`WebSocket`](super::socket::WebSocket) and [`WriteHalf`](super::split::WriteHalf).
//!
//! Each keeps what it has not done yet in a slot the caller's future owns (the message, the
//! ping's payload), taken only once it can be queued: that is what makes the futures
//! cancel-safe.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::oneshot;

use super::driver::Driver;
use crate::error::{Error, Result};
use crate::proto::close::{CloseCode, CloseFrame};
use crate::proto::connection::SendError;
use crate::proto::deflate::Compress;
use crate::proto::message::Message;
use crate::proto::{Consumer, Received};

/// The round-trip time of a ping, from [`WebSocket::ping`](crate::WebSocket::ping): resolves
/// when the pong arrives, with an error of kind `Closed` if the connection ends first.
#[derive(Debug)]
#[must_use = "a Pong does nothing unless awaited"]
pub struct Pong(oneshot::Receiver<Duration>);

impl Future for Pong {
    type Output = Result<Duration>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|r| r.map_err(|_| Error::Closed))
    }
}

/// A ping on its way: the payload until it is queued, then the receiver of its pong.
#[derive(Debug)]
pub(crate) struct PingSend {
    payload: Option<Bytes>,
    pong: Option<oneshot::Receiver<Duration>>,
}

impl PingSend {
    pub(crate) fn new(payload: Bytes) -> Self {
        PingSend {
            payload: Some(payload),
            pong: None,
        }
    }
}

/// The close frame `close(code, reason)` sends, once the code is checked against what an
/// application may send (1000, 3000–4999).
pub(crate) fn application_close(code: CloseCode, reason: &str) -> Result<CloseFrame> {
    if !code.is_allowed_for_application() {
        return Err(crate::error::UsageError::InvalidCloseCode(code.0).into());
    }
    Ok(CloseFrame::new(code, reason))
}

impl<S> Driver<S> {
    /// Queues a message (a `Close` starts the closing handshake), compressed as `compress`
    /// says when permessage-deflate was agreed.
    #[inline]
    pub(crate) fn queue(&mut self, message: Message, compress: Compress) -> Result<()> {
        let queued = match message {
            Message::Close(frame) => return self.start_close(frame),
            other => self.conn_mut().send_message_with(other, compress),
        };
        queued.map_err(|e| self.refusal(e))
    }

    /// The error for a refused send, saying why when the connection is closed.
    pub(crate) fn refusal(&self, e: SendError) -> Error {
        match e {
            SendError::Closed => self.send_error(),
            other => other.into(),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Driver<S> {
    /// `send`: waits for room, queues the message in `slot`, and flushes.
    pub(crate) fn poll_send(
        &mut self,
        cx: &mut Context<'_>,
        slot: &mut Option<Message>,
        compress: Compress,
    ) -> Poll<Result<()>> {
        self.sending(cx, |driver, cx| {
            if slot.is_some() {
                // Take the message only once there is room: on `Pending` it stays in the slot.
                ready!(driver.poll_ready_io(cx))?;
                if let Some(message) = slot.take() {
                    driver.queue(message, compress)?;
                }
            }
            driver.poll_flush_io(cx)
        })
    }

    /// `ping`: waits for room like `send`, queues the ping, flushes, and hands out its `Pong`.
    pub(crate) fn poll_ping(
        &mut self,
        cx: &mut Context<'_>,
        ping: &mut PingSend,
    ) -> Poll<Result<Pong>> {
        ready!(self.sending(cx, |driver, cx| {
            if ping.payload.is_some() {
                ready!(driver.poll_ready_io(cx))?;
                if let Some(payload) = ping.payload.take() {
                    ping.pong = Some(driver.send_tracked_ping(payload)?);
                }
            }
            driver.poll_flush_io(cx)
        }))?;
        match ping.pong.take() {
            Some(pong) => Poll::Ready(Ok(Pong(pong))),
            // Polled again after it completed: there is no second pong to hand out.
            None => Poll::Ready(Err(Error::Closed)),
        }
    }

    /// `Sink::poll_close`: sends a close frame (1000) if none was sent, and flushes.
    pub(crate) fn poll_sink_close(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        if self.conn().can_send() && !self.is_finished() {
            self.start_close(Some(CloseFrame::new(CloseCode::NORMAL, "")))?;
        }
        self.poll_flush(cx)
    }

    /// The rest of `close`: receives (dropping data) until the closing handshake has finished.
    pub(crate) fn poll_closed(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        loop {
            match ready!(self.poll_receive(cx, Consumer::Messages)) {
                None => return Poll::Ready(Ok(())),
                Some(Ok(Received::Message(_) | Received::Chunk(_))) => {}
                Some(Err(e)) => return Poll::Ready(Err(e)),
            }
        }
    }
}
