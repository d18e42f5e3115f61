//! A `wss://` server under TLS abuse stays bounded. Each connection runs
//! `Acceptor::accept_tls` under a short `Config::handshake_timeout`, and:
//!
//! - garbage instead of a ClientHello fails at once with `ErrorKind::Tls` and the connection is
//!   closed, its file descriptor released;
//! - a real ClientHello sent one byte a second is cut off at the handshake timeout: the
//!   timeout covers the TLS handshake as a whole, not each read;
//! - a client that completes TLS and never sends its HTTP request is cut off the same way;
//! - 2,000 concurrent half-open TLS handshakes all end within the timeout (plus slack), the
//!   process's open file descriptors go back to their baseline, memory stays bounded, and a
//!   well-behaved client connects and echoes meanwhile.
//!
//! The tests take turns (a process-wide lock): they count this process's file descriptors.

#![cfg(feature = "tls")]

mod support;

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;
use wsio::error::Timeout;
use wsio::server::Acceptor;
use wsio::tls::rustls::{self, RootCertStore};
use wsio::tls::tokio_rustls::TlsConnector;
use wsio::tls::{ServerName, TlsAcceptor};
use wsio::{ClientBuilder, Config, Error, ErrorKind, Message};

use support::certs::Ca;
use support::{within, within_for, XorShift};

/// The server's handshake timeout in the single-connection cases: short, so that the tests
/// are quick, and long against a loopback handshake (a few milliseconds).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);

/// How late past its deadline a timed-out handshake may end: the timer firing, the task being
/// scheduled and the socket closed, on a loaded 2-core machine where other helpers build.
/// Generous, since this measures a bound, not speed; a handshake that is not cut off at all
/// overshoots by far more (it would wait for the trickle's last byte, minutes later).
const SLACK: Duration = Duration::from_secs(3);

/// How long the file descriptors of closed connections may take to be released: the server's
/// tasks drop their sockets as soon as their handshake ends, so this is scheduling only.
const FDS_SETTLE: Duration = Duration::from_secs(10);

/// The tests count this process's open file descriptors and its memory: one at a time, each
/// in a runtime of its own that exists only while it holds this lock (a runtime has
/// descriptors too: its epoll instance and its waker).
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs `test` alone in the process, on a fresh runtime with `workers` worker threads (0: the
/// current thread only), dropped before the next test starts.
fn run_alone<F: Future>(workers: usize, test: F) -> F::Output {
    // A test that failed while holding the lock poisons it; the next one can still run.
    let _turn = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let runtime = match workers {
        0 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        n => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build(),
    };
    runtime.unwrap().block_on(test)
}

/// How one connection's `accept_tls` ended, and how long it took.
#[derive(Debug)]
struct Outcome {
    result: Result<(), Error>,
    took: Duration,
}

/// A test-local `wss://` server: an accept loop spawning `accept_tls` per connection. A
/// connection that is accepted echoes data messages until it ends; every connection's outcome
/// goes to `outcomes`.
struct Server {
    port: u16,
    outcomes: mpsc::UnboundedReceiver<Outcome>,
    /// Connections whose handshake is under way.
    in_handshake: Arc<AtomicUsize>,
    /// The most handshakes that were under way at once.
    peak_in_handshake: Arc<AtomicUsize>,
    accept_loop: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.accept_loop.abort();
    }
}

impl Server {
    async fn start(tls: TlsAcceptor, handshake_timeout: Duration) -> Server {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        // Room for the flood's 2,000 connects arriving at once (tokio's default is 1,024):
        // a full queue would drop SYNs, and a retried SYN waits a second or more.
        let listener = socket.listen(4096).unwrap();
        let port = listener.local_addr().unwrap().port();
        let acceptor =
            Acceptor::new().config(Config::default().handshake_timeout(handshake_timeout));
        let (report, outcomes) = mpsc::unbounded_channel();
        let in_handshake = Arc::new(AtomicUsize::new(0));
        let peak_in_handshake = Arc::new(AtomicUsize::new(0));
        let (gauge, peak) = (in_handshake.clone(), peak_in_handshake.clone());
        let accept_loop = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (tls, acceptor, report) = (tls.clone(), acceptor.clone(), report.clone());
                let (gauge, peak) = (gauge.clone(), peak.clone());
                tokio::spawn(async move {
                    let now_in_handshake = gauge.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now_in_handshake, Ordering::SeqCst);
                    let started = Instant::now();
                    let accepted = acceptor.accept_tls(&tls, tcp).await;
                    let took = started.elapsed();
                    gauge.fetch_sub(1, Ordering::SeqCst);
                    match accepted {
                        Ok((mut ws, _)) => {
                            let _ = report.send(Outcome {
                                result: Ok(()),
                                took,
                            });
                            while let Some(Ok(message)) = ws.recv().await {
                                if message.is_data() && ws.send(message).await.is_err() {
                                    break;
                                }
                            }
                        }
                        // The connection is gone already: `accept_tls` took it and dropped it.
                        Err(e) => {
                            let _ = report.send(Outcome {
                                result: Err(e),
                                took,
                            });
                        }
                    }
                });
            }
        });
        Server {
            port,
            outcomes,
            in_handshake,
            peak_in_handshake,
            accept_loop,
        }
    }

    async fn connect(&self) -> TcpStream {
        within(
            "connecting to the server",
            TcpStream::connect(("127.0.0.1", self.port)),
        )
        .await
        .unwrap()
    }

    /// The next connection's outcome, within `limit`.
    async fn outcome(&mut self, limit: Duration, what: &str) -> Outcome {
        within_for(limit, what, self.outcomes.recv())
            .await
            .expect("the accept loop runs")
    }
}

/// A certificate for `localhost`, the server's TLS acceptor, and a client config trusting it.
fn tls_pair() -> (TlsAcceptor, Arc<rustls::ClientConfig>) {
    let ca = Ca::new("wsio TLS abuse CA");
    let leaf = ca.leaf(&["localhost"], None);
    let mut roots = RootCertStore::empty();
    roots.add(ca.der()).unwrap();
    (
        wsio::tls::acceptor(leaf.chain, leaf.key).unwrap(),
        wsio::tls::client_config(roots).unwrap(),
    )
}

/// This process's open file descriptors.
fn open_fds() -> usize {
    // The directory's own descriptor is counted too, the same in every call.
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// What this process's open file descriptors point to (for a failure message).
fn fd_targets() -> Vec<String> {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .map(|target| target.display().to_string())
        .collect()
}

/// Waits (bounded) until this process has no more open file descriptors than `baseline`.
async fn fds_back_to(baseline: usize, what: &str) {
    let deadline = Instant::now() + FDS_SETTLE;
    loop {
        let open = open_fds();
        if open <= baseline {
            return;
        }
        if Instant::now() >= deadline {
            panic!(
                "{what}: {open} file descriptors open after {FDS_SETTLE:?}, baseline {baseline}: {:?}",
                fd_targets()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// This process's resident memory, in KiB (`VmRSS` of `/proc/self/status`).
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}

/// Raises this process's soft open-file limit to its hard limit (the flood holds over 4,000
/// sockets: both ends of 2,000 connections live in this process).
fn raise_open_file_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `getrlimit` writes one `rlimit` through a valid, exclusive pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return 0;
    }
    limit.rlim_cur = limit.rlim_max;
    // SAFETY: `setrlimit` reads one `rlimit` through a valid pointer. A failure leaves the
    // limit as it was, which the caller checks.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
    // SAFETY: as above.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    limit.rlim_cur
}

/// The bytes of a real ClientHello: what a rustls client writes first, captured through an
/// in-memory pipe (one TLS record: a 5-byte header and its body).
async fn client_hello(client: Arc<rustls::ClientConfig>) -> Vec<u8> {
    let (client_end, mut server_end) = tokio::io::duplex(64 * 1024);
    let name = ServerName::try_from("localhost").unwrap();
    let handshake = TlsConnector::from(client).connect(name, client_end);
    let read_record = async {
        let mut header = [0u8; 5];
        server_end.read_exact(&mut header).await.unwrap();
        assert_eq!(header[0], 22, "a handshake record: {header:?}");
        let len = u16::from_be_bytes([header[3], header[4]]) as usize;
        let mut record = header.to_vec();
        record.resize(5 + len, 0);
        server_end.read_exact(&mut record[5..]).await.unwrap();
        assert_eq!(record[5], 1, "a ClientHello message");
        record
    };
    within("capturing a ClientHello", async {
        tokio::select! {
            record = read_record => record,
            outcome = handshake => panic!("the handshake ended without a server: {outcome:?}"),
        }
    })
    .await
}

/// What the client end of an abused connection sees once the server gives up: the bytes it
/// got (a TLS alert, perhaps) and how its stream ended.
async fn client_sees_close(tcp: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let ended = within(
        "the server closes the abused connection",
        tcp.read_to_end(&mut got),
    )
    .await;
    match ended {
        Ok(_) => format!("{} bytes {:02x?}, then EOF", got.len(), got),
        Err(e) => format!("{} bytes {:02x?}, then {:?}: {e}", got.len(), got, e.kind()),
    }
}

/// Bytes that are no ClientHello fail the TLS handshake at once, with a TLS error (not the
/// timeout), and the server closes the connection and releases its descriptor.
#[test]
fn garbage_instead_of_a_client_hello_is_a_quick_tls_error() {
    run_alone(0, garbage_instead_of_a_client_hello());
}

async fn garbage_instead_of_a_client_hello() {
    let (tls, _) = tls_pair();
    let mut server = Server::start(tls, HANDSHAKE_TIMEOUT).await;
    let baseline = open_fds();
    let mut rng = XorShift::new(0x6761_7262_6167_6521);
    let garbage: [(&str, Vec<u8>); 3] = [
        (
            "a plain-text HTTP upgrade request (ws:// to a wss:// port)",
            b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\r\n".to_vec(),
        ),
        ("random bytes", rng.bytes(512)),
        (
            // A well-formed record header of type handshake around a message that is not a
            // ClientHello (type 0xEE, then noise).
            "a handshake record holding no ClientHello",
            [&[22, 3, 1, 0, 8, 0xEE, 0, 0, 4][..], &rng.bytes(4)].concat(),
        ),
    ];
    for (what, bytes) in garbage {
        let mut tcp = server.connect().await;
        tcp.write_all(&bytes).await.unwrap();
        let outcome = server.outcome(HANDSHAKE_TIMEOUT + SLACK, what).await;
        let error = outcome.result.expect_err(what);
        assert_eq!(error.kind(), ErrorKind::Tls, "{what}: {error:?}");
        assert!(
            outcome.took < HANDSHAKE_TIMEOUT,
            "{what}: the error took {:?}, as long as the timeout: {error}",
            outcome.took
        );
        let client_saw = client_sees_close(&mut tcp).await;
        drop(tcp);
        fds_back_to(baseline, what).await;
        println!(
            "{what}: {error} ({error:?}) after {:?}; the client saw {client_saw}",
            outcome.took
        );
    }
}

/// Awaits the server's outcome for a connection while `client` misbehaves; checks that it is
/// the handshake timeout, neither early nor later than the slack allows. Returns it.
async fn expect_handshake_timeout(
    server: &mut Server,
    client: impl Future<Output = ()>,
    what: &str,
) -> Outcome {
    let outcome = tokio::select! {
        outcome = server.outcome(HANDSHAKE_TIMEOUT + SLACK, what) => outcome,
        () = client => panic!("{what}: the client's script ended before the server gave up"),
    };
    match &outcome.result {
        Err(Error::Timeout(Timeout::Handshake)) => {}
        other => panic!("{what}: expected the handshake timeout, got {other:?}"),
    }
    assert!(
        outcome.took >= HANDSHAKE_TIMEOUT && outcome.took <= HANDSHAKE_TIMEOUT + SLACK,
        "{what}: timed out after {:?}, for a timeout of {HANDSHAKE_TIMEOUT:?}",
        outcome.took
    );
    outcome
}

/// A real ClientHello sent one byte a second: each byte comes well within the timeout of the
/// previous one, so only a deadline on the whole handshake (TLS included) cuts it off.
#[test]
fn a_client_hello_sent_a_byte_a_second_is_cut_off_at_the_handshake_timeout() {
    run_alone(0, a_client_hello_sent_a_byte_a_second());
}

async fn a_client_hello_sent_a_byte_a_second() {
    let (tls, client) = tls_pair();
    let hello = client_hello(client).await;
    let mut server = Server::start(tls, HANDSHAKE_TIMEOUT).await;
    let baseline = open_fds();
    let mut tcp = server.connect().await;
    let sent = AtomicUsize::new(0);
    let trickle = async {
        for byte in &hello {
            if tcp.write_all(&[*byte]).await.is_err() {
                break;
            }
            sent.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        // The whole hello went out (hundreds of seconds): wait for the server's verdict.
        std::future::pending::<()>().await
    };
    let what = "a ClientHello at one byte a second";
    let outcome = expect_handshake_timeout(&mut server, trickle, what).await;
    let sent = sent.load(Ordering::SeqCst);
    assert!(sent < hello.len(), "{what}: the whole ClientHello went out");
    let client_saw = client_sees_close(&mut tcp).await;
    drop(tcp);
    fds_back_to(baseline, what).await;
    println!(
        "{what}: {} after {:?}, {sent} of the hello's {} bytes sent; the client saw {client_saw}",
        outcome.result.unwrap_err(),
        outcome.took,
        hello.len()
    );
}

/// A client that completes the TLS handshake and then never sends its HTTP request is cut off
/// when the same deadline passes: TLS and the upgrade share one handshake timeout.
#[test]
fn a_client_silent_after_tls_is_cut_off_at_the_handshake_timeout() {
    run_alone(0, a_client_silent_after_tls());
}

async fn a_client_silent_after_tls() {
    let (tls, client) = tls_pair();
    let mut server = Server::start(tls, HANDSHAKE_TIMEOUT).await;
    let baseline = open_fds();
    let tcp = server.connect().await;
    let name = ServerName::try_from("localhost").unwrap();
    let mut tls_client = within(
        "the client's TLS handshake",
        TlsConnector::from(client).connect(name, tcp),
    )
    .await
    .expect("TLS completes");
    let what = "a client silent after TLS";
    let outcome = expect_handshake_timeout(&mut server, std::future::pending(), what).await;
    let mut got = Vec::new();
    let ended = within(
        "the server closes the silent connection",
        tls_client.read_to_end(&mut got),
    )
    .await;
    let client_saw = match ended {
        Ok(n) => format!("{n} bytes, then EOF (close_notify)"),
        Err(e) => format!("{} bytes, then {:?}: {e}", got.len(), e.kind()),
    };
    drop(tls_client);
    fds_back_to(baseline, what).await;
    println!(
        "{what}: {} after {:?}; the client saw {client_saw}",
        outcome.result.unwrap_err(),
        outcome.took
    );
}

/// How many half-open handshakes the flood holds at once.
const HALF_OPEN: usize = 2000;

/// The flood's handshake timeout: longer than the single cases' so that all 2,000 connections
/// are in their handshake at once before the first of them times out. Opening them took 1.5 s
/// in a debug build on a busy 2-core machine (the server's key exchanges for the whole hellos
/// share the two cores); ten seconds leave room for a machine several times busier.
const FLOOD_TIMEOUT: Duration = Duration::from_secs(10);

/// The most resident memory the flood may add per connection, both ends counted (both are in
/// this process). Measured: about 26 KiB, most of it the server's rustls state (a record
/// buffer sized for the ClientHello, the transcript, a key share and the answer for the whole
/// hellos) plus each handshake's task and socket registration, and the allocator's arenas for
/// two worker threads. Five times that is the bound: it would catch a connection that
/// preallocates its WebSocket buffers (64 KiB and more) or read-ahead before the handshake is
/// done, not the allocator's moods.
const MAX_RSS_PER_CONNECTION: u64 = 128 * 1024;

/// What a half-open client of the flood does before it holds its connection, saying nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HalfOpen {
    /// Connects and sends nothing.
    Silent,
    /// Sends the first bytes of a ClientHello (at least one, not all).
    PartOfAHello,
    /// Sends a whole ClientHello and never reads the server's answer or finishes.
    AWholeHello,
}

/// 2,000 concurrent half-open TLS handshakes: a third silent, a third stopped inside the
/// ClientHello, a third after it. All end with the handshake timeout, within the slack; the
/// process's descriptors go back to the baseline; memory grows by a bounded amount per
/// connection; and a well-behaved client still connects and echoes while they are held.
#[test]
fn two_thousand_half_open_tls_handshakes_end_in_time_and_release_everything() {
    // Two workers: the server's handshakes proceed while the test opens connections.
    run_alone(2, two_thousand_half_open_tls_handshakes());
}

async fn two_thousand_half_open_tls_handshakes() {
    // Both ends of every connection are in this process, plus a margin for the runtime.
    let needed = 2 * HALF_OPEN as u64 + 256;
    let limit = raise_open_file_limit();
    assert!(
        limit >= needed,
        "the open-file limit is {limit}, the flood needs {needed}"
    );
    let (tls, client) = tls_pair();
    let hello = client_hello(client.clone()).await;
    let mut server = Server::start(tls, FLOOD_TIMEOUT).await;
    let baseline_fds = open_fds();
    let baseline_rss = rss_kib();
    let peak_rss = Arc::new(std::sync::atomic::AtomicU64::new(baseline_rss));
    let sampler = tokio::spawn({
        let peak_rss = peak_rss.clone();
        async move {
            loop {
                peak_rss.fetch_max(rss_kib(), Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    });

    let mut rng = XorShift::new(0x666c_6f6f_6421);
    let opening = Instant::now();
    let mut held = Vec::with_capacity(HALF_OPEN);
    for i in 0..HALF_OPEN {
        let behaviour = [
            HalfOpen::Silent,
            HalfOpen::PartOfAHello,
            HalfOpen::AWholeHello,
        ][i % 3];
        let mut tcp = server.connect().await;
        let prefix = match behaviour {
            HalfOpen::Silent => 0,
            HalfOpen::PartOfAHello => 1 + rng.below(hello.len() as u64 - 1) as usize,
            HalfOpen::AWholeHello => hello.len(),
        };
        within("a half-open client writes", tcp.write_all(&hello[..prefix]))
            .await
            .unwrap();
        held.push(tcp);
    }
    let opened_in = opening.elapsed();
    // All of them in their handshake at once, or the flood was not one.
    within_for(
        FLOOD_TIMEOUT,
        "the server takes up every connection",
        async {
            while server.peak_in_handshake.load(Ordering::SeqCst) < HALF_OPEN {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        },
    )
    .await;

    // A well-behaved client, meanwhile. It must be served within the handshake timeout, or
    // the server itself would cut it off.
    let served = Instant::now();
    let builder = ClientBuilder::new().tls_config(client);
    let connect = builder.connect(format!("wss://localhost:{}/", server.port));
    let (mut ws, _) = within_for(
        FLOOD_TIMEOUT,
        "a good client connects during the flood",
        connect,
    )
    .await
    .expect("a good client connects during the flood");
    ws.send(Message::text("still serving")).await.unwrap();
    let echo = within_for(FLOOD_TIMEOUT, "the good client's echo", ws.recv())
        .await
        .expect("an echo")
        .expect("an echo");
    assert_eq!(echo, Message::text("still serving"));
    let served_in = served.elapsed();
    let half_open_then = server.in_handshake.load(Ordering::SeqCst);
    within("the good client closes", ws.close(1000, "done"))
        .await
        .unwrap();
    drop(ws);

    // Every half-open handshake ends with the timeout, neither early nor late. The last was
    // taken up less than FLOOD_TIMEOUT ago, so all end within FLOOD_TIMEOUT + SLACK from here.
    let mut good = 0;
    let mut timeouts = 0;
    let mut slowest = Duration::ZERO;
    within_for(
        FLOOD_TIMEOUT + SLACK,
        "every half-open handshake ends",
        async {
            while timeouts + good < HALF_OPEN + 1 {
                let outcome = server.outcomes.recv().await.expect("the accept loop runs");
                match outcome.result {
                    Ok(()) => good += 1,
                    Err(Error::Timeout(Timeout::Handshake)) => {
                        timeouts += 1;
                        slowest = slowest.max(outcome.took);
                        assert!(
                            outcome.took >= FLOOD_TIMEOUT && outcome.took <= FLOOD_TIMEOUT + SLACK,
                            "a half-open handshake timed out after {:?}",
                            outcome.took
                        );
                    }
                    Err(e) => panic!("a half-open handshake ended with {e:?}, not the timeout"),
                }
            }
        },
    )
    .await;
    assert_eq!((good, timeouts), (1, HALF_OPEN));
    sampler.abort();
    let peak_rss = peak_rss.load(Ordering::SeqCst);

    // Every client reads the end of its connection (the server closed each one), then goes.
    let (mut ended_eof, mut ended_error) = (0, 0);
    for mut tcp in held.drain(..) {
        let mut answer = Vec::new();
        match within(
            "a half-open client sees its end",
            tcp.read_to_end(&mut answer),
        )
        .await
        {
            Ok(_) => ended_eof += 1,
            Err(_) => ended_error += 1,
        }
    }
    fds_back_to(baseline_fds, "after the flood").await;
    let growth_kib = peak_rss.saturating_sub(baseline_rss);
    assert!(
        growth_kib * 1024 <= MAX_RSS_PER_CONNECTION * HALF_OPEN as u64,
        "the flood added {growth_kib} KiB of resident memory, over {} KiB per connection",
        MAX_RSS_PER_CONNECTION / 1024
    );
    println!(
        "flood: {HALF_OPEN} opened in {opened_in:?}; good client served in {served_in:?} with \
         {half_open_then} handshakes still half-open; {timeouts} handshake timeouts, the slowest \
         after {slowest:?}; the clients saw {ended_eof} EOFs and {ended_error} errors; RSS {baseline_rss} KiB -> peak {peak_rss} KiB (+{growth_kib} KiB, \
         {} B per connection) -> {} KiB after; fds back to {baseline_fds}",
        growth_kib * 1024 / HALF_OPEN as u64,
        rss_kib()
    );
}
