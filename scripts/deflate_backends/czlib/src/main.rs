//! The C zlib half of deflate_backends (see ../../src/main.rs, which runs this program itself).
//! A separate package because flate2's `zlib` feature would otherwise unify with the default
//! miniz_oxide build. To run it alone, from /work/main:
//!
//!     CARGO_TARGET_DIR=target/deflate_backends cargo run --release --manifest-path scripts/deflate_backends/czlib/Cargo.toml
//!
//! Prints ROW / PROBE / INFO lines on stdout for the parent to merge.

#[path = "../../src/common.rs"]
mod common;

use common::*;
use libz_sys as z;
use std::alloc::{alloc, dealloc, Layout};
use std::ffi::{c_int, c_void, CStr};

#[global_allocator]
static GLOBAL: Counting = Counting;

// --- flate2 with the C zlib backend ----------------------------------------------------------

struct FzC(flate2::Compress);
struct FzD(flate2::Decompress);

impl Engine for FzC {
    fn step(&mut self, input: &[u8], out: &mut Vec<u8>, room: usize, flush: bool) -> (usize, usize) {
        let (i0, o0) = (self.0.total_in(), self.0.total_out());
        let f = if flush { flate2::FlushCompress::Sync } else { flate2::FlushCompress::None };
        self.0.compress_uninit(input, &mut out.spare_capacity_mut()[..room], f).expect("deflate");
        let (c, p) = ((self.0.total_in() - i0) as usize, (self.0.total_out() - o0) as usize);
        unsafe { out.set_len(out.len() + p) };
        (c, p)
    }
    fn reset(&mut self) {
        self.0.reset();
    }
}

impl Engine for FzD {
    fn step(&mut self, input: &[u8], out: &mut Vec<u8>, room: usize, _flush: bool) -> (usize, usize) {
        let (i0, o0) = (self.0.total_in(), self.0.total_out());
        self.0.decompress_uninit(input, &mut out.spare_capacity_mut()[..room], flate2::FlushDecompress::Sync).expect("inflate");
        let (c, p) = ((self.0.total_in() - i0) as usize, (self.0.total_out() - o0) as usize);
        unsafe { out.set_len(out.len() + p) };
        (c, p)
    }
    fn reset(&mut self) {
        self.0.reset(false);
    }
}

fn flate2_zlib(level: u32, w: u8) -> Backend {
    Backend {
        name: "flate2 1.1 / C zlib (libz-sys)".into(),
        config: format!("L{level} W{w} M8 (fixed)"),
        new_comp: Box::new(move || {
            Box::new(FzC(flate2::Compress::new_with_window_bits(flate2::Compression::new(level), false, w)))
        }),
        new_decomp: Box::new(move || Box::new(FzD(flate2::Decompress::new_with_window_bits(false, w)))),
    }
}

// --- raw libz-sys FFI, any memLevel ----------------------------------------------------------

// zalloc / zfree through the Rust global allocator, so the counting allocator sees them.
unsafe extern "C" fn zalloc(_: *mut c_void, items: z::uInt, size: z::uInt) -> *mut c_void {
    let n = items as usize * size as usize + 16;
    unsafe {
        let p = alloc(Layout::from_size_align_unchecked(n, 16));
        if p.is_null() {
            return p.cast();
        }
        (p as *mut usize).write(n);
        p.add(16).cast()
    }
}
unsafe extern "C" fn zfree(_: *mut c_void, p: *mut c_void) {
    unsafe {
        let p = (p as *mut u8).sub(16);
        let n = (p as *mut usize).read();
        dealloc(p, Layout::from_size_align_unchecked(n, 16));
    }
}

fn new_stream() -> Box<z::z_stream> {
    Box::new(z::z_stream {
        next_in: std::ptr::null_mut(),
        avail_in: 0,
        total_in: 0,
        next_out: std::ptr::null_mut(),
        avail_out: 0,
        total_out: 0,
        msg: std::ptr::null_mut(),
        state: std::ptr::null_mut(),
        zalloc,
        zfree,
        opaque: std::ptr::null_mut(),
        data_type: 0,
        adler: 0,
        reserved: 0,
    })
}

struct RawC(Box<z::z_stream>);
struct RawD(Box<z::z_stream>);

fn raw_deflate_init(level: i32, w: i32, m: i32) -> Result<RawC, c_int> {
    let mut s = new_stream();
    let rc = unsafe {
        z::deflateInit2_(&mut *s, level, z::Z_DEFLATED, -w, m, z::Z_DEFAULT_STRATEGY, z::zlibVersion(), size_of::<z::z_stream>() as c_int)
    };
    if rc == z::Z_OK { Ok(RawC(s)) } else { Err(rc) }
}

fn raw_inflate_init(w: i32) -> Result<RawD, c_int> {
    let mut s = new_stream();
    let rc = unsafe { z::inflateInit2_(&mut *s, -w, z::zlibVersion(), size_of::<z::z_stream>() as c_int) };
    if rc == z::Z_OK { Ok(RawD(s)) } else { Err(rc) }
}

fn raw_step(s: &mut z::z_stream, input: &[u8], out: &mut Vec<u8>, room: usize, f: impl FnOnce(&mut z::z_stream) -> c_int) -> (usize, usize) {
    let spare = &mut out.spare_capacity_mut()[..room];
    s.next_in = input.as_ptr().cast_mut();
    s.avail_in = input.len().min(u32::MAX as usize) as u32;
    s.next_out = spare.as_mut_ptr().cast();
    s.avail_out = spare.len().min(u32::MAX as usize) as u32;
    let (ai, ao) = (s.avail_in, s.avail_out);
    let rc = f(s);
    assert!(rc == z::Z_OK || rc == z::Z_BUF_ERROR || rc == z::Z_STREAM_END, "zlib rc {rc}");
    let (c, p) = ((ai - s.avail_in) as usize, (ao - s.avail_out) as usize);
    unsafe { out.set_len(out.len() + p) };
    (c, p)
}

impl Engine for RawC {
    fn step(&mut self, input: &[u8], out: &mut Vec<u8>, room: usize, flush: bool) -> (usize, usize) {
        let f = if flush { z::Z_SYNC_FLUSH } else { z::Z_NO_FLUSH };
        raw_step(&mut self.0, input, out, room, |s| unsafe { z::deflate(s, f) })
    }
    fn reset(&mut self) {
        unsafe { z::deflateReset(&mut *self.0) };
    }
}
impl Drop for RawC {
    fn drop(&mut self) {
        unsafe { z::deflateEnd(&mut *self.0) };
    }
}
impl Engine for RawD {
    fn step(&mut self, input: &[u8], out: &mut Vec<u8>, room: usize, _flush: bool) -> (usize, usize) {
        raw_step(&mut self.0, input, out, room, |s| unsafe { z::inflate(s, z::Z_SYNC_FLUSH) })
    }
    fn reset(&mut self) {
        unsafe { z::inflateReset(&mut *self.0) };
    }
}
impl Drop for RawD {
    fn drop(&mut self) {
        unsafe { z::inflateEnd(&mut *self.0) };
    }
}

fn raw(level: i32, w: i32, m: i32) -> Backend {
    Backend {
        name: "libz-sys raw FFI (C zlib)".into(),
        config: format!("L{level} W{w} M{m}"),
        new_comp: Box::new(move || Box::new(raw_deflate_init(level, w, m).expect("deflateInit2"))),
        new_decomp: Box::new(move || Box::new(raw_inflate_init(w).expect("inflateInit2"))),
    }
}

fn main() {
    let version = unsafe { CStr::from_ptr(z::zlibVersion()) }.to_string_lossy().into_owned();
    println!("INFO\tC zlib version linked by libz-sys\t{version}");
    let r = quietly(|| drop(flate2::Compress::new_with_window_bits(flate2::Compression::new(6), false, 8)));
    println!("PROBE\tflate2 (C zlib) Compress::new_with_window_bits(.., false, 8): {}", match r {
        Ok(()) => "accepted".into(),
        Err(e) => format!("rejected, panics: {e}"),
    });
    let r = quietly(|| drop(flate2::Decompress::new_with_window_bits(false, 8)));
    println!("PROBE\tflate2 (C zlib) Decompress::new_with_window_bits(false, 8): {}", match r {
        Ok(()) => "accepted".into(),
        Err(e) => format!("rejected, panics: {e}"),
    });
    println!(
        "PROBE\tC zlib {version} raw deflateInit2(windowBits -8): {}; raw inflateInit2(-8): {}",
        match raw_deflate_init(6, 8, 8) { Ok(_) => "Z_OK".to_string(), Err(rc) => format!("rc {rc} (Z_STREAM_ERROR = -2)") },
        match raw_inflate_init(8) { Ok(_) => "Z_OK".to_string(), Err(rc) => format!("rc {rc}") },
    );

    let backends = vec![
        flate2_zlib(6, 15),
        flate2_zlib(6, 12),
        flate2_zlib(1, 15),
        flate2_zlib(1, 12),
        raw(6, 12, 5),
        raw(6, 9, 1),
        raw(1, 12, 5),
        raw(1, 9, 1),
    ];
    for b in &backends {
        println!("{}", flush_probe(b));
    }
    let w = workloads();
    for b in &backends {
        println!("{}", run_backend(b, &w));
    }
}
