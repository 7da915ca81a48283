//! [`Value`]: everything a slot can hold, as a capability sees it, and its conversion to
//! and from the flat node encoding of the WIT contract.

use std::collections::BTreeMap;

use crate::bindings::batos::uvm::types as wit;
use crate::{BlobRef, MethodRef, Object};

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

    pub(crate) fn from_wit(value: wit::Value) -> Value {
        let mut nodes: Vec<Option<wit::Node>> = value.nodes.into_iter().map(Some).collect();
        take_node(&mut nodes, 0, 0)
    }

    pub(crate) fn into_wit(self) -> wit::Value {
        let mut nodes = Vec::new();
        push_node(&mut nodes, self);
        wit::Value { nodes }
    }

    pub(crate) fn to_param(&self) -> wit::ValueParam<'_> {
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

/// Values compare by content; objects by handle (two handles to one object given in
/// one call are one handle), blobs by hash, methods by what they name.
impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Nil, Value::Nil) => true,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::Float(a), Value::Float(b)) => a == b,
            (Value::Text(a), Value::Text(b)) => a == b,
            (Value::Bytes(a), Value::Bytes(b)) => a == b,
            (Value::List(a), Value::List(b)) => a == b,
            (Value::Map(a), Value::Map(b)) => a == b,
            (Value::Object(a), Value::Object(b)) => a.handle() == b.handle(),
            (Value::Blob(a), Value::Blob(b)) => a.hash == b.hash && a.size == b.size,
            (
                Value::Method(wit::MethodRef::Native(a)),
                Value::Method(wit::MethodRef::Native(b)),
            ) => a == b,
            (
                Value::Method(wit::MethodRef::Component(a)),
                Value::Method(wit::MethodRef::Component(b)),
            ) => a.hash == b.hash,
            _ => false,
        }
    }
}
