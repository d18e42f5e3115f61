//! One connection's life: connect, handshake, send on its timetable while reading the echoes
//! back, wait for the last echoes, close.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::SinkExt;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Notify, Semaphore};
use tokio::time::{sleep_until, timeout, Instant};
use wsio::{ClientBuilder, DataKind, Message, ReadHalf, WebSocket, WriteHalf};

use crate::options::SizeRange;
use crate::outcome::{Counts, Failed, Failure, Live};
use crate::pacer::Slots;
use crate::payload::{parse_prefix, prefix, Filler};

/// How long TCP (and then TLS) may take to connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long after the end the last echoes may take to arrive.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// What every connection of a run shares.
pub(crate) struct Plan {
    pub(crate) url: String,
    /// The addresses the URL's host resolved to, tried in turn.
    pub(crate) addrs: Vec<SocketAddr>,
    /// For `wss://`: the connector and the name the certificate must have.
    pub(crate) tls: Option<(
        tokio_rustls::TlsConnector,
        rustls::pki_types::ServerName<'static>,
    )>,
    pub(crate) builder: ClientBuilder,
    pub(crate) kind: DataKind,
    pub(crate) sizes: SizeRange,
    /// Send each message through a `MessageWriter` instead of `feed`.
    pub(crate) upload: bool,
    pub(crate) in_flight: u32,
    pub(crate) filler: Filler,
    /// Message times are counted from here.
    pub(crate) epoch: Instant,
    /// Messages scheduled from here to `end` are measured.
    pub(crate) measure_from: Instant,
    /// No message is scheduled from here on.
    pub(crate) end: Instant,
}

/// Runs connection `id` of `plan` to its end and returns what it measured.
/// Open loop: `slots` brings the scheduled time of each message it is to send.
/// Its timings go into `live`'s shared histograms.
pub(crate) async fn run(plan: Arc<Plan>, id: u32, slots: Option<Slots>, live: Arc<Live>) -> Counts {
    let mut counts = Counts::default();
    match open(&plan, id, slots, &live, &mut counts).await {
        Ok(()) => counts.completed += 1,
        Err(failed) => {
            live.errors.fetch_add(1, Ordering::Relaxed);
            counts.error(failed);
        }
    }
    counts
}

/// Connects, handshakes, and runs the exchange.
async fn open(
    plan: &Plan,
    id: u32,
    slots: Option<Slots>,
    live: &Live,
    counts: &mut Counts,
) -> Result<(), Failed> {
    let started = Instant::now();
    let tcp = dial(&plan.addrs).await?;
    live.timings.connect.record(id, started.elapsed());
    let started = Instant::now();
    let handshake = |e: wsio::Error| Failed::new(Failure::of_handshake(&e), e);
    match &plan.tls {
        None => {
            let (ws, _) = plan
                .builder
                .connect_on(tcp, plan.url.as_str())
                .await
                .map_err(handshake)?;
            live.timings.handshake.record(id, started.elapsed());
            exchange(ws, plan, id, slots, live, counts).await
        }
        Some((connector, name)) => {
            let tls = match timeout(CONNECT_TIMEOUT, connector.connect(name.clone(), tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => return Err(Failed::new(Failure::Tls, e)),
                Err(_) => return Err(Failed::new(Failure::Tls, "the TLS handshake timed out")),
            };
            let (ws, _) = plan
                .builder
                .connect_on(tls, plan.url.as_str())
                .await
                .map_err(handshake)?;
            live.timings.handshake.record(id, started.elapsed());
            exchange(ws, plan, id, slots, live, counts).await
        }
    }
}

/// Connects TCP to the first address that answers.
async fn dial(addrs: &[SocketAddr]) -> Result<TcpStream, Failed> {
    let mut last = Failed::new(Failure::ConnectFailed, "the host has no address");
    for addr in addrs {
        match timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(tcp)) => {
                tcp.set_nodelay(true)
                    .map_err(|e| Failed::new(Failure::ConnectFailed, e))?;
                return Ok(tcp);
            }
            Ok(Err(e)) => last = Failed::new(Failure::of_connect(&e), format!("{addr}: {e}")),
            Err(_) => {
                last = Failed::new(
                    Failure::ConnectTimeout,
                    format!("{addr}: no answer in {CONNECT_TIMEOUT:?}"),
                )
            }
        }
    }
    Err(last)
}

/// Counts [`open`] as an open connection while it lives.
struct OpenGuard<'a>(&'a Live);

impl Drop for OpenGuard<'_> {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What the writer tells the reader.
struct Progress {
    /// Messages sent in all (warm-up included), once `done`.
    sent: AtomicU64,
    done: AtomicBool,
    /// Wakes the reader when the writer is done.
    done_notify: Notify,
    /// One permit per message that may still be sent before an echo comes back.
    window: Semaphore,
}

/// Sent and received counts of the measured window, kept apart so that the writer and the
/// reader each own theirs.
struct Sent {
    messages: u64,
    bytes: u64,
}

struct Received {
    messages: u64,
    bytes: u64,
}

/// Sends and receives until the run ends, then closes.
async fn exchange<S>(
    ws: WebSocket<S>,
    plan: &Plan,
    id: u32,
    slots: Option<Slots>,
    live: &Live,
    counts: &mut Counts,
) -> Result<(), Failed>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    counts.opened += 1;
    if ws.permessage_deflate().is_some() {
        counts.deflate += 1;
    }
    live.open.fetch_add(1, Ordering::Relaxed);
    let _open = OpenGuard(live);
    let (mut rx, mut tx) = ws.into_split();
    let progress = Progress {
        sent: AtomicU64::new(0),
        done: AtomicBool::new(false),
        done_notify: Notify::new(),
        window: Semaphore::new(plan.in_flight as usize),
    };
    let mut sent = Sent {
        messages: 0,
        bytes: 0,
    };
    let mut received = Received {
        messages: 0,
        bytes: 0,
    };
    let result = tokio::try_join!(
        write(&mut tx, plan, id, slots, &progress, &mut sent),
        read(&mut rx, plan, id, &progress, &mut received, live),
    );
    counts.sent += sent.messages;
    counts.sent_bytes += sent.bytes;
    counts.received += received.messages;
    counts.received_bytes += received.bytes;
    result?;
    let Ok(mut ws) = rx.reunite(tx) else {
        unreachable!("the halves of one connection")
    };
    ws.close(wsio::CloseCode::NORMAL, "load test done")
        .await
        .map_err(|e| Failed::new(Failure::Close, e))
}

impl Plan {
    fn measured(&self, scheduled: Instant) -> bool {
        scheduled >= self.measure_from && scheduled < self.end
    }
}

/// Sends messages (or uploads), with at most `in_flight` unanswered: in closed loop as soon as
/// there is room, in open loop at the times the pacer hands out in `slots`.
async fn write<S>(
    tx: &mut WriteHalf<S>,
    plan: &Plan,
    id: u32,
    mut slots: Option<Slots>,
    progress: &Progress,
    sent: &mut Sent,
) -> Result<(), Failed>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut rng = rand::rngs::StdRng::seed_from_u64(u64::from(id));
    let opened = Instant::now();
    let mut seq = 0u64;
    // Open loop: a slot taken from `slots` that had no room in the window yet.
    let mut held = None;
    let result = async {
        loop {
            // Open loop: the next slot, skipping those from before this connection opened.
            let slot = match &mut slots {
                Some(slots) => match held.take() {
                    Some(slot) => Some(slot),
                    None => match slots.recv().await {
                        Some(slot) if slot < opened => continue,
                        Some(slot) => Some(slot),
                        None => break, // the pacer has reached the end
                    },
                },
                None if Instant::now() >= plan.end => break,
                None => None,
            };
            tokio::select! {
                permit = progress.window.acquire() => permit.expect("never closed").forget(),
                _ = sleep_until(plan.end) => break,
            }
            // Open loop: a message sent late, because the server had not answered the ones
            // before or because sending took the time, keeps its scheduled time, so that a
            // stall shows in the latency of every message it delays (no coordinated omission).
            let mut scheduled = slot.unwrap_or_else(Instant::now);
            loop {
                let len = rng.random_range(plan.sizes.min..=plan.sizes.max);
                let time_ns = u64::try_from((scheduled - plan.epoch).as_nanos()).unwrap_or(0);
                let prefix = prefix(plan.kind, time_ns, seq);
                if plan.upload {
                    upload(tx, plan, &prefix, len).await?;
                } else {
                    let message = plan.filler.message(plan.kind, &prefix, len as usize);
                    tx.feed(message).await.map_err(open_error)?;
                }
                seq += 1;
                if plan.measured(scheduled) {
                    sent.messages += 1;
                    sent.bytes += len;
                }
                if plan.upload {
                    break;
                }
                // More messages that are due already and have room leave in the same write.
                let next = match &mut slots {
                    Some(slots) => match slots.try_recv() {
                        Ok(slot) if slot < opened => continue,
                        Ok(slot) => slot,
                        Err(_) => break,
                    },
                    None => Instant::now(),
                };
                if next >= plan.end {
                    break;
                }
                match progress.window.try_acquire() {
                    Ok(permit) => permit.forget(),
                    Err(_) => {
                        held = slots.as_ref().map(|_| next);
                        break;
                    }
                }
                scheduled = next;
            }
            if !plan.upload {
                tx.flush().await.map_err(open_error)?;
            }
        }
        Ok(())
    }
    .await;
    progress.sent.store(seq, Ordering::SeqCst);
    progress.done.store(true, Ordering::SeqCst);
    progress.done_notify.notify_one();
    result
}

/// Streams one message of `len` bytes through a `MessageWriter`.
async fn upload<S>(
    tx: &mut WriteHalf<S>,
    plan: &Plan,
    prefix: &[u8],
    len: u64,
) -> Result<(), Failed>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut writer = tx.send_stream(plan.kind);
    writer.write_all(prefix).await.map_err(io_error)?;
    let filler = plan.filler.bytes();
    let mut left = len - prefix.len() as u64;
    while left > 0 {
        let chunk = filler
            .len()
            .min(usize::try_from(left).unwrap_or(usize::MAX));
        writer.write_all(&filler[..chunk]).await.map_err(io_error)?;
        left -= chunk as u64;
    }
    writer.shutdown().await.map_err(io_error)
}

/// Reads echoes, times them, and gives their room in the window back, until every message
/// sent has come back.
async fn read<S>(
    rx: &mut ReadHalf<S>,
    plan: &Plan,
    id: u32,
    progress: &Progress,
    received: &mut Received,
    live: &Live,
) -> Result<(), Failed>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut expected = 0u64;
    loop {
        if progress.done.load(Ordering::SeqCst) && expected >= progress.sent.load(Ordering::SeqCst)
        {
            return Ok(());
        }
        let message = tokio::select! {
            message = rx.recv() => message,
            _ = progress.done_notify.notified() => continue,
            _ = sleep_until(plan.end + DRAIN_TIMEOUT) => {
                let missing = progress.sent.load(Ordering::SeqCst).saturating_sub(expected);
                return Err(Failed::new(
                    Failure::Timeout,
                    format!("{missing} echoes still missing {DRAIN_TIMEOUT:?} after the end"),
                ));
            }
        };
        let now = Instant::now();
        let message = match message {
            None => {
                return Err(Failed::new(
                    Failure::ClosedEarly,
                    "the connection ended before the run did",
                ))
            }
            Some(Err(e)) => return Err(open_error(e)),
            Some(Ok(Message::Close(frame))) => {
                let why = frame.map_or_else(|| "no close code".to_owned(), |f| f.to_string());
                return Err(Failed::new(
                    Failure::ClosedEarly,
                    format!("the server closed the connection before the run ended ({why})"),
                ));
            }
            Some(Ok(message)) if message.is_data() => message,
            Some(Ok(_)) => continue, // pings (answered by wsio) and pongs
        };
        let kind = match message {
            Message::Text(_) => DataKind::Text,
            _ => DataKind::Binary,
        };
        let payload = message.as_payload();
        let Some((time_ns, seq)) = parse_prefix(plan.kind, payload).filter(|_| kind == plan.kind)
        else {
            return Err(Failed::new(
                Failure::BadEcho,
                format!(
                    "a {kind:?} message of {} bytes that is not an echo of one sent \
                     (the server must echo messages unchanged)",
                    payload.len()
                ),
            ));
        };
        if seq != expected {
            return Err(Failed::new(
                Failure::BadEcho,
                format!("the echo of message {seq} came where {expected}'s was due"),
            ));
        }
        expected += 1;
        progress.window.add_permits(1);
        live.echo(payload.len());
        let scheduled = plan.epoch + Duration::from_nanos(time_ns);
        if plan.measured(scheduled) {
            received.messages += 1;
            received.bytes += payload.len() as u64;
            live.timings
                .latency
                .record(id, now.saturating_duration_since(scheduled));
        }
    }
}

fn open_error(e: wsio::Error) -> Failed {
    Failed::new(Failure::of_open(&e), e)
}

/// A `MessageWriter` error: wsio's error inside an `io::Error`, or the transport's own.
fn io_error(e: std::io::Error) -> Failed {
    if e.get_ref().is_some_and(|inner| inner.is::<wsio::Error>()) {
        let inner = e.into_inner().expect("checked").downcast::<wsio::Error>();
        return open_error(*inner.expect("checked"));
    }
    open_error(wsio::Error::Io(e))
}
