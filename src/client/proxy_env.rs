//! [`ProxyEnv`]: the proxies the environment names (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`,
//! `NO_PROXY`), chosen as curl chooses them, as a pure function of the variables.

use std::collections::HashMap;
use std::net::IpAddr;

use super::proxy::Proxy;
use super::url::{IntoClientRequest, Target};
use crate::error::{Error, Result};

/// The proxies the environment asks for, read once by [`from_env`](Self::from_env) (or from any
/// set of variables by [`from_vars`](Self::from_vars)) and used by
/// [`ClientBuilder::proxy_env`](super::ClientBuilder::proxy_env), as curl uses them:
///
/// - `wss://` goes through `https_proxy` (or `HTTPS_PROXY`), `ws://` through `http_proxy` (or
///   `HTTP_PROXY`); either falls back to `all_proxy` (or `ALL_PROXY`). The lower-case name wins
///   when both are set; an empty value counts as unset. `HTTP_PROXY` in upper case is ignored
///   when `REQUEST_METHOD` is set: in a CGI program it comes from the request's `Proxy` header
///   ("httpoxy"), as curl and Go ignore it too.
/// - A value is a [`Proxy`] URL; without a scheme it is an `http://` proxy. A value that is not
///   a usable proxy URL fails the connections it would serve with [`Error::InvalidUrl`] (before
///   any I/O), rather than letting them go around the proxy.
/// - `no_proxy` (or `NO_PROXY`) lists the servers reached directly, separated by commas (or
///   spaces): `*` for all; a domain name, which covers its subdomains too (`example.com` and
///   `.example.com` both cover `example.com` and `www.example.com`, not `badexample.com`); an IP
///   address or a CIDR block (`10.0.0.0/8`, `::1`, `[::1]`), which covers URLs with an IP
///   address in it (names are not resolved to check); each may end with `:port` to cover
///   that port only. Case is ignored, and so is a trailing dot.
///
/// ```
/// use wsio::client::ProxyEnv;
///
/// let env = ProxyEnv::from_vars([
///     ("https_proxy", "http://proxy.corp:3128"),
///     ("NO_PROXY", "localhost,127.0.0.0/8,.internal"),
/// ]);
/// assert_eq!(env.proxy_for("wss://example.com/")?.unwrap().to_string(), "http://proxy.corp:3128");
/// assert!(env.proxy_for("wss://api.internal/")?.is_none());
/// assert!(env.proxy_for("ws://example.com/")?.is_none()); // no http_proxy, no all_proxy
/// # Ok::<_, wsio::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct ProxyEnv {
    ws: Option<Choice>,
    wss: Option<Choice>,
    no_proxy: NoProxy,
}

/// A proxy variable's value.
#[derive(Debug, Clone)]
enum Choice {
    Proxy(Proxy),
    /// Not a usable proxy URL: the variable and what is wrong.
    Invalid(String),
}

impl ProxyEnv {
    /// Reads the process's environment now (variables that are not UTF-8 are skipped). Later
    /// changes to the environment are not seen.
    pub fn from_env() -> ProxyEnv {
        ProxyEnv::from_vars(std::env::vars_os().filter_map(|(name, value)| {
            Some((name.into_string().ok()?, value.into_string().ok()?))
        }))
    }

    /// Reads these variables as if they were the environment: a pure function, for tests and for
    /// programs that keep their settings elsewhere.
    pub fn from_vars<I, K, V>(vars: I) -> ProxyEnv
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let vars: HashMap<String, String> = vars
            .into_iter()
            .map(|(k, v)| (k.as_ref().to_owned(), v.as_ref().trim().to_owned()))
            .filter(|(_, v)| !v.is_empty())
            .collect();
        let cgi = vars.contains_key("REQUEST_METHOD");
        let pick = |names: &[&str]| {
            names.iter().find_map(|&name| {
                if cgi && name == "HTTP_PROXY" {
                    return None;
                }
                let value = vars.get(name)?;
                Some(match Proxy::new(value) {
                    Ok(proxy) => Choice::Proxy(proxy),
                    Err(e) => Choice::Invalid(format!("{name}: {e}")),
                })
            })
        };
        ProxyEnv {
            ws: pick(&["http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"]),
            wss: pick(&["https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"]),
            no_proxy: NoProxy::parse(
                ["no_proxy", "NO_PROXY"]
                    .iter()
                    .find_map(|name| vars.get(*name))
                    .map_or("", String::as_str),
            ),
        }
    }

    /// The proxy a connection to `url` goes through, or `None` to connect directly.
    ///
    /// # Errors
    /// [`Error::InvalidUrl`]: `url` is not a WebSocket URL, or the variable that names its
    /// proxy is not a usable proxy URL.
    pub fn proxy_for(&self, url: impl IntoClientRequest) -> Result<Option<&Proxy>> {
        let request = url.into_client_request()?;
        self.for_target(&Target::of(request.uri())?)
    }

    pub(super) fn for_target(&self, target: &Target) -> Result<Option<&Proxy>> {
        let choice = if target.scheme.is_secure() {
            &self.wss
        } else {
            &self.ws
        };
        match choice {
            None => Ok(None),
            Some(_) if self.no_proxy.covers(&target.host, target.port) => Ok(None),
            Some(Choice::Proxy(proxy)) => Ok(Some(proxy)),
            Some(Choice::Invalid(why)) => Err(Error::InvalidUrl(why.clone())),
        }
    }
}

/// The servers `NO_PROXY` sends directly.
#[derive(Debug, Clone, Default)]
struct NoProxy {
    all: bool,
    entries: Vec<Entry>,
}

#[derive(Debug, Clone, PartialEq)]
enum Entry {
    /// A domain name and its subdomains, lower case, without leading or trailing dots.
    Domain { name: String, port: Option<u16> },
    /// The addresses whose first `prefix` bits are those of `net`.
    Net {
        net: IpAddr,
        prefix: u8,
        port: Option<u16>,
    },
}

impl NoProxy {
    fn parse(list: &str) -> NoProxy {
        let mut no_proxy = NoProxy::default();
        for token in list.split(|c: char| c == ',' || c.is_whitespace()) {
            if token.is_empty() {
                continue;
            }
            if token == "*" {
                no_proxy.all = true;
            } else if let Some(entry) = Entry::parse(token) {
                no_proxy.entries.push(entry);
            }
        }
        no_proxy
    }

    /// Whether `host` (a name or an IP address without brackets) at `port` is reached directly.
    fn covers(&self, host: &str, port: u16) -> bool {
        if self.all {
            return true;
        }
        let ip = host.parse::<IpAddr>().ok();
        let name = host.trim_end_matches('.').to_ascii_lowercase();
        self.entries.iter().any(|entry| match entry {
            Entry::Domain {
                name: domain,
                port: p,
            } => {
                p.is_none_or(|p| p == port)
                    && ip.is_none()
                    && (name == *domain
                        || name
                            .strip_suffix(domain.as_str())
                            .is_some_and(|rest| rest.ends_with('.')))
            }
            Entry::Net {
                net,
                prefix,
                port: p,
            } => p.is_none_or(|p| p == port) && ip.is_some_and(|ip| in_net(ip, *net, *prefix)),
        })
    }
}

impl Entry {
    /// One `NO_PROXY` entry; `None` for one that cannot cover anything (ignored, as curl does).
    fn parse(token: &str) -> Option<Entry> {
        // `[v6]` or `[v6]:port`.
        if let Some(rest) = token.strip_prefix('[') {
            let (addr, after) = rest.split_once(']')?;
            let port = match after.strip_prefix(':') {
                Some(port) => Some(port.parse().ok()?),
                None if after.is_empty() => None,
                // `[v6]/prefix`
                None if after.starts_with('/') => {
                    return Entry::net(&format!("{addr}{after}"), None)
                }
                None => return None,
            };
            return Entry::net(addr, port);
        }
        // A bare IPv6 address (or block) has colons but no port.
        if token.parse::<IpAddr>().is_ok() || token.matches(':').count() > 1 {
            return Entry::net(token, None);
        }
        let (host, port) = match token.rsplit_once(':') {
            Some((host, port)) => (host, Some(port.parse().ok()?)),
            None => (token, None),
        };
        if host.contains('/') || host.parse::<IpAddr>().is_ok() {
            return Entry::net(host, port);
        }
        let name = host
            .trim_start_matches("*.")
            .trim_start_matches('.')
            .trim_end_matches('.')
            .to_ascii_lowercase();
        (!name.is_empty()).then_some(Entry::Domain { name, port })
    }

    /// An address, or a block `address/prefix`.
    fn net(text: &str, port: Option<u16>) -> Option<Entry> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix.parse::<u8>().ok()?)),
            None => (text, None),
        };
        let net: IpAddr = addr.parse().ok()?;
        let bits = if net.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(bits);
        (prefix <= bits).then_some(Entry::Net { net, prefix, port })
    }
}

/// Whether the first `prefix` bits of `ip` are those of `net` (of the same family).
fn in_net(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    let (ip, net, bits) = match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            (u128::from(u32::from(ip)), u128::from(u32::from(net)), 32)
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => (u128::from(ip), u128::from(net), 128),
        _ => return false,
    };
    let shift = bits - u32::from(prefix);
    shift >= bits || ip >> shift == net >> shift
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn proxy_of(env: &ProxyEnv, url: &str) -> Option<String> {
        env.proxy_for(url).unwrap().map(ToString::to_string)
    }

    #[test]
    fn each_scheme_has_its_variable_and_all_proxy_is_the_fallback() {
        let env = ProxyEnv::from_vars([
            ("http_proxy", "http://plain:1"),
            ("HTTPS_PROXY", "https://secure:2"),
            ("ALL_PROXY", "socks5h://all:3"),
        ]);
        assert_eq!(proxy_of(&env, "ws://h/").as_deref(), Some("http://plain:1"));
        assert_eq!(
            proxy_of(&env, "wss://h/").as_deref(),
            Some("https://secure:2")
        );
        let env = ProxyEnv::from_vars([("all_proxy", "socks5://all:3")]);
        assert_eq!(proxy_of(&env, "ws://h/").as_deref(), Some("socks5://all:3"));
        assert_eq!(
            proxy_of(&env, "https://h/").as_deref(),
            Some("socks5://all:3")
        );
        let env = ProxyEnv::from_vars(Vec::<(String, String)>::new());
        assert_eq!(proxy_of(&env, "ws://h/"), None);
        assert_eq!(proxy_of(&env, "wss://h/"), None);
    }

    #[test]
    fn lower_case_wins_empty_is_unset_and_cgi_ignores_upper_case_http_proxy() {
        let env = ProxyEnv::from_vars([
            ("https_proxy", "lower:1"),
            ("HTTPS_PROXY", "upper:2"),
            ("http_proxy", ""),
            ("HTTP_PROXY", "upper:3"),
        ]);
        assert_eq!(
            proxy_of(&env, "wss://h/").as_deref(),
            Some("http://lower:1")
        );
        assert_eq!(proxy_of(&env, "ws://h/").as_deref(), Some("http://upper:3"));
        let cgi = ProxyEnv::from_vars([("HTTP_PROXY", "evil:80"), ("REQUEST_METHOD", "GET")]);
        assert_eq!(proxy_of(&cgi, "ws://h/"), None);
        let cgi = ProxyEnv::from_vars([("http_proxy", "good:80"), ("REQUEST_METHOD", "GET")]);
        assert_eq!(proxy_of(&cgi, "ws://h/").as_deref(), Some("http://good:80"));
    }

    #[test]
    fn a_bad_proxy_variable_fails_its_connections_instead_of_bypassing_the_proxy() {
        let env = ProxyEnv::from_vars([
            ("https_proxy", "ftp://u:secret@proxy"),
            ("no_proxy", "direct.example"),
        ]);
        let e = env.proxy_for("wss://h/").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidUrl);
        assert!(e.to_string().contains("https_proxy"), "{e}");
        assert!(!e.to_string().contains("secret"), "{e}");
        assert_eq!(proxy_of(&env, "ws://h/"), None);
        assert_eq!(proxy_of(&env, "wss://direct.example/"), None);
        assert_eq!(
            env.proxy_for("ftp://h/").unwrap_err().kind(),
            ErrorKind::InvalidUrl
        );
    }

    #[test]
    fn no_proxy_covers_domains_with_their_subdomains() {
        let env = ProxyEnv::from_vars([
            ("all_proxy", "http://p:1"),
            ("no_proxy", " example.com, .Internal.,*.corp.net localhost"),
        ]);
        for direct in [
            "ws://example.com/",
            "ws://www.EXAMPLE.com./",
            "wss://a.b.example.com:8443/",
            "ws://internal/",
            "ws://api.internal/",
            "ws://x.corp.net/",
            "ws://corp.net/",
            "ws://localhost:9000/",
        ] {
            assert_eq!(proxy_of(&env, direct), None, "{direct}");
        }
        for proxied in [
            "ws://badexample.com/",
            "ws://example.com.evil/",
            "ws://ample.com/",
            "ws://127.0.0.1/",
            "ws://localhost.evil/",
        ] {
            assert!(proxy_of(&env, proxied).is_some(), "{proxied}");
        }
    }

    #[test]
    fn no_proxy_covers_ip_addresses_blocks_and_ports() {
        let env = ProxyEnv::from_vars([
            ("all_proxy", "http://p:1"),
            (
                "NO_PROXY",
                "10.0.0.0/8,192.168.1.7,::1,[fd00::]/8,[2001:db8::5]:443,svc.local:8080,bad/99,:x",
            ),
        ]);
        for direct in [
            "ws://10.1.2.3/",
            "ws://192.168.1.7:9/",
            "ws://[::1]:9/",
            "ws://[fd12::1]/",
            "wss://[2001:db8::5]/",
            "ws://svc.local:8080/",
            "ws://a.svc.local:8080/",
        ] {
            assert_eq!(proxy_of(&env, direct), None, "{direct}");
        }
        for proxied in [
            "ws://11.0.0.1/",
            "ws://192.168.1.8/",
            "ws://[::2]/",
            "ws://[2001:db8::5]:80/",
            "ws://svc.local/",
            "ws://svc.local:8081/",
        ] {
            assert!(proxy_of(&env, proxied).is_some(), "{proxied}");
        }
        let all = ProxyEnv::from_vars([("https_proxy", "p:1"), ("no_proxy", "a.example,*")]);
        assert_eq!(proxy_of(&all, "wss://anything/"), None);
        let zero = ProxyEnv::from_vars([("https_proxy", "p:1"), ("no_proxy", "0.0.0.0/0")]);
        assert_eq!(proxy_of(&zero, "wss://1.2.3.4/"), None);
        assert!(proxy_of(&zero, "wss://[::1]/").is_some());
    }
}
