//! Micro benchmarks of the sans-io core: frame header codec, payload masking, incremental UTF-8.
//!
//! Masking is measured in bytes/s beside the ceilings it should be judged against: a plain
//! `copy_from_slice` of the same size, and reference in-place maskers written here (64-bit
//! words, AVX2, AVX-512; the SIMD ones only when the CPU has them) — "the fastest variant you
//! can build on this CPU".
//!
//! ```text
//! cargo bench --bench micro
//! WSIO_BENCH_QUICK=1 cargo bench --bench micro      # a smoke run in seconds
//! cargo bench --bench micro -- mask_in_place/16KiB  # one group
//! ```

#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use wsio::proto::header::{FrameHeader, OpCode, MAX_HEADER_LEN};
use wsio::proto::mask::{apply_mask, mask_into};
use wsio::proto::utf8::Utf8Validator;

const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
const SIZES: [(usize, &str); 5] = [
    (16, "16B"),
    (64, "64B"),
    (1 << 10, "1KiB"),
    (16 << 10, "16KiB"),
    (1 << 20, "1MiB"),
];

/// `WSIO_BENCH_QUICK=1`, or a `cargo test` run (criterion's test mode): short timings.
fn quick() -> bool {
    let args: Vec<String> = std::env::args().collect();
    std::env::var_os("WSIO_BENCH_QUICK").is_some_and(|v| v != "0")
        || !args.iter().any(|a| a == "--bench")
        || args.iter().any(|a| a == "--test")
}

fn config() -> Criterion {
    let c = Criterion::default().without_plots();
    if quick() {
        c.sample_size(10)
            .warm_up_time(Duration::from_millis(100))
            .measurement_time(Duration::from_millis(300))
    } else {
        c.sample_size(30)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(1))
    }
}

/// A zeroed buffer of `len + 128` bytes and the index of its first 64-byte aligned byte.
fn aligned_buffer(len: usize) -> (Vec<u8>, usize) {
    let buf: Vec<u8> = (0..len + 128).map(|i| (i * 31 + 7) as u8).collect();
    let start = buf.as_ptr().align_offset(64);
    (buf, start)
}

// ---------------------------------------------------------------------------------------------
// Reference maskers: what this CPU can do, to judge `apply_mask` against.

/// 8 bytes per step with a 64-bit key, then byte by byte.
fn reference_u64(buf: &mut [u8], key: [u8; 4]) {
    let wide = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let mut chunks = buf.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let word = u64::from_ne_bytes((&*chunk).try_into().expect("8 bytes")) ^ wide;
        chunk.copy_from_slice(&word.to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= key[i % 4];
    }
}

#[cfg(target_arch = "x86_64")]
mod simd {
    use std::arch::x86_64::*;

    fn tail(buf: &mut [u8], key: [u8; 4]) {
        for (i, b) in buf.iter_mut().enumerate() {
            *b ^= key[i % 4];
        }
    }

    /// 128 bytes per step in four 32-byte registers, unaligned loads and stores.
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub(crate) unsafe fn avx2(buf: &mut [u8], key: [u8; 4]) {
        let k = _mm256_set1_epi32(i32::from_ne_bytes(key));
        let len = buf.len();
        let p = buf.as_mut_ptr();
        let mut i = 0;
        while i + 128 <= len {
            // SAFETY: `i + 128 <= len`, so the four 32-byte accesses at `p + i` are in bounds;
            // `loadu`/`storeu` accept any alignment.
            unsafe {
                let a = p.add(i) as *mut __m256i;
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
            // SAFETY: `i + 32 <= len`: one 32-byte access in bounds, any alignment.
            unsafe {
                let a = p.add(i) as *mut __m256i;
                _mm256_storeu_si256(a, _mm256_xor_si256(_mm256_loadu_si256(a), k));
            }
            i += 32;
        }
        // `i` is a multiple of 4: the key phase is unchanged.
        tail(&mut buf[i..], key);
    }

    /// 256 bytes per step in four 64-byte registers, unaligned loads and stores.
    ///
    /// # Safety
    /// The CPU must support AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(crate) unsafe fn avx512(buf: &mut [u8], key: [u8; 4]) {
        let k = _mm512_set1_epi32(i32::from_ne_bytes(key));
        let len = buf.len();
        let p = buf.as_mut_ptr();
        let mut i = 0;
        while i + 256 <= len {
            // SAFETY: `i + 256 <= len`, so the four 64-byte accesses at `p + i` are in bounds;
            // `loadu`/`storeu` accept any alignment.
            unsafe {
                let a = p.add(i) as *mut __m512i;
                let v0 = _mm512_xor_si512(_mm512_loadu_si512(a), k);
                let v1 = _mm512_xor_si512(_mm512_loadu_si512(a.add(1)), k);
                let v2 = _mm512_xor_si512(_mm512_loadu_si512(a.add(2)), k);
                let v3 = _mm512_xor_si512(_mm512_loadu_si512(a.add(3)), k);
                _mm512_storeu_si512(a, v0);
                _mm512_storeu_si512(a.add(1), v1);
                _mm512_storeu_si512(a.add(2), v2);
                _mm512_storeu_si512(a.add(3), v3);
            }
            i += 256;
        }
        while i + 64 <= len {
            // SAFETY: `i + 64 <= len`: one 64-byte access in bounds, any alignment.
            unsafe {
                let a = p.add(i) as *mut __m512i;
                _mm512_storeu_si512(a, _mm512_xor_si512(_mm512_loadu_si512(a), k));
            }
            i += 64;
        }
        tail(&mut buf[i..], key);
    }
}

// ---------------------------------------------------------------------------------------------

fn bench_mask_in_place(c: &mut Criterion) {
    for &(len, label) in &SIZES {
        let mut group = c.benchmark_group(format!("mask_in_place/{label}"));
        group.throughput(Throughput::Bytes(len as u64));
        let (mut buf, start) = aligned_buffer(len);
        group.bench_function("wsio_aligned", |b| {
            b.iter(|| apply_mask(black_box(&mut buf[start..start + len]), KEY, 0))
        });
        group.bench_function("wsio_buf+1", |b| {
            b.iter(|| apply_mask(black_box(&mut buf[start + 1..start + 1 + len]), KEY, 0))
        });
        for phase in 1..=3 {
            group.bench_function(format!("wsio_phase{phase}"), |b| {
                b.iter(|| apply_mask(black_box(&mut buf[start..start + len]), KEY, phase))
            });
        }
        group.bench_function("ref_u64", |b| {
            b.iter(|| reference_u64(black_box(&mut buf[start..start + len]), KEY))
        });
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx2") {
                group.bench_function("ref_avx2", |b| {
                    // SAFETY: AVX2 support was detected just above.
                    b.iter(|| unsafe { simd::avx2(black_box(&mut buf[start..start + len]), KEY) })
                });
                group.bench_function("ref_avx2_buf+1", |b| {
                    b.iter(|| {
                        // SAFETY: AVX2 support was detected just above.
                        unsafe { simd::avx2(black_box(&mut buf[start + 1..start + 1 + len]), KEY) }
                    })
                });
            }
            if is_x86_feature_detected!("avx512f") {
                group.bench_function("ref_avx512", |b| {
                    // SAFETY: AVX-512F support was detected just above.
                    b.iter(|| unsafe { simd::avx512(black_box(&mut buf[start..start + len]), KEY) })
                });
            }
        }
        let src = buf[start..start + len].to_vec();
        group.bench_function("memcpy", |b| {
            b.iter(|| buf[start..start + len].copy_from_slice(black_box(&src)))
        });
        group.finish();
    }
}

fn bench_mask_into(c: &mut Criterion) {
    for &(len, label) in &SIZES {
        let mut group = c.benchmark_group(format!("mask_into/{label}"));
        group.throughput(Throughput::Bytes(len as u64));
        let (src, s) = aligned_buffer(len);
        let (mut dst, d) = aligned_buffer(len);
        group.bench_function("wsio_aligned", |b| {
            b.iter(|| {
                mask_into(
                    black_box(&mut dst[d..d + len]),
                    black_box(&src[s..s + len]),
                    KEY,
                    0,
                )
            })
        });
        group.bench_function("wsio_unaligned", |b| {
            // Destination one byte in, source three bytes in, key phase 1.
            b.iter(|| {
                mask_into(
                    black_box(&mut dst[d + 1..d + 1 + len]),
                    black_box(&src[s + 3..s + 3 + len]),
                    KEY,
                    1,
                )
            })
        });
        group.bench_function("memcpy", |b| {
            b.iter(|| dst[d..d + len].copy_from_slice(black_box(&src[s..s + len])))
        });
        group.finish();
    }
}

fn bench_header(c: &mut Criterion) {
    let cases: [(&str, FrameHeader); 3] = [
        (
            "server_64B",
            FrameHeader {
                fin: true,
                rsv: 0,
                opcode: OpCode::Binary,
                mask: None,
                payload_len: 64,
            },
        ),
        (
            "client_16KiB",
            FrameHeader {
                fin: true,
                rsv: 0,
                opcode: OpCode::Text,
                mask: Some(KEY),
                payload_len: 16 << 10,
            },
        ),
        (
            "client_1MiB",
            FrameHeader {
                fin: false,
                rsv: 0,
                opcode: OpCode::Binary,
                mask: Some(KEY),
                payload_len: 1 << 20,
            },
        ),
    ];
    let mut group = c.benchmark_group("header");
    group.throughput(Throughput::Elements(1));
    for (name, header) in cases {
        let mut wire = [0u8; MAX_HEADER_LEN];
        let n = header.encode(&mut wire);
        group.bench_function(BenchmarkId::new("parse", name), |b| {
            b.iter(|| FrameHeader::parse(black_box(&wire[..n])))
        });
        group.bench_function(BenchmarkId::new("encode", name), |b| {
            let mut out = [0u8; MAX_HEADER_LEN];
            b.iter(|| black_box(&header).encode(black_box(&mut out)))
        });
    }
    group.finish();
}

/// `len` bytes of valid UTF-8 built from `unit`, cut at a character boundary.
fn text(unit: &str, len: usize) -> Vec<u8> {
    let mut s = String::with_capacity(len + unit.len());
    while s.len() < len {
        s.push_str(unit);
    }
    let mut end = len;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s.into_bytes()
}

fn bench_utf8(c: &mut Criterion) {
    const LEN: usize = 64 << 10;
    let inputs = [
        (
            "ascii",
            text(
                "The quick brown fox jumps over the lazy dog. 0123456789\n",
                LEN,
            ),
        ),
        // 2-, 3- and 4-byte sequences mixed with ASCII; 1 KiB pieces split code points.
        ("multibyte", text("κόσμε — 中文字符 𝄞 😀 ünïcödé, ", LEN)),
    ];
    for (name, bytes) in inputs {
        let mut group = c.benchmark_group(format!("utf8/{name}_64KiB"));
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function("wsio_validator_whole", |b| {
            b.iter(|| {
                let mut v = Utf8Validator::new();
                v.feed(black_box(&bytes)).unwrap();
                v.finish().unwrap();
            })
        });
        group.bench_function("wsio_validator_1KiB_pieces", |b| {
            b.iter(|| {
                let mut v = Utf8Validator::new();
                for piece in black_box(&bytes).chunks(1 << 10) {
                    v.feed(piece).unwrap();
                }
                v.finish().unwrap();
            })
        });
        group.bench_function("std_from_utf8", |b| {
            b.iter(|| std::str::from_utf8(black_box(&bytes)).is_ok())
        });
        group.finish();
    }
}

fn check_reference_maskers() {
    // The reference maskers must agree with wsio, or their figures mean nothing.
    let (orig, start) = aligned_buffer(1000);
    for len in [0, 3, 64, 100, 257, 999] {
        for off in 0..2 {
            let slice = &orig[start + off..start + off + len];
            let mut want = slice.to_vec();
            apply_mask(&mut want, KEY, 0);
            let mut got = slice.to_vec();
            reference_u64(&mut got, KEY);
            assert_eq!(got, want);
            #[cfg(target_arch = "x86_64")]
            {
                if is_x86_feature_detected!("avx2") {
                    let mut got = slice.to_vec();
                    // SAFETY: AVX2 support was detected just above.
                    unsafe { simd::avx2(&mut got, KEY) };
                    assert_eq!(got, want);
                }
                if is_x86_feature_detected!("avx512f") {
                    let mut got = slice.to_vec();
                    // SAFETY: AVX-512F support was detected just above.
                    unsafe { simd::avx512(&mut got, KEY) };
                    assert_eq!(got, want);
                }
            }
        }
    }
}

fn benches(c: &mut Criterion) {
    check_reference_maskers();
    bench_header(c);
    bench_mask_in_place(c);
    bench_mask_into(c);
    bench_utf8(c);
}

criterion_group! {
    name = micro;
    config = config();
    targets = benches
}
criterion_main!(micro);
