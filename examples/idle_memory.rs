//! Memory per idle server connection: wsio beside tokio-tungstenite, fastwebsockets and
//! tokio-websockets (and a bare tokio `TcpStream` as the floor).
//!
//! ```text
//! cargo run --release --example idle_memory                 # every library, 10,000 connections
//! cargo run --release --example idle_memory -- wsio-deflate  # compression negotiated
//! cargo run --release --example idle_memory -- wsio 20000   # one library, another count
//! ```
//!
//! How the server's share is isolated: the measuring process runs only the server (a tokio
//! multi-thread runtime, one task per connection, each parked in its library's receive call
//! after the handshake). The clients live in a child process (this binary again, with
//! `--clients`), so their memory never shows in the server's RSS. The server reads its own
//! `VmRSS` (from `/proc/self/status`) once a first batch of connections is up, so that one-time
//! costs (lazy statics, allocator arenas, the runtime's first allocations) are left out, and
//! again once all are up and idle; the difference over the number of connections added is the
//! figure. It is user-space memory only: the kernel's socket buffers are not in RSS. With
//! `all`, each library runs in a fresh server process, so none inherits another's heap.
//!
//! `wsio-talked` exchanges one message each way before it idles; `wsio-deflate` and
//! `wsio-deflate-nct` negotiate permessage-deflate (with and without context
//! takeover) and exchange one compressed message each way before they idle, so that both
//! directions' compression state was made; without context takeover it is freed after each
//! message.
//!
//! The open-file limit is raised to its hard limit inside each process (`setrlimit`); if the
//! hard limit is below the count plus some slack, run under `ulimit -n 65536` (as root) or ask
//! for fewer connections. Every process stops by itself: the clients when their parent goes
//! away or after a timeout, the server once it has measured.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const LIBS: [&str; 8] = [
    "wsio",
    "wsio-talked",
    "wsio-deflate",
    "wsio-deflate-nct",
    "tungstenite",
    "fastwebsockets",
    "tokio-websockets",
    "tcp",
];
const DEFAULT_CONNECTIONS: usize = 10_000;
/// Connections opened before the first reading, to leave one-time costs out.
const WARM: usize = 200;
/// How long any phase may take before the process gives up.
const TIMEOUT: Duration = Duration::from_secs(180);

/// The fixed key of RFC 6455 §1.3 and its accept value.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--clients") {
        let addr = args.get(1).expect("--clients ADDR N");
        let n = args
            .get(2)
            .and_then(|n| n.parse().ok())
            .expect("--clients ADDR N LIB");
        return clients(addr, n, args.get(3).expect("--clients ADDR N LIB"));
    }
    let which = args.first().map(String::as_str).unwrap_or("all");
    let n: usize = args
        .get(1)
        .map(|n| n.parse().expect("N: a number of connections"))
        .unwrap_or(DEFAULT_CONNECTIONS);
    if n <= WARM {
        eprintln!("N must be above {WARM}");
        std::process::exit(2);
    }
    match which {
        "all" => all(n),
        other => {
            if let Some(lib) = LIBS.iter().find(|lib| **lib == other) {
                println!("{}", server(lib, n));
                return;
            }
            eprintln!(
                "usage: idle_memory [{}|all] [N] (not {other:?})",
                LIBS.join("|")
            );
            std::process::exit(2);
        }
    }
}

/// Runs each library in its own server process and prints a table.
fn all(n: usize) {
    let exe = std::env::current_exe().expect("own path");
    println!(
        "| library | connections | RSS at {WARM} | RSS at {n} | RSS per connection \
         | task future | connection struct |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for lib in LIBS {
        let out = Command::new(&exe)
            .args([lib, &n.to_string()])
            .stderr(Stdio::inherit())
            .output()
            .expect("run a server process");
        let text = String::from_utf8_lossy(&out.stdout);
        match text.lines().last() {
            Some(line) if out.status.success() => println!("{line}"),
            _ => println!("| {lib} | failed ({}) | | | | | |", out.status),
        }
    }
}

/// Raises the soft open-file limit to the hard one; returns the new soft limit.
fn raise_nofile_limit() -> libc::rlim_t {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `getrlimit` writes one `rlimit` through a valid, exclusive pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return 1024;
    }
    limit.rlim_cur = limit.rlim_max;
    // SAFETY: `setrlimit` reads one `rlimit` through a valid pointer.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        // SAFETY: as above.
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    }
    limit.rlim_cur
}

fn check_limit(n: usize) {
    let limit = raise_nofile_limit();
    if n as libc::rlim_t + 64 > limit {
        eprintln!(
            "open-file limit {limit} is too low for {n} connections: run under `ulimit -n {}`",
            n + 1024
        );
        std::process::exit(1);
    }
}

/// This process's resident set, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}

// ---------------------------------------------------------------------------------------------
// The server: the measured process.

fn server(lib: &'static str, n: usize) -> String {
    check_limit(n);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        tokio::time::timeout(TIMEOUT, measure(lib, n))
            .await
            .unwrap_or_else(|_| panic!("{lib}: timed out"))
    })
}

async fn measure(lib: &'static str, n: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let upgraded = Arc::new(AtomicUsize::new(0));
    let counter = upgraded.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            hold(lib, tcp, counter.clone());
        }
    });

    // The clients, in a child process that reports on stdout and waits for orders on stdin.
    let exe = std::env::current_exe().expect("own path");
    let mut child = Command::new(exe)
        .args(["--clients", &addr.to_string(), &n.to_string(), lib])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the client process");
    let mut orders = child.stdin.take().expect("child stdin");
    let reports = BufReader::new(child.stdout.take().expect("child stdout"));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in reports.lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });

    assert_eq!(rx.recv().await.as_deref(), Some("warm"), "client process");
    wait_for(&upgraded, WARM).await;
    settle().await;
    let before = rss_kib();
    orders.write_all(b"go\n").expect("order the clients");
    orders.flush().expect("order the clients");
    assert_eq!(rx.recv().await.as_deref(), Some("ready"), "client process");
    wait_for(&upgraded, n).await;
    settle().await;
    let after = rss_kib();

    drop(orders); // the client process exits on EOF
    let _ = child.wait();
    let per_conn = (after.saturating_sub(before)) as f64 / (n - WARM) as f64;
    let task = TASK_SIZE.load(Ordering::Relaxed);
    let conn = connection_size(lib);
    format!(
        "| {lib} | {n} | {before} KiB | {after} KiB | {per_conn:.2} KiB | {task} B | {conn} B |"
    )
}

async fn wait_for(counter: &AtomicUsize, n: usize) {
    while counter.load(Ordering::Acquire) < n {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Lets the last tasks reach their parking point.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(500)).await;
}

/// Spawns the task that upgrades one connection with `lib` and parks it in the library's
/// receive call. One `async fn` per library: a task's size is that of its own future only.
fn hold(lib: &str, tcp: TcpStream, upgraded: Arc<AtomicUsize>) {
    fn spawn<F: std::future::Future<Output = ()> + Send + 'static>(task: F) {
        TASK_SIZE.store(std::mem::size_of_val(&task), Ordering::Relaxed);
        tokio::spawn(task);
    }
    match lib {
        "wsio" => spawn(hold_wsio(tcp, upgraded)),
        "wsio-talked" => spawn(hold_wsio_talked(tcp, upgraded, false)),
        "wsio-deflate" | "wsio-deflate-nct" => spawn(hold_wsio_talked(tcp, upgraded, true)),
        "tungstenite" => spawn(hold_tungstenite(tcp, upgraded)),
        "fastwebsockets" => spawn(hold_fastwebsockets(tcp, upgraded)),
        "tokio-websockets" => spawn(hold_tokio_websockets(tcp, upgraded)),
        "tcp" => spawn(hold_tcp(tcp, upgraded)),
        _ => unreachable!(),
    }
}

/// The size of the connection type itself, over a `TcpStream`.
fn connection_size(lib: &str) -> usize {
    use std::mem::size_of;
    match lib {
        "wsio" | "wsio-talked" | "wsio-deflate" | "wsio-deflate-nct" => {
            size_of::<wsio::WebSocket<TcpStream>>()
        }
        "tungstenite" => size_of::<tokio_tungstenite::WebSocketStream<TcpStream>>(),
        "fastwebsockets" => size_of::<fastwebsockets::WebSocket<TcpStream>>(),
        "tokio-websockets" => size_of::<tokio_websockets::WebSocketStream<TcpStream>>(),
        _ => size_of::<TcpStream>(),
    }
}

/// The size of one connection's task future (the handshake's state and the connection's).
static TASK_SIZE: AtomicUsize = AtomicUsize::new(0);

async fn hold_wsio(tcp: TcpStream, upgraded: Arc<AtomicUsize>) {
    let Ok(mut ws) = wsio::accept(tcp).await else {
        return;
    };
    upgraded.fetch_add(1, Ordering::AcqRel);
    let _ = ws.recv().await;
}

/// One message each way, then idle: with permessage-deflate negotiated (the client offers it),
/// the message is compressed both ways, so that both directions' zlib state was made; what an
/// idle connection holds after it has talked, with context takeover (kept) or without (freed
/// after each message). Without it (`wsio-talked`), the same task with plain messages: the
/// figure to compare with.
async fn hold_wsio_talked(tcp: TcpStream, upgraded: Arc<AtomicUsize>, deflate: bool) {
    let Ok(mut ws) = wsio::accept(tcp).await else {
        return;
    };
    assert_eq!(
        ws.permessage_deflate().is_some(),
        deflate,
        "deflate negotiated"
    );
    let Some(Ok(message)) = ws.recv().await else {
        return;
    };
    if ws.send_with(message, wsio::Compress::Always).await.is_err() {
        return;
    }
    upgraded.fetch_add(1, Ordering::AcqRel);
    let _ = ws.recv().await;
}

async fn hold_tungstenite(tcp: TcpStream, upgraded: Arc<AtomicUsize>) {
    let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
        return;
    };
    upgraded.fetch_add(1, Ordering::AcqRel);
    let _ = futures::StreamExt::next(&mut ws).await;
}

async fn hold_fastwebsockets(tcp: TcpStream, upgraded: Arc<AtomicUsize>) {
    // fastwebsockets' own server handshake needs hyper; a minimal one does the same.
    let Some(tcp) = server_handshake(tcp).await else {
        return;
    };
    let mut ws = fastwebsockets::WebSocket::after_handshake(tcp, fastwebsockets::Role::Server);
    upgraded.fetch_add(1, Ordering::AcqRel);
    let _ = ws.read_frame().await;
}

async fn hold_tokio_websockets(tcp: TcpStream, upgraded: Arc<AtomicUsize>) {
    let Ok((_request, mut ws)) = tokio_websockets::ServerBuilder::new().accept(tcp).await else {
        return;
    };
    upgraded.fetch_add(1, Ordering::AcqRel);
    let _ = futures::StreamExt::next(&mut ws).await;
}

/// The floor: a tokio `TcpStream` and a task, waiting to read.
async fn hold_tcp(tcp: TcpStream, upgraded: Arc<AtomicUsize>) {
    let Some(mut tcp) = server_handshake(tcp).await else {
        return;
    };
    upgraded.fetch_add(1, Ordering::AcqRel);
    let _ = tcp.read(&mut [0u8; 1]).await;
}

/// Reads the upgrade request (byte by byte: nothing past it is consumed) and answers 101.
async fn server_handshake(mut tcp: TcpStream) -> Option<TcpStream> {
    let mut head = Vec::with_capacity(256);
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tcp.read_exact(&mut byte).await.ok()?;
        head.push(byte[0]);
    }
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {ACCEPT}\r\n\r\n"
    );
    tcp.write_all(response.as_bytes()).await.ok()?;
    Some(tcp)
}

// ---------------------------------------------------------------------------------------------
// The clients: a child process with blocking sockets, not measured.

/// "Hello" compressed (RFC 7692 §7.2.3.1), in a masked text frame whose key is zero.
const COMPRESSED_HELLO: [u8; 13] = [
    0xc1, 0x87, 0, 0, 0, 0, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00,
];
/// "Hello" as it is, likewise.
const HELLO: [u8; 11] = [0x81, 0x85, 0, 0, 0, 0, b'H', b'e', b'l', b'l', b'o'];

fn clients(addr: &str, n: usize, lib: &str) {
    check_limit(n);
    let offer = match lib {
        "wsio-deflate" => {
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
        }
        "wsio-deflate-nct" => {
            "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; \
             client_no_context_takeover\r\n"
        }
        _ => "",
    };
    // Stop by ourselves if the parent never says anything more.
    std::thread::spawn(|| {
        std::thread::sleep(TIMEOUT);
        std::process::exit(1);
    });
    let request = format!(
        "GET /idle HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{offer}\r\n"
    );
    let mut held = Vec::with_capacity(n);
    let mut stdin = BufReader::new(std::io::stdin());
    let mut stdout = std::io::stdout();
    for i in 0..n {
        if i == WARM {
            writeln!(stdout, "warm")
                .and_then(|_| stdout.flush())
                .expect("report");
            let mut order = String::new();
            if stdin.read_line(&mut order).unwrap_or(0) == 0 {
                return;
            }
        }
        let mut tcp = std::net::TcpStream::connect(addr).expect("connect");
        tcp.write_all(request.as_bytes())
            .expect("send the upgrade request");
        let mut head = Vec::with_capacity(256);
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            tcp.read_exact(&mut byte)
                .expect("read the upgrade response");
            head.push(byte[0]);
        }
        assert!(head.starts_with(b"HTTP/1.1 101"), "upgrade refused");
        if lib != "wsio" && lib.starts_with("wsio") {
            let (hello, first) = match offer {
                "" => (&HELLO[..], 0x81),
                _ => (&COMPRESSED_HELLO[..], 0xc1),
            };
            tcp.write_all(hello).expect("send a message");
            // The echo: a header of two bytes (a short payload), then the payload.
            let mut header = [0u8; 2];
            tcp.read_exact(&mut header).expect("read the echo");
            assert_eq!(header[0], first, "a text frame, compressed if negotiated");
            let mut payload = vec![0u8; usize::from(header[1] & 0x7f)];
            tcp.read_exact(&mut payload).expect("read the echo");
        }
        held.push(tcp);
    }
    writeln!(stdout, "ready")
        .and_then(|_| stdout.flush())
        .expect("report");
    // Hold every connection until the parent closes our stdin (or goes away).
    let mut rest = Vec::new();
    let _ = stdin.read_to_end(&mut rest);
    drop(held);
}
