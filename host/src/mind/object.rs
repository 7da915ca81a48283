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
use crate::runtime::{Call, Context, Effect, RuntimeBuilder};

/// The primitive name `pLLM`'s `infer` slot holds.
pub const INFER: &str = "pLLM.infer";

/// Registers the mind's primitives with a runtime being built.
pub fn attach(builder: RuntimeBuilder) -> RuntimeBuilder {
    builder.primitive(INFER, infer)
}

fn text_slot(cx: &Context<'_, '_>, receiver: crate::image::Oid, name: &str) -> Result<Option<String>> {
    match cx.lookup(receiver, name)? {
        Some((_, Value::Text(s))) => Ok(Some(s)),
        Some((holder, other)) => {
            Err(Error::BadInput(format!("slot `{name}` on {holder} holds {}, not text", other.type_name())))
        }
        None => Ok(None),
    }
}

fn minds() -> &'static Mutex<HashMap<String, Arc<dyn Mind>>> {
    static MINDS: OnceLock<Mutex<HashMap<String, Arc<dyn Mind>>>> = OnceLock::new();
    MINDS.get_or_init(|| Mutex::new(HashMap::new()))
}

fn loaded(key: &str) -> Option<Arc<dyn Mind>> {
    minds().lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(key).cloned()
}

/// The mind cached under `key`, or — the first time — a stop of the send while
/// `make` loads it outside the transaction (loading a local model takes seconds and
/// must not hold the transaction or the blob gate).
fn cached(cx: &Context<'_, '_>, key: String, make: impl FnOnce() -> Result<Arc<dyn Mind>> + Send + 'static) -> Result<(String, Arc<dyn Mind>)> {
    if let Some(mind) = loaded(&key) {
        return Ok((key, mind));
    }
    let slot = key.clone();
    cx.outside(format!("load mind {key}"), move || {
        let mind = make()?;
        minds().lock().unwrap_or_else(std::sync::PoisonError::into_inner).entry(slot).or_insert(mind);
        Ok(Value::Nil)
    })?;
    let mind = loaded(&key).ok_or_else(|| Error::MindUnavailable(format!("the mind `{key}` was loaded but is gone")))?;
    Ok((key, mind))
}

/// The local mind for `model`, from the weights blob `pllm` holds (adopting it first).
fn onnx_mind(cx: &mut Context<'_, '_>, pllm: Oid, model: &str) -> Result<(String, Arc<dyn Mind>)> {
    let device: Device = text_slot(cx, pllm, "device")?.as_deref().unwrap_or("auto").parse().map_err(Error::BadInput)?;
    let mut weights = match cx.lookup(pllm, "weights")? {
        Some((_, Value::Map(map))) => map,
        _ => BTreeMap::new(),
    };
    let blob = match weights.get(model) {
        Some(Value::Blob(blob)) if cx.runtime().image().blobs().contains(&blob.hash) => blob.clone(),
        _ => {
            let gguf = pull::models_dir().join(format!("{model}.gguf"));
            if !gguf.is_file() {
                let hint = match pull::entry(model) {
                    Ok(_) => format!("it is not pulled yet; run `batos model pull {model}`"),
                    Err(_) => "`batos model list` shows the models, `batos model import FILE.gguf` adds one".to_owned(),
                };
                return Err(Error::not_found("model", model, hint));
            }
            // Hashing and linking a model file takes seconds: outside the transaction.
            let blobs = cx.runtime().image().blob_store();
            let source = gguf.clone();
            let adopted = cx.outside(format!("adopt {}", gguf.display()), move || Ok(Value::Blob(blobs.adopt_file(&source)?)))?;
            let Value::Blob(blob) = adopted else {
                return Err(Error::Corrupt(format!("adopting {} answered no blob", gguf.display())));
            };
            // Beside the `model` slot that chose it (pLLM itself for its descendants).
            // The record is the image's own bookkeeping; it is kept when the sender may
            // write there (a person), and otherwise left for the next person's send.
            let holder = cx.lookup(pllm, "model")?.map_or(pllm, |(holder, _)| holder);
            if cx.permit(Effect::Write(holder)).is_ok() {
                weights.insert(model.to_owned(), Value::Blob(blob.clone()));
                cx.set_slot(holder, "weights", &Value::Map(weights))?;
            }
            blob
        }
    };
    let key = blob.hash.to_hex();
    let path = cx.runtime().image().blobs().path(&blob.hash);
    let model = model.to_owned();
    cached(cx, format!("onnx|{key}|{device:?}"), move || {
        let dir = export_dir(&pull::models_dir(), &key);
        let mind = OnnxMind::open(&path, &dir, &model, device).map_err(|e| Error::MindUnavailable(e.to_string()))?;
        Ok(Arc::new(mind))
    })
}

fn openai_mind(cx: &Context<'_, '_>, model: &str, base_url: Option<&str>) -> Result<(String, Arc<dyn Mind>)> {
    let url = base_url
        .ok_or_else(|| Error::BadInput("the openai backend needs a `baseUrl` slot on pLLM".into()))?
        .to_owned();
    let model = model.to_owned();
    cached(cx, format!("openai|{model}|{url}"), move || {
        let mut mind = OpenAiMind::new(&url, &model);
        mind.api_key = std::env::var("BATOS_OPENAI_API_KEY").ok();
        Ok(Arc::new(mind))
    })
}

/// The mind `pLLM`'s slots name (loading it on first use, outside any transaction),
/// for callers that think outside a send — the synthesis cycle asks it with no image
/// transaction open.
pub fn mind_of(rt: &crate::runtime::Runtime) -> Result<Arc<dyn Mind>> {
    let pllm = rt.resolve(crate::runtime::PRIMORDIAL_PLLM)?;
    Ok(rt.transact("pLLM chooses its mind", |cx| chosen_mind(cx, pllm))?.value.1)
}

fn chosen_mind(cx: &mut Context<'_, '_>, pllm: Oid) -> Result<(String, Arc<dyn Mind>)> {
    let backend = text_slot(cx, pllm, "backend")?.unwrap_or_else(|| "onnx".into());
    let model = text_slot(cx, pllm, "model")?.unwrap_or_else(|| pull::CATALOGUE[0].name.into());
    let base_url = text_slot(cx, pllm, "baseUrl")?;
    match backend.as_str() {
        "onnx" => onnx_mind(cx, pllm, &model),
        "openai" => openai_mind(cx, &model, base_url.as_deref()),
        other => Err(Error::BadInput(format!("pLLM's backend `{other}` is unknown; use \"onnx\" or \"openai\""))),
    }
}

/// `infer: prompt` — one user message to the mind `pLLM`'s slots describe; answers
/// the completion's text.
///
/// Thinking is an effect: the gate must allow it for the sender's authority (a person,
/// or a capability granted `mind`). The mind is asked outside the transaction, once
/// per top-level send: a retried transaction finds the answer it already got, so a
/// conflict never asks a (perhaps paid) server twice. The same prompt asked twice in
/// one send gets the same answer.
fn infer(cx: &mut Context<'_, '_>, call: &Call<'_>) -> Result<Value> {
    call.expect_arity(1)?;
    cx.permit(Effect::Think)?;
    let prompt = call.text(0)?.to_owned();
    let max_tokens = match cx.lookup(call.receiver, "maxTokens")? {
        Some((_, Value::Int(n))) if n > 0 => usize::try_from(n).unwrap_or(usize::MAX),
        _ => Sampling::default().max_tokens,
    };
    let (mind_key, mind) = chosen_mind(cx, call.receiver)?;
    let key = format!("infer|{mind_key}|{max_tokens}|{}", blake3::hash(prompt.as_bytes()).to_hex());
    cx.outside(key, move || {
        let sampling = Sampling { max_tokens, ..Sampling::default() };
        let completion = mind
            .complete(&[Message::user(prompt)], &sampling, &mut |_| {})
            .map_err(|e| Error::MindUnavailable(e.to_string()))?;
        Ok(Value::Text(completion.text))
    })
}
