//! Why an opening handshake failed.

use std::fmt;

use bytes::Bytes;
use http::StatusCode;

/// Why an opening handshake failed, on either side.
///
/// On the server side, [`HandshakeError::status_for_reply`] tells what status to answer the
/// client with.
#[non_exhaustive]
#[derive(Debug)]
pub enum HandshakeError {
    /// The server answered with a status other than `101 Switching Protocols`.
    ///
    /// The response carries the status, the headers and a bounded prefix of the body (see
    /// [`client::ClientHandshake::parse_response`](super::client::ClientHandshake::parse_response)).
    /// A redirect's `Location` header is here, for a caller that wants to follow it.
    Refused(Box<http::Response<Bytes>>),
    /// The request or response is not valid HTTP/1.1; the text says what was wrong.
    Malformed(String),
    /// The HTTP head (start line and headers) is longer than the configured limit.
    HeaderTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The HTTP head has more header fields than the configured limit.
    TooManyHeaders,
    /// A header that the handshake requires is absent.
    MissingHeader(&'static str),
    /// A header is present but its value is wrong for a WebSocket handshake.
    InvalidHeader {
        /// The header's name, e.g. `"Sec-WebSocket-Accept"`.
        name: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The client asked for a `Sec-WebSocket-Version` other than 13, or sent none.
    UnsupportedVersion,
    /// A subprotocol was selected that the client did not offer: by the server in its
    /// response, or by the server-side code building the response.
    UnexpectedSubprotocol(String),
    /// The server accepted an extension in `Sec-WebSocket-Extensions` that the client did not
    /// offer.
    UnexpectedExtension(String),
    /// Client side: the server accepted an offered extension with parameters that break the
    /// extension's rules (RFC 7692 §7 for permessage-deflate): unknown, repeated or malformed,
    /// or a window size above the offered one. Also what
    /// [`DeflateParams::validate`](super::DeflateParams::validate) reports.
    InvalidExtension {
        /// The extension, e.g. `"permessage-deflate"`.
        name: &'static str,
        /// What is wrong, e.g. `"server_max_window_bits is above the offered value"`.
        reason: &'static str,
    },
    /// The request method is not `GET`.
    MethodNotGet,
    /// The message is HTTP/1.0 (or older); the handshake needs HTTP/1.1 or later.
    UnsupportedHttpVersion,
    /// The URI to connect to cannot be used for a WebSocket request; the text says why.
    InvalidUri(String),
    /// Server side: the application looked at the request and refused it with `status`.
    Rejected {
        /// The status the refusal was answered with.
        status: StatusCode,
    },
    /// Client side: the server redirected, and following redirects is on, but this one cannot be
    /// followed.
    InvalidRedirect {
        /// The `Location` the server sent, as received.
        location: String,
        /// Why it cannot be followed: a redirect loop, too many redirects, a downgrade from
        /// `wss` to `ws`, an unsupported scheme, or an unparsable location.
        reason: &'static str,
    },
    /// Client side, HTTP/2: the server did not send `SETTINGS_ENABLE_CONNECT_PROTOCOL = 1`
    /// (RFC 8441 §3), so it cannot take a WebSocket as an extended CONNECT stream. Checked
    /// once the server's SETTINGS have arrived, before any request is sent.
    ExtendedConnectNotEnabled,
    /// Client side, HTTP/2 over TLS: the server did not agree to HTTP/2 in the TLS handshake's
    /// ALPN (it chose another protocol such as `http/1.1`, none, or refused the offer of `h2`).
    Http2NotNegotiated,
}

impl HandshakeError {
    /// Server side: the status to answer a failed request with, or `None` for errors that only
    /// a client sees.
    ///
    /// | error | status |
    /// | --- | --- |
    /// | [`Malformed`](Self::Malformed), [`MissingHeader`](Self::MissingHeader), [`InvalidHeader`](Self::InvalidHeader) | 400 Bad Request |
    /// | [`MethodNotGet`](Self::MethodNotGet) | 405 Method Not Allowed |
    /// | [`UnsupportedVersion`](Self::UnsupportedVersion) | 426 Upgrade Required |
    /// | [`HeaderTooLarge`](Self::HeaderTooLarge), [`TooManyHeaders`](Self::TooManyHeaders) | 431 Request Header Fields Too Large |
    /// | [`UnexpectedSubprotocol`](Self::UnexpectedSubprotocol) (the server code chose badly) | 500 Internal Server Error |
    /// | [`UnsupportedHttpVersion`](Self::UnsupportedHttpVersion) | 505 HTTP Version Not Supported |
    /// | [`Rejected`](Self::Rejected) | its own status |
    ///
    /// Build the answer with [`server::reject_response`](super::server::reject_response), which
    /// adds the headers that 405 and 426 need.
    pub fn status_for_reply(&self) -> Option<StatusCode> {
        match self {
            Self::Malformed(_) | Self::MissingHeader(_) | Self::InvalidHeader { .. } => {
                Some(StatusCode::BAD_REQUEST)
            }
            Self::MethodNotGet => Some(StatusCode::METHOD_NOT_ALLOWED),
            Self::UnsupportedVersion => Some(StatusCode::UPGRADE_REQUIRED),
            Self::HeaderTooLarge { .. } | Self::TooManyHeaders => {
                Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
            }
            Self::UnexpectedSubprotocol(_) => Some(StatusCode::INTERNAL_SERVER_ERROR),
            Self::UnsupportedHttpVersion => Some(StatusCode::HTTP_VERSION_NOT_SUPPORTED),
            Self::Rejected { status } => Some(*status),
            Self::Refused(_)
            | Self::UnexpectedExtension(_)
            | Self::InvalidExtension { .. }
            | Self::InvalidUri(_)
            | Self::InvalidRedirect { .. }
            | Self::ExtendedConnectNotEnabled
            | Self::Http2NotNegotiated => None,
        }
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Refused(response) => write!(
                f,
                "the server refused the WebSocket upgrade with status {}",
                response.status()
            ),
            Self::Malformed(detail) => write!(f, "malformed HTTP handshake: {detail}"),
            Self::HeaderTooLarge { limit } => {
                write!(f, "the HTTP head is larger than the limit of {limit} bytes")
            }
            Self::TooManyHeaders => f.write_str("the HTTP head has too many header fields"),
            Self::MissingHeader(name) => write!(f, "the handshake is missing the {name} header"),
            Self::InvalidHeader { name, reason } => write!(f, "invalid {name} header: {reason}"),
            Self::UnsupportedVersion => {
                f.write_str("unsupported Sec-WebSocket-Version (only version 13 is supported)")
            }
            Self::UnexpectedSubprotocol(protocol) => write!(
                f,
                "subprotocol {protocol:?} was selected but the client did not offer it"
            ),
            Self::UnexpectedExtension(extension) => write!(
                f,
                "the server accepted extension {extension:?}, which the client did not offer"
            ),
            Self::InvalidExtension { name, reason } => {
                write!(f, "invalid {name} extension: {reason}")
            }
            Self::MethodNotGet => f.write_str("the handshake request method must be GET"),
            Self::UnsupportedHttpVersion => f.write_str("the handshake needs HTTP/1.1 or later"),
            Self::InvalidUri(detail) => write!(f, "invalid WebSocket URI: {detail}"),
            Self::Rejected { status } => {
                write!(f, "the handshake request was rejected with status {status}")
            }
            Self::InvalidRedirect { location, reason } => {
                write!(f, "cannot follow the redirect to {location:?}: {reason}")
            }
            Self::ExtendedConnectNotEnabled => f.write_str(
                "the HTTP/2 server does not accept WebSockets: it did not enable the extended \
                 CONNECT protocol (RFC 8441)",
            ),
            Self::Http2NotNegotiated => {
                f.write_str("the server did not agree to HTTP/2 (ALPN h2) in the TLS handshake")
            }
        }
    }
}

impl std::error::Error for HandshakeError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_side_errors_map_to_statuses() {
        let cases = [
            (HandshakeError::Malformed("x".into()), 400),
            (HandshakeError::MissingHeader("Host"), 400),
            (
                HandshakeError::InvalidHeader {
                    name: "Upgrade",
                    reason: "x",
                },
                400,
            ),
            (HandshakeError::MethodNotGet, 405),
            (HandshakeError::UnsupportedVersion, 426),
            (HandshakeError::HeaderTooLarge { limit: 1 }, 431),
            (HandshakeError::TooManyHeaders, 431),
            (HandshakeError::UnexpectedSubprotocol("x".into()), 500),
            (HandshakeError::UnsupportedHttpVersion, 505),
            (
                HandshakeError::Rejected {
                    status: StatusCode::FORBIDDEN,
                },
                403,
            ),
        ];
        for (error, status) in cases {
            assert_eq!(error.status_for_reply().map(|s| s.as_u16()), Some(status));
            assert!(!error.to_string().is_empty());
        }
    }

    #[test]
    fn client_side_errors_have_no_reply() {
        let refused = HandshakeError::Refused(Box::new(
            http::Response::builder()
                .status(404)
                .body(Bytes::new())
                .unwrap(),
        ));
        assert_eq!(refused.status_for_reply(), None);
        assert_eq!(
            refused.to_string(),
            "the server refused the WebSocket upgrade with status 404 Not Found"
        );
        assert_eq!(
            HandshakeError::InvalidUri("x".into()).status_for_reply(),
            None
        );
        assert_eq!(
            HandshakeError::UnexpectedExtension("x".into()).status_for_reply(),
            None
        );
        let invalid = HandshakeError::InvalidExtension {
            name: "permessage-deflate",
            reason: "server_max_window_bits is above the offered value",
        };
        assert_eq!(invalid.status_for_reply(), None);
        for http2 in [
            HandshakeError::ExtendedConnectNotEnabled,
            HandshakeError::Http2NotNegotiated,
        ] {
            assert_eq!(http2.status_for_reply(), None);
            assert!(http2.to_string().contains("HTTP/2"), "{http2}");
        }
        assert_eq!(
            invalid.to_string(),
            "invalid permessage-deflate extension: server_max_window_bits is above the offered value"
        );
    }
}
