//! The echoing connections, client side: each sends messages on a timetable through one of
//! wsio's APIs and checks every echo (header, length, checksum, kind, and the sequence:
//! lost, duplicated and reordered messages are counted).
//!
//! A connection stops sending when the run stops, waits until every message it sent has come
//! back (at most [`DRAIN_TIMEOUT`]), and only then closes: a peer's close ends what the server
//! may still send, so closing earlier would cut off echoes on purpose.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{watch, Semaphore};
use tokio::time::{interval_at, Instant, Interval, MissedTickBehavior};
use wsio::{ByteReadHalf, ByteStream, ByteWriteHalf, CloseCode, DataKind, Message};
use wsio::{ReadHalf, Utf8Bytes, WebSocket, WriteHalf};

use crate::payload::{self, any_kind, Corrupt, Header, Pools, HEADER_LEN};
use crate::tally::{Fault, Tally};

/// How long after the stop the last echoes may take to come back.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(15);
/// How long after the stop a connection may take to drain and close.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(20);
/// Largest piece written at once through the stream APIs, so that bodies leave in pieces.
const MAX_PIECE: usize = 16 * 1024;

/// Which API a connection echoes through, on both ends (the server reads it from the path).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Api {
    /// `send` / `recv` of whole messages.
    Message,
    /// `send_stream` (`MessageWriter`) and `recv_stream` (`MessageReader`).
    Stream,
    /// `ByteStream`: records in one byte stream, message boundaries invisible.
    Bytes,
}

impl Api {
    /// The APIs in turn, so that each gets a third of the echoing connections.
    pub(crate) fn of(id: u32) -> Api {
        match id % 3 {
            0 => Api::Message,
            1 => Api::Stream,
            _ => Api::Bytes,
        }
    }

    pub(crate) fn path(self) -> &'static str {
        match self {
            Api::Message => "/message",
            Api::Stream => "/stream",
            Api::Bytes => "/bytes",
        }
    }
}

/// What the echoing connections share.
pub(crate) struct EchoPlan {
    pub(crate) pools: Arc<Pools>,
    pub(crate) tally: Arc<Tally>,
    /// Time between two sends on one connection.
    pub(crate) period: Duration,
    /// Messages a connection may have sent and not yet seen come back.
    pub(crate) in_flight: u32,
    pub(crate) max_size: usize,
}

/// Runs an echoing connection (counted open by the caller) until the run stops and its
/// echoes are all back, then closes.
pub(crate) async fn run(
    ws: WebSocket<TcpStream>,
    api: Api,
    id: u32,
    plan: Arc<EchoPlan>,
    mut load: watch::Receiver<Load>,
) {
    let tally = &plan.tally;
    // Sending starts once every held connection is open, so that the ramp is not slowed.
    if load.wait_for(|&now| now != Load::Ramp).await.is_err() {
        return;
    }
    let stop = load;
    let window = Semaphore::new(plan.in_flight as usize);
    let mut sequence = Sequence::default();
    let mut sent = 0u64;
    let stopped = stop.clone();
    let outcome = {
        let schedule = Schedule::new(&plan, &window, stop, id);
        let exchange = async {
            match api {
                Api::Message => {
                    let (mut rx, mut tx) = ws.into_split();
                    let writer = send_messages(&mut tx, schedule, &plan, &mut sent);
                    let reader = read_messages(&mut rx, &mut sequence, &plan, &window);
                    let (w, r) = tokio::join!(writer, reader);
                    w.and(r)
                }
                Api::Stream => {
                    let (mut rx, mut tx) = ws.into_split();
                    let writer = send_streams(&mut tx, schedule, &plan, &mut sent);
                    let reader = read_streams(&mut rx, &mut sequence, &plan, &window);
                    let (w, r) = tokio::join!(writer, reader);
                    w.and(r)
                }
                Api::Bytes => {
                    let (mut rx, mut tx) = ByteStream::new(ws).into_split();
                    let writer = send_records(&mut tx, schedule, &plan, &mut sent);
                    let reader = read_records(&mut rx, &mut sequence, &plan, &window);
                    let (w, r) = tokio::join!(writer, reader);
                    w.and(r)
                }
            }
        };
        tokio::select! {
            outcome = exchange => outcome,
            () = stopped_and_drained(stopped) => Err(format!(
                "still open {CLOSE_TIMEOUT:?} after the stop (echoes or the close missing)"
            )),
        }
    };
    if let Err(e) = outcome {
        tally.fault(
            Fault::EchoFailed,
            1,
            format!("{api:?} connection {id}: {e}"),
        );
    }
    let missing = sent.saturating_sub(sequence.next);
    tally.fault(
        Fault::Lost,
        missing,
        format!("{api:?} connection {id}: {missing} of {sent} messages never came back"),
    );
}

/// Where the run is, as the echoing and short-lived connections see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Load {
    /// The held connections are being opened.
    Ramp,
    /// Echo and churn.
    Running,
    /// Stop sending, drain, close.
    Stopped,
}

/// Whether the run has stopped.
pub(crate) fn stopped(now: &Load) -> bool {
    *now == Load::Stopped
}

/// Resolves [`CLOSE_TIMEOUT`] after the stop.
async fn stopped_and_drained(mut stop: watch::Receiver<Load>) {
    let _ = stop.wait_for(stopped).await;
    tokio::time::sleep(CLOSE_TIMEOUT).await;
}

/// When a connection may send its next message: on its timetable, with room in its window,
/// until the run stops.
struct Schedule<'a> {
    tick: Interval,
    stop: watch::Receiver<Load>,
    window: &'a Semaphore,
    in_flight: u32,
    rng: SmallRng,
}

impl<'a> Schedule<'a> {
    fn new(plan: &EchoPlan, window: &'a Semaphore, stop: watch::Receiver<Load>, id: u32) -> Self {
        let mut rng = SmallRng::seed_from_u64(u64::from(id));
        // A random phase per connection spreads the sends over the period.
        let phase = plan.period.mul_f64(rng.random::<f64>());
        let mut tick = interval_at(Instant::now() + phase, plan.period);
        // Behind the timetable (a full window, a busy machine), sends go on at the same pace
        // from where they are instead of bursting to catch up.
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Schedule {
            tick,
            stop,
            window,
            in_flight: plan.in_flight,
            rng,
        }
    }

    /// Waits for the next send; `false` once the run has stopped or the reader has ended.
    async fn next(&mut self) -> bool {
        tokio::select! {
            _ = self.tick.tick() => {}
            _ = self.stop.wait_for(stopped) => return false,
        }
        tokio::select! {
            permit = self.window.acquire() => match permit {
                Ok(permit) => {
                    // The reader gives it back when the echo arrives.
                    permit.forget();
                    true
                }
                Err(_) => false,
            },
            _ = self.stop.wait_for(stopped) => false,
        }
    }

    /// Waits until every message sent has come back, at most [`DRAIN_TIMEOUT`]; a message
    /// missing then is counted lost by the caller.
    async fn drained(&self) {
        let all = self.window.acquire_many(self.in_flight);
        if let Ok(Ok(permits)) = tokio::time::timeout(DRAIN_TIMEOUT, all).await {
            permits.forget();
        }
    }
}

/// The reader's side of the sequence check.
#[derive(Default)]
struct Sequence {
    /// The sequence number the next echo should carry.
    next: u64,
}

impl Sequence {
    /// Counts one echo, checked by `check`, and gives its window slot back.
    fn echo(
        &mut self,
        check: Result<Header, Corrupt>,
        bytes: usize,
        plan: &EchoPlan,
        window: &Semaphore,
    ) {
        window.add_permits(1);
        let tally = &plan.tally;
        let header = match check {
            Ok(header) => header,
            Err(corrupt) => {
                // It took a place in the sequence: the next echo is not also counted lost.
                self.next += 1;
                return tally.fault(Fault::Corrupted, 1, corrupt);
            }
        };
        if header.seq < self.next {
            return tally.fault(
                Fault::Duplicated,
                1,
                format!("message {} after message {}", header.seq, self.next - 1),
            );
        }
        let skipped = header.seq - self.next;
        tally.fault(
            Fault::Lost,
            skipped,
            format!("message {} while expecting {}", header.seq, self.next),
        );
        self.next = header.seq + 1;
        tally.messages.fetch_add(1, Ordering::Relaxed);
        tally.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }
}

/// Counts a message sent.
fn sent_one(plan: &EchoPlan, sent: &mut u64) {
    *sent += 1;
    plan.tally.sent.fetch_add(1, Ordering::Relaxed);
}

// --- Message API: `send` and `recv` -------------------------------------------------------

async fn send_messages(
    tx: &mut WriteHalf<TcpStream>,
    mut schedule: Schedule<'_>,
    plan: &EchoPlan,
    sent: &mut u64,
) -> Result<(), String> {
    while schedule.next().await {
        let kind = any_kind(&mut schedule.rng);
        let body = plan.pools.body(kind, &mut schedule.rng);
        let bytes = payload::whole(kind, *sent, &body);
        let message = match kind {
            DataKind::Text => {
                Message::text(Utf8Bytes::try_from(bytes).expect("the text pool is UTF-8"))
            }
            DataKind::Binary => Message::binary(bytes),
        };
        tx.send(message).await.map_err(|e| format!("send: {e}"))?;
        sent_one(plan, sent);
    }
    schedule.drained().await;
    tx.close(CloseCode::NORMAL, "")
        .await
        .map_err(|e| format!("close: {e}"))
}

async fn read_messages(
    rx: &mut ReadHalf<TcpStream>,
    sequence: &mut Sequence,
    plan: &EchoPlan,
    window: &Semaphore,
) -> Result<(), String> {
    let result = async {
        while let Some(message) = rx.recv().await {
            let (kind, bytes) = match message.map_err(|e| format!("recv: {e}"))? {
                Message::Text(text) => (DataKind::Text, bytes::Bytes::from(text)),
                Message::Binary(bytes) => (DataKind::Binary, bytes),
                _ => continue,
            };
            sequence.echo(payload::check(kind, &bytes), bytes.len(), plan, window);
        }
        Ok(())
    }
    .await;
    // A writer waiting for room must not wait for echoes that cannot come any more.
    window.close();
    result
}

// --- Stream API: `MessageWriter` and `MessageReader` --------------------------------------

async fn send_streams(
    tx: &mut WriteHalf<TcpStream>,
    mut schedule: Schedule<'_>,
    plan: &EchoPlan,
    sent: &mut u64,
) -> Result<(), String> {
    while schedule.next().await {
        let kind = any_kind(&mut schedule.rng);
        let body = plan.pools.body(kind, &mut schedule.rng);
        let header = payload::header(kind, *sent, &body);
        let mut writer = tx.send_stream(kind);
        let written = async {
            writer.write_all(&header).await?;
            write_in_pieces(&mut writer, &body, &mut schedule.rng).await?;
            writer.shutdown().await
        }
        .await;
        written.map_err(|e| format!("send_stream: {e}"))?;
        sent_one(plan, sent);
    }
    schedule.drained().await;
    tx.close(CloseCode::NORMAL, "")
        .await
        .map_err(|e| format!("close: {e}"))
}

/// Writes `body` in pieces of random size, flushing after some of them: a streamed message
/// leaves as frames of many sizes.
async fn write_in_pieces<W: tokio::io::AsyncWrite + Unpin>(
    writer: &mut W,
    mut body: &[u8],
    rng: &mut SmallRng,
) -> std::io::Result<()> {
    while !body.is_empty() {
        let piece = rng.random_range(1..=MAX_PIECE).min(body.len());
        writer.write_all(&body[..piece]).await?;
        if rng.random_ratio(1, 4) {
            writer.flush().await?;
        }
        body = &body[piece..];
    }
    Ok(())
}

async fn read_streams(
    rx: &mut ReadHalf<TcpStream>,
    sequence: &mut Sequence,
    plan: &EchoPlan,
    window: &Semaphore,
) -> Result<(), String> {
    // One buffer for every message, never larger than the largest message sent plus a byte.
    let limit = HEADER_LEN + plan.max_size + 1;
    let mut buffer = Vec::with_capacity(limit);
    let result = async {
        while let Some(reader) = rx.recv_stream().await {
            let mut reader = reader.map_err(|e| format!("recv_stream: {e}"))?;
            let kind = reader.kind();
            buffer.clear();
            (&mut reader)
                .take(limit as u64)
                .read_to_end(&mut buffer)
                .await
                .map_err(|e| format!("MessageReader: {e}"))?;
            let check = if buffer.len() == limit {
                Err(Corrupt::TooLong { limit: limit - 1 })
            } else {
                payload::check(kind, &buffer)
            };
            sequence.echo(check, buffer.len(), plan, window);
        }
        Ok(())
    }
    .await;
    window.close();
    result
}

// --- ByteStream: records in one byte stream -----------------------------------------------

async fn send_records(
    tx: &mut ByteWriteHalf<TcpStream>,
    mut schedule: Schedule<'_>,
    plan: &EchoPlan,
    sent: &mut u64,
) -> Result<(), String> {
    while schedule.next().await {
        // Text bodies too: a ByteStream carries bytes, whatever they are.
        let kind = any_kind(&mut schedule.rng);
        let body = plan.pools.body(kind, &mut schedule.rng);
        let header = payload::header(kind, *sent, &body);
        let written = async {
            tx.write_all(&header).await?;
            write_in_pieces(tx, &body, &mut schedule.rng).await?;
            // Each record leaves now rather than when the stream's buffer fills.
            tx.flush().await
        }
        .await;
        written.map_err(|e| format!("ByteStream write: {e}"))?;
        sent_one(plan, sent);
    }
    schedule.drained().await;
    tx.shutdown()
        .await
        .map_err(|e| format!("ByteStream shutdown: {e}"))
}

async fn read_records(
    rx: &mut ByteReadHalf<TcpStream>,
    sequence: &mut Sequence,
    plan: &EchoPlan,
    window: &Semaphore,
) -> Result<(), String> {
    let mut body = Vec::with_capacity(plan.max_size);
    let result = async {
        loop {
            let mut header = [0; HEADER_LEN];
            if !read_header(rx, &mut header).await? {
                return Ok(());
            }
            let parsed = match payload::parse_header(&header) {
                Ok(parsed) if parsed.len <= plan.max_size => parsed,
                other => {
                    // The records' boundaries are lost: nothing after this can be checked.
                    let why = match other {
                        Err(corrupt) => corrupt,
                        Ok(_) => Corrupt::TooLong {
                            limit: plan.max_size,
                        },
                    };
                    sequence.echo(Err(why), HEADER_LEN, plan, window);
                    return Err("a corrupted record ends the byte stream".into());
                }
            };
            body.resize(parsed.len, 0);
            rx.read_exact(&mut body)
                .await
                .map_err(|e| format!("ByteStream read: {e}"))?;
            let check = payload::check_body(&parsed, &body).map(|()| parsed);
            sequence.echo(check, HEADER_LEN + body.len(), plan, window);
        }
    }
    .await;
    window.close();
    result
}

/// Reads a record header; `false` at the end of the stream before its first byte.
async fn read_header<R: AsyncRead + Unpin>(
    rx: &mut R,
    header: &mut [u8; HEADER_LEN],
) -> Result<bool, String> {
    let read = |e: std::io::Error| format!("ByteStream read: {e}");
    let first = rx.read(header).await.map_err(read)?;
    if first == 0 {
        return Ok(false);
    }
    rx.read_exact(&mut header[first..]).await.map_err(read)?;
    Ok(true)
}
