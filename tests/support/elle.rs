//! A list-append checker after Jepsen's Elle (Kingsbury & Alvaro, "Elle: Inferring
//! Isolation Anomalies from Experimental Observations", VLDB 2020), for the histories
//! the Jepsen-style test records against a kernel.
//!
//! Each transaction appends unique integers to lists and reads lists. Because every
//! read returns a whole list, reads reveal each key's version order: the longest read
//! is the order, every other read must be a prefix of it. From the version orders the
//! checker infers, between committed transactions, write-write (ww: T1 appended the
//! element right before T2's), write-read (wr: T2 read a list ending in T1's element)
//! and read-write edges (rw: T1 read a list that T2's append then extended), plus
//! real-time edges (T1 completed before T2 began, transitively reduced). A cycle is an
//! anomaly, named by the edges it needs: only ww is G0, ww and wr is G1c, exactly one
//! rw is G-single, more is G2; a cycle that needs a real-time edge carries
//! `-realtime` (a violation of strict serializability only). Besides cycles: G1a (a
//! read of a failed transaction's append), G1b (a read ending in an append its
//! transaction later superseded), incompatible orders, duplicates, and lost appends (an
//! acknowledged append missing from a read that began after it was acknowledged).
#![allow(dead_code)] // each test binary uses its own part

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

/// One operation inside a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mop {
    /// Append a value to a key's list.
    Append(String, i64),
    /// Read a key's list (`None` until known: an indeterminate transaction's read).
    Read(String, Option<Vec<i64>>),
}

/// How a transaction ended, as the client saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Acknowledged: committed.
    Ok,
    /// Refused: known not to have committed.
    Fail,
    /// Unknown (the connection broke first): may or may not have committed.
    Info,
}

/// A transaction as the client recorded it.
#[derive(Clone, Debug)]
pub struct Txn {
    /// The client that ran it.
    pub process: usize,
    /// How it ended.
    pub outcome: Outcome,
    /// When it was invoked (any monotonic clock, e.g. a global counter).
    pub invoke: u64,
    /// When its answer arrived (`u64::MAX` for `Info`).
    pub complete: u64,
    /// Its operations, with what each read saw.
    pub mops: Vec<Mop>,
}

/// The anomalies found, by name, each with a line that shows it.
#[derive(Debug, Default)]
pub struct Report {
    /// Anomaly name → explanations.
    pub anomalies: BTreeMap<String, Vec<String>>,
}

impl Report {
    fn add(&mut self, name: &str, why: String) {
        self.anomalies.entry(name.to_owned()).or_default().push(why);
    }

    /// How many of `name` were found.
    pub fn count(&self, name: &str) -> usize {
        self.anomalies.get(name).map_or(0, Vec::len)
    }

    /// Whether nothing was found.
    pub fn is_clean(&self) -> bool {
        self.anomalies.is_empty()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Edge {
    Ww,
    Wr,
    Rw,
    Realtime,
}

/// Checks a history (see the module's doc).
pub fn check(history: &[Txn]) -> Report {
    let mut report = Report::default();
    // Who appended each value, and where in its transaction.
    let mut writer: HashMap<(String, i64), usize> = HashMap::new();
    let mut final_append: HashMap<(usize, String), i64> = HashMap::new();
    for (i, t) in history.iter().enumerate() {
        for m in &t.mops {
            if let Mop::Append(k, v) = m {
                if writer.insert((k.clone(), *v), i).is_some() {
                    report.add("duplicate-append", format!("{v} appended to {k} twice"));
                }
                final_append.insert((i, k.clone()), *v);
            }
        }
    }
    // Version orders from the reads of transactions that committed.
    let mut order: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for t in history.iter().filter(|t| t.outcome == Outcome::Ok) {
        for m in &t.mops {
            if let Mop::Read(k, Some(seen)) = m {
                let distinct: HashSet<_> = seen.iter().collect();
                if distinct.len() != seen.len() {
                    report.add("duplicate", format!("a read of {k} saw {seen:?}"));
                }
                let known = order.entry(k.clone()).or_default();
                let (short, long) = if seen.len() <= known.len() {
                    (&seen[..], &known[..])
                } else {
                    (&known[..], &seen[..])
                };
                if long[..short.len()] != *short {
                    report.add(
                        "incompatible-order",
                        format!("reads of {k} saw {known:?} and {seen:?}"),
                    );
                } else if seen.len() > known.len() {
                    *known = seen.clone();
                }
            }
        }
    }
    // G1a and G1b: what reads saw, against who wrote it.
    for t in history.iter().filter(|t| t.outcome == Outcome::Ok) {
        for m in &t.mops {
            let Mop::Read(k, Some(seen)) = m else { continue };
            for v in seen {
                if let Some(&w) = writer.get(&(k.clone(), *v)) {
                    if history[w].outcome == Outcome::Fail {
                        report.add(
                            "G1a",
                            format!("a read of {k} saw {v}, appended by a failed transaction"),
                        );
                    }
                }
            }
            if let Some(last) = seen.last() {
                if let Some(&w) = writer.get(&(k.clone(), *last)) {
                    let own = std::ptr::eq(&history[w], t);
                    if !own && final_append.get(&(w, k.clone())) != Some(last) {
                        report.add("G1b", format!("a read of {k} ended at {last}, which its transaction later superseded"));
                    }
                }
            }
        }
    }
    // Lost appends: acknowledged, then missing from a read that began afterwards.
    for t in history.iter().filter(|t| t.outcome == Outcome::Ok) {
        for m in &t.mops {
            let Mop::Append(k, v) = m else { continue };
            let lost = history
                .iter()
                .filter(|r| r.outcome == Outcome::Ok && r.invoke > t.complete)
                .any(|r| {
                    r.mops.iter().any(
                        |m| matches!(m, Mop::Read(rk, Some(seen)) if rk == k && !seen.contains(v)),
                    )
                });
            if lost {
                report.add(
                    "lost-append",
                    format!("{v} was acknowledged on {k}, then a later read lacked it"),
                );
            }
        }
    }
    // The dependency graph over committed (and indeterminate but observed) transactions.
    let mut edges: HashMap<usize, Vec<(usize, Edge)>> = HashMap::new();
    let mut add = |a: usize, b: usize, e: Edge| {
        if a != b {
            edges.entry(a).or_default().push((b, e));
        }
    };
    for (k, versions) in &order {
        let w = |v: &i64| writer.get(&(k.clone(), *v)).copied();
        for pair in versions.windows(2) {
            if let (Some(a), Some(b)) = (w(&pair[0]), w(&pair[1])) {
                add(a, b, Edge::Ww);
            }
        }
        for (i, t) in history.iter().enumerate().filter(|(_, t)| t.outcome == Outcome::Ok) {
            for m in &t.mops {
                let Mop::Read(rk, Some(seen)) = m else { continue };
                if rk != k {
                    continue;
                }
                if let Some(last) = seen.last().and_then(w) {
                    add(last, i, Edge::Wr);
                }
                // The version after the one read: its writer overwrote what i saw.
                if let Some(next) = versions.get(seen.len()).and_then(w) {
                    add(i, next, Edge::Rw);
                }
            }
        }
    }
    // Real-time order, transitively reduced: an op follows the frontier of ops that had
    // completed when it began.
    let mut events: Vec<(u64, bool, usize)> = Vec::new();
    for (i, t) in history.iter().enumerate().filter(|(_, t)| t.outcome == Outcome::Ok) {
        events.push((t.invoke, false, i));
        events.push((t.complete, true, i));
    }
    events.sort();
    let mut frontier: Vec<usize> = Vec::new();
    let mut before: HashMap<usize, Vec<usize>> = HashMap::new();
    for (_, completes, i) in events {
        if completes {
            let preds = before.remove(&i).unwrap_or_default();
            frontier.retain(|f| !preds.contains(f));
            frontier.push(i);
        } else {
            for &f in &frontier {
                add(f, i, Edge::Realtime);
            }
            before.insert(i, frontier.clone());
        }
    }
    for cycle in cycles(&edges) {
        report.add(&cycle.0, cycle.1);
    }
    report
}

/// Every strongly connected component's most specific cycle, named.
fn cycles(edges: &HashMap<usize, Vec<(usize, Edge)>>) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for component in components(edges) {
        let inside: HashSet<usize> = component.iter().copied().collect();
        let inside = &inside;
        let within = |allowed: &'static [Edge]| move |a: usize| step(edges, inside, allowed, a);
        const DEPENDENCIES: &[Edge] = &[Edge::Ww, Edge::Wr];
        let mut named = None;
        for (name, allowed) in [("G0", &[Edge::Ww][..]), ("G1c", DEPENDENCIES)] {
            if let Some(c) = component.iter().find_map(|&s| path(s, s, &within(allowed))) {
                named = Some((name.to_owned(), c));
                break;
            }
        }
        if named.is_none() {
            named = single_rw(edges, inside, DEPENDENCIES).map(|c| ("G-single".to_owned(), c));
        }
        if named.is_none() {
            const ALL: &[Edge] = &[Edge::Ww, Edge::Wr, Edge::Rw];
            named = component
                .iter()
                .find_map(|&s| path(s, s, &within(ALL)))
                .map(|c| ("G2".to_owned(), c));
        }
        if named.is_none() {
            // Only real time closes it: a strict-serializability violation; name it by
            // the data edges it has.
            const WITH_TIME: &[Edge] = &[Edge::Ww, Edge::Wr, Edge::Rw, Edge::Realtime];
            if let Some(c) = component.iter().find_map(|&s| path(s, s, &within(WITH_TIME))) {
                let rws = c
                    .windows(2)
                    .filter(|p| {
                        has(edges, p[0], p[1], Edge::Rw)
                            && !has(edges, p[0], p[1], Edge::Ww)
                            && !has(edges, p[0], p[1], Edge::Wr)
                    })
                    .count();
                let name = match rws {
                    0 => "G1c-realtime",
                    1 => "G-single-realtime",
                    _ => "G2-realtime",
                };
                named = Some((name.to_owned(), c));
            }
        }
        if let Some((name, c)) = named {
            found.push((name, format!("a cycle through transactions {c:?}")));
        }
    }
    found
}

/// The successors of `a` inside the component by the `allowed` kinds of edge.
fn step(
    edges: &HashMap<usize, Vec<(usize, Edge)>>,
    inside: &HashSet<usize>,
    allowed: &[Edge],
    a: usize,
) -> Vec<usize> {
    edges
        .get(&a)
        .into_iter()
        .flatten()
        .filter(|(b, e)| inside.contains(b) && allowed.contains(e))
        .map(|(b, _)| *b)
        .collect()
}

fn has(edges: &HashMap<usize, Vec<(usize, Edge)>>, a: usize, b: usize, e: Edge) -> bool {
    edges.get(&a).is_some_and(|out| out.contains(&(b, e)))
}

/// A cycle with exactly one rw edge: an rw edge a→b and a path b→a of dependencies.
fn single_rw(
    edges: &HashMap<usize, Vec<(usize, Edge)>>,
    inside: &HashSet<usize>,
    dependencies: &[Edge],
) -> Option<Vec<usize>> {
    let next = |a: usize| step(edges, inside, dependencies, a);
    for &a in inside {
        for (b, e) in edges.get(&a).into_iter().flatten() {
            if *e == Edge::Rw && inside.contains(b) {
                if let Some(mut back) = path(*b, a, &next) {
                    back.insert(0, a);
                    return Some(back);
                }
            }
        }
    }
    None
}

/// A shortest path from `from` to `to` (a cycle when equal, at least one step), by
/// breadth-first search.
fn path(from: usize, to: usize, next: &dyn Fn(usize) -> Vec<usize>) -> Option<Vec<usize>> {
    let mut came: HashMap<usize, usize> = HashMap::new();
    let mut queue = VecDeque::from([from]);
    while let Some(a) = queue.pop_front() {
        for b in next(a) {
            if b == to {
                let mut out = vec![b, a];
                let mut at = a;
                while at != from {
                    at = came[&at];
                    out.push(at);
                }
                out.reverse();
                return Some(out);
            }
            if b != from && !came.contains_key(&b) {
                came.insert(b, a);
                queue.push_back(b);
            }
        }
    }
    None
}

/// Tarjan's strongly connected components of more than one transaction.
fn components(edges: &HashMap<usize, Vec<(usize, Edge)>>) -> Vec<Vec<usize>> {
    struct State<'a> {
        edges: &'a HashMap<usize, Vec<(usize, Edge)>>,
        index: HashMap<usize, usize>,
        low: HashMap<usize, usize>,
        stack: Vec<usize>,
        on: HashSet<usize>,
        next: usize,
        out: Vec<Vec<usize>>,
    }
    fn visit(s: &mut State<'_>, v: usize) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on.insert(v);
        let targets: Vec<usize> = s.edges.get(&v).into_iter().flatten().map(|(b, _)| *b).collect();
        for w in targets {
            if !s.index.contains_key(&w) {
                visit(s, w);
                let lw = s.low[&w];
                let lv = s.low.get_mut(&v).expect("visited");
                *lv = (*lv).min(lw);
            } else if s.on.contains(&w) {
                let iw = s.index[&w];
                let lv = s.low.get_mut(&v).expect("visited");
                *lv = (*lv).min(iw);
            }
        }
        if s.low[&v] == s.index[&v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on.remove(&w);
                component.push(w);
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                s.out.push(component);
            }
        }
    }
    let mut nodes: Vec<usize> = edges.keys().copied().collect();
    nodes.sort_unstable();
    let mut s = State {
        edges,
        index: HashMap::new(),
        low: HashMap::new(),
        stack: Vec::new(),
        on: HashSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in nodes {
        if !s.index.contains_key(&v) {
            visit(&mut s, v);
        }
    }
    s.out
}
