//! The image folder's lock: one process at a time, and a clear word on who holds it.
//!
//! An advisory `flock` on `<image>/LOCK`, taken before the store is opened and released
//! by the kernel when the process dies (so a `kill -9` never leaves a stale lock). The
//! holder writes its pid, command line and start time into the file so that the next
//! process can name it in its refusal.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// A held image lock; released on drop.
/// How long a busy lock is retried before the image is declared in use. A lock can be
/// busy for a moment without anyone using the image: a process forked by another thread
/// of ours shares our descriptors (and so our `flock`) until it execs, even after we
/// closed ours. Half a second covers that and is short for a person to wait.
const BUSY_PATIENCE: Duration = Duration::from_millis(500);

fn try_lock_patiently(file: &File) -> Result<(), TryLockError> {
    let started = Instant::now();
    loop {
        match file.try_lock() {
            Err(TryLockError::WouldBlock) if started.elapsed() < BUSY_PATIENCE => {
                std::thread::sleep(Duration::from_millis(5));
            }
            other => return other,
        }
    }
}

#[derive(Debug)]
pub(crate) struct ImageLock {
    _file: File,
}

impl ImageLock {
    pub(crate) fn acquire(image_dir: &Path) -> Result<Self> {
        let path = image_dir.join("LOCK");
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io(format!("cannot open lock file {}", path.display()), e))?;
        match try_lock_patiently(&file) {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim().replace('\n', ", ");
                return Err(Error::ImageLocked {
                    path: image_dir.to_path_buf(),
                    holder: if holder.is_empty() { "holder unknown".into() } else { holder },
                });
            }
            Err(TryLockError::Error(e)) => {
                return Err(Error::io(format!("cannot lock {}", path.display()), e));
            }
        }
        let command: Vec<String> = std::env::args().collect();
        let since = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
        let info =
            format!("pid {}\ncommand {}\nsince {since}\n", std::process::id(), command.join(" "));
        // Best effort: the lock itself is what excludes; the text only explains.
        let _ = file.set_len(0);
        let _ = file.seek(SeekFrom::Start(0));
        let _ = file.write_all(info.as_bytes());
        Ok(ImageLock { _file: file })
    }
}
