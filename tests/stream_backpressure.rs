//! A writer streams far more than any buffer holds while the reader is slow or stalled: writes
//! wait (`Pending`), the library's own buffer figures stay bounded, and every byte arrives.

mod support;

use std::cell::Cell;
use std::time::{Duration, Instant};

use support::stream::*;
use support::*;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use wsio::{ByteStream, Config, DataKind, MessageWriter};

/// What crosses the connection in each test: some seventy times what all the buffers on the way
/// hold together (no more, because a debug build masks slowly).
const TOTAL: u64 = 24 << 20;
const WRITE_BUFFER: usize = 64 * 1024;
const FRAGMENT: usize = 16 * 1024;
/// Control frames and a frame header or two, and what the compressor emits at once beyond a
/// frame's room (permessage-deflate is negotiated by default: a compressed frame takes all of
/// one call's output, a block of at most a few KiB).
const SLACK: usize = 256 + 8 * 1024;
/// Kernel socket buffers asked for on both ends (Linux doubles the figure).
const SOCKET_BUFFER: u32 = 64 * 1024;
/// Bytes accepted by the writer but not yet read by the reader, at most: the library's write
/// buffers, both sockets' kernel buffers and the reader's buffers, with room to spare. Tiny next
/// to `TOTAL`: nothing grows with the amount written.
const IN_FLIGHT_MAX: u64 = 2 << 20;
/// How long a single write may wait before it counts as `Pending`.
const PROBE: Duration = Duration::from_millis(20);
/// The whole transfer, stalls included.
const LIMIT: Duration = Duration::from_secs(9);

fn config() -> Config {
    Config::default()
        .write_buffer_size(WRITE_BUFFER)
        .stream_fragment_size(FRAGMENT)
}

/// The writer's view of its own buffering.
trait Buffered {
    fn buffered(&mut self) -> usize;
}

impl<S> Buffered for MessageWriter<'_, S> {
    fn buffered(&mut self) -> usize {
        self.buffered_amount()
    }
}

impl<S> Buffered for ByteStream<S> {
    fn buffered(&mut self) -> usize {
        self.buffered_amount()
    }
}

/// What the writer and the reader tell each other (both run in one task).
#[derive(Default)]
struct Progress {
    accepted: Cell<u64>,
    received: Cell<u64>,
    /// The reader is not reading at all.
    stalled: Cell<bool>,
    /// Writes that were still pending after [`PROBE`].
    pending: Cell<u32>,
    pending_while_stalled: Cell<u32>,
    max_buffered: Cell<usize>,
    max_in_flight: Cell<u64>,
}

/// Writes `TOTAL` bytes in random sizes, each write raced against [`PROBE`]; checks the writer's
/// `buffered_amount` after every attempt.
async fn write_watched<W: AsyncWrite + Unpin + Buffered>(
    writer: &mut W,
    data: &Repeating,
    progress: &Progress,
) {
    let bound = WRITE_BUFFER + FRAGMENT + SLACK;
    let mut rng = XorShift::new(99);
    let mut chunk = vec![0u8; 64 * 1024];
    let mut offset = 0u64;
    while offset < TOTAL {
        let len = (1 + rng.below(chunk.len() as u64)).min(TOTAL - offset) as usize;
        data.fill(offset, &mut chunk[..len]);
        // A write that times out took nothing (see stream_cancel.rs); the same bytes are
        // offered again.
        match tokio::time::timeout(PROBE, writer.write(&chunk[..len])).await {
            Err(_) => {
                progress.pending.set(progress.pending.get() + 1);
                if progress.stalled.get() {
                    progress
                        .pending_while_stalled
                        .set(progress.pending_while_stalled.get() + 1);
                }
            }
            Ok(result) => {
                let n = result.expect("write");
                assert!(n > 0);
                offset += n as u64;
                progress.accepted.set(offset);
            }
        }
        let buffered = writer.buffered();
        assert!(
            buffered <= bound,
            "buffered_amount {buffered} exceeds write_buffer_size + stream_fragment_size + \
             {SLACK} = {bound}"
        );
        progress
            .max_buffered
            .set(progress.max_buffered.get().max(buffered));
        let in_flight = offset - progress.received.get();
        assert!(
            in_flight <= IN_FLIGHT_MAX,
            "{in_flight} bytes accepted and not yet read"
        );
        progress
            .max_in_flight
            .set(progress.max_in_flight.get().max(in_flight));
    }
}

/// Stops reading until the writer has settled: its writes wait (`Pending`) and it has taken no
/// byte for a while. `write_watched` checks the bounds on the way there.
async fn stall(progress: &Progress) {
    const SETTLED: Duration = Duration::from_millis(100);
    progress.stalled.set(true);
    let pending_before = progress.pending_while_stalled.get();
    within("the writer to wait while nothing is read", async {
        let mut accepted = progress.accepted.get();
        let mut since = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_millis(5)).await;
            if progress.accepted.get() != accepted {
                accepted = progress.accepted.get();
                since = Instant::now();
            } else if since.elapsed() >= SETTLED
                && progress.pending_while_stalled.get() > pending_before
            {
                return;
            }
        }
    })
    .await;
    assert!(
        progress.accepted.get() < TOTAL,
        "the writer never had to wait"
    );
    progress.stalled.set(false);
}

/// Reads `TOTAL` bytes and checks them: stalled, then slow (small reads and sleeps), stalled
/// again, then as fast as it can.
async fn read_watched<R: AsyncRead + Unpin>(reader: &mut R, data: &Repeating, progress: &Progress) {
    let mut buf = vec![0u8; 256 * 1024];
    let mut offset = 0u64;
    let take = |got: &[u8], offset: &mut u64| {
        assert!(
            data.matches(*offset, got),
            "bytes at offset {offset} changed"
        );
        *offset += got.len() as u64;
        progress.received.set(*offset);
    };
    stall(progress).await;
    let slow_until = Instant::now() + Duration::from_millis(150);
    while Instant::now() < slow_until {
        let n = reader.read(&mut buf[..1024]).await.expect("read");
        assert!(n > 0, "EOF at {offset}");
        take(&buf[..n], &mut offset);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    stall(progress).await;
    while offset < TOTAL {
        let n = reader.read(&mut buf).await.expect("read");
        assert!(n > 0, "EOF at {offset} of {TOTAL}");
        take(&buf[..n], &mut offset);
    }
    assert_eq!(offset, TOTAL);
}

fn report(what: &str, progress: &Progress, started: Instant) {
    eprintln!(
        "{what}: {TOTAL} bytes in {:?}; max buffered_amount {}, max accepted-but-unread {}, \
         {} pending writes ({} while the reader stalled)",
        started.elapsed(),
        progress.max_buffered.get(),
        progress.max_in_flight.get(),
        progress.pending.get(),
        progress.pending_while_stalled.get(),
    );
}

async fn message_writer_against_slow_reader(writer_is_client: bool) {
    let (client, server) = tcp_pair_small_buffers(config(), SOCKET_BUFFER).await;
    let (mut from, mut to): (TcpWs, TcpWs) = if writer_is_client {
        (client, server)
    } else {
        (server, client)
    };
    let data = Repeating::new(1);
    let progress = Progress::default();
    let started = Instant::now();
    let write = async {
        let mut writer = from.send_stream(DataKind::Binary);
        write_watched(&mut writer, &data, &progress).await;
        writer.shutdown().await.expect("shutdown");
    };
    let read = async {
        let mut reader = to.recv_stream().await.unwrap().expect("recv_stream");
        read_watched(&mut reader, &data, &progress).await;
        assert_eq!(
            reader.read(&mut [0u8; 8]).await.unwrap(),
            0,
            "the message ends"
        );
    };
    within_for(LIMIT, "streaming past a slow reader", async {
        tokio::join!(write, read)
    })
    .await;
    report("MessageWriter", &progress, started);
}

#[tokio::test]
async fn client_message_writer_waits_for_a_slow_reader_with_bounded_buffers() {
    message_writer_against_slow_reader(true).await;
}

#[tokio::test]
async fn server_message_writer_waits_for_a_slow_reader_with_bounded_buffers() {
    message_writer_against_slow_reader(false).await;
}

async fn byte_stream_against_slow_reader(writer_is_client: bool) {
    let (client, server) = tcp_pair_small_buffers(config(), SOCKET_BUFFER).await;
    let (from, to) = if writer_is_client {
        (client, server)
    } else {
        (server, client)
    };
    let (mut from, mut to): (ByteStream<TcpStream>, ByteStream<TcpStream>) =
        (from.into_byte_stream(), to.into_byte_stream());
    let data = Repeating::new(2);
    let progress = Progress::default();
    let started = Instant::now();
    let write = async {
        write_watched(&mut from, &data, &progress).await;
        from.flush().await.expect("flush");
        from.shutdown().await.expect("shutdown");
        // The reader's reply to the close.
        assert_eq!(from.read(&mut [0u8; 8]).await.unwrap(), 0);
    };
    let read = async {
        read_watched(&mut to, &data, &progress).await;
        assert_eq!(
            to.read(&mut [0u8; 8]).await.unwrap(),
            0,
            "the close reads as EOF"
        );
        to.shutdown().await.expect("reader shutdown");
    };
    within_for(LIMIT, "a byte stream past a slow reader", async {
        tokio::join!(write, read)
    })
    .await;
    report("ByteStream", &progress, started);
}

#[tokio::test]
async fn client_byte_stream_waits_for_a_slow_reader_with_bounded_buffers() {
    byte_stream_against_slow_reader(true).await;
}

#[tokio::test]
async fn server_byte_stream_waits_for_a_slow_reader_with_bounded_buffers() {
    byte_stream_against_slow_reader(false).await;
}

/// One end: writes `TOTAL / 4` bytes from its write half while its read half reads as much from
/// the peer, at the same time.
async fn both_ways_side(stream: ByteStream<TcpStream>, send_seed: u64, recv_seed: u64) {
    let total = TOTAL / 4;
    let (mut rx, mut tx) = stream.into_split();
    let write = async move {
        let data = Repeating::new(send_seed);
        let mut chunk = vec![0u8; 48 * 1024];
        let mut offset = 0u64;
        while offset < total {
            let len = (chunk.len() as u64).min(total - offset) as usize;
            data.fill(offset, &mut chunk[..len]);
            tx.write_all(&chunk[..len]).await.expect("write");
            offset += len as u64;
        }
        tx.flush().await.expect("flush");
        tx
    };
    let read = async move {
        let data = Repeating::new(recv_seed);
        let mut buf = vec![0u8; 64 * 1024];
        let mut offset = 0u64;
        while offset < total {
            let n = rx.read(&mut buf).await.expect("read");
            assert!(n > 0, "EOF at {offset}");
            assert!(data.matches(offset, &buf[..n]), "bytes at {offset} changed");
            offset += n as u64;
        }
        rx
    };
    let (tx, rx) = tokio::join!(tokio::spawn(write), tokio::spawn(read));
    let (mut tx, mut rx) = (tx.unwrap(), rx.unwrap());
    tx.shutdown().await.expect("shutdown");
    assert_eq!(rx.read(&mut [0u8; 8]).await.unwrap(), 0);
}

/// Settings under which both write queues fill up at once: small buffers, and the defaults.
async fn heavy_both_ways_pairs() -> Vec<(TcpWs, TcpWs)> {
    let small = Config::default()
        .write_buffer_size(16 * 1024)
        .stream_fragment_size(8 * 1024);
    vec![
        tcp_pair_small_buffers(small, 16 * 1024).await,
        tcp_pair(Config::default()).await,
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn byte_streams_writing_hard_both_ways_at_once_do_not_deadlock() {
    // Both write queues fill up at once: each side must keep reading while its own writes wait,
    // or each waits for the other forever.
    for (client, server) in heavy_both_ways_pairs().await {
        let a = tokio::spawn(both_ways_side(client.into_byte_stream(), 1, 2));
        let b = tokio::spawn(both_ways_side(server.into_byte_stream(), 2, 1));
        within_for(LIMIT, "heavy traffic both ways", async {
            a.await.expect("client side");
            b.await.expect("server side");
        })
        .await;
    }
}

/// One end: streams a message of `TOTAL / 4` bytes from its write half while its read half
/// reads the peer's, at the same time.
async fn message_both_ways_side(ws: TcpWs, send_seed: u64, recv_seed: u64) {
    let total = TOTAL / 4;
    let (mut rx, mut tx) = ws.into_split();
    let write = async move {
        let data = Repeating::new(send_seed);
        let mut writer = tx.send_stream(DataKind::Binary);
        let mut chunk = vec![0u8; 48 * 1024];
        let mut offset = 0u64;
        while offset < total {
            let len = (chunk.len() as u64).min(total - offset) as usize;
            data.fill(offset, &mut chunk[..len]);
            writer.write_all(&chunk[..len]).await.expect("write");
            offset += len as u64;
        }
        writer.shutdown().await.expect("shutdown");
    };
    let read = async move {
        let data = Repeating::new(recv_seed);
        let mut reader = rx.recv_stream().await.unwrap().expect("recv_stream");
        let mut buf = vec![0u8; 64 * 1024];
        let mut offset = 0u64;
        loop {
            let n = reader.read(&mut buf).await.expect("read");
            if n == 0 {
                break;
            }
            assert!(data.matches(offset, &buf[..n]), "bytes at {offset} changed");
            offset += n as u64;
        }
        assert_eq!(offset, total);
    };
    let (w, r) = tokio::join!(tokio::spawn(write), tokio::spawn(read));
    w.expect("writer");
    r.expect("reader");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_streams_on_split_halves_both_ways_at_once_do_not_deadlock() {
    for (client, server) in heavy_both_ways_pairs().await {
        let a = tokio::spawn(message_both_ways_side(client, 3, 4));
        let b = tokio::spawn(message_both_ways_side(server, 4, 3));
        within_for(LIMIT, "heavy messages both ways", async {
            a.await.expect("client side");
            b.await.expect("server side");
        })
        .await;
    }
}
