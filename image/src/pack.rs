//! `pack`: garbage collection of objects, blobs and old history.
//!
//! Reachability is marked from the named roots inside one transaction, which reads
//! (and so validates at commit) every record it relies on. If any concurrent transaction changes what was read
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
use super::tx::RawTarget;
use super::versions;
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

            let mut doomed: Vec<(RawTarget, Vec<u8>)> = Vec::new();
            for (key, _, body) in tx.records(Space::Objects, &[])? {
                let oid = Oid(record::decode_u64(&key, "an object key")?);
                if !marked.contains(&oid) {
                    if body.is_some() {
                        report.objects += 1;
                    }
                    doomed.push((RawTarget::Record(Space::Objects), key));
                }
            }
            for space in [Space::Slots, Space::Roots] {
                for (key, stamp, body) in tx.records(space, &[])? {
                    let unreachable = space == Space::Slots
                        && !marked.contains(&Oid(record::decode_u64(&key, "a slot key")?));
                    let old_tombstone = body.is_none() && stamp < floor;
                    if unreachable || old_tombstone {
                        if space == Space::Slots {
                            report.slot_records += 1;
                        }
                        doomed.push((RawTarget::Record(space), key));
                    }
                }
            }
            // Versions: none of unreachable objects; of the rest, every version from the
            // floor on and the newest before it (the state the floor starts from).
            let mut previous: Option<(Vec<u8>, Vec<u8>)> = None; // (record, version key)
            for guard in tx.snapshot().iter(self.versions_keyspace()) {
                let version = guard.key()?.to_vec();
                let (record_key, stamp) = versions::split(&version)?;
                let oid = Oid(record::decode_u64(
                    record_key.get(1..).unwrap_or_default(),
                    "a version key",
                )?);
                if !marked.contains(&oid) {
                    doomed.push((RawTarget::Versions, version));
                    previous = None;
                    continue;
                }
                if stamp >= floor {
                    previous = None;
                    continue;
                }
                // Versions sort by record, then transaction: a second one before the
                // floor supersedes the first.
                if let Some((previous_record, previous_version)) = previous.take() {
                    if previous_record == record_key {
                        doomed.push((RawTarget::Versions, previous_version));
                    }
                }
                previous = Some((record_key.to_vec(), version));
            }
            for (target, key) in doomed {
                tx.raw_remove(target, key);
            }
            if floor > current_floor {
                let old: Vec<_> = tx
                    .snapshot()
                    .range(self.history_keyspace(), ..record::tx_key(floor))
                    .map(|g| g.key())
                    .collect::<Result<_, _>>()?;
                report.history = old.len();
                for key in old {
                    tx.raw_remove(RawTarget::History, key.to_vec());
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
