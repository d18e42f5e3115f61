//! `FrameHeader::parse` on arbitrary bytes, and `encode` on arbitrary headers.
//!
//! Invariants:
//! - parsing is monotonic: once a prefix of the input gives an answer (a header or an error),
//!   every longer prefix gives the same answer; before that, "need more" (`Ok(None)`);
//! - a parsed header is within the RFC's bounds and re-encodes to the same bytes, except that a
//!   non-minimal length form on the wire re-encodes shorter; the encoding parses back to the
//!   same header;
//! - a header built from the input encodes to `encoded_len()` bytes and parses back to itself
//!   (or to the control-frame error its fields call for), every shorter prefix needing more.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsio::proto::error::ProtocolError;
use wsio::proto::header::{FrameHeader, OpCode, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN};

fuzz_target!(|data: &[u8]| {
    parse_direction(data);
    encode_direction(data);
});

fn parse_direction(data: &[u8]) {
    let whole = FrameHeader::parse(data);
    // Monotonic over every prefix up to the longest header (the parser reads no further).
    let mut answer: Option<Result<Option<(FrameHeader, usize)>, ProtocolError>> = None;
    for cut in 0..=data.len().min(MAX_HEADER_LEN) {
        let got = FrameHeader::parse(&data[..cut]);
        match &answer {
            Some(earlier) => assert_eq!(&got, earlier, "prefix {cut} of {data:02x?}"),
            None if got != Ok(None) => answer = Some(got),
            None => {}
        }
    }
    match answer {
        Some(first) => assert_eq!(first, whole, "{data:02x?}"),
        None => assert_eq!(whole, Ok(None), "{data:02x?}"),
    }

    let Ok(Some((header, len))) = whole else {
        if whole == Ok(None) {
            assert!(data.len() < MAX_HEADER_LEN);
        }
        return;
    };
    // The header's length follows from its first two bytes.
    let ext = match data[1] & 0x7F {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let mask_len = if data[1] & 0x80 != 0 { 4 } else { 0 };
    assert_eq!(len, 2 + ext + mask_len);
    assert!(len <= data.len());
    assert!(header.rsv <= 0b111);
    assert!(header.payload_len >> 63 == 0);
    if header.opcode.is_control() {
        assert!(header.fin && header.payload_len <= MAX_CONTROL_PAYLOAD);
    }
    assert_eq!(header.mask.is_some(), mask_len == 4);

    let mut out = [0u8; MAX_HEADER_LEN];
    let n = header.encode(&mut out);
    assert_eq!(n, header.encoded_len());
    assert_eq!(FrameHeader::parse(&out[..n]), Ok(Some((header, n))));
    assert_eq!(out[0], data[0], "first byte re-encodes identically");
    if n == len {
        assert_eq!(
            &out[..n],
            &data[..len],
            "minimal form re-encodes identically"
        );
    } else {
        // Only a longer-than-needed length form on the wire can make the encoding shorter.
        assert!(n < len);
        let minimal = match header.payload_len {
            0..=125 => 0,
            126..=0xFFFF => 2,
            _ => 8,
        };
        assert!(minimal < ext, "{data:02x?}");
    }
}

fn encode_direction(data: &[u8]) {
    let mut b = [0u8; 16];
    let take = data.len().min(16);
    b[..take].copy_from_slice(&data[..take]);
    let opcodes = [
        OpCode::Continuation,
        OpCode::Text,
        OpCode::Binary,
        OpCode::Close,
        OpCode::Ping,
        OpCode::Pong,
    ];
    // Spread the lengths over every length form: shift a 63-bit number right by 0..=63.
    let raw = u64::from_le_bytes(b[2..10].try_into().unwrap()) & (u64::MAX >> 1);
    let header = FrameHeader {
        fin: b[0] & 0x80 != 0,
        rsv: (b[0] >> 4) & 0b111,
        opcode: opcodes[usize::from(b[1]) % opcodes.len()],
        mask: (b[0] & 1 != 0).then(|| [b[10], b[11], b[12], b[13]]),
        payload_len: raw >> (b[14] % 64),
    };
    let mut out = [0u8; MAX_HEADER_LEN];
    let n = header.encode(&mut out);
    assert_eq!(n, header.encoded_len());
    let expected = if header.opcode.is_control() && !header.fin {
        Err(ProtocolError::FragmentedControlFrame)
    } else if header.opcode.is_control() && header.payload_len > MAX_CONTROL_PAYLOAD {
        Err(ProtocolError::ControlFrameTooLong)
    } else {
        Ok(Some((header, n)))
    };
    assert_eq!(FrameHeader::parse(&out[..n]), expected, "{header:?}");
    for cut in 0..n {
        let got = FrameHeader::parse(&out[..cut]);
        assert!(
            got == Ok(None) || (got == expected && expected.is_err()),
            "{header:?} cut at {cut}: {got:?}"
        );
    }
}
