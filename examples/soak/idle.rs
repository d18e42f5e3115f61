//! The idle connections, client side: opened once and left alone. Each waits for the end of
//! the run while receiving (so that a server that closes or sends anything is noticed at
//! once); at the end the sampled ones echo one message, then every one closes cleanly.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use rand::rngs::SmallRng;
use rand::SeedableRng;
use tokio::net::TcpStream;
use tokio::sync::watch;
use wsio::{CloseCode, DataKind, Message, WebSocket};

use crate::payload::{self, Pools};
use crate::tally::{Fault, Tally};

/// Where the end of the run has got to, as the idle connections see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum IdlePhase {
    /// Sit idle.
    Hold,
    /// The sampled connections echo one message each.
    Check,
    /// Close.
    Close,
}

/// Holds an idle connection (counted open by the caller) until the end, checks it if
/// `sampled`, and closes it.
pub(crate) async fn run(
    mut ws: WebSocket<TcpStream>,
    id: u32,
    sampled: bool,
    pools: Arc<Pools>,
    tally: Arc<Tally>,
    mut phase: watch::Receiver<IdlePhase>,
) {
    let lost = |what: String| tally.fault(Fault::IdleLost, 1, format!("idle {id}: {what}"));
    let until = |wanted: IdlePhase| move |now: &IdlePhase| *now >= wanted;
    // `recv` is cancel-safe: racing it against the phase loses nothing.
    tokio::select! {
        _ = phase.wait_for(until(IdlePhase::Check)) => {}
        message = ws.recv() => return lost(format!("ended early: {message:?}")),
    }
    if sampled {
        if let Err(e) = echo_once(&mut ws, id, &pools).await {
            tally.fault(Fault::IdleCheckFailed, 1, format!("idle {id}: {e}"));
            return;
        }
        tally.idle_checked.fetch_add(1, Ordering::Relaxed);
    }
    tokio::select! {
        _ = phase.wait_for(until(IdlePhase::Close)) => {}
        message = ws.recv() => return lost(format!("ended before its close: {message:?}")),
    }
    if let Err(e) = ws.close(CloseCode::NORMAL, "").await {
        tally.fault(Fault::IdleCheckFailed, 1, format!("idle {id}: close: {e}"));
    }
}

/// Sends one message and checks its echo.
async fn echo_once(ws: &mut WebSocket<TcpStream>, id: u32, pools: &Pools) -> Result<(), String> {
    let mut rng = SmallRng::seed_from_u64(u64::from(id));
    let body = pools.small_body(DataKind::Binary, &mut rng);
    let sent = payload::whole(DataKind::Binary, 0, &body);
    ws.send(Message::binary(sent.clone()))
        .await
        .map_err(|e| format!("send: {e}"))?;
    match ws.recv().await {
        Some(Ok(Message::Binary(echo))) if echo == sent => Ok(()),
        other => Err(format!("echo: {other:?}")),
    }
}
