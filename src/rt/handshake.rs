//! Drives the sans-io opening handshake over a transport.
//!
//! Bytes read past the HTTP head are handed to the WebSocket: a client's first frame may arrive
//! in the same packet as the request, a server's in the same packet as the 101.

use bytes::{Buf, Bytes, BytesMut};
use http::{Request, Response, StatusCode};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::socket::WebSocket;
use crate::config::Config;
use crate::error::{Error, HandshakeError, Result};
use crate::handshake::client::{content_length, ClientHandshake, MAX_REFUSED_BODY};
use crate::handshake::server::{accept_response, parse_request, reject_response, write_response};
use crate::proto::Role;
use crate::server::{Accept, Reject};

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

/// Sends the upgrade request and checks the answer.
pub(crate) async fn client<S>(
    mut io: S,
    handshake: ClientHandshake,
    config: Config,
) -> Result<(WebSocket<S>, Response<()>)>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    config.validate()?;
    let mut out = Vec::with_capacity(512);
    handshake.write_request(&mut out);
    io.write_all(&out).await?;
    io.flush().await?;
    let mut buf = BytesMut::new();
    let max = config.get_max_handshake_size();
    let parsed = loop {
        match handshake.parse_response(&buf, max) {
            Ok(Some(parsed)) => break parsed,
            Ok(None) => read_more(&mut io, &mut buf, "waiting for the response").await?,
            Err(HandshakeError::Refused(response)) => {
                return Err(read_refusal_body(&mut io, *response, &mut buf).await.into())
            }
            Err(e) => return Err(e.into()),
        }
    };
    buf.advance(parsed.head_len);
    let ws = WebSocket::from_raw_socket(io, Role::Client, config, buf)?;
    Ok((ws, parsed.response))
}

/// Completes a refusal's body up to its announced length and [`MAX_REFUSED_BODY`].
async fn read_refusal_body<S: AsyncRead + Unpin>(
    io: &mut S,
    response: Response<Bytes>,
    buf: &mut BytesMut,
) -> HandshakeError {
    let (parts, body) = response.into_parts();
    let head = Response::from_parts(parts.clone(), ());
    let limit = content_length(&head)
        .unwrap_or(MAX_REFUSED_BODY)
        .min(MAX_REFUSED_BODY);
    let mut body = BytesMut::from(&body[..]);
    // Without a length only a closing server ends the body; chunked bodies are not decoded.
    let readable = content_length(&head).is_some()
        || !head.headers().contains_key(http::header::TRANSFER_ENCODING);
    while readable && body.len() < limit {
        buf.clear();
        buf.reserve(limit - body.len());
        match io.read_buf(buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => body.extend_from_slice(&buf[..n.min(limit - body.len())]),
        }
    }
    HandshakeError::Refused(Box::new(Response::from_parts(parts, body.freeze())))
}

/// Reads the upgrade request, asks `decide`, and answers with a 101 or a refusal.
pub(crate) async fn server<S, F>(
    mut io: S,
    config: Config,
    decide: F,
) -> Result<(WebSocket<S>, Request<()>)>
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: FnOnce(&Request<()>) -> std::result::Result<Accept, Reject>,
{
    config.validate()?;
    let mut buf = BytesMut::new();
    let parsed = loop {
        match parse_request(
            &buf,
            config.get_max_handshake_size(),
            config.get_max_handshake_headers(),
        ) {
            Ok(Some(parsed)) => break parsed,
            Ok(None) => read_more(&mut io, &mut buf, "waiting for the request").await?,
            Err(e) => {
                let status = e.status_for_reply().unwrap_or(StatusCode::BAD_REQUEST);
                let body = e.to_string();
                send_refusal(&mut io, Reject::new(status).body(body)).await;
                return Err(e.into());
            }
        }
    };
    let (request, head_len) = parsed;
    let accept = match decide(&request) {
        Ok(accept) => accept,
        Err(reject) => {
            let status = reject.0.status;
            send_refusal(&mut io, reject).await;
            return Err(HandshakeError::Rejected { status }.into());
        }
    };
    let response = match accept_response(&request, accept.protocol.as_deref(), &accept.headers) {
        Ok(response) => response,
        Err(e) => {
            send_refusal(&mut io, Reject::new(StatusCode::INTERNAL_SERVER_ERROR)).await;
            return Err(e.into());
        }
    };
    let mut out = Vec::with_capacity(256);
    write_response(&response, &[], &mut out);
    io.write_all(&out).await?;
    io.flush().await?;
    buf.advance(head_len);
    let ws = WebSocket::from_raw_socket(io, Role::Server, config, buf)?;
    Ok((ws, request))
}

/// Writes a refusal and closes the transport; the peer may already be gone, which is fine.
async fn send_refusal<S: AsyncWrite + Unpin>(io: &mut S, reject: Reject) {
    let reject = *reject.0;
    let response = reject_response(reject.status, &reject.headers, reject.body.len());
    let mut out = Vec::with_capacity(256 + reject.body.len());
    write_response(&response, &reject.body, &mut out);
    let _ = io.write_all(&out).await;
    let _ = io.shutdown().await;
}
