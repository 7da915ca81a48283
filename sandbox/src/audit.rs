//! The audit every component passes before it is installed (the seeds'
//! PersistenceGuardian, for WebAssembly).
//!
//! The audit checks, in order: the size limit; that the bytes are WebAssembly and a
//! *component* (not a core module); that they validate; the function-count limit; that
//! every import is allowed by the [`Gate`] for the manifest's grants; and that the
//! component exports the `capability` world's `invoke` with the right type. Each
//! refusal names the offending import or limit.

use wasmtime::component::types::ComponentItem;
use wasmtime::component::Component;
use wasmtime::Engine;

use super::gate::{self, Decision, Effect, Gate, Grant, Grants};
use super::host::{CallState, CapabilityPre};
use super::limits::Limits;
use crate::error::{Error, Result};

fn refused(what: &str, reason: impl Into<String>) -> Error {
    Error::AuditRefused { what: what.to_owned(), reason: reason.into() }
}

/// Audits component bytes for a capability holding `grants`; what passes comes back
/// linked and ready to instantiate.
pub(crate) fn audit(
    engine: &Engine,
    limits: &Limits,
    bytes: &[u8],
    grants: &Grants,
    what: &str,
) -> Result<CapabilityPre<CallState>> {
    if bytes.len() > limits.max_component_bytes {
        return Err(refused(
            what,
            format!(
                "{} bytes is over the {}-byte component size limit",
                bytes.len(),
                limits.max_component_bytes
            ),
        ));
    }
    if !bytes.starts_with(b"\0asm") {
        return Err(refused(what, "this is not WebAssembly (no `\\0asm` header): give a .wasm component, a .wat file or a plugin crate"));
    }
    if !wasmparser::Parser::is_component(bytes) {
        return Err(refused(
            what,
            "this is a core WebAssembly module, not a component; add its source (.wat or a crate) so that batos componentizes it, or componentize it yourself",
        ));
    }
    let mut validator =
        wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::default());
    validator.validate_all(bytes).map_err(|e| refused(what, format!("invalid component: {e}")))?;
    let functions =
        count_functions(bytes).map_err(|e| refused(what, format!("invalid component: {e}")))?;
    if functions > limits.max_functions {
        return Err(refused(
            what,
            format!("{functions} functions is over the limit of {}", limits.max_functions),
        ));
    }
    let component = Component::new(engine, bytes)
        .map_err(|e| refused(what, format!("it does not compile: {e:#}")))?;
    check_imports(engine, &component, grants, what)?;
    prepare(engine, &component, grants, what)
}

/// Every import must be allowed by the gate.
pub(crate) fn check_imports(
    engine: &Engine,
    component: &Component,
    grants: &Grants,
    what: &str,
) -> Result<()> {
    let authority = gate::linking(what, grants);
    for (name, item) in component.component_type().imports(engine) {
        // A world's `use` imports types (here `object`, `value`, `error`); a type alone
        // carries no authority, so only instances and functions go to the gate.
        if matches!(item, ComponentItem::Type(_) | ComponentItem::Resource(_)) {
            continue;
        }
        if let Decision::Denied(why) = Gate::decide(&authority, &Effect::Import(name)) {
            return Err(refused(what, why));
        }
    }
    Ok(())
}

/// The grants a component's imports need: for each import the gate denies with no
/// grants, the grant under which the gate allows it. Imports no grant allows are left
/// to the audit, which refuses them.
pub(crate) fn grants_needed(engine: &Engine, bytes: &[u8], what: &str) -> Result<Grants> {
    let component = Component::new(engine, bytes)
        .map_err(|e| refused(what, format!("it does not compile: {e:#}")))?;
    let none = gate::linking(what, &Grants::default());
    let mut needed = Grants::default();
    for (name, item) in component.component_type().imports(engine) {
        if matches!(item, ComponentItem::Type(_) | ComponentItem::Resource(_))
            || Gate::decide(&none, &Effect::Import(name)).allowed()
        {
            continue;
        }
        for grant in Grant::ALL {
            let one: Grants = [grant].into_iter().collect();
            if Gate::decide(&gate::linking(what, &one), &Effect::Import(name)).allowed() {
                needed.insert(grant);
            }
        }
    }
    Ok(needed)
}

/// Links the component against exactly what the gate allows and type-checks its export.
pub(crate) fn prepare(
    engine: &Engine,
    component: &Component,
    grants: &Grants,
    what: &str,
) -> Result<CapabilityPre<CallState>> {
    let linker = gate::linker(engine, grants)
        .map_err(|e| refused(what, format!("cannot build the linker: {e:#}")))?;
    let instance_pre = linker
        .instantiate_pre(component)
        .map_err(|e| refused(what, format!("its imports do not match batos:uvm@0.1.0: {e:#}")))?;
    CapabilityPre::new(instance_pre)
        .map_err(|e| refused(what, format!("it is not a component of the batos:uvm capability world (it must export `invoke`): {e:#}")))
}

fn count_functions(bytes: &[u8]) -> std::result::Result<u32, wasmparser::BinaryReaderError> {
    let mut total = 0u32;
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        if let wasmparser::Payload::FunctionSection(section) = payload? {
            total = total.saturating_add(section.count());
        }
    }
    Ok(total)
}
