//! Synthesis from the command line, thinking through a stand-in chat server (a test
//! double on loopback, `pLLM` pointed at it): a send that synthesises live, `batos
//! cycles` and `batos cycle`, a process killed mid-cycle, a cycle cancelled over the
//! bridge, and the `Architect >` session.

use crate::chat_stub;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use chat_stub::{answer, Reply, StubChatServer};

fn batos(image: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_batos"));
    c.arg("--image").arg(image);
    c
}

fn run(image: &Path, args: &[&str]) -> Output {
    batos(image).args(args).output().expect("batos runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A fresh image whose pLLM asks the stub server.
pub(super) fn image_thinking_with(dir: &Path, server: &StubChatServer) -> std::path::PathBuf {
    let image = dir.join("image");
    for (slot, value) in [
        ("backend", "\"openai\"".to_owned()),
        ("model", "\"stub\"".to_owned()),
        ("baseUrl", format!("{:?}", server.base_url)),
    ] {
        let out = run(&image, &["set", "pLLM", slot, &value]);
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    image
}

/// A session on `image` fed `script`, to its end.
pub(super) fn session(image: &Path, dir: &Path, script: &str) -> Output {
    let mut child = batos(image)
        .env("BATOS_WORKSPACE", dir.join("ws"))
        .arg("session")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawns");
    child.stdin.take().expect("stdin").write_all(script.as_bytes()).expect("types");
    child.wait_with_output().expect("ends")
}

pub(super) const DOUBLE: &str = "```rust\nfn double(a: i64) -> i64 {\n    a * 2\n}\n```";
/// Another way to write it: with no example from the caller, the cycle installs once
/// two candidates agree.
pub(super) const DOUBLE_TOO: &str = "```rust\nfn double(a: i64) -> i64 {\n    a + a\n}\n```";

#[test]
fn a_send_synthesises_live_and_the_cycle_can_be_inspected() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The caller's example vouches for the first candidate that meets it: one answer.
    let server = StubChatServer::start(vec![answer(DOUBLE)]);
    let image = image_thinking_with(dir.path(), &server);
    let out = batos(&image)
        .env("BATOS_WORKSPACE", dir.path().join("ws"))
        .args([
            "send",
            "genesis",
            "double:",
            "21",
            "--example",
            "3 => 6",
            "--brief",
            "twice the number",
        ])
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "42");
    let live = text(&out.stderr);
    for shown in [
        "DECOMPOSING fn double(a: i64) -> i64",
        "SYNTHESIZING round 1",
        "round 1 candidate 1 passed",
        "COMPLETE",
    ] {
        assert!(live.contains(shown), "the cycle is shown live ({shown}): {live}");
    }
    let prompt = &server.handle.join().expect("server")[0].1;
    assert!(prompt.contains("twice the number") && prompt.contains("double(3) == 6"), "{prompt}");

    let out = run(&image, &["cycles"]);
    assert!(
        text(&out.stdout).contains("c1") && text(&out.stdout).contains("COMPLETE"),
        "{}",
        text(&out.stdout)
    );
    let out = run(&image, &["--json", "cycle", "c1"]);
    let cycle: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(cycle["state"], "COMPLETE");
    assert_eq!(cycle["brief"], "twice the number");
    assert!(cycle["attempts"][0]["code"].as_str().is_some_and(|c| c.contains("a * 2")), "{cycle}");
    let out = run(&image, &["send", "genesis", "double:", "-4"]);
    assert_eq!(text(&out.stdout).trim(), "-8", "{}", text(&out.stderr));

    let out = run(&image, &["send", "genesis", "triple:", "1", "--example", "nonsense"]);
    assert!(
        !out.status.success() && text(&out.stderr).contains("ARGS => RESULT"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_process_killed_mid_cycle_leaves_a_failed_cycle_and_nothing_installed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = StubChatServer::start(vec![Reply::Hang]);
    let image = image_thinking_with(dir.path(), &server);
    let mut child = batos(&image)
        .env("BATOS_WORKSPACE", dir.path().join("ws"))
        .args(["send", "genesis", "double:", "21", "--example", "3 => 6"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawns");
    // The mind was asked: the cycle is in SYNTHESIZING, committed.
    server.arrived.recv().expect("the process asks its mind");
    child.kill().expect("kill -9");
    child.wait().expect("reaped");

    let out = run(&image, &["--json", "cycle", "c1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let cycle: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(cycle["state"], "FAILED", "the next awakening marks it failed: {cycle}");
    assert!(
        cycle["reason"]
            .as_str()
            .is_some_and(|r| r.contains("interrupted") && r.contains("SYNTHESIZING")),
        "{cycle}"
    );
    let out = run(&image, &["send", "genesis", "double:", "1"]);
    assert!(!out.status.success(), "nothing was installed");
    let out = run(&image, &["--json", "inspect", "genesis"]);
    assert!(!text(&out.stdout).contains("double:"), "{}", text(&out.stdout));
}

#[test]
fn the_architect_session_sends_translates_and_inspects() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = StubChatServer::start(vec![
        answer(DOUBLE),
        answer(r#"{"object": "genesis", "selector": "double:", "args": [4]}"#),
    ]);
    let image = image_thinking_with(dir.path(), &server);
    let script = "help\ngenesis double: 21 --example \"3 => 6\"\ncycles\nplease double four for me\ny\ninspect genesis\nclone genesis --name twin\ninspect twin\nquit\n";
    let out = session(&image, dir.path(), script);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(shown.contains("Architect > "), "{shown}");
    assert!(shown.contains("Send a message:"), "help: {shown}");
    assert!(shown.contains("\n42\n") || shown.contains(" 42\n"), "the synthesised answer: {shown}");
    assert!(shown.contains("c1") && shown.contains("COMPLETE"), "cycles: {shown}");
    assert!(
        shown.contains("→ genesis double: 4") && shown.contains("run it? [Y/n] 8"),
        "the translation is shown, then run: {shown}"
    );
    assert!(shown.contains("double:"), "inspect shows the installed method: {shown}");
    assert!(shown.contains("twin #"), "any command of the command line, flags included: {shown}");
    assert!(text(&out.stderr).contains("COMPLETE"), "the cycle was shown live");
}

/// With no example, candidates that disagree install nothing: the command line says how
/// to give an example; the session asks for one and sends again with it.
#[test]
fn an_undecided_cycle_asks_for_an_example() {
    let proposals = "fib(1) == 1\nfib(2) == 1\nfib(5) == 5";
    let wrong = "```rust\nfn fib(n: i64) -> i64 {\n    n\n}\n```";
    let doubled = "```rust\nfn fib(n: i64) -> i64 {\n    n * 2\n}\n```";
    let right = "```rust\nfn fib(n: i64) -> i64 {\n    let (mut a, mut b) = (0, 1);\n    for _ in 0..n {\n        let t = a + b;\n        a = b;\n        b = t;\n    }\n    a\n}\n```";
    let recursive =
        "```rust\nfn fib(n: i64) -> i64 {\n    if n < 2 { n } else { fib(n - 1) + fib(n - 2) }\n}\n```";
    let undecided = || vec![answer(proposals), answer(wrong), answer(right), answer(doubled)];
    let dir = tempfile::tempdir().expect("tempdir");
    let server = StubChatServer::start(undecided());
    let image = image_thinking_with(dir.path(), &server);
    let out = batos(&image)
        .env("BATOS_WORKSPACE", dir.path().join("ws"))
        .args(["--json", "send", "genesis", "fib:", "10"])
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let error: serde_json::Value = serde_json::from_slice(&out.stderr).expect("JSON error");
    assert_eq!(error["error"]["kind"], "needs_example", "{error}");
    assert!(error["error"]["message"].as_str().is_some_and(|m| m.contains("--example")), "{error}");

    let dir = tempfile::tempdir().expect("tempdir");
    let mut replies = undecided();
    replies.extend([answer(right), answer(recursive)]);
    let server = StubChatServer::start(replies);
    let image = image_thinking_with(dir.path(), &server);
    let out = session(&image, dir.path(), "genesis fib: 10\n7 => 13\nquit\n");
    let shown = text(&out.stdout);
    assert!(shown.contains("What should it answer?"), "the session asks: {shown}");
    assert!(shown.contains("55"), "and sends again with the example: {shown}");
}

#[test]
fn a_cycle_cancelled_over_the_bridge_fails_recorded_with_nothing_installed() {
    use batos_protocol::{ClientMessage, Request, ServerMessage};

    let dir = tempfile::tempdir().expect("tempdir");
    let (release, gate) = std::sync::mpsc::channel();
    let server = StubChatServer::start(vec![Reply::Gated(chat_stub::answer_bytes(DOUBLE), gate)]);
    let image = image_thinking_with(dir.path(), &server);
    let workspace = dir.path().join("ws");
    let kernel = super::bridge::Kernel::start_with(&image, &[("BATOS_WORKSPACE", &workspace)]);
    let mut client =
        batos_client::Client::connect(kernel.info(), Default::default()).expect("connects");
    let send = Request::Send {
        object: "genesis".into(),
        selector: "double:".into(),
        args: vec![serde_json::json!(21)],
        brief: None,
        examples: vec!["3 => 6".into()],
        stateful: false,
        grants: vec![],
        wat: false,
        no_synthesis: false,
    };
    client.say(&ClientMessage::Request { id: "s".into(), request: send }).expect("sent");
    // The cycle is waiting on its mind; the cancel is answered at once, not behind it.
    server.arrived.recv().expect("the kernel asks its mind");
    client.say(&ClientMessage::Cancel { id: "c".into(), target: "s".into() }).expect("sent");
    let cancelled = loop {
        if let ServerMessage::Reply { re, ok, .. } = client.next_message().expect("a message") {
            if re == "c" {
                break ok.expect("answered");
            }
        }
    };
    assert_eq!(cancelled.json["cancelled"], true);
    release.send(()).expect("the mind answers now");
    let error = loop {
        if let ServerMessage::Reply { re, error, .. } = client.next_message().expect("a message") {
            if re == "s" {
                break error.expect("the send fails");
            }
        }
    };
    assert!(error.message.contains("cancelled"), "{error:?}");
    client.close();
    let out = run(&image, &["--json", "cycle", "c1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let cycle: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(cycle["state"], "FAILED", "{cycle}");
    let out = run(&image, &["--json", "inspect", "genesis"]);
    assert!(!text(&out.stdout).contains("double:"), "nothing installed: {}", text(&out.stdout));
}
