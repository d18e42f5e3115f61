//! The connection state machine: what a received frame means and what must be sent in reply.
//!
//! It never does I/O. Receiving a ping queues a pong, receiving a close queues the echo, failing the
//! connection queues a close with the right code; the runtime sees [`Connection::wants_write`]
//! and drains [`Connection::transmit`]. That is how a task that only reads still answers pings.

use bytes::{Bytes, BytesMut};

use super::close::{CloseFrame, MAX_REASON_LEN};
use super::decoder::{DataKind, Decoded, Delivery, DirectChunk, FrameDecoder};
use super::encoder::Transmit;
use super::error::FailReason;
use super::fragment::FragmentBuilder;
use super::header::{FrameHeader, MAX_HEADER_LEN};
use super::header::{OpCode, MAX_CONTROL_PAYLOAD};
use super::message::{Message, Utf8Bytes};
use super::Role;
use crate::error::{Error, UsageError};

/// The connection's state, as the `readyState` of a browser WebSocket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReadyState {
    /// The opening handshake is in progress.
    Connecting,
    /// Messages flow both ways.
    Open,
    /// One side has sent a close frame; the other's is awaited.
    Closing,
    /// Both close frames were exchanged, or the connection failed.
    Closed,
}

/// Settings the protocol core needs.
#[derive(Debug, Clone, Copy)]
pub struct ProtoConfig {
    /// Largest accepted frame payload.
    pub max_frame_size: usize,
    /// Largest accepted assembled message.
    pub max_message_size: usize,
    /// Largest accepted streamed message (`None`: unbounded).
    pub max_stream_message_size: Option<usize>,
}

/// What [`Connection::receive`] hands out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// Payload bytes of a data message.
    Data {
        /// The message's type.
        kind: DataKind,
        /// The bytes.
        data: Bytes,
        /// First bytes of the message.
        start: bool,
        /// Last bytes of the message.
        end: bool,
    },
    /// A ping, pong or close (already handled: a pong or close reply is queued).
    Control(Message),
}

/// What crossed the connection: bytes on the wire, frames, messages and payload bytes, like a
/// platform socket's bandwidth statistics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Bytes written to the transport (headers, masks and payloads).
    pub bytes_sent: u64,
    /// Bytes read from the transport.
    pub bytes_received: u64,
    /// Frames sent.
    pub frames_sent: u64,
    /// Frames received.
    pub frames_received: u64,
    /// Data messages sent (complete).
    pub messages_sent: u64,
    /// Data messages received (complete).
    pub messages_received: u64,
    /// Payload bytes sent.
    pub payload_bytes_sent: u64,
    /// Payload bytes received.
    pub payload_bytes_received: u64,
}

/// One WebSocket connection's protocol state.
#[derive(Debug)]
pub struct Connection {
    role: Role,
    config: ProtoConfig,
    decoder: FrameDecoder,
    transmit: Transmit,
    /// Fragments of the message being assembled (message delivery only).
    assembly: Assembly,
    /// The data message we are sending in fragments, if any.
    sending: Option<DataKind>,
    sent_close: bool,
    received_close: bool,
    /// The runtime gave up on the peer (a timeout): nothing more is received or sent.
    abandoned: bool,
    failure: Option<FailReason>,
    peer_close: Option<CloseFrame>,
    /// A close or failure decoded but not yet handed out: it waits until the reply it queued
    /// has left, so a caller that stops reading after it has not left the peer unanswered.
    undelivered: Option<Undelivered>,
    counters: Stats,
    /// Data frames sent or received (pieces of messages): what an idle timeout watches.
    data_events: u64,
    /// The payload of the last pong received, for the runtime to match against its pings.
    last_pong: Option<Bytes>,
    /// Where each queued pong ends in the outgoing stream, and its size: the pongs not yet
    /// written, which the runtime bounds by pausing reads (data queued by senders does not).
    unsent_pongs: std::collections::VecDeque<(u64, usize)>,
    unsent_pong_bytes: usize,
}

#[derive(Debug)]
enum Undelivered {
    Close(Option<CloseFrame>),
    Failure(FailReason),
}

#[derive(Debug, Default)]
struct Assembly {
    first: Option<Bytes>,
    rest: BytesMut,
    /// A message is being assembled (its start was seen by the message API).
    active: bool,
}

impl Assembly {
    /// Adds a piece; returns the whole message once `end` is set. The rest of a message whose
    /// start went to the stream API (a reader dropped mid-message) is discarded.
    fn push(&mut self, data: Bytes, start: bool, end: bool) -> Option<Bytes> {
        if start && end {
            return Some(data);
        }
        if start {
            self.first = Some(data);
            self.active = !end;
            return None;
        }
        if !self.active {
            return None;
        }
        self.active = !end;
        if let Some(first) = self.first.take() {
            self.rest.reserve(first.len() + data.len());
            self.rest.extend_from_slice(&first);
        }
        self.rest.extend_from_slice(&data);
        end.then(|| std::mem::take(&mut self.rest).freeze())
    }
}

impl Connection {
    /// A connection in the `Open` state, for the side `role` names.
    pub fn new(role: Role, config: ProtoConfig) -> Self {
        Connection {
            role,
            config,
            decoder: FrameDecoder::new(role, config.max_frame_size),
            transmit: Transmit::default(),
            assembly: Assembly::default(),
            sending: None,
            sent_close: false,
            received_close: false,
            abandoned: false,
            failure: None,
            peer_close: None,
            undelivered: None,
            counters: Stats::default(),
            data_events: 0,
            last_pong: None,
            unsent_pongs: Default::default(),
            unsent_pong_bytes: 0,
        }
    }

    // ----- getters -----

    /// Which side this is.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The state, as a browser reports it.
    pub fn ready_state(&self) -> ReadyState {
        match (self.sent_close, self.received_close) {
            _ if self.failure.is_some() || self.abandoned => ReadyState::Closed,
            (false, false) => ReadyState::Open,
            (true, true) => ReadyState::Closed,
            _ => ReadyState::Closing,
        }
    }

    /// Whether a close frame was received from the peer.
    pub fn received_close(&self) -> bool {
        self.received_close
    }

    /// Whether a close frame was queued to the peer.
    pub fn sent_close(&self) -> bool {
        self.sent_close
    }

    /// The peer's close frame, once received (`None` also when it had no code).
    pub fn peer_close(&self) -> Option<&CloseFrame> {
        self.peer_close.as_ref()
    }

    /// Why the connection failed, if it did.
    pub fn failure(&self) -> Option<&FailReason> {
        self.failure.as_ref()
    }

    /// Whether nothing more will be received: the peer's close arrived or the connection failed.
    /// (A close or failure may still wait to be handed out: see [`has_undelivered`](Self::has_undelivered).)
    pub fn is_receive_done(&self) -> bool {
        self.received_close || self.failure.is_some() || self.abandoned
    }

    /// Whether queued frames wait for the socket.
    pub fn wants_write(&self) -> bool {
        !self.transmit.is_empty()
    }

    /// The transmit queue, for the runtime to drain.
    pub fn transmit(&mut self) -> &mut Transmit {
        &mut self.transmit
    }

    /// Bytes accepted but not yet written to the socket.
    pub fn buffered_amount(&self) -> usize {
        self.transmit.buffered()
    }

    /// What crossed the connection so far.
    /// Adds bytes the runtime moved through the transport to the statistics.
    pub fn record_wire(&mut self, received: usize, sent: usize) {
        self.counters.bytes_received += received as u64;
        self.counters.bytes_sent += sent as u64;
    }

    /// A counter that changes whenever data (not control frames) is sent or received.
    pub fn data_events(&self) -> u64 {
        self.data_events
    }

    /// The payload of the last pong received since the previous call.
    pub fn take_pong(&mut self) -> Option<Bytes> {
        self.last_pong.take()
    }

    /// What crossed the connection so far.
    pub fn stats(&self) -> Stats {
        Stats {
            frames_received: self.decoder.frames_decoded(),
            ..self.counters
        }
    }

    /// How many bytes the read buffer should hold for whole-frame decoding to progress.
    pub fn read_wanted(&self, buffered: usize) -> usize {
        self.decoder.wanted(buffered)
    }

    // ----- input -----

    /// Decodes the next whole message from `buf`. Control frames are handled (replies queued) and
    /// returned too. `Ok(None)` means more bytes are needed.
    pub fn receive_message(&mut self, buf: &mut BytesMut) -> Result<Option<Message>, FailReason> {
        loop {
            // The rest of a message whose start went to the stream API (a reader dropped
            // mid-message) is discarded, never assembled: the stream limit bounds it.
            let limit = if self.decoder.in_message() && !self.assembly.active {
                self.config.max_stream_message_size
            } else {
                Some(self.config.max_message_size)
            };
            match self.receive(buf, Delivery::WholeFrames, limit)? {
                None => return Ok(None),
                Some(Incoming::Control(message)) => return Ok(Some(message)),
                Some(Incoming::Data {
                    kind,
                    data,
                    start,
                    end,
                }) => {
                    let Some(payload) = self.assembly.push(data, start, end) else {
                        continue;
                    };
                    return Ok(Some(match kind {
                        DataKind::Binary => Message::Binary(payload),
                        DataKind::Text => Message::Text(Utf8Bytes::from_validated(payload)),
                    }));
                }
            }
        }
    }

    /// Decodes the next piece of input for the stream API: data in chunks as it arrives, bounded
    /// by the streamed-message limit.
    pub fn receive_chunk(&mut self, buf: &mut BytesMut) -> Result<Option<Incoming>, FailReason> {
        self.receive(buf, Delivery::Chunks, self.config.max_stream_message_size)
    }

    /// Decodes the next piece of input. Data arrives as whole frames or chunks per `delivery`;
    /// `message_limit` bounds data messages.
    pub fn receive(
        &mut self,
        buf: &mut BytesMut,
        delivery: Delivery,
        message_limit: Option<usize>,
    ) -> Result<Option<Incoming>, FailReason> {
        if self.undelivered.is_some() {
            if !self.transmit.is_empty() {
                return Ok(None);
            }
            return match self.undelivered.take() {
                Some(Undelivered::Close(frame)) => {
                    Ok(Some(Incoming::Control(Message::Close(frame))))
                }
                Some(Undelivered::Failure(reason)) => Err(reason),
                None => Ok(None),
            };
        }
        if self.is_receive_done() {
            return Ok(None);
        }
        let decoded = match self.decoder.decode(buf, delivery, message_limit) {
            Ok(Some(d)) => d,
            Ok(None) => return Ok(None),
            Err(reason) => {
                self.fail(reason);
                return self.receive(buf, delivery, message_limit);
            }
        };
        match decoded {
            Decoded::Data {
                kind,
                data,
                start,
                end,
            } => {
                self.counters.payload_bytes_received += data.len() as u64;
                self.data_events += 1;
                if end {
                    self.counters.messages_received += 1;
                }
                Ok(Some(Incoming::Data {
                    kind,
                    data,
                    start,
                    end,
                }))
            }
            Decoded::Control { opcode, payload } => {
                self.counters.payload_bytes_received += payload.len() as u64;
                match self.handle_control(opcode, payload) {
                    Some(message) => Ok(Some(Incoming::Control(message))),
                    // A close or a failure: handed out once its reply has been written.
                    None => self.receive(buf, delivery, message_limit),
                }
            }
        }
    }

    /// Handles a control frame; pings and pongs are returned at once, a close (or a bad close
    /// payload) is parked in `undelivered`.
    fn handle_control(&mut self, opcode: OpCode, payload: Bytes) -> Option<Message> {
        match opcode {
            OpCode::Ping => {
                if !self.sent_close {
                    let start = self.transmit.end_position();
                    self.queue_frame(true, OpCode::Pong, payload.clone());
                    let end = self.transmit.end_position();
                    self.unsent_pongs.push_back((end, (end - start) as usize));
                    self.unsent_pong_bytes += (end - start) as usize;
                }
                Some(Message::Ping(payload))
            }
            OpCode::Pong => {
                self.last_pong = Some(payload.clone());
                Some(Message::Pong(payload))
            }
            _ => {
                match CloseFrame::parse(payload) {
                    Ok(frame) => {
                        self.received_close = true;
                        if !self.sent_close {
                            // Echo the code (RFC 6455 §5.5.1), without repeating the reason.
                            let echo = frame
                                .as_ref()
                                .map(|f| CloseFrame::new(f.code, Utf8Bytes::default()));
                            self.queue_close(echo.as_ref());
                        }
                        self.peer_close = frame.clone();
                        self.undelivered = Some(Undelivered::Close(frame));
                    }
                    Err(e) => self.fail(e.into()),
                }
                None
            }
        }
    }

    /// Fails the connection: queues a close with the reason's code, stops receiving, and hands
    /// the reason out once the close has been written.
    pub fn fail(&mut self, reason: FailReason) {
        if self.failure.is_some() {
            return;
        }
        if !self.sent_close {
            let frame = CloseFrame::new(reason.close_code(), Utf8Bytes::default());
            self.queue_close(Some(&frame));
        }
        self.failure = Some(reason.clone());
        self.undelivered = Some(Undelivered::Failure(reason));
    }

    /// Gives up on the peer for a reason of the runtime's (a timeout): queues `frame` as the
    /// close (unless one was sent) and stops receiving and sending. Nothing is handed out: the
    /// runtime reports its own error.
    pub fn fail_locally(&mut self, frame: CloseFrame) {
        if !self.sent_close && self.failure.is_none() {
            self.queue_close(Some(&frame));
        }
        self.abandoned = true;
    }

    /// Bytes of pong replies queued and not yet written. Only these, not queued data, should
    /// hold reading back: two peers whose queues are both full of data must keep reading each
    /// other, or each waits for the other forever.
    pub fn unsent_pong_bytes(&mut self) -> usize {
        let written = self.transmit.written();
        while let Some(&(end, len)) = self.unsent_pongs.front() {
            if end > written {
                break;
            }
            self.unsent_pongs.pop_front();
            self.unsent_pong_bytes -= len;
        }
        self.unsent_pong_bytes
    }

    /// Whether a close or failure waits to be handed out (after the transmit queue drains).
    pub fn has_undelivered(&self) -> bool {
        self.undelivered.is_some()
    }

    // ----- output -----

    /// Queues a whole message. Pings and pongs must be at most 125 bytes; `Close` is
    /// [`close`](Self::close).
    pub fn send_message(&mut self, message: Message) -> Result<(), Error> {
        match message {
            Message::Text(text) => self.send_whole(DataKind::Text, text.into_bytes()),
            Message::Binary(data) => self.send_whole(DataKind::Binary, data),
            Message::Ping(payload) => self.send_control(OpCode::Ping, payload),
            Message::Pong(payload) => self.send_control(OpCode::Pong, payload),
            Message::Close(frame) => self.close(frame),
        }
    }

    fn send_whole(&mut self, kind: DataKind, payload: Bytes) -> Result<(), Error> {
        self.check_can_send()?;
        if self.sending.is_some() {
            return Err(UsageError::MessageInProgress.into());
        }
        self.counters.messages_sent += 1;
        self.data_events += 1;
        self.queue_frame(true, data_opcode(kind), payload);
        Ok(())
    }

    fn fragment_opcode(&self, kind: DataKind) -> Result<OpCode, Error> {
        self.check_can_send()?;
        match self.sending {
            Some(current) if current == kind => Ok(OpCode::Continuation),
            Some(_) => Err(UsageError::MessageInProgress.into()),
            None => Ok(data_opcode(kind)),
        }
    }

    fn record_fragment(&mut self, kind: DataKind, fin: bool, payload_len: usize) {
        self.sending = if fin { None } else { Some(kind) };
        if fin {
            self.counters.messages_sent += 1;
        }
        self.counters.frames_sent += 1;
        self.counters.payload_bytes_sent += payload_len as u64;
        self.data_events += 1;
    }

    /// Queues the frame `builder` holds as the next fragment of a `kind` message.
    pub fn send_built_fragment(
        &mut self,
        kind: DataKind,
        fin: bool,
        builder: &mut FragmentBuilder,
    ) -> Result<(), Error> {
        let opcode = self.fragment_opcode(kind)?;
        let (frame, payload_len) = builder.take_frame(fin, opcode);
        self.record_fragment(kind, fin, payload_len);
        self.transmit.push_encoded(frame);
        Ok(())
    }

    /// The header of the next fragment of a `kind` message with `len` payload bytes, for a
    /// runtime that writes the payload from the caller's memory itself (servers only: a client's
    /// payload must be masked, so it always goes through a buffer). Changes nothing: call
    /// [`commit_direct_fragment`](Self::commit_direct_fragment) once part of it is written.
    pub fn direct_fragment_header(
        &self,
        kind: DataKind,
        fin: bool,
        len: usize,
    ) -> Result<([u8; MAX_HEADER_LEN], usize), Error> {
        debug_assert_eq!(self.role, Role::Server);
        if !self.transmit.is_empty() {
            return Err(Error::Io(std::io::Error::other(
                "direct frames need an empty transmit queue",
            )));
        }
        let opcode = self.fragment_opcode(kind)?;
        let header = FrameHeader {
            fin,
            rsv: 0,
            opcode,
            mask: None,
            payload_len: len as u64,
        };
        let mut head = [0u8; MAX_HEADER_LEN];
        let n = header.encode(&mut head);
        Ok((head, n))
    }

    /// Records a fragment begun with [`direct_fragment_header`](Self::direct_fragment_header);
    /// `unwritten` is what the runtime could not write of it (the tail of header and payload),
    /// which is queued so the frame completes.
    pub fn commit_direct_fragment(
        &mut self,
        kind: DataKind,
        fin: bool,
        len: usize,
        unwritten: Bytes,
    ) {
        self.record_fragment(kind, fin, len);
        self.transmit.push_encoded(unwritten);
    }

    /// Payload bytes that may be read straight into a caller's buffer; see
    /// [`FrameDecoder::direct_len`].
    pub fn direct_len(&self, buffered: usize) -> u64 {
        if self.is_receive_done() || self.undelivered.is_some() {
            return 0;
        }
        self.decoder.direct_len(buffered)
    }

    /// Takes payload bytes read straight into a caller's buffer (unmasking and validating them in
    /// place); see [`FrameDecoder::consume_direct`]. On a violation the connection fails as in
    /// [`receive`](Self::receive) and the error is handed out by the next `receive`.
    pub fn consume_direct(&mut self, data: &mut [u8]) -> Result<Option<DirectChunk>, FailReason> {
        match self.decoder.consume_direct(data) {
            Ok(chunk) => {
                self.counters.payload_bytes_received += data.len() as u64;
                self.data_events += 1;
                if chunk.end {
                    self.counters.messages_received += 1;
                }
                Ok(Some(chunk))
            }
            Err(reason) => {
                self.fail(reason);
                Ok(None)
            }
        }
    }

    /// Whether a data message sent in fragments is unfinished.
    pub fn sending_message(&self) -> bool {
        self.sending.is_some()
    }

    fn send_control(&mut self, opcode: OpCode, payload: Bytes) -> Result<(), Error> {
        self.check_can_send()?;
        if payload.len() as u64 > MAX_CONTROL_PAYLOAD {
            return Err(UsageError::ControlPayloadTooLong(payload.len()).into());
        }
        self.queue_frame(true, opcode, payload);
        Ok(())
    }

    /// Starts the closing handshake. The code must be sendable and the reason at most 123 bytes.
    pub fn close(&mut self, frame: Option<CloseFrame>) -> Result<(), Error> {
        self.check_can_send()?;
        if let Some(f) = &frame {
            if !f.code.is_sendable() {
                return Err(UsageError::InvalidCloseCode(f.code.0).into());
            }
            if f.reason.len() > MAX_REASON_LEN {
                return Err(UsageError::CloseReasonTooLong(f.reason.len()).into());
            }
        }
        self.queue_close(frame.as_ref());
        Ok(())
    }

    fn check_can_send(&self) -> Result<(), Error> {
        if self.sent_close || self.failure.is_some() || self.abandoned {
            return Err(Error::Closed);
        }
        Ok(())
    }

    fn queue_close(&mut self, frame: Option<&CloseFrame>) {
        self.queue_frame(true, OpCode::Close, CloseFrame::encode(frame));
        self.sent_close = true;
    }

    fn queue_frame(&mut self, fin: bool, opcode: OpCode, payload: Bytes) {
        let mask = match self.role {
            Role::Client => Some(rand::random::<[u8; 4]>()),
            Role::Server => None,
        };
        self.counters.frames_sent += 1;
        self.counters.payload_bytes_sent += payload.len() as u64;
        self.transmit.push_frame(fin, 0, opcode, mask, payload);
    }
}

fn data_opcode(kind: DataKind) -> OpCode {
    match kind {
        DataKind::Text => OpCode::Text,
        DataKind::Binary => OpCode::Binary,
    }
}
