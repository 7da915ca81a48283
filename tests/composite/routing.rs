//! Noisy top-k gating, the archetype mixture, and pheromones: deposit, evaporation,
//! and their pull on the routing.

use std::collections::BTreeMap;

use batos_composite::{ether, routing};
use batos_image::Value;

fn scores(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

#[test]
fn gating_noise_is_replayed_exactly_from_its_seed() {
    let s = scores(&[("alfred", 0.4), ("babs", 0.3), ("brick", 0.9), ("robin", 0.7)]);
    let a = routing::gate(&s, 0.3, 2, 42);
    let b = routing::gate(&s, 0.3, 2, 42);
    assert_eq!(a, b, "one seed, one decision");
    let c = routing::gate(&s, 0.3, 2, 43);
    assert_ne!(a.0, c.0, "another seed draws other noise");
    // The totals are the scores plus the noise, and the choice is the best two of them.
    for (k, total) in &a.1 {
        assert!((total - (s[k] + a.0[k])).abs() < 1e-12);
    }
    let mut order: Vec<(&String, &f64)> = a.1.iter().collect();
    order.sort_by(|x, y| y.1.total_cmp(x.1));
    assert_eq!(a.2, [order[0].0.clone(), order[1].0.clone()]);
}

#[test]
fn without_noise_the_best_scores_win_and_with_it_others_sometimes_do() {
    let s = scores(&[("alfred", 0.4), ("babs", 0.3), ("brick", 0.9), ("robin", 0.7)]);
    for seed in 0..50 {
        assert_eq!(routing::gate(&s, 0.0, 2, seed).2, ["brick", "robin"]);
    }
    // Intentional function bleed: at a noise of 0.3 ALFRED (0.3 behind ROBIN) is
    // sometimes brought in, BRICK nearly always stays.
    let mut alfred = 0;
    let mut noise = Vec::new();
    for seed in 0..2000 {
        let (n, _, chosen) = routing::gate(&s, 0.3, 2, seed);
        alfred += usize::from(chosen.iter().any(|c| c == "alfred"));
        noise.extend(n.values().copied());
    }
    assert!((50..1000).contains(&alfred), "alfred chosen {alfred} times in 2000");
    // The noise is N(0, 0.3²): its sample mean and deviation say so.
    let mean = noise.iter().sum::<f64>() / noise.len() as f64;
    let sd = (noise.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / noise.len() as f64).sqrt();
    assert!(mean.abs() < 0.02, "mean {mean}");
    assert!((sd - 0.3).abs() < 0.015, "standard deviation {sd}");
}

#[test]
fn archetype_weights_are_a_softmax_of_similarity() {
    let m = routing::mixture(&scores(&[("a", 0.6), ("b", 0.5)]), 0.05);
    assert!((m["a"] + m["b"] - 1.0).abs() < 1e-12);
    assert!((m["a"] / m["b"] - 2f64.exp()).abs() < 1e-9, "a lead of 0.1 weighs e² more");
}

#[test]
fn pheromones_evaporate_by_their_half_life_and_pull_the_routing() {
    let w = crate::world(&[]);
    w.plain_routing();
    let t0 = 1_000_000_000;
    let embedder = crate::HashingTestEmbedder;
    let before = routing::route(&w.rt, &embedder, "anything at all", 7, t0).expect("routes");
    assert_eq!(before.chosen, ["brick", "robin"]);
    assert_eq!(before.pheromones["babs"], 0.0);

    w.rt.transact("deposit", |cx| {
        ether::deposit(cx.tx_mut("test")?, ether::KNOWLEDGE_GAP, 1.0, "nothing on this", t0)
    })
    .expect("deposits");
    let half_life_ms = 3_600_000;
    let live_at = |t: i64| w.rt.view(|cx| ether::live(cx.tx(), t)).expect("reads");
    assert_eq!(live_at(t0)[0].1, 1.0);
    assert!((live_at(t0 + half_life_ms)[0].1 - 0.5).abs() < 1e-12);
    assert!((live_at(t0 + 3 * half_life_ms)[0].1 - 0.125).abs() < 1e-12);
    assert!(live_at(t0 + 7 * half_life_ms).is_empty(), "below 1% it is gone");
    assert_eq!(live_at(t0)[0].0.attracts, ["babs"]);

    // At deposit it adds the ether's weight (0.5) to BABS, enough to outrank ROBIN.
    let drawn = routing::route(&w.rt, &embedder, "anything at all", 7, t0).expect("routes");
    assert!((drawn.pheromones["babs"] - 0.5).abs() < 1e-12);
    assert_eq!(drawn.pheromones["robin"], 0.0);
    assert_eq!(drawn.chosen, ["brick", "babs"]);
    // An hour later it adds half as much, and ROBIN is back.
    let later =
        routing::route(&w.rt, &embedder, "anything at all", 7, t0 + half_life_ms).expect("routes");
    assert!((later.pheromones["babs"] - 0.25).abs() < 1e-12);
    assert_eq!(later.chosen, ["brick", "robin"]);

    // A deposit long after drops the evaporated one from the ether's list.
    let t_late = t0 + 10 * half_life_ms;
    w.rt.transact("deposit", |cx| {
        ether::deposit(
            cx.tx_mut("test")?,
            ether::FAILED_VERIFICATION,
            1.0,
            "a cycle failed",
            t_late,
        )
    })
    .expect("deposits");
    let ether_oid = w.rt.resolve(ether::ETHER_ROOT).expect("ether");
    let Some(Value::List(listed)) =
        w.rt.object(ether_oid).expect("ether").slots.get("pheromones").cloned()
    else {
        panic!("the ether lists its pheromones")
    };
    assert_eq!(listed.len(), 1);
    let live = live_at(t_late);
    assert_eq!(live[0].0.kind, ether::FAILED_VERIFICATION);
    assert_eq!(live[0].0.attracts, ["brick", "alfred"]);
}

#[test]
fn every_decision_is_recorded_with_its_scores_noise_and_seed() {
    let w = crate::world(&[]);
    let embedder = crate::HashingTestEmbedder;
    let d = routing::route(
        &w.rt,
        &embedder,
        "What do the design documents say about persistence?",
        11,
        0,
    )
    .expect("routes");
    assert_eq!(d.archetype, "research and facts", "{:?}", d.archetypes);
    assert_eq!(d.chosen.len(), 2);
    let Value::Map(kept) = d.to_value() else { panic!("a map") };
    for key in ["archetype", "archetypes", "base", "pheromones", "noise", "total", "chosen", "seed"]
    {
        assert!(kept.contains_key(key), "{key} is recorded");
    }
    assert_eq!(kept["seed"], Value::Text("11".into()));
    // Replaying the seed replays the decision.
    let again = routing::route(
        &w.rt,
        &embedder,
        "What do the design documents say about persistence?",
        11,
        0,
    )
    .expect("routes");
    assert_eq!(again, d);
}

#[test]
fn a_table_of_the_wrong_shape_is_a_clear_error() {
    let w = crate::world(&[]);
    w.set("personas", "matrix", Value::Int(3));
    let e =
        routing::route(&w.rt, &crate::HashingTestEmbedder, "anything", 1, 0).expect_err("refused");
    assert_eq!(e.kind(), "bad_input");
    assert!(e.to_string().contains("`matrix`"), "{e}");
}
