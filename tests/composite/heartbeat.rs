//! The heartbeat: acting on stagnation, within its budget, and not at all when off.

use std::sync::Mutex;

use batos_composite::heartbeat::{self, Act, Actor, Done, FailedMessage};
use batos_image::Value;

/// A test double for the kernel: records what it was asked to do and reports a fixed
/// number of tokens.
#[derive(Default)]
struct RecordingTestActor {
    asked: Mutex<Vec<String>>,
    tokens: u64,
}

impl Actor for RecordingTestActor {
    fn resynthesize(&self, message: &FailedMessage) -> Done {
        self.asked.lock().expect("asked").push(format!("resynthesize {}", message.selector));
        Done { ok: true, summary: "retried".into(), tokens: self.tokens, transactions: vec![] }
    }
    fn compress(&self) -> Done {
        self.asked.lock().expect("asked").push("compress".into());
        Done { ok: true, summary: "compressed".into(), tokens: self.tokens, transactions: vec![] }
    }
    fn pursue(&self, goal: &str) -> Done {
        self.asked.lock().expect("asked").push(format!("pursue {goal}"));
        Done { ok: true, summary: "pursued".into(), tokens: self.tokens, transactions: vec![7] }
    }
}

const HOUR: i64 = 3_600_000;

fn beat(w: &crate::World, actor: &RecordingTestActor, at: i64) -> heartbeat::Beat {
    heartbeat::beat(&w.rt, &w.minds, &crate::HashingTestEmbedder, actor, at).expect("beats")
}

#[test]
fn a_stagnant_system_acts_after_n_beats_and_keeps_to_its_budget() {
    let w = crate::world(&[
        "create a method on genesis that answers the number of vowels in a text",
        "create a method on genesis that reverses a list",
    ]);
    w.set("heartbeat", "stagnantBeats", Value::Int(2));
    let actor = RecordingTestActor { tokens: 100, ..RecordingTestActor::default() };
    let t = batos_composite::now_ms();

    // An idle image: CEM 0, stagnant. The first beat waits.
    let first = beat(&w, &actor, t);
    assert_eq!(first.cem.value, 0.0);
    assert_eq!((first.stagnant, first.act.clone()), (1, None));
    // The second acts on the weakest term (diversity: no persona was used), through the
    // least used persona (all tied: the first, ALFRED), whose goal is pursued.
    let second = beat(&w, &actor, t + 1000);
    let Some(Act::Pursue { persona, goal }) = second.act.clone() else {
        panic!("pursues a goal: {second:?}")
    };
    assert_eq!(persona, "alfred");
    assert_eq!(goal, "create a method on genesis that answers the number of vowels in a text");
    assert_eq!(second.stagnant, 0, "acting starts the count again");
    assert!(w.mind.system(0).starts_with("You are ALFRED"));
    assert!(w.mind.user(0).contains("Composite Entropy Metric is low (0.00"), "{}", w.mind.user(0));
    assert_eq!(*actor.asked.lock().expect("asked"), [format!("pursue {goal}")]);

    // Stagnant again two beats later, but one act this hour is the budget.
    beat(&w, &actor, t + 2000);
    let refused = beat(&w, &actor, t + 3000);
    assert_eq!(refused.act, None);
    assert!(refused.note.contains("over budget: 1 act(s) in the last hour"), "{}", refused.note);
    assert_eq!(actor.asked.lock().expect("asked").len(), 1);

    // An hour on, it may act again.
    let again = beat(&w, &actor, t + HOUR + 4000);
    assert!(matches!(again.act, Some(Act::Pursue { .. })), "{again:?}");
    assert_eq!(actor.asked.lock().expect("asked").len(), 2);

    // The record: every beat, and each act with its tokens (the goal's 50 + the
    // actor's 100) and transactions.
    let (beats, acts) =
        w.rt.view(|cx| Ok((heartbeat::beats(cx.tx())?, heartbeat::acts_kept(cx.tx())?)))
            .expect("reads");
    assert_eq!(beats.len(), 5);
    // The act's cause names the beat that took it.
    let next = w.rt.view(|cx| heartbeat::next_beat(cx.tx())).expect("reads");
    assert_eq!((again.n, next), (5, 6));
    assert_eq!(acts.len(), 2);
    assert_eq!(acts[0]["tokens"], Value::Int(150));
    assert_eq!(acts[0]["transactions"], Value::List(vec![Value::Int(7)]));
    assert_eq!(acts[0]["persona"], Value::Text("alfred".into()));
}

#[test]
fn the_token_budget_holds_for_a_day() {
    let w = crate::world(&["create a method on genesis that doubles a number"; 2]);
    w.set("heartbeat", "stagnantBeats", Value::Int(1));
    w.set("heartbeat", "actionsPerHour", Value::Int(100));
    w.set("heartbeat", "tokensPerDay", Value::Int(500));
    let actor = RecordingTestActor { tokens: 600, ..RecordingTestActor::default() };
    let t = batos_composite::now_ms();
    assert!(beat(&w, &actor, t).act.is_some());
    let over = beat(&w, &actor, t + HOUR);
    assert_eq!(over.act, None);
    assert!(over.note.contains("650 tokens in the last day, 500 allowed"), "{}", over.note);
    assert!(beat(&w, &actor, t + 25 * HOUR).act.is_some(), "a day later it may act");
}

#[test]
fn the_off_switch_stops_everything() {
    let w = crate::world(&[]);
    w.set("heartbeat", "stagnantBeats", Value::Int(1));
    w.set("heartbeat", "enabled", Value::Bool(false));
    let actor = RecordingTestActor::default();
    let last = w.rt.image().last_tx();
    for i in 0..3 {
        let b = beat(&w, &actor, batos_composite::now_ms() + i);
        assert!(b.note.starts_with("off"), "{}", b.note);
        assert_eq!(b.act, None);
    }
    assert!(actor.asked.lock().expect("asked").is_empty());
    assert_eq!(w.mind.calls(), 0);
    assert_eq!(w.rt.image().last_tx(), last, "an off heartbeat writes nothing");
}

#[test]
fn a_failed_message_is_synthesised_again_when_growth_is_weakest() {
    let w = crate::world(&[]);
    w.set("heartbeat", "stagnantBeats", Value::Int(1));
    // Growth weighs most: the act answers it by retrying what failed.
    w.set(
        "heartbeat",
        "weights",
        Value::Map(
            [("cog", 0.1), ("sol", 0.1), ("struc", 0.7), ("rel", 0.1)]
                .iter()
                .map(|(k, v)| ((*k).to_owned(), Value::Float(*v)))
                .collect(),
        ),
    );
    let genesis = w.rt.resolve("genesis").expect("genesis");
    let (_, cycle) = batos_synthesis::cycle::create(
        &w.rt,
        genesis,
        "leapYear:",
        &[Value::Int(2024)],
        Some("is it a leap year"),
        "test",
    )
    .expect("a cycle");
    batos_synthesis::cycle::transition(&w.rt, cycle, batos_synthesis::cycle::State::Failed, &[])
        .expect("fails");
    let actor = RecordingTestActor::default();
    let t = batos_composite::now_ms();
    let b = beat(&w, &actor, t);
    let Some(Act::Resynthesize(m)) = b.act else { panic!("retries: {b:?}") };
    assert_eq!((m.selector.as_str(), m.args.clone()), ("leapYear:", vec![Value::Int(2024)]));
    assert_eq!(m.brief.as_deref(), Some("is it a leap year"));
    // Retried once: the next act does not retry it again (no goal is scripted, so
    // BRICK's goal fails and the failure is what is recorded).
    let next = beat(&w, &actor, t + HOUR);
    assert!(!matches!(next.act, Some(Act::Resynthesize(_))), "{next:?}");
    assert_eq!(*actor.asked.lock().expect("asked"), ["resynthesize leapYear:"]);
}
