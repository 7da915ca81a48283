//! [`OnnxMind`]: a GGUF model imported to ONNX and run in-process by ONNX Runtime, with
//! prefill, incremental decoding over the KV cache, sampling and stop strings.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use ort::session::Session;
use ort::value::{DynValue, Tensor};

use super::gguf::{Gguf, MetaValue};
use super::model::Config;
use super::onnxruntime::{self as runtime, Device};
use super::progress::{Progress, Quiet};
use super::prompt_cache::{self, ort_error, PromptCache};
use super::sample::{stop_at, Sampler};
use super::template::ChatTemplate;
use super::{export, model, tokenizer};
use batos_mind::{Completion, Finish, Message, Mind, MindError, Prefix, Sampling};

/// Bumped whenever the exported graph changes, so stale exports are rebuilt.
const EXPORT_VERSION: u32 = 5;

/// Weights stay in their GGUF blocks (MatMulNBits) where that is exact, with int8
/// activations: a quarter of the memory traffic of f32, which decoding is bound by.
const WEIGHTING: export::Weighting = export::Weighting::NBits { accuracy_level: 4 };

/// A local model in ONNX Runtime.
pub struct OnnxMind {
    name: String,
    provider: &'static str,
    config: Config,
    loaded: Mutex<Loaded>,
    tokenizer: tokenizers::Tokenizer,
    template: ChatTemplate,
    stop_ids: Vec<u32>,
    /// Each token's text alone, for constrained sampling; made on first use.
    pieces: OnceLock<Vec<String>>,
}

/// The session and what the last generation left in it, behind one lock: one
/// generation runs at a time, and the next starts from the cache the last one left.
struct Loaded {
    session: Session,
    cache: Option<PromptCache>,
}

fn model_error(detail: impl Into<String>) -> MindError {
    MindError::Model(detail.into())
}

/// The folder holding the ONNX export of the GGUF whose content key (a hash) is `key`.
/// Keyed by content, not file name, so a model reached through the image's blob store
/// and the same model in the models folder share one export.
pub fn export_dir(models: &Path, key: &str) -> PathBuf {
    models.join("onnx").join(format!("{key}-v{EXPORT_VERSION}"))
}

/// Makes sure `dir` holds the ONNX export of `gguf_path`, building it if not: the
/// import step of `batos model pull` and `batos model import`, and of a first use.
/// The caller holds the models folder's [`super::folder::ModelsLock`]; the export is
/// written to a staging folder renamed into place, `model.onnx` last, so an export
/// with `model.onnx` is whole.
/// Exports of older graph versions next to it are removed. Returns `model.onnx`.
pub fn ensure_export(
    gguf_path: &Path,
    dir: &Path,
    progress: &mut dyn Progress,
) -> Result<PathBuf, MindError> {
    let onnx = dir.join("model.onnx");
    if onnx.is_file() {
        return Ok(onnx);
    }
    let g = Gguf::read(gguf_path).map_err(|e| model_error(e.to_string()))?;
    export::write(&g, WEIGHTING, dir, progress).map_err(model_error)?;
    if let (Some(parent), Some(name)) = (dir.parent(), dir.file_name().and_then(|n| n.to_str())) {
        let stem = name.rsplit_once("-v").map_or(name, |(stem, _)| stem);
        for entry in std::fs::read_dir(parent).into_iter().flatten().flatten() {
            let other = entry.file_name().to_string_lossy().into_owned();
            if other != name && other.rsplit_once("-v").is_some_and(|(s, _)| s == stem) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    Ok(onnx)
}

impl OnnxMind {
    /// Every token's text on its own (empty for one that is only part of a character).
    fn pieces(&self) -> &[String] {
        self.pieces.get_or_init(|| {
            (0..self.config.vocab as u32)
                .map(|t| {
                    let piece = self.tokenizer.decode(&[t], true).unwrap_or_default();
                    if piece.contains('\u{FFFD}') {
                        String::new()
                    } else {
                        piece
                    }
                })
                .collect()
        })
    }

    /// Opens a GGUF model named `name`, exporting it to ONNX into `dir` (see
    /// [`export_dir`]) the first time, on `device`.
    pub fn open(
        gguf_path: &Path,
        dir: &Path,
        name: &str,
        device: Device,
    ) -> Result<OnnxMind, MindError> {
        let g = Gguf::read(gguf_path).map_err(|e| model_error(e.to_string()))?;
        let config = model::config(&g).map_err(model_error)?;
        let tokenizer = tokenizer::tokenizer(&g).map_err(model_error)?;
        let template = ChatTemplate::from_gguf(&g).map_err(model_error)?;
        let onnx = match dir.join("model.onnx") {
            onnx if onnx.is_file() => onnx,
            _ => {
                // `dir` is `<models>/onnx/<key>-vN`: the export is written under the models
                // folder's lock, like every other writer of it.
                let models = dir.parent().and_then(Path::parent).unwrap_or(dir);
                let _held = super::folder::ModelsLock::acquire(models).map_err(|e| {
                    model_error(format!("cannot lock the models folder {}: {e}", models.display()))
                })?;
                ensure_export(gguf_path, dir, &mut Quiet)?
            }
        };
        let (session, provider) = runtime::session(&onnx, device)?;
        tracing::info!(model = name, provider, "the mind is loaded");
        let mut stop_ids = Vec::new();
        if let Some(id) = g.get("tokenizer.ggml.eos_token_id").and_then(MetaValue::as_u64) {
            stop_ids.push(id as u32);
        }
        for special in ["<|im_end|>", "<|endoftext|>", "<|eot_id|>"] {
            if let Some(id) = tokenizer.token_to_id(special) {
                stop_ids.push(id);
            }
        }
        Ok(OnnxMind {
            name: name.to_owned(),
            provider,
            config,
            loaded: Mutex::new(Loaded { session, cache: None }),
            tokenizer,
            template,
            stop_ids,
            pieces: OnceLock::new(),
        })
    }

    /// The execution provider that actually runs the model.
    pub fn provider(&self) -> &'static str {
        self.provider
    }

    /// Drops the KV cache the last generation left, so the next prompt is prefilled
    /// whole (for measuring prefill; answers are the same either way).
    pub fn forget_prompt_cache(&self) {
        self.loaded.lock().unwrap_or_else(std::sync::PoisonError::into_inner).cache = None;
    }

    /// Generates after `prompt` (token ids), streaming text to `on_text`. The prompt's
    /// longest prefix shared with the last generation's tokens is not prefilled again:
    /// its keys and values are kept from then ([`PromptCache`]), and the completion
    /// counts them in `cached_tokens`.
    pub fn generate(
        &self,
        prompt: &[u32],
        sampling: &Sampling,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Completion, MindError> {
        let c = &self.config;
        let mut loaded = self.loaded.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Loaded { session, cache } = &mut *loaded;
        let mut sampler = Sampler::new(sampling);
        // The cache stays in ONNX Runtime's own tensors: each step's `present` outputs
        // become the next step's `past` inputs without a copy. A failed step leaves no
        // cache behind, so the next generation starts afresh.
        let (mut past, reused) = match cache.take() {
            Some(kept) => kept.resume(prompt, c)?,
            None => (prompt_cache::empty(c)?, 0),
        };
        let mut history: Vec<u32> = prompt.to_vec();
        // The tokens whose keys and values `past` holds.
        let mut fed = reused;
        let mut feed: Vec<i64> = prompt[reused..].iter().map(|&t| i64::from(t)).collect();
        let mut generated: Vec<u32> = Vec::new();
        let mut emitted = 0usize;
        let mut text = String::new();
        let finish = loop {
            if history.len() >= c.context.min(export::MAX_POSITIONS) {
                break Finish::Length;
            }
            let start = history.len() - feed.len();
            let seq = feed.len();
            let total = history.len();
            let mut inputs: Vec<(String, DynValue)> = vec![
                (
                    "input_ids".into(),
                    Tensor::from_array(([1usize, seq], std::mem::take(&mut feed)))
                        .map_err(ort_error)?
                        .into_dyn(),
                ),
                (
                    "attention_mask".into(),
                    Tensor::from_array(([1usize, total], vec![1i64; total]))
                        .map_err(ort_error)?
                        .into_dyn(),
                ),
                (
                    "position_ids".into(),
                    Tensor::from_array((
                        [1usize, seq],
                        (start as i64..total as i64).collect::<Vec<_>>(),
                    ))
                    .map_err(ort_error)?
                    .into_dyn(),
                ),
            ];
            for (i, value) in past.drain(..).enumerate() {
                let kind = if i % 2 == 0 { "key" } else { "value" };
                inputs.push((format!("past_key_values.{}.{kind}", i / 2), value));
            }
            let mut outputs = session.run(inputs).map_err(ort_error)?;
            let (_, logits) = outputs["logits"].try_extract_tensor::<f32>().map_err(ort_error)?;
            let token = match &sampling.constraint {
                None => Some(sampler.next(&logits[..c.vocab], &history)),
                Some(constraint) => {
                    let pieces = self.pieces();
                    let mut allowed = |t: u32| {
                        if self.stop_ids.contains(&t) {
                            return constraint.check(&text) == Prefix::Complete;
                        }
                        let piece = pieces.get(t as usize).map_or("", String::as_str);
                        !piece.is_empty()
                            && constraint.check(&format!("{text}{piece}")) != Prefix::Dead
                    };
                    sampler.next_allowed(&logits[..c.vocab], &history, &mut allowed)
                }
            };
            for i in 0..2 * c.layers {
                let kind = if i % 2 == 0 { "key" } else { "value" };
                let name = format!("present.{}.{kind}", i / 2);
                past.push(
                    outputs
                        .remove(name.as_str())
                        .ok_or_else(|| model_error(format!("the model gave no `{name}`")))?,
                );
            }
            fed = total;
            let Some(token) = token else {
                break Finish::Stop;
            };
            if self.stop_ids.contains(&token) {
                break Finish::Stop;
            }
            generated.push(token);
            history.push(token);
            feed = vec![i64::from(token)];
            text = self
                .tokenizer
                .decode(&generated, true)
                .map_err(|e| model_error(format!("cannot decode tokens: {e}")))?;
            if sampling.constraint.as_ref().is_some_and(|c| c.check(&text) == Prefix::Complete) {
                if text.len() > emitted && text.is_char_boundary(emitted) {
                    on_text(&text[emitted..]);
                }
                break Finish::Stop;
            }
            if let Some(at) = stop_at(&text, &sampling.stop) {
                text.truncate(at);
                if text.len() > emitted {
                    on_text(&text[emitted..]);
                }
                break Finish::Stop;
            }
            // Hold back a piece that ends inside a multi-byte character.
            if !text.ends_with('\u{FFFD}') && text.len() > emitted && text.is_char_boundary(emitted)
            {
                on_text(&text[emitted..]);
                emitted = text.len();
            }
            if generated.len() >= sampling.max_tokens {
                break Finish::Length;
            }
        };
        if finish == Finish::Stop && text.len() > emitted && text.is_char_boundary(emitted) {
            on_text(&text[emitted..]);
        }
        history.truncate(fed);
        *cache = Some(PromptCache { tokens: history, past });
        Ok(Completion {
            text,
            prompt_tokens: Some(prompt.len()),
            cached_tokens: Some(reused),
            completion_tokens: Some(generated.len()),
            finish,
        })
    }
}
impl Mind for OnnxMind {
    fn describe(&self) -> String {
        format!("onnx {} on {}", self.name, self.provider)
    }

    fn complete(
        &self,
        messages: &[Message],
        sampling: &Sampling,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Completion, MindError> {
        let prompt = self.template.render(messages, true).map_err(model_error)?;
        let encoding = self
            .tokenizer
            .encode(prompt, false)
            .map_err(|e| model_error(format!("cannot tokenize the prompt: {e}")))?;
        self.generate(encoding.get_ids(), sampling, on_text)
    }
}
