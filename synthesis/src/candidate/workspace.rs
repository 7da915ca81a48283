//! The warm build workspace: one crate whose `src/lib.rs` is rewritten per candidate,
//! built sealed, with the compiler's own suggestions applied before a round of the mind
//! is spent.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::signature::Signature;
use super::wrap::{BEGIN, END};
use crate::error::{Error, Result};
use crate::sandbox::build;
use crate::seal;

/// Why a candidate did not become component bytes. Each is a different outcome of the
/// cycle, so they are told apart here rather than by the words of an error.
#[derive(Debug)]
pub enum BuildError {
    /// Sealing refused it before cargo ran; the reason is written for the mind.
    Sealed(String),
    /// rustc's errors, rendered as people read them (the last pass's, after the
    /// compiler's own fixes).
    Compile(String),
    /// Anything else: the build stopped at its limit, the output did not componentize,
    /// the workspace could not be written.
    Host(Error),
}

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BuildError::Sealed(reason) => write!(f, "refused before building: {reason}"),
            BuildError::Compile(rendered) => write!(f, "it does not compile:\n{rendered}"),
            BuildError::Host(e) => e.fmt(f),
        }
    }
}

impl From<Error> for BuildError {
    fn from(e: Error) -> Self {
        BuildError::Host(e)
    }
}

/// The guest SDK (its macros crate included) and the WIT contract, compiled into the
/// host: an installed `batos` synthesises anywhere, with no source tree beside it.
/// Paths are relative to the workspace's `sdk/` folder.
const SDK_FILES: &[(&str, &str)] = &[
    ("guest-sdk/Cargo.toml", SDK_MANIFEST),
    ("guest-sdk/src/lib.rs", include_str!("../../../guest-sdk/src/lib.rs")),
    ("guest-sdk/src/convert.rs", include_str!("../../../guest-sdk/src/convert.rs")),
    ("guest-sdk/src/helpers.rs", include_str!("../../../guest-sdk/src/helpers.rs")),
    ("guest-sdk/src/testing.rs", include_str!("../../../guest-sdk/src/testing.rs")),
    ("guest-sdk/src/value.rs", include_str!("../../../guest-sdk/src/value.rs")),
    ("guest-sdk/macros/Cargo.toml", MACROS_MANIFEST),
    ("guest-sdk/macros/src/lib.rs", include_str!("../../../guest-sdk/macros/src/lib.rs")),
    // The SDK reads the WIT at `../wit` from its manifest, as in the source tree.
    ("wit/uvm.wit", include_str!("../../../wit/uvm.wit")),
];

/// The SDK's manifest as a crate of its own (the source tree's uses workspace
/// inheritance); the requirements match the workspace's.
const SDK_MANIFEST: &str = r#"[package]
name = "batos-guest-sdk"
version = "0.1.0"
edition = "2021"

[dependencies]
wit-bindgen = { version = "0.49", default-features = false, features = ["macros", "realloc"] }
batos-guest-sdk-macros = { path = "macros" }
"#;

/// The macros crate's manifest, likewise.
const MACROS_MANIFEST: &str = r#"[package]
name = "batos-guest-sdk-macros"
version = "0.1.0"
edition = "2021"

[lib]
proc-macro = true

[dependencies]
syn = { version = "2", features = ["full"] }
quote = "1"
proc-macro2 = "1"
"#;

/// The candidate crate's manifest (`{tag}` and `{sdk}` filled in by [`Workspace::open`]).
const MANIFEST: &str = r#"[package]
name = "batos-candidate-{tag}"
version = "0.0.0"
edition = "2021"

[lib]
crate-type = ["cdylib"]

[dependencies]
batos-guest-sdk = { path = {sdk} }

# Candidates build often and run briefly: a quick build beats a fast binary.
[profile.release]
opt-level = 1
debug = false
strip = true

[workspace]
"#;

/// A build workspace for candidates, kept warm between builds.
pub struct Workspace {
    dir: PathBuf,
    // One candidate at a time: they share `src/lib.rs` and the target directory.
    building: Mutex<()>,
    seal: build::Seal,
}

impl Workspace {
    /// Opens (creating when needed) a workspace in `dir`, building against the guest
    /// SDK compiled into this host (written under `dir/sdk/`). The manifest and its lock
    /// file are written here, by the host, and the SDK's dependencies fetched;
    /// candidates then build sealed (see [`build::build_crate`]) and can change neither.
    pub fn open(dir: &Path) -> Result<Workspace> {
        let io = |what: &str, e| Error::io(format!("{what} {}", dir.display()), e);
        std::fs::create_dir_all(dir.join("src")).map_err(|e| io("cannot create", e))?;
        let sdk = write_sdk(dir)?;
        // The package name is unique to the workspace, so workspaces sharing one cargo
        // target directory (kept warm across them) never read each other's output.
        let tag = &blake3::hash(dir.display().to_string().as_bytes()).to_hex()[..12];
        let manifest = MANIFEST
            .replace("{tag}", tag)
            .replace("{sdk}", &format!("{:?}", sdk.display().to_string()));
        std::fs::write(dir.join("Cargo.toml"), manifest)
            .map_err(|e| io("cannot write Cargo.toml in", e))?;
        // The lock step compiles nothing, but cargo wants a target to exist.
        let lib = dir.join("src").join("lib.rs");
        if !lib.is_file() {
            std::fs::write(&lib, "").map_err(|e| io("cannot write src/lib.rs in", e))?;
        }
        build::lock_workspace(dir, "the candidate workspace")?;
        Ok(Workspace {
            dir: dir.to_owned(),
            building: Mutex::new(()),
            seal: build::Seal::default(),
        })
    }

    /// Replaces the default [`build::Seal`] (time and memory limits of a build).
    pub fn with_seal(mut self, seal: build::Seal) -> Workspace {
        self.seal = seal;
        self
    }

    /// Builds `function` wrapped for `signature` into component bytes. A compile error
    /// comes back as [`Error::BuildFailed`] carrying the compiler's diagnostics.
    pub fn build(
        &self,
        signature: &Signature,
        function: &str,
    ) -> std::result::Result<Vec<u8>, BuildError> {
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
    ) -> std::result::Result<(Vec<u8>, String), BuildError> {
        let _one_at_a_time =
            self.building.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let what = format!("candidate `{}`", signature.name);
        let mut function = function.to_owned();
        let mut pass = 0;
        loop {
            // Sealed before every build: the mind's code, and whatever the compiler's
            // suggestions made of it, never reaches cargo holding a forbidden construct.
            seal::check(&function).map_err(|refusal| BuildError::Sealed(refusal.0))?;
            let source = signature.wrap(&function);
            let lib = self.dir.join("src").join("lib.rs");
            std::fs::write(&lib, &source)
                .map_err(|e| Error::io(format!("cannot write {}", lib.display()), e))?;
            let messages = match build::build_crate(&self.dir, &what, Some(&self.seal))? {
                build::CrateBuild::Built(module) => {
                    return Ok((build::componentize(&module, &what, false)?, function))
                }
                build::CrateBuild::Failed(messages) => messages,
            };
            let failed = || BuildError::Compile(build::rendered(&messages));
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

/// Writes the embedded guest SDK and WIT contract under `dir/sdk/`, rewriting a file
/// only when its content differs (so cargo's fingerprints stay warm), and answers the
/// SDK crate's folder.
fn write_sdk(dir: &Path) -> Result<PathBuf> {
    let sdk = dir.join("sdk");
    let files = SDK_FILES.iter().map(|(path, text)| (sdk.join(path), *text));
    for (path, text) in files {
        if std::fs::read_to_string(&path).ok().as_deref() == Some(text) {
            continue;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| Error::io(format!("cannot create {}", parent.display()), e))?;
        }
        std::fs::write(&path, text)
            .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
    }
    Ok(sdk.join("guest-sdk"))
}
