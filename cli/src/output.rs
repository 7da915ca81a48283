//! What commands answer: text for people, JSON for scripts, and errors with their
//! stable kind.

use batos::image::json;
use batos::model::import;
use batos::sandbox::plugin;
use batos::{Oid, Runtime, TxId, Value};
use serde_json::json;

/// An error with the kind that `--json` reports.
pub struct Failure {
    pub kind: &'static str,
    /// For `not_found`: what was not found (`object`, `plugin`, `cycle`, `model`, …).
    pub what: Option<&'static str>,
    pub message: String,
    /// For `needs_grant`: the grants the method needs, for the session to ask about.
    pub grants: Vec<String>,
}

impl From<batos::Error> for Failure {
    fn from(e: batos::Error) -> Self {
        let mut message = e.to_string();
        match &e {
            batos::Error::NeedsExample { .. } => message.push_str(
                ": send it again with --example 'ARGS => RESULT' (e.g. --example '10 => 55')",
            ),
            batos::Error::NeedsGrant { grants, .. } => message.push_str(&format!(
                ": send it again with {}",
                grants.iter().map(|g| format!("--grant {g}")).collect::<Vec<_>>().join(" ")
            )),
            _ => {}
        }
        let grants = match &e {
            batos::Error::NeedsGrant { grants, .. } => grants.clone(),
            _ => Vec::new(),
        };
        Failure { kind: e.kind(), what: e.subject(), message, grants }
    }
}

pub fn bad_input(message: String) -> Failure {
    Failure { kind: "bad_input", what: None, message, grants: vec![] }
}

/// A command's answer: text for people, JSON for `--json`.
pub struct Output {
    /// For people.
    pub text: String,
    /// For scripts.
    pub json: serde_json::Value,
}

pub fn value_output(value: &Value, tx: Option<TxId>) -> Output {
    let j = json::to_json(value);
    Output { text: j.to_string(), json: json!({ "result": j, "tx": tx.map(|t| t.0) }) }
}

pub fn imported_output(model: &import::Imported) -> Output {
    Output {
        text: format!(
            "{} is ready ({}; ONNX export {})",
            model.name,
            model.gguf.display(),
            model.onnx.display()
        ),
        json: json!({ "name": model.name, "path": model.gguf.display().to_string(), "onnx": model.onnx.display().to_string(), "blake3": model.key }),
    }
}

pub fn installed_json(p: &plugin::Installed) -> serde_json::Value {
    json!({
        "name": p.name, "selector": p.selector, "target": p.target, "description": p.description,
        "component": p.component.hash.to_hex(), "grants": p.grants, "deadline_ms": p.deadline_ms, "origin": p.origin,
    })
}

pub fn sync_output(report: &batos::sandbox::watch::SyncReport) -> Output {
    let mut text = String::new();
    for name in &report.installed {
        text.push_str(&format!("installed {name}\n"));
    }
    for name in &report.removed {
        text.push_str(&format!("removed {name}\n"));
    }
    for (path, why) in &report.refused {
        text.push_str(&format!("refused {}: {why}\n", path.display()));
    }
    if text.is_empty() {
        text.push_str("the drop-in folder and the installed plugins already agree");
    }
    let refused: Vec<_> = report
        .refused
        .iter()
        .map(|(p, w)| json!({ "path": p.display().to_string(), "reason": w }))
        .collect();
    Output {
        text: text.trim_end().to_owned(),
        json: json!({ "installed": report.installed, "removed": report.removed, "refused": refused }),
    }
}

pub fn awaken(rt: &Runtime) -> Result<Output, Failure> {
    let roots = rt.view(|cx| cx.tx().roots())?;
    let path = rt.image().path().display().to_string();
    let verb = if rt.created() { "awakened a new image" } else { "resumed the image" };
    let mut text = format!("{verb} at {path}");
    if let Some(last) = rt.image().last_tx() {
        text.push_str(&format!(" (last transaction {last})"));
    }
    text.push_str("\nroots:");
    for (name, oid) in &roots {
        text.push_str(&format!("\n  {name:<10} {oid}"));
    }
    let roots_json: serde_json::Map<_, _> =
        roots.iter().map(|(k, v)| (k.clone(), json!(v.0))).collect();
    Ok(Output {
        text,
        json: json!({
            "image": path, "created": rt.created(),
            "last_tx": rt.image().last_tx().map(|t| t.0), "roots": roots_json,
        }),
    })
}

pub fn inspect(rt: &Runtime, obj: &str, at: Option<TxId>) -> Result<Output, Failure> {
    let oid = rt.resolve(obj).or_else(|e| match (at, obj.parse::<Oid>()) {
        // An object that no longer exists can still be seen as of the past.
        (Some(_), Ok(oid)) => Ok(oid),
        _ => Err(e),
    })?;
    let roots = rt.view(|cx| cx.tx().roots())?;
    let name_of = |o: &Oid| roots.iter().find(|(_, v)| *v == o).map(|(k, _)| k.clone());
    let (parents, slots) = match at {
        Some(tx) => {
            let then = rt.image().object_at(oid, tx)?;
            (then.parents, then.slots)
        }
        None => {
            let now = rt.object(oid)?;
            (now.parents, now.slots)
        }
    };
    let mut text = match name_of(&oid) {
        Some(name) => format!("{name} {oid}"),
        None => oid.to_string(),
    };
    if let Some(tx) = at {
        text.push_str(&format!(" as of transaction {tx}"));
    }
    let shown: Vec<String> = parents
        .iter()
        .map(|p| match name_of(p) {
            Some(n) => format!("{p} ({n})"),
            None => p.to_string(),
        })
        .collect();
    text.push_str(&format!(
        "\nparents: {}",
        if shown.is_empty() { "none".into() } else { shown.join(", ") }
    ));
    text.push_str("\nslots:");
    for (name, value) in &slots {
        text.push_str(&format!("\n  {name} = {}", json::to_json(value)));
    }
    let slots_json: serde_json::Map<_, _> =
        slots.iter().map(|(k, v)| (k.clone(), json::to_json(v))).collect();
    Ok(Output {
        text,
        json: json!({
            "oid": oid.0, "name": name_of(&oid), "at": at.map(|t| t.0),
            "parents": parents.iter().map(|p| p.0).collect::<Vec<_>>(), "slots": slots_json,
        }),
    })
}

pub fn history(rt: &Runtime, limit: usize) -> Result<Output, Failure> {
    let entries = rt.image().history(limit)?;
    let mut text = String::new();
    let mut out = Vec::new();
    for e in &entries {
        let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(e.time_ms);
        let when = humantime::format_rfc3339_seconds(time);
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(&format!("{:>6}  {when}  {}", e.tx, e.description));
        for change in &e.changes {
            text.push_str(&format!("\n        {change}"));
        }
        out.push(json!({
            "tx": e.tx.0, "time": when.to_string(), "description": e.description, "changes": e.changes,
        }));
    }
    if text.is_empty() {
        text.push_str("no transactions yet");
    }
    Ok(Output { text, json: json!(out) })
}
