//! Plugins: capabilities installed from files, with a manifest.
//!
//! A plugin is one of
//!
//! * `NAME.wasm` — a component — with `NAME.toml` beside it;
//! * `NAME.wat` — the author's functions (see the WAT prelude) or a whole module or
//!   component — with `NAME.toml` beside it;
//! * a directory holding a guest-SDK crate (`Cargo.toml`) and `plugin.toml`.
//!
//! The manifest (TOML; unknown keys are refused):
//!
//! ```toml
//! selector = "greet:"          # the message it answers
//! target = "genesis"           # the root object it is installed on
//! description = "Greets someone by name."
//! grants = ["clock"]           # optional: clock, random, mind, memory (log is always granted)
//! deadline_ms = 500            # optional: wall time per call (default 1000)
//! hash = "…"                   # optional: blake3 of the component; a mismatch is refused
//! name = "greet"               # optional: defaults to the file or directory name
//! ```
//!
//! Installing audits the component, stores it (and its source) as blobs and writes the
//! method slot on the target and an entry in the `plugins` root object, all in one
//! transaction. An installed plugin runs from its stored component: no compiler or
//! source file is needed after a restart.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::build;
use super::gate::parse_grants;
use super::Sandbox;
use crate::error::{Error, Result};
use crate::image::{BlobHash, BlobRef, Method, Oid, Value};
use crate::runtime::{resolve_in, Runtime};

/// The root object that records installed plugins, one slot per plugin.
pub const REGISTRY_ROOT: &str = "plugins";

/// A plugin manifest.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The plugin's name (default: the file or directory name).
    pub name: Option<String>,
    /// The selector it answers.
    pub selector: String,
    /// The root object it is installed on.
    pub target: String,
    /// What it does, for people (and, later, the skill library).
    pub description: String,
    /// Optional interfaces it may import.
    #[serde(default)]
    pub grants: Vec<String>,
    /// Wall time per call, in milliseconds.
    pub deadline_ms: Option<u32>,
    /// The blake3 hash of the component, pinned.
    pub hash: Option<String>,
}

/// A plugin built from its files, ready to install.
#[derive(Debug)]
pub struct Built {
    /// Its name.
    pub name: String,
    /// Its manifest.
    pub manifest: Manifest,
    /// The component.
    pub component: Vec<u8>,
    /// The source it was built from, when there is one (WAT text, or the crate's
    /// `src/lib.rs`).
    pub source: Option<Vec<u8>>,
    /// The file or directory it came from.
    pub origin: PathBuf,
}

/// An installed plugin, as recorded in the `plugins` root object.
#[derive(Clone, Debug, PartialEq)]
pub struct Installed {
    /// Its name.
    pub name: String,
    /// The selector it answers.
    pub selector: String,
    /// The root name of its target.
    pub target: String,
    /// Its description.
    pub description: String,
    /// The component blob.
    pub component: BlobRef,
    /// The source blob, if any.
    pub source: Option<BlobRef>,
    /// Its grants.
    pub grants: Vec<String>,
    /// Its deadline, if not the default.
    pub deadline_ms: Option<u32>,
    /// Where it was installed from.
    pub origin: String,
}

fn bad_manifest(path: &Path, reason: impl Into<String>) -> Error {
    Error::BadManifest { path: path.to_path_buf(), reason: reason.into() }
}

/// Where the manifest of a plugin path is, and the plugin's default name.
fn manifest_path(path: &Path) -> Result<(PathBuf, String)> {
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .ok_or_else(|| bad_manifest(path, "the plugin path has no usable name"))?
        .to_owned();
    if path.is_dir() {
        Ok((path.join("plugin.toml"), stem))
    } else {
        Ok((path.with_extension("toml"), stem))
    }
}

/// Reads a manifest.
pub fn read_manifest(path: &Path) -> Result<Manifest> {
    let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => bad_manifest(
            path,
            "it does not exist; every plugin needs one (see `batos plugin add --help`)",
        ),
        _ => Error::io(format!("cannot read {}", path.display()), e),
    })?;
    parse_manifest(&text, path)
}

/// Reads a manifest's TOML text; `path` names it in errors.
pub fn parse_manifest(text: &str, path: &Path) -> Result<Manifest> {
    let manifest: Manifest = toml::from_str(text).map_err(|e| bad_manifest(path, e.to_string()))?;
    parse_grants(&manifest.grants).map_err(|e| bad_manifest(path, e))?;
    crate::image::validate_name(&manifest.selector)
        .map_err(|e| bad_manifest(path, format!("selector: {e}")))?;
    Ok(manifest)
}

/// A plugin sent as bytes rather than found on disk (the bridge's `plugin_add`):
/// `file` is its file name (`NAME.wasm`, or `NAME.wat` for WAT text), `manifest` its
/// manifest's TOML text, `origin` where it came from, for `plugin list`.
pub fn from_bytes(
    file: &str,
    bytes: Vec<u8>,
    manifest: &str,
    source: Option<Vec<u8>>,
    origin: &str,
) -> Result<Built> {
    let path = Path::new(file);
    let manifest_file = path.with_extension("toml");
    let manifest = parse_manifest(manifest, &manifest_file)?;
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
    let name = manifest.name.clone().unwrap_or_else(|| stem.to_owned());
    crate::image::validate_name(&name)
        .map_err(|e| bad_manifest(&manifest_file, format!("name: {e}")))?;
    let what = format!("plugin `{name}`");
    let (component, source) = match path.extension().and_then(|e| e.to_str()) {
        Some("wat") => {
            let text = String::from_utf8(bytes).map_err(|_| Error::BuildFailed {
                what: what.clone(),
                detail: format!("{file} is not UTF-8 text"),
            })?;
            (build::component_from_wat(&text, &what)?, Some(text.into_bytes()))
        }
        Some("wasm") => (bytes, source),
        _ => {
            return Err(Error::BuildFailed {
                what,
                detail: format!("{file} is neither NAME.wasm nor NAME.wat"),
            })
        }
    };
    check_pin(&manifest, &manifest_file, &component)?;
    Ok(Built { name, manifest, component, source, origin: PathBuf::from(origin) })
}

/// Refuses a component other than the one the manifest's `hash` pins.
fn check_pin(manifest: &Manifest, manifest_file: &Path, component: &[u8]) -> Result<()> {
    if let Some(pinned) = &manifest.hash {
        let pinned: BlobHash =
            pinned.parse().map_err(|e: String| bad_manifest(manifest_file, e))?;
        let actual = BlobHash::of(component);
        if pinned != actual {
            return Err(bad_manifest(
                manifest_file,
                format!("`hash` pins {pinned}, but the component hashes to {actual}; refusing a component that is not the one pinned"),
            ));
        }
    }
    Ok(())
}

/// Builds a plugin from its path (a `.wasm`, a `.wat`, or a crate directory).
pub fn build(path: &Path) -> Result<Built> {
    let (manifest_file, default_name) = manifest_path(path)?;
    let manifest = read_manifest(&manifest_file)?;
    let name = manifest.name.clone().unwrap_or(default_name);
    crate::image::validate_name(&name)
        .map_err(|e| bad_manifest(&manifest_file, format!("name: {e}")))?;
    let what = format!("plugin `{name}`");
    let extension = path.extension().and_then(|e| e.to_str()).unwrap_or_default();
    let (component, source) = if path.is_dir() {
        let component = build::component_from_crate(path, &what)?;
        let source = std::fs::read(path.join("src").join("lib.rs")).ok();
        (component, source)
    } else if extension == "wat" {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
        (build::component_from_wat(&text, &what)?, Some(text.into_bytes()))
    } else if extension == "wasm" {
        (
            std::fs::read(path)
                .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?,
            None,
        )
    } else {
        return Err(Error::BuildFailed {
            what,
            detail: format!(
                "{} is not a .wasm file, a .wat file or a plugin crate directory",
                path.display()
            ),
        });
    };
    check_pin(&manifest, &manifest_file, &component)?;
    Ok(Built { name, manifest, component, source, origin: path.to_path_buf() })
}

/// Audits and installs a built plugin in one transaction; replaces a plugin of the
/// same name.
pub fn install(rt: &Runtime, sandbox: &Sandbox, built: &Built) -> Result<Installed> {
    let grants = parse_grants(&built.manifest.grants)
        .map_err(|e| Error::AuditRefused { what: built.name.clone(), reason: e })?;
    sandbox.audit(&built.component, &grants, &format!("plugin `{}`", built.name))?;
    let origin = built.origin.display().to_string();
    let committed = rt.transact(&format!("plugin add {}", built.name), |cx| {
        let target = resolve_in(cx.tx(), &built.manifest.target)?;
        let component = cx.tx_mut("store a blob")?.put_blob(&built.component)?;
        let source = match &built.source {
            Some(s) => Some(cx.tx_mut("store a blob")?.put_blob(s)?),
            None => None,
        };
        let tx = cx.tx_mut("install a plugin")?;
        let registry = registry(tx)?;
        if let Some(previous) = entry(tx, registry, &built.name)? {
            unhook(tx, &previous)?;
        }
        let method = Method::Component {
            component,
            grants: built.manifest.grants.clone(),
            deadline_ms: built.manifest.deadline_ms,
        };
        cx.set_slot(target, &built.manifest.selector, &Value::Method(method))?;
        let installed = Installed {
            name: built.name.clone(),
            selector: built.manifest.selector.clone(),
            target: built.manifest.target.clone(),
            description: built.manifest.description.clone(),
            component,
            source,
            grants: built.manifest.grants.clone(),
            deadline_ms: built.manifest.deadline_ms,
            origin: origin.clone(),
        };
        cx.set_slot(registry, &built.name, &to_value(&installed, target))?;
        Ok(installed)
    })?;
    sandbox.save_artifact(rt.image(), &committed.value.component, &grants);
    tracing::info!(plugin = %built.name, component = %committed.value.component.hash, "installed");
    Ok(committed.value)
}

/// Builds and installs the plugin at `path`.
pub fn add(rt: &Runtime, sandbox: &Sandbox, path: &Path) -> Result<Installed> {
    install(rt, sandbox, &build(path)?)
}

/// Every installed plugin.
pub fn list(rt: &Runtime) -> Result<Vec<Installed>> {
    rt.view(|cx| {
        let Some(registry) = cx.tx().root(REGISTRY_ROOT)? else { return Ok(Vec::new()) };
        let mut out = Vec::new();
        for (name, value) in cx.tx().slots(registry)? {
            if let Some(p) = from_value(&name, &value) {
                out.push(p);
            }
        }
        Ok(out)
    })
}

/// Removes a plugin: its method slot (if it still holds this plugin's component) and
/// its registry entry, in one transaction.
pub fn remove(rt: &Runtime, name: &str) -> Result<Installed> {
    let committed = rt.transact(&format!("plugin remove {name}"), |cx| {
        let registry = cx.tx().root(REGISTRY_ROOT)?.ok_or_else(|| no_such_plugin(name))?;
        let installed = entry(cx.tx(), registry, name)?.ok_or_else(|| no_such_plugin(name))?;
        unhook(cx.tx_mut("remove a plugin")?, &installed)?;
        cx.remove_slot(registry, name)?;
        Ok(installed)
    })?;
    Ok(committed.value)
}

fn no_such_plugin(name: &str) -> Error {
    Error::not_found("plugin", name, "`batos plugin list` shows the installed plugins")
}

fn registry(tx: &mut crate::image::Tx<'_>) -> Result<Oid> {
    crate::runtime::registry_root(tx, REGISTRY_ROOT, "Installed plugins, one slot each.")
}

fn entry(tx: &crate::image::Tx<'_>, registry: Oid, name: &str) -> Result<Option<Installed>> {
    Ok(tx.slot(registry, name)?.and_then(|v| from_value(name, &v)))
}

/// Removes the plugin's method slot if it is still the plugin's.
fn unhook(tx: &mut crate::image::Tx<'_>, installed: &Installed) -> Result<()> {
    let Ok(target) = resolve_in(tx, &installed.target) else { return Ok(()) };
    if let Some(Value::Method(Method::Component { component, .. })) =
        tx.slot(target, &installed.selector)?
    {
        if component == installed.component {
            tx.remove_slot(target, &installed.selector)?;
        }
    }
    Ok(())
}

fn to_value(p: &Installed, target: Oid) -> Value {
    let mut m = BTreeMap::new();
    m.insert("selector".to_owned(), Value::Text(p.selector.clone()));
    m.insert("target".to_owned(), Value::Text(p.target.clone()));
    m.insert("targetObject".to_owned(), Value::Object(target));
    m.insert("description".to_owned(), Value::Text(p.description.clone()));
    m.insert("component".to_owned(), Value::Blob(p.component));
    m.insert("source".to_owned(), p.source.map_or(Value::Nil, Value::Blob));
    m.insert("grants".to_owned(), Value::List(p.grants.iter().cloned().map(Value::Text).collect()));
    m.insert(
        "deadlineMs".to_owned(),
        p.deadline_ms.map_or(Value::Nil, |d| Value::Int(i64::from(d))),
    );
    m.insert("origin".to_owned(), Value::Text(p.origin.clone()));
    Value::Map(m)
}

fn from_value(name: &str, v: &Value) -> Option<Installed> {
    let Value::Map(m) = v else { return None };
    let text = |k: &str| match m.get(k) {
        Some(Value::Text(s)) => Some(s.clone()),
        _ => None,
    };
    let Some(Value::Blob(component)) = m.get("component") else { return None };
    Some(Installed {
        name: name.to_owned(),
        selector: text("selector")?,
        target: text("target")?,
        description: text("description").unwrap_or_default(),
        component: *component,
        source: match m.get("source") {
            Some(Value::Blob(b)) => Some(*b),
            _ => None,
        },
        grants: match m.get("grants") {
            Some(Value::List(items)) => items
                .iter()
                .filter_map(|g| if let Value::Text(s) = g { Some(s.clone()) } else { None })
                .collect(),
            _ => Vec::new(),
        },
        deadline_ms: match m.get("deadlineMs") {
            Some(Value::Int(n)) => u32::try_from(*n).ok(),
            _ => None,
        },
        origin: text("origin").unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_refuse_unknown_keys_and_grants() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("p.toml");
        std::fs::write(
            &path,
            "selector = \"x\"\ntarget = \"genesis\"\ndescription = \"d\"\ncolour = \"red\"\n",
        )
        .expect("write");
        let e = read_manifest(&path).expect_err("unknown key");
        assert!(e.to_string().contains("colour"), "{e}");
        std::fs::write(&path, "selector = \"x\"\ntarget = \"genesis\"\ndescription = \"d\"\ngrants = [\"filesystem\"]\n").expect("write");
        let e = read_manifest(&path).expect_err("unknown grant");
        assert!(e.to_string().contains("not a grant"), "{e}");
        std::fs::write(
            &path,
            "selector = \"x\"\ntarget = \"genesis\"\ndescription = \"d\"\ngrants = [\"clock\"]\n",
        )
        .expect("write");
        assert_eq!(read_manifest(&path).expect("valid").grants, vec!["clock".to_owned()]);
    }
}
