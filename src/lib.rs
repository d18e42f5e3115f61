//! # wsio
//!
//! RFC 6455 WebSockets for tokio, with two ways to use one connection:
//!
//! - the **message API**: [`WebSocket`] sends and receives whole text and binary messages
//!   ([`send`](WebSocket::send), [`recv`](WebSocket::recv), or as a `futures` `Stream` + `Sink`),
//!   answers pings and completes the closing handshake by itself, and splits into halves for two
//!   tasks ([`WebSocket::into_split`]);
//! - the **stream API**: [`MessageWriter`] and [`MessageReader`] are `AsyncWrite`/`AsyncRead`
//!   over one message of any size, sent as fragments and never assembled in memory, and
//!   [`ByteStream`] is the whole connection as `AsyncRead + AsyncWrite`, to run TLS, HTTP, a codec
//!   or a tunnel over a WebSocket.
//!
//! Clients connect with [`connect`] (or a [`ClientBuilder`], `ws://` and `wss://`); servers
//! upgrade accepted streams with [`accept`] (or an [`Acceptor`]). Any
//! `AsyncRead + AsyncWrite + Unpin` transport works, as [`connect_on`] shows below over an
//! in-memory pipe.
//!
//! ## Messages
//!
//! ```
//! use wsio::Message;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> wsio::Result<()> {
//! let (client_io, server_io) = tokio::io::duplex(64 * 1024);
//! let server = tokio::spawn(async move {
//!     let mut ws = wsio::accept(server_io).await?;
//!     while let Some(message) = ws.recv().await {
//!         let message = message?;
//!         if message.is_data() {
//!             ws.send(message).await?; // echo
//!         }
//!     }
//!     Ok::<_, wsio::Error>(ws.close_code())
//! });
//!
//! let (mut ws, response) = wsio::connect_on(client_io, "ws://example.com/echo").await?;
//! assert_eq!(response.status(), 101);
//! ws.send(Message::text("hello")).await?;
//! assert_eq!(ws.recv().await.unwrap()?, Message::text("hello"));
//! ws.close(wsio::CloseCode::NORMAL, "done").await?;
//! assert_eq!(server.await.unwrap()?, Some(wsio::CloseCode::NORMAL));
//! # Ok(()) }
//! ```
//!
//! ## Streams
//!
//! ```
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> wsio::Result<()> {
//! let (client_io, server_io) = tokio::io::duplex(64 * 1024);
//! let server = tokio::spawn(async move {
//!     let mut ws = wsio::accept(server_io).await?;
//!     let mut reader = ws.recv_stream().await.expect("a message")?;
//!     let mut received = Vec::new();
//!     reader.read_to_end(&mut received).await?; // EOF at the message's last frame
//!     Ok::<_, wsio::Error>(received.len())
//! });
//!
//! let (mut ws, _) = wsio::connect_on(client_io, "ws://example.com/upload").await?;
//! let mut writer = ws.send_stream(wsio::DataKind::Binary);
//! let payload = vec![7u8; 1 << 20]; // any size: it leaves in fragments
//! writer.write_all(&payload).await?;
//! writer.shutdown().await?; // the final frame
//! assert_eq!(server.await.unwrap()?, 1 << 20);
//! # Ok(()) }
//! ```
//!
//! ## Typed messages
//!
//! With the `serde` feature, values go in and out as JSON text: `send_json` and `recv_json` on
//! [`WebSocket`] and its halves; other serde formats (CBOR, MessagePack, bincode...) plug in
//! through the `Codec` trait of the `codec` module, which has the examples. A message that
//! does not decode is an error for that receive only ([`ErrorKind::Decode`]): the connection
//! stays open.
//!
//! ## Inside hyper and axum
//!
//! With the `hyper` feature, the `upgrade` module upgrades a request that a hyper 1 server
//! served: an HTTP/1.1 `GET` with `Upgrade: websocket` (answered `101`) or an HTTP/2 extended
//! `CONNECT` (RFC 8441, answered `200`), through an [`Acceptor`]'s checks, origin allow-list,
//! `on_request` decision and [`Config`]. With the `axum` feature, the `axum` module's
//! `WebSocketUpgrade` extractor does the same in an axum 0.8 handler:
//!
//! ```no_run
//! # #[cfg(feature = "axum")]
//! # mod app {
//! use axum::response::Response;
//! use wsio::axum::WebSocketUpgrade;
//!
//! // Routed with `axum::routing::any`: an HTTP/2 upgrade is a CONNECT.
//! async fn echo(ws: WebSocketUpgrade) -> Response {
//!     ws.on_upgrade(|mut ws| async move {
//!         while let Some(Ok(message)) = ws.recv().await {
//!             if message.is_data() && ws.send(message).await.is_err() {
//!                 break;
//!             }
//!         }
//!     })
//!     .await
//! }
//! # }
//! ```
//!
//! ## Features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `ring` | **on** | TLS (`wss://`, `https://` proxies, the `tls` module, `Acceptor::accept_tls`) with rustls and the *ring* crypto provider; adds `rustls`, `tokio-rustls`, `ring` |
//! | `aws-lc-rs` | off | the same TLS with the aws-lc-rs provider instead (it wins when `ring` is on too); needs a C compiler, and cmake on some targets; adds `aws-lc-rs` |
//! | `webpki-roots` | **on** | the Mozilla roots in the default root store (`tls::default_root_store`), the same on every machine; adds `webpki-roots` |
//! | `native-roots` | off | the operating system's trust store in the default root store, read once (with `webpki-roots` on too, the store holds both; with neither it is empty: add roots with `add_root_certificate`); adds `rustls-native-certs` |
//! | `serde` | off | typed messages: `send_json`/`recv_json` (JSON with `serde_json`) and the `Codec` trait for other serde formats; adds `serde` and `serde_json` to the dependencies |
//! | `tracing` | off | a `tracing` span per connection (role, peer, subprotocol, extensions) and events for the handshakes, TLS, the close (who, code, reason), failures with their close code and keepalive/idle timeouts; nothing per message, and no cost when off (instructions per echoed 64 B message: 10,107 without, 10,091 with the feature and no subscriber); adds `tracing` |
//! | `hyper` | off | `upgrade`: WebSocket upgrades inside a hyper 1 server, HTTP/1.1 `Upgrade` and HTTP/2 extended CONNECT (RFC 8441), checked and answered by `Acceptor`'s code; adds `hyper` (`http1`, `http2`), `hyper-util`, `http-body-util` |
//! | `axum` | off | `axum::WebSocketUpgrade`, the axum 0.8 extractor, over HTTP/1.1 and HTTP/2; turns on `hyper`; adds `axum` without its default features |
//!
//! With `default-features = false` and neither `ring` nor `aws-lc-rs` on, wsio is `ws://`-only: no
//! TLS crate is compiled (`scripts/check_tls_free.sh` checks `cargo tree`), the `tls` module,
//! `accept_tls`, `tls_config`, `add_root_certificate`, `client_identity` and the TLS methods of
//! `TransportInfo` are absent, and a `wss://` URL or an `https://` proxy fails before any I/O with
//! `Error::Tls(TlsError::NotCompiled)`. `Error::Tls` and `ErrorKind::Tls` exist in every build, so
//! error handling compiles either way. A roots feature without a provider adds nothing.
//!
//! For example, aws-lc-rs with the operating system's roots only, or a `ws://`-only build:
//!
//! ```toml
//! wsio = { version = "0.1", default-features = false, features = ["aws-lc-rs", "native-roots"] }
//! wsio = { version = "0.1", default-features = false }
//! ```
//!
//! `tests/native_roots.rs` connects to a server whose CA only the OS store holds, and
//! `tests/tls_free.rs` shows what the `ws://`-only build does with `wss://`; `scripts/test.sh`
//! checks every combination builds.
//!
//! ## Layout
//!
//! [`proto`] and [`handshake`] are the sans-io core: frames and handshakes as plain functions
//! and state machines, with no I/O, no tokio and no clock. The tokio glue around them is private;
//! [`client`], [`server`], [`tls`] and [`transport`] are the public entry points, with
//! `upgrade` and `axum` for hyper and axum applications (their features).
#![cfg_attr(docsrs, feature(doc_auto_cfg))]
// The docs are written for the default build; without TLS, their links to the TLS items (which
// are then absent) would not resolve.
#![cfg_attr(not(feature = "tls"), allow(rustdoc::broken_intra_doc_links))]

#[cfg(feature = "axum")]
pub mod axum;
pub mod client;
#[cfg(feature = "serde")]
pub mod codec;
mod compression;
mod config;
pub mod error;
pub mod handshake;
pub mod proto;
mod rt;
pub mod server;
#[cfg(feature = "tls")]
pub mod tls;
mod trace;
pub mod transport;
#[cfg(feature = "hyper")]
pub mod upgrade;

pub use client::{connect, connect_on, ClientBuilder};
#[cfg(feature = "serde")]
pub use codec::{Codec, Json};
pub use compression::Compression;
pub use config::Config;
pub use error::{Error, ErrorKind, Result};
pub use http;
pub use proto::close::{CloseCode, CloseFrame};
pub use proto::connection::{ReadyState, Stats};
pub use proto::decoder::DataKind;
pub use proto::deflate::Compress;
pub use proto::message::{Message, Utf8Bytes};
pub use proto::Role;
pub use rt::bytestream::{ByteReadHalf, ByteStream, ByteWriteHalf};
pub use rt::facade::Pong;
pub use rt::reader::MessageReader;
pub use rt::socket::WebSocket;
pub use rt::split::{ReadHalf, ReuniteError, WriteHalf};
pub use rt::writer::MessageWriter;
pub use server::{accept, Acceptor};
pub use transport::{MaybeTlsStream, TransportInfo};

/// The README's examples, compiled and run (`no_run`: compiled only) with the doc tests, so
/// that they stay true to the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
