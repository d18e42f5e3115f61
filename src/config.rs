//! Connection settings.

use std::time::Duration;

use crate::compression::Compression;
use crate::error::Error;
use crate::proto::connection::ProtoConfig;

/// Settings for one connection, client or server. Every setter states its default.
///
/// ```
/// let config = wsio::Config::default()
///     .max_message_size(1 << 20)
///     .write_buffer_size(64 * 1024);
/// assert_eq!(config.get_max_message_size(), 1 << 20);
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    max_frame_size: usize,
    max_message_size: usize,
    write_buffer_size: usize,
    read_buffer_size: usize,
    close_timeout: Duration,
    max_handshake_size: usize,
    max_handshake_headers: usize,
    handshake_timeout: Duration,
    ping_interval: Option<Duration>,
    pong_timeout: Duration,
    idle_timeout: Option<Duration>,
    stream_fragment_size: usize,
    max_stream_message_size: Option<usize>,
    read_ahead_size: usize,
    compression: Option<Compression>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_frame_size: 16 << 20,
            max_message_size: 64 << 20,
            write_buffer_size: 128 << 10,
            read_buffer_size: 8 << 10,
            close_timeout: Duration::from_secs(5),
            max_handshake_size: 16 << 10,
            max_handshake_headers: 64,
            handshake_timeout: Duration::from_secs(10),
            ping_interval: None,
            pong_timeout: Duration::from_secs(20),
            idle_timeout: None,
            stream_fragment_size: 1 << 20,
            max_stream_message_size: None,
            read_ahead_size: 1 << 20,
            compression: Some(Compression::default()),
        }
    }
}

impl Config {
    /// Largest frame payload the **message API** accepts from the peer (`recv`, the read half,
    /// the `Stream` of messages): a header announcing more fails the connection with 1009 before
    /// any of the payload is read. The stream API has no frame limit (see
    /// [`max_stream_message_size`](Self::max_stream_message_size)). A large frame that arrives
    /// while nobody receives waits, unread, for the next receiver: its limits then apply.
    /// Default: 16 MiB.
    pub fn max_frame_size(mut self, bytes: usize) -> Self {
        self.max_frame_size = bytes;
        self
    }

    /// Largest message the message API assembles; a frame that would take a message past it fails
    /// the connection with 1009 as soon as its header arrives. The stream API does not assemble
    /// messages and is not bound by this. Default: 64 MiB.
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self
    }

    /// How many bytes may wait to be written before senders wait (backpressure). A single message
    /// larger than this is still accepted whole, and the next send waits until it has drained.
    /// Default: 128 KiB.
    pub fn write_buffer_size(mut self, bytes: usize) -> Self {
        self.write_buffer_size = bytes;
        self
    }

    /// The smallest read: how much room the read buffer makes before each read from the socket.
    /// It grows beyond this only to hold the frame in hand. Default: 8 KiB.
    pub fn read_buffer_size(mut self, bytes: usize) -> Self {
        self.read_buffer_size = bytes;
        self
    }

    /// How long to wait for the peer to finish the closing handshake (its close frame, and for a
    /// client the server's TCP close) before dropping the connection. Default: 5 s.
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// Largest HTTP head accepted in the opening handshake (request line or status line plus
    /// headers). Default: 16 KiB.
    pub fn max_handshake_size(mut self, bytes: usize) -> Self {
        self.max_handshake_size = bytes;
        self
    }

    /// Most header lines accepted in the opening handshake. Default: 64.
    pub fn max_handshake_headers(mut self, count: usize) -> Self {
        self.max_handshake_headers = count;
        self
    }

    /// Largest frame the stream API sends: bytes written to a [`MessageWriter`](crate::MessageWriter)
    /// or [`ByteStream`](crate::ByteStream) are cut into frames of at most this size (a flush cuts
    /// one early). Also the most a streaming writer buffers: it copies (and a client masks) bytes
    /// into a frame buffer that starts at 16 KiB and grows towards this size only while frames
    /// fill up, so interactive streams stay small and bulk transfers make few large writes.
    /// Default: 1 MiB (measured: 64 KiB frames reach about 0.75x of raw TCP through
    /// `tokio::io::copy`, 1 MiB frames about 1x; see `benches/compare`).
    pub fn stream_fragment_size(mut self, bytes: usize) -> Self {
        self.stream_fragment_size = bytes;
        self
    }

    /// Largest message a [`MessageReader`](crate::MessageReader) or
    /// [`ByteStream`](crate::ByteStream) reads, and the only limit of the **stream API**:
    /// streamed messages are never assembled in memory, so neither
    /// [`max_message_size`](Self::max_message_size) nor [`max_frame_size`](Self::max_frame_size)
    /// applies (a 1 GiB message sent as one frame streams through in bounded memory). `None`
    /// means no limit. A frame that would take a message past it fails the connection with
    /// 1009. Default: `None`.
    pub fn max_stream_message_size(mut self, bytes: Option<usize>) -> Self {
        self.max_stream_message_size = bytes;
        self
    }

    /// Keepalive: when nothing has been heard from the peer for this long, send a ping; if
    /// nothing is heard within [`pong_timeout`](Self::pong_timeout) after it, the connection
    /// is closed (1001) and receiving and sending fail with a timeout error.
    ///
    /// Heard means: any bytes read from the peer (the pong, any frame, or more of a long frame
    /// still arriving), or the transport taking our bytes again after it had been full. A full
    /// transport drains only as the peer acknowledges what it was sent, so an upload on a slow
    /// link stays up even when the pong waits behind megabytes in the socket's buffers, while
    /// a peer that vanished (no FIN, no RST: a pulled cable) is given up on, also by a sender
    /// blocked because the peer stopped reading. How late a pong may come on a busy link
    /// depends on what waits unsent in the OS before the ping: on the TCP connections the
    /// client opens that is at most 128 KiB
    /// ([`ClientBuilder::unsent_limit`](crate::ClientBuilder::unsent_limit)); a server sets the
    /// same limit with [`transport::limit_unsent`](crate::transport::limit_unsent).
    ///
    /// Keepalive runs whenever the connection is polled, to receive or to send (an upload that
    /// never receives still finds out that the peer is gone). Activity is checked every quarter
    /// interval, so the ping leaves between 1 and 1.25 intervals after the peer was last heard,
    /// and a vanished peer is given up on at most `1.25 × interval + pong_timeout` after.
    /// Without keepalive, a vanished peer is noticed only by TCP itself (its retransmission
    /// timeout, about 15 minutes on Linux, once there are bytes to deliver), or by
    /// [`idle_timeout`](Self::idle_timeout). Default: `None` (off).
    pub fn ping_interval(mut self, interval: Option<Duration>) -> Self {
        self.ping_interval = interval;
        self
    }

    /// How long a keepalive ping may go unanswered. Default: 20 s.
    pub fn pong_timeout(mut self, timeout: Duration) -> Self {
        self.pong_timeout = timeout;
        self
    }

    /// Closes the connection (1001) when no data message (or streamed data) has been sent or
    /// received for this long; pings and pongs do not count. Like keepalive, it is watched whenever
    /// the connection is polled; receiving and sending then fail with a timeout error. It
    /// fires between 1 and 1.25 times the timeout after the last data. Default: `None` (off).
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// How much the connection reads ahead while the application sends but does not receive.
    /// A connection that only writes (an upload) still reads what the peer sends, so that it
    /// answers pings, notices the peer's close and fails on a violation with the right code;
    /// data messages that arrive meanwhile are kept for the next receiver, up to this many
    /// bytes. Past it, the connection stops reading from the transport (TCP backpressure
    /// towards the peer) until the application receives; what was read is still answered. A
    /// data frame that does not fit in the bound (or is larger than the message API accepts)
    /// waits unread, so a ping behind it is answered only once someone receives. Receiving is
    /// not bound by this. Default: 1 MiB.
    pub fn read_ahead_size(mut self, bytes: usize) -> Self {
        self.read_ahead_size = bytes;
        self
    }

    /// See [`read_ahead_size`](Self::read_ahead_size).
    pub fn get_read_ahead_size(&self) -> usize {
        self.read_ahead_size
    }

    /// See [`ping_interval`](Self::ping_interval).
    pub fn get_ping_interval(&self) -> Option<Duration> {
        self.ping_interval
    }

    /// See [`pong_timeout`](Self::pong_timeout).
    pub fn get_pong_timeout(&self) -> Duration {
        self.pong_timeout
    }

    /// See [`idle_timeout`](Self::idle_timeout).
    pub fn get_idle_timeout(&self) -> Option<Duration> {
        self.idle_timeout
    }

    /// See [`stream_fragment_size`](Self::stream_fragment_size).
    pub fn get_stream_fragment_size(&self) -> usize {
        self.stream_fragment_size
    }

    /// See [`max_stream_message_size`](Self::max_stream_message_size).
    pub fn get_max_stream_message_size(&self) -> Option<usize> {
        self.max_stream_message_size
    }

    /// How long the opening handshake may take. A server cuts off a client that has not sent its
    /// whole request and been answered by then (a client sending one byte a minute), and a client
    /// gives up on a server that has not answered its request with `101` by then. Both fail with
    /// [`Error::Timeout`] of [`Timeout::Handshake`](crate::error::Timeout::Handshake). Over TLS,
    /// [`Acceptor::accept_tls`](crate::server::Acceptor::accept_tls) counts the TLS handshake in
    /// it too; a client counts its TLS handshake in the connect timeout instead
    /// ([`ClientBuilder::connect_timeout`](crate::client::ClientBuilder::connect_timeout)).
    /// `Duration::MAX` waits forever. Default: 10 s.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// See [`handshake_timeout`](Self::handshake_timeout).
    pub fn get_handshake_timeout(&self) -> Duration {
        self.handshake_timeout
    }

    /// See [`max_frame_size`](Self::max_frame_size).
    pub fn get_max_frame_size(&self) -> usize {
        self.max_frame_size
    }

    /// See [`max_message_size`](Self::max_message_size).
    pub fn get_max_message_size(&self) -> usize {
        self.max_message_size
    }

    /// See [`write_buffer_size`](Self::write_buffer_size).
    pub fn get_write_buffer_size(&self) -> usize {
        self.write_buffer_size
    }

    /// See [`read_buffer_size`](Self::read_buffer_size).
    pub fn get_read_buffer_size(&self) -> usize {
        self.read_buffer_size
    }

    /// See [`close_timeout`](Self::close_timeout).
    pub fn get_close_timeout(&self) -> Duration {
        self.close_timeout
    }

    /// See [`max_handshake_size`](Self::max_handshake_size).
    pub fn get_max_handshake_size(&self) -> usize {
        self.max_handshake_size
    }

    /// See [`max_handshake_headers`](Self::max_handshake_headers).
    pub fn get_max_handshake_headers(&self) -> usize {
        self.max_handshake_headers
    }

    /// permessage-deflate (RFC 7692): offered by a client, accepted by a server, with these
    /// settings; `None` turns it off. What each setting costs is in [`Compression`]'s docs.
    /// Whether a connection compresses is up to the handshake: see
    /// [`WebSocket::permessage_deflate`](crate::WebSocket::permessage_deflate).
    /// Default: on, with [`Compression::default`].
    pub fn compression(mut self, compression: Option<Compression>) -> Self {
        self.compression = compression;
        self
    }

    /// See [`compression`](Self::compression).
    pub fn get_compression(&self) -> Option<&Compression> {
        self.compression.as_ref()
    }

    /// Checks that every value is usable.
    pub fn validate(&self) -> Result<(), Error> {
        if let Some(compression) = &self.compression {
            compression.validate()?;
        }
        if self.max_frame_size == 0 {
            return Err(Error::InvalidConfig("max_frame_size must be at least 1"));
        }
        if self.max_message_size == 0 {
            return Err(Error::InvalidConfig("max_message_size must be at least 1"));
        }
        if self.write_buffer_size == 0 {
            return Err(Error::InvalidConfig("write_buffer_size must be at least 1"));
        }
        if self.read_buffer_size < 64 {
            return Err(Error::InvalidConfig("read_buffer_size must be at least 64"));
        }
        if self.max_handshake_size < 256 {
            return Err(Error::InvalidConfig(
                "max_handshake_size must be at least 256",
            ));
        }
        if self.ping_interval == Some(Duration::ZERO) || self.pong_timeout.is_zero() {
            return Err(Error::InvalidConfig(
                "ping_interval and pong_timeout must be above zero",
            ));
        }
        if self.idle_timeout == Some(Duration::ZERO) {
            return Err(Error::InvalidConfig("idle_timeout must be above zero"));
        }
        if self.read_ahead_size == 0 {
            return Err(Error::InvalidConfig("read_ahead_size must be at least 1"));
        }
        if self.stream_fragment_size == 0 {
            return Err(Error::InvalidConfig(
                "stream_fragment_size must be at least 1",
            ));
        }
        if self.handshake_timeout.is_zero() {
            return Err(Error::InvalidConfig("handshake_timeout must not be zero"));
        }
        if self.max_handshake_headers < 8 {
            return Err(Error::InvalidConfig(
                "max_handshake_headers must be at least 8",
            ));
        }
        Ok(())
    }

    pub(crate) fn proto(&self) -> ProtoConfig {
        ProtoConfig {
            max_frame_size: self.max_frame_size,
            max_message_size: self.max_message_size,
            max_stream_message_size: self.max_stream_message_size,
            ping_interval: self.ping_interval,
            pong_timeout: self.pong_timeout,
            idle_timeout: self.idle_timeout,
            close_timeout: self.close_timeout,
            deflate: None,
        }
    }
}
