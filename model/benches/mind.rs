//! Every catalogued model (or `BATOS_BENCH_MODELS`) on this machine, side by side in
//! one run with llama.cpp (the `llama-cpp-python` package that `scripts/llama-cpp.sh`
//! installs under ~/.cache/batos/llama-cpp) on the same GGUF and the same number of
//! threads: prefill and decode tokens/s and their ratios, import time, peak memory (of
//! the whole run so far: models are benched in catalogue order), and greedy top-1
//! agreement. `BATOS_BENCH_REIMPORT=1` times a fresh import.
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
# which needs logits_all on a small context.
llm = Llama(model_path=path, n_ctx=256, n_threads=threads, logits_all=True, verbose=False)
tops = []
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

    let one = Sampling { max_tokens: 1, ..Sampling::default() };
    // Prefill is measured whole: nothing kept from an earlier prompt.
    mind.forget_prompt_cache();
    let t = Instant::now();
    mind.generate(&prompt, &one, &mut |_| {}).expect("prefill");
    let prefill_s = t.elapsed().as_secs_f64();
    let decode_n = 128;
    let long = Sampling { max_tokens: decode_n, stop: vec![], ..Sampling::default() };
    let t = Instant::now();
    let c = mind.generate(&prompt[..8], &long, &mut |_| {}).expect("decode");
    let decode_s = t.elapsed().as_secs_f64();
    let generated = c.completion_tokens.unwrap_or(decode_n).max(1);

    let greedy: Vec<Vec<u32>> = AGREEMENT_PROMPTS
        .iter()
        .map(|p| tokenizer.encode(*p, false).expect("encodes").get_ids().to_vec())
        .collect();
    let ours: Vec<Vec<u32>> = greedy
        .iter()
        .map(|ids| {
            let s = Sampling { max_tokens: 16, ..Sampling::default() };
            let c = mind.generate(ids, &s, &mut |_| {}).expect("greedy");
            tokenizer.encode(c.text, false).expect("encodes").get_ids().to_vec()
        })
        .collect();

    println!("{name}, {threads} threads ({})", path.display());
    println!(
        "  import + load          {open_s:>8.1} s {}",
        if fresh { "(fresh import)" } else { "(cached import)" }
    );
    println!("  peak memory            {:>8.0} MB", peak_rss_mb());
    println!("  prefill (512 tokens)   {:>8.1} tok/s", 512.0 / prefill_s);
    println!(
        "  decode                 {:>8.1} tok/s ({generated} tokens)",
        generated as f64 / decode_s
    );

    let python_path = pull::models_dir().parent().map(|p| p.join("llama-cpp")).unwrap_or_default();
    let anchor = std::process::Command::new("python3")
        .env("PYTHONPATH", &python_path)
        .args(["-c", LLAMA_CPP])
        .arg(&path)
        .arg(threads.to_string())
        .arg(serde_json::to_string(&prompt).expect("json"))
        .arg(serde_json::to_string(&greedy).expect("json"))
        .arg((decode_n - 1).to_string())
        .output();
    match anchor {
        Ok(out) if out.status.success() => {
            let r: serde_json::Value = serde_json::from_slice(&out.stdout).expect("anchor JSON");
            let lp = 512.0 / r["prefill_s"].as_f64().unwrap_or(f64::NAN);
            let ld = (decode_n - 1) as f64 / r["decode_s"].as_f64().unwrap_or(f64::NAN);
            println!("llama.cpp (llama-cpp-python), same GGUF, {threads} threads");
            println!(
                "  prefill (512 tokens)   {lp:>8.1} tok/s   ratio batos/llama.cpp {:.2}x",
                512.0 / prefill_s / lp
            );
            println!(
                "  decode                 {ld:>8.1} tok/s   ratio batos/llama.cpp {:.2}x",
                generated as f64 / decode_s / ld
            );
            let theirs: Vec<Vec<u64>> =
                serde_json::from_value(r["greedy"].clone()).unwrap_or_default();
            let (mut same, mut total) = (0, 0);
            for (a, b) in ours.iter().zip(&theirs) {
                // Agreement up to the first divergence, over the shorter answer.
                let n = a.len().min(b.len());
                total += n;
                same += a.iter().zip(b).take_while(|(x, y)| u64::from(**x) == **y).count();
            }
            println!("  greedy top-1 agreement {same}/{total} tokens before the first divergence");
        }
        Ok(out) => println!(
            "llama.cpp anchor unavailable: {}",
            String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("")
        ),
        Err(e) => println!("llama.cpp anchor unavailable: {e}"),
    }
}
