//! End to end over loopback TCP: wsio beside tokio-tungstenite, fastwebsockets and
//! tokio-websockets, with raw TCP moving the same bytes as the ceiling, all in one run.
//!
//! Client and server live in this process on one tokio multi-thread runtime (one worker per
//! core). Connections are opened and upgraded (each library with its own handshake, except
//! fastwebsockets, which gets a minimal hand-written one) before anything is timed; the timed
//! part only moves messages. Every case is run for every library with the same sizes and counts,
//! and every library uses its default settings, with `TCP_NODELAY` on both ends.
//!
//! - `echo_{64B,1KiB,16KiB}_{1,100}conn_{1,16}inflight`: each client sends a burst of 1 or 16
//!   binary messages, then reads the 1 or 16 echoes, and again; the server echoes what it gets.
//!   Messages/s, counting each round trip once. Raw TCP sends a 4-byte length prefix and the
//!   payload in one vectored write and echoes the frame it read without copying it.
//! - `flood_{64B,1KiB}_client_to_server`: small binary messages one way, queued with `feed`
//!   (`Sink::feed`; fastwebsockets, which has no write queue, writes each frame at once) and
//!   flushed once at the end; timed until the server has received them all. Messages/s.
//! - `wss_bulk_1MiB_{client_to_server,server_to_client}`: the bulk cases over TLS 1.3 (wsio's
//!   rustls, the same cipher suite for all), with raw TLS writing the same bytes as the ceiling.
//! - `bulk_1MiB_{client_to_server,server_to_client}`: 1 MiB binary messages one way (the client
//!   masks its frames). Bytes/s. Raw TCP writes the same bytes in 1 MiB writes.
//! - `stream_{client_to_server,server_to_client}`: wsio's stream API, one message of the same
//!   bytes through `tokio::io::copy` (8 KiB buffer) into a `MessageWriter` and out of a
//!   `MessageReader`. Only wsio has this API: beside it run the peers' and raw TCP's bulk
//!   transfers of the same bytes again (so the ratios are measured together), and
//!   `raw_tcp_copy`, raw TCP with `tokio::io::copy` at both ends.
//!
//! Two ways to run it:
//!
//! ```text
//! cargo bench --bench compare                        # criterion, every case, ~6 min on 2 cores
//! WSIO_BENCH_QUICK=1 cargo bench --bench compare     # a smoke run: smaller counts, short timings
//! cargo bench --bench compare -- echo_64B            # a subset (criterion filter)
//! python3 scripts/bench_table.py                     # the tables, from target/criterion
//!
//! WSIO_BENCH_ROUNDS=20 cargo bench --bench compare [-- FILTER...]   # interleaved, ~2 min
//! ```
//!
//! Criterion measures one library after the other, each for a few seconds: on a machine where
//! other work comes and goes, a ratio between two figures taken seconds apart carries that
//! noise. The interleaved mode (`WSIO_BENCH_ROUNDS=N`) sets up every library of a case at once,
//! then runs N rounds in which each library does one iteration, in a rotating order; it prints
//! the median throughput and, for the ratios, the median of the per-round ratios — each taken
//! from runs a fraction of a second apart. It prints a markdown table and writes nothing.

#![allow(missing_docs)] // a benchmark binary

mod cases;
mod conn;

use std::time::Duration;

use criterion::{BenchmarkGroup, Criterion, SamplingMode, Throughput};
use tokio::runtime::Runtime;

use cases::Case;

/// Counts and timings: the full run, or a smoke run.
pub(crate) struct Scale {
    /// Round trips per connection per iteration with one connection (a multiple of 16).
    pub(crate) echo_one_conn: usize,
    /// Round trips per connection per iteration with 100 connections (a multiple of 16).
    pub(crate) echo_many_conns: usize,
    /// Messages per iteration in the flood cases.
    pub(crate) flood_messages: usize,
    /// 1 MiB messages per iteration in the bulk cases; the stream cases move as many bytes.
    pub(crate) bulk_messages: usize,
    warm_up: Duration,
    measurement: Duration,
}

/// `WSIO_BENCH_QUICK=1`, or a `cargo test` run (criterion's test mode, one iteration each):
/// the smoke-run scale.
fn quick() -> bool {
    let args: Vec<String> = std::env::args().collect();
    std::env::var_os("WSIO_BENCH_QUICK").is_some_and(|v| v != "0")
        || !args.iter().any(|a| a == "--bench")
        || args.iter().any(|a| a == "--test")
}

fn scale() -> Scale {
    if quick() {
        Scale {
            echo_one_conn: 256,
            echo_many_conns: 16,
            flood_messages: 2_000,
            bulk_messages: 8,
            warm_up: Duration::from_millis(200),
            measurement: Duration::from_millis(500),
        }
    } else {
        Scale {
            echo_one_conn: 2048,
            echo_many_conns: 64,
            flood_messages: 20_000,
            bulk_messages: 64,
            warm_up: Duration::from_secs(1),
            measurement: Duration::from_secs(2),
        }
    }
}

fn main() {
    // One worker thread per core: the runtime every case and every library shares.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let scale = scale();
    let cases = Case::all(&scale);
    let rounds = std::env::var("WSIO_BENCH_ROUNDS").ok();
    if let Some(rounds) = rounds.and_then(|r| r.parse::<usize>().ok()) {
        // Filters: the arguments that are not flags (cargo passes `--bench`).
        let filters: Vec<String> = std::env::args()
            .skip(1)
            .filter(|a| !a.starts_with('-'))
            .collect();
        interleaved(&rt, &cases, rounds.max(1), &filters);
        return;
    }
    let mut criterion = Criterion::default().without_plots().configure_from_args();
    for case in &cases {
        bench_case(&mut criterion, &rt, &scale, case);
    }
    criterion.final_summary();
}

// ---------------------------------------------------------------------------------------------
// Criterion.

fn bench_case(c: &mut Criterion, rt: &Runtime, scale: &Scale, case: &Case) {
    let mut group: BenchmarkGroup<'_, _> = c.benchmark_group(case.name());
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(scale.warm_up)
        .measurement_time(scale.measurement)
        .nresamples(10_000)
        .throughput(case.throughput());
    for &function in case.functions() {
        // Set up only if criterion's filter selects this benchmark; keep the connections
        // for every sample.
        let mut state = None;
        group.bench_function(function, |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    if state.is_none() {
                        state = Some(case.setup(function).await);
                    }
                    let state = state.as_mut().unwrap();
                    case.run(function, state, iters as usize).await
                })
            })
        });
        if let Some(state) = state {
            rt.block_on(Case::teardown(state));
        }
    }
    group.finish();
}

// ---------------------------------------------------------------------------------------------
// Interleaved rounds.

/// Targets of the benchmark issue: (group name prefix, minimum ratio, of the best peer or raw).
const TARGETS: &[(&str, f64, bool)] = &[
    ("echo_64B_", 1.2, true),
    ("echo_1KiB_", 1.2, true),
    ("bulk_1MiB_", 0.95, false),
    ("stream_", 0.9, false),
    ("flood_", 1.5, true),
    ("wss_bulk_1MiB_", 0.9, false),
];
const PEERS: [&str; 3] = ["tokio-tungstenite", "fastwebsockets", "tokio-websockets"];

fn interleaved(rt: &Runtime, cases: &[Case], rounds: usize, filters: &[String]) {
    println!(
        "Interleaved: {rounds} rounds per case; medians; ratios are medians of per-round ratios.\n"
    );
    println!("| case | wsio | best peer | wsio / best peer | raw TCP/TLS | wsio / raw | target |");
    println!("|---|---:|---|---:|---:|---:|---|");
    let mut details = Vec::new();
    for case in cases {
        let name = case.name();
        if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        let functions = case.functions();
        let amount = match case.throughput() {
            Throughput::Bytes(n) | Throughput::Elements(n) => n as f64,
            _ => 1.0,
        };
        let bytes = matches!(case.throughput(), Throughput::Bytes(_));
        // samples[f][round]: throughput of function f in that round.
        let samples: Vec<Vec<f64>> = rt.block_on(async {
            let mut states = Vec::new();
            for &f in functions {
                let mut state = case.setup(f).await;
                case.run(f, &mut state, 1).await; // warm-up
                states.push(state);
            }
            let mut samples = vec![Vec::with_capacity(rounds); functions.len()];
            for round in 0..rounds {
                for k in 0..functions.len() {
                    let i = (round + k) % functions.len();
                    let elapsed = case.run(functions[i], &mut states[i], 1).await;
                    samples[i].push(amount / elapsed.as_secs_f64());
                }
            }
            for state in states {
                Case::teardown(state).await;
            }
            samples
        });
        let index = |f: &str| functions.iter().position(|&g| g == f);
        let wsio = index("wsio").unwrap();
        // The ceiling: raw TCP, or raw TLS in the wss cases; the flood cases have none.
        let raw = index("raw_tcp").or_else(|| index("raw_tls"));
        let peers: Vec<usize> = PEERS.iter().filter_map(|p| index(p)).collect();
        let medians: Vec<f64> = samples.iter().map(|s| median(s)).collect();
        let best = *peers
            .iter()
            .max_by(|a, b| medians[**a].total_cmp(&medians[**b]))
            .unwrap();
        let per_round = |of: &dyn Fn(usize) -> f64| -> f64 {
            median(
                &(0..rounds)
                    .map(|r| samples[wsio][r] / of(r))
                    .collect::<Vec<_>>(),
            )
        };
        let vs_peer = per_round(&|r| peers.iter().map(|&p| samples[p][r]).fold(0.0, f64::max));
        let vs_raw = raw.map(|raw| per_round(&|r| samples[raw][r]));
        let target = TARGETS
            .iter()
            .find(|(prefix, _, _)| name.starts_with(prefix))
            .and_then(|&(_, goal, of_peer)| {
                let got = if of_peer { Some(vs_peer) } else { vs_raw }?;
                let verdict = if got >= goal { "met" } else { "**missed**" };
                let of = if of_peer { "best peer" } else { "raw" };
                Some(format!("≥{goal}x {of}: {verdict}"))
            })
            .unwrap_or_default();
        let ratio = |r: Option<f64>| r.map_or("–".to_owned(), |r| format!("{r:.2}x"));
        println!(
            "| {name} | {} | {} {} | {vs_peer:.2}x | {} | {} | {target} |",
            human(medians[wsio], bytes),
            functions[best],
            human(medians[best], bytes),
            raw.map_or("–".to_owned(), |raw| human(medians[raw], bytes)),
            ratio(vs_raw),
        );
        for (i, f) in functions.iter().enumerate() {
            let (lo, hi) = quartiles(&samples[i]);
            details.push(format!(
                "| {name} | {f} | {} | {} – {} | {} |",
                human(medians[i], bytes),
                human(lo, bytes),
                human(hi, bytes),
                ratio(raw.map(|raw| medians[i] / medians[raw])),
            ));
        }
    }
    println!("\n| case | function | median | p25 – p75 | median / raw |");
    println!("|---|---|---:|---:|---:|");
    for line in details {
        println!("{line}");
    }
}

fn sorted(values: &[f64]) -> Vec<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v
}

fn median(values: &[f64]) -> f64 {
    let v = sorted(values);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn quartiles(values: &[f64]) -> (f64, f64) {
    let v = sorted(values);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    (at(0.25), at(0.75))
}

fn human(value: f64, bytes: bool) -> String {
    if bytes {
        format!("{:.2} GiB/s", value / (1u64 << 30) as f64)
    } else {
        format!("{:.1} kmsg/s", value / 1e3)
    }
}
