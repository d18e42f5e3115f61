//! Incremental UTF-8 validation of text payloads that arrive in arbitrary pieces.
//!
//! A text message may be split across frames, and a frame across reads, anywhere, even inside a
//! code point. The validator keeps the at most three bytes of an unfinished code point between
//! calls and fails as soon as the bytes seen so far cannot begin valid UTF-8, so a peer sending
//! garbage is stopped on the first bad byte rather than at the end of its message.

/// Invalid UTF-8 was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utf8Error;

/// Validates a byte sequence fed in pieces.
#[derive(Debug, Clone, Default)]
pub struct Utf8Validator {
    partial: [u8; 4],
    partial_len: u8,
    /// Bytes fed since the start: what a [`Utf8Proof`] vouches for.
    fed: u64,
}

/// Proof that a whole byte sequence of [`len`](Self::len) bytes was fed to a [`Utf8Validator`]
/// and was valid UTF-8. Only [`Utf8Validator::finish`] makes one, which is what lets
/// [`Utf8Bytes`](super::message::Utf8Bytes) skip a second check of bytes the decoder validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utf8Proof {
    len: u64,
}

impl Utf8Proof {
    /// How many bytes were validated.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the validated sequence was empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Length of the code point that starts with `lead`, or `None` for a byte no code point starts with.
fn sequence_len(lead: u8) -> Option<usize> {
    match lead {
        0x00..=0x7F => Some(1),
        0xC2..=0xDF => Some(2),
        0xE0..=0xEF => Some(3),
        0xF0..=0xF4 => Some(4),
        _ => None,
    }
}

/// How many bytes at the end of `bytes` start a code point that the slice cuts short: the last
/// lead byte among the final three, if its sequence runs past the end. (Whether they are a valid
/// start is checked separately.)
fn cut_tail_len(bytes: &[u8]) -> usize {
    for back in 1..=bytes.len().min(3) {
        let byte = bytes[bytes.len() - back];
        if byte & 0xC0 != 0x80 {
            // Not a continuation byte: a lead byte (or ASCII) `back` bytes from the end.
            return match sequence_len(byte) {
                Some(len) if len > back => back,
                _ => 0,
            };
        }
    }
    0
}

/// Checks `bytes`; on success returns how many trailing bytes form an unfinished but so far valid
/// code point.
fn validate_prefix(bytes: &[u8]) -> Result<usize, Utf8Error> {
    // The fast whole-slice check on everything but a cut-off tail, then the tail alone: pieces
    // that end inside a code point (most pieces of multi-byte text) take no slow path.
    let tail = cut_tail_len(bytes);
    let (body, rest) = bytes.split_at(bytes.len() - tail);
    if simdutf8::basic::from_utf8(body).is_ok() {
        return match simdutf8::compat::from_utf8(rest) {
            Ok(_) => Ok(0),
            Err(e) if e.error_len().is_none() && e.valid_up_to() == 0 => Ok(tail),
            Err(_) => Err(Utf8Error),
        };
    }
    match simdutf8::compat::from_utf8(bytes) {
        Ok(_) => Ok(0),
        // `error_len() == None` means the input ended inside a code point that could still be valid.
        Err(e) if e.error_len().is_none() => Ok(bytes.len() - e.valid_up_to()),
        Err(_) => Err(Utf8Error),
    }
}

impl Utf8Validator {
    /// A validator at the start of a message.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the next piece of the message.
    pub fn feed(&mut self, mut data: &[u8]) -> Result<(), Utf8Error> {
        self.fed += data.len() as u64;
        if self.partial_len > 0 {
            let have = usize::from(self.partial_len);
            let want = sequence_len(self.partial[0]).ok_or(Utf8Error)?;
            let take = (want - have).min(data.len());
            self.partial[have..have + take].copy_from_slice(&data[..take]);
            let now = have + take;
            data = &data[take..];
            let pending = validate_prefix(&self.partial[..now])?;
            if pending != 0 {
                // Still inside the code point: only possible when `data` ran out.
                self.partial_len = now as u8;
                return Ok(());
            }
            self.partial_len = 0;
        }
        let pending = validate_prefix(data)?;
        if pending > 0 {
            self.partial[..pending].copy_from_slice(&data[data.len() - pending..]);
            self.partial_len = pending as u8;
        }
        Ok(())
    }

    /// Ends the message: an unfinished code point at the end is an error. On success, the proof
    /// that everything fed since the start was valid; the validator starts over either way.
    pub fn finish(&mut self) -> Result<Utf8Proof, Utf8Error> {
        let complete = self.partial_len == 0;
        let len = std::mem::take(&mut self.fed);
        self.partial_len = 0;
        if complete {
            Ok(Utf8Proof { len })
        } else {
            Err(Utf8Error)
        }
    }

    /// Whether the bytes fed so far end on a code point boundary.
    pub fn is_complete(&self) -> bool {
        self.partial_len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_split_everywhere(bytes: &[u8]) -> Result<(), Utf8Error> {
        let whole = std::str::from_utf8(bytes)
            .map(|_| ())
            .map_err(|_| Utf8Error);
        for a in 0..=bytes.len() {
            for b in a..=bytes.len() {
                let mut v = Utf8Validator::new();
                let got = v
                    .feed(&bytes[..a])
                    .and_then(|_| v.feed(&bytes[a..b]))
                    .and_then(|_| v.feed(&bytes[b..]))
                    .and_then(|_| v.finish());
                if let Ok(proof) = &got {
                    assert_eq!(
                        proof.len(),
                        bytes.len() as u64,
                        "the proof covers every byte"
                    );
                }
                assert_eq!(got.map(|_| ()), whole, "{bytes:x?} split at {a},{b}");
            }
        }
        whole
    }

    #[test]
    fn agrees_with_std_at_every_split() {
        let valid = "κόσμε a€𝄞 ü".as_bytes();
        assert!(check_split_everywhere(valid).is_ok());
        for bad in [
            &b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited"[..],
            b"\xf4\x90\x80\x80",
            b"\xc0\xaf",
            b"ab\xff",
            b"\xe0\x80\xaf",
            b"\xf8\x88\x80\x80\x80",
            b"\xed\xbf\xbf",
            b"\xce",
            b"a\xf0\x9d\x84",
        ] {
            assert!(check_split_everywhere(bad).is_err());
        }
    }

    #[test]
    fn fails_fast_inside_a_code_point() {
        // Autobahn 6.4.x: 0xF4 0x90 can never start valid UTF-8; fail on it, not at the end.
        let mut v = Utf8Validator::new();
        v.feed("κόσμε".as_bytes()).unwrap();
        assert_eq!(v.feed(b"\xf4"), Ok(()));
        assert_eq!(v.feed(b"\x90"), Err(Utf8Error));
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(b"ok\xf4\x90"), Err(Utf8Error));
    }
}
