//! Tests of the server side of the handshake.

use super::*;

/// The request of RFC 6455 §1.2.
const RFC_REQUEST: &str = "GET /chat HTTP/1.1\r\n\
     Host: server.example.com\r\n\
     Upgrade: websocket\r\n\
     Connection: Upgrade\r\n\
     Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
     Origin: http://example.com\r\n\
     Sec-WebSocket-Protocol: chat, superchat\r\n\
     Sec-WebSocket-Version: 13\r\n\
     \r\n";

fn parse(text: &str) -> Result<Option<(Request<()>, usize)>, HandshakeError> {
    parse_request(text.as_bytes(), 8192, 64)
}

fn rfc_request() -> Request<()> {
    parse(RFC_REQUEST).unwrap().unwrap().0
}

/// The RFC request with header line `name` replaced by `line` (or removed when empty).
fn with_line(name: &str, line: &str) -> String {
    RFC_REQUEST
        .split_inclusive("\r\n")
        .map(|l| match l.starts_with(name) {
            true if line.is_empty() => String::new(),
            true => format!("{line}\r\n"),
            false => l.to_owned(),
        })
        .collect()
}

fn status_of(text: &str) -> u16 {
    match parse(text) {
        Err(error) => error.status_for_reply().unwrap().as_u16(),
        other => panic!("{text:?}: expected an error, got {other:?}"),
    }
}

#[test]
fn parses_the_rfc_example_request_and_keeps_leftovers() {
    let mut buf = RFC_REQUEST.as_bytes().to_vec();
    buf.extend_from_slice(b"\x81\x85frame");
    let (request, head_len) = parse_request(&buf, 8192, 64).unwrap().unwrap();
    assert_eq!(head_len, RFC_REQUEST.len());
    assert_eq!(&buf[head_len..], b"\x81\x85frame");
    assert_eq!(request.method(), Method::GET);
    assert_eq!(request.uri(), "/chat");
    assert_eq!(request.version(), Version::HTTP_11);
    assert_eq!(request.headers().len(), 7);
    assert_eq!(request.headers()["origin"], "http://example.com");
    let offered: Vec<_> = requested_subprotocols(&request).collect();
    assert_eq!(offered, ["chat", "superchat"]);
}

#[test]
fn keeps_path_query_and_absolute_targets() {
    let text = RFC_REQUEST.replace("/chat", "/chat/room?id=7&x");
    let (request, _) = parse(&text).unwrap().unwrap();
    assert_eq!(request.uri().path(), "/chat/room");
    assert_eq!(request.uri().query(), Some("id=7&x"));

    let text = RFC_REQUEST.replace("/chat", "ws://server.example.com/chat");
    let (request, _) = parse(&text).unwrap().unwrap();
    assert_eq!(request.uri().path(), "/chat");

    assert_eq!(status_of(&RFC_REQUEST.replace("/chat", "*")), 400);
    assert_eq!(
        status_of(&RFC_REQUEST.replace("/chat", "example.com:80")),
        400
    );
}

#[test]
fn accepts_token_lists_and_case() {
    let text = with_line("Connection", "Connection: keep-alive, Upgrade")
        .replace("Upgrade: websocket", "upgrade: WebSocket")
        .replace("Host:", "HOST:");
    assert!(parse(&text).unwrap().is_some());
    let text = with_line(
        "Connection",
        "Connection: keep-alive\r\nConnection: upgrade",
    );
    assert!(parse(&text).unwrap().is_some());
}

#[test]
fn invalid_requests_get_the_right_status() {
    assert_eq!(status_of(&RFC_REQUEST.replace("GET", "POST")), 405);
    assert_eq!(status_of(&RFC_REQUEST.replace("GET", "get")), 405);
    assert_eq!(status_of(&RFC_REQUEST.replace("HTTP/1.1", "HTTP/1.0")), 505);
    assert_eq!(status_of(&RFC_REQUEST.replace("HTTP/1.1", "HTTP/2.0")), 400);
    assert_eq!(status_of(&with_line("Host", "")), 400);
    assert_eq!(status_of(&with_line("Host", "Host: a\r\nHost: b")), 400);
    assert_eq!(status_of(&with_line("Upgrade", "")), 400);
    assert_eq!(status_of(&with_line("Upgrade", "Upgrade: h2c")), 400);
    assert_eq!(status_of(&with_line("Connection", "")), 400);
    assert_eq!(
        status_of(&with_line("Connection", "Connection: keep-alive")),
        400
    );
    assert_eq!(status_of(&with_line("Sec-WebSocket-Version", "")), 426);
    let v8 = "Sec-WebSocket-Version: 8";
    assert_eq!(status_of(&with_line("Sec-WebSocket-Version", v8)), 426);
    let both = "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Version: 8";
    assert_eq!(status_of(&with_line("Sec-WebSocket-Version", both)), 426);
    assert_eq!(status_of(&with_line("Sec-WebSocket-Key", "")), 400);
    let short = "Sec-WebSocket-Key: c2hvcnQ=";
    assert_eq!(status_of(&with_line("Sec-WebSocket-Key", short)), 400);
    let not_base64 = "Sec-WebSocket-Key: ************************";
    assert_eq!(status_of(&with_line("Sec-WebSocket-Key", not_base64)), 400);
    assert_eq!(status_of(&RFC_REQUEST.replace("Origin:", "Ori gin:")), 400);
    assert_eq!(
        status_of("\u{16}\u{3}\u{1}\u{2}\0\u{1}\u{fc}\u{3}\u{3}"),
        400
    );
}

#[test]
fn limits_on_head_size_and_header_count() {
    let len = RFC_REQUEST.len();
    let buf = RFC_REQUEST.as_bytes();
    assert!(parse_request(buf, len, 64).unwrap().is_some());
    assert!(parse_request(&buf[..len - 2], len - 1, 64)
        .unwrap()
        .is_none());
    for input in [&buf[..len - 1], buf] {
        assert!(matches!(
            parse_request(input, len - 1, 64),
            Err(HandshakeError::HeaderTooLarge { limit }) if limit == len - 1
        ));
    }
    assert!(parse_request(buf, 8192, 7).unwrap().is_some());
    assert!(matches!(
        parse_request(buf, 8192, 6),
        Err(HandshakeError::TooManyHeaders)
    ));
    assert!(matches!(
        parse_request(buf, 8192, 0),
        Err(HandshakeError::TooManyHeaders)
    ));
    // A huge limit allocates only what the buffer can hold.
    assert!(parse_request(buf, usize::MAX, usize::MAX)
        .unwrap()
        .is_some());
    let many = RFC_REQUEST.replace("Origin", &format!("{}Origin", "X-A: 1\r\n".repeat(200)));
    assert!(parse_request(many.as_bytes(), 1 << 20, 1000)
        .unwrap()
        .is_some());
}

#[test]
fn accept_response_for_the_rfc_example() {
    let request = rfc_request();
    let mut extra = HeaderMap::new();
    extra.append("server", HeaderValue::from_static("wsio"));
    extra.append("upgrade", HeaderValue::from_static("h2c"));
    extra.append("content-length", HeaderValue::from_static("3"));
    extra.append("set-cookie", HeaderValue::from_static("a=1"));
    let response = accept_response(&request, Some("chat"), &extra).unwrap();
    let mut out = Vec::new();
    write_response(&response, b"", &mut out);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "HTTP/1.1 101 Switching Protocols\r\n\
         upgrade: websocket\r\n\
         connection: Upgrade\r\n\
         sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
         sec-websocket-protocol: chat\r\n\
         server: wsio\r\n\
         set-cookie: a=1\r\n\
         \r\n"
    );
}

#[test]
fn accept_response_checks_the_protocol_and_key() {
    let request = rfc_request();
    let none = HeaderMap::new();
    let response = accept_response(&request, None, &none).unwrap();
    assert!(!response.headers().contains_key(SEC_WEBSOCKET_PROTOCOL));
    assert!(!response.headers().contains_key(SEC_WEBSOCKET_EXTENSIONS));

    for bad in ["mqtt", "Chat", "chat, superchat", ""] {
        let error = accept_response(&request, Some(bad), &none).unwrap_err();
        assert!(matches!(&error, HandshakeError::UnexpectedSubprotocol(p) if p == bad));
        assert_eq!(
            error.status_for_reply(),
            Some(StatusCode::INTERNAL_SERVER_ERROR)
        );
    }

    let no_key = Request::new(());
    assert!(matches!(
        accept_response(&no_key, None, &none),
        Err(HandshakeError::MissingHeader("Sec-WebSocket-Key"))
    ));
}

#[test]
fn extension_offers_are_declined() {
    let text = with_line(
        "Origin",
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits",
    );
    let (request, _) = parse(&text).unwrap().unwrap();
    let response = accept_response(&request, None, &HeaderMap::new()).unwrap();
    assert!(!response.headers().contains_key(SEC_WEBSOCKET_EXTENSIONS));
}

fn written(response: &Response<()>, body: &[u8]) -> String {
    let mut out = Vec::new();
    write_response(response, body, &mut out);
    String::from_utf8(out).unwrap()
}

#[test]
fn refusals_close_and_carry_their_body_length() {
    let error = parse(&with_line(
        "Sec-WebSocket-Version",
        "Sec-WebSocket-Version: 8",
    ))
    .unwrap_err();
    let status = error.status_for_reply().unwrap();
    let body = b"use version 13";
    let response = reject_response(status, &HeaderMap::new(), body.len());
    assert_eq!(
        written(&response, body),
        "HTTP/1.1 426 Upgrade Required\r\n\
         sec-websocket-version: 13\r\n\
         content-length: 14\r\n\
         connection: close\r\n\
         \r\n\
         use version 13"
    );

    let response = reject_response(StatusCode::METHOD_NOT_ALLOWED, &HeaderMap::new(), 0);
    assert_eq!(response.headers()[ALLOW], "GET");

    let mut extra = HeaderMap::new();
    extra.append("content-type", HeaderValue::from_static("text/plain"));
    extra.append("content-length", HeaderValue::from_static("999"));
    extra.append("connection", HeaderValue::from_static("keep-alive"));
    extra.append("transfer-encoding", HeaderValue::from_static("chunked"));
    extra.append("www-authenticate", HeaderValue::from_static("Bearer"));
    let response = reject_response(StatusCode::UNAUTHORIZED, &extra, 2);
    assert_eq!(
        written(&response, b"no"),
        "HTTP/1.1 401 Unauthorized\r\n\
         content-type: text/plain\r\n\
         www-authenticate: Bearer\r\n\
         content-length: 2\r\n\
         connection: close\r\n\
         \r\n\
         no"
    );
}

#[test]
fn refusal_status_is_never_informational() {
    let response = reject_response(StatusCode::SWITCHING_PROTOCOLS, &HeaderMap::new(), 0);
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let odd = StatusCode::from_u16(599).unwrap();
    let text = written(&reject_response(odd, &HeaderMap::new(), 0), b"");
    assert!(text.starts_with("HTTP/1.1 599 Unknown\r\n"), "{text}");
}

#[test]
fn validate_request_checks_method_and_version_of_built_requests() {
    let mut request = rfc_request();
    assert!(validate_request(&request).is_ok());
    *request.method_mut() = Method::POST;
    assert!(matches!(
        validate_request(&request),
        Err(HandshakeError::MethodNotGet)
    ));
    *request.method_mut() = Method::GET;
    *request.version_mut() = Version::HTTP_10;
    assert!(matches!(
        validate_request(&request),
        Err(HandshakeError::UnsupportedHttpVersion)
    ));
}

#[test]
fn an_accept_answers_with_its_subprotocol_and_headers_and_says_what_it_agreed() {
    let request = rfc_request();
    let accept = Accept::new().protocol(Some("superchat")).header(
        HeaderName::from_static("server"),
        HeaderValue::from_static("wsio"),
    );
    let (response, negotiated) = accept.response(&request, None).unwrap();
    let expected = accept_response(
        &request,
        Some("superchat"),
        &response_extra("server", "wsio"),
    );
    assert_eq!(response.headers(), expected.unwrap().headers());
    assert_eq!(
        negotiated,
        Negotiated::default().with_subprotocol("superchat")
    );

    let (_, negotiated) = Accept::new().response(&request, None).unwrap();
    assert_eq!(negotiated, Negotiated::default());
    let error = Accept::new()
        .protocol(Some("mqtt"))
        .response(&request, None)
        .unwrap_err();
    assert!(matches!(error, HandshakeError::UnexpectedSubprotocol(_)));
}

fn response_extra(name: &'static str, value: &'static str) -> HeaderMap {
    let mut extra = HeaderMap::new();
    extra.append(name, HeaderValue::from_static(value));
    extra
}

#[test]
fn a_reject_writes_its_status_headers_and_body() {
    let reject = Reject::new(StatusCode::NOT_FOUND)
        .header(
            HeaderName::from_static("x-why"),
            HeaderValue::from_static("path"),
        )
        .body("no such room");
    assert_eq!(reject.status(), StatusCode::NOT_FOUND);
    let mut out = Vec::new();
    reject.write(&mut out);
    let head = reject_response(StatusCode::NOT_FOUND, &response_extra("x-why", "path"), 12);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        written(&head, b"no such room")
    );

    // The status given is kept; what goes out is never informational.
    let reject = Reject::from(StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(reject.status(), StatusCode::SWITCHING_PROTOCOLS);
    let mut out = Vec::new();
    reject.write(&mut out);
    assert!(out.starts_with(b"HTTP/1.1 500 Internal Server Error\r\n"));
}

#[test]
fn an_accept_negotiates_deflate_when_given_preferences() {
    let text = with_line(
        "Origin",
        "Sec-WebSocket-Extensions: x-foo, permessage-deflate; server_max_window_bits=99, \
         permessage-deflate; client_max_window_bits; server_max_window_bits=12",
    );
    let (request, _) = parse(&text).unwrap().unwrap();
    let preferred = DeflateParams {
        server_no_context_takeover: true,
        client_max_window_bits: 10,
        ..DeflateParams::default()
    };
    let (response, negotiated) = Accept::new()
        .protocol(Some("chat"))
        .response(&request, Some(&preferred))
        .unwrap();
    let value = "permessage-deflate; server_no_context_takeover; server_max_window_bits=12; \
                 client_max_window_bits=10";
    assert_eq!(response.headers()[SEC_WEBSOCKET_EXTENSIONS], value);
    let agreed = DeflateParams {
        server_no_context_takeover: true,
        client_no_context_takeover: false,
        server_max_window_bits: 12,
        client_max_window_bits: 10,
    };
    assert_eq!(
        negotiated,
        Negotiated::default()
            .with_subprotocol("chat")
            .with_extensions(value)
            .with_permessage_deflate(agreed)
    );
    // The response says the same to anyone who reads it.
    assert_eq!(Negotiated::from_response(&response), negotiated);

    // Without preferences, or without an offer, there is no extension.
    let (response, negotiated) = Accept::new().response(&request, None).unwrap();
    assert!(!response.headers().contains_key(SEC_WEBSOCKET_EXTENSIONS));
    assert_eq!(negotiated.permessage_deflate(), None);
    let (response, negotiated) = Accept::new()
        .response(&rfc_request(), Some(&preferred))
        .unwrap();
    assert!(!response.headers().contains_key(SEC_WEBSOCKET_EXTENSIONS));
    assert_eq!(negotiated, Negotiated::default());
    // extra headers cannot add one.
    let (response, _) = Accept::new()
        .header(SEC_WEBSOCKET_EXTENSIONS, HeaderValue::from_static("x-foo"))
        .response(&request, None)
        .unwrap();
    assert!(!response.headers().contains_key(SEC_WEBSOCKET_EXTENSIONS));
}

/// An RFC 8441 §5.1 request, as an HTTP/2 server hands it over: `CONNECT`, HTTP/2, no `Host`
/// (`:authority` is in the URI), no `Upgrade`, `Connection` or `Sec-WebSocket-Key`.
fn extended_connect() -> Request<()> {
    let mut request = Request::new(());
    *request.method_mut() = Method::CONNECT;
    *request.version_mut() = Version::HTTP_2;
    *request.uri_mut() = Uri::from_static("https://server.example.com/chat");
    let headers = request.headers_mut();
    headers.append(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
    headers.append(
        SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static("chat, superchat"),
    );
    headers.append(
        HeaderName::from_static("origin"),
        HeaderValue::from_static("http://www.example.com"),
    );
    request
}

#[test]
fn an_extended_connect_needs_connect_http2_and_version_13_but_no_key() {
    let request = extended_connect();
    validate_request_as(UpgradeKind::ExtendedConnect, &request).unwrap();
    // The HTTP/1.1 checks would refuse it: no Host, Upgrade, Connection or key.
    assert!(matches!(
        validate_request_as(UpgradeKind::Http11, &request),
        Err(HandshakeError::MethodNotGet)
    ));

    let status = |request: &Request<()>| {
        validate_request_as(UpgradeKind::ExtendedConnect, request)
            .unwrap_err()
            .status_for_reply()
            .unwrap()
            .as_u16()
    };
    let mut get = extended_connect();
    *get.method_mut() = Method::GET;
    assert_eq!(status(&get), 400);
    let mut over_h1 = extended_connect();
    *over_h1.version_mut() = Version::HTTP_11;
    assert_eq!(status(&over_h1), 505);
    let mut old_draft = extended_connect();
    old_draft
        .headers_mut()
        .insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("8"));
    assert_eq!(status(&old_draft), 426);
    let mut no_version = extended_connect();
    no_version.headers_mut().remove(SEC_WEBSOCKET_VERSION);
    assert_eq!(status(&no_version), 426);
    let mut twice = extended_connect();
    twice
        .headers_mut()
        .append(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
    assert_eq!(status(&twice), 426);
    // HTTP/3 carries the same extended CONNECT (RFC 9220).
    let mut over_h3 = extended_connect();
    *over_h3.version_mut() = Version::HTTP_3;
    validate_request_as(UpgradeKind::ExtendedConnect, &over_h3).unwrap();
}

#[test]
fn an_extended_connect_is_answered_200_without_accept_or_upgrade_headers() {
    let mut request = extended_connect();
    request.headers_mut().append(
        SEC_WEBSOCKET_EXTENSIONS,
        HeaderValue::from_static("permessage-deflate; client_max_window_bits"),
    );
    let accept = Accept::new()
        .protocol(Some("superchat"))
        .header(
            HeaderName::from_static("server"),
            HeaderValue::from_static("wsio"),
        )
        .header(UPGRADE, HeaderValue::from_static("websocket"));
    let (response, negotiated) = accept
        .response_as(
            UpgradeKind::ExtendedConnect,
            &request,
            Some(&DeflateParams::default()),
        )
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers();
    for absent in [SEC_WEBSOCKET_ACCEPT, UPGRADE, CONNECTION, CONTENT_LENGTH] {
        assert!(!headers.contains_key(&absent), "{absent} in {headers:?}");
    }
    assert_eq!(headers[SEC_WEBSOCKET_PROTOCOL], "superchat");
    assert_eq!(headers["server"], "wsio");
    assert_eq!(headers[SEC_WEBSOCKET_EXTENSIONS], "permessage-deflate");
    assert_eq!(negotiated.subprotocol(), Some("superchat"));
    assert_eq!(
        negotiated.permessage_deflate(),
        Some(DeflateParams::default())
    );
    assert_eq!(Negotiated::from_response(&response), negotiated);

    // The same Accept over HTTP/1.1 is the 101 of `response`.
    let (h1, _) = accept
        .response_as(UpgradeKind::Http11, &rfc_request(), None)
        .unwrap();
    let (plain, _) = accept.response(&rfc_request(), None).unwrap();
    assert_eq!(h1.status(), StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(h1.headers(), plain.headers());
    // A subprotocol the client did not offer is still the server's mistake.
    let error = Accept::new()
        .protocol(Some("mqtt"))
        .response_as(UpgradeKind::ExtendedConnect, &request, None)
        .unwrap_err();
    assert!(matches!(error, HandshakeError::UnexpectedSubprotocol(_)));
}

#[test]
fn a_reject_as_a_response_drops_connection_only_for_an_extended_connect() {
    let reject = Reject::new(StatusCode::UPGRADE_REQUIRED).body("speak 13");
    let h1 = reject.response_as(UpgradeKind::Http11);
    assert_eq!(h1.status(), StatusCode::UPGRADE_REQUIRED);
    assert_eq!(h1.headers()[SEC_WEBSOCKET_VERSION], "13");
    assert_eq!(h1.headers()[CONNECTION], "close");
    assert_eq!(h1.headers()[CONTENT_LENGTH], "8");
    assert_eq!(h1.body().as_ref(), b"speak 13");
    let mut out = Vec::new();
    reject.write(&mut out);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        written(&h1.map(|_| ()), b"speak 13")
    );

    let h2 = reject.response_as(UpgradeKind::ExtendedConnect);
    assert_eq!(h2.status(), StatusCode::UPGRADE_REQUIRED);
    assert_eq!(h2.headers()[SEC_WEBSOCKET_VERSION], "13");
    assert!(!h2.headers().contains_key(CONNECTION));
    assert_eq!(h2.body().as_ref(), b"speak 13");
}
