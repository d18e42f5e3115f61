//! The load generator, `examples/wsio_load`, run as a process against servers in this one: its
//! report on short runs (counts add up, percentiles in order, the JSON parses), and its failure
//! on a refused connection and on a server that closes right after the handshake.
//!
//! The example is built once by the first test that needs it (`cargo build --example
//! wsio_load`, in the profile these tests were built in), so that `cargo test --test
//! load_generator` alone never runs a stale binary.

#![cfg(feature = "tls")]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Output;
use std::sync::OnceLock;
use std::time::Duration;

mod support;

use serde_json::Value;
use support::certs::Ca;
use tokio::net::TcpListener;
use wsio::server::Acceptor;
use wsio::CloseCode;

/// The example binary, built on first use.
fn load_generator() -> &'static PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        // This test is target/<profile>/deps/load_generator-<hash>; examples sit beside deps.
        let exe = std::env::current_exe().expect("the test's own path");
        let profile_dir = exe
            .parent()
            .and_then(|deps| deps.parent())
            .expect("target/<profile>");
        let mut build = std::process::Command::new(env!("CARGO"));
        build.args(["build", "--quiet", "--example", "wsio_load"]);
        if profile_dir
            .file_name()
            .is_some_and(|name| name == "release")
        {
            build.arg("--release");
        }
        let status = build
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("cargo runs");
        assert!(status.success(), "cargo build --example wsio_load failed");
        let binary = profile_dir.join("examples").join("wsio_load");
        assert!(binary.exists(), "no {}", binary.display());
        binary
    })
}

/// Runs the load generator with `args` (and `--json` to a fresh file) and returns its output
/// and report, if it wrote one.
async fn run(name: &str, args: &[&str]) -> (Output, Option<Value>) {
    let binary = tokio::task::spawn_blocking(load_generator).await.unwrap();
    let json = std::env::temp_dir().join(format!("wsio_load-{}-{name}.json", std::process::id()));
    let _ = std::fs::remove_file(&json);
    let child = tokio::process::Command::new(binary)
        .args(args)
        .arg("--json")
        .arg(&json)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(60), child)
        .await
        .expect("the load generator stops by itself")
        .expect("the load generator runs");
    let report = std::fs::read_to_string(&json).ok().map(|text| {
        let _ = std::fs::remove_file(&json);
        serde_json::from_str(&text).expect("the JSON report parses")
    });
    (output, report)
}

/// A wsio echo server on loopback, like examples/echo_server.rs.
async fn echo_server() -> SocketAddr {
    serve(|mut ws| async move {
        while let Some(Ok(message)) = ws.recv().await {
            if message.is_data() && ws.send(message).await.is_err() {
                break;
            }
        }
    })
    .await
}

/// A `wss://` echo server on loopback with a certificate for `localhost` from `ca`.
async fn wss_echo_server(ca: &Ca) -> SocketAddr {
    let leaf = ca.leaf(&["localhost"], None);
    let tls = wsio::tls::acceptor(leaf.chain, leaf.key).unwrap();
    let port = support::certs::wss_echo_server(tls).await;
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A server that runs `handle` on every connection it accepts.
async fn serve<F, Fut>(handle: F) -> SocketAddr
where
    F: Fn(wsio::WebSocket<tokio::net::TcpStream>) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = std::sync::Arc::new(handle);
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let handle = handle.clone();
            tokio::spawn(async move {
                if let Ok((ws, _)) = Acceptor::new().accept(tcp).await {
                    handle(ws).await;
                }
            });
        }
    });
    addr
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn count(report: &Value, field: &str) -> u64 {
    report[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{field} in {report}"))
}

/// The percentiles of `field` are in order, and returned as (p50, max).
fn ordered_percentiles(report: &Value, field: &str) -> (f64, f64) {
    let p = &report[field];
    let values: Vec<f64> = ["p50", "p90", "p99", "p99_9", "max"]
        .iter()
        .map(|q| {
            p[q].as_f64()
                .unwrap_or_else(|| panic!("{field}.{q} in {report}"))
        })
        .collect();
    assert!(
        values.windows(2).all(|w| w[0] <= w[1]),
        "{field} percentiles out of order: {values:?}"
    );
    (values[0], values[4])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_closed_loop_run_loses_nothing_and_orders_its_percentiles() {
    let addr = echo_server().await;
    let url = format!("ws://{addr}/");
    let args = [
        url.as_str(),
        "--connections=2",
        "--in-flight=4",
        "--warmup=0.2",
        "--duration=1",
        "--loopback-only",
    ];
    let (output, report) = run("closed", &args).await;
    assert!(output.status.success(), "{}", stderr(&output));
    let report = report.expect("a JSON report");
    assert_eq!(report["mode"], "closed_loop");
    assert_eq!(report["connections"]["completed"], 2, "{report}");
    assert_eq!(
        report["errors"].as_object().map(|e| e.len()),
        Some(0),
        "{report}"
    );
    let sent = count(&report, "messages_sent");
    assert!(sent > 0, "{report}");
    assert_eq!(
        count(&report, "messages_received"),
        sent,
        "every message echoed"
    );
    assert_eq!(count(&report, "bytes_sent"), 64 * sent);
    assert_eq!(count(&report, "bytes_received"), 64 * sent);
    assert_eq!(report["latency_us"]["count"].as_u64(), Some(sent));
    assert!(
        report["messages_per_sec"].as_f64().unwrap() > 0.0,
        "{report}"
    );
    assert!(
        report["received_bytes_per_sec"].as_f64().unwrap() > 0.0,
        "{report}"
    );
    let (p50, _) = ordered_percentiles(&report, "latency_us");
    assert!(p50 > 0.0, "{report}");
    ordered_percentiles(&report, "connect_us");
    ordered_percentiles(&report, "handshake_us");
    assert!(
        report["cpu"]["user_s"].as_f64().unwrap() + report["cpu"]["system_s"].as_f64().unwrap()
            > 0.0
    );
    // The text report names the same figures.
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains(&format!("{sent} sent, {sent} echoed")),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_loop_run_sends_on_its_timetable() {
    let addr = echo_server().await;
    let url = format!("ws://{addr}/");
    // 200 text messages a second over 2 connections for 1 s: 200 scheduled in the window.
    let args = [
        url.as_str(),
        "--connections=2",
        "--rate=200",
        "--text",
        "--size=32-300",
        "--warmup=0.2",
        "--duration=1",
    ];
    let (output, report) = run("open", &args).await;
    assert!(output.status.success(), "{}", stderr(&output));
    let report = report.expect("a JSON report");
    assert_eq!(report["mode"], "open_loop");
    let sent = count(&report, "messages_sent");
    assert!((199..=201).contains(&sent), "{sent} messages in {report}");
    assert_eq!(count(&report, "messages_received"), sent);
    assert_eq!(
        count(&report, "bytes_received"),
        count(&report, "bytes_sent")
    );
    ordered_percentiles(&report, "latency_us");
    ordered_percentiles(&report, "pacer_lag_us");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_fails_the_run_and_says_so() {
    // A port that was free a moment ago: nobody listens there.
    let addr = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!("ws://{addr}/");
    let (output, report) = run(
        "refused",
        &[url.as_str(), "--connections=2", "--duration=1"],
    )
    .await;
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let stderr = stderr(&output);
    assert!(stderr.contains("no connection could be opened"), "{stderr}");
    assert!(stderr.contains("connect_refused"), "{stderr}");
    assert!(stderr.to_lowercase().contains("refused"), "{stderr}");
    let report = report.expect("a report even for a failed run");
    assert_eq!(report["errors"]["connect_refused"]["count"], 2, "{report}");
    assert_eq!(report["connections"]["opened"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_closes_after_the_handshake_fails_the_run() {
    let addr = serve(|mut ws| async move {
        let _ = ws.close(CloseCode::NORMAL, "bye").await;
    })
    .await;
    let url = format!("ws://{addr}/");
    let (output, report) = run("early", &[url.as_str(), "--connections=3", "--duration=1"]).await;
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let stderr = stderr(&output);
    assert!(stderr.contains("every connection failed"), "{stderr}");
    assert!(stderr.contains("closed_early"), "{stderr}");
    let report = report.expect("a report even for a failed run");
    assert_eq!(report["errors"]["closed_early"]["count"], 3, "{report}");
    assert_eq!(report["connections"]["opened"], 3);
    assert_eq!(report["connections"]["completed"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wss_run_trusts_the_given_authority_and_no_other() {
    let ca = Ca::new("wsio_load test CA");
    let addr = wss_echo_server(&ca).await;
    let ca_file = std::env::temp_dir().join(format!("wsio_load-{}-ca.pem", std::process::id()));
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let url = format!("wss://localhost:{}/", addr.port());
    let ca_arg = format!("--ca={}", ca_file.display());
    let common = [
        url.as_str(),
        "--connections=3",
        "--in-flight=2",
        "--size=1000",
        "--warmup=0.2",
        "--duration=1",
    ];

    let (output, report) = run("wss", &[&common[..], &[ca_arg.as_str()]].concat()).await;
    assert!(output.status.success(), "{}", stderr(&output));
    let report = report.expect("a JSON report");
    assert_eq!(report["connections"]["completed"], 3, "{report}");
    let sent = count(&report, "messages_sent");
    assert!(sent > 0, "{report}");
    assert_eq!(count(&report, "messages_received"), sent, "{report}");
    assert_eq!(count(&report, "bytes_received"), 1000 * sent);

    // Without the authority, the server's certificate is unknown: every connection fails in TLS.
    let (output, report) = run("wss-untrusted", &common).await;
    let _ = std::fs::remove_file(&ca_file);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let report = report.expect("a report even for a failed run");
    assert_eq!(report["errors"]["tls"]["count"], 3, "{report}");
    let example = report["errors"]["tls"]["example"]
        .as_str()
        .unwrap_or_default();
    assert!(example.to_lowercase().contains("certificate"), "{report}");
}
