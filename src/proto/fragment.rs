//! Builds outgoing frames of a streamed message in one reusable buffer.
//!
//! Streamed bytes are copied once, into a buffer that keeps room for the largest header in
//! front; a client masks them during that copy. When the frame is cut (buffer full, flush, end of
//! message) the header is written just before the payload, so the frame leaves as one contiguous
//! slice with no further copy.

use bytes::{Bytes, BytesMut};

use super::header::{FrameHeader, OpCode, MAX_HEADER_LEN};
use super::keys::MaskKeys;
use super::mask::extend_masked;

/// A frame under construction.
#[derive(Debug)]
pub struct FragmentBuilder {
    capacity: usize,
    buf: BytesMut,
    /// The key masking the current frame (clients), chosen when its first byte arrives.
    key: Option<[u8; 4]>,
    payload: usize,
    /// Room reserved when a frame starts: grows towards `capacity` while frames fill up, and
    /// shrinks back when they are cut small (flushes), so interactive use holds little memory
    /// and bulk transfers are not slowed by reallocation.
    reserve: usize,
}

/// The smallest room a frame starts with.
const MIN_RESERVE: usize = 16 * 1024;

impl FragmentBuilder {
    /// A builder cutting frames of at most `capacity` payload bytes.
    pub fn new(capacity: usize) -> Self {
        FragmentBuilder {
            capacity: capacity.max(1),
            buf: BytesMut::new(),
            key: None,
            payload: 0,
            reserve: MIN_RESERVE.min(capacity.max(1)),
        }
    }

    /// Payload bytes in the current frame.
    pub fn len(&self) -> usize {
        self.payload
    }

    /// Whether the current frame has no payload yet.
    pub fn is_empty(&self) -> bool {
        self.payload == 0
    }

    /// The most payload bytes one frame carries.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Whether the current frame is full.
    pub fn is_full(&self) -> bool {
        self.payload >= self.capacity
    }

    /// Copies as much of `data` as fits into the current frame (masking it for a client);
    /// returns how many bytes were taken. A frame's key is drawn from `keys` when its first
    /// byte arrives.
    pub fn append(&mut self, data: &[u8], keys: &mut MaskKeys) -> usize {
        let take = data.len().min(self.room());
        self.extend(&data[..take], keys);
        take
    }

    /// Payload bytes the current frame can still take.
    pub fn room(&self) -> usize {
        self.capacity.saturating_sub(self.payload)
    }

    /// Copies all of `data` into the current frame (masking it for a client), even past the
    /// capacity: compressed output, which may come out a little larger than the bytes taken
    /// for it, is never split off and lost.
    pub fn extend(&mut self, data: &[u8], keys: &mut MaskKeys) {
        let take = data.len();
        if take == 0 {
            return;
        }
        if self.payload == 0 {
            self.buf.clear();
            self.buf.reserve(MAX_HEADER_LEN + self.reserve);
            self.buf.resize(MAX_HEADER_LEN, 0);
            self.key = keys.next_key();
        }
        match self.key {
            None => self.buf.extend_from_slice(&data[..take]),
            Some(key) => extend_masked(&mut self.buf, &data[..take], key, self.payload),
        }
        self.payload += take;
    }

    /// Cuts the current frame (possibly empty) with the given header bits; returns the encoded
    /// frame and its payload length, and starts a new frame.
    pub fn take_frame(
        &mut self,
        fin: bool,
        rsv: u8,
        opcode: OpCode,
        keys: &mut MaskKeys,
    ) -> (Bytes, usize) {
        if self.payload == 0 {
            self.buf.clear();
            self.buf.resize(MAX_HEADER_LEN, 0);
            self.key = keys.next_key();
        }
        let header = FrameHeader {
            fin,
            rsv,
            opcode,
            mask: self.key,
            payload_len: self.payload as u64,
        };
        let mut head = [0u8; MAX_HEADER_LEN];
        let head_len = header.encode(&mut head);
        let at = MAX_HEADER_LEN - head_len;
        self.buf[at..MAX_HEADER_LEN].copy_from_slice(&head[..head_len]);
        let _ = self.buf.split_to(at);
        let payload = self.payload;
        self.reserve = payload
            .next_power_of_two()
            .clamp(MIN_RESERVE.min(self.capacity), self.capacity);
        self.payload = 0;
        self.key = None;
        (self.buf.split().freeze(), payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::decoder::{Decoded, Delivery, FrameDecoder, Limits};
    use crate::proto::Role;

    #[test]
    fn built_frames_decode_for_both_roles() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
        for (role, peer) in [(Role::Client, Role::Server), (Role::Server, Role::Client)] {
            let mut builder = FragmentBuilder::new(70_000);
            let mut keys = MaskKeys::seeded(role, [7; 32]);
            let mut wire = BytesMut::new();
            let mut rest = &data[..];
            let mut first = true;
            while !rest.is_empty() {
                // Odd-sized appends exercise mask offsets inside a frame.
                let n = builder.append(&rest[..rest.len().min(9_999)], &mut keys);
                rest = &rest[n..];
                if builder.is_full() || rest.is_empty() {
                    let op = if first {
                        OpCode::Binary
                    } else {
                        OpCode::Continuation
                    };
                    first = false;
                    let (frame, _) = builder.take_frame(rest.is_empty(), 0, op, &mut keys);
                    wire.extend_from_slice(&frame);
                }
            }
            let mut dec = FrameDecoder::new(peer);
            let mut got = Vec::new();
            let mut ended = false;
            while let Some(Decoded::Data { data, end, .. }) = dec
                .decode(&mut wire, Delivery::WholeFrames, Limits::default())
                .unwrap()
            {
                got.extend_from_slice(&data);
                ended = end;
            }
            assert!(ended);
            assert_eq!(got, data);
        }
    }

    #[test]
    fn empty_final_frame() {
        let mut builder = FragmentBuilder::new(16);
        let mut keys = MaskKeys::new(Role::Client);
        let (frame, len) = builder.take_frame(true, 0, OpCode::Binary, &mut keys);
        assert_eq!(len, 0);
        assert_eq!(frame.len(), 6);
        assert_eq!(&frame[..2], &[0x82, 0x80]);
    }
}
