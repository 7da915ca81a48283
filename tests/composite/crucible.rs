//! BRICK and ALFRED as the crucible's reviewers.

use batos_composite::crucible::{self, PersonaCritic};
use batos_composite::ether;
use batos_image::Value;
use batos_mind::Prefix;
use batos_synthesis::crucible::Work;

fn work() -> Work<'static> {
    Work {
        selector: "absolute:",
        purpose: "the absolute value of a number",
        signature: "fn absolute(a: i64) -> i64",
        code: "fn absolute(a: i64) -> i64 { a }",
        answers: vec![("5".into(), "5".into()), ("-3".into(), "-3".into())],
    }
}

#[test]
fn the_reviewers_send_back_with_reasons_and_leave_a_pheromone() {
    let w = crate::world(&[
        "REJECT: -3 => 3 because the absolute value is never negative\n",
        "APPROVE",
    ]);
    assert!(PersonaCritic::if_enabled(&w.rt, &w.minds).expect("reads").is_none(), "off by default");
    w.set("personas", "crucible", Value::Bool(true));
    let critic = PersonaCritic::if_enabled(&w.rt, &w.minds).expect("reads").expect("on");
    let critiques = critic.review(&work()).expect("reviews");
    assert_eq!(critiques.len(), 2);
    assert_eq!((critiques[0].reviewer.as_str(), critiques[0].approves), ("BRICK", false));
    assert_eq!(critiques[0].reason, "the absolute value is never negative");
    let counter = critiques[0].counterexample.clone().expect("a counterexample");
    assert_eq!((counter.args, counter.expected), (vec![Value::Int(-3)], Value::Int(3)));
    assert_eq!((critiques[1].reviewer.as_str(), critiques[1].approves), ("ALFRED", true));
    // Each reviewer saw the code and what it answered, with its own focus, and was held
    // to the verdict's shape.
    let user = w.mind.user(0);
    assert!(
        user.contains("fn absolute(a: i64) -> i64 { a }") && user.contains("\n  -3 => -3"),
        "{user}"
    );
    assert!(user.contains("You check the logic"));
    assert!(w.mind.user(1).contains("You check safety and fit"));
    assert!(w.mind.prompts.lock().expect("prompts").iter().all(|(_, s)| s.constraint.is_some()));
    let live = w.rt.view(|cx| ether::live(cx.tx(), batos_composite::now_ms())).expect("reads");
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].0.kind, ether::LOGICAL_INCONSISTENCY);
}

#[test]
fn the_verdict_is_held_to_its_shape_while_sampled() {
    let c = crucible::verdict_constraint();
    for (text, expected) in [
        ("", Prefix::Open),
        ("APP", Prefix::Open),
        ("APPROVE", Prefix::Complete),
        ("APPROVED!", Prefix::Dead),
        ("REJ", Prefix::Open),
        ("REJECT: it ign", Prefix::Open),
        ("REJECT: it ignores zero\n", Prefix::Complete),
        ("Sure, here is my review", Prefix::Dead),
        ("REJECT it", Prefix::Dead),
    ] {
        assert_eq!(c.check(text), expected, "{text:?}");
    }
    let unclear = crucible::parse_verdict("ALFRED", "Looks fine to me");
    assert!(unclear.approves && unclear.reason.starts_with("unclear"), "{unclear:?}");
    // An objection in words alone carries no counterexample.
    let words = crucible::parse_verdict("BRICK", "REJECT: it does not handle negative numbers");
    assert!(!words.approves && words.counterexample.is_none(), "{words:?}");
    assert_eq!(words.reason, "it does not handle negative numbers");
    let pair =
        crucible::parse_verdict("BRICK", "REJECT: [1, 2], 3 => [1, 2, 3] because it must append");
    let counter = pair.counterexample.expect("parsed");
    assert_eq!(counter.args.len(), 2);
}
