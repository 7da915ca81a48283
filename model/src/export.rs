//! The decoder as an ONNX graph with a KV cache, from [`Weights`].
//!
//! Inputs: `input_ids` `[1, seq]` (int64), `attention_mask` `[1, past + seq]` (int64,
//! 1 for real tokens), `position_ids` `[1, seq]` (int64), and per block
//! `past_key_values.N.key` / `.value` `[1, kv_heads, past, head_dim]`. Outputs:
//! `logits` `[1, 1, vocab]` (the last position's: the only one sampled) and per block `present.N.key` / `.value`
//! `[1, kv_heads, past + seq, head_dim]`.
//!
//! Attention is ONNX Runtime's `GroupQueryAttention` (rotary embedding included), the
//! norms its `SimplifiedLayerNormalization` and `SkipSimplifiedLayerNormalization`
//! (which also adds the residual), and the weights either `f32` MatMul (exact against
//! the reference forward pass) or `MatMulNBits` over the GGUF's own blocks
//! ([`Weighting`]). In ONNX Runtime's profile of a decode step on the embedded model,
//! the fused operators cut the time outside the matrix products from about 11 ms (the
//! same graph in standard operators: separate rotary, Expand/MatMul/Softmax attention,
//! six-node norms) to about 3 ms.

use super::model::{Architecture, Weights};
use super::onnx_proto::{
    DataType, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, ValueInfoProto,
};

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

    fn op_with(
        &mut self,
        node: impl FnOnce(NodeProto) -> NodeProto,
        op: &str,
        inputs: &[&str],
    ) -> String {
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
        self.op_with(
            |n| n.int("axis", -1).float("epsilon", eps),
            "SimplifiedLayerNormalization",
            &[x, &w],
        )
    }

    /// `MatMulNBits` over the GGUF's own blocks, with the bias (when there is one) as its
    /// sixth input rather than a separate Add.
    fn nbits(
        &mut self,
        x: &str,
        name: &str,
        bias: &[f32],
        out: usize,
        inp: usize,
    ) -> Option<String> {
        let q = self.repacked(name, out, inp)?;
        Some(self.nbits_node(x, &q, bias, out, inp))
    }

    fn repacked(&self, name: &str, out: usize, inp: usize) -> Option<super::quant::NBits> {
        let Weighting::NBits { .. } = self.weighting else { return None };
        let (t, bytes) = self.raw.get(name)?;
        super::quant::to_nbits(*t, bytes, out, inp)
    }

    /// Several projections of one input as one `MatMulNBits` over their stacked rows,
    /// split after: one pass over the activations and one kernel launch instead of
    /// several (q/k/v, gate/up). Only when their blocks share a layout; else one each.
    fn linears(
        &mut self,
        x: &str,
        parts: &[(&str, &[f32], &[f32], usize)],
        inp: usize,
    ) -> Vec<String> {
        let packed: Option<Vec<_>> =
            parts.iter().map(|(name, _, _, out)| self.repacked(name, *out, inp)).collect();
        let same = |qs: &[super::quant::NBits]| {
            qs.windows(2).all(|w| {
                w[0].bits == w[1].bits
                    && w[0].block_size == w[1].block_size
                    && w[0].mins.is_empty() == w[1].mins.is_empty()
            })
        };
        let Some(qs) = packed.filter(|qs| same(qs)) else {
            return parts
                .iter()
                .map(|(name, w, bias, out)| self.linear(x, name, w, bias, *out, inp))
                .collect();
        };
        let mut all = super::quant::NBits {
            bits: qs[0].bits,
            block_size: qs[0].block_size,
            packed: vec![],
            scales: vec![],
            zero_points: vec![],
            mins: vec![],
        };
        for q in &qs {
            all.packed.extend_from_slice(&q.packed);
            all.scales.extend_from_slice(&q.scales);
            all.zero_points.extend_from_slice(&q.zero_points);
            all.mins.extend_from_slice(&q.mins);
        }
        let any_bias = parts.iter().any(|(_, _, b, _)| !b.is_empty());
        let bias: Vec<f32> = if any_bias {
            parts
                .iter()
                .flat_map(|(_, _, b, out)| if b.is_empty() { vec![0.0; *out] } else { b.to_vec() })
                .collect()
        } else {
            vec![]
        };
        let outs: Vec<usize> = parts.iter().map(|p| p.3).collect();
        let total = outs.iter().sum();
        let y = self.nbits_node(x, &all, &bias, total, inp);
        let split = self.i64(
            "split",
            &[outs.len() as i64],
            &outs.iter().map(|o| *o as i64).collect::<Vec<_>>(),
        );
        let names: Vec<String> = outs.iter().map(|_| self.fresh("part")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        self.nodes.push(NodeProto::op("Split", &[&y, &split], &refs).int("axis", -1));
        names
    }

    fn nbits_node(
        &mut self,
        x: &str,
        q: &super::quant::NBits,
        bias: &[f32],
        out: usize,
        inp: usize,
    ) -> String {
        // Only reached through `repacked`, which answers blocks under `NBits` alone.
        let accuracy_level = match self.weighting {
            Weighting::NBits { accuracy_level } => accuracy_level,
            Weighting::Float => 1,
        };
        let blocks = (inp / q.block_size) as i64;
        let blob = (q.block_size * q.bits as usize / 8) as i64;
        let b = self.fresh("qweight");
        self.initializers.push(TensorProto::u8(&b, &[out as i64, blocks, blob], &q.packed));
        let scales = self.f32("scales", &[out as i64 * blocks], &q.scales);
        let zero_points = self.fresh("zero_points");
        let zps: Vec<u8> = if q.bits == 4 {
            // Two 4-bit zero points a byte, low nibble first, each row padded to a byte.
            q.zero_points
                .chunks_exact(blocks as usize)
                .flat_map(|row| row.chunks(2).map(|p| p[0] | (p.get(1).copied().unwrap_or(0) << 4)))
                .collect()
        } else {
            q.zero_points.clone()
        };
        self.initializers.push(TensorProto::u8(&zero_points, &[zps.len() as i64], &zps));
        let y = self.fresh("matmulnbits");
        let bias = if bias.is_empty() { String::new() } else { self.f32("b", &[out as i64], bias) };
        let inputs: Vec<&str> = if bias.is_empty() {
            vec![x, &b, &scales, &zero_points]
        } else {
            vec![x, &b, &scales, &zero_points, "", &bias]
        };
        let mut node = NodeProto::op("MatMulNBits", &inputs, &[&y])
            .int("K", inp as i64)
            .int("N", out as i64)
            .int("bits", i64::from(q.bits))
            .int("block_size", q.block_size as i64)
            .int("accuracy_level", accuracy_level);
        node.domain = "com.microsoft".into();
        self.nodes.push(node);
        if q.mins.is_empty() {
            return y;
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
        self.op("Sub", &[&y, &correction])
    }

    fn linear(
        &mut self,
        x: &str,
        name: &str,
        w: &[f32],
        bias: &[f32],
        out: usize,
        inp: usize,
    ) -> String {
        if let Some(y) = self.nbits(x, name, bias, out, inp) {
            return y;
        }
        let wt = self.weight("w", w, out, inp);
        let y = self.op("MatMul", &[x, &wt]);
        if bias.is_empty() {
            y
        } else {
            let b = self.f32("b", &[out as i64], bias);
            self.op("Add", &[&y, &b])
        }
    }

    /// `SkipSimplifiedLayerNormalization`: the residual sum `x + skip` and its RMS norm
    /// in one kernel; returns `(normed, sum)`.
    fn skip_norm(&mut self, x: &str, skip: &str, weight: &[f32], eps: f32) -> (String, String) {
        let w = self.f32("norm", &[weight.len() as i64], weight);
        let (normed, sum) = (self.fresh("normed"), self.fresh("residual"));
        let mut node = NodeProto::op(
            "SkipSimplifiedLayerNormalization",
            &[x, skip, &w],
            &[&normed, "", "", &sum],
        )
        .float("epsilon", eps);
        node.domain = "com.microsoft".into();
        self.nodes.push(node);
        (normed, sum)
    }
}

/// The ONNX model of `weights`, with f32 weights.
pub fn export(weights: &Weights) -> ModelProto {
    export_with(weights, Weighting::Float)
}

/// The cos/sin tables cover at most this many positions (8 MB for a head of 64): a
/// longer context than batos feeds a 0.5B model, and a bound on the export's size.
pub const MAX_POSITIONS: usize = 32_768;

/// The ONNX model of `weights`, weighted as asked.
pub fn export_with(weights: &Weights, weighting: Weighting) -> ModelProto {
    let c = &weights.config;
    let (h, d) = (c.hidden, c.head_dim());
    let kv = c.kv_heads * d;
    let mut g = Graph {
        nodes: Vec::new(),
        initializers: Vec::new(),
        next: 0,
        weighting,
        raw: &weights.raw,
    };

    let embed = g.f32("embed", &[c.vocab as i64, h as i64], &weights.embed);
    let mut x = g.op("Gather", &[&embed, "input_ids"]);

    // GroupQueryAttention rotates queries and keys itself from cos/sin tables indexed by
    // position, and takes the cache's length from the mask: every real token is 1, so
    // positions are 0.. in order, as `position_ids` also says.
    let positions = c.context.min(MAX_POSITIONS);
    let inv_freq: Vec<f32> =
        (0..d / 2).map(|i| 1.0 / c.rope_theta.powf(2.0 * i as f32 / d as f32)).collect();
    let angles: Vec<f32> =
        (0..positions).flat_map(|p| inv_freq.iter().map(move |f| p as f32 * f)).collect();
    let cos: Vec<f32> = angles.iter().map(|a| a.cos()).collect();
    let sin: Vec<f32> = angles.iter().map(|a| a.sin()).collect();
    let cos = g.f32("cos_cache", &[positions as i64, (d / 2) as i64], &cos);
    let sin = g.f32("sin_cache", &[positions as i64, (d / 2) as i64], &sin);
    let axis_one = g.i64("axis", &[1], &[1]);
    let seen = g.op_with(|n| n.int("keepdims", 0), "ReduceSum", &["attention_mask", &axis_one]);
    let one = g.i64("one", &[], &[1]);
    let last_index = g.op("Sub", &[&seen, &one]);
    let seqlens_k = g.op_with(|n| n.int("to", DataType::Int32 as i64), "Cast", &[&last_index]);
    let mask_shape = g.op("Shape", &["attention_mask"]);
    let total = g.op_with(|n| n.int("axis", 0), "Gather", &[&mask_shape, &one]);
    let total = g.op_with(|n| n.int("to", DataType::Int32 as i64), "Cast", &[&total]);
    let interleaved = match c.architecture {
        Architecture::Qwen2 => 0,
        Architecture::Llama => 1,
    };

    let mut inputs = vec![
        ValueInfoProto::tensor("input_ids", DataType::Int64, &["1", "seq"]),
        ValueInfoProto::tensor("attention_mask", DataType::Int64, &["1", "total"]),
        ValueInfoProto::tensor("position_ids", DataType::Int64, &["1", "seq"]),
    ];
    let mut outputs =
        vec![ValueInfoProto::tensor("logits", DataType::Float, &["1", "1", &c.vocab.to_string()])];
    let (kvh, dd) = (c.kv_heads.to_string(), d.to_string());

    let mut hn = g.rms_norm(&x, &weights.blocks[0].attn_norm, c.rms_eps);
    for (i, b) in weights.blocks.iter().enumerate() {
        let (past_k, past_v) =
            (format!("past_key_values.{i}.key"), format!("past_key_values.{i}.value"));
        let (present_k, present_v) = (format!("present.{i}.key"), format!("present.{i}.value"));
        inputs.push(ValueInfoProto::tensor(&past_k, DataType::Float, &["1", &kvh, "past", &dd]));
        inputs.push(ValueInfoProto::tensor(&past_v, DataType::Float, &["1", &kvh, "past", &dd]));
        outputs.push(ValueInfoProto::tensor(
            &present_k,
            DataType::Float,
            &["1", &kvh, "total", &dd],
        ));
        outputs.push(ValueInfoProto::tensor(
            &present_v,
            DataType::Float,
            &["1", &kvh, "total", &dd],
        ));

        let n = |part: &str| format!("blk.{i}.{part}.weight");
        let (nq, nk, nv) = (n("attn_q"), n("attn_k"), n("attn_v"));
        let qkv = g.linears(
            &hn,
            &[(&nq, &b.wq, &b.bq, h), (&nk, &b.wk, &b.bk, kv), (&nv, &b.wv, &b.bv, kv)],
            h,
        );
        let (q, k, v) = (&qkv[0], &qkv[1], &qkv[2]);
        let attended = g.fresh("attended");
        let mut node = NodeProto::op(
            "GroupQueryAttention",
            &[q, k, v, &past_k, &past_v, &seqlens_k, &total, &cos, &sin],
            &[&attended, &present_k, &present_v],
        )
        .int("num_heads", c.heads as i64)
        .int("kv_num_heads", c.kv_heads as i64)
        .int("do_rotary", 1)
        .int("rotary_interleaved", interleaved)
        .float("scale", 1.0 / (d as f32).sqrt());
        node.domain = "com.microsoft".into();
        g.nodes.push(node);
        let projected = g.linear(&attended, &n("attn_output"), &b.wo, &[], h, h);
        let (normed, sum) = g.skip_norm(&x, &projected, &b.ffn_norm, c.rms_eps);
        x = sum;

        let (ng, nu) = (n("ffn_gate"), n("ffn_up"));
        let gate_up =
            g.linears(&normed, &[(&ng, &b.gate, &[], c.ffn), (&nu, &b.up, &[], c.ffn)], h);
        let sig = g.op("Sigmoid", &[&gate_up[0]]);
        let silu = g.op("Mul", &[&gate_up[0], &sig]);
        let act = g.op("Mul", &[&silu, &gate_up[1]]);
        let down = g.linear(&act, &n("ffn_down"), &b.down, &[], h, c.ffn);
        let next_norm =
            weights.blocks.get(i + 1).map_or(&weights.output_norm, |next| &next.attn_norm);
        let (normed, sum) = g.skip_norm(&x, &down, next_norm, c.rms_eps);
        hn = normed;
        x = sum;
    }
    let _ = x;
    // Only the last position's logits are ever sampled; projecting the whole prompt onto
    // the vocabulary would cost prefill a `seq × vocab × hidden` product for nothing.
    let minus_one = g.i64("index", &[1], &[-1]);
    let xn = g.op_with(|n| n.int("axis", 1), "Gather", &[&hn, &minus_one]);
    let output_name = if weights.raw.contains_key("output.weight") {
        "output.weight"
    } else {
        "token_embd.weight"
    };
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
        graph: Some(GraphProto {
            node: g.nodes,
            name: "decoder".into(),
            initializer: g.initializers,
            input: inputs,
            output: outputs,
        }),
    }
}

/// Writes `model` as `<dir>/model.onnx` with its large initializers in
/// `<dir>/model.onnx.data` (protobuf cannot hold a file over 2 GB), through a temporary
/// folder renamed into place, so a crash never leaves half an export.
pub fn write_with_external_data(
    mut model: ModelProto,
    dir: &std::path::Path,
) -> std::io::Result<std::path::PathBuf> {
    use prost::Message;
    use std::io::Write;
    const DATA: &str = "model.onnx.data";
    let staging = dir.with_extension("partial");
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging)?;
    let mut data =
        std::io::BufWriter::with_capacity(1 << 22, std::fs::File::create(staging.join(DATA))?);
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
            let entry = |k: &str, v: String| super::onnx_proto::StringStringEntryProto {
                key: k.into(),
                value: v,
            };
            t.external_data = vec![
                entry("location", DATA.into()),
                entry("offset", offset.to_string()),
                entry("length", bytes.len().to_string()),
            ];
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
