//! # wsio
//!
//! RFC 6455 WebSockets for tokio.
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

pub mod client;
mod config;
pub mod error;
pub mod handshake;
pub mod proto;
mod rt;
pub mod server;
pub mod tls;
pub mod transport;

pub use client::{connect, connect_on, ClientBuilder};
pub use config::Config;
pub use error::{Error, ErrorKind, Result};
pub use http;
pub use proto::close::{CloseCode, CloseFrame};
pub use proto::connection::{ReadyState, Stats};
pub use proto::decoder::DataKind;
pub use proto::message::{Message, Utf8Bytes};
pub use proto::Role;
pub use rt::bytestream::{ByteReadHalf, ByteStream, ByteWriteHalf};
pub use rt::reader::MessageReader;
pub use rt::socket::{Pong, WebSocket};
pub use rt::split::{ReadHalf, ReuniteError, WriteHalf};
pub use rt::writer::MessageWriter;
pub use server::{accept, Acceptor};
pub use transport::{MaybeTlsStream, TransportInfo};
