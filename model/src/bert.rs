//! A plain Rust forward pass of all-MiniLM-L6-v2 (a 6-layer BERT encoder) from its f32
//! safetensors: the independent reference the int8 ONNX graph that [`crate::embed`] runs
//! is checked against. Written for clarity, not speed.

use std::path::Path;

use batos_mind::MindError;
use safetensors::{Dtype, SafeTensors};

/// Hidden size, heads, layers and the layer-norm epsilon of all-MiniLM-L6-v2
/// (its `config.json`).
const HIDDEN: usize = 384;
const HEADS: usize = 12;
const LAYERS: usize = 6;
const INTERMEDIATE: usize = 1536;
const EPS: f32 = 1e-12;

struct Linear {
    /// `[out, in]`, as PyTorch stores it.
    weight: Vec<f32>,
    bias: Vec<f32>,
}

struct Norm {
    weight: Vec<f32>,
    bias: Vec<f32>,
}

struct Layer {
    query: Linear,
    key: Linear,
    value: Linear,
    attention_out: Linear,
    attention_norm: Norm,
    intermediate: Linear,
    output: Linear,
    output_norm: Norm,
}

/// The model's weights in f32.
pub struct Bert {
    words: Vec<f32>,
    positions: Vec<f32>,
    types: Vec<f32>,
    embedding_norm: Norm,
    layers: Vec<Layer>,
}

fn model_error(e: impl std::fmt::Display) -> MindError {
    MindError::Model(format!("the reference weights are unusable: {e}"))
}

impl Bert {
    /// Reads the weights from a safetensors file.
    pub fn load(path: &Path) -> Result<Bert, MindError> {
        let bytes = std::fs::read(path)
            .map_err(|e| MindError::Model(format!("cannot read {}: {e}", path.display())))?;
        let tensors = SafeTensors::deserialize(&bytes).map_err(model_error)?;
        let get = |name: &str, len: usize| -> Result<Vec<f32>, MindError> {
            let view = tensors.tensor(name).map_err(model_error)?;
            if view.dtype() != Dtype::F32 || view.shape().iter().product::<usize>() != len {
                return Err(model_error(format!(
                    "{name} is {:?} {:?}, not {len} f32",
                    view.dtype(),
                    view.shape()
                )));
            }
            Ok(view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect())
        };
        let linear = |prefix: &str, out: usize, inp: usize| -> Result<Linear, MindError> {
            Ok(Linear {
                weight: get(&format!("{prefix}.weight"), out * inp)?,
                bias: get(&format!("{prefix}.bias"), out)?,
            })
        };
        let norm = |prefix: &str| -> Result<Norm, MindError> {
            Ok(Norm {
                weight: get(&format!("{prefix}.weight"), HIDDEN)?,
                bias: get(&format!("{prefix}.bias"), HIDDEN)?,
            })
        };
        let words = tensors.tensor("embeddings.word_embeddings.weight").map_err(model_error)?;
        let vocab = words.shape().first().copied().unwrap_or(0);
        let mut layers = Vec::with_capacity(LAYERS);
        for l in 0..LAYERS {
            let p = format!("encoder.layer.{l}");
            layers.push(Layer {
                query: linear(&format!("{p}.attention.self.query"), HIDDEN, HIDDEN)?,
                key: linear(&format!("{p}.attention.self.key"), HIDDEN, HIDDEN)?,
                value: linear(&format!("{p}.attention.self.value"), HIDDEN, HIDDEN)?,
                attention_out: linear(&format!("{p}.attention.output.dense"), HIDDEN, HIDDEN)?,
                attention_norm: norm(&format!("{p}.attention.output.LayerNorm"))?,
                intermediate: linear(&format!("{p}.intermediate.dense"), INTERMEDIATE, HIDDEN)?,
                output: linear(&format!("{p}.output.dense"), HIDDEN, INTERMEDIATE)?,
                output_norm: norm(&format!("{p}.output.LayerNorm"))?,
            });
        }
        Ok(Bert {
            words: get("embeddings.word_embeddings.weight", vocab * HIDDEN)?,
            positions: get("embeddings.position_embeddings.weight", 512 * HIDDEN)?,
            types: get("embeddings.token_type_embeddings.weight", 2 * HIDDEN)?,
            embedding_norm: norm("embeddings.LayerNorm")?,
            layers,
        })
    }

    /// The last hidden state `[ids.len(), 384]` of one passage (no padding, so no mask).
    pub fn forward(&self, ids: &[u32], type_ids: &[u32]) -> Result<Vec<f32>, MindError> {
        let seq = ids.len();
        if seq > 512 || type_ids.len() != seq {
            return Err(model_error(format!("{seq} tokens with {} type ids", type_ids.len())));
        }
        let mut x = vec![0f32; seq * HIDDEN];
        for (t, (&id, &ty)) in ids.iter().zip(type_ids).enumerate() {
            let (id, ty) = (id as usize, ty as usize);
            let word = self
                .words
                .get(id * HIDDEN..(id + 1) * HIDDEN)
                .ok_or_else(|| model_error(format!("token {id}")))?;
            let kind = self
                .types
                .get(ty * HIDDEN..(ty + 1) * HIDDEN)
                .ok_or_else(|| model_error(format!("type {ty}")))?;
            let position = &self.positions[t * HIDDEN..(t + 1) * HIDDEN];
            for (i, out) in x[t * HIDDEN..(t + 1) * HIDDEN].iter_mut().enumerate() {
                *out = word[i] + position[i] + kind[i];
            }
        }
        layer_norm(&mut x, &self.embedding_norm);
        for layer in &self.layers {
            let q = apply(&layer.query, &x, HIDDEN);
            let k = apply(&layer.key, &x, HIDDEN);
            let v = apply(&layer.value, &x, HIDDEN);
            let context = attention(&q, &k, &v, seq);
            let attended = apply(&layer.attention_out, &context, HIDDEN);
            for (a, b) in x.iter_mut().zip(&attended) {
                *a += b;
            }
            layer_norm(&mut x, &layer.attention_norm);
            let mut inner = apply(&layer.intermediate, &x, HIDDEN);
            for h in &mut inner {
                *h = gelu(*h);
            }
            let out = apply(&layer.output, &inner, INTERMEDIATE);
            for (a, b) in x.iter_mut().zip(&out) {
                *a += b;
            }
            layer_norm(&mut x, &layer.output_norm);
        }
        Ok(x)
    }
}

/// `x W^T + b` for each row of `x` (`[rows, inp]`).
fn apply(linear: &Linear, x: &[f32], inp: usize) -> Vec<f32> {
    let out = linear.bias.len();
    let mut y = Vec::with_capacity(x.len() / inp * out);
    for row in x.chunks_exact(inp) {
        for o in 0..out {
            let w = &linear.weight[o * inp..(o + 1) * inp];
            let dot: f32 = w.iter().zip(row).map(|(a, b)| a * b).sum();
            y.push(dot + linear.bias[o]);
        }
    }
    y
}

fn attention(q: &[f32], k: &[f32], v: &[f32], seq: usize) -> Vec<f32> {
    let d = HIDDEN / HEADS;
    let scale = 1.0 / (d as f32).sqrt();
    let mut out = vec![0f32; seq * HIDDEN];
    let mut scores = vec![0f32; seq];
    for h in 0..HEADS {
        for i in 0..seq {
            let qi = &q[i * HIDDEN + h * d..i * HIDDEN + (h + 1) * d];
            for (j, s) in scores.iter_mut().enumerate() {
                let kj = &k[j * HIDDEN + h * d..j * HIDDEN + (h + 1) * d];
                *s = qi.iter().zip(kj).map(|(a, b)| a * b).sum::<f32>() * scale;
            }
            let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0.0;
            for s in &mut scores {
                *s = (*s - max).exp();
                sum += *s;
            }
            let oi = &mut out[i * HIDDEN + h * d..i * HIDDEN + (h + 1) * d];
            for (j, s) in scores.iter().enumerate() {
                let vj = &v[j * HIDDEN + h * d..j * HIDDEN + (h + 1) * d];
                for (o, x) in oi.iter_mut().zip(vj) {
                    *o += s / sum * x;
                }
            }
        }
    }
    out
}

fn layer_norm(x: &mut [f32], norm: &Norm) {
    for row in x.chunks_exact_mut(HIDDEN) {
        let mean = row.iter().sum::<f32>() / HIDDEN as f32;
        let var = row.iter().map(|a| (a - mean) * (a - mean)).sum::<f32>() / HIDDEN as f32;
        let inv = 1.0 / (var + EPS).sqrt();
        for (i, a) in row.iter_mut().enumerate() {
            *a = (*a - mean) * inv * norm.weight[i] + norm.bias[i];
        }
    }
}

/// BERT's exact GELU, `x Φ(x)`, with `erf` from Abramowitz and Stegun 7.1.26 (error
/// below 1.5e-7, far under what the comparison needs).
fn gelu(x: f32) -> f32 {
    let z = f64::from(x) / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * z.abs());
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erf = (1.0 - poly * (-z * z).exp()).copysign(z);
    (f64::from(x) * 0.5 * (1.0 + erf)) as f32
}

/// The same encoder as an ONNX graph with f32 weights (the int8 graph's inputs and
/// output, dynamic batch and length): what the embedder runs when asked for
/// [`crate::embed::Precision::F32`], so that int8 and f32 are compared on one runtime.
pub fn export_f32(bert: &Bert) -> crate::onnx_proto::ModelProto {
    use crate::onnx_proto::{
        DataType, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
        ValueInfoProto,
    };
    let h = HIDDEN as i64;
    let d = (HIDDEN / HEADS) as i64;
    let mut nodes = Vec::new();
    let mut init = Vec::new();
    let transposed = |w: &[f32], out: usize, inp: usize| -> Vec<f32> {
        let mut t = vec![0f32; out * inp];
        for o in 0..out {
            for i in 0..inp {
                t[i * out + o] = w[o * inp + i];
            }
        }
        t
    };
    // A linear layer: MatMul by the transposed weight, then Add the bias.
    let mut linear = |nodes: &mut Vec<NodeProto>,
                      name: &str,
                      l: &Linear,
                      inp: usize,
                      x: &str|
     -> String {
        let out = l.bias.len();
        init.push(TensorProto::f32(
            &format!("{name}.w"),
            &[inp as i64, out as i64],
            &transposed(&l.weight, out, inp),
        ));
        init.push(TensorProto::f32(&format!("{name}.b"), &[out as i64], &l.bias));
        nodes.push(NodeProto::op("MatMul", &[x, &format!("{name}.w")], &[&format!("{name}.mm")]));
        nodes.push(NodeProto::op(
            "Add",
            &[&format!("{name}.mm"), &format!("{name}.b")],
            &[&format!("{name}.y")],
        ));
        format!("{name}.y")
    };
    let mut norms = Vec::new();
    let mut norm = |nodes: &mut Vec<NodeProto>, name: &str, n: &Norm, x: &str| -> String {
        norms.push(TensorProto::f32(&format!("{name}.g"), &[h], &n.weight));
        norms.push(TensorProto::f32(&format!("{name}.beta"), &[h], &n.bias));
        nodes.push(
            NodeProto::op(
                "LayerNormalization",
                &[x, &format!("{name}.g"), &format!("{name}.beta")],
                &[&format!("{name}.y")],
            )
            .int("axis", -1)
            .float("epsilon", EPS),
        );
        format!("{name}.y")
    };
    let vocab = (bert.words.len() / HIDDEN) as i64;
    let mut consts = vec![
        TensorProto::f32("words", &[vocab, h], &bert.words),
        TensorProto::f32("positions", &[512, h], &bert.positions),
        TensorProto::f32("types", &[2, h], &bert.types),
        TensorProto::i64("zero", &[], &[0]),
        TensorProto::i64("one_i", &[], &[1]),
        TensorProto::i64("axis1", &[1], &[1]),
        TensorProto::f32("one", &[], &[1.0]),
        TensorProto::f32("neg", &[], &[-10000.0]),
        TensorProto::f32("scale", &[], &[1.0 / (d as f32).sqrt()]),
        TensorProto::i64("heads_shape", &[4], &[0, 0, HEADS as i64, d]),
        TensorProto::i64("hidden_shape", &[3], &[0, 0, h]),
        TensorProto::i64("mask_axes", &[2], &[1, 2]),
    ];
    nodes.push(NodeProto::op("Gather", &["words", "input_ids"], &["we"]));
    nodes.push(NodeProto::op("Gather", &["types", "token_type_ids"], &["te"]));
    nodes.push(NodeProto::op("Shape", &["input_ids"], &["ids_shape"]));
    nodes.push(NodeProto::op("Gather", &["ids_shape", "one_i"], &["seq"]));
    nodes.push(NodeProto::op("Range", &["zero", "seq", "one_i"], &["pos_ids"]));
    nodes.push(NodeProto::op("Gather", &["positions", "pos_ids"], &["pe"]));
    nodes.push(NodeProto::op("Add", &["we", "te"], &["wt"]));
    nodes.push(NodeProto::op("Add", &["wt", "pe"], &["emb"]));
    let mut x = norm(&mut nodes, "emb_norm", &bert.embedding_norm, "emb");
    // The mask as an additive bias [batch, 1, 1, seq]: 0 where attended, -10000 where padded.
    nodes.push(
        NodeProto::op("Cast", &["attention_mask"], &["mask_f"]).int("to", DataType::Float as i64),
    );
    nodes.push(NodeProto::op("Unsqueeze", &["mask_f", "mask_axes"], &["mask4"]));
    nodes.push(NodeProto::op("Sub", &["one", "mask4"], &["unmask"]));
    nodes.push(NodeProto::op("Mul", &["unmask", "neg"], &["mask_bias"]));
    for (l, layer) in bert.layers.iter().enumerate() {
        let p = format!("l{l}");
        let q = linear(&mut nodes, &format!("{p}.q"), &layer.query, HIDDEN, &x);
        let k = linear(&mut nodes, &format!("{p}.k"), &layer.key, HIDDEN, &x);
        let v = linear(&mut nodes, &format!("{p}.v"), &layer.value, HIDDEN, &x);
        for (name, perm) in [(&q, [0, 2, 1, 3]), (&k, [0, 2, 3, 1]), (&v, [0, 2, 1, 3])] {
            nodes.push(NodeProto::op("Reshape", &[name, "heads_shape"], &[&format!("{name}.r")]));
            nodes.push(
                NodeProto::op("Transpose", &[&format!("{name}.r")], &[&format!("{name}.t")])
                    .ints("perm", &perm),
            );
        }
        nodes.push(NodeProto::op(
            "MatMul",
            &[&format!("{q}.t"), &format!("{k}.t")],
            &[&format!("{p}.s")],
        ));
        nodes.push(NodeProto::op("Mul", &[&format!("{p}.s"), "scale"], &[&format!("{p}.ss")]));
        nodes.push(NodeProto::op("Add", &[&format!("{p}.ss"), "mask_bias"], &[&format!("{p}.sm")]));
        nodes.push(
            NodeProto::op("Softmax", &[&format!("{p}.sm")], &[&format!("{p}.pr")]).int("axis", -1),
        );
        nodes.push(NodeProto::op(
            "MatMul",
            &[&format!("{p}.pr"), &format!("{v}.t")],
            &[&format!("{p}.c")],
        ));
        nodes.push(
            NodeProto::op("Transpose", &[&format!("{p}.c")], &[&format!("{p}.ct")])
                .ints("perm", &[0, 2, 1, 3]),
        );
        nodes.push(NodeProto::op(
            "Reshape",
            &[&format!("{p}.ct"), "hidden_shape"],
            &[&format!("{p}.ctx")],
        ));
        let attended = linear(
            &mut nodes,
            &format!("{p}.o"),
            &layer.attention_out,
            HIDDEN,
            &format!("{p}.ctx"),
        );
        nodes.push(NodeProto::op("Add", &[&x, &attended], &[&format!("{p}.r1")]));
        x = norm(&mut nodes, &format!("{p}.n1"), &layer.attention_norm, &format!("{p}.r1"));
        let inner = linear(&mut nodes, &format!("{p}.i"), &layer.intermediate, HIDDEN, &x);
        nodes.push(NodeProto::op("Gelu", &[&inner], &[&format!("{p}.g")]));
        let out =
            linear(&mut nodes, &format!("{p}.f"), &layer.output, INTERMEDIATE, &format!("{p}.g"));
        nodes.push(NodeProto::op("Add", &[&x, &out], &[&format!("{p}.r2")]));
        x = norm(&mut nodes, &format!("{p}.n2"), &layer.output_norm, &format!("{p}.r2"));
    }
    nodes.push(NodeProto::op("Identity", &[&x], &["last_hidden_state"]));
    consts.append(&mut init);
    consts.append(&mut norms);
    let ids = |name: &str| ValueInfoProto::tensor(name, DataType::Int64, &["batch", "sequence"]);
    ModelProto {
        ir_version: 10,
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: 21 }],
        producer_name: "batos".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        graph: Some(GraphProto {
            name: "all-minilm-l6-v2-f32".into(),
            node: nodes,
            initializer: consts,
            input: vec![ids("input_ids"), ids("attention_mask"), ids("token_type_ids")],
            output: vec![ValueInfoProto::tensor(
                "last_hidden_state",
                DataType::Float,
                &["batch", "sequence", "384"],
            )],
        }),
    }
}
