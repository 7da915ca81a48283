//! Group commit: durable transactions that reach commit together share one journal sync.
//!
//! A durable commit writes its batch to the journal like a buffered one (into the OS,
//! under the commit serial) and then waits here until a sync covers it. The first waiter
//! to find no sync running becomes the *leader*: it notes the newest committed
//! transaction, syncs the journal once (fjall's `persist(SyncAll)`), and wakes everyone
//! that sync covered. Commits that arrive while a sync runs wait for the next one, which
//! covers all of them: with N writers, one sync acknowledges up to N commits, where
//! raw fjall (its oracle holds one lock across write and sync) pays one sync each.
//!
//! Why it is safe: the journal is one ordered log, batches reach it in transaction order
//! (the commit serial), and a sync persists everything written before it started. So a
//! sync started after transaction T was written covers T and every transaction before
//! it, including any whose effects T read.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use fjall::{Database, PersistMode};

use crate::error::{Error, Result};
use crate::TxId;

/// The sync state of one image, shared by its committing threads.
#[derive(Default)]
pub(crate) struct GroupCommit {
    state: Mutex<SyncState>,
    covered: Condvar,
}

#[derive(Default)]
struct SyncState {
    /// Every transaction up to this one is synced.
    through: u64,
    /// Whether a leader is syncing now.
    syncing: bool,
    /// Syncs performed, for [`crate::ImageStats`].
    syncs: u64,
    /// A failed sync poisons fjall; every later waiter is told so instead of hanging.
    failed: Option<String>,
}

impl GroupCommit {
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
                state = self.covered.wait(state).unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            state.syncing = true;
            // Everything committed so far is in the journal: the commit serial writes
            // before it publishes the transaction id.
            let target = newest();
            drop(state);
            let outcome = db.persist(PersistMode::SyncAll);
            state = self.lock();
            state.syncing = false;
            state.syncs += 1;
            match outcome {
                Ok(()) => state.through = state.through.max(target),
                Err(e) => state.failed = Some(e.to_string()),
            }
            self.covered.notify_all();
        }
    }

    /// Syncs performed so far, and the newest transaction known synced.
    pub(crate) fn counters(&self) -> (u64, u64) {
        let state = self.lock();
        (state.syncs, state.through)
    }
}
