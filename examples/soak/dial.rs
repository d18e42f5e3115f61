//! Opening a client connection to the server under test, on a given path.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::timeout;
use wsio::{ClientBuilder, WebSocket};

/// How long TCP may take to connect; the handshake has its own timeout in the config.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where and how the client connects.
pub(crate) struct Dialer {
    pub(crate) addr: SocketAddr,
    pub(crate) builder: ClientBuilder,
}

impl Dialer {
    /// Connects TCP and runs the opening handshake for `path` (`/message`, `/stream`, ...).
    pub(crate) async fn open(&self, path: &str) -> Result<WebSocket<TcpStream>, String> {
        let tcp = match timeout(CONNECT_TIMEOUT, TcpStream::connect(self.addr)).await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(e)) => return Err(format!("connect: {e}")),
            Err(_) => return Err(format!("connect: no answer in {CONNECT_TIMEOUT:?}")),
        };
        tcp.set_nodelay(true)
            .map_err(|e| format!("set_nodelay: {e}"))?;
        let url = format!("ws://{}{path}", self.addr);
        let (ws, _) = self
            .builder
            .connect_on(tcp, url.as_str())
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        Ok(ws)
    }
}
