//! `Connection` driven by fuzz-chosen operations, as a runtime and an application would drive
//! it: the peer's frames in arbitrary chunks (and raw bytes, often violations), interleaved with
//! receives through both APIs, readers that let go, sends, pings, closes, reading ahead and the
//! clock. Masking keys are seeded, so every run repeats.
//!
//! Invariants checked after every operation:
//! - a `Message::Text` is valid UTF-8, and so is a text message read whole through chunks;
//! - while the peer sent only well-formed frames, every message handed out is one the peer
//!   sent, whole and in order (messages may be skipped: discarded by a reader that let go, or
//!   never reached), and a reader that lets go holds a prefix of one;
//! - a failure sends the close code its reason names, and the peer receives it;
//! - unread data stays within the read-ahead bound the runtime enforces (plus one frame), and an
//!   assembled message within `max_message_size`;
//! - nothing panics, whatever the order of operations.
#![no_main]

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use wsio::proto::connection::{Connection, ProtoConfig};
use wsio::proto::decoder::DataKind;
use wsio::proto::deflate::DeflateSettings;
use wsio::proto::fragment::FragmentBuilder;
use wsio::proto::keys::MaskKeys;
use wsio::proto::message::Message;
use wsio::proto::{Consumer, Received, Role};
use wsio::CloseCode;

/// What the runtime would read ahead at most before waiting for a receiver.
const READ_AHEAD: usize = 4096;
const MAX_FRAME: usize = 512;
const MAX_MESSAGE: usize = 2048;

#[derive(Arbitrary, Debug)]
enum Op {
    /// The peer sends a text message of `len` characters (several bytes each) in fragments.
    PeerText {
        len: u8,
        cuts: Vec<u8>,
    },
    /// The peer sends a binary message of `len` bytes in fragments.
    PeerBinary {
        len: u16,
        cuts: Vec<u8>,
    },
    PeerPing(u8),
    PeerPong(u8),
    PeerClose(u16),
    /// Raw bytes from the peer: anything, a violation most of the time.
    PeerRaw(Vec<u8>),
    /// Up to this many of the peer's bytes reach the library.
    Deliver(u16),
    /// Everything the library sent reaches the peer.
    DeliverToPeer,
    /// The message API receives until nothing more comes.
    Recv,
    /// The stream API receives up to this many times.
    RecvStream(u8),
    /// The current reader lets go.
    Abandon,
    ReadAhead,
    Send(u8),
    Ping(u8),
    Close,
    Advance(u16),
}

struct Run {
    lib: Connection,
    peer: Connection,
    /// Bytes on their way to the library.
    wire: BytesMut,
    inbox: BytesMut,
    now: Instant,
    /// Data messages the peer sent, in order, and how far the library has come through them.
    sent: Vec<(DataKind, Vec<u8>)>,
    next: usize,
    /// The peer wrote raw bytes: its frames no longer line up with `sent`.
    raw: bool,
    /// The message a stream reader holds: its kind and what it read so far.
    streaming: Option<(DataKind, Vec<u8>)>,
    /// The library failed before it had sent a close: its close must carry the failure's code.
    expect_close_code: Option<CloseCode>,
    failure_seen: bool,
}

/// permessage-deflate as both ends would have agreed it, compressing every whole message.
fn deflate() -> DeflateSettings {
    let mut settings = DeflateSettings::default();
    settings.threshold = 0;
    settings
}

fn config(deflate_on: bool) -> ProtoConfig {
    let mut config = ProtoConfig::default();
    config.deflate = deflate_on.then(deflate);
    config.max_frame_size = MAX_FRAME;
    config.max_message_size = MAX_MESSAGE;
    config.max_stream_message_size = Some(8 * MAX_MESSAGE);
    config.ping_interval = Some(Duration::from_secs(1));
    config.pong_timeout = Duration::from_secs(1);
    config.idle_timeout = Some(Duration::from_secs(5));
    config.close_timeout = Duration::from_secs(2);
    config
}

impl Run {
    fn new(lib_role: Role, deflate_on: bool) -> Self {
        let peer_role = match lib_role {
            Role::Client => Role::Server,
            Role::Server => Role::Client,
        };
        Run {
            lib: Connection::with_keys(
                lib_role,
                config(deflate_on),
                MaskKeys::seeded(lib_role, [1; 32]),
            ),
            peer: Connection::with_keys(
                peer_role,
                {
                    let mut peer = ProtoConfig::default();
                    peer.deflate = deflate_on.then(deflate);
                    peer
                },
                MaskKeys::seeded(peer_role, [2; 32]),
            ),
            wire: BytesMut::new(),
            inbox: BytesMut::new(),
            now: Instant::now(),
            sent: Vec::new(),
            next: 0,
            raw: false,
            streaming: None,
            expect_close_code: None,
            failure_seen: false,
        }
    }

    fn peer_to_wire(&mut self) {
        drain(&mut self.peer, &mut self.wire);
    }

    fn peer_message(&mut self, kind: DataKind, payload: Vec<u8>, cuts: &[u8]) {
        let mut builder = FragmentBuilder::new(1 << 16);
        let mut at = 0;
        let mut cuts = cuts.iter();
        loop {
            let take = cuts.next().map_or(payload.len() - at, |&c| {
                usize::from(c).min(payload.len() - at)
            });
            builder.append(&payload[at..at + take], self.peer.mask_keys());
            at += take;
            let fin = at == payload.len();
            if self
                .peer
                .send_built_fragment(kind, fin, false, &mut builder)
                .is_err()
            {
                return; // the peer closed: nothing more goes out
            }
            if fin {
                break;
            }
        }
        self.sent.push((kind, payload));
        self.peer_to_wire();
    }

    /// A whole message handed out: it must be one the peer sent, at or after `next`.
    fn check_whole(&mut self, kind: DataKind, bytes: &[u8]) {
        if kind == DataKind::Text {
            assert!(std::str::from_utf8(bytes).is_ok(), "text that is not UTF-8");
        }
        if self.raw {
            return;
        }
        let at = self.sent[self.next..]
            .iter()
            .position(|(k, p)| *k == kind && p[..] == *bytes)
            .unwrap_or_else(|| panic!("{kind:?} of {} bytes was never sent", bytes.len()));
        self.next += at + 1;
    }

    /// The bytes of a message a reader let go of: a prefix of one the peer sent.
    fn check_prefix(&mut self, kind: DataKind, bytes: &[u8]) {
        if self.raw {
            return;
        }
        let at = self.sent[self.next..]
            .iter()
            .position(|(k, p)| *k == kind && p.starts_with(bytes))
            .unwrap_or_else(|| panic!("{kind:?} prefix of {} bytes was never sent", bytes.len()));
        self.next += at + 1;
    }

    fn abandon(&mut self) {
        if let Some((kind, bytes)) = self.streaming.take() {
            self.check_prefix(kind, &bytes);
        }
        self.lib.abandon_stream();
    }

    fn receive(&mut self, consumer: Consumer, limit: usize) {
        for _ in 0..limit {
            let Some(received) = self.lib.receive(&mut self.inbox, consumer) else {
                return;
            };
            match received {
                Err(_) => return, // the failure is handed out once
                Ok(Received::Message(Message::Text(text))) => {
                    self.check_whole(DataKind::Text, text.as_bytes())
                }
                Ok(Received::Message(Message::Binary(data))) => {
                    self.check_whole(DataKind::Binary, &data)
                }
                Ok(Received::Message(_)) => {}
                Ok(Received::Chunk(chunk)) => {
                    let (kind, mut bytes) = match self.streaming.take() {
                        Some(current) if !chunk.start => current,
                        Some(_) => panic!("a new message began while a reader held one"),
                        None => {
                            assert!(chunk.start, "a chunk from the middle of a message");
                            (chunk.kind, Vec::new())
                        }
                    };
                    assert_eq!(kind, chunk.kind, "a message changed its kind");
                    bytes.extend_from_slice(&chunk.data);
                    if chunk.end {
                        self.check_whole(kind, &bytes);
                    } else {
                        self.streaming = Some((kind, bytes));
                    }
                }
            }
        }
    }

    fn note_failure(&mut self, sent_close_before: bool) {
        if let (Some(reason), false) = (self.lib.failure(), self.failure_seen) {
            self.failure_seen = true;
            if !sent_close_before {
                self.expect_close_code = Some(reason.close_code());
            }
        }
    }

    fn apply(&mut self, op: Op) {
        let sent_close_before = self.lib.sent_close();
        match op {
            Op::PeerText { len, cuts } => {
                let text = "aé€𝄞".repeat(usize::from(len) / 4 + 1);
                self.peer_message(DataKind::Text, text.into_bytes(), &cuts);
            }
            Op::PeerBinary { len, cuts } => {
                let payload = (0..len).map(|i| i as u8).collect();
                self.peer_message(DataKind::Binary, payload, &cuts);
            }
            Op::PeerPing(n) => {
                let _ =
                    self.peer
                        .send_message(Message::Ping(Bytes::from(vec![n; usize::from(n % 126)])));
                self.peer_to_wire();
            }
            Op::PeerPong(n) => {
                let _ =
                    self.peer
                        .send_message(Message::Pong(Bytes::from(vec![n; usize::from(n % 126)])));
                self.peer_to_wire();
            }
            Op::PeerClose(code) => {
                let frame = wsio::CloseFrame::new(CloseCode(1000 + code % 4000), "");
                let _ = self.peer.close(Some(frame));
                self.peer_to_wire();
            }
            Op::PeerRaw(bytes) => {
                self.raw = true;
                self.wire.extend_from_slice(&bytes);
            }
            Op::Deliver(n) => {
                let n = usize::from(n).min(self.wire.len());
                let piece = self.wire.split_to(n);
                self.lib.record_wire(n, 0);
                self.inbox.extend_from_slice(&piece);
            }
            Op::DeliverToPeer => {
                let mut bytes = BytesMut::new();
                drain(&mut self.lib, &mut bytes);
                while let Some(received) = self.peer.receive(&mut bytes, Consumer::Messages) {
                    if let Ok(Received::Message(Message::Close(frame))) = received {
                        if let Some(code) = self.expect_close_code.take() {
                            let got = frame.map(|f| f.code);
                            assert_eq!(got, Some(code), "the failure's close code on the wire");
                        }
                    }
                    if self.peer.wants_write() {
                        self.peer_to_wire(); // the peer's pongs and close echo
                    }
                }
            }
            Op::Recv => {
                if let Some((kind, bytes)) = self.streaming.take() {
                    // The message API discards what a vanished reader left, as `recv` does.
                    self.check_prefix(kind, &bytes);
                }
                self.receive(Consumer::Messages, 64);
            }
            Op::RecvStream(n) => self.receive(Consumer::Stream, usize::from(n % 16) + 1),
            Op::Abandon => self.abandon(),
            Op::ReadAhead => {
                // As the runtime does: only while less than the bound is unread.
                if self.inbox.len() + self.lib.unread_bytes() < READ_AHEAD {
                    self.lib.read_ahead(&mut self.inbox, usize::MAX);
                }
            }
            Op::Send(n) => {
                let _ = self
                    .lib
                    .send_message(Message::binary(vec![n; usize::from(n)]));
            }
            Op::Ping(n) => {
                let _ = self
                    .lib
                    .send_message(Message::Ping(Bytes::from(vec![n; 3])));
            }
            Op::Close => {
                let _ = self.lib.close(None);
            }
            Op::Advance(ms) => {
                self.now += Duration::from_millis(u64::from(ms));
                if self.lib.needs_now() || self.lib.poll_timeout().is_some_and(|t| t <= self.now) {
                    self.lib.handle_timeout(self.now);
                }
                let _ = self.lib.take_expiry();
            }
        }
        self.note_failure(sent_close_before);
        assert!(
            self.lib.unread_bytes() <= READ_AHEAD + 64 * 1024 + MAX_MESSAGE,
            "{} bytes held unread",
            self.lib.unread_bytes()
        );
    }
}

/// Moves everything `conn` queued into `into`.
fn drain(conn: &mut Connection, into: &mut BytesMut) {
    while conn.wants_write() {
        let transmit = conn.transmit();
        transmit.prepare();
        let chunk = transmit.first_chunk().to_vec();
        transmit.advance(chunk.len());
        into.extend_from_slice(&chunk);
    }
}

#[derive(Arbitrary, Debug)]
struct Script {
    server: bool,
    /// Both ends agreed on permessage-deflate: the peer's whole messages go compressed.
    deflate: bool,
    ops: Vec<Op>,
}

fuzz_target!(|script: Script| {
    let mut run = Run::new(
        if script.server {
            Role::Server
        } else {
            Role::Client
        },
        script.deflate,
    );
    for op in script.ops.into_iter().take(256) {
        run.apply(op);
    }
});
