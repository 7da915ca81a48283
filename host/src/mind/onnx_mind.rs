//! [`OnnxMind`]: a GGUF model imported to ONNX and run in-process by ONNX Runtime, with
//! prefill, incremental decoding over the KV cache, sampling and stop strings.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ort::session::Session;
use ort::value::{DynValue, Tensor};

use super::chat::{Completion, Finish, Message, Mind, MindError, Sampling};
use super::gguf::{Gguf, MetaValue};
use super::model::Config;
use super::sample::{stop_at, Sampler};
use super::template::ChatTemplate;
use super::{export, model, runtime, tokenizer};

/// Bumped whenever the exported graph changes, so stale exports are rebuilt.
const EXPORT_VERSION: u32 = 2;

/// Weights stay in their GGUF blocks (MatMulNBits) where that is exact, with int8
/// activations: a quarter of the memory traffic of f32, which decoding is bound by.
const WEIGHTING: export::Weighting = export::Weighting::NBits { accuracy_level: 4 };

/// A local model in ONNX Runtime.
pub struct OnnxMind {
    name: String,
    config: Config,
    session: Mutex<Session>,
    tokenizer: tokenizers::Tokenizer,
    template: ChatTemplate,
    stop_ids: Vec<u32>,
}

fn model_error(detail: impl Into<String>) -> MindError {
    MindError::Model(detail.into())
}

impl OnnxMind {
    /// Opens a GGUF model, importing it to ONNX under `cache` the first time.
    pub fn open(gguf_path: &Path, cache: &Path) -> Result<OnnxMind, MindError> {
        let g = Gguf::read(gguf_path).map_err(|e| model_error(e.to_string()))?;
        let config = model::config(&g).map_err(model_error)?;
        let tokenizer = tokenizer::tokenizer(&g).map_err(model_error)?;
        let template = ChatTemplate::from_gguf(&g).map_err(model_error)?;
        let stem = gguf_path.file_stem().and_then(|s| s.to_str()).unwrap_or("model");
        let dir = OnnxMind::export_dir(gguf_path, cache);
        let onnx = dir.join("model.onnx");
        if !onnx.is_file() {
            let weights = model::load(&g).map_err(model_error)?;
            export::write_with_external_data(export::export_with(&weights, WEIGHTING), &dir)
                .map_err(|e| model_error(format!("cannot write the ONNX export to {}: {e}", dir.display())))?;
        }
        let env = runtime::environment().map_err(model_error)?;
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let load_error = |e: String| model_error(format!("ONNX Runtime cannot load {}: {e}", onnx.display()));
        let mut builder = Session::builder(env)
            .map_err(|e| load_error(e.to_string()))?
            .with_intra_threads(threads)
            .map_err(|e| load_error(e.to_string()))?;
        let session = builder.commit_from_file(&onnx).map_err(|e| load_error(e.to_string()))?;
        let mut stop_ids = Vec::new();
        if let Some(id) = g.get("tokenizer.ggml.eos_token_id").and_then(MetaValue::as_u64) {
            stop_ids.push(id as u32);
        }
        for special in ["<|im_end|>", "<|endoftext|>", "<|eot_id|>"] {
            if let Some(id) = tokenizer.token_to_id(special) {
                stop_ids.push(id);
            }
        }
        Ok(OnnxMind { name: stem.to_owned(), config, session: Mutex::new(session), tokenizer, template, stop_ids })
    }

    /// Generates after `prompt` (token ids), streaming text to `on_text`.
    pub fn generate(&self, prompt: &[u32], sampling: &Sampling, on_text: &mut dyn FnMut(&str)) -> Result<Completion, MindError> {
        let c = &self.config;
        let d = c.head_dim();
        let mut session = self.session.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut sampler = Sampler::new(sampling);
        let mut past: Vec<(Vec<f32>, usize)> = vec![(Vec::new(), 0); 2 * c.layers];
        let mut history: Vec<u32> = prompt.to_vec();
        let mut feed: Vec<i64> = prompt.iter().map(|&t| i64::from(t)).collect();
        let mut generated: Vec<u32> = Vec::new();
        let mut emitted = 0usize;
        let mut text = String::new();
        let ort_error = |e: ort::Error| model_error(format!("ONNX Runtime failed: {e}"));
        let finish = loop {
            let start = history.len() - feed.len();
            let seq = feed.len();
            let total = history.len();
            let mut inputs: Vec<(String, DynValue)> = vec![
                ("input_ids".into(), Tensor::from_array(([1usize, seq], feed.clone())).map_err(ort_error)?.into_dyn()),
                ("attention_mask".into(), Tensor::from_array(([1usize, total], vec![1i64; total])).map_err(ort_error)?.into_dyn()),
                ("position_ids".into(), Tensor::from_array(([1usize, seq], (start as i64..total as i64).collect::<Vec<_>>())).map_err(ort_error)?.into_dyn()),
            ];
            for (i, (data, len)) in past.iter().enumerate() {
                let kind = if i % 2 == 0 { "key" } else { "value" };
                let t = Tensor::from_array(([1usize, c.kv_heads, *len, d], data.clone())).map_err(ort_error)?;
                inputs.push((format!("past_key_values.{}.{kind}", i / 2), t.into_dyn()));
            }
            let outputs = session.run(inputs).map_err(ort_error)?;
            let (_, logits) = outputs["logits"].try_extract_tensor::<f32>().map_err(ort_error)?;
            let last = &logits[(seq - 1) * c.vocab..seq * c.vocab];
            let token = sampler.next(last, &history);
            for (i, slot) in past.iter_mut().enumerate() {
                let kind = if i % 2 == 0 { "key" } else { "value" };
                let (shape, data) = outputs[format!("present.{}.{kind}", i / 2).as_str()].try_extract_tensor::<f32>().map_err(ort_error)?;
                *slot = (data.to_vec(), shape[2] as usize);
            }
            if self.stop_ids.contains(&token) {
                break Finish::Stop;
            }
            generated.push(token);
            history.push(token);
            feed = vec![i64::from(token)];
            text = self.tokenizer.decode(&generated, true).map_err(|e| model_error(format!("cannot decode tokens: {e}")))?;
            if let Some(at) = stop_at(&text, &sampling.stop) {
                text.truncate(at);
                if text.len() > emitted {
                    on_text(&text[emitted..]);
                }
                break Finish::Stop;
            }
            // Hold back a piece that ends inside a multi-byte character.
            if !text.ends_with('\u{FFFD}') && text.len() > emitted && text.is_char_boundary(emitted) {
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
        Ok(Completion { text, prompt_tokens: Some(prompt.len()), completion_tokens: Some(generated.len()), finish })
    }

    /// The exported model's folder for a GGUF under `cache`.
    pub fn export_dir(gguf_path: &Path, cache: &Path) -> PathBuf {
        let stem = gguf_path.file_stem().and_then(|s| s.to_str()).unwrap_or("model");
        cache.join(format!("{stem}.onnx-v{EXPORT_VERSION}"))
    }
}

impl Mind for OnnxMind {
    fn describe(&self) -> String {
        format!("onnx {}", self.name)
    }

    fn complete(&self, messages: &[Message], sampling: &Sampling, on_text: &mut dyn FnMut(&str)) -> Result<Completion, MindError> {
        let prompt = self.template.render(messages, true).map_err(model_error)?;
        let encoding = self.tokenizer.encode(prompt, false).map_err(|e| model_error(format!("cannot tokenize the prompt: {e}")))?;
        self.generate(encoding.get_ids(), sampling, on_text)
    }
}
