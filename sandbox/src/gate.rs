//! The sandbox's side of the gate: linking exactly the interfaces it allows.
//!
//! The decisions themselves are [`crate::runtime::Gate`]'s — the one gate of the
//! host, which also decides every slot write and every thought. Both the audit (is this
//! component acceptable?) and the linker (which host functions does its instance get?)
//! ask it; nothing links an interface any other way. A component whose imports are not
//! all allowed is refused before it is installed, and its instance would not link
//! anyway.

use wasmtime::component::{HasSelf, Linker};

pub use crate::runtime::gate::{parse_grants, Authority, Decision, Effect, Gate, Grant, Grants};

use super::host::{self, CallState};

/// The authority a component's links are decided for: its grants, nothing writable.
pub(crate) fn linking(what: &str, grants: &Grants) -> Authority {
    Authority::capability(what, grants.clone(), [])
}

/// A linker with exactly the interfaces these grants allow.
pub(crate) fn linker(
    engine: &wasmtime::Engine,
    grants: &Grants,
) -> wasmtime::Result<Linker<CallState>> {
    let mut linker = Linker::new(engine);
    let authority = linking("linker", grants);
    for interface in ["types", "log", "clock", "random", "mind", "memory"] {
        let name = format!("batos:uvm/{interface}@0.1.0");
        if !Gate::decide(&authority, &Effect::Import(&name)).allowed() {
            continue;
        }
        match interface {
            "types" => host::batos::uvm::types::add_to_linker::<CallState, HasSelf<CallState>>(
                &mut linker,
                |s| s,
            )?,
            "log" => host::batos::uvm::log::add_to_linker::<CallState, HasSelf<CallState>>(
                &mut linker,
                |s| s,
            )?,
            "clock" => host::batos::uvm::clock::add_to_linker::<CallState, HasSelf<CallState>>(
                &mut linker,
                |s| s,
            )?,
            "random" => host::batos::uvm::random::add_to_linker::<CallState, HasSelf<CallState>>(
                &mut linker,
                |s| s,
            )?,
            "memory" => host::batos::uvm::memory::add_to_linker::<CallState, HasSelf<CallState>>(
                &mut linker,
                |s| s,
            )?,
            _ => host::batos::uvm::mind::add_to_linker::<CallState, HasSelf<CallState>>(
                &mut linker,
                |s| s,
            )?,
        }
    }
    Ok(linker)
}
