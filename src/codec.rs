//! Typed messages: serde values in and out of WebSocket messages (the `serde` feature).
//!
//! JSON is built in: [`WebSocket::send_json`] sends a value as a text message and
//! [`WebSocket::recv_json`] receives the next data message as a value, and the halves of
//! [`WebSocket::into_split`] have the same methods. Any other serde format plugs in through
//! [`Codec`], a two-method converter between a value and a [`Message`], used by
//! `send_with_codec` and `recv_with_codec`.
//!
//! ```
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, PartialEq, Serialize, Deserialize)]
//! struct Move {
//!     player: String,
//!     x: u8,
//!     y: u8,
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> wsio::Result<()> {
//! let (client_io, server_io) = tokio::io::duplex(64 * 1024);
//! let server = tokio::spawn(async move {
//!     let mut ws = wsio::accept(server_io).await?;
//!     // Not JSON: an error for this receive only; the connection stays open.
//!     let error = ws.recv_json::<Move>().await.expect("a message").unwrap_err();
//!     assert_eq!(error.kind(), wsio::ErrorKind::Decode);
//!     // The next message is received as usual.
//!     let next: Move = ws.recv_json().await.expect("a message")?;
//!     ws.send_json(&next).await?; // echo
//!     // The peer's close ends the stream of values: `None`, with the code on the connection.
//!     assert!(ws.recv_json::<Move>().await.is_none());
//!     Ok::<_, wsio::Error>(ws.close_code())
//! });
//!
//! let (mut ws, _) = wsio::connect_on(client_io, "ws://example.com/game").await?;
//! ws.send_text("not json").await?;
//! let played = Move { player: "ada".into(), x: 1, y: 2 };
//! ws.send_json(&played).await?;
//! assert_eq!(ws.recv_json::<Move>().await.expect("a message")?, played);
//! ws.close(wsio::CloseCode::NORMAL, "done").await?;
//! assert_eq!(server.await.unwrap()?, Some(wsio::CloseCode::NORMAL));
//! # Ok(()) }
//! ```
//!
//! # What a typed receive does with each message
//!
//! | the next message | `recv_json` / `recv_with_codec` returns |
//! |---|---|
//! | text (or binary) that decodes | `Some(Ok(value))` |
//! | text (or binary) that does not decode, or a binary message for JSON | `Some(Err(e))` with [`ErrorKind::Decode`](crate::ErrorKind::Decode); the connection stays open and [`DecodeError::into_message`] hands the message back |
//! | a ping or a pong | nothing: the connection has already answered the ping (or resolved the [`Pong`](crate::Pong)); the receive waits for the next message, as `recv_stream` does |
//! | the peer's close | `None` once the closing handshake is done; `close_code`/`close_reason` say how it closed |
//! | a protocol violation, a timeout, a transport error | `Some(Err(e))`, as from `recv`, then `None` |
//!
//! # What is copied
//!
//! Receiving, the format reads the message's payload where it lies (the `Bytes` the
//! connection received, or inflated into): JSON is parsed with `serde_json::from_str` on the
//! text, which the connection has already checked as UTF-8, so it is not checked again. The
//! payload is never copied into another buffer. What serde itself copies is the value's owned
//! data: a `String` or `Vec<u8>` field is allocated and filled from the payload, numbers and
//! booleans are parsed into place. The value cannot borrow from the message (`&str` fields)
//! because the message is dropped when the receive returns; to borrow, receive the [`Message`]
//! with `recv` and deserialize a borrowing type from [`Message::as_text`] or
//! [`Message::as_payload`] while you hold it.
//!
//! Sending, the format writes into one growing buffer (`serde_json::to_string`), which becomes
//! the message's payload without a copy.

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::error::{DecodeError, EncodeError, Error, Result};
use crate::proto::message::Message;
use crate::rt::socket::WebSocket;
use crate::rt::split::{ReadHalf, WriteHalf};

/// An error from a [`Codec`], boxed: any `std::error::Error + Send + Sync` converts with `?`.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A converter between serde values and messages: how a format (CBOR, MessagePack, bincode...)
/// plugs into `send_with_codec` and `recv_with_codec`. [`Json`] is the built-in one.
///
/// `decode` is only given data messages (text or binary); pings, pongs and the close are
/// handled before (see the [module docs](self)). Its error becomes an [`Error::Decode`] that
/// leaves the connection open and holds the message; an `encode` error becomes an
/// [`Error::Encode`], and nothing is sent.
///
/// A codec for CBOR with `ciborium`, as binary messages:
///
/// ```
/// use serde::{de::DeserializeOwned, Serialize};
/// use wsio::codec::{BoxError, Codec};
/// use wsio::Message;
///
/// struct Cbor;
///
/// impl Codec for Cbor {
///     fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Message, BoxError> {
///         let mut out = Vec::new();
///         ciborium::into_writer(value, &mut out)?;
///         Ok(Message::binary(out))
///     }
///
///     fn decode<T: DeserializeOwned>(&self, message: &Message) -> Result<T, BoxError> {
///         match message {
///             Message::Binary(data) => Ok(ciborium::from_reader(&data[..])?),
///             _ => Err("expected a binary message".into()),
///         }
///     }
/// }
///
/// let message = Cbor.encode(&(1, "two")).unwrap();
/// assert_eq!(Cbor.decode::<(u8, String)>(&message).unwrap(), (1, "two".to_string()));
/// ```
pub trait Codec {
    /// The message that carries `value`.
    fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Message, BoxError>;

    /// The value a data message carries. Read from the message's payload where it lies
    /// ([`Message::as_payload`], [`Message::as_text`]); copy nothing the format does not need.
    fn decode<T: DeserializeOwned>(&self, message: &Message) -> Result<T, BoxError>;
}

/// JSON (`serde_json`) in text messages: the built-in [`Codec`], used by `send_json` and
/// `recv_json`.
///
/// Encodes into a text message. Decodes text messages only: a binary message is a decode
/// error (holding the message, so a caller whose peer sends JSON as binary can parse
/// [`DecodeError::message`]'s payload with `serde_json::from_slice`). Every decode error's
/// source is a `serde_json::Error`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Json;

impl Codec for Json {
    fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Message, BoxError> {
        Ok(Message::text(serde_json::to_string(value)?))
    }

    fn decode<T: DeserializeOwned>(&self, message: &Message) -> Result<T, BoxError> {
        match message {
            // Already checked as UTF-8 by the connection: `from_str` does not check again.
            Message::Text(text) => Ok(serde_json::from_str(text.as_str())?),
            other => Err(Box::new(<serde_json::Error as serde::de::Error>::custom(
                format_args!(
                    "expected JSON in a text message, got a {} message",
                    match other {
                        Message::Binary(_) => "binary",
                        _ => "control",
                    }
                ),
            ))),
        }
    }
}

/// What one received message means for a typed receive: `Some` to return, `None` to wait for
/// the next one. The one place that decides, for the socket and the read half alike.
fn typed<C: Codec, T: DeserializeOwned>(
    codec: &C,
    received: Option<Result<Message>>,
) -> Option<Option<Result<T>>> {
    match received {
        None => Some(None),
        Some(Err(e)) => Some(Some(Err(e))),
        Some(Ok(message @ (Message::Text(_) | Message::Binary(_)))) => {
            Some(Some(codec.decode(&message).map_err(|source| {
                Error::Decode(Box::new(DecodeError::new(message, source)))
            })))
        }
        // Answered (or matched to their `Pong`) by the connection already.
        Some(Ok(Message::Ping(_) | Message::Pong(_))) => None,
        // The peer's close, answered already: the next receive finishes the closing handshake
        // and returns `None`.
        Some(Ok(Message::Close(_))) => None,
    }
}

fn encoded<C: Codec, T: Serialize + ?Sized>(codec: &C, value: &T) -> Result<Message> {
    codec
        .encode(value)
        .map_err(|e| Error::Encode(EncodeError::new(e)))
}

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocket<S> {
    /// Sends `value` as JSON in a text message. See [`send`](Self::send), and the
    /// [`codec`](crate::codec) module for what is copied.
    ///
    /// An error of `serde_json` is an [`Error::Encode`]; nothing is sent then.
    ///
    /// # Cancel safety
    /// As [`send`](Self::send): the message is queued whole or not at all.
    pub async fn send_json<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.send_with_codec(&Json, value).await
    }

    /// Receives the next data message as a `T` decoded from JSON text; `None` once the
    /// connection has ended.
    ///
    /// A message that does not decode (not JSON, not a `T`, or a binary message) is an
    /// [`Error::Decode`] for this call only: the connection stays open, the error holds the
    /// message, and the next call receives the next message. Pings and pongs are answered or
    /// matched by the connection and passed over; the peer's close ends the values with `None`
    /// ([`close_code`](Self::close_code) says how). The [`codec`](crate::codec) module has the
    /// whole table.
    ///
    /// # Cancel safety
    /// Cancel-safe, as [`recv`](Self::recv): a message is only taken from the connection when
    /// it is decoded and returned.
    pub async fn recv_json<T: DeserializeOwned>(&mut self) -> Option<Result<T>> {
        self.recv_with_codec(&Json).await
    }

    /// Sends `value` encoded by `codec`. See [`send_json`](Self::send_json).
    ///
    /// # Cancel safety
    /// As [`send`](Self::send).
    pub async fn send_with_codec<T: Serialize + ?Sized, C: Codec>(
        &mut self,
        codec: &C,
        value: &T,
    ) -> Result<()> {
        let message = encoded(codec, value)?;
        self.send(message).await
    }

    /// Receives the next data message as a `T` decoded by `codec`. See
    /// [`recv_json`](Self::recv_json).
    ///
    /// # Cancel safety
    /// As [`recv_json`](Self::recv_json).
    pub async fn recv_with_codec<T: DeserializeOwned, C: Codec>(
        &mut self,
        codec: &C,
    ) -> Option<Result<T>> {
        loop {
            if let Some(out) = typed(codec, self.recv().await) {
                return out;
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> ReadHalf<S> {
    /// Receives the next data message as a `T` decoded from JSON text; see
    /// [`WebSocket::recv_json`].
    ///
    /// # Cancel safety
    /// As [`WebSocket::recv_json`].
    pub async fn recv_json<T: DeserializeOwned>(&mut self) -> Option<Result<T>> {
        self.recv_with_codec(&Json).await
    }

    /// Receives the next data message as a `T` decoded by `codec`; see
    /// [`WebSocket::recv_json`].
    ///
    /// # Cancel safety
    /// As [`WebSocket::recv_json`].
    pub async fn recv_with_codec<T: DeserializeOwned, C: Codec>(
        &mut self,
        codec: &C,
    ) -> Option<Result<T>> {
        loop {
            if let Some(out) = typed(codec, self.recv().await) {
                return out;
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WriteHalf<S> {
    /// Sends `value` as JSON in a text message; see [`WebSocket::send_json`].
    ///
    /// # Cancel safety
    /// As [`WebSocket::send`].
    pub async fn send_json<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.send_with_codec(&Json, value).await
    }

    /// Sends `value` encoded by `codec`; see [`WebSocket::send_json`].
    ///
    /// # Cancel safety
    /// As [`WebSocket::send`].
    pub async fn send_with_codec<T: Serialize + ?Sized, C: Codec>(
        &mut self,
        codec: &C,
        value: &T,
    ) -> Result<()> {
        let message = encoded(codec, value)?;
        self.send(message).await
    }
}
