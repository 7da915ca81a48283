//! The Prototypal Awakening: the primordial objects, created in one transaction the
//! first time an image is opened (seeds 004, the creation-order table).
//!
//! | order | root      | oid | parents          | role                                  |
//! |-------|-----------|-----|------------------|---------------------------------------|
//! | 1     | `traits`  | #1  | —                | universal behaviour (the primitives)  |
//! | 2     | `pLLM`    | #2  | traits           | cognition; the mind fills its slots   |
//! | 3     | `genesis` | #3  | traits, pLLM     | the first being; clone it for more    |
//!
//! The order is the seeds' cosmogony: laws, then mind, then being. The oids are fixed
//! because a new image's allocator starts at 1 and this is its first transaction.

use super::primitives::TRAITS_METHODS;
use super::Runtime;
use crate::error::Result;
use crate::image::{Method, Oid, Value};

/// The model `pLLM` names at awakening (the first entry of the mind's catalogue).
pub const DEFAULT_MODEL: &str = "qwen2.5-coder-0.5b-instruct-q4_k_m";

/// Root name of the ultimate ancestor.
pub const PRIMORDIAL_TRAITS: &str = "traits";
/// Root name of the prototype for cognition.
pub const PRIMORDIAL_PLLM: &str = "pLLM";
/// Root name of the first being.
pub const PRIMORDIAL_GENESIS: &str = "genesis";

pub(super) fn awaken(mut runtime: Runtime) -> Result<Runtime> {
    if runtime.image.format()?.is_some() {
        tracing::info!(image = %runtime.image.path().display(), "resuming the image");
        return Ok(runtime);
    }
    runtime.image.transact("awakening", |tx| {
        let traits = tx.create_object(&[])?;
        for selector in TRAITS_METHODS {
            tx.set_slot(traits, selector, &Value::Method(Method::Native { primitive: selector.to_owned() }))?;
        }
        describe(tx, traits, "The ultimate ancestor: behaviour every object shares.")?;
        let pllm = tx.create_object(&[traits])?;
        describe(tx, pllm, "The prototype for cognition: the mind answers through it.")?;
        // Which mind answers; `infer` is the mind layer's primitive, registered by the
        // faces (a runtime without it answers that it is missing).
        tx.set_slot(pllm, "backend", &Value::Text("onnx".into()))?;
        tx.set_slot(pllm, "model", &Value::Text(DEFAULT_MODEL.into()))?;
        // Where a local model runs: auto (CUDA when present), cpu or cuda.
        tx.set_slot(pllm, "device", &Value::Text("auto".into()))?;
        tx.set_slot(pllm, "infer", &Value::Method(Method::Native { primitive: "pLLM.infer".into() }))?;
        let genesis = tx.create_object(&[traits, pllm])?;
        describe(tx, genesis, "The first being: clone it to make new objects.")?;
        tx.set_root(PRIMORDIAL_TRAITS, traits)?;
        tx.set_root(PRIMORDIAL_PLLM, pllm)?;
        tx.set_root(PRIMORDIAL_GENESIS, genesis)?;
        tx.mark_formatted();
        Ok(())
    })?;
    tracing::info!(image = %runtime.image.path().display(), "awakened a new image");
    runtime.created = true;
    Ok(runtime)
}

fn describe(tx: &mut crate::image::Tx<'_>, oid: Oid, text: &str) -> Result<()> {
    tx.set_slot(oid, "description", &Value::Text(text.to_owned()))
}
