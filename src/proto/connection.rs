//! The connection state machine: what a received frame means, who takes it, what must be sent
//! in reply, and when the peer has been silent for too long.
//!
//! It never does I/O and never reads a clock. Like quinn-proto's `Connection` it has four kinds
//! of method: getters; inputs (`receive`, `read_ahead`, `handle_timeout`); mutators that queue
//! frames (`send_message`, `close`, ...); and outputs (`transmit` to drain, `poll_timeout` for
//! the next deadline). Receiving a ping queues a pong, receiving a close queues the echo,
//! failing the connection queues a close with the right code; the runtime drains
//! [`Connection::transmit`]. That is how a task that only writes still answers pings.

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::close::{CloseCode, CloseFrame, MAX_REASON_LEN};
use super::decoder::{
    DataKind, Decoded, DirectChunk, FrameDecoder, Limits, WholeMessage, RSV_COMPRESSED,
};
use super::deflate::{self, Compress, CompressError, Compressor, DeflateSettings, Inflater};
use super::encoder::Transmit;
use super::error::{FailReason, UsageError};
use super::fragment::FragmentBuilder;
use super::header::{FrameHeader, OpCode, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN};
use super::inbound::{whole_message, Chunk, Consumer, Event, Inbound, Received};
use super::keys::MaskKeys;
use super::message::{Message, Utf8Bytes};
use super::timers::{Activity, Due, Expired, Periods, Timers};
use super::Role;

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

/// Settings the protocol core needs. Start from [`ProtoConfig::default`] and set fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProtoConfig {
    /// Largest frame payload the message API accepts (the stream API has no frame limit).
    pub max_frame_size: usize,
    /// Largest message the message API assembles.
    pub max_message_size: usize,
    /// Largest message the stream API accepts (`None`: unbounded).
    pub max_stream_message_size: Option<usize>,
    /// Send a ping after this long without hearing from the peer (`None`: never).
    pub ping_interval: Option<Duration>,
    /// How long a keepalive ping may go unanswered.
    pub pong_timeout: Duration,
    /// Give up after this long without data either way (`None`: never).
    pub idle_timeout: Option<Duration>,
    /// How long the closing handshake may take once it began.
    pub close_timeout: Duration,
    /// permessage-deflate, when the handshake agreed on it (`None`: messages go as they are,
    /// and a compressed frame from the peer fails the connection with 1002).
    pub deflate: Option<DeflateSettings>,
}

impl Default for ProtoConfig {
    fn default() -> Self {
        ProtoConfig {
            max_frame_size: 16 << 20,
            max_message_size: 64 << 20,
            max_stream_message_size: None,
            ping_interval: None,
            pong_timeout: Duration::from_secs(10),
            idle_timeout: None,
            close_timeout: Duration::from_secs(5),
            deflate: None,
        }
    }
}

/// Why the core refused to queue something.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// Nothing more can be sent: our close was sent, the peer's arrived, or the connection
    /// failed or was given up.
    Closed,
    /// The call broke a rule of the protocol; nothing was queued.
    Usage(UsageError),
    /// The compressor failed (a bug, not the data's fault). A whole message is sent
    /// uncompressed instead; a streamed message cannot go on.
    Compression(CompressError),
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Closed => f.write_str("the connection is closed"),
            SendError::Usage(e) => e.fmt(f),
            SendError::Compression(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for SendError {}

impl From<UsageError> for SendError {
    fn from(e: UsageError) -> Self {
        SendError::Usage(e)
    }
}

impl From<CompressError> for SendError {
    fn from(e: CompressError) -> Self {
        SendError::Compression(e)
    }
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

/// How the connection ended, or is ending, from the receiving side.
#[derive(Debug)]
enum Undelivered {
    Close(Option<CloseFrame>),
    Failure(FailReason),
}

/// One WebSocket connection's protocol state.
#[derive(Debug)]
pub struct Connection {
    role: Role,
    config: ProtoConfig,
    decoder: FrameDecoder,
    transmit: Transmit,
    keys: MaskKeys,
    /// The sending direction's DEFLATE stream, when permessage-deflate was agreed.
    compressor: Option<Compressor>,
    /// The receiving direction's, and the compressed message being inflated.
    inflater: Option<Inflater>,
    inbound: Inbound,
    timers: Timers,
    /// The next frame's header exceeds what an unclaimed message may hold: decoding waits for
    /// a consumer, whose limits decide.
    parked: bool,
    /// The data message we are sending in fragments, if any.
    sending: Option<DataKind>,
    sent_close: bool,
    received_close: bool,
    /// Given up on the peer (a deadline passed): nothing more is received or sent.
    expired: Option<Expired>,
    /// The expiry still waits to be reported to a consumer.
    expiry_unreported: bool,
    failure: Option<FailReason>,
    peer_close: Option<CloseFrame>,
    /// The peer's close arrived before we had sent ours: the peer began the closing handshake.
    peer_closed_first: bool,
    /// The code of the close frame we sent (`None` before, or for a close without a code).
    sent_close_code: Option<CloseCode>,
    /// A close or failure decoded but not yet handed out: it waits until the reply it queued
    /// has left, and until what was decoded before it was taken.
    undelivered: Option<Undelivered>,
    counters: Stats,
    /// Data frames sent or received (pieces of messages): what an idle timeout watches.
    data_events: u64,
    /// The transport refused bytes (it was full) and has not taken any since.
    write_blocked: bool,
    /// Times it took bytes again after that: a sign the peer is alive (see [`Activity`]).
    write_drains: u64,
    /// Payloads of pongs received and not yet taken, for the runtime to match against its
    /// pings (a few at most: older ones are dropped).
    pongs: VecDeque<Bytes>,
    /// Where each queued pong ends in the outgoing stream, and its size: the pongs not yet
    /// written, which the runtime bounds by pausing reads (data queued by senders does not).
    unsent_pongs: VecDeque<(u64, usize)>,
    unsent_pong_bytes: usize,
}

/// How many received pong payloads wait for the runtime to take them.
const KEPT_PONGS: usize = 16;

impl Connection {
    /// A connection in the `Open` state, for the side `role` names, masking (as a client) with
    /// keys from the thread's generator.
    pub fn new(role: Role, config: ProtoConfig) -> Self {
        Self::with_keys(role, config, MaskKeys::new(role))
    }

    /// A connection whose masking keys come from `keys` (a seeded source makes a run repeat).
    pub fn with_keys(role: Role, config: ProtoConfig, keys: MaskKeys) -> Self {
        let decoder = match config.deflate {
            Some(_) => FrameDecoder::new(role).accepting_compressed(),
            None => FrameDecoder::new(role),
        };
        Connection {
            role,
            config,
            decoder,
            transmit: Transmit::default(),
            keys,
            compressor: config.deflate.map(Compressor::new),
            inflater: config.deflate.as_ref().map(Inflater::new),
            inbound: Inbound::default(),
            timers: Timers::new(Periods {
                ping_interval: config.ping_interval,
                pong_timeout: config.pong_timeout,
                idle_timeout: config.idle_timeout,
                close_timeout: config.close_timeout,
            }),
            parked: false,
            sending: None,
            sent_close: false,
            received_close: false,
            expired: None,
            expiry_unreported: false,
            failure: None,
            peer_close: None,
            peer_closed_first: false,
            sent_close_code: None,
            undelivered: None,
            counters: Stats::default(),
            data_events: 0,
            write_blocked: false,
            write_drains: 0,
            pongs: VecDeque::new(),
            unsent_pongs: VecDeque::new(),
            unsent_pong_bytes: 0,
        }
    }

    // ----- getters -----

    /// Which side this is.
    #[inline]
    pub fn role(&self) -> Role {
        self.role
    }

    /// The settings in force.
    pub fn config(&self) -> &ProtoConfig {
        &self.config
    }

    /// The state, as a browser reports it.
    pub fn ready_state(&self) -> ReadyState {
        match (self.sent_close, self.received_close) {
            _ if self.failure.is_some() || self.expired.is_some() => ReadyState::Closed,
            (false, false) => ReadyState::Open,
            (true, true) => ReadyState::Closed,
            _ => ReadyState::Closing,
        }
    }

    /// Whether a close frame was received from the peer.
    #[inline]
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

    /// Whether the peer began the closing handshake (its close came before we sent ours).
    pub fn peer_closed_first(&self) -> bool {
        self.peer_closed_first
    }

    /// The code of the close frame we sent, if we sent one with a code.
    pub fn sent_close_code(&self) -> Option<CloseCode> {
        self.sent_close_code
    }

    /// Why the connection failed, if it did.
    #[inline]
    pub fn failure(&self) -> Option<&FailReason> {
        self.failure.as_ref()
    }

    /// Which deadline made the connection give up on the peer, if one did.
    #[inline]
    pub fn expired(&self) -> Option<Expired> {
        self.expired
    }

    /// Whether nothing more will be decoded: the peer's close arrived, the connection failed,
    /// or it was given up. What was decoded before may still wait to be taken.
    #[inline]
    pub fn is_receive_done(&self) -> bool {
        self.received_close || self.failure.is_some() || self.expired.is_some()
    }

    /// Whether everything there was to receive was handed out: after this, `receive` yields
    /// nothing more, ever.
    #[inline]
    pub fn is_drained(&self) -> bool {
        self.is_receive_done()
            && self.undelivered.is_none()
            && !self.inbound.has_queued()
            && !self.expiry_unreported
    }

    /// Whether queued frames wait for the transport.
    #[inline]
    pub fn wants_write(&self) -> bool {
        !self.transmit.is_empty()
    }

    /// The transmit queue, for the runtime to drain.
    #[inline]
    pub fn transmit(&mut self) -> &mut Transmit {
        &mut self.transmit
    }

    /// Bytes accepted but not yet written to the transport.
    #[inline]
    pub fn buffered_amount(&self) -> usize {
        self.transmit.buffered()
    }

    /// Bytes decoded for consumers that have not taken them yet (read ahead while nobody was
    /// receiving), the bytes of a message being assembled, and compressed bytes waiting to be
    /// inflated.
    #[inline]
    pub fn unread_bytes(&self) -> usize {
        self.inbound.queued_bytes()
            + self.inbound.assembled_bytes()
            + self.inflater.as_ref().map_or(0, Inflater::held_bytes)
    }

    /// The permessage-deflate settings in force, if the handshake agreed on compression.
    pub fn deflate(&self) -> Option<&DeflateSettings> {
        self.config.deflate.as_ref()
    }

    /// Whether zlib state is held now, for compressing and for inflating: what a connection
    /// without context takeover frees after every message.
    pub fn deflate_state_held(&self) -> (bool, bool) {
        (
            self.compressor
                .as_ref()
                .is_some_and(Compressor::is_allocated),
            self.inflater.as_ref().is_some_and(Inflater::is_allocated),
        )
    }

    #[inline]
    fn inflating(&self) -> bool {
        self.inflater.as_ref().is_some_and(Inflater::has_work)
    }

    /// Whether decoding waits for a consumer to claim the next message (its frame is larger
    /// than an unclaimed message may be): reading ahead cannot progress until one asks.
    #[inline]
    pub fn is_parked(&self) -> bool {
        self.parked
    }

    /// Whether pongs were received since [`take_pongs`](Self::take_pongs) was last called.
    #[inline]
    pub fn has_pongs(&self) -> bool {
        !self.pongs.is_empty()
    }

    /// The payloads of pongs received since the previous call, oldest first.
    pub fn take_pongs(&mut self) -> impl Iterator<Item = Bytes> + '_ {
        self.pongs.drain(..)
    }

    /// What crossed the connection so far.
    #[inline]
    pub fn stats(&self) -> Stats {
        Stats {
            frames_received: self.decoder.frames_decoded(),
            ..self.counters
        }
    }

    /// How many bytes the read buffer should hold for decoding to progress when `consumer`
    /// asks: the rest of the frame in hand for whole frames, or a full header.
    #[inline]
    pub fn read_wanted(&self, buffered: usize, consumer: Option<Consumer>) -> usize {
        match self
            .inbound
            .mode(consumer, self.message_limits(), self.stream_limits())
        {
            mode if mode.delivery == super::decoder::Delivery::WholeFrames => {
                self.decoder.wanted(buffered)
            }
            _ => MAX_HEADER_LEN.max(buffered),
        }
    }

    fn message_limits(&self) -> Limits {
        Limits {
            frame: Some(self.config.max_frame_size),
            message: Some(self.config.max_message_size),
        }
    }

    fn stream_limits(&self) -> Limits {
        Limits {
            frame: None,
            message: self.config.max_stream_message_size,
        }
    }

    // ----- input -----

    /// Records bytes the runtime moved through the transport.
    #[inline]
    pub fn record_wire(&mut self, received: usize, sent: usize) {
        self.counters.bytes_received += received as u64;
        self.counters.bytes_sent += sent as u64;
        if sent > 0 && self.write_blocked {
            self.write_blocked = false;
            self.write_drains += 1;
        }
    }

    /// The transport could not take bytes now (its buffer is full): when it takes some again,
    /// [`record_wire`](Self::record_wire) counts that as a sign the peer is alive.
    #[inline]
    pub fn record_write_blocked(&mut self) {
        self.write_blocked = true;
    }

    /// Hands `consumer` what comes next, decoding from `buf` when nothing was read ahead.
    /// `None`: more bytes are needed (or, once [`is_drained`](Self::is_drained), nothing more
    /// will come). Control frames are handled (replies queued) whoever receives them; the
    /// message API is handed them too, the stream API only the close.
    ///
    /// A close or failure is handed out once its reply has been written (the transmit queue
    /// is empty), so a caller that stops after it has not left the peer unanswered. A failure
    /// is handed out as `Err`, then nothing more.
    #[inline]
    pub fn receive(
        &mut self,
        buf: &mut BytesMut,
        consumer: Consumer,
    ) -> Option<Result<Received, FailReason>> {
        if self.has_nothing_to_receive(buf) {
            // The common case of a receiver's poll before its read and after its wake-up: a
            // check inline instead of a call through every step below, which would change
            // nothing and find nothing.
            return None;
        }
        self.receive_from(buf, consumer)
    }

    /// Whether [`receive`](Self::receive) would find nothing and change nothing: no bytes, no
    /// frame in progress, nothing queued or being assembled, inflated or handed out.
    #[inline(always)]
    fn has_nothing_to_receive(&self, buf: &BytesMut) -> bool {
        self.decoder.starved(buf)
            && self.inbound.takes_whole_message_now()
            && self.undelivered.is_none()
            && !self.expiry_unreported
            && !self.parked
            && !self.inflating()
    }

    fn receive_from(
        &mut self,
        buf: &mut BytesMut,
        consumer: Consumer,
    ) -> Option<Result<Received, FailReason>> {
        if consumer == Consumer::Messages {
            // The message API never holds part of a message: a reader's message it meets was
            // let go, and its rest is discarded.
            self.inbound.abandon_stream();
        }
        loop {
            match self.inbound.pop(consumer) {
                Ok(Some(received)) => return Some(Ok(received)),
                Ok(None) => {}
                Err(reason) => {
                    self.fail(reason);
                    continue;
                }
            }
            if self.expiry_unreported {
                return None; // the runtime reports its own error, see `take_expiry`
            }
            if let Some(undelivered) = self.take_undelivered() {
                return Some(undelivered);
            }
            self.parked = false;
            // Here rather than inside `decode_one` (which repeats two of its checks): there it
            // measured 145 instructions more per 64 B echo, its result passed through one more
            // `Step`.
            if let Some(step) = self.decode_whole_message(buf, consumer) {
                match step {
                    Step::Delivered(received) => return Some(Ok(received)),
                    _ => continue,
                }
            }
            match self.decode_one(buf, Some(consumer)) {
                Step::Delivered(received) => return Some(Ok(received)),
                Step::Continue => {}
                Step::Blocked => return None,
            }
        }
    }

    /// Decodes what `buf` holds for nobody in particular, while the application is not
    /// receiving: control frames are handled at once (pongs queued, the peer's close echoed,
    /// a violation failed with its close code); data is kept for the consumer that asks next.
    /// Stops at the first frame larger than an unclaimed message may be (see
    /// [`is_parked`](Self::is_parked)). The runtime bounds how much it reads ahead with
    /// [`unread_bytes`](Self::unread_bytes).
    ///
    /// Inflating stops once `max_unread` bytes wait unread: a few compressed bytes may stand
    /// for any amount of data.
    pub fn read_ahead(&mut self, buf: &mut BytesMut, max_unread: usize) {
        while !self.parked && self.undelivered.is_none() {
            if self.inflating() && self.unread_bytes() >= max_unread {
                break;
            }
            if let Step::Blocked = self.decode_one(buf, None) {
                break;
            }
        }
    }

    /// The failure or close that ended receiving, once everything before it was taken and its
    /// reply was written.
    fn take_undelivered(&mut self) -> Option<Result<Received, FailReason>> {
        if self.undelivered.is_none() || !self.transmit.is_empty() || self.inbound.has_queued() {
            return None;
        }
        match self.undelivered.take()? {
            Undelivered::Close(frame) => Some(Ok(Received::Message(Message::Close(frame)))),
            Undelivered::Failure(reason) => Some(Err(reason)),
        }
    }

    /// The common case in one step: a message that is one whole frame in `buf`, straight to
    /// the message API that asked, when nothing comes before it. The same as
    /// [`decode_one`](Self::decode_one) would do with it, without its general steps (the mode,
    /// the decoder's frame in progress, the route); `None` when it does not apply.
    #[inline]
    fn decode_whole_message(&mut self, buf: &mut BytesMut, consumer: Consumer) -> Option<Step> {
        if consumer != Consumer::Messages
            || !self.inbound.takes_whole_message_now()
            || self.is_receive_done()
            || self.inflating()
        {
            return None;
        }
        let WholeMessage { kind, data, utf8 } = match self
            .decoder
            .decode_whole_message(buf, self.message_limits())?
        {
            Ok(message) => message,
            Err(reason) => {
                self.fail(reason);
                return Some(Step::Continue);
            }
        };
        self.count_data(data.len(), true);
        Some(match whole_message(kind, data, utf8) {
            Ok(received) => Step::Delivered(received),
            Err(reason) => {
                self.fail(reason);
                Step::Continue
            }
        })
    }

    /// Counts `len` payload bytes of a data message received, and the message when they `end` it.
    #[inline]
    fn count_data(&mut self, len: usize, end: bool) {
        self.counters.payload_bytes_received += len as u64;
        self.data_events += 1;
        self.counters.messages_received += u64::from(end);
    }

    /// Decodes one frame (or chunk) from `buf` and routes it.
    fn decode_one(&mut self, buf: &mut BytesMut, consumer: Option<Consumer>) -> Step {
        if self.is_receive_done() {
            return Step::Blocked;
        }
        if self.inflating() {
            // What was decoded is inflated before anything after it is decoded.
            return self.inflate_one(consumer);
        }
        if self.decoder.starved(buf) {
            return Step::Blocked;
        }
        let mode = self
            .inbound
            .mode(consumer, self.message_limits(), self.stream_limits());
        let mut limits = mode.limits;
        if mode.park_on_excess && self.decoder.next_exceeds(buf, limits) {
            if !self.decoder.next_exceeds(buf, self.stream_limits()) {
                // Only the stream API could take it: wait for a consumer to say which.
                self.parked = true;
                return Step::Blocked;
            }
            // Neither API could: fail now, with the limit a consumer would have had.
            limits = self.stream_limits();
        }
        let decoded = match self.decoder.decode(buf, mode.delivery, limits) {
            Ok(Some(decoded)) => decoded,
            Ok(None) => return Step::Blocked,
            Err(reason) => {
                self.fail(reason);
                return Step::Continue;
            }
        };
        let event = match decoded {
            Decoded::Data {
                kind,
                data,
                start,
                end,
                utf8,
                compressed,
            } => {
                self.count_data(data.len(), end);
                if compressed {
                    if let Some(inflater) = &mut self.inflater {
                        inflater.push(kind, data, start, end);
                    }
                    return self.inflate_one(consumer);
                }
                let chunk = Chunk {
                    kind,
                    data,
                    start,
                    end,
                };
                return self.take_data(chunk, utf8, consumer);
            }
            Decoded::Control { opcode, payload } => {
                self.counters.payload_bytes_received += payload.len() as u64;
                match self.handle_control(opcode, payload) {
                    Some(message) => Event::Control(message),
                    // A close or a failure: handed out once its reply has been written.
                    None => return Step::Continue,
                }
            }
        };
        self.route(event, consumer)
    }

    /// Hands a piece of a data message to `consumer`, or queues it.
    fn take_data(
        &mut self,
        chunk: Chunk,
        utf8: Option<super::utf8::Utf8Proof>,
        consumer: Option<Consumer>,
    ) -> Step {
        if chunk.start
            && chunk.end
            && consumer == Some(Consumer::Messages)
            && self.inbound.takes_whole_message_now()
        {
            // The common case, straight to the message API that asked for it.
            return match whole_message(chunk.kind, chunk.data, utf8) {
                Ok(received) => Step::Delivered(received),
                Err(reason) => {
                    self.fail(reason);
                    Step::Continue
                }
            };
        }
        self.route(Event::Data { chunk, utf8 }, consumer)
    }

    fn route(&mut self, event: Event, consumer: Option<Consumer>) -> Step {
        match self.inbound.route(event, consumer) {
            Ok(Some(received)) => Step::Delivered(received),
            Ok(None) => Step::Continue,
            Err(reason) => {
                self.fail(reason);
                Step::Continue
            }
        }
    }

    /// Inflates the next piece of the compressed message in hand and routes it, under the
    /// limits of whoever takes it: a message that inflates past them fails with 1009 after
    /// at most one piece more than the limit was produced.
    fn inflate_one(&mut self, consumer: Option<Consumer>) -> Step {
        let mode = self
            .inbound
            .mode(consumer, self.message_limits(), self.stream_limits());
        let Some(inflater) = &mut self.inflater else {
            return Step::Blocked;
        };
        let limit = mode.limits.message;
        match inflater.next_piece(limit) {
            Err(reason) => {
                self.fail(reason);
                Step::Continue
            }
            Ok(deflate::Step::NeedInput) => Step::Continue,
            Ok(deflate::Step::AtLimit) => {
                let stream_max = self.config.max_stream_message_size;
                let stream_would_take = match stream_max {
                    None => true,
                    Some(max) => limit.is_some_and(|limit| limit < max),
                };
                if mode.park_on_excess && stream_would_take {
                    // Only the stream API could take it: wait for a consumer to say which.
                    self.parked = true;
                    return Step::Blocked;
                }
                let max = match (mode.park_on_excess, stream_max) {
                    (true, Some(max)) => max,
                    _ => limit.unwrap_or(usize::MAX),
                };
                let reason = inflater.too_large(max);
                self.fail(reason);
                Step::Continue
            }
            Ok(deflate::Step::Piece(piece)) => {
                let chunk = Chunk {
                    kind: piece.kind,
                    data: piece.data,
                    start: piece.start,
                    end: piece.end,
                };
                self.take_data(chunk, piece.utf8, consumer)
            }
        }
    }

    /// Handles a control frame; pings and pongs are returned, a close (or a bad close payload)
    /// is parked in `undelivered`.
    fn handle_control(&mut self, opcode: OpCode, payload: Bytes) -> Option<Message> {
        match opcode {
            OpCode::Ping => {
                if !self.sent_close {
                    let start = self.transmit.end_position();
                    self.queue_frame(OpCode::Pong, payload.clone());
                    let end = self.transmit.end_position();
                    self.unsent_pongs.push_back((end, (end - start) as usize));
                    self.unsent_pong_bytes += (end - start) as usize;
                }
                Some(Message::Ping(payload))
            }
            OpCode::Pong => {
                if self.pongs.len() == KEPT_PONGS {
                    self.pongs.pop_front();
                }
                self.pongs.push_back(payload.clone());
                Some(Message::Pong(payload))
            }
            _ => {
                match CloseFrame::parse(payload) {
                    Ok(frame) => {
                        self.received_close = true;
                        self.peer_closed_first = !self.sent_close;
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
        if self.failure.is_some() || self.expired.is_some() {
            return;
        }
        if !self.sent_close {
            let frame = CloseFrame::new(reason.close_code(), Utf8Bytes::default());
            self.queue_close(Some(&frame));
        }
        self.failure = Some(reason.clone());
        self.undelivered = Some(Undelivered::Failure(reason));
    }

    /// A stream reader let go of its message before the end: the rest is discarded. A runtime
    /// calls it when a new reader starts (the old one is gone); the message API's `receive`
    /// does it itself.
    pub fn abandon_stream(&mut self) {
        self.inbound.abandon_stream();
    }

    /// Whether the timers want the next `now` rather than their next deadline (the closing
    /// handshake began, the keepalive watch has not started, or a keepalive ping was just
    /// answered): the runtime then calls
    /// [`handle_timeout`](Self::handle_timeout) with the time.
    #[inline]
    pub fn needs_now(&self) -> bool {
        self.expired.is_none() && self.timers.needs_now(self.activity())
    }

    #[inline]
    fn activity(&self) -> Activity {
        Activity {
            frames_received: self.decoder.frames_decoded(),
            bytes_received: self.counters.bytes_received,
            write_drains: self.write_drains,
            data_events: self.data_events,
        }
    }

    /// The next deadline, at which the runtime calls [`handle_timeout`](Self::handle_timeout).
    #[inline]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.expired.is_some() {
            return None;
        }
        self.timers.next_deadline()
    }

    /// Time passed: sets pending deadlines from `now`, sends a keepalive ping when one is due,
    /// and gives up on the peer when a deadline has passed (a pong or idle timeout also queues
    /// a close with 1001). See [`expired`](Self::expired).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.expired.is_some() {
            return;
        }
        match self.timers.check(now, self.activity()) {
            Some(Due::Ping) if !self.sent_close => self.queue_frame(OpCode::Ping, Bytes::new()),
            None | Some(Due::Ping) => {}
            Some(Due::Expired(expired)) => {
                if expired != Expired::Close && !self.sent_close && self.failure.is_none() {
                    self.queue_close(Some(&CloseFrame::new(CloseCode::GOING_AWAY, "")));
                }
                // A close timeout after the peer's close (only our close or the transport's
                // end was awaited) ends the connection quietly; any other is reported.
                self.expiry_unreported = !(expired == Expired::Close && self.is_receive_done());
                self.expired = Some(expired);
            }
        }
    }

    /// Takes the expiry to report, once: the deadline that ended the connection before the
    /// peer's close arrived.
    #[inline]
    pub fn take_expiry(&mut self) -> Option<Expired> {
        if !self.expiry_unreported {
            return None;
        }
        self.expiry_unreported = false;
        self.expired
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

    /// Whether a close or failure waits to be handed out.
    #[inline]
    pub fn has_undelivered(&self) -> bool {
        self.undelivered.is_some()
    }

    /// Payload bytes that may be read straight into a stream reader's buffer: non-zero only
    /// inside a data frame of the message a reader holds, with nothing buffered.
    pub(crate) fn direct_len(&self, buffered: usize) -> u64 {
        if self.is_receive_done()
            || self.undelivered.is_some()
            || self.inbound.has_queued()
            || !self.inbound.streaming()
        {
            return 0;
        }
        self.decoder.direct_len(buffered)
    }

    /// Takes payload bytes read straight into a reader's buffer (unmasking and validating them
    /// in place). On a violation the connection fails as in [`receive`](Self::receive), which
    /// then hands the reason out, and `None` is returned.
    pub(crate) fn consume_direct(&mut self, data: &mut [u8]) -> Option<DirectChunk> {
        match self.decoder.consume_direct(data) {
            Ok(chunk) => {
                self.count_data(data.len(), chunk.end);
                if chunk.end {
                    self.inbound.direct_message_ended();
                }
                Some(chunk)
            }
            Err(reason) => {
                self.fail(reason);
                None
            }
        }
    }

    // ----- output -----

    /// Queues a whole message. Pings and pongs must be at most 125 bytes; `Close` is
    /// [`close`](Self::close). A data message is compressed when permessage-deflate was agreed
    /// and it reaches the threshold (see [`send_message_with`](Self::send_message_with)).
    pub fn send_message(&mut self, message: Message) -> Result<(), SendError> {
        self.send_message_with(message, Compress::Auto)
    }

    /// Queues a whole message, compressed or not as `compress` says (when permessage-deflate
    /// was agreed; control frames are never compressed).
    pub fn send_message_with(
        &mut self,
        message: Message,
        compress: Compress,
    ) -> Result<(), SendError> {
        match message {
            Message::Text(text) => self.send_whole(DataKind::Text, text.into_bytes(), compress),
            Message::Binary(data) => self.send_whole(DataKind::Binary, data, compress),
            Message::Ping(payload) => self.send_control(OpCode::Ping, payload),
            Message::Pong(payload) => self.send_control(OpCode::Pong, payload),
            Message::Close(frame) => self.close(frame),
        }
    }

    fn send_whole(
        &mut self,
        kind: DataKind,
        payload: Bytes,
        compress: Compress,
    ) -> Result<(), SendError> {
        self.check_can_send()?;
        if self.sending.is_some() {
            return Err(UsageError::MessageInProgress.into());
        }
        self.counters.messages_sent += 1;
        self.data_events += 1;
        let (rsv, payload) = match &mut self.compressor {
            Some(compressor) if compressor.wants(payload.len(), compress) => {
                if compressor.is_open() {
                    // A streamed message whose writer vanished before its first frame.
                    compressor.abandon();
                }
                match compressor.compress_message(&payload) {
                    // Incompressible data (deflate adds a few percent to it): it goes as it
                    // is, and the window forgets it, since the peer's never held it.
                    Ok(compressed)
                        if compress == Compress::Auto && compressed.len() >= payload.len() =>
                    {
                        compressor.forget_window();
                        (0, payload)
                    }
                    Ok(compressed) => (RSV_COMPRESSED, compressed),
                    Err(_) => {
                        // Never the data's fault; the message still goes, as it is.
                        compressor.abandon();
                        (0, payload)
                    }
                }
            }
            _ => (0, payload),
        };
        self.queue_data_frame(rsv, data_opcode(kind), payload);
        Ok(())
    }

    /// A streamed message is about to take its first bytes (or its only, empty, frame). Fails
    /// while another message is still open: its writer was leaked (`mem::forget`), so it never
    /// ended it, and messages cannot interleave, as for [`send_message`](Self::send_message). Input a leaked
    /// writer left in the compressor before its first frame is dropped: the peer never saw it.
    pub fn begin_streamed_message(&mut self) -> Result<(), SendError> {
        self.check_can_send()?;
        if self.sending.is_some() {
            return Err(UsageError::MessageInProgress.into());
        }
        if let Some(compressor) = self.compressor.as_mut().filter(|c| c.is_open()) {
            compressor.abandon();
        }
        Ok(())
    }

    /// Whether a streamed message sent under `compress` is compressed: whenever
    /// permessage-deflate was agreed, unless `compress` is [`Compress::Never`].
    pub fn compresses_stream(&self, compress: Compress) -> bool {
        self.compressor.is_some() && compress != Compress::Never
    }

    /// Takes bytes of a streamed message into `builder`: copied (masked for a client), or,
    /// for a `compressed` message, compressed into it. Returns how many bytes of `data` were
    /// taken (those that fit the frame being built; the caller cuts it when it is full).
    pub fn append_fragment(
        &mut self,
        builder: &mut FragmentBuilder,
        data: &[u8],
        compressed: bool,
    ) -> Result<usize, SendError> {
        let Some(compressor) = self.compressor.as_mut().filter(|_| compressed) else {
            return Ok(builder.append(data, &mut self.keys));
        };
        let take = data.len().min(builder.room());
        if take > 0 {
            builder.extend(compressor.write(&data[..take])?, &mut self.keys);
        }
        Ok(take)
    }

    /// For a `compressed` streamed message, flushes the compressor into `builder`, so that
    /// the peer can inflate everything taken so far once the frame is sent.
    pub fn flush_fragment(
        &mut self,
        builder: &mut FragmentBuilder,
        compressed: bool,
    ) -> Result<(), SendError> {
        if let Some(compressor) = self.compressor.as_mut().filter(|_| compressed) {
            if compressor.is_open() {
                builder.extend(compressor.flush()?, &mut self.keys);
            }
        }
        Ok(())
    }

    fn fragment_opcode(&self, kind: DataKind) -> Result<OpCode, SendError> {
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

    /// The source of masking keys, for frames built outside the connection (streamed
    /// fragments).
    pub fn mask_keys(&mut self) -> &mut MaskKeys {
        &mut self.keys
    }

    /// Queues the frame `builder` holds as the next fragment of a `kind` message. For a
    /// `compressed` message, the final fragment takes the compressor's last bytes first (the
    /// message's end), and the first fragment carries RSV1.
    pub fn send_built_fragment(
        &mut self,
        kind: DataKind,
        fin: bool,
        compressed: bool,
        builder: &mut FragmentBuilder,
    ) -> Result<(), SendError> {
        let opcode = self.fragment_opcode(kind)?;
        let compressor = self.compressor.as_mut().filter(|_| compressed);
        if let (true, Some(compressor)) = (fin, compressor) {
            builder.extend(compressor.finish()?, &mut self.keys);
        }
        let rsv = match opcode {
            OpCode::Continuation => 0,
            _ if compressed && self.compressor.is_some() => RSV_COMPRESSED,
            _ => 0,
        };
        let (frame, payload_len) = builder.take_frame(fin, rsv, opcode, &mut self.keys);
        self.record_fragment(kind, fin, payload_len);
        self.transmit.push_encoded(frame);
        Ok(())
    }

    /// The header of the next fragment of a `kind` message with `len` payload bytes, for a
    /// runtime that writes the payload from the caller's memory itself (servers only: a client's
    /// payload must be masked, so it always goes through a buffer; and only with nothing
    /// queued, which the runtime checks). Changes nothing: call
    /// [`commit_direct_fragment`](Self::commit_direct_fragment) once part of it is written.
    pub(crate) fn direct_fragment_header(
        &self,
        kind: DataKind,
        fin: bool,
        len: usize,
    ) -> Result<([u8; MAX_HEADER_LEN], usize), SendError> {
        debug_assert!(self.role == Role::Server && self.transmit.is_empty());
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
    pub(crate) fn commit_direct_fragment(
        &mut self,
        kind: DataKind,
        fin: bool,
        len: usize,
        unwritten: Bytes,
    ) {
        self.record_fragment(kind, fin, len);
        self.transmit.push_encoded(unwritten);
    }

    /// Whether a data message sent in fragments is unfinished.
    pub fn sending_message(&self) -> bool {
        self.sending.is_some()
    }

    fn send_control(&mut self, opcode: OpCode, payload: Bytes) -> Result<(), SendError> {
        self.check_can_send()?;
        if payload.len() as u64 > MAX_CONTROL_PAYLOAD {
            return Err(UsageError::ControlPayloadTooLong(payload.len()).into());
        }
        self.queue_frame(opcode, payload);
        Ok(())
    }

    /// Starts the closing handshake. The code must be sendable and the reason at most 123 bytes.
    pub fn close(&mut self, frame: Option<CloseFrame>) -> Result<(), SendError> {
        self.check_can_send()?;
        check_close_frame(frame.as_ref())?;
        self.queue_close(frame.as_ref());
        Ok(())
    }

    /// Ends the connection by `deadline`, whatever state it is in: what a server shutting down
    /// asks of each connection. Starts the closing handshake with `frame` unless one began
    /// (ours or the peer's), and gives up on the peer at `deadline` if the handshake has not
    /// finished by then: [`handle_timeout`](Self::handle_timeout) then reports
    /// [`Expired::Close`]. The deadline replaces the close timeout for a handshake this call
    /// begins; one already under way keeps the earlier of its deadline and this one. A
    /// connection already failed or given up is left as it is.
    ///
    /// The frame is checked as in [`close`](Self::close): on an error nothing changes.
    pub fn close_by(
        &mut self,
        frame: Option<CloseFrame>,
        deadline: Instant,
    ) -> Result<(), SendError> {
        check_close_frame(frame.as_ref())?;
        if self.failure.is_some() || self.expired.is_some() {
            return Ok(());
        }
        // Before the close is queued: a handshake begun here takes this deadline, not the
        // close timeout's.
        self.timers.close_by(deadline);
        if self.can_send() {
            self.queue_close(frame.as_ref());
        }
        Ok(())
    }

    /// Whether frames may still be queued.
    #[inline]
    pub fn can_send(&self) -> bool {
        !(self.sent_close || self.failure.is_some() || self.expired.is_some())
    }

    fn check_can_send(&self) -> Result<(), SendError> {
        if self.can_send() {
            Ok(())
        } else {
            Err(SendError::Closed)
        }
    }

    fn queue_close(&mut self, frame: Option<&CloseFrame>) {
        self.sent_close_code = frame.map(|f| f.code);
        self.queue_frame(OpCode::Close, CloseFrame::encode(frame));
        self.sent_close = true;
        self.timers.start_closing();
    }

    fn queue_frame(&mut self, opcode: OpCode, payload: Bytes) {
        self.queue_data_frame(0, opcode, payload);
    }

    fn queue_data_frame(&mut self, rsv: u8, opcode: OpCode, payload: Bytes) {
        let mask = self.keys.next_key();
        self.counters.frames_sent += 1;
        self.counters.payload_bytes_sent += payload.len() as u64;
        self.transmit.push_frame(true, rsv, opcode, mask, payload);
    }
}

/// What one decoding step did.
enum Step {
    /// It produced what the consumer asked for.
    Delivered(Received),
    /// It took a frame (queued, handled or failed); there may be more.
    Continue,
    /// Nothing more can be decoded now.
    Blocked,
}

/// Checks a close frame we are about to send: a sendable code, a reason of at most 123 bytes.
fn check_close_frame(frame: Option<&CloseFrame>) -> Result<(), SendError> {
    let Some(f) = frame else { return Ok(()) };
    if !f.code.is_sendable() {
        return Err(UsageError::InvalidCloseCode(f.code.0).into());
    }
    if f.reason.len() > MAX_REASON_LEN {
        return Err(UsageError::CloseReasonTooLong(f.reason.len()).into());
    }
    Ok(())
}

fn data_opcode(kind: DataKind) -> OpCode {
    match kind {
        DataKind::Text => OpCode::Text,
        DataKind::Binary => OpCode::Binary,
    }
}
