//! Turning sources into components: WAT (wrapped in the prelude when it is only an
//! author's functions), core modules (componentized against the WIT contract), and
//! Rust crates built with cargo — the person's own crates as they are, synthesised
//! candidates sealed (see [`Seal`]). Nothing here decides what a component may do:
//! that is the audit's and the gate's.

use std::path::Path;
use std::process::Command;

use crate::error::{Error, Result};

/// The WIT contract, compiled into the host so it needs no files at run time.
pub const WIT: &str = include_str!("../../wit/uvm.wit");

/// The WAT prelude (documented inside the file).
pub const WAT_PRELUDE: &str = include_str!("wat_prelude.wat");

const AUTHOR_MARK: &str = ";; @@AUTHOR@@";

fn build_failed(what: &str, detail: impl std::fmt::Display) -> Error {
    Error::BuildFailed { what: what.to_owned(), detail: detail.to_string() }
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
        let package = resolve
            .push_str("uvm.wit", WIT)
            .map_err(|e| build_failed(what, format!("the WIT contract: {e:#}")))?;
        let world = resolve
            .select_world(&[package], Some("capability"))
            .map_err(|e| build_failed(what, format!("the WIT contract: {e:#}")))?;
        wit_component::embed_component_metadata(
            &mut module,
            &resolve,
            world,
            wit_component::StringEncoding::UTF8,
        )
        .map_err(|e| build_failed(what, format!("{e:#}")))?;
    }
    wit_component::ComponentEncoder::default()
        .module(&module)
        .and_then(|encoder| encoder.validate(true).encode())
        .map_err(|e| build_failed(what, format!("componentizing failed: {e:#}")))
}

/// Builds a guest-SDK crate for `wasm32-unknown-unknown` with cargo and componentizes
/// the result. Compiler diagnostics come back in the error. The crate is the person's
/// own (`batos plugin add`): its build runs as they would run it, `build.rs` included.
pub fn component_from_crate(dir: &Path, what: &str) -> Result<Vec<u8>> {
    match build_crate(dir, what, None)? {
        CrateBuild::Built(module) => componentize(&module, what, false),
        CrateBuild::Failed(messages) => {
            Err(build_failed(what, format!("cargo build failed:\n{}", rendered(&messages))))
        }
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

/// How a build of code nobody reviewed (a synthesised candidate) is confined.
#[derive(Clone, Debug)]
pub struct Seal {
    /// Wall-clock limit for the whole build: a pathological candidate (a const loop,
    /// a type that expands without end) must not hang the cycle. A warm candidate
    /// build takes about a second here; the first, building the SDK, about a minute.
    pub timeout: std::time::Duration,
    /// Address-space limit for cargo and every compiler it starts, so a build cannot
    /// exhaust the host's memory. rustc reserves far more address space than it
    /// touches; 8 GiB leaves it room and still stops a runaway.
    pub memory_bytes: u64,
}

impl Default for Seal {
    fn default() -> Self {
        Seal { timeout: std::time::Duration::from_secs(300), memory_bytes: 8 << 30 }
    }
}

/// Environment variables a sealed build keeps: what cargo and rustup need to find the
/// toolchain and the registry cache, nothing else of the host's.
const SEALED_ENV: [&str; 6] =
    ["PATH", "HOME", "CARGO_HOME", "RUSTUP_HOME", "RUSTUP_TOOLCHAIN", "TMPDIR"];

/// Compiles the guest crate in `dir` for `wasm32-unknown-unknown` (release, into
/// `$CARGO_TARGET_DIR` or `dir/target`). Compile errors come back as
/// [`CrateBuild::Failed`] with rustc's JSON diagnostics, which a caller can show or
/// apply fixes from; failures before compiling (no cargo, no target) are errors.
///
/// With a [`Seal`], cargo runs `--offline --frozen` (the manifest and lock file are
/// the host's, and nothing is fetched), in an environment scrubbed to [`SEALED_ENV`],
/// in its own process group under the seal's time and memory limits; a build past its
/// time is killed with everything it started and reported as [`Error::Limit`].
pub fn build_crate(dir: &Path, what: &str, seal: Option<&Seal>) -> Result<CrateBuild> {
    let manifest = dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest)
        .map_err(|e| Error::io(format!("cannot read {}", manifest.display()), e))?;
    let table: toml::Table =
        text.parse().map_err(|e| build_failed(what, format!("{}: {e}", manifest.display())))?;
    let name = table
        .get("package")
        .and_then(|p| p.get("name"))
        .and_then(|n| n.as_str())
        .ok_or_else(|| build_failed(what, format!("{} has no [package] name", manifest.display())))?
        .replace('-', "_");
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| dir.join("target"));
    let mut command = cargo();
    command
        .args([
            "build",
            "--release",
            "--quiet",
            "--message-format=json",
            "--target",
            "wasm32-unknown-unknown",
            "--manifest-path",
        ])
        .arg(&manifest);
    let output = match seal {
        None => command.env("CARGO_TARGET_DIR", &target_dir).output().map_err(|e| {
            Error::io(
                format!("cannot run cargo to build {what} (is a Rust toolchain installed?)"),
                e,
            )
        })?,
        Some(seal) => {
            command.args(["--offline", "--frozen"]);
            sealed(&mut command, &target_dir);
            run_sealed(command, seal, what)?
        }
    };
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
        let hint = if stderr.contains("wasm32-unknown-unknown")
            && stderr.contains("target may not be installed")
        {
            "\nhint: run `rustup target add wasm32-unknown-unknown`"
        } else if seal.is_some()
            && (stderr.contains("memory allocation") || stderr.contains("out of memory"))
        {
            "\nhint: the build ran out of the memory a sealed build may use"
        } else {
            ""
        };
        return Err(build_failed(what, format!("cargo build failed:\n{stderr}{hint}")));
    }
    let wasm =
        target_dir.join("wasm32-unknown-unknown").join("release").join(format!("{name}.wasm"));
    let module = std::fs::read(&wasm)
        .map_err(|e| Error::io(format!("cannot read the build output {}", wasm.display()), e))?;
    Ok(CrateBuild::Built(module))
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Scrubs `command`'s environment down to [`SEALED_ENV`] and the target directory.
fn sealed(command: &mut Command, target_dir: &Path) {
    command.env_clear();
    for name in SEALED_ENV {
        if let Some(value) = std::env::var_os(name) {
            command.env(name, value);
        }
    }
    command.env("CARGO_TARGET_DIR", target_dir);
}

/// Prepares a sealed build's workspace by the host's own hand: the lock file for the
/// manifest the host wrote, and its dependencies fetched, so that the build itself can
/// run `--offline --frozen`. Only host-written files are involved: no candidate code
/// exists in the workspace's build inputs yet.
pub fn lock_workspace(dir: &Path, what: &str) -> Result<()> {
    let manifest = dir.join("Cargo.toml");
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| dir.join("target"));
    // Each step offline first: the registry cache usually holds the SDK's dependencies
    // already. Both steps always run: an offline lock can name crates whose index
    // entries are cached but whose sources were never downloaded (a fresh machine whose
    // cargo built only the host), and the sealed build cannot fetch them.
    for step in [&["generate-lockfile"][..], &["fetch", "--locked"]] {
        if cargo_step(&manifest, &target_dir, step, true, what)?.is_ok() {
            continue;
        }
        if let Err(stderr) = cargo_step(&manifest, &target_dir, step, false, what)? {
            return Err(build_failed(
                what,
                format!("cannot prepare the build workspace: cargo {}:\n{stderr}", step.join(" ")),
            ));
        }
    }
    Ok(())
}

/// One cargo step of [`lock_workspace`]: `Err` holds cargo's complaint.
fn cargo_step(
    manifest: &Path,
    target_dir: &Path,
    step: &[&str],
    offline: bool,
    what: &str,
) -> Result<std::result::Result<(), String>> {
    let mut command = cargo();
    command.args(step).arg("--manifest-path").arg(manifest);
    if offline {
        command.arg("--offline");
    }
    sealed(&mut command, target_dir);
    let output = command.output().map_err(|e| {
        Error::io(format!("cannot run cargo to prepare {what} (is a Rust toolchain installed?)"), e)
    })?;
    if output.status.success() {
        Ok(Ok(()))
    } else {
        Ok(Err(String::from_utf8_lossy(&output.stderr).into_owned()))
    }
}

/// Runs a sealed cargo: its own process group (so a timeout kills rustc too), an
/// address-space limit inherited by every process it starts, and a wall-clock limit.
fn run_sealed(mut command: Command, seal: &Seal, what: &str) -> Result<std::process::Output> {
    use std::os::unix::process::CommandExt;
    let memory = seal.memory_bytes;
    command
        .process_group(0)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    // SAFETY: between fork and exec only async-signal-safe work: one setrlimit call on
    // values computed before the fork.
    unsafe {
        command.pre_exec(move || {
            let limit =
                libc::rlimit { rlim_cur: memory as libc::rlim_t, rlim_max: memory as libc::rlim_t };
            if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = command.spawn().map_err(|e| {
        Error::io(format!("cannot run cargo to build {what} (is a Rust toolchain installed?)"), e)
    })?;
    let group = child.id();
    let (done, finished) = std::sync::mpsc::channel();
    let waiter = std::thread::Builder::new()
        .name("batos-build-wait".into())
        .spawn(move || {
            let _ = done.send(child.wait_with_output());
        })
        .map_err(|e| Error::io("cannot start a thread to wait for cargo", e))?;
    let outcome = match finished.recv_timeout(seal.timeout) {
        Ok(output) => {
            output.map_err(|e| Error::io(format!("cannot wait for cargo building {what}"), e))
        }
        Err(_) => {
            // The whole group: cargo and every rustc it started.
            let pgid = libc::pid_t::try_from(group).unwrap_or(0);
            if pgid > 0 {
                // SAFETY: a plain kill(2) of the process group the child leads.
                unsafe {
                    libc::killpg(pgid, libc::SIGKILL);
                }
            }
            let _ = finished.recv();
            Err(Error::Limit {
                limit: "build time",
                detail: format!(
                    "building {what} took longer than {:?} and was stopped",
                    seal.timeout
                ),
            })
        }
    };
    let _ = waiter.join();
    outcome
}
