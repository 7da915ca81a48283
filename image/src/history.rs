//! History: the transaction log, undo, and objects as of a past transaction.
//!
//! Every commit that changes anything writes a [`record::TxRecord`] in the same fjall
//! batch, so the log and the data can never disagree. Undo is a new transaction
//! that writes back the "before" bodies; it is refused when any key it would restore was
//! written again later (the record's stamp is no longer the undone transaction), since
//! restoring it would silently destroy that later work.

use std::collections::BTreeMap;

use fjall::Readable;

use super::record::{self, Space, TxRecord};
use super::{Image, Oid, TxId, Value};
use crate::error::{Error, Result};

/// One transaction of the history, for display.
#[derive(Clone, Debug)]
pub struct HistoryEntry {
    /// Its id.
    pub tx: TxId,
    /// Commit time, milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// What caused it.
    pub description: String,
    /// A readable line per key it changed (e.g. `slot #3.x`).
    pub changes: Vec<String>,
}

/// An object as it was right after some past transaction.
#[derive(Clone, Debug, PartialEq)]
pub struct ObjectAsOf {
    /// The object.
    pub oid: Oid,
    /// The transaction it is shown after.
    pub at: TxId,
    /// Its parents then.
    pub parents: Vec<Oid>,
    /// Its own slots then.
    pub slots: BTreeMap<String, Value>,
}

fn entry_of(tx: TxId, record: TxRecord) -> HistoryEntry {
    let changes = record
        .writes
        .iter()
        .map(|w| {
            let verb = match (&w.before, &w.after) {
                (None, Some(_)) => "created",
                (Some(_), None) => "removed",
                _ => "changed",
            };
            format!("{verb} {}", describe_key(w.space, &w.key))
        })
        .collect();
    HistoryEntry { tx, time_ms: record.time_ms, description: record.description, changes }
}

/// Names a key the way a person would.
pub(crate) fn describe_key(space: Space, key: &[u8]) -> String {
    match space {
        Space::Objects => match record::decode_u64(key, "an object key") {
            Ok(oid) => format!("object #{oid}"),
            Err(_) => "a damaged object key".into(),
        },
        Space::Slots => match record::split_slot_key(key) {
            Ok((oid, name)) => format!("slot {oid}.{name}"),
            Err(_) => "a damaged slot key".into(),
        },
        Space::Roots => format!("root `{}`", String::from_utf8_lossy(key)),
    }
}

impl Image {
    /// The newest `limit` transactions, newest first.
    pub fn history(&self, limit: usize) -> Result<Vec<HistoryEntry>> {
        self.view(|tx| {
            let mut out = Vec::new();
            for guard in tx.snapshot().iter(self.history_keyspace()).rev().take(limit) {
                let (key, raw) = guard.into_inner()?;
                let id = TxId(record::decode_u64(&key, "a history key")?);
                out.push(entry_of(id, record::decode_tx_record(&raw)?));
            }
            Ok(out)
        })
    }

    /// One transaction of the history.
    pub fn history_entry(&self, id: TxId) -> Result<HistoryEntry> {
        self.view(|tx| Ok(entry_of(id, self.record_of(tx, id)?)))
    }

    fn record_of(&self, tx: &super::Tx<'_>, id: TxId) -> Result<TxRecord> {
        let floor = self.history_floor()?;
        if id < floor {
            return Err(Error::HistoryPacked { floor, wanted: id });
        }
        match tx.snapshot().get(self.history_keyspace(), record::tx_key(id))? {
            Some(raw) => record::decode_tx_record(&raw),
            None => Err(Error::UnknownTransaction(id)),
        }
    }

    /// Writes a new transaction that reverses `target`, and returns its id.
    ///
    /// Refused, with nothing written, if a later transaction changed any of the same
    /// keys (undo that one first), or if `target` changed nothing undoable.
    pub fn undo(&self, target: TxId) -> Result<TxId> {
        let committed = self.transact(&format!("undo {target}"), |tx| {
            let entry = self.record_of(tx, target)?;
            if entry.pinned {
                return Err(Error::UndoRefused {
                    tx: target,
                    reason: format!("`{}` cannot be undone", entry.description),
                });
            }
            if entry.writes.is_empty() {
                return Err(Error::UndoRefused {
                    tx: target,
                    reason: "it changed nothing that can be undone".into(),
                });
            }
            for w in &entry.writes {
                let stamp = match tx.committed(w.space, &w.key)? {
                    Some(raw) => Some(record::decode_stamped(&raw)?.tx),
                    None => None,
                };
                if stamp != Some(target) {
                    let by = match stamp {
                        Some(later) => {
                            format!("transaction {later} changed it since; undo {later} first")
                        }
                        None => "it was packed away since".into(),
                    };
                    return Err(Error::UndoRefused {
                        tx: target,
                        reason: format!("{}: {by}", describe_key(w.space, &w.key)),
                    });
                }
                tx.write_body(w.space, w.key.clone(), w.before.clone());
            }
            Ok(())
        })?;
        committed
            .tx
            .ok_or_else(|| Error::UndoRefused { tx: target, reason: "it changed nothing".into() })
    }
}
