//! `digital_ether`: stigmergic routing (seeds 004). Outcomes leave **pheromones** — a
//! failed verification, an inconsistency the crucible found, a question the memory
//! could not ground — and the routing reads them: a live pheromone raises the scores of
//! the personas it attracts, so an unresolved problem from one task draws the right
//! persona into the next, unrelated one.
//!
//! A pheromone is an object (kind, strength, when, whom it attracts, a note and what
//! caused it) listed in the ether's `pheromones`. It **evaporates**: its strength now is
//! `strength · 2^(−age / halfLifeSeconds)` — exponential decay, as real pheromones and
//! ant-colony optimisation's evaporation rate, so old trouble fades without anyone
//! removing it, and one number (the half-life, a slot) says how fast. A deposit drops
//! from the list those below [`MIN_STRENGTH`] (they become unreachable, and `pack`
//! collects them).

use std::collections::BTreeMap;

use crate::image::{Oid, Tx, Value};
use crate::Result;

/// The root of the ether.
pub const ETHER_ROOT: &str = "digital_ether";

/// A synthesis cycle or a candidate failed its verification.
pub const FAILED_VERIFICATION: &str = "failed_verification";
/// A reviewer found a candidate inconsistent with its brief.
pub const LOGICAL_INCONSISTENCY: &str = "logical_inconsistency";
/// A question found nothing in the memory to ground it.
pub const KNOWLEDGE_GAP: &str = "knowledge_gap";

/// Below this strength a pheromone is gone: 1% of a full deposit, about 6.6
/// half-lives.
pub const MIN_STRENGTH: f64 = 0.01;

/// Who each kind attracts, as the ether is made (its `attracts` slot, editable).
const ATTRACTS: [(&str, &[&str]); 3] = [
    (FAILED_VERIFICATION, &["brick", "alfred"]),
    (LOGICAL_INCONSISTENCY, &["alfred", "brick"]),
    (KNOWLEDGE_GAP, &["babs"]),
];

/// One pheromone as deposited.
#[derive(Clone, Debug, PartialEq)]
pub struct Pheromone {
    /// Its object.
    pub oid: Oid,
    /// Its kind (`failed_verification`, …).
    pub kind: String,
    /// Its strength when deposited.
    pub strength: f64,
    /// When, in ms since the epoch.
    pub deposited_ms: i64,
    /// The persona keys it attracts.
    pub attracts: Vec<String>,
    /// What happened.
    pub note: String,
}

impl Pheromone {
    /// Its strength at `now_ms`, after evaporating with `half_life_ms`.
    pub fn strength_at(&self, now_ms: i64, half_life_ms: f64) -> f64 {
        let age = (now_ms - self.deposited_ms).max(0) as f64;
        if half_life_ms <= 0.0 {
            return 0.0;
        }
        self.strength * (-age / half_life_ms).exp2()
    }
}

/// The ether's settings: how fast pheromones evaporate and how much a full one adds to
/// a persona's routing score.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Settings {
    /// The half-life, in ms.
    pub half_life_ms: f64,
    /// What a pheromone of strength 1 adds to the score of each persona it attracts.
    pub weight: f64,
}

pub(crate) fn ensure(tx: &mut Tx<'_>) -> Result<()> {
    if tx.root(ETHER_ROOT)?.is_some() {
        return Ok(());
    }
    let ether = crate::runtime::registry_root(
        tx,
        ETHER_ROOT,
        "Stigmergic routing: `pheromones` that outcomes deposit and time evaporates (`halfLifeSeconds`); each raises the routing score of the personas `attracts` names for its kind by `weight` × its strength.",
    )?;
    tx.set_slot(ether, "pheromones", &Value::List(vec![]))?;
    // An hour: long enough to carry a problem into the next few conversations, short
    // enough that a solved one stops steering within a day.
    tx.set_slot(ether, "halfLifeSeconds", &Value::Int(3600))?;
    // Half the spread of the matrix's weights: a pheromone tips a close choice, it
    // does not override the archetype.
    tx.set_slot(ether, "weight", &Value::Float(0.5))?;
    let attracts: BTreeMap<String, Value> = ATTRACTS
        .iter()
        .map(|(kind, keys)| {
            (
                (*kind).to_owned(),
                Value::List(keys.iter().map(|k| Value::Text((*k).to_owned())).collect()),
            )
        })
        .collect();
    tx.set_slot(ether, "attracts", &Value::Map(attracts))?;
    Ok(())
}

fn ether(tx: &Tx<'_>) -> Result<Option<Oid>> {
    tx.root(ETHER_ROOT)
}

/// The ether's settings as its slots say.
pub fn settings(tx: &Tx<'_>) -> Result<Settings> {
    let Some(ether) = ether(tx)? else { return Ok(Settings { half_life_ms: 3.6e6, weight: 0.5 }) };
    let half_life = crate::number(tx.slot(ether, "halfLifeSeconds")?.as_ref()).unwrap_or(3600.0);
    let weight = crate::number(tx.slot(ether, "weight")?.as_ref()).unwrap_or(0.5);
    Ok(Settings { half_life_ms: half_life.max(0.0) * 1000.0, weight })
}

fn listed(tx: &Tx<'_>, ether: Oid) -> Result<Vec<Oid>> {
    Ok(match tx.slot(ether, "pheromones")? {
        Some(Value::List(items)) => items
            .into_iter()
            .filter_map(|v| if let Value::Object(o) = v { Some(o) } else { None })
            .collect(),
        _ => vec![],
    })
}

fn read(tx: &Tx<'_>, oid: Oid) -> Result<Option<Pheromone>> {
    if !tx.exists(oid)? {
        return Ok(None);
    }
    let slots = tx.slots(oid)?;
    let attracts = match slots.get("attracts") {
        Some(Value::List(items)) => items
            .iter()
            .filter_map(|v| if let Value::Text(t) = v { Some(t.clone()) } else { None })
            .collect(),
        _ => vec![],
    };
    Ok(Some(Pheromone {
        oid,
        kind: crate::text(slots.get("kind")).unwrap_or_default(),
        strength: crate::number(slots.get("strength")).unwrap_or(0.0),
        deposited_ms: match slots.get("depositedMs") {
            Some(Value::Int(t)) => *t,
            _ => 0,
        },
        attracts,
        note: crate::text(slots.get("note")).unwrap_or_default(),
    }))
}

/// Every pheromone still above [`MIN_STRENGTH`] at `now_ms`, with its strength now.
pub fn live(tx: &Tx<'_>, now_ms: i64) -> Result<Vec<(Pheromone, f64)>> {
    let Some(ether) = ether(tx)? else { return Ok(vec![]) };
    let settings = settings(tx)?;
    let mut out = Vec::new();
    for oid in listed(tx, ether)? {
        if let Some(p) = read(tx, oid)? {
            let now = p.strength_at(now_ms, settings.half_life_ms);
            if now >= MIN_STRENGTH {
                out.push((p, now));
            }
        }
    }
    Ok(out)
}

/// Deposits a pheromone of `kind` (strength 0 to 1) in `tx`, attracting whom the
/// ether's `attracts` names for that kind, and drops the evaporated ones from the list.
pub fn deposit(tx: &mut Tx<'_>, kind: &str, strength: f64, note: &str, now_ms: i64) -> Result<Oid> {
    ensure(tx)?;
    let ether = ether(tx)?.ok_or_else(|| crate::Error::Failed("the ether vanished".into()))?;
    let attracts = match tx.slot(ether, "attracts")? {
        Some(Value::Map(map)) => map.get(kind).cloned().unwrap_or(Value::List(vec![])),
        _ => Value::List(vec![]),
    };
    let parents: Vec<Oid> = tx.root(crate::runtime::PRIMORDIAL_TRAITS)?.into_iter().collect();
    let pheromone = tx.create_object(&parents)?;
    let slots = [
        ("kind", Value::Text(kind.into())),
        ("strength", Value::Float(strength.clamp(0.0, 1.0))),
        ("depositedMs", Value::Int(now_ms)),
        ("attracts", attracts),
        ("note", Value::Text(note.chars().take(500).collect())),
    ];
    for (name, value) in slots {
        tx.set_slot(pheromone, name, &value)?;
    }
    let half_life_ms = settings(tx)?.half_life_ms;
    let mut kept = vec![Value::Object(pheromone)];
    for oid in listed(tx, ether)? {
        if let Some(p) = read(tx, oid)? {
            if p.strength_at(now_ms, half_life_ms) >= MIN_STRENGTH {
                kept.push(Value::Object(oid));
            }
        }
    }
    tx.set_slot(ether, "pheromones", &Value::List(kept))?;
    Ok(pheromone)
}
