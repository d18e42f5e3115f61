//! Opening a tunnel through a proxy over a connected stream: drives the sans-io exchanges of
//! [`http_connect`](super::http_connect) and [`socks`](super::socks) with bounded reads.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::http_connect::{self, Answer, MAX_ANSWER};
use super::proxy::{Proxy, ProxyKind};
use super::socks::{Socks5, SocksTarget, MAX_READ};
use super::url::Target;
use crate::error::{Error, ProxyError, ProxyFailure, Result};

/// `host:port` as a request target, with brackets around an IPv6 address.
pub(super) fn authority(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Asks `proxy`, connected over `io`, for a tunnel to `target`. On success the stream carries
/// the tunnel, and nothing of what the server sends has been read.
pub(super) async fn open<S>(io: &mut S, proxy: &Proxy, target: &Target) -> Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let failed = |failure| -> Error {
        ProxyError::new(
            proxy.to_string(),
            authority(&target.host, target.port),
            failure,
        )
        .into()
    };
    let outcome = match proxy.kind {
        ProxyKind::Http | ProxyKind::Https => http_connect(io, proxy, target).await,
        ProxyKind::Socks5 | ProxyKind::Socks5h => socks5(io, proxy, target).await,
    };
    match outcome {
        Ok(Ok(())) => Ok(()),
        Ok(Err(failure)) => Err(failed(failure)),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(failed(ProxyFailure::Closed)),
        Err(e) => Err(Error::Io(e)),
    }
}

/// `CONNECT` and its answer; the answer is read into a buffer of at most [`MAX_ANSWER`] bytes.
async fn http_connect<S>(
    io: &mut S,
    proxy: &Proxy,
    target: &Target,
) -> io::Result<Result<(), ProxyFailure>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let credentials = proxy.credentials.as_ref().map(|c| c.basic());
    let request = http_connect::request(
        &authority(&target.host, target.port),
        credentials.as_deref(),
    );
    io.write_all(&request).await?;
    io.flush().await?;
    let mut buffer = vec![0; MAX_ANSWER];
    let mut filled = 0;
    loop {
        let n = io.read(&mut buffer[filled..]).await?;
        if n == 0 {
            return Ok(Err(ProxyFailure::Closed));
        }
        filled += n;
        match http_connect::parse_answer(&buffer[..filled]) {
            Ok(Answer::Partial) => continue,
            Ok(Answer::Done { status, .. }) if !status.is_success() => {
                return Ok(Err(ProxyFailure::Refused(status)))
            }
            // Neither a WebSocket server nor a TLS server speaks first: bytes after a 2xx
            // answer are not the server's.
            Ok(Answer::Done { len, .. }) if len < filled => {
                return Ok(Err(ProxyFailure::Malformed(
                    "data after the answer, before the client spoke",
                )))
            }
            Ok(Answer::Done { .. }) => return Ok(Ok(())),
            Err(failure) => return Ok(Err(failure)),
        }
    }
}

/// The SOCKS5 exchange; every read is exactly as long as the protocol's next field.
async fn socks5<S>(
    io: &mut S,
    proxy: &Proxy,
    target: &Target,
) -> io::Result<Result<(), ProxyFailure>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let resolved;
    let socks_target = match target.host.parse() {
        Ok(ip) => SocksTarget::Addr(std::net::SocketAddr::new(ip, target.port)),
        Err(_) if proxy.kind == ProxyKind::Socks5h => {
            SocksTarget::Domain(&target.host, target.port)
        }
        Err(_) => {
            resolved = tokio::net::lookup_host((target.host.as_str(), target.port))
                .await?
                .next()
                .ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("{} resolved to no address", target.host),
                    )
                })?;
            SocksTarget::Addr(resolved)
        }
    };
    let credentials = proxy
        .credentials
        .as_ref()
        .map(|c| (c.user.clone(), c.password.clone()));
    let (mut socks, greeting) = Socks5::new(socks_target, credentials)
        .map_err(|why| io::Error::new(io::ErrorKind::InvalidInput, why))?;
    io.write_all(&greeting).await?;
    io.flush().await?;
    let mut buffer = [0; MAX_READ];
    while !socks.is_done() {
        let field = &mut buffer[..socks.wants()];
        io.read_exact(field).await?;
        match socks.handle(field) {
            Ok(Some(send)) => {
                io.write_all(&send).await?;
                io.flush().await?;
            }
            Ok(None) => {}
            Err(failure) => return Ok(Err(failure)),
        }
    }
    Ok(Ok(()))
}
