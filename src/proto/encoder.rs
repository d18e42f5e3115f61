//! Outbound frames: the transmit queue the runtime drains with vectored writes.
//!
//! Small frames are written header-and-payload into one staging buffer, so a burst of small
//! messages leaves in one write. A large payload is queued as its own `Bytes` beside its header
//! (no copy; the runtime sends both with one vectored write). A client must mask what it sends:
//! a large payload is masked lazily, a bounded piece at a time, while it is copied into a reused
//! buffer, so sending a huge message never holds a second masked copy of it.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::header::{FrameHeader, OpCode, MAX_HEADER_LEN};
use super::mask::{apply_mask, extend_masked};

/// Payloads up to this size are copied next to their header instead of queued on their own:
/// copying a few KiB costs less than an extra I/O slice and keeps small messages contiguous.
const INLINE_PAYLOAD: usize = 4 * 1024;

/// How many bytes a client masks ahead of the socket: enough for one large vectored write,
/// bounded so that sending a huge message never holds a second masked copy of it.
const MASK_AHEAD: usize = 1024 * 1024;

/// The most I/O slices handed to one vectored write.
pub const MAX_IO_SLICES: usize = 64;

#[derive(Debug)]
enum Segment {
    /// Bytes ready to go out as they are.
    Ready(Bytes),
    /// Payload still to be masked with `key`; `offset` bytes of the payload were already masked.
    Unmasked {
        payload: Bytes,
        key: [u8; 4],
        offset: usize,
    },
}

impl Segment {
    fn len(&self) -> usize {
        match self {
            Segment::Ready(b) => b.len(),
            Segment::Unmasked { payload, .. } => payload.len(),
        }
    }
}

/// A queue of encoded frames waiting for the socket.
#[derive(Debug, Default)]
pub struct Transmit {
    segments: VecDeque<Segment>,
    /// Bytes not yet sealed into a segment; logically after every segment.
    staging: BytesMut,
    /// Reused buffer that lazily masked pieces are copied into.
    mask_buf: BytesMut,
    buffered: usize,
    /// Bytes written (or dropped by `clear`) since the queue was made: with `buffered`, where
    /// each queued byte stands in the outgoing stream.
    written: u64,
}

impl Transmit {
    /// Bytes accepted but not yet written to the socket.
    pub fn buffered(&self) -> usize {
        self.buffered
    }

    /// Whether nothing is waiting to be written.
    pub fn is_empty(&self) -> bool {
        self.buffered == 0
    }

    /// Position in the outgoing stream of the next byte written (bytes written so far).
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Position in the outgoing stream just past the last byte queued.
    pub fn end_position(&self) -> u64 {
        self.written + self.buffered as u64
    }

    /// Queues one frame. `mask` is the masking key for client frames.
    pub fn push_frame(
        &mut self,
        fin: bool,
        rsv: u8,
        opcode: OpCode,
        mask: Option<[u8; 4]>,
        payload: Bytes,
    ) {
        let header = FrameHeader {
            fin,
            rsv,
            opcode,
            mask,
            payload_len: payload.len() as u64,
        };
        let mut head = [0u8; MAX_HEADER_LEN];
        let head_len = header.encode(&mut head);
        self.buffered += head_len + payload.len();
        if payload.len() <= INLINE_PAYLOAD {
            self.staging.reserve(head_len + payload.len());
            self.staging.put_slice(&head[..head_len]);
            self.stage_payload(&payload, mask, 0);
            return;
        }
        self.staging.put_slice(&head[..head_len]);
        self.seal_staging();
        self.segments.push_back(match mask {
            None => Segment::Ready(payload),
            // A payload nobody else holds is masked where it lies: no copy at all.
            Some(key) => match payload.try_into_mut() {
                Ok(mut owned) => {
                    apply_mask(&mut owned, key, 0);
                    Segment::Ready(owned.freeze())
                }
                Err(payload) => Segment::Unmasked {
                    payload,
                    key,
                    offset: 0,
                },
            },
        });
    }

    /// Queues bytes that are already encoded (frames built elsewhere, or the unwritten rest of
    /// a frame the runtime started writing itself).
    pub fn push_encoded(&mut self, bytes: Bytes) {
        if bytes.is_empty() {
            return;
        }
        self.buffered += bytes.len();
        self.seal_staging();
        self.segments.push_back(Segment::Ready(bytes));
    }

    /// Appends `payload` (masked with `key` from payload offset `offset`) to the staging buffer.
    fn stage_payload(&mut self, payload: &[u8], mask: Option<[u8; 4]>, offset: usize) {
        match mask {
            None => self.staging.put_slice(payload),
            Some(key) => extend_masked(&mut self.staging, payload, key, offset),
        }
    }

    fn seal_staging(&mut self) {
        if !self.staging.is_empty() {
            self.segments
                .push_back(Segment::Ready(self.staging.split().freeze()));
        }
    }

    /// Readies the front of the queue for [`io_slices`](Self::io_slices): masks lazily masked
    /// payloads until `MASK_AHEAD` bytes are ready, so a header and its payload (and several
    /// pieces of a large payload) leave in one vectored write.
    pub fn prepare(&mut self) {
        let mut ready = 0;
        let mut at = 0;
        while ready < MASK_AHEAD && at < self.segments.len() {
            match &mut self.segments[at] {
                Segment::Ready(b) => ready += b.len(),
                Segment::Unmasked {
                    payload,
                    key,
                    offset,
                } => {
                    let n = payload.len().min(MASK_AHEAD - ready);
                    let piece = payload.split_to(n);
                    let (key, from) = (*key, *offset);
                    *offset += n;
                    let emptied = payload.is_empty();
                    extend_masked(&mut self.mask_buf, &piece, key, from);
                    let masked = Segment::Ready(self.mask_buf.split().freeze());
                    if emptied {
                        self.segments[at] = masked;
                    } else {
                        self.segments.insert(at, masked);
                    }
                    ready += n;
                }
            }
            at += 1;
        }
    }

    /// Fills `dst` with the bytes ready to be written, in order; returns how many slices it used.
    /// Call [`prepare`](Self::prepare) first.
    pub fn io_slices<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        for segment in &self.segments {
            if n == dst.len() {
                return n;
            }
            match segment {
                Segment::Ready(b) if !b.is_empty() => {
                    dst[n] = IoSlice::new(b);
                    n += 1;
                }
                Segment::Ready(_) => {}
                // A payload still to be masked: nothing after it can go before it.
                Segment::Unmasked { .. } => return n,
            }
        }
        if n < dst.len() && !self.staging.is_empty() {
            dst[n] = IoSlice::new(&self.staging);
            n += 1;
        }
        n
    }

    /// Everything queued, when it is one run of staged bytes (the common case of small frames):
    /// then a plain write of it needs neither [`prepare`](Self::prepare) nor an array of slices.
    pub fn staged_only(&self) -> Option<&[u8]> {
        self.segments.is_empty().then_some(&self.staging[..])
    }

    /// The first contiguous run of ready bytes (for writers without vectored I/O).
    pub fn first_chunk(&self) -> &[u8] {
        match self.segments.front() {
            Some(Segment::Ready(b)) => b,
            Some(Segment::Unmasked { .. }) => &[],
            None => &self.staging,
        }
    }

    /// Drops everything queued (the transport is gone).
    pub fn clear(&mut self) {
        self.written += self.buffered as u64;
        self.segments.clear();
        self.staging.clear();
        self.buffered = 0;
    }

    /// Marks `n` bytes from the front as written.
    pub fn advance(&mut self, mut n: usize) {
        self.buffered -= n;
        self.written += n as u64;
        while n > 0 {
            match self.segments.front_mut() {
                Some(Segment::Ready(b)) => {
                    if n < b.len() {
                        b.advance(n);
                        return;
                    }
                    n -= b.len();
                    self.segments.pop_front();
                }
                Some(Segment::Unmasked { .. }) => {
                    unreachable!("io_slices never offers unmasked bytes")
                }
                None => {
                    self.staging.advance(n);
                    return;
                }
            }
        }
        while matches!(self.segments.front(), Some(s) if s.len() == 0) {
            self.segments.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::decoder::{Decoded, Delivery, FrameDecoder, Limits};
    use crate::proto::Role;

    fn drain(tx: &mut Transmit, max_write: usize) -> Vec<u8> {
        let mut out = Vec::new();
        while !tx.is_empty() {
            tx.prepare();
            let mut slices = [IoSlice::new(&[]); MAX_IO_SLICES];
            let n = tx.io_slices(&mut slices);
            let mut budget = max_write;
            let mut wrote = 0;
            for s in &slices[..n] {
                let take = s.len().min(budget);
                out.extend_from_slice(&s[..take]);
                budget -= take;
                wrote += take;
            }
            assert!(wrote > 0);
            tx.advance(wrote);
        }
        out
    }

    #[test]
    fn frames_roundtrip_through_decoder_for_both_roles() {
        let big: Bytes = (0..200_000u32)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<_>>()
            .into();
        for (sender_mask, receiver) in [(None, Role::Client), (Some([7, 1, 9, 3]), Role::Server)] {
            for max_write in [1, 7, 4096, usize::MAX] {
                if max_write == 1 && sender_mask.is_none() {
                    continue; // byte-by-byte over 400 KB once is enough
                }
                let mut tx = Transmit::default();
                tx.push_frame(
                    true,
                    0,
                    OpCode::Text,
                    sender_mask,
                    Bytes::from_static(b"hi"),
                );
                tx.push_frame(true, 0, OpCode::Binary, sender_mask, big.clone());
                tx.push_frame(true, 0, OpCode::Ping, sender_mask, Bytes::from_static(b"p"));
                tx.push_frame(false, 0, OpCode::Binary, sender_mask, big.slice(..70_000));
                tx.push_frame(
                    true,
                    0,
                    OpCode::Continuation,
                    sender_mask,
                    big.slice(70_000..),
                );
                let total = tx.buffered();
                let wire = drain(&mut tx, max_write);
                assert_eq!(wire.len(), total);
                let mut buf = BytesMut::from(&wire[..]);
                let mut dec = FrameDecoder::new(receiver);
                let mut got = Vec::new();
                while let Some(d) = dec
                    .decode(&mut buf, Delivery::WholeFrames, Limits::default())
                    .unwrap()
                {
                    got.push(d);
                }
                assert_eq!(got.len(), 5);
                assert!(matches!(&got[1], Decoded::Data { data, .. } if *data == big));
                assert!(
                    matches!(&got[4], Decoded::Data { data, end: true, .. } if *data == big.slice(70_000..))
                );
            }
        }
    }
}
