//! Typed messages (the `serde` feature): values in and out as JSON text, or through another
//! `Codec` (CBOR with `ciborium` here).
//!
//! - Values round-trip both ways on a pair, on the socket and on split halves, including a
//!   borrowed unsized value (`&[u16]`) and text that JSON must escape.
//! - Another serde format plugs in through `Codec`; JSON refuses its binary messages.
//! - A payload that does not decode (not JSON, JSON of another shape, binary where JSON text is
//!   expected) is an error of kind `Decode` for that receive only: the error hands back the
//!   message and the `serde_json::Error`, the connection stays open, the next message arrives.
//! - A value that does not encode is an error of kind `Encode` and sends nothing.
//! - Pings and pongs between values are answered or matched and passed over; the peer's close
//!   ends the values with `None` and its code.
//! - JSON made by real peers (Python's `json`, Node's `JSON.stringify`) decodes.
#![cfg(feature = "serde")]

mod support;

use std::collections::HashMap;

use serde::{de::DeserializeOwned, Deserialize, Serialize};
use tokio::net::TcpStream;
use wsio::codec::{BoxError, Codec};
use wsio::{CloseCode, Config, ErrorKind, Message, ReadyState};

use support::peers::{PeerProcess, RealPeer};
use support::{pair, within};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Event {
    id: u64,
    name: String,
    tags: Vec<String>,
    score: Option<f64>,
    inner: Inner,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Inner {
    Empty,
    Point { x: i32, y: i32 },
    Blob(Vec<u8>),
}

fn event(id: u64) -> Event {
    Event {
        id,
        name: format!("event \"{id}\"\n\t h\u{e9}llo \u{1f980}"),
        tags: vec!["a".into(), "\u{2713}".into()],
        score: id.is_multiple_of(2).then_some(id as f64 / 3.0),
        inner: match id % 3 {
            0 => Inner::Empty,
            1 => Inner::Point {
                x: -(id as i32),
                y: 7,
            },
            _ => Inner::Blob(vec![0, 255, id as u8]),
        },
    }
}

/// CBOR (`ciborium`) in binary messages.
struct Cbor;

impl Codec for Cbor {
    fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Message, BoxError> {
        let mut out = Vec::new();
        ciborium::into_writer(value, &mut out)?;
        Ok(Message::binary(out))
    }

    fn decode<T: DeserializeOwned>(&self, message: &Message) -> Result<T, BoxError> {
        match message {
            Message::Binary(data) => Ok(ciborium::from_reader(&data[..])?),
            _ => Err("CBOR comes in binary messages".into()),
        }
    }
}

fn decode_error(e: wsio::Error) -> Box<wsio::error::DecodeError> {
    assert_eq!(e.kind(), ErrorKind::Decode, "{e}");
    assert_eq!(e.close_code(), None, "a decode error fails nothing: {e}");
    match e {
        wsio::Error::Decode(d) => d,
        other => panic!("not Error::Decode: {other:?}"),
    }
}

#[tokio::test]
async fn json_values_round_trip_both_ways() {
    let (mut client, mut server) = pair(Config::default());
    for id in 0..6 {
        within("client send", client.send_json(&event(id)))
            .await
            .unwrap();
        let got: Event = within("server recv", server.recv_json())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, event(id));
        within("server send", server.send_json(&got)).await.unwrap();
        let back: Event = within("client recv", client.recv_json())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(back, event(id));
    }
    // Unsized and borrowed values go out as they are.
    let numbers: &[u16] = &[1, 2, 65535];
    within("send a slice", client.send_json(numbers))
        .await
        .unwrap();
    within("send a str", client.send_json("quote \" and \\ and \u{0}"))
        .await
        .unwrap();
    let raw = within("recv raw", server.recv()).await.unwrap().unwrap();
    assert_eq!(
        raw,
        Message::text("[1,2,65535]"),
        "JSON goes in a text message"
    );
    let text: String = within("recv str", server.recv_json())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(text, "quote \" and \\ and \u{0}");
}

#[tokio::test]
async fn halves_send_and_receive_json_from_two_tasks() {
    let (client, server) = pair(Config::default());
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    // The server's halves echo from two tasks, through a channel.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Event>(4);
    let reader = tokio::spawn(async move {
        while let Some(value) = server_read.recv_json::<Event>().await {
            tx.send(value.unwrap()).await.unwrap();
        }
        server_read.close_code()
    });
    let writer = tokio::spawn(async move {
        while let Some(value) = rx.recv().await {
            server_write.send_json(&value).await.unwrap();
        }
    });
    let sender = tokio::spawn(async move {
        for id in 0..50 {
            client_write.send_json(&event(id)).await.unwrap();
        }
        client_write
    });
    for id in 0..50 {
        let got: Event = within("echo", client_read.recv_json())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, event(id));
    }
    let mut client_write = within("sender", sender).await.unwrap();
    within("close", client_write.close(CloseCode::NORMAL, "done"))
        .await
        .unwrap();
    assert!(within("end", client_read.recv_json::<Event>())
        .await
        .is_none());
    assert_eq!(
        within("reader", reader).await.unwrap(),
        Some(CloseCode::NORMAL)
    );
    within("writer", writer).await.unwrap();
}

#[tokio::test]
async fn another_format_plugs_in_through_codec() {
    let (client, mut server) = pair(Config::default());
    let (mut client_read, mut client_write) = client.into_split();
    within("send", client_write.send_with_codec(&Cbor, &event(4)))
        .await
        .unwrap();
    let got: Event = within("recv", server.recv_with_codec(&Cbor))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, event(4));
    within("send back", server.send_with_codec(&Cbor, &got))
        .await
        .unwrap();
    let back: Event = within("recv back", client_read.recv_with_codec(&Cbor))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back, event(4));
    let mut client = client_read.reunite(client_write).unwrap();

    // CBOR is binary: a JSON receiver refuses it and hands it back intact.
    within("send cbor", client.send_with_codec(&Cbor, &event(5)))
        .await
        .unwrap();
    let e = decode_error(
        within("recv as json", server.recv_json::<Event>())
            .await
            .unwrap()
            .unwrap_err(),
    );
    assert!(matches!(e.message(), Message::Binary(_)));
    assert_eq!(Cbor.decode::<Event>(e.message()).unwrap(), event(5));
}

#[tokio::test]
async fn a_payload_that_does_not_decode_leaves_the_connection_open() {
    let (mut client, mut server) = pair(Config::default());
    within("send bad", client.send_text("{\"id\": 1, oops"))
        .await
        .unwrap();
    within("send wrong shape", client.send_json(&[1, 2, 3]))
        .await
        .unwrap();
    within("send good", client.send_json(&event(2)))
        .await
        .unwrap();

    let e = decode_error(
        within("bad", server.recv_json::<Event>())
            .await
            .unwrap()
            .unwrap_err(),
    );
    assert_eq!(e.message(), &Message::text("{\"id\": 1, oops"));
    let json = e
        .inner()
        .downcast_ref::<serde_json::Error>()
        .expect("a serde_json::Error");
    assert!(json.is_syntax(), "{json}");
    assert_eq!((json.line(), json.column()), (1, 11), "{json}");
    let shown = wsio::Error::Decode(e).to_string();
    assert!(shown.contains("text message of 14 bytes"), "{shown}");

    let e = decode_error(
        within("wrong shape", server.recv_json::<Event>())
            .await
            .unwrap()
            .unwrap_err(),
    );
    let (message, source) = e.into_parts();
    assert_eq!(message, Message::text("[1,2,3]"));
    assert!(source.downcast::<serde_json::Error>().unwrap().is_data());

    assert_eq!(server.ready_state(), ReadyState::Open);
    assert_eq!(client.ready_state(), ReadyState::Open);
    let good: Event = within("good", server.recv_json()).await.unwrap().unwrap();
    assert_eq!(good, event(2));
    // And the other way, still.
    within("reply", server.send_json(&good)).await.unwrap();
    let back: Event = within("reply recv", client.recv_json())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back, good);
}

#[tokio::test]
async fn a_binary_message_where_json_text_is_expected_is_handed_back() {
    let (mut client, server) = pair(Config::default());
    let (mut server_read, _server_write) = server.into_split();
    let json_bytes = serde_json::to_vec(&event(1)).unwrap();
    within("send binary", client.send_binary(json_bytes.clone()))
        .await
        .unwrap();
    within("send text", client.send_json(&event(3)))
        .await
        .unwrap();

    let e = decode_error(
        within("binary", server_read.recv_json::<Event>())
            .await
            .unwrap()
            .unwrap_err(),
    );
    let json = e
        .inner()
        .downcast_ref::<serde_json::Error>()
        .expect("a serde_json::Error");
    assert!(json.to_string().contains("text message"), "{json}");
    // Nothing is lost: a caller whose peer sends JSON as binary parses it itself.
    let message = e.into_message();
    assert_eq!(message, Message::binary(json_bytes));
    let parsed: Event = serde_json::from_slice(message.as_payload()).unwrap();
    assert_eq!(parsed, event(1));

    let next: Event = within("next", server_read.recv_json())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(next, event(3));
}

#[tokio::test]
async fn a_value_that_does_not_encode_sends_nothing() {
    let (mut client, mut server) = pair(Config::default());
    // JSON object keys must be strings.
    let map = HashMap::from([((1u8, 2u8), "pair")]);
    let e = within("encode", client.send_json(&map)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Encode, "{e}");
    match &e {
        wsio::Error::Encode(inner) => {
            assert!(inner.inner().downcast_ref::<serde_json::Error>().is_some())
        }
        other => panic!("not Error::Encode: {other:?}"),
    }
    assert_eq!(client.stats().messages_sent, 0, "nothing was sent");
    within("send after", client.send_json(&event(0)))
        .await
        .unwrap();
    let got: Event = within("recv", server.recv_json()).await.unwrap().unwrap();
    assert_eq!(got, event(0));
}

#[tokio::test]
async fn pings_pongs_and_the_close_around_values() {
    let (mut client, mut server) = pair(Config::default());
    let pong = within("ping", client.ping("rtt")).await.unwrap();
    within("send", client.send_json(&event(1))).await.unwrap();
    // The server passes over the ping (answering it) and returns the value.
    let got: Event = within("recv past a ping", server.recv_json())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, event(1));
    within("reply", server.send_json(&event(2))).await.unwrap();
    // The client passes over the pong (resolving its Pong) and returns the reply.
    let back: Event = within("recv past a pong", client.recv_json())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back, event(2));
    within("pong resolved", pong).await.unwrap();

    let closing = tokio::spawn(async move {
        client.close(CloseCode::from(4000), "bye").await.unwrap();
        client
    });
    assert!(within("close ends values", server.recv_json::<Event>())
        .await
        .is_none());
    assert_eq!(server.close_code(), Some(CloseCode::from(4000)));
    assert_eq!(server.close_reason(), Some("bye"));
    assert!(server.recv_json::<Event>().await.is_none(), "still ended");
    let client = within("client close", closing).await.unwrap();
    assert_eq!(client.ready_state(), ReadyState::Closed);
}

/// What the peers' `json` command sends (`JSON_SAMPLE` in tests/peers/).
#[derive(Debug, PartialEq, Deserialize)]
struct PeerSample {
    from: String,
    text: String,
    numbers: Vec<f64>,
    nested: PeerNested,
}

#[derive(Debug, PartialEq, Deserialize)]
struct PeerNested {
    ok: bool,
    nothing: Option<u8>,
}

async fn json_from(peer: RealPeer) {
    let mut process = PeerProcess::spawn(peer, &["echo-server", "--timeout", "30"]);
    let port = process.port().await;
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let url = format!("ws://127.0.0.1:{port}/json");
    let (mut ws, _) = within("connect", wsio::connect_on(tcp, url.as_str()))
        .await
        .unwrap();
    within("command", ws.send_text("wsio-peer: json"))
        .await
        .unwrap();
    let sample: PeerSample = within("peer's JSON", ws.recv_json())
        .await
        .expect("a message")
        .unwrap_or_else(|e| panic!("{peer:?}: {e}\npeer output:\n{}", process.output()));
    assert_eq!(
        sample,
        PeerSample {
            from: "peer".into(),
            text: "h\u{e9}llo \u{2713} \u{1f980} \"quoted\"\n".into(),
            numbers: vec![1.0, -2.0, 2.5, 1e300],
            nested: PeerNested {
                ok: true,
                nothing: None
            },
        },
        "{peer:?}"
    );
    // And the peer echoes ours back as it came.
    within("send", ws.send_json(&event(7))).await.unwrap();
    let echoed: Event = within("echo", ws.recv_json()).await.unwrap().unwrap();
    assert_eq!(echoed, event(7));
    within("close", ws.close(CloseCode::NORMAL, "done"))
        .await
        .unwrap();
    let (status, output) = process.finish(support::STEP).await;
    assert!(
        status.is_some_and(|s| s.success()),
        "{peer:?} exit {status:?}:\n{output}"
    );
}

#[tokio::test]
async fn json_from_python_decodes() {
    json_from(RealPeer::Python).await;
}

#[tokio::test]
async fn json_from_node_decodes() {
    json_from(RealPeer::Node).await;
}
