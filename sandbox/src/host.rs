//! The host side of `batos:uvm`: what a capability's imports do.
//!
//! Every call gets a fresh [`CallState`] in a fresh store. Object handles are entries in
//! its resource table, created only for objects the capability was given or reached
//! (see the WIT). Every effect goes through the caller's [`Context`], which carries the
//! capability's own authority and asks the one gate: a slot written here, by a message
//! sent from here, or by a primitive that message reaches, is decided alike.

use wasmtime::component::{Resource, ResourceTable};

use super::limits::MemoryCap;
use crate::error::Error;
use crate::image::{BlobHash, BlobRef, Method, Oid, Value};
use crate::runtime::Context;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "capability",
        imports: { default: trappable },
        with: { "batos:uvm/types.object": super::ObjectHandle },
    });
}

pub(crate) use bindings::batos;
pub(crate) use bindings::batos::uvm::types as wit;
pub(crate) use bindings::CapabilityPre;

/// What a capability's `object` handle stands for on the host.
#[derive(Debug)]
pub struct ObjectHandle {
    pub(crate) oid: Oid,
}

/// The store data of one call.
pub(crate) struct CallState {
    /// The caller's context. Valid for the whole life of the store: `Sandbox::run`
    /// creates the store, runs the call and drops the store while it holds the
    /// `&mut Context` this points to (see the SAFETY note there).
    cx: *mut Context<'static, 'static>,
    pub(crate) table: ResourceTable,
    pub(crate) memory: MemoryCap,
    pub(crate) name: String,
    pub(crate) max_result_bytes: usize,
    /// The message of a panic the guest reported (the SDK's panic hook logs it just
    /// before the module traps), so the trap can say why.
    pub(crate) panic: Option<String>,
    /// Who else hears the capability's log lines (the kernel's event log).
    log_observer: std::sync::Arc<std::sync::OnceLock<crate::LogObserver>>,
}

impl CallState {
    /// # Safety
    /// `cx` must outlive the returned state; see [`CallState::cx`].
    pub(crate) unsafe fn new(
        cx: &mut Context<'_, '_>,
        memory: MemoryCap,
        name: String,
        max_result_bytes: usize,
        log_observer: std::sync::Arc<std::sync::OnceLock<crate::LogObserver>>,
    ) -> Self {
        let cx = std::ptr::from_mut(cx).cast::<Context<'static, 'static>>();
        CallState {
            cx,
            table: ResourceTable::new(),
            memory,
            name,
            max_result_bytes,
            panic: None,
            log_observer,
        }
    }

    fn cx(&mut self) -> &mut Context<'static, 'static> {
        // SAFETY: see the field's documentation; `&mut self` makes the access unique.
        unsafe { &mut *self.cx }
    }

    pub(crate) fn handle(&mut self, oid: Oid) -> wasmtime::Result<Resource<ObjectHandle>> {
        Ok(self.table.push(ObjectHandle { oid })?)
    }

    fn oid_of(&self, handle: &Resource<ObjectHandle>) -> wasmtime::Result<Oid> {
        Ok(self.table.get(handle)?.oid)
    }

    // ---- values ----------------------------------------------------------------

    /// A host value as a WIT value whose object handles the guest will own.
    pub(crate) fn lower(&mut self, value: &Value) -> wasmtime::Result<wit::Value> {
        let mut nodes = Vec::new();
        self.push(&mut nodes, value)?;
        Ok(wit::Value { nodes })
    }

    fn push(&mut self, nodes: &mut Vec<wit::Node>, value: &Value) -> wasmtime::Result<u32> {
        let index = u32::try_from(nodes.len())?;
        nodes.push(wit::Node::Nil);
        let node = match value {
            Value::Nil => wit::Node::Nil,
            Value::Bool(b) => wit::Node::Boolean(*b),
            Value::Int(n) => wit::Node::Integer(*n),
            Value::Float(f) => wit::Node::Float(*f),
            Value::Text(s) => wit::Node::Text(s.clone()),
            Value::Bytes(b) => wit::Node::Bytes(b.clone()),
            Value::List(items) => {
                let mut children = Vec::with_capacity(items.len());
                for item in items {
                    children.push(self.push(nodes, item)?);
                }
                wit::Node::List(children)
            }
            Value::Map(map) => {
                let mut children = Vec::with_capacity(map.len());
                for (k, v) in map {
                    children.push((k.clone(), self.push(nodes, v)?));
                }
                wit::Node::Map(children)
            }
            Value::Object(oid) => wit::Node::Object(self.handle(*oid)?),
            Value::Blob(b) => wit::Node::Blob(blob_to_wit(b)),
            Value::Method(m) => wit::Node::Method(method_to_wit(m)),
        };
        nodes[index as usize] = node;
        Ok(index)
    }

    /// A value the guest lent us (its handles stay the guest's).
    fn lift_param(&mut self, value: wit::ValueParam) -> Result<Value, Error> {
        self.lift(value.nodes, |state, handle| Ok(state.table.get(&handle)?.oid))
    }

    /// The guest's answer; it hands its handles back.
    pub(crate) fn lift_result(&mut self, value: wit::Value) -> Result<Value, Error> {
        self.lift(value.nodes, |state, handle| Ok(state.table.delete(handle)?.oid))
    }

    /// The one conversion of a guest's value into a host value, whichever way it
    /// travels: every index checked and used once, nesting bounded, bytes counted
    /// against the value-size cap. `object` says what a handle in it means (lent or
    /// handed back); a bad handle is the guest's error.
    fn lift<N: GuestNode>(
        &mut self,
        nodes: Vec<N>,
        object: fn(&mut CallState, Resource<ObjectHandle>) -> wasmtime::Result<Oid>,
    ) -> Result<Value, Error> {
        let mut nodes: Vec<Option<N>> = nodes.into_iter().map(Some).collect();
        let mut budget = Budget::new(self.max_result_bytes);
        self.take_node(&mut nodes, 0, 0, &mut budget, object)
    }

    fn take_node<N: GuestNode>(
        &mut self,
        nodes: &mut [Option<N>],
        index: u32,
        depth: usize,
        budget: &mut Budget,
        object: fn(&mut CallState, Resource<ObjectHandle>) -> wasmtime::Result<Oid>,
    ) -> Result<Value, Error> {
        Ok(match take(nodes, index, depth)?.incoming() {
            Incoming::Nil => Value::Nil,
            Incoming::Bool(b) => Value::Bool(b),
            Incoming::Int(n) => Value::Int(n),
            Incoming::Float(f) => Value::Float(f),
            Incoming::Text(s) => Value::Text(budget.spend_text(s)?),
            Incoming::Bytes(b) => Value::Bytes(budget.spend_bytes(b)?),
            Incoming::List(items) => Value::List(
                items
                    .into_iter()
                    .map(|i| self.take_node(nodes, i, depth + 1, budget, object))
                    .collect::<Result<_, _>>()?,
            ),
            Incoming::Map(entries) => Value::Map(
                entries
                    .into_iter()
                    .map(|(k, i)| {
                        Ok((
                            budget.spend_text(k)?,
                            self.take_node(nodes, i, depth + 1, budget, object)?,
                        ))
                    })
                    .collect::<Result<_, Error>>()?,
            ),
            Incoming::Object(handle) => Value::Object(
                object(self, handle)
                    .map_err(|e| Error::Failed(format!("bad object handle: {e}")))?,
            ),
            Incoming::Blob(b) => Value::Blob(blob_from_wit(&b)?),
            Incoming::Method(m) => Value::Method(method_from_wit(&m)?),
        })
    }
}

/// One node of a value coming from the guest, in the shape both directions share.
enum Incoming {
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
    Bytes(Vec<u8>),
    List(Vec<u32>),
    Map(Vec<(String, u32)>),
    Object(Resource<ObjectHandle>),
    Blob(wit::BlobRef),
    Method(wit::MethodRef),
}

/// A node type of the WIT: lent (`node-param`) or handed over (`node`). Only the
/// shape is read here; what a handle means is the caller's (see `CallState::lift`).
trait GuestNode {
    fn incoming(self) -> Incoming;
}

macro_rules! guest_node {
    ($node:ident) => {
        impl GuestNode for wit::$node {
            fn incoming(self) -> Incoming {
                match self {
                    wit::$node::Nil => Incoming::Nil,
                    wit::$node::Boolean(b) => Incoming::Bool(b),
                    wit::$node::Integer(n) => Incoming::Int(n),
                    wit::$node::Float(f) => Incoming::Float(f),
                    wit::$node::Text(s) => Incoming::Text(s),
                    wit::$node::Bytes(b) => Incoming::Bytes(b),
                    wit::$node::List(items) => Incoming::List(items),
                    wit::$node::Map(entries) => Incoming::Map(entries),
                    wit::$node::Object(handle) => Incoming::Object(handle),
                    wit::$node::Blob(b) => Incoming::Blob(b),
                    wit::$node::Method(m) => Incoming::Method(m),
                }
            }
        }
    };
}

guest_node!(NodeParam);
guest_node!(Node);

/// Values nest at most this deep (a malformed node list could otherwise recurse
/// without end on the host's stack).
const MAX_VALUE_DEPTH: usize = 128;

fn take<T>(nodes: &mut [Option<T>], index: u32, depth: usize) -> Result<T, Error> {
    if depth > MAX_VALUE_DEPTH {
        return Err(Error::Failed(format!(
            "a value from the capability nests deeper than {MAX_VALUE_DEPTH}"
        )));
    }
    nodes.get_mut(index as usize).and_then(Option::take).ok_or_else(|| {
        Error::Failed(format!(
            "a value from the capability has a bad or repeated node index {index}"
        ))
    })
}

/// Counts the bytes of a value as it is converted, against the result-size cap.
struct Budget {
    left: usize,
    cap: usize,
}

impl Budget {
    fn new(cap: usize) -> Self {
        Budget { left: cap, cap }
    }
    fn spend(&mut self, n: usize) -> Result<(), Error> {
        self.left = self.left.checked_sub(n).ok_or(Error::Limit {
            limit: "result size",
            detail: format!("a value from the capability is larger than {} bytes", self.cap),
        })?;
        Ok(())
    }
    fn spend_text(&mut self, s: String) -> Result<String, Error> {
        self.spend(s.len())?;
        Ok(s)
    }
    fn spend_bytes(&mut self, b: Vec<u8>) -> Result<Vec<u8>, Error> {
        self.spend(b.len())?;
        Ok(b)
    }
}

fn blob_to_wit(b: &BlobRef) -> wit::BlobRef {
    wit::BlobRef { hash: b.hash.0.to_vec(), size: b.size }
}

fn blob_from_wit(b: &wit::BlobRef) -> Result<BlobRef, Error> {
    let hash: [u8; 32] = b
        .hash
        .as_slice()
        .try_into()
        .map_err(|_| Error::Failed("a blob hash from the capability is not 32 bytes".into()))?;
    Ok(BlobRef { hash: BlobHash(hash), size: b.size })
}

fn method_to_wit(m: &Method) -> wit::MethodRef {
    match m {
        Method::Native { primitive } => wit::MethodRef::Native(primitive.clone()),
        Method::Component { component, .. } => wit::MethodRef::Component(blob_to_wit(component)),
        Method::Unconfirmed { method, .. } => method_to_wit(method),
    }
}

fn method_from_wit(m: &wit::MethodRef) -> Result<Method, Error> {
    Ok(match m {
        wit::MethodRef::Native(name) => Method::Native { primitive: name.clone() },
        // A capability can store a component method but never grant it anything.
        wit::MethodRef::Component(b) => Method::Component {
            component: blob_from_wit(b)?,
            grants: Vec::new(),
            deadline_ms: None,
        },
    })
}

/// A host error as the WIT error a guest sees.
pub(crate) fn error_to_wit(e: &Error) -> wit::Error {
    let kind = match e {
        Error::BadArguments { .. }
        | Error::InvalidName { .. }
        | Error::ValueTooLarge { .. }
        | Error::BadInput(_) => wit::ErrorKind::BadArguments,
        Error::DoesNotUnderstand { .. } => wit::ErrorKind::DoesNotUnderstand,
        Error::NotPermitted { .. } => wit::ErrorKind::NotPermitted,
        Error::UnknownObject(_)
        | Error::UnknownRoot(_)
        | Error::BlobMissing(_)
        | Error::NotFound { .. } => wit::ErrorKind::NotFound,
        _ => wit::ErrorKind::Failed,
    };
    wit::Error { kind, message: e.to_string() }
}

/// A guest's error as a host error.
pub(crate) fn error_from_wit(capability: &str, e: wit::Error) -> Error {
    let message = format!("{capability}: {}", e.message);
    match e.kind {
        wit::ErrorKind::BadArguments => {
            Error::BadArguments { selector: capability.to_owned(), reason: e.message }
        }
        wit::ErrorKind::NotPermitted => {
            Error::NotPermitted { capability: capability.to_owned(), action: e.message }
        }
        _ => Error::Failed(message),
    }
}

/// Errors that must stop the call (not just answer the guest): conflicts and storage
/// failures belong to the transaction, not to the capability.
fn fatal(e: &Error) -> bool {
    // `Outside`: the send stops here and runs again once the work is done (see
    // `runtime::OutsideWork`); the guest must not see it as an answer.
    matches!(
        e,
        Error::Storage(_)
            | Error::Io { .. }
            | Error::Conflict { .. }
            | Error::Corrupt(_)
            | Error::SendTooDeep { .. }
            | Error::Limit { .. }
            | Error::Outside(_)
    )
}

fn answer<T>(result: Result<T, Error>) -> wasmtime::Result<Result<T, wit::Error>> {
    match result {
        Ok(v) => Ok(Ok(v)),
        Err(e) if fatal(&e) => Err(wasmtime::Error::new(e)),
        Err(e) => Ok(Err(error_to_wit(&e))),
    }
}

impl wit::Host for CallState {}

impl wit::HostObject for CallState {
    fn slot(
        &mut self,
        this: Resource<ObjectHandle>,
        name: String,
    ) -> wasmtime::Result<Result<wit::Value, wit::Error>> {
        let oid = self.oid_of(&this)?;
        let found = self.cx().lookup(oid, &name);
        match found {
            Ok(Some((_, value))) => Ok(Ok(self.lower(&value)?)),
            Ok(None) => Ok(Err(wit::Error {
                kind: wit::ErrorKind::NotFound,
                message: format!("{oid} has no slot `{name}`"),
            })),
            Err(e) => answer(Err(e)),
        }
    }

    fn set_slot(
        &mut self,
        this: Resource<ObjectHandle>,
        name: String,
        value: wit::ValueParam,
    ) -> wasmtime::Result<Result<(), wit::Error>> {
        let oid = self.oid_of(&this)?;
        let value = match self.lift_param(value) {
            Ok(v) => v,
            Err(e) => return answer(Err(e)),
        };
        let result = self.cx().set_slot(oid, &name, &value);
        answer(result)
    }

    fn slot_names(
        &mut self,
        this: Resource<ObjectHandle>,
    ) -> wasmtime::Result<Result<Vec<String>, wit::Error>> {
        let oid = self.oid_of(&this)?;
        let result = self.cx().tx().slots(oid).map(|s| s.into_keys().collect());
        answer(result)
    }

    fn send(
        &mut self,
        this: Resource<ObjectHandle>,
        selector: String,
        args: Vec<wit::ValueParam>,
    ) -> wasmtime::Result<Result<wit::Value, wit::Error>> {
        let oid = self.oid_of(&this)?;
        let mut values = Vec::with_capacity(args.len());
        for a in args {
            match self.lift_param(a) {
                Ok(v) => values.push(v),
                Err(e) => return answer(Err(e)),
            }
        }
        match self.cx().send(oid, &selector, &values) {
            Ok(v) => Ok(Ok(self.lower(&v)?)),
            Err(e) => answer(Err(e)),
        }
    }

    fn clone(
        &mut self,
        this: Resource<ObjectHandle>,
    ) -> wasmtime::Result<Result<Resource<ObjectHandle>, wit::Error>> {
        let oid = self.oid_of(&this)?;
        match self.cx().clone_object(oid) {
            Ok(clone) => Ok(Ok(self.handle(clone)?)),
            Err(e) => answer(Err(e)),
        }
    }

    fn drop(&mut self, rep: Resource<ObjectHandle>) -> wasmtime::Result<()> {
        self.table.delete(rep)?;
        Ok(())
    }
}

/// What the guest SDK's panic hook writes before the panic's message (the SDK's
/// `PANIC_PREFIX`; the WIT contract is the only thing the two share, so it is repeated).
const PANIC_PREFIX: &str = "panicked: ";

impl batos::uvm::log::Host for CallState {
    fn log(&mut self, level: batos::uvm::log::Level, message: String) -> wasmtime::Result<()> {
        use batos::uvm::log::Level;
        let capability = self.name.as_str();
        let message: String = message.chars().take(4096).collect();
        if matches!(level, Level::Error) {
            if let Some(reason) = message.strip_prefix(PANIC_PREFIX) {
                self.panic = Some(reason.to_owned());
            }
        }
        match level {
            Level::Debug => tracing::debug!(capability, "{message}"),
            Level::Info => tracing::info!(capability, "{message}"),
            Level::Warn => tracing::warn!(capability, "{message}"),
            Level::Error => tracing::error!(capability, "{message}"),
        }
        if let Some(observer) = self.log_observer.get() {
            let level = match level {
                Level::Debug => "debug",
                Level::Info => "info",
                Level::Warn => "warn",
                Level::Error => "error",
            };
            observer(capability, level, &message);
        }
        Ok(())
    }
}

impl batos::uvm::clock::Host for CallState {
    fn now(&mut self) -> wasmtime::Result<batos::uvm::clock::Datetime> {
        let d =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        Ok(batos::uvm::clock::Datetime { seconds: d.as_secs(), nanoseconds: d.subsec_nanos() })
    }
}

impl batos::uvm::random::Host for CallState {
    fn bytes(&mut self, len: u32) -> wasmtime::Result<Vec<u8>> {
        let len = len.min(65_536) as usize;
        let mut out = vec![0u8; len];
        rand::fill(out.as_mut_slice());
        Ok(out)
    }

    fn next_u64(&mut self) -> wasmtime::Result<u64> {
        Ok(rand::random())
    }
}

/// A granted capability thinks through the same door as everyone else: a send of
/// `infer` to the image's `pLLM`, so the backend, model and limits its slots name apply,
/// and the call is part of the caller's transaction.
impl batos::uvm::mind::Host for CallState {
    fn complete(&mut self, prompt: String) -> wasmtime::Result<Result<String, wit::Error>> {
        let cx = self.cx();
        let pllm = match cx.tx().root(crate::runtime::PRIMORDIAL_PLLM) {
            Ok(Some(oid)) => oid,
            Ok(None) => {
                return Ok(Err(wit::Error {
                    kind: wit::ErrorKind::Failed,
                    message: "this image has no pLLM object to think with".into(),
                }))
            }
            Err(e) => return answer(Err(e)),
        };
        match cx.send(pllm, "infer", &[Value::Text(prompt)]) {
            Ok(Value::Text(text)) => Ok(Ok(text)),
            Ok(other) => Ok(Err(wit::Error {
                kind: wit::ErrorKind::Failed,
                message: format!("pLLM's infer answered {}, not text", other.type_name()),
            })),
            Err(e) => answer(Err(e)),
        }
    }
}

impl batos::uvm::memory::Host for CallState {
    /// Sends `search:limit:` to the image's `memory` with this capability's authority,
    /// so the one gate decides (`Effect::Recall`), by this path as by any other.
    fn search(
        &mut self,
        query: String,
        limit: u32,
    ) -> wasmtime::Result<Result<Vec<batos::uvm::memory::Passage>, wit::Error>> {
        let cx = self.cx();
        let memory = match cx.tx().root(MEMORY_ROOT) {
            Ok(Some(oid)) => oid,
            Ok(None) => {
                return Ok(Err(wit::Error {
                    kind: wit::ErrorKind::Failed,
                    message: "this image has no memory to search; `batos ingest` makes one".into(),
                }))
            }
            Err(e) => return answer(Err(e)),
        };
        let args = [Value::Text(query), Value::Int(i64::from(limit))];
        let hits = match cx.send(memory, "search:limit:", &args) {
            Ok(Value::List(hits)) => hits,
            Ok(other) => {
                return Ok(Err(wit::Error {
                    kind: wit::ErrorKind::Failed,
                    message: format!(
                        "memory's search:limit: answered {}, not a list",
                        other.type_name()
                    ),
                }))
            }
            Err(e) => return answer(Err(e)),
        };
        let field = |hit: &Value, name: &str| match hit {
            Value::Map(m) => m.get(name).cloned(),
            _ => None,
        };
        Ok(Ok(hits
            .iter()
            .map(|hit| batos::uvm::memory::Passage {
                text: match field(hit, "text") {
                    Some(Value::Text(t)) => t,
                    _ => String::new(),
                },
                source: match field(hit, "source") {
                    Some(Value::Text(t)) => t,
                    _ => String::new(),
                },
                score: match field(hit, "score") {
                    Some(Value::Float(f)) => f,
                    _ => 0.0,
                },
            })
            .collect()))
    }
}

/// The root the memory layer keeps its passages under (`batos-memory` makes it; the
/// sandbox only names it, as it names `pLLM`).
pub const MEMORY_ROOT: &str = "memory";
