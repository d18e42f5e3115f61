//! Dropping `read`, `write`, `flush` and `shutdown` futures of the stream API part-way (polled once,
//! or raced against tiny timeouts) loses nothing and duplicates nothing: the bytes that arrive
//! are exactly the bytes written.

mod support;

use std::future::Future;
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use support::stream::*;
use support::*;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use wsio::{ByteStream, Config, DataKind, Role};

const LIMIT: Duration = Duration::from_secs(8);

/// Small buffers everywhere, so that writes wait often.
fn config() -> Config {
    // Small buffers everywhere, reading ahead included (writes read what the peer sends, up
    // to this much), so that reads and writes often have to wait and get dropped.
    Config::default()
        .write_buffer_size(16 * 1024)
        .stream_fragment_size(8 * 1024)
        .read_ahead_size(16 * 1024)
}

async fn small_pair() -> (TcpWs, TcpWs) {
    tcp_pair_small_buffers(config(), 16 * 1024).await
}

/// Runs `fut` one of three ways, picked at random: polled once with the task's waker, raced
/// against a timeout of a few hundred microseconds, or polled once with a no-op waker. `None`:
/// it did not finish and was dropped.
async fn attempt<F: Future>(fut: F, rng: &mut XorShift) -> Option<F::Output> {
    match rng.below(3) {
        0 => {
            let mut fut = pin!(fut);
            match futures::poll!(fut.as_mut()) {
                Poll::Ready(out) => Some(out),
                Poll::Pending => None,
            }
        }
        1 => {
            let wait = Duration::from_micros(1 + rng.below(400));
            tokio::time::timeout(wait, fut).await.ok()
        }
        _ => futures::FutureExt::now_or_never(fut),
    }
}

/// After a dropped future, or now and then: let the other side and the runtime run.
async fn pause(rng: &mut XorShift) {
    if rng.one_in(4) {
        tokio::time::sleep(Duration::from_micros(1 + rng.below(1500))).await;
    } else {
        tokio::task::yield_now().await;
    }
}

/// How many futures were dropped before they finished.
#[derive(Debug, Default)]
struct Dropped {
    writes: u32,
    reads: u32,
    other: u32,
}

/// Writes all of `data` through futures that are often dropped, counting them in `dropped`.
async fn write_cancelling<W: AsyncWrite + Unpin>(
    writer: &mut W,
    data: &[u8],
    rng: &mut XorShift,
    dropped: &mut Dropped,
) {
    let mut at = 0;
    while at < data.len() {
        let len = chunk_len(rng, 40 * 1024).min(data.len() - at);
        match attempt(writer.write(&data[at..at + len]), rng).await {
            Some(n) => {
                let n = n.expect("write");
                assert!(n > 0 && n <= len);
                at += n;
            }
            None => {
                dropped.writes += 1;
                pause(rng).await;
            }
        }
        if rng.one_in(10) && attempt(writer.flush(), rng).await.is_none() {
            dropped.other += 1;
        }
        if rng.one_in(8) {
            pause(rng).await;
        }
    }
}

/// Flushes or shuts `writer` down, dropping unfinished attempts, until it is done.
async fn finish_cancelling<W: AsyncWrite + Unpin>(
    writer: &mut W,
    rng: &mut XorShift,
    dropped: &mut Dropped,
    shutdown: bool,
) {
    loop {
        let done = if shutdown {
            attempt(writer.shutdown(), rng).await
        } else {
            attempt(writer.flush(), rng).await
        };
        match done {
            Some(result) => return result.expect("flush or shutdown"),
            None => {
                dropped.other += 1;
                pause(rng).await;
            }
        }
    }
}

/// Reads through futures that are often dropped until `want` bytes have arrived, with reads of
/// random sizes (some large enough to go straight into the caller's buffer).
async fn read_cancelling<R: AsyncRead + Unpin>(
    reader: &mut R,
    want: usize,
    rng: &mut XorShift,
    dropped: &mut Dropped,
) -> Vec<u8> {
    let mut got = Vec::with_capacity(want);
    // Room for reads straight into this buffer (64 KiB and more).
    let mut buf = vec![0u8; 160 * 1024];
    while got.len() < want {
        let len = chunk_len(rng, buf.len());
        match attempt(reader.read(&mut buf[..len]), rng).await {
            Some(n) => {
                let n = n.expect("read");
                assert!(n > 0, "EOF after {} of {want} bytes", got.len());
                got.extend_from_slice(&buf[..n]);
            }
            None => {
                dropped.reads += 1;
                pause(rng).await;
            }
        }
        if rng.one_in(8) {
            pause(rng).await;
        }
    }
    got
}

#[tokio::test]
async fn message_writer_and_reader_lose_nothing_when_their_futures_are_dropped() {
    for writer_role in [Role::Client, Role::Server] {
        let (client, server) = small_pair().await;
        let (mut from, mut to) = match writer_role {
            Role::Client => (client, server),
            Role::Server => (server, client),
        };
        let data = pattern(40, 3 << 20);
        let mut write_dropped = Dropped::default();
        let mut read_dropped = Dropped::default();
        let write = async {
            let mut rng = XorShift::new(41);
            let mut writer = from.send_stream(DataKind::Binary);
            write_cancelling(&mut writer, &data, &mut rng, &mut write_dropped).await;
            finish_cancelling(&mut writer, &mut rng, &mut write_dropped, true).await;
        };
        let read = async {
            let mut rng = XorShift::new(42);
            let mut reader = within("recv_stream", to.recv_stream())
                .await
                .unwrap()
                .unwrap();
            let mut got =
                read_cancelling(&mut reader, data.len(), &mut rng, &mut read_dropped).await;
            // Whatever follows must be the end of the message, not stray bytes; fill_buf
            // futures are dropped too.
            loop {
                match attempt(reader.fill_buf(), &mut rng).await {
                    Some(Ok([])) => break,
                    Some(Ok(rest)) => {
                        let n = rest.len();
                        got.extend_from_slice(rest);
                        reader.consume(n);
                    }
                    Some(Err(e)) => panic!("fill_buf: {e}"),
                    None => {
                        read_dropped.other += 1;
                        pause(&mut rng).await;
                    }
                }
            }
            got
        };
        let ((), got) = within_for(LIMIT, "cancelled reads and writes", async {
            tokio::join!(write, read)
        })
        .await;
        assert_same_bytes(&got, &data, &format!("message from the {writer_role:?}"));
        eprintln!("{writer_role:?} writes: {write_dropped:?}; reads: {read_dropped:?}");
        assert!(
            write_dropped.writes >= 20 && read_dropped.reads >= 20,
            "too few futures were dropped to test anything: {write_dropped:?} {read_dropped:?}"
        );
    }
}

#[tokio::test]
async fn message_reader_fill_buf_futures_dropped_lose_nothing() {
    let (mut client, mut server) = small_pair().await;
    let data = pattern(43, 1 << 20);
    let write = async {
        let mut writer = client.send_stream(DataKind::Binary);
        let mut rng = XorShift::new(44);
        for piece in data.chunks(10_000) {
            writer.write_all(piece).await.unwrap();
            writer.flush().await.unwrap();
            pause(&mut rng).await;
        }
        writer.shutdown().await.unwrap();
    };
    let read = async {
        let mut rng = XorShift::new(45);
        let mut reader = server.recv_stream().await.unwrap().unwrap();
        let mut got = Vec::new();
        let mut dropped = 0;
        loop {
            match attempt(reader.fill_buf(), &mut rng).await {
                Some(Ok([])) => break,
                Some(Ok(buf)) => {
                    // Consume part of what is there: the rest must come back next time.
                    let n = 1 + rng.below(buf.len() as u64) as usize;
                    got.extend_from_slice(&buf[..n]);
                    reader.consume(n);
                }
                Some(Err(e)) => panic!("fill_buf: {e}"),
                None => {
                    dropped += 1;
                    pause(&mut rng).await;
                }
            }
        }
        assert!(
            dropped >= 20,
            "only {dropped} fill_buf futures were dropped"
        );
        got
    };
    let ((), got) = within_for(LIMIT, "cancelled fill_buf", async {
        tokio::join!(write, read)
    })
    .await;
    assert_same_bytes(&got, &data, "the message read through fill_buf");
}

/// One end of a byte stream that sends `send` and receives `want` bytes at the same time, in
/// one task, with every read, write, flush and shutdown future liable to be dropped.
async fn byte_stream_side(
    mut stream: ByteStream<TcpStream>,
    send: &[u8],
    want: usize,
    seed: u64,
) -> (Vec<u8>, Dropped) {
    let mut rng = XorShift::new(seed);
    let mut dropped = Dropped::default();
    let mut got = Vec::with_capacity(want);
    // Room for reads straight into this buffer (64 KiB and more).
    let mut buf = vec![0u8; 160 * 1024];
    let mut sent = 0;
    // Everything written must eventually be flushed, or the peer may wait for it forever; but
    // a flush is only attempted, never awaited, so that reading goes on (the peer may be
    // flushing too, and waiting for this side to read).
    let mut unflushed = false;
    // Phases of writing only and reading only, of random lengths, so that each side sometimes
    // outpaces the other: writes then wait for room, and reads for bytes.
    let (mut writing, mut phase_left) = (true, 0);
    while sent < send.len() || unflushed || got.len() < want {
        if phase_left == 0 {
            writing = !writing;
            phase_left = 1 + rng.below(20);
        }
        phase_left -= 1;
        let write_now = sent < send.len() && (writing || got.len() == want);
        let read_now = got.len() < want && (!writing || sent == send.len());
        // Several writes or reads, until one has to wait (and is dropped).
        for _ in 0..6 {
            if write_now && sent < send.len() {
                let len = chunk_len(&mut rng, 40 * 1024).min(send.len() - sent);
                match attempt(stream.write(&send[sent..sent + len]), &mut rng).await {
                    Some(n) => {
                        sent += n.expect("write");
                        unflushed = true;
                    }
                    None => {
                        dropped.writes += 1;
                        break;
                    }
                }
            } else if read_now && got.len() < want {
                let len = chunk_len(&mut rng, buf.len());
                match attempt(stream.read(&mut buf[..len]), &mut rng).await {
                    Some(n) => {
                        let n = n.expect("read");
                        assert!(n > 0, "EOF after {} of {want} bytes", got.len());
                        got.extend_from_slice(&buf[..n]);
                    }
                    None => {
                        dropped.reads += 1;
                        break;
                    }
                }
            }
        }
        if unflushed && (sent == send.len() || rng.one_in(4)) {
            match attempt(stream.flush(), &mut rng).await {
                Some(result) => {
                    result.expect("flush");
                    unflushed = false;
                }
                None => dropped.other += 1,
            }
        }
        pause(&mut rng).await;
    }
    // Both directions are done: close (also through dropped futures), then the peer's close
    // reads as EOF.
    finish_cancelling(&mut stream, &mut rng, &mut dropped, true).await;
    let n = within("EOF", stream.read(&mut buf))
        .await
        .expect("read EOF");
    assert_eq!(n, 0, "nothing may follow the data");
    (got, dropped)
}

#[tokio::test]
async fn byte_stream_loses_nothing_when_read_write_flush_and_shutdown_futures_are_dropped() {
    let (client, server) = small_pair().await;
    let to_server = pattern(50, 2 << 20);
    let to_client = pattern(51, (2 << 20) + 12_345);
    let client_side = byte_stream_side(ByteStream::new(client), &to_server, to_client.len(), 52);
    let server_side = byte_stream_side(ByteStream::new(server), &to_client, to_server.len(), 53);
    let ((client_got, client_dropped), (server_got, server_dropped)) =
        within_for(LIMIT, "cancelled byte streams", async {
            tokio::join!(client_side, server_side)
        })
        .await;
    assert_same_bytes(&client_got, &to_client, "server to client");
    assert_same_bytes(&server_got, &to_server, "client to server");
    eprintln!("client: {client_dropped:?}; server: {server_dropped:?}");
    for dropped in [&client_dropped, &server_dropped] {
        assert!(
            dropped.writes >= 20 && dropped.reads >= 20,
            "too few futures were dropped to test anything: {dropped:?}"
        );
    }
}
