//! The run, client side, from start to verdict: open the held connections, put the echo and
//! churn load on them while sampling every 10 s, then stop in stages and check that the
//! server gives back every file it took.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, Instant};
use wsio::ClientBuilder;

use crate::child::ServerChild;
use crate::dial::Dialer;
use crate::echo::{self, Api, EchoPlan, Load};
use crate::idle::{self, IdlePhase};
use crate::options::Options;
use crate::payload::Pools;
use crate::report::{FdCheck, Run, Sample, Verdict};
use crate::system;
use crate::tally::{Fault, Gauge, Tally};

/// Held connections being opened at once during the ramp: enough to open 10,000 in seconds,
/// few enough to stay inside the accept backlog.
const RAMP_CONCURRENCY: usize = 256;
/// Messages an echoing connection may have unanswered.
const IN_FLIGHT: u32 = 4;
/// Time between two lines.
const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// How long the server's file count may take to settle after connections end.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the stages at the end may take (churn under way, idle checks, closes).
const STAGE_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs the soak against `server` and decides it.
pub(crate) async fn run(options: &Options, server: &ServerChild, file_limit: u64) -> Verdict {
    let tally = Arc::new(Tally::default());
    let pools = Arc::new(Pools::new(options.max_size));
    let dialer = Arc::new(Dialer {
        addr: server.addr,
        builder: ClientBuilder::new().config(crate::config(options)),
    });
    preamble(options, server, file_limit);
    let pid = server.pid();
    let baseline_fds = system::open_fds(pid).unwrap_or(0);
    let mut run = Run {
        samples: Vec::new(),
        warmup: options.warmup(),
        baseline_fds,
        held_wanted: options.connections,
        held_reached: 0,
        ramp: Duration::ZERO,
        churn_wanted: options.churn_per_sec,
        messages_wanted: if options.echoing > 0 {
            options.messages_per_sec
        } else {
            0.0
        },
        idle_checks: options.idle_checks.min(options.idle()),
        fds_after_churn: None,
        fds_after_close: None,
        aborted: None,
    };

    // The ramp: every held connection open before the load starts.
    let (load_tx, load) = watch::channel(Load::Ramp);
    let (phase_tx, phase) = watch::channel(IdlePhase::Hold);
    let echo_plan = Arc::new(EchoPlan {
        pools: pools.clone(),
        tally: tally.clone(),
        period: Duration::from_secs_f64(
            f64::from(options.echoing.max(1)) / options.messages_per_sec,
        ),
        in_flight: IN_FLIGHT,
        max_size: options.max_size,
    });
    let ramp_started = Instant::now();
    let opening = Arc::new(Semaphore::new(RAMP_CONCURRENCY));
    let mut held: Vec<JoinHandle<()>> = Vec::with_capacity(options.connections as usize);
    let idle_stride = (options.idle() / run.idle_checks.max(1)).max(1);
    for id in 0..options.connections {
        let permit = opening.clone().acquire_owned().await.expect("never closed");
        let (dialer, tally, load, phase) =
            (dialer.clone(), tally.clone(), load.clone(), phase.clone());
        let (echo_plan, pools) = (echo_plan.clone(), pools.clone());
        let echoing = id < options.echoing;
        let idle_index = id.wrapping_sub(options.echoing);
        let sampled =
            !echoing && idle_index % idle_stride == 0 && idle_index / idle_stride < run.idle_checks;
        held.push(tokio::spawn(async move {
            let api = Api::of(id);
            let path = if echoing { api.path() } else { "/idle" };
            let ws = match dialer.open(path).await {
                Ok(ws) => ws,
                Err(e) => {
                    return tally.fault(Fault::OpenFailed, 1, format!("held {id} ({path}): {e}"))
                }
            };
            // Counted before the ramp's permit goes back, so that the ramp's end sees it.
            let _open = Gauge::up(&tally.held_open);
            drop(permit);
            if echoing {
                echo::run(ws, api, id, echo_plan, load).await;
            } else {
                idle::run(ws, id, sampled, pools, tally.clone(), phase).await;
            }
        }));
    }
    let _ = opening.acquire_many(RAMP_CONCURRENCY as u32).await;
    run.ramp = ramp_started.elapsed();
    run.held_reached = tally.held_open.load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "ramp: {} of {} held connections open in {:.1} s; server fds {} (baseline {baseline_fds}), rss {}",
        run.held_reached,
        options.connections,
        run.ramp.as_secs_f64(),
        system::open_fds(pid).map_or("?".into(), |n| n.to_string()),
        system::rss(pid).map_or("?".into(), crate::report::mib),
    );

    // The load, sampled every 10 s.
    let started = Instant::now();
    let _ = load_tx.send(Load::Running);
    let churn = tokio::spawn(crate::churn::run(
        options.churn_per_sec,
        dialer.clone(),
        pools.clone(),
        tally.clone(),
        load.clone(),
    ));
    let end = started + options.duration();
    let mut next = started;
    loop {
        sleep_until(next.min(end)).await;
        let at = Instant::now().min(end) - started;
        let Some(sample) = Sample::take(at, server, &tally) else {
            run.aborted = Some("the server process is gone".into());
            break;
        };
        if let Some(earlier) = run.samples.last() {
            println!("{}", sample.line(earlier, server, &tally));
        }
        run.samples.push(sample);
        if Instant::now() >= end {
            break;
        }
        next += SAMPLE_EVERY;
    }

    // The end, in stages: stop the churn and the echoes; the server must hold only the idle
    // connections then; the sampled idle ones echo; everything closes; the server must be
    // back to its baseline.
    let _ = load_tx.send(Load::Stopped);
    if tokio::time::timeout(STAGE_TIMEOUT, churn).await.is_err() {
        tally.fault(
            Fault::ChurnFailed,
            1,
            "short-lived connections still under way 60 s after the stop",
        );
    }
    let (echoing, idle) = held.split_at_mut(options.echoing as usize);
    join_all(echoing, &tally, Fault::EchoFailed).await;
    let idle_held = tally
        .held_open
        .load(std::sync::atomic::Ordering::Relaxed)
        .max(0) as u64;
    if run.aborted.is_none() {
        run.fds_after_churn = settle(pid, baseline_fds + idle_held).await;
    }
    let _ = phase_tx.send(IdlePhase::Check);
    let checked = async {
        use std::sync::atomic::Ordering::Relaxed;
        while u64::from(run.idle_checks)
            > tally.idle_checked.load(Relaxed)
                + tally.faults(Fault::IdleCheckFailed)
                + tally.faults(Fault::IdleLost)
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    if tokio::time::timeout(STAGE_TIMEOUT, checked).await.is_err() {
        tally.fault(
            Fault::IdleCheckFailed,
            1,
            "idle checks unfinished 60 s after they started",
        );
    }
    let _ = phase_tx.send(IdlePhase::Close);
    join_all(idle, &tally, Fault::IdleCheckFailed).await;
    if run.aborted.is_none() {
        run.fds_after_close = settle(pid, baseline_fds).await;
    }
    // The server prints its status once a second: let the last one follow the closes.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    println!(
        "end: server status {}; TIME_WAIT sockets {}",
        server.status(),
        system::time_wait().map_or("?".into(), |n| n.to_string())
    );
    run.verdict(&tally)
}

/// Prints what the run is about to do, and the machine settings it depends on.
fn preamble(options: &Options, server: &ServerChild, file_limit: u64) {
    println!(
        "soak: server pid {} on ws://{}; {} held connections ({} echoing at {:.0} msg/s in \
         total, bodies up to {} B, compression {}), churn {:.0}/s, {:.0} s after a warm-up of \
         {:.0} s",
        server.pid(),
        server.addr,
        options.connections,
        options.echoing,
        options.messages_per_sec,
        options.max_size,
        options.compression.as_str(),
        options.churn_per_sec,
        options.duration,
        options.warmup().as_secs_f64(),
    );
    println!(
        "machine: open-file limit {file_limit}; net.ipv4.tcp_tw_reuse {}; ip_local_port_range \
         {}; somaxconn {}; tcp_max_syn_backlog {}",
        system::sysctl("/proc/sys/net/ipv4/tcp_tw_reuse"),
        system::sysctl("/proc/sys/net/ipv4/ip_local_port_range"),
        system::sysctl("/proc/sys/net/core/somaxconn"),
        system::sysctl("/proc/sys/net/ipv4/tcp_max_syn_backlog"),
    );
}

/// Waits for connection tasks to end, at most [`STAGE_TIMEOUT`] in all; a task still running
/// then, or one that panicked, is a fault of `kind`.
async fn join_all(tasks: &mut [JoinHandle<()>], tally: &Tally, kind: Fault) {
    let deadline = Instant::now() + STAGE_TIMEOUT;
    for task in tasks {
        match tokio::time::timeout_at(deadline, &mut *task).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tally.fault(kind, 1, format!("a connection task failed: {e}")),
            Err(_) => {
                task.abort();
                tally.fault(kind, 1, "a connection still open 60 s after the stop");
            }
        }
    }
}

/// Waits until the server has `expected` files open, at most [`SETTLE_TIMEOUT`].
async fn settle(pid: u32, expected: u64) -> Option<FdCheck> {
    let started = Instant::now();
    loop {
        let observed = system::open_fds(pid)?;
        let waited = started.elapsed();
        if observed == expected || waited >= SETTLE_TIMEOUT {
            return Some(FdCheck {
                observed,
                expected,
                waited,
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
