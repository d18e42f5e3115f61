//! Opening the transport: resolving the host, connecting TCP an address at a time within the
//! connect timeout, the tunnel through a proxy, and TLS for `wss://`.

use std::io;
use std::net::SocketAddr;
#[cfg(feature = "tls")]
use std::sync::Arc;
use std::time::Duration;

#[cfg(feature = "tls")]
use rustls::ClientConfig;
use tokio::net::TcpStream;
use tokio::time::{timeout, timeout_at, Instant};

use super::proxy::{Proxy, ProxyKind};
use super::proxy_env::ProxyEnv;
use super::tunnel;
use super::url::Target;
use crate::error::{Error, Result, Timeout};
use crate::rt::handshake::deadline_after;
#[cfg(feature = "tls")]
use crate::tls::{self, CertificateDer, ServerName};
use crate::transport::MaybeTlsStream;

/// The shortest time an attempt gets when the connect timeout is split among addresses.
const MIN_ATTEMPT: Duration = Duration::from_secs(2);

/// How a [`ClientBuilder`](super::ClientBuilder) opens transports; its defaults are documented
/// on the builder's setters.
#[derive(Clone)]
pub(super) struct Dialer {
    pub(super) connect_timeout: Duration,
    pub(super) attempt_timeout: Option<Duration>,
    pub(super) nodelay: bool,
    pub(super) unsent_limit: Option<u32>,
    #[cfg(feature = "tls")]
    pub(super) tls_config: Option<Arc<ClientConfig>>,
    #[cfg(feature = "tls")]
    pub(super) root_certificates: Vec<CertificateDer<'static>>,
    #[cfg(feature = "tls")]
    pub(super) identity: Option<tls::Identity>,
    pub(super) proxy: Proxies,
}

/// Which proxy, if any, connections go through.
#[derive(Debug, Clone, Default)]
pub(super) enum Proxies {
    /// Directly to the server.
    #[default]
    None,
    /// Every connection through this proxy.
    All(Proxy),
    /// As the environment says.
    Env(Box<ProxyEnv>),
}

impl Default for Dialer {
    fn default() -> Self {
        Dialer {
            connect_timeout: Duration::from_secs(60),
            attempt_timeout: None,
            nodelay: true,
            unsent_limit: Some(crate::transport::DEFAULT_UNSENT_LIMIT),
            #[cfg(feature = "tls")]
            tls_config: None,
            #[cfg(feature = "tls")]
            root_certificates: Vec::new(),
            #[cfg(feature = "tls")]
            identity: None,
            proxy: Proxies::None,
        }
    }
}

/// What TLS needs to connect to one target: the rustls config and the name to verify.
#[cfg(feature = "tls")]
pub(super) struct TlsTarget {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
}

/// The ALPN protocol of HTTP/2 over TLS (RFC 9113 §3.2).
#[cfg(all(feature = "tls", feature = "http2"))]
pub(super) const ALPN_H2: &[u8] = b"h2";

#[cfg(feature = "http2")]
impl TlsTarget {
    /// The same TLS offering `h2` alone in ALPN, on a copy of the config: HTTP/2 over TLS runs
    /// only when the server agrees to it, and the config kept for HTTP/1.1 keeps `http/1.1`.
    #[cfg(feature = "tls")]
    pub(super) fn offering_h2(self) -> TlsTarget {
        let mut config = ClientConfig::clone(&self.config);
        config.alpn_protocols = vec![ALPN_H2.to_vec()];
        TlsTarget {
            config: Arc::new(config),
            name: self.name,
        }
    }

    /// Without TLS there is no TLS target to offer `h2` on.
    #[cfg(not(feature = "tls"))]
    pub(super) fn offering_h2(self) -> TlsTarget {
        match self {}
    }
}

/// The client config built for the first `wss://` target of a connection, kept for redirects.
#[cfg(feature = "tls")]
pub(super) type TlsConfig = Arc<ClientConfig>;

/// Without TLS there is no TLS target: [`Dialer::tls_for`] refuses `wss://` instead.
#[cfg(not(feature = "tls"))]
pub(super) enum TlsTarget {}

/// Without TLS there is no client config.
#[cfg(not(feature = "tls"))]
pub(super) enum TlsConfig {}

impl Dialer {
    /// TLS for a connection to `target`: `None` for `ws://`. The rustls config is built at the
    /// first `wss://` target and kept in `config` for those that follow (redirects), so that
    /// everything TLS can refuse is refused before any I/O.
    ///
    /// Without the TLS features, `wss://` is [`TlsError::NotCompiled`](crate::error::TlsError::NotCompiled).
    pub(super) fn tls_for(
        &self,
        target: &Target,
        config: &mut Option<TlsConfig>,
    ) -> Result<Option<TlsTarget>> {
        if !target.scheme.is_secure() {
            return Ok(None);
        }
        #[cfg(not(feature = "tls"))]
        {
            let _ = config;
            Err(crate::error::TlsError::NotCompiled.into())
        }
        #[cfg(feature = "tls")]
        {
            let config = match config {
                Some(config) => Arc::clone(config),
                None => config.insert(self.client_config()?).clone(),
            };
            let name = tls::server_name(&target.host)?;
            Ok(Some(TlsTarget { config, name }))
        }
    }

    /// The rustls config for `wss://`.
    #[cfg(feature = "tls")]
    fn client_config(&self) -> Result<Arc<ClientConfig>> {
        if let Some(config) = &self.tls_config {
            return Ok(config.clone());
        }
        if self.root_certificates.is_empty() && self.identity.is_none() {
            return tls::default_client_config();
        }
        let mut roots = tls::default_root_store();
        for certificate in &self.root_certificates {
            roots.add(certificate.clone())?;
        }
        match &self.identity {
            Some(identity) => tls::client_config_with_identity(roots, identity),
            None => tls::client_config(roots),
        }
    }

    /// The rustls config for TLS to an `https://` proxy: the builder's roots (or its
    /// [`tls_config`](super::ClientBuilder::tls_config)), without the client identity, which is
    /// for the server.
    #[cfg(feature = "tls")]
    fn proxy_client_config(&self) -> Result<Arc<ClientConfig>> {
        if let Some(config) = &self.tls_config {
            return Ok(config.clone());
        }
        if self.root_certificates.is_empty() {
            return tls::default_client_config();
        }
        let mut roots = tls::default_root_store();
        for certificate in &self.root_certificates {
            roots.add(certificate.clone())?;
        }
        tls::client_config(roots)
    }

    /// The proxy a connection to `target` goes through, if any.
    ///
    /// # Errors
    /// [`Error::InvalidUrl`]: the environment variable naming it is not a proxy URL.
    pub(super) fn proxy_for(&self, target: &Target) -> Result<Option<&Proxy>> {
        match &self.proxy {
            Proxies::None => Ok(None),
            Proxies::All(proxy) => Ok(Some(proxy)),
            Proxies::Env(env) => env.for_target(target),
        }
    }

    /// Resolves `target`'s host, connects TCP and, with `tls`, TLS, all within the connect
    /// timeout. Through a proxy, TCP (and for an `https://` proxy, TLS) goes to the proxy, the
    /// tunnel is opened, and the server's TLS runs inside it, within the same timeout.
    pub(super) async fn open(
        &self,
        target: &Target,
        tls: Option<TlsTarget>,
    ) -> Result<MaybeTlsStream> {
        let deadline = deadline_after(self.connect_timeout);
        let proxy = match self.proxy_for(target)? {
            Some(proxy) => Some((proxy, self.tls_to_proxy(proxy)?)),
            None => None,
        };
        let open = async {
            let Some((proxy, to_proxy)) = proxy else {
                let tcp = self
                    .connect_tcp(&target.host, target.port, deadline)
                    .await?;
                return over_tcp(tls, tcp).await;
            };
            self.open_through(proxy, to_proxy, target, tls, deadline)
                .await
        };
        timeout_at(deadline, open)
            .await
            .map_err(|_elapsed| Error::Timeout(Timeout::Connect))?
    }

    /// TLS for the connection to `proxy`: `None` unless it is an `https://` proxy, verified
    /// against the proxy's name with the builder's roots. Like [`tls_for`](Self::tls_for), it
    /// is decided before any I/O, so that a build without TLS refuses the proxy
    /// ([`TlsError::NotCompiled`](crate::error::TlsError::NotCompiled)) without dialing it.
    fn tls_to_proxy(&self, proxy: &Proxy) -> Result<Option<TlsTarget>> {
        if proxy.kind != ProxyKind::Https {
            return Ok(None);
        }
        #[cfg(not(feature = "tls"))]
        return Err(crate::error::TlsError::NotCompiled.into());
        #[cfg(feature = "tls")]
        Ok(Some(TlsTarget {
            config: self.proxy_client_config()?,
            name: tls::server_name(&proxy.host)?,
        }))
    }

    /// [`open`](Self::open) through `proxy` (over `to_proxy` TLS for an `https://` proxy), by
    /// `deadline`.
    async fn open_through(
        &self,
        proxy: &Proxy,
        to_proxy: Option<TlsTarget>,
        target: &Target,
        tls: Option<TlsTarget>,
        deadline: Instant,
    ) -> Result<MaybeTlsStream> {
        let mut tcp = self
            .connect_tcp(&proxy.host, proxy.port, deadline)
            .await
            .map_err(|e| match e {
                Error::Io(e) => Error::Io(io::Error::new(
                    e.kind(),
                    format!("cannot connect to the proxy {proxy}: {e}"),
                )),
                other => other,
            })?;
        let Some(to_proxy) = to_proxy else {
            tunnel::open(&mut tcp, proxy, target).await?;
            return over_tcp(tls, tcp).await;
        };
        // TLS to the proxy; the server's TLS inside it.
        #[cfg(feature = "tls")]
        {
            let mut to_proxy = tls_over(to_proxy.config, to_proxy.name, tcp).await?;
            tunnel::open(&mut to_proxy, proxy, target).await?;
            Ok(match tls {
                None => MaybeTlsStream::ProxyTls(Box::new(to_proxy)),
                Some(TlsTarget { config, name }) => MaybeTlsStream::ProxyTlsRustls(Box::new(
                    tls_over(config, name, to_proxy).await?,
                )),
            })
        }
        #[cfg(not(feature = "tls"))]
        match to_proxy {}
    }

    /// Resolves `host`, connects TCP to one of its addresses and sets the builder's socket
    /// options, by `deadline`.
    async fn connect_tcp(&self, host: &str, port: u16, deadline: Instant) -> Result<TcpStream> {
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port)).await?.collect();
        let tcp = connect_addrs(&addrs, deadline, self.attempt_timeout, host).await?;
        tcp.set_nodelay(self.nodelay)?;
        if let Some(bytes) = self.unsent_limit {
            crate::transport::limit_unsent(&tcp, bytes)?;
        }
        Ok(tcp)
    }
}

/// `tcp` as the transport, with TLS to the server over it when `tls` says so.
async fn over_tcp(tls: Option<TlsTarget>, tcp: TcpStream) -> Result<MaybeTlsStream> {
    Ok(match tls {
        None => MaybeTlsStream::Plain(tcp),
        #[cfg(feature = "tls")]
        Some(TlsTarget { config, name }) => {
            MaybeTlsStream::Rustls(Box::new(tls::connect(config, name, tcp).await?))
        }
        #[cfg(not(feature = "tls"))]
        Some(never) => match never {},
    })
}

/// The TLS client handshake over any stream (a tunnel inside TLS to a proxy).
#[cfg(feature = "tls")]
async fn tls_over<S>(
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
    io: S,
) -> Result<tokio_rustls::client::TlsStream<S>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    tokio_rustls::TlsConnector::from(config)
        .connect(name, io)
        .await
        .map_err(Error::from)
}

/// Connects to the first of `addrs` that answers, each attempt bounded by `per_attempt` (or its
/// share of the time left) and all by `deadline`.
async fn connect_addrs(
    addrs: &[SocketAddr],
    deadline: Instant,
    per_attempt: Option<Duration>,
    host: &str,
) -> Result<TcpStream> {
    let mut last_error = None;
    for (i, addr) in addrs.iter().enumerate() {
        let left = deadline.saturating_duration_since(Instant::now());
        let share = left / u32::try_from(addrs.len() - i).unwrap_or(u32::MAX);
        let budget = per_attempt
            .unwrap_or_else(|| share.max(MIN_ATTEMPT))
            .min(left);
        match timeout(budget, TcpStream::connect(addr)).await {
            Ok(Ok(tcp)) => return Ok(tcp),
            Ok(Err(e)) => last_error = Some(Error::Io(e)),
            Err(_elapsed) => last_error = Some(Error::Timeout(Timeout::Connect)),
        }
    }
    Err(last_error.unwrap_or_else(|| {
        Error::Io(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{host} resolved to no address"),
        ))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    /// A loopback listener whose accept queue is full: connecting to it hangs.
    async fn unanswering() -> (tokio::net::TcpListener, TcpStream, SocketAddr) {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = socket.listen(0).unwrap();
        let addr = listener.local_addr().unwrap();
        let filler = TcpStream::connect(addr).await.unwrap();
        (listener, filler, addr)
    }

    #[tokio::test]
    async fn an_address_that_hangs_gives_way_to_the_next() {
        let (_hang, _filler, hang_addr) = unanswering().await;
        if timeout(Duration::from_millis(300), TcpStream::connect(hang_addr))
            .await
            .is_ok()
        {
            eprintln!("this kernel does not leave a full accept queue unanswered; skipping");
            return;
        }
        let good = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let good_addr = good.local_addr().unwrap();
        let deadline = deadline_after(Duration::from_secs(10));
        let started = std::time::Instant::now();
        let tcp = connect_addrs(
            &[hang_addr, good_addr],
            deadline,
            Some(Duration::from_millis(200)),
            "test",
        )
        .await
        .unwrap();
        assert_eq!(tcp.peer_addr().unwrap(), good_addr);
        assert!(started.elapsed() < Duration::from_secs(5));

        // Only hanging addresses: the last attempt's timeout is reported.
        let e = connect_addrs(
            &[hang_addr],
            deadline,
            Some(Duration::from_millis(100)),
            "t",
        )
        .await
        .unwrap_err();
        assert!(matches!(e, Error::Timeout(Timeout::Connect)), "{e:?}");
        let e = connect_addrs(&[], deadline, None, "nowhere")
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Io);
    }

    #[cfg(feature = "tls")]
    #[test]
    fn tls_is_prepared_for_wss_only_and_once() {
        let dialer = Dialer::default();
        let target = |text: &str| Target::of(&text.parse().unwrap()).unwrap();
        let mut config = None;
        assert!(dialer
            .tls_for(&target("ws://h/"), &mut config)
            .unwrap()
            .is_none());
        assert!(config.is_none());
        let tls = dialer.tls_for(&target("wss://h/"), &mut config).unwrap();
        let first = config.clone().unwrap();
        assert!(Arc::ptr_eq(&tls.unwrap().config, &first));
        dialer
            .tls_for(&target("wss://other/"), &mut config)
            .unwrap();
        assert!(Arc::ptr_eq(config.as_ref().unwrap(), &first));
        let e = dialer
            .tls_for(&target("wss://[::1]/"), &mut config)
            .map(|_| ());
        assert!(e.is_ok(), "an IP address is a server name: {e:?}");
    }
}
