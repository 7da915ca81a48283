//! The command line's synthesis face: sends that may start a cycle (shown live on
//! stderr), `batos cycles`, `batos cycle ID`.

use std::path::PathBuf;
use std::sync::Arc;

use batos::image::json;
use batos::sandbox::Sandbox;
use batos::synthesis::{cycle, Event, Example, Language, Options, Request, Synthesizer};
use batos::{Error, Runtime, Value};
use serde_json::json;

/// Where candidates are built: one warm workspace for every image of this user.
pub fn workspace_dir() -> PathBuf {
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    std::env::var_os("BATOS_WORKSPACE")
        .map_or_else(|| home.join(".cache").join("batos").join("synthesis"), PathBuf::from)
}

/// A synthesizer thinking with the mind `pLLM` names (loaded now).
pub fn synthesizer(rt: &Arc<Runtime>, sandbox: &Arc<Sandbox>) -> Result<Synthesizer, Error> {
    let mind = crate::minds::minds().mind_of(rt)?;
    Synthesizer::new(rt.clone(), sandbox.clone(), mind, &workspace_dir(), Options::default())
}

/// One line for a cycle event.
pub fn describe(event: &Event) -> String {
    match event {
        Event::Started { cycle, selector } => {
            format!("cycle {cycle}: nothing understands `{selector}`; synthesising it")
        }
        Event::Joined { cycle } => {
            format!("cycle {cycle} is already synthesising this; waiting for it")
        }
        Event::State { cycle, state, detail } => {
            format!("cycle {cycle}: {} {detail}", state.as_str())
        }
        Event::Attempt { cycle, round, candidate, outcome, detail } => {
            let first = detail.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
            format!(
                "cycle {cycle}: round {round} candidate {candidate} {outcome}{}",
                if first.is_empty() { String::new() } else { format!(" — {first}") }
            )
        }
    }
}

/// Builds the request for a send from the command line's parts.
pub fn request(
    receiver: batos::Oid,
    selector: &str,
    args: Vec<Value>,
    brief: Option<String>,
    examples: &[String],
    stateful: bool,
    wat: bool,
) -> Result<Request, String> {
    let examples = examples.iter().map(|e| Example::parse(e)).collect::<Result<Vec<_>, _>>()?;
    let language = if wat { Language::Wat } else { Language::Rust };
    Ok(Request {
        receiver,
        selector: selector.to_owned(),
        args,
        brief,
        examples,
        stateful,
        language,
        grants: vec![],
    })
}

/// Sends; a message nobody understands starts a cycle (unless `synthesise` is false),
/// its events on stderr when `live`. The mind is loaded only when a cycle starts, and
/// not for a selector no method could have.
pub fn send(
    rt: &Arc<Runtime>,
    sandbox: &Arc<Sandbox>,
    request: &Request,
    synthesise: bool,
    live: bool,
) -> Result<Value, Error> {
    match rt.send(request.receiver, &request.selector, request.args.clone()) {
        Err(e)
            if synthesise
                && batos::synthesis::starts_cycle(request, &e)
                && batos::synthesis::candidate::rust_name(&request.selector).is_some() => {}
        other => return other,
    }
    let synthesizer = synthesizer(rt, sandbox)?;
    synthesizer.send(request, &|e| {
        if live {
            eprintln!("{}", describe(e));
        }
    })
}

/// `batos cycles`: one line per cycle.
pub fn list(rt: &Runtime) -> Result<(String, serde_json::Value), Error> {
    let mut text = String::new();
    let mut out = Vec::new();
    for (id, oid) in cycle::list(rt)? {
        let slots = rt.object(oid)?.slots;
        let get = |k: &str| slots.get(k).map(json::to_json).unwrap_or(serde_json::Value::Null);
        let rounds = match slots.get("attempts") {
            Some(Value::List(a)) => a.len(),
            _ => 0,
        };
        let shown = |k: &str| match slots.get(k) {
            Some(Value::Text(t)) => t.clone(),
            Some(Value::Object(o)) => o.to_string(),
            _ => String::new(),
        };
        text.push_str(&format!(
            "{id:<5} {:<12} {:<24} on {:<5} {rounds} round(s)\n",
            shown("state"),
            shown("selector"),
            shown("receiver")
        ));
        out.push(json!({ "id": id, "state": get("state"), "selector": get("selector"), "receiver": get("receiver"), "rounds": rounds }));
    }
    if text.is_empty() {
        text = "no cycles yet: send a message nothing understands".into();
    }
    Ok((text.trim_end().to_owned(), json!(out)))
}

/// `batos cycle ID`: everything the cycle recorded.
pub fn show(rt: &Runtime, id: &str) -> Result<(String, serde_json::Value), Error> {
    let oid = cycle::find(rt, id)?;
    let slots = rt.object(oid)?.slots;
    let mut text = String::new();
    for key in [
        "id",
        "state",
        "selector",
        "receiver",
        "args",
        "brief",
        "purpose",
        "signature",
        "examples",
        "proposedCases",
        "context",
        "model",
        "method",
        "reason",
        "unconfirmed",
    ] {
        if let Some(v) = slots.get(key) {
            if *v != Value::Nil {
                text.push_str(&format!("{key:<11} {}\n", json::to_json(v)));
            }
        }
    }
    if let Some(Value::List(attempts)) = slots.get("attempts") {
        for a in attempts {
            if let Value::Map(m) = a {
                let field = |k: &str| match m.get(k) {
                    Some(Value::Text(t)) => t.clone(),
                    Some(other) => json::to_json(other).to_string(),
                    None => String::new(),
                };
                text.push_str(&format!(
                    "\nround {}: {}\n{}\n",
                    field("round"),
                    field("outcome"),
                    field("code")
                ));
                if !field("detail").is_empty() {
                    text.push_str(&format!("-- {}\n", field("detail")));
                }
            }
        }
    }
    let map: serde_json::Map<String, serde_json::Value> =
        slots.iter().map(|(k, v)| (k.clone(), json::to_json(v))).collect();
    Ok((text.trim_end().to_owned(), serde_json::Value::Object(map)))
}
