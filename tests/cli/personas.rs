//! The personas from the command line and the kernel, thinking through a stand-in chat
//! server (a test double on loopback): `batos chat` routed into a contrapunto, the
//! session's `@brick`, `batos cem`, and the heartbeat of a real `batos serve` acting on
//! stagnation — its act seen as events and undone like any transaction.

use std::path::Path;
use std::process::{Command, Output};

use batos_protocol::{ClientMessage, Event, EventKind, ServerMessage};

use crate::chat_stub::{answer, StubChatServer};
use crate::synthesis::{image_thinking_with, session, DOUBLE, DOUBLE_TOO};

fn batos(image: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_batos"));
    c.arg("--image").arg(image);
    c
}

fn run(image: &Path, args: &[&str]) -> Output {
    let out = batos(image).args(args).output().expect("batos runs");
    assert!(out.status.success(), "batos {args:?}: {}", text(&out.stderr));
    out
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn chat_routes_a_contrapunto_and_the_session_asks_one_persona() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = StubChatServer::start(vec![
        answer("First: a transaction is all or nothing."),
        answer("Second: so nobody loses acknowledged work."),
        answer("Bricks are made of clay."),
    ]);
    let image = image_thinking_with(dir.path(), &server);
    let out = run(&image, &["--json", "chat", "How does the image survive a crash?"]);
    let reply: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let turns = reply["turns"].as_array().expect("turns");
    assert_eq!(turns.len(), 2, "{reply}");
    assert_ne!(turns[0]["persona"], turns[1]["persona"]);
    assert_eq!(turns[0]["text"], "First: a transaction is all or nothing.");
    assert_eq!(reply["routing"]["chosen"].as_array().map(Vec::len), Some(2));
    assert!(reply["routing"]["noise"].as_object().is_some_and(|n| n.len() == 4), "{reply}");
    assert_eq!(reply["dialogue"], "d1");

    // The session: `@brick …` asks BRICK alone.
    let out = session(&image, dir.path(), "@brick what is a brick?\nquit\n");
    assert!(text(&out.stdout).contains("BRICK: Bricks are made of clay."), "{}", text(&out.stdout));

    let seen = server.handle.join().expect("the stub ends");
    // The second persona was sent the first's answer, and each its own system prompt.
    assert!(seen[1].1.contains("a transaction is all or nothing."), "{}", seen[1].1);
    assert!(!seen[0].1.contains("answered:"));
    assert!(seen[2].1.contains("You are BRICK"));

    // The metric sees three turns by the personas used.
    let out = run(&image, &["--json", "cem"]);
    let cem: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let uses: u64 =
        cem["uses"].as_object().expect("uses").values().filter_map(|v| v.as_u64()).sum();
    assert_eq!(uses, 3, "{cem}");
    assert!(cem["terms"]["cog"].as_f64().is_some_and(|h| h > 0.0), "{cem}");
    let out = run(&image, &["cem"]);
    assert!(text(&out.stdout).starts_with("CEM now"), "{}", text(&out.stdout));
}

#[test]
fn an_unknown_persona_is_refused_with_the_names_there_are() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = batos(&dir.path().join("image"))
        .args(["--json", "chat", "--persona", "batman", "who are you?"])
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let error: serde_json::Value = serde_json::from_slice(&out.stderr).expect("JSON error");
    assert_eq!(error["error"]["kind"], "bad_input");
    let message = error["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("alfred, babs, brick, robin"), "{message}");
}

#[test]
fn the_heartbeat_of_a_served_kernel_acts_on_stagnation_and_its_act_can_be_undone() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The least used persona sets a goal; the goal becomes a message;
    // the message is synthesised (cases proposed, two candidates that agree).
    let server = StubChatServer::start(vec![
        answer("create a method on genesis that doubles a number"),
        answer("{\"object\": \"genesis\", \"selector\": \"double:\", \"args\": [21]}"),
        answer("double(3) == 6\ndouble(5) == 10"),
        answer(DOUBLE),
        answer(DOUBLE_TOO),
    ]);
    let image = image_thinking_with(dir.path(), &server);
    run(&image, &["set", "heartbeat", "intervalSeconds", "1"]);
    run(&image, &["set", "heartbeat", "stagnantBeats", "1"]);
    let workspace = dir.path().join("ws");
    let kernel = crate::bridge::Kernel::start_with(&image, &[("BATOS_WORKSPACE", &workspace)]);
    let mut client =
        batos_client::Client::connect(kernel.info(), Default::default()).expect("connects");
    client
        .say(&ClientMessage::Subscribe {
            id: "s".into(),
            kinds: Some(vec![EventKind::Heartbeat, EventKind::Cycle, EventKind::Transaction]),
            objects: None,
        })
        .expect("subscribes");
    // Every event the act caused, until the beat that acted says so.
    let mut caused = Vec::new();
    let (act, detail) = loop {
        match client.next_message().expect("a message") {
            ServerMessage::Event {
                event: Event::Heartbeat { act: Some(act), detail, .. }, ..
            } => break (act, detail),
            ServerMessage::Event { event, cause: Some(cause), .. }
                if cause.session == "heartbeat" =>
            {
                caused.push(event)
            }
            _ => {}
        }
    };
    assert_eq!(act, "pursue", "{detail}");
    assert!(detail.contains("genesis double: 21") && detail.contains("(done;"), "{detail}");
    assert!(
        caused.iter().any(|e| matches!(e, Event::Cycle { state: Some(s), .. } if s == "COMPLETE")),
        "the cycle's steps are events of the heartbeat: {caused:?}"
    );
    let installs: Vec<u64> = caused
        .iter()
        .filter_map(|e| match e {
            Event::Transaction { tx, description, .. }
                if description.starts_with("install synthesised double:") =>
            {
                Some(*tx)
            }
            _ => None,
        })
        .collect();
    assert_eq!(installs.len(), 1, "{caused:?}");
    client.close();

    // The method answers; the act is recorded with its transactions; undoing the install
    // takes the method away again.
    let out = run(&image, &["send", "genesis", "double:", "4"]);
    assert_eq!(text(&out.stdout).trim(), "8");
    let out = run(&image, &["--json", "inspect", "heartbeat"]);
    let inspected = text(&out.stdout);
    assert!(
        inspected.contains(&installs[0].to_string()) && inspected.contains("\"pursue\""),
        "{inspected}"
    );
    let journal = text(&run(&image, &["--json", "journal", "--limit", "1000"]).stdout);
    assert!(journal.contains("\"act\":\"pursue\""), "the act is in the journal: {journal}");
    run(&image, &["undo", &installs[0].to_string()]);
    let out = batos(&image)
        .args(["--json", "send", "genesis", "double:", "4", "--no-synthesis"])
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let error: serde_json::Value = serde_json::from_slice(&out.stderr).expect("JSON error");
    assert_eq!(error["error"]["kind"], "does_not_understand", "{error}");
    drop(kernel);
}
