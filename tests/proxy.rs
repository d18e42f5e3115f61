//! The client through real proxy servers on loopback: Debian's `tinyproxy` for HTTP `CONNECT`
//! (with and without Basic authentication, behind a TLS terminator for an `https://` proxy) and
//! `microsocks` for SOCKS5 (with and without username/password), against a wsio echo server over
//! `ws://` and `wss://`. Each test starts its own proxy process on a free port with a config it
//! writes, and kills it when done. `scripts/install-proxies.sh` installs both; a test whose proxy
//! is missing fails.
//!
//! Also here: the refusals (407, 403, SOCKS5 errors) arrive as `Error::Proxy`, a proxy that
//! never answers is the connect timeout, an endless answer header is refused, and `ProxyEnv`
//! sends a connection through the proxy or, by `NO_PROXY`, around it.

#![cfg(feature = "tls")]

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use http::header::{AUTHORIZATION, LOCATION, PROXY_AUTHORIZATION};
use http::{HeaderMap, HeaderValue, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use wsio::client::{Proxy, ProxyEnv};
use wsio::error::{ProxyError, ProxyFailure, Timeout};
use wsio::server::{Accept, Acceptor, Reject};
use wsio::tls::TlsAcceptor;
use wsio::{ClientBuilder, Error, ErrorKind, MaybeTlsStream, Message};

use support::certs::Ca;
use support::within;

// ---------------------------------------------------------------------------------------------
// Proxy processes

/// A proxy server process, killed (and its directory removed) when dropped.
struct ProxyProcess {
    _child: Child,
    port: u16,
    dir: PathBuf,
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl ProxyProcess {
    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }
}

/// The installed program. A missing one fails the test (like a missing Chromium in
/// tests/browser.rs): a proxy test that skipped would pass having checked nothing.
fn program(name: &str) -> PathBuf {
    ["/usr/bin", "/usr/sbin", "/usr/local/bin"]
        .iter()
        .map(|dir| Path::new(dir).join(name))
        .find(|path| path.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{name} is missing: run `bash scripts/install-proxies.sh` (scripts/test.sh does)"
            )
        })
}

fn temp_dir(what: &str) -> PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "wsio-proxy-{what}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

/// Starts `program` with `args` and waits until it accepts on `port`.
async fn start(program: &Path, args: &[String], port: u16, dir: PathBuf) -> ProxyProcess {
    let mut child = Command::new(program)
        .args(args)
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
    within("the proxy to accept connections", async {
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("{} exited at start: {status}", program.display());
            }
            if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    ProxyProcess {
        _child: child,
        port,
        dir,
    }
}

/// tinyproxy allowing `CONNECT` to `ports` only, with `BasicAuth` when `auth` is given.
async fn tinyproxy(ports: &[u16], auth: Option<(&str, &str)>) -> ProxyProcess {
    let program = program("tinyproxy");
    let port = free_port().await;
    let dir = temp_dir("tinyproxy");
    let mut config = format!(
        "Port {port}\nListen 127.0.0.1\nTimeout 10\nAllow 127.0.0.1\nMaxClients 20\n\
         LogLevel Warning\nLogFile \"{}\"\n",
        dir.join("log").display()
    );
    for p in ports {
        config.push_str(&format!("ConnectPort {p}\n"));
    }
    if let Some((user, password)) = auth {
        config.push_str(&format!("BasicAuth {user} {password}\n"));
    }
    let file = dir.join("tinyproxy.conf");
    std::fs::write(&file, config).unwrap();
    let args = ["-d".to_owned(), "-c".to_owned(), file.display().to_string()];
    start(&program, &args, port, dir).await
}

/// microsocks, with username/password when `auth` is given.
async fn microsocks(auth: Option<(&str, &str)>) -> ProxyProcess {
    let program = program("microsocks");
    let port = free_port().await;
    let mut args = vec![
        "-i".to_owned(),
        "127.0.0.1".to_owned(),
        "-p".to_owned(),
        port.to_string(),
    ];
    if let Some((user, password)) = auth {
        args.extend([
            "-u".to_owned(),
            user.to_owned(),
            "-P".to_owned(),
            password.to_owned(),
        ]);
    }
    start(&program, &args, port, temp_dir("microsocks")).await
}

// ---------------------------------------------------------------------------------------------
// The WebSocket server, certificates, a TLS terminator

/// A wsio echo server on loopback; the headers of each request it gets go to `seen`.
struct Echo {
    port: u16,
    seen: mpsc::UnboundedReceiver<HeaderMap>,
}

async fn echo_server(tls: Option<TlsAcceptor>, acceptor: Acceptor) -> Echo {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, seen) = mpsc::unbounded_channel();
    let acceptor = acceptor.on_request(move |request| {
        let _ = tx.send(request.headers().clone());
        Ok(Accept::new())
    });
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (tls, acceptor) = (tls.clone(), acceptor.clone());
            tokio::spawn(async move {
                match tls {
                    None => {
                        if let Ok((mut ws, _)) = acceptor.accept(tcp).await {
                            while let Some(Ok(message)) = ws.recv().await {
                                if message.is_data() && ws.send(message).await.is_err() {
                                    break;
                                }
                            }
                        }
                    }
                    Some(tls) => {
                        if let Ok((mut ws, _)) = acceptor.accept_tls(&tls, tcp).await {
                            while let Some(Ok(message)) = ws.recv().await {
                                if message.is_data() && ws.send(message).await.is_err() {
                                    break;
                                }
                            }
                        }
                    }
                }
            });
        }
    });
    Echo { port, seen }
}

async fn plain_echo() -> Echo {
    echo_server(None, Acceptor::new()).await
}

/// The CA, and a TLS acceptor with a certificate for `localhost` it signed.
fn tls_for_localhost(ca: &Ca) -> TlsAcceptor {
    let leaf = ca.leaf(&["localhost"], None);
    wsio::tls::acceptor(leaf.chain, leaf.key).unwrap()
}

/// A TLS terminator in front of `backend`: what makes tinyproxy an `https://` proxy. Each TLS
/// connection it accepts is forwarded, decrypted, to the backend.
async fn tls_terminator(tls: TlsAcceptor, backend: SocketAddr) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let tls = tls.clone();
            tokio::spawn(async move {
                let Ok(Ok(mut front)) =
                    tokio::time::timeout(Duration::from_secs(5), tls.accept(tcp)).await
                else {
                    return;
                };
                if let Ok(mut back) = TcpStream::connect(backend).await {
                    let _ = tokio::io::copy_bidirectional(&mut front, &mut back).await;
                }
            });
        }
    });
    port
}

async fn echo_once<S>(ws: &mut wsio::WebSocket<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    within("the echo", ws.send_text("through the proxy"))
        .await
        .unwrap();
    let reply = within("the echo", ws.recv()).await.unwrap().unwrap();
    assert_eq!(reply, Message::text("through the proxy"));
}

/// The request the server saw: no proxy credentials ever reach it.
async fn assert_no_proxy_credentials(echo: &mut Echo) {
    let headers = within("the server's request", echo.seen.recv())
        .await
        .expect("the server saw a request");
    assert!(!headers.contains_key(PROXY_AUTHORIZATION), "{headers:?}");
    assert!(!headers.contains_key(AUTHORIZATION), "{headers:?}");
}

fn proxy_error(result: wsio::Result<impl Sized>) -> Box<ProxyError> {
    match result {
        Err(Error::Proxy(e)) => {
            eprintln!("refusal: {}", Error::Proxy(e.clone()));
            e
        }
        Err(other) => panic!("expected a proxy error, got {other:?}"),
        Ok(_) => panic!("expected a proxy error, got a connection"),
    }
}

fn builder(ca: Option<&Ca>) -> ClientBuilder {
    let builder = ClientBuilder::new().connect_timeout(Duration::from_secs(5));
    match ca {
        Some(ca) => builder.add_root_certificate(ca.der()),
        None => builder,
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP CONNECT through tinyproxy

#[tokio::test]
async fn ws_through_an_http_proxy() {
    let mut echo = plain_echo().await;
    let proxy = tinyproxy(&[echo.port], None).await;
    let client = builder(None).proxy(format!("http://127.0.0.1:{}", proxy.port).parse().unwrap());
    let url = format!("ws://127.0.0.1:{}/", echo.port);
    let (mut ws, _) = within("connect", client.connect(&url)).await.unwrap();
    // The TCP connection is to the proxy, and the socket options apply to it.
    assert_eq!(ws.peer_addr().unwrap(), proxy.addr());
    assert!(matches!(ws.get_ref(), MaybeTlsStream::Plain(_)));
    assert!(ws.get_ref().tcp().nodelay().unwrap());
    echo_once(&mut ws).await;
    assert_no_proxy_credentials(&mut echo).await;
}

#[tokio::test]
async fn wss_through_an_http_proxy_verifies_the_server_inside_the_tunnel() {
    let ca = Ca::new("wsio proxy test CA");
    let mut echo = echo_server(Some(tls_for_localhost(&ca)), Acceptor::new()).await;
    let proxy = tinyproxy(&[echo.port], None).await;
    let client =
        builder(Some(&ca)).proxy(format!("http://127.0.0.1:{}", proxy.port).parse().unwrap());
    let url = format!("wss://localhost:{}/", echo.port);
    let (mut ws, _) = within("connect", client.connect(&url)).await.unwrap();
    assert!(matches!(ws.get_ref(), MaybeTlsStream::Rustls(_)));
    assert_eq!(ws.peer_addr().unwrap(), proxy.addr());
    assert_eq!(
        ws.tls_peer_certificates().unwrap().len(),
        2,
        "the server's chain"
    );
    echo_once(&mut ws).await;
    assert_no_proxy_credentials(&mut echo).await;

    // Without the CA the server's certificate fails inside the tunnel: a TLS error, not the
    // proxy's.
    let e = within(
        "connect",
        builder(None).proxy(proxy_url(&proxy)).connect(&url),
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Tls, "{e}");
}

fn proxy_url(proxy: &ProxyProcess) -> Proxy {
    Proxy::new(&format!("http://127.0.0.1:{}", proxy.port)).unwrap()
}

#[tokio::test]
async fn proxy_credentials_go_to_the_proxy_only_and_missing_or_wrong_ones_are_its_refusal() {
    let mut echo = plain_echo().await;
    let proxy = tinyproxy(&[echo.port], Some(("user", "pa55"))).await;
    let url = format!("ws://127.0.0.1:{}/", echo.port);
    let with = |credentials: &str| {
        let proxy = Proxy::new(&format!("http://{credentials}127.0.0.1:{}", proxy.port)).unwrap();
        builder(None).proxy(proxy)
    };

    let (mut ws, _) = within("connect", with("user:pa55@").connect(&url))
        .await
        .unwrap();
    echo_once(&mut ws).await;
    assert_no_proxy_credentials(&mut echo).await;

    // No credentials: 407. Wrong ones: tinyproxy 1.11.1 answers 401 (its own quirk; RFC 9110
    // says 407), which must still be the proxy's refusal, never taken for the server's 401.
    for (credentials, statuses) in [
        ("", &[StatusCode::PROXY_AUTHENTICATION_REQUIRED][..]),
        (
            "user:wrong@",
            &[
                StatusCode::PROXY_AUTHENTICATION_REQUIRED,
                StatusCode::UNAUTHORIZED,
            ][..],
        ),
    ] {
        let e = proxy_error(within("connect", with(credentials).connect(&url)).await);
        let status = e.status().expect("an HTTP status");
        assert!(statuses.contains(&status), "{credentials}: {status}");
        assert_eq!(e.failure(), &ProxyFailure::Refused(status));
        let user = if credentials.is_empty() { "" } else { "user@" };
        assert_eq!(e.proxy(), format!("http://{user}{}", proxy.addr()));
        assert_eq!(e.target(), format!("127.0.0.1:{}", echo.port));
        let text = Error::Proxy(e).to_string();
        assert!(text.contains("proxy"), "{text}");
        assert!(!text.contains("wrong"), "the password is not shown: {text}");
    }
    assert!(
        echo.seen.try_recv().is_err(),
        "refused CONNECTs never reach the server"
    );
}

#[tokio::test]
async fn a_port_the_proxy_does_not_allow_is_its_403() {
    let echo = plain_echo().await;
    let proxy = tinyproxy(&[echo.port.wrapping_add(1).max(1)], None).await;
    let url = format!("ws://127.0.0.1:{}/", echo.port);
    let e = proxy_error(
        within(
            "connect",
            builder(None).proxy(proxy_url(&proxy)).connect(&url),
        )
        .await,
    );
    assert_eq!(e.status(), Some(StatusCode::FORBIDDEN));
}

#[tokio::test]
async fn redirects_keep_the_proxy_credentials_on_each_connect() {
    let mut second = plain_echo().await;
    let location = format!("ws://127.0.0.1:{}/second", second.port);
    let first_acceptor = Acceptor::new().on_request(move |_| {
        Err(Reject::new(StatusCode::FOUND)
            .header(LOCATION, HeaderValue::try_from(location.as_str()).unwrap()))
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let first_port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = first_acceptor.clone();
            tokio::spawn(async move {
                let _ = acceptor.accept(tcp).await;
            });
        }
    });
    let proxy = tinyproxy(&[first_port, second.port], Some(("user", "pa55"))).await;
    let client = builder(None)
        .max_redirects(1)
        .proxy(Proxy::new(&format!("http://user:pa55@127.0.0.1:{}", proxy.port)).unwrap());
    let url = format!("ws://127.0.0.1:{first_port}/first");
    let (mut ws, _) = within("connect", client.connect(&url)).await.unwrap();
    echo_once(&mut ws).await;
    assert_no_proxy_credentials(&mut second).await;
}

// ---------------------------------------------------------------------------------------------
// An https:// proxy: tinyproxy behind a TLS terminator

#[tokio::test]
async fn ws_and_wss_through_an_https_proxy() {
    let ca = Ca::new("wsio proxy test CA");
    let mut plain = plain_echo().await;
    let mut secure = echo_server(Some(tls_for_localhost(&ca)), Acceptor::new()).await;
    let tiny = tinyproxy(&[plain.port, secure.port], Some(("user", "pa55"))).await;
    let front = tls_terminator(tls_for_localhost(&ca), tiny.addr()).await;
    let proxy = Proxy::new(&format!("https://user:pa55@localhost:{front}")).unwrap();
    let client = builder(Some(&ca)).proxy(proxy.clone());

    let url = format!("ws://127.0.0.1:{}/", plain.port);
    let (mut ws, _) = within("connect ws", client.connect(&url)).await.unwrap();
    assert!(matches!(ws.get_ref(), MaybeTlsStream::ProxyTls(_)));
    assert!(
        !ws.get_ref().is_tls(),
        "TLS to the proxy is not TLS with the server"
    );
    assert_eq!(ws.tls_peer_certificates(), None);
    echo_once(&mut ws).await;
    assert_no_proxy_credentials(&mut plain).await;

    let url = format!("wss://localhost:{}/", secure.port);
    let (mut ws, _) = within("connect wss", client.connect(&url)).await.unwrap();
    assert!(matches!(ws.get_ref(), MaybeTlsStream::ProxyTlsRustls(_)));
    assert!(ws.get_ref().is_tls());
    assert!(ws.tls_protocol_version().is_some());
    echo_once(&mut ws).await;
    assert_no_proxy_credentials(&mut secure).await;

    // The proxy's certificate is verified too: without the CA, TLS to the proxy fails.
    let e = within("connect", builder(None).proxy(proxy).connect(&url))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Tls, "{e}");
    eprintln!("https proxy without its CA: {e}");
}

// ---------------------------------------------------------------------------------------------
// SOCKS5 through microsocks

#[tokio::test]
async fn ws_and_wss_through_socks5() {
    let ca = Ca::new("wsio proxy test CA");
    let plain = plain_echo().await;
    let secure = echo_server(Some(tls_for_localhost(&ca)), Acceptor::new()).await;
    let socks = microsocks(None).await;
    for scheme in ["socks5", "socks5h"] {
        let proxy = Proxy::new(&format!("{scheme}://127.0.0.1:{}", socks.port)).unwrap();
        let client = builder(Some(&ca)).proxy(proxy);
        // socks5h: the proxy resolves `localhost`; socks5: the client does.
        let url = format!("ws://localhost:{}/", plain.port);
        let (mut ws, _) = within("connect ws", client.connect(&url)).await.unwrap();
        assert_eq!(ws.peer_addr().unwrap(), socks.addr());
        echo_once(&mut ws).await;
        let url = format!("wss://localhost:{}/", secure.port);
        let (mut ws, _) = within("connect wss", client.connect(&url)).await.unwrap();
        assert!(ws.get_ref().is_tls());
        echo_once(&mut ws).await;
    }
}

#[tokio::test]
async fn socks5_username_and_password_and_its_refusals() {
    let echo = plain_echo().await;
    let socks = microsocks(Some(("user", "pa55"))).await;
    let url = format!("ws://127.0.0.1:{}/", echo.port);
    let with = |credentials: &str| {
        let proxy = Proxy::new(&format!("socks5://{credentials}127.0.0.1:{}", socks.port));
        builder(None).proxy(proxy.unwrap())
    };
    let (mut ws, _) = within("connect", with("user:pa55@").connect(&url))
        .await
        .unwrap();
    echo_once(&mut ws).await;

    let e = proxy_error(within("connect", with("user:wrong@").connect(&url)).await);
    assert!(
        matches!(e.failure(), ProxyFailure::SocksAuthFailed(_)),
        "{e:?}"
    );
    let e = proxy_error(within("connect", with("").connect(&url)).await);
    assert_eq!(e.failure(), &ProxyFailure::SocksNoAcceptableMethod);

    // A port nothing listens on: the proxy's reply code (5, connection refused).
    let closed = free_port().await;
    let url = format!("ws://127.0.0.1:{closed}/");
    let e = proxy_error(within("connect", with("user:pa55@").connect(&url)).await);
    assert_eq!(e.socks_reply(), Some(5));
    assert_eq!(e.failure(), &ProxyFailure::SocksRefused(5));
}

// ---------------------------------------------------------------------------------------------
// Proxies that misbehave, the environment

#[tokio::test]
async fn a_proxy_that_never_answers_is_the_connect_timeout() {
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let (hold, mut held) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = silent.accept().await {
            let _ = hold.send(tcp); // accepted, never answered
        }
    });
    for scheme in ["http", "socks5h"] {
        let client = ClientBuilder::new()
            .connect_timeout(Duration::from_millis(300))
            .proxy(Proxy::new(&format!("{scheme}://127.0.0.1:{port}")).unwrap());
        let e = within(
            "the connect timeout",
            client.connect("ws://example.invalid/"),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(e, Error::Timeout(Timeout::Connect)),
            "{scheme}: {e:?}"
        );
        eprintln!("{scheme} proxy that never answers: {e}");
        assert!(held.recv().await.is_some(), "the proxy was reached");
    }
}

#[tokio::test]
async fn an_endless_answer_header_fails_without_growing() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = [0; 1024];
                let _ = tcp.read(&mut request).await;
                let _ = tcp
                    .write_all(b"HTTP/1.1 200 Connection established\r\nX-Pad: ")
                    .await;
                // One header line that never ends, until the client hangs up (at most 1 MiB).
                for _ in 0..(1 << 20) / 1024 {
                    if tcp.write_all(&[b'a'; 1024]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let client = builder(None).proxy(Proxy::new(&format!("http://127.0.0.1:{port}")).unwrap());
    let e = proxy_error(within("connect", client.connect("ws://127.0.0.1:9/")).await);
    assert_eq!(
        e.failure(),
        &ProxyFailure::Malformed("the answer's header is longer than 16 KiB")
    );
}

#[tokio::test]
async fn the_environment_chooses_the_proxy_and_no_proxy_goes_around_it() {
    let echo = plain_echo().await;
    let proxy = tinyproxy(&[echo.port], None).await;
    let url = format!("ws://127.0.0.1:{}/", echo.port);
    let proxied = ProxyEnv::from_vars([("http_proxy", format!("127.0.0.1:{}", proxy.port))]);
    let (mut ws, _) = within("connect", builder(None).proxy_env(proxied).connect(&url))
        .await
        .unwrap();
    assert_eq!(ws.peer_addr().unwrap(), proxy.addr());
    echo_once(&mut ws).await;

    let around = ProxyEnv::from_vars([
        ("HTTP_PROXY", format!("http://127.0.0.1:{}", proxy.port)),
        ("NO_PROXY", "example.com,127.0.0.0/8".to_owned()),
    ]);
    let (mut ws, _) = within("connect", builder(None).proxy_env(around).connect(&url))
        .await
        .unwrap();
    assert_eq!(
        ws.peer_addr().unwrap().port(),
        echo.port,
        "directly to the server"
    );
    echo_once(&mut ws).await;

    // no_proxy() undoes a proxy.
    let direct = builder(None).proxy(proxy_url(&proxy)).no_proxy();
    let (ws, _) = within("connect", direct.connect(&url)).await.unwrap();
    assert_eq!(ws.peer_addr().unwrap().port(), echo.port);
}
