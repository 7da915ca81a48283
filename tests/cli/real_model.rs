//! THE REAL EMBEDDED MODEL from the command line: `send pLLM infer` across processes,
//! with the weights in the image, and three processes pulling one model at once.

use std::collections::BTreeSet;

use batos::model::pull;

/// THE REAL EMBEDDED MODEL from the command line: `batos send pLLM infer "…"`. The
/// first use adopts the weights into the image as a blob that `pLLM` refers to; a
/// second process thinks with that blob.
#[test]
fn send_pllm_infer_works_from_the_cli() {
    pull::pull(pull::CATALOGUE[0].name, &pull::models_dir(), &mut pull::Quiet)
        .expect("the model pulls");
    let dir = tempfile::tempdir().expect("tempdir");
    let batos = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_batos"))
            .arg("--image")
            .arg(dir.path().join("image"))
            .args(args)
            .output()
            .expect("batos runs")
    };
    assert!(batos(&["set", "pLLM", "maxTokens", "16"]).status.success());
    let out = batos(&[
        "--json",
        "send",
        "pLLM",
        "infer",
        "\"What is 2 + 3? Answer with the number only.\"",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert!(answer["result"].as_str().is_some_and(|t| t.contains('5')), "{answer}");

    let out = batos(&["--json", "inspect", "pLLM"]);
    let pllm = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        pllm.contains("weights") && pllm.contains(&pull::CATALOGUE[0].size.to_string()),
        "pLLM refers to its weights blob: {pllm}"
    );
    let blobs: Vec<_> = walk(&dir.path().join("image").join("blobs"));
    assert!(
        blobs.iter().any(|(_, len)| *len == pull::CATALOGUE[0].size),
        "the GGUF is in the image's blob store"
    );

    let out = batos(&[
        "--json",
        "send",
        "pLLM",
        "infer",
        "\"What is 4 + 4? Answer with the number only.\"",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert!(answer["result"].as_str().is_some_and(|t| t.contains('8')), "{answer}");
}

/// THE REAL EMBEDDED MODEL, pulled by three processes at once into an empty models
/// folder, as the test suite and a person's first `run.sh` do on a fresh machine: the
/// models folder's lock makes them take turns, so all three succeed and leave one
/// verified GGUF and one complete export.
#[test]
fn three_processes_pulling_one_model_at_once_all_succeed() {
    let models = tempfile::tempdir().expect("tempdir");
    let pulls: Vec<_> = (0..3)
        .map(|_| {
            std::process::Command::new(env!("CARGO_BIN_EXE_batos"))
                .args(["--json", "model", "pull"])
                .env("BATOS_MODELS", models.path())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("batos runs")
        })
        .collect();
    let mut exports = BTreeSet::new();
    for pull in pulls {
        let out = pull.wait_with_output().expect("batos ends");
        assert!(
            out.status.success(),
            "every pull succeeds: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let answer: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        exports.insert(
            answer["result"]["onnx"]
                .as_str()
                .map(str::to_owned)
                .or_else(|| answer["onnx"].as_str().map(str::to_owned))
                .expect("the export's path"),
        );
    }
    assert_eq!(exports.len(), 1, "one export for all three: {exports:?}");
    let ggufs: Vec<_> = walk(models.path())
        .into_iter()
        .filter(|(p, _)| p.extension().is_some_and(|e| e == "gguf"))
        .collect();
    assert_eq!(ggufs.len(), 1, "one GGUF: {ggufs:?}");
    assert_eq!(ggufs[0].1, pull::CATALOGUE[0].size);
    let leftovers: Vec<_> = walk(models.path())
        .into_iter()
        .filter(|(p, _)| p.to_string_lossy().contains("partial"))
        .collect();
    assert!(leftovers.is_empty(), "nothing half-written is left: {leftovers:?}");
    let model = pull::pull(pull::CATALOGUE[0].name, models.path(), &mut pull::Quiet)
        .expect("a fourth pull finds it ready");
    assert!(model.onnx.is_file());
}

fn walk(dir: &std::path::Path) -> Vec<(std::path::PathBuf, u64)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else if let Ok(meta) = entry.metadata() {
            out.push((path, meta.len()));
        }
    }
    out
}

/// THE REAL EMBEDDED MODEL and THE REAL EMBEDDING MODEL in one contrapunto exchange:
/// routed by meaning, two personas answer in turn, the exchange is kept.
#[test]
fn one_contrapunto_exchange_with_the_real_model() {
    pull::pull(pull::CATALOGUE[0].name, &pull::models_dir(), &mut pull::Quiet)
        .expect("the model pulls");
    let dir = tempfile::tempdir().expect("tempdir");
    let batos = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_batos"))
            .arg("--image")
            .arg(dir.path().join("image"))
            .args(args)
            .output()
            .expect("batos runs");
        assert!(out.status.success(), "batos {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        out
    };
    // Short answers: this is about the exchange, not the essay.
    for persona in ["alfred", "babs", "brick", "robin"] {
        batos(&["set", persona, "maxTokens", "40"]);
    }
    let out =
        batos(&["--json", "chat", "How should a program keep its data safe when the power fails?"]);
    let reply: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let turns = reply["turns"].as_array().expect("turns");
    assert_eq!(turns.len(), 2, "{reply}");
    assert_ne!(turns[0]["persona"], turns[1]["persona"]);
    for turn in turns {
        assert!(
            turn["text"].as_str().is_some_and(|t| t.split_whitespace().count() >= 3),
            "{reply}"
        );
    }
    assert!(!reply["routing"]["archetype"].as_str().unwrap_or_default().is_empty(), "{reply}");
    let out = batos(&["--json", "inspect", "dialogues"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("d1"));
}

/// THE REAL EMBEDDED MODEL, pulled as a durable job of a serving kernel (`model_pull`
/// with `job`): the request answers the job at once; the kernel's runner pulls it (here
/// finding it ready), and the job completes with what was imported.
#[test]
fn a_model_pull_queued_as_a_job_completes_on_the_kernel() {
    pull::pull(pull::CATALOGUE[0].name, &pull::models_dir(), &mut pull::Quiet)
        .expect("the model pulls");
    let dir = tempfile::tempdir().expect("tempdir");
    let image = dir.path().join("image");
    let mut kernel = crate::jepsen::batos(&image)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("batos serve");
    let info = crate::jepsen::serving(&image, None);
    let mut client = batos_client::Client::connect(&info, Default::default()).expect("connect");
    let request = batos_protocol::Request::ModelPull { name: None, job: true };
    let queued = client.request(request, &mut |_| {}).expect("answered").expect("queued");
    let id = queued.json["job"].as_str().expect("a job id").to_owned();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
    let job = loop {
        let request = batos_protocol::Request::Jobs { limit: None, job: Some(id.clone()) };
        let job = client.request(request, &mut |_| {}).expect("answered").expect("the job").json;
        if job["state"] == "completed" || job["state"] == "failed" {
            break job;
        }
        assert!(std::time::Instant::now() < deadline, "the pull did not finish: {job}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(job["state"], "completed", "{job}");
    assert_eq!(job["kind"], "model-pull");
    assert_eq!(job["result"]["name"], pull::CATALOGUE[0].name, "{job}");
    let _ = kernel.kill();
    let _ = kernel.wait();
}
