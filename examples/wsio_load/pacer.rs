//! The open-loop timetable: a thread of its own hands out the scheduled send time of every
//! message, in turn to each connection, at `rate` messages per second in total.
//!
//! tokio's timer has a granularity of 1 ms, which would add up to a millisecond to every
//! latency measured from a scheduled time; a thread sleeping with `std::thread::sleep` and a
//! timer slack of 1 µs wakes within some microseconds. Its lateness (how long after its
//! scheduled time each slot was handed out) is recorded and reported.

use std::thread::JoinHandle;
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio::time::Instant;

use crate::outcome::record;

/// Where a connection receives its scheduled send times. A connection that cannot send yet
/// (its window is full) leaves them queued here: they keep their scheduled times.
pub(crate) type Slots = UnboundedReceiver<Instant>;

/// Starts the pacer for `connections` connections, from `epoch` until `end`. Slot `k` is at
/// `epoch + k / rate` and goes to connection `k % connections`. Returns each connection's
/// receiver and the thread, which returns its lateness.
pub(crate) fn start(
    connections: u32,
    rate: f64,
    epoch: Instant,
    end: Instant,
    mut lag: Histogram<u64>,
) -> (Vec<Slots>, JoinHandle<Histogram<u64>>) {
    let (senders, receivers): (Vec<UnboundedSender<Instant>>, Vec<Slots>) =
        (0..connections).map(|_| unbounded_channel()).unzip();
    let thread = std::thread::Builder::new()
        .name("wsio_load pacer".into())
        .spawn(move || {
            set_timer_slack();
            let epoch = epoch.into_std();
            let end = end.into_std();
            let mut k = 0u64;
            loop {
                let slot = epoch + Duration::from_secs_f64(k as f64 / rate);
                if slot >= end {
                    return lag;
                }
                let now = std::time::Instant::now();
                if slot > now {
                    std::thread::sleep(slot - now);
                    continue;
                }
                record(&mut lag, now - slot);
                // A connection that failed has dropped its receiver: its slots go nowhere.
                let _ = senders[(k % u64::from(connections)) as usize].send(slot.into());
                k += 1;
            }
        })
        .expect("a thread for the pacer");
    (receivers, thread)
}

/// Asks Linux to wake this thread's sleeps within 1 µs of their deadline (the default slack
/// is 50 µs). Elsewhere, or if refused, sleeps are only less punctual.
fn set_timer_slack() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_TIMERSLACK takes one unsigned long and touches no memory of ours.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong);
    }
}
