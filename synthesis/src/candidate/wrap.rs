//! The fixed code around the model's function: the prelude, the argument conversions
//! to the types it declares, the answer's conversion back, and the export. Written by
//! the host, so a small model cannot break it.

use super::signature::{declared, param_name, Signature};
use super::types::{convert_arg, lower_declared};

/// The lines around the model's function in the crate source, so that a fixed source
/// gives the fixed function back.
pub(super) const BEGIN: &str = "// ---- the candidate ----";
pub(super) const END: &str = "// ---- end of the candidate ----";

/// The crate source; `{…}` places are filled in by [`Signature::wrap`].
const TEMPLATE: &str = r#"#![allow(unused, clippy::all)]
use batos_guest_sdk::prelude::*;
use batos_guest_sdk::helpers::*;
{begin}
{function}
{end}

fn __batos_entry(call: Call) -> Result<Value, Error> {
    if call.args.len() != {n} {
        return Err(error(ErrorKind::BadArguments, "expects {n} argument(s)"));
    }
{lifts}    let r = {name}({names});
    Ok({lower})
}

capability!(__batos_entry);
"#;

impl Signature {
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
        // Placeholders are replaced one at a time, in an order where no replacement
        // can create another (the function goes in last: it is the model's text).
        TEMPLATE
            .replace("{begin}", BEGIN)
            .replace("{end}", END)
            .replace("{n}", &self.params.len().to_string())
            .replace("{lifts}", &lifts.concat())
            .replace("{names}", &names.join(", "))
            .replace("{lower}", &lower)
            .replace("{name}", &self.name)
            .replacen("{function}", function, 1)
    }
}
