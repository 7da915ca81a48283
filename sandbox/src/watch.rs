//! The drop-in folder: plugins appear, change and disappear with their files.
//!
//! [`sync`] makes the installed plugins match a folder (level-triggered, so a missed
//! event is repaired by the next one); [`DropFolder::watch`] runs it whenever the
//! folder changes. Each audit outcome is logged and reported.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};

use super::plugin::{self, Installed};
use super::Sandbox;
use crate::error::{Error, Result};
use crate::image::BlobHash;
use crate::runtime::Runtime;

/// What one synchronisation did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SyncReport {
    /// Plugins installed or updated, by name.
    pub installed: Vec<String>,
    /// Plugins removed because their files went away, by name.
    pub removed: Vec<String>,
    /// Files that failed to build or pass the audit, with the reason (nothing of them
    /// was installed; a previous version stays).
    pub refused: Vec<(PathBuf, String)>,
}

/// The plugin sources in `dir`: `.wasm` and `.wat` files only. A crate directory is
/// never built from here: building a crate runs its `build.rs` and proc macros natively,
/// which only an explicit `batos plugin add` may ask for.
fn candidates(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut out: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let ext = p.extension().and_then(|e| e.to_str()).unwrap_or_default();
            p.is_file() && (ext == "wasm" || ext == "wat")
        })
        .collect();
    out.sort();
    out
}

fn unchanged(installed: &Installed, built: &plugin::Built) -> bool {
    installed.component.hash == BlobHash::of(&built.component)
        && installed.selector == built.manifest.selector
        && installed.target == built.manifest.target
        && installed.grants == built.manifest.grants
        && installed.deadline_ms == built.manifest.deadline_ms
        && installed.description == built.manifest.description
}

/// Makes the plugins installed from `dir` match its files.
pub fn sync(rt: &Runtime, sandbox: &Sandbox, dir: &Path) -> Result<SyncReport> {
    let mut report = SyncReport::default();
    let installed = plugin::list(rt)?;
    let dir_text = dir.display().to_string();
    let from_here = |p: &Installed| {
        Path::new(&p.origin).parent().map(|d| d.display().to_string()) == Some(dir_text.clone())
    };
    for path in candidates(dir) {
        let outcome = plugin::build(&path).and_then(|built| {
            match installed.iter().find(|p| p.name == built.name) {
                Some(current) if unchanged(current, &built) => Ok(None),
                _ => plugin::install(rt, sandbox, &built).map(|p| Some(p.name)),
            }
        });
        match outcome {
            Ok(Some(name)) => {
                tracing::info!(plugin = %name, file = %path.display(), "audit passed; installed");
                report.installed.push(name);
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(file = %path.display(), "refused: {e}");
                report.refused.push((path, e.to_string()));
            }
        }
    }
    for p in installed.iter().filter(|p| from_here(p) && !Path::new(&p.origin).exists()) {
        plugin::remove(rt, &p.name)?;
        tracing::info!(plugin = %p.name, "its file is gone; removed");
        report.removed.push(p.name.clone());
    }
    Ok(report)
}

/// A folder being watched; watching stops when this is dropped.
pub struct DropFolder {
    _watcher: notify::RecommendedWatcher,
}

impl DropFolder {
    /// Syncs `dir` now and after every change to it, calling `on_sync` with each report.
    pub fn watch(
        rt: Arc<Runtime>,
        sandbox: Arc<Sandbox>,
        dir: &Path,
        on_sync: impl Fn(Result<SyncReport>) + Send + 'static,
    ) -> Result<DropFolder> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
        let (tx, rx) = mpsc::channel::<()>();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                // Builds write under target/; those are not plugin changes.
                let relevant = event.is_ok_and(|e| {
                    !e.paths.iter().any(|p| p.components().any(|c| c.as_os_str() == "target"))
                });
                if relevant {
                    let _ = tx.send(());
                }
            })
            .map_err(|e| Error::Failed(format!("cannot watch {}: {e}", dir.display())))?;
        watcher
            .watch(dir, RecursiveMode::Recursive)
            .map_err(|e| Error::Failed(format!("cannot watch {}: {e}", dir.display())))?;
        on_sync(sync(&rt, &sandbox, dir));
        let dir = dir.to_path_buf();
        std::thread::Builder::new()
            .name("batos-plugins".into())
            .spawn(move || {
                while rx.recv().is_ok() {
                    // Editors write in bursts: gather the burst, then sync once.
                    while rx.recv_timeout(Duration::from_millis(100)).is_ok() {}
                    on_sync(sync(&rt, &sandbox, &dir));
                }
            })
            .map_err(|e| Error::io("cannot start the plugin watcher", e))?;
        Ok(DropFolder { _watcher: watcher })
    }
}
