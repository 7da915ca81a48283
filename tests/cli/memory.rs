//! The memory from the command line, with THE REAL EMBEDDING MODEL (pulled once into the
//! models folder, cached): `batos ingest` and `batos search` directly and through a
//! kernel, and `kill -9` during an ingest leaving a file's old fractals or its new ones.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use batos::memory::{store, Memory};
use batos::{Runtime, Value};
use rand::{Rng, SeedableRng};

use super::commands::{err_json, ok_json};

const NOTES: &str = "The lighthouse keeper logs every passing ship in a leather ledger.\n\nOur football team trained twice a week in the rain.\n";

#[test]
fn ingest_and_search_from_the_command_line_directly_and_through_a_kernel() {
    for served in [false, true] {
        let dir = tempfile::tempdir().expect("tempdir");
        let image = dir.path().join("image");
        let docs = dir.path().join("docs");
        std::fs::create_dir_all(&docs).expect("dir");
        std::fs::write(docs.join("notes.txt"), NOTES).expect("write");
        std::fs::write(docs.join("blob.bin"), b"\0\x01\x02").expect("write");
        let _kernel = served.then(|| super::bridge::Kernel::start(&image));
        let docs_arg = docs.to_str().expect("utf-8 path");
        let out = ok_json(&image, &["ingest", docs_arg]);
        assert_eq!(
            (out["ingested"].as_u64(), out["skipped"].as_u64()),
            (Some(1), Some(1)),
            "{out}"
        );
        let skipped = out["files"]
            .as_array()
            .expect("files")
            .iter()
            .find(|f| f["outcome"] == "skipped")
            .cloned();
        assert!(skipped.expect("the binary file")["detail"]
            .as_str()
            .expect("why")
            .contains("binary"));
        let again = ok_json(&image, &["ingest", docs_arg]);
        assert_eq!(again["unchanged"].as_u64(), Some(2 - 1), "{again}");
        let hits = ok_json(&image, &["search", "who records the boats going by?", "--k", "1"]);
        let first = &hits.as_array().expect("hits")[0];
        assert!(first["text"].as_str().expect("text").contains("lighthouse keeper"), "{hits}");
        assert!(first["source"].as_str().expect("source").ends_with("notes.txt"));
        let e = err_json(&image, &["search", &"word ".repeat(20_000)]);
        assert_eq!(e["error"]["kind"], "bad_input", "{e}");
        let e = err_json(&image, &["ingest", dir.path().join("nowhere").to_str().expect("utf-8")]);
        assert_eq!(e["error"]["kind"], "bad_input", "{e}");
        // The memory answers messages too.
        let sent = ok_json(&image, &["send", "memory", "search:limit:", "\"leather ledger\"", "1"]);
        assert!(sent.to_string().contains("lighthouse"), "{sent}");
        if !served {
            // A capability granted `memory` searches it (the example plugin `recall`).
            let recall = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/recall");
            ok_json(&image, &["plugin", "add", recall.to_str().expect("utf-8")]);
            let answer =
                ok_json(&image, &["send", "genesis", "recall:", "\"the keeper's leather ledger\""]);
            let text = answer.to_string();
            assert!(text.contains("lighthouse keeper") && text.contains("notes.txt"), "{text}");
        }
    }
}

/// One version of a document: paragraphs that each name the version.
fn version(tag: &str) -> String {
    (0..40)
        .map(|i| format!("Paragraph {i} of version {tag} tells of topic {} in some detail, with words enough to embed.\n\n", i % 7))
        .collect()
}

/// The document's fractals as the image holds them: the version every one names, and
/// how many; and whether the memory's fractal counter agrees with what its sources hold.
fn observe(image: &Path, file: &str) -> (Option<String>, usize, bool) {
    let memory = Memory::new(Box::new(|| Err(batos::mind::MindError::Model("not needed".into()))));
    let rt = memory.attach(Runtime::builder()).open(image).expect("the image reopens");
    rt.view(|cx| {
        let tx = cx.tx();
        let Some(layout) = store::layout(tx)? else { return Ok((None, 0, true)) };
        let mut total = 0;
        for source in store::sources(tx, &layout)?.into_values() {
            total += store::fractals_of(tx, source)?.len();
        }
        let counted = store::counter(tx, layout.memory, "fractals")? as usize == total;
        let Some((source, _)) = store::source(tx, &layout, file)? else {
            return Ok((None, 0, counted));
        };
        let fractals = store::fractals_of(tx, source)?;
        let mut tags = std::collections::BTreeSet::new();
        for f in &fractals {
            if let Some(Value::Text(text)) = tx.slot(*f, "text")? {
                for tag in ["ALPHA", "BETA"] {
                    if text.contains(&format!("version {tag}")) {
                        tags.insert(tag.to_owned());
                    }
                }
            }
        }
        assert!(tags.len() <= 1, "a file's fractals mix versions: {tags:?}");
        Ok((tags.into_iter().next(), fractals.len(), counted))
    })
    .expect("reads")
}

#[test]
fn kill_nine_during_ingest_leaves_the_old_fractals_or_the_new() {
    let dir = tempfile::tempdir().expect("tempdir");
    let image = dir.path().join("image");
    let file = dir.path().join("doc.txt");
    let path = file.to_str().expect("utf-8").to_owned();
    let seed = std::env::var("BATOS_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("kill -9 during ingest, seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut complete = std::collections::BTreeMap::new();
    let mut took = Duration::ZERO;
    for tag in ["ALPHA", "BETA"] {
        std::fs::write(&file, version(tag)).expect("write");
        let start = std::time::Instant::now();
        ok_json(&image, &["ingest", &path]);
        // The second ingest is what each round repeats (the codex is in by then).
        took = start.elapsed();
        let (seen, count, counted) = observe(&image, &path);
        assert_eq!(seen.as_deref(), Some(tag));
        assert!(counted && count > 1);
        complete.insert(tag, count);
    }
    let mut outcomes = std::collections::BTreeMap::<String, usize>::new();
    // Kills land anywhere from the start of the process to a little after a whole
    // ingest would have committed, on this machine at this moment.
    let span = (took.as_millis() as u64 * 13 / 10).max(1);
    for round in 0..10 {
        let tag = if round % 2 == 0 { "ALPHA" } else { "BETA" };
        std::fs::write(&file, version(tag)).expect("write");
        let mut child = Command::new(env!("CARGO_BIN_EXE_batos"))
            .arg("--image")
            .arg(&image)
            .args(["ingest", &path])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("batos ingest starts");
        std::thread::sleep(Duration::from_millis(rng.random_range(0..span)));
        let _ = child.kill();
        let _ = child.wait();
        let (seen, count, counted) = observe(&image, &path);
        let seen = seen.expect("the file keeps fractals of one version");
        assert!(counted, "round {round}: the counter disagrees with the sources (half an ingest)");
        assert_eq!(count, complete[seen.as_str()], "round {round}: {seen} has all its fractals");
        *outcomes.entry(seen).or_default() += 1;
    }
    eprintln!("after the kills (a whole ingest took {took:?}): {outcomes:?}");
}
