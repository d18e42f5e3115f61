//! Shared harness of the deflate backend measurement: the counting allocator, the workloads,
//! the permessage-deflate style drivers and the benchmark loop. Included by both binaries
//! (`src/main.rs` and, through `#[path]`, `czlib/src/main.rs`).

#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// Counting allocator: bytes currently allocated through the Rust global allocator.

pub struct Counting;
pub static CURRENT: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            CURRENT.fetch_add(l.size() as isize, Relaxed);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(l) };
        if !p.is_null() {
            CURRENT.fetch_add(l.size() as isize, Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) };
        CURRENT.fetch_sub(l.size() as isize, Relaxed);
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, l, new) };
        if !q.is_null() {
            CURRENT.fetch_add(new as isize - l.size() as isize, Relaxed);
        }
        q
    }
}

pub fn current() -> isize {
    CURRENT.load(Relaxed)
}

// ---------------------------------------------------------------------------------------------
// Deterministic workloads.

pub struct Rng(u64);
impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        // xorshift64*
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }
}

const SYMBOLS: &[&str] = &[
    "BTC-USD", "ETH-USD", "SOL-USD", "XRP-USD", "ADA-EUR", "DOGE-USD", "AAPL", "MSFT", "NVDA",
    "EUR-USD", "GBP-JPY", "LTC-BTC",
];
const USERS: &[&str] = &[
    "alice42", "bob", "carol_dev", "dmitri", "eve.sec", "frank99", "grace_h", "heidi", "ivan",
    "judy", "mallory", "oscar_t", "peggy", "trent", "victor", "walter_w",
];
const CHANNELS: &[&str] = &["general", "random", "dev-backend", "ops", "trading", "support"];

/// A vocabulary of pseudo-English words built from syllables; index 0 is the most frequent.
pub fn vocabulary() -> Vec<String> {
    const COMMON: &[&str] = &[
        "the", "of", "and", "to", "a", "in", "is", "it", "that", "for", "on", "was", "with",
        "as", "be", "at", "by", "this", "from", "or", "have", "an", "they", "which", "one",
        "you", "were", "her", "all", "she", "there", "would", "their", "we", "him", "been",
    ];
    const SYL: &[&str] = &[
        "ba", "con", "de", "ter", "mi", "sto", "ra", "ven", "lo", "pre", "tion", "al", "ing",
        "ex", "qui", "mor", "tan", "el", "vi", "su", "per", "com", "ly", "ment", "ous", "ri",
        "na", "pa", "ge", "ful",
    ];
    let mut r = Rng::new(7);
    let mut v: Vec<String> = COMMON.iter().map(|s| s.to_string()).collect();
    while v.len() < 3000 {
        let n = 1 + r.below(4);
        let w: String = (0..n).map(|_| r.pick(SYL)).collect();
        v.push(w);
    }
    v
}

fn words(r: &mut Rng, vocab: &[String], n: usize, out: &mut String) {
    for i in 0..n {
        // Skewed (Zipf-like) pick: u^3 concentrates on low indices.
        let u = (r.next() >> 11) as f64 / (1u64 << 53) as f64;
        let w = &vocab[((u * u * u) * vocab.len() as f64) as usize];
        if i > 0 {
            out.push(' ');
        }
        out.push_str(w);
    }
}

/// One JSON-like message of about 1 KiB: market data (trades, book updates, tickers) or chat.
pub fn json_message(r: &mut Rng, vocab: &[String], seq: u64) -> Vec<u8> {
    let target = 850 + r.below(350) as usize;
    let ts = 1_700_000_000_000u64 + seq * 37 + r.below(37);
    let mut s = String::with_capacity(target + 200);
    match r.below(4) {
        0 => {
            let sym = r.pick(SYMBOLS);
            s += &format!(r#"{{"type":"trades","channel":"market","symbol":"{sym}","seq":{seq},"ts":{ts},"data":["#);
            let mut first = true;
            while s.len() < target {
                if !first {
                    s.push(',');
                }
                first = false;
                let price = 100.0 + r.below(5_000_000) as f64 / 100.0;
                let size = r.below(1_000_000) as f64 / 10_000.0;
                let side = if r.below(2) == 0 { "buy" } else { "sell" };
                s += &format!(
                    r#"{{"id":{},"price":"{price:.2}","size":"{size:.4}","side":"{side}","ts":{}}}"#,
                    seq * 100 + r.below(100),
                    ts - r.below(500)
                );
            }
            s += "]}";
        }
        1 => {
            let sym = r.pick(SYMBOLS);
            s += &format!(r#"{{"type":"l2update","symbol":"{sym}","seq":{seq},"ts":{ts},"changes":{{"bids":["#);
            let mid = 1000.0 + r.below(100_000) as f64 / 10.0;
            for i in 0..12 {
                if i > 0 {
                    s.push(',');
                }
                s += &format!(r#"["{:.2}","{:.6}"]"#, mid - i as f64 * 0.5, r.below(100_000_000) as f64 / 1e6);
            }
            s += r#"],"asks":["#;
            let mut i = 0;
            while s.len() < target {
                if i > 0 {
                    s.push(',');
                }
                s += &format!(r#"["{:.2}","{:.6}"]"#, mid + (i + 1) as f64 * 0.5, r.below(100_000_000) as f64 / 1e6);
                i += 1;
            }
            s += "]}}";
        }
        2 => {
            let user = r.pick(USERS);
            let chan = r.pick(CHANNELS);
            s += &format!(r#"{{"type":"message","channel":"{chan}","user":"{user}","id":"m{seq:08}","ts":{ts},"text":""#);
            let n = (target.saturating_sub(s.len() + 120)) / 6;
            words(r, vocab, n.max(5), &mut s);
            s += &format!(
                r#"","edited":false,"reactions":[{{"emoji":"thumbsup","count":{}}},{{"emoji":"eyes","count":{}}}],"thread":null}}"#,
                r.below(20),
                r.below(5)
            );
        }
        _ => {
            s += &format!(r#"{{"type":"ticker","seq":{seq},"ts":{ts},"tickers":["#);
            let mut first = true;
            while s.len() < target {
                if !first {
                    s.push(',');
                }
                first = false;
                let last = 10.0 + r.below(10_000_000) as f64 / 100.0;
                s += &format!(
                    r#"{{"symbol":"{}","last":"{last:.2}","bid":"{:.2}","ask":"{:.2}","volume_24h":"{:.3}","change_pct":{:.2}}}"#,
                    r.pick(SYMBOLS),
                    last - 0.01,
                    last + 0.01,
                    r.below(100_000_000) as f64 / 1000.0,
                    (r.below(2000) as f64 - 1000.0) / 100.0
                );
            }
            s += "]}";
        }
    }
    s.into_bytes()
}

pub fn json_messages(n: usize) -> Vec<Vec<u8>> {
    let vocab = vocabulary();
    let mut r = Rng::new(1);
    (0..n as u64).map(|i| json_message(&mut r, &vocab, i)).collect()
}

/// English-like text: sentences of Zipf-distributed pseudo-words.
pub fn english_text(len: usize, seed: u64) -> Vec<u8> {
    let vocab = vocabulary();
    let mut r = Rng::new(seed);
    let mut s = String::with_capacity(len + 1024);
    while s.len() < len {
        let n = 4 + r.below(18) as usize;
        let start = s.len();
        words(&mut r, &vocab, n, &mut s);
        // Capitalise the sentence.
        if let Some(c) = s[start..].chars().next() {
            let up = c.to_ascii_uppercase().to_string();
            s.replace_range(start..start + 1, &up);
        }
        s.push_str(match r.below(10) {
            0 => "?\n",
            1 => ".\n\n",
            2 => "!",
            _ => ". ",
        });
    }
    s.truncate(len);
    s.into_bytes()
}

pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut r = Rng::new(seed);
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        v.extend_from_slice(&r.next().to_le_bytes());
    }
    v.truncate(len);
    v
}

// ---------------------------------------------------------------------------------------------
// Backends.

/// One compression or decompression state. `step` runs the engine once, writing at most `room`
/// bytes into the spare capacity of `out` (and growing its length), and returns (input
/// consumed, output produced). The drivers bound `room` (4 KiB to 64 KiB, by input size) as a
/// real implementation's output buffer would be bounded; this also matters for flate2, whose
/// miniz_oxide backend zero-fills the whole output slice it is given on every call.
/// Compressors use SyncFlush when `flush`, else NoFlush; decompressors always use SyncFlush.
pub trait Engine {
    fn step(&mut self, input: &[u8], out: &mut Vec<u8>, room: usize, flush: bool) -> (usize, usize);
    fn reset(&mut self);
}

pub struct Backend {
    pub name: String,
    pub config: String,
    pub new_comp: Box<dyn Fn() -> Box<dyn Engine>>,
    pub new_decomp: Box<dyn Fn() -> Box<dyn Engine>>,
}

pub const TAIL: [u8; 4] = [0, 0, 0xff, 0xff];

/// Compress `input` (all of it). With `flush`, finish with a sync flush (output ends 00 00 ff ff).
pub fn compress(e: &mut dyn Engine, mut input: &[u8], out: &mut Vec<u8>, flush: bool) {
    loop {
        if out.capacity() - out.len() < 4096 {
            out.reserve(out.capacity().max(1 << 16));
        }
        let room = (out.capacity() - out.len()).min((input.len() + input.len() / 16 + 256).clamp(4096, 65536));
        let (c, p) = e.step(input, out, room, flush);
        input = &input[c..];
        if input.is_empty() && (!flush || p < room) {
            return;
        }
        assert!(c > 0 || p > 0, "compressor made no progress");
    }
}

/// Inflate `input` (all of it) and everything it lets the inflater produce.
pub fn decompress(e: &mut dyn Engine, mut input: &[u8], out: &mut Vec<u8>) {
    loop {
        if out.capacity() - out.len() < 4096 {
            out.reserve(out.capacity().max(1 << 16));
        }
        let room = (out.capacity() - out.len()).min((input.len() * 8).clamp(4096, 65536));
        let (c, p) = e.step(input, out, room, true);
        input = &input[c..];
        if input.is_empty() && p < room {
            return;
        }
        assert!(c > 0 || p > 0, "decompressor made no progress");
    }
}

// ---------------------------------------------------------------------------------------------
// Measurements.

pub struct Workloads {
    pub msgs: Vec<Vec<u8>>,
    pub msgs_total: usize,
    pub text: Vec<u8>,
    pub random: Vec<u8>,
}

pub const N_MSGS: usize = 20_000;
pub const STREAM_LEN: usize = 64 << 20;
pub const WRITE: usize = 64 << 10;
pub const FLUSH_EVERY: usize = 1 << 20;
/// Runs per measurement (best of): 3, or the DEFLATE_RUNS environment variable.
pub fn runs() -> usize {
    std::env::var("DEFLATE_RUNS").ok().and_then(|s| s.parse().ok()).unwrap_or(3)
}

pub fn workloads() -> Workloads {
    let msgs = json_messages(N_MSGS);
    let msgs_total = msgs.iter().map(|m| m.len()).sum();
    Workloads { msgs, msgs_total, text: english_text(STREAM_LEN, 3), random: random_bytes(STREAM_LEN, 5) }
}

#[derive(Clone, Copy, PartialEq)]
pub enum Mode {
    Takeover,
    Reset,
    New,
}

fn mbps(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / 1e6
}

/// Messages workload (A: Takeover, B: Reset / New). Returns (comp MB/s, decomp MB/s, ratio).
pub fn bench_messages(b: &Backend, w: &Workloads, mode: Mode) -> (f64, f64, f64) {
    let mut best_c = Duration::MAX;
    let mut best_d = Duration::MAX;
    let mut ratio = 0.0;
    for _ in 0..runs() {
        let mut comp_all: Vec<u8> = Vec::with_capacity(w.msgs_total + (1 << 20));
        let mut ends: Vec<usize> = Vec::with_capacity(w.msgs.len());
        let t = Instant::now();
        let mut c = (b.new_comp)();
        for m in &w.msgs {
            match mode {
                Mode::Takeover => {}
                Mode::Reset => c.reset(),
                Mode::New => c = (b.new_comp)(),
            }
            compress(&mut *c, m, &mut comp_all, true);
            assert!(comp_all.ends_with(&TAIL), "{} {}: sync flush did not end in 00 00 ff ff", b.name, b.config);
            comp_all.truncate(comp_all.len() - 4);
            ends.push(comp_all.len());
        }
        drop(c);
        best_c = best_c.min(t.elapsed());
        ratio = comp_all.len() as f64 / w.msgs_total as f64;

        let mut plain: Vec<u8> = Vec::with_capacity(w.msgs_total + (1 << 20));
        let t = Instant::now();
        let mut d = (b.new_decomp)();
        let mut start = 0;
        for &end in &ends {
            match mode {
                Mode::Takeover => {}
                Mode::Reset => d.reset(),
                Mode::New => d = (b.new_decomp)(),
            }
            decompress(&mut *d, &comp_all[start..end], &mut plain);
            decompress(&mut *d, &TAIL, &mut plain);
            start = end;
        }
        drop(d);
        best_d = best_d.min(t.elapsed());
        // Round trip check (outside the timed part).
        let mut off = 0;
        for m in &w.msgs {
            assert!(plain[off..off + m.len()] == m[..], "{} {}: round trip mismatch", b.name, b.config);
            off += m.len();
        }
        assert_eq!(off, plain.len());
    }
    (mbps(w.msgs_total, best_c), mbps(w.msgs_total, best_d), ratio)
}

/// Streamed message (C, D): 64 KiB writes, a sync flush every 1 MiB.
pub fn bench_stream(b: &Backend, data: &[u8]) -> (f64, f64, f64) {
    let mut best_c = Duration::MAX;
    let mut best_d = Duration::MAX;
    let mut ratio = 0.0;
    for _ in 0..runs() {
        let mut comp: Vec<u8> = Vec::with_capacity(data.len() + data.len() / 64 + (1 << 20));
        let t = Instant::now();
        let mut c = (b.new_comp)();
        let mut off = 0;
        while off < data.len() {
            let end = (off + WRITE).min(data.len());
            let flush = end % FLUSH_EVERY == 0 || end == data.len();
            compress(&mut *c, &data[off..end], &mut comp, flush);
            off = end;
        }
        drop(c);
        best_c = best_c.min(t.elapsed());
        assert!(comp.ends_with(&TAIL));
        ratio = comp.len() as f64 / data.len() as f64;

        let mut plain: Vec<u8> = Vec::with_capacity(data.len() + (1 << 20));
        let t = Instant::now();
        let mut d = (b.new_decomp)();
        for chunk in comp.chunks(WRITE) {
            decompress(&mut *d, chunk, &mut plain);
        }
        drop(d);
        best_d = best_d.min(t.elapsed());
        assert!(plain == data, "{} {}: stream round trip mismatch", b.name, b.config);
    }
    (mbps(data.len(), best_c), mbps(data.len(), best_d), ratio)
}

/// Heap bytes held by one compressor and one decompressor after a first message.
/// Also returns whether dropping them gave every byte back.
pub fn memory(b: &Backend, msg: &[u8]) -> (isize, isize, bool) {
    let base = current();
    let mut out = Vec::with_capacity(8192);
    let mut plain = Vec::with_capacity(8192);
    let before = current();
    let mut c = (b.new_comp)();
    compress(&mut *c, msg, &mut out, true);
    let comp_bytes = current() - before;
    let before = current();
    let mut d = (b.new_decomp)();
    decompress(&mut *d, &out, &mut plain);
    let decomp_bytes = current() - before;
    assert_eq!(plain, msg);
    drop(c);
    drop(d);
    drop(out);
    drop(plain);
    (comp_bytes, decomp_bytes, current() == base)
}

/// One result line, tab separated, prefixed "ROW".
pub fn run_backend(b: &Backend, w: &Workloads) -> String {
    let (mc, md, freed) = memory(b, &w.msgs[0]);
    let a = bench_messages(b, w, Mode::Takeover);
    let br = bench_messages(b, w, Mode::Reset);
    let bn = bench_messages(b, w, Mode::New);
    let c = bench_stream(b, &w.text);
    let d = bench_stream(b, &w.random);
    let line = format!(
        "ROW\t{}\t{}\t{:.0}\t{:.0}\t{:.3}\t{:.0}\t{:.0}\t{:.0}\t{:.0}\t{:.3}\t{:.0}\t{:.0}\t{:.3}\t{:.0}\t{:.0}\t{:.4}\t{}\t{}\t{}",
        b.name, b.config, a.0, a.1, a.2, br.0, br.1, bn.0, bn.1, bn.2, c.0, c.1, c.2, d.0, d.1, d.2, mc, md,
        if freed { "yes" } else { "NO" }
    );
    eprintln!("{line}");
    line
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(" ")
}

/// The flush questions for one backend: bytes of (a) compressing empty input with SyncFlush on
/// a fresh stream, (b) a second SyncFlush with no new input after a message.
pub fn flush_probe(b: &Backend) -> String {
    let mut c = (b.new_comp)();
    let mut out = Vec::with_capacity(1024);
    compress(&mut *c, b"", &mut out, true);
    let empty_fresh = hex(&out);
    let mut c = (b.new_comp)();
    let mut out = Vec::with_capacity(1024);
    compress(&mut *c, b"hello hello hello", &mut out, true);
    let n = out.len();
    compress(&mut *c, b"", &mut out, true);
    let second = hex(&out[n..]);
    // Does the extra output still inflate to the same message?
    let mut d = (b.new_decomp)();
    let mut plain = Vec::with_capacity(1024);
    decompress(&mut *d, &out, &mut plain);
    format!(
        "PROBE\t{} {}\tempty input + SyncFlush on fresh stream: [{}]; second SyncFlush, no input: [{}] ({} bytes); inflates back: {}",
        b.name,
        b.config,
        empty_fresh,
        second,
        out.len() - n,
        plain == b"hello hello hello"
    )
}

/// Run `f`, turning a panic into Err(message) without printing it.
pub fn quietly<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    std::panic::set_hook(hook);
    r.map_err(|e| {
        e.downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default()
            .replace('\n', " ")
    })
}
