//! Inbound frames: header checks, limits, in-place unmasking and incremental UTF-8 validation.
//!
//! The decoder works on the connection's read buffer. Bytes of a payload are unmasked and (for
//! text) validated as soon as they arrive, and remembered as processed, so a frame that trickles in
//! over many reads is checked once per byte and a bad byte fails the connection at once. A frame is
//! handed out as `split_to(len).freeze()` of the read buffer (or the buffer itself, when the
//! frame is all of it): no copy.
//!
//! Two ways to take payloads: whole frames (the message API), or chunks of whatever has arrived
//! (the stream API), which never needs more buffer than one read.

use bytes::{Buf, Bytes, BytesMut};

use super::error::{CapacityError, FailReason, ProtocolError};
use super::header::{FrameHeader, OpCode, MAX_HEADER_LEN};
use super::mask::apply_mask;
use super::utf8::{Utf8Proof, Utf8Validator};
use super::Role;

/// Up to this size, a frame that is all of a full read buffer takes the buffer itself.
const TAKE_WHOLE_MAX: usize = 4 * 1024;

/// The first `n` bytes of `buf`, frozen, without a copy. When they are all the buffer holds and
/// fill its allocation (a small read of exactly what arrived), the buffer itself is handed over:
/// `split_to` would allocate a shared header to split one allocation between two owners, and
/// the empty buffer it leaves would hold no room anyway. Not for large buffers: the empty one
/// `split_to` leaves remembers their size, so the next one is made as large at once.
fn take_front(buf: &mut BytesMut, n: usize) -> Bytes {
    if n <= TAKE_WHOLE_MAX && n == buf.len() && n == buf.capacity() {
        std::mem::take(buf).freeze()
    } else {
        buf.split_to(n).freeze()
    }
}

/// The type of a data message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataKind {
    /// UTF-8 text.
    Text,
    /// Binary data.
    Binary,
}

/// What the decoder produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// Payload bytes of a data message.
    Data {
        /// The message's type.
        kind: DataKind,
        /// The bytes, unmasked (and, for text, validated as far as the message has come).
        data: Bytes,
        /// These are the message's first bytes.
        start: bool,
        /// These are the message's last bytes.
        end: bool,
        /// At the end of a text message: the proof that the whole message was valid UTF-8.
        /// Never for a compressed message, whose bytes are checked once inflated.
        utf8: Option<Utf8Proof>,
        /// The message is compressed (RSV1 on its first frame, RFC 7692): `data` is DEFLATE
        /// output, neither UTF-8 checked nor counted against the message limit.
        compressed: bool,
    },
    /// A whole control frame.
    Control {
        /// Close, Ping or Pong.
        opcode: OpCode,
        /// The unmasked payload, at most 125 bytes.
        payload: Bytes,
    },
}

/// What [`FrameDecoder::decode_whole_message`] decoded: a message that was one frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WholeMessage {
    /// The message's type.
    pub kind: DataKind,
    /// The payload, unmasked.
    pub data: Bytes,
    /// For text, the proof that all of it is valid UTF-8.
    pub utf8: Option<Utf8Proof>,
}

/// What [`FrameDecoder::consume_direct`] took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirectChunk {
    /// The message's type.
    pub kind: DataKind,
    /// These were the message's first bytes.
    pub start: bool,
    /// These were the message's last bytes.
    pub end: bool,
}

/// The sizes a data frame and a data message may reach; `None` is unbounded. They are checked
/// as each frame header arrives, before any of the frame is buffered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    /// The largest frame payload.
    pub frame: Option<usize>,
    /// The largest message (all its frames together).
    pub message: Option<usize>,
}

/// How payloads are taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// A data frame is handed out once all of it is in the buffer.
    WholeFrames,
    /// Data is handed out as it arrives.
    Chunks,
}

#[derive(Debug, Clone, Copy)]
struct PayloadState {
    header: FrameHeader,
    /// Payload bytes of this frame not yet handed out.
    remaining: u64,
    /// Payload bytes at the front of the buffer already unmasked and validated.
    processed: usize,
    /// Payload bytes of this frame already handed out: where the mask resumes.
    consumed: u64,
    /// Whether this frame starts its message.
    starts_message: bool,
}

/// RSV1: the message is compressed (permessage-deflate, RFC 7692 §6).
pub const RSV_COMPRESSED: u8 = 0b100;

/// The data message being decoded.
#[derive(Debug, Clone, Copy)]
struct InMessage {
    kind: DataKind,
    /// Payload bytes so far, as they arrive on the wire.
    size: u64,
    compressed: bool,
}

/// Decodes frames from a read buffer.
#[derive(Debug)]
pub struct FrameDecoder {
    role: Role,
    /// RSV bits that negotiated extensions give meaning to.
    allowed_rsv: u8,
    payload: Option<PayloadState>,
    /// The data message in progress.
    message: Option<InMessage>,
    utf8: Utf8Validator,
    frames: u64,
}

impl FrameDecoder {
    /// A decoder for the side of the connection that `role` names.
    pub fn new(role: Role) -> Self {
        FrameDecoder {
            role,
            allowed_rsv: 0,
            payload: None,
            message: None,
            utf8: Utf8Validator::new(),
            frames: 0,
        }
    }

    /// A decoder that also takes compressed messages (RSV1 on a message's first frame), for a
    /// connection that negotiated permessage-deflate.
    pub fn accepting_compressed(mut self) -> Self {
        self.allowed_rsv |= RSV_COMPRESSED;
        self
    }

    /// Whether a fragmented data message is in progress.
    pub fn in_message(&self) -> bool {
        self.message.is_some()
    }

    /// How many payload bytes of the current data frame may be read straight into a caller's
    /// buffer and passed to [`consume_direct`](Self::consume_direct): non-zero only inside a data
    /// frame's payload when nothing of it is buffered (`buffered` is the read buffer's length).
    pub fn direct_len(&self, buffered: usize) -> u64 {
        match &self.payload {
            Some(p)
                if buffered == 0
                    && !p.header.opcode.is_control()
                    && !self.message.is_some_and(|m| m.compressed) =>
            {
                p.remaining
            }
            _ => 0,
        }
    }

    /// Takes payload bytes that were read outside the read buffer: unmasks them in place and
    /// validates text. `data` must not be longer than [`direct_len`](Self::direct_len).
    /// Returns the same description [`decode`](Self::decode) would give, minus the bytes.
    pub fn consume_direct(&mut self, data: &mut [u8]) -> Result<DirectChunk, FailReason> {
        let Some(state) = self.payload.as_mut() else {
            return Err(ProtocolError::UnexpectedContinuation.into());
        };
        debug_assert!(data.len() as u64 <= state.remaining && state.processed == 0);
        if let Some(key) = state.header.mask {
            apply_mask(data, key, state.consumed as usize);
        }
        let kind = self
            .message
            .expect("a data payload belongs to a message")
            .kind;
        if kind == DataKind::Text {
            self.utf8
                .feed(data)
                .map_err(|_| ProtocolError::InvalidUtf8)?;
        }
        let start = state.starts_message;
        state.starts_message = false;
        state.remaining -= data.len() as u64;
        state.consumed += data.len() as u64;
        let end = state.remaining == 0 && state.header.fin;
        if state.remaining == 0 {
            self.payload = None;
        }
        if end {
            self.end_message(kind)?;
        }
        Ok(DirectChunk { kind, start, end })
    }

    /// Whether decoding `buf` cannot yield anything: it is empty and no frame is in progress
    /// (a frame in progress may still have its end to report).
    #[inline]
    pub fn starved(&self, buf: &BytesMut) -> bool {
        buf.is_empty() && self.payload.is_none()
    }

    /// How many frame headers were accepted.
    pub fn frames_decoded(&self) -> u64 {
        self.frames
    }

    /// How many bytes the buffer should be able to hold for the decoder to make progress in
    /// whole-frame delivery: the rest of the frame in hand, or a full header.
    pub fn wanted(&self, buffered: usize) -> usize {
        match &self.payload {
            Some(p) => usize::try_from(p.remaining)
                .unwrap_or(usize::MAX)
                .max(buffered),
            None => MAX_HEADER_LEN.max(buffered),
        }
    }

    /// Ends the data message in progress; for text, the proof that all of it was valid.
    fn end_message(&mut self, kind: DataKind) -> Result<Option<Utf8Proof>, FailReason> {
        self.message = None;
        finish_text(kind, &mut self.utf8)
    }

    /// Whether the next frame header in `buf` (if one is there) is a data frame that `limits`
    /// refuse. Nothing is consumed: a caller can wait for someone whose limits allow it.
    pub fn next_exceeds(&self, buf: &[u8], limits: Limits) -> bool {
        if self.payload.is_some() {
            return false;
        }
        match FrameHeader::parse(buf) {
            Ok(Some((header, _))) => {
                !header.opcode.is_control()
                    && matches!(
                        self.check_limits(&header, limits),
                        Err(FailReason::Capacity(_))
                    )
            }
            _ => false,
        }
    }

    /// Decodes what `buf` holds. `limits` bound data frames and messages (checked as each frame
    /// header arrives).
    pub fn decode(
        &mut self,
        buf: &mut BytesMut,
        delivery: Delivery,
        limits: Limits,
    ) -> Result<Option<Decoded>, FailReason> {
        loop {
            let Some(state) = self.payload.as_mut() else {
                let Some((header, len)) = FrameHeader::parse(buf)? else {
                    return Ok(None);
                };
                let starts_message = self.check_header(&header, limits)?;
                buf.advance(len);
                self.frames += 1;
                self.payload = Some(PayloadState {
                    header,
                    remaining: header.payload_len,
                    processed: 0,
                    consumed: 0,
                    starts_message,
                });
                continue;
            };
            let available = buf
                .len()
                .min(usize::try_from(state.remaining).unwrap_or(usize::MAX));
            if state.processed < available {
                let fresh = &mut buf[state.processed..available];
                if let Some(key) = state.header.mask {
                    apply_mask(
                        fresh,
                        key,
                        (state.consumed as usize).wrapping_add(state.processed),
                    );
                }
                let is_text = !state.header.opcode.is_control()
                    && matches!(
                        self.message,
                        Some(InMessage {
                            kind: DataKind::Text,
                            compressed: false,
                            ..
                        })
                    );
                if is_text {
                    self.utf8
                        .feed(fresh)
                        .map_err(|_| ProtocolError::InvalidUtf8)?;
                }
                state.processed = available;
            }
            let frame_done = available as u64 == state.remaining;
            let opcode = state.header.opcode;
            if opcode.is_control() {
                if !frame_done {
                    return Ok(None);
                }
                let payload = take_front(buf, available);
                self.payload = None;
                return Ok(Some(Decoded::Control { opcode, payload }));
            }
            if !frame_done && (delivery == Delivery::WholeFrames || available == 0) {
                return Ok(None);
            }
            let data = take_front(buf, available);
            let start = state.starts_message;
            state.starts_message = false;
            state.remaining -= available as u64;
            state.consumed += available as u64;
            state.processed = 0;
            let fin = state.header.fin;
            let InMessage {
                kind, compressed, ..
            } = self.message.expect("a data payload belongs to a message");
            let end = frame_done && fin;
            if frame_done {
                self.payload = None;
            }
            let utf8 = match end {
                true if compressed => {
                    self.message = None;
                    None
                }
                true => self.end_message(kind)?,
                false => None,
            };
            return Ok(Some(Decoded::Data {
                kind,
                data,
                start,
                end,
                utf8,
                compressed,
            }));
        }
    }

    /// Decodes a data frame that is a whole message by itself (final, uncompressed, not a
    /// continuation, within `limits`) when all of it is in `buf` and nothing is in progress:
    /// the common case of small messages in one step, without the state that lets a frame
    /// arrive in pieces and a message in frames. `None` for anything else, with nothing consumed
    /// or changed: [`decode`](Self::decode) takes it from there, and fails what is wrong with it.
    #[inline]
    pub fn decode_whole_message(
        &mut self,
        buf: &mut BytesMut,
        limits: Limits,
    ) -> Option<Result<WholeMessage, FailReason>> {
        if self.payload.is_some() || self.message.is_some() {
            return None;
        }
        let (header, header_len) = FrameHeader::parse(buf).ok()??;
        let kind = match header.opcode {
            OpCode::Text => DataKind::Text,
            OpCode::Binary => DataKind::Binary,
            _ => return None,
        };
        let len = usize::try_from(header.payload_len).ok()?;
        let whole = header.fin
            && header.rsv == 0
            && header.mask.is_some() == (self.role == Role::Server)
            && limits.frame.is_none_or(|max| len <= max)
            && limits.message.is_none_or(|max| len <= max)
            && buf.len() - header_len >= len;
        if !whole {
            return None;
        }
        buf.advance(header_len);
        self.frames += 1;
        let payload = &mut buf[..len];
        if let Some(key) = header.mask {
            apply_mask(payload, key, 0);
        }
        let utf8 = match kind {
            DataKind::Text => {
                let mut utf8 = Utf8Validator::new();
                let fed = utf8.feed(payload);
                match fed.and_then(|()| utf8.finish()) {
                    Ok(proof) => Some(proof),
                    Err(_) => return Some(Err(ProtocolError::InvalidUtf8.into())),
                }
            }
            DataKind::Binary => None,
        };
        let data = take_front(buf, len);
        Some(Ok(WholeMessage { kind, data, utf8 }))
    }

    /// Checks a header against the connection's state; returns whether it starts a message.
    /// Changes nothing when it fails.
    fn check_header(&mut self, header: &FrameHeader, limits: Limits) -> Result<bool, FailReason> {
        let reserved = header.rsv & !self.allowed_rsv;
        if reserved != 0 {
            return Err(ProtocolError::ReservedBitsSet(reserved).into());
        }
        match (self.role, header.mask.is_some()) {
            (Role::Server, false) => return Err(ProtocolError::UnmaskedFrameFromClient.into()),
            (Role::Client, true) => return Err(ProtocolError::MaskedFrameFromServer.into()),
            _ => {}
        }
        if header.opcode.is_control() {
            if header.rsv & RSV_COMPRESSED != 0 {
                return Err(ProtocolError::MisplacedCompressionBit.into());
            }
            return Ok(false);
        }
        let message = self.check_limits(header, limits)?;
        let starts = header.opcode != OpCode::Continuation;
        if starts {
            self.utf8 = Utf8Validator::new();
        }
        self.message = Some(message);
        Ok(starts)
    }

    /// Checks a data frame's header against the message in progress and `limits`: the message
    /// with this frame. A compressed message's size is checked once inflated, not here.
    fn check_limits(&self, header: &FrameHeader, limits: Limits) -> Result<InMessage, FailReason> {
        if let Some(max) = limits.frame {
            if header.payload_len > max as u64 {
                return Err(CapacityError::FrameTooLarge {
                    size: header.payload_len,
                    max,
                }
                .into());
            }
        }
        let compressed = header.rsv & RSV_COMPRESSED != 0;
        let (kind, so_far, compressed) = match (header.opcode, self.message) {
            (OpCode::Continuation, _) if compressed => {
                return Err(ProtocolError::MisplacedCompressionBit.into())
            }
            (OpCode::Continuation, Some(m)) => (m.kind, m.size, m.compressed),
            (OpCode::Continuation, None) => {
                return Err(ProtocolError::UnexpectedContinuation.into())
            }
            (_, Some(_)) => return Err(ProtocolError::ExpectedContinuation.into()),
            (OpCode::Text, None) => (DataKind::Text, 0, compressed),
            (_, None) => (DataKind::Binary, 0, compressed),
        };
        let size = so_far.saturating_add(header.payload_len);
        if let Some(max) = limits.message.filter(|_| !compressed) {
            if size > max as u64 {
                return Err(CapacityError::MessageTooLarge { size, max }.into());
            }
        }
        Ok(InMessage {
            kind,
            size,
            compressed,
        })
    }
}

/// The end of a `kind` message whose bytes `utf8` checked: for text, the proof that all of it
/// was valid, or the failure (1007).
pub(crate) fn finish_text(
    kind: DataKind,
    utf8: &mut Utf8Validator,
) -> Result<Option<Utf8Proof>, FailReason> {
    match kind {
        DataKind::Text => match utf8.finish() {
            Ok(proof) => Ok(Some(proof)),
            Err(_) => Err(ProtocolError::InvalidUtf8.into()),
        },
        DataKind::Binary => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::header::MAX_HEADER_LEN;

    const TEST_LIMITS: Limits = Limits {
        frame: Some(1 << 20),
        message: Some(1 << 20),
    };

    fn frame(fin: bool, opcode: OpCode, mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
        let header = FrameHeader {
            fin,
            rsv: 0,
            opcode,
            mask,
            payload_len: payload.len() as u64,
        };
        let mut head = [0u8; MAX_HEADER_LEN];
        let n = header.encode(&mut head);
        let mut out = head[..n].to_vec();
        let mut body = payload.to_vec();
        if let Some(key) = mask {
            apply_mask(&mut body, key, 0);
        }
        out.extend(body);
        out
    }

    fn decode_all(
        dec: &mut FrameDecoder,
        wire: &[u8],
        delivery: Delivery,
    ) -> Result<Vec<Decoded>, FailReason> {
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for &b in wire {
            buf.extend_from_slice(&[b]);
            while let Some(d) = dec.decode(&mut buf, delivery, TEST_LIMITS)? {
                out.push(d);
            }
        }
        Ok(out)
    }

    #[test]
    fn a_frame_filling_an_exact_buffer_takes_it_whole() {
        // Two frames in a buffer of exactly their size (a stack read copied out): the first is
        // split off, the last takes what is left of the buffer; payloads and unmasking are
        // the same either way, and the buffer ends empty with no room held.
        let key = Some([1, 2, 3, 4]);
        let mut wire = frame(true, OpCode::Binary, key, b"first");
        wire.extend(frame(true, OpCode::Binary, key, b"second one"));
        let mut buf = BytesMut::from(&wire[..]);
        assert_eq!(buf.len(), buf.capacity());
        let mut dec = FrameDecoder::new(Role::Server);
        let mut payloads = Vec::new();
        while let Some(d) = dec
            .decode(&mut buf, Delivery::WholeFrames, TEST_LIMITS)
            .unwrap()
        {
            let Decoded::Data { data, .. } = d else {
                panic!("data frames only")
            };
            payloads.push(data);
        }
        assert_eq!(payloads, [&b"first"[..], &b"second one"[..]]);
        assert_eq!((buf.len(), buf.capacity()), (0, 0));
        // A frame in a buffer with room to spare leaves the room behind.
        let mut buf = BytesMut::with_capacity(64);
        buf.extend_from_slice(&frame(true, OpCode::Binary, key, b"x"));
        let mut dec = FrameDecoder::new(Role::Server);
        let got = dec.decode(&mut buf, Delivery::WholeFrames, TEST_LIMITS);
        assert!(matches!(got, Ok(Some(Decoded::Data { data, .. })) if data == b"x"[..]));
        assert!(buf.is_empty() && buf.capacity() > 0);
    }

    #[test]
    fn byte_by_byte_whole_frames() {
        let key = Some([9, 8, 7, 6]);
        let mut wire = frame(false, OpCode::Text, key, "héllo ".as_bytes());
        wire.extend(frame(true, OpCode::Ping, key, b"p"));
        wire.extend(frame(true, OpCode::Continuation, key, "wörld".as_bytes()));
        let mut dec = FrameDecoder::new(Role::Server);
        let mut got = decode_all(&mut dec, &wire, Delivery::WholeFrames).unwrap();
        let Some(Decoded::Data { utf8, .. }) = got.last_mut() else {
            panic!("the message's last frame")
        };
        assert_eq!(utf8.take().map(|proof| proof.len()), Some(13));
        assert_eq!(
            got,
            vec![
                Decoded::Data {
                    kind: DataKind::Text,
                    data: Bytes::from("héllo "),
                    start: true,
                    end: false,
                    utf8: None,
                    compressed: false,
                },
                Decoded::Control {
                    opcode: OpCode::Ping,
                    payload: Bytes::from_static(b"p")
                },
                Decoded::Data {
                    kind: DataKind::Text,
                    data: Bytes::from("wörld"),
                    start: false,
                    end: true,
                    utf8: None,
                    compressed: false,
                },
            ]
        );
    }

    #[test]
    fn chunks_concatenate_to_the_payload() {
        let payload: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        let wire = frame(true, OpCode::Binary, Some([1, 2, 3, 4]), &payload);
        let mut dec = FrameDecoder::new(Role::Server);
        let got = decode_all(&mut dec, &wire, Delivery::Chunks).unwrap();
        let mut joined = Vec::new();
        for d in &got {
            match d {
                Decoded::Data { data, .. } => joined.extend_from_slice(data),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(joined, payload);
        assert!(matches!(got.last(), Some(Decoded::Data { end: true, .. })));
    }

    #[test]
    fn invalid_utf8_fails_inside_the_frame() {
        let mut wire = frame(
            true,
            OpCode::Text,
            None,
            b"abc\xf4\x90\x80\x80rest of a long frame",
        );
        wire.truncate(2 + 5); // only the first five payload bytes have arrived
        let mut dec = FrameDecoder::new(Role::Client);
        let err = decode_all(&mut dec, &wire, Delivery::WholeFrames).unwrap_err();
        assert_eq!(err, FailReason::Protocol(ProtocolError::InvalidUtf8));
    }

    #[test]
    fn rejects_by_role_rsv_sequence_and_limits() {
        let cases: Vec<(Role, Vec<u8>, FailReason)> = vec![
            (
                Role::Server,
                frame(true, OpCode::Text, None, b"x"),
                ProtocolError::UnmaskedFrameFromClient.into(),
            ),
            (
                Role::Client,
                frame(true, OpCode::Text, Some([1; 4]), b"x"),
                ProtocolError::MaskedFrameFromServer.into(),
            ),
            (
                Role::Client,
                vec![0xC1, 0x00],
                ProtocolError::ReservedBitsSet(0b100).into(),
            ),
            (
                Role::Client,
                frame(true, OpCode::Continuation, None, b"x"),
                ProtocolError::UnexpectedContinuation.into(),
            ),
            (
                Role::Client,
                [
                    frame(false, OpCode::Text, None, b"x"),
                    frame(true, OpCode::Binary, None, b"y"),
                ]
                .concat(),
                ProtocolError::ExpectedContinuation.into(),
            ),
            (
                Role::Client,
                vec![0x82, 0x7F, 0, 0, 0, 0, 0, 0x20, 0, 0],
                CapacityError::FrameTooLarge {
                    size: 0x20_0000,
                    max: 1 << 20,
                }
                .into(),
            ),
        ];
        for (role, wire, want) in cases {
            let mut dec = FrameDecoder::new(role);
            assert_eq!(
                decode_all(&mut dec, &wire, Delivery::WholeFrames).unwrap_err(),
                want
            );
        }
        let mut dec = FrameDecoder::new(Role::Client);
        let wire = [
            frame(false, OpCode::Binary, None, &[0; 600_000]),
            frame(true, OpCode::Continuation, None, &[0; 600_000]),
        ]
        .concat();
        assert_eq!(
            decode_all(&mut dec, &wire, Delivery::WholeFrames).unwrap_err(),
            CapacityError::MessageTooLarge {
                size: 1_200_000,
                max: 1 << 20
            }
            .into()
        );
    }

    /// What a decoder hands out, the one-step path's results written as `decode`'s.
    fn decode_both_ways(
        role: Role,
        wire: &[u8],
        piece: usize,
        limits: Limits,
        whole_first: bool,
    ) -> (Vec<Decoded>, Option<FailReason>) {
        let mut dec = FrameDecoder::new(role);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for part in wire.chunks(piece) {
            buf.extend_from_slice(part);
            loop {
                if whole_first {
                    match dec.decode_whole_message(&mut buf, limits) {
                        Some(Ok(WholeMessage { kind, data, utf8 })) => {
                            out.push(Decoded::Data {
                                kind,
                                data,
                                start: true,
                                end: true,
                                utf8,
                                compressed: false,
                            });
                            continue;
                        }
                        Some(Err(reason)) => return (out, Some(reason)),
                        None => {}
                    }
                }
                match dec.decode(&mut buf, Delivery::WholeFrames, limits) {
                    Ok(Some(decoded)) => out.push(decoded),
                    Ok(None) => break,
                    Err(reason) => return (out, Some(reason)),
                }
            }
        }
        (out, None)
    }

    #[test]
    fn whole_messages_in_one_step_decode_as_the_general_path_does() {
        // Streams of every kind of frame, right and wrong (fragments, controls, compressed,
        // wrongly masked, too large, bad UTF-8, lengths in 7, 16 and 64 bits), fed in pieces
        // of every size: the one-step path must hand out what `decode` alone does, fail the
        // same way at the same frame, and take nothing it does not decode.
        let mut seed = 0x9E37_79B9_7F4A_7C15_u64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let sizes = [0, 1, 3, 125, 126, 300, 65_535, 65_536];
        for round in 0..400 {
            let role = if round % 2 == 0 {
                Role::Server
            } else {
                Role::Client
            };
            let mut wire = Vec::new();
            for _ in 0..1 + next(6) {
                let opcode = [
                    OpCode::Text,
                    OpCode::Binary,
                    OpCode::Continuation,
                    OpCode::Ping,
                    OpCode::Pong,
                ][next(5) as usize];
                let fin = next(4) != 0;
                let len = match opcode {
                    OpCode::Ping | OpCode::Pong => next(20) as usize,
                    _ => sizes[next(sizes.len() as u64) as usize],
                };
                let mut payload: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
                if len > 0 && next(8) == 0 {
                    payload[next(len as u64) as usize] = 0xFF;
                }
                let masked = (role == Role::Server) != (next(16) == 0);
                let key = masked.then(|| (next(u64::MAX) as u32).to_be_bytes());
                let mut framed = frame(fin, opcode, key, &payload);
                if next(16) == 0 {
                    framed[0] |= 0x40; // RSV1, not negotiated here
                }
                wire.extend(framed);
            }
            // Limits at the sizes sent, so that one byte more or less shows.
            let limits = match next(4) {
                0 => TEST_LIMITS,
                1 => Limits {
                    frame: Some(300),
                    message: Some(125),
                },
                2 => Limits {
                    frame: Some(125),
                    message: Some(300),
                },
                _ => Limits::default(),
            };
            for piece in [1, 7, 130, wire.len().max(1)] {
                let general = decode_both_ways(role, &wire, piece, limits, false);
                let one_step = decode_both_ways(role, &wire, piece, limits, true);
                assert_eq!(one_step, general, "round {round}, pieces of {piece}");
            }
        }
    }

    #[test]
    fn one_step_decoding_leaves_what_it_does_not_take() {
        let key = Some([9, 8, 7, 6]);
        let cases = [
            frame(false, OpCode::Text, key, b"first of two"),
            frame(true, OpCode::Ping, key, b"ping"),
            frame(true, OpCode::Binary, key, b"whole but cut short")[..10].to_vec(),
            frame(true, OpCode::Binary, None, b"unmasked from a client"),
            [
                frame(true, OpCode::Binary, key, b"x")[..1].to_vec(),
                vec![0x81],
            ]
            .concat(),
        ];
        for wire in cases {
            let mut dec = FrameDecoder::new(Role::Server);
            let mut buf = BytesMut::from(&wire[..]);
            assert_eq!(dec.decode_whole_message(&mut buf, TEST_LIMITS), None);
            assert_eq!(&buf[..], &wire[..]);
            assert_eq!(dec.frames_decoded(), 0);
        }
    }
}
