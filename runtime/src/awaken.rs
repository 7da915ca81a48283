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

use std::sync::Arc;

use crate::error::Result;
use crate::image::{Image, Method, Oid, Tx, Value};
use crate::primitives::TRAITS_METHODS;

/// The primordial objects, as the awakening hooks see them.
#[derive(Clone, Copy, Debug)]
pub struct Primordials {
    /// `traits`, the ultimate ancestor.
    pub traits: Oid,
    /// `pLLM`, the prototype for cognition: the mind layer furnishes it.
    pub pllm: Oid,
    /// `genesis`, the first being.
    pub genesis: Oid,
}

/// Work a layer above adds to the awakening transaction (see
/// [`crate::RuntimeBuilder::awakening`]).
pub type AwakeningHook = Arc<dyn Fn(&mut Tx<'_>, &Primordials) -> Result<()> + Send + Sync>;

/// Root name of the ultimate ancestor.
pub const PRIMORDIAL_TRAITS: &str = "traits";
/// Root name of the prototype for cognition.
pub const PRIMORDIAL_PLLM: &str = "pLLM";
/// Root name of the first being.
pub const PRIMORDIAL_GENESIS: &str = "genesis";

/// Awakens `image` if it is new (answering true), running `hooks` in the same
/// transaction; an image already formatted is left as it is.
pub(crate) fn awaken(image: &Image, hooks: &[AwakeningHook]) -> Result<bool> {
    if image.format()?.is_some() {
        tracing::info!(image = %image.path().display(), "resuming the image");
        return Ok(false);
    }
    image.transact("awakening", |tx| {
        let traits = tx.create_object(&[])?;
        for selector in TRAITS_METHODS {
            tx.set_slot(
                traits,
                selector,
                &Value::Method(Method::Native { primitive: selector.to_owned() }),
            )?;
        }
        describe(tx, traits, "The ultimate ancestor: behaviour every object shares.")?;
        let pllm = tx.create_object(&[traits])?;
        describe(tx, pllm, "The prototype for cognition: the mind answers through it.")?;
        let genesis = tx.create_object(&[traits, pllm])?;
        describe(tx, genesis, "The first being: clone it to make new objects.")?;
        tx.set_root(PRIMORDIAL_TRAITS, traits)?;
        tx.set_root(PRIMORDIAL_PLLM, pllm)?;
        tx.set_root(PRIMORDIAL_GENESIS, genesis)?;
        // What the layers above put on the primordials (the mind: pLLM's backend, model
        // and `infer`), in the same transaction.
        let primordials = Primordials { traits, pllm, genesis };
        for hook in hooks {
            hook(tx, &primordials)?;
        }
        tx.mark_formatted();
        Ok(())
    })?;
    tracing::info!(image = %image.path().display(), "awakened a new image");
    Ok(true)
}

fn describe(tx: &mut crate::image::Tx<'_>, oid: Oid, text: &str) -> Result<()> {
    tx.set_slot(oid, "description", &Value::Text(text.to_owned()))
}
