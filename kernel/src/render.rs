//! What requests answer, in both representations: text for people (exactly what the
//! command line prints) and JSON for programs (what `--json` prints).

use batos::image::json;
use batos::model::{import, pull};
use batos::sandbox::plugin;
use batos::synthesis::{cycle, Event};
use batos::{Oid, Runtime, TxId, Value};
use batos_protocol::Output;
use serde_json::json;

use crate::Failure;

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
        Event::Text { cycle, round, candidate, text } => {
            format!(
                "cycle {cycle}: round {round} candidate {candidate} writes {} byte(s)",
                text.len()
            )
        }
    }
}

/// A value answered by a send or a set, with the transaction that committed it.
pub fn value_output(value: &Value, tx: Option<TxId>) -> Output {
    let j = json::to_json(value);
    Output { text: j.to_string(), json: json!({ "result": j, "tx": tx.map(|t| t.0) }) }
}

/// A model pulled or imported.
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

/// An installed plugin as JSON.
pub fn installed_json(p: &plugin::Installed) -> serde_json::Value {
    json!({
        "name": p.name, "selector": p.selector, "target": p.target, "description": p.description,
        "component": p.component.hash.to_hex(), "grants": p.grants, "deadline_ms": p.deadline_ms, "origin": p.origin,
    })
}

/// What a sync of the drop-in folder did.
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

/// The image, its last transaction and its roots.
/// What `awaken` says; `created` is whether this awakening created the image.
pub fn awaken(rt: &Runtime, created: bool) -> Result<Output, Failure> {
    let roots = rt.view(|cx| cx.tx().roots())?;
    let path = rt.image().path().display().to_string();
    let verb = if created { "awakened a new image" } else { "resumed the image" };
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
            "image": path, "created": created,
            "last_tx": rt.image().last_tx().map(|t| t.0), "roots": roots_json,
        }),
    })
}

/// An object's parents and slots, now or as of a transaction.
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

/// The newest `limit` transactions.
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

/// `batos cycles`: one line per cycle.
pub fn cycles(rt: &Runtime) -> Result<Output, Failure> {
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
    Ok(Output { text: text.trim_end().to_owned(), json: json!(out) })
}

/// `batos cycle ID`: everything the cycle recorded.
pub fn cycle(rt: &Runtime, id: &str) -> Result<Output, Failure> {
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
    Ok(Output { text: text.trim_end().to_owned(), json: serde_json::Value::Object(map) })
}

/// The model catalogue and the imported models.
pub fn model_list() -> Output {
    let dir = pull::models_dir();
    let mut text = String::new();
    let mut out = Vec::new();
    let installed = import::installed(&dir);
    for e in pull::CATALOGUE {
        let present = installed.iter().any(|(n, _)| n == e.name);
        text.push_str(&format!(
            "{:<40} {:>5} MB  {:<10}  {}\n",
            e.name,
            e.size >> 20,
            if present { "pulled" } else { "not pulled" },
            e.description
        ));
        out.push(json!({ "name": e.name, "size": e.size, "sha256": e.sha256, "present": present, "catalogue": true, "description": e.description }));
    }
    for (name, size) in installed.iter().filter(|(n, _)| pull::entry(n).is_err()) {
        text.push_str(&format!("{name:<40} {:>5} MB  imported\n", size >> 20));
        out.push(json!({ "name": name, "size": size, "present": true, "catalogue": false }));
    }
    Output { text: text.trim_end().to_owned(), json: json!(out) }
}

/// What an ingest did, file by file, with a summary line.
pub fn ingested(reports: &[batos::memory::FileReport]) -> Output {
    use batos::memory::FileOutcome;
    let mut text = String::new();
    let (mut ingested, mut unchanged, mut skipped, mut fractals) = (0, 0, 0, 0);
    let mut files = Vec::new();
    for r in reports {
        let (outcome, detail) = match &r.outcome {
            FileOutcome::Ingested { fractals: n, replaced } => {
                ingested += 1;
                fractals += n;
                let replaced =
                    if *replaced > 0 { format!(", replacing {replaced}") } else { String::new() };
                text.push_str(&format!("ingested  {} ({n} fractals{replaced})\n", r.path));
                ("ingested", json!({"fractals": n, "replaced": replaced}))
            }
            FileOutcome::Unchanged => {
                unchanged += 1;
                ("unchanged", json!(null))
            }
            FileOutcome::Skipped(why) => {
                skipped += 1;
                text.push_str(&format!("skipped   {}: {why}\n", r.path));
                ("skipped", json!(why))
            }
        };
        files.push(json!({"path": r.path, "outcome": outcome, "detail": detail}));
    }
    text.push_str(&format!(
        "{ingested} ingested ({fractals} fractals), {unchanged} unchanged, {skipped} skipped"
    ));
    Output {
        text,
        json: json!({"files": files, "ingested": ingested, "unchanged": unchanged, "skipped": skipped, "fractals": fractals}),
    }
}

/// Passages found, best first: score, source and position, then the text.
pub fn hits(hits: &[batos::memory::Hit]) -> Output {
    let mut text = String::new();
    let mut out = Vec::new();
    for h in hits {
        text.push_str(&format!("{:.4}  {} #{}\n", h.score, h.source, h.position));
        for line in h.text.lines() {
            text.push_str(&format!("  {line}\n"));
        }
        out.push(json!({
            "fractal": h.fractal.0,
            "text": h.text,
            "source": h.source,
            "position": h.position,
            "score": h.score,
            "words_rank": h.words.map(|w| w.0),
            "bm25": h.words.map(|w| w.1),
            "meaning_rank": h.meaning.map(|m| m.0),
            "cosine": h.meaning.map(|m| m.1),
        }));
    }
    if hits.is_empty() {
        text.push_str("nothing found; `batos ingest PATH` adds documents to the memory\n");
    }
    Output { text: text.trim_end().to_owned(), json: serde_json::Value::Array(out) }
}

/// What a compression made: the job, and each concept's first line.
pub fn compressed(rt: &Runtime, done: &batos::memory::Compressed) -> Output {
    let mut text = format!(
        "job {}: {} passage(s) of level {} compressed into {} concept(s) of level {}\n",
        done.job,
        done.inputs,
        done.level,
        done.concepts.len(),
        done.level + 1
    );
    let mut concepts = Vec::new();
    for oid in &done.concepts {
        let body = match rt.view(|cx| cx.tx().slot(*oid, "text")) {
            Ok(Some(Value::Text(t))) => t,
            _ => String::new(),
        };
        text.push_str(&format!("  {oid} {}\n", body.lines().next().unwrap_or_default()));
        concepts.push(json!({"fractal": oid.0, "text": body}));
    }
    Output {
        text: text.trim_end().to_owned(),
        json: json!({"job": done.job.0, "level": done.level, "inputs": done.inputs, "concepts": concepts}),
    }
}

/// A conversation with the personas: each answer under its persona's name, the
/// passages cited, and how the personas were chosen.
pub fn dialogue(d: &batos::composite::Dialogue) -> Output {
    let mut text = String::new();
    for turn in &d.turns {
        text.push_str(&format!("{}: {}\n\n", turn.name, turn.text));
    }
    if !d.sources.is_empty() {
        text.push_str("sources:\n");
        for s in &d.sources {
            let first = s.text.chars().take(100).collect::<String>();
            text.push_str(&format!("  [{}] {} — {first}\n", s.n, s.source));
        }
    }
    if !d.memory_note.is_empty() {
        text.push_str(&format!("({})\n", d.memory_note));
    }
    let routing = &d.decision;
    if routing.forced {
        text.push_str(&format!("({}; asked {} by name)", d.id, routing.chosen.join(", ")));
    } else {
        let scores: Vec<String> =
            routing.total.iter().map(|(k, v)| format!("{k} {v:.2}")).collect();
        text.push_str(&format!(
            "({}; routed as \"{}\": {})",
            d.id,
            routing.archetype,
            scores.join(", ")
        ));
    }
    let turns: Vec<serde_json::Value> = d
        .turns
        .iter()
        .map(|t| json!({"persona": t.persona, "name": t.name, "text": t.text, "tokens": t.tokens, "relevance": t.relevance}))
        .collect();
    let sources: Vec<serde_json::Value> = d
        .sources
        .iter()
        .map(|s| json!({"n": s.n, "source": s.source, "text": s.text, "fractal": s.fractal.0}))
        .collect();
    Output {
        text: text.trim_end().to_owned(),
        json: json!({
            "dialogue": d.id,
            "oid": d.oid.0,
            "question": d.question,
            "turns": turns,
            "sources": sources,
            "memory_note": d.memory_note,
            "routing": json::to_json(&routing.to_value()),
        }),
    }
}

/// The metric now, the beats kept (a line each, with a bar) and the last acts.
pub fn cem(
    settings: &batos::composite::heartbeat::Settings,
    window: &batos::composite::cem::Window,
    now: &batos::composite::cem::Cem,
    beats: &[std::collections::BTreeMap<String, Value>],
    acts: &[std::collections::BTreeMap<String, Value>],
) -> Output {
    let num = |m: &std::collections::BTreeMap<String, Value>, k: &str| match m.get(k) {
        Some(Value::Float(f)) => *f,
        Some(Value::Int(i)) => *i as f64,
        _ => 0.0,
    };
    let bar = |v: f64| "█".repeat((v.clamp(0.0, 1.0) * 20.0).round() as usize);
    let mut text = format!(
        "CEM now {:.3} (H_cog {:.2}, H_sol {:.2}, H_struc {:.2}, H_rel {:.2}) over the last {} s; threshold {:.2}; heartbeat {}\n",
        now.value,
        now.h_cog,
        now.h_sol,
        now.h_struc,
        now.h_rel,
        settings.window_s,
        settings.threshold,
        if settings.enabled { format!("on, every {} s", settings.interval_s) } else { "off".to_owned() }
    );
    if !window.uses.is_empty() {
        let uses: Vec<String> = window.uses.iter().map(|(k, n)| format!("{k} {n}")).collect();
        text.push_str(&format!("persona use: {}\n", uses.join(", ")));
    }
    if beats.is_empty() {
        text.push_str("no beats yet (`batos serve` beats)\n");
    }
    for b in beats {
        let act = match b.get("act") {
            Some(Value::Text(a)) => format!("  acted: {a}"),
            _ => String::new(),
        };
        text.push_str(&format!(
            "beat {:>4}  {:.3} {:<20}{act}\n",
            num(b, "beat") as i64,
            num(b, "cem"),
            bar(num(b, "cem"))
        ));
    }
    for a in acts.iter().rev().take(5) {
        let what = match a.get("what") {
            Some(Value::Text(w)) => w.clone(),
            _ => String::new(),
        };
        text.push_str(&format!("act at beat {}: {what}\n", num(a, "beat") as i64));
    }
    let beats_json: Vec<serde_json::Value> =
        beats.iter().map(|b| json::to_json(&Value::Map(b.clone()))).collect();
    let acts_json: Vec<serde_json::Value> =
        acts.iter().map(|a| json::to_json(&Value::Map(a.clone()))).collect();
    Output {
        text: text.trim_end().to_owned(),
        json: json!({
            "cem": now.value,
            "terms": {"cog": now.h_cog, "sol": now.h_sol, "struc": now.h_struc, "rel": now.h_rel},
            "uses": window.uses,
            "window_seconds": settings.window_s,
            "threshold": settings.threshold,
            "enabled": settings.enabled,
            "beats": beats_json,
            "acts": acts_json,
        }),
    }
}
