//! [`Tx`]: one ACID transaction over the image, with savepoints.
//!
//! fjall's optimistic transaction gives us snapshot reads, per-key conflict tracking and
//! an atomic commit. It has no savepoints, so a `Tx` keeps its writes in its own overlay
//! (key → record body after the transaction) and hands fjall only the net result at
//! commit. A savepoint is a mark in an undo log of overlay changes; rolling back to it
//! restores the overlay entries, so a failed nested send leaves no trace, not even a
//! spurious write that could make a concurrent transaction conflict.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, RwLockReadGuard};

use fjall::{PersistMode, Readable, Snapshot};

use super::record::{self, Space, Write};
use super::{BlobRef, Image, Oid, Ref, TxId, Value};
use crate::error::{Error, Result};
use crate::lookup::Entry;
use crate::versions;

type Key = (Space, Vec<u8>);
/// A committed record as read: its stamp and body (`None`: absent or a tombstone).
type Read = (Option<TxId>, Option<Vec<u8>>);
/// A committed record under a prefix: key, stamp and body.
type Row = (Vec<u8>, TxId, Option<Vec<u8>>);

/// A mark to roll a transaction back to; see [`Tx::savepoint`].
#[derive(Debug)]
#[must_use = "a savepoint must be released or rolled back"]
pub struct Savepoint(usize);

/// Where a raw removal (pack only) applies.
#[derive(Clone, Copy, Debug)]
pub(crate) enum RawTarget {
    Record(Space),
    History,
    Versions,
}

/// What a prefix scan saw, to detect at commit that the set under the prefix changed.
/// Every write stamps its record with a new, larger transaction id and removals leave
/// stamped tombstones, so any change raises `newest`; pack's removal of a tombstone
/// lowers `records`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct ScanMark {
    records: usize,
    newest: u64,
}

/// One transaction over the image.
///
/// Every read sees one consistent snapshot plus this transaction's own writes. Nothing
/// is visible to others until the whole transaction commits, and a transaction that
/// fails is rolled back entirely. Get one from [`Image::transact`] (or through the
/// runtime's sends); do not hold it across slow work, since a long transaction is more
/// likely to conflict and keeps old versions alive.
///
/// Concurrency control is optimistic and validated by the records' stamps: every read
/// of a committed record remembers the stamp it saw (the id of the transaction that
/// last wrote it), and a commit goes through only if every record it read still has that
/// stamp. That is serialisable: the commit order is an order in which every transaction
/// saw exactly the writes of those before it.
pub struct Tx<'img> {
    image: &'img Image,
    snapshot: Snapshot,
    // Every commit up to this one is in the snapshot (read before the snapshot opened).
    base: TxId,
    // Whether reads are recorded for validation (a view never commits, so it need not).
    tracking: bool,
    overlay: BTreeMap<Key, Option<Vec<u8>>>,
    meta: BTreeMap<&'static str, Vec<u8>>,
    undo: Vec<(Key, Option<Option<Vec<u8>>>)>,
    open_savepoints: usize,
    raw: Vec<(RawTarget, Vec<u8>)>,
    // Whether the overlay holds a header, and the names of the slots it holds: a walk
    // that could see them cannot use the image-wide lookup cache.
    wrote_headers: bool,
    written_names: HashSet<Vec<u8>>,
    // Committed object headers read so far, with their stamps. Reads of the committed
    // state are stable for the whole transaction (one snapshot), and every send reads the
    // receiver's header at least twice (lookup, then the write's existence check).
    headers: RefCell<HashMap<Oid, Read>>,
    reads: RefCell<HashMap<Key, Option<TxId>>>,
    scans: RefCell<Vec<(Space, Vec<u8>, ScanMark)>>,
    cached_walks: RefCell<Vec<Arc<Entry>>>,
    // Counted among the durable transactions that may be about to commit (group commit).
    unsettled: bool,
    blob_guard: Option<RwLockReadGuard<'img, ()>>,
}

/// A live object as read in a transaction.
#[derive(Clone, Debug, PartialEq)]
pub struct Object {
    /// Its identity.
    pub oid: Oid,
    /// Its `parent*` list, in lookup order.
    pub parents: Vec<Oid>,
    /// Its own slots (not inherited ones).
    pub slots: BTreeMap<String, Value>,
}

impl<'img> Tx<'img> {
    pub(crate) fn new(image: &'img Image, snapshot: Snapshot, base: TxId, tracking: bool) -> Self {
        let unsettled = tracking && image.durable();
        if unsettled {
            image.group_commit().begin();
        }
        Tx {
            unsettled,
            image,
            snapshot,
            base,
            tracking,
            overlay: BTreeMap::new(),
            meta: BTreeMap::new(),
            undo: Vec::new(),
            open_savepoints: 0,
            raw: Vec::new(),
            wrote_headers: false,
            written_names: HashSet::new(),
            headers: RefCell::new(HashMap::new()),
            reads: RefCell::new(HashMap::new()),
            scans: RefCell::new(Vec::new()),
            cached_walks: RefCell::new(Vec::new()),
            blob_guard: None,
        }
    }

    /// The image this transaction runs against.
    pub fn image(&self) -> &'img Image {
        self.image
    }

    /// Every transaction up to this one is visible to this transaction.
    pub fn base(&self) -> TxId {
        self.base
    }

    // ---- raw records -------------------------------------------------------------

    fn record_read(&self, space: Space, key: &[u8], stamp: Option<TxId>) {
        if self.tracking {
            self.reads.borrow_mut().entry((space, key.to_vec())).or_insert(stamp);
        }
    }

    /// The committed stamped record of a key, bypassing the overlay (a tracked read).
    pub(crate) fn committed(&self, space: Space, key: &[u8]) -> Result<Option<fjall::Slice>> {
        let raw = self.snapshot.get(self.image.keyspace(space), key)?;
        let stamp = match &raw {
            Some(raw) => Some(record::decode_stamped(raw)?.tx),
            None => None,
        };
        self.record_read(space, key, stamp);
        Ok(raw)
    }

    /// The committed body of a key and the stamp it has (a tracked read).
    pub(crate) fn committed_body(&self, space: Space, key: &[u8]) -> Result<Read> {
        match self.committed(space, key)? {
            None => Ok((None, None)),
            Some(raw) => {
                let stamped = record::decode_stamped(&raw)?;
                Ok((Some(stamped.tx), stamped.body.map(<[u8]>::to_vec)))
            }
        }
    }

    /// The committed header of an object and its stamp (a tracked read, cached).
    pub(crate) fn committed_header(&self, oid: Oid) -> Result<Read> {
        if let Some(cached) = self.headers.borrow().get(&oid) {
            return Ok(cached.clone());
        }
        let read = self.committed_body(Space::Objects, &record::oid_key(oid))?;
        self.headers.borrow_mut().insert(oid, read.clone());
        Ok(read)
    }

    fn header(&self, oid: Oid) -> Result<Option<Vec<u8>>> {
        if self.wrote_headers {
            let key = record::oid_key(oid);
            if let Some(entry) = self.overlay.get(&(Space::Objects, key.to_vec())) {
                return Ok(entry.clone());
            }
        }
        Ok(self.committed_header(oid)?.1)
    }

    fn body(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>> {
        // Most reads (lookups) happen before a transaction has written anything; skip
        // building an owned key for the overlay then.
        if !self.overlay.is_empty() {
            if let Some(entry) = self.overlay.get(&(space, key.to_vec())) {
                return Ok(entry.clone());
            }
        }
        Ok(self.committed_body(space, key)?.1)
    }

    pub(crate) fn write_body(&mut self, space: Space, key: Vec<u8>, body: Option<Vec<u8>>) {
        match space {
            Space::Objects => self.wrote_headers = true,
            Space::Slots => {
                if let Some(name) = key.get(8..) {
                    if !self.written_names.contains(name) {
                        self.written_names.insert(name.to_vec());
                    }
                }
            }
            Space::Roots => {}
        }
        let k = (space, key);
        if self.open_savepoints > 0 {
            let previous = self.overlay.get(&k).cloned();
            self.overlay.insert(k.clone(), body);
            self.undo.push((k, previous));
        } else {
            self.overlay.insert(k, body);
        }
    }

    /// Whether this transaction's own writes could change a walk for `selector`.
    pub(crate) fn overlay_touches(&self, selector: &str) -> bool {
        self.wrote_headers || self.written_names.contains(selector.as_bytes())
    }

    pub(crate) fn used_cached_walk(&self, entry: Arc<Entry>) {
        if self.tracking {
            self.cached_walks.borrow_mut().push(entry);
        }
    }

    /// Every committed record under `prefix` (tombstones included), as a tracked scan.
    pub(crate) fn records(&self, space: Space, prefix: &[u8]) -> Result<Vec<Row>> {
        let mut out = Vec::new();
        let mut newest = 0;
        for guard in self.snapshot.prefix(self.image.keyspace(space), prefix) {
            let (key, raw) = guard.into_inner()?;
            let stamped = record::decode_stamped(&raw)?;
            newest = newest.max(stamped.tx.0);
            out.push((key.to_vec(), stamped.tx, stamped.body.map(<[u8]>::to_vec)));
        }
        if self.tracking {
            let mark = ScanMark { records: out.len(), newest };
            self.scans.borrow_mut().push((space, prefix.to_vec(), mark));
        }
        Ok(out)
    }

    /// Live (key, body) pairs under `prefix`, committed merged with the overlay.
    fn scan(&self, space: Space, prefix: &[u8]) -> Result<BTreeMap<Vec<u8>, Vec<u8>>> {
        let mut out = BTreeMap::new();
        for (key, _, body) in self.records(space, prefix)? {
            if let Some(body) = body {
                out.insert(key, body);
            }
        }
        let start = (space, prefix.to_vec());
        for ((s, key), body) in self.overlay.range(start..) {
            if *s != space || !key.starts_with(prefix) {
                break;
            }
            match body {
                Some(b) => out.insert(key.clone(), b.clone()),
                None => out.remove(key),
            };
        }
        Ok(out)
    }

    /// The snapshot, for reads of records no transaction rewrites (history, versions).
    pub(crate) fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    /// Removes a key outright, outside the overlay and the history (pack only).
    pub(crate) fn raw_remove(&mut self, target: RawTarget, key: Vec<u8>) {
        self.raw.push((target, key));
    }

    pub(crate) fn set_meta(&mut self, key: &'static str, value: Vec<u8>) {
        self.meta.insert(key, value);
    }

    // ---- savepoints --------------------------------------------------------------

    /// Marks the current state so that [`Tx::rollback_to`] can return to it. Savepoints
    /// nest; each must be ended by `release` or `rollback_to`, innermost first.
    pub fn savepoint(&mut self) -> Savepoint {
        self.open_savepoints += 1;
        Savepoint(self.undo.len())
    }

    /// Keeps the writes made since the savepoint.
    pub fn release(&mut self, savepoint: Savepoint) {
        self.open_savepoints = self.open_savepoints.saturating_sub(1);
        if self.open_savepoints == 0 {
            self.undo.clear();
        }
        drop(savepoint);
    }

    /// Discards every write made since the savepoint.
    pub fn rollback_to(&mut self, savepoint: Savepoint) {
        while self.undo.len() > savepoint.0 {
            let Some((key, previous)) = self.undo.pop() else { break };
            match previous {
                Some(entry) => self.overlay.insert(key, entry),
                None => self.overlay.remove(&key),
            };
        }
        self.open_savepoints = self.open_savepoints.saturating_sub(1);
    }

    // ---- objects -----------------------------------------------------------------

    /// Whether a live object has this oid.
    pub fn exists(&self, oid: Oid) -> Result<bool> {
        Ok(self.header(oid)?.is_some())
    }

    /// The object's `parent*` list.
    pub fn parents(&self, oid: Oid) -> Result<Vec<Oid>> {
        match self.header(oid)? {
            Some(body) => record::decode_parents(&body),
            None => Err(Error::UnknownObject(oid)),
        }
    }

    /// Replaces the object's `parent*` list. Every parent must exist; cycles are
    /// allowed (lookup detects them), as in Self.
    pub fn set_parents(&mut self, oid: Oid, parents: &[Oid]) -> Result<()> {
        self.parents(oid)?;
        for p in parents {
            if !self.exists(*p)? {
                return Err(Error::UnknownObject(*p));
            }
        }
        self.write_body(
            Space::Objects,
            record::oid_key(oid).to_vec(),
            Some(record::encode_parents(parents)),
        );
        Ok(())
    }

    /// Creates an empty object with these parents.
    pub fn create_object(&mut self, parents: &[Oid]) -> Result<Oid> {
        for p in parents {
            if !self.exists(*p)? {
                return Err(Error::UnknownObject(*p));
            }
        }
        let oid = self.image.allocate_oid();
        self.write_body(
            Space::Objects,
            record::oid_key(oid).to_vec(),
            Some(record::encode_parents(parents)),
        );
        Ok(oid)
    }

    /// Clones an object, Self-style: the clone gets a copy of the original's slots and
    /// the *same parents* as the original (not the original itself as parent).
    pub fn clone_object(&mut self, original: Oid) -> Result<Oid> {
        let parents = self.parents(original)?;
        let slots = self.scan(Space::Slots, &record::oid_key(original))?;
        let oid = self.image.allocate_oid();
        self.write_body(
            Space::Objects,
            record::oid_key(oid).to_vec(),
            Some(record::encode_parents(&parents)),
        );
        for (key, body) in slots {
            let (_, name) = record::split_slot_key(&key)?;
            self.write_body(Space::Slots, record::slot_key(oid, &name), Some(body));
        }
        Ok(oid)
    }

    /// The whole object: parents and own slots.
    pub fn object(&self, oid: Oid) -> Result<Object> {
        let parents = self.parents(oid)?;
        Ok(Object { oid, parents, slots: self.slots(oid)? })
    }

    // ---- slots -------------------------------------------------------------------

    /// One own slot of the object (no delegation; see the runtime's lookup for that).
    /// Does not check that the object exists.
    pub fn slot(&self, oid: Oid, name: &str) -> Result<Option<Value>> {
        match self.body(Space::Slots, &record::slot_key(oid, name))? {
            Some(body) => Ok(Some(record::decode_value(&body)?)),
            None => Ok(None),
        }
    }

    /// All own slots of the object, sorted by name.
    pub fn slots(&self, oid: Oid) -> Result<BTreeMap<String, Value>> {
        let mut out = BTreeMap::new();
        for (key, body) in self.scan(Space::Slots, &record::oid_key(oid))? {
            let (_, name) = record::split_slot_key(&key)?;
            out.insert(name, record::decode_value(&body)?);
        }
        Ok(out)
    }

    /// The own slots of the object whose names start with `prefix`, sorted by name: one
    /// range read, validated at commit like any scan (a slot added or removed under the
    /// prefix since is a conflict). An index kept as slots (`term doc` names) is read
    /// this way without reading the rest of its object.
    pub fn slots_named(&self, oid: Oid, prefix: &str) -> Result<Vec<(String, Value)>> {
        let mut out = Vec::new();
        for (key, body) in self.scan(Space::Slots, &record::slot_key(oid, prefix))? {
            let (_, name) = record::split_slot_key(&key)?;
            out.push((name, record::decode_value(&body)?));
        }
        Ok(out)
    }

    /// Writes a slot on a live object. The name is validated, the value's encoded size
    /// is bounded by [`super::MAX_VALUE_BYTES`], and every object or blob it refers to
    /// must exist (so no slot ever holds a dangling reference).
    pub fn set_slot(&mut self, oid: Oid, name: &str, value: &Value) -> Result<()> {
        record::validate_name(name)?;
        if !self.exists(oid)? {
            return Err(Error::UnknownObject(oid));
        }
        let body = record::encode_value(value)?;
        self.check_refs(value)?;
        self.write_body(Space::Slots, record::slot_key(oid, name), Some(body));
        Ok(())
    }

    /// Removes an own slot; returns whether it existed.
    pub fn remove_slot(&mut self, oid: Oid, name: &str) -> Result<bool> {
        if !self.exists(oid)? {
            return Err(Error::UnknownObject(oid));
        }
        let key = record::slot_key(oid, name);
        let existed = self.body(Space::Slots, &key)?.is_some();
        if existed {
            self.write_body(Space::Slots, key, None);
        }
        Ok(existed)
    }

    fn check_refs(&mut self, value: &Value) -> Result<()> {
        let mut refs = Vec::new();
        value.visit_refs(&mut |r| refs.push(r));
        for r in refs {
            match r {
                Ref::Object(oid) => {
                    if !self.exists(oid)? {
                        return Err(Error::UnknownObject(oid));
                    }
                }
                Ref::Blob(blob) => {
                    self.hold_blob_gate();
                    if !self.image.blobs().contains(&blob.hash) {
                        return Err(Error::BlobMissing(blob.hash));
                    }
                }
            }
        }
        Ok(())
    }

    /// Keeps `pack` from sweeping blobs until this transaction ends: a blob written (or
    /// re-referenced) here is not yet reachable in the committed image.
    fn hold_blob_gate(&mut self) {
        if self.blob_guard.is_none() {
            self.blob_guard = Some(self.image.blob_gate_read());
        }
    }

    // ---- roots -------------------------------------------------------------------

    /// The object a named root refers to.
    pub fn root(&self, name: &str) -> Result<Option<Oid>> {
        match self.body(Space::Roots, name.as_bytes())? {
            Some(body) => Ok(Some(Oid(record::decode_u64(&body, "a root")?))),
            None => Ok(None),
        }
    }

    /// Names (or renames the target of) a root.
    pub fn set_root(&mut self, name: &str, oid: Oid) -> Result<()> {
        record::validate_name(name)?;
        if !self.exists(oid)? {
            return Err(Error::UnknownObject(oid));
        }
        self.write_body(Space::Roots, name.as_bytes().to_vec(), Some(oid.0.to_be_bytes().to_vec()));
        Ok(())
    }

    /// Removes a named root; returns whether it existed.
    pub fn remove_root(&mut self, name: &str) -> Result<bool> {
        let existed = self.root(name)?.is_some();
        if existed {
            self.write_body(Space::Roots, name.as_bytes().to_vec(), None);
        }
        Ok(existed)
    }

    /// All named roots.
    pub fn roots(&self) -> Result<BTreeMap<String, Oid>> {
        let mut out = BTreeMap::new();
        for (key, body) in self.scan(Space::Roots, &[])? {
            let name = String::from_utf8(key)
                .map_err(|_| Error::Corrupt("a root name is not UTF-8".into()))?;
            out.insert(name, Oid(record::decode_u64(&body, "a root")?));
        }
        Ok(out)
    }

    // ---- blobs -------------------------------------------------------------------

    /// Stores bytes as a blob (durably, before this transaction commits) and returns the
    /// reference to keep in a slot.
    pub fn put_blob(&mut self, bytes: &[u8]) -> Result<BlobRef> {
        self.hold_blob_gate();
        self.image.blobs().put(bytes)
    }

    /// Streams a file into the blob store; see [`Tx::put_blob`].
    pub fn put_blob_file(&mut self, path: &std::path::Path) -> Result<BlobRef> {
        self.hold_blob_gate();
        self.image.blobs().put_file(path)
    }

    /// Adds a large, never-rewritten file (model weights) to the blob store, hard-linked
    /// where the filesystem allows; see [`crate::BlobStore::adopt_file`].
    pub fn adopt_blob_file(&mut self, path: &std::path::Path) -> Result<BlobRef> {
        self.hold_blob_gate();
        self.image.blobs().adopt_file(path)
    }

    // ---- commit ------------------------------------------------------------------

    /// Whether every record this transaction read still has the stamp it saw. Called
    /// with the commit serial held, so no commit can slip in between.
    fn still_valid(&self) -> Result<bool> {
        let latest = |space: Space, key: &[u8]| -> Result<Option<TxId>> {
            match self.image.keyspace(space).get(key)? {
                Some(raw) => Ok(Some(record::decode_stamped(&raw)?.tx)),
                None => Ok(None),
            }
        };
        for ((space, key), seen) in self.reads.borrow().iter() {
            if latest(*space, key)? != *seen {
                return Ok(false);
            }
        }
        for (space, prefix, seen) in self.scans.borrow().iter() {
            let mut now = ScanMark { records: 0, newest: 0 };
            for guard in self.image.keyspace(*space).prefix(prefix) {
                let (_, raw) = guard.into_inner()?;
                now.records += 1;
                now.newest = now.newest.max(record::decode_stamped(&raw)?.tx.0);
            }
            if now != *seen {
                return Ok(false);
            }
        }
        let lookups = self.image.lookups();
        for entry in self.cached_walks.borrow().iter() {
            if lookups.still_cached(entry) {
                continue;
            }
            for (space, key, seen) in &entry.reads {
                if latest(*space, key)? != *seen {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    /// Commits the net writes with a history entry. `Ok(Err(()))` is a conflict.
    ///
    /// Under the commit serial: validate the reads, compute the net writes against the
    /// latest records, drop the lookup-cache entries they invalidate, and write one fjall
    /// batch (records, versions, history) into the OS. Then, in durable mode, wait for a
    /// journal sync that covers it (group commit; see `group_commit.rs`).
    pub(crate) fn commit(mut self, description: &str) -> Result<Result<Option<TxId>, ()>> {
        if self.overlay.is_empty() && self.meta.is_empty() && self.raw.is_empty() {
            return Ok(Ok(None));
        }
        let image = self.image;
        if image.durable() {
            self.settle();
            image.group_commit().reach();
            let written = WrittenOnDrop(image);
            let outcome = self.write_batch(description);
            drop(written);
            return match outcome? {
                Ok(Some(tx)) => {
                    image.make_durable(tx)?;
                    Ok(Ok(Some(tx)))
                }
                other => Ok(other),
            };
        }
        self.write_batch(description)
    }

    /// The part of [`Tx::commit`] under the commit serial.
    fn write_batch(&mut self, description: &str) -> Result<Result<Option<TxId>, ()>> {
        let image = self.image;
        let serial = image.commit_serial();
        image.check_durable()?;
        if !self.still_valid()? {
            return Ok(Err(()));
        }
        let overlay = std::mem::take(&mut self.overlay);
        let mut writes = Vec::with_capacity(overlay.len());
        for ((space, key), after) in overlay {
            let before = match image.keyspace(space).get(&key)? {
                Some(raw) => record::decode_stamped(&raw)?.body.map(<[u8]>::to_vec),
                None => None,
            };
            if before != after {
                writes.push(Write { space, key, before, after });
            }
        }
        let raw = std::mem::take(&mut self.raw);
        if writes.is_empty() && self.meta.is_empty() && raw.is_empty() {
            return Ok(Ok(None));
        }
        let tx = image.next_tx_id();
        let mut touched: Vec<(Space, &[u8])> =
            writes.iter().map(|w| (w.space, w.key.as_slice())).collect();
        for (target, key) in &raw {
            if let RawTarget::Record(space) = target {
                touched.push((*space, key.as_slice()));
            }
        }
        image.lookups().invalidate(tx, &touched);

        let mut batch = image.database().batch().durability(Some(PersistMode::Buffer));
        for w in &writes {
            let stamped = record::encode_stamped(tx, w.after.as_deref());
            batch.insert(image.keyspace(w.space), w.key.as_slice(), stamped);
            if let Some(version) = versions::key(w.space, &w.key, tx) {
                batch.insert(
                    image.versions_keyspace(),
                    version,
                    versions::encode(w.after.as_deref()),
                );
            }
        }
        let pinned = !raw.is_empty() || self.meta.contains_key(super::META_FORMAT);
        for (target, key) in raw {
            batch.remove(image.raw_keyspace(target), key);
        }
        for (key, value) in std::mem::take(&mut self.meta) {
            batch.insert(image.meta_keyspace(), key, value);
        }
        let mut description: String = description.chars().take(record::MAX_DESCRIPTION).collect();
        if description.is_empty() {
            description.push_str("(no description)");
        }
        let entry = record::TxRecord { time_ms: now_ms(), description, writes, pinned };
        batch.insert(
            image.history_keyspace(),
            record::tx_key(tx),
            record::encode_tx_record(&entry)?,
        );
        batch.commit()?;
        image.committed(tx);
        // Still in the commit's serial section, so observers see commits in
        // transaction order.
        if let Some(observer) = image.commit_observer() {
            observer(&notice(tx, entry));
        }
        drop(serial);
        Ok(Ok(Some(tx)))
    }
}

impl Tx<'_> {
    fn settle(&mut self) {
        if std::mem::take(&mut self.unsettled) {
            self.image.group_commit().settle();
        }
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        self.settle();
    }
}

/// Tells group commit that a durable commit left the serial, however it left.
struct WrittenOnDrop<'img>(&'img Image);

impl Drop for WrittenOnDrop<'_> {
    fn drop(&mut self) {
        self.0.group_commit().written();
    }
}

/// What a commit observer is told of `entry`.
fn notice(tx: TxId, entry: record::TxRecord) -> crate::CommitNotice {
    let mut notice = crate::CommitNotice {
        tx,
        description: entry.description,
        slots: Vec::new(),
        objects: Vec::new(),
        roots: Vec::new(),
    };
    for w in entry.writes {
        match w.space {
            Space::Slots => {
                if let Ok(slot) = record::split_slot_key(&w.key) {
                    notice.slots.push(slot);
                }
            }
            Space::Objects => {
                if let Ok(oid) = record::decode_u64(&w.key, "an object key") {
                    notice.objects.push(Oid(oid));
                }
            }
            Space::Roots => notice.roots.push(String::from_utf8_lossy(&w.key).into_owned()),
        }
    }
    notice
}

/// Milliseconds since the Unix epoch, by the system clock (0 if it is before it).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
