//! Mutated components through the audit and, when they pass, installation and a call:
//! whatever the bytes, the host answers with a result or a typed error, never a panic.
//!
//! CI runs 150 cases. The long run (documented in ARCHITECTURE.md):
//! `BATOS_FUZZ_CASES=20000 cargo test --release -p batos-sandbox --test sandbox fuzz -- --nocapture`
//! (`BATOS_FUZZ_SEED` replays one).

use std::sync::Arc;

use batos_runtime::{BlobRef, Method, Runtime, Value};
use batos_sandbox::{build, Grants, Limits, Sandbox};
use rand::{Rng, SeedableRng};

const SEED_COMPONENT: &str = r#"
(data (i32.const 512) "count")
(func $invoke (param $receiver i32) (param $args i32) (param $nargs i32) (result i32)
  (drop (call $set_int (local.get $receiver) (i32.const 512) (i32.const 5) (i64.const 7)))
  (call $ok_int (i64.mul (call $arg_int (local.get $args) (local.get $nargs) (i32.const 0)) (i64.const 2))))
"#;

fn mutate(rng: &mut impl Rng, original: &[u8]) -> Vec<u8> {
    let mut bytes = original.to_vec();
    for _ in 0..rng.random_range(1..=4) {
        if bytes.is_empty() {
            break;
        }
        let at = rng.random_range(0..bytes.len());
        match rng.random_range(0..4) {
            0 => bytes[at] ^= 1 << rng.random_range(0..8),
            1 => bytes[at] = rng.random(),
            2 => bytes.truncate(at.max(8)),
            _ => {
                let extra: Vec<u8> = (0..rng.random_range(1..16)).map(|_| rng.random()).collect();
                bytes.splice(at..at, extra);
            }
        }
    }
    bytes
}

#[test]
fn mutated_components_never_crash_the_host() {
    let cases: u32 =
        std::env::var("BATOS_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(150);
    let seed: u64 = std::env::var("BATOS_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(rand::random);
    println!("component fuzzing: {cases} cases, seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let original = build::component_from_wat(SEED_COMPONENT, "seed").expect("the seed builds");
    let dir = tempfile::tempdir().expect("tempdir");
    let sandbox = Arc::new(
        Sandbox::new(Limits {
            deadline: std::time::Duration::from_millis(200),
            ..Limits::default()
        })
        .expect("sandbox"),
    );
    let rt = Runtime::builder()
        .component_runner(sandbox.clone())
        .open(dir.path().join("image"))
        .expect("opens");
    let genesis = rt.resolve("genesis").expect("genesis");
    let (mut passed, mut refused, mut called) = (0u32, 0u32, 0u32);
    for case in 0..cases {
        let bytes = mutate(&mut rng, &original);
        match sandbox.audit(&bytes, &Grants::new(), &format!("case {case}")) {
            Err(e) => {
                assert!(
                    matches!(e.kind(), "audit_refused" | "build_failed"),
                    "case {case}: unexpected {e}"
                );
                refused += 1;
            }
            Ok(()) => {
                passed += 1;
                let selector = format!("fuzz{case}");
                let installed = rt.transact("fuzz install", |cx| {
                    let component: BlobRef = cx.tx_mut("store a blob")?.put_blob(&bytes)?;
                    let method =
                        Method::Component { component, grants: Vec::new(), deadline_ms: None };
                    cx.set_slot(genesis, &selector, &Value::Method(method))
                });
                installed.expect("installing an audited component");
                // Any answer or typed error will do; a panic or a hang would not.
                if rt.send(genesis, &selector, vec![Value::Int(case.into())]).is_ok() {
                    called += 1;
                }
            }
        }
    }
    println!("component fuzzing: {refused} refused, {passed} passed the audit, {called} of those answered");
    assert!(refused > 0, "mutations that break the component must be refused");
    assert_eq!(
        rt.send(genesis, "description", vec![]).map(|v| matches!(v, Value::Text(_))).ok(),
        Some(true),
        "the host still serves"
    );
}
