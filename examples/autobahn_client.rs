//! The Autobahn|Testsuite client (fuzzingserver mode). Reads `AUTOBAHN_URL` (default
//! `ws://127.0.0.1:9001`) and `AUTOBAHN_AGENT` (default `wsio`).
//!
//! ```text
//! bash ../shared/autobahn/run.sh client-under-test target/release/examples/autobahn_client
//! ```

use wsio::Message;

async fn case_count(base: &str) -> wsio::Result<u32> {
    let (mut ws, _) = wsio::connect(format!("{base}/getCaseCount")).await?;
    let mut count = None;
    while let Some(message) = ws.recv().await {
        if let Message::Text(text) = message? {
            count = text.trim().parse().ok();
        }
    }
    count.ok_or_else(|| wsio::Error::InvalidUrl("getCaseCount answered no number".into()))
}

async fn run_case(base: &str, case: u32, agent: &str) -> wsio::Result<()> {
    let (mut ws, _) = wsio::connect(format!("{base}/runCase?case={case}&agent={agent}")).await?;
    while let Some(message) = ws.recv().await {
        let message = message?;
        if message.is_data() {
            ws.send(message).await?;
        }
    }
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> wsio::Result<()> {
    let base = std::env::var("AUTOBAHN_URL").unwrap_or_else(|_| "ws://127.0.0.1:9001".into());
    let agent = std::env::var("AUTOBAHN_AGENT").unwrap_or_else(|_| "wsio".into());
    let count = case_count(&base).await?;
    eprintln!("running {count} cases against {base} as {agent}");
    for case in 1..=count {
        // A failed case (the fuzzer breaking the protocol on purpose) is not a failed run.
        if let Err(e) = run_case(&base, case, &agent).await {
            eprintln!("case {case}: {e}");
        }
    }
    let (mut ws, _) = wsio::connect(format!("{base}/updateReports?agent={agent}")).await?;
    while ws.recv().await.is_some() {}
    Ok(())
}
