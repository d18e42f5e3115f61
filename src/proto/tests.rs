//! The core on its own: two [`Connection`]s wired back to back in memory and stepped with a
//! fake clock, with no runtime in sight (after quinn-proto's test `Pair`).

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::close::{CloseCode, CloseFrame};
use super::connection::{Connection, ProtoConfig, ReadyState};
use super::decoder::DataKind;
use super::fragment::FragmentBuilder;
use super::keys::MaskKeys;
use super::message::Message;
use super::{Consumer, Expired, Received, Role};

#[path = "deflate_pair_tests.rs"]
mod deflate_pair;

/// One end: its connection and the bytes the other end wrote to it.
struct End {
    conn: Connection,
    inbox: BytesMut,
}

struct Pair {
    client: End,
    server: End,
    now: Instant,
    /// This end's frames stay in its queue: a peer gone silent.
    silent: Option<Role>,
}

impl Pair {
    fn new(config: ProtoConfig) -> Self {
        Self::with(config, config)
    }

    fn with(client: ProtoConfig, server: ProtoConfig) -> Self {
        let end = |role, config| End {
            conn: Connection::with_keys(role, config, MaskKeys::seeded(role, [9; 32])),
            inbox: BytesMut::new(),
        };
        let mut pair = Pair {
            client: end(Role::Client, client),
            server: end(Role::Server, server),
            now: Instant::now(),
            silent: None,
        };
        pair.tick();
        pair
    }

    fn end(&mut self, role: Role) -> &mut End {
        match role {
            Role::Client => &mut self.client,
            Role::Server => &mut self.server,
        }
    }

    /// Moves what `from` queued into the other end's inbox.
    fn deliver(&mut self, from: Role) {
        if self.silent == Some(from) {
            return;
        }
        let mut bytes = BytesMut::new();
        let conn = &mut self.end(from).conn;
        while conn.wants_write() {
            let transmit = conn.transmit();
            transmit.prepare();
            let chunk = transmit.first_chunk().to_vec();
            transmit.advance(chunk.len());
            bytes.extend_from_slice(&chunk);
        }
        let to = match from {
            Role::Client => Role::Server,
            Role::Server => Role::Client,
        };
        self.end(to).inbox.extend_from_slice(&bytes);
    }

    /// Delivers both ways until neither end has anything more to send.
    fn settle(&mut self) {
        let pending = |pair: &Pair, role: Role, conn: &Connection| {
            conn.wants_write() && pair.silent != Some(role)
        };
        while pending(self, Role::Client, &self.client.conn)
            || pending(self, Role::Server, &self.server.conn)
        {
            self.deliver(Role::Client);
            self.deliver(Role::Server);
            // What arrived is handled (pings answered, closes echoed) as a runtime would.
            for role in [Role::Client, Role::Server] {
                let end = self.end(role);
                end.conn.read_ahead(&mut end.inbox, usize::MAX);
            }
        }
        self.tick();
    }

    /// Everything `role` receives now as `consumer`. Its replies are delivered as they are
    /// queued: a close or failure is handed out only once its reply has left.
    fn receive(&mut self, role: Role, consumer: Consumer) -> Vec<Received> {
        let mut out = Vec::new();
        loop {
            let end = self.end(role);
            match end.conn.receive(&mut end.inbox, consumer) {
                Some(Ok(received)) => out.push(received),
                Some(Err(reason)) => panic!("the connection failed: {reason:?}"),
                None if end.conn.wants_write() && self.silent != Some(role) => self.deliver(role),
                None => break,
            }
        }
        self.tick();
        out
    }

    /// Feeds the clock to both ends (the runtime's job).
    fn tick(&mut self) {
        for role in [Role::Client, Role::Server] {
            let now = self.now;
            let conn = &mut self.end(role).conn;
            if conn.needs_now() || conn.poll_timeout().is_some_and(|t| t <= now) {
                conn.handle_timeout(now);
            }
        }
    }

    /// Lets time pass on a live network: what is sent on the way is delivered and handled.
    fn advance(&mut self, by: Duration) {
        let until = self.now + by;
        self.settle();
        loop {
            let next = [&self.client.conn, &self.server.conn]
                .iter()
                .filter_map(|c| c.poll_timeout())
                .filter(|t| *t <= until)
                .min();
            match next {
                Some(t) => self.now = t.max(self.now),
                None => break,
            }
            self.tick();
            self.settle();
        }
        self.now = until;
        self.tick();
        self.settle();
    }
}

pub(super) fn messages(received: Vec<Received>) -> Vec<Message> {
    received
        .into_iter()
        .map(|r| match r {
            Received::Message(m) => m,
            Received::Chunk(c) => panic!("a chunk for the message API: {c:?}"),
        })
        .collect()
}

fn send_fragmented(conn: &mut Connection, kind: DataKind, pieces: &[&[u8]]) {
    let mut builder = FragmentBuilder::new(1 << 20);
    for (i, piece) in pieces.iter().enumerate() {
        builder.append(piece, conn.mask_keys());
        let fin = i + 1 == pieces.len();
        conn.send_built_fragment(kind, fin, false, &mut builder)
            .unwrap();
    }
}

#[test]
fn messages_cross_both_ways() {
    let mut pair = Pair::new(ProtoConfig::default());
    pair.client
        .conn
        .send_message(Message::text("hello"))
        .unwrap();
    pair.server
        .conn
        .send_message(Message::binary(vec![1, 2, 3]))
        .unwrap();
    pair.deliver(Role::Client);
    pair.deliver(Role::Server);
    assert_eq!(
        messages(pair.receive(Role::Server, Consumer::Messages)),
        [Message::text("hello")]
    );
    assert_eq!(
        messages(pair.receive(Role::Client, Consumer::Messages)),
        [Message::binary(vec![1, 2, 3])]
    );
    let stats = pair.server.conn.stats();
    assert_eq!((stats.messages_sent, stats.messages_received), (1, 1));
}

#[test]
fn a_ping_between_fragments_is_answered_and_the_message_arrives_whole() {
    let mut pair = Pair::new(ProtoConfig::default());
    let mut builder = FragmentBuilder::new(1 << 20);
    let conn = &mut pair.client.conn;
    builder.append("héllo ".as_bytes(), conn.mask_keys());
    conn.send_built_fragment(DataKind::Text, false, false, &mut builder)
        .unwrap();
    conn.send_message(Message::Ping(Bytes::from_static(b"p")))
        .unwrap();
    builder.append("wörld".as_bytes(), conn.mask_keys());
    conn.send_built_fragment(DataKind::Text, true, false, &mut builder)
        .unwrap();
    pair.deliver(Role::Client);
    assert_eq!(
        messages(pair.receive(Role::Server, Consumer::Messages)),
        [Message::Ping("p".into()), Message::text("héllo wörld")]
    );
    pair.deliver(Role::Server); // the pong
    assert_eq!(
        messages(pair.receive(Role::Client, Consumer::Messages)),
        [Message::Pong("p".into())]
    );
    assert_eq!(pair.client.conn.take_pongs().collect::<Vec<_>>(), ["p"]);
}

#[test]
fn the_stream_api_gets_chunks_and_skips_pings() {
    let mut pair = Pair::new(ProtoConfig::default());
    let conn = &mut pair.server.conn;
    send_fragmented(conn, DataKind::Binary, &[b"ab", b"cd"]);
    conn.send_message(Message::Ping(Bytes::new())).unwrap();
    pair.deliver(Role::Server);
    let got = pair.receive(Role::Client, Consumer::Stream);
    let chunks: Vec<_> = got
        .iter()
        .map(|r| match r {
            Received::Chunk(c) => (c.data.clone(), c.start, c.end),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        chunks,
        [
            (Bytes::from_static(b"ab"), true, false),
            (Bytes::from_static(b"cd"), false, true)
        ]
    );
    assert_eq!(
        messages(pair.receive(Role::Server, Consumer::Messages)),
        [Message::Pong(Bytes::new())],
        "the skipped ping was answered"
    );
}

#[test]
fn closing_handshake_started_by_either_side() {
    for closer in [Role::Client, Role::Server] {
        let other = match closer {
            Role::Client => Role::Server,
            Role::Server => Role::Client,
        };
        let mut pair = Pair::new(ProtoConfig::default());
        pair.end(closer)
            .conn
            .close(Some(CloseFrame::new(CloseCode::NORMAL, "bye")))
            .unwrap();
        assert_eq!(pair.end(closer).conn.ready_state(), ReadyState::Closing);
        pair.deliver(closer);
        let got = messages(pair.receive(other, Consumer::Messages));
        assert_eq!(
            got,
            [Message::Close(Some(CloseFrame::new(1000.into(), "bye")))]
        );
        assert!(pair.end(other).conn.is_drained());
        pair.deliver(other); // the echo
        let got = messages(pair.receive(closer, Consumer::Messages));
        assert_eq!(
            got,
            [Message::Close(Some(CloseFrame::new(1000.into(), "")))]
        );
        for role in [closer, other] {
            assert_eq!(pair.end(role).conn.ready_state(), ReadyState::Closed);
            assert!(pair.end(role).conn.is_drained());
        }
    }
}

fn keepalive() -> ProtoConfig {
    ProtoConfig {
        ping_interval: Some(Duration::from_secs(10)),
        pong_timeout: Duration::from_secs(5),
        ..ProtoConfig::default()
    }
}

#[test]
fn keepalive_pings_an_answering_peer_and_gives_up_on_a_silent_one() {
    let mut pair = Pair::with(keepalive(), ProtoConfig::default());
    // An answering peer: a ping each interval, each answered, no expiry.
    pair.advance(Duration::from_secs(55));
    assert_eq!(pair.client.conn.expired(), None);
    let pings = pair.server.conn.stats().frames_received;
    assert!((5..=6).contains(&pings), "{pings} keepalive pings in 55 s");
    // A silent peer: the ping leaves, nothing comes back.
    pair.silent = Some(Role::Server);
    let sent = pair.client.conn.stats().frames_sent;
    pair.advance(Duration::from_secs(7));
    assert_eq!(
        pair.client.conn.stats().frames_sent,
        sent + 1,
        "one more ping"
    );
    assert_eq!(
        pair.client.conn.expired(),
        None,
        "the pong deadline has not passed"
    );
    pair.advance(Duration::from_secs(6));
    assert_eq!(pair.client.conn.expired(), Some(Expired::Pong));
    assert_eq!(pair.client.conn.take_expiry(), Some(Expired::Pong));
    assert_eq!(pair.client.conn.take_expiry(), None, "reported once");
    // The 1001 close reached the peer.
    pair.silent = None;
    let got = messages(pair.receive(Role::Server, Consumer::Messages));
    assert!(
        got.iter()
            .any(|m| matches!(m, Message::Close(Some(f)) if f.code == CloseCode::GOING_AWAY)),
        "{got:?}"
    );
}

/// Steps a keepalive client alone (nothing ever comes back as a frame) through `seconds` of
/// time, one second a step, calling `each_second` before each check; returns its expiry.
fn silent_peer_for(seconds: u64, mut each_second: impl FnMut(&mut Connection)) -> Option<Expired> {
    let mut conn = Connection::with_keys(
        Role::Client,
        keepalive(),
        MaskKeys::seeded(Role::Client, [3; 32]),
    );
    let start = Instant::now();
    for second in 0..=seconds {
        each_second(&mut conn);
        conn.handle_timeout(start + Duration::from_secs(second));
        if conn.expired().is_some() {
            break;
        }
    }
    conn.expired()
}

#[test]
fn keepalive_hears_the_peer_in_bytes_and_in_a_draining_transport_not_only_in_frames() {
    // Nothing at all: the ping goes out at 10 s and expires 5 s later.
    assert_eq!(silent_peer_for(60, |_| {}), Some(Expired::Pong));
    // Bytes of a long frame arriving (no new frame header): the peer is alive.
    assert_eq!(silent_peer_for(60, |conn| conn.record_wire(100, 0)), None);
    // An upload on a slow link: the transport is full, and takes bytes again each second as
    // the peer acknowledges; the pong to our ping is stuck behind the upload. Alive.
    assert_eq!(
        silent_peer_for(60, |conn| {
            conn.record_wire(0, 1000);
            conn.record_write_blocked();
        }),
        None
    );
    // A transport that takes bytes without ever having been full proves nothing (the peer may
    // have vanished with our bytes still fitting in the buffers)...
    assert_eq!(
        silent_peer_for(60, |conn| conn.record_wire(0, 1000)),
        Some(Expired::Pong)
    );
    // ...and neither does one that stays full.
    assert_eq!(
        silent_peer_for(60, Connection::record_write_blocked),
        Some(Expired::Pong)
    );
}

#[test]
fn idle_timeout_counts_data_not_pings() {
    let config = ProtoConfig {
        idle_timeout: Some(Duration::from_secs(30)),
        ..keepalive()
    };
    let mut pair = Pair::with(config, ProtoConfig::default());
    pair.advance(Duration::from_secs(20)); // keepalive pings and pongs only
    assert_eq!(pair.client.conn.expired(), None, "20 s idle of 30");
    pair.client
        .conn
        .send_message(Message::text("data"))
        .unwrap();
    pair.advance(Duration::from_secs(25));
    assert_eq!(
        pair.client.conn.expired(),
        None,
        "data reset the idle clock"
    );
    pair.advance(Duration::from_secs(20));
    assert_eq!(pair.client.conn.expired(), Some(Expired::Idle));
}

#[test]
fn close_timeout_gives_up_on_a_peer_that_never_answers_the_close() {
    let mut pair = Pair::new(ProtoConfig::default());
    pair.silent = Some(Role::Server);
    pair.client.conn.close(None).unwrap();
    pair.tick(); // the deadline is set from the next now
    pair.advance(Duration::from_secs(4));
    assert_eq!(pair.client.conn.expired(), None);
    pair.advance(Duration::from_secs(2));
    assert_eq!(pair.client.conn.expired(), Some(Expired::Close));
    assert_eq!(pair.client.conn.take_expiry(), Some(Expired::Close));
}

#[test]
fn close_by_sends_the_close_and_a_peer_that_answers_completes_the_handshake() {
    let mut pair = Pair::new(ProtoConfig::default());
    let deadline = pair.now + Duration::from_secs(30);
    let going_away = CloseFrame::new(CloseCode::GOING_AWAY, "restarting");
    pair.server
        .conn
        .close_by(Some(going_away.clone()), deadline)
        .unwrap();
    assert_eq!(pair.server.conn.poll_timeout(), Some(deadline));
    pair.settle();
    assert_eq!(
        messages(pair.receive(Role::Client, Consumer::Messages)),
        [Message::Close(Some(going_away))]
    );
    pair.settle();
    assert_eq!(
        messages(pair.receive(Role::Server, Consumer::Messages)),
        [Message::Close(Some(CloseFrame::new(
            CloseCode::GOING_AWAY,
            ""
        )))]
    );
    assert_eq!(pair.server.conn.ready_state(), ReadyState::Closed);
    // Only the transport's end is awaited now: the deadline ends the wait quietly.
    pair.advance(Duration::from_secs(60));
    assert_eq!(pair.server.conn.take_expiry(), None);
}

#[test]
fn close_by_gives_up_at_its_deadline_not_at_the_close_timeout() {
    let mut pair = Pair::new(ProtoConfig::default()); // a close timeout of 5 s
    pair.silent = Some(Role::Client);
    let deadline = pair.now + Duration::from_secs(8);
    pair.server.conn.close_by(None, deadline).unwrap();
    pair.advance(Duration::from_secs(7));
    assert_eq!(pair.server.conn.expired(), None, "the shutdown gave 8 s");
    pair.advance(Duration::from_secs(2));
    assert_eq!(pair.server.conn.take_expiry(), Some(Expired::Close));
}

#[test]
fn close_by_shortens_a_closing_handshake_under_way_and_never_lengthens_it() {
    for (shutdown_in, expires_after) in [(2, 2), (60, 5)] {
        let mut pair = Pair::new(ProtoConfig::default());
        pair.silent = Some(Role::Client);
        pair.server.conn.close(None).unwrap();
        pair.tick(); // the close timeout's deadline: 5 s from now
        let start = pair.now;
        let deadline = start + Duration::from_secs(shutdown_in);
        pair.server.conn.close_by(None, deadline).unwrap();
        assert_eq!(
            pair.server.conn.poll_timeout(),
            Some(start + Duration::from_secs(expires_after))
        );
    }
}

#[test]
fn close_by_refuses_a_bad_frame_and_leaves_a_closed_connection_alone() {
    let mut pair = Pair::new(ProtoConfig::default());
    let deadline = pair.now + Duration::from_secs(1);
    let bad = CloseFrame::new(CloseCode(1005), "");
    assert!(pair.server.conn.close_by(Some(bad), deadline).is_err());
    assert!(!pair.server.conn.sent_close() && pair.server.conn.poll_timeout().is_none());
    pair.silent = Some(Role::Client);
    pair.server.conn.close(None).unwrap();
    pair.advance(Duration::from_secs(6));
    assert_eq!(pair.server.conn.take_expiry(), Some(Expired::Close));
    pair.server.conn.close_by(None, pair.now).unwrap();
    assert_eq!(pair.server.conn.poll_timeout(), None);
}

#[test]
fn a_message_recv_began_goes_whole_to_the_stream_api_and_a_dropped_reader_discards_the_rest() {
    let mut pair = Pair::new(ProtoConfig::default());
    let server = &mut pair.server.conn;
    let mut builder = FragmentBuilder::new(1 << 20);
    builder.append(b"ab\xC3", server.mask_keys());
    server
        .send_built_fragment(DataKind::Text, false, false, &mut builder)
        .unwrap();
    pair.deliver(Role::Server);
    // The message API begins it, and gives up (a cancelled recv).
    assert!(pair.receive(Role::Client, Consumer::Messages).is_empty());
    let server = &mut pair.server.conn;
    builder.append(b"\xA9", server.mask_keys());
    server
        .send_built_fragment(DataKind::Text, true, false, &mut builder)
        .unwrap();
    builder.append(b"XY", server.mask_keys());
    server
        .send_built_fragment(DataKind::Text, false, false, &mut builder)
        .unwrap();
    pair.deliver(Role::Server);
    // The stream API takes the message begun, from its first byte.
    let inbox = &mut pair.client.inbox;
    let first = pair.client.conn.receive(inbox, Consumer::Stream);
    assert!(
        matches!(&first, Some(Ok(Received::Chunk(c))) if c.start && &c.data[..] == b"ab\xC3"),
        "{first:?}"
    );
    // Its reader lets go; the rest of that message is discarded.
    pair.client.conn.abandon_stream();
    let server = &mut pair.server.conn;
    builder.append(b"Z", server.mask_keys());
    server
        .send_built_fragment(DataKind::Text, true, false, &mut builder)
        .unwrap();
    pair.deliver(Role::Server);
    assert_eq!(
        messages(pair.receive(Role::Client, Consumer::Messages)),
        [Message::text("XYZ")]
    );
}

#[test]
fn read_ahead_keeps_data_for_the_next_consumer_and_answers_pings_at_once() {
    let mut pair = Pair::new(ProtoConfig::default());
    let client = &mut pair.client.conn;
    client.send_message(Message::binary(vec![1; 10])).unwrap();
    client.send_message(Message::Ping("x".into())).unwrap();
    send_fragmented(client, DataKind::Text, &[b"a", b"b"]);
    pair.deliver(Role::Client);
    let server = &mut pair.server;
    server.conn.read_ahead(&mut server.inbox, usize::MAX);
    assert!(
        server.conn.wants_write(),
        "the ping was answered while nobody received"
    );
    assert!(server.conn.unread_bytes() >= 12);
    assert_eq!(
        messages(pair.receive(Role::Server, Consumer::Messages)),
        [
            Message::binary(vec![1; 10]),
            Message::Ping("x".into()),
            Message::text("ab")
        ]
    );
    assert_eq!(pair.server.conn.unread_bytes(), 0);
}

#[test]
fn a_frame_only_the_stream_api_accepts_waits_for_a_consumer_whose_limits_decide() {
    let config = ProtoConfig {
        max_frame_size: 100,
        ..ProtoConfig::default()
    };
    for consumer in [Consumer::Stream, Consumer::Messages] {
        let mut pair = Pair::new(config);
        pair.client
            .conn
            .send_message(Message::binary(vec![7; 1000]))
            .unwrap();
        pair.deliver(Role::Client);
        let server = &mut pair.server;
        server.conn.read_ahead(&mut server.inbox, usize::MAX);
        assert!(server.conn.is_parked(), "nobody asked yet: it waits");
        assert_eq!(server.conn.failure(), None);
        let got = server.conn.receive(&mut server.inbox, consumer);
        match consumer {
            Consumer::Stream => {
                assert!(matches!(got, Some(Ok(Received::Chunk(c))) if c.data.len() == 1000))
            }
            Consumer::Messages => {
                assert!(
                    got.is_none(),
                    "the failure waits for its close to be written"
                );
                assert!(server.conn.failure().is_some());
                pair.deliver(Role::Server);
                let server = &mut pair.server;
                let failure = server.conn.receive(&mut server.inbox, consumer);
                assert!(matches!(failure, Some(Err(_))), "then it is handed out");
                let close = messages(pair.receive(Role::Client, Consumer::Messages));
                assert!(
                    matches!(&close[..], [Message::Close(Some(f))] if f.code == CloseCode::MESSAGE_TOO_BIG),
                    "{close:?}"
                );
            }
        }
    }
}

#[test]
fn seeded_keys_make_a_client_run_repeat() {
    let wire = |seed| {
        let mut conn = Connection::with_keys(
            Role::Client,
            ProtoConfig::default(),
            MaskKeys::seeded(Role::Client, seed),
        );
        conn.send_message(Message::text("same")).unwrap();
        let transmit = conn.transmit();
        transmit.prepare();
        transmit.first_chunk().to_vec()
    };
    assert_eq!(wire([1; 32]), wire([1; 32]));
    assert_ne!(wire([1; 32]), wire([2; 32]));
}

#[test]
fn the_message_api_meeting_a_readers_message_discards_it_for_every_later_consumer() {
    // Found by the connection_ops fuzz target: a reader's message, half received; `recv`
    // passes by (nothing more has arrived); then the stream API asks again. It must get the
    // next message from its start, never the middle of the one the reader let go.
    let mut pair = Pair::new(ProtoConfig::default());
    let server = &mut pair.server.conn;
    let mut builder = FragmentBuilder::new(1 << 20);
    builder.append(b"first ", server.mask_keys());
    server
        .send_built_fragment(DataKind::Binary, false, false, &mut builder)
        .unwrap();
    pair.deliver(Role::Server);
    let inbox = &mut pair.client.inbox;
    let first = pair.client.conn.receive(inbox, Consumer::Stream);
    assert!(matches!(first, Some(Ok(Received::Chunk(c))) if c.start && !c.end));
    assert!(pair.receive(Role::Client, Consumer::Messages).is_empty());
    let server = &mut pair.server.conn;
    builder.append(b"rest", server.mask_keys());
    server
        .send_built_fragment(DataKind::Binary, true, false, &mut builder)
        .unwrap();
    server
        .send_message(Message::binary(&b"second"[..]))
        .unwrap();
    pair.deliver(Role::Server);
    let got = pair.receive(Role::Client, Consumer::Stream);
    assert!(
        matches!(&got[..], [Received::Chunk(c)] if c.start && c.end && &c.data[..] == b"second"),
        "{got:?}"
    );
}
