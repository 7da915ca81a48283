//! What a slot can hold: [`Value`], and the identities it refers to ([`Oid`], [`BlobRef`]).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The identity of an object in the image. Shown as `#42`.
///
/// Oids are never reused: the allocator starts past the largest oid ever stored, even
/// when that object has since been undone or packed away.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Oid(pub u64);

impl fmt::Display for Oid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

impl FromStr for Oid {
    type Err = String;
    /// Parses `#42` (the `#` is required, so that names and oids never look alike).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits = s
            .strip_prefix('#')
            .ok_or_else(|| format!("`{s}` is not an oid: oids are written `#42`"))?;
        digits
            .parse::<u64>()
            .map(Oid)
            .map_err(|_| format!("`{s}` is not an oid: expected `#` followed by a number"))
    }
}

/// A blake3 hash naming a blob. Shown as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BlobHash(pub [u8; 32]);

impl BlobHash {
    /// The hash of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        BlobHash(*blake3::hash(bytes).as_bytes())
    }

    /// Lowercase hex, as used for file names and display.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for BlobHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for BlobHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlobHash({})", self.to_hex())
    }
}

impl FromStr for BlobHash {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out)
            .map_err(|_| format!("`{s}` is not a blob hash: expected 64 hex digits"))?;
        Ok(BlobHash(out))
    }
}

/// A reference to a blob in the image's blob store: its hash and its size in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BlobRef {
    /// The blake3 hash of the content; also the file's name.
    pub hash: BlobHash,
    /// The content's length.
    pub size: u64,
}

/// Executable behaviour held in a slot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Method {
    /// A Rust function registered with the runtime under this name.
    Native {
        /// The registered name (e.g. `clone`).
        primitive: String,
    },
    /// A WebAssembly component stored as a blob, run by the sandbox layer.
    Component {
        /// The component's bytes.
        component: BlobRef,
        /// The optional interfaces it may import (`clock`, `random`, `mind`), as
        /// granted by its manifest. Only the sandbox's gate interprets them.
        grants: Vec<String>,
        /// Its wall-time limit per call, when not the sandbox's default.
        deadline_ms: Option<u32>,
    },
    /// A synthesised method installed on the agreement of its candidates alone, with
    /// no example from the caller: it runs as `method` does, and is shown as
    /// unconfirmed until an example the caller gives passes (which installs `method`
    /// itself) or fails (which removes it and synthesises anew).
    Unconfirmed {
        /// What runs.
        method: Box<Method>,
        /// Why it is unconfirmed, for people.
        reason: String,
    },
}

impl Method {
    /// The method that runs: this one, or what an [`Method::Unconfirmed`] wraps.
    pub fn runnable(&self) -> &Method {
        match self {
            Method::Unconfirmed { method, .. } => method.runnable(),
            other => other,
        }
    }
}

/// Everything a slot can hold.
///
/// The serialised form (postcard, variant index first) is part of the image format:
/// new variants are only ever appended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
pub enum Value {
    /// Nothing.
    #[default]
    Nil,
    /// A boolean.
    Bool(bool),
    /// A 64-bit signed integer.
    Int(i64),
    /// A 64-bit float.
    Float(f64),
    /// UTF-8 text.
    Text(String),
    /// Raw bytes (small ones; large data belongs in a blob).
    Bytes(Vec<u8>),
    /// An ordered list.
    List(Vec<Value>),
    /// A map with text keys, kept sorted.
    Map(BTreeMap<String, Value>),
    /// A reference to an object.
    Object(Oid),
    /// A reference to a blob.
    Blob(BlobRef),
    /// Executable behaviour.
    Method(Method),
}

impl Value {
    /// A short name of the value's type, for error messages.
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

    /// Calls `f` on every object reference and blob reference inside this value,
    /// however deeply nested (what `pack` needs to mark reachability).
    pub fn visit_refs(&self, f: &mut impl FnMut(Ref)) {
        match self {
            Value::Object(oid) => f(Ref::Object(*oid)),
            Value::Blob(blob) => f(Ref::Blob(*blob)),
            Value::Method(method) => {
                if let Method::Component { component, .. } = method.runnable() {
                    f(Ref::Blob(*component));
                }
            }
            Value::List(items) => items.iter().for_each(|v| v.visit_refs(f)),
            Value::Map(map) => map.values().for_each(|v| v.visit_refs(f)),
            Value::Nil
            | Value::Bool(_)
            | Value::Int(_)
            | Value::Float(_)
            | Value::Text(_)
            | Value::Bytes(_) => {}
        }
    }
}

/// A reference found inside a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ref {
    /// An object reference.
    Object(Oid),
    /// A blob reference.
    Blob(BlobRef),
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_owned())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}
impl From<Oid> for Value {
    fn from(v: Oid) -> Self {
        Value::Object(v)
    }
}
impl From<BlobRef> for Value {
    fn from(v: BlobRef) -> Self {
        Value::Blob(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oid_round_trips_through_text() {
        assert_eq!("#42".parse::<Oid>(), Ok(Oid(42)));
        assert_eq!(Oid(7).to_string(), "#7");
        assert!("42".parse::<Oid>().is_err());
        assert!("#x".parse::<Oid>().is_err());
    }

    #[test]
    fn visit_refs_finds_nested_references() {
        let blob = BlobRef { hash: BlobHash::of(b"x"), size: 1 };
        let v = Value::List(vec![
            Value::Object(Oid(1)),
            Value::Map([("k".to_owned(), Value::Blob(blob))].into()),
            Value::Method(Method::Component { component: blob, grants: vec![], deadline_ms: None }),
        ]);
        let mut seen = Vec::new();
        v.visit_refs(&mut |r| seen.push(r));
        assert_eq!(seen, vec![Ref::Object(Oid(1)), Ref::Blob(blob), Ref::Blob(blob)]);
    }
}
