//! What a message carries: its scheduled send time and sequence number up front, so that its
//! echo can be matched and timed, then filler.
//!
//! Binary: the time (nanoseconds since the run's epoch) and the sequence number as two
//! little-endian `u64`s, 16 bytes. Text: the same 16 bytes as 32 lowercase hex digits. The
//! filler is random (random bytes, or random letters and digits for text), so that
//! permessage-deflate, when on, does real work instead of compressing a run of one byte.

use bytes::{BufMut, Bytes, BytesMut};
use rand::{Rng, SeedableRng};
use wsio::{DataKind, Message};

/// The filler that messages take their tails from: big enough for the largest message, or
/// cycled for uploads.
#[derive(Debug, Clone)]
pub(crate) struct Filler {
    bytes: Bytes,
}

/// The largest filler kept in memory; uploads larger than it cycle through it.
pub(crate) const MAX_FILLER: usize = 1 << 20;

/// The prefix's length for text (`true`) or binary messages.
pub(crate) fn prefix_len(text: bool) -> usize {
    if text {
        32
    } else {
        16
    }
}

/// The prefix of message `seq` scheduled at `time_ns`.
pub(crate) fn prefix(kind: DataKind, time_ns: u64, seq: u64) -> Vec<u8> {
    let mut raw = [0u8; 16];
    raw[..8].copy_from_slice(&time_ns.to_le_bytes());
    raw[8..].copy_from_slice(&seq.to_le_bytes());
    match kind {
        DataKind::Binary => raw.to_vec(),
        DataKind::Text => {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            raw.iter()
                .flat_map(|b| [HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]])
                .collect()
        }
    }
}

/// The time and sequence number at the start of an echoed payload, or `None` if it does not
/// start with a prefix of `kind`.
pub(crate) fn parse_prefix(kind: DataKind, payload: &[u8]) -> Option<(u64, u64)> {
    let mut raw = [0u8; 16];
    match kind {
        DataKind::Binary => raw.copy_from_slice(payload.get(..16)?),
        DataKind::Text => {
            let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
            for (i, pair) in payload.get(..32)?.chunks_exact(2).enumerate() {
                raw[i] = digit(pair[0])? << 4 | digit(pair[1])?;
            }
        }
    }
    let time = u64::from_le_bytes(raw[..8].try_into().ok()?);
    let seq = u64::from_le_bytes(raw[8..].try_into().ok()?);
    Some((time, seq))
}

impl Filler {
    /// Random filler of `len` bytes (at most [`MAX_FILLER`]), letters and digits for text.
    pub(crate) fn new(kind: DataKind, len: usize) -> Filler {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
        let len = len.min(MAX_FILLER);
        let bytes: Vec<u8> = match kind {
            DataKind::Binary => (0..len).map(|_| rng.random()).collect(),
            DataKind::Text => (0..len)
                .map(|_| rng.sample(rand::distr::Alphanumeric))
                .collect(),
        };
        Filler {
            bytes: bytes.into(),
        }
    }

    /// The message of `len` bytes (at least the prefix's length) with this prefix.
    pub(crate) fn message(&self, kind: DataKind, prefix: &[u8], len: usize) -> Message {
        let mut payload = BytesMut::with_capacity(len);
        payload.put_slice(prefix);
        payload.put_slice(&self.bytes[..len - prefix.len()]);
        let payload = payload.freeze();
        match kind {
            DataKind::Binary => Message::Binary(payload),
            DataKind::Text => {
                let text = wsio::Utf8Bytes::try_from(payload).expect("hex and alphanumerics");
                Message::Text(text)
            }
        }
    }

    /// The filler's bytes, to be written over and over by an upload.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_round_trip() {
        for kind in [DataKind::Binary, DataKind::Text] {
            let prefix = prefix(kind, 123_456_789, 42);
            assert_eq!(prefix.len(), prefix_len(kind == DataKind::Text));
            assert_eq!(parse_prefix(kind, &prefix), Some((123_456_789, 42)));
            assert_eq!(parse_prefix(kind, &prefix[1..]), None);
        }
        assert_eq!(parse_prefix(DataKind::Text, &[b'g'; 32]), None);
    }
}
