//! # batos-composite
//!
//! The composite mind (seeds 004, sections IV and V): batos thinks not as one model but
//! as a family of **personas** — ALFRED, BRICK, ROBIN and BABS — that are objects of the
//! image, answer in dialogue, are chosen by a routing that keeps diversity on purpose,
//! review candidate methods, and are watched by a metric of the system's own
//! stagnation.
//!
//! - [`persona`]: personas as clones of `pLLM` under the root `personas`, each with its
//!   codex, system prompt and sampling in slots a person can read and change.
//! - [`routing`]: the Collaborative Dynamics Matrix, the archetype classifier, noisy
//!   top-k gating; every decision recorded with its scores, noise and pheromones.
//! - [`ether`]: `digital_ether`, pheromones that outcomes deposit and time evaporates.
//! - [`dialogue`]: the Socratic Contrapunto — the second persona answers having read the
//!   first — kept as an object, sources from the memory cited.
//! - [`crucible`]: BRICK and ALFRED as the synthesis layer's [`batos_synthesis::crucible::Critic`].
//! - [`cem`]: the Composite Entropy Metric, its formulas and what it is computed from.
//! - [`heartbeat`]: one beat of the autotelic heartbeat — measure, decide, act within a
//!   budget — with the acting left to whoever runs it (the kernel).
//!
//! It narrows its dependencies to the image and runtime (objects, transactions), the
//! mind (the `Mind` and `Embedder` traits; no model runtime), the memory (search for
//! citations) and synthesis (the crucible's trait and the cycles the metric reads).
//! Nothing here runs on its own: the kernel owns the clock.

pub mod cem;
pub mod crucible;
pub mod dialogue;
pub mod ether;
pub mod heartbeat;
pub mod persona;
pub mod routing;

use batos_image as image;
use batos_image::error::{Error, Result};
use batos_runtime as runtime;

pub use dialogue::{converse, Dialogue, Turn};
pub use persona::{Persona, PERSONAS_ROOT};

/// Makes the composite mind's objects (`personas`, `digital_ether`, `dialogues`,
/// `heartbeat`) when a new image is awakened.
pub fn attach(builder: runtime::RuntimeBuilder) -> runtime::RuntimeBuilder {
    builder.awakening(|tx, primordials| ensure(tx, primordials.pllm))
}

/// Makes the composite mind's objects in an image awakened before they existed; a
/// no-op (no transaction) when they are there.
pub fn prepare(rt: &runtime::Runtime) -> Result<()> {
    let missing = rt.view(|cx| {
        let tx = cx.tx();
        Ok(tx.root(PERSONAS_ROOT)?.is_none()
            || tx.root(ether::ETHER_ROOT)?.is_none()
            || tx.root(dialogue::DIALOGUES_ROOT)?.is_none()
            || tx.root(heartbeat::HEARTBEAT_ROOT)?.is_none())
    })?;
    if missing {
        let pllm = rt.resolve(runtime::PRIMORDIAL_PLLM)?;
        rt.transact("make the composite mind", |cx| {
            ensure(cx.tx_mut("make the composite mind")?, pllm)
        })?;
    }
    Ok(())
}

fn ensure(tx: &mut image::Tx<'_>, pllm: image::Oid) -> Result<()> {
    persona::ensure(tx, pllm)?;
    ether::ensure(tx)?;
    dialogue::ensure(tx)?;
    heartbeat::ensure(tx)?;
    Ok(())
}

/// Milliseconds since the Unix epoch, as slots keep time.
pub fn now_ms() -> i64 {
    i64::try_from(image::now_ms()).unwrap_or(i64::MAX)
}

/// A number slot read as a float (ints are accepted: `batos set` of `2` is an int).
fn number(value: Option<&image::Value>) -> Option<f64> {
    match value {
        Some(image::Value::Float(f)) => Some(*f),
        Some(image::Value::Int(i)) => Some(*i as f64),
        _ => None,
    }
}

/// A text slot's text.
fn text(value: Option<&image::Value>) -> Option<String> {
    match value {
        Some(image::Value::Text(t)) => Some(t.clone()),
        _ => None,
    }
}
