//! Optional instrumentation with `tracing` (the `tracing` feature): a span per connection and
//! events at its milestones, never on the per-message path.
//!
//! Each connection has a `websocket` span (level INFO) with its role, subprotocol and
//! extensions, and the peer's address when wsio dialed it. The span is made when the
//! connection is, as a child of the span current then: a server's accept loop that runs each
//! connection in a span of its own (with the peer's address it accepted) gets wsio's span and
//! events inside it. Events (their parent is the connection's span):
//!
//! | level | event |
//! |---|---|
//! | DEBUG | the opening handshake done (and TLS version, cipher suite, ALPN over TLS) |
//! | DEBUG | the connection closed: who closed first, the codes and reason each side sent |
//! | WARN | the connection failed: the violation or limit, and the close code sent for it |
//! | INFO | a keepalive (pong) or idle timeout gave up on the peer |
//!
//! Refused upgrades (either side) are DEBUG events outside any connection span. Without the
//! feature the span is an empty struct and every event expands to nothing.

#[cfg(feature = "tracing")]
pub(crate) use tracing::Span as ConnSpan;

/// Without the `tracing` feature: nothing, at no cost.
#[cfg(not(feature = "tracing"))]
#[derive(Debug, Clone, Default)]
pub(crate) struct ConnSpan;

/// An event at `$level` (a `tracing::Level` name) whose parent is the span `$span` (a
/// reference to a [`ConnSpan`]); the rest
/// is what `tracing::event!` takes. Expands to nothing without the `tracing` feature, where its
/// arguments are not evaluated.
macro_rules! conn_event {
    ($span:expr, $level:ident, $($rest:tt)+) => {{
        #[cfg(feature = "tracing")]
        ::tracing::event!(parent: $span, ::tracing::Level::$level, $($rest)+);
        #[cfg(not(feature = "tracing"))]
        let _ = $span;
    }};
}

/// An event outside any connection (a refused upgrade); as [`conn_event`].
macro_rules! loose_event {
    ($level:ident, $($rest:tt)+) => {{
        #[cfg(feature = "tracing")]
        ::tracing::event!(::tracing::Level::$level, $($rest)+);
    }};
}

pub(crate) use {conn_event, loose_event};

/// The span of a new connection.
#[cfg(feature = "tracing")]
pub(crate) fn conn_span(role: crate::Role, negotiated: &crate::handshake::Negotiated) -> ConnSpan {
    tracing::info_span!(
        "websocket",
        role = ?role,
        peer = tracing::field::Empty,
        protocol = negotiated.subprotocol(),
        extensions = negotiated.extensions(),
    )
}

/// The span of a new connection.
#[cfg(not(feature = "tracing"))]
#[inline(always)]
pub(crate) fn conn_span(_: crate::Role, _: &crate::handshake::Negotiated) -> ConnSpan {
    ConnSpan
}

/// Records the peer's address on a connection's span.
#[cfg(feature = "tracing")]
fn record_peer(span: &ConnSpan, peer: std::net::SocketAddr) {
    span.record("peer", tracing::field::display(peer));
}

/// A connection wsio dialed over `io` is open: the peer's address goes on its `span` and,
/// over TLS, an event says what TLS agreed.
#[inline(always)]
pub(crate) fn dialed(span: &ConnSpan, io: &crate::MaybeTlsStream) {
    #[cfg(feature = "tracing")]
    {
        if let Ok(peer) = io.tcp().peer_addr() {
            record_peer(span, peer);
        }
        // TLS with the server: over TCP, or inside an `https://` proxy's TLS (`peer` is then
        // the proxy, the TCP peer).
        #[cfg(feature = "tls")]
        match io {
            crate::MaybeTlsStream::Rustls(tls) => tls_event(span, tls.get_ref().1),
            crate::MaybeTlsStream::ProxyTlsRustls(tls) => tls_event(span, tls.get_ref().1),
            _ => {}
        }
    }
    #[cfg(not(feature = "tracing"))]
    let _ = (span, io);
}

/// A connection accepted over `tls` is open: an event on its `span` says what TLS agreed.
#[cfg(feature = "tls")]
#[inline(always)]
pub(crate) fn tls_accepted<S>(span: &ConnSpan, tls: &tokio_rustls::server::TlsStream<S>) {
    #[cfg(feature = "tracing")]
    tls_event(span, tls.get_ref().1);
    #[cfg(not(feature = "tracing"))]
    let _ = (span, tls);
}

/// The TLS version, cipher suite, ALPN and how many certificates the peer presented.
#[cfg(all(feature = "tracing", feature = "tls"))]
fn tls_event(span: &ConnSpan, tls: &rustls::CommonState) {
    conn_event!(
        span,
        DEBUG,
        tls_version = ?tls.protocol_version(),
        cipher_suite = ?tls.negotiated_cipher_suite().map(|suite| suite.suite()),
        alpn = tls.alpn_protocol().map(String::from_utf8_lossy).as_deref(),
        peer_certificates = tls.peer_certificates().map(<[_]>::len),
        "TLS in use"
    );
}
