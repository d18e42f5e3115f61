//! Helpers for the stream API tests: connections over real loopback TCP (with a real opening
//! handshake), and reads and writes cut at random, reproducible sizes.

use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use wsio::server::Acceptor;
use wsio::{ClientBuilder, Config, WebSocket};

use super::{within, XorShift};

/// A connection over loopback TCP.
pub(crate) type TcpWs = WebSocket<TcpStream>;

/// A client and a server over loopback TCP, after a real opening handshake, both using `config`.
pub(crate) async fn tcp_pair(config: Config) -> (TcpWs, TcpWs) {
    tcp_pair_with(config.clone(), config).await
}

/// Like [`tcp_pair`], with a configuration for each side.
pub(crate) async fn tcp_pair_with(client: Config, server: Config) -> (TcpWs, TcpWs) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    handshake_over(listener, client, server).await
}

/// Like [`tcp_pair`], with the kernel's send and receive buffers of both sockets set to
/// `socket_buffer` bytes (Linux doubles the figure and keeps it from growing), so that a test
/// can fill the whole path between writer and reader quickly.
pub(crate) async fn tcp_pair_small_buffers(config: Config, socket_buffer: u32) -> (TcpWs, TcpWs) {
    let socket = TcpSocket::new_v4().expect("socket");
    // Accepted sockets inherit the listener's buffer sizes.
    socket.set_send_buffer_size(socket_buffer).expect("sndbuf");
    socket.set_recv_buffer_size(socket_buffer).expect("rcvbuf");
    socket.bind("127.0.0.1:0".parse().unwrap()).expect("bind");
    let listener = socket.listen(16).expect("listen");
    let addr = listener.local_addr().expect("addr");
    let connect = async move {
        let socket = TcpSocket::new_v4()?;
        socket.set_send_buffer_size(socket_buffer)?;
        socket.set_recv_buffer_size(socket_buffer)?;
        socket.connect(addr).await
    };
    handshake_on(listener, connect, config.clone(), config).await
}

async fn handshake_over(listener: TcpListener, client: Config, server: Config) -> (TcpWs, TcpWs) {
    let addr = listener.local_addr().expect("addr");
    handshake_on(listener, TcpStream::connect(addr), client, server).await
}

async fn handshake_on(
    listener: TcpListener,
    connect: impl std::future::Future<Output = io::Result<TcpStream>>,
    client: Config,
    server: Config,
) -> (TcpWs, TcpWs) {
    let addr: SocketAddr = listener.local_addr().expect("addr");
    let server = async move {
        let (tcp, _) = listener.accept().await.expect("accept");
        tcp.set_nodelay(true).expect("nodelay");
        Acceptor::new()
            .config(server)
            .accept(tcp)
            .await
            .expect("server handshake")
            .0
    };
    let client = async move {
        let tcp = connect.await.expect("connect");
        tcp.set_nodelay(true).expect("nodelay");
        ClientBuilder::new()
            .config(client)
            .connect_on(tcp, format!("ws://{addr}/stream"))
            .await
            .expect("client handshake")
            .0
    };
    within("loopback handshake", async { tokio::join!(client, server) }).await
}

/// A size for the next read or write: a third tiny (1..=16), a third medium (up to 4 KiB), a
/// third large (4 KiB..=`max`; with `max` well above 64 KiB, many reads go straight from the
/// socket into the caller's buffer).
pub(crate) fn chunk_len(rng: &mut XorShift, max: usize) -> usize {
    let max = max.max(1);
    let len = match rng.below(3) {
        0 => 1 + rng.below(16) as usize,
        1 => 1 + rng.below(4095) as usize,
        _ => 4096 + rng.below(max.saturating_sub(4096) as u64 + 1) as usize,
    };
    len.min(max)
}

/// Writes all of `data` with single `write` calls of random sizes up to `max_chunk`, flushing
/// after about one write in `flush_one_in` (0: never). Does not shut the writer down.
pub(crate) async fn write_chunked<W: AsyncWrite + Unpin>(
    writer: &mut W,
    data: &[u8],
    rng: &mut XorShift,
    max_chunk: usize,
    flush_one_in: u64,
) -> io::Result<()> {
    let mut at = 0;
    while at < data.len() {
        let len = chunk_len(rng, max_chunk).min(data.len() - at);
        let n = writer.write(&data[at..at + len]).await?;
        assert!(n > 0 && n <= len, "write of {len} bytes returned {n}");
        at += n;
        if flush_one_in > 0 && rng.one_in(flush_one_in) {
            writer.flush().await?;
        }
    }
    Ok(())
}

/// Reads to EOF with single `read` calls into buffers of random sizes up to `max_read`; checks
/// that EOF repeats.
pub(crate) async fn read_chunked<R: AsyncRead + Unpin>(
    reader: &mut R,
    rng: &mut XorShift,
    max_read: usize,
) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; max_read.max(1)];
    loop {
        let len = chunk_len(rng, max_read);
        let n = reader.read(&mut buf[..len]).await?;
        if n == 0 {
            break;
        }
        assert!(n <= len);
        out.extend_from_slice(&buf[..n]);
    }
    assert_eq!(reader.read(&mut buf).await?, 0, "EOF must repeat");
    Ok(out)
}

/// Panics with the first differing offset (not a dump of megabytes) when `got != want`.
pub(crate) fn assert_same_bytes(got: &[u8], want: &[u8], what: &str) {
    if got == want {
        return;
    }
    let first = got
        .iter()
        .zip(want)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(want.len()));
    panic!(
        "{what}: got {} bytes, want {}; first difference at offset {first}",
        got.len(),
        want.len()
    );
}

/// A long payload that is cheap to make and check in a debug build: a random block of a prime
/// length repeated, so that no frame or read boundary lines up with it. Byte `i` of the stream is
/// `block[i % block.len()]`.
#[derive(Debug, Clone)]
pub(crate) struct Repeating {
    block: Vec<u8>,
}

impl Repeating {
    pub(crate) fn new(seed: u64) -> Self {
        const PRIME: usize = 65_521;
        Repeating {
            block: XorShift::new(seed).bytes(PRIME),
        }
    }

    /// Fills `out` with the bytes at stream offsets `offset..offset + out.len()`.
    pub(crate) fn fill(&self, offset: u64, out: &mut [u8]) {
        let n = self.block.len();
        let mut at = (offset % n as u64) as usize;
        let mut done = 0;
        while done < out.len() {
            let take = (n - at).min(out.len() - done);
            out[done..done + take].copy_from_slice(&self.block[at..at + take]);
            done += take;
            at = 0;
        }
    }

    /// Whether `got` is what the stream holds at `offset`.
    pub(crate) fn matches(&self, offset: u64, got: &[u8]) -> bool {
        let mut want = vec![0u8; got.len()];
        self.fill(offset, &mut want);
        want == got
    }
}
