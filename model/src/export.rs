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
//! ([`Weighting`]); the token embedding is gathered from its blocks
//! (`GatherBlockQuantized`) where it has them. In ONNX Runtime's profile of a decode
//! step on the embedded model, the fused operators cut the time outside the matrix
//! products from about 11 ms (the same graph in standard operators: separate rotary,
//! Expand/MatMul/Softmax attention, six-node norms) to about 3 ms.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::gguf::Gguf;
use super::model::{Architecture, Config};
use super::onnx_proto::{
    DataType, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto,
    TensorProto, ValueInfoProto,
};
use super::progress::Progress;
use super::quant::GgmlType;

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

/// The external data file beside `model.onnx`.
const DATA: &str = "model.onnx.data";

/// Initializers smaller than this stay inside `model.onnx`.
const INLINE_BELOW: usize = 1024;

/// Where initializers go as the graph is built.
enum Store {
    /// Inside the model (tests, tiny models: the whole model in memory).
    Inline,
    /// Streamed to the external data file as each one is made, so an export holds one
    /// tensor in memory at a time, not the model.
    External {
        data: io::BufWriter<std::fs::File>,
        offset: u64,
        /// The first write error; the export fails with it at the end.
        failed: Option<io::Error>,
    },
}

/// The weights an export reads, one tensor at a time, straight from a GGUF: nothing is
/// loaded before the graph asks for it, and nothing is kept after it is stored.
struct Source<'g> {
    gguf: &'g Gguf,
    config: Config,
    progress: &'g mut dyn Progress,
}

impl Source<'_> {
    fn has(&self, name: &str) -> bool {
        self.gguf.tensor(name).is_some()
    }

    /// A tensor dequantized to `f32`, checked to hold `len` values.
    fn float(&mut self, name: &str, len: usize) -> Result<Vec<f32>, String> {
        let info =
            self.gguf.tensor(name).ok_or_else(|| format!("the model has no tensor `{name}`"))?;
        let values = self.gguf.tensor_f32(info).map_err(|e| e.to_string())?;
        self.progress.advance(info.byte_len().unwrap_or(0));
        if values.len() != len {
            return Err(format!("tensor `{name}` has {} values, expected {len}", values.len()));
        }
        Ok(values)
    }

    /// Like [`Source::float`], but an absent tensor is empty (optional biases).
    fn optional(&mut self, name: &str, len: usize) -> Result<Vec<f32>, String> {
        if self.has(name) {
            self.float(name, len)
        } else {
            Ok(Vec::new())
        }
    }

    /// The raw blocks of a block-quantized matrix, when it is one.
    fn quantized(&mut self, name: &str) -> Result<Option<(GgmlType, Vec<u8>)>, String> {
        let Some(info) = self.gguf.tensor(name) else { return Ok(None) };
        if info.ggml_type.block().0 <= 1 || info.dims.len() != 2 {
            return Ok(None);
        }
        let bytes = self.gguf.tensor_bytes(info).map_err(|e| e.to_string())?;
        self.progress.advance(info.byte_len().unwrap_or(0));
        Ok(Some((info.ggml_type, bytes)))
    }
}

struct Graph<'g> {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    next: usize,
    weighting: Weighting,
    source: Source<'g>,
    store: Store,
}

impl Graph<'_> {
    /// Keeps an initializer whose bytes `write` produces (`len` of them): inline, or
    /// appended to the data file 64-byte aligned so ONNX Runtime can map it directly.
    fn keep(
        &mut self,
        name: &str,
        data_type: DataType,
        dims: &[i64],
        len: usize,
        write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
    ) {
        let mut tensor = TensorProto {
            dims: dims.to_vec(),
            data_type: data_type as i32,
            name: name.to_owned(),
            ..Default::default()
        };
        match &mut self.store {
            Store::External { data, offset, failed } if len >= INLINE_BELOW => {
                if failed.is_none() {
                    let pad = (64 - *offset % 64) % 64;
                    let written = data
                        .write_all(&[0u8; 64][..pad as usize])
                        .and_then(|()| write(data as &mut dyn Write));
                    if let Err(e) = written {
                        *failed = Some(e);
                    }
                    *offset += pad;
                }
                let entry = |k: &str, v: String| StringStringEntryProto { key: k.into(), value: v };
                tensor.external_data = vec![
                    entry("location", DATA.into()),
                    entry("offset", offset.to_string()),
                    entry("length", len.to_string()),
                ];
                tensor.data_location = 1;
                *offset += len as u64;
            }
            _ => {
                let mut bytes = Vec::with_capacity(len);
                // Writing into a Vec cannot fail.
                let _ = write(&mut bytes);
                tensor.raw_data = bytes;
            }
        }
        self.initializers.push(tensor);
    }

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
        self.keep(&name, DataType::Float, dims, values.len() * 4, |out| {
            // In chunks: the largest tensor is never copied whole into bytes.
            for chunk in values.chunks(1 << 16) {
                let bytes: Vec<u8> = chunk.iter().flat_map(|v| v.to_le_bytes()).collect();
                out.write_all(&bytes)?;
            }
            Ok(())
        });
        name
    }

    fn u8(&mut self, hint: &str, dims: &[i64], values: &[u8]) -> String {
        let name = self.fresh(hint);
        self.keep(&name, DataType::Uint8, dims, values.len(), |out| out.write_all(values));
        name
    }

    fn i64(&mut self, hint: &str, dims: &[i64], values: &[i64]) -> String {
        let name = self.fresh(hint);
        self.initializers.push(TensorProto::i64(&name, dims, values));
        name
    }

    /// A `[out][in]` weight as the `[in][out]` right operand of MatMul.
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

    fn rms_norm(&mut self, x: &str, weight: &str, eps: f32) -> Result<String, String> {
        let weight = self.source.float(weight, self.source.config.hidden)?;
        let w = self.f32("norm", &[weight.len() as i64], &weight);
        Ok(self.op_with(
            |n| n.int("axis", -1).float("epsilon", eps),
            "SimplifiedLayerNormalization",
            &[x, &w],
        ))
    }

    /// The GGUF's own blocks of `name` repacked for `MatMulNBits`, when the weighting
    /// asks for it and the format maps onto it exactly.
    fn repacked(
        &mut self,
        name: &str,
        out: usize,
        inp: usize,
    ) -> Result<Option<super::quant::NBits>, String> {
        let Weighting::NBits { .. } = self.weighting else { return Ok(None) };
        let Some((t, bytes)) = self.source.quantized(name)? else { return Ok(None) };
        Ok(super::quant::to_nbits(t, &bytes, out, inp))
    }

    /// Several projections of one input (`(weight, bias or "", rows)`) as one
    /// `MatMulNBits` over their stacked rows, split after: one pass over the activations
    /// and one kernel launch instead of several (q/k/v, gate/up). Only when their
    /// blocks share a layout; else one each.
    fn linears(
        &mut self,
        x: &str,
        parts: &[(&str, &str, usize)],
        inp: usize,
    ) -> Result<Vec<String>, String> {
        let mut packed = Vec::with_capacity(parts.len());
        for (name, _, out) in parts {
            match self.repacked(name, *out, inp)? {
                Some(q) => packed.push(q),
                None => break,
            }
        }
        let same = |qs: &[super::quant::NBits]| {
            qs.windows(2).all(|w| {
                w[0].bits == w[1].bits
                    && w[0].block_size == w[1].block_size
                    && w[0].mins.is_empty() == w[1].mins.is_empty()
            })
        };
        if packed.len() != parts.len() || !same(&packed) {
            drop(packed);
            return parts
                .iter()
                .map(|(name, bias, out)| self.linear(x, name, bias, *out, inp))
                .collect();
        }
        let mut all = super::quant::NBits {
            bits: packed[0].bits,
            block_size: packed[0].block_size,
            packed: vec![],
            scales: vec![],
            zero_points: vec![],
            mins: vec![],
        };
        for q in packed {
            all.packed.extend_from_slice(&q.packed);
            all.scales.extend_from_slice(&q.scales);
            all.zero_points.extend_from_slice(&q.zero_points);
            all.mins.extend_from_slice(&q.mins);
        }
        let mut bias = Vec::new();
        if parts.iter().any(|(_, b, _)| self.source.has(b)) {
            for (_, b, out) in parts {
                match self.source.optional(b, *out)? {
                    v if v.is_empty() => bias.extend(std::iter::repeat_n(0.0, *out)),
                    v => bias.extend(v),
                }
            }
        }
        let outs: Vec<usize> = parts.iter().map(|p| p.2).collect();
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
        Ok(names)
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
        let b = self.u8("qweight", &[out as i64, blocks, blob], &q.packed);
        let scales = self.f32("scales", &[out as i64 * blocks], &q.scales);
        let zps: Vec<u8> = if q.bits == 4 {
            // Two 4-bit zero points a byte, low nibble first, each row padded to a byte.
            q.zero_points
                .chunks_exact(blocks as usize)
                .flat_map(|row| row.chunks(2).map(|p| p[0] | (p.get(1).copied().unwrap_or(0) << 4)))
                .collect()
        } else {
            q.zero_points.clone()
        };
        let zero_points = self.u8("zero_points", &[zps.len() as i64], &zps);
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

    /// `x · nameᵀ (+ bias)`: `MatMulNBits` over the GGUF's blocks where they map onto
    /// it, else an `f32` MatMul of the dequantized weight.
    fn linear(
        &mut self,
        x: &str,
        name: &str,
        bias: &str,
        out: usize,
        inp: usize,
    ) -> Result<String, String> {
        let bias = self.source.optional(bias, out)?;
        if let Some(q) = self.repacked(name, out, inp)? {
            return Ok(self.nbits_node(x, &q, &bias, out, inp));
        }
        let w = self.source.float(name, out * inp)?;
        let wt = self.weight("w", &w, out, inp);
        drop(w);
        let y = self.op("MatMul", &[x, &wt]);
        Ok(if bias.is_empty() {
            y
        } else {
            let b = self.f32("b", &[out as i64], &bias);
            self.op("Add", &[&y, &b])
        })
    }

    /// The rows of `token_embd` for `input_ids`, `[1, seq, hidden]`. Under `NBits`, a
    /// table in a block format `MatMulNBits` takes (Q4_K, Q5_0, Q6_K, Q8_0) is gathered
    /// straight from its blocks by `GatherBlockQuantized`, which computes
    /// `(code − zero point) · scale` as the dequantization does (Q4_K's minimum is
    /// gathered beside and subtracted), so the rows are the same floats: the 1.5B's Q4_K
    /// table takes 182 MB of the export instead of an `f32` copy's 933 MB. Disk only:
    /// ONNX Runtime maps the data file, so either way memory holds just the rows read
    /// (1,888 MB resident after loading the 1.5B, both ways).
    /// The `Float` weighting (the reference) and other formats gather an `f32` table.
    fn embedding(&mut self, vocab: usize, hidden: usize) -> Result<String, String> {
        const NAME: &str = "token_embd.weight";
        // Checked before reading: a table read for nothing would be read twice.
        let blocked = self
            .source
            .gguf
            .tensor(NAME)
            .is_some_and(|t| super::quant::nbits_layout(t.ggml_type).is_some());
        if blocked {
            if let Some(q) = self.repacked(NAME, vocab, hidden)? {
                return Ok(self.gathered(&q, vocab, hidden));
            }
        }
        let values = self.source.float(NAME, vocab * hidden)?;
        let table = self.f32("embed", &[vocab as i64, hidden as i64], &values);
        drop(values);
        Ok(self.op("Gather", &[&table, "input_ids"]))
    }

    /// `GatherBlockQuantized` over `q`'s rows, blocks on their own axis: the codes keep
    /// the `[rows][blocks][bytes]` layout, and each scale, zero point and minimum covers
    /// one block of that axis (so a 4-bit zero point is alone in its byte, low nibble).
    fn gathered(&mut self, q: &super::quant::NBits, vocab: usize, hidden: usize) -> String {
        let blocks = (hidden / q.block_size) as i64;
        let blob = (q.block_size * q.bits as usize / 8) as i64;
        let data = self.u8("embed", &[vocab as i64, blocks, blob], &q.packed);
        let per_block = [vocab as i64, blocks, 1];
        let scales = self.f32("embed_scales", &per_block, &q.scales);
        let zero_points = self.u8("embed_zero_points", &per_block, &q.zero_points);
        let rows = self.fresh("embedded");
        let mut node = NodeProto::op(
            "GatherBlockQuantized",
            &[&data, "input_ids", &scales, &zero_points],
            &[&rows],
        )
        .int("gather_axis", 0)
        .int("quantize_axis", 2)
        .int("block_size", q.block_size as i64)
        .int("bits", i64::from(q.bits));
        node.domain = "com.microsoft".into();
        self.nodes.push(node);
        let rows = if q.mins.is_empty() {
            rows
        } else {
            let mins = self.f32("embed_mins", &per_block, &q.mins);
            let row_mins = self.op("Gather", &[&mins, "input_ids"]);
            self.op("Sub", &[&rows, &row_mins])
        };
        let shape = self.i64("shape", &[3], &[0, 0, hidden as i64]);
        self.op("Reshape", &[&rows, &shape])
    }

    /// `SkipSimplifiedLayerNormalization`: the residual sum `x + skip` and its RMS norm
    /// in one kernel; returns `(normed, sum)`.
    fn skip_norm(
        &mut self,
        x: &str,
        skip: &str,
        weight: &str,
        eps: f32,
    ) -> Result<(String, String), String> {
        let weight = self.source.float(weight, self.source.config.hidden)?;
        let w = self.f32("norm", &[weight.len() as i64], &weight);
        let (normed, sum) = (self.fresh("normed"), self.fresh("residual"));
        let mut node = NodeProto::op(
            "SkipSimplifiedLayerNormalization",
            &[x, skip, &w],
            &[&normed, "", "", &sum],
        )
        .float("epsilon", eps);
        node.domain = "com.microsoft".into();
        self.nodes.push(node);
        Ok((normed, sum))
    }
}

/// The cos/sin tables cover at most this many positions (8 MB for a head of 64): a
/// longer context than batos feeds its models, and a bound on the export's size.
pub const MAX_POSITIONS: usize = 32_768;

/// The whole ONNX model of a GGUF in memory, weighted as asked: for tests and tiny
/// models. Real models go through [`write`], which streams.
pub fn export_with(gguf: &Gguf, weighting: Weighting) -> Result<ModelProto, String> {
    let mut quiet = super::progress::Quiet;
    build(gguf, weighting, Store::Inline, &mut quiet)
}

/// Exports a GGUF as `<dir>/model.onnx` with its large initializers in
/// `<dir>/model.onnx.data` (protobuf cannot hold a file over 2 GB), weighted as asked.
///
/// The export streams: each tensor is read from the GGUF when the graph needs it,
/// converted and appended to the data file, then dropped, so memory holds the graph and
/// one tensor — about the largest tensor's size twice over, not the model's. It is
/// written into a temporary folder renamed into place, so a crash never leaves half an
/// export. `progress` counts the GGUF's tensor bytes read.
pub fn write(
    gguf: &Gguf,
    weighting: Weighting,
    dir: &Path,
    progress: &mut dyn Progress,
) -> Result<PathBuf, String> {
    let failed = |e: io::Error| format!("cannot write the ONNX export to {}: {e}", dir.display());
    let staging = dir.with_extension("partial");
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).map_err(failed)?;
    let file = std::fs::File::create(staging.join(DATA)).map_err(failed)?;
    let store = Store::External {
        data: io::BufWriter::with_capacity(1 << 22, file),
        offset: 0,
        failed: None,
    };
    let total: u64 = gguf.tensors.iter().filter_map(|t| t.byte_len()).sum();
    progress.start("import: export to ONNX", Some(total));
    let built = build(gguf, weighting, store, progress);
    progress.finish();
    let model = built?;
    let mut file = std::fs::File::create(staging.join("model.onnx")).map_err(failed)?;
    use prost::Message;
    file.write_all(&model.encode_to_vec()).map_err(failed)?;
    file.sync_all().map_err(failed)?;
    drop(file);
    let _ = std::fs::remove_dir_all(dir);
    std::fs::rename(&staging, dir).map_err(failed)?;
    Ok(dir.join("model.onnx"))
}

fn build(
    gguf: &Gguf,
    weighting: Weighting,
    store: Store,
    progress: &mut dyn Progress,
) -> Result<ModelProto, String> {
    let c = super::model::config(gguf)?;
    let mut g = Graph {
        nodes: Vec::new(),
        initializers: Vec::new(),
        next: 0,
        weighting,
        source: Source { gguf, config: c.clone(), progress },
        store,
    };
    let (h, d) = (c.hidden, c.head_dim());
    let kv = c.kv_heads * d;

    let mut x = g.embedding(c.vocab, h)?;
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

    let mut hn = g.rms_norm(&x, "blk.0.attn_norm.weight", c.rms_eps)?;
    for i in 0..c.layers {
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

        let n = |part: &str| format!("blk.{i}.{part}");
        let (nq, nk, nv) = (n("attn_q.weight"), n("attn_k.weight"), n("attn_v.weight"));
        let (bq, bk, bv) = (n("attn_q.bias"), n("attn_k.bias"), n("attn_v.bias"));
        let qkv = g.linears(&hn, &[(&nq, &bq, h), (&nk, &bk, kv), (&nv, &bv, kv)], h)?;
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
        let projected = g.linear(&attended, &n("attn_output.weight"), "", h, h)?;
        let (normed, sum) = g.skip_norm(&x, &projected, &n("ffn_norm.weight"), c.rms_eps)?;
        x = sum;

        let (ng, nu) = (n("ffn_gate.weight"), n("ffn_up.weight"));
        let gate_up = g.linears(&normed, &[(&ng, "", c.ffn), (&nu, "", c.ffn)], h)?;
        let sig = g.op("Sigmoid", &[&gate_up[0]]);
        let silu = g.op("Mul", &[&gate_up[0], &sig]);
        let act = g.op("Mul", &[&silu, &gate_up[1]]);
        let down = g.linear(&act, &n("ffn_down.weight"), "", h, c.ffn)?;
        let next_norm = if i + 1 < c.layers {
            format!("blk.{}.attn_norm.weight", i + 1)
        } else {
            "output_norm.weight".to_owned()
        };
        let (normed, sum) = g.skip_norm(&x, &down, &next_norm, c.rms_eps)?;
        hn = normed;
        x = sum;
    }
    let _ = x;
    // Only the last position's logits are ever sampled; projecting the whole prompt onto
    // the vocabulary would cost prefill a `seq × vocab × hidden` product for nothing.
    let minus_one = g.i64("index", &[1], &[-1]);
    let xn = g.op_with(|n| n.int("axis", 1), "Gather", &[&hn, &minus_one]);
    // Models that tie their output projection to the embeddings have no `output.weight`.
    let output_name =
        if g.source.has("output.weight") { "output.weight" } else { "token_embd.weight" };
    let logits = g.linear(&xn, output_name, "", c.vocab, h)?;
    g.nodes.push(NodeProto::op("Identity", &[&logits], &["logits"]));

    if let Store::External { data, failed, .. } = g.store {
        if let Some(e) = failed {
            return Err(format!("cannot write the ONNX export's data: {e}"));
        }
        let file = data
            .into_inner()
            .map_err(|e| format!("cannot write the ONNX export's data: {}", e.error()))?;
        file.sync_all().map_err(|e| format!("cannot sync the ONNX export's data: {e}"))?;
    }
    Ok(ModelProto {
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
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::GgufWriter;
    use crate::model::Architecture;
    use half::f16;
    use ort::value::Tensor;
    use prost::Message;

    /// `rows` × `cols` values in format `t`: random blocks, or plain f16 values.
    fn random_table(t: GgmlType, rows: usize, cols: usize, seed: u32) -> Vec<u8> {
        if t == GgmlType::F16 {
            let value = |i: usize| f16::from_f32((i % 17) as f32 * 0.1 - 0.8);
            return (0..rows * cols).flat_map(|i| value(i).to_le_bytes()).collect();
        }
        crate::quant::tests::random_blocks(t, rows, cols, seed)
    }

    /// The embedding graph alone over a GGUF holding only `token_embd` in format `t`:
    /// the rows ONNX Runtime gathers for `ids`, and the op that gathered them.
    fn gather(
        t: GgmlType,
        vocab: usize,
        hidden: usize,
        ids: &[i64],
    ) -> (Vec<f32>, String, Vec<f32>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("embed.gguf");
        let table = random_table(t, vocab, hidden, 7);
        GgufWriter::default()
            .tensor("token_embd.weight", &[hidden as u64, vocab as u64], t, table.clone())
            .write(&path)
            .expect("writes");
        let gguf = Gguf::read(&path).expect("reads");
        let config = Config {
            architecture: Architecture::Qwen2,
            layers: 0,
            hidden,
            ffn: 0,
            heads: 1,
            kv_heads: 1,
            vocab,
            rope_theta: 1e6,
            rms_eps: 1e-6,
            context: 1,
        };
        let mut quiet = super::super::progress::Quiet;
        let mut g = Graph {
            nodes: Vec::new(),
            initializers: Vec::new(),
            next: 0,
            weighting: Weighting::NBits { accuracy_level: 4 },
            source: Source { gguf: &gguf, config, progress: &mut quiet },
            store: Store::Inline,
        };
        let rows = g.embedding(vocab, hidden).expect("builds");
        let op = g
            .nodes
            .iter()
            .find(|n| n.input.iter().any(|i| i == "input_ids"))
            .expect("a gather")
            .op_type
            .clone();
        g.nodes.push(NodeProto::op("Identity", &[&rows], &["rows"]));
        let model = ModelProto {
            ir_version: 10,
            opset_import: vec![
                OperatorSetIdProto { domain: String::new(), version: 21 },
                OperatorSetIdProto { domain: "com.microsoft".into(), version: 1 },
            ],
            producer_name: "batos test".into(),
            producer_version: String::new(),
            graph: Some(GraphProto {
                node: g.nodes,
                name: "embedding".into(),
                initializer: g.initializers,
                input: vec![ValueInfoProto::tensor("input_ids", DataType::Int64, &["1", "seq"])],
                output: vec![ValueInfoProto::tensor(
                    "rows",
                    DataType::Float,
                    &["1", "seq", "hidden"],
                )],
            }),
        };
        let env = super::super::onnxruntime::environment().expect("ONNX Runtime loads");
        let mut session = ort::session::Session::builder(env)
            .expect("builder")
            .commit_from_memory(&model.encode_to_vec())
            .expect("ONNX Runtime accepts the graph");
        let input = Tensor::from_array(([1usize, ids.len()], ids.to_vec())).expect("ids");
        let outputs = session.run(ort::inputs!["input_ids" => input]).expect("runs");
        let (_, got) = outputs["rows"].try_extract_tensor::<f32>().expect("rows");
        let reference = super::super::quant::dequantize(t, &table).expect("dequantizes");
        let expected = ids
            .iter()
            .flat_map(|i| reference[*i as usize * hidden..(*i as usize + 1) * hidden].to_vec())
            .collect();
        (got.to_vec(), op, expected)
    }

    /// Every block format the embedding gathers from gives exactly the floats the
    /// dequantization gives (the same products, in the same order).
    #[test]
    fn gathered_rows_are_the_dequantized_rows() {
        for t in [GgmlType::Q4_K, GgmlType::Q5_0, GgmlType::Q6_K, GgmlType::Q8_0] {
            let (got, op, expected) = gather(t, 12, 512, &[3, 0, 11, 3]);
            assert_eq!(op, "GatherBlockQuantized", "{t:?}");
            assert_eq!(got.len(), 4 * 512, "{t:?}");
            let same =
                got.iter().zip(&expected).filter(|(a, b)| a.to_bits() == b.to_bits()).count();
            assert_eq!(same, got.len(), "{t:?}: every float the same");
        }
        // A format MatMulNBits does not take stays an f32 table.
        let (got, op, expected) = gather(GgmlType::F16, 4, 64, &[1, 2]);
        assert_eq!(op, "Gather");
        assert_eq!(got, expected);
    }
}
