//! Drives the sans-io opening handshake over a transport.
//!
//! Bytes read past the HTTP head are handed to the WebSocket: a client's first frame may arrive
//! in the same packet as the request, a server's in the same packet as the 101.

use std::future::Future;

use bytes::{Buf, Bytes, BytesMut};
use http::{Request, Response, StatusCode};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{timeout_at, Instant};

use super::shutdown::{self, Shutdown};
use super::socket::WebSocket;
use crate::config::Config;
use crate::error::{Error, HandshakeError, Result, Timeout};
use crate::handshake::client::{content_length, ClientHandshake, ParsedResponse, MAX_REFUSED_BODY};
use crate::handshake::server::{parse_request, write_response, Accept, Reject, UpgradeKind};
use crate::handshake::Negotiated;
use crate::proto::Role;
use crate::trace::{conn_event, loose_event};

/// How much to read at a time while the HTTP head is incomplete.
const HEAD_READ: usize = 1024;

async fn read_more<S: AsyncRead + Unpin>(io: &mut S, buf: &mut BytesMut, what: &str) -> Result<()> {
    buf.reserve(HEAD_READ);
    if io.read_buf(buf).await? == 0 {
        return Err(Error::Io(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("connection closed during the opening handshake ({what})"),
        )));
    }
    Ok(())
}

// Where the clients and the server find it; it lives in `rt` so that the shutdown, which this
// file registers connections with, can use it too.
pub(crate) use super::deadline_after;

/// The error of an opening handshake that did not finish by its deadline.
pub(crate) fn handshake_timeout() -> Error {
    Error::Timeout(Timeout::Handshake)
}

/// Sends the upgrade request and checks the answer, all before `deadline`.
pub(crate) async fn client<S>(
    mut io: S,
    handshake: ClientHandshake,
    config: Config,
    deadline: Instant,
) -> Result<(WebSocket<S>, Response<()>)>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    config.validate()?;
    let mut buf = BytesMut::new();
    let exchange = client_exchange(&mut io, &handshake, &config, &mut buf);
    let parsed = match timeout_at(deadline, exchange).await {
        Err(_elapsed) => return Err(handshake_timeout()),
        Ok(Err(e)) => return Err(e),
        Ok(Ok(Ok(parsed))) => parsed,
        Ok(Ok(Err(refused))) => return Err(refusal(&mut io, refused, deadline).await),
    };
    buf.advance(parsed.head_len);
    let ws = WebSocket::from_negotiated(io, Role::Client, config, buf, parsed.negotiated())?;
    conn_event!(ws.span(), DEBUG, "opening handshake done");
    Ok((ws, parsed.response))
}

/// Writes the request and reads the response head: a 101 that passed every check, or a refusal
/// with the body bytes that came with its head.
async fn client_exchange<S>(
    io: &mut S,
    handshake: &ClientHandshake,
    config: &Config,
    buf: &mut BytesMut,
) -> Result<std::result::Result<ParsedResponse, Response<Bytes>>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut out = Vec::with_capacity(512);
    handshake.write_request(&mut out);
    io.write_all(&out).await?;
    io.flush().await?;
    let max = config.get_max_handshake_size();
    loop {
        match handshake.parse_response(buf, max) {
            Ok(Some(parsed)) => return Ok(Ok(parsed)),
            Ok(None) => read_more(io, buf, "waiting for the response").await?,
            Err(HandshakeError::Refused(response)) => return Ok(Err(*response)),
            Err(e) => return Err(e.into()),
        }
    }
}

/// The error of a `refused` upgrade, whose body is what came with its head and what `io`
/// brings of the rest by `deadline` (all a refusal carries), bounded as [`read_refusal_body`]
/// says: over HTTP/1.1, `io` is the connection; over HTTP/2, the refused stream.
pub(crate) async fn refusal<S: AsyncRead + Unpin>(
    io: &mut S,
    refused: Response<Bytes>,
    deadline: Instant,
) -> Error {
    let (parts, first) = refused.into_parts();
    let head = Response::from_parts(parts, ());
    let mut body = BytesMut::from(&first[..]);
    let _ = timeout_at(deadline, read_refusal_body(io, &head, &mut body)).await;
    let (parts, ()) = head.into_parts();
    let response = Response::from_parts(parts, body.freeze());
    loose_event!(
        DEBUG,
        status = response.status().as_u16(),
        "the server refused the upgrade"
    );
    HandshakeError::Refused(Box::new(response)).into()
}

/// Appends to `body` what the server sends of a refusal's body, up to its announced length and
/// [`MAX_REFUSED_BODY`].
async fn read_refusal_body<S: AsyncRead + Unpin>(
    io: &mut S,
    head: &Response<()>,
    body: &mut BytesMut,
) {
    let limit = content_length(head)
        .unwrap_or(MAX_REFUSED_BODY)
        .min(MAX_REFUSED_BODY);
    // Without a length only a closing server ends the body; chunked bodies are not decoded.
    let readable = content_length(head).is_some()
        || !head.headers().contains_key(http::header::TRANSFER_ENCODING);
    let mut buf = BytesMut::new();
    while readable && body.len() < limit {
        buf.clear();
        buf.reserve(limit - body.len());
        match io.read_buf(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => body.extend_from_slice(&buf[..n.min(limit - body.len())]),
        }
    }
}

/// An upgrade request read and checked, with the transport it came on: what a server answers.
#[derive(Debug)]
pub(crate) struct ReadRequest<S> {
    pub(crate) io: S,
    /// The request head, then whatever the client sent after it (frames, at times).
    pub(crate) buf: BytesMut,
    pub(crate) head_len: usize,
    pub(crate) request: Request<()>,
}

/// Reads and checks the upgrade request, before `deadline`. A malformed one is answered with
/// its refusal (400, 405, 426, 431, 505) and returned as the error.
pub(crate) async fn server_read<S>(
    mut io: S,
    config: &Config,
    deadline: Instant,
) -> Result<ReadRequest<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    config.validate()?;
    let mut buf = BytesMut::new();
    let parsed = timeout_at(deadline, read_request(&mut io, config, &mut buf)).await;
    match parsed {
        Err(_elapsed) => Err(handshake_timeout()),
        Ok(Err(e)) => Err(e),
        Ok(Ok(Ok((request, head_len)))) => Ok(ReadRequest {
            io,
            buf,
            head_len,
            request,
        }),
        Ok(Ok(Err(e))) => {
            let reject = Reject::for_error(&e);
            loose_event!(
                DEBUG,
                status = reject.status().as_u16(),
                "refused an upgrade request: {e}"
            );
            send_refusal(&mut io, &reject, deadline).await;
            Err(e.into())
        }
    }
}

/// Answers a read request with `reject`, before `deadline`, and closes the transport; too late,
/// only closes it.
pub(crate) async fn server_reject<S>(
    read: ReadRequest<S>,
    reject: &Reject,
    deadline: Instant,
) -> Result<()>
where
    S: AsyncWrite + Unpin,
{
    let mut io = read.io;
    if Instant::now() >= deadline {
        return Err(handshake_timeout());
    }
    loose_event!(
        DEBUG,
        status = reject.status().as_u16(),
        path = %read.request.uri(),
        "refused an upgrade request"
    );
    send_refusal(&mut io, reject, deadline).await;
    Ok(())
}

/// Answers a read request with the 101 `accept` makes, before `deadline`; the connection
/// joins `shutdown`'s set, when there is one.
///
/// Not an `async fn`: what can be decided at once (the answer, its bytes) is decided here, so
/// that the future returned holds only what the write needs and what the connection is built
/// from, once. An `async fn` keeps its arguments for its whole life beside the locals made from
/// them, and every idle connection's task keeps room for its accept future for as long as the
/// connection lives.
pub(crate) fn server_accept<S>(
    read: ReadRequest<S>,
    accept: Accept,
    config: Config,
    deadline: Instant,
    shutdown: Option<Shutdown>,
) -> impl Future<Output = Result<(WebSocket<S>, Request<()>)>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let ReadRequest {
        mut io,
        mut buf,
        head_len,
        request,
    } = read;
    // A shutdown that began while the application decided refuses here, through the same
    // await as the 500.
    let mut out = Vec::with_capacity(256);
    let answer = if Instant::now() >= deadline {
        Answer::TimedOut
    } else {
        let answer = match shutdown::refusal(shutdown.as_ref()) {
            Some(reject) => {
                let status = reject.status();
                Err((reject, HandshakeError::Rejected { status }))
            }
            None => accept_answer(UpgradeKind::Http11, &accept, &request, &config),
        };
        match answer {
            Ok((response, negotiated)) => {
                write_response(&response, &[], &mut out);
                Answer::Upgrade(negotiated)
            }
            Err((reject, e)) => {
                reject.write(&mut out);
                Answer::Refusal(e)
            }
        }
    };
    async move {
        let negotiated = match answer {
            Answer::TimedOut => return Err(handshake_timeout()),
            Answer::Refusal(e) => {
                write_refusal(&mut io, &out, deadline).await;
                return Err(e.into());
            }
            Answer::Upgrade(negotiated) => negotiated,
        };
        let write = async {
            io.write_all(&out).await?;
            io.flush().await
        };
        timeout_at(deadline, write)
            .await
            .map_err(|_elapsed| handshake_timeout())??;
        buf.advance(head_len);
        let ws = server_socket(io, config, buf, negotiated, &request, shutdown.as_ref())?;
        Ok((ws, request))
    }
}

/// What [`server_accept`] answers, decided before its future starts; the bytes to write are
/// made beside it.
enum Answer {
    /// The deadline passed while the application decided: nothing is written.
    TimedOut,
    /// Refused (by a shutdown, or a request `accept` cannot answer), with the error returned.
    Refusal(HandshakeError),
    /// Upgraded, with what was agreed.
    Upgrade(Negotiated),
}

/// The answer `accept` makes to `request`, which asked for a WebSocket as `kind` says, with
/// the permessage-deflate preferences of `config`, and what it agrees on. When `accept` does
/// not fit the request (a subprotocol the client did not offer), the `500` to answer instead,
/// and why.
pub(crate) fn accept_answer(
    kind: UpgradeKind,
    accept: &Accept,
    request: &Request<()>,
    config: &Config,
) -> std::result::Result<(Response<()>, Negotiated), (Reject, HandshakeError)> {
    let deflate = config
        .get_compression()
        .map(|compression| compression.params(Role::Server));
    accept
        .response_as(kind, request, deflate.as_ref())
        .map_err(|e| (Reject::new(StatusCode::INTERNAL_SERVER_ERROR), e))
}

/// A server's connection over `io`, once the opening handshake that `request` started has
/// been answered: `leftover` holds what the client sent past its request (a pipelined first
/// frame), `negotiated` what the answer agreed on. It joins the acceptor's `shutdown`, when
/// there is one.
///
/// The one place a server connection is built, whichever way the upgrade came (a raw
/// transport through `Acceptor`, hyper's or axum's upgrade): what every server connection
/// gets at its start goes here, once.
pub(crate) fn server_socket<S>(
    io: S,
    config: Config,
    leftover: BytesMut,
    negotiated: Negotiated,
    request: &Request<()>,
    shutdown: Option<&Shutdown>,
) -> Result<WebSocket<S>> {
    let mut ws = WebSocket::from_negotiated(io, Role::Server, config, leftover, negotiated)?;
    ws.driver.join(shutdown);
    conn_event!(ws.span(), DEBUG, path = %request.uri(), "opening handshake done");
    // Only the event above reads the request.
    #[cfg(not(feature = "tracing"))]
    let _ = request;
    Ok(ws)
}

/// Reads until `buf` starts with a complete request head, and parses it: the outer error is
/// transport I/O, the inner one a request to refuse.
async fn read_request<S: AsyncRead + Unpin>(
    io: &mut S,
    config: &Config,
    buf: &mut BytesMut,
) -> Result<std::result::Result<(Request<()>, usize), HandshakeError>> {
    loop {
        match parse_request(
            buf,
            config.get_max_handshake_size(),
            config.get_max_handshake_headers(),
        ) {
            Ok(Some(parsed)) => return Ok(Ok(parsed)),
            Ok(None) => read_more(io, buf, "waiting for the request").await?,
            Err(e) => return Ok(Err(e)),
        }
    }
}

/// Writes a refusal and closes the transport, giving up at `deadline`; the peer may already be
/// gone, which is fine.
async fn send_refusal<S: AsyncWrite + Unpin>(io: &mut S, reject: &Reject, deadline: Instant) {
    let mut out = Vec::with_capacity(256);
    reject.write(&mut out);
    write_refusal(io, &out, deadline).await;
}

/// Writes a refusal's bytes and closes the transport, giving up at `deadline`.
async fn write_refusal<S: AsyncWrite + Unpin>(io: &mut S, refusal: &[u8], deadline: Instant) {
    let send = async {
        let _ = io.write_all(refusal).await;
        let _ = io.shutdown().await;
    };
    let _ = timeout_at(deadline, send).await;
}
