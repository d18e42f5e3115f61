//! The run, client side, from start to verdict: open the held connections (the ramp), put
//! the echo and churn load on them while sampling every 10 s, then wind down in stages and
//! check that the server gives back every file it took.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, timeout, Instant};
use wsio::ClientBuilder;

use crate::child::ServerChild;
use crate::dial::Dialer;
use crate::echo::{self, Api, EchoPlan, Load};
use crate::idle::{self, IdlePhase};
use crate::options::Options;
use crate::payload::Pools;
use crate::report::{mib, FdCheck, Run, Sample, Verdict};
use crate::system;
use crate::tally::{Fault, Gauge, Tally};

/// Held connections being opened at once during the ramp: enough to open 10,000 in seconds,
/// few enough to stay well inside the accept backlog.
const RAMP_CONCURRENCY: usize = 256;
/// Messages an echoing connection may have unanswered.
const IN_FLIGHT: u32 = 4;
/// Time between two lines.
const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// How long the server's file count may take to settle after connections end.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long each stage of the wind-down may take (churn under way, idle checks, closes).
const STAGE_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs the soak against `server` and decides it.
pub(crate) async fn run(options: &Options, server: &ServerChild, file_limit: u64) -> Verdict {
    preamble(options, server, file_limit);
    let soak = Soak::new(options, server);
    let mut run = Run {
        samples: Vec::new(),
        warmup: options.warmup(),
        baseline_fds: system::open_fds(server.pid()).unwrap_or(0),
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
    let held = soak.ramp(&mut run).await;
    soak.load(&mut run).await;
    soak.wind_down(&mut run, held).await;
    run.verdict(&soak.tally)
}

/// What the stages of a run share.
struct Soak<'a> {
    options: &'a Options,
    server: &'a ServerChild,
    tally: Arc<Tally>,
    pools: Arc<Pools>,
    dialer: Arc<Dialer>,
    echo_plan: Arc<EchoPlan>,
    /// Tells the echoing and short-lived connections where the run is.
    load: watch::Sender<Load>,
    /// Tells the idle connections where the end has got to.
    idle_phase: watch::Sender<IdlePhase>,
}

/// The held connections' tasks: the echoing ones first, then the idle ones.
struct Held {
    echoing: Vec<JoinHandle<()>>,
    idle: Vec<JoinHandle<()>>,
}

impl<'a> Soak<'a> {
    fn new(options: &'a Options, server: &'a ServerChild) -> Self {
        let tally = Arc::new(Tally::default());
        let pools = Arc::new(Pools::new(options.max_size));
        let dialer = Arc::new(Dialer {
            addr: server.addr,
            builder: ClientBuilder::new().config(crate::config(options)),
        });
        let echo_plan = Arc::new(EchoPlan {
            pools: pools.clone(),
            tally: tally.clone(),
            period: Duration::from_secs_f64(
                f64::from(options.echoing.max(1)) / options.messages_per_sec,
            ),
            in_flight: IN_FLIGHT,
            max_size: options.max_size,
        });
        Soak {
            options,
            server,
            tally,
            pools,
            dialer,
            echo_plan,
            load: watch::channel(Load::Ramp).0,
            idle_phase: watch::channel(IdlePhase::Hold).0,
        }
    }

    /// Opens every held connection, [`RAMP_CONCURRENCY`] at a time; the echoing ones wait for
    /// the load to start before they send.
    async fn ramp(&self, run: &mut Run) -> Held {
        let started = Instant::now();
        let opening = Arc::new(Semaphore::new(RAMP_CONCURRENCY));
        let idle = self.options.idle();
        // The sampled idle connections are spread evenly over the idle ones.
        let stride = (idle / run.idle_checks.max(1)).max(1);
        let mut held = Held {
            echoing: Vec::with_capacity(self.options.echoing as usize),
            idle: Vec::with_capacity(idle as usize),
        };
        for id in 0..self.options.connections {
            let permit = opening.clone().acquire_owned().await.expect("never closed");
            let (dialer, tally) = (self.dialer.clone(), self.tally.clone());
            let role = if id < self.options.echoing {
                Role::Echo(Api::of(id), self.echo_plan.clone(), self.load.subscribe())
            } else {
                let index = id - self.options.echoing;
                let sampled = index.is_multiple_of(stride) && index / stride < run.idle_checks;
                Role::Idle(sampled, self.pools.clone(), self.idle_phase.subscribe())
            };
            let echoing = matches!(role, Role::Echo(..));
            let task = tokio::spawn(async move {
                let path = role.path();
                let ws = match dialer.open(path).await {
                    Ok(ws) => ws,
                    Err(e) => {
                        let what = format!("held {id} ({path}): {e}");
                        return tally.fault(Fault::OpenFailed, 1, what);
                    }
                };
                // Counted before the ramp's permit goes back, so that the ramp's end sees it.
                let _open = Gauge::up(&tally.held_open);
                drop(permit);
                match role {
                    Role::Echo(api, plan, load) => echo::run(ws, api, id, plan, load).await,
                    Role::Idle(sampled, pools, phase) => {
                        idle::run(ws, id, sampled, pools, tally.clone(), phase).await
                    }
                }
            });
            if echoing {
                held.echoing.push(task);
            } else {
                held.idle.push(task);
            }
        }
        let _ = opening.acquire_many(RAMP_CONCURRENCY as u32).await;
        run.ramp = started.elapsed();
        run.held_reached = self.tally.held_open.load(Relaxed);
        let pid = self.server.pid();
        println!(
            "ramp: {} of {} held connections open in {:.1} s; server fds {} (baseline {}), \
             rss {}",
            run.held_reached,
            self.options.connections,
            run.ramp.as_secs_f64(),
            system::open_fds(pid).map_or("?".into(), |n| n.to_string()),
            run.baseline_fds,
            system::rss(pid).map_or("?".into(), mib),
        );
        held
    }

    /// Echoes and churn for the duration, a sample and a line every 10 s.
    async fn load(&self, run: &mut Run) {
        let started = Instant::now();
        self.load.send_replace(Load::Running);
        let churn = tokio::spawn(crate::churn::run(
            self.options.churn_per_sec,
            self.dialer.clone(),
            self.pools.clone(),
            self.tally.clone(),
            self.load.subscribe(),
        ));
        let end = started + self.options.duration();
        let mut next = started;
        loop {
            sleep_until(next.min(end)).await;
            let at = Instant::now().min(end) - started;
            let Some(sample) = Sample::take(at, self.server, &self.tally) else {
                run.aborted = Some("the server process is gone".into());
                break;
            };
            if let Some(earlier) = run.samples.last() {
                println!("{}", sample.line(earlier, self.server, &self.tally));
            }
            run.samples.push(sample);
            if Instant::now() >= end {
                break;
            }
            next += SAMPLE_EVERY;
        }
        self.load.send_replace(Load::Stopped);
        if timeout(STAGE_TIMEOUT, churn).await.is_err() {
            let what = "short-lived connections still under way 60 s after the stop";
            self.tally.fault(Fault::ChurnFailed, 1, what);
        }
    }

    /// The end, in stages: the echoing connections drain and close, and the server must then
    /// hold the idle connections alone; the sampled idle ones echo; all close, and the
    /// server must be back to its baseline.
    async fn wind_down(&self, run: &mut Run, mut held: Held) {
        let tally = &self.tally;
        let pid = self.server.pid();
        join_all(&mut held.echoing, tally, Fault::EchoFailed).await;
        let idle_open = tally.held_open.load(Relaxed).max(0) as u64;
        if run.aborted.is_none() {
            run.fds_after_churn = settle(pid, run.baseline_fds + idle_open).await;
        }

        self.idle_phase.send_replace(IdlePhase::Check);
        let checks_done = || {
            tally.idle_checked.load(Relaxed)
                + tally.faults(Fault::IdleCheckFailed)
                + tally.faults(Fault::IdleLost)
        };
        let checked = async {
            while checks_done() < u64::from(run.idle_checks) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        if timeout(STAGE_TIMEOUT, checked).await.is_err() {
            let what = "idle checks unfinished 60 s after they started";
            tally.fault(Fault::IdleCheckFailed, 1, what);
        }

        self.idle_phase.send_replace(IdlePhase::Close);
        join_all(&mut held.idle, tally, Fault::IdleCheckFailed).await;
        if run.aborted.is_none() {
            run.fds_after_close = settle(pid, run.baseline_fds).await;
        }
        // The server prints its status once a second: let the last one follow the closes.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        println!(
            "end: server status {}; TIME_WAIT sockets {}",
            self.server.status(),
            system::time_wait().map_or("?".into(), |n| n.to_string())
        );
    }
}

/// What a held connection does once open.
enum Role {
    Echo(Api, Arc<EchoPlan>, watch::Receiver<Load>),
    /// Idle; `true` if it is one of those checked at the end.
    Idle(bool, Arc<Pools>, watch::Receiver<IdlePhase>),
}

impl Role {
    /// The URL path that tells the server how to echo.
    fn path(&self) -> &'static str {
        match self {
            Role::Echo(api, ..) => api.path(),
            Role::Idle(..) => "/idle",
        }
    }
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
