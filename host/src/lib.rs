//! # batos
//!
//! batos embedded in your program: one door to the whole system. A **living image** of
//! prototype objects (slots plus `parent*` delegation, cloned, never classed), kept
//! transactionally in fjall; the runtime that sends messages to them through one
//! permission gate; WebAssembly capabilities in a wasmtime sandbox; the mind; and
//! synthesis of the methods nobody has written yet.
//!
//! This crate only re-exports; each layer is its own crate, and each only looks down:
//!
//! * [`image`] (`batos-image`): objects, slots, roots, blobs, transactions, history,
//!   pack, and the one [`Error`] type.
//! * [`runtime`] (`batos-runtime`): sends, delegation, primitives, the primordial
//!   objects, the gate.
//! * [`sandbox`] (`batos-sandbox`): components of the `batos:uvm` world, audited and
//!   limited.
//! * [`mind`] (`batos-mind`): the `Mind` trait, `pLLM`'s `infer`, OpenAI-compatible
//!   servers; [`model`] (`batos-model`): the in-process model on ONNX Runtime.
//! * [`memory`] (`batos-memory`): documents ingested as passages, searched by words
//!   and by meaning; its embedding model is [`model`]'s.
//! * [`synthesis`] (`batos-synthesis`): cycles that write, seal, build, prove and
//!   install missing methods.
//! * [`composite`] (`batos-composite`): the personas in dialogue, their routing, the
//!   crucible, the Composite Entropy Metric and the heartbeat's decisions.
//!
//! Start with [`Runtime::open`]:
//!
//! ```no_run
//! # fn main() -> batos::Result<()> {
//! let rt = batos::Runtime::open("my-image")?;
//! let genesis = rt.resolve("genesis")?;
//! let counter = rt.clone_object(genesis, Some("counter"))?;
//! rt.send(counter, "setSlot:value:", vec!["count".into(), 1i64.into()])?;
//! assert_eq!(rt.send(counter, "count", vec![])?, batos::Value::Int(1));
//! # Ok(()) }
//! ```
//!
//! A runtime with the mind — `pLLM` awakened with the embedded model, `infer`
//! registered — comes from [`minds`]: `batos::minds().attach(batos::Runtime::builder())`.
//! Durability and error semantics are documented on [`image`].

pub use batos_composite as composite;
pub use batos_image as image;
pub use batos_memory as memory;
pub use batos_mind as mind;
pub use batos_model as model;
pub use batos_runtime as runtime;
pub use batos_sandbox as sandbox;
pub use batos_synthesis as synthesis;

pub use batos_image::{
    BlobHash, BlobRef, Committed, Durability, Error, Image, ImageOptions, ImageStats, Method,
    Object, Oid, Result, Tx, TxId, Value,
};
pub use batos_runtime::{Call, Context, Runtime, RuntimeBuilder};

/// The minds of a whole batos: the `openai` backend and the in-process `onnx` model,
/// with new images' `pLLM` awakened on the embedded model. Attach them to a runtime
/// being built with [`mind::Minds::attach`]; keep them to ask [`mind::Minds::mind_of`].
pub fn minds() -> mind::Minds {
    model::attach(mind::Minds::new())
}

/// The memory of a whole batos: `memory search:` and ingest, embedding with
/// all-MiniLM-L6-v2 on ONNX Runtime (pulled into the models folder on first use, run on
/// CUDA when present). Attach it to a runtime being built with
/// [`memory::Memory::attach`]; keep it to [`memory::Memory::ingest`] and
/// [`memory::Memory::search`].
pub fn memory() -> std::sync::Arc<memory::Memory> {
    memory::Memory::new(Box::new(|| {
        let embedder = model::OnnxEmbedder::open(model::Device::Auto, &mut model::pull::Quiet)?;
        Ok(std::sync::Arc::new(embedder) as std::sync::Arc<dyn mind::Embedder>)
    }))
}
