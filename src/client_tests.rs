//! Unit tests of the client's URL, credential and redirect handling, and of connect attempts.

use super::*;

fn uri(text: &str) -> Uri {
    text.parse().unwrap()
}

fn location(text: &'static str) -> HeaderValue {
    HeaderValue::from_static(text)
}

#[test]
fn targets_are_checked_before_any_io() {
    let t = target_of(&uri("ws://example.com/chat")).unwrap();
    assert_eq!(
        (t.scheme, t.host.as_str(), t.port),
        (Scheme::Ws, "example.com", 80)
    );
    let t = target_of(&uri("wss://[::1]:8443/")).unwrap();
    assert_eq!(
        (t.scheme, t.host.as_str(), t.port),
        (Scheme::Wss, "::1", 8443)
    );
    let t = target_of(&uri("HTTPS://example.com")).unwrap();
    assert_eq!((t.scheme, t.port), (Scheme::Wss, 443));
    let t = target_of(&uri("ws://h:/")).unwrap();
    assert_eq!(t.port, 80);
    for bad in ["ftp://example.com/", "/just/a/path", "ws://example.com:0/"] {
        let e = target_of(&uri(bad)).err().unwrap();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidUrl, "{bad}: {e}");
    }
    // What `connect` checks first: parsing, then the target.
    for bad in [
        "ws://example.com:99999/",
        "ws://exa mple.com/",
        "ws://host:port/",
        "",
        "ws://",
        "ws:///path",
        "example.com",
        "wss://user@/",
    ] {
        let checked = bad
            .into_client_request()
            .and_then(|request| target_of(request.uri()).map(|_| ()));
        let e = checked
            .err()
            .unwrap_or_else(|| panic!("{bad} was accepted"));
        assert_eq!(e.kind(), crate::ErrorKind::InvalidUrl, "{bad}: {e}");
    }
}

#[test]
fn userinfo_becomes_basic_credentials_and_leaves_the_uri() {
    let (stripped, credentials) =
        split_userinfo(&uri("ws://al%20ice:p%40ss:word@h:9/x?q")).unwrap();
    assert_eq!(stripped, "ws://h:9/x?q");
    assert_eq!(credentials.as_deref(), Some(&b"al ice:p@ss:word"[..]));
    let (stripped, credentials) = split_userinfo(&uri("ws://bob@h/")).unwrap();
    assert_eq!(stripped, "ws://h/");
    assert_eq!(credentials.as_deref(), Some(&b"bob:"[..]));
    let (stripped, credentials) = split_userinfo(&uri("ws://h/")).unwrap();
    assert_eq!(stripped, "ws://h/");
    assert_eq!(credentials, None);
    assert_eq!(percent_decode("%zz%4"), b"%zz%4");
    assert_eq!(percent_decode("%41%6a"), b"Aj");
}

#[test]
fn handshake_request_carries_builder_settings() {
    let builder = ClientBuilder::new()
        .subprotocols(["v2", "v1"])
        .origin("https://example.com")
        .header(
            HeaderName::from_static("x-extra"),
            HeaderValue::from_static("1"),
        )
        .edit_request(|request| {
            request
                .headers_mut()
                .insert(COOKIE, HeaderValue::from_static("a=b"));
        });
    let hs = builder
        .handshake(
            uri("ws://user:pw@h:1/p").into_client_request().unwrap(),
            false,
        )
        .unwrap();
    let headers = hs.request().headers();
    assert_eq!(headers["origin"], "https://example.com");
    assert_eq!(headers["x-extra"], "1");
    assert_eq!(headers["cookie"], "a=b");
    assert_eq!(headers["sec-websocket-protocol"], "v2, v1");
    assert_eq!(headers["authorization"], "Basic dXNlcjpwdw==");
    assert_eq!(headers["host"], "h:1");
    assert_eq!(hs.request().uri(), "ws://h:1/p");

    // Crossing to another host drops carried credentials; the hook can add them back.
    let request = Request::builder()
        .uri("ws://h/")
        .header(AUTHORIZATION, "Bearer t")
        .header(COOKIE, "x=y")
        .body(())
        .unwrap();
    let hs = ClientBuilder::new().handshake(request, true).unwrap();
    assert!(!hs.request().headers().contains_key(AUTHORIZATION));
    assert!(!hs.request().headers().contains_key(COOKIE));

    let e = ClientBuilder::new()
        .origin("bad\norigin")
        .handshake(uri("ws://h/").into_client_request().unwrap(), false)
        .unwrap_err();
    assert_eq!(e.kind(), crate::ErrorKind::Handshake);
}

#[test]
fn redirects_resolve_to_ws_urls() {
    let current = uri("ws://u:p@h:9/a/b?q=1");
    let cases = [
        ("c", "ws://u:p@h:9/a/c"),
        ("/x?y", "ws://u:p@h:9/x?y"),
        ("http://other/z#frag", "ws://other/z"),
        ("https://other:8443/", "wss://other:8443/"),
        ("wss://other/", "wss://other/"),
        ("https://other:443/", "wss://other/"),
    ];
    for (loc, expected) in cases {
        let next = resolve_redirect(&current, Scheme::Ws, &location(loc)).unwrap();
        assert_eq!(next, expected, "{loc}");
    }
    let secure = uri("wss://h/");
    assert_eq!(
        resolve_redirect(&secure, Scheme::Wss, &location("/next")).unwrap(),
        "wss://h/next"
    );
    for (loc, reason) in [
        ("ws://h/", "downgrade"),
        ("http://h/", "downgrade"),
        ("ftp://h/", "scheme"),
        ("mailto:a@b", "scheme"),
    ] {
        let e = resolve_redirect(&secure, Scheme::Wss, &location(loc)).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Handshake);
        assert!(e.to_string().contains(reason), "{loc}: {e}");
    }
}

#[test]
fn only_redirect_statuses_with_a_location_are_followed() {
    let refused = |status: u16, location: Option<&'static str>| -> Error {
        let mut response = http::Response::builder().status(status);
        if let Some(location) = location {
            response = response.header(LOCATION, location);
        }
        HandshakeError::Refused(Box::new(response.body(bytes::Bytes::new()).unwrap())).into()
    };
    for status in [301, 302, 303, 307, 308] {
        assert!(redirect_location(&refused(status, Some("/x"))).is_some());
        assert!(redirect_location(&refused(status, None)).is_none());
    }
    for status in [300, 304, 400, 403] {
        assert!(redirect_location(&refused(status, Some("/x"))).is_none());
    }
    assert!(redirect_location(&Error::Closed).is_none());
}

/// A loopback listener whose accept queue is full: connecting to it hangs.
async fn unanswering() -> (tokio::net::TcpListener, TcpStream, SocketAddr) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    let filler = TcpStream::connect(addr).await.unwrap();
    (listener, filler, addr)
}

#[tokio::test]
async fn an_address_that_hangs_gives_way_to_the_next() {
    let (_hang, _filler, hang_addr) = unanswering().await;
    if timeout(Duration::from_millis(300), TcpStream::connect(hang_addr))
        .await
        .is_ok()
    {
        eprintln!("this kernel does not leave a full accept queue unanswered; skipping");
        return;
    }
    let good = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let good_addr = good.local_addr().unwrap();
    let deadline = deadline_after(Duration::from_secs(10));
    let started = std::time::Instant::now();
    let tcp = connect_addrs(
        &[hang_addr, good_addr],
        deadline,
        Some(Duration::from_millis(200)),
        "test",
    )
    .await
    .unwrap();
    assert_eq!(tcp.peer_addr().unwrap(), good_addr);
    assert!(started.elapsed() < Duration::from_secs(5));

    // Only hanging addresses: the last attempt's timeout is reported.
    let e = connect_addrs(
        &[hang_addr],
        deadline,
        Some(Duration::from_millis(100)),
        "t",
    )
    .await
    .unwrap_err();
    assert!(matches!(e, Error::Timeout(Timeout::Connect)), "{e:?}");
    let e = connect_addrs(&[], deadline, None, "nowhere")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), crate::ErrorKind::Io);
}
