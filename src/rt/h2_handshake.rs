//! Drives the HTTP/2 side of RFC 8441: the connection's start, up to knowing whether the server
//! takes WebSockets, and the extended CONNECT that opens each one.

use bytes::{Bytes, BytesMut};
use h2::client::SendRequest;
use h2::ext::Protocol;
use http::Response;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{timeout_at, Instant};

use super::h2_stream::{io_error, H2Stream};
use super::handshake::{handshake_timeout, refusal};
use super::socket::WebSocket;
use crate::config::Config;
use crate::error::{Error, HandshakeError, Result};
use crate::handshake::connect::{ConnectHandshake, PROTOCOL};
use crate::proto::Role;
use crate::trace::{conn_event, loose_event};

/// The receive window of each stream: how much a server may send on one WebSocket that the
/// application has not read yet, and so what h2 may hold for it. 1 MiB keeps a loopback or LAN
/// transfer from waiting on window updates.
const STREAM_WINDOW: u32 = 1 << 20;

/// The receive window of the whole connection, shared by its streams: four streams' worth, so
/// that one unread stream does not stall the others.
const CONNECTION_WINDOW: u32 = 4 * STREAM_WINDOW;

/// Starts HTTP/2 over `io` (the preface, then the connection task, spawned), before `deadline`,
/// and returns the handle that opens streams once the server's SETTINGS are known to allow
/// extended CONNECT.
///
/// h2 applies the server's SETTINGS when they arrive, and until then reports extended CONNECT
/// as off. A server sends its SETTINGS first, so the answer to a PING sent after the preface
/// comes after them: once it is back, the SETTINGS have been applied.
///
/// # Errors
/// [`HandshakeError::ExtendedConnectNotEnabled`]; [`Error::Io`] when the server is not an
/// HTTP/2 server or the transport fails; [`Error::Timeout`] past `deadline`.
pub(crate) async fn start<S>(io: S, deadline: Instant) -> Result<SendRequest<Bytes>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let setup = async {
        let (send, mut connection) = h2::client::Builder::new()
            .initial_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .handshake::<_, Bytes>(io)
            .await
            .map_err(io_error)?;
        let mut ping_pong = connection.ping_pong().ok_or_else(|| {
            Error::Io(std::io::Error::other(
                "the HTTP/2 connection has no PING handle",
            ))
        })?;
        // The task ends when the connection does: when the server closes it, or when every
        // `Http2Connection` and stream is dropped (h2 then sends GOAWAY). Its error reaches the
        // streams, which fail with it.
        tokio::spawn(async move {
            let _ended = connection.await;
            loose_event!(DEBUG, error = ?_ended.err(), "the HTTP/2 connection ended");
        });
        ping_pong.ping(h2::Ping::opaque()).await.map_err(io_error)?;
        Ok::<_, Error>(send)
    };
    let send = timeout_at(deadline, setup)
        .await
        .map_err(|_elapsed| handshake_timeout())??;
    if !send.is_extended_connect_protocol_enabled() {
        return Err(HandshakeError::ExtendedConnectNotEnabled.into());
    }
    Ok(send)
}

/// Opens a WebSocket on the connection of `send` with `handshake`'s extended CONNECT, before
/// `deadline`, and checks the answer. A refusal carries what arrived of its body by then, at
/// most [`MAX_REFUSED_BODY`](crate::handshake::client::MAX_REFUSED_BODY).
pub(crate) async fn open(
    send: &SendRequest<Bytes>,
    handshake: &ConnectHandshake,
    config: Config,
    deadline: Instant,
) -> Result<(WebSocket<H2Stream>, Response<()>)> {
    config.validate()?;
    let (head, mut stream) = timeout_at(deadline, exchange(send, handshake))
        .await
        .map_err(|_elapsed| handshake_timeout())??;
    match handshake.check_response(&head) {
        Ok(negotiated) => {
            let ws = WebSocket::from_negotiated(
                stream,
                Role::Client,
                config,
                BytesMut::new(),
                negotiated,
            )?;
            conn_event!(ws.span(), DEBUG, "opening handshake done (HTTP/2)");
            Ok((ws, head))
        }
        Err(HandshakeError::Refused(refused)) => {
            Err(refusal(&mut stream, *refused, deadline).await)
        }
        Err(error) => Err(error.into()),
    }
}

/// Sends the request, when the connection has room for another stream, and waits for the
/// response head.
async fn exchange(
    send: &SendRequest<Bytes>,
    handshake: &ConnectHandshake,
) -> Result<(Response<()>, H2Stream)> {
    let mut send = send.clone().ready().await.map_err(io_error)?;
    // Checked again for each stream: a connection made by `start` has it, but nothing stops
    // a server from turning it off in later SETTINGS.
    if !send.is_extended_connect_protocol_enabled() {
        return Err(HandshakeError::ExtendedConnectNotEnabled.into());
    }
    let mut request = handshake.request().clone();
    request
        .extensions_mut()
        .insert(Protocol::from_static(PROTOCOL));
    let (response, send_stream) = send.send_request(request, false).map_err(io_error)?;
    let (parts, recv_stream) = response.await.map_err(io_error)?.into_parts();
    Ok((
        Response::from_parts(parts, ()),
        H2Stream::new(send_stream, recv_stream),
    ))
}
