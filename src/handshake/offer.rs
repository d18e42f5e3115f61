//! What a client offers in its opening handshake, whatever HTTP version carries it, and the
//! checks of the server's answer against that offer.
//!
//! The offer is the same over an HTTP/1.1 upgrade
//! ([`ClientHandshake`](super::client::ClientHandshake)) and an HTTP/2 extended CONNECT
//! ([`ConnectHandshake`](super::connect::ConnectHandshake), RFC 8441 §5): `Sec-WebSocket-Version: 13`, the subprotocols of `Sec-WebSocket-Protocol`, and
//! permessage-deflate in `Sec-WebSocket-Extensions`. Both handshakes hold an [`Offer`], so each
//! rule is written once here and the two cannot drift apart.

use http::header::{SEC_WEBSOCKET_EXTENSIONS, SEC_WEBSOCKET_PROTOCOL, SEC_WEBSOCKET_VERSION};
use http::{HeaderMap, HeaderValue};

use super::{
    check_deflate_response, deflate_offer, is_token, push, single_header, split_list, trim_ows,
    value_eq_ignore_case, DeflateParams, HandshakeError, WEBSOCKET_VERSION,
};

/// The subprotocols and extensions a request offers: what the answer is checked against.
#[derive(Debug, Clone, Default)]
pub(super) struct Offer {
    /// The subprotocols offered in `Sec-WebSocket-Protocol`, in order.
    protocols: Vec<String>,
    /// The permessage-deflate parameters offered in `Sec-WebSocket-Extensions`, if any.
    deflate: Option<DeflateParams>,
}

impl Offer {
    /// Reads and checks the offer in the headers the user set: a `Sec-WebSocket-Version` other
    /// than 13, a subprotocol that is not a token or is offered twice, and any
    /// `Sec-WebSocket-Extensions` (wsio makes the extension offer itself, see
    /// [`set_deflate`](Self::set_deflate)) are [`HandshakeError::InvalidHeader`].
    pub(super) fn from_user_headers(user: &HeaderMap) -> Result<Offer, HandshakeError> {
        if user.contains_key(SEC_WEBSOCKET_VERSION)
            && !value_eq_ignore_case(
                single_header(user, &SEC_WEBSOCKET_VERSION, "Sec-WebSocket-Version")?,
                WEBSOCKET_VERSION,
            )
        {
            return Err(HandshakeError::InvalidHeader {
                name: "Sec-WebSocket-Version",
                reason: "only version 13 is supported",
            });
        }
        // Extensions are offered by wsio itself, which must know what it offered to check the
        // answer.
        if user.contains_key(SEC_WEBSOCKET_EXTENSIONS) {
            return Err(HandshakeError::InvalidHeader {
                name: "Sec-WebSocket-Extensions",
                reason: "extensions are negotiated by wsio: offer permessage-deflate with \
                         offer_deflate instead",
            });
        }
        let mut protocols: Vec<String> = Vec::new();
        for value in user.get_all(SEC_WEBSOCKET_PROTOCOL) {
            for element in split_list(value.as_bytes()) {
                let protocol = std::str::from_utf8(element).unwrap_or_default();
                check_subprotocol_name(protocol)?;
                if protocols.iter().any(|other| other == protocol) {
                    return Err(duplicate_subprotocol());
                }
                protocols.push(protocol.to_owned());
            }
        }
        Ok(Offer {
            protocols,
            deflate: None,
        })
    }

    /// Offers permessage-deflate with `params` in a `Sec-WebSocket-Extensions` header appended
    /// to `headers` (the request's), replacing an earlier offer; `None` withdraws it.
    ///
    /// # Errors
    ///
    /// [`HandshakeError::InvalidExtension`] when a window size is not in `8..=15`;
    /// [`HandshakeError::TooManyHeaders`] when `headers` has no room for another header.
    pub(super) fn set_deflate(
        &mut self,
        headers: &mut HeaderMap,
        params: Option<DeflateParams>,
    ) -> Result<(), HandshakeError> {
        headers.remove(SEC_WEBSOCKET_EXTENSIONS);
        if let Some(params) = &params {
            params.validate()?;
            push(headers, SEC_WEBSOCKET_EXTENSIONS, deflate_offer(params))?;
        }
        self.deflate = params;
        Ok(())
    }

    /// The subprotocols offered, in order.
    pub(super) fn subprotocols(&self) -> &[String] {
        &self.protocols
    }

    /// The permessage-deflate parameters offered, if any.
    pub(super) fn deflate(&self) -> Option<DeflateParams> {
        self.deflate
    }

    /// Checks the extensions and the subprotocol of an accepting answer's `headers` against the
    /// offer, and returns the permessage-deflate parameters agreed on.
    ///
    /// # Errors
    ///
    /// What [`check_deflate_response`] reports, [`HandshakeError::InvalidHeader`] for more than
    /// one subprotocol, [`HandshakeError::UnexpectedSubprotocol`] for one not offered.
    pub(super) fn check_answer(
        &self,
        headers: &HeaderMap,
    ) -> Result<Option<DeflateParams>, HandshakeError> {
        let deflate = check_deflate_response(headers, self.deflate.as_ref())?;
        self.check_subprotocol(headers)?;
        Ok(deflate)
    }

    /// Checks that the server selected at most one subprotocol, and one that was offered.
    fn check_subprotocol(&self, headers: &HeaderMap) -> Result<(), HandshakeError> {
        if !headers.contains_key(SEC_WEBSOCKET_PROTOCOL) {
            return Ok(());
        }
        let value = single_header(headers, &SEC_WEBSOCKET_PROTOCOL, "Sec-WebSocket-Protocol")?;
        let selected = trim_ows(value.as_bytes());
        if selected.contains(&b',') {
            return Err(HandshakeError::InvalidHeader {
                name: "Sec-WebSocket-Protocol",
                reason: "the server selected more than one subprotocol",
            });
        }
        if self
            .protocols
            .iter()
            .any(|offered| offered.as_bytes() == selected)
        {
            Ok(())
        } else {
            Err(HandshakeError::UnexpectedSubprotocol(
                String::from_utf8_lossy(selected).into_owned(),
            ))
        }
    }
}

/// Sets `Sec-WebSocket-Protocol` to the subprotocols offered, in order of preference, replacing
/// any value it had; an empty list removes the header. Use it on the request's headers before
/// [`ClientHandshake::new`](super::client::ClientHandshake::new) or
/// [`ConnectHandshake::new`](super::connect::ConnectHandshake::new).
///
/// ```
/// let mut headers = http::HeaderMap::new();
/// wsio::handshake::client::set_subprotocols(&mut headers, ["chat.v2", "chat.v1"])?;
/// assert_eq!(headers["sec-websocket-protocol"], "chat.v2, chat.v1");
/// # Ok::<_, wsio::handshake::HandshakeError>(())
/// ```
///
/// # Errors
///
/// [`HandshakeError::InvalidHeader`] when a name is not an RFC 9110 token (empty, or holding a
/// space, comma, non-ASCII character, ...) or appears twice. `headers` is left unchanged then.
pub fn set_subprotocols<I>(headers: &mut HeaderMap, protocols: I) -> Result<(), HandshakeError>
where
    I: IntoIterator,
    I::Item: AsRef<str>,
{
    let mut list = String::new();
    let mut seen: Vec<I::Item> = Vec::new();
    for protocol in protocols {
        check_subprotocol_name(protocol.as_ref())?;
        if seen.iter().any(|other| other.as_ref() == protocol.as_ref()) {
            return Err(duplicate_subprotocol());
        }
        if !list.is_empty() {
            list.push_str(", ");
        }
        list.push_str(protocol.as_ref());
        seen.push(protocol);
    }
    if list.is_empty() {
        headers.remove(SEC_WEBSOCKET_PROTOCOL);
        return Ok(());
    }
    let value = HeaderValue::try_from(list).map_err(|_| HandshakeError::InvalidHeader {
        name: "Sec-WebSocket-Protocol",
        reason: "a subprotocol name is not a valid header value",
    })?;
    headers
        .try_insert(SEC_WEBSOCKET_PROTOCOL, value)
        .map_err(|_| HandshakeError::TooManyHeaders)?;
    Ok(())
}

/// A subprotocol name must be a token (RFC 6455 §4.1, item 10).
fn check_subprotocol_name(protocol: &str) -> Result<(), HandshakeError> {
    if is_token(protocol) {
        Ok(())
    } else {
        Err(HandshakeError::InvalidHeader {
            name: "Sec-WebSocket-Protocol",
            reason: "a subprotocol name is not a token",
        })
    }
}

fn duplicate_subprotocol() -> HandshakeError {
    HandshakeError::InvalidHeader {
        name: "Sec-WebSocket-Protocol",
        reason: "a subprotocol is offered twice",
    }
}
