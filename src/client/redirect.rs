//! Following redirects: which answers are followed, where they lead, and what a request keeps
//! across them.
//!
//! A request keeps its headers across a redirect, but not `Host` (the new URL's is sent), and,
//! when it leaves the first URL's host and port, not the credentials it carried
//! (`Authorization`, `Proxy-Authorization`, `Cookie`). A redirect never downgrades `wss` to `ws`,
//! never revisits a URL, and is followed only as many times as allowed.

use http::header::{AUTHORIZATION, COOKIE, HOST, LOCATION, PROXY_AUTHORIZATION};
use http::{HeaderMap, HeaderValue, Request, StatusCode, Uri};
use url::Url;

use super::url::Target;
use crate::error::{Error, HandshakeError, Result};
use crate::handshake::Scheme;

/// Whether a request may send the credential headers it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Credentials {
    /// To the first URL's host and port.
    Keep,
    /// Elsewhere, after a redirect.
    Strip,
}

impl Credentials {
    /// Removes `Authorization`, `Proxy-Authorization` and `Cookie` from `headers` when they may
    /// not be sent.
    pub(super) fn apply(self, headers: &mut HeaderMap) {
        if self == Credentials::Strip {
            for name in [AUTHORIZATION, PROXY_AUTHORIZATION, COOKIE] {
                headers.remove(name);
            }
        }
    }
}

/// The redirects one connection attempt has followed.
pub(super) struct Redirects {
    /// How many may be followed.
    max: usize,
    /// The first URL's target: credentials go to its host and port only.
    first: Target,
    /// The URLs requested so far, normalized.
    visited: Vec<String>,
}

impl Redirects {
    /// For a connection to `first` that may follow `max` redirects.
    pub(super) fn new(max: usize, first: Target) -> Self {
        Redirects {
            max,
            first,
            visited: Vec::new(),
        }
    }

    /// What a request to `target` may send of the credentials it carries.
    pub(super) fn credentials_for(&self, target: &Target) -> Credentials {
        if target.same_origin(&self.first) {
            Credentials::Keep
        } else {
            Credentials::Strip
        }
    }

    /// Turns `request`, sent to `target` and answered with `error`, into the request the
    /// redirect leads to.
    ///
    /// # Errors
    /// `error` itself when it is not a redirect to follow (or none may be followed);
    /// [`HandshakeError::InvalidRedirect`] for a redirect that may not be followed.
    pub(super) fn follow(
        &mut self,
        request: &mut Request<()>,
        target: &Target,
        error: Error,
    ) -> Result<()> {
        let location = match redirect_location(&error) {
            Some(location) if self.max > 0 => location,
            _ => return Err(error),
        };
        let next = resolve_redirect(request.uri(), target.scheme, location)?;
        self.visited.push(normalized(request.uri()));
        if self.visited.contains(&normalized(&next)) {
            return Err(invalid_redirect(location, "redirect loop"));
        }
        if self.visited.len() > self.max {
            return Err(invalid_redirect(location, "too many redirects"));
        }
        *request.uri_mut() = next;
        request.headers_mut().remove(HOST);
        Ok(())
    }
}

/// The `Location` of a redirect that may be followed.
fn redirect_location(error: &Error) -> Option<&HeaderValue> {
    let Error::Handshake(handshake) = error else {
        return None;
    };
    let HandshakeError::Refused(response) = &**handshake else {
        return None;
    };
    match response.status() {
        StatusCode::MOVED_PERMANENTLY
        | StatusCode::FOUND
        | StatusCode::SEE_OTHER
        | StatusCode::TEMPORARY_REDIRECT
        | StatusCode::PERMANENT_REDIRECT => response.headers().get(LOCATION),
        _ => None,
    }
}

fn invalid_redirect(location: &HeaderValue, reason: &'static str) -> Error {
    HandshakeError::InvalidRedirect {
        location: String::from_utf8_lossy(location.as_bytes()).into_owned(),
        reason,
    }
    .into()
}

/// The URL a redirect from `current` (of scheme `from`) to `location` leads to, as `ws` or
/// `wss`.
fn resolve_redirect(current: &Uri, from: Scheme, location: &HeaderValue) -> Result<Uri> {
    let invalid = |reason| invalid_redirect(location, reason);
    let text = location
        .to_str()
        .map_err(|_| invalid("the location is not ASCII"))?;
    let base = Url::parse(&current.to_string())
        .map_err(|_| invalid("the URL requested cannot be a base"))?;
    let mut next = base
        .join(text)
        .map_err(|_| invalid("the location is not a valid URL"))?;
    next.set_fragment(None);
    let scheme = Scheme::parse(next.scheme())
        .ok_or_else(|| invalid("the location's scheme is not ws, wss, http or https"))?;
    if from.is_secure() && !scheme.is_secure() {
        return Err(invalid("the redirect would downgrade wss to ws"));
    }
    let scheme = scheme.as_str();
    if next.scheme() != scheme && next.set_scheme(scheme).is_err() {
        return Err(invalid("the location's scheme cannot become ws or wss"));
    }
    next.as_str()
        .parse()
        .map_err(|_| invalid("the location is not a valid URI"))
}

/// `uri` as the `url` crate normalizes it, to recognise a URL visited before.
fn normalized(uri: &Uri) -> String {
    let text = uri.to_string();
    Url::parse(&text).map(String::from).unwrap_or(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn uri(text: &str) -> Uri {
        text.parse().unwrap()
    }

    fn location(text: &'static str) -> HeaderValue {
        HeaderValue::from_static(text)
    }

    fn refused(status: u16, location: Option<&'static str>) -> Error {
        let mut response = http::Response::builder().status(status);
        if let Some(location) = location {
            response = response.header(LOCATION, location);
        }
        HandshakeError::Refused(Box::new(response.body(bytes::Bytes::new()).unwrap())).into()
    }

    #[test]
    fn redirects_resolve_to_ws_urls() {
        let current = uri("ws://u:p@h:9/a/b?q=1");
        let cases = [
            ("c", "ws://u:p@h:9/a/c"),
            ("/x?y", "ws://u:p@h:9/x?y"),
            ("http://other/z#frag", "ws://other/z"),
            ("https://other:8443/", "wss://other:8443/"),
            ("wss://other/", "wss://other/"),
            ("https://other:443/", "wss://other/"),
        ];
        for (loc, expected) in cases {
            let next = resolve_redirect(&current, Scheme::Ws, &location(loc)).unwrap();
            assert_eq!(next, expected, "{loc}");
        }
        let secure = uri("wss://h/");
        assert_eq!(
            resolve_redirect(&secure, Scheme::Wss, &location("/next")).unwrap(),
            "wss://h/next"
        );
        for (loc, reason) in [
            ("ws://h/", "downgrade"),
            ("http://h/", "downgrade"),
            ("ftp://h/", "scheme"),
            ("mailto:a@b", "scheme"),
        ] {
            let e = resolve_redirect(&secure, Scheme::Wss, &location(loc)).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Handshake);
            assert!(e.to_string().contains(reason), "{loc}: {e}");
        }
    }

    #[test]
    fn only_redirect_statuses_with_a_location_are_followed() {
        for status in [301, 302, 303, 307, 308] {
            assert!(redirect_location(&refused(status, Some("/x"))).is_some());
            assert!(redirect_location(&refused(status, None)).is_none());
        }
        for status in [300, 304, 400, 403] {
            assert!(redirect_location(&refused(status, Some("/x"))).is_none());
        }
        assert!(redirect_location(&Error::Closed).is_none());
    }

    #[test]
    fn a_followed_redirect_drops_host_and_credentials_leave_with_the_origin() {
        let first = uri("ws://h/a");
        let mut redirects = Redirects::new(2, Target::of(&first).unwrap());
        let mut request = Request::builder()
            .uri(first)
            .header(HOST, "h")
            .header(COOKIE, "c=1")
            .body(())
            .unwrap();
        let target = Target::of(request.uri()).unwrap();
        assert_eq!(redirects.credentials_for(&target), Credentials::Keep);
        let redirect = refused(302, Some("http://other:81/b"));
        redirects.follow(&mut request, &target, redirect).unwrap();
        assert_eq!(request.uri(), "ws://other:81/b");
        assert!(!request.headers().contains_key(HOST));
        assert_eq!(request.headers()[COOKIE], "c=1");
        let target = Target::of(request.uri()).unwrap();
        assert_eq!(redirects.credentials_for(&target), Credentials::Strip);
        let mut headers = request.headers().clone();
        Credentials::Keep.apply(&mut headers);
        assert!(headers.contains_key(COOKIE));
        Credentials::Strip.apply(&mut headers);
        assert!(!headers.contains_key(COOKIE));

        // Back to a URL visited: a loop.
        let e = redirects
            .follow(&mut request, &target, refused(301, Some("ws://h/a")))
            .unwrap_err();
        assert!(e.to_string().contains("loop"), "{e}");
    }

    #[test]
    fn redirects_beyond_the_limit_or_with_none_allowed_are_not_followed() {
        let mut request = Request::new(());
        *request.uri_mut() = uri("ws://h/0");
        let target = Target::of(request.uri()).unwrap();
        let mut none = Redirects::new(0, Target::of(request.uri()).unwrap());
        let e = none
            .follow(&mut request, &target, refused(302, Some("/1")))
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::HandshakeRefused);

        let mut one = Redirects::new(1, Target::of(request.uri()).unwrap());
        one.follow(&mut request, &target, refused(302, Some("/1")))
            .unwrap();
        let e = one
            .follow(&mut request, &target, refused(302, Some("/2")))
            .unwrap_err();
        assert!(e.to_string().contains("too many"), "{e}");
        let e = one
            .follow(&mut request, &target, Error::Closed)
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Closed);
    }
}
