//! # batos-runtime
//!
//! The runtime layer: message sends, delegation, the primordial objects, and the one
//! permission gate ([`gate`]). It narrows the image to its behaviour: it depends on
//! `batos-image` and `tracing` only; components and the mind plug in from above
//! (through [`ComponentRunner`], primitives and awakening hooks), so this crate links
//! neither wasmtime nor ONNX Runtime.
//!
//! A [`Runtime`] owns an [`Image`] and the table of native primitives. Every top-level
//! [`Runtime::send`] is one image transaction; a send made from inside a method
//! ([`Context::send`]) is a savepoint within it, so a failing nested send undoes only
//! its own writes and hands its error to the caller, who may recover.
//!
//! Lookup of a selector visits the receiver's own slots, then its parents depth-first
//! in `parent*` order, each object at most once (so cycles and diamonds terminate).
//! A found method runs; a found data slot is the answer (a slot read is a message, as
//! in Self); nothing found sends `doesNotUnderstand` to the receiver with the message
//! reified as an object.

mod awaken;
mod call;
mod dispatch;
pub mod gate;
pub mod jobs;
mod outside;
mod primitives;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

pub use awaken::{
    AwakeningHook, Primordials, PRIMORDIAL_GENESIS, PRIMORDIAL_PLLM, PRIMORDIAL_TRAITS,
};

pub use call::Call;
pub use dispatch::{
    lookup, walk, Behaviour, ComponentRunner, Context, Primitive, Walk, DOES_NOT_UNDERSTAND,
};
pub use gate::{Authority, Decision, Effect, Gate, Grant, Grants};
pub use outside::{OutsideWork, MAX_OUTSIDE_WORK};

pub use batos_image as image;
use batos_image::error;
/// The image's types every user of the runtime meets, at the runtime's root.
pub use batos_image::{
    BlobHash, BlobRef, Committed, Durability, Error, Image, ImageOptions, ImageStats, Method,
    Object, Oid, Result, Tx, TxId, Value,
};

/// How deep sends may nest before [`Error::SendTooDeep`]: deep enough for any honest
/// recursion over the image, shallow enough that a runaway method cannot exhaust the
/// native stack (each level costs a few hundred bytes of Rust frames).
pub const DEFAULT_MAX_SEND_DEPTH: usize = 256;

/// Configures and opens a [`Runtime`].
#[derive(Default)]
pub struct RuntimeBuilder {
    options: ImageOptions,
    primitives: HashMap<String, Primitive>,
    component_runner: Option<Arc<dyn ComponentRunner>>,
    max_send_depth: Option<usize>,
    awakening: Vec<AwakeningHook>,
}

impl RuntimeBuilder {
    /// Adds work to the awakening transaction of a new image, run after the primordial
    /// objects exist: how a layer above (the mind) furnishes them without this layer
    /// knowing its names. Hooks run in the order they were added.
    pub fn awakening(
        mut self,
        hook: impl Fn(&mut Tx<'_>, &Primordials) -> Result<()> + Send + Sync + 'static,
    ) -> Self {
        self.awakening.push(Arc::new(hook));
        self
    }

    /// Image options (durability, conflict retries).
    pub fn image_options(mut self, options: ImageOptions) -> Self {
        self.options = options;
        self
    }

    /// Registers a native primitive under `name`; a method slot
    /// `Method::Native { primitive: name }` then runs it. Replaces a built-in of the
    /// same name.
    pub fn primitive(
        mut self,
        name: &str,
        f: impl Fn(&mut Context<'_, '_>, &Call<'_>) -> Result<Value> + Send + Sync + 'static,
    ) -> Self {
        self.primitives.insert(name.to_owned(), Arc::new(f));
        self
    }

    /// Attaches the runner for component methods.
    pub fn component_runner(mut self, runner: Arc<dyn ComponentRunner>) -> Self {
        self.component_runner = Some(runner);
        self
    }

    /// Overrides [`DEFAULT_MAX_SEND_DEPTH`].
    pub fn max_send_depth(mut self, depth: usize) -> Self {
        self.max_send_depth = Some(depth);
        self
    }

    /// Opens (or creates and awakens) the image at `path`.
    pub fn open(self, path: impl AsRef<Path>) -> Result<Runtime> {
        let image = Image::open(path, self.options)?;
        let created = awaken::awaken(&image, &self.awakening)?;
        let mut primitives = primitives::builtins();
        primitives.extend(self.primitives);
        let behaviour = Behaviour {
            primitives,
            component_runner: self.component_runner,
            max_send_depth: self.max_send_depth.unwrap_or(DEFAULT_MAX_SEND_DEPTH),
        };
        Ok(Runtime {
            image,
            behaviour,
            created,
            done_once: std::sync::Mutex::new(std::collections::HashSet::new()),
        })
    }
}

/// A living image with its behaviour: the entry point for embedding batos.
///
/// ```no_run
/// # fn main() -> batos_image::Result<()> {
/// let rt = batos_runtime::Runtime::open("my-image")?;
/// let genesis = rt.resolve("genesis")?;
/// rt.send(genesis, "setSlot:value:", vec!["greeting".into(), "hello".into()])?;
/// assert_eq!(rt.send(genesis, "greeting", vec![])?, "hello".into());
/// # Ok(()) }
/// ```
pub struct Runtime {
    image: Image,
    behaviour: Behaviour,
    created: bool,
    done_once: std::sync::Mutex<std::collections::HashSet<&'static str>>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").field("image", &self.image).finish_non_exhaustive()
    }
}

impl Runtime {
    /// Opens the image at `path` with default settings, creating and awakening it if
    /// it does not exist.
    pub fn open(path: impl AsRef<Path>) -> Result<Runtime> {
        Runtime::builder().open(path)
    }

    /// A builder for non-default settings and extra primitives.
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder::default()
    }

    /// The image underneath.
    pub fn image(&self) -> &Image {
        &self.image
    }

    /// Whether this open created the image (ran the awakening).
    pub fn created(&self) -> bool {
        self.created
    }

    /// True the first time it is asked about `task` for this opening of the image, false
    /// after: work a layer above must do once per awakening (recovering what a dead
    /// process left), however many of its parts start. One process holds an image, so
    /// this is once per process.
    pub fn first_time(&self, task: &'static str) -> bool {
        self.done_once.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(task)
    }

    /// Resolves an object reference as a user writes it: a root name (`genesis`) or an
    /// oid (`#42`). The object must be live.
    pub fn resolve(&self, reference: &str) -> Result<Oid> {
        self.image.view(|tx| resolve_in(tx, reference))
    }

    /// Sends a message in its own transaction and returns the answer.
    pub fn send(&self, receiver: Oid, selector: &str, args: Vec<Value>) -> Result<Value> {
        Ok(self.send_committed(receiver, selector, args)?.value)
    }

    /// Like [`Runtime::send`], also telling which transaction (if any) it committed.
    pub fn send_committed(
        &self,
        receiver: Oid,
        selector: &str,
        args: Vec<Value>,
    ) -> Result<Committed<Value>> {
        let description = describe_send(receiver, selector, &args);
        self.transact(&description, |cx| cx.send_here(receiver, selector, &args))
    }

    /// Runs `work` in one transaction with a [`Context`] for sends and slot access.
    /// Retried on conflict, like [`Image::transact`].
    /// The work acts with a person's full authority. When it needs work outside the
    /// transaction (see [`Context::outside`]), the transaction is rolled back, the work
    /// runs, and `work` runs again.
    pub fn transact<R>(
        &self,
        description: &str,
        mut work: impl FnMut(&mut Context<'_, '_>) -> Result<R>,
    ) -> Result<Committed<R>> {
        let authority = Authority::person();
        outside::Memo::default().drive(|memo| {
            self.image.transact(description, |tx| {
                let answer = work(&mut Context::top(&self.behaviour, tx, authority.clone(), memo));
                // Work left pending means this run is incomplete, even if a method
                // caught the stop: never commit it.
                match memo.is_pending() {
                    Some(key) => Err(Error::Outside(key)),
                    None => answer,
                }
            })
        })
    }

    /// Runs `work` against a snapshot and discards its writes, with a person's
    /// authority (and outside work as in [`Runtime::transact`]).
    pub fn view<R>(&self, mut work: impl FnMut(&mut Context<'_, '_>) -> Result<R>) -> Result<R> {
        let authority = Authority::person();
        outside::Memo::default().drive(|memo| {
            self.image
                .view(|tx| work(&mut Context::top(&self.behaviour, tx, authority.clone(), memo)))
        })
    }

    /// An object's parents and own slots.
    pub fn object(&self, oid: Oid) -> Result<Object> {
        self.image.view(|tx| tx.object(oid))
    }

    /// Writes one slot in its own transaction (no message is sent).
    pub fn set_slot(&self, oid: Oid, name: &str, value: Value) -> Result<Committed<()>> {
        self.image.transact(&format!("set {oid}.{name}"), |tx| tx.set_slot(oid, name, &value))
    }

    /// Sends `clone` to `original` and, with `name`, makes the clone a named root, in
    /// one transaction.
    pub fn clone_object(&self, original: Oid, name: Option<&str>) -> Result<Oid> {
        let description = match name {
            Some(n) => format!("clone {original} as `{n}`"),
            None => format!("clone {original}"),
        };
        let committed = self.transact(&description, |cx| {
            let clone = match cx.send_here(original, "clone", &[])? {
                Value::Object(oid) => oid,
                other => {
                    return Err(Error::Failed(format!(
                        "`clone` answered a {} instead of an object",
                        other.type_name()
                    )))
                }
            };
            if let Some(name) = name {
                if cx.tx().root(name)?.is_some() {
                    return Err(Error::BadInput(format!(
                        "a root named `{name}` already exists; choose another name"
                    )));
                }
                cx.tx_mut("name a root")?.set_root(name, clone)?;
            }
            Ok(clone)
        })?;
        Ok(committed.value)
    }
}

/// The object the root `name` names, created (a child of `traits`, described by
/// `description`) the first time: the shape of every registry the layers above keep in
/// the image (plugins, cycles, skills).
pub fn registry_root(tx: &mut Tx<'_>, name: &str, description: &str) -> Result<Oid> {
    if let Some(oid) = tx.root(name)? {
        return Ok(oid);
    }
    let parents: Vec<Oid> = tx.root(PRIMORDIAL_TRAITS)?.into_iter().collect();
    let oid = tx.create_object(&parents)?;
    tx.set_slot(oid, "description", &Value::Text(description.into()))?;
    tx.set_root(name, oid)?;
    Ok(oid)
}

/// The objects a registry keeps under numbered slots — `c1`, `c2`, … for `prefix` `c` —
/// in the order of their numbers (slots are sorted as text, so `c10` would come before
/// `c2`); other slots are not entries.
pub fn numbered_entries(tx: &Tx<'_>, registry: Oid, prefix: &str) -> Result<Vec<(String, Oid)>> {
    let mut out: Vec<(u64, String, Oid)> = tx
        .slots(registry)?
        .into_iter()
        .filter_map(|(name, value)| match value {
            Value::Object(oid) => Some((name.strip_prefix(prefix)?.parse().ok()?, name, oid)),
            _ => None,
        })
        .collect();
    out.sort();
    Ok(out.into_iter().map(|(_, id, oid)| (id, oid)).collect())
}

/// Resolves `genesis` or `#42` within a transaction.
pub fn resolve_in(tx: &Tx<'_>, reference: &str) -> Result<Oid> {
    if reference.starts_with('#') {
        let oid: Oid = reference.parse().map_err(Error::BadInput)?;
        if !tx.exists(oid)? {
            return Err(Error::UnknownObject(oid));
        }
        return Ok(oid);
    }
    tx.root(reference)?.ok_or_else(|| Error::UnknownRoot(reference.to_owned()))
}

/// A short, bounded history description of a send.
fn describe_send(receiver: Oid, selector: &str, args: &[Value]) -> String {
    let mut out = format!("send {receiver} {selector}");
    for arg in args {
        if out.len() > 160 {
            out.push_str(" …");
            break;
        }
        match arg {
            // The common scalars directly: this runs on every send's hot path.
            Value::Int(n) => {
                let _ = write!(out, " {n}");
            }
            Value::Bool(b) => {
                let _ = write!(out, " {b}");
            }
            Value::Nil => out.push_str(" null"),
            Value::Text(t)
                if t.len() <= 64
                    && !t.contains(['"', '\\'])
                    && !t.chars().any(char::is_control) =>
            {
                let _ = write!(out, " \"{t}\"");
            }
            other => {
                let _ = write!(out, " {}", crate::image::json::to_json(other));
            }
        }
    }
    out
}
