//! `Sec-WebSocket-Extensions` (RFC 6455 §9.1) and the negotiation of permessage-deflate
//! (RFC 7692 §5 and §7): the client's offer, the server's choice among the offers, the client's
//! check of the server's answer.
//!
//! The header is a comma-separated list of extensions, possibly over several lines, each an
//! extension name followed by `; parameter` or `; parameter=value` items, where a value is a
//! token or a quoted string whose unescaped content is a token. Commas and semicolons inside a
//! quoted string do not separate anything. Names of extensions and parameters are compared ASCII
//! case-insensitively.
//!
//! One parser ([`deflate_params`]) reads the parameters of a permessage-deflate element; the
//! server uses it to decline a bad offer, the client to fail on a bad answer.

use std::borrow::Cow;
use std::fmt::Write as _;

use http::header::{HeaderMap, HeaderValue, SEC_WEBSOCKET_EXTENSIONS};

use super::{is_token_bytes, trim_ows, HandshakeError};

/// The extension's name on the wire.
const PERMESSAGE_DEFLATE: &str = "permessage-deflate";
const SERVER_NO_CONTEXT_TAKEOVER: &str = "server_no_context_takeover";
const CLIENT_NO_CONTEXT_TAKEOVER: &str = "client_no_context_takeover";
const SERVER_MAX_WINDOW_BITS: &str = "server_max_window_bits";
const CLIENT_MAX_WINDOW_BITS: &str = "client_max_window_bits";

/// The smallest LZ77 window RFC 7692 §7.1.2 allows: 2^8 = 256 bytes.
const MIN_WINDOW_BITS: u8 = 8;
/// The largest LZ77 window, and the default: 2^15 = 32 KiB, no limit.
const MAX_WINDOW_BITS: u8 = 15;

/// permessage-deflate parameters (RFC 7692 §7.1), named as on the wire: `server_*` apply to
/// what the server sends (compresses), `client_*` to what the client sends.
///
/// The same type says what an endpoint prefers (the client's offer, the server's acceptance
/// policy) and what a handshake agreed on ([`Negotiated::permessage_deflate`]). The default is
/// context takeover on both sides and 15-bit windows (32 KiB): what a peer gets when it asks
/// for nothing.
///
/// Window sizes are base-2 logarithms in `8..=15`; [`validate`](Self::validate) checks them.
/// The functions that take preferences ([`deflate_offer`], [`accept_deflate_offer`],
/// [`check_deflate_response`]) clamp a value outside that range into it rather than fail.
///
/// ```
/// use wsio::handshake::DeflateParams;
///
/// let params = DeflateParams {
///     client_no_context_takeover: true,
///     server_max_window_bits: 12,
///     ..DeflateParams::default()
/// };
/// assert!(params.validate().is_ok());
/// assert_eq!(DeflateParams::default().server_max_window_bits, 15);
/// ```
///
/// [`Negotiated::permessage_deflate`]: super::Negotiated::permessage_deflate
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeflateParams {
    /// The server starts every message it sends with an empty LZ77 window (RFC 7692 §7.1.1.1):
    /// the client may drop its decompression context between messages. Default `false`.
    pub server_no_context_takeover: bool,
    /// The client starts every message it sends with an empty LZ77 window (RFC 7692 §7.1.1.2):
    /// the server may drop its decompression context between messages. Default `false`.
    pub client_no_context_takeover: bool,
    /// The base-2 logarithm of the largest LZ77 window the server compresses with
    /// (RFC 7692 §7.1.2.1), in `8..=15`; 15 (32 KiB) means no limit. Default 15.
    pub server_max_window_bits: u8,
    /// The base-2 logarithm of the largest LZ77 window the client compresses with
    /// (RFC 7692 §7.1.2.2), in `8..=15`; 15 (32 KiB) means no limit. Default 15.
    pub client_max_window_bits: u8,
}

impl Default for DeflateParams {
    fn default() -> Self {
        DeflateParams {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: MAX_WINDOW_BITS,
            client_max_window_bits: MAX_WINDOW_BITS,
        }
    }
}

impl DeflateParams {
    /// Checks that both window sizes are in `8..=15`.
    ///
    /// # Errors
    ///
    /// [`HandshakeError::InvalidExtension`] naming the window size that is out of range.
    pub fn validate(&self) -> Result<(), HandshakeError> {
        let range = MIN_WINDOW_BITS..=MAX_WINDOW_BITS;
        if !range.contains(&self.server_max_window_bits) {
            return Err(invalid("server_max_window_bits must be from 8 to 15"));
        }
        if !range.contains(&self.client_max_window_bits) {
            return Err(invalid("client_max_window_bits must be from 8 to 15"));
        }
        Ok(())
    }

    /// These parameters with both window sizes clamped into `8..=15`.
    fn clamped(&self) -> DeflateParams {
        DeflateParams {
            server_max_window_bits: clamp_bits(self.server_max_window_bits),
            client_max_window_bits: clamp_bits(self.client_max_window_bits),
            ..*self
        }
    }
}

fn clamp_bits(bits: u8) -> u8 {
    bits.clamp(MIN_WINDOW_BITS, MAX_WINDOW_BITS)
}

/// The client's permessage-deflate offer, the value of its `Sec-WebSocket-Extensions` header.
///
/// `permessage-deflate`, then `; server_no_context_takeover` and `; client_no_context_takeover`
/// when set, `; server_max_window_bits=N` when N < 15, and always `; client_max_window_bits`
/// (bare when 15, `=N` when smaller): it tells the server it may limit the client's window, as
/// browsers do. Window sizes outside `8..=15` are clamped.
///
/// ```
/// use wsio::handshake::{deflate_offer, DeflateParams};
///
/// assert_eq!(
///     deflate_offer(&DeflateParams::default()),
///     "permessage-deflate; client_max_window_bits"
/// );
/// let params = DeflateParams {
///     server_no_context_takeover: true,
///     server_max_window_bits: 10,
///     ..DeflateParams::default()
/// };
/// assert_eq!(
///     deflate_offer(&params),
///     "permessage-deflate; server_no_context_takeover; server_max_window_bits=10; \
///      client_max_window_bits"
/// );
/// ```
pub fn deflate_offer(preferred: &DeflateParams) -> HeaderValue {
    let preferred = preferred.clamped();
    let bits = |bits: u8| (bits < MAX_WINDOW_BITS).then_some(bits);
    render(&Stated {
        server_no_context_takeover: preferred.server_no_context_takeover,
        client_no_context_takeover: preferred.client_no_context_takeover,
        server_max_window_bits: bits(preferred.server_max_window_bits),
        client_max_window_bits: Some(bits(preferred.client_max_window_bits)),
    })
}

/// The server's choice among the client's permessage-deflate offers: the response value of
/// `Sec-WebSocket-Extensions` and the parameters agreed on, or `None` to decline them all.
///
/// The offers are read in the client's order of preference, across all the
/// `Sec-WebSocket-Extensions` lines; other extensions are skipped. The first valid offer is
/// accepted. An offer is declined, and the next one tried (RFC 7692 §5), when it has an
/// unknown parameter, a parameter twice, a value on `*_no_context_takeover`, no value on
/// `server_max_window_bits`, or a window size that is not 8 to 15 written without leading
/// zeros (a quoted value is unquoted first).
///
/// What is agreed, from the offer and `preferred` (window sizes clamped into `8..=15`):
/// - `server_no_context_takeover` and `client_no_context_takeover`: when the offer or
///   `preferred` has it; the response states it then.
/// - `server_max_window_bits`: the smaller of the offered value and the preferred one, stated
///   in the response; without an offer, the preferred value, stated when below 15.
/// - `client_max_window_bits`: when the offer has it, the smaller of the offered value (15 when
///   bare) and the preferred one, stated when below 15 or when the offer had a value; without
///   it, 15 and not stated, as RFC 7692 §7.1.2.2 requires (the client did not say it could
///   limit its window, so a server preference below 15 cannot apply).
///
/// An offered `server_max_window_bits=8` is accepted: the compressor must then produce output
/// that a 256-byte window inflates.
///
/// ```
/// use wsio::handshake::{accept_deflate_offer, DeflateParams};
/// use wsio::http::{header::SEC_WEBSOCKET_EXTENSIONS, HeaderMap, HeaderValue};
///
/// let mut request = HeaderMap::new();
/// request.append(
///     SEC_WEBSOCKET_EXTENSIONS,
///     HeaderValue::from_static("permessage-deflate; client_max_window_bits"),
/// );
/// let preferred = DeflateParams { client_max_window_bits: 12, ..DeflateParams::default() };
/// let (response, agreed) = accept_deflate_offer(&request, &preferred).unwrap();
/// assert_eq!(response, "permessage-deflate; client_max_window_bits=12");
/// assert_eq!(agreed, preferred);
/// ```
pub fn accept_deflate_offer(
    request_headers: &HeaderMap,
    preferred: &DeflateParams,
) -> Option<(HeaderValue, DeflateParams)> {
    let offer = elements(request_headers)
        .filter_map(|(name, params)| is_deflate(name).then(|| deflate_params(params)))
        .find_map(Result::ok)?;
    let (response, agreed) = agree(&offer, &preferred.clamped());
    Some((render(&response), agreed))
}

/// The client's check of the `Sec-WebSocket-Extensions` lines of a `101` against its
/// permessage-deflate offer (`None`: it offered nothing), and the parameters agreed on.
///
/// Returns `Ok(None)` when the server accepted no extension.
///
/// # Errors
///
/// - [`HandshakeError::UnexpectedExtension`]: an extension other than permessage-deflate, or
///   permessage-deflate when `offered` is `None`.
/// - [`HandshakeError::InvalidExtension`]: permessage-deflate accepted twice; a parameter that
///   is unknown, repeated or malformed (as for an offer, see [`accept_deflate_offer`]); a
///   `server_max_window_bits` above the offered one, or missing when one below 15 was offered;
///   a `client_max_window_bits` above the offered one (RFC 7692 §7.1.2).
///
/// What is agreed: `server_no_context_takeover` when the response states it (an offered one
/// that the server leaves out is not agreed: the client keeps its inflater's context, which
/// always works); `client_no_context_takeover` when the response states it or the offer had
/// it; `server_max_window_bits` as stated, 15 otherwise (no value below 15 was offered then); `client_max_window_bits` as stated,
/// otherwise the offered value. A bare `client_max_window_bits` in a response (RFC 7692 gives a
/// response's parameter a value) is read as no limit beyond the offer.
///
/// ```
/// use wsio::handshake::{check_deflate_response, DeflateParams};
/// use wsio::http::{header::SEC_WEBSOCKET_EXTENSIONS, HeaderMap, HeaderValue};
///
/// let mut response = HeaderMap::new();
/// response.append(
///     SEC_WEBSOCKET_EXTENSIONS,
///     HeaderValue::from_static("permessage-deflate; server_max_window_bits=10"),
/// );
/// let offered = DeflateParams::default();
/// let agreed = check_deflate_response(&response, Some(&offered)).unwrap().unwrap();
/// assert_eq!(agreed.server_max_window_bits, 10);
/// assert!(check_deflate_response(&response, None).is_err());
/// ```
pub fn check_deflate_response(
    response_headers: &HeaderMap,
    offered: Option<&DeflateParams>,
) -> Result<Option<DeflateParams>, HandshakeError> {
    let mut agreed = None;
    for (name, params) in elements(response_headers) {
        let offered = match offered {
            Some(offered) if is_deflate(name) => offered.clamped(),
            _ => {
                return Err(HandshakeError::UnexpectedExtension(
                    String::from_utf8_lossy(name).into_owned(),
                ))
            }
        };
        if agreed.is_some() {
            return Err(invalid("the server accepted permessage-deflate twice"));
        }
        let stated = deflate_params(params).map_err(invalid)?;
        agreed = Some(check_stated(&stated, &offered)?);
    }
    Ok(agreed)
}

/// What the first well-formed permessage-deflate element of a response states, read without
/// an offer to check it against: for a response already checked or built by this crate.
pub(super) fn stated_in_response(response_headers: &HeaderMap) -> Option<DeflateParams> {
    elements(response_headers)
        .filter_map(|(name, params)| is_deflate(name).then(|| deflate_params(params)))
        .find_map(Result::ok)
        .and_then(|stated| check_stated(&stated, &DeflateParams::default()).ok())
}

/// The permessage-deflate parameters one element states, as written: which are present, and
/// their values.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Stated {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    /// `server_max_window_bits=N`.
    server_max_window_bits: Option<u8>,
    /// `client_max_window_bits` bare (`Some(None)`) or `=N` (`Some(Some(N))`).
    client_max_window_bits: Option<Option<u8>>,
}

/// The server's side: what is agreed from an offer and the (clamped) preferences, and what the
/// response states.
fn agree(offer: &Stated, preferred: &DeflateParams) -> (Stated, DeflateParams) {
    let server_no_context_takeover =
        offer.server_no_context_takeover || preferred.server_no_context_takeover;
    let client_no_context_takeover =
        offer.client_no_context_takeover || preferred.client_no_context_takeover;
    let server_bits = match offer.server_max_window_bits {
        Some(offered) => offered.min(preferred.server_max_window_bits),
        None => preferred.server_max_window_bits,
    };
    // RFC 7692 §7.1.2.1: a server MAY include server_max_window_bits in its response even if
    // the offer it accepts did not include it; a limit below 15 is worth telling the client,
    // which can then allocate a smaller window. An offered value must be answered.
    let stated_server_bits = (offer.server_max_window_bits.is_some()
        || server_bits < MAX_WINDOW_BITS)
        .then_some(server_bits);
    // RFC 7692 §7.1.2.2: the response MUST NOT include client_max_window_bits when the offer
    // did not; with a value in the offer, the answer states one equal or smaller.
    let (client_bits, stated_client_bits) = match offer.client_max_window_bits {
        None => (MAX_WINDOW_BITS, None),
        Some(offered) => {
            let bits = offered
                .unwrap_or(MAX_WINDOW_BITS)
                .min(preferred.client_max_window_bits);
            let stated = (offered.is_some() || bits < MAX_WINDOW_BITS).then_some(Some(bits));
            (bits, stated)
        }
    };
    let response = Stated {
        server_no_context_takeover,
        client_no_context_takeover,
        server_max_window_bits: stated_server_bits,
        client_max_window_bits: stated_client_bits,
    };
    let agreed = DeflateParams {
        server_no_context_takeover,
        client_no_context_takeover,
        server_max_window_bits: server_bits,
        client_max_window_bits: client_bits,
    };
    (response, agreed)
}

/// The client's side: what a response states, checked against the (clamped) offer, gives what
/// is agreed.
fn check_stated(stated: &Stated, offered: &DeflateParams) -> Result<DeflateParams, HandshakeError> {
    let server_bits = match stated.server_max_window_bits {
        Some(bits) if bits > offered.server_max_window_bits => {
            return Err(invalid("server_max_window_bits is above the offered value"))
        }
        Some(bits) => bits,
        // RFC 7692 §7.1.2.1: a server accepts an offer with this parameter by answering it. A
        // silent one might use a larger window than the client sized its inflater for.
        None if offered.server_max_window_bits < MAX_WINDOW_BITS => {
            return Err(invalid(
                "server_max_window_bits was offered but not answered",
            ))
        }
        None => MAX_WINDOW_BITS,
    };
    let client_bits = match stated.client_max_window_bits {
        Some(Some(bits)) if bits > offered.client_max_window_bits => {
            return Err(invalid("client_max_window_bits is above the offered value"))
        }
        Some(Some(bits)) => bits,
        Some(None) | None => offered.client_max_window_bits,
    };
    Ok(DeflateParams {
        server_no_context_takeover: stated.server_no_context_takeover,
        client_no_context_takeover: stated.client_no_context_takeover
            || offered.client_no_context_takeover,
        server_max_window_bits: server_bits,
        client_max_window_bits: client_bits,
    })
}

/// Writes a permessage-deflate element.
fn render(stated: &Stated) -> HeaderValue {
    let mut out = String::from(PERMESSAGE_DEFLATE);
    if stated.server_no_context_takeover {
        write!(out, "; {SERVER_NO_CONTEXT_TAKEOVER}").ok();
    }
    if stated.client_no_context_takeover {
        write!(out, "; {CLIENT_NO_CONTEXT_TAKEOVER}").ok();
    }
    if let Some(bits) = stated.server_max_window_bits {
        write!(out, "; {SERVER_MAX_WINDOW_BITS}={bits}").ok();
    }
    match stated.client_max_window_bits {
        Some(Some(bits)) => write!(out, "; {CLIENT_MAX_WINDOW_BITS}={bits}").ok(),
        Some(None) => write!(out, "; {CLIENT_MAX_WINDOW_BITS}").ok(),
        None => None,
    };
    // Names and digits are visible ASCII, always a valid header value.
    HeaderValue::try_from(out).unwrap_or_else(|_| HeaderValue::from_static(PERMESSAGE_DEFLATE))
}

/// Reads the parameters of a permessage-deflate element (the `;`-separated items after its
/// name), checking them against RFC 7692 §7.1. The error says what is wrong.
fn deflate_params<'a>(params: Split<'a>) -> Result<Stated, &'static str> {
    let mut stated = Stated::default();
    let mut seen = [false; 4];
    for param in params {
        let (name, value) = match param.iter().position(|&b| b == b'=') {
            Some(at) => (
                trim_ows(&param[..at]),
                Some(unquote(trim_ows(&param[at + 1..]))?),
            ),
            None => (param, None),
        };
        if name.is_empty() {
            return Err("a parameter is empty");
        }
        let known = [
            SERVER_NO_CONTEXT_TAKEOVER,
            CLIENT_NO_CONTEXT_TAKEOVER,
            SERVER_MAX_WINDOW_BITS,
            CLIENT_MAX_WINDOW_BITS,
        ];
        let Some(index) = known
            .iter()
            .position(|known| name.eq_ignore_ascii_case(known.as_bytes()))
        else {
            return Err("a parameter is unknown");
        };
        if std::mem::replace(&mut seen[index], true) {
            return Err("a parameter appears twice");
        }
        let value = value.as_deref();
        match index {
            0 | 1 if value.is_some() => {
                return Err(if index == 0 {
                    "server_no_context_takeover has a value"
                } else {
                    "client_no_context_takeover has a value"
                })
            }
            0 => stated.server_no_context_takeover = true,
            1 => stated.client_no_context_takeover = true,
            2 => {
                let bits = value.ok_or("server_max_window_bits has no value")?;
                stated.server_max_window_bits = Some(
                    window_bits(bits)
                        .ok_or("server_max_window_bits is not a number from 8 to 15")?,
                );
            }
            _ => {
                stated.client_max_window_bits = Some(
                    value
                        .map(|bits| {
                            window_bits(bits)
                                .ok_or("client_max_window_bits is not a number from 8 to 15")
                        })
                        .transpose()?,
                );
            }
        }
    }
    Ok(stated)
}

/// A window size: `8` to `15` in decimal, without leading zeros or sign (RFC 7692 §7.1.2.1:
/// "a decimal integer value without leading zeroes between 8 to 15, inclusive").
fn window_bits(value: &[u8]) -> Option<u8> {
    match *value {
        [digit @ b'8'..=b'9'] => Some(digit - b'0'),
        [b'1', digit @ b'0'..=b'5'] => Some(10 + digit - b'0'),
        _ => None,
    }
}

/// A parameter value as its token: the value itself, or the content of a quoted string with
/// its `\` escapes undone, which must be a token (RFC 6455 §9.1).
fn unquote(value: &[u8]) -> Result<Cow<'_, [u8]>, &'static str> {
    const NOT_CLOSED: &str = "a quoted value is not closed";
    let value = match value {
        [b'"', quoted @ ..] => {
            let mut out = Vec::with_capacity(quoted.len());
            let mut bytes = quoted.iter();
            loop {
                match bytes.next() {
                    Some(b'\\') => out.push(*bytes.next().ok_or(NOT_CLOSED)?),
                    Some(b'"') => break,
                    Some(&b) => out.push(b),
                    None => return Err(NOT_CLOSED),
                }
            }
            if bytes.next().is_some() {
                return Err("a parameter value is not a token");
            }
            Cow::Owned(out)
        }
        _ => Cow::Borrowed(value),
    };
    if is_token_bytes(&value) {
        Ok(value)
    } else {
        Err("a parameter value is not a token")
    }
}

fn is_deflate(name: &[u8]) -> bool {
    name.eq_ignore_ascii_case(PERMESSAGE_DEFLATE.as_bytes())
}

fn invalid(reason: &'static str) -> HandshakeError {
    HandshakeError::InvalidExtension {
        name: PERMESSAGE_DEFLATE,
        reason,
    }
}

/// Every element of every `Sec-WebSocket-Extensions` line, in order, as its trimmed name and
/// its parameters; empty elements are skipped.
fn elements(headers: &HeaderMap) -> impl Iterator<Item = (&[u8], Split<'_>)> {
    headers
        .get_all(SEC_WEBSOCKET_EXTENSIONS)
        .iter()
        .flat_map(|value| Split::new(value.as_bytes(), b','))
        .filter(|element| !element.is_empty())
        .map(|element| {
            let mut parts = Split::new(element, b';');
            let name = parts.next().unwrap_or_default();
            (name, parts)
        })
}

/// The pieces of a header value between `separator`s that are outside quoted strings, trimmed
/// of spaces and tabs. A quoted string that is not closed runs to the end of the value.
#[derive(Debug, Clone)]
struct Split<'a> {
    rest: Option<&'a [u8]>,
    separator: u8,
}

impl<'a> Split<'a> {
    fn new(bytes: &'a [u8], separator: u8) -> Self {
        Split {
            rest: Some(bytes),
            separator,
        }
    }
}

impl<'a> Iterator for Split<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let rest = self.rest?;
        let mut quoted = false;
        let mut escaped = false;
        for (at, &b) in rest.iter().enumerate() {
            if escaped {
                escaped = false;
            } else if quoted {
                match b {
                    b'\\' => escaped = true,
                    b'"' => quoted = false,
                    _ => {}
                }
            } else if b == b'"' {
                quoted = true;
            } else if b == self.separator {
                self.rest = Some(&rest[at + 1..]);
                return Some(trim_ows(&rest[..at]));
            }
        }
        self.rest = None;
        Some(trim_ows(rest))
    }
}

#[cfg(test)]
#[path = "extensions_tests.rs"]
mod tests;
