//! The tokio glue: the only code that names `Poll`, `Context`, `AsyncRead` and `AsyncWrite`.

pub(crate) mod bytestream;
pub(crate) mod driver;
pub(crate) mod facade;
pub(crate) mod handshake;
pub(crate) mod info;
pub(crate) mod reader;
pub(crate) mod socket;
pub(crate) mod split;
pub(crate) mod stream;
#[cfg(feature = "hyper")]
pub(crate) mod upgraded;
pub(crate) mod wakers;
pub(crate) mod writer;
