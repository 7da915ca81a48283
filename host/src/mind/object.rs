//! The mind as an object: `pLLM`'s slots name the backend and the model, and its
//! `infer` method (the native primitive `pLLM.infer`) asks that mind. Minds are loaded
//! on first use and kept for the life of the process, not at start-up.
//!
//! The weights belong to the image (the seeds' blob-proxy): `pLLM`'s `weights` slot maps
//! a model name to the blob of its GGUF. On the first use of a model the image does not
//! hold yet, the file from the models folder is adopted into the blob store (hard-linked
//! when it can be, so no second copy) and recorded there, in the same transaction as
//! the send. From then on the image thinks with its own weights, whatever happens to the
//! models folder; the ONNX export is a cache rebuilt from the blob when missing.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

use super::chat::{Message, Mind, Sampling};
use super::onnx_mind::{export_dir, Device};
use super::{pull, OnnxMind, OpenAiMind};
use crate::error::{Error, Result};
use crate::image::{Oid, Value};
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

fn cached(key: String, make: impl FnOnce() -> Result<Arc<dyn Mind>>) -> Result<Arc<dyn Mind>> {
    let mut cache = minds().lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(mind) = cache.get(&key) {
        return Ok(mind.clone());
    }
    let mind = make()?;
    cache.insert(key, mind.clone());
    Ok(mind)
}

/// The local mind for `model`, from the weights blob `pllm` holds (adopting it first).
fn onnx_mind(cx: &mut Context<'_, '_>, pllm: Oid, model: &str) -> Result<Arc<dyn Mind>> {
    let device: Device = text_slot(cx, pllm, "device")?.as_deref().unwrap_or("auto").parse().map_err(Error::Failed)?;
    let mut weights = match cx.lookup(pllm, "weights")? {
        Some((_, Value::Map(map))) => map,
        _ => BTreeMap::new(),
    };
    let blob = match weights.get(model) {
        Some(Value::Blob(blob)) if cx.runtime().image().blobs().contains(&blob.hash) => blob.clone(),
        _ => {
            let gguf = pull::models_dir().join(format!("{model}.gguf"));
            if !gguf.is_file() {
                return Err(Error::Failed(match pull::entry(model) {
                    Ok(_) => format!("the model `{model}` is not pulled yet; run `batos model pull {model}`"),
                    Err(_) => format!("no model named `{model}`; `batos model list` shows them, `batos model import FILE.gguf` adds one"),
                }));
            }
            let blob = cx.tx().adopt_blob_file(&gguf)?;
            weights.insert(model.to_owned(), Value::Blob(blob.clone()));
            // Beside the `model` slot that chose it (pLLM itself for its descendants).
            let holder = cx.lookup(pllm, "model")?.map_or(pllm, |(holder, _)| holder);
            cx.tx().set_slot(holder, "weights", &Value::Map(weights))?;
            blob
        }
    };
    let key = blob.hash.to_hex();
    let path = cx.runtime().image().blobs().path(&blob.hash);
    cached(format!("onnx|{key}|{device:?}"), || {
        let dir = export_dir(&pull::models_dir(), &key);
        let mind = OnnxMind::open(&path, &dir, model, device).map_err(|e| Error::Failed(e.to_string()))?;
        Ok(Arc::new(mind))
    })
}

fn openai_mind(model: &str, base_url: Option<&str>) -> Result<Arc<dyn Mind>> {
    let url = base_url.ok_or_else(|| Error::Failed("the openai backend needs a `baseUrl` slot on pLLM".into()))?;
    cached(format!("openai|{model}|{url}"), || {
        let mut mind = OpenAiMind::new(url, model);
        mind.api_key = std::env::var("BATOS_OPENAI_API_KEY").ok();
        Ok(Arc::new(mind))
    })
}

/// The mind `pLLM`'s slots name (loading it on first use), for callers that think
/// outside a send — the synthesis cycle asks it with no image transaction open.
pub fn mind_of(rt: &crate::runtime::Runtime) -> Result<Arc<dyn Mind>> {
    let pllm = rt.resolve(crate::runtime::PRIMORDIAL_PLLM)?;
    Ok(rt.transact("pLLM chooses its mind", |cx| chosen_mind(cx, pllm))?.value)
}

fn chosen_mind(cx: &mut Context<'_, '_>, pllm: Oid) -> Result<Arc<dyn Mind>> {
    let backend = text_slot(cx, pllm, "backend")?.unwrap_or_else(|| "onnx".into());
    let model = text_slot(cx, pllm, "model")?.unwrap_or_else(|| pull::CATALOGUE[0].name.into());
    let base_url = text_slot(cx, pllm, "baseUrl")?;
    match backend.as_str() {
        "onnx" => onnx_mind(cx, pllm, &model),
        "openai" => openai_mind(&model, base_url.as_deref()),
        other => Err(Error::Failed(format!("pLLM's backend `{other}` is unknown; use \"onnx\" or \"openai\""))),
    }
}

/// `infer: prompt` — one user message to the mind `pLLM`'s slots describe; answers
/// the completion's text.
fn infer(cx: &mut Context<'_, '_>, call: &Call<'_>) -> Result<Value> {
    call.expect_arity(1)?;
    let prompt = call.text(0)?.to_owned();
    let max_tokens = match cx.lookup(call.receiver, "maxTokens")? {
        Some((_, Value::Int(n))) if n > 0 => usize::try_from(n).unwrap_or(usize::MAX),
        _ => Sampling::default().max_tokens,
    };
    let mind = chosen_mind(cx, call.receiver)?;
    let sampling = Sampling { max_tokens, ..Sampling::default() };
    let completion = mind.complete(&[Message::user(prompt)], &sampling, &mut |_| {}).map_err(|e| Error::Failed(e.to_string()))?;
    Ok(Value::Text(completion.text))
}
