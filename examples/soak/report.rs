//! The figures: a sample of the server and the client every 10 s, the line printed for each,
//! and the verdict computed from them at the end.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::child::ServerChild;
use crate::system;
use crate::tally::Tally;

/// RSS after the warm-up may vary by this much, relative to its first sample.
const RSS_SPREAD: f64 = 0.10;
/// CPU per message in each interval after the warm-up must be within this factor of the
/// median interval's (a shared, noisy 2-core machine: other builds run beside the soak).
const CPU_FACTOR: f64 = 2.0;
/// The load must reach this share of what was asked, or the run did not soak anything.
const LOAD_HELD: f64 = 0.9;

/// The server and the client at one moment of the run.
#[derive(Debug, Clone)]
pub(crate) struct Sample {
    /// Since the load started (all held connections open).
    pub(crate) at: Duration,
    pub(crate) rss: u64,
    pub(crate) fds: u64,
    pub(crate) server_cpu: Duration,
    pub(crate) client_cpu: Duration,
    /// Echoes checked so far, and their bytes.
    pub(crate) messages: u64,
    pub(crate) bytes: u64,
    pub(crate) churn: u64,
    /// The machine's `ListenDrops` counter.
    pub(crate) listen_drops: u64,
}

impl Sample {
    /// Reads the server's figures from `/proc` and the client's counters; `None` when the
    /// server process is gone.
    pub(crate) fn take(at: Duration, server: &ServerChild, tally: &Tally) -> Option<Sample> {
        let pid = server.pid();
        Some(Sample {
            at,
            rss: system::rss(pid)?,
            fds: system::open_fds(pid)?,
            server_cpu: system::cpu_time(pid)?,
            client_cpu: system::own_cpu_time(),
            messages: tally.messages.load(Ordering::Relaxed),
            bytes: tally.bytes.load(Ordering::Relaxed),
            churn: tally.churn_done(),
            listen_drops: system::listen_drops().unwrap_or(0),
        })
    }

    /// Server CPU per echoed message from `earlier` to this sample, in µs.
    fn cpu_per_message(&self, earlier: &Sample) -> Option<f64> {
        let messages = self.messages - earlier.messages;
        let cpu = self.server_cpu.saturating_sub(earlier.server_cpu);
        (messages > 0).then(|| cpu.as_secs_f64() * 1e6 / messages as f64)
    }

    /// The 10-s line: this sample and what changed since `earlier`.
    pub(crate) fn line(&self, earlier: &Sample, server: &ServerChild, tally: &Tally) -> String {
        let secs = (self.at - earlier.at).as_secs_f64().max(1e-9);
        let messages = self.messages - earlier.messages;
        let cpu_per_message = self
            .cpu_per_message(earlier)
            .map_or("-".into(), |us| format!("{us:.1} µs"));
        let client_cpu = self
            .client_cpu
            .saturating_sub(earlier.client_cpu)
            .as_secs_f64();
        let server_cpu = self
            .server_cpu
            .saturating_sub(earlier.server_cpu)
            .as_secs_f64();
        format!(
            "[{:>5.0} s] rss {}  fds {}  msgs {} ({:.0}/s)  {}  open {}+{} (server {})  \
             churn {} (+{})  tw {}  listen drops +{}  cpu/msg {}  cpu server {:.0}% \
             client {:.0}%  errors {}",
            self.at.as_secs_f64(),
            mib(self.rss),
            self.fds,
            messages,
            messages as f64 / secs,
            mib(self.bytes - earlier.bytes),
            tally.held_open.load(Ordering::Relaxed),
            tally.churn_open.load(Ordering::Relaxed),
            server.open().map_or("?".into(), |n| n.to_string()),
            self.churn,
            self.churn - earlier.churn,
            system::time_wait().map_or("?".into(), |n| n.to_string()),
            self.listen_drops.saturating_sub(earlier.listen_drops),
            cpu_per_message,
            100.0 * server_cpu / secs,
            100.0 * client_cpu / secs,
            tally.faults_line(),
        )
    }
}

/// Bytes in MiB, one decimal.
pub(crate) fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// A file-descriptor count checked against what it should be once things settle.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FdCheck {
    pub(crate) observed: u64,
    pub(crate) expected: u64,
    pub(crate) waited: Duration,
}

/// What the run asked for and what it did, for the verdict.
pub(crate) struct Run {
    pub(crate) samples: Vec<Sample>,
    pub(crate) warmup: Duration,
    pub(crate) baseline_fds: u64,
    pub(crate) held_wanted: u32,
    pub(crate) held_reached: i64,
    pub(crate) ramp: Duration,
    pub(crate) churn_wanted: f64,
    pub(crate) messages_wanted: f64,
    pub(crate) idle_checks: u32,
    /// Server fds once the churn and the echoing connections are gone, the idle ones open.
    pub(crate) fds_after_churn: Option<FdCheck>,
    /// Server fds once every connection is closed.
    pub(crate) fds_after_close: Option<FdCheck>,
    /// Why the run ended early, if it did.
    pub(crate) aborted: Option<String>,
}

/// The summary and whether the run passed.
pub(crate) struct Verdict {
    pub(crate) text: String,
    pub(crate) passed: bool,
}

impl Run {
    /// Decides the run: every check, the figures that decided it, PASS or FAIL.
    pub(crate) fn verdict(&self, tally: &Tally) -> Verdict {
        let mut checks = Checks {
            text: String::new(),
            passed: true,
        };
        if let Some(why) = &self.aborted {
            checks.check(false, format!("the run ended early: {why}"));
        }
        let last = self.samples.last();
        let run_secs = last.map_or(0.0, |s| s.at.as_secs_f64());

        // Messages: every echo checked, no fault of any kind.
        let faults = tally.total_faults();
        checks.check(
            faults == 0,
            format!(
                "messages: {} echoes checked ({}), {} sent; faults: {}",
                tally.messages.load(Ordering::Relaxed),
                mib(tally.bytes.load(Ordering::Relaxed)),
                tally.sent.load(Ordering::Relaxed),
                tally.faults_line()
            ),
        );
        for example in tally.fault_examples() {
            checks.note(format!("       {example}"));
        }

        // The load asked for was held.
        let echoed = last.map_or(0, |s| s.messages) as f64;
        let churned = last.map_or(0, |s| s.churn) as f64;
        let churn_goal = self.churn_wanted * run_secs;
        let message_goal = self.messages_wanted * run_secs;
        checks.check(
            self.held_reached >= i64::from(self.held_wanted)
                && churned >= LOAD_HELD * churn_goal
                && echoed >= LOAD_HELD * message_goal,
            format!(
                "load: {} of {} held connections open (ramp {:.1} s); churn {:.0} of {:.0} \
                 ({:.0}/s, {} skipped); echoes {:.0} of {:.0} ({:.0}/s); must reach {:.0} %",
                self.held_reached,
                self.held_wanted,
                self.ramp.as_secs_f64(),
                churned,
                churn_goal,
                churned / run_secs.max(1e-9),
                tally.churn_skipped.load(Ordering::Relaxed),
                echoed,
                message_goal,
                echoed / run_secs.max(1e-9),
                LOAD_HELD * 100.0,
            ),
        );
        let idle_checked = tally.idle_checked.load(Ordering::Relaxed);
        checks.note(format!(
            "       idle connections checked at the end: {idle_checked} of {} echoed",
            self.idle_checks
        ));

        // RSS after the warm-up.
        let after: Vec<&Sample> = self
            .samples
            .iter()
            .filter(|s| s.at >= self.warmup)
            .collect();
        match after.first() {
            Some(first) => {
                let max = after.iter().map(|s| s.rss).max().unwrap_or(0);
                let min = after.iter().map(|s| s.rss).min().unwrap_or(0);
                let spread = (max - min) as f64 / first.rss as f64;
                checks.check(
                    spread <= RSS_SPREAD,
                    format!(
                        "RSS flat: (max − min) / first of the {} samples from {:.0} s = \
                         ({} − {}) / {} = {:.1} % (limit {:.0} %)",
                        after.len(),
                        self.warmup.as_secs_f64(),
                        mib(max),
                        mib(min),
                        mib(first.rss),
                        spread * 100.0,
                        RSS_SPREAD * 100.0
                    ),
                );
            }
            None => checks.check(false, "RSS flat: no sample after the warm-up".into()),
        }

        // Server fds back where they belong.
        for (what, fd_check) in [
            (
                "with the churn and the echoing connections gone (baseline + idle held)",
                self.fds_after_churn,
            ),
            (
                "with every connection closed (baseline)",
                self.fds_after_close,
            ),
        ] {
            match fd_check {
                Some(c) => checks.check(
                    c.observed == c.expected,
                    format!(
                        "server fds {what}: {} observed, {} expected (baseline {}), settled \
                         after {:.1} s",
                        c.observed,
                        c.expected,
                        self.baseline_fds,
                        c.waited.as_secs_f64()
                    ),
                ),
                None => checks.check(false, format!("server fds {what}: not measured")),
            }
        }

        // CPU per message, interval by interval after the warm-up.
        let per_interval: Vec<f64> = self
            .samples
            .windows(2)
            .filter(|pair| pair[0].at >= self.warmup)
            .filter_map(|pair| pair[1].cpu_per_message(&pair[0]))
            .collect();
        if per_interval.is_empty() {
            checks.check(
                false,
                "CPU per message: no interval after the warm-up".into(),
            );
        } else {
            let mut sorted = per_interval.clone();
            sorted.sort_by(f64::total_cmp);
            let median = sorted[sorted.len() / 2];
            let (low, high) = (sorted[0], sorted[sorted.len() - 1]);
            let third = (per_interval.len() / 3).max(1);
            let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
            let trend =
                mean(&per_interval[per_interval.len() - third..]) / mean(&per_interval[..third]);
            checks.check(
                low >= median / CPU_FACTOR && high <= median * CPU_FACTOR,
                format!(
                    "CPU per message steady: {} intervals from {:.0} s, server user+system µs \
                     per echo: median {median:.1}, min {low:.1} ({:.2}× median), max {high:.1} \
                     ({:.2}× median), each must be within {CPU_FACTOR}× of the median; last \
                     third / first third = {trend:.2}",
                    per_interval.len(),
                    self.warmup.as_secs_f64(),
                    low / median,
                    high / median,
                ),
            );
        }
        let passed = checks.passed;
        checks.note(if passed { "PASS" } else { "FAIL" }.into());
        Verdict {
            text: checks.text,
            passed,
        }
    }
}

/// The verdict being written: a line per check, and whether all have passed so far.
struct Checks {
    text: String,
    passed: bool,
}

impl Checks {
    fn check(&mut self, ok: bool, what: String) {
        self.passed &= ok;
        self.note(format!("  {} {what}", if ok { "ok  " } else { "FAIL" }));
    }

    fn note(&mut self, line: String) {
        let _ = writeln!(self.text, "{line}");
    }
}
