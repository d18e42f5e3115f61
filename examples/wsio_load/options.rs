//! The command line: what to connect to and which load to put on it.

use std::time::Duration;

use clap::{Parser, ValueEnum};

/// A load generator for any WebSocket echo server.
///
/// The server must echo every text and binary message back unchanged and in order: each
/// message starts with its send time and sequence number, which the echo brings back.
#[derive(Debug, Parser)]
#[command(name = "wsio_load", version)]
pub(crate) struct Options {
    /// The server, a ws:// or wss:// URL.
    pub(crate) url: String,

    /// Offer this subprotocol (repeat for several, in order of preference).
    #[arg(long, value_name = "NAME")]
    pub(crate) subprotocol: Vec<String>,

    /// Send this header with the handshake request (repeatable).
    #[arg(long, value_name = "NAME:VALUE", value_parser = parse_header)]
    pub(crate) header: Vec<(String, String)>,

    /// Offer permessage-deflate (wsio's default settings).
    #[arg(long, value_enum, default_value_t = OnOff::On)]
    pub(crate) compression: OnOff,

    /// Connections to open.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) connections: u32,

    /// Open connections at this rate (per second); 0 opens them all at once.
    #[arg(long, value_name = "PER_SEC", default_value_t = 0.0)]
    pub(crate) connect_rate: f64,

    /// Message size in bytes, fixed (`64`) or uniform over a range (`64-4096`). At least 16
    /// for binary messages and 32 for text: the timestamp and sequence prefix.
    #[arg(long, value_name = "BYTES|MIN-MAX", default_value = "64", value_parser = parse_size)]
    pub(crate) size: SizeRange,

    /// Send text messages (the prefix in hex, the rest alphanumeric).
    #[arg(long, conflicts_with = "binary")]
    pub(crate) text: bool,

    /// Send binary messages (the default).
    #[arg(long)]
    pub(crate) binary: bool,

    /// Messages in flight per connection: sent and not yet echoed. 1 is ping-pong.
    #[arg(long, value_name = "K", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) in_flight: u32,

    /// Send this many messages per second in total, on a fixed timetable (open loop), and
    /// time each echo from its scheduled send time. Without it, each connection sends as fast
    /// as its echoes come back (closed loop).
    #[arg(long, value_name = "MSGS_PER_SEC")]
    pub(crate) rate: Option<f64>,

    /// Seconds of load before measuring starts.
    #[arg(long, value_name = "SECS", default_value_t = 1.0)]
    pub(crate) warmup: f64,

    /// Seconds measured, after the warm-up.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    pub(crate) duration: f64,

    /// Streamed uploads: each connection sends messages of BYTES through a `MessageWriter`,
    /// one after another (with `--in-flight` of them unanswered at most); reports bytes/s.
    #[arg(long, value_name = "BYTES", conflicts_with = "size")]
    pub(crate) upload: Option<u64>,

    /// Write the report as JSON to this file.
    #[arg(long, value_name = "PATH")]
    pub(crate) json: Option<std::path::PathBuf>,

    /// wss://: also trust the certificate authorities in this PEM file (besides the Mozilla
    /// roots wsio trusts by default), for a server with a private or self-signed certificate.
    #[arg(long, value_name = "PEM")]
    pub(crate) ca: Option<std::path::PathBuf>,

    /// Refuse a target that does not resolve to loopback addresses only.
    #[arg(long)]
    pub(crate) loopback_only: bool,
}

/// `on` or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum OnOff {
    On,
    Off,
}

/// Message sizes, drawn uniformly from `min..=max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SizeRange {
    pub(crate) min: u64,
    pub(crate) max: u64,
}

impl Options {
    /// The size of each message: `--upload`'s, or `--size`.
    pub(crate) fn sizes(&self) -> SizeRange {
        match self.upload {
            Some(bytes) => SizeRange {
                min: bytes,
                max: bytes,
            },
            None => self.size,
        }
    }

    /// Checks what clap cannot: durations, rates, and that messages can hold their prefix.
    pub(crate) fn check(&self) -> Result<(), String> {
        let seconds = |name: &str, value: f64, zero_ok: bool| {
            if value.is_finite() && (value > 0.0 || (zero_ok && value == 0.0)) {
                Ok(())
            } else {
                Err(format!("--{name} must be a positive number of seconds"))
            }
        };
        seconds("warmup", self.warmup, true)?;
        seconds("duration", self.duration, false)?;
        if !(self.connect_rate.is_finite() && self.connect_rate >= 0.0) {
            return Err("--connect-rate must be 0 or a positive rate".into());
        }
        if let Some(rate) = self.rate {
            if !(rate.is_finite() && rate > 0.0) {
                return Err("--rate must be a positive rate".into());
            }
        }
        let prefix = crate::payload::prefix_len(self.text) as u64;
        if self.sizes().min < prefix {
            return Err(format!(
                "messages must hold the {prefix}-byte timestamp and sequence prefix \
                 ({} messages): --size or --upload of at least {prefix}",
                if self.text { "text" } else { "binary" }
            ));
        }
        Ok(())
    }

    pub(crate) fn warmup(&self) -> Duration {
        Duration::from_secs_f64(self.warmup)
    }

    pub(crate) fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.duration)
    }
}

fn parse_header(arg: &str) -> Result<(String, String), String> {
    let (name, value) = arg
        .split_once(':')
        .ok_or_else(|| format!("{arg:?} is not NAME:VALUE"))?;
    let name = name.trim();
    http::HeaderName::try_from(name).map_err(|e| format!("header name {name:?}: {e}"))?;
    let value = value.trim();
    http::HeaderValue::try_from(value).map_err(|e| format!("header value {value:?}: {e}"))?;
    Ok((name.to_owned(), value.to_owned()))
}

fn parse_size(arg: &str) -> Result<SizeRange, String> {
    let number = |s: &str| {
        s.trim()
            .parse::<u64>()
            .map_err(|_| format!("{s:?} is not a number of bytes"))
    };
    let (min, max) = match arg.split_once('-') {
        Some((min, max)) => (number(min)?, number(max)?),
        None => {
            let size = number(arg)?;
            (size, size)
        }
    };
    if min > max {
        return Err(format!(
            "{arg:?}: the smallest size is larger than the largest"
        ));
    }
    Ok(SizeRange { min, max })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_headers_parse() {
        assert_eq!(parse_size("64"), Ok(SizeRange { min: 64, max: 64 }));
        assert_eq!(parse_size("16-4096"), Ok(SizeRange { min: 16, max: 4096 }));
        assert!(parse_size("10-2").is_err());
        assert!(parse_size("x").is_err());
        assert_eq!(
            parse_header("X-Token: abc"),
            Ok(("X-Token".into(), "abc".into()))
        );
        assert!(parse_header("no-colon").is_err());
    }
}
