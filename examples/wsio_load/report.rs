//! The final report: as text for people, as JSON for scripts.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::options::{OnOff, Options};
use crate::outcome::Tally;

/// Everything a run measured. Times are in microseconds, rates per second of the measured
/// window (`duration_s`, the warm-up excluded).
#[derive(Debug, Serialize)]
pub(crate) struct Report {
    pub(crate) target: String,
    /// `closed_loop`, `open_loop` or `upload`.
    pub(crate) mode: &'static str,
    /// `binary` or `text`.
    pub(crate) kind: &'static str,
    pub(crate) size_min: u64,
    pub(crate) size_max: u64,
    pub(crate) in_flight: u32,
    /// Open loop: messages per second asked for, in total.
    pub(crate) rate: Option<f64>,
    pub(crate) compression_offered: bool,
    pub(crate) warmup_s: f64,
    pub(crate) duration_s: f64,
    pub(crate) connections: Connections,
    /// Messages scheduled in the measured window, and the echoes of those.
    pub(crate) messages_sent: u64,
    pub(crate) messages_received: u64,
    pub(crate) bytes_sent: u64,
    pub(crate) bytes_received: u64,
    pub(crate) messages_per_sec: f64,
    pub(crate) sent_bytes_per_sec: f64,
    pub(crate) received_bytes_per_sec: f64,
    /// From each message's scheduled send time to its echo.
    pub(crate) latency_us: Percentiles,
    /// Open loop: how late the pacer thread released each message after its scheduled time;
    /// part of `latency_us`, which counts from the scheduled time. A few microseconds when
    /// the client keeps up.
    pub(crate) pacer_lag_us: Percentiles,
    /// TCP connect.
    pub(crate) connect_us: Percentiles,
    /// TLS (for `wss://`) and the WebSocket handshake.
    pub(crate) handshake_us: Percentiles,
    /// By kind: how many, and the first one's message.
    pub(crate) errors: BTreeMap<&'static str, ErrorCount>,
    pub(crate) cpu: Cpu,
}

#[derive(Debug, Serialize)]
pub(crate) struct Connections {
    /// Asked for, and attempted before the run ended.
    pub(crate) requested: u32,
    pub(crate) attempted: u32,
    /// The handshake succeeded.
    pub(crate) opened: u64,
    /// Ran to the end without an error.
    pub(crate) completed: u64,
    pub(crate) failed: u64,
    /// Opened with permessage-deflate agreed.
    pub(crate) compression_agreed: u64,
}

#[derive(Debug, Serialize)]
pub(crate) struct Percentiles {
    pub(crate) count: u64,
    pub(crate) mean: f64,
    pub(crate) p50: f64,
    pub(crate) p90: f64,
    pub(crate) p99: f64,
    pub(crate) p99_9: f64,
    pub(crate) max: f64,
}

#[derive(Debug, Serialize)]
pub(crate) struct ErrorCount {
    pub(crate) count: u64,
    pub(crate) example: String,
}

/// The client's CPU use over the run (connecting and closing included).
#[derive(Debug, Serialize)]
pub(crate) struct Cpu {
    pub(crate) user_s: f64,
    pub(crate) system_s: f64,
    pub(crate) wall_s: f64,
    pub(crate) cores: usize,
    /// (user + system) / (wall × cores): near 100, the client itself is the bottleneck.
    pub(crate) percent: f64,
}

impl Percentiles {
    fn of(histogram: &Histogram<u64>) -> Percentiles {
        let us = |ns: u64| ns as f64 / 1000.0;
        if histogram.is_empty() {
            return Percentiles {
                count: 0,
                mean: 0.0,
                p50: 0.0,
                p90: 0.0,
                p99: 0.0,
                p99_9: 0.0,
                max: 0.0,
            };
        }
        Percentiles {
            count: histogram.len(),
            mean: histogram.mean() / 1000.0,
            p50: us(histogram.value_at_quantile(0.5)),
            p90: us(histogram.value_at_quantile(0.9)),
            p99: us(histogram.value_at_quantile(0.99)),
            p99_9: us(histogram.value_at_quantile(0.999)),
            max: us(histogram.max()),
        }
    }
}

impl Cpu {
    pub(crate) fn new(user: Duration, system: Duration, wall: Duration) -> Cpu {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let busy = (user + system).as_secs_f64();
        Cpu {
            user_s: user.as_secs_f64(),
            system_s: system.as_secs_f64(),
            wall_s: wall.as_secs_f64(),
            cores,
            percent: 100.0 * busy / (wall.as_secs_f64() * cores as f64).max(f64::MIN_POSITIVE),
        }
    }
}

impl Report {
    pub(crate) fn new(options: &Options, attempted: u32, tally: &Tally, cpu: Cpu) -> Report {
        let seconds = options.duration;
        let sizes = options.sizes();
        Report {
            target: options.url.clone(),
            mode: match (options.upload, options.rate) {
                (Some(_), _) => "upload",
                (None, Some(_)) => "open_loop",
                (None, None) => "closed_loop",
            },
            kind: if options.text { "text" } else { "binary" },
            size_min: sizes.min,
            size_max: sizes.max,
            in_flight: options.in_flight,
            rate: options.rate,
            compression_offered: options.compression == OnOff::On,
            warmup_s: options.warmup,
            duration_s: seconds,
            connections: Connections {
                requested: options.connections,
                attempted,
                opened: tally.counts.opened,
                completed: tally.counts.completed,
                failed: u64::from(attempted) - tally.counts.completed,
                compression_agreed: tally.counts.deflate,
            },
            messages_sent: tally.counts.sent,
            messages_received: tally.counts.received,
            bytes_sent: tally.counts.sent_bytes,
            bytes_received: tally.counts.received_bytes,
            messages_per_sec: tally.counts.received as f64 / seconds,
            sent_bytes_per_sec: tally.counts.sent_bytes as f64 / seconds,
            received_bytes_per_sec: tally.counts.received_bytes as f64 / seconds,
            latency_us: Percentiles::of(&tally.latency),
            pacer_lag_us: Percentiles::of(&tally.pacer_lag),
            connect_us: Percentiles::of(&tally.connect),
            handshake_us: Percentiles::of(&tally.handshake),
            errors: tally
                .counts
                .errors
                .iter()
                .map(|(kind, (count, example))| {
                    let example = example.clone();
                    (
                        kind.name(),
                        ErrorCount {
                            count: *count,
                            example,
                        },
                    )
                })
                .collect(),
            cpu,
        }
    }

    /// The report as people read it.
    pub(crate) fn text(&self) -> String {
        let mut out = String::new();
        let c = &self.connections;
        let size = if self.size_min == self.size_max {
            bytes(self.size_min as f64)
        } else {
            format!(
                "{}-{}",
                bytes(self.size_min as f64),
                bytes(self.size_max as f64)
            )
        };
        let mode = match self.rate {
            Some(rate) => format!("{} at {rate} msg/s", self.mode.replace('_', " ")),
            None => self.mode.replace('_', " "),
        };
        let _ =
            writeln!(
            out,
            "{}: {} connections, {size} {}, {mode}, {} in flight, compression {} (agreed on {})",
            self.target,
            c.requested,
            self.kind,
            self.in_flight,
            if self.compression_offered { "offered" } else { "off" },
            c.compression_agreed,
        );
        let _ = writeln!(
            out,
            "measured     {:.1} s after {:.1} s of warm-up",
            self.duration_s, self.warmup_s
        );
        let _ = writeln!(
            out,
            "connections  {} attempted, {} opened, {} completed, {} failed",
            c.attempted, c.opened, c.completed, c.failed
        );
        let _ = writeln!(
            out,
            "messages     {} sent, {} echoed: {:.0} msg/s",
            self.messages_sent, self.messages_received, self.messages_per_sec
        );
        let _ = writeln!(
            out,
            "bytes        {} sent, {} echoed: {}/s sent, {}/s echoed",
            bytes(self.bytes_sent as f64),
            bytes(self.bytes_received as f64),
            bytes(self.sent_bytes_per_sec),
            bytes(self.received_bytes_per_sec),
        );
        let mut timings = vec![("latency", &self.latency_us)];
        if self.rate.is_some() {
            timings.push(("pacer lag", &self.pacer_lag_us));
        }
        timings.extend([
            ("connect", &self.connect_us),
            ("handshake", &self.handshake_us),
        ]);
        for (name, p) in timings {
            let _ = writeln!(
                out,
                "{name:<12} p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  (n = {})",
                micros(p.p50),
                micros(p.p90),
                micros(p.p99),
                micros(p.p99_9),
                micros(p.max),
                p.count
            );
        }
        if self.errors.is_empty() {
            let _ = writeln!(out, "errors       none");
        }
        for (kind, error) in &self.errors {
            let _ = writeln!(
                out,
                "errors       {kind}: {} ({})",
                error.count, error.example
            );
        }
        let cpu = &self.cpu;
        let _ = writeln!(
            out,
            "client CPU   {:.2} s user + {:.2} s system in {:.2} s: {:.0}% of {} cores{}",
            cpu.user_s,
            cpu.system_s,
            cpu.wall_s,
            cpu.percent,
            cpu.cores,
            if cpu.percent > 90.0 {
                " (saturated: the client may be the bottleneck)"
            } else {
                ""
            }
        );
        out
    }
}

/// `1234.5` µs as `1.23 ms`.
fn micros(us: f64) -> String {
    if us >= 1_000_000.0 {
        format!("{:.2} s", us / 1_000_000.0)
    } else if us >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{us:.1} µs")
    }
}

/// `1536` as `1.5 KiB`.
pub(crate) fn bytes(n: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut n = n;
    let mut unit = 0;
    while n >= 1024.0 && unit < UNITS.len() - 1 {
        n /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n:.0} B")
    } else {
        format!("{n:.1} {}", UNITS[unit])
    }
}
