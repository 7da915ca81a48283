//! Ingest: passages per file, re-ingest as a no-op, replacement, and every kind of bad
//! input reported with its reason and nothing half-written.

use batos_memory::{FileOutcome, SearchOptions};

use super::open;

const DURABILITY: &str = "# Durability\n\nEvery commit survives the process being killed. The journal frames each batch with a checksum. Recovery drops an incomplete last batch.\n\nWith the durable mode a sync covers each acknowledged commit, so it survives a power loss.\n";

#[test]
fn files_become_fractals_and_an_unchanged_file_is_a_no_op() {
    let dir = tempfile::tempdir().expect("tempdir");
    let docs = dir.path().join("docs");
    std::fs::create_dir_all(docs.join("nested")).expect("dirs");
    std::fs::write(docs.join("durability.md"), DURABILITY).expect("write");
    std::fs::write(docs.join("nested/notes.txt"), "Sheep are counted at night. Wool grows slowly.")
        .expect("write");
    std::fs::write(docs.join(".hidden"), "never read").expect("write");
    let (memory, rt) = open(dir.path());
    let reports = memory.ingest(&rt, std::slice::from_ref(&docs), &mut |_| {}).expect("ingests");
    assert_eq!(reports.len(), 2, "hidden files are left out: {reports:?}");
    assert!(
        reports.iter().all(
            |r| matches!(r.outcome, FileOutcome::Ingested { fractals, replaced: 0 } if fractals > 0)
        ),
        "{reports:?}"
    );
    let before = rt.image().last_tx();
    let again = memory.ingest(&rt, &[docs], &mut |_| {}).expect("again");
    assert!(again.iter().all(|r| r.outcome == FileOutcome::Unchanged), "{again:?}");
    assert_eq!(rt.image().last_tx(), before, "re-ingesting unchanged content commits nothing");
}

#[test]
fn a_changed_file_replaces_its_fractals_and_their_words() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("note.txt");
    std::fs::write(&file, "The quokka lives on Rottnest island.").expect("write");
    let (memory, rt) = open(dir.path());
    memory.ingest(&rt, std::slice::from_ref(&file), &mut |_| {}).expect("ingests");
    let words_only = SearchOptions { limit: 5, words: 1.0, meaning: 0.0 };
    assert_eq!(memory.search(&rt, "quokka", words_only).expect("search").len(), 1);
    std::fs::write(&file, "The wombat digs burrows in the forest.").expect("rewrite");
    let reports = memory.ingest(&rt, &[file], &mut |_| {}).expect("re-ingests");
    assert!(matches!(reports[0].outcome, FileOutcome::Ingested { replaced: 1, .. }), "{reports:?}");
    assert!(
        memory.search(&rt, "quokka", words_only).expect("search").is_empty(),
        "old postings are gone"
    );
    let hits = memory.search(&rt, "wombat", words_only).expect("search");
    assert_eq!(hits.len(), 1);
    assert!(hits[0].text.contains("burrows"));
    let counted = rt.view(|cx| {
        let tx = cx.tx();
        let layout = batos_memory::store::layout(tx)?.expect("memory");
        let mut held = 0;
        for source in batos_memory::store::sources(tx, &layout)?.into_values() {
            held += batos_memory::store::fractals_of(tx, source)?.len() as i64;
        }
        Ok((batos_memory::store::counter(tx, layout.memory, "fractals")?, held))
    });
    let (counter, held) = counted.expect("reads");
    assert_eq!(counter, held, "the count follows the replacement");
}

#[test]
fn bad_files_are_skipped_with_their_reason_and_bad_paths_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let docs = dir.path().join("docs");
    std::fs::create_dir_all(&docs).expect("dir");
    std::fs::write(docs.join("binary.bin"), b"\x7fELF\0\0\x01").expect("write");
    std::fs::write(docs.join("empty.txt"), "  \n").expect("write");
    std::fs::write(docs.join("latin1.txt"), b"caf\xe9 au lait").expect("write");
    std::fs::write(docs.join("lines.jsonl"), "{\"text\": \"fine\"}\n{broken\n").expect("write");
    let big = vec![b'a'; (batos_memory::text::MAX_FILE_BYTES + 1) as usize];
    std::fs::write(docs.join("big.txt"), big).expect("write");
    std::fs::write(docs.join("good.md"), DURABILITY).expect("write");
    let (memory, rt) = open(dir.path());
    let reports =
        memory.ingest(&rt, std::slice::from_ref(&docs), &mut |_| {}).expect("ingests the good one");
    let why = |name: &str| {
        reports
            .iter()
            .find(|r| r.path.ends_with(name))
            .map(|r| match &r.outcome {
                FileOutcome::Skipped(why) => why.clone(),
                other => format!("not skipped: {other:?}"),
            })
            .expect("reported")
    };
    assert!(why("binary.bin").contains("binary"), "{}", why("binary.bin"));
    assert!(why("empty.txt").contains("empty"));
    assert!(why("latin1.txt").contains("not UTF-8") && why("latin1.txt").contains("byte 3"));
    assert!(why("lines.jsonl").contains("line 2 is not JSON"));
    assert!(why("big.txt").contains("limit"));
    assert!(reports
        .iter()
        .any(|r| r.path.ends_with("good.md") && matches!(r.outcome, FileOutcome::Ingested { .. })));
    // A skipped JSON-lines file wrote nothing of its good first line.
    let words_only = SearchOptions { limit: 5, words: 1.0, meaning: 0.0 };
    assert!(memory.search(&rt, "fine", words_only).expect("search").is_empty());

    let missing = memory.ingest(&rt, &[dir.path().join("nope")], &mut |_| {}).expect_err("missing");
    assert!(missing.to_string().contains("nope"), "{missing}");
    let crowd = dir.path().join("crowd");
    std::fs::create_dir_all(&crowd).expect("dir");
    for i in 0..=batos_memory::MAX_FILES {
        std::fs::write(crowd.join(format!("{i}.txt")), "x").expect("write");
    }
    let before = rt.image().last_tx();
    let e = memory.ingest(&rt, &[crowd], &mut |_| {}).expect_err("too many files");
    assert!(e.to_string().contains("narrower folder"), "{e}");
    assert_eq!(rt.image().last_tx(), before, "nothing was ingested");
}
