//! permessage-deflate through the core: two connections that agreed on it, back to back.

use bytes::{Bytes, BytesMut};

use super::super::connection::ProtoConfig;
use super::super::decoder::DataKind;
use super::super::deflate::{Compress, DeflateSettings, INFLATE_PIECE};
use super::super::error::{CapacityError, FailReason, ProtocolError};
use super::super::fragment::FragmentBuilder;
use super::super::header::{FrameHeader, OpCode, MAX_HEADER_LEN};
use super::super::mask::apply_mask;
use super::super::message::Message;
use super::super::{Chunk, Consumer, Received, Role};
use super::{messages, Pair};

fn deflate(settings: DeflateSettings) -> ProtoConfig {
    ProtoConfig {
        deflate: Some(settings),
        ..ProtoConfig::default()
    }
}

fn compressing() -> ProtoConfig {
    deflate(DeflateSettings {
        threshold: 16,
        ..DeflateSettings::default()
    })
}

fn json(n: usize, seed: u32) -> String {
    let mut out = String::new();
    let mut i = seed;
    while out.len() < n {
        i = i.wrapping_mul(1664525).wrapping_add(1013904223);
        out.push_str(&format!(
            "{{\"id\":{},\"sym\":\"S{}\",\"px\":{}.{},\"qty\":{}}},",
            i % 1000,
            i % 17,
            i % 300,
            i % 100,
            i % 50
        ));
    }
    out.truncate(n);
    out
}

/// The RSV1 bit of every data frame the end `from` has queued, in order.
fn first_frames_rsv1(pair: &mut Pair, from: Role) -> Vec<bool> {
    let conn = &mut pair.end(from).conn;
    let mut wire = BytesMut::new();
    while conn.wants_write() {
        let transmit = conn.transmit();
        transmit.prepare();
        let chunk = transmit.first_chunk().to_vec();
        transmit.advance(chunk.len());
        wire.extend_from_slice(&chunk);
    }
    let mut bits = Vec::new();
    let mut at = 0;
    while let Ok(Some((header, len))) = FrameHeader::parse(&wire[at..]) {
        if !header.opcode.is_control() {
            bits.push(header.rsv & 0b100 != 0);
        }
        at += len + header.payload_len as usize;
    }
    let to = match from {
        Role::Client => Role::Server,
        Role::Server => Role::Client,
    };
    pair.end(to).inbox.extend_from_slice(&wire);
    bits
}

#[test]
fn whole_messages_compress_from_the_threshold_up_and_arrive_as_sent() {
    let mut pair = Pair::new(compressing());
    let sent = [
        Message::text(json(10_000, 1)),
        Message::text(json(10_000, 1)), // the same again: a few back-references
        Message::binary(vec![7u8; 100_000]),
        Message::text(""),
        Message::text("short"), // under the threshold
    ];
    for message in sent.clone() {
        pair.client.conn.send_message(message).unwrap();
    }
    pair.client
        .conn
        .send_message_with(Message::text(json(500, 2)), Compress::Never)
        .unwrap();
    pair.client
        .conn
        .send_message_with(Message::text("tiny"), Compress::Always)
        .unwrap();
    pair.client
        .conn
        .send_message(Message::Ping(Bytes::from_static(b"never compressed")))
        .unwrap();
    let bits = first_frames_rsv1(&mut pair, Role::Client);
    assert_eq!(bits, [true, true, true, false, false, false, true]);
    let got = messages(pair.receive(Role::Server, Consumer::Messages));
    let mut want = sent.to_vec();
    want.push(Message::text(json(500, 2)));
    want.push(Message::text("tiny"));
    want.push(Message::Ping(Bytes::from_static(b"never compressed")));
    assert_eq!(got, want);
    let stats = pair.client.conn.stats();
    assert!(
        stats.payload_bytes_sent < 20_000,
        "{} payload bytes for 120 kB of compressible data",
        stats.payload_bytes_sent
    );
}

/// Sends `data` as one streamed message from `from`, compressing as it is written, with a
/// flush after every `flush_every` pieces and frames of at most `frame` bytes.
fn stream_message(pair: &mut Pair, from: Role, data: &[u8], frame: usize, flush_every: usize) {
    let conn = &mut pair.end(from).conn;
    let mut builder = FragmentBuilder::new(frame);
    for (i, mut piece) in data.chunks(7_000).enumerate() {
        while !piece.is_empty() {
            let n = conn.append_fragment(&mut builder, piece, true).unwrap();
            piece = &piece[n..];
            if builder.is_full() {
                conn.send_built_fragment(DataKind::Binary, false, true, &mut builder)
                    .unwrap();
            }
        }
        if flush_every > 0 && i % flush_every == 0 {
            conn.flush_fragment(&mut builder, true).unwrap();
            conn.send_built_fragment(DataKind::Binary, false, true, &mut builder)
                .unwrap();
        }
    }
    conn.send_built_fragment(DataKind::Binary, true, true, &mut builder)
        .unwrap();
}

fn read_stream(pair: &mut Pair, role: Role) -> Vec<u8> {
    let mut got = Vec::new();
    let mut ended = false;
    for received in pair.receive(role, Consumer::Stream) {
        match received {
            Received::Chunk(Chunk { data, end, .. }) => {
                assert!(data.len() <= INFLATE_PIECE);
                got.extend_from_slice(&data);
                ended = end;
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(ended);
    got
}

#[test]
fn an_incompressible_message_goes_as_it_is_and_the_next_one_still_inflates() {
    let mut pair = Pair::new(compressing());
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let noise: Vec<u8> = (0..50_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    let text = json(5_000, 9);
    for message in [
        Message::text(text.clone()),
        Message::binary(noise.clone()),
        Message::text(text.clone()),
    ] {
        pair.client.conn.send_message(message).unwrap();
    }
    assert_eq!(
        first_frames_rsv1(&mut pair, Role::Client),
        [true, false, true]
    );
    assert_eq!(
        messages(pair.receive(Role::Server, Consumer::Messages)),
        [
            Message::text(text.clone()),
            Message::binary(noise),
            Message::text(text)
        ]
    );
}

#[test]
fn a_streamed_message_compresses_as_written_and_inflates_in_bounded_pieces() {
    for (role, frame, flush_every) in [
        (Role::Client, 4096, 0),
        (Role::Server, 1 << 20, 3),
        (Role::Client, 100, 1),
    ] {
        let mut pair = Pair::new(compressing());
        let data = json(300_000, 3).into_bytes();
        stream_message(&mut pair, role, &data, frame, flush_every);
        let to = match role {
            Role::Client => Role::Server,
            Role::Server => Role::Client,
        };
        let bits = first_frames_rsv1(&mut pair, role);
        assert!(
            bits[0] && bits[1..].iter().all(|b| !b),
            "RSV1 on the first frame only"
        );
        assert_eq!(read_stream(&mut pair, to), data);
        // The window is kept: a whole message after it refers back into it.
        pair.end(role)
            .conn
            .send_message(Message::binary(data[..5000].to_vec()))
            .unwrap();
        pair.deliver(role);
        assert_eq!(
            messages(pair.receive(to, Consumer::Messages)),
            [Message::binary(data[..5000].to_vec())]
        );
    }
}

#[test]
fn a_dropped_reader_s_message_is_still_inflated_so_the_window_stays_in_step() {
    let mut pair = Pair::new(compressing());
    let first = json(200_000, 4);
    pair.client
        .conn
        .send_message(Message::text(first.clone()))
        .unwrap();
    pair.client
        .conn
        .send_message(Message::text(first[..10_000].to_string()))
        .unwrap();
    pair.deliver(Role::Client);
    // A reader takes the first piece, then lets go.
    let end = &mut pair.server;
    match end.conn.receive(&mut end.inbox, Consumer::Stream) {
        Some(Ok(Received::Chunk(chunk))) => assert!(chunk.start && !chunk.end),
        other => panic!("{other:?}"),
    }
    end.conn.abandon_stream();
    assert_eq!(
        messages(pair.receive(Role::Server, Consumer::Messages)),
        [Message::text(first[..10_000].to_string())]
    );
}

fn raw_frame(fin: bool, rsv: u8, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let key = [1, 2, 3, 4];
    let header = FrameHeader {
        fin,
        rsv,
        opcode,
        mask: Some(key),
        payload_len: payload.len() as u64,
    };
    let mut head = [0u8; MAX_HEADER_LEN];
    let n = header.encode(&mut head);
    let mut out = head[..n].to_vec();
    let mut body = payload.to_vec();
    apply_mask(&mut body, key, 0);
    out.extend(body);
    out
}

/// What the server fails with, receiving `wire` as `consumer`.
fn server_failure(config: ProtoConfig, wire: Vec<u8>, consumer: Consumer) -> FailReason {
    let mut pair = Pair::new(config);
    pair.server.inbox.extend_from_slice(&wire);
    let end = &mut pair.server;
    loop {
        match end.conn.receive(&mut end.inbox, consumer) {
            Some(Err(reason)) => return reason,
            Some(Ok(_)) => {}
            None if end.conn.wants_write() => {
                let transmit = end.conn.transmit();
                transmit.prepare();
                let n = transmit.first_chunk().len();
                transmit.advance(n);
            }
            None => panic!("no failure"),
        }
    }
}

#[test]
fn rsv1_is_refused_where_it_does_not_belong() {
    let hello = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
    let cases = [
        (
            compressing(),
            [
                raw_frame(false, 0b100, OpCode::Text, &hello[..3]),
                raw_frame(true, 0b100, OpCode::Continuation, &hello[3..]),
            ]
            .concat(),
            ProtocolError::MisplacedCompressionBit,
        ),
        (
            compressing(),
            raw_frame(true, 0b100, OpCode::Ping, b""),
            ProtocolError::MisplacedCompressionBit,
        ),
        (
            ProtoConfig::default(),
            raw_frame(true, 0b100, OpCode::Text, &hello),
            ProtocolError::ReservedBitsSet(0b100),
        ),
        (
            compressing(),
            raw_frame(true, 0b010, OpCode::Text, b"x"),
            ProtocolError::ReservedBitsSet(0b010),
        ),
        (
            compressing(),
            raw_frame(true, 0b100, OpCode::Binary, &[0xff; 8]),
            ProtocolError::InvalidCompressedData,
        ),
    ];
    for (config, wire, want) in cases {
        for consumer in [Consumer::Messages, Consumer::Stream] {
            assert_eq!(
                server_failure(config, wire.clone(), consumer),
                FailReason::Protocol(want.clone())
            );
        }
    }
    // Invalid UTF-8 once inflated: 1007, as for an uncompressed one.
    let mut pair = Pair::new(compressing());
    let mut compressor = super::super::deflate::Compressor::new(DeflateSettings::default());
    let payload = compressor.compress_message(b"bad \xc3\x28 text").unwrap();
    let wire = raw_frame(true, 0b100, OpCode::Text, &payload);
    assert_eq!(
        server_failure(compressing(), wire, Consumer::Messages),
        FailReason::Protocol(ProtocolError::InvalidUtf8)
    );
    assert_eq!(
        FailReason::Protocol(ProtocolError::InvalidCompressedData)
            .close_code()
            .0,
        1007
    );
    pair.settle();
}

#[test]
fn a_compression_bomb_ends_with_1009_after_the_limit_and_one_piece() {
    let limit = 1 << 20;
    let mut config = compressing();
    config.max_message_size = limit;
    let mut pair = Pair::new(config);
    let bomb = vec![0u8; 64 << 20];
    pair.client
        .conn
        .send_message(Message::binary(bomb))
        .unwrap();
    pair.deliver(Role::Client);
    let wire = pair.server.inbox.len();
    assert!(wire < 100 << 10, "{wire} bytes on the wire");
    let end = &mut pair.server;
    let mut peak = 0;
    let failure = loop {
        match end.conn.receive(&mut end.inbox, Consumer::Messages) {
            Some(Err(reason)) => break reason,
            Some(Ok(other)) => panic!("{other:?}"),
            None if end.conn.wants_write() => {
                peak = peak.max(end.conn.unread_bytes());
                let transmit = end.conn.transmit();
                transmit.prepare();
                let n = transmit.first_chunk().len();
                transmit.advance(n);
            }
            None => panic!("no failure"),
        }
    };
    assert_eq!(
        failure,
        FailReason::Capacity(CapacityError::MessageTooLarge {
            size: limit as u64 + 1,
            max: limit
        })
    );
    assert_eq!(failure.close_code().0, 1009);
    assert!(peak <= limit + INFLATE_PIECE + wire, "{peak}");
}

#[test]
fn reading_ahead_inflates_no_more_than_the_bound_and_the_stream_api_gets_the_rest() {
    let mut config = compressing();
    config.max_message_size = 4 << 20;
    let mut pair = Pair::new(config);
    let data: Vec<u8> = (0..24u32 << 20).map(|i| (i / 1000) as u8).collect();
    pair.client
        .conn
        .send_message(Message::binary(data.clone()))
        .unwrap();
    pair.client
        .conn
        .send_message(Message::Ping(Bytes::from_static(b"after")))
        .unwrap();
    pair.deliver(Role::Client);
    let bound = 256 << 10;
    pair.server.conn.read_ahead(&mut pair.server.inbox, bound);
    let unread = pair.server.conn.unread_bytes();
    assert!(
        unread <= bound + INFLATE_PIECE + pair.server.inbox.len() + (1 << 20),
        "{unread}"
    );
    // Past the message limit while nobody claimed it: it waits for a consumer.
    pair.server
        .conn
        .read_ahead(&mut pair.server.inbox, usize::MAX);
    assert!(pair.server.conn.is_parked());
    assert!(pair.server.conn.unread_bytes() <= (4 << 20) + (1 << 20));
    // A reader's limits (none) take it all.
    let mut got = Vec::new();
    let end = &mut pair.server;
    while let Some(Ok(received)) = end.conn.receive(&mut end.inbox, Consumer::Stream) {
        match received {
            Received::Chunk(chunk) => {
                got.extend_from_slice(&chunk.data);
                if chunk.end {
                    break;
                }
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(got.len(), data.len());
    assert!(got == data);
    assert_eq!(
        messages(pair.receive(Role::Server, Consumer::Messages)),
        [Message::Ping(Bytes::from_static(b"after"))]
    );
}

#[test]
fn no_context_takeover_frees_the_state_after_every_message() {
    let settings = DeflateSettings {
        threshold: 0,
        send_no_context_takeover: true,
        receive_no_context_takeover: true,
        ..DeflateSettings::default()
    };
    let mut pair = Pair::new(deflate(settings));
    assert_eq!(pair.client.conn.deflate_state_held(), (false, false));
    for _ in 0..3 {
        pair.client
            .conn
            .send_message(Message::text(json(3000, 5)))
            .unwrap();
        assert_eq!(pair.client.conn.deflate_state_held(), (false, false));
        pair.deliver(Role::Client);
        assert_eq!(
            messages(pair.receive(Role::Server, Consumer::Messages)),
            [Message::text(json(3000, 5))]
        );
        assert_eq!(pair.server.conn.deflate_state_held(), (false, false));
    }
    let mut pair = Pair::new(compressing());
    pair.client
        .conn
        .send_message(Message::text(json(3000, 5)))
        .unwrap();
    pair.deliver(Role::Client);
    pair.receive(Role::Server, Consumer::Messages);
    assert_eq!(pair.client.conn.deflate_state_held(), (true, false));
    assert_eq!(pair.server.conn.deflate_state_held(), (false, true));
}

#[test]
fn an_empty_streamed_message_and_a_flush_with_nothing_new_stay_valid() {
    let mut pair = Pair::new(compressing());
    let conn = &mut pair.client.conn;
    let mut builder = FragmentBuilder::new(1 << 16);
    conn.send_built_fragment(DataKind::Text, true, true, &mut builder)
        .unwrap();
    conn.append_fragment(&mut builder, b"abc abc abc", true)
        .unwrap();
    conn.flush_fragment(&mut builder, true).unwrap();
    conn.send_built_fragment(DataKind::Text, false, true, &mut builder)
        .unwrap();
    conn.flush_fragment(&mut builder, true).unwrap();
    conn.send_built_fragment(DataKind::Text, true, true, &mut builder)
        .unwrap();
    conn.send_message(Message::text("abc abc abc abc abc abc"))
        .unwrap();
    pair.deliver(Role::Client);
    assert_eq!(
        messages(pair.receive(Role::Server, Consumer::Messages)),
        [
            Message::text(""),
            Message::text("abc abc abc"),
            Message::text("abc abc abc abc abc abc")
        ]
    );
}
