//! What the soak's messages carry, and how an echo is checked.
//!
//! Every message starts with a 41-byte ASCII header: its kind (`T` or `B`), its sequence
//! number on its connection (16 hex digits), its body length (8) and the first 8 bytes of the
//! SHA-256 of its body (16). The header is ASCII so that text and binary share one format; its
//! odd length puts the body's multi-byte code points across frame boundaries, which exercises
//! the incremental UTF-8 check. The body is a slice of a shared random pool: binary bytes, or
//! for text a mixture of 1- to 4-byte characters in 4-byte units so that any slice starting
//! and ending on a unit boundary is valid UTF-8.

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};
use rand::{Rng, RngCore, SeedableRng};
use sha2::{Digest, Sha256};
use wsio::DataKind;

/// Bytes of the header that starts every message.
pub(crate) const HEADER_LEN: usize = 41;

/// 4-byte units of the text pool: ASCII, 2-, 3- and 4-byte UTF-8 sequences.
const TEXT_UNITS: [&str; 6] = [
    "abcd",
    "a\u{20ac}",
    "\u{e9}\u{e9}",
    "\u{1d11e}",
    "WXYZ",
    "0123",
];

/// What a message header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) kind: DataKind,
    pub(crate) seq: u64,
    pub(crate) len: usize,
    pub(crate) sum: u64,
}

/// Why an echo is not the message that was sent.
#[derive(Debug)]
pub(crate) enum Corrupt {
    /// The header does not parse.
    Header(String),
    /// The header says one length and the body has another.
    Length { said: usize, got: usize },
    /// The body does not hash to the header's checksum.
    Checksum { seq: u64 },
    /// Sent as text, came back as binary (or the reverse).
    Kind { seq: u64 },
    /// Longer than any message sent.
    TooLong { limit: usize },
}

impl fmt::Display for Corrupt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Corrupt::Header(why) => write!(f, "bad header: {why}"),
            Corrupt::Length { said, got } => write!(f, "header says {said} bytes, body has {got}"),
            Corrupt::Checksum { seq } => {
                write!(f, "message {seq}: body does not match its checksum")
            }
            Corrupt::Kind { seq } => write!(f, "message {seq} came back as the other kind"),
            Corrupt::TooLong { limit } => write!(f, "a message longer than {limit} bytes"),
        }
    }
}

/// The random bodies every connection slices its messages from (shared, never copied).
pub(crate) struct Pools {
    binary: Bytes,
    text: Bytes,
    max_size: usize,
}

impl Pools {
    /// Pools for bodies of at most `max_size` bytes, twice that long so offsets vary.
    pub(crate) fn new(max_size: usize) -> Self {
        let len = 2 * max_size + 8;
        let mut rng = rand::rngs::SmallRng::seed_from_u64(0x50a4);
        let mut binary = vec![0; len];
        rng.fill_bytes(&mut binary);
        let mut text = String::with_capacity(len);
        while text.len() < len {
            text.push_str(TEXT_UNITS[rng.random_range(0..TEXT_UNITS.len())]);
        }
        Pools {
            binary: binary.into(),
            text: Bytes::from(text.into_bytes()),
            max_size,
        }
    }

    /// A body for a message of `kind`: its size drawn from a mix that is mostly small,
    /// sometimes tens of KiB and rarely up to `max_size`, and its place in the pool at random.
    pub(crate) fn body(&self, kind: DataKind, rng: &mut impl Rng) -> Bytes {
        let max = self.max_size;
        let roll = rng.random_range(0..100);
        let len = match roll {
            0..60 => rng.random_range(0..=256.min(max)),
            60..90 => rng.random_range(0..=8192.min(max)),
            90..99 => rng.random_range(0..=(max / 4).max(1).min(max)),
            _ => rng.random_range(0..=max),
        };
        self.slice(kind, len, rng)
    }

    /// A small body, for the one message of a short-lived connection.
    pub(crate) fn small_body(&self, kind: DataKind, rng: &mut impl Rng) -> Bytes {
        let len = rng.random_range(0..=64.min(self.max_size));
        self.slice(kind, len, rng)
    }

    fn slice(&self, kind: DataKind, len: usize, rng: &mut impl Rng) -> Bytes {
        let (pool, unit) = match kind {
            DataKind::Binary => (&self.binary, 1),
            DataKind::Text => (&self.text, 4),
        };
        let len = len / unit * unit;
        let offset = rng.random_range(0..=(pool.len() - len) / unit) * unit;
        pool.slice(offset..offset + len)
    }
}

/// Picks text or binary at random (even odds).
pub(crate) fn any_kind(rng: &mut impl Rng) -> DataKind {
    if rng.random() {
        DataKind::Text
    } else {
        DataKind::Binary
    }
}

/// The first 8 bytes of the body's SHA-256.
pub(crate) fn checksum(body: &[u8]) -> u64 {
    let digest = Sha256::digest(body);
    u64::from_be_bytes(digest[..8].try_into().expect("SHA-256 has 32 bytes"))
}

/// The header of message `seq` of `kind` with `body`.
pub(crate) fn header(kind: DataKind, seq: u64, body: &[u8]) -> [u8; HEADER_LEN] {
    let letter = match kind {
        DataKind::Text => 'T',
        DataKind::Binary => 'B',
    };
    let text = format!(
        "{letter}{seq:016x}{:08x}{:016x}",
        body.len(),
        checksum(body)
    );
    text.as_bytes()
        .try_into()
        .expect("the header has a fixed length")
}

/// Message `seq` as one buffer, header then body, for the message API.
pub(crate) fn whole(kind: DataKind, seq: u64, body: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(HEADER_LEN + body.len());
    out.put_slice(&header(kind, seq, body));
    out.put_slice(body);
    out.freeze()
}

/// Reads a header.
pub(crate) fn parse_header(bytes: &[u8]) -> Result<Header, Corrupt> {
    let bytes = bytes
        .get(..HEADER_LEN)
        .ok_or_else(|| Corrupt::Header(format!("{} bytes, shorter than a header", bytes.len())))?;
    let kind = match bytes[0] {
        b'T' => DataKind::Text,
        b'B' => DataKind::Binary,
        other => return Err(Corrupt::Header(format!("kind byte {other:#04x}"))),
    };
    let hex = |range: std::ops::Range<usize>| {
        std::str::from_utf8(&bytes[range.clone()])
            .ok()
            .and_then(|s| u64::from_str_radix(s, 16).ok())
            .ok_or_else(|| Corrupt::Header(format!("bytes {range:?} are not hex")))
    };
    Ok(Header {
        kind,
        seq: hex(1..17)?,
        len: hex(17..25)? as usize,
        sum: hex(25..41)?,
    })
}

/// Checks an echoed body against its header.
pub(crate) fn check_body(header: &Header, body: &[u8]) -> Result<(), Corrupt> {
    if body.len() != header.len {
        return Err(Corrupt::Length {
            said: header.len,
            got: body.len(),
        });
    }
    if checksum(body) != header.sum {
        return Err(Corrupt::Checksum { seq: header.seq });
    }
    Ok(())
}

/// Checks a whole echoed message that arrived as `kind`; returns its header.
pub(crate) fn check(kind: DataKind, message: &[u8]) -> Result<Header, Corrupt> {
    let header = parse_header(message)?;
    check_body(&header, &message[HEADER_LEN..])?;
    if header.kind != kind {
        return Err(Corrupt::Kind { seq: header.seq });
    }
    Ok(header)
}
