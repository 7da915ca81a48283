//! The decoder as an ONNX graph with a KV cache, from [`Weights`].
//!
//! Inputs: `input_ids` `[1, seq]` (int64), `attention_mask` `[1, past + seq]` (int64,
//! 1 for real tokens), `position_ids` `[1, seq]` (int64), and per block
//! `past_key_values.N.key` / `.value` `[1, kv_heads, past, head_dim]`. Outputs:
//! `logits` `[1, 1, vocab]` (the last position's: the only one sampled) and per block `present.N.key` / `.value`
//! `[1, kv_heads, past + seq, head_dim]`.
//!
//! The graph uses standard ONNX operators (opset 21) and, for the weights, either `f32`
//! MatMul (exact against the reference forward pass) or ONNX Runtime's `MatMulNBits`
//! over the GGUF's own blocks ([`Weighting`]). GroupQueryAttention and fused norms are
//! the next step for decoding speed.

use super::model::{Architecture, Weights};
use super::onnx_proto::{DataType, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, ValueInfoProto};

/// How weights go into the graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Weighting {
    /// Dequantized `f32` MatMul: exact against the reference, 4 bytes per weight.
    Float,
    /// `MatMulNBits` where the GGUF block format maps onto it exactly (Q4_K as 4-bit;
    /// Q8_0, Q5_0, Q6_K as 8-bit), `f32` elsewhere. `accuracy_level` is ONNX Runtime's
    /// compute type: 1 for f32 activations, 4 for int8 activations (faster, approximate).
    NBits {
        /// ONNX Runtime's `accuracy_level` attribute.
        accuracy_level: i64,
    },
}

struct Graph<'w> {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    next: usize,
    weighting: Weighting,
    raw: &'w std::collections::HashMap<String, (super::quant::GgmlType, Vec<u8>)>,
}

impl Graph<'_> {
    fn fresh(&mut self, hint: &str) -> String {
        self.next += 1;
        format!("{hint}_{}", self.next)
    }

    /// Adds a node with one output and returns the output's name.
    fn op(&mut self, op: &str, inputs: &[&str]) -> String {
        let out = self.fresh(&op.to_ascii_lowercase());
        self.nodes.push(NodeProto::op(op, inputs, &[&out]));
        out
    }

    fn op_with(&mut self, node: impl FnOnce(NodeProto) -> NodeProto, op: &str, inputs: &[&str]) -> String {
        let out = self.fresh(&op.to_ascii_lowercase());
        self.nodes.push(node(NodeProto::op(op, inputs, &[&out])));
        out
    }

    fn f32(&mut self, hint: &str, dims: &[i64], values: &[f32]) -> String {
        let name = self.fresh(hint);
        self.initializers.push(TensorProto::f32(&name, dims, values));
        name
    }

    fn i64(&mut self, hint: &str, dims: &[i64], values: &[i64]) -> String {
        let name = self.fresh(hint);
        self.initializers.push(TensorProto::i64(&name, dims, values));
        name
    }

    /// A `[out][in]` weight as the `[in][out]` right operand of MatMul.
    fn weight(&mut self, hint: &str, w: &[f32], out: usize, inp: usize) -> String {
        let mut t = vec![0f32; w.len()];
        for o in 0..out {
            for i in 0..inp {
                t[i * out + o] = w[o * inp + i];
            }
        }
        self.f32(hint, &[inp as i64, out as i64], &t)
    }

    fn rms_norm(&mut self, x: &str, weight: &[f32], eps: f32) -> String {
        let w = self.f32("norm", &[weight.len() as i64], weight);
        let eps = self.f32("eps", &[], &[eps]);
        let last = self.i64("axis", &[1], &[-1]);
        let sq = self.op("Mul", &[x, x]);
        let mean = self.op_with(|n| n.int("keepdims", 1), "ReduceMean", &[&sq, &last]);
        let shifted = self.op("Add", &[&mean, &eps]);
        let root = self.op("Sqrt", &[&shifted]);
        let normed = self.op("Div", &[x, &root]);
        self.op("Mul", &[&normed, &w])
    }

    fn nbits(&mut self, x: &str, name: &str, out: usize, inp: usize) -> Option<String> {
        let Weighting::NBits { accuracy_level } = self.weighting else { return None };
        let (t, bytes) = self.raw.get(name)?;
        let q = super::quant::to_nbits(*t, bytes, out, inp)?;
        let blocks = (inp / q.block_size) as i64;
        let blob = (q.block_size * q.bits as usize / 8) as i64;
        let b = self.fresh("qweight");
        self.initializers.push(TensorProto::u8(&b, &[out as i64, blocks, blob], &q.packed));
        let scales = self.f32("scales", &[out as i64 * blocks], &q.scales);
        let zero_points = self.fresh("zero_points");
        let zps: Vec<u8> = if q.bits == 4 {
            // Two 4-bit zero points a byte, low nibble first, each row padded to a byte.
            q.zero_points.chunks_exact(blocks as usize).flat_map(|row| row.chunks(2).map(|p| p[0] | (p.get(1).copied().unwrap_or(0) << 4))).collect()
        } else {
            q.zero_points.clone()
        };
        self.initializers.push(TensorProto::u8(&zero_points, &[zps.len() as i64], &zps));
        let y = self.fresh("matmulnbits");
        let mut node = NodeProto::op("MatMulNBits", &[x, &b, &scales, &zero_points], &[&y])
            .int("K", inp as i64)
            .int("N", out as i64)
            .int("bits", i64::from(q.bits))
            .int("block_size", q.block_size as i64)
            .int("accuracy_level", accuracy_level);
        node.domain = "com.microsoft".into();
        self.nodes.push(node);
        if q.mins.is_empty() {
            return Some(y);
        }
        // y − Σ_blocks (Σ x over the block) · min: the minimum term of Q4_K, exactly.
        let mut mins_t = vec![0f32; q.mins.len()];
        for o in 0..out {
            for k in 0..blocks as usize {
                mins_t[k * out + o] = q.mins[o * blocks as usize + k];
            }
        }
        let mins_t = self.f32("mins", &[blocks, out as i64], &mins_t);
        let shape = self.i64("shape", &[4], &[0, 0, blocks, q.block_size as i64]);
        let grouped = self.op("Reshape", &[x, &shape]);
        let last = self.i64("axis", &[1], &[-1]);
        let sums = self.op_with(|n| n.int("keepdims", 0), "ReduceSum", &[&grouped, &last]);
        let correction = self.op("MatMul", &[&sums, &mins_t]);
        let y = self.op("Sub", &[&y, &correction]);
        Some(y)
    }

    fn linear(&mut self, x: &str, name: &str, w: &[f32], bias: &[f32], out: usize, inp: usize) -> String {
        let y = match self.nbits(x, name, out, inp) {
            Some(y) => y,
            None => {
                let wt = self.weight("w", w, out, inp);
                self.op("MatMul", &[x, &wt])
            }
        };
        if bias.is_empty() {
            y
        } else {
            let b = self.f32("b", &[out as i64], bias);
            self.op("Add", &[&y, &b])
        }
    }

    /// `[1, seq, heads*d]` → `[1, heads, seq, d]`.
    fn split_heads(&mut self, x: &str, heads: usize, d: usize) -> String {
        let shape = self.i64("shape", &[4], &[0, 0, heads as i64, d as i64]);
        let r = self.op("Reshape", &[x, &shape]);
        self.op_with(|n| n.ints("perm", &[0, 2, 1, 3]), "Transpose", &[&r])
    }

    fn rope(&mut self, x: &str, cos: &str, sin: &str, d: usize, architecture: Architecture) -> String {
        let half = (d / 2) as i64;
        match architecture {
            Architecture::Qwen2 => {
                let split = self.i64("split", &[2], &[half, half]);
                let (a, b) = (self.fresh("x1"), self.fresh("x2"));
                self.nodes.push(NodeProto::op("Split", &[x, &split], &[&a, &b]).int("axis", -1));
                let (ac, bs) = (self.op("Mul", &[&a, cos]), self.op("Mul", &[&b, sin]));
                let first = self.op("Sub", &[&ac, &bs]);
                let (bc, as_) = (self.op("Mul", &[&b, cos]), self.op("Mul", &[&a, sin]));
                let second = self.op("Add", &[&bc, &as_]);
                self.op_with(|n| n.int("axis", -1), "Concat", &[&first, &second])
            }
            Architecture::Llama => {
                let pairs = self.i64("shape", &[5], &[0, 0, 0, half, 2]);
                let r = self.op("Reshape", &[x, &pairs]);
                let split = self.i64("split", &[2], &[1, 1]);
                let (e, o) = (self.fresh("even"), self.fresh("odd"));
                self.nodes.push(NodeProto::op("Split", &[&r, &split], &[&e, &o]).int("axis", -1));
                let last = self.i64("axis", &[1], &[-1]);
                let e = self.op("Squeeze", &[&e, &last]);
                let o = self.op("Squeeze", &[&o, &last]);
                let (ec, os) = (self.op("Mul", &[&e, cos]), self.op("Mul", &[&o, sin]));
                let new_e = self.op("Sub", &[&ec, &os]);
                let (oc, es) = (self.op("Mul", &[&o, cos]), self.op("Mul", &[&e, sin]));
                let new_o = self.op("Add", &[&oc, &es]);
                let new_e = self.op("Unsqueeze", &[&new_e, &last]);
                let new_o = self.op("Unsqueeze", &[&new_o, &last]);
                let joined = self.op_with(|n| n.int("axis", -1), "Concat", &[&new_e, &new_o]);
                let back = self.i64("shape", &[4], &[0, 0, 0, d as i64]);
                self.op("Reshape", &[&joined, &back])
            }
        }
    }
}

/// The ONNX model of `weights`, with f32 weights.
pub fn export(weights: &Weights) -> ModelProto {
    export_with(weights, Weighting::Float)
}

/// The ONNX model of `weights`, weighted as asked.
pub fn export_with(weights: &Weights, weighting: Weighting) -> ModelProto {
    let c = &weights.config;
    let (h, d) = (c.hidden, c.head_dim());
    let kv = c.kv_heads * d;
    let group = c.heads / c.kv_heads;
    let mut g = Graph { nodes: Vec::new(), initializers: Vec::new(), next: 0, weighting, raw: &weights.raw };

    let embed = g.f32("embed", &[c.vocab as i64, h as i64], &weights.embed);
    let mut x = g.op("Gather", &[&embed, "input_ids"]);

    // Rotary tables from the positions: [1, 1, seq, d/2].
    let inv_freq: Vec<f32> = (0..d / 2).map(|i| 1.0 / c.rope_theta.powf(2.0 * i as f32 / d as f32)).collect();
    let inv_freq = g.f32("inv_freq", &[(d / 2) as i64], &inv_freq);
    let positions = g.op_with(|n| n.int("to", DataType::Float as i64), "Cast", &["position_ids"]);
    let last = g.i64("axis", &[1], &[-1]);
    let positions = g.op("Unsqueeze", &[&positions, &last]);
    let freqs = g.op("Mul", &[&positions, &inv_freq]);
    let head_axis = g.i64("axis", &[1], &[1]);
    let cos = g.op("Cos", &[&freqs]);
    let cos = g.op("Unsqueeze", &[&cos, &head_axis]);
    let sin = g.op("Sin", &[&freqs]);
    let sin = g.op("Unsqueeze", &[&sin, &head_axis]);

    // The mask: key j is visible to the query at position p when j <= p and
    // attention_mask[j] is 1. [1, 1, seq, total].
    let mask_shape = g.op("Shape", &["attention_mask"]);
    let one_index = g.i64("index", &[], &[1]);
    let total = g.op_with(|n| n.int("axis", 0), "Gather", &[&mask_shape, &one_index]);
    let zero = g.i64("zero", &[], &[0]);
    let one = g.i64("one", &[], &[1]);
    let key_positions = g.op("Range", &[&zero, &total, &one]);
    let query_positions = g.op("Unsqueeze", &["position_ids", &last]);
    let query_positions = g.op("Unsqueeze", &[&query_positions, &head_axis]);
    let causal = g.op("LessOrEqual", &[&key_positions, &query_positions]);
    let valid = g.op("Equal", &["attention_mask", &one]);
    let mid_axes = g.i64("axes", &[2], &[1, 2]);
    let valid = g.op("Unsqueeze", &[&valid, &mid_axes]);
    let allowed = g.op("And", &[&causal, &valid]);
    let open = g.f32("open", &[], &[0.0]);
    let closed = g.f32("closed", &[], &[-1e30]);
    let mask = g.op("Where", &[&allowed, &open, &closed]);
    let scale = g.f32("scale", &[], &[1.0 / (d as f32).sqrt()]);
    let repeat = g.i64("repeat", &[5], &[1, c.kv_heads as i64, group as i64, 1, 1]);
    let grouped = g.i64("shape", &[4], &[1, c.heads as i64, -1, d as i64]);
    let kv_axis = g.i64("axis", &[1], &[2]);
    let merged = g.i64("shape", &[3], &[0, 0, h as i64]);

    let mut inputs = vec![
        ValueInfoProto::tensor("input_ids", DataType::Int64, &["1", "seq"]),
        ValueInfoProto::tensor("attention_mask", DataType::Int64, &["1", "total"]),
        ValueInfoProto::tensor("position_ids", DataType::Int64, &["1", "seq"]),
    ];
    let mut outputs = vec![ValueInfoProto::tensor("logits", DataType::Float, &["1", "1", &c.vocab.to_string()])];
    let (kvh, dd) = (c.kv_heads.to_string(), d.to_string());

    for (i, b) in weights.blocks.iter().enumerate() {
        let (past_k, past_v) = (format!("past_key_values.{i}.key"), format!("past_key_values.{i}.value"));
        let (present_k, present_v) = (format!("present.{i}.key"), format!("present.{i}.value"));
        inputs.push(ValueInfoProto::tensor(&past_k, DataType::Float, &["1", &kvh, "past", &dd]));
        inputs.push(ValueInfoProto::tensor(&past_v, DataType::Float, &["1", &kvh, "past", &dd]));
        outputs.push(ValueInfoProto::tensor(&present_k, DataType::Float, &["1", &kvh, "total", &dd]));
        outputs.push(ValueInfoProto::tensor(&present_v, DataType::Float, &["1", &kvh, "total", &dd]));

        let hn = g.rms_norm(&x, &b.attn_norm, c.rms_eps);
        let n = |part: &str| format!("blk.{i}.{part}.weight");
        let q = g.linear(&hn, &n("attn_q"), &b.wq, &b.bq, h, h);
        let k = g.linear(&hn, &n("attn_k"), &b.wk, &b.bk, kv, h);
        let v = g.linear(&hn, &n("attn_v"), &b.wv, &b.bv, kv, h);
        let q = g.split_heads(&q, c.heads, d);
        let k = g.split_heads(&k, c.kv_heads, d);
        let v = g.split_heads(&v, c.kv_heads, d);
        let q = g.rope(&q, &cos, &sin, d, c.architecture);
        let k = g.rope(&k, &cos, &sin, d, c.architecture);
        g.nodes.push(NodeProto::op("Concat", &[&past_k, &k], &[&present_k]).int("axis", 2));
        g.nodes.push(NodeProto::op("Concat", &[&past_v, &v], &[&present_v]).int("axis", 2));
        // Grouped-query attention: each key/value head serves `group` query heads.
        let expand = |g: &mut Graph, t: &str| {
            let u = g.op("Unsqueeze", &[t, &kv_axis]);
            let e = g.op("Expand", &[&u, &repeat]);
            g.op("Reshape", &[&e, &grouped])
        };
        let k_all = expand(&mut g, &present_k);
        let v_all = expand(&mut g, &present_v);
        let k_t = g.op_with(|n| n.ints("perm", &[0, 1, 3, 2]), "Transpose", &[&k_all]);
        let scores = g.op("MatMul", &[&q, &k_t]);
        let scores = g.op("Mul", &[&scores, &scale]);
        let scores = g.op("Add", &[&scores, &mask]);
        let probs = g.op_with(|n| n.int("axis", -1), "Softmax", &[&scores]);
        let attended = g.op("MatMul", &[&probs, &v_all]);
        let attended = g.op_with(|n| n.ints("perm", &[0, 2, 1, 3]), "Transpose", &[&attended]);
        let attended = g.op("Reshape", &[&attended, &merged]);
        let projected = g.linear(&attended, &n("attn_output"), &b.wo, &[], h, h);
        x = g.op("Add", &[&x, &projected]);

        let hn = g.rms_norm(&x, &b.ffn_norm, c.rms_eps);
        let gate = g.linear(&hn, &n("ffn_gate"), &b.gate, &[], c.ffn, h);
        let up = g.linear(&hn, &n("ffn_up"), &b.up, &[], c.ffn, h);
        let sig = g.op("Sigmoid", &[&gate]);
        let silu = g.op("Mul", &[&gate, &sig]);
        let act = g.op("Mul", &[&silu, &up]);
        let down = g.linear(&act, &n("ffn_down"), &b.down, &[], h, c.ffn);
        x = g.op("Add", &[&x, &down]);
    }
    // Only the last position's logits are ever sampled; projecting the whole prompt onto
    // the vocabulary would cost prefill a `seq × vocab × hidden` product for nothing.
    let minus_one = g.i64("index", &[1], &[-1]);
    let x = g.op_with(|n| n.int("axis", 1), "Gather", &[&x, &minus_one]);
    let xn = g.rms_norm(&x, &weights.output_norm, c.rms_eps);
    let output_name = if weights.raw.contains_key("output.weight") { "output.weight" } else { "token_embd.weight" };
    let logits = g.linear(&xn, output_name, &weights.output, &[], c.vocab, h);
    g.nodes.push(NodeProto::op("Identity", &[&logits], &["logits"]));

    ModelProto {
        ir_version: 10,
        opset_import: vec![
            OperatorSetIdProto { domain: String::new(), version: 21 },
            OperatorSetIdProto { domain: "com.microsoft".into(), version: 1 },
        ],
        producer_name: "batos".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        graph: Some(GraphProto { node: g.nodes, name: "decoder".into(), initializer: g.initializers, input: inputs, output: outputs }),
    }
}

/// Writes `model` as `<dir>/model.onnx` with its large initializers in
/// `<dir>/model.onnx.data` (protobuf cannot hold a file over 2 GB), through a temporary
/// folder renamed into place, so a crash never leaves half an export.
pub fn write_with_external_data(mut model: ModelProto, dir: &std::path::Path) -> std::io::Result<std::path::PathBuf> {
    use prost::Message;
    use std::io::Write;
    const DATA: &str = "model.onnx.data";
    let staging = dir.with_extension("partial");
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging)?;
    let mut data = std::io::BufWriter::with_capacity(1 << 22, std::fs::File::create(staging.join(DATA))?);
    let mut offset = 0u64;
    if let Some(graph) = model.graph.as_mut() {
        for t in &mut graph.initializer {
            if t.raw_data.len() < 1024 {
                continue;
            }
            // Keep each tensor 64-byte aligned so ONNX Runtime can map it directly.
            let pad = (64 - offset % 64) % 64;
            data.write_all(&vec![0u8; pad as usize])?;
            offset += pad;
            let bytes = std::mem::take(&mut t.raw_data);
            data.write_all(&bytes)?;
            let entry = |k: &str, v: String| super::onnx_proto::StringStringEntryProto { key: k.into(), value: v };
            t.external_data = vec![entry("location", DATA.into()), entry("offset", offset.to_string()), entry("length", bytes.len().to_string())];
            t.data_location = 1;
            offset += bytes.len() as u64;
        }
    }
    data.into_inner().map_err(std::io::IntoInnerError::into_error)?.sync_all()?;
    let mut file = std::fs::File::create(staging.join("model.onnx"))?;
    file.write_all(&model.encode_to_vec())?;
    file.sync_all()?;
    drop(file);
    let _ = std::fs::remove_dir_all(dir);
    std::fs::rename(&staging, dir)?;
    Ok(dir.join("model.onnx"))
}
