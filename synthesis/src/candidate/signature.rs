//! The Rust function a message asks for, and what the model's function declares: a
//! small reader of `fn` headers (parameter and answer types), enough to adapt the fixed
//! code to what the model wrote and to retype an answer the compiler shows is wrong.

use super::extract::rust_name;
use super::types::{normalize, type_of_rust, Type};
use crate::error::{Error, Result};
use crate::image::Value;

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
        let params = args.iter().map(Type::of).collect::<Vec<_>>();
        let returns_known = returns.is_some();
        let returns = returns.or_else(|| params.first().cloned()).unwrap_or(Type::Int);
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
        let returns = if self.returns_known { self.returns.rust() } else { "RETURN".into() };
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
}

/// The parameter types and answer type `function` declares for `fn name` (normalized:
/// no spaces, no lifetimes), receiver included.
pub(super) fn declared(function: &str, name: &str) -> Option<(Vec<String>, Option<String>)> {
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

pub(super) fn param_name(i: usize) -> String {
    ["a", "b", "c", "d", "e", "f", "g", "h"]
        .get(i)
        .map_or_else(|| format!("arg{i}"), |s| (*s).to_owned())
}
