//! The sans-io protocol core: bytes in, frames and events out, frames to send queued.
//!
//! Nothing here performs I/O, knows about tokio or reads a clock, so every piece can be driven by
//! plain function calls in tests and fuzz targets.

pub mod close;
mod close_code;
pub mod connection;
pub mod decoder;
pub mod deflate;
pub mod encoder;
pub mod error;
pub mod fragment;
pub mod header;
mod inbound;
pub mod keys;
pub mod mask;
pub mod message;
mod text;
mod timers;
pub mod utf8;
mod zlib_spares;

pub use inbound::{Chunk, Consumer, Received};
pub use timers::Expired;

/// Which end of the connection this is. It decides who masks: clients mask every frame they
/// send, servers never do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The end that opened the connection.
    Client,
    /// The end that accepted it.
    Server,
}

#[cfg(test)]
mod tests;
