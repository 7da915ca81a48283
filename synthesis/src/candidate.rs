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

use super::seal;
use crate::error::{Error, Result};
use crate::image::Value;
use crate::sandbox::audit;

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
    /// Whether it takes its receiver as `this: &Object` first, to keep state in its
    /// slots or send it messages.
    pub receiver: bool,
    /// Whether the answer type is known (from examples, or the selector's form); if
    /// not, the model chooses it and `returns` is only the fallback.
    pub returns_known: bool,
}

impl Signature {
    /// The signature for sending `selector` with `args`, answering `returns` (from the
    /// examples' expected results, when there are any; else the first argument's type).
    pub fn infer(
        selector: &str,
        args: &[Value],
        returns: Option<Type>,
        receiver: bool,
    ) -> Result<Signature> {
        let name = rust_name(selector).ok_or_else(|| Error::BadInput(format!("`{selector}` cannot name a method: use letters, digits and colons, starting with a letter")))?;
        let params = args
            .iter()
            .enumerate()
            .map(|(i, v)| Type::of(v).ok_or_else(|| Error::BadInput(format!("argument {} is {}, which synthesised methods do not take yet (integers, floats, booleans, text and lists of integers or text)", i + 1, v.type_name()))))
            .collect::<Result<Vec<_>>>()?;
        let returns_known = returns.is_some();
        let returns = returns.or_else(|| params.first().copied()).unwrap_or(Type::Int);
        Ok(Signature { name, params, returns, receiver, returns_known })
    }

    /// `fn name(a: i64, b: String) -> i64`, as the model is asked to write it.
    pub fn rust(&self) -> String {
        let mut params: Vec<String> = self
            .params
            .iter()
            .enumerate()
            .map(|(i, t)| format!("{}: {}", param_name(i), t.rust()))
            .collect();
        if self.receiver {
            params.insert(0, "this: &Object".into());
        }
        let returns = if self.returns_known { self.returns.rust() } else { "RETURN" };
        format!("fn {}({}) -> {returns}", self.name, params.join(", "))
    }

    /// This signature as `function` actually declares it: the model may choose other
    /// integer widths, `&str` for `String`, slices for vectors, or another answer type
    /// than asked; the fixed code adapts to what it wrote, and the answer type is what
    /// it declares (when batos can carry it).
    pub fn adapted(&self, function: &str) -> Signature {
        let mut adapted = self.clone();
        if let Some(t) = declared(function, &self.name)
            .and_then(|(_, ret)| ret.as_deref().and_then(type_of_rust))
        {
            adapted.returns = t;
            adapted.returns_known = true;
        }
        adapted
    }

    /// The whole crate source: the fixed code around `function`, converting the
    /// arguments to the types it declares and its answer back to a value.
    pub fn wrap(&self, function: &str) -> String {
        let (mut params, ret) = declared(function, &self.name).unwrap_or_default();
        if self.receiver && params.first().is_some_and(|p| p.contains("Object")) {
            params.remove(0);
        }
        let lifts: Vec<String> = self
            .params
            .iter()
            .enumerate()
            .map(|(i, t)| format!("    let {}: {} = {};\n", param_name(i), t.rust(), t.lift(i)))
            .collect();
        let mut names: Vec<String> = self
            .params
            .iter()
            .enumerate()
            .map(|(i, t)| convert_arg(&param_name(i), *t, params.get(i).map(String::as_str)))
            .collect();
        if self.receiver {
            names.insert(0, "&call.receiver".into());
        }
        let lower = ret
            .as_deref()
            .and_then(lower_declared)
            .unwrap_or_else(|| self.returns.lower().to_owned());
        format!(
            "#![allow(unused, clippy::all)]\nuse batos_guest_sdk::prelude::*;\n{STATE_HELPERS}\n{BEGIN}\n{function}\n{END}\n\nfn __batos_entry(call: Call) -> Result<Value, Error> {{\n    if call.args.len() != {n} {{\n        return Err(error(ErrorKind::BadArguments, \"expects {n} argument(s)\"));\n    }}\n{lifts}    let r = {name}({names});\n    Ok({lower})\n}}\n\ncapability!(__batos_entry);\n",
            n = self.params.len(),
            lifts = lifts.concat(),
            name = self.name,
            names = names.join(", "),
        )
    }
}

/// The lines around the model's function in the crate source, so that a fixed source
/// gives the fixed function back.
const BEGIN: &str = "// ---- the candidate ----";
const END: &str = "// ---- end of the candidate ----";

const INTEGERS: [&str; 12] =
    ["i8", "i16", "i32", "i64", "i128", "isize", "u8", "u16", "u32", "u64", "u128", "usize"];

/// A Rust type as written, without spaces and lifetimes (`&'a str` → `&str`).
fn normalize(rust: &str) -> String {
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

/// The parameter types and answer type `function` declares for `fn name`.
fn declared(function: &str, name: &str) -> Option<(Vec<String>, Option<String>)> {
    let start = function.find(&format!("fn {name}"))? + 3 + name.len();
    let rest = &function[start..];
    let open = rest.find('(')?;
    let (mut depth, mut close) = (0i32, None);
    for (i, c) in rest[open..].char_indices() {
        match c {
            '(' | '<' | '[' => depth += 1,
            ')' | '>' | ']' if !rest[open..][..i].ends_with('-') => {
                depth -= 1;
                if depth == 0 {
                    close = Some(open + i);
                    break;
                }
            }
            _ => {}
        }
    }
    let close = close?;
    let mut params = Vec::new();
    let (mut depth, mut current) = (0i32, String::new());
    for c in rest[open + 1..close].chars() {
        match c {
            '<' | '(' | '[' => depth += 1,
            '>' | ')' | ']' => depth -= 1,
            ',' if depth == 0 => {
                params.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    if !current.trim().is_empty() {
        params.push(current);
    }
    let params =
        params.iter().filter_map(|p| p.split_once(':').map(|(_, t)| normalize(t))).collect();
    let after = rest[close + 1..].trim_start();
    let ret = after.strip_prefix("->").map(|r| {
        normalize(r.split(['{']).next().unwrap_or("").split(" where ").next().unwrap_or(""))
    });
    Some((params, ret))
}

/// `function` with its declared answer type replaced by the one its body produces, when
/// the compiler's `stderr` says exactly that (E0308 "expected `X` because of return
/// type … found `Y`") and `Y` is a type batos carries. `None` otherwise.
pub fn retype(function: &str, name: &str, stderr: &str) -> Option<String> {
    let at = stderr.find("because of return type")?;
    let after = &stderr[at..];
    let found = after.split("found `").nth(1)?.split('`').next()?;
    let found = normalize(found);
    // Owned types only: a borrowed answer needs more than a new declaration.
    if found.starts_with('&') {
        return None;
    }
    type_of_rust(&found)?;
    let (_, declared_ret) = declared(function, name)?;
    let declared_ret = declared_ret?;
    let start = function.find(&format!("fn {name}"))?;
    let arrow = start + function[start..].find("->")?;
    let body = arrow + function[arrow..].find('{')?;
    if normalize(&function[arrow + 2..body]) != declared_ret || found == declared_ret {
        return None;
    }
    Some(format!("{}-> {found} {}", &function[..arrow], &function[body..]))
}

/// The batos type a declared Rust answer type carries as.
fn type_of_rust(rust: &str) -> Option<Type> {
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
fn lower_declared(rust: &str) -> Option<String> {
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
fn convert_arg(a: &str, t: Type, rust: Option<&str>) -> String {
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

/// Slot access and sends for methods that use their receiver, in terms a small model
/// gets right.
const STATE_HELPERS: &str = r#"
trait Receiver {
    fn get_int(&self, name: &str) -> Option<i64>;
    fn set_int(&self, name: &str, value: i64);
    fn get_text(&self, name: &str) -> Option<String>;
    fn set_text(&self, name: &str, value: impl AsRef<str>);
    fn send_int(&self, selector: &str, args: &[i64]) -> i64;
    fn send_text(&self, selector: &str, args: &[&str]) -> String;
}
impl Receiver for Object {
    fn get_int(&self, name: &str) -> Option<i64> { match self.get(name) { Ok(Value::Int(n)) => Some(n), _ => None } }
    fn set_int(&self, name: &str, value: i64) { let _ = self.set(name, &Value::Int(value)); }
    fn get_text(&self, name: &str) -> Option<String> { match self.get(name) { Ok(Value::Text(s)) => Some(s), _ => None } }
    fn set_text(&self, name: &str, value: impl AsRef<str>) { let _ = self.set(name, &Value::Text(value.as_ref().to_owned())); }
    fn send_int(&self, selector: &str, args: &[i64]) -> i64 {
        let args: Vec<Value> = args.iter().map(|n| Value::Int(*n)).collect();
        match self.send_message(selector, &args) { Ok(Value::Int(n)) => n, Ok(_) => panic!("{selector} did not answer an integer"), Err(e) => panic!("{selector} failed: {}", e.message) }
    }
    fn send_text(&self, selector: &str, args: &[&str]) -> String {
        let args: Vec<Value> = args.iter().map(|s| Value::Text((*s).to_owned())).collect();
        match self.send_message(selector, &args) { Ok(Value::Text(s)) => s, Ok(_) => panic!("{selector} did not answer text"), Err(e) => panic!("{selector} failed: {}", e.message) }
    }
}
fn get_int(this: &Object, name: &str) -> i64 { this.get_int(name).unwrap_or(0) }
fn set_int(this: &Object, name: &str, value: i64) { this.set_int(name, value) }
fn get_text(this: &Object, name: &str) -> String { this.get_text(name).unwrap_or_default() }
fn set_text(this: &Object, name: &str, value: impl AsRef<str>) { this.set_text(name, value) }
fn send_int(this: &Object, selector: &str, args: &[i64]) -> i64 { this.send_int(selector, args) }
fn send_text(this: &Object, selector: &str, args: &[&str]) -> String { this.send_text(selector, args) }
"#;

fn param_name(i: usize) -> String {
    ["a", "b", "c", "d", "e", "f", "g", "h"]
        .get(i)
        .map_or_else(|| format!("arg{i}"), |s| (*s).to_owned())
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
    const KEYWORDS: [&str; 12] =
        ["fn", "let", "if", "else", "match", "loop", "while", "for", "type", "use", "mod", "impl"];
    if KEYWORDS.contains(&name.as_str()) {
        name.push('_');
    }
    Some(name)
}

/// The function `name` out of a model's answer: the first fenced code block that
/// defines it (or the answer itself when it is bare code). `None` when there is none.
pub fn extract_function(answer: &str, name: &str) -> Option<String> {
    let defines =
        |code: &str| code.contains(&format!("fn {name}(")) || code.contains(&format!("fn {name}<"));
    let blocks = answer
        .split("```")
        .skip(1)
        .step_by(2)
        .map(|b| b.trim_start_matches(|c: char| c.is_ascii_alphanumeric()).trim());
    let code = blocks.chain(std::iter::once(answer.trim())).find(|c| defines(c))?;
    Some(without_scaffolding(code))
}

/// `code` without the `fn main`, `fn test_…` and `mod tests` a model adds to show its
/// function off: they are not part of the method, and often do not compile here.
fn without_scaffolding(code: &str) -> String {
    let mut out = String::new();
    let mut rest = code;
    while !rest.is_empty() {
        let line_end = rest.find('\n').map_or(rest.len(), |i| i + 1);
        let line = &rest[..line_end];
        let trimmed = line.trim_start();
        let scaffolding = line == trimmed
            && (trimmed.starts_with("fn main(")
                || trimmed.starts_with("fn test")
                || trimmed.starts_with("#[cfg(test)]")
                || trimmed.starts_with("#[test]")
                || trimmed.starts_with("mod tests"));
        if !scaffolding {
            out.push_str(line);
            rest = &rest[line_end..];
            continue;
        }
        // Skip to the end of the item: the brace that closes its first opening brace.
        let (mut depth, mut opened, mut end) = (0i32, false, rest.len());
        for (i, c) in rest.char_indices() {
            match c {
                '{' => {
                    depth += 1;
                    opened = true;
                }
                '}' => {
                    depth -= 1;
                    if opened && depth == 0 {
                        end = i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &rest[end..];
    }
    out.trim().to_owned()
}

/// A build workspace for candidates, kept warm between builds.
pub struct Workspace {
    dir: PathBuf,
    // One candidate at a time: they share `src/lib.rs` and the target directory.
    building: Mutex<()>,
    seal: audit::Seal,
}

impl Workspace {
    /// Opens (creating when needed) a workspace in `dir`, building against the guest
    /// SDK at `sdk`. The manifest and its lock file are written here, by the host, and
    /// the SDK's dependencies fetched; candidates then build sealed (see
    /// [`audit::build_crate`]) and can change neither.
    pub fn open(dir: &Path, sdk: &Path) -> Result<Workspace> {
        let io = |what: &str, e| Error::io(format!("{what} {}", dir.display()), e);
        std::fs::create_dir_all(dir.join("src")).map_err(|e| io("cannot create", e))?;
        let sdk = sdk
            .canonicalize()
            .map_err(|e| Error::io(format!("the guest SDK is not at {}", sdk.display()), e))?;
        // The package name is unique to the workspace, so workspaces sharing one cargo
        // target directory (kept warm across them) never read each other's output.
        let tag = &blake3::hash(dir.display().to_string().as_bytes()).to_hex()[..12];
        let manifest = format!(
            "[package]\nname = \"batos-candidate-{tag}\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\n[lib]\ncrate-type = [\"cdylib\"]\n\n[dependencies]\nbatos-guest-sdk = {{ path = {sdk:?} }}\n\n# Candidates build often and run briefly: a quick build beats a fast binary.\n[profile.release]\nopt-level = 1\ndebug = false\nstrip = true\n\n[workspace]\n",
            sdk = sdk.display().to_string()
        );
        std::fs::write(dir.join("Cargo.toml"), manifest)
            .map_err(|e| io("cannot write Cargo.toml in", e))?;
        // The lock step compiles nothing, but cargo wants a target to exist.
        let lib = dir.join("src").join("lib.rs");
        if !lib.is_file() {
            std::fs::write(&lib, "").map_err(|e| io("cannot write src/lib.rs in", e))?;
        }
        audit::lock_workspace(dir, "the candidate workspace")?;
        Ok(Workspace {
            dir: dir.to_owned(),
            building: Mutex::new(()),
            seal: audit::Seal::default(),
        })
    }

    /// Replaces the default [`audit::Seal`] (time and memory limits of a build).
    pub fn with_seal(mut self, seal: audit::Seal) -> Workspace {
        self.seal = seal;
        self
    }

    /// The guest SDK of the source tree this host was built from.
    pub fn default_sdk() -> PathBuf {
        std::env::var_os("BATOS_GUEST_SDK").map_or_else(
            || Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("guest-sdk"),
            PathBuf::from,
        )
    }

    /// Builds `function` wrapped for `signature` into component bytes. A compile error
    /// comes back as [`Error::BuildFailed`] carrying the compiler's diagnostics.
    pub fn build(&self, signature: &Signature, function: &str) -> Result<Vec<u8>> {
        self.build_fixing(signature, function, 0).map(|(bytes, _)| bytes)
    }

    /// Like [`Workspace::build`], but first lets the compiler fix the candidate: up to
    /// `passes` times, the suggestions rustc attaches to its errors (“consider
    /// borrowing here”, “try using a conversion method”) are applied with `rustfix` and
    /// the candidate rebuilt. Answers the bytes and the function as it finally built.
    /// Whatever a suggestion changes, the result still has to pass the audit and every
    /// example before it is installed.
    pub fn build_fixing(
        &self,
        signature: &Signature,
        function: &str,
        passes: usize,
    ) -> Result<(Vec<u8>, String)> {
        let _one_at_a_time =
            self.building.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let what = format!("candidate `{}`", signature.name);
        let mut function = function.to_owned();
        let mut pass = 0;
        loop {
            // Sealed before every build: the mind's code, and whatever the compiler's
            // suggestions made of it, never reaches cargo holding a forbidden construct.
            seal::check(&function)
                .map_err(|refusal| Error::AuditRefused { what: what.clone(), reason: refusal.0 })?;
            let source = signature.wrap(&function);
            let lib = self.dir.join("src").join("lib.rs");
            std::fs::write(&lib, &source)
                .map_err(|e| Error::io(format!("cannot write {}", lib.display()), e))?;
            let messages = match audit::build_crate(&self.dir, &what, Some(&self.seal))? {
                audit::CrateBuild::Built(module) => {
                    return Ok((audit::componentize(&module, &what, false)?, function))
                }
                audit::CrateBuild::Failed(messages) => messages,
            };
            let failed = || Error::BuildFailed {
                what: what.clone(),
                detail: format!("cargo build failed:\n{}", audit::rendered(&messages)),
            };
            if pass >= passes {
                return Err(failed());
            }
            pass += 1;
            let fixed = suggested_fix(&source, &messages).and_then(|fixed| {
                let begin = fixed.find(BEGIN)? + BEGIN.len();
                let end = fixed.find(END)?;
                Some(fixed[begin..end].trim().to_owned())
            });
            match fixed {
                Some(f) if f != function && !f.is_empty() => function = f,
                _ => return Err(failed()),
            }
        }
    }
}

/// `source` with the compiler's suggestions for its errors applied, if it has any.
fn suggested_fix(source: &str, messages: &[serde_json::Value]) -> Option<String> {
    let errors: Vec<String> = messages
        .iter()
        .filter(|m| m.get("level").and_then(|l| l.as_str()) == Some("error"))
        .map(|m| m.to_string())
        .collect();
    let json = errors.join("\n");
    let only = std::collections::HashSet::new();
    for filter in [rustfix::Filter::MachineApplicableOnly, rustfix::Filter::Everything] {
        let suggestions = rustfix::get_suggestions_from_json(&json, &only, filter).ok()?;
        if suggestions.is_empty() {
            continue;
        }
        if let Ok(fixed) = rustfix::apply_suggestions(source, &suggestions) {
            if fixed != source {
                return Some(fixed);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_become_rust_names() {
        for (selector, name) in [
            ("factorial", Some("factorial")),
            ("factorial:", Some("factorial")),
            ("reverseWords:", Some("reverse_words")),
            ("at:put:", Some("at_put")),
            ("fn", Some("fn_")),
            ("2x", None),
            ("", None),
            ("a-b", None),
            ("Upper", Some("upper")),
        ] {
            assert_eq!(rust_name(selector).as_deref(), name, "{selector:?}");
        }
    }

    #[test]
    fn signatures_follow_the_arguments_and_examples() {
        let s = Signature::infer("factorial:", &[Value::Int(5)], None, false).expect("signature");
        assert_eq!(
            s.rust(),
            "fn factorial(a: i64) -> RETURN",
            "the answer type is the model's to choose"
        );
        assert_eq!(
            s.adapted("fn factorial(a: i64) -> u64 { 1 }").rust(),
            "fn factorial(a: i64) -> i64"
        );
        let s = Signature::infer(
            "join:with:",
            &[Value::List(vec![Value::Text("a".into())]), Value::Text(",".into())],
            Some(Type::Text),
            false,
        )
        .expect("signature");
        assert_eq!(s.rust(), "fn join_with(a: Vec<String>, b: String) -> String");
        let s = Signature::infer("increment", &[], Some(Type::Int), true).expect("signature");
        assert_eq!(s.rust(), "fn increment(this: &Object) -> i64");
        let err = Signature::infer("f:", &[Value::Nil], None, false)
            .expect_err("nil is no parameter type");
        assert!(err.to_string().contains("argument 1 is nil"), "{err}");
    }

    #[test]
    fn the_fixed_code_adapts_to_what_the_model_declared() {
        let sig = Signature::infer("sumList:", &[Value::List(vec![Value::Int(1)])], None, false)
            .expect("signature");
        let f = "fn sum_list(numbers: &[i32]) -> i32 { numbers.iter().sum() }";
        assert_eq!(
            declared(f, "sum_list"),
            Some((vec!["&[i32]".to_owned()], Some("i32".to_owned())))
        );
        assert_eq!(sig.adapted(f).returns, Type::Int);
        let wrapped = sig.wrap(f);
        assert!(
            wrapped.contains("sum_list(&a.iter().map(|x| *x as i32).collect::<Vec<i32>>())")
                && wrapped.contains("Value::Int(r as i64)"),
            "{wrapped}"
        );
        let f = "fn shout_times<'a>(text: &'a str, times: u32) -> String { text.repeat(times as usize) }";
        let sig = Signature::infer(
            "shout:times:",
            &[Value::Text("a".into()), Value::Int(2)],
            None,
            false,
        )
        .expect("signature");
        assert!(sig.wrap(f).contains("shout_times(a.as_str(), b as u32)"), "{}", sig.wrap(f));
        assert_eq!(
            sig.adapted("fn shout_times(a: String, b: i64) -> bool { true }").returns,
            Type::Bool
        );
        let counter = Signature::infer("increment", &[], Some(Type::Int), true).expect("signature");
        assert!(counter
            .wrap("fn increment(this: &Object) -> usize { 1 }")
            .contains("increment(&call.receiver)"));
    }

    #[test]
    fn a_body_of_another_type_than_declared_is_retyped() {
        let f = "fn reverse_text(a: String) -> i64 {\n    a.chars().rev().collect::<String>()\n}";
        let stderr = "error[E0308]: mismatched types\n  --> src/lib.rs:34:5\n   |\n33 | fn reverse_text(a: String) -> i64 {\n   |                               --- expected `i64` because of return type\n34 |     a.chars().rev().collect::<String>()\n   |     ^^^ expected `i64`, found `String`";
        assert_eq!(retype(f, "reverse_text", stderr).as_deref(), Some("fn reverse_text(a: String) -> String {\n    a.chars().rev().collect::<String>()\n}"));
        assert_eq!(
            retype(f, "reverse_text", "error[E0425]: cannot find value `b`"),
            None,
            "only that one error is fixed"
        );
        let weird = stderr.replace("found `String`", "found `HashMap<String, i64>`");
        assert_eq!(retype(f, "reverse_text", &weird), None, "only to a type batos carries");
    }

    #[test]
    fn the_function_comes_out_of_the_answer() {
        let answer = "Here you go:\n```rust\nfn factorial(a: i64) -> i64 {\n    (1..=a).product()\n}\n\nfn main() {\n    println!(\"{}\", factorial(5));\n}\n```\nIt multiplies.";
        let f = extract_function(answer, "factorial").expect("found");
        assert!(
            f.starts_with("fn factorial") && f.ends_with('}') && !f.contains("It multiplies"),
            "{f}"
        );
        assert!(
            !f.contains("fn main") && !f.contains("println"),
            "the model's demo is left out: {f}"
        );
        let with_tests = "fn double(a: i64) -> i64 { a * 2 }\n\n#[cfg(test)]\nmod tests {\n    #[test]\n    fn t() { assert_eq!(super::double(2), 4); }\n}\nfn test_double() {\n    let x = Object::new();\n}\nfn helper(x: i64) -> i64 { x }";
        let kept = extract_function(with_tests, "double").expect("found");
        assert!(
            kept.starts_with("fn double(a: i64) -> i64 { a * 2 }")
                && kept.ends_with("fn helper(x: i64) -> i64 { x }"),
            "helpers stay: {kept}"
        );
        assert!(
            !kept.contains("mod tests")
                && !kept.contains("test_double")
                && !kept.contains("Object::new"),
            "tests go: {kept}"
        );
        assert_eq!(
            extract_function("fn double(a: i64) -> i64 { a * 2 }", "double").as_deref(),
            Some("fn double(a: i64) -> i64 { a * 2 }")
        );
        assert_eq!(extract_function("I cannot help with that.", "double"), None);
        assert_eq!(
            extract_function("```rust\nfn triple(a: i64) -> i64 { a * 3 }\n```", "double"),
            None,
            "a function of another name is not the one asked for"
        );
    }
}
