//! Sandbox benchmarks, side by side in one run: a warm call of a trivial capability
//! through batos (send, lookup, fresh instance from `InstancePre`, limits, invoke,
//! result) against a bare wasmtime call of the same component (fresh instance from an
//! `InstancePre`, invoke, nothing else); a call that reads and writes a slot and
//! commits; and a cold install (audit and compile).
//! Run: `cargo bench -p batos-sandbox --bench sandbox`

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use batos_runtime::{Method, Runtime, Value};
use batos_sandbox::{build, Grants, Limits, Sandbox};
use wasmtime::component::{HasSelf, Linker, Resource, ResourceTable};
use wasmtime::Store;

mod bare {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "capability",
        with: { "batos:uvm/types.object": super::Stub },
    });
}

/// The bare host: a resource table and nothing behind it.
pub struct Stub;
struct Bare {
    table: ResourceTable,
}

use bare::batos::uvm::types as wit;

impl wit::Host for Bare {}
impl wit::HostObject for Bare {
    fn slot(&mut self, _: Resource<Stub>, _: String) -> Result<wit::Value, wit::Error> {
        Ok(wit::Value { nodes: vec![wit::Node::Nil] })
    }
    fn set_slot(
        &mut self,
        _: Resource<Stub>,
        _: String,
        _: wit::ValueParam,
    ) -> Result<(), wit::Error> {
        Ok(())
    }
    fn slot_names(&mut self, _: Resource<Stub>) -> Result<Vec<String>, wit::Error> {
        Ok(Vec::new())
    }
    fn send(
        &mut self,
        _: Resource<Stub>,
        _: String,
        _: Vec<wit::ValueParam>,
    ) -> Result<wit::Value, wit::Error> {
        Ok(wit::Value { nodes: vec![wit::Node::Nil] })
    }
    fn clone(&mut self, this: Resource<Stub>) -> Result<Resource<Stub>, wit::Error> {
        Ok(Resource::new_own(this.rep()))
    }
    fn drop(&mut self, _: Resource<Stub>) -> wasmtime::Result<()> {
        Ok(())
    }
}
impl bare::batos::uvm::log::Host for Bare {
    fn log(&mut self, _: bare::batos::uvm::log::Level, _: String) {}
}

const DOUBLE: &str = r#"
(func $invoke (param $receiver i32) (param $args i32) (param $nargs i32) (result i32)
  (call $ok_int (i64.mul (call $arg_int (local.get $args) (local.get $nargs) (i32.const 0)) (i64.const 2))))
"#;

const COUNTER: &str = include_str!("../../tests/support/increment.wat");

fn percentiles(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q) as usize].as_secs_f64() * 1e6;
    (at(0.5), at(0.99))
}

fn sample(n: usize, mut op: impl FnMut()) -> (f64, f64) {
    for _ in 0..n / 10 {
        op();
    }
    let samples = (0..n)
        .map(|_| {
            let t = Instant::now();
            op();
            t.elapsed()
        })
        .collect();
    percentiles(samples)
}

fn install(rt: &Runtime, sandbox: &Sandbox, selector: &str, component: &[u8]) {
    sandbox.audit(component, &Grants::new(), selector).expect("audit");
    let genesis = rt.resolve("genesis").expect("genesis");
    rt.transact("bench install", |cx| {
        let blob = cx.tx_mut("store a blob")?.put_blob(component)?;
        cx.set_slot(
            genesis,
            selector,
            &Value::Method(Method::Component {
                component: blob,
                grants: vec![],
                deadline_ms: None,
            }),
        )
    })
    .expect("installed");
}

fn main() {
    let quick = std::env::args().all(|a| a != "--bench");
    let n = if quick { 200 } else { 20_000 };
    let double = build::component_from_wat(DOUBLE, "double").expect("builds");
    let counter = build::component_from_wat(COUNTER, "counter").expect("builds");

    let dir = tempfile::tempdir().expect("tempdir");
    let sandbox = Arc::new(Sandbox::new(Limits::default()).expect("sandbox"));
    let rt = Runtime::builder()
        .component_runner(sandbox.clone())
        .open(dir.path().join("image"))
        .expect("opens");
    let genesis = rt.resolve("genesis").expect("genesis");
    install(&rt, &sandbox, "double:", &double);
    install(&rt, &sandbox, "increment", &counter);
    println!(
        "sandbox benchmarks ({:?} allocator){}",
        sandbox.allocator(),
        if quick { " — quick mode" } else { "" }
    );
    println!();

    let (b50, b99) = sample(n, || {
        black_box(rt.send(genesis, "double:", vec![Value::Int(21)]).expect("call"));
    });

    // The anchor: the same component on the same engine (pooling, fuel, epochs), no
    // batos in between.
    let engine = sandbox.engine().clone();
    let component = wasmtime::component::Component::new(&engine, &double).expect("compiles");
    let mut linker: Linker<Bare> = Linker::new(&engine);
    wit::add_to_linker::<Bare, HasSelf<Bare>>(&mut linker, |s| s).expect("types");
    bare::batos::uvm::log::add_to_linker::<Bare, HasSelf<Bare>>(&mut linker, |s| s).expect("log");
    let pre = bare::CapabilityPre::new(linker.instantiate_pre(&component).expect("links"))
        .expect("world");
    let (r50, r99) = sample(n, || {
        let mut store = Store::new(&engine, Bare { table: ResourceTable::new() });
        store.set_fuel(u64::MAX / 2).expect("fuel");
        store.set_epoch_deadline(1_000);
        let receiver = store.data_mut().table.push(Stub).expect("handle");
        let args = vec![wit::Value { nodes: vec![wit::Node::Integer(21)] }];
        let instance = pre.instantiate(&mut store).expect("instance");
        black_box(
            instance
                .call_invoke(&mut store, Resource::new_own(receiver.rep()), &args)
                .expect("call"),
        )
        .ok();
    });
    println!("warm call of a trivial capability (double: 21), µs");
    println!("  batos send → component        p50 {b50:>8.2}   p99 {b99:>8.2}");
    println!("  bare wasmtime instantiate+call p50 {r50:>8.2}   p99 {r99:>8.2}");
    println!("  ratio batos / bare             p50 {:>8.2}x", b50 / r50);
    println!();

    rt.set_slot(genesis, "count", Value::Int(0)).expect("count");
    let (c50, c99) = sample(n, || {
        black_box(rt.send(genesis, "increment", vec![]).expect("call"));
    });
    println!("call that reads and writes a slot, including its commit, µs");
    println!("  batos send increment           p50 {c50:>8.2}   p99 {c99:>8.2}");
    println!();

    let cold = |bytes: &[u8]| {
        sample(if quick { 3 } else { 30 }, || {
            let fresh = Sandbox::new(Limits::default()).expect("sandbox");
            fresh.audit(bytes, &Grants::new(), "cold").expect("audit");
        })
    };
    let (d50, _) = cold(&double);
    println!("cold install (fresh engine, audit and compile), ms");
    println!("  WAT capability ({} bytes)    p50 {:>8.2}", double.len(), d50 / 1000.0);
    let greet = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/greet");
    if let Ok(bytes) = build::component_from_crate(&greet, "greet") {
        let (g50, _) = cold(&bytes);
        println!("  Rust capability ({} bytes)  p50 {:>8.2}", bytes.len(), g50 / 1000.0);
    }
}
