//! The value types a synthesised function takes and answers — every kind a batos value
//! has — and how Rust spells them. The conversions themselves are the guest SDK's
//! (`FromValue`/`IntoValue`, through `#[capability]`); the host only needs the types
//! to ask for a signature, to read what the model declared, and to check an answer.

use crate::image::Value;

/// A value type, with its Rust spelling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Type {
    /// `i64`
    Int,
    /// `f64`
    Float,
    /// `bool`
    Bool,
    /// `String`
    Text,
    /// `Vec<T>`
    List(Box<Type>),
    /// `BTreeMap<String, T>`
    Map(Box<Type>),
    /// `Option<T>`: nil or a `T`.
    Option(Box<Type>),
    /// `Object`: a handle to an object of the image.
    Object,
    /// `Value`: anything (mixed lists, blobs, methods, an empty list's items).
    Any,
}

impl Type {
    /// The type of a value. Lists and maps take the type their items share: integers
    /// and floats together are floats; items of no common type make `Value`.
    pub fn of(value: &Value) -> Type {
        match value {
            Value::Int(_) => Type::Int,
            Value::Float(_) => Type::Float,
            Value::Bool(_) => Type::Bool,
            Value::Text(_) => Type::Text,
            Value::Nil => Type::Option(Box::new(Type::Any)),
            Value::Bytes(_) => Type::List(Box::new(Type::Int)),
            Value::List(items) => Type::List(Box::new(common(items.iter()))),
            Value::Map(map) => Type::Map(Box::new(common(map.values()))),
            Value::Object(_) => Type::Object,
            _ => Type::Any,
        }
    }

    /// The type both `self` and `other` values belong to.
    pub fn unify(&self, other: &Type) -> Type {
        match (self, other) {
            (a, b) if a == b => a.clone(),
            (Type::Any, t) | (t, Type::Any) => t.clone(),
            (Type::Int, Type::Float) | (Type::Float, Type::Int) => Type::Float,
            (Type::Option(a), Type::Option(b)) => Type::Option(Box::new(a.unify(b))),
            (Type::Option(a), t) | (t, Type::Option(a)) => Type::Option(Box::new(a.unify(t))),
            (Type::List(a), Type::List(b)) => Type::List(Box::new(a.unify(b))),
            (Type::Map(a), Type::Map(b)) => Type::Map(Box::new(a.unify(b))),
            _ => Type::Any,
        }
    }

    /// Whether `value` is of this type (an integer is not a float: an answer declared
    /// `f64` always carries a float).
    pub fn fits(&self, value: &Value) -> bool {
        match (self, value) {
            (Type::Any, _) => true,
            (Type::Option(_), Value::Nil) => true,
            (Type::Option(t), v) => t.fits(v),
            (Type::Int, Value::Int(_))
            | (Type::Float, Value::Float(_))
            | (Type::Bool, Value::Bool(_))
            | (Type::Text, Value::Text(_))
            | (Type::Object, Value::Object(_)) => true,
            (Type::List(t), Value::List(items)) => items.iter().all(|v| t.fits(v)),
            (Type::List(t), Value::Bytes(_)) => **t == Type::Int,
            (Type::Map(t), Value::Map(map)) => map.values().all(|v| t.fits(v)),
            _ => false,
        }
    }

    /// How Rust spells it.
    pub fn rust(&self) -> String {
        match self {
            Type::Int => "i64".into(),
            Type::Float => "f64".into(),
            Type::Bool => "bool".into(),
            Type::Text => "String".into(),
            Type::List(t) => format!("Vec<{}>", t.rust()),
            Type::Map(t) => format!("BTreeMap<String, {}>", t.rust()),
            Type::Option(t) => format!("Option<{}>", t.rust()),
            Type::Object => "Object".into(),
            Type::Any => "Value".into(),
        }
    }
}

/// The type a sequence of values shares.
fn common<'v>(values: impl Iterator<Item = &'v Value>) -> Type {
    values.map(Type::of).reduce(|a, b| a.unify(&b)).unwrap_or(Type::Any)
}

pub(super) const INTEGERS: [&str; 12] =
    ["i8", "i16", "i32", "i64", "i128", "isize", "u8", "u16", "u32", "u64", "u128", "usize"];

/// A Rust type as written, without spaces and lifetimes (`&'a str` → `&str`).
pub(super) fn normalize(rust: &str) -> String {
    let mut out = String::new();
    let mut chars = rust.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' {
            while chars.peek().is_some_and(|c| c.is_alphanumeric() || *c == '_') {
                chars.next();
            }
        } else if !c.is_whitespace() {
            out.push(c);
        }
    }
    out.replace("std::string::String", "String")
        .replace("std::vec::Vec", "Vec")
        .replace("std::collections::", "")
}

/// The parameters of a generic type as written: `HashMap<String,Vec<i64>>` with `HashMap`
/// gives `["String", "Vec<i64>"]`.
fn generic_args<'t>(rust: &'t str, name: &str) -> Option<Vec<&'t str>> {
    let inner = rust.strip_prefix(name)?.strip_prefix('<')?.strip_suffix('>')?;
    let (mut depth, mut start, mut args) = (0i32, 0, Vec::new());
    for (i, c) in inner.char_indices() {
        match c {
            '<' | '(' | '[' => depth += 1,
            '>' | ')' | ']' => depth -= 1,
            ',' if depth == 0 => {
                args.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    args.push(&inner[start..]);
    Some(args)
}

/// The batos type a declared Rust type (normalized) carries as.
pub(super) fn type_of_rust(rust: &str) -> Option<Type> {
    let one = |name: &str| {
        generic_args(rust, name).and_then(|a| (a.len() == 1).then(|| type_of_rust(a[0])).flatten())
    };
    let rust = rust.strip_prefix("&mut").or_else(|| rust.strip_prefix('&')).unwrap_or(rust);
    Some(match rust {
        t if INTEGERS.contains(&t) => Type::Int,
        "f32" | "f64" => Type::Float,
        "bool" => Type::Bool,
        "String" | "str" | "char" => Type::Text,
        "Object" => Type::Object,
        "Value" => Type::Any,
        t if t.starts_with('[') && t.ends_with(']') && !t.contains(';') => {
            Type::List(Box::new(type_of_rust(&t[1..t.len() - 1])?))
        }
        t if t.starts_with('(') && t.ends_with(')') && t.len() > 2 => {
            Type::List(Box::new(Type::Any))
        }
        t => {
            for list in ["Vec", "VecDeque", "HashSet", "BTreeSet"] {
                if t.starts_with(list) {
                    return one(list).map(|item| Type::List(Box::new(item)));
                }
            }
            for map in ["HashMap", "BTreeMap"] {
                if let Some(args) = generic_args(t, map) {
                    return (args.len() == 2)
                        .then(|| type_of_rust(args[1]).map(|v| Type::Map(Box::new(v))))
                        .flatten();
                }
            }
            if t.starts_with("Option") {
                return one("Option").map(|v| Type::Option(Box::new(v)));
            }
            if let Some(args) = generic_args(t, "Result") {
                return type_of_rust(args.first()?);
            }
            return None;
        }
    })
}
