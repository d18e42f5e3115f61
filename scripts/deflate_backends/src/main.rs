//! deflate_backends: picks wsio's permessage-deflate (RFC 7692) backend by measurement.
//!
//! HOW TO RUN (from the wsio checkout, /work/main):
//!
//!     CARGO_TARGET_DIR=target/deflate_backends cargo run --release --manifest-path scripts/deflate_backends/Cargo.toml
//!
//! It measures, on raw deflate streams (no zlib header) driven the permessage-deflate way
//! (sync flush per message, trailing 00 00 ff ff stripped and re-appended before inflating):
//!   * zlib-rs 0.6 through its safe API (`Deflate::new_with_config` / `Inflate::new`), with
//!     (window bits, memLevel) = (15,8), (12,5), (9,1) at levels 6 and 1;
//!   * flate2 with its default pure-Rust miniz_oxide backend (window always 15);
//!   * flate2 with the C zlib backend (`zlib` feature, libz-sys on the system zlib), W=15 and
//!     W=12 (memLevel fixed at 8), plus raw libz-sys FFI with memLevel 5 and 1.
//! Cargo unifies one crate's features in one build, so the C-zlib half lives in its own
//! package, `czlib/` (its own `[workspace]`); this program runs it with `cargo run` (same
//! CARGO_TARGET_DIR) and merges its rows. Pass `--no-czlib` to skip it; set DEFLATE_RUNS=1 for
//! a single run per measurement instead of best of 3.
//!
//! Workloads: A = 20,000 JSON-like ~1 KiB messages, one compressor for all (context
//! takeover); B = the same with no context takeover, by reset() and by drop + new per
//! message (both sides); C = 64 MiB English-like text streamed as one message in 64 KiB
//! writes with a sync flush every MiB; D = the same with 64 MiB of random bytes.
//! Throughput is MB/s (10^6 bytes) of uncompressed bytes, best of 3 runs, std::time::Instant.
//! Memory is what the counting #[global_allocator] sees held by one state after a first
//! message (zlib-rs and flate2 allocate through the Rust allocator; the raw FFI rows install
//! zalloc/zfree that do too).
//!
//! It also prints probes: window bits 8, repeated / empty sync flushes, and a HuffmanOnly check
//! whose outputs are written next to the binary for `check_python.py`.

mod common;

use common::*;
use zlib_rs::{Deflate, DeflateConfig, DeflateFlush, Inflate, InflateFlush, Strategy};

#[global_allocator]
static GLOBAL: Counting = Counting;

// --- zlib-rs ---------------------------------------------------------------------------------

struct ZrsC(Deflate);
struct ZrsD(Inflate);

fn zrs_config(level: i32, w: i32, m: i32, strategy: Strategy) -> DeflateConfig {
    DeflateConfig { level, method: Default::default(), window_bits: -w, mem_level: m, strategy }
}

impl Engine for ZrsC {
    fn step(&mut self, input: &[u8], out: &mut Vec<u8>, room: usize, flush: bool) -> (usize, usize) {
        let (i0, o0) = (self.0.total_in(), self.0.total_out());
        let f = if flush { DeflateFlush::SyncFlush } else { DeflateFlush::NoFlush };
        self.0.compress_uninit(input, &mut out.spare_capacity_mut()[..room], f).expect("deflate");
        let (c, p) = ((self.0.total_in() - i0) as usize, (self.0.total_out() - o0) as usize);
        unsafe { out.set_len(out.len() + p) };
        (c, p)
    }
    fn reset(&mut self) {
        self.0.reset();
    }
}

impl Engine for ZrsD {
    fn step(&mut self, input: &[u8], out: &mut Vec<u8>, room: usize, _flush: bool) -> (usize, usize) {
        let (i0, o0) = (self.0.total_in(), self.0.total_out());
        self.0.decompress_uninit(input, &mut out.spare_capacity_mut()[..room], InflateFlush::SyncFlush).expect("inflate");
        let (c, p) = ((self.0.total_in() - i0) as usize, (self.0.total_out() - o0) as usize);
        unsafe { out.set_len(out.len() + p) };
        (c, p)
    }
    fn reset(&mut self) {
        // NB: zlib-rs 0.6 `Inflate::reset(false)` resets to window bits 15 (the default), not
        // to the window the state was created with; it still inflates smaller-window data.
        self.0.reset(false);
    }
}

fn zlib_rs(level: i32, w: i32, m: i32) -> Backend {
    Backend {
        name: "zlib-rs 0.6.8".into(),
        config: format!("L{level} W{w} M{m}"),
        new_comp: Box::new(move || Box::new(ZrsC(Deflate::new_with_config(zrs_config(level, w, m, Strategy::Default))))),
        new_decomp: Box::new(move || Box::new(ZrsD(Inflate::new(false, w as u8)))),
    }
}

// --- flate2 / miniz_oxide --------------------------------------------------------------------

struct MzC(flate2::Compress);
struct MzD(flate2::Decompress);

impl Engine for MzC {
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

impl Engine for MzD {
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

fn miniz(level: u32) -> Backend {
    Backend {
        name: "flate2 1.1 / miniz_oxide 0.9".into(),
        config: format!("L{level} W15 (fixed)"),
        new_comp: Box::new(move || Box::new(MzC(flate2::Compress::new(flate2::Compression::new(level), false)))),
        new_decomp: Box::new(|| Box::new(MzD(flate2::Decompress::new(false)))),
    }
}

// --- probes ----------------------------------------------------------------------------------

fn window8_probes() -> Vec<String> {
    let mut v = Vec::new();
    let r = quietly(|| drop(Deflate::new_with_config(zrs_config(6, 8, 8, Strategy::Default))));
    v.push(format!("PROBE\tzlib-rs Deflate window_bits -8 (raw): {}", match r {
        Ok(()) => "accepted".to_string(),
        Err(e) => format!("rejected, new_with_config panics: {e}"),
    }));
    let r = quietly(|| {
        drop(Deflate::new_with_config(DeflateConfig { window_bits: 8, ..zrs_config(6, 8, 8, Strategy::Default) }))
    });
    v.push(format!(
        "PROBE\tzlib-rs Deflate window_bits +8 (zlib wrapper): {} (deflate.rs init: `if window_bits == 8 {{ 9 }}`)",
        if r.is_ok() { "accepted, silently uses 9" } else { "rejected" }
    ));
    let r = quietly(|| drop(Inflate::new(false, 8)));
    v.push(format!("PROBE\tzlib-rs Inflate::new(false, 8): {}", if r.is_ok() { "accepted" } else { "rejected" }));
    v.push(
        "PROBE\tflate2 miniz_oxide: Compress::new has no window parameter (always 15); new_with_window_bits exists only with a C zlib feature"
            .into(),
    );
    v
}

/// Inflate `data` with a raw `w`-bit window, one output byte per call, so that every
/// back-reference must be served from the inflater's own window (a large output buffer would
/// let zlib copy from the output of the same call and hide a too-far distance).
fn inflate_with(w: u8, data: &[u8], expect: &[u8]) -> String {
    let r = quietly(|| {
        let mut d = Inflate::new(false, w);
        let mut out = Vec::with_capacity(expect.len() + 16);
        let mut input = data;
        loop {
            let (i0, o0) = (d.total_in(), d.total_out());
            let r = d.decompress_uninit(input, &mut out.spare_capacity_mut()[..1], InflateFlush::SyncFlush);
            let (c, p) = ((d.total_in() - i0) as usize, (d.total_out() - o0) as usize);
            unsafe { out.set_len(out.len() + p) };
            input = &input[c..];
            if let Err(e) = r {
                return Err(format!("{e:?} \"{}\" after {} bytes", d.error_message().unwrap_or(""), out.len()));
            }
            if c == 0 && p == 0 {
                break;
            }
        }
        Ok(out == expect)
    });
    match r {
        Ok(Ok(true)) => "ok, identical".into(),
        Ok(Ok(false)) => "inflated but DIFFERENT".into(),
        Ok(Err(e)) => format!("fails: {e}"),
        Err(p) => format!("panics: {p}"),
    }
}

/// HuffmanOnly: compress text that repeats itself at long distances; inflate with 9- and 8-bit
/// raw windows. Controls: the Default strategy at W15 and W9.
fn huffman_probe() -> Vec<String> {
    // 32 KiB of text, then the same 32 KiB again, four times: repeats at distance 32 KiB.
    let block = english_text(32 << 10, 11);
    let mut data = Vec::new();
    for _ in 0..4 {
        data.extend_from_slice(&block);
    }
    let dir = std::env::current_exe().unwrap().parent().unwrap().to_path_buf();
    let mut v = Vec::new();
    for (label, w, strategy) in [
        ("HuffmanOnly W15", 15, Strategy::HuffmanOnly),
        ("HuffmanOnly W9", 9, Strategy::HuffmanOnly),
        ("Default W15 (control)", 15, Strategy::Default),
        ("Default W9 (control)", 9, Strategy::Default),
    ] {
        let mut c = ZrsC(Deflate::new_with_config(zrs_config(6, w, 8, strategy)));
        let mut out = Vec::with_capacity(data.len() * 2);
        compress(&mut c, &data, &mut out, true);
        let file = format!("probe_{}.raw", label.split(' ').take(2).collect::<Vec<_>>().join("_"));
        std::fs::write(dir.join(&file), &out).unwrap();
        std::fs::write(dir.join("probe_plain.bin"), &data).unwrap();
        v.push(format!(
            "PROBE\tzlib-rs {label}: ratio {:.3}; raw inflate W9: {}; raw inflate W8: {}; file {}",
            out.len() as f64 / data.len() as f64,
            inflate_with(9, &out, &data),
            inflate_with(8, &out, &data),
            dir.join(&file).display()
        ));
    }
    v.push("PROBE\tnote: zlib-rs 0.6.8 inflate allocates a 32 KiB window for every W and did not reject the W15 control at W9/W8, so it cannot police window size; check_python.py (C zlib, which does reject it) is the authoritative window check".into());
    v
}

fn cpu() -> String {
    let s = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = s.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split(':').nth(1)).unwrap_or("?").trim();
    format!("{model}, {} logical CPUs", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mut lines = Vec::new();
    lines.extend(window8_probes());
    lines.extend(huffman_probe());

    let backends = vec![
        zlib_rs(6, 15, 8),
        zlib_rs(6, 12, 5),
        zlib_rs(6, 9, 1),
        zlib_rs(1, 15, 8),
        zlib_rs(1, 12, 5),
        zlib_rs(1, 9, 1),
        miniz(6),
        miniz(1),
    ];
    for b in &backends {
        lines.push(flush_probe(b));
    }
    eprintln!("generating workloads...");
    let w = workloads();
    eprintln!("A/B: {} messages, {} bytes (mean {} B)", w.msgs.len(), w.msgs_total, w.msgs_total / w.msgs.len());
    for b in &backends {
        lines.push(run_backend(b, &w));
    }
    drop(w);

    if !args.iter().any(|a| a == "--no-czlib") {
        let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/czlib/Cargo.toml");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        eprintln!("running the C zlib half: {cargo} run --release --manifest-path {manifest}");
        let out = std::process::Command::new(cargo)
            .args(["run", "--release", "--quiet", "--manifest-path", manifest])
            .stderr(std::process::Stdio::inherit())
            .output()
            .expect("run czlib");
        assert!(out.status.success(), "czlib half failed");
        lines.extend(String::from_utf8_lossy(&out.stdout).lines().map(str::to_string));
    }

    // Markdown report on stdout.
    println!("Machine: {} (shared; timings are noisy, best of {} runs)\n", cpu(), runs());
    println!(
        "| backend | config | A comp | A decomp | A ratio | B reset comp | B reset decomp | B new comp | B new decomp | B ratio | C comp | C decomp | C ratio | D comp | D decomp | D ratio | comp state B | decomp state B | freed on drop |"
    );
    println!("|{}", "---|".repeat(19));
    for l in lines.iter().filter(|l| l.starts_with("ROW\t")) {
        println!("| {} |", l["ROW\t".len()..].replace('\t', " | "));
    }
    println!();
    for l in lines.iter().filter(|l| l.starts_with("PROBE\t")) {
        println!("- {}", l["PROBE\t".len()..].replace('\t', ": "));
    }
    for l in lines.iter().filter(|l| l.starts_with("INFO\t")) {
        println!("- {}", l["INFO\t".len()..].replace('\t', ": "));
    }
}
