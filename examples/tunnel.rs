//! TCP port forwarding over a WebSocket, like websockify: each TCP connection accepted by the
//! client end travels inside one WebSocket to the server end, which connects it to the target.
//!
//! ```text
//! tunnel server --listen 127.0.0.1:8080 --forward 127.0.0.1:22       # WebSockets in, TCP out
//! tunnel client --listen 127.0.0.1:2222 --connect ws://127.0.0.1:8080/ # TCP in, WebSockets out
//! tunnel demo [--size BYTES] [--connections N]  # both ends and an echo service on loopback
//! ```
//!
//! Each side is a [`wsio::ByteStream`] joined to a `TcpStream` with
//! `tokio::io::copy_bidirectional`. Bytes leave as binary messages, so a browser or any other
//! WebSocket peer can be either end. WebSocket has no half-close: when one side's TCP peer stops
//! sending, the WebSocket closes, and data still coming the other way after that is lost. Fine
//! for request/response protocols (SSH, HTTP, databases) that read their answers before closing.

use std::error::Error;
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

type BoxError = Box<dyn Error + Send + Sync>;

const USAGE: &str = "usage:
  tunnel server --listen WS_ADDR --forward TCP_ADDR
  tunnel client --listen TCP_ADDR --connect ws://HOST:PORT/PATH
  tunnel demo [--size BYTES] [--connections N]";

/// Accepts WebSocket connections on `listener` and joins each to a new TCP connection to
/// `forward`. Runs until accepting fails.
pub async fn serve_websockets(listener: TcpListener, forward: String) -> std::io::Result<()> {
    loop {
        let (tcp, from) = listener.accept().await?;
        let forward = forward.clone();
        tokio::spawn(async move {
            if let Err(e) = websocket_to_tcp(tcp, &forward).await {
                eprintln!("tunnel server: {from}: {e}");
            }
        });
    }
}

async fn websocket_to_tcp(tcp: TcpStream, forward: &str) -> Result<(u64, u64), BoxError> {
    tcp.set_nodelay(true)?;
    let mut stream = wsio::accept(tcp).await?.into_byte_stream();
    let mut target = TcpStream::connect(forward).await?;
    target.set_nodelay(true)?;
    Ok(tokio::io::copy_bidirectional(&mut stream, &mut target).await?)
}

/// Accepts TCP connections on `listener` and carries each through a new WebSocket to `url`.
/// Runs until accepting fails.
pub async fn serve_tcp(listener: TcpListener, url: String) -> std::io::Result<()> {
    loop {
        let (tcp, from) = listener.accept().await?;
        let url = url.clone();
        tokio::spawn(async move {
            if let Err(e) = tcp_to_websocket(tcp, &url).await {
                eprintln!("tunnel client: {from}: {e}");
            }
        });
    }
}

async fn tcp_to_websocket(mut tcp: TcpStream, url: &str) -> Result<(u64, u64), BoxError> {
    tcp.set_nodelay(true)?;
    let (ws, _response) = wsio::connect(url).await?;
    let mut stream = ws.into_byte_stream();
    Ok(tokio::io::copy_bidirectional(&mut tcp, &mut stream).await?)
}

/// A TCP echo service: sends back whatever it receives.
pub async fn serve_echo(listener: TcpListener) -> std::io::Result<()> {
    loop {
        let (mut tcp, _) = listener.accept().await?;
        tokio::spawn(async move {
            let (mut rx, mut tx) = tcp.split();
            let _ = tokio::io::copy(&mut rx, &mut tx).await;
        });
    }
}

/// `len` bytes of deterministic noise for connection `seed` (xorshift64*).
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Sends `data` through a TCP connection to `addr` while reading the echo, then closes; returns
/// what came back.
pub async fn echo_through(addr: std::net::SocketAddr, data: &[u8]) -> Result<Vec<u8>, BoxError> {
    let mut tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let (mut rx, mut tx) = tcp.split();
    let send = async {
        for piece in data.chunks(50_000) {
            tx.write_all(piece).await?;
        }
        Ok::<_, std::io::Error>(())
    };
    let receive = async {
        let mut back = vec![0u8; data.len()];
        rx.read_exact(&mut back).await?;
        Ok::<_, std::io::Error>(back)
    };
    let ((), back) = tokio::try_join!(send, receive)?;
    // Everything came back: now closing loses nothing. The tunnel then closes its end.
    tx.shutdown().await?;
    let mut rest = Vec::new();
    rx.read_to_end(&mut rest).await?;
    if !rest.is_empty() {
        return Err(format!("{} unexpected bytes after the echo", rest.len()).into());
    }
    Ok(back)
}

/// Starts an echo service, a tunnel server forwarding to it and a tunnel client in front, all on
/// loopback; pushes `size` bytes through each of `connections` connections at once and checks
/// every byte that comes back. Returns the addresses used.
pub async fn demo(size: usize, connections: usize) -> Result<[std::net::SocketAddr; 3], BoxError> {
    let echo = TcpListener::bind("127.0.0.1:0").await?;
    let ws_side = TcpListener::bind("127.0.0.1:0").await?;
    let tcp_side = TcpListener::bind("127.0.0.1:0").await?;
    let addrs = [
        echo.local_addr()?,
        ws_side.local_addr()?,
        tcp_side.local_addr()?,
    ];
    let url = format!("ws://{}/tunnel", addrs[1]);
    let services = [
        tokio::spawn(serve_echo(echo)),
        tokio::spawn(serve_websockets(ws_side, addrs[0].to_string())),
        tokio::spawn(serve_tcp(tcp_side, url)),
    ];
    let runs = (0..connections).map(|i| async move {
        let data = noise(i as u64 + 1, size);
        let back = echo_through(addrs[2], &data).await?;
        if back != data {
            return Err::<(), BoxError>(format!("connection {i}: the echo differs").into());
        }
        Ok(())
    });
    let result = futures::future::try_join_all(runs).await.map(|_| addrs);
    for service in services {
        service.abort();
    }
    result
}

fn arg(args: &[String], name: &str) -> Option<String> {
    let at = args.iter().position(|a| a == name)?;
    args.get(at + 1).cloned()
}

fn required(args: &[String], name: &str) -> String {
    arg(args, name).unwrap_or_else(|| {
        eprintln!("missing {name}\n{USAGE}");
        std::process::exit(2)
    })
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("server") => {
            let listener = TcpListener::bind(required(&args, "--listen")).await?;
            let forward = required(&args, "--forward");
            eprintln!("WebSockets on {} -> TCP {forward}", listener.local_addr()?);
            serve_websockets(listener, forward).await?;
        }
        Some("client") => {
            let listener = TcpListener::bind(required(&args, "--listen")).await?;
            let url = required(&args, "--connect");
            eprintln!("TCP on {} -> {url}", listener.local_addr()?);
            serve_tcp(listener, url).await?;
        }
        Some("demo") => {
            let size = arg(&args, "--size").map_or(Ok(4 << 20), |s| s.parse())?;
            let connections = arg(&args, "--connections").map_or(Ok(2), |s| s.parse())?;
            let started = Instant::now();
            let [echo, ws_side, tcp_side] = demo(size, connections).await?;
            let seconds = started.elapsed().as_secs_f64();
            let total = (2 * size * connections) as f64;
            println!(
                "echo service on {echo}; tunnel server (WebSocket) on {ws_side}, forwarding to it;"
            );
            println!("tunnel client (TCP) on {tcp_side}, connecting to ws://{ws_side}/tunnel.");
            println!(
                "{connections} connection(s) at once sent {size} bytes each through the tunnel and got \
                 every byte back intact: {total:.0} bytes moved in {seconds:.2} s ({:.1} MiB/s).",
                total / seconds / (1 << 20) as f64
            );
        }
        _ => {
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    }
    Ok(())
}
