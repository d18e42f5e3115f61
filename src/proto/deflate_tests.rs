use super::*;

fn settings() -> DeflateSettings {
    DeflateSettings::default()
}

/// Inflates the payloads of whole messages one after another with `inflater`, feeding each
/// message in pieces of `split` bytes.
fn inflate(inflater: &mut Inflater, kind: DataKind, payload: &[u8], split: usize) -> Vec<u8> {
    let mut got = Vec::new();
    let pieces: Vec<&[u8]> = if payload.is_empty() {
        vec![&[]]
    } else {
        payload.chunks(split.max(1)).collect()
    };
    let last = pieces.len() - 1;
    let mut ended = false;
    for (i, piece) in pieces.into_iter().enumerate() {
        inflater.push(kind, Bytes::copy_from_slice(piece), i == 0, i == last);
        while inflater.has_work() {
            match inflater.next_piece(None).unwrap() {
                Step::Piece(p) => {
                    assert!(p.data.len() <= INFLATE_PIECE);
                    got.extend_from_slice(&p.data);
                    ended |= p.end;
                }
                Step::NeedInput => break,
                Step::AtLimit => unreachable!("no limit"),
            }
        }
    }
    assert!(ended, "the message ended");
    got
}

fn text(n: usize) -> Vec<u8> {
    let words = ["alpha ", "beta ", "gamma ", "delta ", "épsilon ", "ζήτα "];
    let mut out = Vec::new();
    let mut i = 7usize;
    while out.len() < n {
        i = i.wrapping_mul(1103515245).wrapping_add(12345);
        out.extend_from_slice(words[(i >> 16) % words.len()].as_bytes());
    }
    // Cut on a character boundary.
    let mut end = n.min(out.len());
    while std::str::from_utf8(&out[..end]).is_err() {
        end -= 1;
    }
    out.truncate(end);
    out
}

#[test]
fn whole_messages_round_trip_with_and_without_context_takeover() {
    for no_takeover in [false, true] {
        let settings = DeflateSettings {
            send_no_context_takeover: no_takeover,
            receive_no_context_takeover: no_takeover,
            ..settings()
        };
        let mut compressor = Compressor::new(settings);
        let mut inflater = Inflater::new(&settings);
        let mut sizes = Vec::new();
        for n in [0, 1, 100, 1000, 1000, 70_000, 300_000] {
            let message = text(n);
            let payload = compressor.compress_message(&message).unwrap();
            sizes.push(payload.len());
            assert_eq!(compressor.is_allocated(), !no_takeover);
            for split in [1, 7, 1 << 20] {
                if split == 1 && n > 1000 {
                    continue;
                }
                let mut inflater_copy = Inflater::new(&settings);
                if no_takeover {
                    assert_eq!(
                        inflate(&mut inflater_copy, DataKind::Text, &payload, split),
                        message
                    );
                }
            }
            assert_eq!(
                inflate(&mut inflater, DataKind::Text, &payload, 1 << 20),
                message
            );
            assert_eq!(inflater.is_allocated(), !no_takeover);
        }
        // RFC 7692 §7.2.3.6: the empty message's payload is a single 0x00.
        assert_eq!(sizes[0], 1);
        if !no_takeover {
            // The second 1000-byte message repeats the first: with the window kept, it is
            // a few back-references.
            assert!(sizes[4] < sizes[3] / 4, "{sizes:?}");
        }
    }
}

#[test]
fn rfc7692_examples_inflate() {
    // §7.2.3.1: "Hello" compressed, in one frame and in two.
    let hello = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
    let mut inflater = Inflater::new(&settings());
    assert_eq!(inflate(&mut inflater, DataKind::Text, &hello, 99), b"Hello");
    let mut inflater = Inflater::new(&settings());
    assert_eq!(inflate(&mut inflater, DataKind::Text, &hello, 3), b"Hello");
    // §7.2.3.2: the second "Hello" with the window kept from the first.
    assert_eq!(
        inflate(
            &mut inflater,
            DataKind::Text,
            &[0xf2, 0x00, 0x11, 0x00, 0x00],
            99
        ),
        b"Hello"
    );
    // §7.2.3.3: "Hello" in a stored (uncompressed) block.
    let stored = [
        0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
    ];
    assert_eq!(
        inflate(&mut Inflater::new(&settings()), DataKind::Text, &stored, 99),
        b"Hello"
    );
    // §7.2.3.4: two DEFLATE blocks in one message.
    let two = [
        0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00,
    ];
    assert_eq!(
        inflate(&mut Inflater::new(&settings()), DataKind::Text, &two, 4),
        b"Hello"
    );
    // §7.2.3.5: a final block (BFINAL set); the next message starts a new stream.
    let mut inflater = Inflater::new(&settings());
    let last = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
    assert_eq!(inflate(&mut inflater, DataKind::Text, &last, 99), b"Hello");
    assert_eq!(inflate(&mut inflater, DataKind::Text, &hello, 99), b"Hello");
}

#[test]
fn our_output_matches_the_rfc_hello() {
    let mut compressor = Compressor::new(settings());
    let payload = compressor.compress_message(b"Hello").unwrap();
    assert_eq!(&payload[..], &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
}

#[test]
fn streamed_messages_hold_back_the_trailer_across_flushes() {
    let settings = settings();
    let mut compressor = Compressor::new(settings);
    let mut inflater = Inflater::new(&settings);
    let message = text(200_000);
    for rounds in 0..3 {
        // Written in pieces, flushed at odd points, framed in the pieces each call returns.
        let mut frames: Vec<Vec<u8>> = Vec::new();
        for (i, piece) in message.chunks(9_999).enumerate() {
            frames.push(compressor.write(piece).unwrap().to_vec());
            if i % 3 == rounds {
                frames.push(compressor.flush().unwrap().to_vec());
                // A second flush with nothing new is harmless.
                frames.push(compressor.flush().unwrap().to_vec());
            }
        }
        if rounds == 1 {
            frames.push(compressor.flush().unwrap().to_vec());
        }
        frames.push(compressor.finish().unwrap().to_vec());
        let mut got = Vec::new();
        let last = frames.len() - 1;
        for (i, frame) in frames.into_iter().enumerate() {
            inflater.push(DataKind::Text, Bytes::from(frame), i == 0, i == last);
            while inflater.has_work() {
                match inflater.next_piece(None).unwrap() {
                    Step::Piece(p) => got.extend_from_slice(&p.data),
                    Step::NeedInput => break,
                    Step::AtLimit => unreachable!(),
                }
            }
        }
        assert_eq!(got, message, "round {rounds}");
        // And a whole message after it, with the window kept.
        let payload = compressor.compress_message(b"Hello Hello").unwrap();
        assert_eq!(
            inflate(&mut inflater, DataKind::Text, &payload, 99),
            b"Hello Hello"
        );
    }
    // An empty streamed message: nothing written, then the end.
    let end = compressor.finish().unwrap().to_vec();
    assert_eq!(inflate(&mut inflater, DataKind::Binary, &end, 99), b"");
}

#[test]
fn a_bomb_stops_one_byte_past_the_limit() {
    let settings = settings();
    let mut compressor = Compressor::new(settings);
    let zeros = vec![0u8; 8 << 20];
    let payload = compressor.compress_message(&zeros).unwrap();
    assert!(payload.len() < 16 << 10, "{} bytes", payload.len());
    let mut inflater = Inflater::new(&settings);
    inflater.push(DataKind::Binary, payload, true, true);
    let limit = 1_000_000;
    let mut produced = 0;
    loop {
        match inflater.next_piece(Some(limit)).unwrap() {
            Step::Piece(p) => {
                produced += p.data.len();
                assert!(!p.end);
            }
            Step::AtLimit => break,
            Step::NeedInput => panic!("more input is there"),
        }
    }
    assert_eq!(produced, limit);
    assert_eq!(
        inflater.too_large(limit),
        FailReason::Capacity(CapacityError::MessageTooLarge {
            size: limit as u64 + 1,
            max: limit
        })
    );
    // A larger limit (a stream consumer taking over) goes on from there, nothing lost.
    let mut rest = 0;
    while inflater.has_work() {
        match inflater.next_piece(None).unwrap() {
            Step::Piece(p) => rest += p.data.len(),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(produced + rest, zeros.len());
}

#[test]
fn a_message_exactly_at_the_limit_passes() {
    let settings = settings();
    let mut compressor = Compressor::new(settings);
    let message = text(5000);
    let payload = compressor.compress_message(&message).unwrap();
    let mut inflater = Inflater::new(&settings);
    inflater.push(DataKind::Text, payload, true, true);
    match inflater.next_piece(Some(message.len())).unwrap() {
        Step::Piece(p) => {
            assert!(p.end);
            assert_eq!(p.data, message);
            assert_eq!(p.utf8.map(|proof| proof.len()), Some(message.len() as u64));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn bad_data_and_bad_text_fail() {
    let mut inflater = Inflater::new(&settings());
    inflater.push(
        DataKind::Binary,
        Bytes::from_static(&[0xff; 10]),
        true,
        true,
    );
    assert_eq!(
        inflater.next_piece(None).unwrap_err(),
        FailReason::Protocol(ProtocolError::InvalidCompressedData)
    );
    let mut compressor = Compressor::new(settings());
    let payload = compressor.compress_message(b"ok \xff not text").unwrap();
    let mut inflater = Inflater::new(&settings());
    inflater.push(DataKind::Text, payload, true, true);
    assert_eq!(
        inflater.next_piece(None).unwrap_err(),
        FailReason::Protocol(ProtocolError::InvalidUtf8)
    );
    // Bytes after a final block in the same message are not inflated.
    let mut inflater = Inflater::new(&settings());
    let after_final = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0xf2, 0x48];
    assert_eq!(
        inflate(&mut inflater, DataKind::Text, &after_final, 99),
        b"Hello"
    );
}

#[test]
fn an_eight_bit_window_codes_literals_only() {
    // A 9-bit raw inflater (the smallest zlib has) inflates what a compressor limited to 8
    // bits made from data full of long-distance repeats: no back-reference in it at all.
    let settings = DeflateSettings {
        send_window_bits: 8,
        receive_window_bits: 8,
        ..settings()
    };
    let mut compressor = Compressor::new(settings);
    let message = text(50_000);
    let payload = compressor.compress_message(&message).unwrap();
    assert!(
        payload.len() < message.len(),
        "Huffman coding still compresses text"
    );
    let mut raw = zlib_rs::Inflate::new(false, 9);
    let mut input = payload.to_vec();
    input.extend_from_slice(&TRAILER);
    let mut out = vec![0; message.len() + 16];
    raw.decompress(&input, &mut out, InflateFlush::SyncFlush)
        .unwrap();
    assert_eq!(&out[..raw.total_out() as usize], &message[..]);
}

#[test]
fn an_abandoned_stream_leaves_nothing_behind_for_the_next_message() {
    let settings = settings();
    let mut inflater = Inflater::new(&settings);
    let noise = |n: usize| -> Vec<u8> {
        let mut x = 0x9e37_79b9_u32;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect()
    };
    // Level 1 (wsio's default) is zlib-rs's "quick" strategy, which keeps a block open
    // across calls: the case that once carried over into the next message.
    for (abandoned_len, level, mem_level) in [
        (0usize, 1, 5),
        (10, 1, 5),
        (3_000, 1, 5),
        (100_000, 1, 5),
        (3_000, 6, 8),
        (100_000, 6, 8),
    ] {
        let settings = DeflateSettings {
            level,
            mem_level,
            ..settings
        };
        let mut compressor = Compressor::new(settings);
        // A message the peer already holds, so the window matters.
        let first = compressor.compress_message(b"a message before").unwrap();
        assert_eq!(
            inflate(&mut inflater, DataKind::Binary, &first, 99),
            b"a message before"
        );
        // A streamed message written (its output framed nowhere), then abandoned.
        let _ = compressor.write(&text(abandoned_len)).unwrap();
        let _ = compressor.write(&noise(abandoned_len)).unwrap();
        compressor.abandon();
        let mut payload = compressor.write(b"the next message").unwrap().to_vec();
        payload.extend_from_slice(compressor.finish().unwrap());
        assert_eq!(
            inflate(&mut inflater, DataKind::Binary, &payload, 99),
            b"the next message",
            "after abandoning {abandoned_len} bytes"
        );
    }
}
