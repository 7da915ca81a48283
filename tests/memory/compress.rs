//! Concept fractals: compression as a recorded job, concepts linked both ways and
//! searchable, compressed again one level up, and a failing mind recorded as FAILED with
//! nothing half-written. The mind here is a test double; the embedder is real.

use std::sync::atomic::{AtomicUsize, Ordering};

use batos_image::Value;
use batos_memory::{store, SearchOptions};
use batos_mind::{Completion, Finish, Message, Mind, MindError, Sampling};

use super::open;

/// A test double of the mind: answers a concept naming the first passage it was shown
/// (or fails, when told to), and counts the questions.
struct CannedTestMind {
    fail: bool,
    asked: AtomicUsize,
}

impl Mind for CannedTestMind {
    fn describe(&self) -> String {
        "canned-test-mind".into()
    }

    fn complete(
        &self,
        messages: &[Message],
        _: &Sampling,
        _: &mut dyn FnMut(&str),
    ) -> Result<Completion, MindError> {
        self.asked.fetch_add(1, Ordering::SeqCst);
        if self.fail {
            return Err(MindError::Model("the canned test mind was told to fail".into()));
        }
        let user = &messages.last().expect("a question").content;
        let first = user
            .split("[1] ")
            .nth(1)
            .unwrap_or("")
            .split_whitespace()
            .take(4)
            .collect::<Vec<_>>()
            .join(" ");
        Ok(Completion {
            text: format!("Zeppelin concept\nA concept about: {first}."),
            prompt_tokens: None,
            cached_tokens: None,
            completion_tokens: None,
            finish: Finish::Stop,
        })
    }
}

fn ingest_topics(
    dir: &std::path::Path,
) -> (std::sync::Arc<batos_memory::Memory>, batos_runtime::Runtime) {
    let docs = dir.join("docs");
    std::fs::create_dir_all(&docs).expect("dir");
    let topics = [
        "bread baking in a stone oven",
        "violins tuned before a concert",
        "tomatoes grown in sunlight",
    ];
    for (i, topic) in topics.iter().enumerate() {
        for j in 0..4 {
            std::fs::write(
                docs.join(format!("t{i}-{j}.txt")),
                format!("Notes {j} on {topic}, written with care."),
            )
            .expect("write");
        }
    }
    let (memory, rt) = open(dir);
    memory.ingest(&rt, &[docs], &mut |_| {}).expect("ingests");
    (memory, rt)
}

#[test]
fn compression_writes_linked_searchable_concepts_as_a_recorded_job() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (memory, rt) = ingest_topics(dir.path());
    let mind = CannedTestMind { fail: false, asked: AtomicUsize::new(0) };
    let mut steps = Vec::new();
    let done = memory.compress(&rt, &mind, &mut |d, t| steps.push((d, t))).expect("compresses");
    assert_eq!(done.level, 0);
    assert!(done.inputs >= 12, "every context fractal (the codex's too) went in: {done:?}");
    assert_eq!(done.concepts.len(), done.inputs.div_ceil(batos_memory::compress::CLUSTER_SIZE));
    assert_eq!(mind.asked.load(Ordering::SeqCst), done.concepts.len());
    assert_eq!(steps.last().map(|s| s.0), Some(done.concepts.len()));
    rt.view(|cx| {
        let tx = cx.tx();
        assert_eq!(tx.slot(done.job, "state")?, Some(Value::Text("COMPLETE".into())));
        let Some(Value::List(inputs)) = tx.slot(done.job, "inputs")? else { panic!("inputs") };
        assert_eq!(inputs.len(), done.inputs);
        let mut members_seen = 0;
        for concept in &done.concepts {
            assert_eq!(tx.slot(*concept, "level")?, Some(Value::Int(1)));
            let Some(Value::List(members)) = tx.slot(*concept, "members")? else {
                panic!("members")
            };
            for m in members {
                let Value::Object(m) = m else { panic!("an object") };
                assert_eq!(
                    tx.slot(m, "concept")?,
                    Some(Value::Object(*concept)),
                    "linked both ways"
                );
                members_seen += 1;
            }
        }
        assert_eq!(members_seen, done.inputs, "each input is in exactly one concept");
        Ok(())
    })
    .expect("reads");
    let hits = memory
        .search(&rt, "zeppelin", SearchOptions { limit: 3, words: 1.0, meaning: 0.0 })
        .expect("search");
    assert!(hits[0].source.starts_with("batos:concepts/level-1/"), "{hits:?}");
    // Again: the concepts themselves are compressed, one level up (or there is nothing
    // left when one concept covers everything).
    match memory.compress(&rt, &mind, &mut |_, _| {}) {
        Ok(again) => assert_eq!(again.level, 1),
        Err(e) => {
            assert_eq!(done.concepts.len(), 1, "{e}");
            assert!(e.to_string().contains("nothing to compress"));
        }
    }
}

#[test]
fn a_failing_mind_is_a_failed_job_and_writes_no_concept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (memory, rt) = ingest_topics(dir.path());
    let mind = CannedTestMind { fail: true, asked: AtomicUsize::new(0) };
    let e = memory.compress(&rt, &mind, &mut |_, _| {}).expect_err("the mind fails");
    assert_eq!(e.kind(), "mind_unavailable", "{e}");
    rt.view(|cx| {
        let tx = cx.tx();
        let layout = store::layout(tx)?.expect("memory");
        let Some(Value::Object(jobs)) = tx.slot(layout.memory, "jobs")? else { panic!("jobs") };
        let Some(Value::Object(job)) = tx.slot(jobs, "job-0001")? else { panic!("the job") };
        assert_eq!(tx.slot(job, "state")?, Some(Value::Text("FAILED".into())));
        let Some(Value::Text(why)) = tx.slot(job, "error")? else { panic!("why") };
        assert!(why.contains("told to fail"), "{why}");
        for source in store::sources(tx, &layout)?.into_keys() {
            assert!(!source.starts_with("batos:concepts"), "no concept was written");
        }
        Ok(())
    })
    .expect("reads");
}
