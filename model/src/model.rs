//! A decoder model read out of a GGUF: its hyper-parameters and its weights as `f32`.
//!
//! Weight matrices are kept as ggml stores them: `[out][in]` row-major (ggml's
//! dimension 0, the contiguous one, is the input). Rotary embedding follows the
//! layout of the GGUF: `qwen2` rotates the two halves of each head (NeoX style),
//! `llama` rotates adjacent pairs (llama.cpp's converter permuted Q and K for that).

use super::gguf::{Gguf, MetaValue};

/// Which decoder family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Architecture {
    /// Qwen2: biases on Q, K and V; NeoX rotary.
    Qwen2,
    /// Llama: no biases; pairwise rotary.
    Llama,
}

/// Hyper-parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// The family.
    pub architecture: Architecture,
    /// Decoder blocks.
    pub layers: usize,
    /// Hidden size.
    pub hidden: usize,
    /// Feed-forward size.
    pub ffn: usize,
    /// Attention heads.
    pub heads: usize,
    /// Key/value heads (grouped-query attention).
    pub kv_heads: usize,
    /// Vocabulary size.
    pub vocab: usize,
    /// Rotary base.
    pub rope_theta: f32,
    /// RMS norm epsilon.
    pub rms_eps: f32,
    /// The most positions the model attends over (the GGUF's `context_length`).
    pub context: usize,
}

impl Config {
    /// Size of one head.
    pub fn head_dim(&self) -> usize {
        self.hidden / self.heads
    }
}

/// One decoder block's weights.
#[derive(Clone, Debug)]
pub struct Block {
    /// RMS norm before attention.
    pub attn_norm: Vec<f32>,
    /// Query projection `[hidden][hidden]` and bias.
    pub wq: Vec<f32>,
    /// Key projection `[kv][hidden]`.
    pub wk: Vec<f32>,
    /// Value projection `[kv][hidden]`.
    pub wv: Vec<f32>,
    /// Biases (Qwen2), empty otherwise.
    pub bq: Vec<f32>,
    /// Key bias.
    pub bk: Vec<f32>,
    /// Value bias.
    pub bv: Vec<f32>,
    /// Output projection `[hidden][hidden]`.
    pub wo: Vec<f32>,
    /// RMS norm before the feed-forward.
    pub ffn_norm: Vec<f32>,
    /// Gate `[ffn][hidden]`.
    pub gate: Vec<f32>,
    /// Up `[ffn][hidden]`.
    pub up: Vec<f32>,
    /// Down `[hidden][ffn]`.
    pub down: Vec<f32>,
}

/// A whole model.
#[derive(Clone, Debug)]
pub struct Weights {
    /// Hyper-parameters.
    pub config: Config,
    /// Token embeddings `[vocab][hidden]`.
    pub embed: Vec<f32>,
    /// Blocks.
    pub blocks: Vec<Block>,
    /// Final norm.
    pub output_norm: Vec<f32>,
    /// Output projection `[vocab][hidden]` (the embeddings when the model ties them).
    pub output: Vec<f32>,
    /// The quantized bytes of every block-quantized tensor, by name, for exporters
    /// that keep weights quantized.
    pub raw: std::collections::HashMap<String, (super::quant::GgmlType, Vec<u8>)>,
}

fn meta_u(g: &Gguf, key: &str) -> Result<usize, String> {
    g.get(key)
        .and_then(MetaValue::as_u64)
        .and_then(|v| usize::try_from(v).ok())
        .ok_or_else(|| format!("the model has no `{key}`"))
}

/// Reads the configuration of a `qwen2` or `llama` GGUF.
pub fn config(g: &Gguf) -> Result<Config, String> {
    let arch_name = g.architecture().ok_or("the model names no architecture")?;
    let architecture = match arch_name {
        "qwen2" => Architecture::Qwen2,
        "llama" => Architecture::Llama,
        other => {
            return Err(format!(
                "architecture `{other}` is not supported (supported: qwen2, llama)"
            ))
        }
    };
    let key = |k: &str| format!("{arch_name}.{k}");
    let heads = meta_u(g, &key("attention.head_count"))?;
    let vocab = match g.get("tokenizer.ggml.tokens").and_then(MetaValue::as_array) {
        Some(tokens) => tokens.len(),
        None => g
            .tensor("token_embd.weight")
            .and_then(|t| t.dims.get(1))
            .map(|d| *d as usize)
            .ok_or("the model has no vocabulary")?,
    };
    let hidden = meta_u(g, &key("embedding_length"))?;
    if heads == 0 || hidden % heads != 0 || (hidden / heads) % 16 != 0 {
        return Err(format!(
            "a head size of {hidden}/{heads} is not supported: ONNX Runtime's GroupQueryAttention, which batos runs attention with, needs a multiple of 16"
        ));
    }
    let config = Config {
        architecture,
        layers: meta_u(g, &key("block_count"))?,
        hidden,
        ffn: meta_u(g, &key("feed_forward_length"))?,
        heads,
        kv_heads: meta_u(g, &key("attention.head_count_kv")).unwrap_or(heads),
        vocab,
        rope_theta: g.get(&key("rope.freq_base")).and_then(MetaValue::as_f64).unwrap_or(10_000.0)
            as f32,
        rms_eps: g
            .get(&key("attention.layer_norm_rms_epsilon"))
            .and_then(MetaValue::as_f64)
            .unwrap_or(1e-6) as f32,
        context: meta_u(g, &key("context_length")).unwrap_or(4096),
    };
    config.check()?;
    Ok(config)
}

/// The largest size of any one dimension batos accepts from a file: far beyond any
/// model it can run, small enough that the products below cannot overflow.
const MAX_DIMENSION: usize = 1 << 24;

/// The most decoder blocks a model may claim.
const MAX_LAYERS: usize = 1024;

impl Config {
    /// Refuses hyper-parameters that no real model has and that would overflow the
    /// sizes computed from them (every weight's length is a product of two of them).
    fn check(&self) -> Result<(), String> {
        let sizes = [
            ("embedding_length", self.hidden),
            ("feed_forward_length", self.ffn),
            ("head_count_kv", self.kv_heads),
            ("the vocabulary", self.vocab),
            ("context_length", self.context),
        ];
        for (name, size) in sizes {
            if size == 0 || size > MAX_DIMENSION {
                return Err(format!("{name} is {size}, outside 1..={MAX_DIMENSION}"));
            }
        }
        if self.layers == 0 || self.layers > MAX_LAYERS {
            return Err(format!("block_count is {}, outside 1..={MAX_LAYERS}", self.layers));
        }
        if self.kv_heads > self.heads || !self.heads.is_multiple_of(self.kv_heads) {
            return Err(format!(
                "{} attention heads cannot share {} key/value heads",
                self.heads, self.kv_heads
            ));
        }
        let products = [
            self.hidden.checked_mul(self.hidden),
            self.ffn.checked_mul(self.hidden),
            self.vocab.checked_mul(self.hidden),
        ];
        if products.iter().any(Option::is_none) {
            return Err("the model's weight sizes overflow this machine's address space".into());
        }
        Ok(())
    }
}

/// Reads every weight, dequantized to `f32`.
pub fn load(g: &Gguf) -> Result<Weights, String> {
    let config = config(g)?;
    let tensor = |name: &str, len: usize| -> Result<Vec<f32>, String> {
        let info = g.tensor(name).ok_or_else(|| format!("the model has no tensor `{name}`"))?;
        let values = g.tensor_f32(info).map_err(|e| e.to_string())?;
        if values.len() != len {
            return Err(format!("tensor `{name}` has {} values, expected {len}", values.len()));
        }
        Ok(values)
    };
    let (h, kv, f) = (config.hidden, config.kv_heads * config.head_dim(), config.ffn);
    let optional = |name: &str, len: usize| {
        if g.tensor(name).is_some() {
            tensor(name, len)
        } else {
            Ok(Vec::new())
        }
    };
    let mut blocks = Vec::with_capacity(config.layers);
    for i in 0..config.layers {
        let n = |part: &str| format!("blk.{i}.{part}");
        blocks.push(Block {
            attn_norm: tensor(&n("attn_norm.weight"), h)?,
            wq: tensor(&n("attn_q.weight"), h * h)?,
            wk: tensor(&n("attn_k.weight"), kv * h)?,
            wv: tensor(&n("attn_v.weight"), kv * h)?,
            bq: optional(&n("attn_q.bias"), h)?,
            bk: optional(&n("attn_k.bias"), kv)?,
            bv: optional(&n("attn_v.bias"), kv)?,
            wo: tensor(&n("attn_output.weight"), h * h)?,
            ffn_norm: tensor(&n("ffn_norm.weight"), h)?,
            gate: tensor(&n("ffn_gate.weight"), f * h)?,
            up: tensor(&n("ffn_up.weight"), f * h)?,
            down: tensor(&n("ffn_down.weight"), h * f)?,
        });
    }
    let mut raw = std::collections::HashMap::new();
    for t in &g.tensors {
        if t.ggml_type.block().0 > 1 && t.dims.len() == 2 {
            raw.insert(
                t.name.clone(),
                (t.ggml_type, g.tensor_bytes(t).map_err(|e| e.to_string())?),
            );
        }
    }
    let embed = tensor("token_embd.weight", config.vocab * h)?;
    let output = if g.tensor("output.weight").is_some() {
        tensor("output.weight", config.vocab * h)?
    } else {
        embed.clone()
    };
    Ok(Weights {
        embed,
        blocks,
        output_norm: tensor("output_norm.weight", h)?,
        output,
        raw,
        config,
    })
}
