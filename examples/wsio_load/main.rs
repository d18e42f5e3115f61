//! `wsio_load`: a load generator for any WebSocket **echo** server, in any language, built on
//! wsio's client. The server must send every text and binary message back unchanged and in
//! order: each message starts with its scheduled send time and a sequence number (16 bytes,
//! or 32 hex digits in text), which the echo brings back to be matched and timed.
//!
//! ```text
//! cargo run --release --example echo_server -- 127.0.0.1:9002 2>/dev/null &
//! cargo run --release --example wsio_load -- ws://127.0.0.1:9002/ \
//!     --connections 100 --size 64 --duration 10 --compression off --json report.json
//! ```
//!
//! Load shapes: `--connections` opened at `--connect-rate`, `--size` fixed or a uniform
//! range, `--text` or `--binary`, `--in-flight` messages unanswered per connection (1 is
//! ping-pong), closed loop (as fast as echoes return, the default) or open loop at `--rate`
//! messages per second in total, where each latency counts from the message's *scheduled*
//! send time so that a stall delays no measurement (no coordinated omission), and `--upload`
//! for streamed uploads through `MessageWriter`. A `--warmup` precedes the measured
//! `--duration`.
//!
//! It prints a progress line every second on standard error, then the report on standard
//! output (and as JSON with `--json`): messages and bytes per second, latency percentiles
//! (HdrHistogram), connect and handshake times, errors by kind, and its own CPU use. It closes
//! every connection with a close frame and exits with status 1 if no connection could be
//! opened or every connection failed, 2 for a bad command line.

mod connection;
mod cpu;
mod options;
mod outcome;
mod pacer;
mod payload;
mod report;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use tokio::time::{sleep_until, Instant};
use wsio::{ClientBuilder, Config, DataKind};

use connection::Plan;
use options::{OnOff, Options};
use outcome::{Counts, Live, Tally};
use payload::{Filler, MAX_FILLER};
use report::{bytes, Cpu, Report};

#[tokio::main]
async fn main() -> ExitCode {
    let options = Options::parse();
    if let Err(e) = options.check() {
        eprintln!("wsio_load: {e}");
        return ExitCode::from(2);
    }
    let plan = match plan(&options).await {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("wsio_load: {e}");
            return ExitCode::from(2);
        }
    };
    let (attempted, tally, cpu) = run(&options, plan).await;
    let report = Report::new(&options, attempted, &tally, cpu);
    print!("{}", report.text());
    if let Some(path) = &options.json {
        let json = serde_json::to_string_pretty(&report).expect("a report serializes");
        if let Err(e) = std::fs::write(path, json + "\n") {
            eprintln!("wsio_load: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    let c = &report.connections;
    let first_error = || {
        report
            .errors
            .iter()
            .map(|(kind, e)| format!("{kind} × {}: {}", e.count, e.example))
            .collect::<Vec<_>>()
            .join("; ")
    };
    if c.opened == 0 {
        eprintln!(
            "wsio_load: FAILED: no connection could be opened ({})",
            first_error()
        );
        ExitCode::FAILURE
    } else if c.completed == 0 {
        eprintln!(
            "wsio_load: FAILED: every connection failed ({})",
            first_error()
        );
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Reads the URL, resolves its host and prepares what every connection shares.
async fn plan(options: &Options) -> Result<Plan, String> {
    let url = url::Url::parse(&options.url).map_err(|e| format!("{}: {e}", options.url))?;
    let tls = match url.scheme() {
        "ws" => false,
        "wss" => true,
        other => {
            return Err(format!(
                "{}: {other}:// is not ws:// or wss://",
                options.url
            ))
        }
    };
    let host = url
        .host_str()
        .ok_or_else(|| format!("{}: no host", options.url))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = url.port_or_known_default().expect("ws and wss have ports");
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .collect();
    if options.loopback_only {
        if let Some(addr) = addrs.iter().find(|a| !a.ip().is_loopback()) {
            return Err(format!(
                "--loopback-only: {host} resolves to {}, which is not a loopback address",
                addr.ip()
            ));
        }
    }

    let sizes = options.sizes();
    let largest = usize::try_from(sizes.max).unwrap_or(usize::MAX);
    let mut config = Config::default();
    if options.compression == OnOff::Off {
        config = config.compression(None);
    }
    // Echoes come back as whole messages: let the largest one in.
    let limit = largest.saturating_add(1024);
    if limit > config.get_max_message_size() {
        config = config.max_message_size(limit);
    }
    if limit > config.get_max_frame_size() {
        config = config.max_frame_size(limit);
    }
    let mut builder = ClientBuilder::new().config(config);
    if !options.subprotocol.is_empty() {
        builder = builder.subprotocols(options.subprotocol.clone());
    }
    for (name, value) in &options.header {
        let name = http::HeaderName::try_from(name.as_str()).expect("checked by the parser");
        let value = http::HeaderValue::try_from(value.as_str()).expect("checked by the parser");
        builder = builder.header(name, value);
    }
    let tls = if tls {
        let mut roots = wsio::tls::default_root_store();
        if let Some(path) = &options.ca {
            let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let cas = wsio::tls::certificates_from_pem(&pem)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            let (_, refused) = roots.add_parsable_certificates(cas);
            if refused > 0 {
                return Err(format!(
                    "{}: {refused} certificates are not usable as trust anchors",
                    path.display()
                ));
            }
        }
        let config = wsio::tls::client_config(roots).map_err(|e| format!("TLS: {e}"))?;
        let name = rustls::pki_types::ServerName::try_from(host.clone())
            .map_err(|e| format!("{host} is not a TLS server name: {e}"))?;
        Some((tokio_rustls::TlsConnector::from(config), name))
    } else {
        None
    };
    let kind = if options.text {
        DataKind::Text
    } else {
        DataKind::Binary
    };
    let filler_len = if options.upload.is_some() {
        MAX_FILLER
    } else {
        largest
    };
    let epoch = Instant::now();
    let measure_from = epoch + options.warmup();
    Ok(Plan {
        url: options.url.clone(),
        addrs,
        tls,
        builder,
        kind,
        sizes,
        upload: options.upload.is_some(),
        in_flight: options.in_flight,
        filler: Filler::new(kind, filler_len),
        epoch,
        measure_from,
        end: measure_from + options.duration(),
    })
}

/// Opens the connections at the connect rate, prints progress every second, and merges what
/// the connections measured once they have all ended.
async fn run(options: &Options, plan: Plan) -> (u32, Tally, Cpu) {
    cpu::raise_open_file_limit();
    let (user, system) = cpu::used();
    let started = std::time::Instant::now();
    let plan = Arc::new(plan);
    let live = Arc::new(Live::new());
    let progress = tokio::spawn(progress(plan.clone(), live.clone()));

    let (slots, pacer): (Vec<Option<pacer::Slots>>, _) = match options.rate {
        Some(rate) => {
            let (slots, pacer) = pacer::start(
                options.connections,
                rate,
                plan.epoch,
                plan.end,
                outcome::histogram(),
            );
            (slots.into_iter().map(Some).collect(), Some(pacer))
        }
        None => ((0..options.connections).map(|_| None).collect(), None),
    };
    let mut tasks = Vec::with_capacity(options.connections as usize);
    for (id, slots) in (0..options.connections).zip(slots) {
        if options.connect_rate > 0.0 {
            sleep_until(plan.epoch + Duration::from_secs_f64(f64::from(id) / options.connect_rate))
                .await;
        }
        if Instant::now() >= plan.end {
            break;
        }
        let task = connection::run(plan.clone(), id, slots, live.clone());
        tasks.push(tokio::spawn(task));
    }
    let attempted = tasks.len() as u32;
    let mut counts = Counts::default();
    for task in tasks {
        counts.merge(task.await.expect("a connection task panicked"));
    }
    let pacer_lag = match pacer {
        Some(pacer) => pacer.join().expect("the pacer panicked"),
        None => outcome::histogram(),
    };
    let tally = Tally {
        counts,
        latency: live.timings.latency.merged(),
        pacer_lag,
        connect: live.timings.connect.merged(),
        handshake: live.timings.handshake.merged(),
    };
    progress.abort();
    let (user_end, system_end) = cpu::used();
    let cpu = Cpu::new(user_end - user, system_end - system, started.elapsed());
    (attempted, tally, cpu)
}

/// A line a second on standard error: echoes and bytes per second, connections, failures.
async fn progress(plan: Arc<Plan>, live: Arc<Live>) {
    let mut tick =
        tokio::time::interval_at(plan.epoch + Duration::from_secs(1), Duration::from_secs(1));
    let (mut messages, mut bytes_seen) = (0, 0);
    loop {
        let now = tick.tick().await;
        let m = live.messages.load(Ordering::Relaxed);
        let b = live.bytes.load(Ordering::Relaxed);
        let phase = if now <= plan.measure_from {
            "warm-up"
        } else if now <= plan.end {
            "measure"
        } else {
            "closing"
        };
        eprintln!(
            "[{:>4.0} s {phase}] {:>9} msg/s {:>11}/s  open {:>6}  failed {}",
            (now - plan.epoch).as_secs_f64(),
            m - messages,
            bytes((b - bytes_seen) as f64),
            live.open.load(Ordering::Relaxed),
            live.errors.load(Ordering::Relaxed),
        );
        (messages, bytes_seen) = (m, b);
    }
}
