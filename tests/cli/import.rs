//! `batos model import` from the command line: a tiny model the test writes thinks,
//! its weights adopted into the image as a blob that `pLLM` refers to.

use std::path::{Path, PathBuf};

use crate::tiny_model;

fn tiny(dir: &Path, name: &str, arch: &str, seed: u64) -> PathBuf {
    tiny_model::write_named(dir, name, arch, seed)
}

/// The command line, on a models folder of its own: import, choose the model on `pLLM`,
/// think. The weights end up in the image's blob store, referred to from `pLLM`.
#[test]
fn an_imported_model_thinks_from_the_cli_with_its_weights_in_the_image() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = tiny(dir.path(), "pocket", "qwen2", 3);
    let batos = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_batos"))
            .env("BATOS_MODELS", dir.path().join("models"))
            .arg("--image")
            .arg(dir.path().join("image"))
            .args(args)
            .output()
            .expect("batos runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, _, err) = batos(&["model", "import", source.to_str().expect("utf-8")]);
    assert!(ok, "{err}");
    let (ok, out, _) = batos(&["model", "list"]);
    assert!(ok && out.contains("pocket") && out.contains("imported"), "{out}");

    let (ok, _, err) = batos(&["send", "pLLM", "infer", "\"hello\""]);
    assert!(!ok && err.contains("not pulled"), "the default model is not here: {err}");
    assert!(batos(&["set", "pLLM", "model", "\"pocket\""]).0);
    assert!(batos(&["set", "pLLM", "maxTokens", "4"]).0);
    assert!(batos(&["set", "pLLM", "device", "\"cpu\""]).0);
    let (ok, out, err) = batos(&["--json", "send", "pLLM", "infer", "\"hello\""]);
    assert!(ok, "{err}");
    let answer: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert!(answer["result"].is_string(), "{answer}");

    let (_, pllm, _) = batos(&["--json", "inspect", "pLLM"]);
    let size = std::fs::metadata(&source).expect("source").len();
    assert!(
        pllm.contains("weights") && pllm.contains("pocket") && pllm.contains(&size.to_string()),
        "{pllm}"
    );

    // The image thinks with its own copy even when the models folder loses the file.
    std::fs::remove_file(dir.path().join("models").join("pocket.gguf")).expect("remove");
    let (ok, _, err) = batos(&["send", "pLLM", "infer", "\"hello again\""]);
    assert!(ok, "{err}");

    let (ok, _, err) = batos(&["set", "pLLM", "device", "\"tpu\""]);
    assert!(ok, "{err}");
    let (ok, _, err) = batos(&["send", "pLLM", "infer", "\"hello\""]);
    assert!(!ok && err.contains("use auto, cpu or cuda"), "{err}");
}
