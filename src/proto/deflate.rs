//! permessage-deflate (RFC 7692) as a per-message transform: a compressor between the senders
//! and the encoder, an inflater between the decoder and the inbound state.
//!
//! Both keep the raw DEFLATE stream of one direction. A message's payload is the stream's
//! output for that message, ended with a sync flush whose final `00 00 ff ff` is left off
//! (§7.2.1); the receiver puts those four bytes back before inflating the end (§7.2.2).
//! Streamed messages are compressed as they are written and inflated as they arrive, in pieces
//! of bounded size, so neither direction ever holds a whole message.
//!
//! The zlib state is made when the first compressed message needs it, and let go of after each
//! message when the agreement says the next message starts afresh (no context takeover): a
//! connection that never compresses holds no compressor, and one without context takeover
//! holds none between messages (its thread keeps a few for reuse, see `zlib_spares`).
//!
//! The backend is zlib-rs through its safe API: pure Rust, window bits 9 to 15 and the memory
//! level can be set, and at level 1 (the default) it compresses 3 to 4 times faster than C
//! zlib (`scripts/deflate_backends/RESULTS.md`). C zlib would hold less memory per active
//! compressor (39 KB against 165 KB at 12 bits and memory level 5: zlib-rs keeps a fixed
//! 128 KiB hash table), but only through `unsafe` FFI.

use std::fmt;

use bytes::{Bytes, BytesMut};
use zlib_rs::{DeflateFlush, InflateFlush, Status, Strategy};

use super::decoder::{finish_text, DataKind};
use super::error::{CapacityError, FailReason, ProtocolError};
use super::utf8::{Utf8Proof, Utf8Validator};
use super::zlib_spares::{self, DeflateKind};

/// What a sync flush ends with; a message's payload is sent without it.
const TRAILER: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// The most bytes one inflated piece holds: what a reader receives at once, and what the
/// inflater produces past a limit before it notices.
pub const INFLATE_PIECE: usize = 64 * 1024;

/// How the protocol core compresses and inflates, from this end's point of view: what the
/// handshake agreed (window sizes, context takeover) and the local compressor settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeflateSettings {
    /// Compression level, 0 (stored) to 9 (best).
    pub level: u8,
    /// zlib's memory level for the compressor, 1 to 9: the size of its match buffers.
    pub mem_level: u8,
    /// The largest window our compressor may use, 8 to 15 bits. zlib cannot compress with a
    /// 256-byte window, so at 8 the compressor codes literals only (Huffman only): output any
    /// window inflates.
    pub send_window_bits: u8,
    /// The window the peer compresses with, 8 to 15 bits: our inflater's window.
    pub receive_window_bits: u8,
    /// Our compressor starts afresh with every message (and holds nothing between messages).
    pub send_no_context_takeover: bool,
    /// The peer's compressor starts afresh with every message, so our inflater may be dropped
    /// after each one.
    pub receive_no_context_takeover: bool,
    /// Whole messages shorter than this are sent uncompressed.
    pub threshold: usize,
}

impl Default for DeflateSettings {
    fn default() -> Self {
        DeflateSettings {
            level: 6,
            mem_level: 8,
            send_window_bits: 15,
            receive_window_bits: 15,
            send_no_context_takeover: false,
            receive_no_context_takeover: false,
            threshold: 0,
        }
    }
}

/// Whether to compress one outgoing message, when compression was negotiated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compress {
    /// Compress whole messages from the configured threshold up (sent as they are when
    /// deflate does not shorten them), and streamed messages always.
    #[default]
    Auto,
    /// Compress it whatever its size, and send it compressed even if that is longer.
    Always,
    /// Send it uncompressed (already-compressed data: video, archives, images).
    Never,
}

/// The compressor failed: a bug in the backend or its use, never the data's fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompressError(&'static str);

impl fmt::Display for CompressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "compression failed: {}", self.0)
    }
}

impl std::error::Error for CompressError {}

/// The sending direction's DEFLATE stream.
pub(crate) struct Compressor {
    settings: DeflateSettings,
    stream: Option<Box<zlib_rs::Deflate>>,
    /// Output of a streamed message not yet handed out: the last four bytes of the stream are
    /// always held back, since they may be the trailer that the message's end leaves off.
    out: Vec<u8>,
    /// How many bytes at the front of `out` the previous call handed out.
    shown: usize,
    /// A message is in progress in the stream.
    open: bool,
    /// The message in progress produced output.
    produced: bool,
}

impl fmt::Debug for Compressor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Compressor")
            .field("settings", &self.settings)
            .field("allocated", &self.stream.is_some())
            .field("open", &self.open)
            .finish_non_exhaustive()
    }
}

impl Compressor {
    pub(crate) fn new(settings: DeflateSettings) -> Self {
        Compressor {
            settings,
            stream: None,
            out: Vec::new(),
            shown: 0,
            open: false,
            produced: false,
        }
    }

    /// Whether a whole message of `len` bytes should be compressed under `choice`.
    pub(crate) fn wants(&self, len: usize, choice: Compress) -> bool {
        match choice {
            Compress::Auto => len >= self.settings.threshold,
            Compress::Always => true,
            Compress::Never => false,
        }
    }

    /// Whether a streamed message is half-way through the stream.
    pub(crate) fn is_open(&self) -> bool {
        self.open
    }

    /// Whether the zlib state is allocated.
    pub(crate) fn is_allocated(&self) -> bool {
        self.stream.is_some()
    }

    /// Forgets a streamed message that will never end (its writer vanished): the stream starts
    /// afresh. Always safe for the receiver: a new stream only refers to what it sent itself.
    ///
    /// The zlib state is freed, not kept as a spare: zlib-rs 0.6's reset leaves level 1's
    /// "block open" flag set when a block was open, so a reset state would go on with the old
    /// block and emit data the peer cannot inflate. Streams that ended (sync flush, block
    /// closed) reset cleanly and are kept.
    pub(crate) fn abandon(&mut self) {
        self.stream = None;
        self.out = Vec::new();
        self.shown = 0;
        self.open = false;
        self.produced = false;
    }

    /// Forgets the window (keeping the allocation): the next message refers to nothing sent
    /// before it. For a message compressed and then sent as it is, which the peer's window
    /// never saw.
    pub(crate) fn forget_window(&mut self) {
        if let Some(stream) = &mut self.stream {
            stream.reset();
        }
    }

    /// How this compressor's zlib state is made.
    fn kind(&self) -> DeflateKind {
        let settings = &self.settings;
        DeflateKind {
            level: i32::from(settings.level.min(9)),
            window_bits: -i32::from(settings.send_window_bits.clamp(9, 15)),
            mem_level: i32::from(settings.mem_level.clamp(1, 9)),
            // At 8 bits zlib widens the window to 9 (a 256-byte window it cannot do), which the
            // peer might not inflate; literals alone need no window at all.
            huffman_only: settings.send_window_bits <= 8,
        }
    }

    fn stream(&mut self) -> &mut zlib_rs::Deflate {
        let kind = self.kind();
        self.stream.get_or_insert_with(|| {
            zlib_spares::take_deflate(kind).unwrap_or_else(|| {
                Box::new(zlib_rs::Deflate::new_with_config(zlib_rs::DeflateConfig {
                    level: kind.level,
                    method: zlib_rs::Method::Deflated,
                    window_bits: kind.window_bits,
                    mem_level: kind.mem_level,
                    strategy: match kind.huffman_only {
                        true => Strategy::HuffmanOnly,
                        false => Strategy::Default,
                    },
                }))
            })
        })
    }

    /// Lets go of the zlib state (to this thread's spares, see `zlib_spares`).
    fn release(&mut self) {
        if let Some(stream) = self.stream.take() {
            zlib_spares::give_deflate(self.kind(), stream);
        }
    }

    /// Compresses a whole message: its payload, trailer left off.
    pub(crate) fn compress_message(&mut self, payload: &[u8]) -> Result<Bytes, CompressError> {
        debug_assert!(!self.open, "a streamed message is in progress");
        let mut out = Vec::with_capacity(payload.len() / 2 + 64);
        let result = run(self.stream(), payload, DeflateFlush::SyncFlush, &mut out);
        self.produced = !out.is_empty();
        let result = result.and_then(|()| end_payload(&mut out, self.produced));
        self.end_message();
        result.map(|()| Bytes::from(out))
    }

    /// Takes the next bytes of a streamed message; returns the output ready to be framed.
    pub(crate) fn write(&mut self, input: &[u8]) -> Result<&[u8], CompressError> {
        self.step(input, DeflateFlush::NoFlush)
    }

    /// Flushes what the streamed message took so far, so the peer can inflate all of it.
    pub(crate) fn flush(&mut self) -> Result<&[u8], CompressError> {
        self.step(&[], DeflateFlush::SyncFlush)
    }

    /// Ends the streamed message: the rest of its payload, trailer left off.
    pub(crate) fn finish(&mut self) -> Result<&[u8], CompressError> {
        self.reclaim_shown();
        let mut out = std::mem::take(&mut self.out);
        let result = run(self.stream(), &[], DeflateFlush::SyncFlush, &mut out);
        self.produced |= !out.is_empty();
        let result = result.and_then(|()| end_payload(&mut out, self.produced));
        self.end_message();
        self.out = out;
        // Handed out now; dropped by the next call or released below.
        self.shown = self.out.len();
        result?;
        Ok(&self.out)
    }

    /// Drops what the previous call handed out, keeping the held-back tail.
    fn reclaim_shown(&mut self) {
        self.out.drain(..self.shown);
        self.shown = 0;
        if self.out.is_empty() && self.out.capacity() > INFLATE_PIECE {
            self.out = Vec::new();
        }
    }

    fn step(&mut self, input: &[u8], flush: DeflateFlush) -> Result<&[u8], CompressError> {
        self.reclaim_shown();
        self.open = true;
        let mut out = std::mem::take(&mut self.out);
        let before = out.len();
        let result = run(self.stream(), input, flush, &mut out);
        self.produced |= out.len() > before;
        self.out = out;
        result?;
        self.shown = self.out.len().saturating_sub(TRAILER.len());
        Ok(&self.out[..self.shown])
    }

    fn end_message(&mut self) {
        self.open = false;
        self.produced = false;
        if self.settings.send_no_context_takeover {
            self.release();
        }
    }
}

/// Runs the compressor over all of `input` with `flush`, appending to `out`.
fn run(
    stream: &mut zlib_rs::Deflate,
    mut input: &[u8],
    flush: DeflateFlush,
    out: &mut Vec<u8>,
) -> Result<(), CompressError> {
    loop {
        let len = out.len();
        let room = (input.len() + input.len() / 8 + 64).max(len / 2).max(256);
        out.resize(len + room, 0);
        let (in_before, out_before) = (stream.total_in(), stream.total_out());
        let status = stream.compress(input, &mut out[len..], flush);
        let consumed = (stream.total_in() - in_before) as usize;
        let produced = (stream.total_out() - out_before) as usize;
        out.truncate(len + produced);
        input = &input[consumed..];
        match status {
            Err(e) => return Err(CompressError(e.as_str())),
            // Done when the input is taken and the output had room to spare (zlib wants
            // another call, with more room, whenever it filled the output).
            Ok(_) if input.is_empty() && produced < room => return Ok(()),
            Ok(Status::BufError) if consumed == 0 && produced == 0 => {
                return if input.is_empty() {
                    Ok(()) // a flush with nothing new to flush
                } else {
                    Err(CompressError("the compressor made no progress"))
                };
            }
            Ok(_) => {}
        }
    }
}

/// Turns a message's stream output into its payload: the sync flush's trailer left off, or,
/// for a message that produced nothing (an empty message after a flush), an empty stored
/// block's first byte, which the receiver's trailer completes (RFC 7692 §7.2.3.6).
fn end_payload(out: &mut Vec<u8>, produced: bool) -> Result<(), CompressError> {
    if !produced {
        out.clear();
        out.push(0x00);
        return Ok(());
    }
    if !out.ends_with(&TRAILER) {
        return Err(CompressError("a sync flush did not end with 00 00 ff ff"));
    }
    out.truncate(out.len() - TRAILER.len());
    Ok(())
}

/// A piece of an inflated message.
#[derive(Debug)]
pub(crate) struct Inflated {
    pub(crate) kind: DataKind,
    pub(crate) data: Bytes,
    pub(crate) start: bool,
    pub(crate) end: bool,
    /// At the end of a text message: the proof that all of it was valid UTF-8.
    pub(crate) utf8: Option<Utf8Proof>,
}

/// What [`Inflater::next_piece`] did.
#[derive(Debug)]
pub(crate) enum Step {
    /// A piece of the message.
    Piece(Inflated),
    /// Everything given was inflated; the message goes on in frames not decoded yet.
    NeedInput,
    /// The next byte would take the message past `limit`: nothing was lost, the caller decides.
    AtLimit,
}

/// The receiving direction's DEFLATE stream, and the compressed message being inflated.
pub(crate) struct Inflater {
    window_bits: u8,
    reset_after_message: bool,
    stream: Option<Box<zlib_rs::Inflate>>,
    /// The message being inflated, if any.
    kind: Option<DataKind>,
    /// Compressed bytes not inflated yet.
    input: Bytes,
    /// `input` ends the message: the trailer follows it.
    input_ends: bool,
    /// Trailer bytes fed.
    trailer_fed: usize,
    /// Inflated bytes not handed out yet (the byte that found a limit).
    carry: Option<u8>,
    /// The next piece is the message's first.
    starts: bool,
    /// Inflated bytes of the message handed out so far.
    produced: u64,
    /// The peer ended its DEFLATE stream (a final block): the next message starts a new one.
    stream_ended: bool,
    utf8: Utf8Validator,
}

impl fmt::Debug for Inflater {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inflater")
            .field("allocated", &self.stream.is_some())
            .field("kind", &self.kind)
            .field("input", &self.input.len())
            .field("produced", &self.produced)
            .finish_non_exhaustive()
    }
}

impl Inflater {
    pub(crate) fn new(settings: &DeflateSettings) -> Self {
        Inflater {
            // A wider window inflates anything a narrower one made; zlib's 8 is really 9.
            window_bits: settings.receive_window_bits.clamp(9, 15),
            reset_after_message: settings.receive_no_context_takeover,
            stream: None,
            kind: None,
            input: Bytes::new(),
            input_ends: false,
            trailer_fed: 0,
            carry: None,
            starts: false,
            produced: 0,
            stream_ended: false,
            utf8: Utf8Validator::new(),
        }
    }

    /// Whether given bytes wait to be inflated (or the end of a message to be reported):
    /// nothing more is decoded until they are.
    #[inline]
    pub(crate) fn has_work(&self) -> bool {
        self.kind.is_some() && (!self.input.is_empty() || self.carry.is_some() || self.input_ends)
    }

    /// Compressed bytes held.
    pub(crate) fn held_bytes(&self) -> usize {
        self.input.len()
    }

    /// Whether the zlib state is allocated.
    pub(crate) fn is_allocated(&self) -> bool {
        self.stream.is_some()
    }

    /// Takes compressed payload bytes of a `kind` message as the decoder yields them. Only
    /// called once the previous bytes were inflated.
    pub(crate) fn push(&mut self, kind: DataKind, data: Bytes, start: bool, end: bool) {
        debug_assert!(!self.has_work());
        if start {
            self.kind = Some(kind);
            self.starts = true;
            self.produced = 0;
            self.trailer_fed = 0;
            self.utf8 = Utf8Validator::new();
        }
        self.input = data;
        self.input_ends = end;
    }

    /// Inflates the next piece, of at most [`INFLATE_PIECE`] bytes and never taking the
    /// message past `limit` bytes.
    pub(crate) fn next_piece(&mut self, limit: Option<usize>) -> Result<Step, FailReason> {
        let Some(kind) = self.kind else {
            return Ok(Step::NeedInput);
        };
        let room = limit.map_or(u64::MAX, |max| (max as u64).saturating_sub(self.produced));
        // One byte past the room tells whether the message goes past the limit.
        let cap = (INFLATE_PIECE as u64).min(room.saturating_add(1)) as usize;
        let mut out = BytesMut::new();
        if let Some(byte) = self.carry.take() {
            out.extend_from_slice(&[byte]);
        }
        let mut size = (self.input.len() * 4).max(256).min(cap);
        let mut finished = false;
        while out.len() < cap {
            if out.len() == size {
                size = (size * 2).min(cap);
            }
            let flushed = self.inflate_into(&mut out, size)?;
            if flushed && !self.has_input() {
                finished = self.input_ends;
                break;
            }
        }
        if out.len() as u64 > room {
            // Past the limit: the extra byte waits, whoever decides what happens next.
            let extra = out.split_off(room as usize);
            self.carry = extra.first().copied();
            if out.is_empty() {
                return Ok(Step::AtLimit);
            }
            finished = false;
        }
        if out.is_empty() && !finished {
            return Ok(Step::NeedInput);
        }
        if kind == DataKind::Text {
            self.utf8
                .feed(&out)
                .map_err(|_| ProtocolError::InvalidUtf8)?;
        }
        self.produced += out.len() as u64;
        let start = std::mem::take(&mut self.starts);
        let utf8 = if finished {
            self.end_message(kind)?
        } else {
            None
        };
        Ok(Step::Piece(Inflated {
            kind,
            data: out.freeze(),
            start,
            end: finished,
            utf8,
        }))
    }

    /// The failure for a message that went past `max` bytes once inflated.
    pub(crate) fn too_large(&self, max: usize) -> FailReason {
        CapacityError::MessageTooLarge {
            size: self.produced + 1,
            max,
        }
        .into()
    }

    fn has_input(&self) -> bool {
        !self.input.is_empty() || (self.input_ends && self.trailer_fed < TRAILER.len())
    }

    /// One inflate call into `out`, up to `size` bytes. Returns whether the inflater had room
    /// to spare (so it holds no output back for the input it took).
    fn inflate_into(&mut self, out: &mut BytesMut, size: usize) -> Result<bool, FailReason> {
        let from_trailer = self.input.is_empty();
        if from_trailer && !self.has_input() {
            return Ok(true);
        }
        if self.stream_ended {
            // What follows a final block in its message belongs to no stream (RFC 7692
            // §7.2.3.5 has a sender put an empty block's first byte there): it is not inflated.
            self.input = Bytes::new();
            self.trailer_fed = TRAILER.len();
            return Ok(true);
        }
        let window_bits = self.window_bits;
        let stream = self.stream.get_or_insert_with(|| {
            zlib_spares::take_inflate()
                .unwrap_or_else(|| Box::new(zlib_rs::Inflate::new(false, window_bits)))
        });
        let input: &[u8] = if from_trailer {
            &TRAILER[self.trailer_fed..]
        } else {
            &self.input
        };
        let len = out.len();
        out.resize(size, 0);
        let (in_before, out_before) = (stream.total_in(), stream.total_out());
        let status = stream.decompress(input, &mut out[len..], InflateFlush::SyncFlush);
        let consumed = (stream.total_in() - in_before) as usize;
        let produced = (stream.total_out() - out_before) as usize;
        out.truncate(len + produced);
        if from_trailer {
            self.trailer_fed += consumed;
        } else {
            let _ = self.input.split_to(consumed);
        }
        let spare = len + produced < size;
        match status {
            Err(_) => Err(ProtocolError::InvalidCompressedData.into()),
            Ok(Status::StreamEnd) => {
                // A final block ends the peer's stream; the next message starts a new one.
                self.stream_ended = true;
                self.release();
                self.input = Bytes::new();
                self.trailer_fed = TRAILER.len();
                Ok(true)
            }
            Ok(_) if consumed == 0 && produced == 0 && spare => {
                if !from_trailer {
                    return Err(ProtocolError::InvalidCompressedData.into());
                }
                self.trailer_fed = TRAILER.len();
                Ok(true)
            }
            Ok(_) => Ok(spare),
        }
    }

    /// Lets go of the zlib state (to this thread's spares, see `zlib_spares`).
    fn release(&mut self) {
        if let Some(stream) = self.stream.take() {
            zlib_spares::give_inflate(stream);
        }
    }

    fn end_message(&mut self, kind: DataKind) -> Result<Option<Utf8Proof>, FailReason> {
        self.kind = None;
        self.input = Bytes::new();
        self.input_ends = false;
        if self.reset_after_message || self.stream_ended {
            self.release();
            self.stream_ended = false;
        }
        finish_text(kind, &mut self.utf8)
    }
}

#[cfg(test)]
#[path = "deflate_tests.rs"]
mod tests;
