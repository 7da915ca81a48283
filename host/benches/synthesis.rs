//! The synthesis benchmark, one run, every catalogued model (or `BATOS_BENCH_MODELS`):
//!
//! - the task set (`benches/synthesis_tasks.toml`, 22 small methods: numbers, text,
//!   lists, stateful slots, sends to an existing method), each on a fresh image;
//! - MBPP in batos values (`../shared/benchmarks/mbpp-rs.batos.jsonl`, read where it
//!   lies): each problem on a fresh image, the brief and the one example given as a user
//!   gives them, the hidden cases checked after installation by a fresh awakening of the
//!   image; beside it the anchor: the raw model asked once, greedily, for the plain Rust
//!   function, compiled natively and run on the same hidden cases.
//!
//! Reports solved %, median and p90 wall time, and candidates and rounds per task.
//! Run: `cargo bench -p batos --bench synthesis`. Knobs: `BATOS_TASKS=factorial,isPrime:`
//! (a subset of the task set; `none` for none), `BATOS_MBPP=30` (that many problems
//! spread over the set; `all` for all 298; `0` for none; default 30), `BATOS_ROUNDS`,
//! `BATOS_CANDIDATES`, `BATOS_SECOND_OPINION=1` (with the caller's examples, wait for a
//! second candidate agreeing with the first, see `Options::second_opinion`),
//! `BATOS_BENCH_SERVER=http://127.0.0.1:8765/v1` to think
//! through an OpenAI-compatible server (see `scripts/bench-server.sh`) instead of in
//! process, and `BATOS_CRUCIBLE=1` to run the task set a second time with the Alchemical
//! Crucible on (BRICK and ALFRED, on the same model, reviewing every candidate that
//! passes), reported beside the run without it. `BATOS_BENCH_COMPANION=MODEL` likewise
//! runs the task set a second time for every other model with MODEL as its companion
//! (every second candidate written by it, see `Synthesizer::with_companion`); otherwise
//! each model thinks alone, whatever else is pulled.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use batos::image::json;
use batos::sandbox::{plugin, Limits, Sandbox};
use batos::synthesis::{cycle, Example, Options, Request, Synthesizer};
use batos::{Runtime, Value};

#[path = "synthesis/anchor.rs"]
mod anchor;
#[path = "synthesis/mbpp.rs"]
mod mbpp;

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

/// Whether `got` is `expected`, floats within a relative 1e-6 (and integers equal to
/// floats of their value: MBPP's answers are numbers, not Rust types).
pub fn close(got: &Value, expected: &Value) -> bool {
    let number = |v: &Value| match v {
        Value::Int(n) => Some(*n as f64),
        Value::Float(f) => Some(*f),
        _ => None,
    };
    match (got, expected) {
        (Value::List(a), Value::List(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| close(x, y))
        }
        (a, b) => match (number(a), number(b)) {
            (Some(x), Some(y)) => (x - y).abs() <= 1e-6 * y.abs().max(1.0),
            _ => a == b,
        },
    }
}

/// What the mind did for one task.
#[derive(Default, Clone, Copy)]
struct Thought {
    /// Seconds spent in the mind.
    seconds: f64,
    /// Prompt tokens, over every request.
    prompt: usize,
    /// Of those, the tokens a kept prompt cache saved prefilling.
    reused: usize,
    /// Tokens generated.
    generated: usize,
}

impl Thought {
    fn shown(&self) -> String {
        format!(
            "mind {:.1} s, prompt {} tok ({} reused), {} generated",
            self.seconds, self.prompt, self.reused, self.generated
        )
    }
}

/// One task's result.
struct Run {
    solved: bool,
    seconds: f64,
    candidates: usize,
    rounds: usize,
    /// Candidates the crucible sent back.
    sent_back: usize,
    /// The mind's share of it.
    thought: Thought,
}

fn summary(label: &str, runs: &[Run]) {
    if runs.is_empty() {
        return;
    }
    let solved = runs.iter().filter(|r| r.solved).count();
    let sorted = |f: &dyn Fn(&Run) -> f64| {
        let mut v: Vec<f64> = runs.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v
    };
    let times = sorted(&|r| r.seconds);
    let sent_back: usize = runs.iter().map(|r| r.sent_back).sum();
    println!(
        "  {label:<34} solved {solved}/{} ({:.0}%), wall time median {:.1} s p90 {:.1} s, candidates median {} p90 {}, rounds median {}, sent back {sent_back}",
        runs.len(),
        100.0 * solved as f64 / runs.len() as f64,
        percentile(&times, 0.5),
        percentile(&times, 0.9),
        percentile(&sorted(&|r| r.candidates as f64), 0.5),
        percentile(&sorted(&|r| r.candidates as f64), 0.9),
        percentile(&sorted(&|r| r.rounds as f64), 0.5),
    );
    let total = |f: &dyn Fn(&Thought) -> f64| runs.iter().map(|r| f(&r.thought)).sum::<f64>();
    let (mind, wall) = (total(&|t| t.seconds), runs.iter().map(|r| r.seconds).sum::<f64>());
    if mind > 0.0 {
        println!(
            "  {:<34} the mind {:.0}% of the wall time; prompt tokens {:.0} a task, {:.0}% of them reused; {:.0} generated a task",
            "",
            100.0 * mind / wall,
            total(&|t| t.prompt as f64) / runs.len() as f64,
            100.0 * total(&|t| t.reused as f64) / total(&|t| t.prompt as f64).max(1.0),
            total(&|t| t.generated as f64) / runs.len() as f64,
        );
    }
}

/// The companion `BATOS_BENCH_COMPANION` names for `model`, if any.
fn companion_for(model: &str) -> Option<String> {
    std::env::var("BATOS_BENCH_COMPANION").ok().filter(|c| !c.is_empty() && c != model)
}

/// Set while the task set runs with the companion.
static PAIRED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A fresh image thinking with `model` (in process, or through `server`).
fn fresh(dir: &Path, model: &str, server: Option<&str>) -> (Arc<Runtime>, Arc<Sandbox>) {
    let sandbox = Arc::new(Sandbox::new(Limits::default()).expect("sandbox"));
    let rt = Arc::new(
        batos::composite::attach(minds().attach(Runtime::builder()))
            .component_runner(sandbox.clone())
            .open(dir.join("image"))
            .expect("image"),
    );
    let pllm = rt.resolve("pLLM").expect("pLLM");
    // Each model alone unless the companion knob pairs it (the image would otherwise
    // take any other pulled model as its companion).
    let companion = companion_for(model)
        .filter(|_| PAIRED.load(std::sync::atomic::Ordering::SeqCst))
        .unwrap_or_else(|| "none".to_owned());
    let mut slots = vec![
        ("model", Value::Text(model.to_owned())),
        (batos::mind::COMPANION_SLOT, Value::Text(companion)),
    ];
    if let Some(url) = server {
        slots.push(("backend", Value::Text("openai".into())));
        slots.push(("baseUrl", Value::Text(url.to_owned())));
    }
    rt.transact("bench: the mind", |cx| {
        for (slot, value) in &slots {
            cx.set_slot(pllm, slot, value)?;
        }
        Ok(())
    })
    .expect("pLLM slots");
    (rt, sandbox)
}

/// One set of minds for the whole run, so each model is loaded once.
fn minds() -> &'static batos::mind::Minds {
    static MINDS: std::sync::OnceLock<batos::mind::Minds> = std::sync::OnceLock::new();
    MINDS.get_or_init(batos::minds)
}

/// Whether this pass reviews candidates in the crucible.
static CRUCIBLE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn options() -> Options {
    let mut options = Options::default();
    let knob = |name: &str| std::env::var(name).ok().and_then(|r| r.parse().ok());
    if let Some(rounds) = knob("BATOS_ROUNDS") {
        options.max_rounds = rounds;
    }
    if let Some(candidates) = knob("BATOS_CANDIDATES") {
        options.candidates = candidates;
    }
    options.second_opinion = std::env::var("BATOS_SECOND_OPINION").is_ok_and(|v| v == "1");
    options
}

/// Synthesises `request`; answers the first answer, the seconds, candidates and rounds.
fn synthesize(
    rt: &Arc<Runtime>,
    sandbox: &Arc<Sandbox>,
    workspace: &Path,
    request: &Request,
) -> (batos::Result<Value>, Run) {
    let mind = minds().mind_of(rt).expect("mind");
    let mut options = options();
    if CRUCIBLE.load(std::sync::atomic::Ordering::SeqCst) {
        options.crucible = Some(Arc::new(batos::composite::crucible::PersonaCritic::new(
            rt.clone(),
            minds().clone(),
        )));
    }
    let sent_back = |rt: &Runtime| -> usize {
        cycle::list(rt)
            .ok()
            .and_then(|c| c.first().map(|(_, oid)| *oid))
            .and_then(|oid| rt.object(oid).ok())
            .and_then(|o| match o.slots.get("attempts") {
                Some(Value::List(a)) => Some(
                    a.iter()
                        .filter(|a| matches!(a, Value::Map(m) if m.get("outcome") == Some(&Value::Text("sent_back".into()))))
                        .count(),
                ),
                _ => None,
            })
            .unwrap_or(0)
    };
    let companion = minds().companion_of(rt).expect("companion").map(|(_, mind)| mind);
    let synthesizer = Synthesizer::new(rt.clone(), sandbox.clone(), mind, workspace, options)
        .expect("synthesizer")
        .with_companion(companion);
    let started = Instant::now();
    let first = synthesizer.send(request, &|_| {});
    let seconds = started.elapsed().as_secs_f64();
    let attempts: Vec<Value> = cycle::list(rt)
        .ok()
        .and_then(|cycles| cycles.first().map(|(_, oid)| *oid))
        .and_then(|oid| rt.object(oid).ok())
        .and_then(|o| match o.slots.get("attempts") {
            Some(Value::List(a)) => Some(a.clone()),
            _ => None,
        })
        .unwrap_or_default();
    // Where the time went, from the journal's mind events: thinking against building
    // and proving, and how much of each prompt a kept prompt cache saved prefilling.
    let mut thought = Thought::default();
    for event in batos::synthesis::journal::Journal::new(rt.image().path()).read() {
        if event["event"] == "mind" {
            let count = |k: &str| event[k].as_u64().unwrap_or(0) as usize;
            thought.seconds += event["duration_ms"].as_f64().unwrap_or(0.0) / 1000.0;
            thought.prompt += count("prompt_tokens");
            thought.reused += count("cached_tokens");
            thought.generated += count("completion_tokens");
        }
    }
    let rounds = attempts
        .iter()
        .filter_map(|a| match a {
            Value::Map(m) => match m.get("round") {
                Some(Value::Int(r)) => Some(*r as usize),
                _ => None,
            },
            _ => None,
        })
        .max()
        .unwrap_or(0);
    (
        first,
        Run {
            solved: false,
            seconds,
            candidates: attempts.len(),
            rounds,
            sent_back: sent_back(rt),
            thought,
        },
    )
}

fn shown(result: &batos::Result<Value>) -> String {
    match result {
        Ok(v) => json::to_json(v).to_string().chars().take(60).collect(),
        Err(e) => e.to_string().chars().take(100).collect(),
    }
}

fn task_set(root: &Path, model: &str, server: Option<&str>, workspace: &Path) -> Vec<Run> {
    let set: TaskSet = toml::from_str(
        &std::fs::read_to_string(root.join("benches").join("synthesis_tasks.toml"))
            .expect("task file"),
    )
    .expect("task TOML");
    let only: Option<Vec<String>> =
        std::env::var("BATOS_TASKS").ok().map(|s| s.split(',').map(str::to_owned).collect());
    let mut runs = Vec::new();
    for task in set.task.iter().filter(|t| only.as_ref().is_none_or(|o| o.contains(&t.selector))) {
        let dir = tempfile::tempdir().expect("image dir");
        let (rt, sandbox) = fresh(dir.path(), model, server);
        for p in &task.plugins {
            plugin::add(&rt, &sandbox, &root.join("..").join("plugins").join(p)).expect("plugin");
        }
        let genesis = rt.resolve("genesis").expect("genesis");
        let mut request = Request::new(genesis, &task.selector, values(&task.args));
        request.brief = task.brief.clone();
        request.stateful = task.stateful;
        request.examples =
            task.examples.iter().map(|e| Example::parse(e).expect("example")).collect();
        let (first, mut run) = synthesize(&rt, &sandbox, workspace, &request);
        let mut ok = matches!(&first, Ok(v) if *v == value(&task.expect));
        for (args, expect) in &task.calls {
            ok &= rt.send(genesis, &task.selector, values(args)).is_ok_and(|v| v == value(expect));
        }
        run.solved = ok;
        println!(
            "    {:<4} {:<24} {:>6.1} s  {} candidate(s), {} round(s), {}  → {}",
            if ok { "ok" } else { "FAIL" },
            task.selector,
            run.seconds,
            run.candidates,
            run.rounds,
            run.thought.shown(),
            shown(&first)
        );
        runs.push(run);
    }
    runs
}

fn mbpp(model: &str, server: Option<&str>, workspace: &Path) -> (Vec<Run>, Vec<Run>) {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/benchmarks/mbpp-rs.batos.jsonl");
    let count = match std::env::var("BATOS_MBPP").ok().as_deref() {
        Some("all") => None,
        Some(n) => Some(n.parse().unwrap_or(30)),
        None => Some(30),
    };
    if count == Some(0) {
        return (vec![], vec![]);
    }
    let Some(problems) = mbpp::load(&path) else {
        println!("  MBPP: {} is not there; skipped", path.display());
        return (vec![], vec![]);
    };
    let (mut ours, mut anchors) = (Vec::new(), Vec::new());
    for problem in mbpp::sample(problems, count) {
        let dir = tempfile::tempdir().expect("image dir");
        let (rt, sandbox) = fresh(dir.path(), model, server);
        let genesis = rt.resolve("genesis").expect("genesis");
        let args = problem.examples.first().map(|(a, _)| a.clone()).unwrap_or_default();
        let mut request = Request::new(genesis, &problem.selector, args);
        request.brief = Some(problem.brief.clone());
        request.examples = problem
            .examples
            .iter()
            .map(|(args, expected)| Example { args: args.clone(), expected: expected.clone() })
            .collect();
        let (first, mut run) = synthesize(&rt, &sandbox, workspace, &request);
        let mind = minds().mind_of(&rt).expect("mind");
        drop((rt, sandbox));
        // The hidden cases, by a fresh awakening of the image: what a new process sees.
        let (rt, _sandbox) = fresh(dir.path(), model, server);
        run.solved = first.is_ok()
            && problem.cases.iter().all(|(args, expect)| {
                rt.send(genesis, &problem.selector, args.clone())
                    .is_ok_and(|got| close(&got, expect))
            });
        let anchor = anchor::run(mind.as_ref(), &problem, dir.path());
        println!(
            "    {:<4} {:<44} {:>6.1} s  {} candidate(s), {} round(s), {}   anchor {:<4} {:>5.1} s",
            if run.solved { "ok" } else { "FAIL" },
            problem.name,
            run.seconds,
            run.candidates,
            run.rounds,
            run.thought.shown(),
            if anchor.solved { "ok" } else { "FAIL" },
            anchor.seconds
        );
        ours.push(run);
        anchors.push(Run {
            solved: anchor.solved,
            seconds: anchor.seconds,
            candidates: 1,
            rounds: 1,
            sent_back: 0,
            thought: Thought::default(),
        });
    }
    (ours, anchors)
}

fn main() {
    if std::env::args().all(|a| a != "--bench") {
        println!("synthesis benchmark: skipped outside `cargo bench` (it runs the real models)");
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let models: Vec<String> = match std::env::var("BATOS_BENCH_MODELS") {
        Ok(list) => list.split(',').map(str::to_owned).collect(),
        Err(_) => batos::model::pull::CATALOGUE.iter().map(|e| e.name.to_owned()).collect(),
    };
    let server = std::env::var("BATOS_BENCH_SERVER").ok();
    let workspace = tempfile::tempdir().expect("workspace");
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut results = Vec::new();
    for model in &models {
        if server.is_none() {
            batos::model::pull::pull(
                model,
                &batos::model::pull::models_dir(),
                &mut batos::model::pull::Quiet,
            )
            .expect("model");
        }
        let how = server.as_deref().map_or("in process".to_owned(), |s| format!("through {s}"));
        println!("{model} ({how}, {threads} cores)");
        println!("  the task set");
        let own = if std::env::var("BATOS_TASKS").as_deref() == Ok("none") {
            vec![]
        } else {
            task_set(root, model, server.as_deref(), workspace.path())
        };
        let crucible = if std::env::var("BATOS_CRUCIBLE").as_deref() == Ok("1")
            && std::env::var("BATOS_TASKS").as_deref() != Ok("none")
        {
            println!("  the task set with the crucible (BRICK and ALFRED review)");
            CRUCIBLE.store(true, std::sync::atomic::Ordering::SeqCst);
            let runs = task_set(root, model, server.as_deref(), workspace.path());
            CRUCIBLE.store(false, std::sync::atomic::Ordering::SeqCst);
            runs
        } else {
            vec![]
        };
        let paired = match companion_for(model) {
            Some(companion) if std::env::var("BATOS_TASKS").as_deref() != Ok("none") => {
                batos::model::pull::pull(
                    &companion,
                    &batos::model::pull::models_dir(),
                    &mut batos::model::pull::Quiet,
                )
                .expect("the companion model pulls");
                println!("  the task set with {companion} writing every second candidate");
                PAIRED.store(true, std::sync::atomic::Ordering::SeqCst);
                let runs = task_set(root, model, server.as_deref(), workspace.path());
                PAIRED.store(false, std::sync::atomic::Ordering::SeqCst);
                runs
            }
            _ => vec![],
        };
        println!("  MBPP (batos, then the anchor: the raw model once, greedy, native)");
        let (ours, anchors) = mbpp(model, server.as_deref(), workspace.path());
        results.push((model.clone(), own, crucible, paired, ours, anchors));
    }
    println!("\nsummary ({threads} cores)");
    for (model, own, crucible, paired, ours, anchors) in &results {
        println!("{model}");
        summary("task set, batos", own);
        summary("task set, batos with the crucible", crucible);
        summary("task set, batos with the companion", paired);
        summary("MBPP, batos", ours);
        summary("MBPP, anchor (raw model, 1 shot)", anchors);
        if !ours.is_empty() {
            let rate = |runs: &[Run]| {
                100.0 * runs.iter().filter(|r| r.solved).count() as f64 / runs.len() as f64
            };
            println!("  MBPP: batos {:+.0} points over the anchor", rate(ours) - rate(anchors));
        }
    }
}
