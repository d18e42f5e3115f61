//! The churn: short-lived connections opened at a fixed rate, each echoing one small message
//! and then ending, even-numbered ones with a closing handshake and odd-numbered ones dropped
//! without one (the TCP connection closed under the WebSocket), which the server must clean
//! up as well as the clean ones.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::SeedableRng;
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;
use wsio::{CloseCode, Message, Utf8Bytes};

use crate::dial::Dialer;
use crate::echo::{stopped, Load};
use crate::payload::{self, any_kind, Pools};
use crate::tally::{Fault, Gauge, Tally};

/// Short-lived connections under way at most; past it the churn skips (and counts) a
/// connection rather than piling up tasks when the machine falls behind.
pub(crate) const MAX_UNDER_WAY: i64 = 2_000;

/// Opens `per_sec` connections a second until `stop`, then waits for those under way.
pub(crate) async fn run(
    per_sec: f64,
    dialer: Arc<Dialer>,
    pools: Arc<Pools>,
    tally: Arc<Tally>,
    mut stop: watch::Receiver<Load>,
) {
    if per_sec > 0.0 {
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / per_sec));
        // The timer wakes at most once a millisecond; several connections are due per wake-up.
        tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
        let mut id = 0u64;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(stopped) => break,
            }
            if tally.churn_open.load(Ordering::Relaxed) >= MAX_UNDER_WAY {
                tally.churn_skipped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let task = one(id, dialer.clone(), pools.clone(), tally.clone());
            tokio::spawn(task);
            id += 1;
        }
    }
    while tally.churn_open.load(Ordering::Relaxed) > 0 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One short-lived connection: open, echo a message, end.
async fn one(id: u64, dialer: Arc<Dialer>, pools: Arc<Pools>, tally: Arc<Tally>) {
    let _under_way = Gauge::up(&tally.churn_open);
    let clean = id.is_multiple_of(2);
    match exchange(id, clean, &dialer, &pools).await {
        Ok(()) if clean => tally.churn_clean.fetch_add(1, Ordering::Relaxed),
        Ok(()) => tally.churn_dropped.fetch_add(1, Ordering::Relaxed),
        Err(e) => {
            tally.fault(Fault::ChurnFailed, 1, format!("churn {id}: {e}"));
            0
        }
    };
}

async fn exchange(id: u64, clean: bool, dialer: &Dialer, pools: &Pools) -> Result<(), String> {
    let mut ws = dialer.open("/churn").await?;
    let mut rng = SmallRng::seed_from_u64(id);
    let kind = any_kind(&mut rng);
    let sent = payload::whole(kind, 0, &pools.small_body(kind, &mut rng));
    let message = match kind {
        wsio::DataKind::Text => {
            Message::text(Utf8Bytes::try_from(sent.clone()).expect("the text pool is UTF-8"))
        }
        wsio::DataKind::Binary => Message::binary(sent.clone()),
    };
    ws.send(message).await.map_err(|e| format!("send: {e}"))?;
    match ws.recv().await {
        Some(Ok(echo)) if echo.is_data() && echo.as_payload() == &sent[..] => {}
        other => return Err(format!("echo: {other:?}")),
    }
    if clean {
        ws.close(CloseCode::NORMAL, "")
            .await
            .map_err(|e| format!("close: {e}"))?;
    }
    // Dropping the connection without a close frame closes the TCP connection under it.
    Ok(())
}
