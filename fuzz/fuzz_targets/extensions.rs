//! permessage-deflate negotiation: `accept_deflate_offer` (the server's choice) and
//! `check_deflate_response` (the client's check), on arbitrary `Sec-WebSocket-Extensions`
//! lines.
//!
//! Input: a flags byte (bits 0-1: the server's no-context-takeover preferences; bits 2-3: the
//! client's offer's; bit 4: the client offered nothing), a byte of server preferred window
//! sizes (low and high nibble, each `8 + n % 8`), a byte of offered window sizes (same), then
//! the header lines, separated by `\n` (lines that are not valid header values are dropped).
//!
//! Invariants:
//! - neither function panics;
//! - the server's choice does not depend on its preferences: the offer it accepts with the
//!   default preferences (which agree to exactly what the offer states) is the one it accepts
//!   with any preferences, and what is agreed is that offer combined with the preferences
//!   (no-context-takeover: either; window sizes: the smaller);
//! - round trip: the response value, checked by the client against the accepted offer, gives
//!   the same agreement as the server's;
//! - a response the client accepts is itself a valid offer (the grammars agree), and the
//!   client's agreement is what it states combined with the client's offer; every agreed window
//!   size is in 8..=15 and none is above the offer's or the preference's.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsio::handshake::{accept_deflate_offer, check_deflate_response, DeflateParams};
use wsio::http::{header::SEC_WEBSOCKET_EXTENSIONS, HeaderMap, HeaderValue};
use wsio_fuzz::Input;

fn params(flags: u8, bits: u8) -> DeflateParams {
    DeflateParams {
        server_no_context_takeover: flags & 1 != 0,
        client_no_context_takeover: flags & 2 != 0,
        server_max_window_bits: 8 + (bits & 0x0F) % 8,
        client_max_window_bits: 8 + (bits >> 4) % 8,
    }
}

fn lines(data: &[u8]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for line in data.split(|&b| b == b'\n') {
        if let Ok(value) = HeaderValue::from_bytes(line) {
            headers.append(SEC_WEBSOCKET_EXTENSIONS, value);
        }
    }
    headers
}

fn in_range(p: &DeflateParams) -> bool {
    (8..=15).contains(&p.server_max_window_bits) && (8..=15).contains(&p.client_max_window_bits)
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let flags = input.byte();
    let preferred = params(flags, input.byte());
    let offered = params(flags >> 2, input.byte());
    let offered = (flags & 0x10 == 0).then_some(offered);
    let headers = lines(input.rest());

    // The server's side.
    let as_offered = accept_deflate_offer(&headers, &DeflateParams::default());
    let chosen = accept_deflate_offer(&headers, &preferred);
    assert_eq!(as_offered.is_some(), chosen.is_some());
    if let (Some((_, offer)), Some((value, agreed))) = (&as_offered, &chosen) {
        assert!(in_range(offer) && in_range(agreed), "{offer:?} {agreed:?}");
        let expected = DeflateParams {
            server_no_context_takeover: offer.server_no_context_takeover
                || preferred.server_no_context_takeover,
            client_no_context_takeover: offer.client_no_context_takeover
                || preferred.client_no_context_takeover,
            server_max_window_bits: offer
                .server_max_window_bits
                .min(preferred.server_max_window_bits),
            client_max_window_bits: offer
                .client_max_window_bits
                .min(preferred.client_max_window_bits),
        };
        // An offer without client_max_window_bits keeps the client's window at 15 whatever the
        // server prefers: the only way the formula can differ.
        let no_client_limit = DeflateParams {
            client_max_window_bits: 15,
            ..expected
        };
        assert!(
            *agreed == expected
                || (*agreed == no_client_limit && offer.client_max_window_bits == 15),
            "{offer:?} {preferred:?} {agreed:?}"
        );
        let mut response = HeaderMap::new();
        response.append(SEC_WEBSOCKET_EXTENSIONS, value.clone());
        let checked = check_deflate_response(&response, Some(offer));
        assert_eq!(checked.as_ref().ok(), Some(&Some(*agreed)), "{value:?}");
    }

    // The client's side.
    match check_deflate_response(&headers, offered.as_ref()) {
        Ok(None) => {}
        Ok(Some(agreed)) => {
            let offered = offered.expect("an extension was accepted that was not offered");
            assert!(in_range(&agreed));
            assert!(agreed.server_max_window_bits <= offered.server_max_window_bits);
            assert!(agreed.client_max_window_bits <= offered.client_max_window_bits);
            assert!(agreed.client_no_context_takeover >= offered.client_no_context_takeover);
            let (_, stated) = as_offered.expect("an accepted response is a valid offer");
            let expected = DeflateParams {
                client_no_context_takeover: stated.client_no_context_takeover
                    || offered.client_no_context_takeover,
                client_max_window_bits: if stated.client_max_window_bits < 15 {
                    stated.client_max_window_bits
                } else {
                    offered.client_max_window_bits
                },
                ..stated
            };
            assert_eq!(agreed, expected);
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});
