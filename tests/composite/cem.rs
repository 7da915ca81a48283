//! The Composite Entropy Metric on crafted windows, against values computed by hand,
//! and read from an image.

use std::collections::BTreeMap;

use batos_composite::cem::{self, Weights, Window};

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn the_metric_of_a_crafted_window_matches_the_hand_computed_value() {
    let window = Window {
        // Two personas of four, used equally: 1 bit of log₂ 4 = 2 bits.
        uses: BTreeMap::from([("brick".to_owned(), 2), ("robin".to_owned(), 2)]),
        personas: 4,
        // One earlier solution; the first new one repeats it (novelty 0), the second is
        // orthogonal to both (novelty 1).
        earlier: vec![vec![1.0, 0.0]],
        solutions: vec![vec![1.0, 0.0], vec![0.0, 1.0]],
        // Two capabilities where two are expected: 1 − e⁻¹.
        new_capabilities: 2,
        expected_growth: 2.0,
        // A negative cosine counts as 0: (0.8 + 0) / 2.
        relevance: vec![0.8, -0.2],
        ..Window::default()
    };
    let m = cem::compute(&window, &Weights::default());
    assert!(close(m.h_cog, 0.5), "{m:?}");
    assert!(close(m.h_sol, 0.5), "{m:?}");
    assert!(close(m.h_struc, 1.0 - (-1f64).exp()), "{m:?}");
    assert!(close(m.h_rel, 0.4), "{m:?}");
    // 0.3·0.5 + 0.3·0.5 + 0.2·0.632120558828558 + 0.2·0.4
    assert!(close(m.value, 0.506_424_111_765_711_6), "{}", m.value);

    // Other weights weigh the same terms.
    let only_cog = Weights { cog: 1.0, sol: 0.0, struc: 0.0, rel: 0.0 };
    assert!(close(cem::compute(&window, &only_cog).value, 0.5));
}

#[test]
fn each_term_at_its_bounds() {
    // One persona only: no diversity; all four equally: full.
    assert_eq!(cem::h_cog(&BTreeMap::from([("brick".to_owned(), 9)]), 4), 0.0);
    let even: BTreeMap<String, usize> =
        ["alfred", "babs", "brick", "robin"].iter().map(|k| ((*k).to_owned(), 3)).collect();
    assert!(close(cem::h_cog(&even, 4), 1.0));
    // A first solution ever is wholly new; a repeat is not new at all.
    assert_eq!(cem::h_sol(&[vec![0.6, 0.8]], &[]), 1.0);
    assert!(close(cem::h_sol(&[vec![0.6, 0.8]], &[vec![0.6, 0.8]]), 0.0));
    assert_eq!(cem::h_struc(0, 2.0), 0.0);
    assert!(cem::h_struc(100, 2.0) <= 1.0);
    // Nothing to measure is 0: an idle window is stagnant.
    let idle = cem::compute(
        &Window { personas: 4, expected_growth: 2.0, ..Window::default() },
        &Weights::default(),
    );
    assert_eq!(idle.value, 0.0);
}

#[test]
fn the_window_is_read_from_the_dialogues_in_the_image() {
    let w = crate::world(&["BRICK's answer about crashes.", "ROBIN's answer about people."]);
    w.plain_routing();
    let before = batos_composite::now_ms();
    batos_composite::dialogue::converse(
        &w.rt,
        &w.minds,
        &w.memory,
        &batos_composite::dialogue::Ask {
            question: "How does the image survive crashes?",
            persona: None,
            seed: 3,
            now_ms: before,
        },
        &mut |_, _| {},
    )
    .expect("converses");
    // A compression job, as `batos compress` records one: BABS's work.
    w.rt.transact("a job", |cx| {
        let tx = cx.tx_mut("test")?;
        let memory = tx.root(batos_memory::MEMORY_ROOT)?.expect("the memory");
        let jobs = tx.create_object(&[])?;
        let job = tx.create_object(&[])?;
        tx.set_slot(job, "startedAt", &batos_image::Value::Int(batos_composite::now_ms()))?;
        tx.set_slot(jobs, "job-0001", &batos_image::Value::Object(job))?;
        tx.set_slot(memory, "jobs", &batos_image::Value::Object(jobs))
    })
    .expect("records");
    let after = batos_composite::now_ms() + 1;
    let embedder = crate::HashingTestEmbedder;
    let window = cem::observe(&w.rt, &embedder, before, after, 2.0).expect("observes");
    assert_eq!(window.personas, 4);
    assert_eq!(
        window.uses,
        BTreeMap::from([("babs".to_owned(), 1), ("brick".to_owned(), 1), ("robin".to_owned(), 1)])
    );
    assert_eq!(window.relevance.len(), 2);
    assert_eq!(window.solutions.len(), 1, "the dialogue's final answer");
    // "crashes" is shared by the question and BRICK's answer: relevance above 0.
    assert!(window.relevance[0] > 0.0);
    // A window that ends before it began sees it as earlier work.
    let later = cem::observe(&w.rt, &embedder, after + 1, after + 1000, 2.0).expect("observes");
    assert!(later.uses.is_empty());
    assert_eq!(later.earlier.len(), 1);
}
