//! The incoming message: which consumer takes it, and what was read ahead for a consumer that
//! is not polling.
//!
//! This is the one owner of "the current incoming message". Every frame the decoder yields
//! passes through [`Inbound::route`], and every consumer (whole messages, a message reader, a
//! byte stream) takes its input through [`Inbound::deliver`], so a message goes whole to exactly
//! one consumer or is discarded, whatever the order in which the APIs are mixed or cancelled.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use super::decoder::{DataKind, Delivery, Limits};
use super::error::{FailReason, ProtocolError};
use super::message::Message;
use super::text::Utf8Bytes;
use super::utf8::Utf8Proof;

/// Who asks the connection for input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consumer {
    /// The message API: whole messages, and pings, pongs and the close as they come.
    Messages,
    /// The stream API: payload bytes of data messages as they arrive; pings and pongs are
    /// handled underneath and not handed out.
    Stream,
}

/// Payload bytes of a data message, for the stream API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// The message's type.
    pub kind: DataKind,
    /// The bytes (unmasked; for text, validated as far as the message has come).
    pub data: Bytes,
    /// These are the message's first bytes.
    pub start: bool,
    /// These are the message's last bytes.
    pub end: bool,
}

/// What a consumer receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// A whole message, or a control frame (`Close` included; for the stream API only `Close`).
    Message(Message),
    /// Payload bytes of a data message (the stream API only).
    Chunk(Chunk),
}

/// A decoded frame, or part of one.
#[derive(Debug)]
pub(crate) enum Event {
    Data {
        chunk: Chunk,
        utf8: Option<Utf8Proof>,
    },
    Control(Message),
}

/// What one queued event is counted as, beyond its payload, against the read-ahead bound: a
/// flood of empty pings is bounded too.
const EVENT_OVERHEAD: usize = 64;

/// The message being handed out, as the consumer side sees it.
#[derive(Debug, Default)]
enum Current {
    /// Between messages.
    #[default]
    Idle,
    /// The message API is assembling it.
    Assembling(Assembly),
    /// A reader of the stream API holds it.
    Streaming,
    /// Its reader was dropped: the rest is discarded.
    Discarding,
}

#[derive(Debug)]
struct Assembly {
    kind: DataKind,
    /// The first piece, kept as it is until a second arrives (most messages have one).
    first: Option<Bytes>,
    rest: BytesMut,
}

impl Assembly {
    fn push(&mut self, data: Bytes) {
        if let Some(first) = self.first.take() {
            self.rest.reserve(first.len() + data.len());
            self.rest.extend_from_slice(&first);
        }
        self.rest.extend_from_slice(&data);
    }

    fn take(&mut self) -> Bytes {
        match self.first.take() {
            Some(first) => first,
            None => std::mem::take(&mut self.rest).freeze(),
        }
    }

    fn len(&self) -> usize {
        self.first.as_ref().map_or(0, Bytes::len) + self.rest.len()
    }
}

/// How the next frame should be decoded, and what to do if its header exceeds the limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Mode {
    pub(crate) delivery: Delivery,
    pub(crate) limits: Limits,
    /// No consumer has claimed the message yet: a header over `limits` waits for one (whose
    /// limits then decide) instead of failing the connection.
    pub(crate) park_on_excess: bool,
}

/// The incoming side of a connection.
#[derive(Debug, Default)]
pub(crate) struct Inbound {
    current: Current,
    /// Decoded events that no consumer has taken yet, oldest first.
    queue: VecDeque<Event>,
    /// What the queue holds, counted against the read-ahead bound.
    queued_bytes: usize,
    /// Message ends in the queue: when there are any, the decoder is past the current message.
    queued_ends: usize,
}

impl Inbound {
    /// Bytes held for consumers that have not taken them.
    pub(crate) fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    /// Whether a whole message that arrives now may go straight to the message API: nothing
    /// is queued before it and no message is in progress.
    pub(crate) fn takes_whole_message_now(&self) -> bool {
        self.queue.is_empty() && matches!(self.current, Current::Idle)
    }

    /// Whether decoded events wait for a consumer.
    pub(crate) fn has_queued(&self) -> bool {
        !self.queue.is_empty()
    }

    /// Whether the decoder is inside the message the consumer side holds (nothing of a later
    /// message is queued), so that message's owner decides how to decode.
    fn decoder_in_current(&self) -> bool {
        self.queued_ends == 0 && !matches!(self.current, Current::Idle)
    }

    /// Whether the message arriving belongs to a stream reader (that holds or dropped it):
    /// its payload may be read straight into the reader's buffer.
    pub(crate) fn streaming(&self) -> bool {
        self.decoder_in_current() && matches!(self.current, Current::Streaming)
    }

    /// How to decode the next frame for `consumer` (`None`: reading ahead for nobody).
    pub(crate) fn mode(&self, consumer: Option<Consumer>, message: Limits, stream: Limits) -> Mode {
        let whole = |park_on_excess| Mode {
            delivery: Delivery::WholeFrames,
            limits: message,
            park_on_excess,
        };
        let chunks = Mode {
            delivery: Delivery::Chunks,
            limits: stream,
            park_on_excess: false,
        };
        if self.decoder_in_current() {
            return match self.current {
                Current::Assembling(_) => whole(false),
                _ => chunks,
            };
        }
        match consumer {
            // Nothing is queued (a consumer takes from the queue first), so the next frame
            // starts a message, and the consumer asking claims it.
            Some(Consumer::Messages) if self.queue.is_empty() => whole(false),
            Some(Consumer::Stream) if self.queue.is_empty() => chunks,
            // Unclaimed: read ahead what either API could take.
            _ => whole(true),
        }
    }

    /// Takes a decoded event: hands it to `consumer` when nothing older waits, else queues it.
    pub(crate) fn route(
        &mut self,
        event: Event,
        consumer: Option<Consumer>,
    ) -> Result<Option<Received>, FailReason> {
        if self.queue.is_empty() {
            if let Some(consumer) = consumer {
                return self.deliver(event, consumer);
            }
            if self.decoder_in_current() && matches!(self.current, Current::Discarding) {
                // The rest of a dropped reader's message: nobody will want it.
                return self.deliver(event, Consumer::Stream);
            }
        }
        self.queued_bytes += event_size(&event);
        if let Event::Data { chunk, .. } = &event {
            self.queued_ends += usize::from(chunk.end);
        }
        self.queue.push_back(event);
        Ok(None)
    }

    /// Hands `consumer` the next thing it takes from the queue, if any.
    #[inline]
    pub(crate) fn pop(&mut self, consumer: Consumer) -> Result<Option<Received>, FailReason> {
        if self.queue.is_empty() && consumer == Consumer::Messages {
            return Ok(None); // the common case: nothing read ahead
        }
        self.pop_queued(consumer)
    }

    #[inline(never)]
    fn pop_queued(&mut self, consumer: Consumer) -> Result<Option<Received>, FailReason> {
        if consumer == Consumer::Stream {
            if let Some(chunk) = self.claim_assembly() {
                return Ok(Some(Received::Chunk(chunk)));
            }
        }
        while let Some(event) = self.queue.pop_front() {
            self.queued_bytes -= event_size(&event);
            if let Event::Data { chunk, .. } = &event {
                self.queued_ends -= usize::from(chunk.end);
            }
            if let Some(received) = self.deliver(event, consumer)? {
                return Ok(Some(received));
            }
        }
        Ok(None)
    }

    /// A stream consumer takes over a message the message API began assembling (its `recv` was
    /// cancelled): what was assembled becomes the reader's first chunk, so the message still
    /// reaches one consumer whole.
    fn claim_assembly(&mut self) -> Option<Chunk> {
        let Current::Assembling(assembly) = &mut self.current else {
            return None;
        };
        let chunk = Chunk {
            kind: assembly.kind,
            data: assembly.take(),
            start: true,
            end: false,
        };
        self.current = Current::Streaming;
        Some(chunk)
    }

    /// A reader let go of the message it held before its end: the rest is discarded.
    #[inline]
    pub(crate) fn abandon_stream(&mut self) {
        if matches!(self.current, Current::Streaming) {
            self.discard_streamed();
        }
    }

    #[inline(never)]
    fn discard_streamed(&mut self) {
        {
            self.current = Current::Discarding;
            // What of it was read ahead goes now.
            while let Some(Event::Data { chunk, .. }) = self.queue.front() {
                let end = chunk.end;
                if let Some(event) = self.queue.pop_front() {
                    self.queued_bytes -= event_size(&event);
                }
                if end {
                    self.queued_ends -= 1;
                    self.current = Current::Idle;
                    break;
                }
            }
        }
    }

    /// A message a reader held ended in payload read straight into the reader's buffer.
    pub(crate) fn direct_message_ended(&mut self) {
        if matches!(self.current, Current::Streaming) {
            self.current = Current::Idle;
        }
    }

    /// Bytes of a message being assembled for the message API.
    pub(crate) fn assembled_bytes(&self) -> usize {
        match &self.current {
            Current::Assembling(assembly) => assembly.len(),
            _ => 0,
        }
    }

    /// Gives `event` to `consumer` in the light of the current message.
    fn deliver(
        &mut self,
        event: Event,
        consumer: Consumer,
    ) -> Result<Option<Received>, FailReason> {
        let (chunk, utf8) = match event {
            Event::Control(message) => {
                return Ok(match (consumer, &message) {
                    (Consumer::Messages, _) | (Consumer::Stream, Message::Close(_)) => {
                        Some(Received::Message(message))
                    }
                    (Consumer::Stream, _) => None,
                })
            }
            Event::Data { chunk, utf8 } => (chunk, utf8),
        };
        let end = chunk.end;
        match (&mut self.current, consumer) {
            // A reader dropped it, or vanished without being dropped (leaked).
            (Current::Discarding, _) | (Current::Streaming, Consumer::Messages) => {
                if end {
                    self.current = Current::Idle;
                }
                Ok(None)
            }
            (Current::Idle, Consumer::Messages) if end => {
                whole_message(chunk.kind, chunk.data, utf8).map(Some)
            }
            (Current::Idle, Consumer::Messages) => {
                self.current = Current::Assembling(Assembly {
                    kind: chunk.kind,
                    first: Some(chunk.data),
                    rest: BytesMut::new(),
                });
                Ok(None)
            }
            (Current::Assembling(assembly), Consumer::Messages) => {
                assembly.push(chunk.data);
                if !end {
                    return Ok(None);
                }
                let (kind, payload) = (assembly.kind, assembly.take());
                self.current = Current::Idle;
                match kind {
                    DataKind::Binary => Ok(Some(Received::Message(Message::Binary(payload)))),
                    // Assembled from several frames: checked whole once more, so that no
                    // mix-up of pieces can make invalid text.
                    DataKind::Text => whole_message(kind, payload, None).map(Some),
                }
            }
            (Current::Assembling(assembly), Consumer::Stream) => {
                // Not reached (a stream consumer claims the assembly before it pops), but
                // handled the same way: the assembled bytes lead.
                let kind = assembly.kind;
                let mut data = BytesMut::from(assembly.take());
                data.extend_from_slice(&chunk.data);
                self.current = if end {
                    Current::Idle
                } else {
                    Current::Streaming
                };
                Ok(Some(Received::Chunk(Chunk {
                    kind,
                    data: data.freeze(),
                    start: true,
                    end,
                })))
            }
            (Current::Idle, Consumer::Stream) => {
                if !end {
                    self.current = Current::Streaming;
                }
                Ok(Some(Received::Chunk(chunk)))
            }
            (Current::Streaming, Consumer::Stream) => {
                if end {
                    self.current = Current::Idle;
                }
                Ok(Some(Received::Chunk(chunk)))
            }
        }
    }
}

/// A message that arrived as one piece, for the message API.
pub(crate) fn whole_message(
    kind: DataKind,
    data: Bytes,
    utf8: Option<Utf8Proof>,
) -> Result<Received, FailReason> {
    let text = match (kind, utf8) {
        (DataKind::Text, Some(proof)) => Utf8Bytes::from_proof(data, proof),
        (DataKind::Text, None) => Utf8Bytes::try_from(data),
        (DataKind::Binary, _) => return Ok(Received::Message(Message::Binary(data))),
    };
    match text {
        Ok(text) => Ok(Received::Message(Message::Text(text))),
        Err(_) => Err(ProtocolError::InvalidUtf8.into()),
    }
}

fn event_size(event: &Event) -> usize {
    EVENT_OVERHEAD
        + match event {
            Event::Data { chunk, .. } => chunk.data.len(),
            Event::Control(message) => message.len(),
        }
}
