//! The command line: how much load the soak puts on its server, and for how long.

use std::time::Duration;

use clap::{Parser, ValueEnum};

/// A soak run of a wsio server: thousands of connections held, echoed and churned for
/// minutes, every echoed message checked, the server's memory, files and CPU watched.
#[derive(Debug, Clone, Parser)]
#[command(name = "soak", version)]
pub(crate) struct Options {
    /// Seconds of load, counted from the moment every held connection is open.
    #[arg(long, value_name = "SECS", default_value_t = 600.0)]
    pub(crate) duration: f64,

    /// Seconds at the start of the run left out of the flatness and steadiness checks.
    /// Default: 20 % of the duration, at least 20 s.
    #[arg(long, value_name = "SECS")]
    pub(crate) warmup: Option<f64>,

    /// Connections held open for the whole run, the echoing ones included.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub(crate) connections: u32,

    /// Of the held connections, how many echo continuously (spread over the message API,
    /// `MessageWriter`/`MessageReader` and `ByteStream`); the others sit idle.
    #[arg(long, value_name = "N", default_value_t = 1_000)]
    pub(crate) echoing: u32,

    /// Short-lived connections opened and closed per second besides the held ones, half
    /// with a closing handshake and half dropped without one.
    #[arg(long, value_name = "PER_SEC", default_value_t = 500.0)]
    pub(crate) churn_per_sec: f64,

    /// Messages per second sent in total over the echoing connections.
    #[arg(long, value_name = "PER_SEC", default_value_t = 5_000.0)]
    pub(crate) messages_per_sec: f64,

    /// Largest message body in bytes; most messages are far smaller (see `payload.rs`).
    #[arg(long, value_name = "BYTES", default_value_t = 256 * 1024)]
    pub(crate) max_size: usize,

    /// Negotiate permessage-deflate (wsio's default settings) on every connection.
    #[arg(long, value_enum, default_value_t = OnOff::Off)]
    pub(crate) compression: OnOff,

    /// Idle connections that must still echo a message at the end of the run.
    #[arg(long, value_name = "N", default_value_t = 200)]
    pub(crate) idle_checks: u32,

    /// Internal: run as the server child and report its address on standard output.
    #[arg(long, hide = true)]
    pub(crate) server: bool,

    /// Internal: the soak process that started this server child.
    #[arg(long, hide = true, value_name = "PID")]
    pub(crate) parent_pid: Option<u32>,
}

/// A switch on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum OnOff {
    On,
    Off,
}

impl OnOff {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            OnOff::On => "on",
            OnOff::Off => "off",
        }
    }
}

impl Options {
    /// Refuses settings the soak cannot run with.
    pub(crate) fn check(&self) -> Result<(), String> {
        if !(self.duration > 0.0 && self.duration.is_finite()) {
            return Err("--duration must be positive".into());
        }
        if self.echoing > self.connections {
            return Err("--echoing cannot exceed --connections".into());
        }
        if !(self.churn_per_sec >= 0.0 && self.churn_per_sec.is_finite()) {
            return Err("--churn-per-sec must be 0 or more".into());
        }
        if self.echoing > 0 && !(self.messages_per_sec > 0.0 && self.messages_per_sec.is_finite()) {
            return Err("--messages-per-sec must be positive".into());
        }
        if self.warmup().as_secs_f64() >= self.duration {
            return Err("the warm-up must be shorter than --duration".into());
        }
        Ok(())
    }

    pub(crate) fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.duration)
    }

    /// The warm-up: given, or 20 % of the duration but at least 20 s (allocator arenas and
    /// the kernel's socket buffers need a few rounds of churn to reach their steady size).
    pub(crate) fn warmup(&self) -> Duration {
        let secs = self
            .warmup
            .unwrap_or_else(|| (self.duration * 0.2).max(20.0));
        Duration::from_secs_f64(secs)
    }

    /// The held connections that do not echo.
    pub(crate) fn idle(&self) -> u32 {
        self.connections - self.echoing
    }
}
