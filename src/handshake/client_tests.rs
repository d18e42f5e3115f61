//! Tests of the client side of the handshake.

use super::*;
use http::header::{SEC_WEBSOCKET_EXTENSIONS, SEC_WEBSOCKET_PROTOCOL};

const RFC_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const RFC_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

fn request(uri: &str) -> http::request::Builder {
    Request::builder().uri(uri)
}

fn handshake(builder: http::request::Builder) -> Result<ClientHandshake, HandshakeError> {
    ClientHandshake::new(builder.body(()).unwrap())
}

/// The handshake of RFC 6455 §1.2, with its fixed key.
fn rfc_handshake() -> ClientHandshake {
    handshake(
        request("ws://server.example.com/chat")
            .header("Sec-WebSocket-Key", RFC_KEY)
            .header("Origin", "http://example.com")
            .header("Sec-WebSocket-Protocol", "chat, superchat"),
    )
    .unwrap()
}

fn written(hs: &ClientHandshake) -> String {
    let mut out = Vec::new();
    hs.write_request(&mut out);
    String::from_utf8(out).unwrap()
}

fn host_of(uri: &str) -> String {
    let hs = handshake(request(uri)).unwrap();
    hs.request().headers()[HOST].to_str().unwrap().to_owned()
}

#[test]
fn writes_the_rfc_example_request() {
    assert_eq!(
        written(&rfc_handshake()),
        "GET /chat HTTP/1.1\r\n\
         host: server.example.com\r\n\
         upgrade: websocket\r\n\
         connection: Upgrade\r\n\
         sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         sec-websocket-version: 13\r\n\
         origin: http://example.com\r\n\
         sec-websocket-protocol: chat, superchat\r\n\
         \r\n"
    );
}

#[test]
fn host_has_the_port_only_when_not_default() {
    assert_eq!(host_of("ws://example.com/"), "example.com");
    assert_eq!(host_of("ws://example.com:80/"), "example.com");
    assert_eq!(host_of("ws://example.com:8080/"), "example.com:8080");
    assert_eq!(host_of("wss://example.com:443/"), "example.com");
    assert_eq!(host_of("wss://example.com:80/"), "example.com:80");
    assert_eq!(host_of("http://example.com:80/"), "example.com");
    assert_eq!(host_of("https://example.com/"), "example.com");
    assert_eq!(host_of("https://example.com:8443/"), "example.com:8443");
    assert_eq!(host_of("ws://[::1]:9001/"), "[::1]:9001");
    assert_eq!(host_of("wss://[::1]/"), "[::1]");
    assert_eq!(host_of("ws://user:secret@example.com/"), "example.com");
}

#[test]
fn request_target_is_path_and_query() {
    let target = |uri: &str| {
        let text = written(&handshake(request(uri)).unwrap());
        text.lines().next().unwrap().to_owned()
    };
    assert_eq!(target("ws://h"), "GET / HTTP/1.1");
    assert_eq!(target("ws://h?x=1"), "GET /?x=1 HTTP/1.1");
    assert_eq!(target("ws://h/a/b?x=1&y"), "GET /a/b?x=1&y HTTP/1.1");
    assert_eq!(target("ws://h/%20a"), "GET /%20a HTTP/1.1");
}

#[test]
fn origin_form_uri_needs_a_host_header() {
    let hs = handshake(request("/chat").header("Host", "example.com")).unwrap();
    assert!(written(&hs).starts_with("GET /chat HTTP/1.1\r\nhost: example.com\r\n"));
    assert!(matches!(
        handshake(request("/chat")),
        Err(HandshakeError::InvalidUri(_))
    ));
}

#[test]
fn user_host_header_wins() {
    let hs = handshake(request("ws://10.0.0.1:9000/").header("Host", "example.com")).unwrap();
    assert_eq!(hs.request().headers()[HOST], "example.com");
}

#[test]
fn bad_requests_are_errors() {
    let invalid_uri = |uri| matches!(handshake(request(uri)), Err(HandshakeError::InvalidUri(_)));
    assert!(invalid_uri("ftp://example.com/"));
    assert!(invalid_uri("example.com:80"));
    assert!(matches!(
        handshake(request("ws://h/").method("POST")),
        Err(HandshakeError::MethodNotGet)
    ));
    assert!(matches!(
        handshake(request("ws://h/").version(Version::HTTP_10)),
        Err(HandshakeError::UnsupportedHttpVersion)
    ));
    let invalid = |name: &str, value: &str, header: &str| {
        matches!(
            handshake(request("ws://h/").header(name, value)),
            Err(HandshakeError::InvalidHeader { name, .. }) if name == header
        )
    };
    assert!(invalid("Upgrade", "h2c", "Upgrade"));
    assert!(invalid("Connection", "keep-alive", "Connection"));
    assert!(invalid(
        "Sec-WebSocket-Key",
        "c2hvcnQ=",
        "Sec-WebSocket-Key"
    ));
    assert!(invalid(
        "Sec-WebSocket-Version",
        "8",
        "Sec-WebSocket-Version"
    ));
    assert!(invalid(
        "Sec-WebSocket-Extensions",
        "permessage-deflate",
        "Sec-WebSocket-Extensions"
    ));
    assert!(invalid(
        "Sec-WebSocket-Protocol",
        "a b",
        "Sec-WebSocket-Protocol"
    ));
    assert!(invalid(
        "Sec-WebSocket-Protocol",
        "a, a",
        "Sec-WebSocket-Protocol"
    ));
}

#[test]
fn user_headers_are_kept_in_order() {
    let hs = handshake(
        request("wss://example.com/feed")
            .header("Authorization", "Bearer t0k3n")
            .header("Cookie", "a=1")
            .header("Cookie", "b=2")
            .header("Connection", "keep-alive, Upgrade")
            .header("X-Trace", "42"),
    )
    .unwrap();
    let text = written(&hs);
    let lines: Vec<&str> = text.lines().skip(2).collect();
    assert_eq!(lines[0], "upgrade: websocket");
    assert_eq!(lines[1], "connection: keep-alive, Upgrade");
    assert_eq!(
        &lines[4..],
        [
            "authorization: Bearer t0k3n",
            "cookie: a=1",
            "cookie: b=2",
            "x-trace: 42",
            ""
        ]
    );
}

#[test]
fn generated_keys_differ() {
    let a = handshake(request("ws://h/")).unwrap();
    let b = handshake(request("ws://h/")).unwrap();
    assert!(is_valid_key(a.key().as_bytes()));
    assert_ne!(a.key(), b.key());
}

#[test]
fn set_subprotocols_writes_one_list() {
    let mut headers = HeaderMap::new();
    set_subprotocols(&mut headers, ["chat", "superchat"]).unwrap();
    assert_eq!(headers[SEC_WEBSOCKET_PROTOCOL], "chat, superchat");
    set_subprotocols(&mut headers, vec!["v2".to_owned()]).unwrap();
    assert_eq!(headers[SEC_WEBSOCKET_PROTOCOL], "v2");

    for bad in [&["ok", ""][..], &["a,b"], &["sp ace"], &["é"], &["x", "x"]] {
        assert!(matches!(
            set_subprotocols(&mut headers, bad),
            Err(HandshakeError::InvalidHeader { .. })
        ));
        assert_eq!(headers[SEC_WEBSOCKET_PROTOCOL], "v2");
    }
    set_subprotocols(&mut headers, [""; 0]).unwrap();
    assert!(!headers.contains_key(SEC_WEBSOCKET_PROTOCOL));

    let mut builder = request("ws://h/");
    set_subprotocols(builder.headers_mut().unwrap(), ["a", "b"]).unwrap();
    assert_eq!(
        handshake(builder).unwrap().offered_subprotocols(),
        ["a", "b"]
    );
}

fn response(extra: &str) -> String {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {RFC_ACCEPT}\r\n{extra}\r\n"
    )
}

#[test]
fn accepts_the_rfc_example_response_and_keeps_leftovers() {
    let hs = rfc_handshake();
    let head = response("Sec-WebSocket-Protocol: chat\r\n");
    let mut buf = head.clone().into_bytes();
    buf.extend_from_slice(&[0x81, 0x05, b'H', b'e', b'l', b'l', b'o']);
    let parsed = hs.parse_response(&buf, 8192).unwrap().unwrap();
    assert_eq!(parsed.head_len, head.len());
    assert_eq!(&buf[parsed.head_len..], b"\x81\x05Hello");
    assert_eq!(parsed.response.status(), StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(parsed.subprotocol(), Some("chat"));
    assert_eq!(
        parsed.negotiated(),
        Negotiated::default().with_subprotocol("chat")
    );
}

#[test]
fn accepts_case_and_token_variants() {
    let hs = rfc_handshake();
    let head = format!(
        "HTTP/1.1 101 OK\r\nupgrade: WebSocket\r\nconnection: keep-alive, upgrade\r\n\
         sec-websocket-accept: {RFC_ACCEPT}\r\n\r\n"
    );
    let parsed = hs.parse_response(head.as_bytes(), 8192).unwrap().unwrap();
    assert_eq!(parsed.subprotocol(), None);
}

#[test]
fn incomplete_head_needs_more_bytes() {
    let hs = rfc_handshake();
    let head = response("");
    for end in 0..head.len() {
        assert!(hs
            .parse_response(&head.as_bytes()[..end], 8192)
            .unwrap()
            .is_none());
    }
}

#[test]
fn head_larger_than_the_limit_fails() {
    let hs = rfc_handshake();
    let head = response("");
    let limit = head.len() - 1;
    assert!(hs
        .parse_response(&head.as_bytes()[..limit - 1], limit)
        .unwrap()
        .is_none());
    for buf in [&head.as_bytes()[..limit], head.as_bytes()] {
        assert!(matches!(
            hs.parse_response(buf, limit),
            Err(HandshakeError::HeaderTooLarge { limit: l }) if l == limit
        ));
    }
    assert!(hs
        .parse_response(head.as_bytes(), head.len())
        .unwrap()
        .is_some());
}

#[test]
fn too_many_headers_fail() {
    let hs = rfc_handshake();
    let ok = response(&"X-A: 1\r\n".repeat(DEFAULT_MAX_HEADERS - 3));
    assert!(hs.parse_response(ok.as_bytes(), 1 << 20).unwrap().is_some());
    let many = response(&"X-A: 1\r\n".repeat(DEFAULT_MAX_HEADERS - 2));
    assert!(matches!(
        hs.parse_response(many.as_bytes(), 1 << 20),
        Err(HandshakeError::TooManyHeaders)
    ));
}

fn refused_body(hs: &ClientHandshake, bytes: &[u8]) -> (StatusCode, Bytes) {
    match hs.parse_response(bytes, 8192) {
        Err(HandshakeError::Refused(response)) => (response.status(), response.body().clone()),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn other_statuses_are_refusals_with_a_bounded_body() {
    let hs = rfc_handshake();
    let (status, body) = refused_body(
        &hs,
        b"HTTP/1.1 403 Forbidden\r\nContent-Length: 5\r\n\r\nnope!more",
    );
    assert_eq!((status.as_u16(), &body[..]), (403, &b"nope!"[..]));

    let (_, body) = refused_body(
        &hs,
        b"HTTP/1.1 400 Bad Request\r\nContent-Length: 9\r\n\r\nab",
    );
    assert_eq!(&body[..], b"ab");

    let mut long = b"HTTP/1.1 500 Oops\r\n\r\n".to_vec();
    long.resize(long.len() + 2 * MAX_REFUSED_BODY, b'x');
    assert_eq!(refused_body(&hs, &long).1.len(), MAX_REFUSED_BODY);

    let (status, body) = refused_body(&hs, b"HTTP/1.1 204 No Content\r\n\r\nx");
    assert_eq!((status.as_u16(), body.len()), (204, 0));

    let redirect = b"HTTP/1.1 302 Found\r\nLocation: wss://other.example/\r\n\r\n";
    match hs.parse_response(redirect, 8192) {
        Err(HandshakeError::Refused(response)) => {
            assert_eq!(response.headers()["location"], "wss://other.example/");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn content_length_rules() {
    let with = |pairs: &[(&str, &str)]| {
        let mut builder = Response::builder();
        for (name, value) in pairs {
            builder = builder.header(*name, *value);
        }
        content_length(&builder.body(()).unwrap())
    };
    assert_eq!(with(&[]), None);
    assert_eq!(with(&[("Content-Length", "42")]), Some(42));
    assert_eq!(with(&[("Content-Length", "7, 7")]), Some(7));
    assert_eq!(
        with(&[("Content-Length", "7"), ("Content-Length", "8")]),
        None
    );
    assert_eq!(with(&[("Content-Length", "+7")]), None);
    assert_eq!(with(&[("Content-Length", "99999999999999999999999")]), None);
    assert_eq!(
        with(&[("Content-Length", "5"), ("Transfer-Encoding", "chunked")]),
        None
    );
}

fn check_fails(extra_or_head: &str, expected: impl Fn(&HandshakeError) -> bool) {
    let hs = rfc_handshake();
    let head = if extra_or_head.starts_with("HTTP/") {
        extra_or_head.to_owned()
    } else {
        response(extra_or_head)
    };
    match hs.parse_response(head.as_bytes(), 8192) {
        Err(error) if expected(&error) => assert!(!error.to_string().is_empty()),
        other => panic!("{head:?}: unexpected {other:?}"),
    }
}

#[test]
fn invalid_switching_responses_fail() {
    use HandshakeError as E;
    let missing = |name: &'static str| move |e: &E| matches!(e, E::MissingHeader(n) if *n == name);
    let invalid = |name: &'static str| move |e: &E| matches!(e, E::InvalidHeader { name: n, .. } if *n == name);
    let accept = format!("Sec-WebSocket-Accept: {RFC_ACCEPT}\r\n");

    check_fails(
        &format!("HTTP/1.1 101 S\r\nConnection: Upgrade\r\n{accept}\r\n"),
        missing("Upgrade"),
    );
    check_fails(
        &format!("HTTP/1.1 101 S\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n{accept}\r\n"),
        invalid("Upgrade"),
    );
    check_fails(
        &format!("HTTP/1.1 101 S\r\nUpgrade: websocket\r\n{accept}\r\n"),
        missing("Connection"),
    );
    check_fails(
        &format!("HTTP/1.1 101 S\r\nUpgrade: websocket\r\nConnection: close\r\n{accept}\r\n"),
        invalid("Connection"),
    );
    check_fails(
        "HTTP/1.1 101 S\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        missing("Sec-WebSocket-Accept"),
    );
    check_fails(
        "HTTP/1.1 101 S\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n",
        invalid("Sec-WebSocket-Accept"),
    );
    check_fails(&accept, invalid("Sec-WebSocket-Accept"));
    check_fails(
        &format!("HTTP/1.0 101 S\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n{accept}\r\n"),
        |e| matches!(e, E::UnsupportedHttpVersion),
    );
    check_fails(
        "Sec-WebSocket-Protocol: mqtt\r\n",
        |e| matches!(e, E::UnexpectedSubprotocol(p) if p == "mqtt"),
    );
    check_fails(
        "Sec-WebSocket-Protocol: chat, superchat\r\n",
        invalid("Sec-WebSocket-Protocol"),
    );
    check_fails(
        "Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Protocol: chat\r\n",
        invalid("Sec-WebSocket-Protocol"),
    );
    check_fails(
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n",
        |e| matches!(e, E::UnexpectedExtension(x) if x == "permessage-deflate"),
    );
    check_fails("HTTP/1.1 099 Odd\r\n\r\n", |e| matches!(e, E::Malformed(_)));
    check_fails("HTTP/2 101 S\r\n\r\n", |e| matches!(e, E::Malformed(_)));
    check_fails("\u{16}\u{3}\u{1}\0\u{1}garbage", |e| {
        matches!(e, E::Malformed(_))
    });
}

#[test]
fn selected_subprotocol_must_have_been_offered() {
    let hs = handshake(request("ws://h/").header("Sec-WebSocket-Key", RFC_KEY)).unwrap();
    let head = response("Sec-WebSocket-Protocol: chat\r\n");
    assert!(matches!(
        hs.parse_response(head.as_bytes(), 8192),
        Err(HandshakeError::UnexpectedSubprotocol(_))
    ));
}

fn deflate(snct: bool, cnct: bool, server_bits: u8, client_bits: u8) -> DeflateParams {
    DeflateParams {
        server_no_context_takeover: snct,
        client_no_context_takeover: cnct,
        server_max_window_bits: server_bits,
        client_max_window_bits: client_bits,
    }
}

#[test]
fn offer_deflate_appends_the_offer_and_can_withdraw_it() {
    let hs = rfc_handshake()
        .offer_deflate(Some(deflate(false, true, 10, 15)))
        .unwrap();
    assert_eq!(hs.offered_deflate(), Some(deflate(false, true, 10, 15)));
    assert!(written(&hs).ends_with(
        "sec-websocket-protocol: chat, superchat\r\n\
         sec-websocket-extensions: permessage-deflate; client_no_context_takeover; \
         server_max_window_bits=10; client_max_window_bits\r\n\
         \r\n"
    ));
    // A second call replaces the offer; None withdraws it.
    let hs = hs.offer_deflate(Some(DeflateParams::default())).unwrap();
    let offers: Vec<_> = hs
        .request()
        .headers()
        .get_all(SEC_WEBSOCKET_EXTENSIONS)
        .iter()
        .collect();
    assert_eq!(offers, ["permessage-deflate; client_max_window_bits"]);
    let hs = hs.offer_deflate(None).unwrap();
    assert_eq!(hs.offered_deflate(), None);
    assert_eq!(written(&hs), written(&rfc_handshake()));

    assert!(matches!(
        rfc_handshake().offer_deflate(Some(deflate(false, false, 7, 15))),
        Err(HandshakeError::InvalidExtension { .. })
    ));
}

#[test]
fn user_extension_headers_are_refused_with_the_reason() {
    let error =
        handshake(request("ws://h/").header("Sec-WebSocket-Extensions", "permessage-deflate"))
            .unwrap_err();
    assert_eq!(
        error.to_string(),
        "invalid Sec-WebSocket-Extensions header: extensions are negotiated by wsio: offer \
         permessage-deflate with offer_deflate instead"
    );
}

#[test]
fn an_accepted_deflate_offer_is_in_what_was_negotiated() {
    let offer = deflate(false, true, 12, 11);
    let hs = rfc_handshake().offer_deflate(Some(offer)).unwrap();
    let head = response(
        "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover;\r\n\
         Sec-WebSocket-Extensions: server_max_window_bits=9\r\n",
    );
    // Those two lines are two elements: `server_max_window_bits=9` is an unknown extension.
    assert!(matches!(
        hs.parse_response(head.as_bytes(), 8192),
        Err(HandshakeError::InvalidExtension { .. })
    ));

    let head = response(
        "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; \
         server_max_window_bits=9\r\n",
    );
    let parsed = hs.parse_response(head.as_bytes(), 8192).unwrap().unwrap();
    // The client's own client_no_context_takeover and window of 11 hold, unanswered.
    let agreed = deflate(true, true, 9, 11);
    assert_eq!(parsed.permessage_deflate(), Some(agreed));
    assert_eq!(
        parsed.negotiated(),
        Negotiated::default()
            .with_extensions(
                "permessage-deflate; server_no_context_takeover; server_max_window_bits=9"
            )
            .with_permessage_deflate(agreed)
    );
    // The head alone reads only what the response states.
    let alone = parse_response_head(head.as_bytes(), 8192).unwrap().unwrap();
    assert_eq!(
        alone.permessage_deflate(),
        Some(deflate(true, false, 9, 15))
    );

    // A declined offer: no extension, nothing agreed.
    let parsed = hs
        .parse_response(response("").as_bytes(), 8192)
        .unwrap()
        .unwrap();
    assert_eq!(parsed.permessage_deflate(), None);
    assert_eq!(parsed.negotiated(), Negotiated::default());
}

#[test]
fn a_deflate_answer_that_breaks_the_offer_fails() {
    let hs = rfc_handshake()
        .offer_deflate(Some(deflate(false, false, 10, 12)))
        .unwrap();
    let fails = |extensions: &str, reason: &str| {
        let head = response(&format!("Sec-WebSocket-Extensions: {extensions}\r\n"));
        match hs.parse_response(head.as_bytes(), 8192) {
            Err(HandshakeError::InvalidExtension { name, reason: r }) => {
                assert_eq!((name, r), ("permessage-deflate", reason), "{extensions}")
            }
            other => panic!("{extensions}: {other:?}"),
        }
    };
    fails(
        "permessage-deflate; server_max_window_bits=11",
        "server_max_window_bits is above the offered value",
    );
    fails(
        "permessage-deflate; server_max_window_bits=10; client_max_window_bits=13",
        "client_max_window_bits is above the offered value",
    );
    fails("permessage-deflate; foo", "a parameter is unknown");
    fails(
        "permessage-deflate; client_max_window_bits=9",
        "server_max_window_bits was offered but not answered",
    );
    fails(
        "permessage-deflate; client_max_window_bits=9; client_max_window_bits=9",
        "a parameter appears twice",
    );
    fails(
        "permessage-deflate; server_max_window_bits=10, permessage-deflate",
        "the server accepted permessage-deflate twice",
    );
    let head = response(
        "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=9, x-foo\r\n",
    );
    assert!(matches!(
        hs.parse_response(head.as_bytes(), 8192),
        Err(HandshakeError::UnexpectedExtension(name)) if name == "x-foo"
    ));
}
