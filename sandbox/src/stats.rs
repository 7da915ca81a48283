//! Per-capability observability: calls, failures by kind, fuel used, the last error.
//!
//! Counted in memory and merged into the image's advisory store (outside transactions:
//! a failed call must still count, though its transaction rolled back) at most once a
//! second or every 64 calls, at once after a failure, and on [`Recorder::flush`].

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::image::{BlobHash, Image, Value};

/// What the sandbox observed of one capability (one component).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapabilityStats {
    /// Calls, successful or not.
    pub calls: u64,
    /// Failed calls by error kind (`limit`, `trapped`, `not_permitted`, …).
    pub failures: BTreeMap<String, u64>,
    /// Fuel consumed by successful calls, summed.
    pub fuel_used: u64,
    /// The most recent error's message.
    pub last_error: Option<String>,
}

impl CapabilityStats {
    fn merge(&mut self, other: &CapabilityStats) {
        self.calls += other.calls;
        for (kind, n) in &other.failures {
            *self.failures.entry(kind.clone()).or_default() += n;
        }
        self.fuel_used += other.fuel_used;
        if other.last_error.is_some() {
            self.last_error.clone_from(&other.last_error);
        }
    }
}

const PREFIX: &str = "stats/";
const FLUSH_EVERY_CALLS: u32 = 64;
const FLUSH_EVERY: Duration = Duration::from_secs(1);

#[derive(Default)]
struct Pending {
    deltas: HashMap<BlobHash, CapabilityStats>,
    calls: u32,
    last_flush: Option<Instant>,
}

/// Gathers statistics and persists them.
#[derive(Default)]
pub(crate) struct Recorder {
    pending: Mutex<Pending>,
}

impl Recorder {
    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn record(&self, hash: BlobHash, outcome: &Result<(Value, u64)>, image: &Image) {
        let due = {
            let mut p = self.lock();
            let s = p.deltas.entry(hash).or_default();
            s.calls += 1;
            match outcome {
                Ok((_, fuel)) => s.fuel_used += fuel,
                Err(e) => {
                    *s.failures.entry(e.kind().to_owned()).or_default() += 1;
                    s.last_error = Some(e.to_string());
                }
            }
            p.calls += 1;
            outcome.is_err()
                || p.calls >= FLUSH_EVERY_CALLS
                || p.last_flush.is_none_or(|t| t.elapsed() >= FLUSH_EVERY)
        };
        if due {
            if let Err(e) = self.flush(image) {
                tracing::warn!("could not persist capability statistics: {e}");
            }
        }
    }

    pub(crate) fn flush(&self, image: &Image) -> Result<()> {
        let deltas = {
            let mut p = self.lock();
            p.calls = 0;
            p.last_flush = Some(Instant::now());
            std::mem::take(&mut p.deltas)
        };
        for (hash, delta) in deltas {
            let key = format!("{PREFIX}{hash}");
            let mut total = match image.aux_get(&key)? {
                Some(raw) => postcard::from_bytes(&raw).unwrap_or_default(),
                None => CapabilityStats::default(),
            };
            total.merge(&delta);
            let raw = postcard::to_stdvec(&total)
                .map_err(|e| Error::Failed(format!("cannot encode statistics: {e}")))?;
            image.aux_put(&key, &raw)?;
        }
        Ok(())
    }

    pub(crate) fn all(&self, image: &Image) -> Result<HashMap<BlobHash, CapabilityStats>> {
        let mut out: HashMap<BlobHash, CapabilityStats> = HashMap::new();
        for (key, raw) in image.aux_scan(PREFIX)? {
            let Some(hash) = key.strip_prefix(PREFIX).and_then(|h| h.parse().ok()) else {
                continue;
            };
            out.insert(hash, postcard::from_bytes(&raw).unwrap_or_default());
        }
        for (hash, delta) in &self.lock().deltas {
            out.entry(*hash).or_default().merge(delta);
        }
        Ok(out)
    }
}
