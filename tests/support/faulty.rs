//! A fault-injecting TCP proxy on loopback, for tests of what a connection does when the network
//! between the two ends fails: the cable pulled, a slow link, a reset.
//!
//! Why a proxy rather than nftables or a `tbf` qdisc in a network namespace: it runs anywhere
//! `cargo test` runs (no root, no `ip netns`, no kernel modules, the same on a laptop and in
//! CI), and it is deterministic: a fault takes effect when the test says so, between two of its
//! statements, not when a packet filter gets round to it.
//!
//! [`FaultyProxy::start`] listens on `127.0.0.1`; for each connection it accepts it dials the
//! target and forwards both directions in chunks of at most [`CHUNK`] bytes, so the proxy itself
//! never holds more than one chunk per direction: when a receiver stops reading, the sender's
//! kernel buffers fill and its writes block, as they would on a real link. The handle switches
//! the link at run time, for all connections at once:
//!
//! - [`pass`](FaultyProxy::pass): forward (the start state);
//! - [`blackhole`](FaultyProxy::blackhole): the cable is pulled. The proxy stops reading and
//!   writing in both directions and sends nothing: no FIN, no RST. The sockets stay open, so
//!   each end's kernel keeps what it sent buffered and, once the buffers are full, its writes
//!   block; neither end can tell a dead peer from a silent one;
//! - [`throttle`](FaultyProxy::throttle): one direction limited to a rate (a token bucket),
//!   or unlimited again;
//! - [`reset`](FaultyProxy::reset): both sockets of every connection closed with `SO_LINGER`
//!   0, so both ends get an RST.
//!
//! Counters give the bytes forwarded in each direction.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use wsio::server::Acceptor;
use wsio::{ClientBuilder, Config};

use super::stream::TcpWs;
use super::within;

/// The most the proxy reads at once in one direction, and so the most it holds: small enough
/// that the proxy is not a hidden buffer, large enough that forwarding at loopback speeds is
/// not dominated by syscalls.
pub(crate) const CHUNK: usize = 4 * 1024;

/// One direction of every proxied connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// From the end that connected to the proxy (the client) to the target (the server).
    ToTarget,
    /// From the target back to the end that connected.
    FromTarget,
}

impl Direction {
    fn index(self) -> usize {
        match self {
            Direction::ToTarget => 0,
            Direction::FromTarget => 1,
        }
    }
}

/// What the link does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Pass,
    Blackhole,
    Reset,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LinkState {
    fault: Fault,
    /// Bytes per second for each direction ([`Direction::index`]); `None` is unlimited.
    rate: [Option<u64>; 2],
}

#[derive(Debug, Default)]
struct Counters {
    forwarded: [AtomicU64; 2],
    connections: AtomicU64,
}

/// Options of a [`FaultyProxy`].
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ProxyOptions {
    /// `SO_SNDBUF` and `SO_RCVBUF` of both of the proxy's sockets of each connection (Linux
    /// doubles the figure and stops autotuning it). Small buffers make a blocked writer block
    /// after little data; `None` keeps the kernel's defaults.
    pub(crate) socket_buffer: Option<u32>,
    /// For [`ws_pair_through_proxy`]: the unsent-bytes limit both WebSocket ends set on their
    /// TCP connection (`wsio::transport::limit_unsent`), as wsio's dialer does by default;
    /// `None` leaves the kernel's default (no limit).
    pub(crate) unsent_limit: Option<u32>,
}

/// The handle of a running proxy; dropping it stops the proxy and closes its connections.
#[derive(Debug)]
pub(crate) struct FaultyProxy {
    addr: SocketAddr,
    state: watch::Sender<LinkState>,
    counters: Arc<Counters>,
    accept_task: JoinHandle<()>,
}

impl FaultyProxy {
    /// A proxy to `target` with the kernel's default socket buffers, forwarding.
    pub(crate) async fn start(target: SocketAddr) -> FaultyProxy {
        Self::start_with(target, ProxyOptions::default()).await
    }

    /// A proxy to `target` with `options`, forwarding.
    pub(crate) async fn start_with(target: SocketAddr, options: ProxyOptions) -> FaultyProxy {
        let socket = TcpSocket::new_v4().expect("proxy socket");
        if let Some(size) = options.socket_buffer {
            // Accepted sockets inherit the listener's buffer sizes.
            socket.set_send_buffer_size(size).expect("proxy sndbuf");
            socket.set_recv_buffer_size(size).expect("proxy rcvbuf");
        }
        socket
            .bind("127.0.0.1:0".parse().unwrap())
            .expect("proxy bind");
        let listener = socket.listen(64).expect("proxy listen");
        let addr = listener.local_addr().expect("proxy addr");
        let (state, _) = watch::channel(LinkState {
            fault: Fault::Pass,
            rate: [None, None],
        });
        let counters = Arc::new(Counters::default());
        let accept_task = tokio::spawn(accept_loop(
            listener,
            target,
            options,
            state.clone(),
            counters.clone(),
        ));
        FaultyProxy {
            addr,
            state,
            counters,
            accept_task,
        }
    }

    /// The address to connect to instead of the target.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Forward again (after a blackhole: what the ends had buffered flows on).
    pub(crate) fn pass(&self) {
        self.set_fault(Fault::Pass);
    }

    /// Pull the cable: stop reading and forwarding both ways, keep every socket open, send
    /// nothing. Takes effect at once for new reads; a chunk already read is held, not sent.
    pub(crate) fn blackhole(&self) {
        self.set_fault(Fault::Blackhole);
    }

    /// Reset every connection: both of its sockets closed with `SO_LINGER` 0 (an RST each
    /// way). Connections accepted afterwards are reset at once.
    pub(crate) fn reset(&self) {
        self.set_fault(Fault::Reset);
    }

    /// Limit `direction` to `bytes_per_sec` (`None`: unlimited). Applies to the chunks read from
    /// then on; bursts are at most about a tenth of a second's worth.
    pub(crate) fn throttle(&self, direction: Direction, bytes_per_sec: Option<u64>) {
        assert!(bytes_per_sec != Some(0), "a rate of 0 is a blackhole");
        self.state
            .send_modify(|state| state.rate[direction.index()] = bytes_per_sec);
    }

    /// Bytes forwarded so far in `direction`, over all connections.
    pub(crate) fn forwarded(&self, direction: Direction) -> u64 {
        self.counters.forwarded[direction.index()].load(Ordering::Relaxed)
    }

    /// Connections accepted so far.
    pub(crate) fn connections(&self) -> u64 {
        self.counters.connections.load(Ordering::Relaxed)
    }

    fn set_fault(&self, fault: Fault) {
        self.state.send_modify(|state| state.fault = fault);
    }
}

impl Drop for FaultyProxy {
    fn drop(&mut self) {
        // The connection tasks live in the accept task's JoinSet, aborted with it.
        self.accept_task.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    target: SocketAddr,
    options: ProxyOptions,
    state: watch::Sender<LinkState>,
    counters: Arc<Counters>,
) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            // Reap finished connections so the set does not grow in a long test.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let Ok((inbound, _)) = accepted else { continue };
        counters.connections.fetch_add(1, Ordering::Relaxed);
        let state = state.subscribe();
        let counters = counters.clone();
        connections.spawn(async move {
            let Ok(outbound) = dial(target, options).await else {
                return; // dropping `inbound` closes it: the target is not there
            };
            proxy_connection(inbound, outbound, state, counters).await;
        });
    }
}

async fn dial(target: SocketAddr, options: ProxyOptions) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    if let Some(size) = options.socket_buffer {
        socket.set_send_buffer_size(size)?;
        socket.set_recv_buffer_size(size)?;
    }
    socket.connect(target).await
}

/// Forwards both directions of one connection until both have ended or the link is reset.
async fn proxy_connection(
    mut inbound: TcpStream,
    mut outbound: TcpStream,
    state: watch::Receiver<LinkState>,
    counters: Arc<Counters>,
) {
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    let (reset_to, reset_from) = {
        let (mut in_read, mut in_write) = inbound.split();
        let (mut out_read, mut out_write) = outbound.split();
        tokio::join!(
            forward(
                &mut in_read,
                &mut out_write,
                Direction::ToTarget,
                state.clone(),
                &counters,
            ),
            forward(
                &mut out_read,
                &mut in_write,
                Direction::FromTarget,
                state,
                &counters,
            ),
        )
    };
    if reset_to || reset_from {
        // SO_LINGER 0: closing sends an RST and discards whatever is still buffered.
        let _ = inbound.set_zero_linger();
        let _ = outbound.set_zero_linger();
    }
    // Dropping the streams closes them (an RST after a reset, else a normal close).
}

/// Forwards one direction; returns whether it stopped because the link was reset (rather than
/// at the end of the stream or on an error).
async fn forward<R, W>(
    from: &mut R,
    to: &mut W,
    direction: Direction,
    mut state: watch::Receiver<LinkState>,
    counters: &Counters,
) -> bool
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; CHUNK];
    let mut bucket = TokenBucket::new();
    // Bytes read and not yet written: `buf[held..filled]`.
    let (mut held, mut filled) = (0, 0);
    let mut at_eof = false;
    loop {
        let link = *state.borrow_and_update();
        match link.fault {
            Fault::Reset => return true,
            Fault::Blackhole => {
                // Neither read nor write: wait for the test to change the link.
                if state.changed().await.is_err() {
                    return false; // the proxy was dropped
                }
                continue;
            }
            Fault::Pass => {}
        }
        let rate = link.rate[direction.index()];
        if held < filled {
            // Write what is held; a change of the link interrupts the wait for the receiver.
            tokio::select! {
                written = to.write(&buf[held..filled]) => match written {
                    Ok(0) | Err(_) => return false,
                    Ok(n) => {
                        held += n;
                        counters.forwarded[direction.index()].fetch_add(n as u64, Ordering::Relaxed);
                    }
                },
                changed = state.changed() => if changed.is_err() { return false },
            }
            continue;
        }
        if at_eof {
            // Pass the FIN on, then this direction is done.
            let _ = to.shutdown().await;
            return false;
        }
        if let Some(rate) = rate {
            // Pace: wait until the bucket has room for a chunk, unless the link changes.
            if let Some(wait_until) = bucket.ready_at(rate) {
                tokio::select! {
                    _ = tokio::time::sleep_until(wait_until) => {}
                    changed = state.changed() => if changed.is_err() { return false },
                }
                continue;
            }
        }
        tokio::select! {
            read = from.read(&mut buf) => match read {
                Ok(0) => at_eof = true,
                Ok(n) => {
                    (held, filled) = (0, n);
                    if let Some(rate) = rate {
                        bucket.spend(rate, n);
                    }
                }
                Err(_) => return false,
            },
            changed = state.changed() => if changed.is_err() { return false },
        }
    }
}

/// A token bucket measured in bytes: it fills at the direction's rate up to a burst of a tenth
/// of a second's worth (at least one chunk), and each chunk read spends from it. A read takes
/// at most a chunk and starts only when a chunk's worth is there, so the rate is never
/// exceeded over any period longer than the burst.
#[derive(Debug)]
struct TokenBucket {
    tokens: f64,
    updated: Instant,
}

impl TokenBucket {
    fn new() -> Self {
        TokenBucket {
            tokens: CHUNK as f64,
            updated: Instant::now(),
        }
    }

    fn capacity(rate: u64) -> f64 {
        (rate as f64 / 10.0).max(CHUNK as f64)
    }

    fn refill(&mut self, rate: u64) {
        let now = Instant::now();
        let earned = now.duration_since(self.updated).as_secs_f64() * rate as f64;
        self.tokens = (self.tokens + earned).min(Self::capacity(rate));
        self.updated = now;
    }

    /// `None` when the bucket holds a whole chunk, so a read (of at most a chunk) may go ahead
    /// now; otherwise when it will. Waiting for a whole chunk rather than a byte keeps the
    /// reads large: a slow link is not turned into a storm of one-byte syscalls.
    fn ready_at(&mut self, rate: u64) -> Option<Instant> {
        self.refill(rate);
        let missing = CHUNK as f64 - self.tokens;
        if missing <= 0.0 {
            return None;
        }
        Some(self.updated + Duration::from_secs_f64(missing / rate as f64))
    }

    fn spend(&mut self, rate: u64, bytes: usize) {
        self.refill(rate);
        self.tokens -= bytes as f64;
    }
}

/// A wsio client and server whose TCP connection runs through a new [`FaultyProxy`], after a
/// real opening handshake, with `client` and `server` as their configs. `options.socket_buffer`
/// applies to the two ends' sockets too, so that every buffer on the path is small.
pub(crate) async fn ws_pair_through_proxy(
    client: Config,
    server: Config,
    options: ProxyOptions,
) -> (FaultyProxy, TcpWs, TcpWs) {
    let socket = TcpSocket::new_v4().expect("server socket");
    if let Some(size) = options.socket_buffer {
        socket.set_send_buffer_size(size).expect("server sndbuf");
        socket.set_recv_buffer_size(size).expect("server rcvbuf");
    }
    socket
        .bind("127.0.0.1:0".parse().unwrap())
        .expect("server bind");
    let listener = socket.listen(16).expect("server listen");
    let proxy = FaultyProxy::start_with(listener.local_addr().expect("addr"), options).await;
    let proxy_addr = proxy.addr();
    let server = async move {
        let (tcp, _) = listener.accept().await.expect("accept");
        tcp.set_nodelay(true).expect("nodelay");
        if let Some(bytes) = options.unsent_limit {
            wsio::transport::limit_unsent(&tcp, bytes).expect("server unsent limit");
        }
        Acceptor::new()
            .config(server)
            .accept(tcp)
            .await
            .expect("server handshake")
            .0
    };
    let client = async move {
        let socket = TcpSocket::new_v4().expect("client socket");
        if let Some(size) = options.socket_buffer {
            socket.set_send_buffer_size(size).expect("client sndbuf");
            socket.set_recv_buffer_size(size).expect("client rcvbuf");
        }
        let tcp = socket.connect(proxy_addr).await.expect("connect");
        tcp.set_nodelay(true).expect("nodelay");
        if let Some(bytes) = options.unsent_limit {
            wsio::transport::limit_unsent(&tcp, bytes).expect("client unsent limit");
        }
        ClientBuilder::new()
            .config(client)
            .connect_on(tcp, format!("ws://{proxy_addr}/faulty"))
            .await
            .expect("client handshake")
            .0
    };
    let (client, server) = within("handshake through the proxy", async {
        tokio::join!(client, server)
    })
    .await;
    (proxy, client, server)
}
