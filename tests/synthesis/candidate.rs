//! Candidates for synthesised methods: a function as a model would write it is wrapped
//! in the fixed code, built in the warm workspace, audited, installed and called; a
//! candidate that does not compile comes back with the compiler's diagnostics.

use std::sync::Arc;

use batos_runtime::image::Method;
use batos_runtime::{Error, Runtime, Value};
use batos_sandbox::{Grants, Limits, Sandbox};
use batos_synthesis::candidate::{BuildError, Signature, Type, Workspace};

fn install_and_send(
    rt: &Runtime,
    sandbox: &Sandbox,
    bytes: &[u8],
    selector: &str,
    args: Vec<Value>,
) -> batos_runtime::Result<Value> {
    sandbox.audit(bytes, &Grants::default(), selector)?;
    let genesis = rt.resolve("genesis")?;
    rt.transact("install candidate", |cx| {
        let component = cx.tx_mut("store a blob")?.put_blob(bytes)?;
        cx.set_slot(
            genesis,
            selector,
            &Value::Method(Method::Component { component, grants: vec![], deadline_ms: None }),
        )
    })?;
    rt.send(genesis, selector, args)
}

/// An image with a sandbox, and a candidate workspace beside it.
fn bench() -> (tempfile::TempDir, Runtime, Arc<Sandbox>, Workspace) {
    let dir = tempfile::tempdir().expect("tempdir");
    let sandbox = Arc::new(Sandbox::new(Limits::default()).expect("sandbox"));
    let rt = Runtime::builder()
        .component_runner(sandbox.clone())
        .open(dir.path().join("image"))
        .expect("image");
    let workspace = Workspace::open(&dir.path().join("workspace")).expect("workspace");
    (dir, rt, sandbox, workspace)
}

#[test]
fn candidates_build_run_and_report_compile_errors() {
    let (_dir, rt, sandbox, workspace) = bench();

    let factorial =
        Signature::infer("factorial", &[Value::Int(5)], None, false).expect("signature");
    let bytes = workspace
        .build(&factorial, "fn factorial(a: i64) -> i64 {\n    (1..=a).product()\n}")
        .expect("builds");
    assert_eq!(
        install_and_send(&rt, &sandbox, &bytes, "factorial", vec![Value::Int(5)]).expect("runs"),
        Value::Int(120)
    );
    let err = rt
        .send(
            rt.resolve("genesis").expect("genesis"),
            "factorial",
            vec![Value::Text("five".into())],
        )
        .expect_err("typed");
    assert!(matches!(err, Error::BadArguments { .. }), "{err}");

    let words = Signature::infer(
        "sortWords:",
        &[Value::List(vec![Value::Text("b".into()), Value::Text("a".into())])],
        Some(Type::List(Box::new(Type::Text))),
        false,
    )
    .expect("signature");
    assert_eq!(words.rust(), "fn sort_words(a: Vec<String>) -> Vec<String>");
    let bytes = workspace
        .build(&words, "fn sort_words(mut a: Vec<String>) -> Vec<String> { a.sort(); a }")
        .expect("builds");
    let sorted = install_and_send(
        &rt,
        &sandbox,
        &bytes,
        "sortWords:",
        vec![Value::List(vec![Value::Text("pear".into()), Value::Text("apple".into())])],
    )
    .expect("runs");
    assert_eq!(sorted, Value::List(vec![Value::Text("apple".into()), Value::Text("pear".into())]));

    let err = workspace
        .build(&factorial, "fn factorial(a: i64) -> i64 {\n    \"not a number\"\n}")
        .expect_err("a type error");
    let BuildError::Compile(detail) = &err else { panic!("a compile error: {err}") };
    assert!(detail.contains("mismatched types"), "the compiler's diagnostics come back: {detail}");

    // A slip rustc knows the fix for is fixed by its own suggestion, not a round of the mind.
    let max =
        Signature::infer("maxOfList:", &[Value::List(vec![Value::Int(3)])], Some(Type::Int), false)
            .expect("signature");
    let slip = "fn max_of_list(a: Vec<i64>) -> i64 {\n    a.iter().max().unwrap_or(-1)\n}";
    assert!(workspace.build(&max, slip).is_err(), "as written it does not compile");
    let (bytes, fixed) =
        workspace.build_fixing(&max, slip, 3).expect("the compiler's suggestions fix it");
    assert_ne!(fixed, slip, "{fixed}");
    assert_eq!(
        install_and_send(
            &rt,
            &sandbox,
            &bytes,
            "maxOfList:",
            vec![Value::List(vec![Value::Int(3), Value::Int(9)])]
        )
        .expect("runs"),
        Value::Int(9)
    );
}

/// A sealed build is stopped at its time limit, with everything cargo started.
#[test]
fn a_build_past_its_time_is_stopped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seal = batos_sandbox::build::Seal {
        timeout: std::time::Duration::from_millis(20),
        ..Default::default()
    };
    let workspace =
        Workspace::open(&dir.path().join("workspace")).expect("workspace").with_seal(seal);
    let double =
        Signature::infer("double:", &[Value::Int(2)], Some(Type::Int), false).expect("signature");
    let err = workspace
        .build(&double, "fn double(a: i64) -> i64 { a * 2 }")
        .expect_err("no build finishes in 20 ms");
    assert!(matches!(&err, BuildError::Host(Error::Limit { limit: "build time", .. })), "{err}");
}

/// A sealed build sees none of the host's environment but what cargo needs, and fetches
/// nothing. The probe is a crate whose build script records the environment it sees
/// (candidates have no build script; this one shows what any code run by the build
/// would see).
#[test]
fn a_sealed_build_sees_a_scrubbed_environment() {
    use batos_sandbox::build::{self, Seal};
    let dir = tempfile::tempdir().expect("tempdir");
    let probe = dir.path().join("probe");
    std::fs::create_dir_all(probe.join("src")).expect("mkdir");
    std::fs::write(probe.join("Cargo.toml"), "[package]\nname = \"batos-seal-probe\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\n[lib]\ncrate-type = [\"cdylib\"]\n\n[workspace]\n").expect("manifest");
    std::fs::write(probe.join("src/lib.rs"), "").expect("lib");
    std::fs::write(
        probe.join("build.rs"),
        "fn main() { let names: Vec<String> = std::env::vars_os().map(|(k, _)| k.to_string_lossy().into_owned()).collect(); std::fs::write(std::path::Path::new(&std::env::var(\"CARGO_MANIFEST_DIR\").unwrap()).join(\"seen.txt\"), names.join(\"\\n\")).unwrap(); }",
    )
    .expect("build.rs");
    build::lock_workspace(&probe, "the probe").expect("locks");
    // A variable of the host's that no sealed build may see. Set through std, whose
    // environment lock also guards the environment a `Command` copies, so the other
    // tests of this binary spawning processes meanwhile read it consistently.
    std::env::set_var("BATOS_SEAL_PROBE_SECRET", "the host's secret");
    let seen = |sealed: bool| -> Vec<String> {
        let _ = std::fs::remove_file(probe.join("seen.txt"));
        let seal = Seal::default();
        build::build_crate(&probe, "the probe", sealed.then_some(&seal))
            .map(|_| ())
            .expect("builds");
        std::fs::read_to_string(probe.join("seen.txt"))
            .expect("the build script ran")
            .lines()
            .map(str::to_owned)
            .collect()
    };
    let open = seen(false);
    assert!(
        open.iter().any(|n| n == "BATOS_SEAL_PROBE_SECRET"),
        "the probe sees an open build's environment"
    );
    // Touch the source so the sealed build runs the build script again.
    std::fs::write(
        probe.join("build.rs"),
        std::fs::read_to_string(probe.join("build.rs")).expect("read") + "\n",
    )
    .expect("touch");
    let sealed = seen(true);
    assert!(
        !sealed.iter().any(|n| n == "BATOS_SEAL_PROBE_SECRET"),
        "the host's variable reached the sealed build: {sealed:?}"
    );
    assert!(sealed.iter().any(|n| n == "PATH"), "what cargo needs is kept: {sealed:?}");
}

/// Every value kind goes in and out of a synthesised function through the SDK's typed
/// conversions; common std items are in scope without imports; a panic's message is
/// the trap's reason.
#[test]
fn every_value_kind_converts_and_a_panic_says_why() {
    let (_dir, rt, sandbox, workspace) = bench();
    let floats = Value::List(vec![Value::Float(1.0), Value::Int(2), Value::Float(4.5)]);
    let nested = Value::List(vec![
        Value::List(vec![Value::Int(3), Value::Int(1)]),
        Value::List(vec![Value::Int(3)]),
    ]);
    let label = Value::Map([("x".to_owned(), Value::Int(2))].into());
    let sig = Signature::infer(
        "summarize:rows:scale:",
        &[floats.clone(), nested.clone(), label.clone()],
        None,
        false,
    )
    .expect("signature");
    // `HashSet` and `BTreeMap` without a `use`: the fixed code brings them in.
    let f = r#"fn summarize_rows_scale(xs: &[f64], rows: Vec<Vec<i32>>, scale: HashMap<String, i64>) -> BTreeMap<String, Option<f64>> {
    let distinct: HashSet<i32> = rows.iter().flatten().copied().collect();
    let mut out = BTreeMap::new();
    let mean = xs.iter().sum::<f64>() / xs.len() as f64;
    out.insert("mean".to_string(), Some(mean * scale["x"] as f64));
    out.insert("distinct".to_string(), Some(distinct.len() as f64));
    out.insert("none".to_string(), None);
    out
}"#;
    let bytes = workspace.build(&sig, f).expect("builds");
    let answer = install_and_send(
        &rt,
        &sandbox,
        &bytes,
        "summarize:rows:scale:",
        vec![floats, nested, label],
    )
    .expect("runs");
    assert_eq!(
        answer,
        Value::Map(
            [
                ("distinct".to_owned(), Value::Float(2.0)),
                ("mean".to_owned(), Value::Float(5.0)),
                ("none".to_owned(), Value::Nil),
            ]
            .into()
        )
    );

    let sig = Signature::infer("half:", &[Value::Int(3)], None, false).expect("signature");
    let bytes = workspace
        .build(
            &sig,
            "fn half(n: u8) -> u8 {\n    if n % 2 == 1 { panic!(\"{n} is odd\") }\n    n / 2\n}",
        )
        .expect("builds");
    let err =
        install_and_send(&rt, &sandbox, &bytes, "half:", vec![Value::Int(3)]).expect_err("panics");
    assert!(err.to_string().contains("panicked: 3 is odd"), "the panic's message: {err}");
    let genesis = rt.resolve("genesis").expect("genesis");
    let err = rt.send(genesis, "half:", vec![Value::Int(300)]).expect_err("out of range");
    assert!(
        err.to_string().contains("argument 1 must be an integer that fits u8, got 300"),
        "the argument is range-checked against the declared type: {err}"
    );
}
