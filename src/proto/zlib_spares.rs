//! zlib states that connections without context takeover let go of, kept on their thread for
//! the next message that needs one instead of going back to the allocator.
//!
//! Without context takeover a connection needs a fresh compressor or inflater for every message.
//! Allocating and freeing one per message (165 KB for a compressor at the defaults, 47 KB for an
//! inflater) costs time, and under glibc's malloc the freed blocks fragment the heap of a server
//! with many such connections: 39.6 KiB of RSS per idle connection was measured with them freed,
//! 5.4 KiB (the same as without compression) with them reused. A few are kept per thread, so
//! idle connections hold none and the spares are bounded by threads, not connections.

use std::cell::RefCell;

/// Spare states of each kind one thread keeps.
const SPARES: usize = 4;

/// What a compressor was made with: only one made the same way may stand in for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DeflateKind {
    pub(crate) level: i32,
    pub(crate) window_bits: i32,
    pub(crate) mem_level: i32,
    pub(crate) huffman_only: bool,
}

type Deflate = Box<zlib_rs::Deflate>;
type Inflate = Box<zlib_rs::Inflate>;

thread_local! {
    static DEFLATE: RefCell<Vec<(DeflateKind, Deflate)>> = const { RefCell::new(Vec::new()) };
    static INFLATE: RefCell<Vec<Inflate>> = const { RefCell::new(Vec::new()) };
}

/// A spare compressor made as `kind`, reset, if this thread has one.
pub(crate) fn take_deflate(kind: DeflateKind) -> Option<Deflate> {
    DEFLATE
        .try_with(|spares| {
            let mut spares = spares.borrow_mut();
            let at = spares.iter().position(|(k, _)| *k == kind)?;
            Some(spares.swap_remove(at).1)
        })
        .ok()
        .flatten()
}

/// Lets go of a compressor: reset and kept for the next message, or freed.
pub(crate) fn give_deflate(kind: DeflateKind, mut stream: Deflate) {
    stream.reset();
    let _ = DEFLATE.try_with(|spares| {
        let mut spares = spares.borrow_mut();
        if spares.len() < SPARES {
            spares.push((kind, stream));
        }
    });
}

/// A spare inflater, reset, if this thread has one. zlib-rs resets an inflater to a 15-bit
/// window, which inflates what any narrower window made (and holds the same memory).
pub(crate) fn take_inflate() -> Option<Inflate> {
    INFLATE
        .try_with(|spares| spares.borrow_mut().pop())
        .ok()
        .flatten()
}

/// Lets go of an inflater: reset and kept for the next message, or freed.
pub(crate) fn give_inflate(mut stream: Inflate) {
    stream.reset(false);
    let _ = INFLATE.try_with(|spares| {
        let mut spares = spares.borrow_mut();
        if spares.len() < SPARES {
            spares.push(stream);
        }
    });
}
