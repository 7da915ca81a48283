//! The versions index: every body an object header or slot ever had, keyed so that
//! "as of transaction T" is one seek per key instead of a walk back through all newer
//! history.
//!
//! | keyspace   | key                                           | value                     |
//! |------------|-----------------------------------------------|---------------------------|
//! | `versions` | space (0 objects, 1 slots) ++ record key ++ tx (u64 BE) | tag (0 removed, 1 live) ++ body |
//!
//! Each commit writes one version per header or slot it changed, in the same batch as
//! the records and the history, so the index can never disagree with them. Images of
//! format 1 (before the index) get it built once at open, from the current records and
//! the history that remains. `pack` keeps, for each key, every version at or after the
//! history floor and the newest one before it (the state the floor starts from).

use std::collections::BTreeMap;
use std::ops::Bound;

use fjall::Readable;

use crate::error::{Error, Result};
use crate::record::{self, Space};
use crate::{Image, ObjectAsOf, Oid, TxId};

fn space_byte(space: Space) -> Option<u8> {
    match space {
        Space::Objects => Some(0),
        Space::Slots => Some(1),
        Space::Roots => None,
    }
}

/// The version key of `key` in `space` written by `tx` (`None`: roots are not indexed).
pub(crate) fn key(space: Space, key: &[u8], tx: TxId) -> Option<Vec<u8>> {
    let byte = space_byte(space)?;
    let mut out = Vec::with_capacity(1 + key.len() + 8);
    out.push(byte);
    out.extend_from_slice(key);
    out.extend_from_slice(&tx.0.to_be_bytes());
    Some(out)
}

/// Splits a version key into (record key with its space byte, tx).
pub(crate) fn split(version: &[u8]) -> Result<(&[u8], TxId)> {
    let cut = version
        .len()
        .checked_sub(8)
        .filter(|cut| *cut >= 1)
        .ok_or_else(|| Error::Corrupt("a version key is too short".into()))?;
    let (head, tail) = version.split_at(cut);
    Ok((head, TxId(record::decode_u64(tail, "a version stamp")?)))
}

/// The stored form of a body after a write.
pub(crate) fn encode(body: Option<&[u8]>) -> Vec<u8> {
    match body {
        None => vec![0],
        Some(b) => {
            let mut out = Vec::with_capacity(1 + b.len());
            out.push(1);
            out.extend_from_slice(b);
            out
        }
    }
}

fn decode(bytes: &[u8]) -> Result<Option<Vec<u8>>> {
    match bytes.first() {
        Some(0) => Ok(None),
        Some(1) => Ok(Some(bytes.get(1..).unwrap_or_default().to_vec())),
        _ => Err(Error::Corrupt("a version has an unknown tag".into())),
    }
}

impl Image {
    /// The object as it was right after transaction `at` committed.
    ///
    /// One seek in the versions index per key the object has had, however much history
    /// came after `at`.
    pub fn object_at(&self, oid: Oid, at: TxId) -> Result<ObjectAsOf> {
        let floor = self.history_floor()?;
        if at.0 + 1 < floor.0 {
            return Err(Error::HistoryPacked { floor, wanted: at });
        }
        if self.last_tx().is_none_or(|last| at > last) {
            return Err(Error::UnknownTransaction(at));
        }
        self.view(|tx| {
            let snapshot = tx.snapshot();
            let versions = self.versions_keyspace();
            // The newest version at or before `at` of one record.
            let as_of = |space: Space, record_key: &[u8]| -> Result<Option<Vec<u8>>> {
                let Some(high) = key(space, record_key, at) else { return Ok(None) };
                let Some(guard) =
                    snapshot.range(versions, low_bound(&high)..=high.clone()).next_back()
                else {
                    return Ok(None);
                };
                let (found, value) = guard.into_inner()?;
                // Names hold no control characters, so no other record's versions sort
                // inside this range; check anyway rather than trust it.
                if found.len() != high.len() {
                    return Err(Error::Corrupt("the versions index is out of order".into()));
                }
                decode(&value)
            };
            let parents = match as_of(Space::Objects, &record::oid_key(oid))? {
                Some(body) => record::decode_parents(&body)?,
                None => return Err(Error::UnknownObject(oid)),
            };
            // Skip from one slot name to the next through the index itself: one seek per
            // name, not a pass over every version (or over the live records, whose
            // memtable keeps every overwritten version until it is flushed).
            let mut slots = BTreeMap::new();
            let prefix = key(Space::Slots, &record::oid_key(oid), TxId(0))
                .map(|mut k| {
                    k.truncate(9);
                    k
                })
                .unwrap_or_default();
            let mut after: Option<Vec<u8>> = None;
            loop {
                let lower = match after.take() {
                    Some(past) => Bound::Excluded(past),
                    None => Bound::Included(prefix.clone()),
                };
                let Some(guard) =
                    snapshot.range::<Vec<u8>, _>(versions, (lower, Bound::Unbounded)).next()
                else {
                    break;
                };
                let version = guard.key()?;
                if !version.starts_with(&prefix) {
                    break;
                }
                let (record_key, _) = split(&version)?;
                let slot_key = record_key.get(1..).unwrap_or_default().to_vec();
                if let Some(body) = as_of(Space::Slots, &slot_key)? {
                    let (_, name) = record::split_slot_key(&slot_key)?;
                    slots.insert(name, record::decode_value(&body)?);
                }
                let mut past = record_key.to_vec();
                past.extend_from_slice(&[0xFF; 8]);
                after = Some(past);
            }
            Ok(ObjectAsOf { oid, at, parents, slots })
        })
    }

    /// Builds the versions index of an image written before it existed (format 1), and
    /// marks the image format 2. Idempotent: a crash part-way leaves format 1 and the
    /// next open builds it again.
    pub(crate) fn build_versions_index(&self) -> Result<()> {
        let snapshot = self.database().snapshot();
        let mut batch = self.database().batch();
        let mut pending = 0usize;
        let flush = |batch: fjall::OwnedWriteBatch| -> Result<fjall::OwnedWriteBatch> {
            batch.commit()?;
            Ok(self.database().batch())
        };
        for space in [Space::Objects, Space::Slots] {
            for guard in snapshot.iter(self.keyspace(space)) {
                let (k, raw) = guard.into_inner()?;
                let stamped = record::decode_stamped(&raw)?;
                if let Some(version) = key(space, &k, stamped.tx) {
                    batch.insert(self.versions_keyspace(), version, encode(stamped.body));
                    pending += 1;
                }
                if pending >= 10_000 {
                    batch = flush(batch)?;
                    pending = 0;
                }
            }
        }
        for guard in snapshot.iter(self.history_keyspace()) {
            let (k, raw) = guard.into_inner()?;
            let tx = TxId(record::decode_u64(&k, "a history key")?);
            for w in record::decode_tx_record(&raw)?.writes {
                if let Some(version) = key(w.space, &w.key, tx) {
                    batch.insert(self.versions_keyspace(), version, encode(w.after.as_deref()));
                    pending += 1;
                }
            }
            if pending >= 10_000 {
                batch = flush(batch)?;
                pending = 0;
            }
        }
        batch.insert(
            self.meta_keyspace(),
            super::META_FORMAT,
            record::FORMAT_VERSION.to_be_bytes().to_vec(),
        );
        batch.commit()?;
        self.database().persist(fjall::PersistMode::SyncAll)?;
        Ok(())
    }
}

/// The smallest version key of the record whose newest-possible version key is `high`.
fn low_bound(high: &[u8]) -> Vec<u8> {
    let mut low = high.to_vec();
    let cut = low.len().saturating_sub(8);
    for byte in &mut low[cut..] {
        *byte = 0;
    }
    low
}
