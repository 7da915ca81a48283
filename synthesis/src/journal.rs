//! The metacognition audit trail (the seeds' `metacognition.jsonl`): one JSON line per
//! cycle event — time, cycle, state, model, duration, token counts, compile and test
//! outcome, and a blake3 of the mission brief — appended to `metacognition.jsonl` in the
//! image folder. The image holds the cycles themselves; this is the flat log people
//! and scripts grep.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

/// An append-only JSON-lines log.
pub struct Journal {
    path: PathBuf,
    // One appender at a time, so lines never interleave.
    writing: Mutex<()>,
}

impl Journal {
    /// The journal of the image at `image_dir`.
    pub fn new(image_dir: &std::path::Path) -> Journal {
        Journal { path: image_dir.join("metacognition.jsonl"), writing: Mutex::new(()) }
    }

    /// Where it is.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Appends one event. The trail is an aid, not the record: a failed write is
    /// logged and the cycle goes on.
    pub fn append(&self, mut event: serde_json::Value) {
        if let Some(map) = event.as_object_mut() {
            map.insert("time_ms".into(), serde_json::json!(super::cycle::now_ms()));
        }
        let _one_writer = self.writing.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .and_then(|mut f| writeln!(f, "{event}"));
        if let Err(e) = written {
            tracing::warn!("cannot append to {}: {e}", self.path.display());
        }
    }

    /// Every event so far.
    pub fn read(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

/// The blake3 of a mission brief, hex.
pub fn brief_hash(brief: &str) -> String {
    blake3::hash(brief.as_bytes()).to_hex().to_string()
}
