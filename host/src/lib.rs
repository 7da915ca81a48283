//! # batos-host
//!
//! The host of batos: a **living image** of prototype objects (slots plus `parent*`
//! delegation, cloned, never classed), kept transactionally in fjall, and the runtime
//! that sends messages to them.
//!
//! The crate is layered; each layer only looks down:
//!
//! * [`image`]: the store — objects, slots, roots, blobs, transactions, history, pack.
//! * [`runtime`]: message sends, delegation, native primitives, the primordial objects.
//! * the `batos` binary: the command-line face over both.
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
//! Durability and error semantics are documented on [`image`].

#![warn(missing_docs)]

pub mod error;
pub mod image;
pub mod runtime;
pub mod mind;
pub mod sandbox;
pub mod synthesis;

pub use error::{Error, Result};
pub use image::{
    BlobHash, BlobRef, Committed, Durability, Image, ImageOptions, Method, Object, Oid, Tx, TxId, Value,
};
pub use runtime::{Call, Context, Runtime, RuntimeBuilder};
