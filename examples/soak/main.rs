//! `soak`: a wsio server under hours-long load, checked. It starts its own server (this
//! binary again, with `--server`, as a child process so that the memory, files and CPU it
//! reads from `/proc/<pid>` are the server's alone), then, from this process:
//!
//! - opens `--connections` (10,000) held connections, of which `--echoing` (1,000) echo
//!   continuously at `--messages-per-sec` (5,000) in total: mixed sizes, text and binary,
//!   a third each through `send`/`recv`, `MessageWriter`/`MessageReader` and `ByteStream`;
//!   every message carries a sequence number and a checksum that this client verifies
//!   (`payload.rs`); the rest sit idle, and some of them must still echo at the end;
//! - opens and closes `--churn-per-sec` (500) short-lived connections a second, half with a
//!   closing handshake and half dropped without one;
//! - prints a line every 10 s (server RSS, open fds, echoes and bytes checked, connections
//!   open, churn done, TIME_WAIT sockets, server CPU per echo, errors by kind);
//! - after `--duration` (600 s) stops in stages, and exits 0 only if no message was lost,
//!   duplicated or corrupted and nothing else failed, the server's RSS after the warm-up
//!   stayed within 10 %, its fds came back to the baseline (plus the idle connections still
//!   open, then to the baseline itself), its CPU per echo stayed within 2× of the median in
//!   every 10-s interval, and the load asked for was held (`report.rs` states each rule).
//!
//! ```text
//! cargo run --release --example soak                                     # 10 minutes
//! target/debug/examples/soak --duration 60 --messages-per-sec 500       # the CI run
//! ```
//!
//! The CI run keeps the issue's counts (10,000 held, 1,000 echoing, 500 churn/s) but sends
//! 500 messages a second instead of 5,000: measured on the 2-core machine, the unoptimised
//! build that `cargo test --all-targets` leaves in `target/debug` holds 500/s (server about
//! 45 % of a core, client 60 %) and falls to 700–1,700/s when asked for more, while the
//! release build holds 5,000/s at about 30 % + 40 %.
//!
//! What it relies on: the open-file limit raised to the hard limit in both processes (each
//! holds over 10,000 sockets); an accept backlog of 4,096 (capped by `net.core.somaxconn`;
//! the lines show the machine's listen drops); and `net.ipv4.tcp_tw_reuse` = 2 (the default,
//! loopback only). The clean half of the churn leaves its TIME_WAIT on the server's side (the
//! server closes TCP first), but the dropped half closes first on the client's side: 250
//! TIME_WAIT sockets a second for 60 s each would hold about 15,000 ephemeral ports, which
//! beside the 10,000 held connections is 25,000 of the 28,232 in the default range. With
//! tw_reuse, connect takes over a TIME_WAIT port after a second instead; the `tw` figure of
//! the lines (machine-wide) shows it staying near 4,000 once that starts.
//!
//! Exit status: 0 pass, 1 fail, 2 a bad command line or a server that would not start.

mod child;
mod churn;
mod dial;
mod echo;
mod idle;
mod options;
mod payload;
mod report;
mod server;
mod soak;
mod system;
mod tally;

use std::process::ExitCode;

use clap::Parser;
use wsio::Config;

use child::ServerChild;
use options::{OnOff, Options};

/// Frames of at most this many bytes from the stream APIs, so that the larger bodies leave
/// (and are echoed) as several fragments.
const STREAM_FRAGMENT: usize = 16 * 1024;

fn main() -> ExitCode {
    let options = Options::parse();
    if let Err(e) = options.check() {
        eprintln!("soak: {e}");
        return ExitCode::from(2);
    }
    let file_limit = system::raise_open_file_limit();
    if options.server {
        return server::run(&options);
    }
    // Each process holds every held connection plus the churn under way, plus a few files of
    // its own: better to say so now than to fail the ramp with EMFILE.
    let files_needed = u64::from(options.connections) + churn::MAX_UNDER_WAY as u64 + 64;
    if file_limit < files_needed {
        eprintln!(
            "soak: the open-file limit is {file_limit} (hard limit, `ulimit -Hn`) and this run \
             needs {files_needed}: raise it or lower --connections"
        );
        return ExitCode::from(2);
    }
    // Started from the main thread, which lives as long as the process: the child's death
    // signal is tied to the thread that started it.
    let server = match ServerChild::start(&options) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("soak: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let verdict = runtime.block_on(soak::run(&options, &server, file_limit));
    // Connection tasks still running (after a failure) end before the server does.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    drop(server);
    print!("{}", verdict.text);
    if verdict.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The settings of every connection, on both ends.
fn config(options: &Options) -> Config {
    let mut config = Config::default().stream_fragment_size(STREAM_FRAGMENT);
    if options.compression == OnOff::Off {
        config = config.compression(None);
    }
    config
}
