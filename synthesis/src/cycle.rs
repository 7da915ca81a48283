//! Cycles as objects of the image. A cycle follows the seeds' Prototypal State Machine
//! — IDLE → DECOMPOSING → DELEGATING → SYNTHESIZING → VALIDATING → COMPLETE, or FAILED —
//! and every transition is its own committed transaction, so a cycle is inspectable at
//! any moment, and after a crash. The root `cycles` holds them as slots `c1`, `c2`, …
//!
//! A cycle the process died in is not resumed: the next [`recover`] marks it FAILED,
//! naming the state it stopped in. Resuming would re-ask the mind anyway, and the
//! message can simply be sent again; nothing was installed, because installing is one
//! transaction that also marks the cycle COMPLETE.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::image::{Oid, Tx, Value};
use crate::runtime::Runtime;

/// The root holding every cycle.
pub const CYCLES_ROOT: &str = "cycles";

/// Where a cycle stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Created, not yet started.
    Idle,
    /// Turning the message into a plan: signature and examples.
    Decomposing,
    /// Gathering context: the SDK summary and similar verified skills.
    Delegating,
    /// Asking the mind for code.
    Synthesizing,
    /// Building, auditing and proving a candidate.
    Validating,
    /// Installed; the message was sent again.
    Complete,
    /// Ended without installing anything.
    Failed,
}

impl State {
    /// Its name as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Idle => "IDLE",
            State::Decomposing => "DECOMPOSING",
            State::Delegating => "DELEGATING",
            State::Synthesizing => "SYNTHESIZING",
            State::Validating => "VALIDATING",
            State::Complete => "COMPLETE",
            State::Failed => "FAILED",
        }
    }

    /// The state a stored name denotes.
    pub fn parse(name: &str) -> Option<State> {
        [
            State::Idle,
            State::Decomposing,
            State::Delegating,
            State::Synthesizing,
            State::Validating,
            State::Complete,
            State::Failed,
        ]
        .into_iter()
        .find(|s| s.as_str() == name)
    }

    /// COMPLETE or FAILED.
    pub fn is_final(self) -> bool {
        matches!(self, State::Complete | State::Failed)
    }
}

fn registry(tx: &mut Tx<'_>) -> Result<Oid> {
    crate::runtime::registry_root(tx, CYCLES_ROOT, "Every synthesis cycle, by id (c1, c2, …); `unfinished` lists those not yet COMPLETE or FAILED.")
}

pub(crate) fn now_ms() -> i64 {
    i64::try_from(crate::image::now_ms()).unwrap_or(i64::MAX)
}

/// The ids of cycles not yet final, kept in the registry so that start-up recovery
/// reads one slot instead of every cycle.
fn unfinished(tx: &Tx<'_>, reg: Oid) -> Result<Vec<Value>> {
    Ok(match tx.slot(reg, "unfinished")? {
        Some(Value::List(ids)) => ids,
        _ => vec![],
    })
}

/// Records, in `tx`, a finished cycle a worker on another machine ran on its copy of
/// `receiver`: its slots as the worker recorded them (object references there mean
/// nothing here, so they are dropped; `receiver` is this image's), and `worker`, who
/// ran it. Answers the cycle's id here.
pub fn adopt(
    tx: &mut Tx<'_>,
    receiver: Oid,
    slots: &std::collections::BTreeMap<String, Value>,
    worker: &str,
) -> Result<String> {
    let (reg, id, cycle) = new_cycle(tx)?;
    for (name, value) in slots {
        let mut foreign = false;
        value.visit_refs(&mut |r| foreign |= matches!(r, crate::image::Ref::Object(_)));
        if !foreign {
            tx.set_slot(cycle, name, value)?;
        }
    }
    let workers_id = slots.get("id").cloned().unwrap_or(Value::Nil);
    tx.set_slot(cycle, "workerCycle", &workers_id)?;
    tx.set_slot(cycle, "id", &Value::Text(id.clone()))?;
    tx.set_slot(cycle, "receiver", &Value::Object(receiver))?;
    tx.set_slot(cycle, "worker", &Value::Text(worker.to_owned()))?;
    tx.set_slot(reg, &id, &Value::Object(cycle))?;
    Ok(id)
}

/// A new, empty cycle object under the next id (`c1`, `c2`…): the registry, the id and
/// the object.
fn new_cycle(tx: &mut Tx<'_>) -> Result<(Oid, String, Oid)> {
    let reg = registry(tx)?;
    let n = match tx.slot(reg, "next")? {
        Some(Value::Int(n)) => n,
        _ => 1,
    };
    tx.set_slot(reg, "next", &Value::Int(n + 1))?;
    let parents: Vec<Oid> = tx.root(crate::runtime::PRIMORDIAL_TRAITS)?.into_iter().collect();
    let cycle = tx.create_object(&parents)?;
    Ok((reg, format!("c{n}"), cycle))
}

/// Sets a cycle's state (and `updatedMs`) in `tx`, keeping the `unfinished` list true.
pub fn set_state(tx: &mut Tx<'_>, cycle: Oid, state: State) -> Result<()> {
    tx.set_slot(cycle, "state", &Value::Text(state.as_str().into()))?;
    tx.set_slot(cycle, "updatedMs", &Value::Int(now_ms()))?;
    if state.is_final() {
        let reg = registry(tx)?;
        let id = tx.slot(cycle, "id")?.unwrap_or_default();
        let mut ids = unfinished(tx, reg)?;
        ids.retain(|i| *i != id);
        tx.set_slot(reg, "unfinished", &Value::List(ids))?;
    }
    Ok(())
}

/// Creates a cycle for `selector` sent to `receiver` and returns its id and object.
pub fn create(
    rt: &Runtime,
    receiver: Oid,
    selector: &str,
    args: &[Value],
    brief: Option<&str>,
    model: &str,
) -> Result<(String, Oid)> {
    let committed = rt.transact(&format!("cycle for {receiver} {selector}"), |cx| {
        let tx = cx.tx_mut("record synthesis")?;
        let (reg, id, cycle) = new_cycle(tx)?;
        let slots = [
            ("id", Value::Text(id.clone())),
            ("state", Value::Text(State::Idle.as_str().into())),
            ("receiver", Value::Object(receiver)),
            ("selector", Value::Text(selector.into())),
            ("args", Value::List(args.to_vec())),
            ("brief", brief.map_or(Value::Nil, |b| Value::Text(b.into()))),
            ("model", Value::Text(model.into())),
            ("attempts", Value::List(vec![])),
            ("startedMs", Value::Int(now_ms())),
            ("updatedMs", Value::Int(now_ms())),
        ];
        for (name, value) in slots {
            tx.set_slot(cycle, name, &value)?;
        }
        tx.set_slot(reg, &id, &Value::Object(cycle))?;
        let mut ids = unfinished(tx, reg)?;
        ids.push(Value::Text(id.clone()));
        tx.set_slot(reg, "unfinished", &Value::List(ids))?;
        Ok((id, cycle))
    })?;
    Ok(committed.value)
}

/// Moves a cycle to `state`, writing `extra` slots in the same transaction.
pub fn transition(rt: &Runtime, cycle: Oid, state: State, extra: &[(&str, Value)]) -> Result<()> {
    rt.transact(&format!("cycle {cycle} → {}", state.as_str()), |cx| {
        let tx = cx.tx_mut("record synthesis")?;
        set_state(tx, cycle, state)?;
        for (name, value) in extra {
            tx.set_slot(cycle, name, value)?;
        }
        Ok(())
    })?;
    Ok(())
}

/// Appends one attempt (a map) to the cycle's `attempts`.
pub fn record_attempt(rt: &Runtime, cycle: Oid, attempt: BTreeMap<String, Value>) -> Result<()> {
    rt.transact(&format!("cycle {cycle}: attempt"), |cx| {
        let tx = cx.tx_mut("record synthesis")?;
        let mut attempts = match tx.slot(cycle, "attempts")? {
            Some(Value::List(items)) => items,
            _ => vec![],
        };
        attempts.push(Value::Map(attempt.clone()));
        tx.set_slot(cycle, "attempts", &Value::List(attempts))?;
        tx.set_slot(cycle, "updatedMs", &Value::Int(now_ms()))
    })?;
    Ok(())
}

/// Every cycle: `(id, object)`, in order of creation.
pub fn list(rt: &Runtime) -> Result<Vec<(String, Oid)>> {
    rt.view(|cx| {
        let Some(reg) = cx.tx().root(CYCLES_ROOT)? else { return Ok(vec![]) };
        crate::runtime::numbered_entries(cx.tx(), reg, "c")
    })
}

/// The cycle with id `id` (`c7`, or `7`).
pub fn find(rt: &Runtime, id: &str) -> Result<Oid> {
    let id = if id.starts_with('c') { id.to_owned() } else { format!("c{id}") };
    list(rt)?
        .into_iter()
        .find(|(cid, _)| *cid == id)
        .map(|(_, oid)| oid)
        .ok_or_else(|| Error::not_found("cycle", id, "`batos cycles` lists them"))
}

/// The state a cycle object is in.
pub fn state_of(rt: &Runtime, cycle: Oid) -> Result<Option<State>> {
    Ok(match rt.object(cycle)?.slots.get("state") {
        Some(Value::Text(s)) => State::parse(s),
        _ => None,
    })
}

/// Marks every cycle that is not COMPLETE or FAILED as FAILED: the process that ran it
/// ended. Returns the ids so marked. It does its work once per awakening of the image
/// (see [`Runtime::first_time`]) — the CLI and every [`super::Synthesizer`] call it, and
/// only the first call marks anything — before any cycle of this process; it reads one
/// slot when nothing is unfinished.
pub fn recover(rt: &Runtime) -> Result<Vec<String>> {
    // Once per awakening: a second synthesizer in this process must not take the
    // first one's live cycles for a dead process's.
    if !rt.first_time("synthesis: recover interrupted cycles") {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = rt.view(|cx| {
        let Some(reg) = cx.tx().root(CYCLES_ROOT)? else { return Ok(vec![]) };
        Ok(unfinished(cx.tx(), reg)?
            .into_iter()
            .filter_map(|v| if let Value::Text(id) = v { Some(id) } else { None })
            .collect())
    })?;
    let mut marked = Vec::new();
    for id in ids {
        let oid = find(rt, &id)?;
        let was = state_of(rt, oid)?.map_or("an unknown state", State::as_str);
        let reason = format!("interrupted: the process ended during {was}; nothing was installed, send the message again to start a new cycle");
        transition(rt, oid, State::Failed, &[("reason", Value::Text(reason))])?;
        marked.push(id);
    }
    Ok(marked)
}
