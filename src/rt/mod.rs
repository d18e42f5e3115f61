//! The tokio glue: the only code that names `Poll`, `Context`, `AsyncRead` and `AsyncWrite`.

pub(crate) mod driver;
pub(crate) mod handshake;
pub(crate) mod socket;
pub(crate) mod split;
