//! The value types a synthesised function takes and answers, and how Rust spells,
//! lifts and lowers them.

use crate::image::Value;

/// The value types a synthesised function can take and answer, with their Rust
/// spelling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Type {
    /// `i64`
    Int,
    /// `f64`
    Float,
    /// `bool`
    Bool,
    /// `String`
    Text,
    /// `Vec<i64>`
    IntList,
    /// `Vec<String>`
    TextList,
}

impl Type {
    /// The type of a value, when it is one of these.
    pub fn of(value: &Value) -> Option<Type> {
        Some(match value {
            Value::Int(_) => Type::Int,
            Value::Float(_) => Type::Float,
            Value::Bool(_) => Type::Bool,
            Value::Text(_) => Type::Text,
            Value::List(items) if items.iter().all(|v| matches!(v, Value::Int(_))) => Type::IntList,
            Value::List(items) if items.iter().all(|v| matches!(v, Value::Text(_))) => {
                Type::TextList
            }
            _ => return None,
        })
    }

    /// How Rust spells it.
    pub fn rust(self) -> &'static str {
        match self {
            Type::Int => "i64",
            Type::Float => "f64",
            Type::Bool => "bool",
            Type::Text => "String",
            Type::IntList => "Vec<i64>",
            Type::TextList => "Vec<String>",
        }
    }

    /// Guest code turning argument `i` of `call` into this type.
    pub(super) fn lift(self, i: usize) -> String {
        let item = |pattern: &str| {
            format!(
                "match call.arg({i})? {{ Value::List(items) => items.iter().map(|v| match v {{ {pattern}, _ => Err(error(ErrorKind::BadArguments, \"argument {n} must be a list of {t}\")) }}).collect::<Result<_, _>>()?, _ => return Err(error(ErrorKind::BadArguments, \"argument {n} must be a list\")) }}",
                n = i + 1,
                t = if self == Type::IntList { "integers" } else { "texts" }
            )
        };
        match self {
            Type::Int => format!("call.int({i})?"),
            Type::Text => format!("call.text({i})?.to_owned()"),
            Type::Float => format!("match call.arg({i})? {{ Value::Float(f) => *f, Value::Int(n) => *n as f64, _ => return Err(error(ErrorKind::BadArguments, \"argument {} must be a number\")) }}", i + 1),
            Type::Bool => format!("match call.arg({i})? {{ Value::Bool(b) => *b, _ => return Err(error(ErrorKind::BadArguments, \"argument {} must be a boolean\")) }}", i + 1),
            Type::IntList => item("Value::Int(n) => Ok(*n)"),
            Type::TextList => item("Value::Text(s) => Ok(s.clone())"),
        }
    }

    /// Guest code turning `r` of this type into a `Value`.
    pub(super) fn lower(self) -> &'static str {
        match self {
            Type::Int => "Value::Int(r)",
            Type::Float => "Value::Float(r)",
            Type::Bool => "Value::Bool(r)",
            Type::Text => "Value::Text(r)",
            Type::IntList => "Value::List(r.into_iter().map(Value::Int).collect())",
            Type::TextList => "Value::List(r.into_iter().map(Value::Text).collect())",
        }
    }
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
    out.replace("std::string::String", "String").replace("std::vec::Vec", "Vec")
}

/// The batos type a declared Rust answer type carries as.
pub(super) fn type_of_rust(rust: &str) -> Option<Type> {
    let element =
        |t: &str| t.strip_prefix("Vec<").and_then(|t| t.strip_suffix('>')).map(str::to_owned);
    Some(match rust {
        t if INTEGERS.contains(&t) => Type::Int,
        "f32" | "f64" => Type::Float,
        "bool" => Type::Bool,
        "String" | "&str" | "char" => Type::Text,
        t => match element(t).as_deref() {
            Some(e) if INTEGERS.contains(&e) => Type::IntList,
            Some("String" | "&str" | "char") => Type::TextList,
            _ => return None,
        },
    })
}

/// Guest code turning the answer `r` of declared type `rust` into a `Value`.
pub(super) fn lower_declared(rust: &str) -> Option<String> {
    Some(match type_of_rust(rust)? {
        Type::Int => "Value::Int(r as i64)".into(),
        Type::Float => "Value::Float(r as f64)".into(),
        Type::Bool => "Value::Bool(r)".into(),
        Type::Text => "Value::Text(r.to_string())".into(),
        Type::IntList => {
            "Value::List(r.into_iter().map(|x| Value::Int(x as i64)).collect())".into()
        }
        Type::TextList => {
            "Value::List(r.into_iter().map(|x| Value::Text(x.to_string())).collect())".into()
        }
    })
}

/// Guest code passing the lifted argument `a` (of batos type `t`) as declared type `rust`.
pub(super) fn convert_arg(a: &str, t: Type, rust: Option<&str>) -> String {
    let Some(rust) = rust else { return a.to_owned() };
    let element = |prefix: &str| {
        rust.strip_prefix(prefix)
            .and_then(|r| r.strip_suffix(if prefix.ends_with('[') { "]" } else { ">" }))
            .map(str::to_owned)
    };
    let numbers = |e: &str| format!("{a}.iter().map(|x| *x as {e}).collect::<Vec<{e}>>()");
    let texts = "{a}.iter().map(|s| s.as_str()).collect::<Vec<&str>>()".replace("{a}", a);
    match t {
        Type::Int | Type::Float if INTEGERS.contains(&rust) || rust == "f32" || rust == "f64" => {
            format!("{a} as {rust}")
        }
        Type::Text if rust == "&str" => format!("{a}.as_str()"),
        Type::Text if rust == "&String" => format!("&{a}"),
        Type::IntList => match (element("Vec<"), element("&["), element("&Vec<")) {
            (Some(e), _, _) if INTEGERS.contains(&e.as_str()) => numbers(&e),
            (_, Some(e), _) | (_, _, Some(e)) if INTEGERS.contains(&e.as_str()) => {
                format!("&{}", numbers(&e))
            }
            _ => a.to_owned(),
        },
        Type::TextList => match rust {
            "&[String]" | "&Vec<String>" => format!("&{a}"),
            "Vec<&str>" => texts,
            "&[&str]" | "&Vec<&str>" => format!("&{texts}"),
            _ => a.to_owned(),
        },
        _ => a.to_owned(),
    }
}
