//! # batos-image
//!
//! The image layer: the persistent, transactional object graph (the seeds' ZODB
//! `live_image.fs`), stored in fjall, with blobs beside it. The bottom of the house:
//! it depends on fjall, serde/postcard for records, blake3 for blobs, and nothing of
//! batos. It also holds the one [`Error`] type every layer reports with.
//!
//! This layer knows objects, slots, roots, blobs, transactions and history. It does not
//! know what a message send is; the runtime layer builds sends on top of [`Tx`].
//!
//! # On disk
//!
//! ```text
//! <image>/IMAGE     marks the folder as a batos image
//! <image>/LOCK      the process lock (see `lock.rs`)
//! <image>/store/    the fjall database (layout in `record.rs`)
//! <image>/blobs/    content-addressed blob files (see `blobs.rs`)
//! ```
//!
//! # Durability and errors
//!
//! * Every [`Image::transact`] commits atomically or not at all; readers never see part
//!   of a transaction, including after a crash.
//! * Transactions are serialisable: each reads one snapshot, and commits only if every
//!   record it read is unchanged since (see [`Tx`]); otherwise it is run again.
//! * [`Durability::Buffered`] (default): each commit is written to the OS before
//!   `transact` returns, so it survives the process being killed (`kill -9`, panic,
//!   OOM), but not a power loss or kernel crash.
//! * [`Durability::Durable`]: `transact` returns only after a journal sync that covers
//!   the commit, so it also survives power loss. Commits that reach commit together
//!   share one sync (group commit, `group_commit.rs`). A durable commit is visible to
//!   other transactions from the moment its batch is written, just before its sync.
//! * Blob files are fsynced (file and directory) before the transaction that refers to
//!   them commits, in both modes.
//! * An error from `transact` means nothing was written — with one exception: a failed
//!   journal sync in durable mode reports that the commit may not survive a power loss,
//!   and the image then refuses further commits until reopened. [`Error::Conflict`]
//!   means concurrent writers kept invalidating the transaction; it is safe to retry.

mod blobs;
pub mod error;
mod group_commit;
mod history;
pub mod json;
mod lock;
mod lookup;
mod pack;
mod record;
mod tx;
mod value;
mod versions;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard};
use std::time::Duration;

use fjall::{Database, Keyspace, KeyspaceCreateOptions};
use serde::{Deserialize, Serialize};

pub use blobs::BlobStore;
pub use history::{HistoryEntry, ObjectAsOf};
pub use lookup::Walk;
pub use pack::PackReport;
pub use record::{validate_name, Space, FORMAT_VERSION, MAX_NAME_BYTES, MAX_VALUE_BYTES};
pub use tx::now_ms;
pub use tx::{Object, Savepoint, Tx};
pub use value::{BlobHash, BlobRef, Method, Oid, Ref, Value};

pub use error::{Error, Result};
use lock::ImageLock;

/// The identity of a committed transaction: its position in commit order, from 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TxId(pub u64);

impl std::fmt::Display for TxId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// How hard a commit tries to reach the disk before `transact` returns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// Written to the OS per commit: survives the process dying, not the machine.
    #[default]
    Buffered,
    /// fsynced per commit: survives power loss.
    Durable,
}

/// Settings for opening an image.
#[derive(Clone, Debug)]
pub struct ImageOptions {
    /// Per-commit durability; see [`Durability`].
    pub durability: Durability,
    /// How many times a conflicting transaction is run before [`Error::Conflict`].
    /// ZODB's `attempts()` defaults to 3; we allow more because slot-level conflicts
    /// make each retry cheap and rarely repeated.
    pub max_attempts: u32,
}

impl Default for ImageOptions {
    fn default() -> Self {
        ImageOptions { durability: Durability::Buffered, max_attempts: 32 }
    }
}

/// Counters of an open image; see [`Image::stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImageStats {
    /// The newest committed transaction (0: none).
    pub last_tx: u64,
    /// Journal syncs made for durable commits since the image opened.
    pub journal_syncs: u64,
    /// Every transaction up to this one is known synced (0 in buffered mode).
    pub synced_through: u64,
    /// Sends whose delegation walk came from the lookup cache.
    pub lookup_hits: u64,
    /// Walks computed from the records.
    pub lookup_misses: u64,
    /// Walks the cache holds now.
    pub walks_cached: usize,
}

/// What a successful [`Image::transact`] returns.
#[derive(Debug)]
pub struct Committed<R> {
    /// The closure's result.
    pub value: R,
    /// The transaction's id, or `None` when it changed nothing (and so wrote nothing).
    pub tx: Option<TxId>,
}

const MARKER: &str = "IMAGE";
const MARKER_TEXT: &str = "batos image\n";
const META_FORMAT: &str = "format";
const META_HISTORY_FLOOR: &str = "history_floor";
const META_OID_FLOOR: &str = "oid_floor";

/// An open image. Share it between threads by reference (it is `Sync`).
///
/// One process at a time may hold an image; see [`Image::open`].
pub struct Image {
    path: PathBuf,
    db: Database,
    objects: Keyspace,
    slots: Keyspace,
    roots: Keyspace,
    history: Keyspace,
    meta: Keyspace,
    aux: Keyspace,
    versions: Keyspace,
    blobs: std::sync::Arc<BlobStore>,
    options: ImageOptions,
    next_oid: AtomicU64,
    last_tx: AtomicU64,
    // Commits take this so that transaction ids follow commit order exactly, and so that
    // validating a transaction's reads and writing its batch are one atomic step.
    commit_serial: Mutex<()>,
    // Durable commits wait here for a journal sync that covers them.
    group_commit: group_commit::GroupCommit,
    // Delegation walks, shared by every transaction (see `lookup.rs`).
    lookups: lookup::LookupCache,
    // Transactions that put or reference blobs hold it shared; pack holds it exclusive.
    blob_gate: RwLock<()>,
    // Told of every commit (the kernel's transaction events); set at most once.
    commit_observer: std::sync::OnceLock<CommitObserver>,
    // Declared last: released only after the store above is closed.
    _lock: ImageLock,
}

/// What a commit observer is told: a committed transaction and what it touched.
#[derive(Clone, Debug, PartialEq)]
pub struct CommitNotice {
    /// The transaction.
    pub tx: TxId,
    /// Its history description.
    pub description: String,
    /// The slots it created, changed or removed, by object.
    pub slots: Vec<(Oid, String)>,
    /// The objects it created, reparented or removed.
    pub objects: Vec<Oid>,
    /// The root names it bound or unbound.
    pub roots: Vec<String>,
}

/// Called on the committing thread right after each commit that changed anything
/// (see [`Image::observe_commits`]).
pub type CommitObserver = Box<dyn Fn(&CommitNotice) + Send + Sync>;

impl std::fmt::Debug for Image {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Image").field("path", &self.path).finish_non_exhaustive()
    }
}

impl Image {
    /// Opens the image in `path`, creating an empty one if the folder does not exist or
    /// is empty. A non-empty folder that is not a batos image is refused, as is an image
    /// of a newer format, or one held by another process.
    pub fn open(path: impl AsRef<Path>, options: ImageOptions) -> Result<Image> {
        let path = path.as_ref().to_path_buf();
        prepare_folder(&path)?;
        let lock = ImageLock::acquire(&path)?;
        let store = path.join("store");
        if !store.exists() {
            create_store(&store)?;
        }
        // Recovery reads whatever is on disk; a storage-engine panic on damaged files
        // must become a refusal, not take the host down.
        let opened =
            std::panic::catch_unwind(|| Database::builder(&store).open()).map_err(|panic| {
                let what = panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("a panic");
                Error::Corrupt(format!("the store at {} failed recovery ({what})", store.display()))
            })?;
        let db = opened.map_err(|e| match e {
            fjall::Error::Locked => {
                Error::ImageLocked { path: path.clone(), holder: "the store is locked".into() }
            }
            other => Error::Corrupt(format!(
                "the store at {} cannot be opened ({other})",
                store.display()
            )),
        })?;
        let ks =
            |name: &str| db.keyspace(name, KeyspaceCreateOptions::default).map_err(Error::from);
        let image = Image {
            objects: ks("objects")?,
            slots: ks("slots")?,
            roots: ks("roots")?,
            history: ks("history")?,
            meta: ks("meta")?,
            aux: ks("aux")?,
            versions: ks("versions")?,
            blobs: std::sync::Arc::new(BlobStore::open(path.join("blobs"))?),
            db,
            options,
            next_oid: AtomicU64::new(1),
            last_tx: AtomicU64::new(0),
            commit_serial: Mutex::new(()),
            group_commit: group_commit::GroupCommit::new(&store),
            lookups: lookup::LookupCache::default(),
            blob_gate: RwLock::new(()),
            commit_observer: std::sync::OnceLock::new(),
            path,
            _lock: lock,
        };
        if let Some(found) = image.format()? {
            if found > record::FORMAT_VERSION {
                return Err(Error::ImageTooNew {
                    path: image.path.clone(),
                    found,
                    supported: record::FORMAT_VERSION,
                });
            }
            if found < record::FORMAT_VERSION {
                image.build_versions_index()?;
            }
        }
        image.recover_counters()?;
        Ok(image)
    }

    /// The image folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The options it was opened with.
    pub fn options(&self) -> &ImageOptions {
        &self.options
    }

    /// The blob store.
    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    /// The blob store as a shared handle, for work that outlives a borrow of the image
    /// (a model adopted outside any transaction).
    pub fn blob_store(&self) -> std::sync::Arc<BlobStore> {
        self.blobs.clone()
    }

    /// The format version recorded in the image, or `None` for a new, empty image.
    pub fn format(&self) -> Result<Option<u32>> {
        let Some(raw) = self.meta.get(META_FORMAT)? else { return Ok(None) };
        let arr: [u8; 4] = raw
            .as_ref()
            .try_into()
            .map_err(|_| Error::Corrupt("the format version record is malformed".into()))?;
        Ok(Some(u32::from_be_bytes(arr)))
    }

    /// Reads advisory data (statistics, caches) kept beside the object graph.
    ///
    /// The `aux` store is outside transactions and history: writes are immediate, never
    /// undone, and may be lost in a crash. Keep nothing there that the image needs.
    pub fn aux_get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.aux.get(key)?.map(|v| v.to_vec()))
    }

    /// Writes advisory data; see [`Image::aux_get`].
    pub fn aux_put(&self, key: &str, value: &[u8]) -> Result<()> {
        self.aux.insert(key, value)?;
        Ok(())
    }

    /// Removes advisory data; see [`Image::aux_get`].
    pub fn aux_remove(&self, key: &str) -> Result<()> {
        self.aux.remove(key)?;
        Ok(())
    }

    /// Every advisory entry whose key starts with `prefix`.
    pub fn aux_scan(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let mut out = Vec::new();
        for guard in self.aux.prefix(prefix) {
            let (k, v) = guard.into_inner()?;
            out.push((String::from_utf8_lossy(&k).into_owned(), v.to_vec()));
        }
        Ok(out)
    }

    /// The last committed transaction, if any.
    pub fn last_tx(&self) -> Option<TxId> {
        match self.last_tx.load(Ordering::SeqCst) {
            0 => None,
            n => Some(TxId(n)),
        }
    }

    /// Runs `work` in a transaction and commits it; on a conflict with a concurrent
    /// transaction, runs it again (up to [`ImageOptions::max_attempts`] times).
    ///
    /// `work` may run several times, so it must have no effects outside the
    /// transaction. If it returns an error, nothing is written and the error is
    /// returned. `description` is kept in the history.
    pub fn transact<R>(
        &self,
        description: &str,
        mut work: impl FnMut(&mut Tx<'_>) -> Result<R>,
    ) -> Result<Committed<R>> {
        let attempts = self.options.max_attempts.max(1);
        for attempt in 0..attempts {
            let mut tx = self.begin(true);
            let value = work(&mut tx)?;
            match tx.commit(description)? {
                Ok(id) => return Ok(Committed { value, tx: id }),
                Err(()) => backoff(attempt),
            }
        }
        Err(Error::Conflict { attempts })
    }

    /// Runs `work` against a consistent snapshot and discards whatever it wrote: for
    /// reads, and for trial runs that must leave no trace.
    pub fn view<R>(&self, work: impl FnOnce(&mut Tx<'_>) -> Result<R>) -> Result<R> {
        let mut tx = self.begin(false);
        work(&mut tx)
    }

    fn begin(&self, tracking: bool) -> Tx<'_> {
        // The base is read before the snapshot opens, so every commit up to it is in
        // the snapshot (ids are published after their batch is visible).
        let base = TxId(self.last_tx.load(Ordering::SeqCst));
        Tx::new(self, self.db.snapshot(), base, tracking)
    }

    /// Counters of this open image, for benchmarks and diagnostics.
    pub fn stats(&self) -> ImageStats {
        let (syncs, synced_through) = self.group_commit.counters();
        let (lookup_hits, lookup_misses, walks_cached) = self.lookups.counters();
        ImageStats {
            last_tx: self.last_tx.load(Ordering::SeqCst),
            journal_syncs: syncs,
            synced_through,
            lookup_hits,
            lookup_misses,
            walks_cached,
        }
    }

    /// Whether commits wait for a journal sync (and so take part in group commit).
    pub(crate) fn durable(&self) -> bool {
        self.options.durability == Durability::Durable
    }

    pub(crate) fn group_commit(&self) -> &group_commit::GroupCommit {
        &self.group_commit
    }

    /// In durable mode, refuses to commit after a failed journal sync.
    pub(crate) fn check_durable(&self) -> Result<()> {
        if self.options.durability == Durability::Durable {
            self.group_commit.check()?;
        }
        Ok(())
    }

    /// In durable mode, waits until a journal sync covers `tx` (group commit).
    pub(crate) fn make_durable(&self, tx: TxId) -> Result<()> {
        if self.options.durability == Durability::Durable {
            self.group_commit.sync_through(&self.db, tx, || self.last_tx.load(Ordering::SeqCst))?;
        }
        Ok(())
    }

    // ---- internals shared with tx, history and pack --------------------------------

    pub(crate) fn keyspace(&self, space: Space) -> &Keyspace {
        match space {
            Space::Objects => &self.objects,
            Space::Slots => &self.slots,
            Space::Roots => &self.roots,
        }
    }

    pub(crate) fn raw_keyspace(&self, target: tx::RawTarget) -> &Keyspace {
        match target {
            tx::RawTarget::Record(space) => self.keyspace(space),
            tx::RawTarget::History => &self.history,
            tx::RawTarget::Versions => &self.versions,
        }
    }

    pub(crate) fn history_keyspace(&self) -> &Keyspace {
        &self.history
    }

    pub(crate) fn meta_keyspace(&self) -> &Keyspace {
        &self.meta
    }

    pub(crate) fn versions_keyspace(&self) -> &Keyspace {
        &self.versions
    }

    pub(crate) fn database(&self) -> &Database {
        &self.db
    }

    pub(crate) fn lookups(&self) -> &lookup::LookupCache {
        &self.lookups
    }

    pub(crate) fn allocate_oid(&self) -> Oid {
        Oid(self.next_oid.fetch_add(1, Ordering::SeqCst))
    }

    pub(crate) fn next_oid_floor(&self) -> u64 {
        self.next_oid.load(Ordering::SeqCst)
    }

    pub(crate) fn commit_serial(&self) -> MutexGuard<'_, ()> {
        self.commit_serial.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Called with the commit serial held.
    pub(crate) fn next_tx_id(&self) -> TxId {
        TxId(self.last_tx.load(Ordering::SeqCst) + 1)
    }

    pub(crate) fn committed(&self, tx: TxId) {
        self.last_tx.store(tx.0, Ordering::SeqCst);
    }

    /// Has `observer` told of every later commit, on the committing thread, in
    /// transaction order: it runs inside the commit's short serial section, so it must
    /// be quick and must not commit (reading the image is fine). Answers false, and changes nothing, if an observer was already set: one process
    /// has one kernel.
    pub fn observe_commits(&self, observer: CommitObserver) -> bool {
        self.commit_observer.set(observer).is_ok()
    }

    pub(crate) fn commit_observer(&self) -> Option<&CommitObserver> {
        self.commit_observer.get()
    }

    pub(crate) fn blob_gate_read(&self) -> RwLockReadGuard<'_, ()> {
        self.blob_gate.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn history_floor(&self) -> Result<TxId> {
        match self.meta.get(META_HISTORY_FLOOR)? {
            Some(raw) => Ok(TxId(record::decode_u64(&raw, "the history floor")?)),
            None => Ok(TxId(1)),
        }
    }

    fn recover_counters(&self) -> Result<()> {
        // Oids are never reused: start past the largest header ever written, tombstones
        // included. Transaction ids continue from the newest history entry.
        if let Some(guard) = self.objects.last_key_value() {
            let key = guard.key()?;
            self.next_oid.store(record::decode_u64(&key, "an object key")? + 1, Ordering::SeqCst);
        }
        if let Some(guard) = self.history.last_key_value() {
            let key = guard.key()?;
            self.last_tx.store(record::decode_u64(&key, "a history key")?, Ordering::SeqCst);
        }
        if let Some(raw) = self.meta.get(META_OID_FLOOR)? {
            let floor = record::decode_u64(&raw, "the oid floor")?;
            self.next_oid.fetch_max(floor, Ordering::SeqCst);
        }
        // The history floor survives packing away every entry.
        let floor = self.history_floor()?.0;
        if floor > 0 && self.last_tx.load(Ordering::SeqCst) < floor - 1 {
            self.last_tx.store(floor - 1, Ordering::SeqCst);
        }
        Ok(())
    }
}

impl Tx<'_> {
    /// Records that the image now holds this build's format (done once, by awakening).
    pub fn mark_formatted(&mut self) {
        self.set_meta(META_FORMAT, record::FORMAT_VERSION.to_be_bytes().to_vec());
    }
}

fn backoff(attempt: u32) {
    // Exponential backoff with jitter keeps retried writers of one hot slot from
    // colliding in lock-step; the first retries only yield.
    if attempt < 2 {
        std::thread::yield_now();
        return;
    }
    let cap_us = 20u64 << attempt.min(9);
    std::thread::sleep(Duration::from_micros(rand::random_range(0..=cap_us)));
}

/// The keyspaces of the store (see `record.rs` and `versions.rs`).
const KEYSPACES: [&str; 7] = ["objects", "slots", "roots", "history", "meta", "aux", "versions"];

/// Makes a new, empty store so that a crash leaves either none or a whole one.
///
/// fjall creates a database in steps (folder, first journal, version marker) and a
/// process killed between them leaves a folder that fjall then refuses to open ("File
/// exists": it takes the half-made folder for a new database and cannot create its
/// journal again). Found by the crash harness killing the very first start. So the store
/// is made complete under another name and renamed into place; a leftover of a killed
/// attempt is removed first.
fn create_store(store: &Path) -> Result<()> {
    let fresh = store.with_file_name("store.new");
    let io =
        |what: &str, e: std::io::Error| Error::io(format!("cannot {what} {}", fresh.display()), e);
    if fresh.exists() {
        fs::remove_dir_all(&fresh).map_err(|e| io("remove the unfinished store", e))?;
    }
    {
        let db = Database::builder(&fresh).open()?;
        for name in KEYSPACES {
            db.keyspace(name, KeyspaceCreateOptions::default)?;
        }
        db.persist(fjall::PersistMode::SyncAll)?;
    }
    blobs::sync_dir(&fresh)?;
    fs::rename(&fresh, store).map_err(|e| io("move into place the new store", e))?;
    match store.parent() {
        Some(image) => blobs::sync_dir(image),
        None => Ok(()),
    }
}

fn prepare_folder(path: &Path) -> Result<()> {
    let marker = path.join(MARKER);
    if path.exists() && !path.is_dir() {
        return Err(Error::NotAnImage {
            path: path.to_path_buf(),
            reason: "it is a file, not a folder".into(),
        });
    }
    if marker.exists() {
        let text = fs::read_to_string(&marker).unwrap_or_default();
        if text != MARKER_TEXT {
            return Err(Error::NotAnImage {
                path: path.to_path_buf(),
                reason: format!("its {MARKER} file is not a batos marker"),
            });
        }
        return Ok(());
    }
    fs::create_dir_all(path)
        .map_err(|e| Error::io(format!("cannot create image folder {}", path.display()), e))?;
    let occupied = fs::read_dir(path)
        .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?
        .next()
        .is_some();
    if occupied {
        return Err(Error::NotAnImage {
            path: path.to_path_buf(),
            reason: "the folder is not empty and has no IMAGE marker; give a new or empty folder"
                .into(),
        });
    }
    let write_marker = || -> std::io::Result<()> {
        let mut file = fs::File::create(&marker)?;
        std::io::Write::write_all(&mut file, MARKER_TEXT.as_bytes())?;
        file.sync_all()
    };
    write_marker().map_err(|e| Error::io(format!("cannot write {}", marker.display()), e))?;
    blobs::sync_dir(path)
}
