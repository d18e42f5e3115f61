//! Payload masking (RFC 6455 §5.3).
//!
//! Masking XORs every payload byte with one of four key bytes, chosen by the byte's offset in
//! the payload. Every client send and every server receive passes through here, so it works a
//! wide word at a time (the fixed-width inner loop compiles to SIMD on every target we build for)
//! and can resume at any offset, because payloads reach us in arbitrary pieces.

/// Bytes XORed per step of the portable wide loop: a multiple of four, so the key phase never
/// shifts.
const WIDE: usize = 32;

/// The key rotated so that index 0 applies to payload byte `offset`.
#[inline]
fn rotated(key: [u8; 4], offset: usize) -> [u8; 4] {
    // As a little-endian word, shifting the key left by one byte is a right rotation by 8 bits
    // (one instruction, where `<[u8]>::rotate_left` is a general algorithm).
    u32::from_le_bytes(key)
        .rotate_right(8 * (offset % 4) as u32)
        .to_le_bytes()
}

#[inline(always)]
fn key_block(key: [u8; 4]) -> [u8; WIDE] {
    let mut block = [0u8; WIDE];
    for (i, b) in block.iter_mut().enumerate() {
        *b = key[i % 4];
    }
    block
}

/// The portable masking loop, in safe code: the fixed-width inner loop compiles to vector XORs
/// of the target's baseline (SSE2 on x86-64). On x86-64 with AVX2 (detected at run time) the
/// explicit AVX2 loop below takes over for all but short buffers.
#[inline(always)]
fn mask_in_place_body(buf: &mut [u8], key: [u8; 4]) {
    let block = key_block(key);
    let mut chunks = buf.chunks_exact_mut(WIDE);
    for chunk in &mut chunks {
        for (b, k) in chunk.iter_mut().zip(block.iter()) {
            *b ^= k;
        }
    }
    mask_tail(chunks.into_remainder(), key);
}

/// Masks a short remainder: four bytes at a time, then the last few.
#[inline(always)]
fn mask_tail(buf: &mut [u8], key: [u8; 4]) {
    let word = u32::from_ne_bytes(key);
    let mut words = buf.chunks_exact_mut(4);
    for w in &mut words {
        let v = u32::from_ne_bytes([w[0], w[1], w[2], w[3]]) ^ word;
        w.copy_from_slice(&v.to_ne_bytes());
    }
    for (b, k) in words.into_remainder().iter_mut().zip(key) {
        *b ^= k;
    }
}

#[inline(always)]
fn mask_into_body(dst: &mut [u8], src: &[u8], key: [u8; 4]) {
    let block = key_block(key);
    let mut d = dst.chunks_exact_mut(WIDE);
    let mut s = src.chunks_exact(WIDE);
    for (dc, sc) in (&mut d).zip(&mut s) {
        for ((o, i), k) in dc.iter_mut().zip(sc.iter()).zip(block.iter()) {
            *o = i ^ k;
        }
    }
    for (i, (o, x)) in d.into_remainder().iter_mut().zip(s.remainder()).enumerate() {
        *o = x ^ key[i % 4];
    }
}

/// Below this size the portable loop is as fast as the AVX2 one.
#[cfg(target_arch = "x86_64")]
const SIMD_MIN: usize = 64;

#[cfg(target_arch = "x86_64")]
mod avx2 {
    //! AVX2 masking: 128 bytes per step in four unaligned 32-byte loads and stores. The safe
    //! portable loop reaches about 0.7-0.9x of this (LLVM keeps its key block in memory and
    //! handles unaligned buffers poorly); see `benches/micro.rs`.

    use std::arch::x86_64::{
        __m256i, _mm256_loadu_si256, _mm256_set1_epi32, _mm256_storeu_si256, _mm256_xor_si256,
    };

    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn mask_in_place(buf: &mut [u8], key: [u8; 4]) {
        let k = _mm256_set1_epi32(i32::from_ne_bytes(key));
        let len = buf.len();
        let p = buf.as_mut_ptr();
        let mut i = 0;
        while i + 128 <= len {
            // SAFETY: `i + 128 <= len`, so the four 32-byte accesses from `p + i` stay inside
            // `buf`; `loadu`/`storeu` take any alignment.
            unsafe {
                let a = p.add(i).cast::<__m256i>();
                let v0 = _mm256_xor_si256(_mm256_loadu_si256(a), k);
                let v1 = _mm256_xor_si256(_mm256_loadu_si256(a.add(1)), k);
                let v2 = _mm256_xor_si256(_mm256_loadu_si256(a.add(2)), k);
                let v3 = _mm256_xor_si256(_mm256_loadu_si256(a.add(3)), k);
                _mm256_storeu_si256(a, v0);
                _mm256_storeu_si256(a.add(1), v1);
                _mm256_storeu_si256(a.add(2), v2);
                _mm256_storeu_si256(a.add(3), v3);
            }
            i += 128;
        }
        while i + 32 <= len {
            // SAFETY: `i + 32 <= len`: one 32-byte access inside `buf`, any alignment.
            unsafe {
                let a = p.add(i).cast::<__m256i>();
                _mm256_storeu_si256(a, _mm256_xor_si256(_mm256_loadu_si256(a), k));
            }
            i += 32;
        }
        // `i` is a multiple of 4, so the key phase of the rest is unchanged.
        super::mask_in_place_body(&mut buf[i..], key);
    }

    /// Writes `src` masked with `key` to `dst`.
    ///
    /// # Safety
    /// The CPU must support AVX2, and `dst` must be valid for writes of `src.len()` bytes and
    /// not overlap `src`. Every one of those bytes is written (so they may start uninitialised).
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn mask_into_ptr(dst: *mut u8, src: &[u8], key: [u8; 4]) {
        let k = _mm256_set1_epi32(i32::from_ne_bytes(key));
        let len = src.len();
        let s = src.as_ptr();
        let mut i = 0;
        while i + 128 <= len {
            // SAFETY: `i + 128 <= len`: the 32-byte reads from `s + i` stay inside `src`, and the
            // writes from `dst + i` inside the `len` writable bytes the caller promised;
            // `loadu`/`storeu` take any alignment.
            unsafe {
                let a = s.add(i).cast::<__m256i>();
                let o = dst.add(i).cast::<__m256i>();
                let v0 = _mm256_xor_si256(_mm256_loadu_si256(a), k);
                let v1 = _mm256_xor_si256(_mm256_loadu_si256(a.add(1)), k);
                let v2 = _mm256_xor_si256(_mm256_loadu_si256(a.add(2)), k);
                let v3 = _mm256_xor_si256(_mm256_loadu_si256(a.add(3)), k);
                _mm256_storeu_si256(o, v0);
                _mm256_storeu_si256(o.add(1), v1);
                _mm256_storeu_si256(o.add(2), v2);
                _mm256_storeu_si256(o.add(3), v3);
            }
            i += 128;
        }
        while i + 32 <= len {
            // SAFETY: `i + 32 <= len`: one 32-byte read and write inside the two regions.
            unsafe {
                let o = dst.add(i).cast::<__m256i>();
                _mm256_storeu_si256(o, _mm256_xor_si256(_mm256_loadu_si256(s.add(i).cast()), k));
            }
            i += 32;
        }
        while i < len {
            // SAFETY: `i < len`: inside both regions.
            unsafe { dst.add(i).write(*s.add(i) ^ key[i % 4]) };
            i += 1;
        }
    }

    pub(super) fn available() -> bool {
        std::arch::is_x86_feature_detected!("avx2")
    }
}

/// XORs `buf` in place with `key`, where `buf[0]` is byte `offset` of the payload.
///
/// Masking is its own inverse, so this both masks and unmasks.
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    let key = rotated(key, offset);
    #[cfg(target_arch = "x86_64")]
    if buf.len() >= SIMD_MIN && avx2::available() {
        // SAFETY: the CPU supports AVX2, checked at run time just above.
        unsafe { avx2::mask_in_place(buf, key) };
        return;
    }
    mask_in_place_body(buf, key);
}

/// Writes `src` masked with `key` into `dst` (same length), in one pass over the data.
/// `src[0]` is byte `offset` of the payload.
pub fn mask_into(dst: &mut [u8], src: &[u8], key: [u8; 4], offset: usize) {
    debug_assert_eq!(dst.len(), src.len());
    let key = rotated(key, offset);
    #[cfg(target_arch = "x86_64")]
    if src.len() >= SIMD_MIN && avx2::available() {
        let src = &src[..src.len().min(dst.len())];
        // SAFETY: the CPU supports AVX2 (checked just above); `dst` is an initialised,
        // exclusively borrowed slice at least `src.len()` long, so it is valid for those writes
        // and cannot overlap `src`.
        unsafe { avx2::mask_into_ptr(dst.as_mut_ptr(), src, key) };
        return;
    }
    mask_into_body(dst, src, key);
}

/// Appends `src` masked with `key` to `buf`, where `src[0]` is byte `offset` of the payload.
/// The bytes are written once, straight into the buffer's spare capacity: no zero-fill first.
pub fn extend_masked(buf: &mut bytes::BytesMut, src: &[u8], key: [u8; 4], offset: usize) {
    let key = rotated(key, offset);
    buf.reserve(src.len());
    #[cfg(target_arch = "x86_64")]
    if src.len() >= SIMD_MIN && avx2::available() {
        let spare = buf.spare_capacity_mut();
        debug_assert!(spare.len() >= src.len());
        // SAFETY: the CPU supports AVX2 (checked just above); `reserve` made at least
        // `src.len()` bytes of spare capacity, which the exclusive borrow of `buf` keeps apart
        // from `src`.
        unsafe { avx2::mask_into_ptr(spare.as_mut_ptr().cast(), src, key) };
        // SAFETY: `mask_into_ptr` initialised the `src.len()` bytes after the old length.
        unsafe { buf.set_len(buf.len() + src.len()) };
        return;
    }
    let start = buf.len();
    buf.extend_from_slice(src);
    mask_in_place_body(&mut buf[start..], key);
}

/// The portable versions, for tests that compare them with the dispatched ones.
#[cfg(test)]
fn apply_mask_portable(buf: &mut [u8], key: [u8; 4], offset: usize) {
    mask_in_place_body(buf, rotated(key, offset));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(buf: &mut [u8], key: [u8; 4], offset: usize) {
        for (i, b) in buf.iter_mut().enumerate() {
            *b ^= key[(offset + i) % 4];
        }
    }

    #[test]
    fn rfc_example() {
        let mut hello = *b"Hello";
        apply_mask(&mut hello, [0x37, 0xfa, 0x21, 0x3d], 0);
        assert_eq!(hello, [0x7f, 0x9f, 0x4d, 0x51, 0x58]);
    }

    #[test]
    fn matches_reference_at_every_offset_length_and_alignment() {
        let key = [0xde, 0xad, 0xbe, 0xef];
        let data: Vec<u8> = (0..300u32).map(|i| (i * 7 + 3) as u8).collect();
        for start in 0..8 {
            for len in [0, 1, 3, 4, 5, 31, 32, 33, 64, 100, 291] {
                for offset in 0..8 {
                    let src = &data[start..start + len];
                    let mut want = src.to_vec();
                    reference(&mut want, key, offset);
                    let mut got = src.to_vec();
                    apply_mask(&mut got, key, offset);
                    assert_eq!(got, want, "apply start {start} len {len} offset {offset}");
                    let mut out = vec![0u8; len];
                    mask_into(&mut out, src, key, offset);
                    assert_eq!(out, want, "into start {start} len {len} offset {offset}");
                }
            }
        }
    }

    #[test]
    fn vector_and_portable_versions_agree_on_random_lengths_offsets_and_alignments() {
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let data: Vec<u8> = (0..5000).map(|_| next() as u8).collect();
        for _ in 0..2000 {
            let start = (next() % 64) as usize;
            let len = (next() % (data.len() as u64 - 64)) as usize;
            let offset = (next() % 7) as usize;
            let key = (next() as u32).to_ne_bytes();
            let src = &data[start..start + len];
            let mut want = src.to_vec();
            reference(&mut want, key, offset);
            let mut portable = src.to_vec();
            apply_mask_portable(&mut portable, key, offset);
            assert_eq!(portable, want);
            let mut dispatched = src.to_vec();
            apply_mask(&mut dispatched, key, offset);
            assert_eq!(dispatched, want);
            let mut into = vec![0u8; len];
            mask_into(&mut into, src, key, offset);
            assert_eq!(into, want);
            let mut appended = bytes::BytesMut::from(&b"head"[..]);
            extend_masked(&mut appended, src, key, offset);
            assert_eq!(&appended[..4], b"head");
            assert_eq!(&appended[4..], &want[..]);
        }
    }

    #[test]
    fn resumes_across_arbitrary_splits() {
        let key = [1, 2, 3, 4];
        let data: Vec<u8> = (0..200u8).collect();
        let mut want = data.clone();
        reference(&mut want, key, 0);
        for split in 0..data.len() {
            let mut got = data.clone();
            let (a, b) = got.split_at_mut(split);
            apply_mask(a, key, 0);
            apply_mask(b, key, split);
            assert_eq!(got, want);
        }
    }
}
