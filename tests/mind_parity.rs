//! Tiny random models that this test writes as GGUF files (qwen2 and llama, two blocks,
//! grouped-query attention, Q8_0 and F32 tensors) are exported to ONNX and run in ONNX
//! Runtime; the logits must match the plain Rust reference forward pass over a prefill
//! and 16 decode steps, with f32 weights and with MatMulNBits.

use batos::mind::gguf::{Gguf, GgufWriter, MetaValue};
use batos::mind::quant::{quantize_q8_0, GgmlType};
use batos::mind::reference::Reference;
use batos::mind::{export, model, runtime};
use ort::value::Tensor;
use prost::Message;
use rand::{Rng, SeedableRng};

const VOCAB: usize = 64;
const HIDDEN: usize = 32;
const FFN: usize = 64;
const HEADS: usize = 4;
const KV_HEADS: usize = 2;
const LAYERS: usize = 2;

fn write_model(path: &std::path::Path, arch: &str, seed: u64) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut random = |n: usize, scale: f32| -> Vec<f32> { (0..n).map(|_| rng.random_range(-scale..scale)).collect() };
    let f32_bytes = |v: &[f32]| -> Vec<u8> { v.iter().flat_map(|x| x.to_le_bytes()).collect() };
    let kv = KV_HEADS * HIDDEN / HEADS;
    let mut w = GgufWriter::default();
    w.meta("general.architecture", MetaValue::String(arch.into()))
        .meta(&format!("{arch}.block_count"), MetaValue::U32(LAYERS as u32))
        .meta(&format!("{arch}.embedding_length"), MetaValue::U32(HIDDEN as u32))
        .meta(&format!("{arch}.feed_forward_length"), MetaValue::U32(FFN as u32))
        .meta(&format!("{arch}.attention.head_count"), MetaValue::U32(HEADS as u32))
        .meta(&format!("{arch}.attention.head_count_kv"), MetaValue::U32(KV_HEADS as u32))
        .meta(&format!("{arch}.rope.freq_base"), MetaValue::F32(10_000.0))
        .meta(&format!("{arch}.attention.layer_norm_rms_epsilon"), MetaValue::F32(1e-6))
        .meta("tokenizer.ggml.tokens", MetaValue::Array((0..VOCAB).map(|i| MetaValue::String(format!("t{i}"))).collect()));
    let h = HIDDEN as u64;
    w.tensor("token_embd.weight", &[h, VOCAB as u64], GgmlType::Q8_0, quantize_q8_0(&random(VOCAB * HIDDEN, 1.0)));
    w.tensor("output_norm.weight", &[h], GgmlType::F32, f32_bytes(&random(HIDDEN, 1.0).iter().map(|v| 1.0 + v * 0.1).collect::<Vec<_>>()));
    w.tensor("output.weight", &[h, VOCAB as u64], GgmlType::Q8_0, quantize_q8_0(&random(VOCAB * HIDDEN, 0.3)));
    for i in 0..LAYERS {
        let n = |p: &str| format!("blk.{i}.{p}");
        w.tensor(&n("attn_norm.weight"), &[h], GgmlType::F32, f32_bytes(&random(HIDDEN, 0.1).iter().map(|v| 1.0 + v).collect::<Vec<_>>()));
        w.tensor(&n("ffn_norm.weight"), &[h], GgmlType::F32, f32_bytes(&random(HIDDEN, 0.1).iter().map(|v| 1.0 + v).collect::<Vec<_>>()));
        w.tensor(&n("attn_q.weight"), &[h, h], GgmlType::Q8_0, quantize_q8_0(&random(HIDDEN * HIDDEN, 0.3)));
        w.tensor(&n("attn_k.weight"), &[h, kv as u64], GgmlType::Q8_0, quantize_q8_0(&random(kv * HIDDEN, 0.3)));
        w.tensor(&n("attn_v.weight"), &[h, kv as u64], GgmlType::F32, f32_bytes(&random(kv * HIDDEN, 0.3)));
        w.tensor(&n("attn_output.weight"), &[h, h], GgmlType::F32, f32_bytes(&random(HIDDEN * HIDDEN, 0.3)));
        w.tensor(&n("ffn_gate.weight"), &[h, FFN as u64], GgmlType::Q8_0, quantize_q8_0(&random(FFN * HIDDEN, 0.3)));
        w.tensor(&n("ffn_up.weight"), &[h, FFN as u64], GgmlType::Q8_0, quantize_q8_0(&random(FFN * HIDDEN, 0.3)));
        w.tensor(&n("ffn_down.weight"), &[FFN as u64, h], GgmlType::F32, f32_bytes(&random(HIDDEN * FFN, 0.3)));
        if arch == "qwen2" {
            w.tensor(&n("attn_q.bias"), &[h], GgmlType::F32, f32_bytes(&random(HIDDEN, 0.5)));
            w.tensor(&n("attn_k.bias"), &[kv as u64], GgmlType::F32, f32_bytes(&random(kv, 0.5)));
            w.tensor(&n("attn_v.bias"), &[kv as u64], GgmlType::F32, f32_bytes(&random(kv, 0.5)));
        }
    }
    w.write(path).expect("writes the model");
}

fn parity(arch: &str, weighting: export::Weighting) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(format!("{arch}.gguf"));
    write_model(&path, arch, 42);
    let gguf = Gguf::read(&path).expect("reads");
    let weights = model::load(&gguf).expect("loads");
    let onnx = export::export_with(&weights, weighting).encode_to_vec();
    let env = runtime::environment().expect("ONNX Runtime loads");
    let mut session = ort::session::Session::builder(env).expect("builder").commit_from_memory(&onnx).expect("ONNX Runtime accepts the export");
    let mut reference = Reference::new(&weights);

    let d = HIDDEN / HEADS;
    let mut past: Vec<(Vec<f32>, usize)> = vec![(Vec::new(), 0); 2 * LAYERS];
    let mut fed: Vec<i64> = Vec::new();
    let mut step_tokens: Vec<i64> = vec![3, 17, 42, 5, 60];
    let mut worst = 0f32;
    for step in 0..17 {
        let seq = step_tokens.len();
        let start = fed.len();
        fed.extend(&step_tokens);
        let mut inputs: Vec<(String, ort::value::DynValue)> = vec![
            ("input_ids".into(), Tensor::from_array(([1usize, seq], step_tokens.clone())).expect("ids").into_dyn()),
            ("attention_mask".into(), Tensor::from_array(([1usize, fed.len()], vec![1i64; fed.len()])).expect("mask").into_dyn()),
            ("position_ids".into(), Tensor::from_array(([1usize, seq], (start as i64..fed.len() as i64).collect::<Vec<_>>())).expect("pos").into_dyn()),
        ];
        for i in 0..LAYERS {
            for (j, kind) in ["key", "value"].iter().enumerate() {
                let (data, len) = &past[2 * i + j];
                let t = Tensor::from_array(([1usize, KV_HEADS, *len, d], data.clone())).expect("past");
                inputs.push((format!("past_key_values.{i}.{kind}"), t.into_dyn()));
            }
        }
        let outputs = session.run(inputs).expect("runs");
        let (shape, logits) = outputs["logits"].try_extract_tensor::<f32>().expect("logits");
        assert_eq!(shape.to_vec(), vec![1, seq as i64, VOCAB as i64]);
        let mut expected_last = Vec::new();
        for (p, token) in step_tokens.iter().enumerate() {
            let expected = reference.step(*token as u32);
            let got = &logits[p * VOCAB..(p + 1) * VOCAB];
            for (a, b) in got.iter().zip(&expected) {
                worst = worst.max((a - b).abs());
            }
            expected_last = expected;
        }
        for i in 0..LAYERS {
            for (j, kind) in ["key", "value"].iter().enumerate() {
                let (shape, data) = outputs[format!("present.{i}.{kind}").as_str()].try_extract_tensor::<f32>().expect("present");
                past[2 * i + j] = (data.to_vec(), shape[2] as usize);
            }
        }
        assert_eq!(past[0].1, fed.len(), "step {step}: the cache holds every position");
        // Decode greedily from here on, one token per step.
        step_tokens = vec![i64::from(batos::mind::sample::argmax(&expected_last))];
    }
    println!("{arch} ({weighting:?}): max |onnx - reference| = {worst:e} over a 5-token prefill and 16 decode steps");
    // f32 weights are exact. With accuracy level 4, ONNX Runtime quantizes activations
    // to int8 per block before the dot products (as llama.cpp does with its q8
    // activations), which moves logits by a few hundredths.
    let tolerance = match weighting {
        export::Weighting::Float => 1e-3,
        export::Weighting::NBits { .. } => 0.1,
    };
    assert!(worst < tolerance, "{arch}: logits differ by {worst}");
}

#[test]
fn qwen2_onnx_matches_the_reference() {
    parity("qwen2", export::Weighting::Float);
}

#[test]
fn llama_onnx_matches_the_reference() {
    parity("llama", export::Weighting::Float);
}

/// The quantized export (MatMulNBits over the Q8_0 tensors, int8 activations) must
/// match within the activation quantization's error: the weight repacking is exact.
#[test]
fn quantized_onnx_matches_the_reference() {
    parity("qwen2", export::Weighting::NBits { accuracy_level: 4 });
    parity("llama", export::Weighting::NBits { accuracy_level: 4 });
}
