//! The cases: what each one sets up and what it times.

use std::future::Future;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::Throughput;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::conn::{connect, connect_tls, Conn, Lib, Tls};
use crate::Scale;

const MIB: usize = 1 << 20;

/// The function ids of the echo and bulk cases: wsio, the peers, raw TCP.
const LIBRARIES: &[&str] = &[
    "wsio",
    "tokio-tungstenite",
    "fastwebsockets",
    "tokio-websockets",
    "raw_tcp",
];
/// The flood cases: the libraries, which all have a way to queue messages without a flush each.
const FLOOD_FUNCTIONS: &[&str] = &[
    "wsio",
    "tokio-tungstenite",
    "fastwebsockets",
    "tokio-websockets",
];
/// The wss bulk cases: the libraries over TLS, and raw TLS moving the same bytes.
const TLS_FUNCTIONS: &[&str] = &[
    "wsio",
    "tokio-tungstenite",
    "fastwebsockets",
    "tokio-websockets",
    "raw_tls",
];
/// The stream cases: wsio's stream API beside the peers' and raw TCP's bulk transfer of the
/// same bytes, and raw TCP through `tokio::io::copy`.
const STREAM_FUNCTIONS: &[&str] = &[
    "wsio",
    "tokio-tungstenite",
    "fastwebsockets",
    "tokio-websockets",
    "raw_tcp",
    "raw_tcp_copy",
];

/// One benchmark group: a kind of traffic and its payload.
pub(crate) struct Case {
    kind: Kind,
    payload: Bytes,
}

enum Kind {
    Echo {
        conns: usize,
        inflight: usize,
        /// Round trips per connection per iteration.
        per_conn: usize,
    },
    Bulk {
        direction: Direction,
        messages: usize,
    },
    /// 1 MiB messages one way over TLS (wss).
    TlsBulk {
        direction: Direction,
        messages: usize,
    },
    /// Small messages one way, client to server, queued with `feed` and flushed once at the
    /// end; the server counts them.
    Flood { messages: usize },
    Stream {
        direction: Direction,
        messages: usize,
    },
}

/// What a function of a case keeps between iterations: its connections.
#[allow(clippy::large_enum_variant)] // one per function, not on any hot path
pub(crate) enum State {
    Echo(EchoSetup),
    Pair(Option<(Conn, Conn)>),
    TlsPair(Option<(Conn<Tls>, Conn<Tls>)>),
}

impl Case {
    /// Every case, in the order they run.
    pub(crate) fn all(scale: &Scale) -> Vec<Case> {
        let mut cases = Vec::new();
        for size in [64, 1 << 10, 16 << 10] {
            for conns in [1, 100] {
                for inflight in [1, 16] {
                    let per_conn = if conns == 1 {
                        scale.echo_one_conn
                    } else {
                        scale.echo_many_conns
                    };
                    cases.push(Case {
                        kind: Kind::Echo {
                            conns,
                            inflight,
                            per_conn,
                        },
                        payload: Bytes::from(vec![0x5a; size]),
                    });
                }
            }
        }
        for size in [64, 1 << 10] {
            cases.push(Case {
                kind: Kind::Flood {
                    messages: scale.flood_messages,
                },
                payload: Bytes::from(vec![0x5a; size]),
            });
        }
        // 1 MiB one way, each direction: bulk over TCP, bulk over TLS, wsio's stream API.
        let messages = scale.bulk_messages;
        let one_way: [fn(Direction, usize) -> Kind; 3] = [
            |direction, messages| Kind::Bulk {
                direction,
                messages,
            },
            |direction, messages| Kind::TlsBulk {
                direction,
                messages,
            },
            |direction, messages| Kind::Stream {
                direction,
                messages,
            },
        ];
        for kind in one_way {
            for direction in [Direction::ClientToServer, Direction::ServerToClient] {
                cases.push(Case {
                    kind: kind(direction, messages),
                    payload: Bytes::from(vec![0x5a; MIB]),
                });
            }
        }
        cases
    }

    /// The group's name, e.g. `echo_64B_100conn_16inflight`.
    pub(crate) fn name(&self) -> String {
        match &self.kind {
            Kind::Echo {
                conns, inflight, ..
            } => {
                let size = size_label(&self.payload);
                format!("echo_{size}_{conns}conn_{inflight}inflight")
            }
            Kind::Bulk { direction, .. } => format!("bulk_1MiB_{}", direction.label()),
            Kind::TlsBulk { direction, .. } => format!("wss_bulk_1MiB_{}", direction.label()),
            Kind::Flood { .. } => format!("flood_{}_client_to_server", size_label(&self.payload)),
            Kind::Stream { direction, .. } => format!("stream_{}", direction.label()),
        }
    }

    pub(crate) fn functions(&self) -> &'static [&'static str] {
        match self.kind {
            Kind::Stream { .. } => STREAM_FUNCTIONS,
            Kind::Flood { .. } => FLOOD_FUNCTIONS,
            Kind::TlsBulk { .. } => TLS_FUNCTIONS,
            _ => LIBRARIES,
        }
    }

    /// What one iteration moves: messages (each round trip once) or bytes.
    pub(crate) fn throughput(&self) -> Throughput {
        match self.kind {
            Kind::Echo {
                conns, per_conn, ..
            } => Throughput::Elements((conns * per_conn) as u64),
            Kind::Flood { messages } => Throughput::Elements(messages as u64),
            Kind::Bulk { messages, .. }
            | Kind::TlsBulk { messages, .. }
            | Kind::Stream { messages, .. } => {
                Throughput::Bytes((messages * self.payload.len()) as u64)
            }
        }
    }

    /// Opens and upgrades the connections of `function`. Not timed.
    pub(crate) async fn setup(&self, function: &str) -> State {
        let lib = Lib::from_name(function);
        match self.kind {
            Kind::Echo { conns, .. } => State::Echo(EchoSetup::new(lib, conns).await),
            Kind::Bulk { direction, .. } | Kind::Stream { direction, .. } => {
                State::Pair(Some(direction.pair(lib).await))
            }
            Kind::Flood { .. } => State::Pair(Some(Direction::ClientToServer.pair(lib).await)),
            Kind::TlsBulk { direction, .. } => State::TlsPair(Some(direction.tls_pair(lib).await)),
        }
    }

    /// Runs `iters` iterations of `function` and returns the time they took.
    pub(crate) async fn run(&self, function: &str, state: &mut State, iters: usize) -> Duration {
        match (&self.kind, state) {
            (
                Kind::Echo {
                    inflight, per_conn, ..
                },
                State::Echo(setup),
            ) => setup.run(&self.payload, per_conn * iters, *inflight).await,
            (Kind::Bulk { messages, .. }, State::Pair(pair)) => {
                bulk_run(pair, &self.payload, messages * iters).await
            }
            (Kind::TlsBulk { messages, .. }, State::TlsPair(pair)) => {
                bulk_run(pair, &self.payload, messages * iters).await
            }
            (Kind::Flood { messages }, State::Pair(pair)) => {
                flood_run(pair, &self.payload, messages * iters).await
            }
            (Kind::Stream { messages, .. }, State::Pair(pair)) => {
                let bytes = (messages * self.payload.len()) as u64;
                match function {
                    "wsio" => stream_run(pair, bytes, iters).await,
                    "raw_tcp_copy" => raw_copy_run(pair, bytes, iters).await,
                    _ => bulk_run(pair, &self.payload, messages * iters).await,
                }
            }
            _ => unreachable!("state of another kind of case"),
        }
    }

    /// Closes the connections.
    pub(crate) async fn teardown(state: State) {
        match state {
            State::Echo(setup) => setup.finish().await,
            State::Pair(pair) => drop(pair),
            State::TlsPair(pair) => drop(pair),
        }
    }
}

/// Client ends, and the server tasks echoing on the other ends.
pub(crate) struct EchoSetup {
    clients: Vec<Conn>,
    servers: Vec<JoinHandle<()>>,
}

impl EchoSetup {
    async fn new(lib: Lib, conns: usize) -> Self {
        let mut clients = Vec::with_capacity(conns);
        let mut servers = Vec::with_capacity(conns);
        for (client, mut server) in connect(lib, conns).await {
            clients.push(client);
            servers.push(tokio::spawn(
                async move { while server.echo_one().await {} },
            ));
        }
        EchoSetup { clients, servers }
    }

    /// Each client does `messages` round trips, in bursts of `inflight`.
    async fn run(&mut self, payload: &Bytes, messages: usize, inflight: usize) -> Duration {
        let rounds = messages / inflight;
        let start = Instant::now();
        let tasks: Vec<_> = self
            .clients
            .drain(..)
            .map(|mut conn| {
                let payload = payload.clone();
                tokio::spawn(async move {
                    for _ in 0..rounds {
                        for _ in 0..inflight {
                            conn.send(&payload).await;
                        }
                        for _ in 0..inflight {
                            let n = conn.recv().await;
                            debug_assert_eq!(n, payload.len());
                        }
                    }
                    conn
                })
            })
            .collect();
        for task in tasks {
            self.clients.push(task.await.unwrap());
        }
        start.elapsed()
    }

    /// Closes the clients' TCP connections; the server tasks see EOF and end.
    async fn finish(self) {
        drop(self.clients);
        for server in self.servers {
            server.await.unwrap();
        }
    }
}

#[derive(Clone, Copy)]
enum Direction {
    ClientToServer,
    ServerToClient,
}

impl Direction {
    fn label(self) -> &'static str {
        match self {
            Direction::ClientToServer => "client_to_server",
            Direction::ServerToClient => "server_to_client",
        }
    }

    /// (sending end, receiving end) of one upgraded connection.
    async fn pair(self, lib: Lib) -> (Conn, Conn) {
        self.ends(connect(lib, 1).await.pop().unwrap())
    }

    /// (sending end, receiving end) of one upgraded connection over TLS.
    async fn tls_pair(self, lib: Lib) -> (Conn<Tls>, Conn<Tls>) {
        self.ends(connect_tls(lib).await)
    }

    /// (client end, server end) in this direction's order.
    fn ends<T>(self, (client, server): (T, T)) -> (T, T) {
        match self {
            Direction::ClientToServer => (client, server),
            Direction::ServerToClient => (server, client),
        }
    }
}

/// Moves `messages` 1 MiB messages from `pair.0` to `pair.1`.
async fn bulk_run<S>(
    pair: &mut Option<(Conn<S>, Conn<S>)>,
    payload: &Bytes,
    messages: usize,
) -> Duration
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let size = payload.len();
    let payload = payload.clone();
    let send = move |mut tx: Conn<S>| async move {
        for _ in 0..messages {
            tx.bulk_send(&payload).await;
        }
        tx
    };
    let receive = move |mut rx: Conn<S>| async move {
        let mut scratch = vec![0u8; MIB];
        rx.bulk_recv(messages, size, &mut scratch).await;
        rx
    };
    one_way(pair, send, receive).await
}

/// Queues `messages` small messages from `pair.0` with one flush at the end; timed until
/// `pair.1` has received them all.
async fn flood_run(pair: &mut Option<(Conn, Conn)>, payload: &Bytes, messages: usize) -> Duration {
    let size = payload.len();
    let payload = payload.clone();
    let send = move |mut tx: Conn| async move {
        for _ in 0..messages {
            tx.feed(&payload).await;
        }
        tx.flush().await;
        tx
    };
    let receive = move |mut rx: Conn| async move {
        for _ in 0..messages {
            let n = rx.recv().await;
            debug_assert_eq!(n, size);
        }
        rx
    };
    one_way(pair, send, receive).await
}

/// Runs `send` on `pair.0` and `receive` on `pair.1`, each in its own task, and puts the pair
/// back; timed from the start until `receive` is done.
async fn one_way<S, Tx, Rx>(
    pair: &mut Option<(Conn<S>, Conn<S>)>,
    send: impl FnOnce(Conn<S>) -> Tx,
    receive: impl FnOnce(Conn<S>) -> Rx,
) -> Duration
where
    S: Send + 'static,
    Tx: Future<Output = Conn<S>> + Send + 'static,
    Rx: Future<Output = Conn<S>> + Send + 'static,
{
    let (tx, rx) = pair.take().unwrap();
    let start = Instant::now();
    let sender = tokio::spawn(send(tx));
    let receiver = tokio::spawn(receive(rx));
    let rx = receiver.await.unwrap();
    let elapsed = start.elapsed();
    *pair = Some((sender.await.unwrap(), rx));
    elapsed
}

/// `64B`, `1KiB`: a payload's size in a case name.
fn size_label(payload: &Bytes) -> String {
    match payload.len() {
        n if n >= 1 << 10 => format!("{}KiB", n >> 10),
        n => format!("{n}B"),
    }
}

/// Sends `messages` stream messages of `bytes` bytes each through wsio's stream API.
async fn stream_run(pair: &mut Option<(Conn, Conn)>, bytes: u64, messages: usize) -> Duration {
    let Some((Conn::Wsio(mut tx), Conn::Wsio(mut rx))) = pair.take() else {
        unreachable!("the stream cases are wsio's")
    };
    let start = Instant::now();
    let sender = tokio::spawn(async move {
        for _ in 0..messages {
            let mut source = tokio::io::repeat(0x5a).take(bytes);
            let mut writer = tx.send_stream(wsio::DataKind::Binary);
            tokio::io::copy(&mut source, &mut writer).await.unwrap();
            writer.shutdown().await.unwrap();
        }
        tx
    });
    let receiver = tokio::spawn(async move {
        for _ in 0..messages {
            let mut reader = rx.recv_stream().await.unwrap().unwrap();
            let got = tokio::io::copy(&mut reader, &mut tokio::io::sink())
                .await
                .unwrap();
            assert_eq!(got, bytes);
        }
        rx
    });
    let rx = receiver.await.unwrap();
    let elapsed = start.elapsed();
    let tx = sender.await.unwrap();
    *pair = Some((Conn::Wsio(tx), Conn::Wsio(rx)));
    elapsed
}

/// Raw TCP through `tokio::io::copy` at both ends (8 KiB buffers).
async fn raw_copy_run(pair: &mut Option<(Conn, Conn)>, bytes: u64, messages: usize) -> Duration {
    let Some((Conn::Raw(mut tx), Conn::Raw(mut rx))) = pair.take() else {
        unreachable!("raw connections")
    };
    let total = bytes * messages as u64;
    let start = Instant::now();
    let sender = tokio::spawn(async move {
        let mut source = tokio::io::repeat(0x5a).take(total);
        tokio::io::copy(&mut source, &mut tx.io).await.unwrap();
        tx
    });
    let receiver = tokio::spawn(async move {
        let got = tokio::io::copy(&mut (&mut rx.io).take(total), &mut tokio::io::sink())
            .await
            .unwrap();
        assert_eq!(got, total);
        rx
    });
    let rx = receiver.await.unwrap();
    let elapsed = start.elapsed();
    let tx = sender.await.unwrap();
    *pair = Some((Conn::Raw(tx), Conn::Raw(rx)));
    elapsed
}
