//! `FrameDecoder` fed the same wire bytes whole and in fuzz-chosen pieces, in each delivery.
//!
//! Input: a flags byte (bit 0: server role; bit 1: `max_frame_size` from the next two bytes,
//! else 1 MiB; bit 2: `message_limit` from the two after, else none), a length byte `n`,
//! `n & 31` piece lengths, then the wire bytes.
//!
//! Every run is flattened into a stream of tokens (message start, payload byte, message end,
//! control frame) plus the final error and the decoder's frame count. Invariants:
//! - whole frames, whole input == whole frames, in pieces: same stream, same error;
//! - chunks, whole input and in pieces, and chunks read past the buffer (`consume_direct`) end
//!   with the same error and frame count. Whole frames' stream is a prefix of chunks' (chunks
//!   also hand out the part of a last, unfinished frame), and without an error chunks give the
//!   same stream however the input is cut. With an error, pieces may have handed out more of
//!   the failing text frame first: only payload bytes of one frame, and only for invalid UTF-8;
//! - every stream is well formed (starts and ends pair up, a message keeps its kind), a text
//!   message that ends is valid UTF-8, control payloads are at most 125 bytes, and neither a
//!   frame nor a message exceeds its limit.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use wsio::proto::decoder::{DataKind, Decoded, Delivery, FrameDecoder, Limits};
use wsio::proto::error::{FailReason, ProtocolError};
use wsio::proto::header::OpCode;
use wsio::proto::Role;
use wsio_fuzz::{pieces, Input};

#[derive(Debug, Clone, Copy)]
struct Settings {
    role: Role,
    max_frame_size: usize,
    message_limit: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    WholeFrames,
    Chunks,
    /// Chunks, with payload bytes passed to `consume_direct` whenever the decoder allows it.
    Direct,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Start(DataKind),
    Byte(u8),
    End,
    Control(OpCode, Vec<u8>),
}

#[derive(Debug, PartialEq, Eq)]
struct Run {
    toks: Vec<Tok>,
    error: Option<FailReason>,
    frames: u64,
    in_message: bool,
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let flags = input.byte();
    let frame_size = input.u16();
    let message_size = input.u16();
    let settings = Settings {
        role: if flags & 1 != 0 {
            Role::Server
        } else {
            Role::Client
        },
        max_frame_size: if flags & 2 != 0 {
            usize::from(frame_size)
        } else {
            1 << 20
        },
        message_limit: (flags & 4 != 0).then_some(usize::from(message_size)),
    };
    let lens = input.lengths(0x1F);
    let wire = input.rest();
    let split = pieces(wire, lens);
    let whole: &[&[u8]] = &[wire];

    let frames_whole = run(settings, Mode::WholeFrames, whole);
    let frames_split = run(settings, Mode::WholeFrames, &split);
    let chunks_whole = run(settings, Mode::Chunks, whole);
    let chunks_split = run(settings, Mode::Chunks, &split);
    let direct_split = run(settings, Mode::Direct, &split);

    assert_eq!(frames_whole, frames_split, "whole frames, cut {split:02x?}");
    for other in [&chunks_whole, &chunks_split, &direct_split] {
        assert_eq!(other.error, frames_whole.error, "cut {split:02x?}");
        assert_eq!(other.frames, frames_whole.frames, "cut {split:02x?}");
        assert_eq!(
            other.in_message, frames_whole.in_message,
            "cut {split:02x?}"
        );
    }
    // Chunks add at most the payload of the one frame in progress at the end.
    let extra = tail_after(&frames_whole.toks, &chunks_whole.toks);
    assert_one_frame_of_payload(extra);
    if frames_whole.error.is_none() {
        assert_eq!(
            chunks_split.toks, chunks_whole.toks,
            "chunks, cut {split:02x?}"
        );
    } else {
        let extra = tail_after(&chunks_whole.toks, &chunks_split.toks);
        if !extra.is_empty() {
            assert_eq!(
                frames_whole.error,
                Some(FailReason::Protocol(ProtocolError::InvalidUtf8))
            );
            assert_one_frame_of_payload(extra);
        }
    }
    assert_eq!(
        direct_split.toks, chunks_split.toks,
        "direct, cut {split:02x?}"
    );
});

/// The tokens of `longer` after `prefix`, which must be a prefix of it.
fn tail_after<'a>(prefix: &[Tok], longer: &'a [Tok]) -> &'a [Tok] {
    assert!(
        longer.len() >= prefix.len() && longer[..prefix.len()] == *prefix,
        "not a prefix:\n{prefix:?}\n{longer:?}"
    );
    &longer[prefix.len()..]
}

/// Payload bytes of a single unfinished frame: perhaps its message's start, then bytes.
fn assert_one_frame_of_payload(toks: &[Tok]) {
    let bytes = match toks.first() {
        Some(Tok::Start(_)) => &toks[1..],
        _ => toks,
    };
    assert!(bytes.iter().all(|t| matches!(t, Tok::Byte(_))), "{toks:?}");
}

/// Feeds `pieces` one after the other, decoding all it can after each, until the first error.
fn run(settings: Settings, mode: Mode, pieces: &[&[u8]]) -> Run {
    let mut dec = new_decoder(settings);
    let mut buf = BytesMut::new();
    let mut check = Checker::new(settings, mode);
    let total: usize = pieces.iter().map(|p| p.len()).sum();
    let error = 'feed: {
        for piece in pieces {
            let mut piece: &[u8] = piece;
            // Every answer but "need more" takes at least one byte: bound the calls.
            let mut calls = 0usize;
            loop {
                calls += 1;
                assert!(calls <= total + 2, "the decoder makes no progress");
                if mode == Mode::Direct && !piece.is_empty() {
                    let direct = usize::try_from(dec.direct_len(buf.len())).unwrap_or(usize::MAX);
                    if direct > 0 {
                        let (now, later) = piece.split_at(direct.min(piece.len()));
                        piece = later;
                        match consume_direct(&mut dec, now) {
                            Ok(decoded) => check.push(decoded),
                            Err(e) => break 'feed Some(e),
                        }
                        continue;
                    }
                }
                buf.extend_from_slice(piece);
                piece = &[];
                match decode(&mut dec, &mut buf, settings, mode) {
                    Ok(Some(decoded)) => check.push(decoded),
                    Ok(None) => break,
                    Err(e) => break 'feed Some(e),
                }
            }
        }
        None
    };
    Run {
        toks: check.toks,
        error,
        frames: dec.frames_decoded(),
        in_message: dec.in_message(),
    }
}

// The only calls into the decoder.

fn new_decoder(settings: Settings) -> FrameDecoder {
    FrameDecoder::new(settings.role)
}

fn decode(
    dec: &mut FrameDecoder,
    buf: &mut BytesMut,
    settings: Settings,
    mode: Mode,
) -> Result<Option<Decoded>, FailReason> {
    let delivery = match mode {
        Mode::WholeFrames => Delivery::WholeFrames,
        Mode::Chunks | Mode::Direct => Delivery::Chunks,
    };
    let limits = Limits {
        frame: Some(settings.max_frame_size),
        message: settings.message_limit,
    };
    dec.decode(buf, delivery, limits)
}

fn consume_direct(dec: &mut FrameDecoder, wire: &[u8]) -> Result<Decoded, FailReason> {
    let mut data = wire.to_vec();
    let chunk = dec.consume_direct(&mut data)?;
    Ok(Decoded::Data {
        kind: chunk.kind,
        data: data.into(),
        start: chunk.start,
        end: chunk.end,
        utf8: None,
        compressed: false,
    })
}

/// Flattens what the decoder yields into tokens, checking each step.
struct Checker {
    settings: Settings,
    mode: Mode,
    toks: Vec<Tok>,
    /// The data message in progress: its kind and its bytes so far.
    message: Option<(DataKind, Vec<u8>)>,
}

impl Checker {
    fn new(settings: Settings, mode: Mode) -> Self {
        Checker {
            settings,
            mode,
            toks: Vec::new(),
            message: None,
        }
    }

    fn push(&mut self, decoded: Decoded) {
        match decoded {
            Decoded::Control { opcode, payload } => {
                assert!(opcode.is_control(), "{opcode:?}");
                assert!(payload.len() <= 125);
                self.toks.push(Tok::Control(opcode, payload.to_vec()));
            }
            Decoded::Data {
                kind,
                data,
                start,
                end,
                utf8,
                compressed,
            } => {
                // The decoder accepts no compressed message unless told to.
                assert!(!compressed);
                // A text message's end carries the proof that all of it was valid; a direct
                // chunk (read past the buffer) reports none.
                if end && kind == DataKind::Text && self.mode != Mode::Direct {
                    assert!(utf8.is_some(), "a text message ended without its proof");
                }
                if self.mode == Mode::WholeFrames {
                    assert!(data.len() <= self.settings.max_frame_size);
                }
                match (&mut self.message, start) {
                    (None, true) => {
                        self.message = Some((kind, Vec::new()));
                        self.toks.push(Tok::Start(kind));
                    }
                    (Some((in_progress, _)), false) => assert_eq!(*in_progress, kind),
                    (message, _) => panic!("start = {start} with message {message:?}"),
                }
                let (_, so_far) = self.message.as_mut().expect("a message in progress");
                so_far.extend_from_slice(&data);
                if let Some(limit) = self.settings.message_limit {
                    assert!(so_far.len() <= limit);
                }
                self.toks.extend(data.iter().map(|&b| Tok::Byte(b)));
                if end {
                    let (kind, so_far) = self.message.take().expect("a message in progress");
                    if kind == DataKind::Text {
                        assert!(std::str::from_utf8(&so_far).is_ok(), "{so_far:02x?}");
                        if let Some(proof) = utf8 {
                            assert_eq!(proof.len(), so_far.len() as u64, "the proof covers it all");
                        }
                    }
                    self.toks.push(Tok::End);
                }
            }
        }
    }
}
