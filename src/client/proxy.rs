//! [`Proxy`]: one proxy server that a client's connections go through, read from its URL.

use std::fmt;
use std::str::FromStr;

use url::Url;

use super::url::percent_decode;
use crate::error::{Error, Result};

/// A proxy server for [`ClientBuilder::proxy`](super::ClientBuilder::proxy), named by its URL:
///
/// | URL | what the client does |
/// | --- | --- |
/// | `http://[user:password@]host[:port]` | HTTP `CONNECT host:port` to the server (default port 80) |
/// | `https://[user:password@]host[:port]` | the same inside TLS to the proxy (default port 443) |
/// | `socks5://[user:password@]host[:port]` | SOCKS5 (RFC 1928), the server's name resolved here (default port 1080) |
/// | `socks5h://[user:password@]host[:port]` | SOCKS5, the server's name resolved by the proxy |
///
/// A URL without a scheme (`proxy.example:3128`) is an `http://` proxy, as in curl. Credentials
/// in the user info (percent-decoded) go to the proxy only, never to the server: as
/// `Proxy-Authorization: Basic` on the `CONNECT` of an HTTP proxy, as the username/password
/// method (RFC 1929) of a SOCKS5 proxy. [`Display`](fmt::Display) and [`Debug`] leave the
/// password out.
///
/// ```
/// let proxy: wsio::client::Proxy = "http://user:secret@proxy.example:3128".parse()?;
/// assert_eq!(proxy.to_string(), "http://user@proxy.example:3128");
/// # Ok::<_, wsio::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Proxy {
    pub(super) kind: ProxyKind,
    /// A DNS name or an IP address, without the brackets of an IPv6 literal.
    pub(super) host: String,
    pub(super) port: u16,
    pub(super) credentials: Option<ProxyCredentials>,
}

/// The protocol spoken to a proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ProxyKind {
    /// HTTP `CONNECT` over TCP.
    Http,
    /// HTTP `CONNECT` over TLS to the proxy.
    Https,
    /// SOCKS5, the server's name resolved by the client.
    Socks5,
    /// SOCKS5, the server's name sent to the proxy.
    Socks5h,
}

impl ProxyKind {
    fn scheme(self) -> &'static str {
        match self {
            ProxyKind::Http => "http",
            ProxyKind::Https => "https",
            ProxyKind::Socks5 => "socks5",
            ProxyKind::Socks5h => "socks5h",
        }
    }
}

/// A username and password for a proxy, decoded.
#[derive(Clone, PartialEq, Eq)]
pub(super) struct ProxyCredentials {
    pub(super) user: Vec<u8>,
    pub(super) password: Vec<u8>,
}

impl ProxyCredentials {
    /// `user:password`, ready for `Proxy-Authorization: Basic`.
    pub(super) fn basic(&self) -> Vec<u8> {
        let mut joined = self.user.clone();
        joined.push(b':');
        joined.extend_from_slice(&self.password);
        joined
    }
}

impl Proxy {
    /// Reads a proxy URL (see the [table](Proxy) above).
    ///
    /// # Errors
    /// [`Error::InvalidUrl`]: a scheme other than `http`, `https`, `socks5`, `socks5h`; no host;
    /// port 0; for SOCKS5, a username or password longer than 255 bytes (RFC 1929).
    pub fn new(url: &str) -> Result<Proxy> {
        let bad = |why: &str| Error::InvalidUrl(format!("proxy {}: {why}", redact(url)));
        let text = url.trim();
        let with_scheme;
        let text = if text.contains("://") {
            text
        } else {
            with_scheme = format!("http://{text}");
            &with_scheme
        };
        let parsed = Url::parse(text).map_err(|e| bad(&e.to_string()))?;
        let kind = match parsed.scheme() {
            "http" => ProxyKind::Http,
            "https" => ProxyKind::Https,
            "socks5" => ProxyKind::Socks5,
            "socks5h" => ProxyKind::Socks5h,
            other => {
                return Err(bad(&format!(
                    "scheme {other} is not http, https, socks5 or socks5h"
                )))
            }
        };
        let host = parsed
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("no host"))?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = match parsed.port() {
            Some(0) => return Err(bad("port 0")),
            Some(port) => port,
            None => match kind {
                ProxyKind::Http => 80,
                ProxyKind::Https => 443,
                ProxyKind::Socks5 | ProxyKind::Socks5h => 1080,
            },
        };
        let proxy = Proxy {
            kind,
            host,
            port,
            credentials: None,
        };
        if parsed.username().is_empty() && parsed.password().is_none() {
            return Ok(proxy);
        }
        let user = percent_decode(parsed.username());
        let password = percent_decode(parsed.password().unwrap_or(""));
        proxy
            .credentials(user, password)
            .map_err(|_| bad("a SOCKS5 username must have 1 to 255 bytes, a password at most 255"))
    }

    /// The same proxy with these credentials (replacing any from the URL).
    ///
    /// # Errors
    /// [`Error::InvalidUrl`] for a SOCKS5 proxy when the username is empty or longer than 255
    /// bytes, or the password is longer than 255 bytes (RFC 1929).
    pub fn credentials(
        mut self,
        user: impl Into<Vec<u8>>,
        password: impl Into<Vec<u8>>,
    ) -> Result<Proxy> {
        let (user, password) = (user.into(), password.into());
        if self.is_socks() && (user.is_empty() || user.len() > 255 || password.len() > 255) {
            return Err(Error::InvalidUrl(format!(
                "proxy {self}: a SOCKS5 username must have 1 to 255 bytes, a password at most 255"
            )));
        }
        self.credentials = Some(ProxyCredentials { user, password });
        Ok(self)
    }

    /// `true` for `socks5://` and `socks5h://` proxies.
    pub(super) fn is_socks(&self) -> bool {
        matches!(self.kind, ProxyKind::Socks5 | ProxyKind::Socks5h)
    }
}

impl FromStr for Proxy {
    type Err = Error;

    fn from_str(url: &str) -> Result<Proxy> {
        Proxy::new(url)
    }
}

impl TryFrom<&str> for Proxy {
    type Error = Error;

    fn try_from(url: &str) -> Result<Proxy> {
        Proxy::new(url)
    }
}

/// The proxy's URL, with the username but never the password.
impl fmt::Display for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://", self.kind.scheme())?;
        if let Some(credentials) = &self.credentials {
            write!(f, "{}@", String::from_utf8_lossy(&credentials.user))?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Proxy").field(&self.to_string()).finish()
    }
}

/// `url` with the password of its user info (if any) replaced, for error messages.
pub(super) fn redact(url: &str) -> String {
    let Some((before, after)) = url.rsplit_once('@') else {
        return url.to_owned();
    };
    match before.split_once("://") {
        Some((scheme, userinfo)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
            format!("{scheme}://{user}:***@{after}")
        }
        None => {
            let user = before.split_once(':').map_or(before, |(user, _)| user);
            format!("{user}:***@{after}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn proxy_urls_name_the_protocol_host_port_and_credentials() {
        let p = Proxy::new("http://al%20ice:p%40ss@proxy.example:3128").unwrap();
        assert_eq!(p.kind, ProxyKind::Http);
        assert_eq!((p.host.as_str(), p.port), ("proxy.example", 3128));
        let c = p.credentials.as_ref().unwrap();
        assert_eq!(c.basic(), b"al ice:p@ss");
        assert_eq!(p.to_string(), "http://al ice@proxy.example:3128");
        assert!(!format!("{p:?}").contains("p@ss"));

        for (url, kind, host, port) in [
            ("proxy:3128", ProxyKind::Http, "proxy", 3128),
            ("http://proxy", ProxyKind::Http, "proxy", 80),
            ("https://proxy", ProxyKind::Https, "proxy", 443),
            ("HTTPS://proxy:8443/", ProxyKind::Https, "proxy", 8443),
            ("socks5://127.0.0.1", ProxyKind::Socks5, "127.0.0.1", 1080),
            ("socks5h://[::1]:9050", ProxyKind::Socks5h, "::1", 9050),
        ] {
            let p = Proxy::new(url).unwrap();
            assert_eq!(
                (p.kind, p.host.as_str(), p.port),
                (kind, host, port),
                "{url}"
            );
            assert!(p.credentials.is_none());
        }
        assert_eq!(
            Proxy::new("socks5h://[::1]:9050").unwrap().to_string(),
            "socks5h://[::1]:9050"
        );
        let p: Proxy = "socks5://u:@h".parse().unwrap();
        assert_eq!(p.credentials.unwrap().password, b"");
    }

    #[test]
    fn bad_proxy_urls_fail_before_any_io_without_showing_the_password() {
        let long = "x".repeat(256);
        for bad in [
            "ftp://proxy:21".to_owned(),
            "socks4://proxy".to_owned(),
            "http://:3128".to_owned(),
            "http://proxy:0".to_owned(),
            "http://proxy:99999".to_owned(),
            format!("socks5://{long}:pw@proxy"),
            format!("socks5://user:{long}@proxy"),
            "socks5://:secret@proxy".to_owned(),
        ] {
            let e = Proxy::new(&bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidUrl, "{bad}: {e}");
            assert!(!e.to_string().contains("secret"), "{e}");
        }
        // HTTP proxies take any length (Basic has no limit).
        assert!(Proxy::new(&format!("http://{long}:pw@proxy")).is_ok());
        assert_eq!(redact("http://u:secret@h:1"), "http://u:***@h:1");
        assert_eq!(redact("u:secret@h:1"), "u:***@h:1");
        assert_eq!(redact("http://h:1"), "http://h:1");
    }
}
