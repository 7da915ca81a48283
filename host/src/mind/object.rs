//! The mind as an object: `pLLM`'s slots name the backend and the model, and its
//! `infer` method (the native primitive `pLLM.infer`) asks that mind. Minds are loaded
//! on first use and kept for the life of the process, not at start-up.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use super::chat::{Message, Mind, Sampling};
use super::{pull, OnnxMind, OpenAiMind};
use crate::error::{Error, Result};
use crate::image::Value;
use crate::runtime::{Call, Context, RuntimeBuilder};

/// The primitive name `pLLM`'s `infer` slot holds.
pub const INFER: &str = "pLLM.infer";

/// Registers the mind's primitives with a runtime being built.
pub fn attach(builder: RuntimeBuilder) -> RuntimeBuilder {
    builder.primitive(INFER, infer)
}

fn text_slot(cx: &mut Context<'_, '_>, receiver: crate::image::Oid, name: &str) -> Result<Option<String>> {
    match cx.lookup(receiver, name)? {
        Some((_, Value::Text(s))) => Ok(Some(s)),
        Some((holder, other)) => Err(Error::Failed(format!("slot `{name}` on {holder} holds {}, not text", other.type_name()))),
        None => Ok(None),
    }
}

fn minds() -> &'static Mutex<HashMap<String, Arc<dyn Mind>>> {
    static MINDS: OnceLock<Mutex<HashMap<String, Arc<dyn Mind>>>> = OnceLock::new();
    MINDS.get_or_init(|| Mutex::new(HashMap::new()))
}

fn mind_for(backend: &str, model: &str, base_url: Option<&str>) -> Result<Arc<dyn Mind>> {
    let key = format!("{backend}|{model}|{}", base_url.unwrap_or_default());
    let mut cache = minds().lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(mind) = cache.get(&key) {
        return Ok(mind.clone());
    }
    let mind: Arc<dyn Mind> = match backend {
        "onnx" => {
            let entry = pull::entry(model).map_err(|e| Error::Failed(e.to_string()))?;
            let path = pull::models_dir().join(format!("{}.gguf", entry.name));
            if !path.is_file() {
                return Err(Error::Failed(format!("the model `{model}` is not pulled yet; run `batos model pull {model}`")));
            }
            Arc::new(OnnxMind::open(&path, &pull::models_dir()).map_err(|e| Error::Failed(e.to_string()))?)
        }
        "openai" => {
            let url = base_url.ok_or_else(|| Error::Failed("the openai backend needs a `baseUrl` slot on pLLM".into()))?;
            let mut mind = OpenAiMind::new(url, model);
            mind.api_key = std::env::var("BATOS_OPENAI_API_KEY").ok();
            Arc::new(mind)
        }
        other => return Err(Error::Failed(format!("pLLM's backend `{other}` is unknown; use \"onnx\" or \"openai\""))),
    };
    cache.insert(key, mind.clone());
    Ok(mind)
}

/// `infer: prompt` — one user message to the mind `pLLM`'s slots describe; answers
/// the completion's text.
fn infer(cx: &mut Context<'_, '_>, call: &Call<'_>) -> Result<Value> {
    call.expect_arity(1)?;
    let prompt = call.text(0)?.to_owned();
    let backend = text_slot(cx, call.receiver, "backend")?.unwrap_or_else(|| "onnx".into());
    let model = text_slot(cx, call.receiver, "model")?.unwrap_or_else(|| pull::CATALOGUE[0].name.into());
    let base_url = text_slot(cx, call.receiver, "baseUrl")?;
    let max_tokens = match cx.lookup(call.receiver, "maxTokens")? {
        Some((_, Value::Int(n))) if n > 0 => usize::try_from(n).unwrap_or(usize::MAX),
        _ => Sampling::default().max_tokens,
    };
    let mind = mind_for(&backend, &model, base_url.as_deref())?;
    let sampling = Sampling { max_tokens, ..Sampling::default() };
    let completion = mind.complete(&[Message::user(prompt)], &sampling, &mut |_| {}).map_err(|e| Error::Failed(e.to_string()))?;
    Ok(Value::Text(completion.text))
}
