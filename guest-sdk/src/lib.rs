//! # batos-guest-sdk
//!
//! Write a batos capability in Rust. A capability is one function that receives the
//! message's receiver and arguments and answers a value:
//!
//! ```no_run
//! use batos_guest_sdk::prelude::*;
//!
//! fn greet(call: Call) -> Result<Value, Error> {
//!     let name = call.text(0)?;
//!     Ok(format!("Hello, {name}!").into())
//! }
//!
//! batos_guest_sdk::capability!(greet);
//! ```
//!
//! Build it as a `cdylib` for `wasm32-unknown-unknown`; `batos plugin add DIR` does that
//! and turns the core module into a component of the `batos:uvm` world. We target
//! core wasm rather than `wasm32-wasip2` on purpose: a `wasip2` build imports WASI
//! interfaces (streams, environment, exit) that the host's audit would have to allow;
//! a core module plus componentization imports exactly what the capability calls.
//!
//! The types underneath are generated from `wit/uvm.wit` by wit-bindgen; the
//! [`Value`] and [`Call`] wrappers keep plugins free of the flat node encoding.

use std::collections::BTreeMap;

/// The bindings generated from `wit/uvm.wit` (the `capability` world).
#[allow(missing_docs, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "capability",
        pub_export_macro: true,
        export_macro_name: "export_capability",
        default_bindings_module: "::batos_guest_sdk::bindings",
    });
}

use bindings::batos::uvm::types as wit;
pub use bindings::batos::uvm::types::{BlobRef, ErrorKind, MethodRef, Object};

/// The structured error a capability returns.
pub type Error = wit::Error;

/// Everything a slot can hold, as a capability sees it.
#[derive(Debug)]
pub enum Value {
    /// Nothing.
    Nil,
    /// A boolean.
    Bool(bool),
    /// A 64-bit signed integer.
    Int(i64),
    /// A 64-bit float.
    Float(f64),
    /// Text.
    Text(String),
    /// Bytes.
    Bytes(Vec<u8>),
    /// A list.
    List(Vec<Value>),
    /// A map with text keys.
    Map(BTreeMap<String, Value>),
    /// An object handle.
    Object(Object),
    /// A blob reference.
    Blob(BlobRef),
    /// A method reference.
    Method(MethodRef),
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Text(s.to_owned())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Text(s)
    }
}
impl From<i64> for Value {
    fn from(n: i64) -> Self {
        Value::Int(n)
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}
impl From<f64> for Value {
    fn from(f: f64) -> Self {
        Value::Float(f)
    }
}
impl From<Object> for Value {
    fn from(o: Object) -> Self {
        Value::Object(o)
    }
}

impl Value {
    /// The name of the value's type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Nil => "nil",
            Value::Bool(_) => "bool",
            Value::Int(_) => "integer",
            Value::Float(_) => "float",
            Value::Text(_) => "text",
            Value::Bytes(_) => "bytes",
            Value::List(_) => "list",
            Value::Map(_) => "map",
            Value::Object(_) => "object",
            Value::Blob(_) => "blob",
            Value::Method(_) => "method",
        }
    }

    fn from_wit(value: wit::Value) -> Value {
        let mut nodes: Vec<Option<wit::Node>> = value.nodes.into_iter().map(Some).collect();
        take_node(&mut nodes, 0, 0)
    }

    fn into_wit(self) -> wit::Value {
        let mut nodes = Vec::new();
        push_node(&mut nodes, self);
        wit::Value { nodes }
    }

    fn to_param(&self) -> wit::ValueParam<'_> {
        let mut nodes = Vec::new();
        push_param(&mut nodes, self);
        wit::ValueParam { nodes }
    }
}

// Values nest at most this deep: the host sends well-formed trees, and this bounds
// recursion on a malformed one.
const MAX_DEPTH: usize = 256;

fn take_node(nodes: &mut [Option<wit::Node>], index: u32, depth: usize) -> Value {
    let Some(node) = nodes.get_mut(index as usize).and_then(Option::take) else {
        return Value::Nil;
    };
    if depth > MAX_DEPTH {
        return Value::Nil;
    }
    match node {
        wit::Node::Nil => Value::Nil,
        wit::Node::Boolean(b) => Value::Bool(b),
        wit::Node::Integer(n) => Value::Int(n),
        wit::Node::Float(f) => Value::Float(f),
        wit::Node::Text(s) => Value::Text(s),
        wit::Node::Bytes(b) => Value::Bytes(b),
        wit::Node::List(items) => {
            Value::List(items.into_iter().map(|i| take_node(nodes, i, depth + 1)).collect())
        }
        wit::Node::Map(entries) => Value::Map(
            entries.into_iter().map(|(k, i)| (k, take_node(nodes, i, depth + 1))).collect(),
        ),
        wit::Node::Object(o) => Value::Object(o),
        wit::Node::Blob(b) => Value::Blob(b),
        wit::Node::Method(m) => Value::Method(m),
    }
}

fn push_node(nodes: &mut Vec<wit::Node>, value: Value) -> u32 {
    let index = nodes.len();
    nodes.push(wit::Node::Nil);
    let node = match value {
        Value::Nil => wit::Node::Nil,
        Value::Bool(b) => wit::Node::Boolean(b),
        Value::Int(n) => wit::Node::Integer(n),
        Value::Float(f) => wit::Node::Float(f),
        Value::Text(s) => wit::Node::Text(s),
        Value::Bytes(b) => wit::Node::Bytes(b),
        Value::List(items) => {
            wit::Node::List(items.into_iter().map(|v| push_node(nodes, v)).collect())
        }
        Value::Map(map) => {
            wit::Node::Map(map.into_iter().map(|(k, v)| (k, push_node(nodes, v))).collect())
        }
        Value::Object(o) => wit::Node::Object(o),
        Value::Blob(b) => wit::Node::Blob(b),
        Value::Method(m) => wit::Node::Method(m),
    };
    nodes[index] = node;
    index as u32
}

fn push_param<'a>(nodes: &mut Vec<wit::NodeParam<'a>>, value: &'a Value) -> u32 {
    let index = nodes.len();
    nodes.push(wit::NodeParam::Nil);
    let node = match value {
        Value::Nil => wit::NodeParam::Nil,
        Value::Bool(b) => wit::NodeParam::Boolean(*b),
        Value::Int(n) => wit::NodeParam::Integer(*n),
        Value::Float(f) => wit::NodeParam::Float(*f),
        Value::Text(s) => wit::NodeParam::Text(s.clone()),
        Value::Bytes(b) => wit::NodeParam::Bytes(b.clone()),
        Value::List(items) => {
            wit::NodeParam::List(items.iter().map(|v| push_param(nodes, v)).collect())
        }
        Value::Map(map) => wit::NodeParam::Map(
            map.iter().map(|(k, v)| (k.clone(), push_param(nodes, v))).collect(),
        ),
        Value::Object(o) => wit::NodeParam::Object(o),
        Value::Blob(b) => wit::NodeParam::Blob(b.clone()),
        Value::Method(m) => wit::NodeParam::Method(m.clone()),
    };
    nodes[index] = node;
    index as u32
}

/// Makes an [`Error`].
pub fn error(kind: ErrorKind, message: impl Into<String>) -> Error {
    Error { kind, message: message.into() }
}

/// Slot access and sends on an object handle, with the SDK's [`Value`].
pub trait ObjectExt {
    /// Reads a slot, own or inherited.
    fn get(&self, name: &str) -> Result<Value, Error>;
    /// Writes an own slot (the receiver, or a clone made in this call).
    fn set(&self, name: &str, value: &Value) -> Result<(), Error>;
    /// Sends a message.
    fn send_message(&self, selector: &str, args: &[Value]) -> Result<Value, Error>;
}

impl ObjectExt for Object {
    fn get(&self, name: &str) -> Result<Value, Error> {
        self.slot(name).map(Value::from_wit)
    }

    fn set(&self, name: &str, value: &Value) -> Result<(), Error> {
        self.set_slot(name, &value.to_param())
    }

    fn send_message(&self, selector: &str, args: &[Value]) -> Result<Value, Error> {
        let params: Vec<wit::ValueParam<'_>> = args.iter().map(Value::to_param).collect();
        self.send(selector, &params).map(Value::from_wit)
    }
}

/// One message, as the capability receives it.
pub struct Call {
    /// The object the message was sent to.
    pub receiver: Object,
    /// The arguments.
    pub args: Vec<Value>,
}

impl Call {
    /// Argument `i` (0-based).
    pub fn arg(&self, i: usize) -> Result<&Value, Error> {
        self.args.get(i).ok_or_else(|| {
            error(
                ErrorKind::BadArguments,
                format!("argument {} is missing ({} given)", i + 1, self.args.len()),
            )
        })
    }

    fn wrong(&self, i: usize, expected: &str) -> Error {
        let got = self.args.get(i).map_or("nothing", Value::type_name);
        error(ErrorKind::BadArguments, format!("argument {} must be {expected}, got {got}", i + 1))
    }

    /// Argument `i` as text.
    pub fn text(&self, i: usize) -> Result<&str, Error> {
        match self.arg(i)? {
            Value::Text(s) => Ok(s),
            _ => Err(self.wrong(i, "text")),
        }
    }

    /// Argument `i` as an integer.
    pub fn int(&self, i: usize) -> Result<i64, Error> {
        match self.arg(i)? {
            Value::Int(n) => Ok(*n),
            _ => Err(self.wrong(i, "an integer")),
        }
    }

    /// Argument `i` as an object handle.
    pub fn object(&self, i: usize) -> Result<&Object, Error> {
        match self.arg(i)? {
            Value::Object(o) => Ok(o),
            _ => Err(self.wrong(i, "an object")),
        }
    }
}

/// Writes a line to the host's log.
pub fn log(message: &str) {
    bindings::batos::uvm::log::log(bindings::batos::uvm::log::Level::Info, message);
}

/// Wall-clock time as (seconds, nanoseconds) since the Unix epoch. Needs the `clock`
/// grant in the plugin's manifest; without it the audit refuses the plugin.
pub fn now() -> (u64, u32) {
    let t = bindings::batos::uvm::clock::now();
    (t.seconds, t.nanoseconds)
}

/// Eight random bytes from the host, as a `u64`. Needs the `random` grant.
pub fn random_u64() -> u64 {
    bindings::batos::uvm::random::next_u64()
}

/// Asks the image's mind (`pLLM`, with the backend and model its slots name) to answer
/// `prompt`. Needs the `mind` grant. The call is part of the caller's transaction and
/// takes as long as the model does: seconds, not microseconds.
pub fn complete(prompt: &str) -> Result<String, Error> {
    bindings::batos::uvm::mind::complete(prompt)
}

#[doc(hidden)]
pub fn __invoke(
    receiver: Object,
    args: Vec<wit::Value>,
    f: fn(Call) -> Result<Value, Error>,
) -> Result<wit::Value, Error> {
    let call = Call { receiver, args: args.into_iter().map(Value::from_wit).collect() };
    f(call).map(Value::into_wit)
}

/// Exports `f: fn(Call) -> Result<Value, Error>` as the capability's `invoke`.
#[macro_export]
macro_rules! capability {
    ($f:path) => {
        struct __BatosCapability;
        impl $crate::bindings::Guest for __BatosCapability {
            fn invoke(
                receiver: $crate::Object,
                args: ::std::vec::Vec<$crate::bindings::batos::uvm::types::Value>,
            ) -> ::std::result::Result<$crate::bindings::batos::uvm::types::Value, $crate::Error> {
                $crate::__invoke(receiver, args, $f)
            }
        }
        $crate::bindings::export_capability!(__BatosCapability with_types_in $crate::bindings);
    };
}

/// Slot access and sends for methods that use their receiver, in terms a small model
/// gets right. Synthesised methods get these in scope (`use batos_guest_sdk::helpers::*`):
/// a missing or mistyped slot reads as 0 or empty, and a send that fails or answers
/// another type panics with its reason, which the host reports as the method's trap.
pub mod helpers {
    use crate::{Object, ObjectExt, Value};

    /// Typed slot access and sends on an object.
    pub trait Receiver {
        /// The integer slot `name`, if it holds one.
        fn get_int(&self, name: &str) -> Option<i64>;
        /// Writes the integer slot `name` (a refused write is ignored; the gate decides).
        fn set_int(&self, name: &str, value: i64);
        /// The text slot `name`, if it holds text.
        fn get_text(&self, name: &str) -> Option<String>;
        /// Writes the text slot `name`.
        fn set_text(&self, name: &str, value: impl AsRef<str>);
        /// Sends `selector` with integer arguments; the answer must be an integer.
        fn send_int(&self, selector: &str, args: &[i64]) -> i64;
        /// Sends `selector` with text arguments; the answer must be text.
        fn send_text(&self, selector: &str, args: &[&str]) -> String;
    }

    impl Receiver for Object {
        fn get_int(&self, name: &str) -> Option<i64> {
            match self.get(name) {
                Ok(Value::Int(n)) => Some(n),
                _ => None,
            }
        }
        fn set_int(&self, name: &str, value: i64) {
            let _ = self.set(name, &Value::Int(value));
        }
        fn get_text(&self, name: &str) -> Option<String> {
            match self.get(name) {
                Ok(Value::Text(s)) => Some(s),
                _ => None,
            }
        }
        fn set_text(&self, name: &str, value: impl AsRef<str>) {
            let _ = self.set(name, &Value::Text(value.as_ref().to_owned()));
        }
        fn send_int(&self, selector: &str, args: &[i64]) -> i64 {
            let args: Vec<Value> = args.iter().map(|n| Value::Int(*n)).collect();
            match self.send_message(selector, &args) {
                Ok(Value::Int(n)) => n,
                Ok(_) => panic!("{selector} did not answer an integer"),
                Err(e) => panic!("{selector} failed: {}", e.message),
            }
        }
        fn send_text(&self, selector: &str, args: &[&str]) -> String {
            let args: Vec<Value> = args.iter().map(|s| Value::Text((*s).to_owned())).collect();
            match self.send_message(selector, &args) {
                Ok(Value::Text(s)) => s,
                Ok(_) => panic!("{selector} did not answer text"),
                Err(e) => panic!("{selector} failed: {}", e.message),
            }
        }
    }

    /// The integer slot `name` of `this`, 0 when missing.
    pub fn get_int(this: &Object, name: &str) -> i64 {
        this.get_int(name).unwrap_or(0)
    }
    /// Writes the integer slot `name` of `this`.
    pub fn set_int(this: &Object, name: &str, value: i64) {
        this.set_int(name, value)
    }
    /// The text slot `name` of `this`, empty when missing.
    pub fn get_text(this: &Object, name: &str) -> String {
        this.get_text(name).unwrap_or_default()
    }
    /// Writes the text slot `name` of `this`.
    pub fn set_text(this: &Object, name: &str, value: impl AsRef<str>) {
        this.set_text(name, value)
    }
    /// Sends `selector` to `this` with integer arguments, answering an integer.
    pub fn send_int(this: &Object, selector: &str, args: &[i64]) -> i64 {
        this.send_int(selector, args)
    }
    /// Sends `selector` to `this` with text arguments, answering text.
    pub fn send_text(this: &Object, selector: &str, args: &[&str]) -> String {
        this.send_text(selector, args)
    }
}

/// What a capability usually needs.
pub mod prelude {
    pub use crate::{capability, error, log, Call, Error, ErrorKind, Object, ObjectExt, Value};
}
