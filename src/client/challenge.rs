//! Answering an authentication challenge: a server that refuses the upgrade with
//! `401 Unauthorized` asks for credentials, and a hook on the [`ClientBuilder`] may fetch some
//! (a token from an identity provider, a Digest response, a refreshed cookie) and have the
//! request sent once more with them.
//!
//! [`ClientBuilder`]: super::ClientBuilder

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{SET_COOKIE, WWW_AUTHENTICATE};
use http::{HeaderMap, Response, StatusCode, Uri};

use super::url::Target;
use crate::error::{Error, HandshakeError};

/// A server's refusal that asks for credentials, as the
/// [`on_auth_challenge`](super::ClientBuilder::on_auth_challenge) hook sees it.
#[derive(Debug)]
pub struct Challenge {
    response: Response<Bytes>,
    uri: Uri,
}

impl Challenge {
    /// The refusal's status: `401 Unauthorized`.
    pub fn status(&self) -> StatusCode {
        self.response.status()
    }

    /// The URL that refused (after any redirects), without user info.
    pub fn uri(&self) -> &Uri {
        &self.uri
    }

    /// The whole refusal: headers and what arrived of its body.
    pub fn response(&self) -> &Response<Bytes> {
        &self.response
    }

    /// The `WWW-Authenticate` values: the schemes the server accepts and their parameters
    /// (`Bearer realm="chat"`, `Basic realm="x"`), as sent. Values that are not text are
    /// skipped.
    pub fn www_authenticate(&self) -> impl Iterator<Item = &str> {
        self.header_values(WWW_AUTHENTICATE)
    }

    /// The `Set-Cookie` values the refusal carried (a session the retry should present).
    pub fn set_cookies(&self) -> impl Iterator<Item = &str> {
        self.header_values(SET_COOKIE)
    }

    fn header_values(&self, name: http::HeaderName) -> impl Iterator<Item = &str> {
        self.response
            .headers()
            .get_all(name)
            .into_iter()
            .filter_map(|value| value.to_str().ok())
    }
}

/// The future of a hook's answer: the headers to retry with, or `None` to give up.
pub(super) type Answer = Pin<Box<dyn Future<Output = Option<HeaderMap>> + Send>>;

/// The hook, as the builder keeps it.
pub(super) type Hook = Arc<dyn Fn(&Challenge) -> Answer + Send + Sync>;

/// The challenge `error` carries, when it is a refusal that asks for credentials; otherwise the
/// error itself, untouched.
pub(super) fn into_challenge(error: Error, uri: &Uri) -> Result<Challenge, Error> {
    match error {
        Error::Handshake(handshake) => match *handshake {
            HandshakeError::Refused(response) if response.status() == StatusCode::UNAUTHORIZED => {
                Ok(Challenge {
                    response: *response,
                    uri: uri.clone(),
                })
            }
            other => Err(Error::Handshake(Box::new(other))),
        },
        other => Err(other),
    }
}

impl Challenge {
    /// The refusal as the error it is, for a hook that gave up.
    pub(super) fn into_error(self) -> Error {
        HandshakeError::Refused(Box::new(self.response)).into()
    }
}

/// The headers a hook answered with, and where they may be sent: to the host and port that
/// asked for them, never to another one a redirect leads to.
#[derive(Debug, Clone)]
pub(super) struct Answered {
    pub(super) target: Target,
    pub(super) headers: HeaderMap,
}

impl Answered {
    /// Puts the answer into a request's `headers` when it goes to `target`: each header replaces
    /// any of the same name (a hook's `Authorization` wins over one from the URL's user info).
    pub(super) fn apply(&self, target: &Target, headers: &mut HeaderMap) {
        if !target.same_origin(&self.target) {
            return;
        }
        for name in self.headers.keys() {
            headers.remove(name);
        }
        for (name, value) in &self.headers {
            headers.append(name.clone(), value.clone());
        }
    }
}
