//! What the opening handshake agreed on, as one value.

use http::header::{HeaderMap, SEC_WEBSOCKET_EXTENSIONS, SEC_WEBSOCKET_PROTOCOL};
use http::Response;

use super::extensions::stated_in_response;
use super::{header_tokens, trim_ows, DeflateParams};

/// What the opening handshake agreed on: the subprotocol and the extensions.
///
/// Both ends read it from the `101` response: the client from the one it received and checked
/// ([`ParsedResponse::negotiated`](super::client::ParsedResponse::negotiated)), the server from
/// the one it sends ([`Accept::response`](super::server::Accept::response)). A connection is
/// constructed with it (`WebSocket::from_negotiated`) and reports it for its whole life. The
/// default is nothing agreed: no subprotocol, no extension.
///
/// ```
/// use wsio::handshake::Negotiated;
///
/// let negotiated = Negotiated::default().with_subprotocol("chat.v2");
/// assert_eq!(negotiated.subprotocol(), Some("chat.v2"));
/// assert_eq!(negotiated.extensions(), "");
/// assert_eq!(negotiated.permessage_deflate(), None);
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Negotiated {
    subprotocol: Option<String>,
    extensions: String,
    deflate: Option<DeflateParams>,
}

impl Negotiated {
    /// With `subprotocol` agreed on (the value of `Sec-WebSocket-Protocol`).
    pub fn with_subprotocol(mut self, subprotocol: impl Into<String>) -> Self {
        self.subprotocol = Some(subprotocol.into());
        self
    }

    /// With `extensions` agreed on, as the value of `Sec-WebSocket-Extensions` (e.g.
    /// `"permessage-deflate; client_max_window_bits=15"`). The text is reported, not acted on:
    /// what a connection applies is [`permessage_deflate`](Self::permessage_deflate), set with
    /// [`with_permessage_deflate`](Self::with_permessage_deflate).
    pub fn with_extensions(mut self, extensions: impl Into<String>) -> Self {
        self.extensions = extensions.into();
        self
    }

    /// With permessage-deflate agreed on, with `params`. The
    /// [`extensions`](Self::extensions) text is left as it is.
    pub fn with_permessage_deflate(mut self, params: DeflateParams) -> Self {
        self.deflate = Some(params);
        self
    }

    /// The subprotocol agreed on (`Sec-WebSocket-Protocol`), if any.
    pub fn subprotocol(&self) -> Option<&str> {
        self.subprotocol.as_deref()
    }

    /// The extensions agreed on, as the value of `Sec-WebSocket-Extensions`; empty for none.
    pub fn extensions(&self) -> &str {
        &self.extensions
    }

    /// The permessage-deflate parameters agreed on, or `None` when the connection does not
    /// compress.
    pub fn permessage_deflate(&self) -> Option<DeflateParams> {
        self.deflate
    }

    /// What a `101` response states: its `Sec-WebSocket-Protocol`, its
    /// `Sec-WebSocket-Extensions` lines as one comma-separated list, and the parameters of its
    /// first well-formed permessage-deflate element (those it leaves out at their defaults).
    /// Nothing is checked: use it on a response that
    /// [`ClientHandshake::parse_response`](super::client::ClientHandshake::parse_response)
    /// accepted or that [`accept_response`](super::server::accept_response) built.
    ///
    /// On the client side, prefer
    /// [`ParsedResponse::negotiated`](super::client::ParsedResponse::negotiated): what a client
    /// agreed can also depend on its offer (`client_no_context_takeover` and
    /// `client_max_window_bits` that it offered and the server left out of its answer).
    pub fn from_response(response: &Response<()>) -> Self {
        let headers = response.headers();
        Self::stated(headers, stated_in_response(headers))
    }

    /// The subprotocol and extension text `headers` state, with `deflate` agreed on.
    pub(super) fn stated(headers: &HeaderMap, deflate: Option<DeflateParams>) -> Self {
        Negotiated {
            subprotocol: selected_subprotocol(headers).map(str::to_owned),
            extensions: header_tokens(headers, &SEC_WEBSOCKET_EXTENSIONS)
                .collect::<Vec<_>>()
                .join(", "),
            deflate,
        }
    }
}

/// The subprotocol `Sec-WebSocket-Protocol` selects in a response, trimmed; `None` when the
/// header is absent, empty or not UTF-8.
pub(super) fn selected_subprotocol(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(SEC_WEBSOCKET_PROTOCOL)?;
    std::str::from_utf8(trim_ows(value.as_bytes()))
        .ok()
        .filter(|protocol| !protocol.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn response(headers: &[(&'static str, &'static str)]) -> Response<()> {
        let mut response = Response::new(());
        for (name, value) in headers {
            response
                .headers_mut()
                .append(*name, HeaderValue::from_static(value));
        }
        response
    }

    #[test]
    fn nothing_agreed_by_default() {
        let negotiated = Negotiated::default();
        assert_eq!(negotiated.subprotocol(), None);
        assert_eq!(negotiated.extensions(), "");
        assert_eq!(Negotiated::from_response(&response(&[])), negotiated);
    }

    #[test]
    fn read_from_a_switching_response() {
        let negotiated = Negotiated::from_response(&response(&[
            ("sec-websocket-protocol", " chat "),
            (
                "sec-websocket-extensions",
                "permessage-deflate; client_max_window_bits=15",
            ),
            ("sec-websocket-extensions", " x-other ,"),
        ]));
        let expected = Negotiated::default()
            .with_subprotocol("chat")
            .with_extensions("permessage-deflate; client_max_window_bits=15, x-other")
            .with_permessage_deflate(DeflateParams::default());
        assert_eq!(negotiated, expected);
        let negotiated = Negotiated::from_response(&response(&[(
            "sec-websocket-extensions",
            "permessage-deflate; bogus, permessage-deflate; server_no_context_takeover; \
             client_max_window_bits=9",
        )]));
        assert_eq!(
            negotiated.permessage_deflate(),
            Some(DeflateParams {
                server_no_context_takeover: true,
                client_max_window_bits: 9,
                ..DeflateParams::default()
            })
        );
        assert_eq!(
            Negotiated::from_response(&response(&[("sec-websocket-protocol", "")])).subprotocol(),
            None
        );
    }
}
