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
    let w = crate::world(&["REJECT: it answers -3 for -3, not 3\n", "APPROVE"]);
    assert!(PersonaCritic::if_enabled(&w.rt, &w.minds).expect("reads").is_none(), "off by default");
    w.set("personas", "crucible", Value::Bool(true));
    let critic = PersonaCritic::if_enabled(&w.rt, &w.minds).expect("reads").expect("on");
    let critiques = critic.review(&work()).expect("reviews");
    assert_eq!(critiques.len(), 2);
    assert_eq!((critiques[0].reviewer.as_str(), critiques[0].approves), ("BRICK", false));
    assert_eq!(critiques[0].reason, "it answers -3 for -3, not 3");
    assert_eq!((critiques[1].reviewer.as_str(), critiques[1].approves), ("ALFRED", true));
    // Each reviewer saw the code and what it answered, with its own focus, and was held
    // to the verdict's shape.
    let user = w.mind.user(0);
    assert!(
        user.contains("fn absolute(a: i64) -> i64 { a }") && user.contains("(-3) => -3"),
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
}
