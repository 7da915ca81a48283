//! The `batos.v1` message contract: both encodings round-trip every message shape,
//! unknown fields are ignored, unknown types and wrong frames are refused with a kind,
//! and every message has an example in `docs/protocol.md` that decodes.

use batos_protocol::{
    decode, encode, Bytes, ClientMessage, DecodeError, Event, Format, Frame, Request, ServerMessage,
};

fn round_trip<T>(message: &T)
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    for format in [Format::Json, Format::Msgpack] {
        let frame = encode(message, format);
        let back: T = decode(&frame, format).expect("a message decodes in its own format");
        assert_eq!(&back, message, "{format:?}");
    }
}

#[test]
fn client_messages_round_trip_in_both_encodings() {
    round_trip(&ClientMessage::Hello {
        protocol: "batos.v1".into(),
        client: "test".into(),
        token: "t".into(),
        resume_from: Some(7),
    });
    round_trip(&ClientMessage::Request {
        id: "1".into(),
        request: Request::Inspect { object: "genesis".into(), at: Some(3) },
    });
    round_trip(&ClientMessage::Request {
        id: "2".into(),
        request: Request::PluginAdd {
            file: "p.wasm".into(),
            component: Bytes(vec![0, 97, 115, 109, 255]),
            manifest: "[plugin]\n".into(),
            source: None,
            origin: None,
        },
    });
    round_trip(&ClientMessage::Cancel { id: "3".into(), target: "2".into() });
}

#[test]
fn bytes_are_base64_in_json_and_binary_in_msgpack() {
    let message = ClientMessage::Request {
        id: "b".into(),
        request: Request::PluginAdd {
            file: "p.wasm".into(),
            component: Bytes(b"\0asm".to_vec()),
            manifest: "[plugin]\n".into(),
            source: None,
            origin: None,
        },
    };
    let Frame::Text(text) = encode(&message, Format::Json) else {
        panic!("JSON is a text frame");
    };
    assert!(text.contains("\"AGFzbQ==\""), "{text}");
    let Frame::Binary(bytes) = encode(&message, Format::Msgpack) else {
        panic!("msgpack is a binary frame");
    };
    // msgpack bin8 marker (0xc4) with length 4, then the raw bytes.
    assert!(bytes.windows(6).any(|w| w == [0xc4, 4, 0, b'a', b's', b'm']));
}

#[test]
fn unknown_fields_are_ignored() {
    let text = r#"{"type":"request","id":"9","later":true,"request":{"op":"roots","extra":[1,2]}}"#;
    let message: ClientMessage =
        decode(&Frame::Text(text.into()), Format::Json).expect("unknown fields are ignored");
    assert_eq!(message, ClientMessage::Request { id: "9".into(), request: Request::Roots });
}

#[test]
fn unknown_types_wrong_frames_and_garbage_are_refused_by_kind() {
    let refused = |frame: Frame, format: Format| -> DecodeError {
        match decode::<ClientMessage>(&frame, format) {
            Err(e) => e,
            Ok(m) => panic!("{frame:?} decoded as {m:?}"),
        }
    };
    let e = refused(Frame::Text(r#"{"type":"teleport","id":"1"}"#.into()), Format::Json);
    assert_eq!(e.kind, "malformed");
    assert!(e.message.contains("teleport"), "{}", e.message);
    let e = refused(
        Frame::Text(r#"{"type":"request","id":"1","request":{"op":"fly"}}"#.into()),
        Format::Json,
    );
    assert!(e.message.contains("fly"), "{}", e.message);
    assert_eq!(refused(Frame::Text("not json".into()), Format::Json).kind, "malformed");
    assert_eq!(refused(Frame::Binary(vec![0xc1, 0xff]), Format::Msgpack).kind, "malformed");
    assert_eq!(refused(Frame::Text("{}".into()), Format::Msgpack).kind, "wrong_frame");
    assert_eq!(refused(Frame::Binary(vec![0x80]), Format::Json).kind, "wrong_frame");
}

#[test]
fn server_events_round_trip_with_seq_and_cause() {
    let text = r#"{"type":"event","seq":12,"cause":{"session":"s1","id":"r4"},
        "event":{"kind":"log","capability":"clock","level":"info","message":"read"}}"#;
    let message: ServerMessage =
        decode(&Frame::Text(text.into()), Format::Json).expect("a log event decodes");
    let ServerMessage::Event { seq, cause, event } = &message else {
        panic!("{message:?} is not an event");
    };
    assert_eq!(*seq, 12);
    assert_eq!(cause.as_ref().map(|c| c.id.as_str()), Some("r4"));
    assert!(matches!(event, Event::Log { .. }), "{event:?}");
    round_trip(&message);
}

/// The examples in `docs/protocol.md`: the ```json client / ```json server blocks.
fn documented(side: &str) -> Vec<String> {
    let doc = include_str!("../../docs/protocol.md");
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in doc.lines() {
        let trimmed = line.trim();
        match &mut current {
            None if trimmed == format!("```json {side}") => current = Some(String::new()),
            Some(block) if trimmed == "```" => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            Some(block) => block.push_str(trimmed),
            None => {}
        }
    }
    blocks
}

/// Which variant a client message is, named so that a new variant (a compile error
/// here) must be given an example in the document.
fn client_variant(message: &ClientMessage) -> String {
    match message {
        ClientMessage::Hello { .. } => "hello".into(),
        ClientMessage::Cancel { .. } => "cancel".into(),
        ClientMessage::Subscribe { .. } => "subscribe".into(),
        ClientMessage::Request { request, .. } => format!(
            "request {}",
            match request {
                Request::Awaken => "awaken",
                Request::Roots => "roots",
                Request::Inspect { .. } => "inspect",
                Request::Send { .. } => "send",
                Request::Set { .. } => "set",
                Request::Clone { .. } => "clone",
                Request::History { .. } => "history",
                Request::Undo { .. } => "undo",
                Request::Pack { .. } => "pack",
                Request::PluginAdd { .. } => "plugin_add",
                Request::PluginList => "plugin_list",
                Request::PluginRemove { .. } => "plugin_remove",
                Request::PluginStats => "plugin_stats",
                Request::PluginSync => "plugin_sync",
                Request::Cycles => "cycles",
                Request::Cycle { .. } => "cycle",
                Request::ModelList => "model_list",
                Request::ModelPull { .. } => "model_pull",
                Request::Translate { .. } => "translate",
                Request::Objects => "objects",
                Request::Resolve { .. } => "resolve",
                Request::Journal { .. } => "journal",
                Request::Layout => "layout",
                Request::Place { .. } => "place",
                Request::Ingest { .. } => "ingest",
                Request::Search { .. } => "search",
                Request::Compress => "compress",
                Request::Chat { .. } => "chat",
                Request::Cem { .. } => "cem",
                Request::Enqueue { .. } => "enqueue",
                Request::Jobs { .. } => "jobs",
                Request::Upgrade { .. } => "upgrade",
            }
        ),
    }
}

const CLIENT_VARIANTS: usize = 3 + 32;

fn server_variant(message: &ServerMessage) -> String {
    match message {
        ServerMessage::Welcome { .. } => "welcome".into(),
        ServerMessage::Reply { .. } => "reply".into(),
        ServerMessage::Status { .. } => "status".into(),
        ServerMessage::Error { .. } => "error".into(),
        ServerMessage::Lagged { .. } => "lagged".into(),
        ServerMessage::Event { event, .. } => format!(
            "event {}",
            match event {
                Event::Transaction { .. } => "transaction",
                Event::Cycle { .. } => "cycle",
                Event::Log { .. } => "log",
                Event::Plugin { .. } => "plugin",
                Event::Model { .. } => "model",
                Event::Memory { .. } => "memory",
                Event::Dialogue { .. } => "dialogue",
                Event::Heartbeat { .. } => "heartbeat",
            }
        ),
    }
}

const SERVER_VARIANTS: usize = 5 + 8;

#[test]
fn every_message_has_a_documented_example_that_decodes() {
    let mut seen = std::collections::BTreeSet::new();
    for json in documented("client") {
        let message: ClientMessage = decode(&Frame::Text(json.clone()), Format::Json)
            .unwrap_or_else(|e| panic!("docs/protocol.md: {e}\n{json}"));
        seen.insert(client_variant(&message));
        round_trip(&message);
    }
    assert_eq!(seen.len(), CLIENT_VARIANTS, "client messages with an example: {seen:?}");
    let mut seen = std::collections::BTreeSet::new();
    for json in documented("server") {
        let message: ServerMessage = decode(&Frame::Text(json.clone()), Format::Json)
            .unwrap_or_else(|e| panic!("docs/protocol.md: {e}\n{json}"));
        seen.insert(server_variant(&message));
        round_trip(&message);
    }
    assert_eq!(seen.len(), SERVER_VARIANTS, "server messages with an example: {seen:?}");
}
