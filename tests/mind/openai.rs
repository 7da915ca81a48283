//! `OpenAiMind` against a stand-in chat-completions server that this test starts on
//! loopback (a test double: it answers scripted chunks, it is not a model).

use crate::chat_stub;

use batos_mind::{Finish, Message, Mind, MindError, OpenAiMind, Sampling};
use chat_stub::{sse, Reply, StubChatServer};
use std::net::TcpListener;

#[test]
fn a_streamed_completion_arrives_piece_by_piece() {
    let server = StubChatServer::start(vec![Reply::Answer(sse(&[
        r#"{"choices":[{"delta":{"content":"fn add(a: i64, b: i64) -> i64 "}}]}"#,
        r#"{"choices":[{"delta":{"content":"{ a + b }"},"finish_reason":"stop"}]}"#,
        "[DONE]",
    ]))]);
    let mut mind = OpenAiMind::new(server.base_url.clone(), "qwen2.5-coder");
    mind.api_key = Some("secret-key".into());
    let sampling = Sampling { max_tokens: 64, stop: vec!["```".into()], ..Sampling::default() };
    let mut streamed = Vec::new();
    let completion = mind
        .complete(
            &[Message::system("You write Rust."), Message::user("add two numbers")],
            &sampling,
            &mut |p| streamed.push(p.to_owned()),
        )
        .expect("completes");
    assert_eq!(completion.text, "fn add(a: i64, b: i64) -> i64 { a + b }");
    assert_eq!(streamed.len(), 2, "the text arrived in two pieces");
    assert_eq!(completion.finish, Finish::Stop);

    let (head, body) = server.handle.join().expect("server thread").remove(0);
    assert!(head.starts_with("POST /v1/chat/completions "), "{head}");
    assert!(head.to_ascii_lowercase().contains("authorization: bearer secret-key"), "{head}");
    let request: serde_json::Value = serde_json::from_str(&body).expect("JSON request");
    assert_eq!(request["model"], "qwen2.5-coder");
    assert_eq!(request["stream"], true);
    assert_eq!(request["max_tokens"], 64);
    assert_eq!(request["stop"], serde_json::json!(["```"]));
    // The sampling contract: every parameter a local server would otherwise default.
    for (key, value) in [
        ("temperature", serde_json::json!(0.0)),
        ("top_p", serde_json::json!(1.0)),
        ("top_k", serde_json::json!(0)),
        ("min_p", serde_json::json!(0.0)),
        ("typical_p", serde_json::json!(1.0)),
        ("repeat_penalty", serde_json::json!(1.0)),
        ("repetition_penalty", serde_json::json!(1.0)),
        ("presence_penalty", serde_json::json!(0.0)),
        ("frequency_penalty", serde_json::json!(0.0)),
        ("mirostat_mode", serde_json::json!(0)),
        ("seed", serde_json::json!(0)),
    ] {
        assert_eq!(request[key], value, "{key}");
    }
    assert_eq!(request["messages"][0]["role"], "system");
    assert_eq!(request["messages"][1]["content"], "add two numbers");
}

#[test]
fn a_refusal_carries_the_servers_words() {
    let body = r#"{"error":{"message":"model 'nope' not found"}}"#;
    let server = StubChatServer::start(vec![Reply::Answer(format!(
        "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ))]);
    let mind = OpenAiMind::new(server.base_url.clone(), "nope");
    let err = mind
        .complete(&[Message::user("hi")], &Sampling::default(), &mut |_| {})
        .expect_err("refused");
    assert!(
        matches!(&err, MindError::Refused { status: 404, detail, .. } if detail.contains("not found")),
        "{err}"
    );
    server.handle.join().expect("server thread");
}

#[test]
fn an_unreachable_server_says_what_to_check() {
    // A port that was free a moment ago and has no listener now.
    let port = TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let mind = OpenAiMind::new(format!("http://127.0.0.1:{port}/v1"), "any");
    let err = mind
        .complete(&[Message::user("hi")], &Sampling::default(), &mut |_| {})
        .expect_err("unreachable");
    assert!(matches!(err, MindError::Unreachable { .. }), "{err}");
    assert!(err.to_string().contains("is the server running"), "{err}");
}

#[test]
fn pllm_infer_asks_the_mind_its_slots_name() {
    let server = StubChatServer::start(vec![Reply::Answer(sse(&[
        r#"{"choices":[{"delta":{"content":"42"}}]}"#,
        "[DONE]",
    ]))]);
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = batos_mind::Minds::new()
        .attach(batos_runtime::Runtime::builder())
        .open(dir.path().join("image"))
        .expect("opens");
    let pllm = rt.resolve("pLLM").expect("pLLM");
    rt.set_slot(pllm, "backend", "openai".into()).expect("set");
    rt.set_slot(pllm, "model", "stub-model".into()).expect("set");
    rt.set_slot(pllm, "baseUrl", server.base_url.clone().into()).expect("set");
    // genesis delegates to pLLM, so it can think too.
    let genesis = rt.resolve("genesis").expect("genesis");
    let answer =
        rt.send(genesis, "infer", vec!["What is six times seven?".into()]).expect("infers");
    assert_eq!(answer, batos_runtime::Value::Text("42".into()));
    let (_, body) = server.handle.join().expect("server thread").remove(0);
    let request: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(request["model"], "stub-model");
    assert_eq!(request["messages"][0]["content"], "What is six times seven?");

    rt.set_slot(pllm, "backend", "telepathy".into()).expect("set");
    let err = rt.send(pllm, "infer", vec!["hi".into()]).expect_err("unknown backend");
    assert!(err.to_string().contains("telepathy"), "{err}");
}

/// A stand-in server that can answer twice (so a second question would be answered,
/// and counted, rather than hang the test).
fn answers_twice(first: &str, second: &str) -> StubChatServer {
    let reply = |text: &str| {
        let chunk =
            serde_json::json!({ "choices": [{ "delta": { "content": text } }] }).to_string();
        Reply::Answer(sse(&[&chunk, "[DONE]"]))
    };
    StubChatServer::start(vec![reply(first), reply(second)])
}

/// An image whose pLLM asks `server`, with the native test method `method` installed
/// on genesis as `selector`. Answers the runtime and genesis.
fn thinking_image(
    dir: &std::path::Path,
    server: &StubChatServer,
    selector: &str,
    method: impl Fn(
            &mut batos_runtime::Context<'_, '_>,
            &batos_runtime::Call<'_>,
        ) -> batos_runtime::Result<batos_runtime::Value>
        + Send
        + Sync
        + 'static,
) -> (batos_runtime::Runtime, batos_runtime::Oid) {
    let rt = batos_mind::Minds::new()
        .attach(batos_runtime::Runtime::builder())
        .primitive("testMethod", method)
        .open(dir.join("image"))
        .expect("opens");
    let pllm = rt.resolve("pLLM").expect("pLLM");
    rt.set_slot(pllm, "backend", "openai".into()).expect("set");
    rt.set_slot(pllm, "baseUrl", server.base_url.clone().into()).expect("set");
    let genesis = rt.resolve("genesis").expect("genesis");
    let native = batos_runtime::Method::Native { primitive: "testMethod".into() };
    rt.set_slot(genesis, selector, batos_runtime::Value::Method(native)).expect("set");
    (rt, genesis)
}

/// `infer` sent to pLLM from inside a method, with the method's first argument.
fn infer_from(
    cx: &mut batos_runtime::Context<'_, '_>,
    call: &batos_runtime::Call<'_>,
) -> batos_runtime::Result<batos_runtime::Value> {
    let pllm =
        cx.tx().root("pLLM")?.ok_or_else(|| batos_runtime::Error::UnknownRoot("pLLM".into()))?;
    cx.send(pllm, "infer", &[call.arg(0)?.clone()])
}

/// The mind is asked outside the transaction, once per send: a send whose transaction
/// conflicts and runs again finds the answer it already has. The stand-in server can
/// answer twice; it must be asked once.
#[test]
fn a_retried_transaction_asks_the_mind_once() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let server = answers_twice("first answer", "second answer");
    let dir = tempfile::tempdir().expect("tempdir");
    let runs = std::sync::Arc::new(AtomicUsize::new(0));
    let counted = runs.clone();
    // A method that thinks, then makes its own transaction conflict once: between its
    // read of `genesis.note` and its commit, another transaction writes that slot.
    let (rt, genesis) = thinking_image(dir.path(), &server, "think:", move |cx, call| {
        let answer = infer_from(cx, call)?;
        let _seen = cx.tx().slot(call.receiver, "note")?;
        if counted.fetch_add(1, Ordering::SeqCst) == 0 {
            cx.image().transact("a write meanwhile", |tx| {
                tx.set_slot(call.receiver, "note", &"written meanwhile".into())
            })?;
        }
        cx.set_slot(call.receiver, "note", &answer)?;
        Ok(answer)
    });
    rt.set_slot(genesis, "note", "initial".into()).expect("set");

    let answer = rt.send(genesis, "think:", vec!["hello".into()]).expect("answers");
    assert_eq!(answer, batos_runtime::Value::Text("first answer".into()));
    assert!(
        runs.load(Ordering::SeqCst) >= 2,
        "the method's transaction ran again after its conflict"
    );
    assert_eq!(server.arrived.try_iter().count(), 1, "the mind was asked once");
    assert_eq!(
        rt.object(genesis).expect("genesis").slots.get("note"),
        Some(&batos_runtime::Value::Text("first answer".into()))
    );
}

/// A method that catches the error of a nested send cannot lose the mind's work: the
/// work waits with the send, the run that swallowed the stop is not committed, and the
/// send runs again with the answer.
#[test]
fn a_method_that_catches_its_sends_errors_still_gets_the_minds_answer() {
    let server = answers_twice("the answer", "asked twice");
    let dir = tempfile::tempdir().expect("tempdir");
    // Any failure of the nested send is forgiven: the method answers nil and records
    // that it did.
    let (rt, genesis) = thinking_image(dir.path(), &server, "listen:", |cx, call| {
        let (heard, answer) = match infer_from(cx, call) {
            Ok(answer) => (answer.clone(), answer),
            Err(_) => (batos_runtime::Value::Text("nothing".into()), batos_runtime::Value::Nil),
        };
        cx.set_slot(call.receiver, "heard", &heard)?;
        Ok(answer)
    });
    let before = rt.image().last_tx();

    let answer = rt.send(genesis, "listen:", vec!["hello".into()]).expect("answers");
    assert_eq!(answer, batos_runtime::Value::Text("the answer".into()));
    assert_eq!(server.arrived.try_iter().count(), 1, "the mind was asked once");
    let heard = rt.object(genesis).expect("genesis").slots.get("heard").cloned();
    assert_eq!(
        heard,
        Some(batos_runtime::Value::Text("the answer".into())),
        "the forgiving run was not committed"
    );
    assert_eq!(
        rt.image().last_tx().map(|t| t.0),
        before.map(|t| t.0 + 1),
        "one transaction for the send"
    );
}

#[test]
fn the_companion_model_is_what_pllm_names_and_none_turns_it_off() {
    let dir = tempfile::tempdir().expect("tempdir");
    let minds = batos_mind::Minds::new();
    let rt = minds
        .attach(batos_runtime::Runtime::builder())
        .open(dir.path().join("image"))
        .expect("opens");
    let pllm = rt.resolve("pLLM").expect("pLLM");
    rt.set_slot(pllm, "backend", "openai".into()).expect("set");
    rt.set_slot(pllm, "model", "first-model".into()).expect("set");
    rt.set_slot(pllm, "baseUrl", "http://127.0.0.1:9/v1".into()).expect("set");
    let companion = |rt: &batos_runtime::Runtime| {
        minds.companion_of(rt).expect("answers").map(|(name, mind)| (name, mind.describe()))
    };
    // A server backend offers no companion of its own.
    assert_eq!(companion(&rt), None);
    for (named, expected) in [
        ("second-model", Some("second-model")),
        ("none", None),
        ("", None),
        ("first-model", None), // the mind itself is no companion
    ] {
        rt.set_slot(pllm, batos_mind::COMPANION_SLOT, named.into()).expect("set");
        let found = companion(&rt);
        assert_eq!(found.as_ref().map(|(name, _)| name.as_str()), expected, "{named}");
        if let Some((name, described)) = found {
            assert!(described.contains(&name), "the companion thinks with {name}: {described}");
        }
    }
    rt.set_slot(pllm, batos_mind::COMPANION_SLOT, batos_runtime::Value::Int(2)).expect("set");
    let refused = minds.companion_of(&rt).map(|_| ()).expect_err("a number names no model");
    assert!(refused.to_string().contains("companionModel"), "{refused}");
}
