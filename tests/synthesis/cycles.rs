//! The synthesis cycle with a scripted test-double mind (`ScriptedTestMind`: it answers
//! from a script and records what it was asked): success and survival across restart,
//! repair after a compile error and after a failing example, exhaustion and refusals
//! with nothing installed, one cycle for concurrent sends, and a stateful method.

use std::sync::{mpsc, Arc, Mutex};

use batos_mind::{Completion, Message, Mind, MindError, Sampling};

use crate::scripted_mind::ScriptedTestMind;
use batos_runtime::{Error, Oid, Runtime, Value};
use batos_sandbox::{Limits, Sandbox};
use batos_synthesis::cycle::{self, State};
use batos_synthesis::{skills, Event, Example, Options, Request, Synthesizer};

struct World {
    dir: tempfile::TempDir,
    rt: Arc<Runtime>,
    sandbox: Arc<Sandbox>,
    genesis: Oid,
}

fn world_at(dir: tempfile::TempDir) -> World {
    let sandbox = Arc::new(Sandbox::new(Limits::default()).expect("sandbox"));
    let rt = Arc::new(
        Runtime::builder()
            .component_runner(sandbox.clone())
            .open(dir.path().join("image"))
            .expect("image"),
    );
    let genesis = rt.resolve("genesis").expect("genesis");
    World { dir, rt, sandbox, genesis }
}

fn world() -> World {
    world_at(tempfile::tempdir().expect("tempdir"))
}

impl World {
    /// One candidate a round, so that a script reads as the rounds of a cycle.
    fn synthesizer(&self, mind: Arc<ScriptedTestMind>) -> Synthesizer {
        self.synthesizer_with(mind, Options { candidates: 1, ..Options::default() })
    }
    fn synthesizer_with(&self, mind: Arc<ScriptedTestMind>, options: Options) -> Synthesizer {
        Synthesizer::new(
            self.rt.clone(),
            self.sandbox.clone(),
            mind,
            &self.dir.path().join("workspace"),
            options,
        )
        .expect("synthesizer")
    }
    fn restart(self) -> World {
        let World { dir, rt, sandbox, .. } = self;
        drop((rt, sandbox));
        world_at(dir)
    }
    fn cycle_slots(&self, id: &str) -> std::collections::BTreeMap<String, Value> {
        self.rt.object(cycle::find(&self.rt, id).expect("cycle")).expect("object").slots
    }
    fn outcomes(&self, id: &str) -> Vec<String> {
        let Some(Value::List(attempts)) = self.cycle_slots(id).get("attempts").cloned() else {
            return vec![];
        };
        attempts
            .into_iter()
            .filter_map(|a| match a {
                Value::Map(m) => match m.get("outcome") {
                    Some(Value::Text(t)) => Some(t.clone()),
                    _ => None,
                },
                _ => None,
            })
            .collect()
    }
}

fn code(body: &str) -> String {
    format!("Here it is:\n```rust\n{body}\n```")
}

fn quiet(_: &Event) {}

/// Events as they happen, for a test to wait on in order.
struct EventLog(Mutex<mpsc::Sender<Event>>);

impl EventLog {
    fn new() -> (EventLog, mpsc::Receiver<Event>) {
        let (tx, rx) = mpsc::channel();
        (EventLog(Mutex::new(tx)), rx)
    }
    fn record(&self, event: &Event) {
        let _ = self.0.lock().expect("events").send(event.clone());
    }
}

/// `double:` sent with 21 (the example 3 => 6) and with 4: two sends of one selector.
fn two_sends_of_double(w: &World) -> (Request, Request) {
    let request = double_request(w);
    let mut other = request.clone();
    other.args = vec![Value::Int(4)];
    (request, other)
}

fn double_request(w: &World) -> Request {
    let mut r = Request::new(w.genesis, "double:", vec![Value::Int(21)]);
    r.examples = vec![Example::parse("3 => 6").expect("example")];
    r
}

#[test]
fn a_synthesised_method_is_installed_and_survives_restart_without_the_mind() {
    let w = world();
    let mind = ScriptedTestMind::new(&[&code("fn double(a: i64) -> i64 {\n    a * 2\n}")]);
    let events = Mutex::new(Vec::new());
    let answer = w
        .synthesizer(mind.clone())
        .send(&double_request(&w), &|e| events.lock().expect("events").push(e.clone()))
        .expect("synthesised");
    assert_eq!(answer, Value::Int(42));
    assert_eq!(mind.calls(), 1, "examples were given, so the mind was asked for code only");
    assert!(
        mind.last_prompt().contains("fn double(a: i64) -> i64")
            && mind.last_prompt().contains("double(3) == 6"),
        "{}",
        mind.last_prompt()
    );

    let states: Vec<State> = events
        .lock()
        .expect("events")
        .iter()
        .filter_map(|e| if let Event::State { state, .. } = e { Some(*state) } else { None })
        .collect();
    assert_eq!(
        states,
        [
            State::Decomposing,
            State::Delegating,
            State::Synthesizing,
            State::Validating,
            State::Complete
        ]
    );
    let slots = w.cycle_slots("c1");
    assert_eq!(slots.get("state"), Some(&Value::Text("COMPLETE".into())));
    assert_eq!(slots.get("signature"), Some(&Value::Text("fn double(a: i64) -> i64".into())));
    assert_eq!(w.outcomes("c1"), ["passed"]);
    assert!(
        cycle::recover(&w.rt).expect("recover").is_empty(),
        "a completed cycle is no longer unfinished"
    );
    let library = skills::all(&w.rt).expect("skills");
    assert!(
        library.iter().any(|s| s.selector == "double:" && s.source.contains("a * 2")),
        "{library:?}"
    );
    let journal = std::fs::read_to_string(w.dir.path().join("image").join("metacognition.jsonl"))
        .expect("journal");
    assert!(
        journal.lines().any(|l| l.contains("\"COMPLETE\"")) && journal.contains("brief_blake3"),
        "{journal}"
    );

    let w = w.restart();
    assert_eq!(
        w.rt.send(w.genesis, "double:", vec![Value::Int(5)]).expect("understood after restart"),
        Value::Int(10)
    );
    let silent = ScriptedTestMind::new(&[]);
    assert_eq!(
        w.synthesizer(silent.clone())
            .send(&Request::new(w.genesis, "double:", vec![Value::Int(8)]), &quiet)
            .expect("sends"),
        Value::Int(16)
    );
    assert_eq!(silent.calls(), 0, "no mind call for an understood message");
}

#[test]
fn a_compile_error_is_fed_back_and_repaired() {
    let w = world();
    let mind = ScriptedTestMind::new(&[
        &code("fn double(a: i64) -> i64 {\n    \"twice\"\n}"),
        &code("fn double(a: i64) -> i64 { a + a }"),
    ]);
    assert_eq!(
        w.synthesizer(mind.clone()).send(&double_request(&w), &quiet).expect("repaired"),
        Value::Int(42)
    );
    assert_eq!(w.outcomes("c1"), ["compile_error", "passed"]);
    let repair = mind.last_prompt();
    assert!(
        repair.contains("does not compile")
            && repair.contains("mismatched types")
            && repair.contains("\"twice\""),
        "the diagnostics and the code go back: {repair}"
    );
}

#[test]
fn a_failing_example_is_fed_back_and_repaired() {
    let w = world();
    let mind = ScriptedTestMind::new(&[
        &code("fn double(a: i64) -> i64 { a + 2 }"),
        &code("fn double(a: i64) -> i64 { a * 2 }"),
    ]);
    assert_eq!(
        w.synthesizer(mind.clone()).send(&double_request(&w), &quiet).expect("repaired"),
        Value::Int(42)
    );
    assert_eq!(w.outcomes("c1"), ["failed_example", "passed"]);
    assert!(
        mind.last_prompt().contains("double(3) returned 5 but must return 6"),
        "{}",
        mind.last_prompt()
    );
}

#[test]
fn exhausted_rounds_fail_with_nothing_installed() {
    let w = world();
    let wrong = code("fn double(a: i64) -> i64 { a + 1 }");
    let mind = ScriptedTestMind::new(&["I would rather not.", &wrong, &wrong, &wrong]);
    let err = w.synthesizer(mind.clone()).send(&double_request(&w), &quiet).expect_err("fails");
    assert!(
        err.to_string().contains("no candidate for `double:` passed after 4 round(s)")
            && err.to_string().contains("must return 6"),
        "{err}"
    );
    assert_eq!(w.outcomes("c1"), ["no_code", "failed_example", "failed_example", "failed_example"]);
    let slots = w.cycle_slots("c1");
    assert_eq!(slots.get("state"), Some(&Value::Text("FAILED".into())));
    assert!(matches!(slots.get("reason"), Some(Value::Text(r)) if r.contains("must return 6")));
    assert!(
        w.rt.view(|cx| cx.lookup(w.genesis, "double:")).expect("lookup").is_none(),
        "nothing installed"
    );
    assert!(skills::all(&w.rt).expect("skills").is_empty());
    let err =
        w.rt.send(w.genesis, "double:", vec![Value::Int(1)]).expect_err("still not understood");
    assert!(matches!(err, Error::DoesNotUnderstand { .. }), "{err}");
}

/// Every construct that reads the host at compile time or reaches past the component
/// boundary is refused by sealing, before cargo runs: the cycle fails with the reason
/// (in the error and in the attempt), and nothing is installed.
#[test]
fn code_reaching_for_the_host_is_refused_before_it_is_built() {
    let w = world();
    let cases: [(&str, &str); 14] = [
        ("include_str!(\"/etc/passwd\").len() as i64 + a", "include_str"),
        ("include_bytes!(\"/etc/passwd\").len() as i64 + a", "include_bytes"),
        ("include!(\"/etc/hostname\")", "include"),
        ("env!(\"HOME\").len() as i64 + a", "env"),
        ("option_env!(\"PATH\").map_or(a, |p| p.len() as i64)", "option_env"),
        ("unsafe { core::arch::asm!(\"nop\") }; a", "asm"),
        ("m!(include_str).len() as i64 + a } macro_rules! m { ($x:ident) => { $x!(\"/etc/passwd\") }", "macro"),
        ("a } #[path = \"/etc/passwd\"] mod stolen; fn unused() {", "path"),
        ("a } #[no_mangle] pub extern \"C\" fn invoke() {", "no_mangle"),
        ("a } #[export_name = \"cabi_realloc\"] pub fn f() {", "export_name"),
        ("a } extern crate alloc as stolen; fn unused() {", "extern crate"),
        ("a } #[link(wasm_import_module = \"wasi_snapshot_preview1\")] extern \"C\" { fn fd_write(fd: i32) -> i32; } fn unused() {", "link"),
        ("a } core::arch::global_asm!(\"nop\"); fn unused() {", "global_asm"),
        ("#![allow(unused)] a", "inner attribute"),
    ];
    let once = Options { max_rounds: 1, candidates: 1, ..Options::default() };
    for (i, (body, named)) in cases.iter().enumerate() {
        let selector = format!("leak{i}:");
        let answer = code(&format!("fn leak{i}(a: i64) -> i64 {{ {body} }}"));
        let mind = ScriptedTestMind::new(&[&answer]);
        let synthesizer = Synthesizer::new(
            w.rt.clone(),
            w.sandbox.clone(),
            mind,
            &w.dir.path().join("workspace"),
            once.clone(),
        )
        .expect("synthesizer");
        let mut request = Request::new(w.genesis, &selector, vec![Value::Int(1)]);
        request.examples = vec![Example::parse("1 => 1").expect("example")];
        let err = synthesizer.send(&request, &quiet).expect_err("refused");
        assert!(err.to_string().contains(named), "{selector} ({named}): {err}");
        let id = format!("c{}", i + 1);
        assert_eq!(w.outcomes(&id), ["refused"], "{selector}: refused before building");
        let Some(Value::List(attempts)) = w.cycle_slots(&id).get("attempts").cloned() else {
            panic!("attempts")
        };
        assert!(
            format!("{attempts:?}").contains(named),
            "{selector}: the reason is kept in the cycle"
        );
        assert!(
            w.rt.view(|cx| cx.lookup(w.genesis, &selector)).expect("lookup").is_none(),
            "{selector}: nothing installed"
        );
    }
    assert!(skills::all(&w.rt).expect("skills").is_empty());
}

/// Recovery of interrupted cycles runs once per awakening: a second synthesizer in the
/// same process must not take the first one's live cycle for a dead process's.
#[test]
fn two_synthesizers_in_one_process_do_not_fail_each_others_cycles() {
    let w = world();
    let mind = ScriptedTestMind::new(&[&code("fn double(a: i64) -> i64 { a * 2 }")]);
    let (release, gate) = mpsc::channel();
    *mind.gate.lock().expect("gate") = Some(gate);
    let first = w.synthesizer(mind.clone());
    let (started_tx, started) = mpsc::channel::<()>();
    let started_tx = Mutex::new(started_tx);
    let observe = |e: &Event| {
        if matches!(e, Event::State { state: State::Synthesizing, .. }) {
            let _ = started_tx.lock().expect("events").send(());
        }
    };
    let request = double_request(&w);
    std::thread::scope(|s| {
        let running = s.spawn(|| first.send(&request, &observe));
        started.recv().expect("the first cycle is synthesising");
        // A second synthesizer starts while the first cycle waits on its mind.
        let _second = w.synthesizer(ScriptedTestMind::new(&[]));
        assert_eq!(
            cycle::state_of(&w.rt, cycle::find(&w.rt, "c1").expect("c1")).expect("state"),
            Some(State::Synthesizing),
            "still live"
        );
        release.send(()).expect("release the mind");
        assert_eq!(running.join().expect("first").expect("answer"), Value::Int(42));
    });
    assert_eq!(w.cycle_slots("c1").get("state"), Some(&Value::Text("COMPLETE".into())));
}

/// A test double that waits until the test lets it go, then panics.
struct PanickingTestMind {
    gate: Mutex<Option<mpsc::Receiver<()>>>,
}

impl Mind for PanickingTestMind {
    fn describe(&self) -> String {
        "panicking test double".into()
    }
    fn complete(
        &self,
        _: &[Message],
        _: &Sampling,
        _: &mut dyn FnMut(&str),
    ) -> Result<Completion, MindError> {
        if let Some(gate) = self.gate.lock().expect("gate").take() {
            let _ = gate.recv();
        }
        panic!("the test double's deliberate panic")
    }
}

#[test]
fn a_panicking_leader_releases_every_waiter_with_its_error() {
    let w = world();
    let (release, gate) = mpsc::channel();
    let mind = Arc::new(PanickingTestMind { gate: Mutex::new(Some(gate)) });
    let synthesizer = Synthesizer::new(
        w.rt.clone(),
        w.sandbox.clone(),
        mind,
        &w.dir.path().join("workspace"),
        Options::default(),
    )
    .expect("synthesizer");
    let (log, events) = EventLog::new();
    let observe = |e: &Event| log.record(e);
    let (request, other) = two_sends_of_double(&w);
    std::thread::scope(|s| {
        let leader = s.spawn(|| synthesizer.send(&request, &observe));
        assert!(events.iter().any(|e| matches!(e, Event::Started { .. })));
        let waiter = s.spawn(|| synthesizer.send(&other, &observe));
        assert!(
            events.iter().any(|e| matches!(e, Event::Joined { .. })),
            "the second send waits on the first's cycle"
        );
        release.send(()).expect("let the mind panic");
        let led =
            leader.join().expect("the leader's thread returns").expect_err("the cycle failed");
        let waited = waiter
            .join()
            .expect("the waiter's thread returns")
            .expect_err("released with the failure");
        assert!(led.to_string().contains("deliberate panic"), "{led}");
        assert_eq!(
            (waited.kind(), waited.to_string()),
            (led.kind(), led.to_string()),
            "the same error"
        );
    });
    assert_eq!(w.cycle_slots("c1").get("state"), Some(&Value::Text("FAILED".into())));
    assert!(
        w.rt.view(|cx| cx.lookup(w.genesis, "double:")).expect("lookup").is_none(),
        "nothing installed"
    );
}

#[test]
fn absurd_selectors_are_refused_before_any_cycle() {
    let w = world();
    let mind = ScriptedTestMind::new(&[]);
    let err = w
        .synthesizer(mind.clone())
        .send(&Request::new(w.genesis, "9lives", vec![]), &quiet)
        .expect_err("refused");
    assert!(err.to_string().contains("cannot be synthesised"), "{err}");
    assert_eq!(mind.calls(), 0);
    assert!(cycle::list(&w.rt).expect("cycles").is_empty());
}

#[test]
fn concurrent_sends_of_one_unknown_selector_share_one_cycle() {
    let w = world();
    let mind = ScriptedTestMind::new(&[&code("fn double(a: i64) -> i64 { a * 2 }")]);
    let (release, gate) = mpsc::channel();
    *mind.gate.lock().expect("gate") = Some(gate);
    let synthesizer = w.synthesizer(mind.clone());
    let (log, events) = EventLog::new();
    let observe = |e: &Event| log.record(e);
    let (request, other) = two_sends_of_double(&w);
    std::thread::scope(|s| {
        let first = s.spawn(|| synthesizer.send(&request, &observe));
        // The first send has started its cycle (and its mind waits at the gate).
        assert!(events.iter().any(|e| matches!(e, Event::Started { .. })));
        let second = s.spawn(|| synthesizer.send(&other, &observe));
        assert!(
            events.iter().any(|e| matches!(e, Event::Joined { cycle } if cycle == "c1")),
            "the second send joins the first's cycle"
        );
        release.send(()).expect("release the mind");
        assert_eq!(first.join().expect("first").expect("first answer"), Value::Int(42));
        assert_eq!(second.join().expect("second").expect("second answer"), Value::Int(8));
    });
    assert_eq!(cycle::list(&w.rt).expect("cycles").len(), 1, "one cycle");
    assert_eq!(mind.calls(), 1, "one mind call");
}

#[test]
fn a_stateful_method_keeps_its_count_across_restart() {
    let w = world();
    let mind = ScriptedTestMind::new(&[&code("fn increment(this: &Object) -> i64 {\n    let n = get_int(this, \"count\") + 1;\n    set_int(this, \"count\", n);\n    n\n}")]);
    let mut request = Request::new(w.genesis, "increment", vec![]);
    request.brief = Some("add one to the count slot and answer the new count".into());
    request.examples =
        vec![Example::parse(" => 1").expect("example"), Example::parse(" => 2").expect("example")];
    assert_eq!(
        w.synthesizer(mind.clone()).send(&request, &quiet).expect("synthesised"),
        Value::Int(1)
    );
    assert!(
        mind.last_prompt().contains("fn increment(this: &Object) -> i64")
            && mind.last_prompt().contains("this.set_int(\"total\", n)"),
        "{}",
        mind.last_prompt()
    );
    assert_eq!(w.rt.send(w.genesis, "increment", vec![]).expect("again"), Value::Int(2));
    let w = w.restart();
    assert_eq!(w.rt.send(w.genesis, "increment", vec![]).expect("after restart"), Value::Int(3));
    assert_eq!(w.rt.object(w.genesis).expect("genesis").slots.get("count"), Some(&Value::Int(3)));
}

#[test]
fn a_method_can_be_synthesised_in_wat_by_request() {
    let w = world();
    let wat = "```wat\n(func $invoke (param $receiver i32) (param $args i32) (param $nargs i32) (result i32)\n  (call $ok_int (i64.mul (call $arg_int (local.get $args) (local.get $nargs) (i32.const 0)) (i64.const 2))))\n```";
    let broken =
        "```wat\n(func $invoke (param $receiver i32) (result i32) (call $no_such_helper))\n```";
    let mind = ScriptedTestMind::new(&[broken, wat]);
    let mut request = double_request(&w);
    request.language = batos_synthesis::Language::Wat;
    assert_eq!(
        w.synthesizer(mind.clone()).send(&request, &quiet).expect("synthesised"),
        Value::Int(42)
    );
    assert_eq!(w.outcomes("c1"), ["compile_error", "passed"]);
    let first = mind.prompts.lock().expect("prompts")[0]
        .0
        .iter()
        .map(|m| m.content.clone())
        .collect::<String>();
    assert!(
        first.contains("$arg_int") && first.contains("(func $invoke"),
        "the WAT contract and helpers are given: {first}"
    );
    assert!(mind.last_prompt().contains("It does not assemble"), "{}", mind.last_prompt());
}

/// A candidate that passes the examples but traps on the real arguments is not
/// installed: proving runs the real arguments on the clone too.
#[test]
fn a_candidate_that_traps_on_the_real_arguments_is_not_installed() {
    let w = world();
    let fragile = code(
        "fn double(a: i64) -> i64 {\n    if a == 21 { panic!(\"not twenty-one\") }\n    a * 2\n}",
    );
    let mind = ScriptedTestMind::new(&[&fragile, &fragile, &fragile, &fragile]);
    let err = w.synthesizer(mind).send(&double_request(&w), &quiet).expect_err("not installed");
    assert!(err.to_string().contains("double(21) failed"), "{err}");
    assert_eq!(w.outcomes("c1"), ["failed_example"; 4]);
    assert!(
        w.rt.view(|cx| cx.lookup(w.genesis, "double:")).expect("lookup").is_none(),
        "nothing installed"
    );
}

const FIB_WRONG: &str = "fn fib(n: i64) -> i64 {\n    n\n}";
const FIB_LOOP: &str = "fn fib(n: i64) -> i64 {\n    let (mut a, mut b) = (0, 1);\n    for _ in 0..n {\n        let t = a + b;\n        a = b;\n        b = t;\n    }\n    a\n}";
const FIB_RECURSIVE: &str =
    "fn fib(n: i64) -> i64 {\n    if n < 2 { n } else { fib(n - 1) + fib(n - 2) }\n}";

fn fib_request(w: &World, examples: &[&str]) -> Request {
    let mut r = Request::new(w.genesis, "fib:", vec![Value::Int(10)]);
    r.examples = examples.iter().map(|e| Example::parse(e).expect("example")).collect();
    r
}

/// By default the caller's examples vouch for a candidate: the first to meet them is
/// installed, and the mind is asked for nothing more.
#[test]
fn with_the_callers_examples_the_first_candidate_to_meet_them_is_installed() {
    let w = world();
    let mind = ScriptedTestMind::new(&[&code(FIB_LOOP), &code(FIB_WRONG), &code(FIB_RECURSIVE)]);
    let answer = w
        .synthesizer_with(mind.clone(), Options::default())
        .send(&fib_request(&w, &["1 => 1"]), &quiet)
        .expect("synthesised");
    assert_eq!(answer, Value::Int(55));
    assert_eq!(mind.calls(), 1, "no second opinion was asked for");
    assert_eq!(w.outcomes("c1"), ["passed"]);
    assert_eq!(w.cycle_slots("c1").get("agreeing"), Some(&Value::Int(1)));
}

/// With a second opinion, several candidates a round: all three meet the caller's one
/// example, but only two agree on the inputs the host makes up, and the largest cluster
/// is installed.
#[test]
fn candidates_that_agree_outvote_one_that_only_meets_the_example() {
    let w = world();
    let mind = ScriptedTestMind::new(&[&code(FIB_WRONG), &code(FIB_LOOP), &code(FIB_RECURSIVE)]);
    let answer = w
        .synthesizer_with(mind.clone(), Options { second_opinion: true, ..Options::default() })
        .send(&fib_request(&w, &["1 => 1"]), &quiet)
        .expect("synthesised");
    assert_eq!(answer, Value::Int(55), "the agreeing pair, not the first to pass");
    assert_eq!(mind.calls(), 3);
    assert_eq!(w.outcomes("c1"), ["passed", "passed", "passed"]);
    let slots = w.cycle_slots("c1");
    assert_eq!(slots.get("chosen"), Some(&Value::Text("round 1 candidate 2".into())));
    assert_eq!(slots.get("agreeing"), Some(&Value::Int(2)));
    let clusters = format!("{:?}", slots.get("clusters"));
    assert!(clusters.contains("candidate 2") && clusters.contains("candidate 1"), "{clusters}");
    assert!(
        matches!(
            w.rt.object(w.genesis).expect("genesis").slots.get("fib:"),
            Some(Value::Method(batos_runtime::image::Method::Component { .. }))
        ),
        "with the caller's example the method is confirmed"
    );
}

/// With no example, candidates that disagree install nothing: the caller is asked for
/// an example, told where they differ.
#[test]
fn disagreeing_candidates_without_an_example_ask_for_one() {
    let w = world();
    let proposals = "fib(1) == 1\nfib(2) == 1\nfib(5) == 5";
    let doubled = "fn fib(n: i64) -> i64 {\n    n * 2\n}";
    let mind =
        ScriptedTestMind::new(&[proposals, &code(FIB_WRONG), &code(FIB_LOOP), &code(doubled)]);
    let err = w
        .synthesizer_with(mind.clone(), Options::default())
        .send(&fib_request(&w, &[]), &quiet)
        .expect_err("undecided");
    assert!(matches!(err, Error::NeedsExample { .. }), "{err}");
    assert!(err.to_string().contains("they answered"), "{err}");
    assert!(w.rt.view(|cx| cx.lookup(w.genesis, "fib:")).expect("lookup").is_none());
}

/// With no example, two agreeing candidates install the method marked unconfirmed; a
/// later send with an example it meets confirms it, one it fails replaces it.
#[test]
fn agreeing_candidates_install_an_unconfirmed_method_that_an_example_settles() {
    use batos_runtime::image::Method;
    let w = world();
    let proposals = "fib(1) == 1\nfib(2) == 1\nfib(5) == 5";
    let mind = ScriptedTestMind::new(&[proposals, &code(FIB_LOOP), &code(FIB_RECURSIVE)]);
    let synthesizer = w.synthesizer_with(mind.clone(), Options::default());
    assert_eq!(synthesizer.send(&fib_request(&w, &[]), &quiet).expect("agreed"), Value::Int(55));
    let slot = || w.rt.object(w.genesis).expect("genesis").slots.get("fib:").cloned();
    assert!(
        matches!(slot(), Some(Value::Method(Method::Unconfirmed { .. }))),
        "marked unconfirmed: {:?}",
        slot()
    );
    assert_eq!(w.cycle_slots("c1").get("confirmed"), Some(&Value::Bool(false)));
    assert_eq!(w.rt.send(w.genesis, "fib:", vec![Value::Int(6)]).expect("it runs"), Value::Int(8));

    assert_eq!(
        synthesizer.send(&fib_request(&w, &["7 => 13"]), &quiet).expect("confirmed"),
        Value::Int(55)
    );
    assert!(matches!(slot(), Some(Value::Method(Method::Component { .. }))), "{:?}", slot());
    assert_eq!(mind.calls(), 3, "confirming asked the mind nothing");

    // An example the installed method fails removes it and synthesises anew.
    let w2 = world();
    let mind = ScriptedTestMind::new(&[
        proposals,
        &code(FIB_WRONG),
        &code("fn fib(n: i64) -> i64 {\n    n + 0\n}"),
        &code(FIB_LOOP),
        &code(FIB_RECURSIVE),
    ]);
    let synthesizer = w2.synthesizer_with(mind.clone(), Options::default());
    assert_eq!(
        synthesizer.send(&fib_request(&w2, &[]), &quiet).expect("agreed, wrongly"),
        Value::Int(10)
    );
    assert_eq!(
        synthesizer.send(&fib_request(&w2, &["7 => 13"]), &quiet).expect("replaced"),
        Value::Int(55)
    );
    assert!(matches!(
        w2.rt.object(w2.genesis).expect("genesis").slots.get("fib:"),
        Some(Value::Method(Method::Component { .. }))
    ));
}

/// A method that needs a grant the person did not give is not installed: the cycle
/// stops and names the grant. Given, it is installed with it, and the gate holds it to
/// exactly that grant.
#[test]
fn a_method_that_needs_a_grant_waits_for_the_person() {
    use batos_runtime::image::Method;
    let w = world();
    let body = code("fn after2020() -> bool {\n    batos_guest_sdk::now().0 > 1_577_836_800\n}");
    let mut request = Request::new(w.genesis, "after2020", vec![]);
    request.examples = vec![Example::parse(" => true").expect("example")];
    let mind = ScriptedTestMind::new(&[&body]);
    let err = w.synthesizer(mind).send(&request, &quiet).expect_err("needs the clock");
    assert!(matches!(&err, Error::NeedsGrant { grants, .. } if grants == &["clock"]), "{err}");
    assert_eq!(w.outcomes("c1"), ["needs_grant"]);
    assert!(w.rt.view(|cx| cx.lookup(w.genesis, "after2020")).expect("lookup").is_none());

    // One candidate of three reaching for the clock is only that candidate's failure.
    let mut doubling = Request::new(w.genesis, "twice:", vec![Value::Int(4)]);
    doubling.examples = vec![Example::parse("3 => 6").expect("example")];
    let mind = ScriptedTestMind::new(&[
        &code("fn twice(a: i64) -> i64 {\n    a * 2 + (batos_guest_sdk::now().0 as i64) * 0\n}"),
        &code("fn twice(a: i64) -> i64 {\n    a * 2\n}"),
        &code("fn twice(a: i64) -> i64 {\n    a + a\n}"),
    ]);
    let answer = w.synthesizer_with(mind, Options::default()).send(&doubling, &quiet);
    assert_eq!(answer.expect("the others do without"), Value::Int(8));
    assert_eq!(w.outcomes("c2"), ["needs_grant", "passed"]);

    request.grants = vec!["clock".into()];
    let mind = ScriptedTestMind::new(&[&body]);
    assert_eq!(w.synthesizer(mind).send(&request, &quiet).expect("granted"), Value::Bool(true));
    assert!(
        matches!(
            w.rt.object(w.genesis).expect("genesis").slots.get("after2020"),
            Some(Value::Method(Method::Component { grants, .. })) if grants == &["clock"]
        ),
        "the grant is recorded in the method"
    );
}

/// What a critic was shown: the code, and `(arguments, answer)` pairs.
type Reviewed = (String, Vec<(String, String)>);

/// A test-double critic: rejects any candidate whose code contains `forbidden`, with
/// that as its reason, and remembers what it reviewed.
struct RejectingTestCritic {
    forbidden: &'static str,
    reviewed: Mutex<Vec<Reviewed>>,
}

impl batos_synthesis::crucible::Critic for RejectingTestCritic {
    fn review(
        &self,
        work: &batos_synthesis::crucible::Work<'_>,
    ) -> batos_runtime::Result<Vec<batos_synthesis::crucible::Critique>> {
        self.reviewed.lock().expect("reviewed").push((work.code.to_owned(), work.answers.clone()));
        let approves = !work.code.contains(self.forbidden);
        let counter = |text: &str| Some(Example::parse(text).expect("example"));
        Ok(vec![
            batos_synthesis::crucible::Critique {
                reviewer: "BRICK".into(),
                approves,
                reason: if approves { "approved".into() } else { "it special-cases 3".into() },
                counterexample: if approves { None } else { counter("7 => 14") },
            },
            // Objections the host does not act on: without a counterexample, with one the
            // candidate already meets, and with one that contradicts the caller.
            batos_synthesis::crucible::Critique {
                reviewer: "ALFRED".into(),
                approves: false,
                reason: "it does not handle negative numbers".into(),
                counterexample: None,
            },
            batos_synthesis::crucible::Critique {
                reviewer: "ROBIN".into(),
                approves: false,
                reason: "21 doubled is 42".into(),
                counterexample: counter("21 => 42"),
            },
            batos_synthesis::crucible::Critique {
                reviewer: "BABS".into(),
                approves: false,
                reason: "3 doubled is 5".into(),
                counterexample: counter("3 => 5"),
            },
        ])
    }
}

#[test]
fn the_crucible_sends_a_passing_candidate_back_with_its_reasons() {
    let w = world();
    // The first candidate passes its example by special-casing it; the reviewer's
    // counterexample shows it wrong, and the next round's candidate is the real method.
    let mind = ScriptedTestMind::new(&[
        &code("fn double(a: i64) -> i64 { if a == 3 { 6 } else { a + 5 } }"),
        &code("fn double(a: i64) -> i64 { a * 2 }"),
    ]);
    let critic = Arc::new(RejectingTestCritic { forbidden: "a == 3", reviewed: Mutex::default() });
    let options = Options { candidates: 1, crucible: Some(critic.clone()), ..Options::default() };
    let answer =
        w.synthesizer_with(mind.clone(), options).send(&double_request(&w), &quiet).expect("done");
    assert_eq!(answer, Value::Int(42));
    assert_eq!(w.outcomes("c1"), ["sent_back", "passed"]);
    // The standing objection went back to the mind with its counterexample.
    assert!(
        mind.last_prompt().contains("for 7 it answers 12 but should answer 14: it special-cases 3"),
        "{}",
        mind.last_prompt()
    );
    assert!(!mind.last_prompt().contains("negative numbers"), "only what stands goes back");
    let Some(Value::List(reviews)) = w.cycle_slots("c1").get("reviews").cloned() else {
        panic!("the cycle keeps its reviews")
    };
    assert_eq!(reviews.len(), 2);
    let findings = |review: &Value| -> Vec<String> {
        let Value::List(critiques) = review else { return vec![] };
        critiques
            .iter()
            .filter_map(|c| match c {
                Value::Map(m) => match m.get("finding") {
                    Some(Value::Text(f)) => Some(f.clone()),
                    _ => None,
                },
                _ => None,
            })
            .collect()
    };
    // ROBIN's 21 => 42 stands against the first candidate (it answers 26) and not the second.
    assert_eq!(findings(&reviews[0]), ["stands", "unsupported", "stands", "dismissed"]);
    assert_eq!(findings(&reviews[1]), ["approves", "unsupported", "dismissed", "dismissed"]);
    let reviewed = critic.reviewed.lock().expect("reviewed");
    assert_eq!(reviewed.len(), 2, "each passing candidate is reviewed once");
    // The reviewer saw what the candidate answered on the real arguments first.
    assert_eq!(reviewed[0].1.first().cloned(), Some(("21".to_owned(), "26".to_owned())));
    assert!(skills::all(&w.rt).expect("skills").iter().any(|s| s.source.contains("a * 2")));
}

#[test]
fn a_companion_writes_every_second_candidate_and_its_right_answer_is_installed() {
    let w = world();
    // The mind repeats one wrong idea; its companion, a different model, does not.
    let wrong = code("fn double(a: i64) -> i64 {\n    a * 3\n}");
    let mind = ScriptedTestMind::named("first model", &[&wrong, &wrong]);
    let companion =
        ScriptedTestMind::named("companion model", &[&code("fn double(a: i64) -> i64 { a + a }")]);
    // A second opinion keeps the round going after the companion's pass, to candidate 3.
    let options =
        Options { candidates: 3, max_rounds: 1, second_opinion: true, ..Options::default() };
    let answer = w
        .synthesizer_with(mind.clone(), options)
        .with_companion(Some(companion.clone()))
        .send(&double_request(&w), &quiet)
        .expect("the companion's candidate passes");
    assert_eq!(answer, Value::Int(42));
    assert_eq!((mind.calls(), companion.calls()), (2, 1), "candidates 1 and 3, then 2");
    let greedy = |m: &ScriptedTestMind| m.prompts.lock().expect("prompts")[0].1.temperature;
    assert_eq!(
        (greedy(&mind), greedy(&companion)),
        (0.0, 0.0),
        "each model's first answer is its greedy one"
    );
    let Some(Value::List(attempts)) = w.cycle_slots("c1").get("attempts").cloned() else {
        panic!("no attempts recorded");
    };
    let written: Vec<(String, String)> = attempts
        .iter()
        .filter_map(|a| match a {
            Value::Map(m) => match (m.get("model"), m.get("outcome")) {
                (Some(Value::Text(model)), Some(Value::Text(outcome))) => {
                    Some((model.clone(), outcome.clone()))
                }
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(
        written,
        [
            ("first model".to_owned(), "failed_example".to_owned()),
            ("companion model".to_owned(), "passed".to_owned()),
            ("first model".to_owned(), "failed_example".to_owned()),
        ]
    );
    let installed = w.rt.object(w.genesis).expect("genesis").slots;
    assert!(installed.contains_key("double:"), "{installed:?}");
}
