//! A peer that breaks RFC 6455: the connection must fail with the right close code on the wire,
//! return a matching error from `recv`, then end (`None`) and close the transport.

mod support;

use std::time::Duration;

use support::*;
use wsio::{CloseCode, Config, ErrorKind, Message, Role};

/// The peer has written something that fails the connection: checks the error `recv` returns,
/// the close frame on the wire, that `recv` then yields `None`, and that the transport is closed.
async fn expect_failure(ws: &mut Ws, peer: &mut Peer, kind: ErrorKind, code: u16) {
    let err = match within("recv after bad input", ws.recv()).await {
        Some(Err(e)) => e,
        other => panic!("expected an error of kind {kind:?}, got {other:?}"),
    };
    assert_eq!(err.kind(), kind, "{err}");
    assert_eq!(err.close_code(), Some(CloseCode(code)), "{err}");
    peer.expect_close(Some(code)).await;
    assert!(
        within("recv after the failure", ws.recv()).await.is_none(),
        "the stream goes on after a failure"
    );
    peer.expect_eof().await;
    assert!(within("recv at the end", ws.recv()).await.is_none());
    assert_eq!(ws.ready_state(), wsio::ReadyState::Closed);
}

/// Sends `wire` to a fresh connection playing `role` and expects it to fail with `code`.
async fn fails_with(role: Role, config: Config, wire: &[u8], kind: ErrorKind, code: u16) {
    let (mut ws, mut peer) = scripted(role, config);
    peer.write(wire).await;
    expect_failure(&mut ws, &mut peer, kind, code).await;
}

const BOTH: [Role; 2] = [Role::Client, Role::Server];

/// The masking key a well-behaved peer of a library in `role` uses.
fn key_for(role: Role) -> Option<[u8; 4]> {
    match role {
        Role::Server => Some([0x11, 0x22, 0x33, 0x44]),
        Role::Client => None,
    }
}

#[tokio::test]
async fn server_fails_on_unmasked_client_frame() {
    for opcode in [OP_TEXT, OP_BINARY, OP_PING] {
        let wire = frame(true, 0, opcode, None, b"hi");
        fails_with(
            Role::Server,
            Config::default(),
            &wire,
            ErrorKind::Protocol,
            1002,
        )
        .await;
    }
}

#[tokio::test]
async fn client_fails_on_masked_server_frame() {
    for opcode in [OP_TEXT, OP_BINARY, OP_PING] {
        let wire = frame(true, 0, opcode, Some([1, 2, 3, 4]), b"hi");
        fails_with(
            Role::Client,
            Config::default(),
            &wire,
            ErrorKind::Protocol,
            1002,
        )
        .await;
    }
}

#[tokio::test]
async fn reserved_bits_without_extension_fail_with_1002() {
    for role in BOTH {
        for rsv in [0b100, 0b010, 0b001, 0b111] {
            for opcode in [OP_TEXT, OP_BINARY, OP_PING] {
                let wire = frame(true, rsv, opcode, key_for(role), b"hi");
                fails_with(role, Config::default(), &wire, ErrorKind::Protocol, 1002).await;
            }
        }
    }
}

#[tokio::test]
async fn reserved_opcodes_fail_with_1002() {
    for role in BOTH {
        for opcode in [3u8, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF] {
            let wire = frame(true, 0, opcode, key_for(role), b"hi");
            fails_with(role, Config::default(), &wire, ErrorKind::Protocol, 1002).await;
        }
    }
}

#[tokio::test]
async fn control_frame_over_125_bytes_fails_with_1002() {
    for role in BOTH {
        for opcode in [OP_PING, OP_PONG, OP_CLOSE] {
            for len in [126usize, 200, 5000] {
                let mut payload = vec![b'a'; len];
                if opcode == OP_CLOSE {
                    payload[..2].copy_from_slice(&1000u16.to_be_bytes());
                }
                let wire = frame(true, 0, opcode, key_for(role), &payload);
                fails_with(role, Config::default(), &wire, ErrorKind::Protocol, 1002).await;
            }
        }
    }
}

#[tokio::test]
async fn oversized_control_frame_fails_before_its_payload_arrives() {
    for role in BOTH {
        let (mut ws, mut peer) = scripted(role, Config::default());
        let key = peer.key();
        peer.write(&header(true, 0, OP_PING, key, 126)).await;
        expect_failure(&mut ws, &mut peer, ErrorKind::Protocol, 1002).await;
    }
}

#[tokio::test]
async fn fragmented_control_frame_fails_with_1002() {
    for role in BOTH {
        for opcode in [OP_PING, OP_PONG, OP_CLOSE] {
            let wire = frame(false, 0, opcode, key_for(role), b"");
            fails_with(role, Config::default(), &wire, ErrorKind::Protocol, 1002).await;
        }
    }
}

#[tokio::test]
async fn continuation_without_a_message_fails_with_1002() {
    for role in BOTH {
        for fin in [true, false] {
            let wire = frame(fin, 0, OP_CONT, key_for(role), b"orphan");
            fails_with(role, Config::default(), &wire, ErrorKind::Protocol, 1002).await;
        }
        // Also right after a complete message.
        let (mut ws, mut peer) = scripted(role, Config::default());
        peer.send(true, OP_TEXT, b"done").await;
        peer.send(true, OP_CONT, b"late").await;
        assert_eq!(
            within("recv", ws.recv()).await.unwrap().unwrap(),
            Message::text("done")
        );
        expect_failure(&mut ws, &mut peer, ErrorKind::Protocol, 1002).await;
    }
}

#[tokio::test]
async fn new_data_frame_inside_a_fragmented_message_fails_with_1002() {
    for role in BOTH {
        for (first, second) in [
            (OP_TEXT, OP_BINARY),
            (OP_TEXT, OP_TEXT),
            (OP_BINARY, OP_TEXT),
            (OP_BINARY, OP_BINARY),
        ] {
            for second_fin in [true, false] {
                let (mut ws, mut peer) = scripted(role, Config::default());
                peer.send(false, first, b"start").await;
                peer.send(true, OP_PING, b"between").await;
                peer.send(second_fin, second, b"intruder").await;
                assert_eq!(
                    within("recv", ws.recv()).await.unwrap().unwrap(),
                    Message::Ping("between".into())
                );
                peer.expect_frame(OP_PONG, b"between").await;
                expect_failure(&mut ws, &mut peer, ErrorKind::Protocol, 1002).await;
            }
        }
    }
}

#[tokio::test]
async fn invalid_utf8_in_a_single_frame_fails_with_1007() {
    for role in BOTH {
        for bad in [
            &b"\xff"[..],
            b"abc\xc0\xaf",
            b"\xed\xa0\x80",             // a surrogate
            b"\xf4\x90\x80\x80",         // above U+10FFFF
            b"ok\xe2\x82",               // ends inside a code point
            b"\xce\xba\xe1\xbd\xb9\x80", // stray continuation byte
        ] {
            let wire = frame(true, 0, OP_TEXT, key_for(role), bad);
            fails_with(role, Config::default(), &wire, ErrorKind::InvalidUtf8, 1007).await;
        }
    }
}

#[tokio::test]
async fn invalid_utf8_split_across_fragments_fails_with_1007() {
    let cases: [&[&[u8]]; 4] = [
        // A code point begun in one fragment and broken in the next.
        &[b"\xce", b"\x28rest"],
        // Valid fragments whose message ends inside a code point.
        &[b"abc", b"\xe2\x82"],
        // A bad byte in a later fragment.
        &[b"fine so far ", b"still fine ", b"\xff"],
        // An overlong encoding split over three fragments.
        &[b"\xe0", b"\x80", b"\xaf"],
    ];
    for role in BOTH {
        for fragments in cases {
            let (mut ws, mut peer) = scripted(role, Config::default());
            for (i, piece) in fragments.iter().enumerate() {
                let opcode = if i == 0 { OP_TEXT } else { OP_CONT };
                peer.send(i + 1 == fragments.len(), opcode, piece).await;
            }
            expect_failure(&mut ws, &mut peer, ErrorKind::InvalidUtf8, 1007).await;
        }
    }
}

#[tokio::test]
async fn invalid_utf8_fails_before_the_rest_of_the_frame_arrives() {
    for role in BOTH {
        let (mut ws, mut peer) = scripted(role, Config::default());
        let mut payload = "κόσμε ".as_bytes().to_vec();
        payload.extend_from_slice(b"\xf4\x90"); // can never begin valid UTF-8
        payload.resize(10_000, b'x');
        let wire = frame(true, 0, OP_TEXT, peer.key(), &payload);
        let header_len = wire.len() - payload.len();

        // First chop: the header and some valid text. Nothing to report yet.
        peer.write(&wire[..header_len + 4]).await;
        assert!(
            tokio::time::timeout(QUIET, ws.recv()).await.is_err(),
            "recv finished on a valid partial frame"
        );
        peer.expect_silence().await;

        // Second chop carries the bad bytes; the rest of the frame is withheld.
        let bad_end = header_len + "κόσμε ".len() + 2;
        peer.write(&wire[header_len + 4..bad_end + 3]).await;
        let err = match within("recv after the bad byte", ws.recv()).await {
            Some(Err(e)) => e,
            other => panic!("expected an error before the frame ended, got {other:?}"),
        };
        assert_eq!(err.kind(), ErrorKind::InvalidUtf8);
        assert_eq!(err.close_code(), Some(CloseCode::INVALID_PAYLOAD));
        // The close is on the wire while the peer still holds most of the frame.
        peer.expect_close(Some(1007)).await;

        // The rest may still come; the connection is over regardless.
        let _ = peer.try_write(&wire[bad_end + 3..]).await;
        assert!(within("recv after failure", ws.recv()).await.is_none());
        peer.expect_eof().await;
    }
}

#[tokio::test]
async fn invalid_utf8_in_an_unfinished_message_fails_without_waiting_for_its_end() {
    for role in BOTH {
        let (mut ws, mut peer) = scripted(role, Config::default());
        peer.send(false, OP_TEXT, b"ok so far").await;
        peer.send(false, OP_CONT, b"then \xff").await;
        // The message's last fragment never comes.
        expect_failure(&mut ws, &mut peer, ErrorKind::InvalidUtf8, 1007).await;
    }
}

#[tokio::test]
async fn failure_is_reported_within_close_timeout_when_the_peer_reads_nothing() {
    let config = Config::default().close_timeout(Duration::from_millis(200));
    for role in BOTH {
        let (mut ws, mut peer) = scripted_with_capacity(role, config.clone(), 1024);
        // Our data fills the transport; the peer never reads, so our close cannot be written.
        assert!(
            tokio::time::timeout(QUIET, ws.send(Message::binary(vec![1; 3000])))
                .await
                .is_err()
        );
        peer.write(&frame(true, 0b100, OP_TEXT, key_for(role), b"bad"))
            .await;
        match within("recv", ws.recv()).await {
            Some(Err(e)) => {
                assert_eq!(e.kind(), ErrorKind::Protocol, "{e}");
                assert_eq!(e.close_code(), Some(CloseCode::PROTOCOL_ERROR));
            }
            other => panic!("expected the failure, got {other:?}"),
        }
        assert!(within("recv", ws.recv()).await.is_none());
    }
}

#[tokio::test]
async fn nothing_is_answered_after_the_connection_failed() {
    for role in BOTH {
        let (mut ws, mut peer) = scripted(role, Config::default());
        let mut wire = frame(true, 0b010, OP_TEXT, key_for(role), b"bad");
        wire.extend(frame(true, 0, OP_PING, key_for(role), b"ignored"));
        wire.extend(frame(
            true,
            0,
            OP_CLOSE,
            key_for(role),
            &close_payload(1000, b""),
        ));
        peer.write(&wire).await;
        // Only the failure's close goes out: no pong, no close echo.
        expect_failure(&mut ws, &mut peer, ErrorKind::Protocol, 1002).await;
    }
}

#[tokio::test]
async fn invalid_utf8_in_close_reason_fails_with_1007() {
    for role in BOTH {
        for reason in [&b"\xff"[..], b"bye\xc3", b"\xed\xbf\xbf"] {
            let wire = frame(
                true,
                0,
                OP_CLOSE,
                key_for(role),
                &close_payload(1000, reason),
            );
            fails_with(role, Config::default(), &wire, ErrorKind::InvalidUtf8, 1007).await;
        }
    }
}

#[tokio::test]
async fn frame_over_max_frame_size_fails_on_its_header() {
    let config = Config::default().max_frame_size(1024);
    for role in BOTH {
        for len in [1025u64, 65_536, 1 << 40, (1 << 63) - 1] {
            for opcode in [OP_TEXT, OP_BINARY, OP_CONT] {
                let (mut ws, mut peer) = scripted(role, config.clone());
                if opcode == OP_CONT {
                    peer.send(false, OP_BINARY, b"first").await;
                }
                // Only the header: the payload is never sent.
                let key = peer.key();
                peer.write(&header(true, 0, opcode, key, len)).await;
                expect_failure(&mut ws, &mut peer, ErrorKind::Capacity, 1009).await;
            }
        }
    }
}

#[tokio::test]
async fn frame_at_max_frame_size_is_accepted() {
    let config = Config::default().max_frame_size(1024);
    for role in BOTH {
        let (mut ws, mut peer) = scripted(role, config.clone());
        peer.send(true, OP_BINARY, &[7; 1024]).await;
        assert_eq!(
            within("recv", ws.recv()).await.unwrap().unwrap(),
            Message::binary(vec![7; 1024])
        );
    }
}

#[tokio::test]
async fn message_over_max_message_size_fails_on_the_fragment_header() {
    let config = Config::default().max_message_size(1000);
    for role in BOTH {
        for opcode in [OP_TEXT, OP_BINARY] {
            let (mut ws, mut peer) = scripted(role, config.clone());
            peer.send(false, opcode, &[b'a'; 600]).await;
            peer.send(false, OP_CONT, &[b'b'; 300]).await;
            // 600 + 300 + 101 > 1000: only the header of the last fragment is sent.
            let key = peer.key();
            peer.write(&header(true, 0, OP_CONT, key, 101)).await;
            expect_failure(&mut ws, &mut peer, ErrorKind::Capacity, 1009).await;
        }
        // A single frame over the message limit fails too.
        let (mut ws, mut peer) = scripted(role, config.clone());
        let key = peer.key();
        peer.write(&header(true, 0, OP_BINARY, key, 1001)).await;
        expect_failure(&mut ws, &mut peer, ErrorKind::Capacity, 1009).await;
    }
}

#[tokio::test]
async fn message_at_max_message_size_is_accepted() {
    let config = Config::default().max_message_size(1000);
    for role in BOTH {
        let (mut ws, mut peer) = scripted(role, config.clone());
        peer.send(false, OP_BINARY, &[1; 600]).await;
        peer.send(true, OP_CONT, &[2; 400]).await;
        let got = within("recv", ws.recv()).await.unwrap().unwrap();
        let mut want = vec![1; 600];
        want.extend_from_slice(&[2; 400]);
        assert_eq!(got, Message::binary(want));
    }
}

#[tokio::test]
async fn close_codes_that_may_not_be_sent_fail_with_1002() {
    for role in BOTH {
        for code in [
            0u16, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
        ] {
            let wire = frame(true, 0, OP_CLOSE, key_for(role), &close_payload(code, b""));
            fails_with(role, Config::default(), &wire, ErrorKind::Protocol, 1002).await;
        }
    }
}

#[tokio::test]
async fn one_byte_close_payload_fails_with_1002() {
    for role in BOTH {
        let wire = frame(true, 0, OP_CLOSE, key_for(role), &[0x03]);
        fails_with(role, Config::default(), &wire, ErrorKind::Protocol, 1002).await;
    }
}

#[tokio::test]
async fn peer_vanishing_mid_frame_is_an_io_error() {
    for role in BOTH {
        for cut in [1usize, 2, 5, 50] {
            let (mut ws, mut peer) = scripted(role, Config::default());
            let key = peer.key();
            let wire = frame(true, 0, OP_BINARY, key, &[9; 100]);
            peer.write(&wire[..cut]).await;
            drop(peer);
            match within("recv after the peer vanished", ws.recv()).await {
                Some(Err(e)) => assert_eq!(e.kind(), ErrorKind::Io, "{e}"),
                other => panic!("expected an I/O error, got {other:?}"),
            }
            assert!(within("recv at the end", ws.recv()).await.is_none());
            assert!(within("recv at the end", ws.recv()).await.is_none());
        }
    }
}

#[tokio::test]
async fn peer_ending_the_stream_mid_frame_is_an_io_error() {
    // The peer half-closes instead of dropping: the library can still write, but must not wait.
    for role in BOTH {
        let (mut ws, mut peer) = scripted(role, Config::default());
        let key = peer.key();
        let wire = frame(true, 0, OP_TEXT, key, b"never finished");
        peer.write(&wire[..wire.len() - 3]).await;
        peer.shutdown().await;
        match within("recv after end of stream", ws.recv()).await {
            Some(Err(e)) => assert_eq!(e.kind(), ErrorKind::Io, "{e}"),
            other => panic!("expected an I/O error, got {other:?}"),
        }
        assert!(within("recv at the end", ws.recv()).await.is_none());
    }
}

#[tokio::test]
async fn peer_vanishing_between_frames_is_an_abnormal_closure() {
    for role in BOTH {
        let (mut ws, mut peer) = scripted(role, Config::default());
        peer.send(true, OP_TEXT, b"last words").await;
        drop(peer);
        assert_eq!(
            within("recv", ws.recv()).await.unwrap().unwrap(),
            Message::text("last words")
        );
        match within("recv after the peer vanished", ws.recv()).await {
            Some(Err(e)) => {
                assert_eq!(e.kind(), ErrorKind::Io, "{e}");
                assert_eq!(e.close_code(), None);
            }
            other => panic!("expected an abnormal closure, got {other:?}"),
        }
        assert!(within("recv at the end", ws.recv()).await.is_none());
        assert_eq!(ws.close_code(), None);
    }
}

/// One run of garbage against a fresh connection: the bytes are written, the peer ends its
/// sending direction, and the library must end in an error or `None`, without panicking, within
/// a deadline. Whatever it sent must be well-formed frames, masked per its role, and a failure
/// with a close code must have put that code on the wire.
/// Returns how the run ended, for the caller's tally.
async fn garbage_run(role: Role, config: Config, bytes: Vec<u8>) -> Outcome {
    let (mut ws, mut peer) = scripted(role, config);
    let library = tokio::spawn(async move {
        let mut results = Vec::new();
        loop {
            match ws.recv().await {
                None => break,
                Some(r) => {
                    let failed = r.is_err();
                    results.push(r);
                    if results.len() > 10_000 {
                        panic!("the stream does not end");
                    }
                    if failed {
                        // An error ends the stream.
                        assert!(
                            ws.recv().await.is_none(),
                            "the stream goes on after an error"
                        );
                        break;
                    }
                }
            }
        }
        assert!(ws.recv().await.is_none());
        results
    });
    let _ = peer.try_write(&bytes).await;
    let _ = tokio::io::AsyncWriteExt::shutdown(peer.io()).await;
    let (results, sent) = within_for(
        Duration::from_secs(2),
        "garbage run",
        futures::future::join(library, peer.read_to_end()),
    )
    .await;
    let results = results.unwrap_or_else(|e| {
        panic!("the library panicked on garbage {bytes:02x?} as {role:?}: {e}")
    });
    let close_code = results
        .iter()
        .find_map(|r| r.as_ref().err())
        .and_then(|e| e.close_code());
    if let Some(code) = close_code {
        let last = sent.last().unwrap_or_else(|| {
            panic!("failed with {code} but sent nothing on {bytes:02x?} as {role:?}")
        });
        assert_eq!(last.opcode, OP_CLOSE, "{bytes:02x?} as {role:?}");
        assert_eq!(last.close_code(), Some(code.0), "{bytes:02x?} as {role:?}");
    }
    for (i, f) in sent.iter().enumerate() {
        if f.opcode == OP_CLOSE {
            assert_eq!(i + 1, sent.len(), "frames after a close: {sent:?}");
        }
    }
    Outcome {
        data_messages: results
            .iter()
            .filter(|r| matches!(r, Ok(m) if m.is_data()))
            .count(),
        closed_by_peer: results.iter().any(|r| matches!(r, Ok(Message::Close(_)))),
        error: results
            .iter()
            .find_map(|r| r.as_ref().err())
            .map(|e| e.kind()),
    }
}

#[derive(Debug)]
struct Outcome {
    data_messages: usize,
    closed_by_peer: bool,
    error: Option<ErrorKind>,
}

/// Random bytes shaped like frames often enough to get past the first header check: valid
/// opcodes, mostly correct masking, small lengths, sometimes truncated or followed by noise.
fn frame_like_garbage(rng: &mut XorShift, role: Role) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..rng.below(6) + 1 {
        let opcode = [
            OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, 3, 0xB,
        ][rng.below(8) as usize];
        let fin = !rng.one_in(4);
        let rsv = if rng.one_in(10) {
            rng.below(8) as u8
        } else {
            0
        };
        let right_mask = role == Role::Server;
        let masked = if rng.one_in(10) {
            !right_mask
        } else {
            right_mask
        };
        let key = masked.then(|| [rng.byte(), rng.byte(), rng.byte(), rng.byte()]);
        let len = match rng.below(10) {
            0 => 126 + rng.below(300) as usize,
            1 => 0,
            2 => 60 + rng.below(200) as usize,
            _ => rng.below(40) as usize,
        };
        let payload = if opcode == OP_CLOSE && len >= 2 && !rng.one_in(3) {
            let codes = [1000u16, 1001, 1002, 1005, 1007, 3000, 4999, 0, 999];
            let mut p = close_payload(codes[rng.below(codes.len() as u64) as usize], b"");
            p.extend(rng.bytes(len - 2));
            p
        } else if opcode == OP_TEXT || opcode == OP_CONT {
            // Mostly ASCII, some high bytes: valid and invalid UTF-8 both occur.
            (0..len)
                .map(|_| {
                    if rng.one_in(8) {
                        rng.byte()
                    } else {
                        b'a' + rng.below(26) as u8
                    }
                })
                .collect()
        } else {
            rng.bytes(len)
        };
        let mut f = frame(fin, rsv, opcode, key, &payload);
        if rng.one_in(8) {
            f.truncate(rng.below(f.len() as u64 + 1) as usize);
        }
        if rng.one_in(15) {
            let at = rng.below(f.len() as u64 + 1) as usize;
            f.insert(at, rng.byte());
        }
        out.extend(f);
    }
    out
}

#[tokio::test]
async fn garbage_never_panics_or_hangs() {
    let mut rng = XorShift::new(0x5eed_1234_abcd_0042);
    let small = Config::default().max_frame_size(200).max_message_size(300);
    let (mut data_messages, mut closed_by_peer) = (0, 0);
    let mut errors = std::collections::BTreeMap::new();
    for i in 0..3000u32 {
        let role = if i % 2 == 0 {
            Role::Client
        } else {
            Role::Server
        };
        let bytes = if i % 3 == 0 {
            let n = rng.below(64) as usize;
            rng.bytes(n)
        } else {
            frame_like_garbage(&mut rng, role)
        };
        let config = if i % 4 < 2 {
            small.clone()
        } else {
            Config::default()
        };
        let outcome = garbage_run(role, config, bytes).await;
        data_messages += outcome.data_messages;
        closed_by_peer += usize::from(outcome.closed_by_peer);
        if let Some(kind) = outcome.error {
            *errors.entry(format!("{kind:?}")).or_insert(0) += 1;
        }
    }
    // The generator must reach every outcome, or the runs above prove little.
    assert!(data_messages > 100, "only {data_messages} data messages");
    assert!(closed_by_peer > 20, "only {closed_by_peer} closes");
    for kind in ["Io", "Protocol", "InvalidUtf8", "Capacity"] {
        assert!(
            errors.get(kind).copied().unwrap_or(0) > 20,
            "too few {kind} errors: {errors:?}"
        );
    }
}

/// A compressed frame from the peer of a library in `role`.
fn compressed_frame(role: Role, fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    frame(fin, 0b100, opcode, key_for(role), payload)
}

#[tokio::test]
async fn a_compression_bomb_fails_with_1009_once_inflated_past_the_limit() {
    // 64 MiB of zeros in about 64 KiB on the wire.
    let bomb = deflate_message(&vec![0u8; 64 << 20]);
    assert!(bomb.len() < 128 << 10, "{} bytes", bomb.len());
    for role in BOTH {
        // The message API: max_message_size counts inflated bytes.
        let config = Config::default().max_message_size(1 << 20);
        let (mut ws, mut peer) = scripted_deflate(role, config);
        peer.write(&compressed_frame(role, true, OP_BINARY, &bomb))
            .await;
        expect_failure(&mut ws, &mut peer, ErrorKind::Capacity, 1009).await;

        // The stream API: max_stream_message_size, checked while the reader reads.
        let config = Config::default().max_stream_message_size(Some(4 << 20));
        let (mut ws, mut peer) = scripted_deflate(role, config);
        peer.write(&compressed_frame(role, true, OP_BINARY, &bomb))
            .await;
        let mut reader = within("recv_stream", ws.recv_stream())
            .await
            .expect("a message")
            .expect("its first piece");
        let mut read = 0u64;
        let mut buf = vec![0u8; 256 << 10];
        let err = loop {
            match within("read", tokio::io::AsyncReadExt::read(&mut reader, &mut buf)).await {
                Ok(0) => panic!("the bomb read as complete after {read} bytes"),
                Ok(n) => read += n as u64,
                Err(e) => break e,
            }
        };
        assert!(read <= 4 << 20, "{read} bytes handed out past the limit");
        let inner = err
            .into_inner()
            .and_then(|e| e.downcast::<wsio::Error>().ok())
            .expect("the wsio error inside");
        assert_eq!(inner.kind(), ErrorKind::Capacity, "{inner}");
        drop(reader);
        peer.expect_close(Some(1009)).await;
    }
}

#[tokio::test]
async fn compressed_frames_break_the_rules_with_1002_and_bad_data_with_1007() {
    let hello = deflate_message(b"Hello, hello, hello");
    let bad_text = deflate_message(b"not \xc3\x28 text");
    for role in BOTH {
        let split = hello.len() / 2;
        let cases: Vec<(Vec<u8>, ErrorKind, u16)> = vec![
            // RSV1 on a continuation frame: only a message's first frame carries it.
            (
                [
                    compressed_frame(role, false, OP_TEXT, &hello[..split]),
                    compressed_frame(role, true, OP_CONT, &hello[split..]),
                ]
                .concat(),
                ErrorKind::Protocol,
                1002,
            ),
            // RSV1 on a ping.
            (
                compressed_frame(role, true, OP_PING, b""),
                ErrorKind::Protocol,
                1002,
            ),
            // RSV2 means nothing even with permessage-deflate.
            (
                frame(true, 0b010, OP_TEXT, key_for(role), b"x"),
                ErrorKind::Protocol,
                1002,
            ),
            // Not DEFLATE data.
            (
                compressed_frame(role, true, OP_BINARY, &[0xff; 16]),
                ErrorKind::Protocol,
                1007,
            ),
            // Invalid UTF-8 once inflated.
            (
                compressed_frame(role, true, OP_TEXT, &bad_text),
                ErrorKind::InvalidUtf8,
                1007,
            ),
        ];
        for (wire, kind, code) in cases {
            let (mut ws, mut peer) = scripted_deflate(role, Config::default());
            peer.write(&wire).await;
            expect_failure(&mut ws, &mut peer, kind, code).await;
        }
        // And a good one, in two frames, arrives whole.
        let (mut ws, mut peer) = scripted_deflate(role, Config::default());
        peer.write(
            &[
                compressed_frame(role, false, OP_TEXT, &hello[..split]),
                frame(true, 0, OP_CONT, key_for(role), &hello[split..]),
            ]
            .concat(),
        )
        .await;
        assert_eq!(
            within("recv", ws.recv()).await.unwrap().unwrap(),
            Message::text("Hello, hello, hello")
        );
    }
}
