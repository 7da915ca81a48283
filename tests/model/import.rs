//! `batos model import`: a tiny model the test writes is checked, exported and copied
//! into the models folder; bad files are refused with the reason and leave the folder
//! as it was; and the imported model thinks from the command line, its weights adopted
//! into the image as a blob that `pLLM` refers to.

use crate::tiny_model;

use std::path::{Path, PathBuf};

use batos_model::gguf::{GgufWriter, MetaValue};
use batos_model::import::{self, ImportError};
use batos_model::pull::Quiet;

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn tiny(dir: &Path, name: &str, arch: &str, seed: u64) -> PathBuf {
    tiny_model::write_named(dir, name, arch, seed)
}

#[test]
fn a_tiny_model_imports_once_and_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let models = dir.path().join("models");
    for arch in ["qwen2", "llama"] {
        let source = tiny(dir.path(), &format!("tiny-{arch}"), arch, 7);
        let model = import::import(&source, &models, &mut Quiet).expect("imports");
        assert_eq!(model.name, format!("tiny-{arch}"));
        assert!(model.gguf.is_file() && model.onnx.is_file(), "{model:?}");
        assert_eq!(
            std::fs::read(&model.gguf).expect("copy"),
            std::fs::read(&source).expect("source")
        );
        let modified = std::fs::metadata(&model.onnx).and_then(|m| m.modified()).expect("mtime");
        let again = import::import(&source, &models, &mut Quiet).expect("imports again");
        assert_eq!(again, model, "a second import finds the first");
        assert_eq!(
            std::fs::metadata(&again.onnx).and_then(|m| m.modified()).expect("mtime"),
            modified,
            "and does not export again"
        );

        use batos_mind::{Message, Mind, Sampling};
        use batos_model::{Device, OnnxMind};
        let dir = model.onnx.parent().expect("export folder");
        let mind = OnnxMind::open(&model.gguf, dir, &model.name, Device::Cpu).expect("opens");
        let sampling = Sampling { max_tokens: 5, stop: vec![], ..Sampling::default() };
        let c =
            mind.complete(&[Message::user("hello")], &sampling, &mut |_| {}).expect("generates");
        assert!(c.completion_tokens.is_some_and(|n| n <= 5), "{c:?}");
    }
    let names = import::installed(&models).into_iter().map(|(n, _)| n).collect::<Vec<_>>();
    assert_eq!(names, ["tiny-llama", "tiny-qwen2"]);
}

#[test]
fn bad_files_are_refused_and_leave_nothing_behind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let models = dir.path().join("models");
    let good = tiny(dir.path(), "good", "qwen2", 1);
    let bytes = std::fs::read(&good).expect("read");

    let truncated = dir.path().join("truncated.gguf");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).expect("write");
    let not_gguf = dir.path().join("notes.gguf");
    std::fs::write(&not_gguf, b"these are my notes, not a model").expect("write");
    let foreign = dir.path().join("foreign.gguf");
    GgufWriter::default()
        .meta("general.architecture", MetaValue::String("mamba".into()))
        .write(&foreign)
        .expect("writes");

    for (path, expected) in [(&truncated, "truncated"), (&not_gguf, "GGUF"), (&foreign, "mamba")] {
        let err = import::import(path, &models, &mut Quiet).expect_err("refused");
        assert!(matches!(err, ImportError::Unusable { .. }), "{err}");
        assert!(err.to_string().contains(expected), "{path:?}: {err}");
        assert!(listing(&models).is_empty(), "{path:?} left {:?}", listing(&models));
    }

    // Another file under a name already taken is refused, the first model kept.
    import::import(&good, &models, &mut Quiet).expect("imports");
    let before = listing(&models);
    let other_dir = dir.path().join("other");
    std::fs::create_dir(&other_dir).expect("mkdir");
    let impostor = tiny(&other_dir, "good", "llama", 2);
    let err = import::import(&impostor, &models, &mut Quiet).expect_err("name taken");
    assert!(matches!(err, ImportError::NameTaken { .. }), "{err}");
    assert_eq!(listing(&models), before);
}

/// Threads importing one model into an empty folder at once all succeed, and leave one
/// GGUF and one complete export: the folder's lock makes them take turns.
#[test]
fn threads_importing_one_model_at_once_all_succeed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let models = dir.path().join("models");
    let source = tiny(dir.path(), "shared", "qwen2", 5);
    let imported: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> =
            (0..4).map(|_| s.spawn(|| import::import(&source, &models, &mut Quiet))).collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread").expect("every import succeeds"))
            .collect()
    });
    assert!(imported.windows(2).all(|w| w[0] == w[1]), "{imported:?}");
    assert!(imported[0].onnx.is_file());
    let exports = listing(&models.join("onnx"));
    assert_eq!(exports.len(), 1, "one export: {exports:?}");
    assert!(!listing(&models).iter().any(|n| n.contains("partial")), "{:?}", listing(&models));
}
