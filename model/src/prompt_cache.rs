//! [`PromptCache`]: the KV cache a generation leaves behind, kept so that the next prompt
//! that starts the same way skips prefilling what it shares.
//!
//! A synthesis round asks for several candidates from one prompt that differs only near
//! its end (each candidate's worked example, a repair round's failing case), and prefill
//! is most of a candidate's time on a 2-core machine. llama.cpp's server keeps a slot's
//! cache the same way; the reuse is exact, because a position's keys and values depend
//! only on the tokens before it.

use ort::value::{DynValue, Tensor};

use super::model::Config;
use batos_mind::MindError;

/// The keys and values of every block for `tokens`, in ONNX Runtime's tensors
/// (`[1, kv_heads, tokens.len(), head_dim]`, keys and values of block 0, then block 1…).
pub struct PromptCache {
    /// The tokens whose keys and values `past` holds, in order.
    pub tokens: Vec<u32>,
    /// The `present` outputs of the step that fed the last of `tokens`.
    pub past: Vec<DynValue>,
}

/// An ONNX Runtime failure, as the mind reports it.
pub(crate) fn ort_error(e: ort::Error) -> MindError {
    MindError::Model(format!("ONNX Runtime failed: {e}"))
}

/// An empty cache for every block: what the first step of a fresh prompt is given.
pub fn empty(config: &Config) -> Result<Vec<DynValue>, MindError> {
    (0..2 * config.layers)
        .map(|_| {
            Tensor::from_array(([1usize, config.kv_heads, 0, config.head_dim()], Vec::<f32>::new()))
                .map(Tensor::into_dyn)
                .map_err(ort_error)
        })
        .collect()
}

impl PromptCache {
    /// The cache to start `prompt` from, and how many of its tokens it already holds.
    /// At least the prompt's last token is always left to feed, since its logits are
    /// what the first sample is drawn from. A cache sharing nothing with `prompt` is
    /// dropped.
    pub fn resume(
        self,
        prompt: &[u32],
        config: &Config,
    ) -> Result<(Vec<DynValue>, usize), MindError> {
        let shared = self.tokens.iter().zip(prompt).take_while(|(a, b)| a == b).count();
        let keep = shared.min(prompt.len().saturating_sub(1));
        if keep == 0 {
            return Ok((empty(config)?, 0));
        }
        if keep == self.tokens.len() {
            return Ok((self.past, keep));
        }
        let d = config.head_dim();
        let mut past = Vec::with_capacity(self.past.len());
        for value in &self.past {
            let (shape, data) = value.try_extract_tensor::<f32>().map_err(ort_error)?;
            let held = usize::try_from(shape.get(2).copied().unwrap_or(0)).unwrap_or(0);
            if held != self.tokens.len() || data.len() != config.kv_heads * held * d {
                return Err(MindError::Model(format!(
                    "the kept KV cache has shape {:?}, not [1, {}, {}, {d}]",
                    &**shape,
                    config.kv_heads,
                    self.tokens.len()
                )));
            }
            // Each head's positions are contiguous: keep the first `keep` of each.
            let mut kept = Vec::with_capacity(config.kv_heads * keep * d);
            for head in data.chunks_exact(held * d) {
                kept.extend_from_slice(&head[..keep * d]);
            }
            past.push(
                Tensor::from_array(([1usize, config.kv_heads, keep, d], kept))
                    .map_err(ort_error)?
                    .into_dyn(),
            );
        }
        Ok((past, keep))
    }
}
