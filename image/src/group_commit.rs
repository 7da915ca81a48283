//! Group commit: durable transactions that reach commit together share one journal sync.
//!
//! A durable commit writes its batch to the journal like a buffered one (into the OS,
//! under the commit serial) and then waits here until a sync covers it. The first waiter
//! to find no sync running becomes the *leader*: it notes the newest committed
//! transaction, syncs the journal file once, and wakes everyone that sync covered.
//! Commits that arrive while a sync runs write their batches meanwhile and wait for the
//! next one, which covers all of them: with N writers one sync acknowledges up to N
//! commits, where raw fjall (its oracle holds one lock across write and sync) pays one
//! sync each.
//!
//! The leader syncs the active journal file through its own handle rather than with
//! fjall's `persist`, because `persist` holds the journal's writer lock for the whole
//! fsync, and that would keep the next group from even writing its batches until the
//! sync ended (measured with 16 writers: 1.3 commits per sync through `persist`, 6.6
//! through its own handle, ~13 once the leader also gathers; see `gather`). A sync is
//! per file, not per handle, so it persists every byte written through fjall's handle
//! before it started. fjall names journals `N.jnl` in the store folder
//! and, when it seals one for the next, fsyncs the sealed one and the folder itself; so
//! syncing the newest file covers every batch written before the sync began. Should that
//! layout ever change (no journal file found), the leader uses `persist`: slower, never
//! wrong. The sync is `fdatasync`: fjall preallocates each journal file and fsyncs it
//! (and its folder) when it creates it, so a data sync persists the batches and the
//! block allocations needed to read them back; the inode's times are not needed.
//!
//! Why it is safe: the journal is one ordered log, batches reach it in transaction order
//! (the commit serial), and a sync persists everything written before it started. So a
//! sync started after transaction T was written covers T and every transaction before
//! it, including any whose effects T read.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use fjall::{Database, PersistMode};

use crate::error::{Error, Result};
use crate::TxId;

/// The sync state of one image, shared by its committing threads.
pub(crate) struct GroupCommit {
    state: Mutex<SyncState>,
    covered: Condvar,
    /// The store folder, where fjall keeps its journal files.
    store: PathBuf,
    /// The newest journal file seen, by number, with a handle to fsync it through.
    /// Only the leader touches it.
    journal: Mutex<Option<(u64, File)>>,
    /// Durable commits that have reached the commit serial, and those whose batch is
    /// written: a leader lets everyone who reached commit before it write first, so that
    /// commits arriving together share its sync instead of waiting for the next one.
    reached: AtomicU64,
    written: AtomicU64,
    /// Durable transactions begun, and those that reached commit or ended without: the
    /// difference is how many siblings may be about to commit (see `gather`).
    begun: AtomicU64,
    settled: AtomicU64,
}

#[derive(Default)]
struct SyncState {
    /// Every transaction up to this one is synced.
    through: u64,
    /// Whether a leader is syncing now.
    syncing: bool,
    /// How long the last sync took: a leader waits at most that long for siblings.
    last_sync: Duration,
    /// Commits the last sync acknowledged, and `begun` when it ended: their writers
    /// usually come straight back with their next commit.
    covered_last: u64,
    begun_mark: u64,
    /// Commits waiting for the running sync (a wake-up is a syscall; skip it for none).
    waiting: usize,
    /// Syncs performed, for [`crate::ImageStats`].
    syncs: u64,
    /// Why a sync failed: the journal's state on disk is then unknown, so every later
    /// waiter is told so instead of hanging, and every later commit is refused.
    failed: Option<String>,
}

impl GroupCommit {
    pub(crate) fn new(store: &Path) -> GroupCommit {
        GroupCommit {
            state: Mutex::default(),
            covered: Condvar::new(),
            store: store.to_path_buf(),
            journal: Mutex::new(None),
            reached: AtomicU64::new(0),
            written: AtomicU64::new(0),
            begun: AtomicU64::new(0),
            settled: AtomicU64::new(0),
        }
    }

    /// A durable transaction begins (an attempt of `transact`).
    pub(crate) fn begin(&self) {
        self.begun.fetch_add(1, Ordering::SeqCst);
    }

    /// It reached commit, or ended without committing.
    pub(crate) fn settle(&self) {
        self.settled.fetch_add(1, Ordering::SeqCst);
    }

    /// A durable commit reaches the commit serial (call before taking it).
    pub(crate) fn reach(&self) {
        self.reached.fetch_add(1, Ordering::SeqCst);
    }

    /// That commit's batch is written, or it ended without writing.
    pub(crate) fn written(&self) {
        self.written.fetch_add(1, Ordering::SeqCst);
    }

    /// Refuses a commit after a failed sync: fjall's journal is then in an unknown state.
    pub(crate) fn check(&self) -> Result<()> {
        match &self.lock().failed {
            None => Ok(()),
            Some(reason) => Err(Error::Failed(format!(
                "a journal sync failed earlier ({reason}); the image refuses writes until it is reopened"
            ))),
        }
    }

    /// Syncs the newest journal file (see the module's comment).
    fn sync_journal(&self, db: &Database) -> Result<()> {
        let mut journal = self.journal.lock().unwrap_or_else(PoisonError::into_inner);
        let io = |e: std::io::Error| Error::io("cannot fsync the journal", e);
        let mut id = match &*journal {
            Some((id, _)) => *id,
            None => match newest_journal(&self.store).map_err(io)? {
                Some(id) => id,
                None => return Ok(db.persist(PersistMode::SyncAll)?),
            },
        };
        // fjall seals journals in order; catch up with every one sealed since.
        while self.store.join(format!("{}.jnl", id + 1)).exists() {
            id += 1;
        }
        if journal.as_ref().is_none_or(|(open, _)| *open != id) {
            let file = File::open(self.store.join(format!("{id}.jnl"))).map_err(io)?;
            *journal = Some((id, file));
        }
        match &*journal {
            Some((_, file)) => file.sync_data().map_err(io),
            None => Ok(db.persist(PersistMode::SyncAll)?),
        }
    }

    fn lock(&self) -> MutexGuard<'_, SyncState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Returns once a journal sync that started after `tx` was written has finished.
    /// `newest` reads the newest committed transaction (whose batch is in the OS).
    pub(crate) fn sync_through(
        &self,
        db: &Database,
        tx: TxId,
        newest: impl Fn() -> u64,
    ) -> Result<()> {
        let mut state = self.lock();
        loop {
            if state.through >= tx.0 {
                return Ok(());
            }
            if let Some(reason) = &state.failed {
                return Err(Error::Failed(format!(
                    "transaction {tx} was written but the journal sync failed ({reason}); it may not survive a power loss, and the image refuses further writes until it is reopened"
                )));
            }
            if state.syncing {
                state.waiting += 1;
                state = self.covered.wait(state).unwrap_or_else(PoisonError::into_inner);
                state.waiting -= 1;
                continue;
            }
            state.syncing = true;
            let expected = Expected {
                patience: state.last_sync,
                returning: state.covered_last,
                begun_mark: state.begun_mark,
            };
            drop(state);
            self.gather(&expected);
            // Everything committed so far is in the journal: the commit serial writes
            // before it publishes the transaction id.
            let target = newest();
            let started = Instant::now();
            let outcome = self.sync_journal(db);
            state = self.lock();
            state.last_sync = started.elapsed();
            state.syncing = false;
            state.syncs += 1;
            match outcome {
                Ok(()) => {
                    state.covered_last = target.saturating_sub(state.through);
                    state.through = state.through.max(target);
                }
                Err(e) => state.failed = Some(e.to_string()),
            }
            state.begun_mark = self.begun.load(Ordering::SeqCst);
            if state.waiting > 0 {
                self.covered.notify_all();
            }
        }
    }

    /// Before a sync, lets the commits that reached the serial write their batches
    /// (each takes microseconds; later arrivals do not extend this). Then, for at most
    /// one sync's duration, it waits for the commits that are coming: durable
    /// transactions already running (PostgreSQL's `commit_siblings`), and the writers the
    /// last sync released, which usually commit again at once. Without that second part,
    /// N writers settle into two cohorts that alternate syncs, each sync carrying half of
    /// them (measured: 16 writers, ~9 commits per sync). The expectation adapts: a sync
    /// that covered fewer commits expects fewer back. A lone writer never waits: the
    /// commit it expects back is its own.
    fn gather(&self, expected: &Expected) {
        let deadline = Instant::now() + expected.patience;
        let mut ahead = self.reached.load(Ordering::SeqCst);
        loop {
            let begun = self.begun.load(Ordering::SeqCst);
            let siblings = begun.saturating_sub(self.settled.load(Ordering::SeqCst));
            let back = begun.saturating_sub(expected.begun_mark);
            let coming = siblings > 0 || back < expected.returning;
            let patient = coming && Instant::now() < deadline;
            if patient {
                ahead = ahead.max(self.reached.load(Ordering::SeqCst));
            }
            if self.written.load(Ordering::SeqCst) >= ahead && !patient {
                return;
            }
            // Yielding, not sleeping: the wait is tens of microseconds, shorter than a
            // timed sleep's granularity, and yielding hands the CPU to the very commits
            // being waited for (measured against a condition variable: no better, and
            // one more wake-up per commit).
            std::thread::yield_now();
        }
    }

    /// Syncs performed so far, and the newest transaction known synced.
    pub(crate) fn counters(&self) -> (u64, u64) {
        let state = self.lock();
        (state.syncs, state.through)
    }
}

/// What a leader expects before it syncs (see [`GroupCommit::gather`]).
struct Expected {
    patience: Duration,
    returning: u64,
    begun_mark: u64,
}

/// The highest-numbered `N.jnl` in the store folder.
fn newest_journal(store: &Path) -> std::io::Result<Option<u64>> {
    let mut newest = None;
    for entry in std::fs::read_dir(store)? {
        let name = entry?.file_name();
        let Some(id) =
            name.to_str().and_then(|n| n.strip_suffix(".jnl")).and_then(|n| n.parse().ok())
        else {
            continue;
        };
        newest = newest.max(Some(id));
    }
    Ok(newest)
}
