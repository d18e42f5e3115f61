//! The byte-level read and write logic shared by [`MessageReader`](super::reader::MessageReader),
//! [`MessageWriter`](super::writer::MessageWriter) and [`ByteStream`](super::bytestream::ByteStream).
//!
//! Each works on a [`Driver`] it reaches directly or through a split half's lock, plus state
//! of its own (the chunk in hand, the frame being built), so the same code serves every owner.

use std::io;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::driver::Driver;
use super::split::Shared;
use crate::error::Error;
use crate::proto::close::{CloseCode, CloseFrame};
use crate::proto::decoder::DataKind;
use crate::proto::fragment::FragmentBuilder;
use crate::proto::message::Message;
use crate::proto::utf8::Utf8Validator;
use crate::proto::{Chunk, Consumer, Received, Role};

/// Below this much room in the caller's buffer, payload is read through the connection's own
/// buffer: many tiny reads from the socket would cost more than the copy they save.
const DIRECT_READ_MIN: usize = 64 * 1024;

/// How many bytes a stream writer takes between two reads ahead (see `Driver::read_ahead`).
const READ_AHEAD_EVERY: usize = 64 * 1024;

/// From this size on, a server writes the caller's bytes straight to the transport.
const DIRECT_WRITE_MIN: usize = 16 * 1024;

/// Where a reader or writer finds the connection.
#[derive(Debug)]
pub(crate) enum Target<'a, S> {
    /// A whole `WebSocket`, borrowed.
    Socket(&'a mut Driver<S>),
    /// A split half's shared connection.
    Half(&'a Shared<S>),
}

impl<S> Target<'_, S> {
    pub(crate) fn drive<R>(
        &mut self,
        cx: &mut Context<'_>,
        f: impl FnOnce(&mut Driver<S>, &mut Context<'_>) -> R,
    ) -> R {
        match self {
            Target::Socket(driver) => f(driver, cx),
            Target::Half(shared) => shared.poll_with(cx, f),
        }
    }

    pub(crate) fn with<R>(&mut self, f: impl FnOnce(&mut Driver<S>) -> R) -> R {
        match self {
            Target::Socket(driver) => f(driver),
            Target::Half(shared) => f(&mut shared.lock()),
        }
    }
}

fn closed_mid_message() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the connection closed in the middle of a message",
    )
}

/// The error a byte stream reads once the peer closed with a code other than 1000: the
/// writer did not finish (1001, 1011...) or the connection failed, so what came is not whole.
fn closed_abnormally(frame: &CloseFrame) -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        format!("the peer closed the connection with {frame}, not 1000: the stream is incomplete"),
    )
}

/// Incoming payload being handed to a reader.
#[derive(Debug, Default)]
pub(crate) struct ReadState {
    /// Bytes received and not yet read.
    pub(crate) chunk: Bytes,
    /// The message being read has ended (for a message reader: EOF once `chunk` is empty; for
    /// a byte stream: a close now ends the stream rather than cutting a message short).
    pub(crate) message_ended: bool,
    /// The connection's close arrived (for a byte stream: EOF, unless `abnormal_close`).
    pub(crate) closed: bool,
    /// A byte stream's peer closed with a code other than 1000: every read fails.
    abnormal_close: Option<CloseFrame>,
}

/// What a read follows: one message, or every binary message in turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadScope {
    Message,
    Connection,
}

impl ReadState {
    /// A byte stream's reading state before its first message.
    pub(crate) fn between_messages() -> Self {
        ReadState {
            message_ended: true,
            ..ReadState::default()
        }
    }

    /// Reading a message of `chunk` so far (`end`: it is all of it).
    pub(crate) fn in_message(chunk: Bytes, end: bool) -> Self {
        ReadState {
            chunk,
            message_ended: end,
            ..ReadState::default()
        }
    }

    /// A byte stream's peer closed: EOF if it closed with 1000 (what
    /// [`ByteStream`](super::ByteStream)'s shutdown sends) or with no code between messages,
    /// an error otherwise.
    fn close_stream(&mut self, frame: Option<CloseFrame>) -> io::Result<()> {
        if !self.message_ended {
            return Err(closed_mid_message());
        }
        self.closed = true;
        match frame {
            Some(frame) if frame.code != CloseCode::NORMAL => {
                let error = closed_abnormally(&frame);
                self.abnormal_close = Some(frame);
                Err(error)
            }
            _ => Ok(()),
        }
    }

    fn at_eof(&self, scope: ReadScope) -> bool {
        match scope {
            ReadScope::Message => self.message_ended,
            ReadScope::Connection => self.closed,
        }
    }

    /// Makes `chunk` non-empty, or reports EOF (`Ok(false)`).
    pub(crate) fn poll_fill<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        driver: &mut Driver<S>,
        cx: &mut Context<'_>,
        scope: ReadScope,
    ) -> Poll<io::Result<bool>> {
        while self.chunk.is_empty() {
            if self.at_eof(scope) {
                return Poll::Ready(match &self.abnormal_close {
                    Some(frame) => Err(closed_abnormally(frame)),
                    None => Ok(false),
                });
            }
            let received = match ready!(driver.poll_receive(cx, Consumer::Stream)) {
                Some(Ok(received)) => received,
                Some(Err(e)) => return Poll::Ready(Err(e.into())),
                // Nothing more will come: the close was taken already (by a message receiver
                // before the stream began), or the connection failed and said so before.
                None if scope == ReadScope::Connection && driver.conn().received_close() => {
                    let peer_close = driver.conn().peer_close().cloned();
                    self.close_stream(peer_close)?;
                    continue;
                }
                None if scope == ReadScope::Connection => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the connection ended without a close: the stream is incomplete",
                    )))
                }
                None => return Poll::Ready(Err(closed_mid_message())),
            };
            match received {
                Received::Chunk(Chunk {
                    kind, data, end, ..
                }) => {
                    if scope == ReadScope::Connection && kind == DataKind::Text {
                        if !end {
                            // The rest of the text message goes too: a byte stream carries
                            // binary messages only.
                            driver.conn_mut().abandon_stream();
                        }
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "a byte stream received a text message",
                        )));
                    }
                    self.chunk = data;
                    self.message_ended = end;
                }
                Received::Message(Message::Close(frame)) if scope == ReadScope::Connection => {
                    self.close_stream(frame)?
                }
                Received::Message(Message::Close(_)) => {
                    return Poll::Ready(Err(closed_mid_message()))
                }
                Received::Message(_) => {}
            }
        }
        Poll::Ready(Ok(true))
    }

    /// `AsyncRead::poll_read` over the connection. Large reads go straight from the transport
    /// into `buf` when nothing is buffered.
    pub(crate) fn poll_read<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        driver: &mut Driver<S>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
        scope: ReadScope,
    ) -> Poll<io::Result<()>> {
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            if self.chunk.is_empty() && !self.at_eof(scope) && buf.remaining() >= DIRECT_READ_MIN {
                let direct = driver.direct_read_len().min(buf.remaining());
                if direct > 0 {
                    let dst = buf.initialize_unfilled_to(direct);
                    match ready!(driver.poll_read_direct(cx, dst)) {
                        Ok(Some((n, chunk))) => {
                            buf.advance(n);
                            self.message_ended = chunk.end;
                            return Poll::Ready(Ok(()));
                        }
                        Ok(None) => {} // the reason surfaces through poll_fill
                        Err(e) => return Poll::Ready(Err(e.into())),
                    }
                }
            }
            if !ready!(self.poll_fill(driver, cx, scope))? {
                return Poll::Ready(Ok(()));
            }
            if !self.chunk.is_empty() {
                let n = self.chunk.len().min(buf.remaining());
                buf.put_slice(&self.chunk[..n]);
                self.chunk.advance(n);
                return Poll::Ready(Ok(()));
            }
        }
    }
}

/// How written bytes become frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriteScope {
    /// One message: every frame but the last has FIN unset.
    Message,
    /// Every frame is a whole binary message, so any peer sees complete messages.
    Connection,
}

/// Outgoing bytes being cut into frames.
#[derive(Debug)]
pub(crate) struct WriteState {
    kind: DataKind,
    scope: WriteScope,
    builder: FragmentBuilder,
    /// The bytes are compressed (permessage-deflate) as they are written.
    compressed: bool,
    /// Bytes taken into the compressor since the frame being built began: the compressor may
    /// hold them all before any output reaches the builder. A byte stream's messages hold at
    /// most a fragment's worth of them, so the peer never inflates more than that at once.
    taken_in_frame: usize,
    utf8: Option<Utf8Validator>,
    /// A message writer's message began on the connection (see
    /// `Connection::begin_streamed_message`): its frames are this writer's to end.
    pub(crate) begun: bool,
    /// The final frame was queued; nothing more may be written.
    pub(crate) finished: bool,
    /// Bytes written since the writer last read ahead for the receiving side.
    since_read_ahead: usize,
}

impl WriteState {
    /// A writer of `kind` bytes in `scope`, compressing them when `compressed` (see
    /// `Connection::compresses_stream`).
    pub(crate) fn new(
        kind: DataKind,
        scope: WriteScope,
        fragment_size: usize,
        compressed: bool,
    ) -> Self {
        WriteState {
            kind,
            scope,
            builder: FragmentBuilder::new(fragment_size),
            compressed,
            taken_in_frame: 0,
            utf8: (kind == DataKind::Text).then(Utf8Validator::new),
            begun: false,
            finished: false,
            since_read_ahead: 0,
        }
    }

    /// Bytes held for the frame being built (compressed bytes, for a compressed message: what
    /// the compressor keeps of the input is its bounded window, not a backlog).
    pub(crate) fn pending(&self) -> usize {
        self.builder.len()
    }

    /// Whether the frame being built has anything in it, or the compressor something for it.
    pub(crate) fn has_unframed(&self) -> bool {
        !self.builder.is_empty() || self.taken_in_frame > 0
    }

    /// Whether the frame being built must be cut before more is taken.
    fn frame_full(&self) -> bool {
        self.builder.is_full()
            || (self.compressed
                && self.scope == WriteScope::Connection
                && self.taken_in_frame >= self.builder.capacity())
    }

    fn frame_fin(&self) -> bool {
        self.scope == WriteScope::Connection
    }

    /// A message writer's first bytes (or its empty final frame): the message begins on the
    /// connection, which refuses it while a leaked writer's message is still open.
    fn begin<S>(&mut self, driver: &mut Driver<S>) -> Result<(), Error> {
        if self.begun || self.scope == WriteScope::Connection {
            return Ok(());
        }
        driver
            .conn_mut()
            .begin_streamed_message()
            .map_err(|e| driver.refusal(e))?;
        self.begun = true;
        Ok(())
    }

    /// Queues the frame being built (a message's non-final fragment, or a whole message).
    fn cut<S>(&mut self, driver: &mut Driver<S>) -> Result<(), Error> {
        self.send(driver, self.frame_fin())
    }

    /// Queues what the builder holds as the next frame of the message.
    fn send<S>(&mut self, driver: &mut Driver<S>, fin: bool) -> Result<(), Error> {
        self.taken_in_frame = 0;
        driver
            .conn_mut()
            .send_built_fragment(self.kind, fin, self.compressed, &mut self.builder)
            .map_err(|e| driver.refusal(e))
    }

    pub(crate) fn poll_write<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        driver: &mut Driver<S>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.finished {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the message was already finished",
            )));
        }
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        // Backpressure: wait while the transmit queue is full.
        ready!(driver.poll_ready(cx))?;
        self.begin(driver)?;
        let direct = driver.conn().role() == Role::Server
            && self.builder.is_empty()
            && !driver.conn().wants_write()
            && data.len() >= DIRECT_WRITE_MIN
            && self.utf8.is_none()
            && !self.compressed;
        let written = if direct {
            let len = data.len().min(self.builder.capacity());
            ready!(driver.poll_write_direct(cx, self.kind, self.frame_fin(), &data[..len]))?
        } else {
            ready!(self.poll_take(driver, cx, data))?
        };
        // The bytes are queued: now read what the peer sent meanwhile (pings to answer), once
        // per `READ_AHEAD_EVERY` bytes (a flush reads ahead too): a copy loop's 8 KiB writes
        // need not each poll the transport.
        self.since_read_ahead += written;
        if self.since_read_ahead >= READ_AHEAD_EVERY {
            self.since_read_ahead = 0;
            driver.read_ahead(cx);
        }
        Poll::Ready(Ok(written))
    }

    /// Takes what fits of `data` into the frame being built, cutting it when full.
    fn poll_take<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        driver: &mut Driver<S>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let data = match (self.compressed, self.scope) {
            (true, WriteScope::Connection) => {
                let room = self.builder.capacity().saturating_sub(self.taken_in_frame);
                &data[..data.len().min(room)]
            }
            _ => data,
        };
        if let Some(utf8) = &mut self.utf8 {
            // Check before taking: a refused write must leave nothing behind to be sent.
            let take = data.len().min(self.builder.room());
            let mut checked = utf8.clone();
            if checked.feed(&data[..take]).is_err() {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "text is not valid UTF-8",
                )));
            }
            *utf8 = checked;
        }
        let n = match driver
            .conn_mut()
            .append_fragment(&mut self.builder, data, self.compressed)
        {
            Ok(n) => n,
            Err(e) => return Poll::Ready(Err(driver.refusal(e).into())),
        };
        if self.compressed {
            self.taken_in_frame += n;
        }
        if self.frame_full() {
            self.cut(driver)?;
            // Start writing now; what does not fit waits for the next call's backpressure.
            if let Poll::Ready(Err(e)) = driver.poll_flush(cx) {
                return Poll::Ready(Err(e.into()));
            }
        }
        Poll::Ready(Ok(n))
    }

    /// Frames what is buffered and writes everything queued.
    pub(crate) fn poll_flush<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        driver: &mut Driver<S>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        if self.compressed && self.scope == WriteScope::Message && self.has_unframed() {
            // What the compressor holds goes into the frame, so the peer can inflate it all.
            if let Err(e) = driver.conn_mut().flush_fragment(&mut self.builder, true) {
                return Poll::Ready(Err(driver.refusal(e).into()));
            }
        }
        if self.has_unframed() {
            // A flush must not cut a code point in two: text frames end on a boundary.
            // (Compressed frames carry DEFLATE output, not text.)
            if self.compressed || self.utf8.as_ref().is_none_or(Utf8Validator::is_complete) {
                self.cut(driver)?;
            }
        }
        driver.poll_flush(cx).map_err(Into::into)
    }

    /// Ends the message with a final frame (a message writer), then flushes.
    pub(crate) fn poll_finish<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        driver: &mut Driver<S>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.finished {
            self.queue_final(driver)?;
        }
        driver.poll_flush(cx).map_err(Into::into)
    }

    /// Queues the final frame without writing it (also used when a writer is dropped).
    pub(crate) fn queue_final<S>(&mut self, driver: &mut Driver<S>) -> io::Result<()> {
        if let Some(utf8) = &self.utf8 {
            // Checked on a copy: a refused end changes nothing, so the rest of the code point
            // can still be written, and a later end (a drop) refuses too.
            if utf8.clone().finish().is_err() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "text ends inside a UTF-8 code point",
                ));
            }
        }
        self.begin(driver)?;
        self.finished = true;
        match self.scope {
            WriteScope::Message => self.send(driver, true)?,
            WriteScope::Connection if self.has_unframed() => self.cut(driver)?,
            WriteScope::Connection => {}
        }
        Ok(())
    }
}
