//! The tokio side of a hyper upgrade: the connection hyper hands over once it has sent the
//! answer, and the future that waits for it and builds the [`WebSocket`] on it.

use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::BytesMut;
use http::Request;
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::handshake::server_socket;
use super::shutdown::Shutdown;
use super::socket::WebSocket;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::handshake::Negotiated;

/// The connection of an upgraded request, as hyper hands it over: the HTTP/1.1 connection
/// after the `101`, or the HTTP/2 stream of an extended CONNECT after its `200`. Bytes hyper
/// had read past the request (a client's pipelined first frame) come out of it first.
///
/// It is tokio's `AsyncRead + AsyncWrite`; [`into_inner`](Self::into_inner) gives hyper's
/// [`Upgraded`], whose `downcast` recovers the original transport of an HTTP/1.1 connection.
#[derive(Debug)]
pub struct UpgradedIo(TokioIo<Upgraded>);

impl UpgradedIo {
    /// Hyper's upgraded connection.
    pub fn into_inner(self) -> Upgraded {
        self.0.into_inner()
    }
}

impl AsyncRead for UpgradedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for UpgradedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

/// What the connection is built with once hyper hands it over.
#[derive(Debug)]
struct Agreed {
    config: Config,
    negotiated: Negotiated,
    request: Request<()>,
    /// The acceptor's shutdown, which the connection joins.
    shutdown: Option<Shutdown>,
}

/// The [`WebSocket`] of an accepted upgrade, once hyper hands the connection over: after the
/// answer has been sent, which happens only when the answer returned with this future is
/// given back to hyper as the response. Await it in a task of its own (hyper sends the answer
/// after the service returns).
///
/// # Errors
/// [`Error::Io`] when hyper does not hand the connection over: the client went away before
/// the answer was sent, the request was not an upgrade hyper can carry out (an HTTP/2 server
/// without `enable_connect_protocol`), or the response given to hyper was not this one.
///
/// # Cancel safety
/// Dropping the future drops the connection (hyper closes it).
#[derive(Debug)]
#[must_use = "the WebSocket comes out of this future: await it once the answer is sent"]
pub struct UpgradeFuture {
    on_upgrade: OnUpgrade,
    agreed: Option<Agreed>,
}

impl UpgradeFuture {
    /// Waits for `on_upgrade`, then builds the server's connection on it with what the
    /// handshake of `request` agreed on; the connection joins `shutdown`, when there is one.
    pub(crate) fn new(
        on_upgrade: OnUpgrade,
        config: Config,
        negotiated: Negotiated,
        request: Request<()>,
        shutdown: Option<Shutdown>,
    ) -> Self {
        UpgradeFuture {
            on_upgrade,
            agreed: Some(Agreed {
                config,
                negotiated,
                request,
                shutdown,
            }),
        }
    }
}

impl Future for UpgradeFuture {
    type Output = Result<WebSocket<UpgradedIo>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let upgraded = ready!(Pin::new(&mut this.on_upgrade).poll(cx));
        // Polled again after it finished: there is no second connection to give.
        let Some(agreed) = this.agreed.take() else {
            return Poll::Ready(Err(Error::Closed));
        };
        let upgraded = upgraded.map_err(|e| {
            Error::Io(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                format!("hyper did not hand over the upgraded connection: {e}"),
            ))
        })?;
        // hyper's `Upgraded` replays what it read past the request before reading the
        // connection again: nothing is left over here.
        Poll::Ready(server_socket(
            UpgradedIo(TokioIo::new(upgraded)),
            agreed.config,
            BytesMut::new(),
            agreed.negotiated,
            &agreed.request,
            agreed.shutdown.as_ref(),
        ))
    }
}
