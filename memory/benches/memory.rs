//! Memory benchmarks, each beside its anchor in the same run. Run:
//! `cargo bench -p batos-memory --bench memory`
//!
//! * embeddings per second: batos's all-MiniLM-L6-v2 on ONNX Runtime (its default f32
//!   graph, and the registry's int8 one) beside the same f32 graph and tokenizer driven
//!   from Python (`onnxruntime` and `tokenizers` from the
//!   registry, installed under `~/.cache/batos/python-anchor`), with the same threads,
//!   batch size and length-sorted batches (sentence-transformers' own order), on the
//!   sentences of the design documents (`../shared/seeds`);
//! * search latency (p50) with 10,000 and 100,000 fractals: the whole search (query
//!   embedding included) and its parts, and the exact vector scan alone up to 1,000,000;
//! * recall@5 on the questions of `questions.toml` over the design documents ingested
//!   as a user would: words (BM25) alone, meaning (vectors) alone, and fused.
//!
//! Without `--bench` (as `cargo test --all-targets` runs it) it is a quick smoke run on
//! small sizes with no Python anchor. Name sections to run only those:
//! `cargo bench -p batos-memory --bench memory -- recall search`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use batos_memory::store::{self, NewFractal};
use batos_memory::{Memory, SearchOptions};
use batos_mind::Embedder;
use batos_runtime::Runtime;

/// The design documents: `$BATOS_SEEDS`, else `shared/seeds` beside the repository (or
/// beside any folder above it); `None` when this checkout has none beside it.
fn seeds() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("BATOS_SEEDS") {
        return Some(PathBuf::from(dir)).filter(|p| p.is_dir());
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|a| a.join("shared").join("seeds"))
        .find(|p| p.is_dir())
}

fn embedder() -> Arc<dyn Embedder> {
    let files =
        batos_model::embed::pull(&batos_model::pull::models_dir(), &mut batos_model::pull::Quiet)
            .expect("the embedding model pulls");
    Arc::new(batos_model::OnnxEmbedder::load(&files, batos_model::Device::Cpu).expect("loads"))
}

/// The sentences of the design documents, as ingest cuts them (of the persona codex
/// when the documents are not beside this checkout).
fn sentences() -> Vec<String> {
    let Some(dir) = seeds() else {
        println!("  (the design documents are not beside this checkout; the persona codex stands in — set BATOS_SEEDS)");
        let kind = batos_memory::text::Kind::Markdown;
        return batos_memory::text::sentences(kind, batos_memory::PERSONA_CODEX)
            .expect("sentences");
    };
    let mut out = Vec::new();
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(&dir).expect("the seeds folder").flatten().map(|e| e.path()).collect();
    files.sort();
    for f in files {
        let text = std::fs::read_to_string(&f).expect("utf-8");
        let kind = batos_memory::text::Kind::of(&f);
        out.extend(batos_memory::text::sentences(kind, &text).expect("sentences"));
    }
    out
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    samples[((samples.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The Python side of the embedding benchmark: the same files, threads and batches.
const PYTHON_ANCHOR: &str = r#"
import sys, time, json
import numpy as np, onnxruntime as ort
from tokenizers import Tokenizer
model, tok_path, texts_path, threads, batch = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
texts = json.load(open(texts_path))
tok = Tokenizer.from_file(tok_path)
tok.enable_truncation(256)
tok.enable_padding(pad_id=0, pad_token="[PAD]")
opts = ort.SessionOptions()
opts.intra_op_num_threads = threads
sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
def embed(texts):
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = [None] * len(texts)
    for s in range(0, len(order), batch):
        idx = order[s:s + batch]
        enc = tok.encode_batch([texts[i] for i in idx])
        ids = np.array([e.ids for e in enc], dtype=np.int64)
        mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
        types = np.array([e.type_ids for e in enc], dtype=np.int64)
        hidden = sess.run(["last_hidden_state"], {"input_ids": ids, "attention_mask": mask, "token_type_ids": types})[0]
        m = mask[..., None].astype(np.float32)
        pooled = (hidden * m).sum(1) / np.clip(m.sum(1), 1e-9, None)
        pooled /= np.linalg.norm(pooled, axis=1, keepdims=True)
        for j, i in enumerate(idx):
            out[i] = pooled[j]
    return out
embed(texts[:64])
start = time.perf_counter()
vectors = embed(texts)
elapsed = time.perf_counter() - start
print(json.dumps({"per_second": len(texts) / elapsed, "first": [float(x) for x in vectors[0]]}))
"#;

/// Installs numpy and tokenizers for the anchor (once) and answers the PYTHONPATH.
fn python_anchor_path() -> Option<String> {
    let home = std::env::var("HOME").ok()?;
    let cache = PathBuf::from(&home).join(".cache/batos");
    let anchor = cache.join("python-anchor");
    if !anchor.join("tokenizers").is_dir() || !anchor.join("numpy").is_dir() {
        let status = Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--target"])
            .arg(&anchor)
            .args(["numpy", "tokenizers"])
            .status()
            .ok()?;
        if !status.success() {
            return None;
        }
    }
    let ort = cache.join(format!("onnxruntime-{}", batos_model::onnxruntime::ORT_VERSION));
    Some(format!("{}:{}", anchor.display(), ort.display()))
}

fn bench_embeddings(embedder: &dyn Embedder, quick: bool) {
    let all = sentences();
    let texts: Vec<String> = all.into_iter().take(if quick { 48 } else { 2000 }).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    embedder.embed(&refs[..refs.len().min(64)]).expect("warm-up");
    let start = Instant::now();
    let ours = embedder.embed(&refs).expect("embeds");
    let per_second = texts.len() as f64 / start.elapsed().as_secs_f64();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    println!(
        "embeddings: {} sentences of the design documents, {threads} threads, batches of {}",
        texts.len(),
        batos_model::embed::BATCH
    );
    println!("  batos (Rust, ONNX Runtime)   {per_second:8.1} /s  (the default graph: f32)");
    // The registry's int8 graph: the other choice of precision.
    let files =
        batos_model::embed::pull(&batos_model::pull::models_dir(), &mut batos_model::pull::Quiet)
            .expect("pulled");
    let int8_graph = batos_model::OnnxEmbedder::load_with(
        &files,
        batos_model::Device::Cpu,
        batos_model::embed::Precision::Int8,
    )
    .expect("the int8 graph loads");
    int8_graph.embed(&refs[..refs.len().min(64)]).expect("warm-up");
    let start = Instant::now();
    let quantized = int8_graph.embed(&refs).expect("embeds");
    let int8_per_second = texts.len() as f64 / start.elapsed().as_secs_f64();
    let cosines: Vec<f32> = ours
        .iter()
        .zip(&quantized)
        .map(|(a, b)| a.iter().zip(b).map(|(x, y)| x * y).sum())
        .collect();
    let mean = cosines.iter().sum::<f32>() / cosines.len().max(1) as f32;
    let least = cosines.iter().copied().fold(f32::MAX, f32::min);
    println!(
        "  batos, int8 graph            {int8_per_second:8.1} /s  (f32 runs at {:.2}x its speed; f32 against int8: cosine mean {mean:.4}, least {least:.4})",
        per_second / int8_per_second
    );
    if quick {
        println!("  (quick mode: the Python anchor runs with --bench)");
        return;
    }
    let Some(pythonpath) = python_anchor_path() else {
        println!("  Python anchor: could not install numpy and tokenizers with pip; no ratio");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let texts_path = dir.path().join("texts.json");
    std::fs::write(&texts_path, serde_json::to_vec(&texts).expect("json")).expect("write");
    let out = Command::new("python3")
        .arg("-c")
        .arg(PYTHON_ANCHOR)
        .arg(batos_model::embed::export_f32(&files).expect("the f32 graph"))
        .arg(files.tokenizer())
        .arg(&texts_path)
        .arg(threads.to_string())
        .arg(batos_model::embed::BATCH.to_string())
        .env("PYTHONPATH", pythonpath)
        .output()
        .expect("python3 runs");
    if !out.status.success() {
        println!("  Python anchor failed: {}", String::from_utf8_lossy(&out.stderr));
        return;
    }
    let answer: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("the anchor answers JSON");
    let theirs = answer["per_second"].as_f64().unwrap_or(f64::NAN);
    let first: Vec<f32> = answer["first"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x.as_f64()).map(|x| x as f32).collect())
        .unwrap_or_default();
    let agreement: f32 = first.iter().zip(&ours[0]).map(|(a, b)| a * b).sum();
    println!("  Python (onnxruntime)         {theirs:8.1} /s");
    println!(
        "  ratio batos / Python: {:.2}x (same vectors: cosine {agreement:.5} on the first)",
        per_second / theirs
    );
}

/// Writes `n` fractals (texts from the design documents, each with the vector of its
/// sentence nudged so that no two are equal) in transactions of 500.
fn fill(rt: &Runtime, sentences: &[String], vectors: &[Vec<f32>], n: usize, model: &str) {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut noise = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    for chunk in 0..n.div_ceil(500) {
        let fractals: Vec<NewFractal> = (chunk * 500..((chunk + 1) * 500).min(n))
            .map(|i| {
                let s = i % sentences.len();
                let mut vector: Vec<f32> = vectors[s].iter().map(|x| x + 0.02 * noise()).collect();
                batos_model::embed::normalize(&mut vector);
                NewFractal { text: format!("{} ({i})", sentences[s]), vector }
            })
            .collect();
        rt.transact("bench fill", |cx| {
            let tx = cx.tx_mut("fill")?;
            let layout = store::ensure(tx)?;
            store::replace_source(
                tx,
                &layout,
                &format!("/bench/{chunk}.txt"),
                "-",
                0,
                model,
                &fractals,
            )
        })
        .expect("fills");
    }
}

fn bench_search(embedder: &Arc<dyn Embedder>, quick: bool) {
    let sentences = sentences();
    let sample: Vec<String> =
        sentences.iter().take(if quick { 200 } else { 3000 }).cloned().collect();
    let refs: Vec<&str> = sample.iter().map(String::as_str).collect();
    let vectors = embedder.embed(&refs).expect("embeds");
    let questions = questions();
    let sizes: &[usize] = if quick { &[1_000] } else { &[10_000, 100_000] };
    println!("search latency, p50 over {} questions (fused, k = 5):", questions.len());
    for &n in sizes {
        let dir = tempfile::tempdir().expect("tempdir");
        let memory = Memory::with_embedder(embedder.clone());
        let rt = memory.attach(Runtime::builder()).open(dir.path().join("image")).expect("opens");
        let start = Instant::now();
        fill(&rt, &sample, &vectors, n, embedder.model_id());
        let filled = start.elapsed();
        // The first search builds the vector index from the image.
        let start = Instant::now();
        memory.search(&rt, "warm up", SearchOptions::default()).expect("search");
        let build = start.elapsed();
        let mut whole = Vec::new();
        let mut words = Vec::new();
        let mut meaning = Vec::new();
        let mut embed = Vec::new();
        for (q, _, _) in &questions {
            let t = Instant::now();
            memory.search(&rt, q, SearchOptions::default()).expect("search");
            whole.push(t.elapsed());
            let t = Instant::now();
            memory
                .search(&rt, q, SearchOptions { words: 1.0, meaning: 0.0, ..Default::default() })
                .expect("search");
            words.push(t.elapsed());
            let t = Instant::now();
            embedder.embed(&[q]).expect("embeds");
            embed.push(t.elapsed());
            let t = Instant::now();
            memory
                .search(&rt, q, SearchOptions { words: 0.0, meaning: 1.0, ..Default::default() })
                .expect("search");
            meaning.push(t.elapsed());
        }
        // One more document: the index re-reads only it.
        let extra: Vec<NewFractal> = (0..20)
            .map(|i| NewFractal { text: format!("extra passage {i}"), vector: vectors[i].clone() })
            .collect();
        rt.transact("bench: one more document", |cx| {
            let tx = cx.tx_mut("one more")?;
            let layout = store::ensure(tx)?;
            store::replace_source(
                tx,
                &layout,
                "/bench/extra.txt",
                "x",
                0,
                embedder.model_id(),
                &extra,
            )
        })
        .expect("writes");
        let start = Instant::now();
        memory
            .search(
                &rt,
                "warm up",
                SearchOptions { words: 0.0, meaning: 1.0, ..Default::default() },
            )
            .expect("search");
        let update = start.elapsed();
        println!(
            "  {n:>7} fractals: the first meaning search after one more document took {:.0} ms (the index re-reads that document only)",
            ms(update)
        );
        println!(
            "  {n:>7} fractals: whole {:7.2} ms | words only {:7.2} ms | query embedding {:6.2} ms | meaning only {:7.2} ms (written in {:.1} s, vector index built in {:.0} ms)",
            ms(percentile(&mut whole, 0.5)),
            ms(percentile(&mut words, 0.5)),
            ms(percentile(&mut embed, 0.5)),
            ms(percentile(&mut meaning, 0.5)),
            filled.as_secs_f64(),
            ms(build)
        );
    }
    // The approximate index on the largest memory, forced on: its build, its search, and
    // how much of the exact top 5 it finds.
    if let Some(&n) = sizes.last() {
        let dir = tempfile::tempdir().expect("tempdir");
        let memory = Memory::with_embedder(embedder.clone());
        let rt = memory.attach(Runtime::builder()).open(dir.path().join("image")).expect("opens");
        fill(&rt, &sample, &vectors, n, embedder.model_id());
        let meaning = SearchOptions { words: 0.0, meaning: 1.0, ..Default::default() };
        let mut exact_times = Vec::new();
        let mut exact_tops = Vec::new();
        for (q, _, _) in &questions {
            let t = Instant::now();
            let hits = memory.search(&rt, q, meaning).expect("search");
            exact_times.push(t.elapsed());
            exact_tops.push(hits.iter().map(|h| h.fractal).collect::<Vec<_>>());
        }
        memory.vector_index().set_approximate_above(0);
        let t = Instant::now();
        let size = memory.build_approximate_index(&rt).expect("builds");
        let build = t.elapsed();
        let mut approx_times = Vec::new();
        let mut found = 0;
        for ((q, _, _), exact) in questions.iter().zip(&exact_tops) {
            let t = Instant::now();
            let hits = memory.search(&rt, q, meaning).expect("search");
            approx_times.push(t.elapsed());
            found += exact.iter().filter(|o| hits.iter().any(|h| h.fractal == **o)).count();
        }
        let asked: usize = exact_tops.iter().map(Vec::len).sum();
        println!(
            "  {n:>7} fractals, meaning only: exact {:.2} ms, HNSW {:.2} ms p50 (built over {size} vectors in {:.1} s; it finds {:.3} of the exact top 5)",
            ms(percentile(&mut exact_times, 0.5)),
            ms(percentile(&mut approx_times, 0.5)),
            build.as_secs_f64(),
            found as f64 / asked.max(1) as f64
        );
    }
    // The exact scan alone, to see where it would stop being fast enough.
    let dims = vectors[0].len();
    for n in if quick { vec![10_000] } else { vec![10_000, 100_000, 1_000_000] } {
        let matrix: Vec<f32> =
            (0..n).flat_map(|i| vectors[i % vectors.len()].iter().copied()).collect();
        let query = &vectors[1];
        let mut samples = Vec::new();
        for _ in 0..20 {
            let t = Instant::now();
            let mut best = f32::MIN;
            for row in matrix.chunks_exact(dims) {
                best = best.max(batos_memory::search::dot(row, query));
            }
            std::hint::black_box(best);
            samples.push(t.elapsed());
        }
        println!(
            "  exact vector scan alone, {n:>9} vectors: p50 {:8.2} ms",
            ms(percentile(&mut samples, 0.5))
        );
    }
}

fn questions() -> Vec<(String, String, String)> {
    let text = include_str!("questions.toml");
    let parsed: toml::Value = toml::from_str(text).expect("questions.toml parses");
    parsed["question"]
        .as_array()
        .expect("questions")
        .iter()
        .map(|q| {
            let field = |k: &str| q[k].as_str().expect("field").to_owned();
            (field("q"), field("file"), field("needle"))
        })
        .collect()
}

fn bench_recall(embedder: &Arc<dyn Embedder>, quick: bool) {
    let questions = questions();
    let Some(seeds) = seeds() else {
        println!("recall@5: skipped — the design documents are not beside this checkout (set BATOS_SEEDS)");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let memory = Memory::with_embedder(embedder.clone());
    let rt = memory.attach(Runtime::builder()).open(dir.path().join("image")).expect("opens");
    let mut paths: Vec<PathBuf> =
        std::fs::read_dir(&seeds).expect("seeds").flatten().map(|e| e.path()).collect();
    paths.sort();
    if quick {
        paths.retain(|p| p.to_string_lossy().contains("000_"));
    }
    for (_, file, needle) in &questions {
        let text = std::fs::read_to_string(seeds.join(file)).expect("the question's file");
        assert!(
            text.to_lowercase().contains(&needle.to_lowercase()),
            "needle `{needle}` is not in {file}"
        );
    }
    let start = Instant::now();
    let reports = memory.ingest(&rt, &paths, &mut |_| {}).expect("ingests");
    let fractals: usize = reports
        .iter()
        .map(|r| match r.outcome {
            batos_memory::FileOutcome::Ingested { fractals, .. } => fractals,
            _ => 0,
        })
        .sum();
    println!("recall@5 on {} questions over the design documents ({} files, {fractals} fractals, ingested in {:.1} s):", questions.len(), paths.len(), start.elapsed().as_secs_f64());
    for (name, options) in [
        ("words alone (BM25)  ", SearchOptions { limit: 5, words: 1.0, meaning: 0.0 }),
        ("meaning alone (MiniLM)", SearchOptions { limit: 5, words: 0.0, meaning: 1.0 }),
        ("fused (RRF, k = 60)  ", SearchOptions { limit: 5, words: 1.0, meaning: 1.0 }),
        ("fused, words 2 : 1   ", SearchOptions { limit: 5, words: 2.0, meaning: 1.0 }),
    ] {
        let mut found = 0;
        let mut asked = 0;
        for (q, file, needle) in &questions {
            if quick && !file.starts_with("000_") {
                continue;
            }
            asked += 1;
            let hits = memory.search(&rt, q, options).expect("search");
            if hits.iter().any(|h| {
                h.source.ends_with(file.as_str())
                    && h.text.to_lowercase().contains(&needle.to_lowercase())
            }) {
                found += 1;
            }
        }
        println!("  {name} {found:>3}/{asked} = {:.2}", found as f64 / asked.max(1) as f64);
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this quickly.
    let quick = std::env::args().all(|a| a != "--bench");
    println!("memory benchmarks{}", if quick { " — quick mode" } else { "" });
    // `cargo bench -p batos-memory --bench memory -- recall` runs only the sections named.
    let named: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let wanted = |section: &str| named.is_empty() || named.iter().any(|n| n == section);
    let embedder = embedder();
    if wanted("embeddings") {
        bench_embeddings(embedder.as_ref(), quick);
    }
    if wanted("recall") {
        bench_recall(&embedder, quick);
    }
    if wanted("search") {
        bench_search(&embedder, quick);
    }
}
