//! What a connection tells about itself, over real loopback TCP: ready state, subprotocol,
//! extensions, addresses, statistics and buffered amount; and the checks `close()` makes
//! before anything is sent.

mod support;

use bytes::BytesMut;
use futures::SinkExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wsio::error::UsageError;
use wsio::handshake::{DeflateParams, Negotiated};
use wsio::server::{requested_subprotocols, Accept, Acceptor};
use wsio::{
    ClientBuilder, CloseCode, CloseFrame, Config, Error, ErrorKind, MaybeTlsStream, Message,
    ReadyState, Role, Stats, WebSocket,
};

use support::stream::{tcp_pair, tcp_pair_small_buffers, tcp_pair_with, TcpWs};
use support::{frame, within, QUIET};

/// A client from [`ClientBuilder::connect`] (subprotocols `offered`) and a server from an
/// [`Acceptor`] that picks `pick` if the client offered it.
async fn connect_pair(
    offered: &[&str],
    pick: Option<&'static str>,
) -> (WebSocket<MaybeTlsStream>, WebSocket<TcpStream>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = Acceptor::new().on_request(move |request| {
        let chosen = pick.filter(|p| requested_subprotocols(request).any(|q| q == *p));
        Ok(Accept::new().protocol(chosen))
    });
    let server = async move {
        let (tcp, _) = listener.accept().await.unwrap();
        acceptor.accept(tcp).await.expect("server handshake").0
    };
    let builder = ClientBuilder::new().subprotocols(offered.iter().copied());
    let client = builder.connect(format!("ws://{addr}/info"));
    let (client, server) = within("handshake", async { tokio::join!(client, server) }).await;
    (client.expect("client handshake").0, server)
}

#[tokio::test]
async fn protocol_is_the_subprotocol_the_server_chose_on_both_sides() {
    let (client, server) = connect_pair(&["a", "b"], Some("b")).await;
    assert_eq!(client.protocol(), Some("b"));
    assert_eq!(server.protocol(), Some("b"));
    assert_eq!(client.negotiated(), server.negotiated());
    assert_eq!(client.negotiated().subprotocol(), Some("b"));
}

#[tokio::test]
async fn a_socket_from_negotiated_reports_what_it_was_given() {
    let (a, b) = tokio::io::duplex(64);
    let negotiated = Negotiated::default().with_subprotocol("chat");
    let config = Config::default();
    let ws = WebSocket::from_negotiated(
        a,
        Role::Client,
        config.clone(),
        BytesMut::new(),
        negotiated.clone(),
    )
    .unwrap();
    assert_eq!(ws.negotiated(), &negotiated);
    assert_eq!((ws.protocol(), ws.extensions()), (Some("chat"), ""));
    let raw = WebSocket::from_raw_socket(b, Role::Server, config, BytesMut::new()).unwrap();
    assert_eq!(raw.negotiated(), &Negotiated::default());
}

#[tokio::test]
async fn protocol_is_none_when_none_was_agreed() {
    // Nothing offered.
    let (client, server) = connect_pair(&[], Some("b")).await;
    assert_eq!((client.protocol(), server.protocol()), (None, None));
    // Offered, but the server chose none.
    let (client, server) = connect_pair(&["a"], Some("b")).await;
    assert_eq!((client.protocol(), server.protocol()), (None, None));
}

#[tokio::test]
async fn permessage_deflate_is_negotiated_by_default_and_reported_on_both_sides() {
    let (client, server) = connect_pair(&["a"], Some("a")).await;
    // The server answers with the window it keeps to (12 bits by default).
    assert_eq!(
        client.extensions(),
        "permessage-deflate; server_max_window_bits=12"
    );
    assert_eq!(server.extensions(), client.extensions());
    let agreed = DeflateParams {
        server_max_window_bits: 12,
        ..DeflateParams::default()
    };
    assert_eq!(client.permessage_deflate(), Some(agreed));
    assert_eq!(server.permessage_deflate(), Some(agreed));
}

#[tokio::test]
async fn extensions_are_empty_when_compression_is_off_on_either_side() {
    for (client_config, server_config) in [
        (Config::default().compression(None), Config::default()),
        (Config::default(), Config::default().compression(None)),
    ] {
        let (client, server) = tcp_pair_with(client_config, server_config).await;
        assert_eq!((client.extensions(), server.extensions()), ("", ""));
        assert_eq!(client.permessage_deflate(), None);
        assert_eq!(server.permessage_deflate(), None);
    }
}

#[tokio::test]
async fn addresses_match_the_tcp_streams_and_plain_tcp_has_no_tls_parameters() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let listen_addr = listener.local_addr().unwrap();
    let server = async move {
        let (tcp, from) = listener.accept().await.unwrap();
        let addrs = (tcp.local_addr().unwrap(), tcp.peer_addr().unwrap());
        assert_eq!(addrs.1, from);
        (wsio::accept(tcp).await.expect("server handshake"), addrs)
    };
    let client = wsio::connect(format!("ws://{listen_addr}/addr"));
    let (client, (server, (server_local, server_peer))) =
        within("handshake", async { tokio::join!(client, server) }).await;
    let (client, _) = client.expect("client handshake");

    assert_eq!(server.local_addr().unwrap(), server_local);
    assert_eq!(server.peer_addr().unwrap(), server_peer);
    assert_eq!(server.local_addr().unwrap(), listen_addr);
    assert_eq!(client.peer_addr().unwrap(), listen_addr);
    assert_eq!(client.local_addr().unwrap(), server_peer);
    let client_tcp: &TcpStream = client.get_ref().tcp();
    assert_eq!(
        client.local_addr().unwrap(),
        client_tcp.local_addr().unwrap()
    );

    assert!(!client.get_ref().is_tls());
    #[cfg(feature = "tls")]
    {
        assert!(client.tls_protocol_version().is_none());
        assert!(client.tls_cipher_suite().is_none());
        assert!(client.tls_peer_certificates().is_none());
        assert!(client.tls_alpn_protocol().is_none());
        assert!(server.tls_protocol_version().is_none());
        assert!(server.tls_peer_certificates().is_none());
    }
}

#[tokio::test]
async fn ready_state_goes_open_closing_closed_on_both_sides() {
    let (mut client, mut server) = tcp_pair(Config::default()).await;
    assert_eq!(client.ready_state(), ReadyState::Open);
    assert_eq!(server.ready_state(), ReadyState::Open);

    // Our close is out; the reply is not in yet.
    within(
        "send close",
        client.send(Message::Close(Some(CloseFrame::new(
            CloseCode(4000),
            "done",
        )))),
    )
    .await
    .unwrap();
    assert_eq!(client.ready_state(), ReadyState::Closing);
    assert_eq!(server.ready_state(), ReadyState::Open, "not received yet");
    assert_eq!(client.close_code(), None);

    // The server receives it; its echo is written before `recv` returns the close.
    match within("server recv", server.recv()).await.unwrap().unwrap() {
        Message::Close(Some(frame)) => assert_eq!(frame.code, CloseCode(4000)),
        other => panic!("expected the close, got {other:?}"),
    }
    assert_eq!(server.ready_state(), ReadyState::Closed);
    assert_eq!(server.close_code(), Some(CloseCode(4000)));
    assert_eq!(server.close_reason(), Some("done"));

    let (client_end, server_end) = within("both ends", async {
        tokio::join!(
            async {
                let reply = client.recv().await;
                let state = client.ready_state();
                (reply, state, client.recv().await)
            },
            server.recv()
        )
    })
    .await;
    let (reply, state_after_reply, end) = client_end;
    assert!(matches!(reply, Some(Ok(Message::Close(_)))), "{reply:?}");
    assert_eq!(state_after_reply, ReadyState::Closed);
    assert!(end.is_none(), "{end:?}");
    assert!(server_end.is_none(), "{server_end:?}");
    assert_eq!(client.ready_state(), ReadyState::Closed);
    // The echo repeats the code.
    assert_eq!(client.close_code(), Some(CloseCode(4000)));
}

/// Wire size of one frame: 2-byte header, extended length, 4-byte mask from a client.
fn wire_len(payload: usize, masked: bool) -> u64 {
    let extended = match payload {
        0..=125 => 0,
        126..=0xFFFF => 2,
        _ => 8,
    };
    (2 + extended + if masked { 4 } else { 0 } + payload) as u64
}

/// Frames, messages, payload bytes and wire bytes: sent, then received.
type Counts = ([u64; 4], [u64; 4]);

fn counts(s: Stats) -> Counts {
    (
        [
            s.frames_sent,
            s.messages_sent,
            s.payload_bytes_sent,
            s.bytes_sent,
        ],
        [
            s.frames_received,
            s.messages_received,
            s.payload_bytes_received,
            s.bytes_received,
        ],
    )
}

#[tokio::test]
async fn stats_count_frames_messages_payload_and_wire_bytes_on_both_ends() {
    // Uncompressed, so that the payload sizes are the messages' own.
    let (mut client, mut server) = tcp_pair(Config::default().compression(None)).await;
    assert_eq!(client.stats(), Stats::default());
    assert_eq!(server.stats(), Stats::default());

    // Client -> server: a 5-byte text and a 70 000-byte binary (64-bit length), masked.
    let text = wire_len(5, true);
    let big = wire_len(70_000, true);
    within("send", client.send_text("hello")).await.unwrap();
    within("send", client.send_binary(vec![1u8; 70_000]))
        .await
        .unwrap();
    assert_eq!(
        within("recv", server.recv()).await.unwrap().unwrap().len(),
        5
    );
    assert_eq!(
        within("recv", server.recv()).await.unwrap().unwrap().len(),
        70_000
    );
    // Server -> client: a 200-byte binary (16-bit length), unmasked.
    let reply = wire_len(200, false);
    within("send", server.send_binary(vec![2u8; 200]))
        .await
        .unwrap();
    assert_eq!(
        within("recv", client.recv()).await.unwrap().unwrap().len(),
        200
    );

    assert_eq!(
        counts(client.stats()),
        ([2, 2, 70_005, text + big], [1, 1, 200, reply])
    );
    assert_eq!(
        counts(server.stats()),
        ([1, 1, 200, reply], [2, 2, 70_005, text + big])
    );

    // A ping and its pong: frames and payload bytes, but no messages.
    let pong = within("ping", client.ping("abc")).await.unwrap();
    assert_eq!(
        within("recv", server.recv()).await.unwrap().unwrap(),
        Message::Ping("abc".into())
    );
    within("flush the pong", server.flush()).await.unwrap();
    assert_eq!(
        within("recv", client.recv()).await.unwrap().unwrap(),
        Message::Pong("abc".into())
    );
    within("pong", pong).await.unwrap();
    let ping = wire_len(3, true);
    let answer = wire_len(3, false);
    assert_eq!(
        counts(client.stats()),
        (
            [3, 2, 70_008, text + big + ping],
            [2, 1, 203, reply + answer]
        )
    );
    assert_eq!(
        counts(server.stats()),
        (
            [2, 1, 203, reply + answer],
            [3, 2, 70_008, text + big + ping]
        )
    );
}

#[tokio::test]
async fn stats_count_a_frame_that_arrived_with_the_handshake_response() {
    // A raw server writes its 101 response and a first frame in one write, so the client's
    // handshake reads the frame's bytes too.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut request = Vec::new();
        while !request.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            assert_eq!(tcp.read(&mut byte).await.unwrap(), 1, "request ended early");
            request.push(byte[0]);
        }
        let request = String::from_utf8(request).unwrap();
        let key = request
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("sec-websocket-key")
                    .then(|| value.trim().to_owned())
            })
            .expect("a key");
        let mut out = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n\r\n",
            wsio::handshake::derive_accept_key(key.as_bytes())
        )
        .into_bytes();
        out.extend(frame(true, 0, support::OP_TEXT, None, b"early"));
        tcp.write_all(&out).await.unwrap();
        tcp
    };
    let client = wsio::connect(format!("ws://{addr}/early"));
    let (client, _server_tcp) = within("handshake", async { tokio::join!(client, server) }).await;
    let (mut client, _) = client.expect("client handshake");

    assert_eq!(
        within("recv", client.recv()).await.unwrap().unwrap(),
        Message::text("early")
    );
    let s = client.stats();
    assert_eq!((s.frames_received, s.payload_bytes_received), (1, 5));
    assert_eq!(
        s.bytes_received,
        wire_len(5, false),
        "the frame's bytes were read with the handshake, but they are WebSocket traffic"
    );
}

#[tokio::test]
async fn buffered_amount_is_zero_after_a_flushed_send_and_grows_while_the_peer_does_not_read() {
    const PAYLOAD: usize = 64 * 1024;
    const MESSAGES: usize = 4;
    let config = Config::default()
        .write_buffer_size(1 << 20)
        .compression(None);
    // Small kernel buffers: far less than the messages fit between the two sockets.
    let (mut client, mut server) = tcp_pair_small_buffers(config, 16 * 1024).await;

    within("send", client.send_text("small")).await.unwrap();
    assert_eq!(client.buffered_amount(), 0, "a flushed send leaves nothing");
    assert_eq!(
        within("recv", server.recv()).await.unwrap().unwrap(),
        Message::text("small")
    );

    // Queued without flushing: each message adds its whole frame.
    let frame_len = wire_len(PAYLOAD, true) as usize;
    for i in 1..=MESSAGES {
        within("feed", client.feed(Message::binary(vec![i as u8; PAYLOAD])))
            .await
            .unwrap();
        assert_eq!(client.buffered_amount(), i * frame_len);
    }
    // Trying to flush while the peer does not read leaves most of it buffered.
    assert!(
        tokio::time::timeout(QUIET, client.flush()).await.is_err(),
        "the flush finished although the peer reads nothing"
    );
    let stuck = client.buffered_amount();
    assert!(
        stuck > 0 && stuck < MESSAGES * frame_len,
        "buffered {stuck} of {}",
        MESSAGES * frame_len
    );

    // Once the peer reads, everything drains.
    let reader = tokio::spawn(async move {
        for i in 1..=MESSAGES {
            let message = server.recv().await.unwrap().unwrap();
            assert_eq!(message, Message::binary(vec![i as u8; PAYLOAD]));
        }
        server
    });
    within("flush", client.flush()).await.unwrap();
    assert_eq!(client.buffered_amount(), 0);
    within("reader", reader).await.unwrap();
}

#[tokio::test]
async fn write_half_buffered_amount_is_zero_after_a_send() {
    let (client, mut server) = tcp_pair(Config::default()).await;
    let (_read, mut write) = client.into_split();
    within("send", write.send_binary(vec![0u8; 10_000]))
        .await
        .unwrap();
    assert_eq!(write.buffered_amount(), 0);
    assert_eq!(
        within("recv", server.recv()).await.unwrap().unwrap().len(),
        10_000
    );
}

/// Close codes an application may not send (only 1000 and 3000–4999 are allowed, as in
/// browsers): reserved, never-on-the-wire, protocol-internal and out-of-range ones.
const REFUSED_CODES: [u16; 12] = [
    0, 999, 1001, 1002, 1004, 1005, 1006, 1011, 1015, 2000, 2999, 5000,
];

/// Checks that `ws` sent nothing and still works: the next thing the peer gets is a message.
async fn assert_nothing_was_sent(ws: &mut TcpWs, peer: &mut TcpWs) {
    assert_eq!(ws.ready_state(), ReadyState::Open);
    assert!(
        tokio::time::timeout(QUIET, peer.recv()).await.is_err(),
        "the peer received something"
    );
    within("send", ws.send_text("still open")).await.unwrap();
    assert_eq!(
        within("peer", peer.recv()).await.unwrap().unwrap(),
        Message::text("still open")
    );
}

#[tokio::test]
async fn close_with_a_code_an_application_may_not_send_is_a_usage_error_and_sends_nothing() {
    let (mut client, mut server) = tcp_pair(Config::default()).await;
    for code in REFUSED_CODES {
        let err = within("close", client.close(code, "")).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Usage, "code {code}: {err:?}");
        assert!(
            matches!(err, Error::Usage(UsageError::InvalidCloseCode(c)) if c == code),
            "code {code}: {err:?}"
        );
    }
    assert_nothing_was_sent(&mut client, &mut server).await;

    // The lowest code of the application range is accepted and reaches the peer.
    let peer = tokio::spawn(async move { server.recv().await });
    within("close", client.close(3000, "")).await.unwrap();
    let message = within("peer", peer).await.unwrap();
    assert!(
        matches!(&message, Some(Ok(Message::Close(Some(f)))) if f.code == CloseCode(3000)),
        "{message:?}"
    );
}

#[tokio::test]
async fn close_with_a_reason_over_123_bytes_is_a_usage_error_and_sends_nothing() {
    let (mut client, mut server) = tcp_pair(Config::default()).await;
    let ascii = "r".repeat(124);
    let err = within("close", client.close(1000, &ascii))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Usage, "{err:?}");
    assert!(
        matches!(err, Error::Usage(UsageError::CloseReasonTooLong(124))),
        "{err:?}"
    );
    // Bytes count, not characters: 62 two-byte characters are 124 bytes.
    let accented = "é".repeat(62);
    let err = within("close", client.close(3000, &accented))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Usage(UsageError::CloseReasonTooLong(124))),
        "{err:?}"
    );
    assert_nothing_was_sent(&mut client, &mut server).await;
}

#[tokio::test]
async fn close_with_the_largest_allowed_code_and_reason_reaches_the_peer() {
    let (mut client, mut server) = tcp_pair(Config::default()).await;
    let reason = "x".repeat(123);
    let peer = tokio::spawn(async move {
        let message = server.recv().await.unwrap().unwrap();
        assert!(server.recv().await.is_none());
        message
    });
    within("close", client.close(4999, &reason)).await.unwrap();
    match within("peer", peer).await.unwrap() {
        Message::Close(Some(frame)) => {
            assert_eq!(frame.code, CloseCode(4999));
            assert_eq!(frame.reason.as_str(), reason);
        }
        other => panic!("expected the close, got {other:?}"),
    }
    assert_eq!(client.ready_state(), ReadyState::Closed);
}

#[tokio::test]
async fn write_half_close_checks_code_and_reason_before_sending() {
    let (client, mut server) = tcp_pair(Config::default()).await;
    let (read, mut write) = client.into_split();
    let err = within("close", write.close(1005, "")).await.unwrap_err();
    assert!(
        matches!(err, Error::Usage(UsageError::InvalidCloseCode(1005))),
        "{err:?}"
    );
    let err = within("close", write.close(1000, &"r".repeat(124)))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Usage(UsageError::CloseReasonTooLong(124))),
        "{err:?}"
    );
    assert_eq!(read.ready_state(), ReadyState::Open);
    assert!(tokio::time::timeout(QUIET, server.recv()).await.is_err());
    within("send", write.send_text("still open")).await.unwrap();
    assert_eq!(
        within("peer", server.recv()).await.unwrap().unwrap(),
        Message::text("still open")
    );
}
