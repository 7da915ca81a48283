//! Dispatch: what a send does. [`Context`] is what a method runs with — the
//! transaction, the authority it acts for, its depth — and sends from it look up the
//! selector, run the method found (a native [`Primitive`] or a component through the
//! [`ComponentRunner`]) or answer `doesNotUnderstand`.

use std::collections::HashMap;
use std::sync::Arc;

use crate::call::Call;
use crate::error::{Error, Result};
use crate::gate::{self, Authority, Effect, Gate};
pub use crate::image::Walk;
use crate::image::{Image, Method, Oid, Tx, Value};
use crate::outside;
use crate::outside::OutsideWork;

/// The selector sent when lookup finds nothing.
pub const DOES_NOT_UNDERSTAND: &str = "doesNotUnderstand";

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

/// What sends run with besides the image: the primitives by name, the runner for
/// components, the nesting limit. The runtime owns one; every [`Context`] borrows it.
pub struct Behaviour {
    pub(crate) primitives: HashMap<String, Primitive>,
    pub(crate) component_runner: Option<Arc<dyn ComponentRunner>>,
    pub(crate) max_send_depth: usize,
}

/// What a method runs with: the transaction, the runtime, its place in the send
/// nesting, and the [`Authority`] it acts for.
///
/// Reads are free ([`Context::tx`]); every write asks the [`Gate`]: slots and parents
/// through [`Context::set_slot`], [`Context::remove_slot`], [`Context::set_parents`],
/// new objects through [`Context::clone_object`], anything else through
/// [`Context::tx_mut`], which only a person's authority opens.
pub struct Context<'a, 'img> {
    pub(crate) behaviour: &'a Behaviour,
    tx: &'a mut Tx<'img>,
    depth: usize,
    authority: Authority,
    memo: &'a outside::Memo,
}

impl<'a, 'img> Context<'a, 'img> {
    /// A top-level context: depth 0, acting for `authority`.
    pub(crate) fn top(
        behaviour: &'a Behaviour,
        tx: &'a mut Tx<'img>,
        authority: Authority,
        memo: &'a outside::Memo,
    ) -> Context<'a, 'img> {
        Context { behaviour, tx, depth: 0, authority, memo }
    }

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
            None => {
                self.memo.request(OutsideWork::new(key.clone(), work));
                Err(Error::Outside(key))
            }
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
            behaviour: self.behaviour,
            tx: &mut *self.tx,
            depth: self.depth,
            authority,
            memo: self.memo,
        })
    }

    /// The image this context's transaction belongs to (its blob store, its path).
    pub fn image(&self) -> &'img Image {
        self.tx.image()
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
            behaviour: self.behaviour,
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
    pub(crate) fn send_here(
        &mut self,
        receiver: Oid,
        selector: &str,
        args: &[Value],
    ) -> Result<Value> {
        if self.depth >= self.behaviour.max_send_depth {
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
                let behaviour = self.behaviour;
                let f = behaviour.primitives.get(primitive.as_str()).ok_or_else(|| {
                    Error::UnknownPrimitive {
                        selector: call.selector.to_owned(),
                        primitive: primitive.clone(),
                    }
                })?;
                f(self, call)
            }
            Method::Component { grants, .. } => {
                let behaviour = self.behaviour;
                let Some(runner) = &behaviour.component_runner else {
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
            Method::Unconfirmed { method, .. } => self.run(method, call),
        }
    }
}

/// Finds `selector` from `start`: own slots, then parents depth-first in order, each
/// object visited once. Returns the holder and the slot's value. Served by the image's
/// lookup cache whenever that cannot be stale (see `image/src/lookup.rs`).
pub fn lookup(tx: &Tx<'_>, start: Oid, selector: &str) -> Result<Option<(Oid, Value)>> {
    tx.lookup(start, selector)
}

/// [`lookup`], telling where it looked: for "where does this selector resolve".
pub fn walk(tx: &Tx<'_>, start: Oid, selector: &str) -> Result<Walk> {
    tx.walk(start, selector)
}
