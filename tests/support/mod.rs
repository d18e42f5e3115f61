//! Shared helpers for the integration tests: a duplex pair of connections, frame builders, and a
//! scripted raw peer that writes bytes and reads back the frames the library sends.
//!
//! Every await that could hang goes through [`within`], so a broken library fails a test with a
//! message instead of stalling the suite.

#![allow(dead_code)]

#[cfg(feature = "tls")]
pub(crate) mod certs;
pub(crate) mod faulty;
pub(crate) mod http;
pub(crate) mod peers;
pub(crate) mod pipe;
pub(crate) mod stream;

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream, ReadBuf};
use wsio::{Config, Role, WebSocket};

/// The connection type most tests use.
pub(crate) type Ws = WebSocket<DuplexStream>;

/// Capacity of each direction of the in-memory transport, unless a test picks another.
pub(crate) const DUPLEX_CAPACITY: usize = 64 * 1024;

/// The longest any single step of a test may take before it counts as a hang.
pub(crate) const STEP: Duration = Duration::from_secs(3);

/// How long to watch for something that must *not* happen (a frame that must not be sent).
pub(crate) const QUIET: Duration = Duration::from_millis(100);

pub(crate) const OP_CONT: u8 = 0x0;
pub(crate) const OP_TEXT: u8 = 0x1;
pub(crate) const OP_BINARY: u8 = 0x2;
pub(crate) const OP_CLOSE: u8 = 0x8;
pub(crate) const OP_PING: u8 = 0x9;
pub(crate) const OP_PONG: u8 = 0xA;

/// Awaits `fut`, panicking with `what` if it takes longer than [`STEP`].
pub(crate) async fn within<F: Future>(what: &str, fut: F) -> F::Output {
    within_for(STEP, what, fut).await
}

/// Awaits `fut`, panicking with `what` if it takes longer than `limit`.
pub(crate) async fn within_for<F: Future>(limit: Duration, what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(limit, fut).await {
        Ok(out) => out,
        Err(_) => panic!("timed out after {limit:?}: {what}"),
    }
}

/// A client and a server connected by an in-memory duplex, both using `config`.
pub(crate) fn pair(config: Config) -> (Ws, Ws) {
    pair_with_capacity(config, DUPLEX_CAPACITY)
}

/// Like [`pair`], with `capacity` bytes of buffer in each direction of the transport.
///
/// The two ends agree on what a handshake between them would: permessage-deflate when `config`
/// has compression on (the default), so every test on a pair runs with compression unless it
/// turns it off.
pub(crate) fn pair_with_capacity(config: Config, capacity: usize) -> (Ws, Ws) {
    let (a, b) = tokio::io::duplex(capacity);
    let negotiated = match config.get_compression() {
        Some(compression) => {
            let agreed = compression.params(Role::Server);
            wsio::handshake::Negotiated::default()
                .with_extensions("permessage-deflate")
                .with_permessage_deflate(agreed)
        }
        None => wsio::handshake::Negotiated::default(),
    };
    let client = WebSocket::from_negotiated(
        a,
        Role::Client,
        config.clone(),
        BytesMut::new(),
        negotiated.clone(),
    )
    .expect("valid config");
    let server = WebSocket::from_negotiated(b, Role::Server, config, BytesMut::new(), negotiated)
        .expect("valid config");
    (client, server)
}

/// A library connection playing `role`, and a scripted peer playing the other role.
pub(crate) fn scripted(role: Role, config: Config) -> (Ws, Peer) {
    scripted_with_capacity(role, config, DUPLEX_CAPACITY)
}

/// Like [`scripted`], with permessage-deflate agreed (context takeover, 15-bit windows): the
/// peer may send compressed frames (see [`deflate_message`]).
pub(crate) fn scripted_deflate(role: Role, config: Config) -> (Ws, Peer) {
    let (a, b) = tokio::io::duplex(DUPLEX_CAPACITY);
    let negotiated = wsio::handshake::Negotiated::default()
        .with_extensions("permessage-deflate")
        .with_permessage_deflate(wsio::handshake::DeflateParams::default());
    let ws = WebSocket::from_negotiated(a, role, config, BytesMut::new(), negotiated)
        .expect("valid config");
    (ws, Peer::new(b, role))
}

/// `data` compressed as one permessage-deflate message payload (a fresh raw DEFLATE stream, a
/// sync flush, its `00 00 ff ff` left off).
pub(crate) fn deflate_message(data: &[u8]) -> Vec<u8> {
    let mut stream = zlib_rs::Deflate::new(6, false, 15);
    let mut out = vec![0u8; data.len() + data.len() / 8 + 1024];
    stream
        .compress(data, &mut out, zlib_rs::DeflateFlush::SyncFlush)
        .expect("deflate");
    out.truncate(stream.total_out() as usize);
    assert!(out.ends_with(&[0, 0, 0xff, 0xff]), "a sync flush's end");
    out.truncate(out.len() - 4);
    out
}

/// Like [`scripted`], with `capacity` bytes of buffer in each direction of the transport.
pub(crate) fn scripted_with_capacity(role: Role, config: Config, capacity: usize) -> (Ws, Peer) {
    let (a, b) = tokio::io::duplex(capacity);
    let ws = WebSocket::from_raw_socket(a, role, config, BytesMut::new()).expect("valid config");
    (ws, Peer::new(b, role))
}

/// Encodes one frame. `rsv` holds RSV1..RSV3 in its low three bits (RSV1 = 0b100); `opcode` is
/// the raw 4-bit value, so reserved opcodes can be built too. The payload is masked with `mask`
/// when one is given, and the shortest length form is used.
pub(crate) fn frame(
    fin: bool,
    rsv: u8,
    opcode: u8,
    mask: Option<[u8; 4]>,
    payload: &[u8],
) -> Vec<u8> {
    let mut out = header(fin, rsv, opcode, mask, payload.len() as u64);
    let start = out.len();
    out.extend_from_slice(payload);
    if let Some(key) = mask {
        for (i, b) in out[start..].iter_mut().enumerate() {
            *b ^= key[i % 4];
        }
    }
    out
}

/// Encodes only a frame header announcing `len` payload bytes.
pub(crate) fn header(fin: bool, rsv: u8, opcode: u8, mask: Option<[u8; 4]>, len: u64) -> Vec<u8> {
    assert!(
        rsv <= 0b111 && opcode <= 0xF,
        "rsv and opcode are 3 and 4 bits"
    );
    let mut out = vec![(u8::from(fin) << 7) | (rsv << 4) | opcode];
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    match len {
        0..=125 => out.push(mask_bit | len as u8),
        126..=0xFFFF => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&len.to_be_bytes());
        }
    }
    if let Some(key) = mask {
        out.extend_from_slice(&key);
    }
    out
}

/// The payload of a close frame with `code` and `reason`.
pub(crate) fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut out = code.to_be_bytes().to_vec();
    out.extend_from_slice(reason);
    out
}

/// A frame the scripted peer read from the library, unmasked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Frame {
    pub(crate) fin: bool,
    pub(crate) rsv: u8,
    pub(crate) opcode: u8,
    pub(crate) masked: bool,
    /// The masking key, when the frame was masked.
    pub(crate) key: Option<[u8; 4]>,
    pub(crate) payload: Vec<u8>,
}

impl Frame {
    /// The code of a close frame (`None` for an empty close payload).
    pub(crate) fn close_code(&self) -> Option<u16> {
        assert_eq!(self.opcode, OP_CLOSE, "not a close frame: {self:?}");
        match self.payload.len() {
            0 => None,
            1 => panic!("the library sent a one-byte close payload"),
            _ => Some(u16::from_be_bytes([self.payload[0], self.payload[1]])),
        }
    }

    /// The reason of a close frame.
    pub(crate) fn close_reason(&self) -> &[u8] {
        assert_eq!(self.opcode, OP_CLOSE, "not a close frame: {self:?}");
        self.payload.get(2..).unwrap_or(&[])
    }
}

/// Parses one frame from the front of `buf`; `None` if it is not all there yet.
/// Returns the frame and how many bytes it took.
pub(crate) fn parse_frame(buf: &[u8]) -> Option<(Frame, usize)> {
    if buf.len() < 2 {
        return None;
    }
    let fin = buf[0] & 0x80 != 0;
    let rsv = (buf[0] >> 4) & 0x7;
    let opcode = buf[0] & 0xF;
    let masked = buf[1] & 0x80 != 0;
    let (len, mut at) = match buf[1] & 0x7F {
        126 => {
            if buf.len() < 4 {
                return None;
            }
            (u64::from(u16::from_be_bytes([buf[2], buf[3]])), 4)
        }
        127 => {
            if buf.len() < 10 {
                return None;
            }
            let mut be = [0u8; 8];
            be.copy_from_slice(&buf[2..10]);
            (u64::from_be_bytes(be), 10)
        }
        n => (u64::from(n), 2),
    };
    let key = if masked {
        if buf.len() < at + 4 {
            return None;
        }
        let key = [buf[at], buf[at + 1], buf[at + 2], buf[at + 3]];
        at += 4;
        Some(key)
    } else {
        None
    };
    let len = usize::try_from(len).expect("frame length fits in memory");
    if buf.len() < at + len {
        return None;
    }
    let mut payload = buf[at..at + len].to_vec();
    if let Some(key) = key {
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= key[i % 4];
        }
    }
    Some((
        Frame {
            fin,
            rsv,
            opcode,
            masked,
            key,
            payload,
        },
        at + len,
    ))
}

/// Parses a whole byte stream into frames; panics if it ends inside a frame.
pub(crate) fn parse_frames(mut bytes: &[u8]) -> Vec<Frame> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let (f, n) = parse_frame(bytes).unwrap_or_else(|| {
            panic!(
                "the library's output ends inside a frame ({} bytes left)",
                bytes.len()
            )
        });
        out.push(f);
        bytes = &bytes[n..];
    }
    out
}

/// The far end of a library connection, driven byte by byte by the test.
///
/// It plays the role opposite to the library's: as a client it masks every frame it sends (with
/// a key that changes from frame to frame), and it checks that every frame it reads is masked
/// exactly when the library is a client.
#[derive(Debug)]
pub(crate) struct Peer {
    io: DuplexStream,
    /// The library's role.
    library: Role,
    buf: BytesMut,
    next_key: u32,
}

impl Peer {
    fn new(io: DuplexStream, library: Role) -> Self {
        Peer {
            io,
            library,
            buf: BytesMut::new(),
            next_key: 0x1234_5678,
        }
    }

    /// Whether frames this peer sends must be masked (it plays the client).
    pub(crate) fn masks(&self) -> bool {
        self.library == Role::Server
    }

    /// The masking key for the next frame this peer sends, or `None` when it plays the server.
    pub(crate) fn key(&mut self) -> Option<[u8; 4]> {
        if !self.masks() {
            return None;
        }
        // Any varying key will do; this one has four distinct nonzero bytes.
        self.next_key = self
            .next_key
            .wrapping_mul(0x9E37_79B9)
            .wrapping_add(0x0101_0101);
        Some(self.next_key.to_be_bytes())
    }

    /// Writes raw bytes to the library.
    pub(crate) async fn write(&mut self, bytes: &[u8]) {
        within("peer write", self.io.write_all(bytes))
            .await
            .expect("peer write failed");
    }

    /// Writes raw bytes, returning the error instead of panicking (the library may be gone).
    pub(crate) async fn try_write(&mut self, bytes: &[u8]) -> io::Result<()> {
        within("peer write", self.io.write_all(bytes)).await
    }

    /// Sends one frame, masked as this peer's role requires.
    pub(crate) async fn send(&mut self, fin: bool, opcode: u8, payload: &[u8]) {
        let key = self.key();
        self.write(&frame(fin, 0, opcode, key, payload)).await;
    }

    /// Sends a close frame with `code` and `reason`.
    pub(crate) async fn send_close(&mut self, code: u16, reason: &[u8]) {
        self.send(true, OP_CLOSE, &close_payload(code, reason))
            .await;
    }

    /// Reads the next frame the library sent; `None` at a clean end of stream.
    /// Panics on a timeout, on an end of stream inside a frame, and on wrong masking.
    pub(crate) async fn read_frame(&mut self) -> Option<Frame> {
        within("peer waiting for a frame", self.read_frame_inner()).await
    }

    /// Like [`read_frame`](Self::read_frame), but gives up quietly after `limit`: `Err(())` then.
    pub(crate) async fn read_frame_for(&mut self, limit: Duration) -> Result<Option<Frame>, ()> {
        tokio::time::timeout(limit, self.read_frame_inner())
            .await
            .map_err(|_| ())
    }

    async fn read_frame_inner(&mut self) -> Option<Frame> {
        loop {
            if let Some((frame, n)) = parse_frame(&self.buf) {
                self.buf.advance(n);
                assert_eq!(
                    frame.masked,
                    self.library == Role::Client,
                    "a {:?} must {}mask its frames: {frame:?}",
                    self.library,
                    if self.library == Role::Client {
                        ""
                    } else {
                        "not "
                    },
                );
                return Some(frame);
            }
            self.buf.reserve(64 * 1024);
            match self.io.read_buf(&mut self.buf).await {
                Ok(0) => {
                    assert!(
                        self.buf.is_empty(),
                        "end of stream inside a frame: {} bytes",
                        self.buf.len()
                    );
                    return None;
                }
                Ok(_) => {}
                Err(e) => panic!("peer read failed: {e}"),
            }
        }
    }

    /// Reads the next frame and checks that it is a close frame with `code`; returns it.
    pub(crate) async fn expect_close(&mut self, code: Option<u16>) -> Frame {
        let frame = self
            .read_frame()
            .await
            .expect("the library ended the stream without a close frame");
        assert_eq!(frame.opcode, OP_CLOSE, "expected a close frame: {frame:?}");
        assert_eq!(frame.close_code(), code, "close code of {frame:?}");
        frame
    }

    /// Reads the next frame and checks its opcode and payload.
    pub(crate) async fn expect_frame(&mut self, opcode: u8, payload: &[u8]) -> Frame {
        let frame = self
            .read_frame()
            .await
            .expect("the library ended the stream early");
        assert_eq!(
            (frame.opcode, frame.payload.as_slice()),
            (opcode, payload),
            "unexpected frame {frame:?}"
        );
        frame
    }

    /// Checks that the library closes the transport without sending anything more.
    pub(crate) async fn expect_eof(&mut self) {
        if let Some(frame) = self.read_frame().await {
            panic!("expected the transport to close, got {frame:?}");
        }
    }

    /// Checks that nothing arrives for [`QUIET`] (the stream neither ends nor carries a frame).
    pub(crate) async fn expect_silence(&mut self) {
        if let Ok(got) = self.read_frame_for(QUIET).await {
            panic!("expected nothing from the library, got {got:?}");
        }
        assert!(
            self.buf.is_empty(),
            "the library sent part of a frame: {:?}",
            &self.buf[..]
        );
    }

    /// Reads everything until the library closes the transport and parses it into frames.
    pub(crate) async fn read_to_end(&mut self) -> Vec<Frame> {
        let mut frames = Vec::new();
        while let Some(frame) = self.read_frame().await {
            frames.push(frame);
        }
        frames
    }

    /// Closes this peer's sending direction: the library reads end of stream.
    pub(crate) async fn shutdown(&mut self) {
        within("peer shutdown", self.io.shutdown())
            .await
            .expect("peer shutdown failed");
    }

    /// The raw transport.
    pub(crate) fn io(&mut self) -> &mut DuplexStream {
        &mut self.io
    }
}

/// A deterministic xorshift64* generator: enough randomness for tests, no dependency.
#[derive(Debug, Clone)]
pub(crate) struct XorShift(u64);

impl XorShift {
    pub(crate) fn new(seed: u64) -> Self {
        XorShift(seed.max(1))
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n`.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub(crate) fn byte(&mut self) -> u8 {
        (self.next_u64() >> 56) as u8
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.byte()).collect()
    }

    /// True with probability `1 / n`.
    pub(crate) fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }
}

/// A transport that does not support vectored writes, to exercise the library's other write path.
#[derive(Debug)]
pub(crate) struct NotVectored(pub(crate) DuplexStream);

impl AsyncRead for NotVectored {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for NotVectored {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// A payload of `len` bytes whose content depends on `seed`, so a mix-up is detected.
pub(crate) fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = XorShift::new(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ len as u64);
    rng.bytes(len)
}
