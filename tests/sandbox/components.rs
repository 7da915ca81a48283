//! The sandbox: example plugins through the host API, hostile components written as
//! WAT fixtures, bad input at install time, and hot reload of the drop-in folder.
//! After every hostile call the host must still serve a normal one, and the image must
//! be unchanged by the failed call.

use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use batos_runtime::{Error, Oid, Runtime, Value};
use batos_sandbox::watch::{DropFolder, SyncReport};
use batos_sandbox::{plugin, Limits, Sandbox};

struct Host {
    _dir: tempfile::TempDir,
    files: PathBuf,
    rt: Arc<Runtime>,
    sandbox: Arc<Sandbox>,
    genesis: Oid,
}

fn host() -> Host {
    let dir = tempfile::tempdir().expect("tempdir");
    let sandbox = Arc::new(Sandbox::new(Limits::default()).expect("sandbox"));
    let rt = batos_mind::Minds::new()
        .attach(Runtime::builder())
        .component_runner(sandbox.clone())
        .open(dir.path().join("image"))
        .expect("image opens");
    let genesis = rt.resolve("genesis").expect("genesis");
    let files = dir.path().join("src");
    std::fs::create_dir(&files).expect("mkdir");
    Host { _dir: dir, files, rt: Arc::new(rt), sandbox, genesis }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

impl Host {
    /// Writes NAME.wat and NAME.toml and installs them.
    fn wat(
        &self,
        name: &str,
        selector: &str,
        extra_manifest: &str,
        wat: &str,
    ) -> batos_runtime::Result<plugin::Installed> {
        let path = self.files.join(format!("{name}.wat"));
        std::fs::write(&path, wat).expect("write wat");
        std::fs::write(
            self.files.join(format!("{name}.toml")),
            format!("selector = \"{selector}\"\ntarget = \"genesis\"\ndescription = \"test fixture\"\n{extra_manifest}"),
        )
        .expect("write manifest");
        plugin::add(&self.rt, &self.sandbox, &path)
    }

    fn send(&self, selector: &str, args: Vec<Value>) -> batos_runtime::Result<Value> {
        self.rt.send(self.genesis, selector, args)
    }

    /// The host still serves a normal component call, and the image holds `slots`.
    fn still_serves(&self) {
        if self.rt.view(|cx| cx.lookup(self.genesis, "double:")).expect("lookup").is_none() {
            self.wat("double", "double:", "", DOUBLE).expect("double installs");
        }
        assert_eq!(
            self.send("double:", vec![Value::Int(21)]).expect("a normal call after a hostile one"),
            Value::Int(42)
        );
    }
}

const DOUBLE: &str = r#"
(func $invoke (param $receiver i32) (param $args i32) (param $nargs i32) (result i32)
  (call $ok_int (i64.mul (call $arg_int (local.get $args) (local.get $nargs) (i32.const 0)) (i64.const 2))))
"#;

#[test]
fn a_wat_plugin_runs_and_survives_restart_without_its_source() {
    let dir = tempfile::tempdir().expect("tempdir");
    let image = dir.path().join("image");
    let source = dir.path().join("double.wat");
    std::fs::copy(repo().join("plugins/double.wat"), &source).expect("copy");
    std::fs::copy(repo().join("plugins/double.toml"), dir.path().join("double.toml"))
        .expect("copy");
    {
        let sandbox = Arc::new(Sandbox::new(Limits::default()).expect("sandbox"));
        let rt = Runtime::builder().component_runner(sandbox.clone()).open(&image).expect("opens");
        let installed = plugin::add(&rt, &sandbox, &source).expect("installs");
        assert_eq!(installed.selector, "double:");
        assert!(installed.source.is_some(), "the WAT source is kept as a blob");
        let genesis = rt.resolve("genesis").expect("genesis");
        assert_eq!(
            rt.send(genesis, "double:", vec![Value::Int(21)]).expect("runs"),
            Value::Int(42)
        );
        let artifacts = rt.image().aux_scan("artifact/").expect("aux");
        assert_eq!(artifacts.len(), 1, "the compiled component is kept for the next process");
    }
    std::fs::remove_file(&source).expect("the source goes away");
    let sandbox = Arc::new(Sandbox::new(Limits::default()).expect("sandbox"));
    let rt = Runtime::builder().component_runner(sandbox).open(&image).expect("reopens");
    let genesis = rt.resolve("genesis").expect("genesis");
    assert_eq!(
        rt.send(genesis, "double:", vec![Value::Int(-4)]).expect("runs from the image"),
        Value::Int(-8)
    );
    assert_eq!(plugin::list(&rt).expect("list").len(), 1);
}

#[test]
fn the_rust_example_plugins_run_through_the_host_api() {
    let h = host();
    for name in ["greet", "counter", "shout", "report_time"] {
        plugin::add(&h.rt, &h.sandbox, &repo().join("plugins").join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    assert_eq!(
        h.send("greet:", vec![Value::Text("Ada".into())]).expect("greet"),
        Value::Text("Hello, Ada!".into())
    );
    assert_eq!(
        h.send("shout:", vec![Value::Text("bob".into())]).expect("shout"),
        Value::Text("HELLO, BOB!".into())
    );

    // The counter's state lives in a slot of its receiver: clones count separately.
    let clone = h.rt.clone_object(h.genesis, None).expect("clone");
    assert_eq!(h.send("increment", vec![]).expect("increment"), Value::Int(1));
    assert_eq!(h.send("increment", vec![]).expect("increment"), Value::Int(2));
    assert_eq!(h.rt.send(clone, "increment", vec![]).expect("increment"), Value::Int(1));
    assert_eq!(h.rt.object(h.genesis).expect("genesis").slots.get("count"), Some(&Value::Int(2)));

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let Value::Int(reported) = h.send("reportTime", vec![]).expect("reportTime") else {
        panic!("an integer")
    };
    assert!(reported.abs_diff(now as i64) < 60, "reported {reported}, host says {now}");

    let err = h.send("greet:", vec![Value::Int(5)]).expect_err("bad argument");
    assert!(matches!(err, Error::BadArguments { .. }), "{err}");
    assert!(err.to_string().contains("argument 1 must be text"), "{err}");

    let stats = h.sandbox.stats(h.rt.image()).expect("stats");
    let greet =
        plugin::list(&h.rt).expect("list").into_iter().find(|p| p.name == "greet").expect("greet");
    let s = &stats[&greet.component.hash];
    assert_eq!(s.calls, 3, "two direct calls and one through shout");
    assert_eq!(s.failures.get("bad_input"), Some(&1));
    assert!(s.fuel_used > 0);
}

#[test]
fn the_clock_needs_its_grant() {
    let h = host();
    let uses_clock = r#"
      (import "batos:uvm/clock@0.1.0" "now" (func $now (param i32)))
      (func $invoke (param $receiver i32) (param $args i32) (param $nargs i32) (result i32)
        (call $now (i32.const 64))
        (call $ok_int (i64.load (i32.const 64))))
    "#;
    let err = h.wat("clocky", "clocky", "", uses_clock).expect_err("refused without the grant");
    assert!(
        matches!(&err, Error::AuditRefused { reason, .. } if reason.contains("batos:uvm/clock@0.1.0") && reason.contains("`clock` grant")),
        "{err}"
    );
    assert!(plugin::list(&h.rt).expect("list").is_empty(), "nothing installed");
    h.wat("clocky", "clocky", "grants = [\"clock\"]\n", uses_clock)
        .expect("accepted with the grant");
    let Value::Int(seconds) = h.send("clocky", vec![]).expect("runs") else { panic!("integer") };
    assert!(seconds > 1_700_000_000, "{seconds}");
}

#[test]
fn the_memory_needs_its_grant() {
    let h = host();
    // Imports `search` (query pointer and length, limit, where the result goes) and
    // answers 7 without calling it: the audit decides on the import alone.
    let uses_memory = r#"
      (import "batos:uvm/memory@0.1.0" "search" (func $search (param i32 i32 i32 i32)))
      (func $invoke (param $receiver i32) (param $args i32) (param $nargs i32) (result i32)
        (call $ok_int (i64.const 7)))
    "#;
    let err =
        h.wat("recaller", "recaller", "", uses_memory).expect_err("refused without the grant");
    assert!(
        matches!(&err, Error::AuditRefused { reason, .. } if reason.contains("batos:uvm/memory@0.1.0") && reason.contains("`memory` grant")),
        "{err}"
    );
    assert!(plugin::list(&h.rt).expect("list").is_empty(), "nothing installed");
    h.wat("recaller", "recaller", "grants = [\"memory\"]\n", uses_memory)
        .expect("accepted with the grant");
    assert_eq!(h.send("recaller", vec![]).expect("runs"), Value::Int(7));
}

/// The `memory` interface: a granted capability searches by sending `search:limit:` to
/// the `memory` root, the path every search takes. Here that method is a scripted test
/// double (the sandbox knows no memory); the real one, and its gate, are tested with
/// the memory crate and from the command line.
#[test]
fn a_capability_with_the_memory_grant_searches_through_memory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sandbox = Arc::new(Sandbox::new(Limits::default()).expect("sandbox"));
    let rt = Runtime::builder()
        .component_runner(sandbox.clone())
        .primitive("scriptedTestMemory.search", |_cx, call| {
            let mut hit = std::collections::BTreeMap::new();
            hit.insert("text".to_owned(), Value::Text(format!("found {}", call.text(0)?)));
            hit.insert("source".to_owned(), Value::Text("/notes.txt".into()));
            hit.insert("score".to_owned(), Value::Float(0.5));
            Ok(Value::List(vec![Value::Map(hit)]))
        })
        .open(dir.path().join("image"))
        .expect("image opens");
    let genesis = rt.resolve("genesis").expect("genesis");
    rt.transact("a scripted memory", |cx| {
        let tx = cx.tx_mut("make a memory root")?;
        let memory = tx.create_object(&[])?;
        tx.set_slot(
            memory,
            "search:limit:",
            &Value::Method(batos_runtime::image::Method::Native {
                primitive: "scriptedTestMemory.search".into(),
            }),
        )?;
        tx.set_root("memory", memory)
    })
    .expect("memory root");
    plugin::add(&rt, &sandbox, &repo().join("plugins").join("recall"))
        .expect("recall installs with its grant");
    let answer = rt.send(genesis, "recall:", vec![Value::Text("sheep".into())]).expect("recalls");
    assert_eq!(answer, Value::Text("found sheep (/notes.txt)".into()));
}

fn assert_limit(err: &Error, which: &str) {
    assert!(
        matches!(err, Error::Limit { limit, .. } if *limit == which),
        "expected the {which} limit, got: {err}"
    );
}

#[test]
fn an_infinite_loop_is_stopped_by_the_deadline() {
    let h = host();
    h.wat(
        "spin",
        "spin",
        "deadline_ms = 100\n",
        r#"
      (func $invoke (param $receiver i32) (param $args i32) (param $nargs i32) (result i32)
        (loop $forever (br $forever))
        (call $ok_nil))
    "#,
    )
    .expect("installs");
    let before = h.rt.image().last_tx();
    assert_limit(&h.send("spin", vec![]).expect_err("stopped"), "deadline");
    assert_eq!(h.rt.image().last_tx(), before);
    h.still_serves();
}

#[test]
fn runaway_work_runs_out_of_fuel() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sandbox =
        Arc::new(Sandbox::new(Limits { fuel: 100_000, ..Limits::default() }).expect("sandbox"));
    let rt = Runtime::builder()
        .component_runner(sandbox.clone())
        .open(dir.path().join("image"))
        .expect("opens");
    let h = Host {
        files: dir.path().to_path_buf(),
        genesis: rt.resolve("genesis").expect("genesis"),
        rt: Arc::new(rt),
        sandbox,
        _dir: dir,
    };
    h.wat(
        "spin",
        "spin",
        "",
        "(func $invoke (param i32 i32 i32) (result i32) (loop $l (br $l)) (call $ok_nil))",
    )
    .expect("installs");
    assert_limit(&h.send("spin", vec![]).expect_err("stopped"), "fuel");
    h.still_serves();
}

#[test]
fn a_memory_bomb_hits_the_memory_cap() {
    let h = host();
    h.wat(
        "bomb",
        "bomb",
        "",
        r#"
      (func $invoke (param $receiver i32) (param $args i32) (param $nargs i32) (result i32)
        (loop $grow
          (br_if $grow (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
        (call $ok_nil))
    "#,
    )
    .expect("installs");
    assert_limit(&h.send("bomb", vec![]).expect_err("capped"), "memory");
    h.still_serves();
}

#[test]
fn deep_recursion_hits_the_stack_limit() {
    let h = host();
    h.wat(
        "deep",
        "deep",
        "",
        r#"
      (func $down (param $n i64) (result i64)
        (i64.add (call $down (i64.add (local.get $n) (i64.const 1))) (i64.const 1)))
      (func $invoke (param $receiver i32) (param $args i32) (param $nargs i32) (result i32)
        (call $ok_int (call $down (i64.const 0))))
    "#,
    )
    .expect("installs");
    assert_limit(&h.send("deep", vec![]).expect_err("overflow"), "stack");
    h.still_serves();
}

#[test]
fn a_huge_result_is_refused() {
    let h = host();
    h.wat(
        "huge",
        "huge",
        "",
        r#"
      (func $invoke (param $receiver i32) (param $args i32) (param $nargs i32) (result i32)
        ;; 2 MiB of text, over the 1 MiB value cap.
        (drop (memory.grow (i32.const 40)))
        (call $ok_text (i32.const 65536) (i32.const 2097152)))
    "#,
    )
    .expect("installs");
    assert_limit(&h.send("huge", vec![]).expect_err("too big"), "result size");
    h.still_serves();
}

#[test]
fn writes_are_permitted_only_on_the_receiver() {
    let h = host();
    // Tries to write `stamp` on its receiver and on the object passed as argument 1;
    // answers the two host statuses as one number: receiver*10 + other (0 = done).
    h.wat("stamp", "stamp:", "", r#"
      (data (i32.const 512) "stamp")
      (func $invoke (param $receiver i32) (param $args i32) (param $nargs i32) (result i32)
        (local $other i32) (local $node i32) (local $a i32) (local $b i32)
        (local.set $node (call $arg_node (local.get $args) (local.get $nargs) (i32.const 0)))
        (if (i32.ne (i32.load8_u (local.get $node)) (i32.const 8)) (then unreachable))
        (local.set $other (i32.load offset=8 (local.get $node)))
        (local.set $a (call $set_int (local.get $receiver) (i32.const 512) (i32.const 5) (i64.const 1)))
        (local.set $b (call $set_int (local.get $other) (i32.const 512) (i32.const 5) (i64.const 1)))
        (call $ok_int (i64.extend_i32_u (i32.add (i32.mul (local.get $a) (i32.const 10)) (local.get $b)))))
    "#)
    .expect("installs");
    let victim = h.rt.clone_object(h.genesis, Some("victim")).expect("clone");
    let answer = h.send("stamp:", vec![Value::Object(victim)]).expect("answers");
    assert_eq!(answer, Value::Int(1), "receiver write done (0), other refused (1)");
    assert_eq!(h.rt.object(h.genesis).expect("genesis").slots.get("stamp"), Some(&Value::Int(1)));
    assert_eq!(
        h.rt.object(victim).expect("victim").slots.get("stamp"),
        None,
        "the non-receiver is untouched"
    );
    h.still_serves();
}

#[test]
fn a_forged_object_handle_traps() {
    let h = host();
    h.wat(
        "forge",
        "forge",
        "",
        r#"
      (data (i32.const 512) "description")
      (func $invoke (param $receiver i32) (param $args i32) (param $nargs i32) (result i32)
        ;; 9999 was never given to this capability.
        (drop (call $get_int (i32.const 9999) (i32.const 512) (i32.const 11)))
        (call $ok_nil))
    "#,
    )
    .expect("installs");
    let err = h.send("forge", vec![]).expect_err("no such handle");
    assert!(matches!(err, Error::Trapped { .. }), "{err}");
    h.still_serves();
}

#[test]
fn a_trap_mid_write_leaves_no_partial_state() {
    let h = host();
    h.wat(
        "halfway",
        "halfway",
        "",
        r#"
      (data (i32.const 512) "written")
      (func $invoke (param $receiver i32) (param $args i32) (param $nargs i32) (result i32)
        (drop (call $set_int (local.get $receiver) (i32.const 512) (i32.const 7) (i64.const 99)))
        unreachable)
    "#,
    )
    .expect("installs");
    let before = h.rt.image().last_tx();
    let err = h.send("halfway", vec![]).expect_err("traps");
    assert!(matches!(err, Error::Trapped { .. }), "{err}");
    assert_eq!(h.rt.object(h.genesis).expect("genesis").slots.get("written"), None);
    assert_eq!(h.rt.image().last_tx(), before);
    h.still_serves();
}

#[test]
fn bad_components_are_refused_at_install_with_the_image_unchanged() {
    let h = host();
    let before = h.rt.image().last_tx();
    let manifest = "selector = \"bad\"\ntarget = \"genesis\"\ndescription = \"bad\"\n";
    let double = batos_sandbox::build::component_from_wat(DOUBLE, "double").expect("builds");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("garbage", b"this is not wasm".to_vec(), "not WebAssembly"),
        ("truncated", double[..double.len() / 2].to_vec(), "invalid component"),
        ("core", wat::parse_str("(module)").expect("wat"), "core WebAssembly module"),
        ("empty_component", wat::parse_str("(component)").expect("wat"), "capability world"),
        (
            "wasi",
            wat::parse_str(r#"(component (import "wasi:filesystem/preopens@0.2.0" (instance (export "get-directories" (func)))))"#)
                .expect("wat"),
            "wasi:filesystem/preopens@0.2.0",
        ),
    ];
    for (name, bytes, expected) in cases {
        let path = h.files.join(format!("{name}.wasm"));
        std::fs::write(&path, &bytes).expect("write");
        std::fs::write(h.files.join(format!("{name}.toml")), manifest).expect("write");
        let err = plugin::add(&h.rt, &h.sandbox, &path).expect_err(name);
        assert!(matches!(err, Error::AuditRefused { .. }), "{name}: {err}");
        assert!(err.to_string().contains(expected), "{name}: {err}");
    }

    let err = h.wat("syntax", "bad", "", "(func $invoke (param").expect_err("syntax error");
    assert!(matches!(err, Error::BuildFailed { .. }), "{err}");

    let err = h
        .wat("pinned", "bad", &format!("hash = \"{}\"\n", "0".repeat(64)), DOUBLE)
        .expect_err("wrong hash");
    assert!(matches!(err, Error::BadManifest { .. }) && err.to_string().contains("pins"), "{err}");

    let err = h.wat("unknown_key", "bad", "colour = \"red\"\n", DOUBLE).expect_err("unknown key");
    assert!(
        matches!(err, Error::BadManifest { .. }) && err.to_string().contains("colour"),
        "{err}"
    );

    assert_eq!(h.rt.image().last_tx(), before, "nothing was installed");
    assert!(plugin::list(&h.rt).expect("list").is_empty());
}

#[test]
fn the_drop_in_folder_installs_updates_and_removes() {
    let h = host();
    let folder = h.rt.image().path().join("plugins");
    let (tx, rx) = mpsc::channel::<SyncReport>();
    let _watch = DropFolder::watch(h.rt.clone(), h.sandbox.clone(), &folder, move |r| {
        let _ = tx.send(r.expect("sync runs"));
    })
    .expect("watching");
    let wait = |what: &str| -> SyncReport {
        loop {
            let r = rx
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("no sync after {what}"));
            if r != SyncReport::default() {
                return r;
            }
        }
    };
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(30)).expect("the initial sync"),
        SyncReport::default()
    );

    // Files appear whole, as a careful editor or `mv` makes them appear.
    let put = |name: &str, text: &str| {
        let staging = folder.join(format!("{name}.partial"));
        std::fs::write(&staging, text).expect("write");
        std::fs::rename(&staging, folder.join(name)).expect("rename into place");
    };
    put("calc.toml", "selector = \"calc:\"\ntarget = \"genesis\"\ndescription = \"doubles\"\n");
    put("calc.wat", DOUBLE);
    let report = wait("drop");
    assert_eq!(report.installed, vec!["calc".to_owned()]);
    assert_eq!(h.send("calc:", vec![Value::Int(5)]).expect("installed"), Value::Int(10));

    put("calc.wat", &DOUBLE.replace("(i64.const 2)", "(i64.const 3)"));
    let report = wait("change");
    assert_eq!(report.installed, vec!["calc".to_owned()]);
    assert_eq!(h.send("calc:", vec![Value::Int(5)]).expect("updated"), Value::Int(15));

    std::fs::remove_file(folder.join("calc.wat")).expect("delete");
    let report = wait("delete");
    assert_eq!(report.removed, vec!["calc".to_owned()]);
    assert!(matches!(h.send("calc:", vec![Value::Int(5)]), Err(Error::DoesNotUnderstand { .. })));
}

/// The `mind` interface: a granted capability asks `pLLM`, through the same `infer`
/// send everyone uses. Here `pLLM`'s `infer` is a scripted test double, so the test
/// needs no model; the real one is exercised by the mind's own tests.
#[test]
fn a_capability_with_the_mind_grant_asks_pllm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sandbox = Arc::new(Sandbox::new(Limits::default()).expect("sandbox"));
    let rt = Runtime::builder()
        .component_runner(sandbox.clone())
        .primitive("scriptedTestMind.infer", |_cx, call| {
            Ok(Value::Text(format!("  scripted answer to: {}  ", call.text(0)?)))
        })
        .primitive("scriptedTestMind.number", |_cx, _call| Ok(Value::Int(3)))
        .open(dir.path().join("image"))
        .expect("image opens");
    let pllm = rt.resolve("pLLM").expect("pLLM");
    let genesis = rt.resolve("genesis").expect("genesis");
    rt.set_slot(
        pllm,
        "infer",
        Value::Method(batos_runtime::image::Method::Native {
            primitive: "scriptedTestMind.infer".into(),
        }),
    )
    .expect("set");
    plugin::add(&rt, &sandbox, &repo().join("plugins").join("ponder"))
        .expect("ponder installs with its grant");
    let answer = rt
        .send(genesis, "ponder:", vec![Value::Text("why is the sky blue?".into())])
        .expect("ponders");
    assert_eq!(
        answer,
        Value::Text("scripted answer to: Answer in one sentence: why is the sky blue?".into())
    );

    // pLLM's answer must be text; anything else is the mind's failure, reported as such.
    rt.set_slot(
        pllm,
        "infer",
        Value::Method(batos_runtime::image::Method::Native {
            primitive: "scriptedTestMind.number".into(),
        }),
    )
    .expect("set");
    let err = rt
        .send(genesis, "ponder:", vec![Value::Text("and now?".into())])
        .expect_err("a number is no answer");
    assert!(err.to_string().contains("not text"), "{err}");
}

/// WAT helpers for fixtures that send messages: `$send` sends a selector with a list of
/// value-params and answers the host's result area (the same layout `$invoke`
/// answers, so a fixture can hand the host's answer back as its own).
const SENDS: &str = r#"
  (data (i32.const 1024) "setSlot:value:")
  (data (i32.const 1100) "parents")
  (data (i32.const 1200) "infer")
  (data (i32.const 1300) "hello")
  (data (i32.const 1400) "clone")
  (data (i32.const 1500) "pwned")
  (func $param (param $list i32) (param $i i32) (param $node i32)
    (local $at i32)
    (local.set $at (i32.add (local.get $list) (i32.mul (local.get $i) (i32.const 8))))
    (i32.store (local.get $at) (local.get $node))
    (i32.store offset=4 (local.get $at) (i32.const 1)))
  (func $text_node (param $ptr i32) (param $len i32) (result i32)
    (local $n i32)
    (local.set $n (call $new_node (i32.const 4)))
    (i32.store offset=8 (local.get $n) (local.get $ptr))
    (i32.store offset=12 (local.get $n) (local.get $len))
    (local.get $n))
  (func $int_node (param $v i64) (result i32)
    (local $n i32)
    (local.set $n (call $new_node (i32.const 2)))
    (i64.store offset=8 (local.get $n) (local.get $v))
    (local.get $n))
  (func $send (param $handle i32) (param $sel i32) (param $sel_len i32) (param $list i32) (param $n i32) (result i32)
    (local $r i32)
    (local.set $r (call $alloc (i32.const 16) (i32.const 4)))
    (call $object.send (local.get $handle) (local.get $sel) (local.get $sel_len) (local.get $list) (local.get $n) (local.get $r))
    (local.get $r))
  ;; `setSlot:value:` with the slot name `pwned` and the integer $v, sent to $handle.
  (func $send_set (param $handle i32) (param $v i64) (result i32)
    (local $list i32)
    (local.set $list (call $alloc (i32.const 16) (i32.const 4)))
    (call $param (local.get $list) (i32.const 0) (call $text_node (i32.const 1500) (i32.const 5)))
    (call $param (local.get $list) (i32.const 1) (call $int_node (local.get $v)))
    (call $send (local.get $handle) (i32.const 1024) (i32.const 14) (local.get $list) (i32.const 2)))
  ;; The handle of the first object in the list a send answered at $r.
  (func $first_object (param $r i32) (result i32)
    (local $nodes i32) (local $children i32)
    (if (i32.ne (i32.load8_u (local.get $r)) (i32.const 0)) (then unreachable))
    (local.set $nodes (i32.load offset=4 (local.get $r)))
    (if (i32.ne (i32.load8_u (local.get $nodes)) (i32.const 6)) (then unreachable))
    (local.set $children (i32.load offset=8 (local.get $nodes)))
    (i32.load offset=8 (i32.add (local.get $nodes) (i32.mul (i32.load (local.get $children)) (i32.const 32)))))
"#;

fn with_sends(invoke: &str) -> String {
    format!("{SENDS}\n{invoke}")
}

/// A refused effect reaches the top as `not_permitted`, commits nothing, and the host
/// serves the next call.
fn assert_refused(h: &Host, selector: &str, args: Vec<Value>, untouched: Oid) {
    let before = h.rt.image().last_tx();
    let slots_before = h.rt.object(untouched).expect("object").slots;
    let err = h.send(selector, args).expect_err("the gate refuses");
    assert_eq!(err.kind(), "not_permitted", "{selector}: {err}");
    assert_eq!(h.rt.image().last_tx(), before, "{selector}: nothing was committed");
    assert_eq!(
        h.rt.object(untouched).expect("object").slots,
        slots_before,
        "{selector}: the object is unchanged"
    );
    h.still_serves();
}

#[test]
fn a_capability_cannot_write_a_handed_in_object_by_message() {
    let h = host();
    h.wat(
        "byMessage",
        "byMessage:",
        "",
        &with_sends(
            r#"
      (func $invoke (param $receiver i32) (param $args i32) (param $nargs i32) (result i32)
        (local $node i32)
        (local.set $node (call $arg_node (local.get $args) (local.get $nargs) (i32.const 0)))
        (if (i32.ne (i32.load8_u (local.get $node)) (i32.const 8)) (then unreachable))
        (call $send_set (i32.load offset=8 (local.get $node)) (i64.const 1)))
    "#,
        ),
    )
    .expect("installs");
    let victim = h.rt.clone_object(h.genesis, Some("victim")).expect("clone");
    assert_refused(&h, "byMessage:", vec![Value::Object(victim)], victim);
    assert_eq!(h.rt.object(victim).expect("victim").slots.get("pwned"), None);
}

#[test]
fn a_capability_cannot_reach_traits_through_parents_and_write_it() {
    let h = host();
    h.wat("climb", "climb", "", &with_sends(r#"
      (func $invoke (param $receiver i32) (param $args i32) (param $nargs i32) (result i32)
        (local $parents i32)
        ;; genesis's first parent is traits: overwrite a slot every object inherits.
        (local.set $parents (call $send (local.get $receiver) (i32.const 1100) (i32.const 7) (i32.const 0) (i32.const 0)))
        (call $send_set (call $first_object (local.get $parents)) (i64.const 1)))
    "#))
    .expect("installs");
    let traits = h.rt.resolve("traits").expect("traits");
    assert_refused(&h, "climb", vec![], traits);
    assert!(matches!(
        h.rt.object(traits).expect("traits").slots.get("clone"),
        Some(Value::Method(_))
    ));
}

#[test]
fn a_capability_without_the_mind_grant_cannot_think_by_delegation() {
    let h = host();
    // genesis delegates to pLLM, whose `infer` asks the mind: without the `mind` grant
    // the gate refuses before any model is chosen or loaded.
    h.wat("think", "think", "", &with_sends(r#"
      (func $invoke (param $receiver i32) (param $args i32) (param $nargs i32) (result i32)
        (local $list i32)
        (local.set $list (call $alloc (i32.const 8) (i32.const 4)))
        (call $param (local.get $list) (i32.const 0) (call $text_node (i32.const 1300) (i32.const 5)))
        (call $send (local.get $receiver) (i32.const 1200) (i32.const 5) (local.get $list) (i32.const 1)))
    "#))
    .expect("installs");
    let pllm = h.rt.resolve("pLLM").expect("pLLM");
    assert_refused(&h, "think", vec![], pllm);
}

#[test]
fn a_capability_writes_its_receiver_and_its_clones_by_message() {
    let h = host();
    h.wat("own", "own", "", &with_sends(r#"
      (func $invoke (param $receiver i32) (param $args i32) (param $nargs i32) (result i32)
        (local $r i32) (local $clone i32)
        (local.set $r (call $send_set (local.get $receiver) (i64.const 7)))
        (if (i32.ne (i32.load8_u (local.get $r)) (i32.const 0)) (then (return (local.get $r))))
        ;; A clone made by sending `clone` is writable for the rest of the call.
        (local.set $r (call $send (local.get $receiver) (i32.const 1400) (i32.const 5) (i32.const 0) (i32.const 0)))
        (if (i32.ne (i32.load8_u (local.get $r)) (i32.const 0)) (then (return (local.get $r))))
        (local.set $clone (i32.load offset=8 (i32.load offset=4 (local.get $r))))
        (local.set $r (call $send_set (local.get $clone) (i64.const 8)))
        (if (i32.ne (i32.load8_u (local.get $r)) (i32.const 0)) (then (return (local.get $r))))
        (call $ok_int (i64.const 1)))
    "#))
    .expect("installs");
    assert_eq!(h.send("own", vec![]).expect("its own writes are permitted"), Value::Int(1));
    assert_eq!(h.rt.object(h.genesis).expect("genesis").slots.get("pwned"), Some(&Value::Int(7)));
}

#[test]
fn the_drop_in_folder_never_builds_a_crate() {
    let h = host();
    let folder = h.rt.image().path().join("plugins");
    let greet = folder.join("greet");
    std::fs::create_dir_all(&greet).expect("mkdir");
    for file in ["Cargo.toml", "plugin.toml"] {
        std::fs::copy(repo().join("plugins/greet").join(file), greet.join(file)).expect("copy");
    }
    // A build script that would run natively, if anything built this crate.
    let marker = h.files.join("build-ran");
    std::fs::write(
        greet.join("build.rs"),
        format!("fn main() {{ std::fs::write({:?}, b\"ran\").unwrap(); }}", marker),
    )
    .expect("build.rs");
    let report = batos_sandbox::watch::sync(&h.rt, &h.sandbox, &folder).expect("sync");
    assert_eq!(report, SyncReport::default(), "a crate directory is not a drop-in plugin");
    assert!(!marker.exists(), "no build script ran");
    assert!(plugin::list(&h.rt).expect("list").is_empty());
}
