//! The models folder: where models are kept, and the lock every writer of it holds.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

/// Where pulled models are kept: `$BATOS_MODELS`, else `~/.cache/batos/models`.
pub fn models_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("BATOS_MODELS") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".cache").join("batos").join("models")
}

/// The models folder held for one process or thread at a time: an exclusive `flock` on
/// `<models>/.lock`, released on drop (and by the kernel if the process dies). Every
/// writer of the folder — pull, import, an export made on first use — holds it, so any
/// number of processes and threads pulling one model at once take turns: the first
/// does the work, the others find it done. Files still appear by rename, so a crash
/// mid-way leaves no half-written model or export under its final name.
pub struct ModelsLock {
    _file: File,
}

impl ModelsLock {
    /// Waits for and takes the lock on `dir` (created if missing).
    pub fn acquire(dir: &Path) -> io::Result<ModelsLock> {
        fs::create_dir_all(dir)?;
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join(".lock"))?;
        file.lock()?;
        Ok(ModelsLock { _file: file })
    }
}
