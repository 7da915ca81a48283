//! Tiny random models that this test writes as GGUF files (qwen2 and llama, two blocks,
//! grouped-query attention; F32, Q8_0, Q5_0, Q4_K and Q6_K tensors) are exported to ONNX and run in ONNX
//! Runtime; the logits must match the plain Rust reference forward pass over a prefill
//! and 16 decode steps, with f32 weights and with MatMulNBits.

use crate::tiny_model;

use batos_model::gguf::Gguf;
use batos_model::reference::Reference;
use batos_model::{export, model, onnxruntime as runtime};
use ort::value::Tensor;
use prost::Message;
use tiny_model::{write_model, HEADS, HIDDEN, KV_HEADS, LAYERS, VOCAB};

/// A tiny random model of `arch` written into `dir` and read back.
fn tiny_gguf(dir: &std::path::Path, arch: &str, seed: u64) -> Gguf {
    let path = dir.join(format!("{arch}.gguf"));
    write_model(&path, arch, seed);
    Gguf::read(&path).expect("reads")
}

fn parity(arch: &str, weighting: export::Weighting) {
    let dir = tempfile::tempdir().expect("tempdir");
    let gguf = tiny_gguf(dir.path(), arch, 42);
    let weights = model::load(&gguf).expect("loads");
    let onnx = export::export_with(&gguf, weighting).expect("exports").encode_to_vec();
    let env = runtime::environment().expect("ONNX Runtime loads");
    let mut session = ort::session::Session::builder(env)
        .expect("builder")
        .commit_from_memory(&onnx)
        .expect("ONNX Runtime accepts the export");
    let mut reference = Reference::new(&weights);

    let d = HIDDEN / HEADS;
    let mut past: Vec<(Vec<f32>, usize)> = vec![(Vec::new(), 0); 2 * LAYERS];
    let mut fed: Vec<i64> = Vec::new();
    let mut step_tokens: Vec<i64> = vec![3, 17, 42, 5, 60];
    let mut worst = 0f32;
    let mut largest = 0f32;
    for step in 0..17 {
        let seq = step_tokens.len();
        let start = fed.len();
        fed.extend(&step_tokens);
        let mut inputs: Vec<(String, ort::value::DynValue)> = vec![
            (
                "input_ids".into(),
                Tensor::from_array(([1usize, seq], step_tokens.clone())).expect("ids").into_dyn(),
            ),
            (
                "attention_mask".into(),
                Tensor::from_array(([1usize, fed.len()], vec![1i64; fed.len()]))
                    .expect("mask")
                    .into_dyn(),
            ),
            (
                "position_ids".into(),
                Tensor::from_array((
                    [1usize, seq],
                    (start as i64..fed.len() as i64).collect::<Vec<_>>(),
                ))
                .expect("pos")
                .into_dyn(),
            ),
        ];
        for i in 0..LAYERS {
            for (j, kind) in ["key", "value"].iter().enumerate() {
                let (data, len) = &past[2 * i + j];
                let t =
                    Tensor::from_array(([1usize, KV_HEADS, *len, d], data.clone())).expect("past");
                inputs.push((format!("past_key_values.{i}.{kind}"), t.into_dyn()));
            }
        }
        let outputs = session.run(inputs).expect("runs");
        let (shape, logits) = outputs["logits"].try_extract_tensor::<f32>().expect("logits");
        assert_eq!(
            shape.to_vec(),
            vec![1, 1, VOCAB as i64],
            "logits come for the last position only"
        );
        let mut expected_last = Vec::new();
        for token in &step_tokens {
            expected_last = reference.step(*token as u32);
        }
        for (a, b) in logits.iter().zip(&expected_last) {
            worst = worst.max((a - b).abs());
            largest = largest.max(b.abs());
        }
        for i in 0..LAYERS {
            for (j, kind) in ["key", "value"].iter().enumerate() {
                let (shape, data) = outputs[format!("present.{i}.{kind}").as_str()]
                    .try_extract_tensor::<f32>()
                    .expect("present");
                past[2 * i + j] = (data.to_vec(), shape[2] as usize);
            }
        }
        assert_eq!(past[0].1, fed.len(), "step {step}: the cache holds every position");
        // Decode greedily from here on, one token per step.
        step_tokens = vec![i64::from(batos_model::sample::argmax(&expected_last))];
    }
    println!("{arch} ({weighting:?}): max |onnx - reference| = {worst:e} (largest logit {largest:.2}) over a 5-token prefill and 16 decode steps");
    // f32 weights are exact. With accuracy level 4, ONNX Runtime quantizes activations
    // to int8 per block before the dot products (as llama.cpp does with its q8
    // activations), which moves logits by a few percent of their size.
    let tolerance = match weighting {
        export::Weighting::Float | export::Weighting::NBits { accuracy_level: 1 } => 1e-3,
        export::Weighting::NBits { .. } => 0.05 * largest,
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

/// With f32 activations the quantized export (MatMulNBits over the Q8_0, Q5_0, Q4_K and
/// Q6_K tensors, Q4_K's minimum as a separate exact term) is as exact as f32 weights.
#[test]
fn repacked_blocks_are_exact() {
    parity("qwen2", export::Weighting::NBits { accuracy_level: 1 });
    parity("llama", export::Weighting::NBits { accuracy_level: 1 });
}

/// With int8 activations (what batos runs) it must match within the activation
/// quantization's error.
#[test]
fn quantized_onnx_matches_the_reference() {
    parity("qwen2", export::Weighting::NBits { accuracy_level: 4 });
    parity("llama", export::Weighting::NBits { accuracy_level: 4 });
}

/// The streamed export (each tensor appended to `model.onnx.data` as it is made) is the
/// in-memory export exactly: reading every external tensor back gives the same model.
#[test]
fn the_streamed_export_is_the_in_memory_export() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gguf = tiny_gguf(dir.path(), "qwen2", 7);
    let weighting = export::Weighting::NBits { accuracy_level: 4 };
    let inline = export::export_with(&gguf, weighting).expect("exports");
    let out = dir.path().join("export");
    let onnx =
        export::write(&gguf, weighting, &out, &mut batos_model::pull::Quiet).expect("writes");
    let data = std::fs::read(out.join("model.onnx.data")).expect("data file");
    let mut streamed = batos_model::onnx_proto::ModelProto::decode(
        std::fs::read(&onnx).expect("model").as_slice(),
    )
    .expect("decodes");
    let mut external = 0;
    for t in &mut streamed.graph.as_mut().expect("graph").initializer {
        if t.data_location != 1 {
            continue;
        }
        external += 1;
        let field = |k: &str| {
            t.external_data.iter().find(|e| e.key == k).map(|e| e.value.clone()).expect(k)
        };
        let offset: usize = field("offset").parse().expect("offset");
        let length: usize = field("length").parse().expect("length");
        assert_eq!(offset % 64, 0, "{} is 64-byte aligned", t.name);
        t.raw_data = data[offset..offset + length].to_vec();
        t.external_data.clear();
        t.data_location = 0;
    }
    assert!(external > 0, "the large tensors went to the data file");
    assert_eq!(streamed, inline);
}

/// Under `NBits` the Q8_0 embedding table is gathered from its own blocks (a quarter of
/// an `f32` table's bytes; `repacked_blocks_are_exact` shows the rows are the same),
/// and under `Float` it stays the `f32` reference table.
#[test]
fn the_embedding_stays_in_its_blocks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gguf = tiny_gguf(dir.path(), "qwen2", 3);
    let table = |weighting| {
        let model = export::export_with(&gguf, weighting).expect("exports");
        let graph = model.graph.expect("graph");
        let gather = graph
            .node
            .iter()
            .find(|n| n.input.iter().any(|i| i == "input_ids"))
            .expect("a node reads input_ids")
            .clone();
        let init = graph
            .initializer
            .iter()
            .find(|t| t.name == gather.input[0])
            .expect("the table is an initializer")
            .clone();
        (gather.op_type, init.data_type, init.raw_data.len())
    };
    let (op, data_type, bytes) = table(export::Weighting::NBits { accuracy_level: 4 });
    assert_eq!(op, "GatherBlockQuantized");
    assert_eq!(data_type, batos_model::onnx_proto::DataType::Uint8 as i32);
    assert_eq!(bytes, VOCAB * HIDDEN, "one byte a weight");
    let (op, data_type, bytes) = table(export::Weighting::Float);
    assert_eq!(op, "Gather");
    assert_eq!(data_type, batos_model::onnx_proto::DataType::Float as i32);
    assert_eq!(bytes, VOCAB * HIDDEN * 4);
}
