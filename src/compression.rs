//! permessage-deflate settings: what an endpoint offers or accepts, and how it compresses.

use crate::error::Error;
use crate::handshake::DeflateParams;
use crate::proto::deflate::DeflateSettings;
use crate::proto::Role;

/// permessage-deflate (RFC 7692) settings, for [`Config::compression`](crate::Config::compression).
///
/// On by default in both roles, as in browsers and Python `websockets`: a client offers it and
/// a server accepts an offer. Whether it is used on a connection is decided by the handshake
/// ([`WebSocket::permessage_deflate`](crate::WebSocket::permessage_deflate) tells); `None` in
/// the config turns it off.
///
/// Memory, per connection that compresses (zlib-rs, measured by
/// `scripts/deflate_backends`):
/// - nothing for a connection that never sends or receives a compressed message: the state is
///   made on first use;
/// - the compressor: a 128 KiB hash table, plus `4 × 2^window_bits` of window and chain and
///   `2^(mem_level + 6) × 7` bytes of match buffers: 165 KB with the defaults (12 bits,
///   memory level 5), 380 KB at zlib's (15 bits, level 8);
/// - the inflater: 47 KB (zlib-rs keeps a 32 KiB window whatever was agreed);
/// - with no context takeover in a direction, that direction's state is let go of after every
///   message (its thread keeps a few for the next message), so an idle connection holds none.
///
/// ```
/// use wsio::{Compression, Config};
///
/// // Less memory per connection, and no compression of small messages:
/// let config = Config::default().compression(Some(
///     Compression::default()
///         .server_max_window_bits(12)
///         .client_no_context_takeover(true)
///         .threshold(256),
/// ));
/// assert_eq!(config.get_compression().unwrap().get_threshold(), 256);
/// // Off:
/// let config = Config::default().compression(None);
/// assert!(config.get_compression().is_none());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compression {
    level: u8,
    mem_level: u8,
    /// The negotiation preferences; `server_max_window_bits` only when set explicitly.
    params: DeflateParams,
    server_window_set: bool,
    threshold: usize,
}

/// The window a server compresses with unless told otherwise: 12 bits, as Python `websockets`
/// serves, for a quarter of the window memory of 15 and little loss of ratio on messages.
const SERVER_WINDOW_BITS: u8 = 12;

impl Default for Compression {
    fn default() -> Self {
        Compression {
            level: 1,
            mem_level: 5,
            params: DeflateParams {
                server_max_window_bits: SERVER_WINDOW_BITS,
                ..DeflateParams::default()
            },
            server_window_set: false,
            threshold: 128,
        }
    }
}

impl Compression {
    /// The compression level, 0 (stored, no compression) to 9 (smallest output, slowest).
    /// Inflating costs about the same at every level. On 1 KiB JSON messages (zlib-rs, this
    /// machine, `scripts/deflate_backends`): level 1 compresses at about 170 MB/s to 46 % of
    /// the size, level 6 at about 25 MB/s to 31 %. Level 1 codes with fixed Huffman tables,
    /// which add about 6 % to incompressible data: a whole message that deflate does not
    /// shorten is sent as it is, but a streamed one cannot be, so stream compressed media with
    /// `Compress::Never`. Default: 1, for the least CPU per message; choose 2 (about 70 MB/s,
    /// a third smaller output on text) or 6 (zlib's default) when bandwidth costs more.
    pub fn level(mut self, level: u8) -> Self {
        self.level = level;
        self
    }

    /// zlib's memory level for the compressor, 1 to 9: its match buffers take
    /// `2^(mem_level + 6) × 7` bytes (112 KiB at 8, 14 KiB at 5); lower compresses a little
    /// worse. Default: 5, as Python `websockets` serves (zlib's own default is 8).
    pub fn mem_level(mut self, mem_level: u8) -> Self {
        self.mem_level = mem_level;
        self
    }

    /// The largest window, 8 to 15 bits, the **server** compresses with. A server uses at most
    /// this (and says so in its answer); a client asks the server for it when set. The window
    /// takes `4 × 2^bits` bytes of the compressor (window and chain), and as much as `2^bits`
    /// of the peer's inflater. At 8 bits zlib cannot keep a 256-byte window, so wsio then
    /// codes literals only (Huffman only), which any inflater takes. Default: a server uses at
    /// most 12 (16 KiB against 128 KiB at 15), a client asks nothing, as browsers do.
    pub fn server_max_window_bits(mut self, bits: u8) -> Self {
        self.params.server_max_window_bits = bits;
        self.server_window_set = true;
        self
    }

    /// The largest window, 8 to 15 bits, the **client** compresses with: a client offers it,
    /// a server asks a client that accepts a limit for it. Default: 15.
    pub fn client_max_window_bits(mut self, bits: u8) -> Self {
        self.params.client_max_window_bits = bits;
        self
    }

    /// Whether the **server** starts every message with an empty window: a server does so and
    /// says so; a client asks the server to. It costs compression ratio on similar messages
    /// and saves the server's compressor between messages. Default: false.
    pub fn server_no_context_takeover(mut self, on: bool) -> Self {
        self.params.server_no_context_takeover = on;
        self
    }

    /// Whether the **client** starts every message with an empty window: a client does so and
    /// says so; a server asks the client to (and may then free its inflater between messages).
    /// Default: false.
    pub fn client_no_context_takeover(mut self, on: bool) -> Self {
        self.params.client_no_context_takeover = on;
        self
    }

    /// Whole messages shorter than this many bytes are sent uncompressed: deflate rarely
    /// shortens a few dozen bytes, and it costs CPU. Streamed messages are always compressed
    /// unless asked not to. Default: 128.
    pub fn threshold(mut self, bytes: usize) -> Self {
        self.threshold = bytes;
        self
    }

    /// See [`level`](Self::level).
    pub fn get_level(&self) -> u8 {
        self.level
    }

    /// See [`mem_level`](Self::mem_level).
    pub fn get_mem_level(&self) -> u8 {
        self.mem_level
    }

    /// See [`threshold`](Self::threshold).
    pub fn get_threshold(&self) -> usize {
        self.threshold
    }

    /// The negotiation preferences of an endpoint of `role`: window sizes and context
    /// takeover, as its handshake offers (client) or accepts (server) them.
    pub fn params(&self, role: Role) -> DeflateParams {
        match role {
            Role::Client if !self.server_window_set => DeflateParams {
                server_max_window_bits: 15,
                ..self.params
            },
            _ => self.params,
        }
    }

    /// Checks that every value is usable.
    pub fn validate(&self) -> Result<(), Error> {
        if self.level > 9 {
            return Err(Error::InvalidConfig("compression level must be 0 to 9"));
        }
        if !(1..=9).contains(&self.mem_level) {
            return Err(Error::InvalidConfig("compression mem_level must be 1 to 9"));
        }
        let windows = [
            self.params.server_max_window_bits,
            self.params.client_max_window_bits,
        ];
        if windows.iter().any(|bits| !(8..=15).contains(bits)) {
            return Err(Error::InvalidConfig(
                "compression window bits must be 8 to 15",
            ));
        }
        Ok(())
    }

    /// What the core does on a connection of `role` whose handshake agreed on `agreed`.
    pub(crate) fn settings(&self, role: Role, agreed: &DeflateParams) -> DeflateSettings {
        let (send_bits, receive_bits, send_reset, receive_reset) = match role {
            Role::Server => (
                agreed.server_max_window_bits,
                agreed.client_max_window_bits,
                agreed.server_no_context_takeover,
                agreed.client_no_context_takeover,
            ),
            Role::Client => (
                agreed.client_max_window_bits,
                agreed.server_max_window_bits,
                agreed.client_no_context_takeover,
                agreed.server_no_context_takeover,
            ),
        };
        DeflateSettings {
            level: self.level,
            mem_level: self.mem_level,
            send_window_bits: send_bits,
            receive_window_bits: receive_bits,
            send_no_context_takeover: send_reset,
            receive_no_context_takeover: receive_reset,
            threshold: self.threshold,
        }
    }
}
