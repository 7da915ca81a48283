//! Search: a planted passage found by its words and by a paraphrase, the query's limits,
//! and the gate deciding who may search.

use batos_image::{Error, Value};
use batos_memory::SearchOptions;
use batos_runtime::{Authority, Grant};

use super::open;

const FILLER: &[&str] = &[
    "The kitchen smelled of fresh bread and cinnamon every morning.",
    "Our football team trained twice a week in the rain.",
    "The orchestra tuned their violins before the concert began.",
    "Tomatoes grow best with plenty of sunlight and regular watering.",
    "The museum opened a new wing dedicated to ancient pottery.",
    "She repaired the bicycle chain with a borrowed wrench.",
];

const PLANTED: &str = "The lighthouse keeper logs every passing ship in a leather ledger.";

fn planted_memory(
    dir: &std::path::Path,
) -> (std::sync::Arc<batos_memory::Memory>, batos_runtime::Runtime) {
    let docs = dir.join("docs");
    std::fs::create_dir_all(&docs).expect("dir");
    for (i, filler) in FILLER.iter().enumerate() {
        std::fs::write(docs.join(format!("filler{i}.txt")), filler).expect("write");
    }
    std::fs::write(docs.join("planted.txt"), PLANTED).expect("write");
    let (memory, rt) = open(dir);
    memory.ingest(&rt, &[docs], &mut |_| {}).expect("ingests");
    (memory, rt)
}

#[test]
fn a_planted_passage_is_found_by_its_words_and_by_a_paraphrase() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (memory, rt) = planted_memory(dir.path());
    let words = SearchOptions { limit: 3, words: 1.0, meaning: 0.0 };
    let hits = memory.search(&rt, "leather ledger lighthouse", words).expect("search");
    assert_eq!(hits[0].text, PLANTED);
    assert!(hits[0].source.ends_with("planted.txt"));
    assert!(hits[0].meaning.is_none() && hits[0].words.is_some());
    // No word in common with the passage (stop words aside).
    let meaning = SearchOptions { limit: 3, words: 0.0, meaning: 1.0 };
    let hits = memory
        .search(&rt, "who records the boats sailing past the coast?", meaning)
        .expect("search");
    assert_eq!(hits[0].text, PLANTED, "{hits:?}");
    let fused = memory
        .search(&rt, "ships recorded by the keeper", SearchOptions::default())
        .expect("search");
    assert_eq!(fused[0].text, PLANTED);
    assert!(fused[0].words.is_some() && fused[0].meaning.is_some(), "both rankings found it");
    assert!(fused.windows(2).all(|w| w[0].score >= w[1].score), "best first");
}

#[test]
fn empty_and_oversized_queries_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (memory, rt) = open(dir.path());
    let e = memory.search(&rt, "   ", SearchOptions::default()).expect_err("empty");
    assert_eq!(e.kind(), "bad_input");
    let huge = "word ".repeat(20_000);
    let e = memory.search(&rt, &huge, SearchOptions::default()).expect_err("100 KB");
    assert!(e.to_string().contains("4096-byte limit"), "{e}");
}

#[test]
fn the_persona_codex_is_in_every_memory_from_its_first_search() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (memory, rt) = open(dir.path());
    let hits = memory
        .search(
            &rt,
            "which persona is the family's moral and empathetic compass?",
            SearchOptions::default(),
        )
        .expect("search");
    assert!(hits.iter().all(|h| h.source == batos_memory::PERSONA_CODEX_SOURCE), "{hits:?}");
    assert!(
        hits[..2].iter().any(|h| h.text.contains("ROBIN") && h.text.contains("empathetic compass")),
        "{hits:?}"
    );
    let before = rt.image().last_tx();
    memory.search(&rt, "BABS", SearchOptions::default()).expect("again");
    assert_eq!(rt.image().last_tx(), before, "the codex is ingested once");
}

#[test]
fn a_message_to_memory_searches_and_the_gate_decides_who_may() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_memory, rt) = planted_memory(dir.path());
    let memory = rt.resolve("memory").expect("the memory is a root");
    let query = Value::Text("lighthouse ledger".into());
    let hits = rt
        .send(memory, "search:limit:", vec![query.clone(), Value::Int(2)])
        .expect("a person searches");
    let Value::List(hits) = hits else { panic!("a list: {hits:?}") };
    assert_eq!(hits.len(), 2);
    let Value::Map(first) = &hits[0] else { panic!("a map") };
    assert_eq!(first.get("text"), Some(&Value::Text(PLANTED.into())));

    let as_capability = |grants: &[Grant]| {
        let authority = Authority::capability("reader", grants.iter().copied().collect(), []);
        rt.transact("a capability searches", |cx| {
            cx.with_authority(authority.clone(), |cx| {
                cx.send(memory, "search:", std::slice::from_ref(&query))
            })
        })
        .map(|c| c.value)
    };
    match as_capability(&[Grant::Mind]) {
        Err(Error::NotPermitted { action, .. }) => assert!(action.contains("memory"), "{action}"),
        other => panic!("a capability without the memory grant must be refused: {other:?}"),
    }
    let Ok(Value::List(found)) = as_capability(&[Grant::Memory]) else { panic!("granted search") };
    assert!(!found.is_empty());
    let e = rt.send(memory, "search:limit:", vec![query, Value::Int(0)]).expect_err("limit 0");
    assert_eq!(e.kind(), "bad_input");
}

/// Random unit vectors, reproducibly.
fn unit_vectors(rng: &mut rand::rngs::StdRng, n: usize, dims: usize) -> Vec<Vec<f32>> {
    use rand::Rng;
    (0..n)
        .map(|_| {
            let mut v: Vec<f32> = (0..dims).map(|_| rng.random_range(-1.0f32..1.0)).collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.iter_mut().for_each(|x| *x /= norm);
            v
        })
        .collect()
}

#[test]
fn past_the_threshold_the_approximate_index_answers_and_misses_no_change() {
    use batos_memory::store::{self, NewFractal};
    use rand::SeedableRng;
    let dir = tempfile::tempdir().expect("tempdir");
    let (memory, rt) = open(dir.path());
    let model = super::embedder().model_id().to_owned();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let write = |path: &str, vectors: &[Vec<f32>]| {
        let fractals: Vec<NewFractal> = vectors
            .iter()
            .enumerate()
            .map(|(i, v)| NewFractal { text: format!("{path} passage {i}"), vector: v.clone() })
            .collect();
        rt.transact("write vectors", |cx| {
            let tx = cx.tx_mut("write vectors")?;
            let layout = store::ensure(tx)?;
            store::replace_source(tx, &layout, path, path, 0, &model, &fractals)
        })
        .expect("writes")
        .value
        .fractals
    };
    let mut truth: Vec<(batos_image::Oid, Vec<f32>)> = Vec::new();
    for doc in 0..3 {
        let vectors = unit_vectors(&mut rng, 1000, 384);
        let oids = write(&format!("/doc{doc}"), &vectors);
        truth.extend(oids.into_iter().zip(vectors));
    }
    let index = memory.vector_index();
    index.set_approximate_above(1000);
    assert_eq!(memory.build_approximate_index(&rt).expect("builds"), 3000);
    let rank = |query: &[f32]| {
        rt.view(|cx| {
            let layout = store::layout(cx.tx())?.expect("memory");
            index.rank(cx.tx(), &layout, query)
        })
        .expect("ranks")
    };
    let mut overlap = 0;
    let queries = unit_vectors(&mut rng, 20, 384);
    for q in &queries {
        let mut exact: Vec<(batos_image::Oid, f32)> =
            truth.iter().map(|(o, v)| (*o, v.iter().zip(q).map(|(a, b)| a * b).sum())).collect();
        exact.sort_by(|a, b| b.1.total_cmp(&a.1));
        let found = rank(q);
        assert_eq!(index.last_covered(), 3000, "the approximate index answered for all of it");
        overlap +=
            exact[..10].iter().filter(|(o, _)| found[..10].iter().any(|(f, _)| f == o)).count();
    }
    let recall = overlap as f64 / (10 * queries.len()) as f64;
    assert!(recall >= 0.9, "HNSW recall@10 against the exact scan: {recall}");

    // A document replaced since the build: its new passages are found (scanned exactly)
    // and its old ones are never answered.
    let old: Vec<batos_image::Oid> = truth[..1000].iter().map(|(o, _)| *o).collect();
    let planted = queries[0].clone();
    let mut fresh = unit_vectors(&mut rng, 999, 384);
    fresh.push(planted.clone());
    let new_oids = write("/doc0", &fresh);
    let found = rank(&planted);
    assert_eq!(found[0].0, new_oids[999], "the new passage equal to the query comes first");
    assert!(found.iter().all(|(o, _)| !old.contains(o)), "no replaced passage is answered");
    assert_eq!(
        index.last_covered(),
        2000,
        "the changed document was scanned, the rest approximated"
    );
}
