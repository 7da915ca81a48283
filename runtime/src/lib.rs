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
pub mod gate;
mod outside;
mod primitives;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

pub use awaken::{
    AwakeningHook, Primordials, PRIMORDIAL_GENESIS, PRIMORDIAL_PLLM, PRIMORDIAL_TRAITS,
};
pub use batos_image::OutsideWork;
pub use call::Call;
pub use gate::{Authority, Decision, Effect, Gate, Grant, Grants};
pub use outside::MAX_OUTSIDE_WORK;

pub use batos_image as image;
use batos_image::error;
/// The image's types every user of the runtime meets, at the runtime's root.
pub use batos_image::{
    BlobHash, BlobRef, Committed, Durability, Error, Image, ImageOptions, Method, Object, Oid,
    Result, Tx, TxId, Value,
};

/// The selector sent when lookup finds nothing.
pub const DOES_NOT_UNDERSTAND: &str = "doesNotUnderstand";

/// How deep sends may nest before [`Error::SendTooDeep`]: deep enough for any honest
/// recursion over the image, shallow enough that a runaway method cannot exhaust the
/// native stack (each level costs a few hundred bytes of Rust frames).
pub const DEFAULT_MAX_SEND_DEPTH: usize = 256;

/// A native primitive: a Rust function that a method slot names.
///
/// It runs inside the sender's transaction, with the sender's authority, and may run
/// again if that transaction is retried after a conflict, so it must have no effects
/// outside the image: work outside it goes through [`Context::outside`], and writes
/// through [`Context`]'s gated methods.
pub type Primitive = Arc<dyn Fn(&mut Context<'_, '_>, &Call<'_>) -> Result<Value> + Send + Sync>;

/// Runs [`Method::Component`] methods. The sandbox layer provides one; the runtime
/// only routes to it, so that this layer does not depend on wasmtime.
pub trait ComponentRunner: Send + Sync {
    /// Runs `method` for `call` within the caller's transaction.
    fn run(&self, cx: &mut Context<'_, '_>, method: &Method, call: &Call<'_>) -> Result<Value>;
}

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
        let mut primitives = primitives::builtins();
        primitives.extend(self.primitives);
        let runtime = Runtime {
            image,
            primitives,
            component_runner: self.component_runner,
            max_send_depth: self.max_send_depth.unwrap_or(DEFAULT_MAX_SEND_DEPTH),
            created: false,
            done_once: std::sync::Mutex::new(std::collections::HashSet::new()),
        };
        awaken::awaken(runtime, &self.awakening)
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
    primitives: HashMap<String, Primitive>,
    component_runner: Option<Arc<dyn ComponentRunner>>,
    max_send_depth: usize,
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
                work(&mut Context {
                    runtime: self,
                    tx,
                    depth: 0,
                    authority: authority.clone(),
                    memo,
                })
            })
        })
    }

    /// Runs `work` against a snapshot and discards its writes, with a person's
    /// authority (and outside work as in [`Runtime::transact`]).
    pub fn view<R>(&self, mut work: impl FnMut(&mut Context<'_, '_>) -> Result<R>) -> Result<R> {
        let authority = Authority::person();
        outside::Memo::default().drive(|memo| {
            self.image.view(|tx| {
                work(&mut Context {
                    runtime: self,
                    tx,
                    depth: 0,
                    authority: authority.clone(),
                    memo,
                })
            })
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

    fn primitive(&self, name: &str) -> Option<&Primitive> {
        self.primitives.get(name)
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

/// What a method runs with: the transaction, the runtime, its place in the send
/// nesting, and the [`Authority`] it acts for.
///
/// Reads are free ([`Context::tx`]); every write asks the [`Gate`]: slots and parents
/// through [`Context::set_slot`], [`Context::remove_slot`], [`Context::set_parents`],
/// new objects through [`Context::clone_object`], anything else through
/// [`Context::tx_mut`], which only a person's authority opens.
pub struct Context<'a, 'img> {
    runtime: &'a Runtime,
    tx: &'a mut Tx<'img>,
    depth: usize,
    authority: Authority,
    memo: &'a outside::Memo,
}

impl<'img> Context<'_, 'img> {
    /// The transaction, for reading.
    pub fn tx(&self) -> &Tx<'img> {
        self.tx
    }

    /// The transaction for any write, if the authority is a person's: `what` names the
    /// work for the refusal.
    pub fn tx_mut(&mut self, what: &str) -> Result<&mut Tx<'img>> {
        Gate::check(&self.authority, &Effect::Unrestricted(what))?;
        Ok(self.tx)
    }

    /// The authority this work acts for.
    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    /// Asks the gate whether this context may cause `effect`.
    pub fn permit(&self, effect: Effect<'_>) -> Result<()> {
        Gate::check(&self.authority, &effect)
    }

    /// Writes a slot of `oid`, if the gate allows this authority to write it.
    pub fn set_slot(&mut self, oid: Oid, name: &str, value: &Value) -> Result<()> {
        self.permit(Effect::Write(oid))?;
        self.tx.set_slot(oid, name, value)
    }

    /// Removes a slot of `oid`, if the gate allows; answers whether it existed.
    pub fn remove_slot(&mut self, oid: Oid, name: &str) -> Result<bool> {
        self.permit(Effect::Write(oid))?;
        self.tx.remove_slot(oid, name)
    }

    /// Replaces the `parent*` list of `oid`, if the gate allows.
    pub fn set_parents(&mut self, oid: Oid, parents: &[Oid]) -> Result<()> {
        self.permit(Effect::Write(oid))?;
        self.tx.set_parents(oid, parents)
    }

    /// Clones `original` (its slots, the same parents); the clone is writable for the
    /// rest of this authority's work.
    pub fn clone_object(&mut self, original: Oid) -> Result<Oid> {
        let clone = self.tx.clone_object(original)?;
        self.authority.made(clone);
        Ok(clone)
    }

    /// The answer of `work`, run outside any transaction once per top-level send and
    /// remembered under `key` (see [`OutsideWork`]). The first call stops the send with
    /// [`Error::Outside`]; the runtime runs the work and the send again.
    pub fn outside(
        &self,
        key: String,
        work: impl FnOnce() -> Result<Value> + Send + 'static,
    ) -> Result<Value> {
        match self.memo.get(&key) {
            Some(answer) => Ok(answer),
            None => Err(Error::Outside(OutsideWork::new(key, work))),
        }
    }

    /// Runs `work` with `authority` in place of this context's, in the same transaction
    /// and at the same depth: how a component method gets its own authority.
    pub fn with_authority<R>(
        &mut self,
        authority: Authority,
        work: impl FnOnce(&mut Context<'_, 'img>) -> R,
    ) -> R {
        work(&mut Context {
            runtime: self.runtime,
            tx: &mut *self.tx,
            depth: self.depth,
            authority,
            memo: self.memo,
        })
    }

    /// The runtime.
    pub fn runtime(&self) -> &Runtime {
        self.runtime
    }

    /// How many sends deep this context is (0 for a top-level send).
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// Sends a message from within a method, with this context's authority. Its writes
    /// are kept if it succeeds and undone if it fails; either way the caller's
    /// transaction goes on.
    pub fn send(&mut self, receiver: Oid, selector: &str, args: &[Value]) -> Result<Value> {
        let savepoint = self.tx.savepoint();
        let result = Context {
            runtime: self.runtime,
            tx: &mut *self.tx,
            depth: self.depth + 1,
            authority: self.authority.clone(),
            memo: self.memo,
        }
        .send_here(receiver, selector, args);
        match result {
            Ok(value) => {
                self.tx.release(savepoint);
                Ok(value)
            }
            Err(e) => {
                self.tx.rollback_to(savepoint);
                Err(e)
            }
        }
    }

    /// Finds `selector` from `start`: the holder and the slot's value.
    pub fn lookup(&self, start: Oid, selector: &str) -> Result<Option<(Oid, Value)>> {
        lookup(self.tx, start, selector)
    }

    /// Dispatches at this depth (no savepoint): the body of every send.
    fn send_here(&mut self, receiver: Oid, selector: &str, args: &[Value]) -> Result<Value> {
        if self.depth >= self.runtime.max_send_depth {
            return Err(Error::SendTooDeep { selector: selector.to_owned(), depth: self.depth });
        }
        match lookup(self.tx, receiver, selector)? {
            Some((_, Value::Method(method))) => {
                self.run(&method, &Call { receiver, selector, args })
            }
            Some((_, value)) if args.is_empty() => Ok(value),
            Some((holder, value)) => Err(Error::bad_arguments(
                selector,
                format!(
                    "the slot on {holder} holds data ({}), not a method, so it takes no arguments; use setSlot:value: to change it",
                    value.type_name()
                ),
            )),
            None => self.does_not_understand(receiver, selector, args),
        }
    }

    fn does_not_understand(
        &mut self,
        receiver: Oid,
        selector: &str,
        args: &[Value],
    ) -> Result<Value> {
        let not_understood =
            || Error::DoesNotUnderstand { receiver, selector: selector.to_owned() };
        let Some((_, Value::Method(handler))) = lookup(self.tx, receiver, DOES_NOT_UNDERSTAND)?
        else {
            return Err(not_understood());
        };
        // Reify the failed message as an object, so that handlers (and, later, the
        // synthesis cycle) can keep it, inspect it and answer it.
        let parents = match self.tx.root("traits")? {
            Some(traits) => vec![traits],
            None => Vec::new(),
        };
        // The runtime's own bookkeeping: the message object is made for this send, and
        // belongs to whoever sent it.
        let message = self.tx.create_object(&parents)?;
        self.authority.made(message);
        self.tx.set_slot(message, "selector", &Value::Text(selector.to_owned()))?;
        self.tx.set_slot(message, "arguments", &Value::List(args.to_vec()))?;
        self.tx.set_slot(message, "receiver", &Value::Object(receiver))?;
        let message_arg = [Value::Object(message)];
        self.run(&handler, &Call { receiver, selector: DOES_NOT_UNDERSTAND, args: &message_arg })
    }

    fn run(&mut self, method: &Method, call: &Call<'_>) -> Result<Value> {
        match method {
            Method::Native { primitive } => {
                let runtime = self.runtime;
                let f = runtime.primitive(primitive).ok_or_else(|| Error::UnknownPrimitive {
                    selector: call.selector.to_owned(),
                    primitive: primitive.clone(),
                })?;
                f(self, call)
            }
            Method::Component { grants, .. } => {
                let runtime = self.runtime;
                let Some(runner) = &runtime.component_runner else {
                    return Err(Error::NoRunner {
                        selector: call.selector.to_owned(),
                        kind: "component",
                    });
                };
                // A component method runs with its own authority (see `gate`): the grants
                // it was installed with, and its receiver.
                let grants = gate::parse_grants(grants).map_err(|reason| Error::AuditRefused {
                    what: call.selector.to_owned(),
                    reason,
                })?;
                let own = Authority::capability(call.selector, grants, [call.receiver]);
                self.with_authority(own, |cx| runner.run(cx, method, call))
            }
        }
    }
}

/// Finds `selector` from `start`: own slots, then parents depth-first in order, each
/// object visited once. Returns the holder and the slot's value.
pub fn lookup(tx: &Tx<'_>, start: Oid, selector: &str) -> Result<Option<(Oid, Value)>> {
    let mut visited: Vec<Oid> = Vec::new();
    let mut pending = vec![start];
    while let Some(oid) = pending.pop() {
        if visited.contains(&oid) {
            continue;
        }
        visited.push(oid);
        if let Some(value) = tx.slot(oid, selector)? {
            return Ok(Some((oid, value)));
        }
        match tx.parents(oid) {
            Ok(parents) => pending.extend(parents.iter().rev()),
            // A parent removed by undo or pack no longer answers anything.
            Err(Error::UnknownObject(_)) if oid != start => {}
            Err(e) => return Err(e),
        }
    }
    Ok(None)
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
