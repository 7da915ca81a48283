//! Turning sources into components, and the audit every component passes before it is
//! installed (the seeds' PersistenceGuardian, for WebAssembly).
//!
//! The audit checks, in order: the size limit; that the bytes are WebAssembly and a
//! *component* (not a core module); that they validate; the function-count limit; that
//! every import is allowed by the [`Gate`] for the manifest's grants; and that the
//! component exports the `capability` world's `invoke` with the right type. Each
//! refusal names the offending import or limit.

use std::path::Path;
use std::process::Command;

use wasmtime::component::types::ComponentItem;
use wasmtime::component::Component;
use wasmtime::Engine;

use super::gate::{Decision, Gate, Grants};
use super::host::{CallState, CapabilityPre};
use super::limits::Limits;
use crate::error::{Error, Result};

/// The WIT contract, compiled into the host so it needs no files at run time.
pub const WIT: &str = include_str!("../../../wit/uvm.wit");

/// The WAT prelude (documented inside the file).
pub const WAT_PRELUDE: &str = include_str!("wat_prelude.wat");

const AUTHOR_MARK: &str = ";; @@AUTHOR@@";

fn build_failed(what: &str, detail: impl std::fmt::Display) -> Error {
    Error::BuildFailed { what: what.to_owned(), detail: detail.to_string() }
}

fn refused(what: &str, reason: impl Into<String>) -> Error {
    Error::AuditRefused { what: what.to_owned(), reason: reason.into() }
}

/// Builds a component from WAT text. Text that is a whole `(module …)` or
/// `(component …)` is used as it is; anything else is an author's functions, wrapped
/// in the prelude.
pub fn component_from_wat(text: &str, what: &str) -> Result<Vec<u8>> {
    let first = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with(";;"))
        .unwrap_or_default();
    let full = if first.starts_with("(module") || first.starts_with("(component") {
        text.to_owned()
    } else {
        let wrapped = WAT_PRELUDE.replacen(AUTHOR_MARK, text, 1);
        format!("(module\n{wrapped}\n)")
    };
    let bytes = wat::parse_str(&full).map_err(|e| build_failed(what, e))?;
    if wasmparser::Parser::is_component(&bytes) {
        return Ok(bytes);
    }
    componentize(&bytes, what, true)
}

/// Wraps a core module in a component of the `capability` world. `embed` adds the
/// world's type information (a Rust build made with the guest SDK already carries it).
pub fn componentize(module: &[u8], what: &str, embed: bool) -> Result<Vec<u8>> {
    let mut module = module.to_vec();
    if embed {
        let mut resolve = wit_parser::Resolve::default();
        let package = resolve.push_str("uvm.wit", WIT).map_err(|e| build_failed(what, format!("the WIT contract: {e:#}")))?;
        let world = resolve
            .select_world(&[package], Some("capability"))
            .map_err(|e| build_failed(what, format!("the WIT contract: {e:#}")))?;
        wit_component::embed_component_metadata(&mut module, &resolve, world, wit_component::StringEncoding::UTF8)
            .map_err(|e| build_failed(what, format!("{e:#}")))?;
    }
    wit_component::ComponentEncoder::default()
        .module(&module)
        .and_then(|encoder| encoder.validate(true).encode())
        .map_err(|e| build_failed(what, format!("componentizing failed: {e:#}")))
}

/// Builds a guest-SDK crate for `wasm32-unknown-unknown` with cargo and componentizes
/// the result. Compiler diagnostics come back in the error.
pub fn component_from_crate(dir: &Path, what: &str) -> Result<Vec<u8>> {
    match build_crate(dir, what)? {
        CrateBuild::Built(module) => componentize(&module, what, false),
        CrateBuild::Failed(messages) => Err(build_failed(what, format!("cargo build failed:\n{}", rendered(&messages)))),
    }
}

/// The outcome of compiling a guest crate.
pub enum CrateBuild {
    /// The core wasm module.
    Built(Vec<u8>),
    /// The compiler's messages (rustc's JSON diagnostics), errors among them.
    Failed(Vec<serde_json::Value>),
}

/// The compiler's messages as people read them.
pub fn rendered(messages: &[serde_json::Value]) -> String {
    messages.iter().filter_map(|m| m.get("rendered").and_then(|r| r.as_str())).collect()
}

/// Compiles the guest crate in `dir` for `wasm32-unknown-unknown` (release, into
/// `$CARGO_TARGET_DIR` or `dir/target`). Compile errors come back as
/// [`CrateBuild::Failed`] with rustc's JSON diagnostics, which a caller can show or
/// apply fixes from; failures before compiling (no cargo, no target) are errors.
pub fn build_crate(dir: &Path, what: &str) -> Result<CrateBuild> {
    let manifest = dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).map_err(|e| Error::io(format!("cannot read {}", manifest.display()), e))?;
    let table: toml::Table = text.parse().map_err(|e| build_failed(what, format!("{}: {e}", manifest.display())))?;
    let name = table
        .get("package")
        .and_then(|p| p.get("name"))
        .and_then(|n| n.as_str())
        .ok_or_else(|| build_failed(what, format!("{} has no [package] name", manifest.display())))?
        .replace('-', "_");
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| dir.join("target"));
    let output = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(["build", "--release", "--quiet", "--message-format=json", "--target", "wasm32-unknown-unknown", "--manifest-path"])
        .arg(&manifest)
        .env("CARGO_TARGET_DIR", &target_dir)
        .output()
        .map_err(|e| Error::io(format!("cannot run cargo to build {what} (is a Rust toolchain installed?)"), e))?;
    if !output.status.success() {
        let messages: Vec<serde_json::Value> = String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|m| m.get("reason").and_then(|r| r.as_str()) == Some("compiler-message"))
            .filter_map(|m| m.get("message").cloned())
            .collect();
        if messages.iter().any(|m| m.get("level").and_then(|l| l.as_str()) == Some("error")) {
            return Ok(CrateBuild::Failed(messages));
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        let hint = if stderr.contains("wasm32-unknown-unknown") && stderr.contains("target may not be installed") {
            "\nhint: run `rustup target add wasm32-unknown-unknown`"
        } else {
            ""
        };
        return Err(build_failed(what, format!("cargo build failed:\n{stderr}{hint}")));
    }
    let wasm = target_dir.join("wasm32-unknown-unknown").join("release").join(format!("{name}.wasm"));
    let module = std::fs::read(&wasm).map_err(|e| Error::io(format!("cannot read the build output {}", wasm.display()), e))?;
    Ok(CrateBuild::Built(module))
}

/// Audits component bytes for a capability holding `grants`; what passes comes back
/// linked and ready to instantiate.
pub(crate) fn audit(engine: &Engine, limits: &Limits, bytes: &[u8], grants: &Grants, what: &str) -> Result<CapabilityPre<CallState>> {
    if bytes.len() > limits.max_component_bytes {
        return Err(refused(what, format!("{} bytes is over the {}-byte component size limit", bytes.len(), limits.max_component_bytes)));
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
    let mut validator = wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::default());
    validator.validate_all(bytes).map_err(|e| refused(what, format!("invalid component: {e}")))?;
    let functions = count_functions(bytes).map_err(|e| refused(what, format!("invalid component: {e}")))?;
    if functions > limits.max_functions {
        return Err(refused(what, format!("{functions} functions is over the limit of {}", limits.max_functions)));
    }
    let component = Component::new(engine, bytes).map_err(|e| refused(what, format!("it does not compile: {e:#}")))?;
    check_imports(engine, &component, grants, what)?;
    prepare(engine, &component, grants, what)
}

/// Every import must be allowed by the gate.
pub(crate) fn check_imports(engine: &Engine, component: &Component, grants: &Grants, what: &str) -> Result<()> {
    for (name, item) in component.component_type().imports(engine) {
        // A world's `use` imports types (here `object`, `value`, `error`); a type alone
        // carries no authority, so only instances and functions go to the gate.
        if matches!(item, ComponentItem::Type(_) | ComponentItem::Resource(_)) {
            continue;
        }
        if let Decision::Denied(why) = Gate::decide(grants, name) {
            return Err(refused(what, why));
        }
    }
    Ok(())
}

/// Links the component against exactly what the gate allows and type-checks its export.
pub(crate) fn prepare(engine: &Engine, component: &Component, grants: &Grants, what: &str) -> Result<CapabilityPre<CallState>> {
    let linker = Gate::linker(engine, grants).map_err(|e| refused(what, format!("cannot build the linker: {e:#}")))?;
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
