//! The schemes of WebSocket URLs, and what each implies: TLS or not, the default port.

/// The scheme of a WebSocket URL. RFC 6455 §3 defines `ws` and `wss`; `http` and `https` are
/// taken as their aliases, as browsers do (and as a redirect's `Location` usually says).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    /// `ws` (or `http`): plain TCP, port 80 by default.
    Ws,
    /// `wss` (or `https`): TLS, port 443 by default.
    Wss,
}

impl Scheme {
    /// The scheme `name` stands for, ASCII case ignored; `None` for any other than `ws`, `wss`,
    /// `http` and `https`.
    pub(crate) fn parse(name: &str) -> Option<Scheme> {
        let is = |expected: &str| name.eq_ignore_ascii_case(expected);
        if is("ws") || is("http") {
            Some(Scheme::Ws)
        } else if is("wss") || is("https") {
            Some(Scheme::Wss)
        } else {
            None
        }
    }

    /// The scheme's name: `"ws"` or `"wss"`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Scheme::Ws => "ws",
            Scheme::Wss => "wss",
        }
    }

    /// The HTTP scheme the WebSocket scheme stands for: `"http"` for `ws`, `"https"` for
    /// `wss`, what an HTTP/2 extended CONNECT sends as `:scheme` (RFC 8441 §5).
    pub(crate) fn http_name(self) -> &'static str {
        match self {
            Scheme::Ws => "http",
            Scheme::Wss => "https",
        }
    }

    /// `true` for `wss`: the connection runs over TLS.
    pub(crate) fn is_secure(self) -> bool {
        self == Scheme::Wss
    }

    /// The port of a URL that names none.
    pub(crate) fn default_port(self) -> u16 {
        match self {
            Scheme::Ws => 80,
            Scheme::Wss => 443,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_schemes_are_aliases_of_ws_schemes() {
        for (name, scheme) in [
            ("ws", Scheme::Ws),
            ("http", Scheme::Ws),
            ("WS", Scheme::Ws),
            ("wss", Scheme::Wss),
            ("https", Scheme::Wss),
            ("HttpS", Scheme::Wss),
        ] {
            assert_eq!(Scheme::parse(name), Some(scheme), "{name}");
        }
        for name in ["", "ftp", "wsss", "ws:", "file"] {
            assert_eq!(Scheme::parse(name), None, "{name}");
        }
    }

    #[test]
    fn tls_and_default_ports() {
        assert_eq!(
            (
                Scheme::Ws.as_str(),
                Scheme::Ws.is_secure(),
                Scheme::Ws.default_port()
            ),
            ("ws", false, 80)
        );
        assert_eq!(
            (Scheme::Ws.http_name(), Scheme::Wss.http_name()),
            ("http", "https")
        );
        assert_eq!(
            (
                Scheme::Wss.as_str(),
                Scheme::Wss.is_secure(),
                Scheme::Wss.default_port()
            ),
            ("wss", true, 443)
        );
    }
}
