//! Payload masking (RFC 6455 §5.3).
//!
//! Masking XORs every payload byte with one of four key bytes, chosen by the byte's offset in
//! the payload. Every client send and every server receive passes through here, so it works a
//! wide word at a time (the fixed-width inner loop compiles to SIMD on every target we build for)
//! and can resume at any offset, because payloads reach us in arbitrary pieces.

/// Bytes XORed per step of the wide loop: a multiple of four, so the key phase never shifts.
const WIDE: usize = 32;

/// The key rotated so that index 0 applies to payload byte `offset`.
#[inline]
fn rotated(key: [u8; 4], offset: usize) -> [u8; 4] {
    let mut k = key;
    k.rotate_left(offset % 4);
    k
}

#[inline]
fn key_block(key: [u8; 4]) -> [u8; WIDE] {
    let mut block = [0u8; WIDE];
    for (i, b) in block.iter_mut().enumerate() {
        *b = key[i % 4];
    }
    block
}

/// XORs `buf` in place with `key`, where `buf[0]` is byte `offset` of the payload.
///
/// Masking is its own inverse, so this both masks and unmasks.
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    let key = rotated(key, offset);
    let block = key_block(key);
    let mut chunks = buf.chunks_exact_mut(WIDE);
    for chunk in &mut chunks {
        for (b, k) in chunk.iter_mut().zip(block.iter()) {
            *b ^= k;
        }
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= key[i % 4];
    }
}

/// Writes `src` masked with `key` into `dst` (same length), in one pass over the data.
/// `src[0]` is byte `offset` of the payload.
pub fn mask_into(dst: &mut [u8], src: &[u8], key: [u8; 4], offset: usize) {
    debug_assert_eq!(dst.len(), src.len());
    let key = rotated(key, offset);
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
