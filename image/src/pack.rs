//! `pack`: garbage collection of objects, blobs and old history.
//!
//! Reachability is marked from the named roots inside one optimistic transaction, which
//! reads every key it relies on. If any concurrent transaction changes what was read
//! (say, stores a reference to an object about to be swept), the pack conflicts and is
//! retried, so it never removes an object that a committed transaction can reach.
//! Blob files are swept afterwards while the blob gate is held exclusively, so no
//! transaction can be between "blob written" and "reference committed" meanwhile.
//!
//! Objects reachable only from an embedder's in-memory `Oid` are *not* roots: like
//! ZODB, persistence is by reachability. Name what you want to keep with a root.

use std::collections::HashSet;

use fjall::Readable;

use super::record::{self, Space};
use super::{BlobHash, Image, Oid, Ref, TxId};
use crate::error::{Error, Result};

/// What a pack removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PackReport {
    /// Unreachable objects removed.
    pub objects: usize,
    /// Their slots, plus old slot tombstones.
    pub slot_records: usize,
    /// Blob files no object refers to.
    pub blobs: usize,
    /// History entries older than the requested point.
    pub history: usize,
}

impl Image {
    /// Removes objects unreachable from the named roots, blobs that no remaining object
    /// refers to, and (with `drop_history_before`) the history of every transaction
    /// older than that one, after which those can no longer be undone or inspected.
    pub fn pack(&self, drop_history_before: Option<TxId>) -> Result<PackReport> {
        let _exclusive = self.blob_gate.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        let current_floor = self.history_floor()?;
        let floor = match drop_history_before {
            Some(t) if t > current_floor => {
                if self.last_tx().is_none_or(|last| t.0 > last.0 + 1) {
                    return Err(Error::UnknownTransaction(t));
                }
                t
            }
            _ => current_floor,
        };
        let committed = self.transact("pack", |tx| {
            let mut report = PackReport::default();
            let mut marked: HashSet<Oid> = HashSet::new();
            let mut blobs: HashSet<BlobHash> = HashSet::new();
            let mut stack: Vec<Oid> = tx.roots()?.into_values().collect();
            while let Some(oid) = stack.pop() {
                if !marked.insert(oid) {
                    continue;
                }
                let Ok(parents) = tx.parents(oid) else { continue };
                stack.extend(parents);
                for value in tx.slots(oid)?.values() {
                    value.visit_refs(&mut |r| match r {
                        Ref::Object(o) => stack.push(o),
                        Ref::Blob(b) => {
                            blobs.insert(b.hash);
                        }
                    });
                }
            }

            let mut doomed: Vec<(Space, Vec<u8>)> = Vec::new();
            for guard in tx.inner().iter(self.keyspace(Space::Objects)) {
                let (key, raw) = guard.into_inner()?;
                let oid = Oid(record::decode_u64(&key, "an object key")?);
                if !marked.contains(&oid) {
                    if record::decode_stamped(&raw)?.body.is_some() {
                        report.objects += 1;
                    }
                    doomed.push((Space::Objects, key.to_vec()));
                }
            }
            for space in [Space::Slots, Space::Roots] {
                for guard in tx.inner().iter(self.keyspace(space)) {
                    let (key, raw) = guard.into_inner()?;
                    let stamped = record::decode_stamped(&raw)?;
                    let unreachable = space == Space::Slots
                        && !marked.contains(&Oid(record::decode_u64(&key, "a slot key")?));
                    let old_tombstone = stamped.body.is_none() && stamped.tx < floor;
                    if unreachable || old_tombstone {
                        if space == Space::Slots {
                            report.slot_records += 1;
                        }
                        doomed.push((space, key.to_vec()));
                    }
                }
            }
            for (space, key) in doomed {
                tx.raw_remove(space, key);
            }
            if floor > current_floor {
                let old: Vec<_> = tx
                    .inner()
                    .range(self.history_keyspace(), ..record::tx_key(floor))
                    .map(|g| g.key())
                    .collect::<Result<_, _>>()?;
                report.history = old.len();
                for key in old {
                    tx.inner_mut().remove(self.history_keyspace(), key);
                }
                tx.set_meta(super::META_HISTORY_FLOOR, floor.0.to_be_bytes().to_vec());
            }
            // Packing may remove the newest object's header; keep oids from being reused.
            tx.set_meta(super::META_OID_FLOOR, self.next_oid_floor().to_be_bytes().to_vec());
            Ok((report, blobs))
        })?;
        let (mut report, live_blobs) = committed.value;
        for hash in self.blobs().list()? {
            if !live_blobs.contains(&hash) {
                self.blobs().remove(&hash)?;
                report.blobs += 1;
            }
        }
        Ok(report)
    }
}
