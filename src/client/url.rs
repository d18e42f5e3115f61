//! What a client URL names: the request to send ([`IntoClientRequest`]), the scheme, host and
//! port to connect to ([`Target`]), and the credentials in its user info.

use http::{Request, Uri};

use crate::error::{Error, Result};
use crate::handshake::Scheme;

/// What can name the target of a client connection: a URL string, an [`http::Uri`], or a full
/// [`http::Request`] whose headers are sent as they are.
pub trait IntoClientRequest {
    /// Converts into a request (method GET, HTTP/1.1, no body).
    fn into_client_request(self) -> Result<Request<()>>;
}

impl IntoClientRequest for &str {
    fn into_client_request(self) -> Result<Request<()>> {
        let uri: Uri = self
            .parse()
            .map_err(|e| Error::InvalidUrl(format!("{self}: {e}")))?;
        uri.into_client_request()
    }
}

impl IntoClientRequest for String {
    fn into_client_request(self) -> Result<Request<()>> {
        self.as_str().into_client_request()
    }
}

impl IntoClientRequest for &String {
    fn into_client_request(self) -> Result<Request<()>> {
        self.as_str().into_client_request()
    }
}

impl IntoClientRequest for Uri {
    fn into_client_request(self) -> Result<Request<()>> {
        let mut request = Request::new(());
        *request.uri_mut() = self;
        Ok(request)
    }
}

impl IntoClientRequest for Request<()> {
    fn into_client_request(self) -> Result<Request<()>> {
        Ok(self)
    }
}

/// The scheme, host and port a `ws://` or `wss://` URI points to, checked before any I/O.
#[derive(Debug, Clone)]
pub(super) struct Target {
    pub(super) scheme: Scheme,
    /// A DNS name or an IP address, without the brackets of an IPv6 literal.
    pub(super) host: String,
    pub(super) port: u16,
}

impl Target {
    /// Reads the target of `uri`.
    ///
    /// # Errors
    /// [`Error::InvalidUrl`]: no scheme or one other than `ws`, `wss`, `http`, `https`; no
    /// host; port 0 or out of range.
    pub(super) fn of(uri: &Uri) -> Result<Target> {
        let scheme = match uri.scheme_str() {
            Some(name) => Scheme::parse(name).ok_or_else(|| {
                Error::InvalidUrl(format!("{uri}: scheme {name} is not ws or wss"))
            })?,
            None => {
                return Err(Error::InvalidUrl(format!(
                    "{uri}: no scheme (expected ws:// or wss://)"
                )))
            }
        };
        let host = uri
            .host()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| Error::InvalidUrl(format!("{uri}: no host")))?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = match port_text(uri) {
            None | Some("") => scheme.default_port(),
            Some(text) => match text.parse::<u16>() {
                Ok(port) if port != 0 => port,
                _ => return Err(Error::InvalidUrl(format!("{uri}: bad port {text}"))),
            },
        };
        Ok(Target { scheme, host, port })
    }

    /// Whether `other` has the same host (ASCII case ignored) and port: what decides whether
    /// credentials may follow a redirect.
    pub(super) fn same_origin(&self, other: &Target) -> bool {
        self.host.eq_ignore_ascii_case(&other.host) && self.port == other.port
    }
}

/// The port as written in the URI's authority, if any: `http` accepts and hides ports that do
/// not fit in 16 bits, which must not silently become the default port.
fn port_text(uri: &Uri) -> Option<&str> {
    let authority = uri.authority()?.as_str();
    let host_port = authority
        .rsplit_once('@')
        .map_or(authority, |(_, rest)| rest);
    let after_host = match host_port.strip_prefix('[') {
        Some(bracketed) => bracketed.split_once(']')?.1,
        None => host_port.find(':').map_or("", |colon| &host_port[colon..]),
    };
    after_host.strip_prefix(':')
}

/// Splits the user info off `uri`: the URI without it, and `user:password` percent-decoded,
/// ready for `Authorization: Basic`.
pub(super) fn split_userinfo(uri: &Uri) -> Result<(Uri, Option<Vec<u8>>)> {
    let Some((userinfo, host_port)) = uri
        .authority()
        .and_then(|authority| authority.as_str().rsplit_once('@'))
    else {
        return Ok((uri.clone(), None));
    };
    let bad = |what: &str| Error::InvalidUrl(format!("{uri}: {what}"));
    let mut parts = uri.clone().into_parts();
    parts.authority = Some(host_port.parse().map_err(|_| bad("invalid host"))?);
    let stripped = Uri::from_parts(parts).map_err(|_| bad("invalid URI"))?;
    if userinfo.is_empty() {
        return Ok((stripped, None));
    }
    let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
    let mut credentials = percent_decode(user);
    credentials.push(b':');
    credentials.extend(percent_decode(password));
    Ok((stripped, Some(credentials)))
}

/// Decodes `%XX` escapes; a `%` not followed by two hex digits stays as it is.
pub(super) fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match bytes.get(i + 1..i + 3) {
            Some(&[hi, lo]) if bytes[i] == b'%' => hex(hi).zip(hex(lo)),
            _ => None,
        };
        match escaped {
            Some((hi, lo)) => {
                out.push(hi << 4 | lo);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    out
}

fn hex(digit: u8) -> Option<u8> {
    char::from(digit)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn uri(text: &str) -> Uri {
        text.parse().unwrap()
    }

    #[test]
    fn targets_are_checked_before_any_io() {
        let t = Target::of(&uri("ws://example.com/chat")).unwrap();
        assert_eq!(
            (t.scheme, t.host.as_str(), t.port),
            (Scheme::Ws, "example.com", 80)
        );
        let t = Target::of(&uri("wss://[::1]:8443/")).unwrap();
        assert_eq!(
            (t.scheme, t.host.as_str(), t.port),
            (Scheme::Wss, "::1", 8443)
        );
        let t = Target::of(&uri("HTTPS://example.com")).unwrap();
        assert_eq!((t.scheme, t.port), (Scheme::Wss, 443));
        let t = Target::of(&uri("ws://h:/")).unwrap();
        assert_eq!(t.port, 80);
        for bad in ["ftp://example.com/", "/just/a/path", "ws://example.com:0/"] {
            let e = Target::of(&uri(bad)).err().unwrap();
            assert_eq!(e.kind(), ErrorKind::InvalidUrl, "{bad}: {e}");
        }
        // What `connect` checks first: parsing, then the target.
        for bad in [
            "ws://example.com:99999/",
            "ws://exa mple.com/",
            "ws://host:port/",
            "",
            "ws://",
            "ws:///path",
            "example.com",
            "wss://user@/",
        ] {
            let checked = bad
                .into_client_request()
                .and_then(|request| Target::of(request.uri()).map(|_| ()));
            let e = checked
                .err()
                .unwrap_or_else(|| panic!("{bad} was accepted"));
            assert_eq!(e.kind(), ErrorKind::InvalidUrl, "{bad}: {e}");
        }
    }

    #[test]
    fn origins_are_host_and_port() {
        let target = |text| Target::of(&uri(text)).unwrap();
        assert!(target("ws://Example.COM/a").same_origin(&target("wss://example.com:80/b")));
        assert!(target("wss://h/").same_origin(&target("https://h:443/")));
        assert!(!target("ws://h/").same_origin(&target("ws://h:8080/")));
        assert!(!target("ws://h/").same_origin(&target("ws://other/")));
    }

    #[test]
    fn userinfo_becomes_basic_credentials_and_leaves_the_uri() {
        let (stripped, credentials) =
            split_userinfo(&uri("ws://al%20ice:p%40ss:word@h:9/x?q")).unwrap();
        assert_eq!(stripped, "ws://h:9/x?q");
        assert_eq!(credentials.as_deref(), Some(&b"al ice:p@ss:word"[..]));
        let (stripped, credentials) = split_userinfo(&uri("ws://bob@h/")).unwrap();
        assert_eq!(stripped, "ws://h/");
        assert_eq!(credentials.as_deref(), Some(&b"bob:"[..]));
        let (stripped, credentials) = split_userinfo(&uri("ws://h/")).unwrap();
        assert_eq!(stripped, "ws://h/");
        assert_eq!(credentials, None);
        assert_eq!(percent_decode("%zz%4"), b"%zz%4");
        assert_eq!(percent_decode("%41%6a"), b"Aj");
    }
}
