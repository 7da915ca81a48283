//! The bridge as clients see it: the handshake and its refusals, requests bracketed
//! by `busy`/`idle` with their events, concurrent increments, resume, lag, and bad
//! frames answered without harm.

use std::sync::Arc;

use batos_protocol::{
    close, ClientMessage, Event, Format, Request, ServerMessage, State, PROTOCOL,
};

use super::support::{self, hello, increment, install_increment, read, send_json, set};

#[test]
fn a_request_is_bracketed_by_busy_and_idle_with_its_events_and_reply_between() {
    let served = support::serve();
    let mut ws = support::raw(&served);
    let ServerMessage::Welcome { protocol, session, .. } = hello(&mut ws, &served) else {
        panic!("no welcome")
    };
    assert_eq!(protocol, PROTOCOL);
    send_json(
        &mut ws,
        r#"{"type":"request","id":"r1","request":{"op":"set","object":"genesis","slot":"x","value":5},"future_field":true}"#,
    );
    let got: Vec<ServerMessage> = (0..4).map(|_| read(&mut ws).expect("a message")).collect();
    assert!(matches!(&got[0], ServerMessage::Status { re, state: State::Busy } if re == "r1"));
    let ServerMessage::Event {
        cause: Some(cause), event: Event::Transaction { changes, .. }, ..
    } = &got[1]
    else {
        panic!("expected the transaction event, got {:?}", got[1])
    };
    assert_eq!((cause.session.as_str(), cause.id.as_str()), (session.as_str(), "r1"));
    assert!(changes.values().any(|slots| slots.contains(&"x".to_owned())), "{changes:?}");
    let ServerMessage::Reply { re, ok: Some(output), error: None } = &got[2] else {
        panic!("expected the reply, got {:?}", got[2])
    };
    assert_eq!((re.as_str(), output.text.as_str()), ("r1", "5"));
    assert!(matches!(&got[3], ServerMessage::Status { re, state: State::Idle } if re == "r1"));
}

#[test]
fn a_wrong_token_version_or_first_message_is_refused_with_its_close_code() {
    let served = support::serve();
    let cases = [
        (
            serde_json::json!({"type":"hello","protocol":PROTOCOL,"client":"t","token":"guess"}),
            "bad_token",
            close::BAD_TOKEN,
        ),
        (
            serde_json::json!({"type":"hello","protocol":"batos.v0","client":"t","token":served.info.token}),
            "bad_version",
            close::BAD_VERSION,
        ),
        (
            serde_json::json!({"type":"request","id":"1","request":{"op":"awaken"}}),
            "hello_first",
            close::PROTOCOL_ERROR,
        ),
    ];
    for (frame, kind, code) in cases {
        let mut ws = support::raw(&served);
        send_json(&mut ws, &frame.to_string());
        match read(&mut ws) {
            Ok(ServerMessage::Error { error, .. }) => assert_eq!(error.kind, kind),
            other => panic!("expected an error for {kind}, got {other:?}"),
        }
        assert_eq!(read(&mut ws).expect_err("then a close"), code, "{kind}");
    }
    // A browser page from another origin never reaches the handshake.
    let mut request =
        tungstenite::client::IntoClientRequest::into_client_request(served.info.url())
            .expect("a request");
    request.headers_mut().insert("Origin", "http://evil.example".parse().expect("a header"));
    assert!(tungstenite::connect(request).is_err(), "another origin is refused");
}

#[test]
fn bad_frames_get_error_replies_and_hurt_no_one() {
    let served = support::serve();
    let mut bystander = support::client(&served, Format::Msgpack);
    set(&mut bystander, "kept", serde_json::json!(1));
    let mut ws = support::raw(&served);
    hello(&mut ws, &served);
    let bad = [
        ("not json at all", None, "malformed"),
        (r#"{"type":"teleport","id":"t1"}"#, Some("t1"), "bad_message"),
        (
            r#"{"type":"request","id":"t2","request":{"op":"format_disk"}}"#,
            Some("t2"),
            "bad_message",
        ),
        (
            r#"{"type":"request","id":"t3","request":{"op":"set","object":"genesis"}}"#,
            Some("t3"),
            "bad_message",
        ),
        (r#"[1,2,3]"#, None, "bad_message"),
    ];
    for (frame, re, kind) in bad {
        send_json(&mut ws, frame);
        match read(&mut ws) {
            Ok(ServerMessage::Error { re: got, error }) => {
                assert_eq!((got.as_deref(), error.kind.as_str()), (re, kind), "{frame}")
            }
            other => panic!("{frame}: expected an error, got {other:?}"),
        }
    }
    // A binary frame on a JSON connection is refused, and the connection lives on.
    ws.send(tungstenite::Message::binary(vec![0xc1, 0x00])).expect("sent");
    assert!(
        matches!(read(&mut ws), Ok(ServerMessage::Error { error, .. }) if error.kind == "wrong_frame")
    );
    // A request the image refuses is a reply with the image's error kind.
    send_json(
        &mut ws,
        r#"{"type":"request","id":"n","request":{"op":"inspect","object":"nobody"}}"#,
    );
    let reply = std::iter::from_fn(|| read(&mut ws).ok())
        .find(|m| matches!(m, ServerMessage::Reply { .. }))
        .expect("a reply");
    let ServerMessage::Reply { error: Some(error), .. } = reply else { panic!("an error reply") };
    assert_eq!(error.kind, "not_found");
    // The bystander and the image are untouched.
    let out = bystander
        .request(Request::Inspect { object: "genesis".into(), at: None }, &mut |_| {})
        .expect("the bystander is still connected")
        .expect("inspects");
    assert_eq!(out.json["slots"]["kept"], serde_json::json!(1));
}

#[test]
fn eight_clients_each_incrementing_two_hundred_times_end_at_1600() {
    let served = Arc::new(support::serve());
    install_increment(&mut support::client(&served, Format::Msgpack));
    let workers: Vec<_> = (0..8)
        .map(|i| {
            let served = served.clone();
            std::thread::spawn(move || {
                let format = if i % 2 == 0 { Format::Msgpack } else { Format::Json };
                let mut client = support::client(&served, format);
                (0..200).map(|_| increment(&mut client)).collect::<Vec<_>>()
            })
        })
        .collect();
    let mut answers: Vec<i64> =
        workers.into_iter().flat_map(|w| w.join().expect("a worker")).collect();
    answers.sort_unstable();
    assert_eq!(answers, (1..=1600).collect::<Vec<_>>(), "every increment answered once");
    let mut client = support::client(&served, Format::Json);
    let out = client
        .request(Request::Inspect { object: "genesis".into(), at: None }, &mut |_| {})
        .expect("connected")
        .expect("inspects");
    assert_eq!(out.json["slots"]["count"], serde_json::json!(1600));
}

/// Reads events until `until` (inclusive), answering their seqs.
fn seqs_until(client: &mut batos_client::Client, until: u64) -> Vec<u64> {
    let mut seqs = Vec::new();
    while seqs.last().copied() != Some(until) {
        if let ServerMessage::Event { seq, .. } = client.next_message().expect("a message") {
            seqs.push(seq);
        }
    }
    seqs
}

#[test]
fn a_client_that_disconnects_and_resumes_sees_every_event_exactly_once_in_order() {
    let served = support::serve();
    let mut writer = support::client(&served, Format::Json);
    let mut watcher = support::client(&served, Format::Msgpack);
    let first = watcher.head_seq();
    for i in 0..30 {
        set(&mut writer, "n", serde_json::json!(i));
    }
    let head = served.kernel.events().head();
    let mut seen = seqs_until(&mut watcher, first + 10);
    let resume_from = watcher.last_seq();
    watcher.close();
    for i in 30..60 {
        set(&mut writer, "n", serde_json::json!(i));
    }
    let options =
        batos_client::ConnectOptions { resume_from: Some(resume_from), ..Default::default() };
    let mut back = batos_client::Client::connect(&served.info, options).expect("resumes");
    set(&mut writer, "n", serde_json::json!("live"));
    let live_head = served.kernel.events().head();
    assert!(live_head > head);
    seen.extend(seqs_until(&mut back, live_head));
    assert_eq!(seen, ((first + 1)..=live_head).collect::<Vec<_>>(), "each once, in order");
}

#[test]
fn a_client_that_stops_reading_gets_lagged_and_a_close_while_others_get_everything() {
    let served = support::serve();
    let mut stalled = support::raw(&served);
    hello(&mut stalled, &served);
    let mut reader = support::client(&served, Format::Msgpack);
    let start = served.kernel.events().head();
    // Far more than the queue and the socket buffers hold, published straight into the
    // log while the stalled client reads nothing.
    let count = 200_000u64;
    let read_up_to = Arc::new(std::sync::atomic::AtomicU64::new(start));
    let publisher = {
        let kernel = served.kernel.clone();
        let read_up_to = read_up_to.clone();
        std::thread::spawn(move || {
            for i in 0..count {
                // Keep within the reading client's queue: only the stalled one lags.
                while start + i - read_up_to.load(std::sync::atomic::Ordering::SeqCst) > 1000 {
                    std::thread::yield_now();
                }
                kernel.events().publish(
                    None,
                    Event::Log {
                        capability: "test".into(),
                        level: "info".into(),
                        message: format!("line {i}"),
                    },
                );
            }
        })
    };
    let mut got = 0u64;
    while got < count {
        if let ServerMessage::Event { seq, .. } = reader.next_message().expect("a message") {
            got += 1;
            assert_eq!(seq, start + got, "the reading client gets every event in order");
            read_up_to.store(seq, std::sync::atomic::Ordering::SeqCst);
        }
    }
    publisher.join().expect("published");
    let mut last = start;
    loop {
        match read(&mut stalled) {
            Ok(ServerMessage::Event { seq, .. }) => {
                assert_eq!(seq, last + 1, "no gap before the lag");
                last = seq;
            }
            Ok(ServerMessage::Lagged { seq }) => {
                assert_eq!(seq, last, "lagged names the last event sent");
                assert!(seq < start + count, "it did lag");
                break;
            }
            other => panic!("expected events then lagged, got {other:?}"),
        }
    }
    assert_eq!(read(&mut stalled).expect_err("closed"), close::LAGGED);
}

#[test]
fn subscribe_filters_by_kind_and_cancel_answers_at_once() {
    let served = support::serve();
    let mut client = support::client(&served, Format::Json);
    client
        .say(&ClientMessage::Subscribe {
            id: "s".into(),
            kinds: Some(vec![batos_protocol::EventKind::Plugin]),
            objects: None,
        })
        .expect("sent");
    assert!(
        matches!(client.next_message().expect("reply"), ServerMessage::Reply { re, .. } if re == "s")
    );
    let mut events = Vec::new();
    install_increment_quietly(&mut client, &mut events);
    assert!(events.iter().all(|e| matches!(e, Event::Plugin { .. })), "{events:?}");
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::Plugin { change, .. } if change == "installed")));
    client.say(&ClientMessage::Cancel { id: "c".into(), target: "nothing".into() }).expect("sent");
    match client.next_message().expect("reply") {
        ServerMessage::Reply { re, ok: Some(out), .. } => {
            assert_eq!((re.as_str(), &out.json["cancelled"]), ("c", &serde_json::json!(false)))
        }
        other => panic!("{other:?}"),
    }
}

fn install_increment_quietly(client: &mut batos_client::Client, events: &mut Vec<Event>) {
    let request = Request::PluginAdd {
        file: "increment.wat".into(),
        component: batos_protocol::Bytes(support::INCREMENT.as_bytes().to_vec()),
        manifest: "selector = \"increment\"\ntarget = \"genesis\"\ndescription = \"Counts.\"\n"
            .into(),
        source: None,
        origin: None,
    };
    client
        .request(request, &mut |m| {
            if let ServerMessage::Event { event, .. } = m {
                events.push(event.clone());
            }
        })
        .expect("connected")
        .expect("installs");
}

#[test]
fn a_capability_s_log_line_is_an_event_caused_by_the_send_that_ran_it() {
    let served = support::serve();
    let mut client = support::client(&served, Format::Msgpack);
    let wat = r#"
  (data (i32.const 512) "counting sheep")
  (func $invoke (param $receiver i32) (param $args i32) (param $nargs i32) (result i32)
    (call $log_info (i32.const 512) (i32.const 14))
    (call $ok_int (i64.const 7)))
"#;
    client
        .request(
            Request::PluginAdd {
                file: "sheep.wat".into(),
                component: batos_protocol::Bytes(wat.as_bytes().to_vec()),
                manifest: "selector = \"sheep\"\ntarget = \"genesis\"\ndescription = \"Logs.\"\n"
                    .into(),
                source: None,
                origin: None,
            },
            &mut |_| {},
        )
        .expect("connected")
        .expect("installs");
    let id = client.next_id();
    let send = Request::send_known("genesis", "sheep", vec![]);
    client.say(&ClientMessage::Request { id: id.clone(), request: send }).expect("sent");
    let mut logged = None;
    loop {
        match client.next_message().expect("a message") {
            ServerMessage::Event {
                cause,
                event: Event::Log { capability, level, message },
                ..
            } => {
                logged = Some((cause.map(|c| c.id), capability, level, message));
            }
            ServerMessage::Status { re, state: State::Idle } if re == id => break,
            _ => {}
        }
    }
    assert_eq!(
        logged,
        Some((Some(id), "sheep".into(), "info".into(), "counting sheep".into())),
        "the line arrives before idle, linked to the send"
    );
}

#[test]
fn a_frame_over_the_limit_and_thousands_of_dropped_connections_harm_no_one() {
    let served = support::serve();
    let mut bystander = support::client(&served, Format::Msgpack);
    set(&mut bystander, "kept", serde_json::json!("yes"));

    // One frame over the limit: an error naming it, and a close with 1009.
    let mut ws = support::raw(&served);
    hello(&mut ws, &served);
    let huge = "x".repeat(batos_protocol::limits::MAX_FRAME_BYTES + 1);
    // The kernel may close before the whole frame is written.
    let _ = ws.send(tungstenite::Message::text(huge));
    match read(&mut ws) {
        Ok(ServerMessage::Error { error, .. }) => {
            assert_eq!(error.kind, "too_big");
            assert_eq!(read(&mut ws), Err(close::TOO_BIG));
        }
        Err(code) => assert!(code == close::TOO_BIG || code == 1006, "closed with {code}"),
        Ok(other) => panic!("expected too_big, got {other:?}"),
    }

    // Connections dropped at every stage: before the WebSocket handshake, before
    // hello, after hello, and with a request just sent.
    for i in 0..2_000 {
        match i % 4 {
            0 => drop(std::net::TcpStream::connect(&served.info.address).expect("connects")),
            1 => drop(support::raw(&served)),
            2 => {
                let mut ws = support::raw(&served);
                hello(&mut ws, &served);
            }
            _ => {
                let mut ws = support::raw(&served);
                hello(&mut ws, &served);
                let request = format!(
                    r#"{{"type":"request","id":"d{i}","request":{{"op":"set","object":"genesis","slot":"dropped","value":{i}}}}}"#
                );
                send_json(&mut ws, &request);
            }
        }
    }
    // The bystander is still served, the image holds what it held, and a request
    // whose client left either committed whole or not at all.
    let out = bystander
        .request(Request::Inspect { object: "genesis".into(), at: None }, &mut |_| {})
        .expect("the bystander is still connected")
        .expect("inspects");
    assert_eq!(out.json["slots"]["kept"], serde_json::json!("yes"));
    if let Some(dropped) = out.json["slots"].get("dropped") {
        assert_eq!(dropped.as_i64().map(|d| d % 4), Some(3), "{dropped}");
    }
    let mut fresh = support::client(&served, Format::Json);
    assert!(fresh.request(Request::Roots, &mut |_| {}).expect("a new client is served").is_ok());
}
