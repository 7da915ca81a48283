//! The synthesis task set (`benches/synthesis_tasks.toml`, 22 small methods: numbers,
//! text, lists, stateful slots, sends to an existing method), each on a fresh image
//! with the embedded model: solved / total, median and p90 wall time per synthesis,
//! median rounds. Run: `cargo bench -p batos --bench synthesis`
//! (`BATOS_TASKS=factorial,isPrime:` runs a subset; `BATOS_ROUNDS=6` changes the
//! rounds per cycle from the default 4).

use std::sync::Arc;
use std::time::Instant;

use batos::image::json;
use batos::sandbox::{plugin, Limits, Sandbox};
use batos::synthesis::{cycle, Options, Request, Synthesizer};
use batos::{Runtime, Value};

#[derive(serde::Deserialize)]
struct TaskSet {
    task: Vec<Task>,
}

#[derive(serde::Deserialize)]
struct Task {
    selector: String,
    args: String,
    expect: String,
    brief: Option<String>,
    #[serde(default)]
    examples: Vec<String>,
    #[serde(default)]
    stateful: bool,
    #[serde(default)]
    calls: Vec<(String, String)>,
    #[serde(default)]
    plugins: Vec<String>,
}

fn values(text: &str) -> Vec<Value> {
    match json::parse(&format!("[{text}]"), &mut |_| Err("no objects".into())) {
        Ok(Value::List(items)) => items,
        other => panic!("bad task values {text}: {other:?}"),
    }
}

fn value(text: &str) -> Value {
    json::parse(text, &mut |_| Err("no objects".into()))
        .unwrap_or_else(|e| panic!("bad task value {text}: {e}"))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    if std::env::args().all(|a| a != "--bench") {
        println!("synthesis benchmark: skipped outside `cargo bench` (it runs the real model)");
        return;
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let set: TaskSet = toml::from_str(
        &std::fs::read_to_string(root.join("benches").join("synthesis_tasks.toml"))
            .expect("task file"),
    )
    .expect("task TOML");
    let only: Option<Vec<String>> =
        std::env::var("BATOS_TASKS").ok().map(|s| s.split(',').map(str::to_owned).collect());
    batos::model::pull::pull(
        batos::model::pull::CATALOGUE[0].name,
        &batos::model::pull::models_dir(),
        &mut batos::model::pull::Quiet,
    )
    .expect("model");
    let workspace = tempfile::tempdir().expect("workspace");
    let (mut solved, mut total) = (0, 0);
    let (mut times, mut rounds) = (Vec::new(), Vec::new());
    for task in set.task.iter().filter(|t| only.as_ref().is_none_or(|o| o.contains(&t.selector))) {
        total += 1;
        let dir = tempfile::tempdir().expect("image dir");
        let sandbox = Arc::new(Sandbox::new(Limits::default()).expect("sandbox"));
        let minds = batos::minds();
        let rt = Arc::new(
            minds
                .attach(Runtime::builder())
                .component_runner(sandbox.clone())
                .open(dir.path().join("image"))
                .expect("image"),
        );
        for p in &task.plugins {
            plugin::add(&rt, &sandbox, &root.join("..").join("plugins").join(p)).expect("plugin");
        }
        let genesis = rt.resolve("genesis").expect("genesis");
        let mind = minds.mind_of(&rt).expect("mind");
        let mut options = Options::default();
        if let Some(rounds) = std::env::var("BATOS_ROUNDS").ok().and_then(|r| r.parse().ok()) {
            options.max_rounds = rounds;
        }
        let synthesizer =
            Synthesizer::new(rt.clone(), sandbox.clone(), mind, workspace.path(), options)
                .expect("synthesizer");
        let mut request = Request::new(genesis, &task.selector, values(&task.args));
        request.brief = task.brief.clone();
        request.stateful = task.stateful;
        request.examples = task
            .examples
            .iter()
            .map(|e| batos::synthesis::Example::parse(e).expect("example"))
            .collect();
        let started = Instant::now();
        let first = synthesizer.send(&request, &|_| {});
        let seconds = started.elapsed().as_secs_f64();
        let mut ok = matches!(&first, Ok(v) if *v == value(&task.expect));
        for (args, expect) in &task.calls {
            ok &= rt.send(genesis, &task.selector, values(args)).is_ok_and(|v| v == value(expect));
        }
        let attempts = cycle::list(&rt)
            .ok()
            .and_then(|cycles| cycles.first().map(|(_, oid)| *oid))
            .and_then(|oid| rt.object(oid).ok())
            .and_then(|o| match o.slots.get("attempts") {
                Some(Value::List(a)) => Some(a.len()),
                _ => None,
            })
            .unwrap_or(0);
        let shown = match &first {
            Ok(v) => json::to_json(v).to_string(),
            Err(e) => e.to_string().chars().take(100).collect(),
        };
        println!(
            "{:<4} {:<22} {seconds:>6.1} s  {attempts} round(s)  → {shown}",
            if ok { "ok" } else { "FAIL" },
            task.selector
        );
        if ok {
            solved += 1;
        }
        times.push(seconds);
        rounds.push(attempts as f64);
    }
    times.sort_by(f64::total_cmp);
    rounds.sort_by(f64::total_cmp);
    println!("solved {solved}/{total} ({:.0}%)", 100.0 * solved as f64 / total.max(1) as f64);
    println!(
        "wall time per synthesis: median {:.1} s, p90 {:.1} s",
        percentile(&times, 0.5),
        percentile(&times, 0.9)
    );
    println!("repair rounds: median {}", percentile(&rounds, 0.5));
}
