//! Where a client's request goes, read from its URI: the path and query, the scheme, and the
//! authority sent as `Host` over HTTP/1.1 and as `:authority` over HTTP/2.

use http::header::HOST;
use http::{HeaderMap, HeaderValue, Uri};

use super::{single_header, HandshakeError, Scheme};

/// The path and query of `uri`: the HTTP/1.1 request target, the HTTP/2 `:path`.
pub(super) fn request_target(uri: &Uri) -> Result<String, HandshakeError> {
    let path = match uri.path() {
        "" => "/",
        path if path.starts_with('/') => path,
        _ => {
            return Err(HandshakeError::InvalidUri(
                "the path must start with /".into(),
            ))
        }
    };
    Ok(match uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path.to_owned(),
    })
}

/// The scheme of `uri`, or `None` for a URI without one (origin-form).
pub(super) fn scheme_of(uri: &Uri) -> Result<Option<Scheme>, HandshakeError> {
    let Some(name) = uri.scheme_str() else {
        return Ok(None);
    };
    match Scheme::parse(name) {
        Some(scheme) => Ok(Some(scheme)),
        None => Err(HandshakeError::InvalidUri(format!(
            "unsupported scheme {name:?}, expected ws, wss, http or https"
        ))),
    }
}

/// The authority the request names: the user's `Host` header when it has one (a client may
/// connect to an address and name the host), else the URI's host, with its port only when it
/// is not `scheme`'s default. User info is never part of it.
pub(super) fn authority(
    uri: &Uri,
    scheme: Option<Scheme>,
    user: &HeaderMap,
) -> Result<HeaderValue, HandshakeError> {
    if user.contains_key(HOST) {
        return Ok(single_header(user, &HOST, "Host")?.clone());
    }
    let Some(scheme) = scheme else {
        return Err(HandshakeError::InvalidUri(
            "the URI has no scheme and host".into(),
        ));
    };
    let host = match uri.host() {
        Some(host) if !host.is_empty() => host,
        _ => return Err(HandshakeError::InvalidUri("the URI has no host".into())),
    };
    let value = match uri.port_u16() {
        Some(port) if port != scheme.default_port() => format!("{host}:{port}"),
        _ => host.to_owned(),
    };
    HeaderValue::try_from(value)
        .map_err(|_| HandshakeError::InvalidUri("the host is not a valid header value".into()))
}
