//! The Socratic Contrapunto: who speaks in which order, what each is told, and what is
//! kept.

use batos_composite::dialogue::{self, Ask};
use batos_composite::ether;
use batos_image::Value;

fn ask(question: &str) -> Ask<'_> {
    Ask { question, persona: None, seed: 1, now_ms: batos_composite::now_ms() }
}

#[test]
fn the_second_persona_answers_having_read_the_first() {
    let w = crate::world(&[
        "BRICK: the image is a log of transactions; a crash keeps every committed one.",
        "ROBIN: building on BRICK, that means nobody loses work they were told was saved.",
    ]);
    w.plain_routing();
    let mut heard: Vec<(String, String)> = Vec::new();
    let d = dialogue::converse(
        &w.rt,
        &w.minds,
        &w.memory,
        &ask("How does the image survive a crash?"),
        &mut |p, t| heard.push((p.to_owned(), t.to_owned())),
    )
    .expect("converses");

    // Order: BRICK deconstructs, then ROBIN synthesises.
    let speakers: Vec<&str> = d.turns.iter().map(|t| t.persona.as_str()).collect();
    assert_eq!(speakers, ["brick", "robin"]);
    assert_eq!(heard.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>(), ["brick", "robin"]);
    // Content flow: BRICK was not shown an answer; ROBIN was shown BRICK's, whole, and
    // told to build on it.
    assert!(!w.mind.user(0).contains("answered:"), "{}", w.mind.user(0));
    let second = w.mind.user(1);
    assert!(
        second.contains("BRICK answered:\nBRICK: the image is a log of transactions"),
        "{second}"
    );
    assert!(second.contains("You answer after BRICK"), "{second}");
    // Each persona speaks with its own system prompt, codex and sampling.
    assert!(w.mind.system(0).starts_with("You are BRICK"));
    assert!(w.mind.system(1).starts_with("You are ROBIN"));
    assert!(w.mind.system(1).contains("ROBIN asks why"), "the codex section is given");
    let samplings: Vec<f32> =
        w.mind.prompts.lock().expect("prompts").iter().map(|(_, s)| s.temperature).collect();
    assert_eq!(samplings, [0.5, 0.7]);

    // Sources: the memory's passages (the codex, on a fresh image) numbered and cited.
    assert!(!d.sources.is_empty());
    assert!(w.mind.user(0).contains("[1] (batos:codex/personas.md)"), "{}", w.mind.user(0));

    // Kept as one object: question, turns, sources and the routing decision.
    let kept = w.rt.object(d.oid).expect("kept").slots;
    assert_eq!(kept["question"], Value::Text("How does the image survive a crash?".into()));
    let Value::List(turns) = &kept["turns"] else { panic!("turns") };
    assert_eq!(turns.len(), 2);
    let Value::Map(routing) = &kept["routing"] else { panic!("routing") };
    assert_eq!(
        routing["chosen"],
        Value::List(vec![Value::Text("brick".into()), Value::Text("robin".into())])
    );
    let registry = w.rt.resolve(dialogue::DIALOGUES_ROOT).expect("dialogues");
    assert_eq!(w.rt.object(registry).expect("registry").slots["d1"], Value::Object(d.oid));
}

#[test]
fn a_named_persona_answers_alone() {
    let w = crate::world(&["Check the disk first."]);
    let d = dialogue::converse(
        &w.rt,
        &w.minds,
        &w.memory,
        &Ask { persona: Some("@Alfred"), ..ask("The kernel is slow, what should I check?") },
        &mut |_, _| {},
    )
    .expect("converses");
    assert_eq!(d.turns.len(), 1);
    assert_eq!(d.turns[0].name, "ALFRED");
    assert!(d.decision.forced);
    assert_eq!(w.mind.calls(), 1);
}

#[test]
fn bad_questions_and_unknown_personas_are_refused_before_any_mind_is_asked() {
    let w = crate::world(&[]);
    for (question, persona, words) in
        [("   ", None, "empty"), ("why?", Some("batman"), "no persona `batman`")]
    {
        let e = dialogue::converse(
            &w.rt,
            &w.minds,
            &w.memory,
            &Ask { persona, ..ask(question) },
            &mut |_, _| {},
        )
        .expect_err("refused");
        assert_eq!(e.kind(), "bad_input");
        assert!(e.to_string().contains(words), "{e}");
    }
    let long = "x".repeat(dialogue::MAX_QUESTION_BYTES + 1);
    assert!(dialogue::converse(&w.rt, &w.minds, &w.memory, &ask(&long), &mut |_, _| {}).is_err());
    assert_eq!(w.mind.calls(), 0);
}

#[test]
fn a_question_the_memory_cannot_ground_leaves_a_knowledge_gap() {
    let w = crate::world(&["No idea.", "Nor I."]);
    w.plain_routing();
    let d =
        dialogue::converse(&w.rt, &w.minds, &w.memory, &ask("zyxxy quorble fnord"), &mut |_, _| {})
            .expect("converses");
    assert!(!d.memory_note.is_empty());
    let live = w.rt.view(|cx| ether::live(cx.tx(), batos_composite::now_ms())).expect("reads");
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].0.kind, ether::KNOWLEDGE_GAP);
    assert!(live[0].0.note.contains("zyxxy"));
}

#[test]
fn a_persona_is_an_object_whose_slots_the_person_changes() {
    let w = crate::world(&["Short."]);
    w.set("robin", "temperature", Value::Float(1.3));
    w.set("robin", "system", Value::Text("You are ROBIN, and you answer in haiku.".into()));
    dialogue::converse(
        &w.rt,
        &w.minds,
        &w.memory,
        &Ask { persona: Some("robin"), ..ask("What is a living image?") },
        &mut |_, _| {},
    )
    .expect("converses");
    assert!(w.mind.system(0).starts_with("You are ROBIN, and you answer in haiku."));
    assert_eq!(w.mind.prompts.lock().expect("prompts")[0].1.temperature, 1.3);
    // A persona is a clone of pLLM: it thinks with pLLM's mind unless it names its own.
    let robin = w.rt.resolve("robin").expect("robin");
    let pllm = w.rt.resolve("pLLM").expect("pLLM");
    assert_eq!(w.rt.object(robin).expect("robin").parents, [pllm]);
}
