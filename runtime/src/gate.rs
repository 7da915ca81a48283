//! The gate: the one place that decides every permission, and the authority it decides
//! for.
//!
//! **The authority rule.** A native primitive has no authority of its own: it acts with
//! its caller's. Work acts for one [`Authority`]:
//!
//! * a **person** — a top-level send from the CLI, the embedding API or (later) the
//!   network bridge — holds full authority;
//! * a **capability** — a component method while it runs — holds its grants and its
//!   writable set: its receiver and the clones made during this call (by the WIT
//!   `clone` or by sending `clone`). That authority travels with every send it makes,
//!   however deep, so a primitive it reaches (`setSlot:value:`, `infer`, …) asks the
//!   gate with it.
//! * A component method runs with **its own** authority, not its caller's: its
//!   grants were given by whoever installed it, and its receiver is the object it
//!   belongs to. The caller gets its answer, never its rights — as a Unix program runs
//!   with its own file's permissions, or an object in an object-capability system
//!   answers with what it holds. Without this, installing a method would hand every
//!   caller the method's grants, or no granted method could be called by anyone
//!   holding less.
//!
//! Every effect asks [`Gate::decide`]: writing an object's slots or parents, asking the
//! mind, linking an import, and raw transaction access (roots, blobs, new objects
//! outside `clone`). Nothing else decides a permission.

use std::collections::{BTreeSet, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use crate::error::{Error, Result};
use crate::image::Oid;

/// An optional interface a capability can be granted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Grant {
    /// `batos:uvm/clock`: wall-clock time.
    Clock,
    /// `batos:uvm/random`: random bytes.
    Random,
    /// `batos:uvm/mind`: completions from the image's mind (and sending `infer`).
    Mind,
    /// `batos:uvm/memory`: searching the image's memory (and sending it `search:`).
    Memory,
}

impl Grant {
    /// Every grant, in a fixed order.
    pub const ALL: [Grant; 4] = [Grant::Clock, Grant::Random, Grant::Mind, Grant::Memory];

    /// Its name in manifests and method values.
    pub fn name(self) -> &'static str {
        match self {
            Grant::Clock => "clock",
            Grant::Random => "random",
            Grant::Mind => "mind",
            Grant::Memory => "memory",
        }
    }

    /// Parses a grant name, saying which names exist when it is none of them.
    pub fn parse(name: &str) -> Result<Grant, String> {
        Grant::ALL.into_iter().find(|g| g.name() == name).ok_or_else(|| {
            format!("`{name}` is not a grant; the grants are clock, random, mind and memory (log is always granted)")
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

/// Who some work acts for. Cheap to clone; clones share the writable set, so a clone
/// made deep inside a capability's sends is writable for the rest of its call.
#[derive(Clone, Debug)]
pub struct Authority(Arc<Holder>);

#[derive(Debug)]
enum Holder {
    Person,
    Capability { name: String, grants: Grants, writable: Mutex<HashSet<Oid>> },
}

impl Authority {
    /// Full authority: a person at the CLI, an embedder, a client of the bridge.
    pub fn person() -> Authority {
        Authority(Arc::new(Holder::Person))
    }

    /// A capability named `name` holding `grants`, whose writable set starts as
    /// `writable` (its receiver).
    pub fn capability(
        name: &str,
        grants: Grants,
        writable: impl IntoIterator<Item = Oid>,
    ) -> Authority {
        Authority(Arc::new(Holder::Capability {
            name: name.to_owned(),
            grants,
            writable: Mutex::new(writable.into_iter().collect()),
        }))
    }

    /// Whether this is a person's full authority.
    pub fn is_person(&self) -> bool {
        matches!(*self.0, Holder::Person)
    }

    /// Who acts, for error messages: `a person` or the capability's name.
    pub fn name(&self) -> &str {
        match &*self.0 {
            Holder::Person => "a person",
            Holder::Capability { name, .. } => name,
        }
    }

    /// Records an object made under this authority (a clone), which it may then write.
    pub(crate) fn made(&self, oid: Oid) {
        if let Holder::Capability { writable, .. } = &*self.0 {
            writable.lock().unwrap_or_else(PoisonError::into_inner).insert(oid);
        }
    }

    fn may_write(&self, oid: Oid) -> bool {
        match &*self.0 {
            Holder::Person => true,
            Holder::Capability { writable, .. } => {
                writable.lock().unwrap_or_else(PoisonError::into_inner).contains(&oid)
            }
        }
    }

    fn holds(&self, grant: Grant) -> bool {
        match &*self.0 {
            Holder::Person => true,
            Holder::Capability { grants, .. } => grants.contains(&grant),
        }
    }
}

/// Something work wants to do that needs permission.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect<'a> {
    /// Write a slot of this object, or its `parent*` list.
    Write(Oid),
    /// Ask the mind (`infer`, the `mind` interface).
    Think,
    /// Search the image's memory (`memory search:`, the `memory` interface): it runs
    /// the embedding model, which costs what thinking costs.
    Recall,
    /// Link the WIT interface with this full name (`batos:uvm/clock@0.1.0`).
    Import(&'a str),
    /// Use the transaction directly — roots, blobs, objects made other than by
    /// `clone` — for the work named. Only a person's authority, or the system's own
    /// bookkeeping acting for one, does this.
    Unrestricted(&'a str),
}

/// The gate's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Allowed for every authority (`types`, `log`) or by the authority's own reach
    /// (a person; a capability's receiver and clones).
    Always,
    /// Allowed because of this grant.
    Granted(Grant),
    /// Refused, with the reason to show.
    Denied(String),
}

impl Decision {
    /// Whether the effect may happen.
    pub fn allowed(&self) -> bool {
        !matches!(self, Decision::Denied(_))
    }
}

const PACKAGE: &str = "batos:uvm/";
const VERSION: &str = "@0.1.0";

/// Decides every permission; see the module documentation for the rule.
pub struct Gate;

impl Gate {
    /// May `authority` cause `effect`?
    pub fn decide(authority: &Authority, effect: &Effect<'_>) -> Decision {
        match *effect {
            Effect::Write(target) if authority.may_write(target) => Decision::Always,
            Effect::Write(target) => Decision::Denied(format!(
                "write {target}: a capability may write only its receiver and the clones it made in this call"
            )),
            Effect::Think => Gate::needs(authority, Grant::Mind, "ask the mind"),
            Effect::Recall => Gate::needs(authority, Grant::Memory, "search the memory"),
            Effect::Import(import) => Gate::decide_import(authority, import),
            Effect::Unrestricted(_) if authority.is_person() => Decision::Always,
            Effect::Unrestricted(what) => {
                Decision::Denied(format!("{what}: only a person's send may use the transaction directly"))
            }
        }
    }

    /// [`Gate::decide`] as a result: `Err(NotPermitted)` naming who and what.
    pub fn check(authority: &Authority, effect: &Effect<'_>) -> Result<()> {
        match Gate::decide(authority, effect) {
            Decision::Denied(action) => {
                Err(Error::NotPermitted { capability: authority.name().to_owned(), action })
            }
            _ => Ok(()),
        }
    }

    fn needs(authority: &Authority, grant: Grant, what: &str) -> Decision {
        if authority.is_person() {
            Decision::Always
        } else if authority.holds(grant) {
            Decision::Granted(grant)
        } else {
            Decision::Denied(format!(
                "{what}: that needs the `{grant}` grant, which it was not given"
            ))
        }
    }

    fn decide_import(authority: &Authority, import: &str) -> Decision {
        let Some(interface) =
            import.strip_prefix(PACKAGE).and_then(|rest| rest.strip_suffix(VERSION))
        else {
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
            "memory" => Grant::Memory,
            other => {
                return Decision::Denied(format!(
                    "import `{import}`: batos:uvm has no interface `{other}`"
                ))
            }
        };
        // Links are decided on grants alone, a person's included: a component's imports
        // are what its manifest grants, whoever calls it.
        if authority.holds(needed) && !authority.is_person() {
            Decision::Granted(needed)
        } else {
            Decision::Denied(format!(
                "import `{import}` needs the `{needed}` grant, which the manifest does not give"
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capability(grants: &[Grant], writable: &[Oid]) -> Authority {
        Authority::capability("cap", grants.iter().copied().collect(), writable.iter().copied())
    }

    #[test]
    fn every_effect_is_decided_by_the_table() {
        let person = Authority::person();
        let plain = capability(&[], &[Oid(3)]);
        let clock = capability(&[Grant::Clock], &[Oid(3)]);
        let all = capability(&Grant::ALL, &[Oid(3)]);
        let table: Vec<(&Authority, Effect<'_>, bool)> = vec![
            (&person, Effect::Write(Oid(1)), true),
            (&person, Effect::Think, true),
            (&person, Effect::Unrestricted("set a root"), true),
            (&plain, Effect::Write(Oid(3)), true),
            (&plain, Effect::Write(Oid(1)), false),
            (&plain, Effect::Write(Oid(4)), false),
            (&plain, Effect::Think, false),
            (&clock, Effect::Think, false),
            (&all, Effect::Think, true),
            (&all, Effect::Write(Oid(1)), false),
            (&all, Effect::Unrestricted("set a root"), false),
            (&plain, Effect::Import("batos:uvm/types@0.1.0"), true),
            (&plain, Effect::Import("batos:uvm/log@0.1.0"), true),
            (&plain, Effect::Import("batos:uvm/clock@0.1.0"), false),
            (&clock, Effect::Import("batos:uvm/clock@0.1.0"), true),
            (&clock, Effect::Import("batos:uvm/random@0.1.0"), false),
            (&all, Effect::Import("batos:uvm/random@0.1.0"), true),
            (&plain, Effect::Import("batos:uvm/mind@0.1.0"), false),
            (&all, Effect::Import("batos:uvm/mind@0.1.0"), true),
            (&plain, Effect::Recall, false),
            (&clock, Effect::Recall, false),
            (&all, Effect::Recall, true),
            (&person, Effect::Recall, true),
            (&plain, Effect::Import("batos:uvm/memory@0.1.0"), false),
            (&all, Effect::Import("batos:uvm/memory@0.1.0"), true),
            (&all, Effect::Import("batos:uvm/archive@0.1.0"), false),
            (&all, Effect::Import("batos:uvm/clock@0.2.0"), false),
            (&all, Effect::Import("wasi:filesystem/preopens@0.2.0"), false),
            (&all, Effect::Import("wasi:sockets/tcp@0.2.0"), false),
            (&all, Effect::Import("wasi:cli/environment@0.2.0"), false),
            (&person, Effect::Import("batos:uvm/clock@0.1.0"), false),
        ];
        for (authority, effect, expected) in table {
            assert_eq!(
                Gate::decide(authority, &effect).allowed(),
                expected,
                "{effect:?} for {authority:?}"
            );
        }
    }

    #[test]
    fn a_clone_becomes_writable_for_every_holder_of_the_authority() {
        let authority = capability(&[], &[Oid(3)]);
        let passed_down = authority.clone();
        assert!(!Gate::decide(&authority, &Effect::Write(Oid(9))).allowed());
        passed_down.made(Oid(9));
        assert!(Gate::decide(&authority, &Effect::Write(Oid(9))).allowed());
        Authority::person().made(Oid(10));
    }

    #[test]
    fn refusals_name_who_and_what() {
        let e = Gate::check(&capability(&[], &[]), &Effect::Import("batos:uvm/clock@0.1.0"))
            .expect_err("denied");
        let text = e.to_string();
        assert!(
            text.contains("cap")
                && text.contains("batos:uvm/clock@0.1.0")
                && text.contains("`clock` grant"),
            "{text}"
        );
        assert_eq!(e.kind(), "not_permitted");
        let Decision::Denied(why) =
            Gate::decide(&capability(&[], &[]), &Effect::Import("wasi:filesystem/types@0.2.0"))
        else {
            panic!("denied")
        };
        assert!(why.contains("WASI"), "{why}");
        let e = Gate::check(&capability(&[], &[]), &Effect::Think).expect_err("denied");
        assert!(e.to_string().contains("`mind` grant"), "{e}");
    }

    #[test]
    fn grant_names_parse() {
        assert_eq!(parse_grants(&["clock", "mind"]), Ok([Grant::Clock, Grant::Mind].into()));
        let e = parse_grants(&["filesystem"]).expect_err("no such grant");
        assert!(e.contains("the grants are clock, random, mind and memory"), "{e}");
    }
}
