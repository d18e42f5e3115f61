//! `WebSocket<S>`: the message API over any byte stream.

use std::future::poll_fn;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_core::Stream;
use futures_sink::Sink;
use tokio::io::{AsyncRead, AsyncWrite};

use super::driver::Driver;
use super::facade::{application_close, PingSend, Pong};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::handshake::{DeflateParams, Negotiated};
use crate::proto::close::{CloseCode, CloseFrame};
use crate::proto::connection::{ReadyState, Stats};
use crate::proto::deflate::Compress;
use crate::proto::message::{Message, Utf8Bytes};
use crate::proto::{Consumer, Received, Role};

/// A WebSocket connection over the transport `S` (a `TcpStream`, a TLS stream, an in-memory
/// duplex...), after the opening handshake.
///
/// Receive with [`recv`](Self::recv) or as a [`Stream`] of [`Message`]s; send with
/// [`send`](Self::send) or as a [`Sink`]. Pings are answered and the closing handshake is
/// completed by the connection itself whenever it is polled, to receive or to send: a
/// connection that only sends still reads ahead what the peer sends (up to
/// `Config::read_ahead_size`), answers its pings, and notices its close (the next send then
/// fails with [`Error::PeerClosed`]).
///
/// ```no_run
/// # async fn demo() -> wsio::Result<()> {
/// let (mut ws, _response) = wsio::connect("ws://127.0.0.1:9002/chat").await?;
/// ws.send(wsio::Message::text("hello")).await?;
/// while let Some(message) = ws.recv().await {
///     match message? {
///         wsio::Message::Text(text) => println!("got {text}"),
///         wsio::Message::Close(frame) => println!("peer closed: {frame:?}"),
///         _ => {}
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct WebSocket<S> {
    pub(crate) driver: Driver<S>,
}

/// Receives the next message for the message API.
pub(crate) fn poll_message<S: AsyncRead + AsyncWrite + Unpin>(
    driver: &mut Driver<S>,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<Message>>> {
    Poll::Ready(match ready!(driver.poll_receive(cx, Consumer::Messages)) {
        Some(Ok(Received::Message(message))) => Some(Ok(message)),
        // The message API is never handed chunks.
        Some(Ok(Received::Chunk(_))) => Some(Err(Error::Closed)),
        Some(Err(e)) => Some(Err(e)),
        None => None,
    })
}

impl<S> WebSocket<S> {
    /// Wraps a transport on which the opening handshake has already been done, with nothing
    /// negotiated (no subprotocol, no extension); see [`from_negotiated`](Self::from_negotiated).
    ///
    /// `read_buf` holds any bytes read past the handshake (a pipelined first frame); pass an
    /// empty buffer when there are none. Fails only if `config` is invalid.
    pub fn from_raw_socket(io: S, role: Role, config: Config, read_buf: BytesMut) -> Result<Self> {
        Self::from_negotiated(io, role, config, read_buf, Negotiated::default())
    }

    /// Wraps a transport on which the opening handshake has already been done, with what that
    /// handshake agreed on (from
    /// [`ParsedResponse::negotiated`](crate::handshake::client::ParsedResponse::negotiated) or
    /// [`Negotiated::from_response`]), reported by [`negotiated`](Self::negotiated).
    ///
    /// `read_buf` holds any bytes read past the handshake (a pipelined first frame); pass an
    /// empty buffer when there are none. Fails only if `config` is invalid.
    pub fn from_negotiated(
        io: S,
        role: Role,
        config: Config,
        read_buf: BytesMut,
        negotiated: Negotiated,
    ) -> Result<Self> {
        config.validate()?;
        Ok(WebSocket {
            driver: Driver::new(io, role, config, read_buf, negotiated),
        })
    }

    /// The connection's `tracing` span (`crate::trace`).
    pub(crate) fn span(&self) -> &crate::trace::ConnSpan {
        self.driver.span()
    }

    /// The connection's state.
    pub fn ready_state(&self) -> ReadyState {
        if self.driver.is_finished() {
            return ReadyState::Closed;
        }
        self.driver.conn().ready_state()
    }

    /// The code of the peer's close frame, once it has arrived (`None` before, or when the close
    /// frame had no code: RFC 6455 calls that 1005, "no status").
    pub fn close_code(&self) -> Option<CloseCode> {
        self.driver.conn().peer_close().map(|f| f.code)
    }

    /// The reason in the peer's close frame, once it has arrived.
    pub fn close_reason(&self) -> Option<&str> {
        self.driver.conn().peer_close().map(|f| f.reason.as_str())
    }

    /// Bytes accepted for sending but not yet written to the transport.
    pub fn buffered_amount(&self) -> usize {
        self.driver.conn().buffered_amount()
    }

    /// Bytes on the wire, frames, messages and payload bytes sent and received so far.
    pub fn stats(&self) -> Stats {
        self.driver.conn().stats()
    }

    /// The subprotocol the opening handshake agreed on (`Sec-WebSocket-Protocol`), if any.
    pub fn protocol(&self) -> Option<&str> {
        self.driver.negotiated().subprotocol()
    }

    /// The extensions the opening handshake agreed on (`Sec-WebSocket-Extensions`), as the
    /// header's value; empty when none were.
    pub fn extensions(&self) -> &str {
        self.driver.negotiated().extensions()
    }

    /// The permessage-deflate parameters the opening handshake agreed on, if it agreed on
    /// compression (window sizes and context takeover, as on the wire).
    pub fn permessage_deflate(&self) -> Option<DeflateParams> {
        self.driver.negotiated().permessage_deflate()
    }

    /// Everything the opening handshake agreed on: subprotocol and extensions.
    pub fn negotiated(&self) -> &Negotiated {
        self.driver.negotiated()
    }

    /// Which side of the connection this is.
    pub fn role(&self) -> Role {
        self.driver.conn().role()
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        self.driver.config()
    }

    /// The transport.
    pub fn get_ref(&self) -> &S {
        self.driver.io()
    }

    /// The transport, mutably. Reading or writing it directly corrupts the connection.
    pub fn get_mut(&mut self) -> &mut S {
        self.driver.io_mut()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocket<S> {
    /// Receives the next message; `None` once the connection has ended.
    ///
    /// Pings are answered before they are returned. The peer's close is answered and returned
    /// as [`Message::Close`]; the next call finishes the closing handshake and returns `None`.
    /// A protocol violation by the peer is returned as an error after the connection has sent
    /// the matching close code; then `None` follows.
    ///
    /// # Cancel safety
    /// Cancel-safe: a message is only removed from the connection when it is returned, and partly
    /// received frames stay buffered for the next call.
    pub async fn recv(&mut self) -> Option<Result<Message>> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Polls for the next message; see [`recv`](Self::recv).
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message>>> {
        poll_message(&mut self.driver, cx)
    }

    /// Sends a message and waits until it has been written to the transport.
    ///
    /// Waits first while the write buffer is full (backpressure). Sending `Message::Close` starts
    /// the closing handshake like [`close`](Self::close) but does not wait for the reply.
    ///
    /// # Cancel safety
    /// If the future is dropped before the message was queued (while waiting for buffer space),
    /// the message is not sent. Once queued it is sent whole by the next call that writes
    /// (`send`, `flush`, `recv`, `close`): a message is never sent in part.
    pub async fn send(&mut self, message: Message) -> Result<()> {
        self.send_with(message, Compress::Auto).await
    }

    /// Sends a message as [`send`](Self::send) does, compressed or not as `compress` says when
    /// permessage-deflate was agreed: [`Compress::Never`] for a payload that is compressed
    /// already, [`Compress::Always`] to compress one below the threshold. Control frames are
    /// never compressed.
    ///
    /// # Cancel safety
    /// As [`send`](Self::send).
    pub async fn send_with(&mut self, message: Message, compress: Compress) -> Result<()> {
        let mut slot = Some(message);
        poll_fn(|cx| self.driver.poll_send(cx, &mut slot, compress)).await
    }

    /// Sends a ping and returns a [`Pong`]: a future of the round-trip time, resolved when the
    /// matching pong arrives. The pong is seen by whoever receives from the connection, so keep
    /// receiving (`recv` in a `select!` beside the `Pong`, or the read half in another task).
    /// At most 125 bytes of payload; a pong with the same payload (or a later ping's: a peer may
    /// answer only the latest) resolves it.
    ///
    /// ```no_run
    /// # async fn demo(mut ws: wsio::WebSocket<tokio::net::TcpStream>) -> wsio::Result<()> {
    /// let mut pong = ws.ping("rtt").await?;
    /// loop {
    ///     tokio::select! {
    ///         rtt = &mut pong => { println!("round trip: {:?}", rtt?); break; }
    ///         message = ws.recv() => { let Some(message) = message else { break }; message?; }
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Cancel safety
    /// As [`send`](Self::send): it waits for room like `send`, and the ping is sent whole or
    /// not at all.
    pub async fn ping(&mut self, payload: impl Into<Bytes>) -> Result<Pong> {
        let mut ping = PingSend::new(payload.into());
        poll_fn(|cx| self.driver.poll_ping(cx, &mut ping)).await
    }

    /// Sends a text message. See [`send`](Self::send).
    ///
    /// # Cancel safety
    /// As [`send`](Self::send).
    pub async fn send_text(&mut self, text: impl Into<Utf8Bytes>) -> Result<()> {
        self.send(Message::Text(text.into())).await
    }

    /// Sends a binary message. See [`send`](Self::send).
    ///
    /// # Cancel safety
    /// As [`send`](Self::send).
    pub async fn send_binary(&mut self, data: impl Into<Bytes>) -> Result<()> {
        self.send(Message::Binary(data.into())).await
    }

    /// Writes whatever is queued to the transport.
    ///
    /// # Cancel safety
    /// Cancel-safe: what was written stays written, the rest stays queued.
    pub async fn flush(&mut self) -> Result<()> {
        poll_fn(|cx| self.driver.poll_flush(cx)).await
    }

    /// Closes the connection: sends a close frame with `code` and `reason`, then reads until the
    /// peer's close arrives (data messages that arrive meanwhile are dropped) and the transport
    /// is closed, within the configured close timeout.
    ///
    /// `code` must be 1000 or 3000–4999 (the rule browsers enforce) and `reason` at most 123
    /// bytes of UTF-8; otherwise nothing is sent and a usage error is returned. Returns
    /// `Ok(())` when the closing handshake completed or the connection was already closed,
    /// a timeout error if the peer did not answer in time.
    ///
    /// # Cancel safety
    /// Cancel-safe: the close frame is queued at once and the handshake resumes on the next
    /// call that polls the connection.
    pub async fn close(&mut self, code: impl Into<CloseCode>, reason: &str) -> Result<()> {
        let frame = application_close(code.into(), reason)?;
        self.close_with(Some(frame)).await
    }

    /// Closes the connection with `frame` (or an empty close frame) and waits for the closing
    /// handshake to finish; see [`close`](Self::close). Any sendable code is accepted here.
    ///
    /// # Cancel safety
    /// As [`close`](Self::close).
    pub async fn close_with(&mut self, frame: Option<CloseFrame>) -> Result<()> {
        if self.driver.is_finished() {
            return Ok(());
        }
        self.driver.start_close(frame)?;
        poll_fn(|cx| self.driver.poll_closed(cx)).await
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Stream for WebSocket<S> {
    type Item = Result<Message>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_recv(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Sink<Message> for WebSocket<S> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.get_mut().driver.poll_ready(cx)
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<()> {
        self.get_mut().driver.queue(item, Compress::Auto)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.get_mut().driver.poll_flush(cx)
    }

    /// Sends a close frame (1000) if none was sent, and flushes. To wait for the peer's reply,
    /// keep polling the stream side until it ends, or use [`WebSocket::close`].
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.get_mut().driver.poll_sink_close(cx)
    }
}
