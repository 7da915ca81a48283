//! The mind as an object: `pLLM`'s slots name the backend and the model, and its
//! `infer` method (the native primitive `pLLM.infer`) asks that mind. Minds are loaded
//! on first use, outside any transaction, and kept for the life of the [`Minds`].
//!
//! Which backends exist is not this crate's to know: [`Minds`] holds a table of
//! [`Backend`]s by name (`openai` is built in; `batos-model` adds `onnx`), and the slots
//! `pLLM` is awakened with. The runtime's awakening creates `pLLM`; what the mind puts
//! on it comes from here, through the runtime's awakening hook.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use crate::chat::{Message, Mind, Sampling};
use crate::error::{Error, Result};
use crate::image::{Method, Oid, Value};
use crate::openai::OpenAiMind;
use crate::runtime::{Call, Context, Effect, RuntimeBuilder, PRIMORDIAL_PLLM};

/// The primitive name `pLLM`'s `infer` slot holds.
pub const INFER: &str = "pLLM.infer";

/// A kind of mind `pLLM`'s `backend` slot can name.
pub trait Backend: Send + Sync {
    /// The mind for `model` as `pllm`'s slots describe it, loading it (through
    /// [`Minds::cached`]) on first use. Runs inside the send, with its authority.
    fn mind(
        &self,
        minds: &Minds,
        cx: &mut Context<'_, '_>,
        pllm: Oid,
        model: &str,
    ) -> Result<(String, Arc<dyn Mind>)>;

    /// The model a second mind for synthesis candidates would run when `pllm` does not
    /// name one (its `companionModel` slot absent): for a local backend, another model
    /// already on this machine. `None` (the default) when there is none to offer.
    fn companion(
        &self,
        cx: &mut Context<'_, '_>,
        pllm: Oid,
        model: &str,
    ) -> Result<Option<String>> {
        let _ = (cx, pllm, model);
        Ok(None)
    }
}

/// The slot of `pLLM` that names the companion model (see [`Minds::companion_of`]);
/// `"none"` turns the companion off.
pub const COMPANION_SLOT: &str = "companionModel";

/// The minds of one process: the backends by name, the slots `pLLM` is awakened with,
/// and every mind loaded so far. Cheap to clone (shared).
#[derive(Clone)]
pub struct Minds(Arc<Shared>);

struct Shared {
    backends: BTreeMap<String, Arc<dyn Backend>>,
    awakening: Vec<(String, Value)>,
    loaded: Arc<Mutex<HashMap<String, Arc<dyn Mind>>>>,
}

impl Default for Minds {
    fn default() -> Self {
        Minds::new()
    }
}

impl Minds {
    /// The built-in backend `openai`, and `pLLM` awakened with `backend: "openai"` until
    /// another backend says otherwise.
    pub fn new() -> Minds {
        let mut backends: BTreeMap<String, Arc<dyn Backend>> = BTreeMap::new();
        backends.insert("openai".into(), Arc::new(OpenAiBackend));
        Minds(Arc::new(Shared { backends, awakening: Vec::new(), loaded: Arc::default() }))
    }

    fn edit(self, change: impl FnOnce(&mut Shared)) -> Minds {
        let mut shared = match Arc::try_unwrap(self.0) {
            Ok(shared) => shared,
            Err(arc) => Shared {
                backends: arc.backends.clone(),
                awakening: arc.awakening.clone(),
                loaded: arc.loaded.clone(),
            },
        };
        change(&mut shared);
        Minds(Arc::new(shared))
    }

    /// Adds (or replaces) the backend `pLLM`'s `backend` slot calls `name`.
    pub fn backend(self, name: &str, backend: impl Backend + 'static) -> Minds {
        let name = name.to_owned();
        self.edit(|s| {
            s.backends.insert(name, Arc::new(backend));
        })
    }

    /// A slot `pLLM` gets when an image is awakened (a later call for the same slot
    /// wins): the backend, the model, a device.
    pub fn awaken_with(self, slot: &str, value: Value) -> Minds {
        let slot = slot.to_owned();
        self.edit(|s| {
            s.awakening.retain(|(name, _)| *name != slot);
            s.awakening.push((slot, value));
        })
    }

    /// Registers `infer` with a runtime being built, and the slots `pLLM` is awakened
    /// with.
    pub fn attach(&self, builder: RuntimeBuilder) -> RuntimeBuilder {
        let minds = self.clone();
        let awakening = self.0.awakening.clone();
        builder.primitive(INFER, move |cx, call| infer(&minds, cx, call)).awakening(
            move |tx, primordials| {
                let pllm = primordials.pllm;
                for (slot, value) in &awakening {
                    tx.set_slot(pllm, slot, value)?;
                }
                tx.set_slot(
                    pllm,
                    "infer",
                    &Value::Method(Method::Native { primitive: INFER.into() }),
                )
            },
        )
    }

    /// The mind cached under `key`, or — the first time — a stop of the send while
    /// `make` loads it outside the transaction (loading a local model takes seconds and
    /// must not hold the transaction or the blob gate).
    pub fn cached(
        &self,
        cx: &Context<'_, '_>,
        key: String,
        make: impl FnOnce() -> Result<Arc<dyn Mind>> + Send + 'static,
    ) -> Result<(String, Arc<dyn Mind>)> {
        if let Some(mind) = self.loaded(&key) {
            return Ok((key, mind));
        }
        let slot = key.clone();
        let loaded = self.0.loaded.clone();
        cx.outside(format!("load mind {key}"), move || {
            let mind = make()?;
            loaded.lock().unwrap_or_else(PoisonError::into_inner).entry(slot).or_insert(mind);
            Ok(Value::Nil)
        })?;
        let mind = self.loaded(&key).ok_or_else(|| {
            Error::MindUnavailable(format!("the mind `{key}` was loaded but is gone"))
        })?;
        Ok((key, mind))
    }

    fn awakened(&self, slot: &str) -> Option<String> {
        self.0.awakening.iter().find(|(name, _)| name == slot).and_then(|(_, v)| match v {
            Value::Text(t) => Some(t.clone()),
            _ => None,
        })
    }

    fn loaded(&self, key: &str) -> Option<Arc<dyn Mind>> {
        self.0.loaded.lock().unwrap_or_else(PoisonError::into_inner).get(key).cloned()
    }

    /// The mind `pLLM`'s slots name (loading it on first use, outside any transaction),
    /// for callers that think outside a send — the synthesis cycle asks it with no image
    /// transaction open.
    pub fn mind_of(&self, rt: &crate::runtime::Runtime) -> Result<Arc<dyn Mind>> {
        let pllm = rt.resolve(PRIMORDIAL_PLLM)?;
        self.mind_for(rt, pllm)
    }

    /// The companion mind of synthesis: a second model whose candidates alternate with
    /// the first's, so a round does not hold one model's single idea (small models
    /// repeat themselves; a different model fails differently). `pLLM`'s
    /// `companionModel` slot names it; `"none"` (or an empty text) turns it off; absent,
    /// the backend offers one ([`Backend::companion`]: for `onnx`, a better catalogued
    /// model when one is pulled). The companion runs on the same backend, device and
    /// server as the mind itself. Answers `None` when there is no companion, and the
    /// model's name beside its mind otherwise.
    pub fn companion_of(
        &self,
        rt: &crate::runtime::Runtime,
    ) -> Result<Option<(String, Arc<dyn Mind>)>> {
        let pllm = rt.resolve(PRIMORDIAL_PLLM)?;
        Ok(rt.transact("a thinker chooses its companion", |cx| self.companion(cx, pllm))?.value)
    }

    fn companion(
        &self,
        cx: &mut Context<'_, '_>,
        pllm: Oid,
    ) -> Result<Option<(String, Arc<dyn Mind>)>> {
        let (backend_name, backend) = self.backend_of(cx, pllm)?;
        let model = self.model_of(cx, pllm)?;
        let named = match text_slot(cx, pllm, COMPANION_SLOT)? {
            Some(name) if name.is_empty() || name == "none" => return Ok(None),
            Some(name) => name,
            None => match backend.companion(cx, pllm, &model)? {
                Some(name) => name,
                None => return Ok(None),
            },
        };
        if named == model {
            return Ok(None);
        }
        let (_, mind) = backend.mind(self, cx, pllm, &named).map_err(|e| {
            Error::BadInput(format!(
                "pLLM's companion model `{named}` (backend `{backend_name}`) cannot think: {e}; \
                 set `{COMPANION_SLOT}` to another model, or to \"none\""
            ))
        })?;
        Ok(Some((named, mind)))
    }

    /// The model `pllm` names (or was awakened with).
    fn model_of(&self, cx: &Context<'_, '_>, pllm: Oid) -> Result<String> {
        Ok(text_slot(cx, pllm, "model")?.or_else(|| self.awakened("model")).unwrap_or_default())
    }

    fn backend_of(&self, cx: &Context<'_, '_>, pllm: Oid) -> Result<(String, Arc<dyn Backend>)> {
        // A slot removed from pLLM falls back to what it was awakened with.
        let backend = text_slot(cx, pllm, "backend")?
            .or_else(|| self.awakened("backend"))
            .ok_or_else(|| {
                Error::BadInput(
                    "pLLM has no `backend` slot; set it to one of the backends this batos has"
                        .into(),
                )
            })?;
        match self.0.backends.get(&backend) {
            Some(b) => Ok((backend, b.clone())),
            None => {
                let known: Vec<&str> = self.0.backends.keys().map(String::as_str).collect();
                Err(Error::BadInput(format!(
                    "pLLM's backend `{backend}` is unknown; use one of {}",
                    known.join(", ")
                )))
            }
        }
    }

    /// The mind the object `thinker` names by its `backend` and `model` slots, found by
    /// lookup — so a clone of `pLLM` (a persona) that sets neither thinks with `pLLM`'s
    /// mind, and one that sets `model` has its own. Loaded on first use, outside any
    /// transaction.
    pub fn mind_for(&self, rt: &crate::runtime::Runtime, thinker: Oid) -> Result<Arc<dyn Mind>> {
        Ok(rt.transact("a thinker chooses its mind", |cx| self.chosen(cx, thinker))?.value.1)
    }

    fn chosen(&self, cx: &mut Context<'_, '_>, pllm: Oid) -> Result<(String, Arc<dyn Mind>)> {
        let (_, backend) = self.backend_of(cx, pllm)?;
        let model = self.model_of(cx, pllm)?;
        backend.mind(self, cx, pllm, &model)
    }
}

/// A text slot found by lookup from `receiver`: `None` when absent, an error when it
/// holds something else.
pub fn text_slot(cx: &Context<'_, '_>, receiver: Oid, name: &str) -> Result<Option<String>> {
    match cx.lookup(receiver, name)? {
        Some((_, Value::Text(s))) => Ok(Some(s)),
        Some((holder, other)) => Err(Error::BadInput(format!(
            "slot `{name}` on {holder} holds {}, not text",
            other.type_name()
        ))),
        None => Ok(None),
    }
}

/// `openai`: any OpenAI-compatible server at `pLLM`'s `baseUrl`, with the key in
/// `BATOS_OPENAI_API_KEY`.
struct OpenAiBackend;

impl Backend for OpenAiBackend {
    fn mind(
        &self,
        minds: &Minds,
        cx: &mut Context<'_, '_>,
        pllm: Oid,
        model: &str,
    ) -> Result<(String, Arc<dyn Mind>)> {
        let url = text_slot(cx, pllm, "baseUrl")?.ok_or_else(|| {
            Error::BadInput("the openai backend needs a `baseUrl` slot on pLLM".into())
        })?;
        let model = model.to_owned();
        minds.cached(cx, format!("openai|{model}|{url}"), move || {
            let mut mind = OpenAiMind::new(&url, &model);
            mind.api_key = std::env::var("BATOS_OPENAI_API_KEY").ok();
            Ok(Arc::new(mind))
        })
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
fn infer(minds: &Minds, cx: &mut Context<'_, '_>, call: &Call<'_>) -> Result<Value> {
    call.expect_arity(1)?;
    cx.permit(Effect::Think)?;
    let prompt = call.text(0)?.to_owned();
    let max_tokens = match cx.lookup(call.receiver, "maxTokens")? {
        Some((_, Value::Int(n))) if n > 0 => usize::try_from(n).unwrap_or(usize::MAX),
        _ => Sampling::default().max_tokens,
    };
    let (mind_key, mind) = minds.chosen(cx, call.receiver)?;
    let key = format!("infer|{mind_key}|{max_tokens}|{}", blake3::hash(prompt.as_bytes()).to_hex());
    cx.outside(key, move || {
        let sampling = Sampling { max_tokens, ..Sampling::default() };
        let completion = mind
            .complete(&[Message::user(prompt)], &sampling, &mut |_| {})
            .map_err(|e| Error::MindUnavailable(e.to_string()))?;
        Ok(Value::Text(completion.text))
    })
}
