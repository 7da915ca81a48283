//! The gate: the one place that decides what a capability may import.
//!
//! Both the audit (is this component acceptable?) and the linker (which host
//! functions does its instance get?) ask [`Gate::decide`]; nothing links an interface
//! any other way. A component whose imports are not all allowed is refused before it
//! is installed, and its instance would not link anyway.

use std::collections::BTreeSet;
use std::fmt;

use wasmtime::component::{HasSelf, Linker};

use super::host::{self, CallState};

/// An optional interface a manifest can grant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Grant {
    /// `batos:uvm/clock`: wall-clock time.
    Clock,
    /// `batos:uvm/random`: random bytes.
    Random,
    /// `batos:uvm/mind`: completions from the image's mind.
    Mind,
}

impl Grant {
    /// Every grant, in a fixed order.
    pub const ALL: [Grant; 3] = [Grant::Clock, Grant::Random, Grant::Mind];

    /// Its name in manifests and method values.
    pub fn name(self) -> &'static str {
        match self {
            Grant::Clock => "clock",
            Grant::Random => "random",
            Grant::Mind => "mind",
        }
    }

    /// Parses a grant name, saying which names exist when it is none of them.
    pub fn parse(name: &str) -> Result<Grant, String> {
        Grant::ALL.into_iter().find(|g| g.name() == name).ok_or_else(|| {
            format!("`{name}` is not a grant; the grants are clock, random and mind (log is always granted)")
        })
    }
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of grants.
pub type Grants = BTreeSet<Grant>;

/// Parses grant names as stored in a method value or a manifest.
pub fn parse_grants<S: AsRef<str>>(names: &[S]) -> Result<Grants, String> {
    names.iter().map(|n| Grant::parse(n.as_ref())).collect()
}

const PACKAGE: &str = "batos:uvm/";
const VERSION: &str = "@0.1.0";

/// The gate's answer for one import.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Linked for every capability (`types`, `log`).
    Always,
    /// Linked because of this grant.
    Granted(Grant),
    /// Refused, with the reason to show.
    Denied(String),
}

/// Decides imports and slot writes, and links exactly the imports it allows.
pub struct Gate;

impl Gate {
    /// May a capability write a slot of `target`? Only its receiver and the clones it
    /// made during this call (`writable` holds exactly those); writing anything else
    /// would let a capability change objects it was merely shown.
    pub fn decide_write(writable: &std::collections::HashSet<crate::image::Oid>, target: crate::image::Oid) -> Decision {
        if writable.contains(&target) {
            Decision::Always
        } else {
            Decision::Denied(format!(
                "write a slot of {target}: only the receiver and clones made in this call are writable"
            ))
        }
    }

    /// May a capability holding `grants` import the interface named `import`?
    pub fn decide(grants: &Grants, import: &str) -> Decision {
        let Some(interface) = import.strip_prefix(PACKAGE).and_then(|rest| rest.strip_suffix(VERSION)) else {
            let family = if import.starts_with("wasi:") { "WASI interfaces are" } else { "it is" };
            return Decision::Denied(format!(
                "import `{import}`: {family} not part of the batos:uvm@0.1.0 contract; capabilities reach the world only through it"
            ));
        };
        let needed = match interface {
            "types" | "log" => return Decision::Always,
            "clock" => Grant::Clock,
            "random" => Grant::Random,
            "mind" => Grant::Mind,
            other => return Decision::Denied(format!("import `{import}`: batos:uvm has no interface `{other}`")),
        };
        if grants.contains(&needed) {
            Decision::Granted(needed)
        } else {
            Decision::Denied(format!("import `{import}` needs the `{needed}` grant, which the manifest does not give"))
        }
    }

    /// A linker with exactly the interfaces these grants allow.
    pub(crate) fn linker(engine: &wasmtime::Engine, grants: &Grants) -> wasmtime::Result<Linker<CallState>> {
        let mut linker = Linker::new(engine);
        for interface in ["types", "log", "clock", "random", "mind"] {
            let name = format!("{PACKAGE}{interface}{VERSION}");
            match (Gate::decide(grants, &name), interface) {
                (Decision::Denied(_), _) => {}
                (_, "types") => host::batos::uvm::types::add_to_linker::<CallState, HasSelf<CallState>>(&mut linker, |s| s)?,
                (_, "log") => host::batos::uvm::log::add_to_linker::<CallState, HasSelf<CallState>>(&mut linker, |s| s)?,
                (_, "clock") => host::batos::uvm::clock::add_to_linker::<CallState, HasSelf<CallState>>(&mut linker, |s| s)?,
                (_, "random") => host::batos::uvm::random::add_to_linker::<CallState, HasSelf<CallState>>(&mut linker, |s| s)?,
                (_, _) => host::batos::uvm::mind::add_to_linker::<CallState, HasSelf<CallState>>(&mut linker, |s| s)?,
            }
        }
        Ok(linker)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_import_is_decided_by_the_table() {
        let none = Grants::new();
        let clock: Grants = [Grant::Clock].into();
        let all: Grants = Grant::ALL.into();
        let allowed = |d: Decision| !matches!(d, Decision::Denied(_));
        let table: [(&Grants, &str, bool); 14] = [
            (&none, "batos:uvm/types@0.1.0", true),
            (&none, "batos:uvm/log@0.1.0", true),
            (&none, "batos:uvm/clock@0.1.0", false),
            (&clock, "batos:uvm/clock@0.1.0", true),
            (&clock, "batos:uvm/random@0.1.0", false),
            (&none, "batos:uvm/random@0.1.0", false),
            (&all, "batos:uvm/random@0.1.0", true),
            (&none, "batos:uvm/mind@0.1.0", false),
            (&all, "batos:uvm/mind@0.1.0", true),
            (&all, "batos:uvm/memory@0.1.0", false),
            (&all, "batos:uvm/clock@0.2.0", false),
            (&all, "wasi:filesystem/preopens@0.2.0", false),
            (&all, "wasi:sockets/tcp@0.2.0", false),
            (&all, "wasi:cli/environment@0.2.0", false),
        ];
        for (grants, import, expected) in table {
            assert_eq!(allowed(Gate::decide(grants, import)), expected, "{import} with {grants:?}");
        }
    }

    #[test]
    fn refusals_name_the_import_and_the_missing_grant() {
        let Decision::Denied(why) = Gate::decide(&Grants::new(), "batos:uvm/clock@0.1.0") else { panic!("denied") };
        assert!(why.contains("batos:uvm/clock@0.1.0") && why.contains("`clock` grant"), "{why}");
        let Decision::Denied(why) = Gate::decide(&Grants::new(), "wasi:filesystem/types@0.2.0") else { panic!("denied") };
        assert!(why.contains("WASI"), "{why}");
    }

    #[test]
    fn writes_are_decided_by_the_table() {
        use crate::image::Oid;
        let receiver = Oid(3);
        let clone = Oid(9);
        let writable: std::collections::HashSet<Oid> = [receiver, clone].into();
        let table = [(receiver, true), (clone, true), (Oid(1), false), (Oid(4), false)];
        for (target, expected) in table {
            let allowed = !matches!(Gate::decide_write(&writable, target), Decision::Denied(_));
            assert_eq!(allowed, expected, "{target}");
        }
    }

    #[test]
    fn grant_names_parse() {
        assert_eq!(parse_grants(&["clock", "mind"]), Ok([Grant::Clock, Grant::Mind].into()));
        let e = parse_grants(&["filesystem"]).expect_err("no such grant");
        assert!(e.contains("the grants are clock, random and mind"), "{e}");
    }
}
