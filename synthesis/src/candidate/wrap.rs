//! The fixed code around the model's function: the imports a small model expects in
//! scope, and an entry with the function's own parameter and answer types, exported by
//! the guest SDK's `#[capability]` — which converts every argument and the answer. The
//! host writes no conversion code; the model's function is not touched.

use super::signature::{declared, param_name, Signature};

/// The lines around the model's function in the crate source, so that a fixed source
/// gives the fixed function back.
pub(super) const BEGIN: &str = "// ---- the candidate ----";
pub(super) const END: &str = "// ---- end of the candidate ----";

/// The crate source; `{…}` places are filled in by [`Signature::wrap`]. The `use` lines
/// bring in what small models reach for without importing (rustc names the import, but
/// its suggestion is not machine-applicable, so the compiler's fixes skip it). They are
/// globs so that a function of the model's own named `max` shadows them, not clashes.
const TEMPLATE: &str = r#"#![allow(unused, clippy::all)]
use batos_guest_sdk::prelude::*;
use batos_guest_sdk::helpers::*;
use std::cmp::*;
use std::collections::*;
use std::fmt::Write as _;
{begin}
{function}
{end}

#[capability]
fn __batos_entry({params}){returns} {
    {name}({names})
}
"#;

impl Signature {
    /// The whole crate source: `function`, and an entry with the parameter and answer
    /// types it declares (the signature's, where its header cannot be read) that calls
    /// it.
    pub fn wrap(&self, function: &str) -> String {
        let (params, returns) = match declared(function, &self.name) {
            Some((params, returns))
                if params.len() == self.arity()
                    || (params.len() == self.arity() + 1 && params[0] == "&Object") =>
            {
                (params, returns)
            }
            _ => (self.declared_params(), Some(self.returns.rust())),
        };
        let names: Vec<String> = (0..params.len()).map(param_name).collect();
        // `declared` writes types without spaces; `&mut` needs its space back.
        let spaced = |t: &str| t.strip_prefix("&mut").map_or(t.to_owned(), |t| format!("&mut {t}"));
        let typed: Vec<String> =
            names.iter().zip(&params).map(|(n, t)| format!("{n}: {}", spaced(t))).collect();
        let returns = match returns.as_deref() {
            None | Some("()") => String::new(),
            Some(t) => format!(" -> {t}"),
        };
        // Placeholders are replaced one at a time, in an order where no replacement
        // can create another (the function goes in last: it is the model's text).
        TEMPLATE
            .replace("{begin}", BEGIN)
            .replace("{end}", END)
            .replace("{params}", &typed.join(", "))
            .replace("{returns}", &returns)
            .replace("{names}", &names.join(", "))
            .replace("{name}", &self.name)
            .replacen("{function}", function, 1)
    }

    /// How many parameters the function takes: the arguments, and the receiver first
    /// when it uses one.
    fn arity(&self) -> usize {
        self.params.len() + usize::from(self.receiver)
    }

    /// The parameter types as the signature asks for them.
    fn declared_params(&self) -> Vec<String> {
        let mut params: Vec<String> = self.params.iter().map(|t| t.rust()).collect();
        if self.receiver {
            params.insert(0, "&Object".into());
        }
        params
    }
}
