//! Data and control messages: sizes, fragments, pings, and backpressure on sending.

mod support;

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use support::*;
use tokio::io::{AsyncRead, AsyncWrite};
use wsio::{Config, ErrorKind, Message, Role, WebSocket};

const SIZES: [usize; 7] = [0, 1, 125, 126, 65_535, 65_536, 1 << 20];

fn text_of(len: usize, seed: u64) -> String {
    // ASCII with a multi-byte character every so often (never split: each is pushed whole).
    let mut rng = XorShift::new(seed);
    let mut s = String::with_capacity(len);
    while s.len() < len {
        if len - s.len() >= 3 && rng.one_in(16) {
            s.push('€');
        } else {
            s.push((b'a' + rng.below(26) as u8) as char);
        }
    }
    s
}

async fn roundtrip<S>(from: &mut WebSocket<S>, to: &mut WebSocket<S>, message: Message)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (sent, got) = within(
        "roundtrip",
        futures::future::join(from.send(message.clone()), to.recv()),
    )
    .await;
    sent.expect("send");
    let got = got.expect("stream ended").expect("recv");
    assert_eq!(got.len(), message.len());
    assert!(got == message, "message of {} bytes changed", message.len());
}

async fn roundtrip_all_sizes<S>(client: &mut WebSocket<S>, server: &mut WebSocket<S>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    for (i, &len) in SIZES.iter().enumerate() {
        let seed = i as u64;
        let text = Message::text(text_of(len, seed));
        let binary = Message::binary(pattern(seed, len));
        roundtrip(client, server, text.clone()).await;
        roundtrip(server, client, text).await;
        roundtrip(client, server, binary.clone()).await;
        roundtrip(server, client, binary).await;
    }
}

#[tokio::test]
async fn text_and_binary_roundtrip_at_every_length_form_both_ways() {
    let (mut client, mut server) = pair(Config::default());
    roundtrip_all_sizes(&mut client, &mut server).await;
    let counters = client.stats();
    assert_eq!(counters.messages_sent, 2 * SIZES.len() as u64);
    assert_eq!(counters.messages_received, 2 * SIZES.len() as u64);
}

#[tokio::test]
async fn roundtrip_works_over_a_transport_without_vectored_writes() {
    let (a, b) = tokio::io::duplex(16 * 1024);
    let config = Config::default();
    let mut client = WebSocket::from_raw_socket(
        NotVectored(a),
        Role::Client,
        config.clone(),
        BytesMut::new(),
    )
    .unwrap();
    let mut server =
        WebSocket::from_raw_socket(NotVectored(b), Role::Server, config, BytesMut::new()).unwrap();
    roundtrip_all_sizes(&mut client, &mut server).await;
}

#[tokio::test]
async fn many_small_messages_keep_their_order() {
    let (mut client, mut server) = pair(Config::default());
    let sender = async {
        for i in 0..2000u32 {
            client
                .send(Message::binary(i.to_be_bytes().to_vec()))
                .await
                .unwrap();
        }
        client
    };
    let receiver = async {
        for i in 0..2000u32 {
            let m = server.recv().await.unwrap().unwrap();
            assert_eq!(m, Message::binary(i.to_be_bytes().to_vec()));
        }
    };
    within("2000 messages", futures::future::join(sender, receiver)).await;
}

#[tokio::test]
async fn a_message_pipelined_before_the_connection_starts_is_received() {
    // Bytes read past the handshake are handed to the connection and must not be lost.
    let (a, _b) = tokio::io::duplex(1024);
    let leftover = frame(true, 0, OP_TEXT, Some([5, 6, 7, 8]), b"early");
    let mut ws = WebSocket::from_raw_socket(
        a,
        Role::Server,
        Config::default(),
        BytesMut::from(&leftover[..]),
    )
    .unwrap();
    assert_eq!(
        within("recv", ws.recv()).await.unwrap().unwrap(),
        Message::text("early")
    );
}

#[tokio::test]
async fn frames_arriving_one_byte_at_a_time_are_decoded() {
    for role in [Role::Client, Role::Server] {
        let (mut ws, mut peer) = scripted(role, Config::default());
        let mut wire = Vec::new();
        for (fin, opcode, payload) in [
            (true, OP_TEXT, &b"one"[..]),
            (false, OP_BINARY, &[1; 200][..]),
            (true, OP_CONT, &[2; 70_000][..]),
            (true, OP_PONG, b"pong"),
            (true, OP_TEXT, "κόσμε".as_bytes()),
        ] {
            let key = peer.key();
            wire.extend(frame(fin, 0, opcode, key, payload));
        }
        let writer = async {
            for chunk in wire.chunks(1) {
                peer.write(chunk).await;
            }
            peer
        };
        let reader = async {
            let mut got = Vec::new();
            for _ in 0..4 {
                got.push(ws.recv().await.unwrap().unwrap());
            }
            got
        };
        let (_peer, got) = within("byte by byte", futures::future::join(writer, reader)).await;
        let mut big = vec![1; 200];
        big.extend(vec![2; 70_000]);
        assert_eq!(
            got,
            vec![
                Message::text("one"),
                Message::binary(big),
                Message::Pong("pong".into()),
                Message::text("κόσμε"),
            ]
        );
    }
}

#[tokio::test]
async fn fragmented_message_with_interleaved_pings_is_assembled_and_pings_answered() {
    for role in [Role::Client, Role::Server] {
        for opcode in [OP_TEXT, OP_BINARY] {
            let (mut ws, mut peer) = scripted(role, Config::default());
            peer.send(false, opcode, b"Hel").await;
            peer.send(true, OP_PING, b"first").await;
            peer.send(false, OP_CONT, b"").await;
            peer.send(false, OP_CONT, b"lo, ").await;
            peer.send(true, OP_PING, b"").await;
            peer.send(true, OP_CONT, b"world").await;

            assert_eq!(
                within("recv", ws.recv()).await.unwrap().unwrap(),
                Message::Ping("first".into())
            );
            assert_eq!(
                within("recv", ws.recv()).await.unwrap().unwrap(),
                Message::Ping(Bytes::new())
            );
            let whole = within("recv", ws.recv()).await.unwrap().unwrap();
            let want = if opcode == OP_TEXT {
                Message::text("Hello, world")
            } else {
                Message::binary(&b"Hello, world"[..])
            };
            assert_eq!(whole, want);
            // Each ping got a pong with its payload, in order.
            peer.expect_frame(OP_PONG, b"first").await;
            peer.expect_frame(OP_PONG, b"").await;
            peer.expect_silence().await;
        }
    }
}

#[tokio::test]
async fn code_point_split_across_fragments_is_valid_text() {
    for role in [Role::Client, Role::Server] {
        let (mut ws, mut peer) = scripted(role, Config::default());
        let text = "a€𝄞b".as_bytes(); // € is 3 bytes, 𝄞 is 4
        peer.send(false, OP_TEXT, &text[..2]).await;
        peer.send(false, OP_CONT, &text[2..5]).await;
        peer.send(false, OP_CONT, &text[5..6]).await;
        peer.send(true, OP_CONT, &text[6..]).await;
        assert_eq!(
            within("recv", ws.recv()).await.unwrap().unwrap(),
            Message::text("a€𝄞b")
        );
        // A ping between the halves of a code point does not disturb the validation.
        peer.send(false, OP_TEXT, b"\xe2\x82").await;
        peer.send(true, OP_PING, b"\xff").await;
        peer.send(true, OP_CONT, b"\xac").await;
        assert_eq!(
            within("recv", ws.recv()).await.unwrap().unwrap(),
            Message::Ping(Bytes::from_static(b"\xff"))
        );
        assert_eq!(
            within("recv", ws.recv()).await.unwrap().unwrap(),
            Message::text("€")
        );
    }
}

#[tokio::test]
async fn ping_gets_its_pong_while_the_application_only_reads() {
    for role in [Role::Client, Role::Server] {
        let (mut ws, mut peer) = scripted(role, Config::default());
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(Ok(m)) = ws.recv().await {
                got.push(m);
            }
            got
        });
        for i in 0..20u8 {
            peer.send(true, OP_PING, &[i; 3]).await;
            peer.expect_frame(OP_PONG, &[i; 3]).await;
        }
        peer.send_close(1000, b"").await;
        peer.expect_close(Some(1000)).await;
        peer.shutdown().await;
        let got = within("reader", reader).await.unwrap();
        assert_eq!(got.len(), 21);
        assert!(got[..20]
            .iter()
            .enumerate()
            .all(|(i, m)| *m == Message::Ping(vec![i as u8; 3].into())));
    }
}

#[tokio::test]
async fn pong_is_written_by_the_recv_that_returns_the_ping() {
    // `recv` documents that pings are answered before they are returned: the application may
    // then stop polling for a long time, and the peer must not wait for its pong meanwhile.
    for role in [Role::Client, Role::Server] {
        let (mut ws, mut peer) = scripted(role, Config::default());
        peer.send(true, OP_PING, b"are you there").await;
        assert_eq!(
            within("recv", ws.recv()).await.unwrap().unwrap(),
            Message::Ping("are you there".into())
        );
        // No further call on `ws`.
        peer.expect_frame(OP_PONG, b"are you there").await;
    }
}

#[tokio::test]
async fn application_pings_and_pongs_reach_the_peer() {
    let (mut ws, mut peer) = scripted(Role::Client, Config::default());
    within("ping", ws.send(Message::Ping("hi".into())))
        .await
        .unwrap();
    within("pong", ws.send(Message::Pong("unsolicited".into())))
        .await
        .unwrap();
    peer.expect_frame(OP_PING, b"hi").await;
    peer.expect_frame(OP_PONG, b"unsolicited").await;
    peer.send(true, OP_PONG, b"hi").await;
    assert_eq!(
        within("recv", ws.recv()).await.unwrap().unwrap(),
        Message::Pong("hi".into())
    );
    // A pong needs no answer.
    peer.expect_silence().await;
}

#[tokio::test]
async fn control_payload_over_125_bytes_is_a_usage_error_and_sends_nothing() {
    let (mut ws, mut peer) = scripted(Role::Server, Config::default());
    for message in [
        Message::Ping(vec![0; 126].into()),
        Message::Pong(vec![0; 126].into()),
    ] {
        let err = within("send", ws.send(message)).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Usage, "{err}");
    }
    within("ping", ws.send(Message::Ping(vec![7; 125].into())))
        .await
        .unwrap();
    peer.expect_frame(OP_PING, &[7; 125]).await;
    peer.expect_silence().await;
}

#[tokio::test]
async fn sink_and_stream_carry_messages() {
    use futures::{SinkExt, StreamExt};
    let (mut client, mut server) = pair(Config::default());
    let messages = vec![
        Message::text("one"),
        Message::binary(vec![2; 100_000]),
        Message::text(""),
    ];
    let sender = async {
        for m in messages.clone() {
            client.feed(m).await.unwrap();
        }
        SinkExt::flush(&mut client).await.unwrap();
    };
    let receiver = async {
        let mut got = Vec::new();
        for _ in 0..3 {
            got.push(server.next().await.unwrap().unwrap());
        }
        got
    };
    let ((), got) = within("sink to stream", futures::future::join(sender, receiver)).await;
    assert_eq!(got, messages);
}

/// Binary message number `id` for the backpressure test: its id, then bytes derived from it.
fn numbered(id: u32, len: usize) -> Message {
    let mut payload = id.to_be_bytes().to_vec();
    payload.extend(pattern(u64::from(id), len - 4));
    Message::binary(payload)
}

fn id_of(payload: &[u8], len: usize) -> u32 {
    assert_eq!(payload.len(), len, "a message arrived cut");
    let id = u32::from_be_bytes(payload[..4].try_into().unwrap());
    assert_eq!(
        &payload[4..],
        &pattern(u64::from(id), len - 4)[..],
        "message {id} corrupted"
    );
    id
}

#[tokio::test]
async fn send_waits_when_the_peer_does_not_read_and_resumes_when_it_does() {
    const LIMIT: usize = 4096;
    const LEN: usize = 1000;
    let config = Config::default().write_buffer_size(LIMIT);
    let (mut ws, mut peer) = scripted_with_capacity(Role::Server, config, 1024);

    // The peer reads nothing. Sends complete while the transport and buffer have room...
    let mut pending = 0;
    let mut id = 0u32;
    while pending < 10 {
        let sent =
            tokio::time::timeout(Duration::from_millis(20), ws.send(numbered(id, LEN))).await;
        id += 1;
        match sent {
            Ok(result) => {
                result.expect("send");
                assert_eq!(pending, 0, "a send completed after one stayed pending");
            }
            Err(_) => pending += 1,
        }
        // ...and the buffer never grows far past its limit.
        assert!(
            ws.buffered_amount() <= LIMIT + LEN + 4,
            "{} bytes buffered",
            ws.buffered_amount()
        );
        assert!(id < 100, "send never became pending");
    }
    assert!(ws.buffered_amount() >= LIMIT, "{}", ws.buffered_amount());
    let queued = ws.stats().messages_sent;
    assert!(
        queued < u64::from(id),
        "every attempt was queued: nothing waited"
    );

    // Once the peer reads, the next send completes and everything queued arrives whole.
    const LAST: u32 = 1_000_000;
    let reader = async {
        let mut ids = Vec::new();
        loop {
            let f = peer.read_frame().await.expect("stream ended");
            assert_eq!(f.opcode, OP_BINARY);
            let got = id_of(&f.payload, LEN);
            ids.push(got);
            if got == LAST {
                return ids;
            }
        }
    };
    let (sent, ids) = within(
        "drain",
        futures::future::join(ws.send(numbered(LAST, LEN)), reader),
    )
    .await;
    sent.expect("send after the peer read");
    assert_eq!(ws.buffered_amount(), 0);
    assert_eq!(ids.len() as u64, queued + 1);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "out of order: {ids:?}");
    // The sends that completed were the first ones, all delivered.
    assert!(ids.iter().take(5).copied().eq(0..5), "{ids:?}");
}

#[tokio::test]
async fn send_that_waits_for_buffer_space_still_sends_its_message() {
    let config = Config::default().write_buffer_size(1024);
    let (mut ws, mut peer) = scripted_with_capacity(Role::Client, config, 1024);
    // A message larger than the buffer is accepted whole; its send waits for the peer.
    let big = Message::binary(pattern(1, 100_000));
    assert!(
        tokio::time::timeout(Duration::from_millis(50), ws.send(big.clone()))
            .await
            .is_err(),
        "the peer reads nothing, so the send cannot finish"
    );
    assert_eq!(ws.stats().messages_sent, 1);
    // This send has to wait for buffer space before it can queue its message.
    let small = Message::text("after the big one");
    let reader = async {
        let first = peer.read_frame().await.expect("first frame");
        let second = peer.read_frame().await.expect("second frame");
        (first, second)
    };
    let (sent, (first, second)) = within(
        "send while the peer reads",
        futures::future::join(
            async {
                let sent = ws.send(small).await;
                // Returning Ok means the message was written.
                assert_eq!(ws.stats().messages_sent, 2, "send returned before queueing");
                sent
            },
            reader,
        ),
    )
    .await;
    sent.expect("second send");
    assert_eq!(first.payload, big.as_payload());
    assert_eq!(
        (second.opcode, &second.payload[..]),
        (OP_TEXT, &b"after the big one"[..])
    );
}

#[tokio::test]
async fn client_masks_every_frame_with_a_fresh_key() {
    let (mut ws, mut peer) = scripted(Role::Client, Config::default());
    for i in 0..50u8 {
        within(
            "send",
            ws.send(Message::binary(vec![i; 10 + usize::from(i) * 20])),
        )
        .await
        .unwrap();
    }
    let mut keys = std::collections::HashSet::new();
    for i in 0..50u8 {
        // The peer unmasks with the key it read and checks the payload.
        let f = peer
            .expect_frame(OP_BINARY, &vec![i; 10 + usize::from(i) * 20])
            .await;
        keys.insert(f.key.expect("client frames are masked"));
    }
    // RFC 6455 §5.3: keys must be unpredictable; a repeated key would be a broken generator.
    assert_eq!(keys.len(), 50, "masking keys repeat");
}

#[tokio::test]
async fn control_frames_of_125_bytes_are_accepted() {
    for role in [Role::Client, Role::Server] {
        let (mut ws, mut peer) = scripted(role, Config::default());
        peer.send(true, OP_PING, &[b'p'; 125]).await;
        peer.send(true, OP_PONG, &[b'q'; 125]).await;
        assert_eq!(
            within("recv", ws.recv()).await.unwrap().unwrap(),
            Message::Ping(vec![b'p'; 125].into())
        );
        assert_eq!(
            within("recv", ws.recv()).await.unwrap().unwrap(),
            Message::Pong(vec![b'q'; 125].into())
        );
        peer.expect_frame(OP_PONG, &[b'p'; 125]).await;
    }
}

#[tokio::test]
async fn send_to_a_vanished_peer_is_an_io_error_and_the_stream_then_ends() {
    for role in [Role::Client, Role::Server] {
        let (mut ws, peer) = scripted(role, Config::default());
        drop(peer);
        let err = within("send", ws.send(Message::text("anyone?")))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Io, "{err}");
        match within("recv", ws.recv()).await {
            Some(Err(e)) => assert_eq!(e.kind(), ErrorKind::Io, "{e}"),
            None => {}
            other => panic!("unexpected {other:?}"),
        }
        assert!(within("recv", ws.recv()).await.is_none());
        let err = within("send", ws.send(Message::text("again")))
            .await
            .unwrap_err();
        assert!(
            matches!(err.kind(), ErrorKind::Io | ErrorKind::Closed),
            "{err}"
        );
    }
}

#[tokio::test]
async fn single_frame_messages_are_handed_out_without_a_copy() {
    // Two frames that arrive in one read are decoded in place: the second payload starts right
    // after the first payload and the second header, in the same buffer.
    for role in [Role::Client, Role::Server] {
        let (mut ws, mut peer) = scripted(role, Config::default());
        let mut wire = frame(true, 0, OP_BINARY, peer.key(), &[1; 100]);
        let second = frame(true, 0, OP_BINARY, peer.key(), &[2; 100]);
        let second_header = second.len() - 100;
        wire.extend(second);
        peer.write(&wire).await;
        let Message::Binary(a) = within("recv", ws.recv()).await.unwrap().unwrap() else {
            panic!("expected a binary message");
        };
        let Message::Binary(b) = within("recv", ws.recv()).await.unwrap().unwrap() else {
            panic!("expected a binary message");
        };
        assert_eq!((&a[..], &b[..]), (&[1; 100][..], &[2; 100][..]));
        assert_eq!(
            b.as_ptr() as usize,
            a.as_ptr() as usize + a.len() + second_header,
            "payloads were copied out of the read buffer"
        );
    }
}

#[tokio::test]
async fn ping_flood_from_a_peer_that_does_not_read_leaves_bounded_replies_queued() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const PINGS: usize = 2000;
    const LIMIT: usize = 8192;
    let (a, b) = tokio::io::duplex(4096);
    let config = Config::default().write_buffer_size(LIMIT);
    let mut ws = WebSocket::from_raw_socket(a, Role::Server, config, BytesMut::new()).unwrap();
    let (mut peer_rx, mut peer_tx) = tokio::io::split(b);
    let writer = tokio::spawn(async move {
        for i in 0..PINGS {
            let key = [i as u8, 1, 2, 3];
            peer_tx
                .write_all(&frame(true, 0, OP_PING, Some(key), &[i as u8; 125]))
                .await
                .unwrap();
        }
        peer_tx
    });
    // The peer reads nothing: the library must stop reading rather than queue pongs without end.
    let (mut pings, mut stalls) = (0, 0);
    while stalls < 20 {
        match tokio::time::timeout(Duration::from_millis(2), ws.recv()).await {
            Ok(Some(Ok(Message::Ping(_)))) => pings += 1,
            Ok(other) => panic!("unexpected {other:?}"),
            Err(_) => stalls += 1,
        }
        assert!(
            ws.buffered_amount() <= LIMIT + 127,
            "{} bytes of pongs queued",
            ws.buffered_amount()
        );
    }
    assert!(
        pings < PINGS,
        "all {pings} pings were read though no pong was"
    );

    // Once the peer reads, every ping gets its pong.
    let reader = tokio::spawn(async move {
        let mut bytes = Vec::new();
        let mut buf = vec![0; 64 * 1024];
        while bytes.len() < PINGS * 127 {
            let n = peer_rx.read(&mut buf).await.unwrap();
            assert!(n > 0, "stream ended early");
            bytes.extend_from_slice(&buf[..n]);
        }
        parse_frames(&bytes)
    });
    within("the rest of the pings", async {
        while pings < PINGS {
            match ws.recv().await {
                Some(Ok(Message::Ping(_))) => pings += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
        ws.flush().await.unwrap();
    })
    .await;
    let pongs = within("pongs", reader).await.unwrap();
    assert_eq!(pongs.len(), PINGS);
    for (i, f) in pongs.iter().enumerate() {
        assert_eq!((f.opcode, &f.payload[..]), (OP_PONG, &[i as u8; 125][..]));
    }
    within("writer", writer).await.unwrap();
}
