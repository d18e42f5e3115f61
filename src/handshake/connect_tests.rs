//! Tests of the HTTP/2 extended CONNECT handshake.

use super::*;
use crate::handshake::client::{set_subprotocols, ClientHandshake};
use http::header::{ORIGIN, SEC_WEBSOCKET_EXTENSIONS, SEC_WEBSOCKET_PROTOCOL};
use http::StatusCode;

fn request(uri: &str) -> http::request::Builder {
    Request::builder().uri(uri)
}

fn handshake(builder: http::request::Builder) -> Result<ConnectHandshake, HandshakeError> {
    ConnectHandshake::new(builder.body(()).unwrap())
}

fn response(status: u16, headers: &[(&'static str, &'static str)]) -> Response<()> {
    let mut response = Response::builder().status(status).version(Version::HTTP_2);
    for (name, value) in headers {
        response = response.header(*name, *value);
    }
    response.body(()).unwrap()
}

fn deflate(client_no_context_takeover: bool, server_max_window_bits: u8) -> DeflateParams {
    DeflateParams {
        client_no_context_takeover,
        server_max_window_bits,
        ..DeflateParams::default()
    }
}

#[test]
fn the_request_is_an_extended_connect_with_pseudo_headers_from_the_uri() {
    let hs = handshake(
        request("wss://user:pw@example.com/chat?room=1")
            .header(ORIGIN, "https://example.com")
            .header("x-custom", "1"),
    )
    .unwrap();
    let sent = hs.request();
    assert_eq!(sent.method(), Method::CONNECT);
    assert_eq!(sent.version(), Version::HTTP_2);
    assert_eq!(sent.uri(), "https://example.com/chat?room=1");
    let names: Vec<&str> = sent.headers().keys().map(|n| n.as_str()).collect();
    assert_eq!(names, ["sec-websocket-version", "origin", "x-custom"]);
    assert_eq!(sent.headers()[SEC_WEBSOCKET_VERSION], "13");
    assert_eq!(PROTOCOL, "websocket");
}

#[test]
fn scheme_and_authority_follow_the_websocket_url() {
    let uri_of = |uri: &str| handshake(request(uri)).unwrap().request().uri().to_string();
    assert_eq!(uri_of("ws://h"), "http://h/");
    assert_eq!(uri_of("ws://h:80/a"), "http://h/a");
    assert_eq!(uri_of("ws://h:8080/a?b"), "http://h:8080/a?b");
    assert_eq!(uri_of("wss://h:443/"), "https://h/");
    assert_eq!(uri_of("https://h:8443/x"), "https://h:8443/x");
    assert_eq!(uri_of("wss://[::1]:9/"), "https://[::1]:9/");
    // A Host header names the authority (as over HTTP/1.1) and is not sent: HTTP/2 has none.
    let hs = handshake(request("ws://127.0.0.1:9000/p").header("Host", "example.com")).unwrap();
    assert_eq!(hs.request().uri(), "http://example.com/p");
    assert!(!hs.request().headers().contains_key(HOST));
}

#[test]
fn requests_that_cannot_be_sent_over_http2_are_refused() {
    let invalid_uri = |uri| matches!(handshake(request(uri)), Err(HandshakeError::InvalidUri(_)));
    assert!(invalid_uri("ftp://h/"));
    assert!(invalid_uri("/just/a/path"));
    assert!(matches!(
        handshake(request("ws://h/").method("POST")),
        Err(HandshakeError::MethodNotGet)
    ));
    assert!(handshake(request("ws://h/").method("CONNECT")).is_ok());
    let refused = [
        ("Connection", "Upgrade"),
        ("Upgrade", "websocket"),
        ("Keep-Alive", "5"),
        ("Proxy-Connection", "x"),
        ("Transfer-Encoding", "chunked"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("TE", "gzip"),
        ("Sec-WebSocket-Version", "8"),
        ("Sec-WebSocket-Protocol", "a, a"),
        ("Sec-WebSocket-Protocol", "not a token"),
        ("Sec-WebSocket-Extensions", "permessage-deflate"),
    ];
    for (header, value) in refused {
        match handshake(request("ws://h/").header(header, value)) {
            Err(HandshakeError::InvalidHeader { name, .. }) => assert_eq!(name, header),
            other => panic!("{header}: {other:?}"),
        }
    }
    assert!(handshake(request("ws://h/").header("TE", "trailers")).is_ok());
}

#[test]
fn a_2xx_accepts_and_reports_the_subprotocol() {
    let mut builder = request("ws://h/");
    set_subprotocols(builder.headers_mut().unwrap(), ["v2", "v1"]).unwrap();
    let hs = handshake(builder).unwrap();
    assert_eq!(hs.offered_subprotocols(), ["v2", "v1"]);
    let negotiated = hs
        .check_response(&response(200, &[("sec-websocket-protocol", "v1")]))
        .unwrap();
    assert_eq!(negotiated, Negotiated::default().with_subprotocol("v1"));
    assert_eq!(
        hs.check_response(&response(200, &[])).unwrap(),
        Negotiated::default()
    );
    // No Sec-WebSocket-Accept in HTTP/2: one that is there is ignored.
    assert!(hs
        .check_response(&response(204, &[("sec-websocket-accept", "nonsense")]))
        .is_ok());
}

#[test]
fn the_answer_is_checked_against_the_offer_as_over_http1() {
    let mut builder = request("ws://h/");
    set_subprotocols(builder.headers_mut().unwrap(), ["chat"]).unwrap();
    let hs = handshake(builder).unwrap();
    assert!(matches!(
        hs.check_response(&response(200, &[("sec-websocket-protocol", "other")])),
        Err(HandshakeError::UnexpectedSubprotocol(p)) if p == "other"
    ));
    assert!(matches!(
        hs.check_response(&response(200, &[("sec-websocket-protocol", "chat, chat")])),
        Err(HandshakeError::InvalidHeader {
            name: "Sec-WebSocket-Protocol",
            ..
        })
    ));
    // Nothing offered: an extension in the answer is unexpected.
    assert!(matches!(
        hs.check_response(&response(
            200,
            &[("sec-websocket-extensions", "permessage-deflate")]
        )),
        Err(HandshakeError::UnexpectedExtension(_))
    ));
}

#[test]
fn the_same_offer_and_answer_agree_the_same_over_http1_and_http2() {
    let offer = deflate(true, 10);
    let answer = "permessage-deflate; server_max_window_bits=9";
    let h2 = handshake(request("ws://h/"))
        .unwrap()
        .offer_deflate(Some(offer))
        .unwrap();
    let h1 = ClientHandshake::new(request("ws://h/").body(()).unwrap())
        .unwrap()
        .offer_deflate(Some(offer))
        .unwrap();
    assert_eq!(h2.offered_deflate(), Some(offer));
    assert_eq!(
        h2.request().headers()[SEC_WEBSOCKET_EXTENSIONS],
        h1.request().headers()[SEC_WEBSOCKET_EXTENSIONS]
    );
    let over_h2 = h2
        .check_response(&response(200, &[("sec-websocket-extensions", answer)]))
        .unwrap();
    let wire = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\nSec-WebSocket-Extensions: {answer}\r\n\r\n",
        crate::handshake::derive_accept_key(h1.key().as_bytes())
    )
    .into_bytes();
    let over_h1 = h1
        .parse_response(&wire, 4096)
        .unwrap()
        .unwrap()
        .negotiated();
    assert_eq!(over_h2, over_h1);
    assert_eq!(
        over_h2.permessage_deflate(),
        Some(DeflateParams {
            client_no_context_takeover: true,
            server_max_window_bits: 9,
            ..DeflateParams::default()
        })
    );
    // Above the offered window: refused.
    assert!(matches!(
        h2.check_response(&response(
            200,
            &[(
                "sec-websocket-extensions",
                "permessage-deflate; server_max_window_bits=12"
            )]
        )),
        Err(HandshakeError::InvalidExtension { .. })
    ));
    // Withdrawn: no header, nothing offered.
    let h2 = h2.offer_deflate(None).unwrap();
    assert!(!h2
        .request()
        .headers()
        .contains_key(SEC_WEBSOCKET_EXTENSIONS));
    assert_eq!(h2.offered_deflate(), None);
}

#[test]
fn a_refusal_carries_the_status_and_headers() {
    let hs = handshake(request("ws://h/")).unwrap();
    for status in [101, 301, 403, 500] {
        let refused = hs.check_response(&response(status, &[("x-reason", "no")]));
        match refused {
            Err(HandshakeError::Refused(response)) => {
                assert_eq!(response.status(), StatusCode::from_u16(status).unwrap());
                assert_eq!(response.headers()["x-reason"], "no");
                assert!(response.body().is_empty());
            }
            other => panic!("{status}: {other:?}"),
        }
    }
}

#[test]
fn subprotocols_set_in_several_lines_are_one_offer() {
    let hs = handshake(
        request("ws://h/")
            .header(SEC_WEBSOCKET_PROTOCOL, "a")
            .header(SEC_WEBSOCKET_PROTOCOL, "b, c"),
    )
    .unwrap();
    assert_eq!(hs.offered_subprotocols(), ["a", "b", "c"]);
}
