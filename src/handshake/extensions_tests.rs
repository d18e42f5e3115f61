//! Tests of permessage-deflate negotiation: the offer, the server's choice, the client's check.

use super::*;

fn headers(lines: &[&str]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for line in lines {
        map.append(
            SEC_WEBSOCKET_EXTENSIONS,
            HeaderValue::from_str(line).unwrap(),
        );
    }
    map
}

fn params(snct: bool, cnct: bool, server_bits: u8, client_bits: u8) -> DeflateParams {
    DeflateParams {
        server_no_context_takeover: snct,
        client_no_context_takeover: cnct,
        server_max_window_bits: server_bits,
        client_max_window_bits: client_bits,
    }
}

const DEFAULT: DeflateParams = DeflateParams {
    server_no_context_takeover: false,
    client_no_context_takeover: false,
    server_max_window_bits: 15,
    client_max_window_bits: 15,
};

/// The server's answer to `lines` with `preferred`: the response text and what it agreed.
fn accept(lines: &[&str], preferred: &DeflateParams) -> Option<(String, DeflateParams)> {
    accept_deflate_offer(&headers(lines), preferred)
        .map(|(value, agreed)| (value.to_str().unwrap().to_owned(), agreed))
}

/// The server's answer with default preferences: what the accepted offer states.
fn accepted(lines: &[&str]) -> Option<(String, DeflateParams)> {
    accept(lines, &DEFAULT)
}

fn check(lines: &[&str], offered: &DeflateParams) -> Result<Option<DeflateParams>, HandshakeError> {
    check_deflate_response(&headers(lines), Some(offered))
}

fn reason_of(result: Result<Option<DeflateParams>, HandshakeError>) -> &'static str {
    match result {
        Err(HandshakeError::InvalidExtension {
            name: "permessage-deflate",
            reason,
        }) => reason,
        other => panic!("expected InvalidExtension, got {other:?}"),
    }
}

#[test]
fn defaults_and_validation() {
    assert_eq!(DeflateParams::default(), DEFAULT);
    assert!(DEFAULT.validate().is_ok());
    assert!(params(true, true, 8, 8).validate().is_ok());
    for (server, client) in [(7, 15), (16, 15), (15, 7), (15, 16), (0, 0), (255, 15)] {
        assert!(
            matches!(
                params(false, false, server, client).validate(),
                Err(HandshakeError::InvalidExtension { .. })
            ),
            "{server} {client}"
        );
    }
}

#[test]
fn offers() {
    let offer = |p: DeflateParams| deflate_offer(&p).to_str().unwrap().to_owned();
    assert_eq!(offer(DEFAULT), "permessage-deflate; client_max_window_bits");
    assert_eq!(
        offer(params(true, true, 10, 9)),
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
         server_max_window_bits=10; client_max_window_bits=9"
    );
    assert_eq!(
        offer(params(false, true, 15, 8)),
        "permessage-deflate; client_no_context_takeover; client_max_window_bits=8"
    );
    // Out of range: clamped.
    assert_eq!(
        offer(params(false, false, 3, 200)),
        "permessage-deflate; server_max_window_bits=8; client_max_window_bits"
    );
}

#[test]
fn every_offer_is_accepted_as_it_was_made() {
    for bits in 0..64u8 {
        let p = params(
            bits & 1 != 0,
            bits & 2 != 0,
            8 + (bits >> 2) % 8,
            15 - (bits >> 3) % 8,
        );
        let offer = deflate_offer(&p);
        let (_, agreed) = accepted(&[offer.to_str().unwrap()]).unwrap();
        assert_eq!(agreed, p, "{offer:?}");
    }
}

/// RFC 7692 §7.1.3: the simplest offer and answer.
#[test]
fn rfc7692_simplest_offer() {
    assert_eq!(
        accepted(&["permessage-deflate"]),
        Some(("permessage-deflate".to_owned(), DEFAULT))
    );
    assert_eq!(
        check(&["permessage-deflate"], &DEFAULT).unwrap(),
        Some(DEFAULT)
    );
}

/// RFC 7692 §7.1.3: a server window of 10 with a fallback to no limit, both declaring that the
/// client can limit its window.
#[test]
fn rfc7692_offer_with_fallback() {
    let offer = "permessage-deflate; client_max_window_bits; server_max_window_bits=10, \
                 permessage-deflate; client_max_window_bits";
    assert_eq!(
        accepted(&[offer]),
        Some((
            "permessage-deflate; server_max_window_bits=10".to_owned(),
            params(false, false, 10, 15)
        ))
    );
    // A server that prefers a smaller client window states it.
    assert_eq!(
        accept(&[offer], &params(false, false, 15, 10)),
        Some((
            "permessage-deflate; server_max_window_bits=10; client_max_window_bits=10".to_owned(),
            params(false, false, 10, 10)
        ))
    );
    // An invalid first offer falls back to the second.
    let offer = "permessage-deflate; client_max_window_bits; server_max_window_bits=16, \
                 permessage-deflate; client_max_window_bits";
    assert_eq!(
        accepted(&[offer]),
        Some(("permessage-deflate".to_owned(), DEFAULT))
    );
}

#[test]
fn offers_are_tried_in_order_across_lines_and_other_extensions_are_skipped() {
    let lines = [
        "x-webkit-deflate-frame, permessage-deflate; x=1",
        " , permessage-deflate; server_max_window_bits=9",
        "permessage-deflate; server_max_window_bits=12",
    ];
    assert_eq!(
        accepted(&lines),
        Some((
            "permessage-deflate; server_max_window_bits=9".to_owned(),
            params(false, false, 9, 15)
        ))
    );
    assert_eq!(accepted(&["x-webkit-deflate-frame", "foo; bar=1"]), None);
    assert_eq!(accepted(&[]), None);
    assert_eq!(accepted(&["", " , ,"]), None);
    // Names are compared case-insensitively.
    assert_eq!(
        accepted(&["Permessage-Deflate; Server_No_Context_Takeover"]),
        Some((
            "permessage-deflate; server_no_context_takeover".to_owned(),
            params(true, false, 15, 15)
        ))
    );
}

#[test]
fn each_parameter_with_and_without_a_value() {
    let one = |offer: &str| accepted(&[offer]).map(|(_, agreed)| agreed);
    assert_eq!(
        one("permessage-deflate; server_no_context_takeover"),
        Some(params(true, false, 15, 15))
    );
    assert_eq!(
        one("permessage-deflate; server_no_context_takeover=1"),
        None
    );
    assert_eq!(
        one("permessage-deflate; client_no_context_takeover"),
        Some(params(false, true, 15, 15))
    );
    assert_eq!(
        one("permessage-deflate; client_no_context_takeover=\"x\""),
        None
    );
    assert_eq!(
        one("permessage-deflate; server_max_window_bits=11"),
        Some(params(false, false, 11, 15))
    );
    assert_eq!(one("permessage-deflate; server_max_window_bits"), None);
    assert_eq!(
        one("permessage-deflate; client_max_window_bits"),
        Some(params(false, false, 15, 15))
    );
    assert_eq!(
        one("permessage-deflate; client_max_window_bits=13"),
        Some(params(false, false, 15, 13))
    );
}

#[test]
fn window_bits_are_8_to_15_without_leading_zeros() {
    for bits in 8..=15u8 {
        for name in ["server_max_window_bits", "client_max_window_bits"] {
            for value in [bits.to_string(), format!("\"{bits}\"")] {
                let offer = format!("permessage-deflate; {name}={value}");
                let (_, agreed) = accepted(&[&offer]).unwrap();
                let got = if name.starts_with("server") {
                    agreed.server_max_window_bits
                } else {
                    agreed.client_max_window_bits
                };
                assert_eq!(got, bits, "{offer}");
            }
        }
    }
    for value in [
        "7",
        "16",
        "0",
        "08",
        "010",
        "+9",
        "-9",
        "9.0",
        "0x9",
        "1 0",
        "",
        "\"\"",
        "\"08\"",
        "a",
        "\"1\\0\"x",
    ] {
        for name in ["server_max_window_bits", "client_max_window_bits"] {
            let offer = format!("permessage-deflate; {name}={value}");
            assert_eq!(accepted(&[&offer]), None, "{offer}");
        }
    }
    // An escaped digit in a quoted string is the digit.
    assert_eq!(
        accepted(&["permessage-deflate; server_max_window_bits=\"1\\0\""])
            .unwrap()
            .1
            .server_max_window_bits,
        10
    );
}

#[test]
fn bad_offers_are_declined_and_the_next_one_is_tried() {
    let fallback = "permessage-deflate; client_no_context_takeover";
    for bad in [
        "permessage-deflate; x_unknown",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
        "permessage-deflate; server_max_window_bits=10; Server_Max_Window_Bits=10",
        "permessage-deflate;",
        "permessage-deflate; ; server_no_context_takeover",
        "permessage-deflate; =10",
        "permessage-deflate; server_max_window_bits=\"10",
        "permessage-deflate; server_max_window_bits=10 11",
        "permessage-deflate; server_max_window_bits=\"a b\"",
        "permessage-deflate; server_max_window_bits=10=10",
        "permessage-deflate; client_max_window_bits=",
    ] {
        let expected = Some((fallback.to_owned(), params(false, true, 15, 15)));
        assert_eq!(accepted(&[bad, fallback]), expected, "{bad}");
        // On one line too, but an unclosed quote runs to the end of its line.
        if !bad.ends_with("\"10") {
            assert_eq!(
                accepted(&[&format!("{bad}, {fallback}")]),
                expected,
                "{bad}"
            );
        }
        assert_eq!(accepted(&[bad]), None, "{bad}");
    }
}

#[test]
fn commas_and_semicolons_in_quoted_strings_separate_nothing() {
    // The quoted string holds a comma and a fake second offer: one element, declined (the
    // value is not a token), and nothing after it.
    assert_eq!(
        accepted(&["permessage-deflate; x=\", permessage-deflate, \""]),
        None
    );
    assert_eq!(
        accepted(&["permessage-deflate; server_max_window_bits=\"9; client_no_context_takeover\""]),
        None
    );
    // An unclosed quote runs to the end of its line, not into the next line.
    assert_eq!(
        accepted(&[
            "permessage-deflate; server_max_window_bits=\"9, permessage-deflate",
            "permessage-deflate; server_max_window_bits=12"
        ]),
        Some((
            "permessage-deflate; server_max_window_bits=12".to_owned(),
            params(false, false, 12, 15)
        ))
    );
}

#[test]
fn server_preferences() {
    let offer = ["permessage-deflate; client_max_window_bits"];
    assert_eq!(
        accept(&offer, &params(true, true, 10, 9)),
        Some((
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=10; client_max_window_bits=9"
                .to_owned(),
            params(true, true, 10, 9)
        ))
    );
    // The smaller of offered and preferred windows wins; an offered value is always answered.
    let offer = ["permessage-deflate; server_max_window_bits=12; client_max_window_bits=11"];
    assert_eq!(
        accept(&offer, &params(false, false, 10, 13)),
        Some((
            "permessage-deflate; server_max_window_bits=10; client_max_window_bits=11".to_owned(),
            params(false, false, 10, 11)
        ))
    );
    assert_eq!(
        accept(&offer, &DEFAULT),
        Some((
            "permessage-deflate; server_max_window_bits=12; client_max_window_bits=11".to_owned(),
            params(false, false, 12, 11)
        ))
    );
    // An offer that says nothing of client_max_window_bits gets none, whatever the server
    // prefers (RFC 7692 §7.1.2.2), and the client's window stays 15.
    assert_eq!(
        accept(&["permessage-deflate"], &params(false, false, 15, 9)),
        Some(("permessage-deflate".to_owned(), DEFAULT))
    );
    // A server window below 15 is stated even when not offered (RFC 7692 §7.1.2.1).
    assert_eq!(
        accept(&["permessage-deflate"], &params(false, false, 11, 15)),
        Some((
            "permessage-deflate; server_max_window_bits=11".to_owned(),
            params(false, false, 11, 15)
        ))
    );
    // An offered window of 8 is accepted as 8.
    assert_eq!(
        accept(&["permessage-deflate; server_max_window_bits=8"], &DEFAULT),
        Some((
            "permessage-deflate; server_max_window_bits=8".to_owned(),
            params(false, false, 8, 15)
        ))
    );
    // Preferences out of range are clamped.
    assert_eq!(
        accept(
            &["permessage-deflate; client_max_window_bits"],
            &params(false, false, 2, 99)
        ),
        Some((
            "permessage-deflate; server_max_window_bits=8".to_owned(),
            params(false, false, 8, 15)
        ))
    );
}

#[test]
fn client_agrees_with_what_the_response_states_and_its_offer() {
    let offer = DEFAULT;
    assert_eq!(check(&[], &offer).unwrap(), None);
    assert_eq!(check(&["", " , "], &offer).unwrap(), None);
    assert_eq!(
        check(
            &[
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
               server_max_window_bits=8; client_max_window_bits=9"
            ],
            &offer
        )
        .unwrap(),
        Some(params(true, true, 8, 9))
    );
    // The client's own no-context-takeover and window hold even when the answer omits them;
    // a server_no_context_takeover left out is not agreed.
    let offer = params(true, true, 15, 10);
    assert_eq!(
        check(&["permessage-deflate"], &offer).unwrap(),
        Some(params(false, true, 15, 10))
    );
    // An offered server window below 15 must be answered.
    let offer = params(true, true, 12, 10);
    assert_eq!(
        reason_of(check(&["permessage-deflate"], &offer)),
        "server_max_window_bits was offered but not answered"
    );
    assert_eq!(
        check(&["permessage-deflate; server_max_window_bits=12"], &offer).unwrap(),
        Some(params(false, true, 12, 10))
    );
    assert_eq!(
        check(
            &["permessage-deflate; server_max_window_bits=8; client_max_window_bits=9"],
            &offer
        )
        .unwrap(),
        Some(params(false, true, 8, 9))
    );
    // A bare client_max_window_bits in an answer sets no limit beyond the offer.
    assert_eq!(
        check(
            &["permessage-deflate; server_max_window_bits=12; client_max_window_bits"],
            &offer
        )
        .unwrap(),
        Some(params(false, true, 12, 10))
    );
    // A quoted value, and the answer over two lines with an empty element.
    assert_eq!(
        check(
            &["", "permessage-deflate; server_max_window_bits=\"11\""],
            &offer
        )
        .unwrap(),
        Some(params(false, true, 11, 10))
    );
}

#[test]
fn client_rejections() {
    let offer = params(false, false, 12, 10);
    let unexpected = |result| matches!(result, Err(HandshakeError::UnexpectedExtension(name)) if name == "x-foo");
    assert!(unexpected(check(&["x-foo"], &offer)));
    assert!(unexpected(check(
        &[
            "permessage-deflate; server_max_window_bits=12",
            "x-foo; a=1"
        ],
        &offer
    )));
    assert!(unexpected(check(&["x-foo, permessage-deflate"], &offer)));
    assert!(matches!(
        check_deflate_response(&headers(&["permessage-deflate"]), None),
        Err(HandshakeError::UnexpectedExtension(name)) if name == "permessage-deflate"
    ));
    assert_eq!(
        reason_of(check(
            &["permessage-deflate; server_max_window_bits=9, permessage-deflate"],
            &offer
        )),
        "the server accepted permessage-deflate twice"
    );
    assert_eq!(
        reason_of(check(
            &[
                "permessage-deflate; server_max_window_bits=9",
                "permessage-deflate"
            ],
            &offer
        )),
        "the server accepted permessage-deflate twice"
    );
    let cases = [
        ("x_unknown", "a parameter is unknown"),
        (
            "server_no_context_takeover; server_no_context_takeover",
            "a parameter appears twice",
        ),
        (
            "server_no_context_takeover=1",
            "server_no_context_takeover has a value",
        ),
        (
            "client_no_context_takeover=1",
            "client_no_context_takeover has a value",
        ),
        (
            "server_max_window_bits",
            "server_max_window_bits has no value",
        ),
        (
            "server_max_window_bits=7",
            "server_max_window_bits is not a number from 8 to 15",
        ),
        (
            "server_max_window_bits=010",
            "server_max_window_bits is not a number from 8 to 15",
        ),
        (
            "client_max_window_bits=16",
            "client_max_window_bits is not a number from 8 to 15",
        ),
        (
            "server_max_window_bits=13",
            "server_max_window_bits is above the offered value",
        ),
        (
            "server_max_window_bits=12; client_max_window_bits=11",
            "client_max_window_bits is above the offered value",
        ),
        (
            "server_max_window_bits=\"12",
            "a quoted value is not closed",
        ),
        (
            "server_max_window_bits=1 2",
            "a parameter value is not a token",
        ),
        ("", "a parameter is empty"),
    ];
    for (param, reason) in cases {
        let line = format!("permessage-deflate; {param}");
        assert_eq!(reason_of(check(&[&line], &offer)), reason, "{line}");
    }
    // At the offered value, and below it, the answer is accepted.
    assert!(check(&["permessage-deflate; server_max_window_bits=12"], &offer).is_ok());
    assert!(check(
        &["permessage-deflate; server_max_window_bits=11; client_max_window_bits=10"],
        &offer
    )
    .is_ok());
}

#[test]
fn server_answers_pass_the_client_check_with_the_same_agreement() {
    let offers = [
        DEFAULT,
        params(true, false, 9, 15),
        params(false, true, 15, 8),
        params(true, true, 8, 12),
    ];
    let preferences = [
        DEFAULT,
        params(true, true, 15, 15),
        params(false, false, 10, 11),
        params(false, true, 8, 8),
    ];
    for offer in offers {
        let request = headers(&[deflate_offer(&offer).to_str().unwrap()]);
        for preferred in preferences {
            let (value, server) = accept_deflate_offer(&request, &preferred).unwrap();
            let response = headers(&[value.to_str().unwrap()]);
            let client = check_deflate_response(&response, Some(&offer)).unwrap();
            assert_eq!(client, Some(server), "{offer:?} {preferred:?} {value:?}");
            assert_eq!(stated_in_response(&response), Some(server), "{value:?}");
        }
    }
}

#[test]
fn lenient_reading_of_a_response() {
    assert_eq!(stated_in_response(&headers(&[])), None);
    assert_eq!(
        stated_in_response(&headers(&[
            "x-foo, permessage-deflate; bad",
            "permessage-deflate; client_max_window_bits=9"
        ])),
        Some(params(false, false, 15, 9))
    );
}
