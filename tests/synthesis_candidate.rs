//! Candidates for synthesised methods: a function as a model would write it is wrapped
//! in the fixed code, built in the warm workspace, audited, installed and called; a
//! candidate that does not compile comes back with the compiler's diagnostics.

use std::sync::Arc;

use batos::image::Method;
use batos::sandbox::{Grants, Limits, Sandbox};
use batos::synthesis::candidate::{Signature, Type, Workspace};
use batos::{Error, Runtime, Value};

fn install_and_send(rt: &Runtime, sandbox: &Sandbox, bytes: &[u8], selector: &str, args: Vec<Value>) -> batos::Result<Value> {
    sandbox.audit(bytes, &Grants::default(), selector)?;
    let genesis = rt.resolve("genesis")?;
    rt.transact("install candidate", |cx| {
        let component = cx.tx().put_blob(bytes)?;
        cx.tx().set_slot(genesis, selector, &Value::Method(Method::Component { component, grants: vec![], deadline_ms: None }))
    })?;
    rt.send(genesis, selector, args)
}

#[test]
fn candidates_build_run_and_report_compile_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sandbox = Arc::new(Sandbox::new(Limits::default()).expect("sandbox"));
    let rt = Runtime::builder().component_runner(sandbox.clone()).open(dir.path().join("image")).expect("image");
    let workspace = Workspace::open(&dir.path().join("workspace"), &Workspace::default_sdk()).expect("workspace");

    let factorial = Signature::infer("factorial", &[Value::Int(5)], None, false).expect("signature");
    let bytes = workspace.build(&factorial, "fn factorial(a: i64) -> i64 {\n    (1..=a).product()\n}").expect("builds");
    assert_eq!(install_and_send(&rt, &sandbox, &bytes, "factorial", vec![Value::Int(5)]).expect("runs"), Value::Int(120));
    let err = rt.send(rt.resolve("genesis").expect("genesis"), "factorial", vec![Value::Text("five".into())]).expect_err("typed");
    assert!(matches!(err, Error::BadArguments { .. }), "{err}");

    let words = Signature::infer("sortWords:", &[Value::List(vec![Value::Text("b".into()), Value::Text("a".into())])], Some(Type::TextList), false).expect("signature");
    assert_eq!(words.rust(), "fn sort_words(a: Vec<String>) -> Vec<String>");
    let bytes = workspace.build(&words, "fn sort_words(mut a: Vec<String>) -> Vec<String> { a.sort(); a }").expect("builds");
    let sorted = install_and_send(&rt, &sandbox, &bytes, "sortWords:", vec![Value::List(vec![Value::Text("pear".into()), Value::Text("apple".into())])]).expect("runs");
    assert_eq!(sorted, Value::List(vec![Value::Text("apple".into()), Value::Text("pear".into())]));

    let err = workspace.build(&factorial, "fn factorial(a: i64) -> i64 {\n    \"not a number\"\n}").expect_err("a type error");
    let Error::BuildFailed { detail, .. } = &err else { panic!("a build failure: {err}") };
    assert!(detail.contains("mismatched types"), "the compiler's diagnostics come back: {detail}");

    // A slip rustc knows the fix for is fixed by its own suggestion, not a round of the mind.
    let max = Signature::infer("maxOfList:", &[Value::List(vec![Value::Int(3)])], Some(Type::Int), false).expect("signature");
    let slip = "fn max_of_list(a: Vec<i64>) -> i64 {\n    a.iter().max().unwrap_or(-1)\n}";
    assert!(workspace.build(&max, slip).is_err(), "as written it does not compile");
    let (bytes, fixed) = workspace.build_fixing(&max, slip, 3).expect("the compiler's suggestions fix it");
    assert_ne!(fixed, slip, "{fixed}");
    assert_eq!(install_and_send(&rt, &sandbox, &bytes, "maxOfList:", vec![Value::List(vec![Value::Int(3), Value::Int(9)])]).expect("runs"), Value::Int(9));
}
