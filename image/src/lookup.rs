//! Delegation lookup, and the image-wide cache that makes a send cost the same however
//! deep its method sits (Self's and Smalltalk's method caches, made transactional).
//!
//! [`Tx::walk`] finds a selector: the object's own slots, then its parents depth-first
//! in order, each object visited once. A walk over committed state depends on exactly
//! two kinds of record: the header (`parent*` list) of every object it visited, and the
//! slot of that selector on every object it visited. The cache keeps walks keyed by
//! (selector, start) and, for each object, which walks visited it. A commit that writes
//! a header of object O drops every walk that visited O; one that writes slot O.s drops
//! the walks for selector s that visited O. That is the exact invalidation: no other
//! write can change a walk's answer.
//!
//! # Why a cached walk is never stale
//!
//! * Invalidation runs under the commit serial *before* the commit's batch becomes
//!   visible, so an entry present in the cache is right for the latest state and for
//!   every state since the transaction it was computed at (`valid_from`).
//! * A transaction may use an entry only if `valid_from` is at or before its own
//!   snapshot's base (every commit up to the base is in its snapshot), so the entry is
//!   right for that snapshot too.
//! * A walk computed at base B is stored only if no commit after B touched any object it
//!   visited (the `touched` stamps), so a walk read from an older snapshot can never
//!   overwrite a fresher truth.
//! * A transaction that commits re-checks each entry it used: still present under the
//!   same generation means nothing it depends on changed; otherwise its recorded reads
//!   are validated against the latest records, exactly as if it had read them itself.
//! * A transaction whose own writes touch a header or a slot of the selector walks its
//!   own overlay, uncached.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use crate::error::{Error, Result};
use crate::record::{self, Space};
use crate::{Oid, Tx, TxId, Value};

/// Walks kept before the cache is emptied and refilled: a bound on memory (a walk is a
/// few hundred bytes), high enough that a working set of hot sends never thrashes.
const MAX_ENTRIES: usize = 65_536;
/// Objects whose last write is remembered for the insertion check; past it the memory
/// is dropped and replaced by one conservative floor.
const MAX_TOUCHED: usize = 262_144;
/// (object, walk) links kept for invalidation, including those of walks already dropped
/// through another object; past it everything is emptied and refilled.
const MAX_VISITS: usize = 8 * MAX_ENTRIES;
/// The largest slot body a cached walk may carry: a walk that finds a big data value is
/// answered from the records instead, so the cache's memory stays bounded by its count.
pub(crate) const MAX_CACHED_BODY: usize = 4096;

/// One delegation walk: the objects it visited, in order (the holder last when found),
/// and what it found.
#[derive(Clone, Debug, PartialEq)]
pub struct Walk {
    /// The objects whose own slots were searched, in order.
    pub visited: Vec<Oid>,
    /// The holder and the slot's value, if any object had it.
    pub found: Option<(Oid, Value)>,
}

/// A committed record a walk read, with the stamp it had (`None`: absent).
pub(crate) type Dependency = (Space, Vec<u8>, Option<TxId>);

/// A cached walk.
pub(crate) struct Entry {
    pub(crate) generation: u64,
    pub(crate) selector: Box<str>,
    pub(crate) start: Oid,
    valid_from: TxId,
    pub(crate) walk: Walk,
    /// What it read, to validate a transaction that used it after it was dropped.
    pub(crate) reads: Vec<Dependency>,
}

/// The image-wide lookup cache.
#[derive(Default)]
pub(crate) struct LookupCache {
    state: RwLock<State>,
    hits: AtomicU64,
    misses: AtomicU64,
}

#[derive(Default)]
struct State {
    entries: HashMap<Box<str>, HashMap<Oid, Arc<Entry>>>,
    count: usize,
    /// For each object, the (selector, start) of walks that visited it.
    visitors: HashMap<Oid, HashSet<(Box<str>, Oid)>>,
    /// Links in `visitors`.
    visits: usize,
    /// The last transaction that wrote each object's header or slots.
    touched: HashMap<Oid, TxId>,
    /// Objects missing from `touched` were last written no later than this (a tx id).
    touched_floor: u64,
    next_generation: u64,
}

impl LookupCache {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// A walk valid for a snapshot whose base is `base`.
    pub(crate) fn get(&self, selector: &str, start: Oid, base: TxId) -> Option<Arc<Entry>> {
        let state = self.read();
        state
            .entries
            .get(selector)
            .and_then(|by_start| by_start.get(&start))
            .filter(|entry| entry.valid_from <= base)
            .cloned()
    }

    /// Counts a hit or a miss, for [`crate::ImageStats`].
    pub(crate) fn count(&self, hit: bool) {
        let counter = if hit { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Stores a walk computed from a snapshot whose base is `base`, unless a commit
    /// after `base` touched an object it visited.
    pub(crate) fn insert(
        &self,
        selector: &str,
        start: Oid,
        base: TxId,
        walk: Walk,
        reads: Vec<Dependency>,
    ) -> Option<Arc<Entry>> {
        let mut state = self.write();
        let floor = TxId(state.touched_floor);
        let fresh =
            walk.visited.iter().all(|oid| state.touched.get(oid).copied().unwrap_or(floor) <= base);
        if !fresh {
            return None;
        }
        if state.count >= MAX_ENTRIES || state.visits >= MAX_VISITS {
            state.entries.clear();
            state.visitors.clear();
            state.count = 0;
            state.visits = 0;
        }
        state.next_generation += 1;
        let entry = Arc::new(Entry {
            generation: state.next_generation,
            selector: selector.into(),
            start,
            valid_from: base,
            walk,
            reads,
        });
        for oid in &entry.walk.visited {
            if state.visitors.entry(*oid).or_default().insert((selector.into(), start)) {
                state.visits += 1;
            }
        }
        let replaced = state
            .entries
            .entry(selector.into())
            .or_default()
            .insert(start, entry.clone())
            .is_some();
        if !replaced {
            state.count += 1;
        }
        Some(entry)
    }

    /// Whether `entry` is still the cached walk for its key (nothing it read changed).
    pub(crate) fn still_cached(&self, entry: &Entry) -> bool {
        let state = self.read();
        state
            .entries
            .get(&*entry.selector)
            .and_then(|by_start| by_start.get(&entry.start))
            .is_some_and(|current| current.generation == entry.generation)
    }

    /// Drops every walk that a commit `tx` writing these records invalidates. Called
    /// under the commit serial, before the commit becomes visible.
    pub(crate) fn invalidate(&self, tx: TxId, writes: &[(Space, &[u8])]) {
        let mut guard = self.write();
        let state = &mut *guard;
        if state.touched.len() >= MAX_TOUCHED {
            state.touched.clear();
            state.touched_floor = tx.0;
        }
        for (space, key) in writes {
            let (oid, selector) = match space {
                Space::Objects => match record::decode_u64(key, "an object key") {
                    Ok(oid) => (Oid(oid), None),
                    Err(_) => continue,
                },
                Space::Slots => match record::split_slot_key(key) {
                    Ok((oid, name)) => (oid, Some(name)),
                    Err(_) => continue,
                },
                Space::Roots => continue,
            };
            state.touched.insert(oid, tx);
            let Some(visitors) = state.visitors.remove(&oid) else { continue };
            state.visits = state.visits.saturating_sub(visitors.len());
            let mut kept = HashSet::new();
            for (walk_selector, start) in visitors {
                if selector.as_deref().is_some_and(|s| s != &*walk_selector) {
                    kept.insert((walk_selector, start));
                    continue;
                }
                let emptied = match state.entries.get_mut(&walk_selector) {
                    Some(by_start) => {
                        if by_start.remove(&start).is_some() {
                            state.count = state.count.saturating_sub(1);
                        }
                        by_start.is_empty()
                    }
                    None => false,
                };
                if emptied {
                    state.entries.remove(&walk_selector);
                }
            }
            if !kept.is_empty() {
                state.visits += kept.len();
                state.visitors.insert(oid, kept);
            }
        }
    }

    /// (hits, misses, walks cached).
    pub(crate) fn counters(&self) -> (u64, u64, usize) {
        let count = self.read().count;
        (self.hits.load(Ordering::Relaxed), self.misses.load(Ordering::Relaxed), count)
    }
}

impl Tx<'_> {
    /// Finds `selector` from `start`: own slots, then parents depth-first in order, each
    /// object visited once. A parent that no longer exists (removed by undo or pack)
    /// answers nothing; a missing `start` is [`Error::UnknownObject`].
    pub fn walk(&self, start: Oid, selector: &str) -> Result<Walk> {
        self.resolve(start, selector, Walk::clone)
    }

    /// Just the holder and value of [`Tx::walk`] (a hot send copies no more than that).
    pub fn lookup(&self, start: Oid, selector: &str) -> Result<Option<(Oid, Value)>> {
        self.resolve(start, selector, |walk| walk.found.clone())
    }

    fn resolve<R>(&self, start: Oid, selector: &str, take: impl Fn(&Walk) -> R) -> Result<R> {
        if self.overlay_touches(selector) {
            return Ok(take(&self.walk_uncached(start, selector)?));
        }
        let cache = self.image().lookups();
        let base = self.base();
        if let Some(entry) = cache.get(selector, start, base) {
            cache.count(true);
            let answer = take(&entry.walk);
            self.used_cached_walk(entry);
            return Ok(answer);
        }
        cache.count(false);
        let mut reads = Vec::new();
        let (walk, body_len) = self.walk_committed(start, selector, &mut reads)?;
        let answer = take(&walk);
        if body_len <= MAX_CACHED_BODY {
            if let Some(entry) = cache.insert(selector, start, base, walk, reads) {
                self.used_cached_walk(entry);
            }
        }
        Ok(answer)
    }

    /// The walk over this transaction's own view (overlay included), never cached.
    fn walk_uncached(&self, start: Oid, selector: &str) -> Result<Walk> {
        let (walk, _) = traverse(start, |oid| {
            if let Some(value) = self.slot(oid, selector)? {
                return Ok(Step::Found(value, 0));
            }
            match self.parents(oid) {
                Ok(parents) => Ok(Step::Parents(Some(parents))),
                Err(Error::UnknownObject(_)) => Ok(Step::Parents(None)),
                Err(e) => Err(e),
            }
        })?;
        Ok(walk)
    }

    /// The walk over committed state, recording every record it read, with the size of
    /// the body it found.
    fn walk_committed(
        &self,
        start: Oid,
        selector: &str,
        reads: &mut Vec<Dependency>,
    ) -> Result<(Walk, usize)> {
        traverse(start, |oid| {
            let key = record::slot_key(oid, selector);
            let (stamp, body) = self.committed_body(Space::Slots, &key)?;
            reads.push((Space::Slots, key, stamp));
            if let Some(body) = body {
                return Ok(Step::Found(record::decode_value(&body)?, body.len()));
            }
            let (stamp, header) = self.committed_header(oid)?;
            reads.push((Space::Objects, record::oid_key(oid).to_vec(), stamp));
            match header {
                Some(body) => Ok(Step::Parents(Some(record::decode_parents(&body)?))),
                None => Ok(Step::Parents(None)),
            }
        })
    }
}

/// What one object of a walk said: it holds the slot (with its encoded size), or here
/// are its parents (`None`: the object no longer exists).
enum Step {
    Found(Value, usize),
    Parents(Option<Vec<Oid>>),
}

/// The delegation order, once: own slots, then parents depth-first in order, each
/// object visited once. A missing parent answers nothing; a missing start is an error.
fn traverse(start: Oid, mut step: impl FnMut(Oid) -> Result<Step>) -> Result<(Walk, usize)> {
    let mut visited: Vec<Oid> = Vec::new();
    let mut pending = vec![start];
    while let Some(oid) = pending.pop() {
        if visited.contains(&oid) {
            continue;
        }
        visited.push(oid);
        match step(oid)? {
            Step::Found(value, size) => {
                return Ok((Walk { visited, found: Some((oid, value)) }, size))
            }
            Step::Parents(Some(parents)) => pending.extend(parents.iter().rev()),
            Step::Parents(None) if oid != start => {}
            Step::Parents(None) => return Err(Error::UnknownObject(oid)),
        }
    }
    Ok((Walk { visited, found: None }, 0))
}
