//! A synthesised method's Rust candidate: the typed signature a message implies, the
//! function taken out of a model's answer, and the fixed code around it, built in a
//! warm workspace into a component.
//!
//! The model writes only the function (`fn factorial(n: i64) -> i64 { … }`); the host
//! supplies the imports, the argument conversions and the export macro, so a small
//! model cannot break them. The workspace keeps one crate whose `src/lib.rs` is
//! rewritten per candidate: its dependencies stay compiled, so a candidate builds in
//! about a second after the first.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::{Error, Result};
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
            Value::List(items) if items.iter().all(|v| matches!(v, Value::Text(_))) => Type::TextList,
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
    fn lift(self, i: usize) -> String {
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
    fn lower(self) -> &'static str {
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

/// The Rust function a message asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signature {
    /// The function's name: the selector in snake case (`reverseWords:` → `reverse_words`).
    pub name: String,
    /// Parameter types, one per argument.
    pub params: Vec<Type>,
    /// What it answers.
    pub returns: Type,
    /// Whether it takes its receiver as `this: &Object` first, to keep state in slots.
    pub receiver: bool,
}

impl Signature {
    /// The signature for sending `selector` with `args`, answering `returns` (from the
    /// examples' expected results, when there are any; else the first argument's type).
    pub fn infer(selector: &str, args: &[Value], returns: Option<Type>, receiver: bool) -> Result<Signature> {
        let name = rust_name(selector).ok_or_else(|| Error::Failed(format!("`{selector}` cannot name a method: use letters, digits and colons, starting with a letter")))?;
        let params = args
            .iter()
            .enumerate()
            .map(|(i, v)| Type::of(v).ok_or_else(|| Error::Failed(format!("argument {} is {}, which synthesised methods do not take yet (integers, floats, booleans, text and lists of integers or text)", i + 1, v.type_name()))))
            .collect::<Result<Vec<_>>>()?;
        let returns = returns.or_else(|| params.first().copied()).unwrap_or(Type::Text);
        Ok(Signature { name, params, returns, receiver })
    }

    /// `fn name(a: i64, b: String) -> i64`, as the model is asked to write it.
    pub fn rust(&self) -> String {
        let mut params: Vec<String> = self.params.iter().enumerate().map(|(i, t)| format!("{}: {}", param_name(i), t.rust())).collect();
        if self.receiver {
            params.insert(0, "this: &Object".into());
        }
        format!("fn {}({}) -> {}", self.name, params.join(", "), self.returns.rust())
    }

    /// The whole crate source: the fixed code around `function`.
    pub fn wrap(&self, function: &str) -> String {
        let lifts: Vec<String> = self.params.iter().enumerate().map(|(i, t)| format!("    let {} = {};\n", param_name(i), t.lift(i))).collect();
        let mut names: Vec<String> = (0..self.params.len()).map(param_name).collect();
        if self.receiver {
            names.insert(0, "&call.receiver".into());
        }
        format!(
            "#![allow(unused, clippy::all)]\nuse batos_guest_sdk::prelude::*;\n{STATE_HELPERS}\n{function}\n\nfn __batos_entry(call: Call) -> Result<Value, Error> {{\n    if call.args.len() != {n} {{\n        return Err(error(ErrorKind::BadArguments, \"expects {n} argument(s)\"));\n    }}\n{lifts}    let r = {name}({names});\n    Ok({lower})\n}}\n\ncapability!(__batos_entry);\n",
            n = self.params.len(),
            lifts = lifts.concat(),
            name = self.name,
            names = names.join(", "),
            lower = self.returns.lower(),
        )
    }
}

/// Slot access for stateful methods, in terms a small model gets right.
const STATE_HELPERS: &str = r#"
fn get_int(this: &Object, name: &str) -> i64 { match this.get(name) { Ok(Value::Int(n)) => n, _ => 0 } }
fn set_int(this: &Object, name: &str, value: i64) { let _ = this.set(name, &Value::Int(value)); }
fn get_text(this: &Object, name: &str) -> String { match this.get(name) { Ok(Value::Text(s)) => s, _ => String::new() } }
fn set_text(this: &Object, name: &str, value: String) { let _ = this.set(name, &Value::Text(value)); }
"#;

fn param_name(i: usize) -> String {
    ["a", "b", "c", "d", "e", "f", "g", "h"].get(i).map_or_else(|| format!("arg{i}"), |s| (*s).to_owned())
}

/// `reverseWords:` → `reverse_words`; `None` when the selector cannot be one.
pub fn rust_name(selector: &str) -> Option<String> {
    let mut name = String::new();
    for part in selector.split(':').filter(|p| !p.is_empty()) {
        if !name.is_empty() {
            name.push('_');
        }
        for c in part.chars() {
            if c.is_ascii_uppercase() {
                if !name.is_empty() && !name.ends_with('_') {
                    name.push('_');
                }
                name.push(c.to_ascii_lowercase());
            } else if c.is_ascii_alphanumeric() || c == '_' {
                name.push(c);
            } else {
                return None;
            }
        }
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return None;
    }
    const KEYWORDS: [&str; 12] = ["fn", "let", "if", "else", "match", "loop", "while", "for", "type", "use", "mod", "impl"];
    if KEYWORDS.contains(&name.as_str()) {
        name.push('_');
    }
    Some(name)
}

/// The function `name` out of a model's answer: the first fenced code block that
/// defines it (or the answer itself when it is bare code). `None` when there is none.
pub fn extract_function(answer: &str, name: &str) -> Option<String> {
    let defines = |code: &str| code.contains(&format!("fn {name}(")) || code.contains(&format!("fn {name}<"));
    let blocks = answer.split("```").skip(1).step_by(2).map(|b| b.trim_start_matches(|c: char| c.is_ascii_alphanumeric()).trim());
    // A `fn main` the model adds is harmless: the crate is a library that allows unused code.
    blocks.chain(std::iter::once(answer.trim())).find(|c| defines(c)).map(str::to_owned)
}

/// A build workspace for candidates, kept warm between builds.
pub struct Workspace {
    dir: PathBuf,
    // One candidate at a time: they share `src/lib.rs` and the target directory.
    building: Mutex<()>,
}

impl Workspace {
    /// Opens (creating when needed) a workspace in `dir`, building against the guest
    /// SDK at `sdk`.
    pub fn open(dir: &Path, sdk: &Path) -> Result<Workspace> {
        let io = |what: &str, e| Error::io(format!("{what} {}", dir.display()), e);
        std::fs::create_dir_all(dir.join("src")).map_err(|e| io("cannot create", e))?;
        let sdk = sdk.canonicalize().map_err(|e| Error::io(format!("the guest SDK is not at {}", sdk.display()), e))?;
        // The package name is unique to the workspace, so workspaces sharing one cargo
        // target directory (kept warm across them) never read each other's output.
        let tag = &blake3::hash(dir.display().to_string().as_bytes()).to_hex()[..12];
        let manifest = format!(
            "[package]\nname = \"batos-candidate-{tag}\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\n[lib]\ncrate-type = [\"cdylib\"]\n\n[dependencies]\nbatos-guest-sdk = {{ path = {sdk:?} }}\n\n# Candidates build often and run briefly: a quick build beats a fast binary.\n[profile.release]\nopt-level = 1\ndebug = false\nstrip = true\n\n[workspace]\n",
            sdk = sdk.display().to_string()
        );
        std::fs::write(dir.join("Cargo.toml"), manifest).map_err(|e| io("cannot write Cargo.toml in", e))?;
        Ok(Workspace { dir: dir.to_owned(), building: Mutex::new(()) })
    }

    /// The guest SDK of the source tree this host was built from.
    pub fn default_sdk() -> PathBuf {
        std::env::var_os("BATOS_GUEST_SDK").map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("guest-sdk"), PathBuf::from)
    }

    /// Builds `function` wrapped for `signature` into component bytes. A compile error
    /// comes back as [`Error::BuildFailed`] carrying the compiler's diagnostics.
    pub fn build(&self, signature: &Signature, function: &str) -> Result<Vec<u8>> {
        let _one_at_a_time = self.building.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let lib = self.dir.join("src").join("lib.rs");
        std::fs::write(&lib, signature.wrap(function)).map_err(|e| Error::io(format!("cannot write {}", lib.display()), e))?;
        crate::sandbox::audit::component_from_crate(&self.dir, &format!("candidate `{}`", signature.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_become_rust_names() {
        for (selector, name) in [("factorial", Some("factorial")), ("factorial:", Some("factorial")), ("reverseWords:", Some("reverse_words")), ("at:put:", Some("at_put")), ("fn", Some("fn_")), ("2x", None), ("", None), ("a-b", None), ("Upper", Some("upper"))] {
            assert_eq!(rust_name(selector).as_deref(), name, "{selector:?}");
        }
    }

    #[test]
    fn signatures_follow_the_arguments_and_examples() {
        let s = Signature::infer("factorial:", &[Value::Int(5)], None, false).expect("signature");
        assert_eq!(s.rust(), "fn factorial(a: i64) -> i64");
        let s = Signature::infer("join:with:", &[Value::List(vec![Value::Text("a".into())]), Value::Text(",".into())], Some(Type::Text), false).expect("signature");
        assert_eq!(s.rust(), "fn join_with(a: Vec<String>, b: String) -> String");
        let s = Signature::infer("increment", &[], Some(Type::Int), true).expect("signature");
        assert_eq!(s.rust(), "fn increment(this: &Object) -> i64");
        let err = Signature::infer("f:", &[Value::Nil], None, false).expect_err("nil is no parameter type");
        assert!(err.to_string().contains("argument 1 is nil"), "{err}");
    }

    #[test]
    fn the_function_comes_out_of_the_answer() {
        let answer = "Here you go:\n```rust\nfn factorial(a: i64) -> i64 {\n    (1..=a).product()\n}\n\nfn main() {\n    println!(\"{}\", factorial(5));\n}\n```\nIt multiplies.";
        let f = extract_function(answer, "factorial").expect("found");
        assert!(f.starts_with("fn factorial") && f.ends_with('}') && !f.contains("It multiplies"), "{f}");
        assert_eq!(extract_function("fn double(a: i64) -> i64 { a * 2 }", "double").as_deref(), Some("fn double(a: i64) -> i64 { a * 2 }"));
        assert_eq!(extract_function("I cannot help with that.", "double"), None);
        assert_eq!(extract_function("```rust\nfn triple(a: i64) -> i64 { a * 3 }\n```", "double"), None, "a function of another name is not the one asked for");
    }
}
