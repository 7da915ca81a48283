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
