//! `Utf8Validator` against `std::str::from_utf8`, fed in pieces.
//!
//! Input: a length byte `n`, `n & 31` piece lengths, then the text.
//!
//! Invariants, for the fuzz-chosen pieces and (for short texts) every two-piece split:
//! - the verdict (every `feed` and `finish` succeed) is std's verdict on the whole text;
//! - the failing `feed` is exactly the one that brings in the byte at which std first calls a
//!   prefix invalid (not merely cut short): not later, and not earlier;
//! - after a successful `feed`, `is_complete()` tells whether the bytes so far end on a code
//!   point boundary.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsio::proto::utf8::Utf8Validator;
use wsio_fuzz::{pieces, Input};

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let lens = input.lengths(0x1F);
    let text = input.rest();
    let truth = Truth::of(text);
    check(text, &pieces(text, lens), &truth);
    if text.len() <= 256 {
        for cut in 0..=text.len() {
            check(text, &[&text[..cut], &text[cut..]], &truth);
        }
    }
});

/// What std says about the text.
struct Truth {
    valid: bool,
    /// Bytes up to which the text is valid UTF-8 (all of it when `valid`).
    valid_up_to: usize,
    /// The length of the shortest prefix that std calls invalid (not merely incomplete).
    detect: Option<usize>,
    /// `boundary[i]`: `text[..i]` ends on a code point boundary (for `i <= valid_up_to`).
    boundary: Vec<bool>,
}

impl Truth {
    fn of(text: &[u8]) -> Self {
        let boundaries = |valid: &[u8]| {
            let valid = std::str::from_utf8(valid).expect("valid up to there");
            (0..=valid.len())
                .map(|i| valid.is_char_boundary(i))
                .collect()
        };
        match std::str::from_utf8(text) {
            Ok(_) => Truth {
                valid: true,
                valid_up_to: text.len(),
                detect: None,
                boundary: boundaries(text),
            },
            Err(e) => {
                let start = e.valid_up_to();
                let detect = e.error_len().map(|_| {
                    // The bytes before `start` are valid, so look at the bad sequence alone.
                    (1..=text.len() - start)
                        .find(|&j| {
                            matches!(std::str::from_utf8(&text[start..start + j]),
                                Err(e) if e.error_len().is_some())
                        })
                        .map(|j| start + j)
                        .expect("std found an invalid sequence")
                });
                Truth {
                    valid: false,
                    valid_up_to: start,
                    detect,
                    boundary: boundaries(&text[..start]),
                }
            }
        }
    }

    /// Whether `text[..end]` ends on a code point boundary, for an `end` before detection.
    fn complete_at(&self, end: usize) -> bool {
        end <= self.valid_up_to && self.boundary[end]
    }
}

fn check(text: &[u8], pieces: &[&[u8]], truth: &Truth) {
    let mut v = Utf8Validator::new();
    let mut end = 0;
    for (i, piece) in pieces.iter().enumerate() {
        let before = end;
        end += piece.len();
        match v.feed(piece) {
            Ok(()) => {
                assert!(
                    truth.detect.is_none_or(|d| end < d),
                    "missed invalid byte at {:?}: pieces {pieces:02x?}",
                    truth.detect
                );
                assert_eq!(
                    v.is_complete(),
                    truth.complete_at(end),
                    "is_complete after {end} bytes of {text:02x?} (piece {i})"
                );
            }
            Err(_) => {
                let d = truth
                    .detect
                    .unwrap_or_else(|| panic!("false failure in piece {i}: {pieces:02x?}"));
                assert!(
                    before < d && d <= end,
                    "failure in piece {i} ({before}..{end}), std at {d}: {pieces:02x?}"
                );
                return;
            }
        }
    }
    assert_eq!(v.finish().is_ok(), truth.valid, "finish: {pieces:02x?}");
    assert!(v.is_complete(), "finish resets the validator");
}
