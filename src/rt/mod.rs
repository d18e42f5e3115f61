//! The tokio glue: the only code that names `Poll`, `Context`, `AsyncRead` and `AsyncWrite`.

pub(crate) mod bytestream;
pub(crate) mod driver;
pub(crate) mod facade;
#[cfg(feature = "http2")]
pub(crate) mod h2_handshake;
#[cfg(feature = "http2")]
pub(crate) mod h2_stream;
pub(crate) mod handshake;
pub(crate) mod info;
pub(crate) mod reader;
pub(crate) mod shutdown;
pub(crate) mod socket;
pub(crate) mod split;
pub(crate) mod stream;
#[cfg(feature = "hyper")]
pub(crate) mod upgraded;
pub(crate) mod wakers;
pub(crate) mod writer;

use std::time::Duration;

use tokio::time::Instant;

/// The instant `timeout` from now; `Duration::MAX` (or anything past the clock's range) gives a
/// deadline decades away.
pub(crate) fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout)
        .unwrap_or_else(|| now + Duration::from_secs(60 * 60 * 24 * 365 * 30))
}
