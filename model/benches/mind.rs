//! Every catalogued model (or `BATOS_BENCH_MODELS`) on this machine, side by side in
//! one run with llama.cpp (the `llama-cpp-python` package that `scripts/llama-cpp.sh`
//! installs under ~/.cache/batos/llama-cpp) on the same GGUF and the same number of
//! threads: prefill and decode tokens/s and their ratios, import time, peak memory (of
//! the whole run so far: models are benched in catalogue order), the weights a decode
//! step reads beside the GGUF's, and greedy top-1 agreement. `BATOS_BENCH_REIMPORT=1`
//! times a fresh import.
//!
//! Speeds on a shared 2-core machine drift by a quarter between minutes, for both
//! engines, so one measurement of each gives ratios anywhere from 0.5× to 0.8× for the
//! same build. Each model is therefore timed in `BATOS_BENCH_ROUNDS` (default 5)
//! alternating rounds — ours, then llama.cpp's — and the report gives the median of each
//! speed and of the per-round ratios, with their range.
//! Run: `cargo bench -p batos-model --bench mind`

use std::time::Instant;

use batos_mind::Sampling;
use batos_model::{pull, OnnxMind};

const AGREEMENT_PROMPTS: [&str; 3] = [
    "<|im_start|>user\nWrite a Rust function that reverses a string.<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|>user\nWhat is a prototype object?<|im_end|>\n<|im_start|>assistant\n",
    "fn factorial(n: u64) -> u64 {",
];

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

const LLAMA_CPP: &str = r#"
import json, sys, time
from llama_cpp import Llama
path, threads = sys.argv[1], int(sys.argv[2])
prompt = json.loads(sys.argv[3]); greedy = json.loads(sys.argv[4]); decode = int(sys.argv[5])
llm = Llama(model_path=path, n_ctx=2048, n_threads=threads, n_threads_batch=threads, n_batch=512, verbose=False)
llm.reset(); t = time.perf_counter(); llm.eval(prompt); prefill = time.perf_counter() - t
llm.reset(); llm.eval(prompt[:8]); t = time.perf_counter()
for _ in range(decode):
    llm.eval([198])  # the token fed does not change the cost of a step
decode_s = time.perf_counter() - t
# The timing instance keeps only the last logits; greedy decoding reads them per step,
# which needs logits_all on a small context. Asked for in the first round only.
tops = []
if greedy:
    llm = Llama(model_path=path, n_ctx=256, n_threads=threads, logits_all=True, verbose=False)
for ids in greedy:
    llm.reset(); llm.eval(ids); out = []
    for _ in range(16):
        tok = int(llm.scores[llm.n_tokens - 1].argmax()); out.append(tok); llm.eval([tok])
    tops.append(out)
print(json.dumps({"prefill_s": prefill, "decode_s": decode_s, "greedy": tops}))
"#;

fn main() {
    if std::env::args().all(|a| a != "--bench") {
        println!("mind benchmark: skipped outside `cargo bench` (it loads the real model)");
        return;
    }
    let models: Vec<String> = match std::env::var("BATOS_BENCH_MODELS") {
        Ok(list) => list.split(',').map(str::to_owned).collect(),
        Err(_) => pull::CATALOGUE.iter().map(|e| e.name.to_owned()).collect(),
    };
    for name in &models {
        bench(name);
    }
}

fn bench(name: &str) {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let model = pull::pull(name, &pull::models_dir(), &mut pull::Quiet).expect("model");
    let path = model.gguf.clone();
    let export_dir = batos_model::onnx_mind::export_dir(&pull::models_dir(), &model.key);
    let fresh = std::env::var_os("BATOS_BENCH_REIMPORT").is_some();
    if fresh {
        let _ = std::fs::remove_dir_all(&export_dir);
    }
    let t = Instant::now();
    let mind =
        OnnxMind::open(&path, &export_dir, &model.name, batos_model::Device::Cpu).expect("opens");
    let open_s = t.elapsed().as_secs_f64();
    let tokenizer =
        batos_model::tokenizer::tokenizer(&batos_model::gguf::Gguf::read(&path).expect("gguf"))
            .expect("tokenizer");
    let text = "fn main() { let values: Vec<u64> = (1..=10).map(|x| x * x).collect(); println!(\"{:?}\", values); }\n".repeat(40);
    let prompt: Vec<u32> =
        tokenizer.encode(text, false).expect("encodes").get_ids()[..512].to_vec();

    let greedy: Vec<Vec<u32>> = AGREEMENT_PROMPTS
        .iter()
        .map(|p| tokenizer.encode(*p, false).expect("encodes").get_ids().to_vec())
        .collect();
    let ours_greedy: Vec<Vec<u32>> = greedy
        .iter()
        .map(|ids| {
            let s = Sampling { max_tokens: 16, ..Sampling::default() };
            let c = mind.generate(ids, &s, &mut |_| {}).expect("greedy");
            tokenizer.encode(c.text, false).expect("encodes").get_ids().to_vec()
        })
        .collect();

    let rounds: usize = std::env::var("BATOS_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .filter(|r| *r > 0)
        .unwrap_or(5);
    let decode_n = 128;
    let python_path = pull::models_dir().parent().map(|p| p.join("llama-cpp")).unwrap_or_default();
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    let mut their_greedy: Option<Vec<Vec<u64>>> = None;
    let mut anchor_error = None;
    for round in 0..rounds {
        ours.push(our_round(&mind, &prompt, decode_n));
        let asked: &[Vec<u32>] = if round == 0 { &greedy } else { &[] };
        match llama_round(&python_path, &path, threads, &prompt, asked, decode_n) {
            Ok((speeds, tops)) => {
                theirs.push(speeds);
                if round == 0 {
                    their_greedy = Some(tops);
                }
            }
            Err(e) => {
                anchor_error = Some(e);
                break;
            }
        }
    }

    println!("{name}, {threads} threads ({})", path.display());
    println!(
        "  import + load          {open_s:>8.1} s {}",
        if fresh { "(fresh import)" } else { "(cached import)" }
    );
    println!("  peak memory            {:>8.0} MB", peak_rss_mb());
    let (ours_mb, gguf_mb) = weights_read_mb(&export_dir, &path);
    println!(
        "  weights a token reads  {ours_mb:>8.0} MB (the GGUF's own blocks: {gguf_mb:.0} MB, {:.2}x)",
        ours_mb / gguf_mb
    );
    let column = |speeds: &[Speeds], pick: fn(&Speeds) -> f64| {
        median(&speeds.iter().map(pick).collect::<Vec<_>>())
    };
    println!(
        "  prefill (512 tokens)   {:>8.1} tok/s (median of {rounds})",
        column(&ours, |s| s.prefill)
    );
    println!(
        "  decode                 {:>8.1} tok/s (up to {decode_n} tokens a round)",
        column(&ours, |s| s.decode)
    );
    if let Some(e) = anchor_error {
        println!("llama.cpp anchor unavailable: {e}");
        return;
    }
    println!("llama.cpp (llama-cpp-python), same GGUF, {threads} threads, alternating rounds");
    for (label, pick) in [
        ("prefill (512 tokens)", (|s: &Speeds| s.prefill) as fn(&Speeds) -> f64),
        ("decode", |s| s.decode),
    ] {
        let ratios: Vec<f64> = ours.iter().zip(&theirs).map(|(a, b)| pick(a) / pick(b)).collect();
        let (low, high) =
            ratios.iter().fold((f64::MAX, f64::MIN), |(l, h), r| (l.min(*r), h.max(*r)));
        println!(
            "  {label:<22} {:>8.1} tok/s   ratio batos/llama.cpp {:.2}x (rounds {low:.2}-{high:.2})",
            column(&theirs, pick),
            median(&ratios),
        );
    }
    let theirs = their_greedy.unwrap_or_default();
    let (mut same, mut total) = (0, 0);
    for (a, b) in ours_greedy.iter().zip(&theirs) {
        // Agreement up to the first divergence, over the shorter answer.
        let n = a.len().min(b.len());
        total += n;
        same += a.iter().zip(b).take_while(|(x, y)| u64::from(**x) == **y).count();
    }
    println!("  greedy top-1 agreement {same}/{total} tokens before the first divergence");
}

/// Megabytes of weights one decode step reads: the initializers of the export's matrix
/// products (codes, scales, zero points, Q4_K's minimums), and the same matrices in the
/// GGUF's blocks, which is what llama.cpp reads. Decoding is bound by memory, so their
/// ratio bounds the decode ratio.
fn weights_read_mb(export: &std::path::Path, gguf: &std::path::Path) -> (f64, f64) {
    use prost::Message;
    let onnx = std::fs::read(export.join("model.onnx")).expect("the export");
    let model = batos_model::onnx_proto::ModelProto::decode(onnx.as_slice()).expect("decodes");
    let graph = model.graph.unwrap_or_default();
    let size: std::collections::HashMap<&str, u64> = graph
        .initializer
        .iter()
        .map(|t| {
            let external = t.external_data.iter().find(|e| e.key == "length");
            let len = external.and_then(|e| e.value.parse().ok());
            (t.name.as_str(), len.unwrap_or(t.raw_data.len() as u64))
        })
        .collect();
    let ours: u64 = graph
        .node
        .iter()
        .filter(|n| n.op_type == "MatMulNBits" || n.op_type == "MatMul")
        .flat_map(|n| n.input.iter())
        .filter_map(|i| size.get(i.as_str()))
        .sum();
    let g = batos_model::gguf::Gguf::read(gguf).expect("gguf");
    // The embedding is only gathered, unless the output projection is tied to it.
    let tied = g.tensor("output.weight").is_none();
    let theirs: u64 = g
        .tensors
        .iter()
        .filter(|t| t.dims.len() == 2 && (t.name != "token_embd.weight" || tied))
        .filter_map(|t| t.byte_len())
        .sum();
    (ours as f64 / 1e6, theirs as f64 / 1e6)
}

/// Tokens a second, one round's worth.
struct Speeds {
    prefill: f64,
    decode: f64,
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Our prefill of the whole prompt (nothing kept from an earlier one), then `decode_n`
/// tokens after an 8-token prompt.
fn our_round(mind: &OnnxMind, prompt: &[u32], decode_n: usize) -> Speeds {
    let one = Sampling { max_tokens: 1, ..Sampling::default() };
    mind.forget_prompt_cache();
    let t = Instant::now();
    mind.generate(prompt, &one, &mut |_| {}).expect("prefill");
    let prefill_s = t.elapsed().as_secs_f64();
    let long = Sampling { max_tokens: decode_n, stop: vec![], ..Sampling::default() };
    let t = Instant::now();
    let c = mind.generate(&prompt[..8], &long, &mut |_| {}).expect("decode");
    let decode_s = t.elapsed().as_secs_f64();
    let generated = c.completion_tokens.unwrap_or(decode_n).max(1);
    Speeds { prefill: prompt.len() as f64 / prefill_s, decode: generated as f64 / decode_s }
}

/// llama.cpp's round in its own process: speeds, and the greedy answers to `greedy`.
fn llama_round(
    python_path: &std::path::Path,
    gguf: &std::path::Path,
    threads: usize,
    prompt: &[u32],
    greedy: &[Vec<u32>],
    decode_n: usize,
) -> Result<(Speeds, Vec<Vec<u64>>), String> {
    let out = std::process::Command::new("python3")
        .env("PYTHONPATH", python_path)
        .args(["-c", LLAMA_CPP])
        .arg(gguf)
        .arg(threads.to_string())
        .arg(serde_json::to_string(prompt).expect("json"))
        .arg(serde_json::to_string(greedy).expect("json"))
        .arg((decode_n - 1).to_string())
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("").to_owned());
    }
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    let seconds = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
    let speeds = Speeds {
        prefill: prompt.len() as f64 / seconds("prefill_s"),
        decode: (decode_n - 1) as f64 / seconds("decode_s"),
    };
    Ok((speeds, serde_json::from_value(r["greedy"].clone()).unwrap_or_default()))
}
