//! Durable jobs (the seeds' sagas): long work — a synthesis cycle, a model pull — that
//! runs outside any transaction, recorded in the image so that no process owns it.
//!
//! A job is an object under the root `jobs` (`j1`, `j2`, …) with its `kind`, `payload`,
//! `state` (`queued`, `leased`, `completed`, `failed`), `attempt`, lease, the output
//! of each step done, and its `result`. The rules, written down:
//!
//! - **Enqueued with the send that asks for it.** [`enqueue`] writes into the caller's
//!   transaction, so a job exists if and only if the send that asked for it committed:
//!   "run after commit" holds by construction, with no outbox to reconcile.
//! - **Leased, with a fencing token.** [`lease`] hands the oldest runnable job to one
//!   holder until a deadline and increments its `attempt`: the attempt number is the
//!   fencing token. Every later write of the holder — [`record_step`], [`renew`],
//!   completion — names its attempt and is refused ([`Error::StaleAttempt`]) once a
//!   newer attempt exists, so a worker that was paused past its lease cannot overwrite
//!   the work of the one that took over.
//! - **Steps are recorded, so a restart resumes.** A step's output is committed under
//!   its name; the next attempt sees it in [`Lease::steps`] and skips the step.
//! - **Completion is idempotent.** [`complete_in`] runs inside the transaction that
//!   applies the job's effect (an install, the message's answer): the effect and the
//!   completion commit together or not at all. Completing again under the attempt that
//!   completed answers [`Completion::AlreadyCompleted`] and writes nothing; under an
//!   older attempt it is refused. So a job's effect happens exactly once, however often
//!   its result is delivered.
//! - **Expired leases go back to the queue.** [`requeue_expired`] (at every awakening
//!   and on a timer while a kernel serves) returns leased jobs whose deadline passed;
//!   [`requeue_held_by`] returns those a dead process held, which a kernel knows at
//!   awakening because it holds the image's lock. After [`MAX_ATTEMPTS`] attempts a job
//!   fails rather than loop forever on work that kills its worker.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::image::{now_ms, Oid, Tx, Value};
use crate::Runtime;

/// The root that holds every job.
pub const JOBS_ROOT: &str = "jobs";

/// Attempts before a job fails: enough for a worker or two to die under it, few enough
/// that work which kills every worker stops being retried.
pub const MAX_ATTEMPTS: i64 = 5;

/// Where a job is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobState {
    /// Waiting for a holder.
    Queued,
    /// Held by one holder until its lease ends.
    Leased,
    /// Done; its result is recorded.
    Completed,
    /// Given up; its error is recorded.
    Failed,
}

impl JobState {
    /// Its name in the image.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Leased => "leased",
            JobState::Completed => "completed",
            JobState::Failed => "failed",
        }
    }

    fn parse(name: &str) -> Option<JobState> {
        Some(match name {
            "queued" => JobState::Queued,
            "leased" => JobState::Leased,
            "completed" => JobState::Completed,
            "failed" => JobState::Failed,
            _ => return None,
        })
    }

    /// Completed or failed.
    pub fn is_final(self) -> bool {
        matches!(self, JobState::Completed | JobState::Failed)
    }
}

/// A job as recorded.
#[derive(Clone, Debug, PartialEq)]
pub struct Job {
    /// Its id (`j3`).
    pub id: String,
    /// Its object.
    pub oid: Oid,
    /// What kind of work (`synthesis`).
    pub kind: String,
    /// What it does, in words.
    pub describe: String,
    /// Where it is.
    pub state: JobState,
    /// The current attempt (the fencing token); 0 until first leased.
    pub attempt: i64,
    /// Who holds the lease (when leased).
    pub holder: Option<String>,
    /// When the lease ends, in ms since the epoch.
    pub lease_until_ms: u64,
    /// What the work needs.
    pub payload: Value,
    /// Each step done, by name, with its output.
    pub steps: BTreeMap<String, Value>,
    /// The answer (when completed).
    pub result: Value,
    /// Why it failed, or why its last attempt did.
    pub error: Option<String>,
    /// When it was enqueued, in ms since the epoch.
    pub enqueued_ms: u64,
    /// When it completed or failed.
    pub finished_ms: Option<u64>,
    /// The object it is about (the receiver of a synthesis), its proxy's subject.
    pub subject: Option<Oid>,
    /// The attempt that completed it.
    pub completed_by: Option<i64>,
}

/// One holder's claim on a job, until [`Lease::until_ms`].
#[derive(Clone, Debug, PartialEq)]
pub struct Lease {
    /// The job's id.
    pub job: String,
    /// Its object.
    pub oid: Oid,
    /// The attempt this lease is: the fencing token every write names.
    pub attempt: i64,
    /// Who holds it.
    pub holder: String,
    /// When it ends, in ms since the epoch.
    pub until_ms: u64,
    /// The job's kind.
    pub kind: String,
    /// The job's payload.
    pub payload: Value,
    /// The steps earlier attempts finished, to skip.
    pub steps: BTreeMap<String, Value>,
}

/// What completing did.
#[derive(Clone, Debug, PartialEq)]
pub enum Completion {
    /// This call completed the job.
    Completed,
    /// The same attempt had completed it already; nothing was written. Carries the
    /// result recorded then.
    AlreadyCompleted(Value),
}

fn registry(tx: &mut Tx<'_>) -> Result<Oid> {
    crate::registry_root(
        tx,
        JOBS_ROOT,
        "Durable jobs: long work run outside transactions under leases (`batos jobs`).",
    )
}

fn int(slots: &BTreeMap<String, Value>, name: &str) -> i64 {
    match slots.get(name) {
        Some(Value::Int(n)) => *n,
        _ => 0,
    }
}

fn text(slots: &BTreeMap<String, Value>, name: &str) -> Option<String> {
    match slots.get(name) {
        Some(Value::Text(t)) => Some(t.clone()),
        _ => None,
    }
}

fn read(tx: &Tx<'_>, id: &str, oid: Oid) -> Result<Job> {
    let slots = tx.slots(oid)?;
    let state = text(&slots, "state")
        .and_then(|s| JobState::parse(&s))
        .ok_or_else(|| Error::Corrupt(format!("job {id} has no valid state")))?;
    let steps = match slots.get("steps") {
        Some(Value::Map(m)) => m.clone(),
        _ => BTreeMap::new(),
    };
    Ok(Job {
        id: id.to_owned(),
        oid,
        kind: text(&slots, "kind").unwrap_or_default(),
        describe: text(&slots, "describe").unwrap_or_default(),
        state,
        attempt: int(&slots, "attempt"),
        holder: text(&slots, "holder"),
        lease_until_ms: int(&slots, "leaseUntil").max(0) as u64,
        payload: slots.get("payload").cloned().unwrap_or(Value::Nil),
        steps,
        result: slots.get("result").cloned().unwrap_or(Value::Nil),
        error: text(&slots, "error"),
        enqueued_ms: int(&slots, "enqueuedMs").max(0) as u64,
        finished_ms: slots.get("finishedMs").and_then(|v| match v {
            Value::Int(n) => Some((*n).max(0) as u64),
            _ => None,
        }),
        subject: match slots.get("subject") {
            Some(Value::Object(o)) => Some(*o),
            _ => None,
        },
        completed_by: match slots.get("completedAttempt") {
            Some(Value::Int(n)) => Some(*n),
            _ => None,
        },
    })
}

/// The ids of jobs not yet final, in the order they were enqueued.
fn open_ids(tx: &Tx<'_>, reg: Oid) -> Result<Vec<String>> {
    Ok(match tx.slot(reg, "open")? {
        Some(Value::List(ids)) => ids
            .into_iter()
            .filter_map(|v| match v {
                Value::Text(t) => Some(t),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    })
}

fn set_open(tx: &mut Tx<'_>, reg: Oid, ids: &[String]) -> Result<()> {
    let list = ids.iter().map(|id| Value::Text(id.clone())).collect();
    tx.set_slot(reg, "open", &Value::List(list))
}

fn job_oid(tx: &Tx<'_>, reg: Oid, id: &str) -> Result<Oid> {
    match tx.slot(reg, id)? {
        Some(Value::Object(oid)) => Ok(oid),
        _ => Err(Error::NotFound {
            what: "job",
            name: id.to_owned(),
            hint: "`batos jobs` lists the jobs".into(),
        }),
    }
}

/// Enqueues a job in the caller's transaction (see the module's rules): it exists once
/// that transaction commits, and never otherwise. Answers its id and object.
pub fn enqueue(
    tx: &mut Tx<'_>,
    kind: &str,
    describe: &str,
    payload: Value,
    subject: Option<Oid>,
) -> Result<(String, Oid)> {
    let reg = registry(tx)?;
    let n = match tx.slot(reg, "next")? {
        Some(Value::Int(n)) => n,
        _ => 1,
    };
    tx.set_slot(reg, "next", &Value::Int(n + 1))?;
    let id = format!("j{n}");
    let parents: Vec<Oid> = tx.root(crate::PRIMORDIAL_TRAITS)?.into_iter().collect();
    let job = tx.create_object(&parents)?;
    let slots = [
        ("id", Value::Text(id.clone())),
        ("kind", Value::Text(kind.to_owned())),
        ("describe", Value::Text(describe.to_owned())),
        ("state", Value::Text(JobState::Queued.as_str().into())),
        ("attempt", Value::Int(0)),
        ("payload", payload),
        ("steps", Value::Map(BTreeMap::new())),
        ("enqueuedMs", Value::Int(now_ms() as i64)),
        ("subject", subject.map_or(Value::Nil, Value::Object)),
    ];
    for (name, value) in slots {
        tx.set_slot(job, name, &value)?;
    }
    tx.set_slot(reg, &id, &Value::Object(job))?;
    let mut open = open_ids(tx, reg)?;
    open.push(id.clone());
    set_open(tx, reg, &open)?;
    Ok((id, job))
}

/// Leases the oldest runnable job of one of `kinds` (queued, or leased past its
/// deadline) to `holder` for `lease_for`, as a new attempt. `None` when there is none.
/// A job past [`MAX_ATTEMPTS`] is failed instead of leased.
pub fn lease(
    rt: &Runtime,
    kinds: &[&str],
    holder: &str,
    lease_for: Duration,
) -> Result<Option<Lease>> {
    // Most polls find nothing: look before writing anything.
    let candidates = rt.image().view(|tx| {
        let Some(reg) = tx.root(JOBS_ROOT)? else { return Ok(false) };
        let now = now_ms();
        for id in open_ids(tx, reg)? {
            let job = read(tx, &id, job_oid(tx, reg, &id)?)?;
            if kinds.contains(&job.kind.as_str()) && runnable(&job, now) {
                return Ok(true);
            }
        }
        Ok(false)
    })?;
    if !candidates {
        return Ok(None);
    }
    let committed = rt.image().transact(&format!("lease a job to {holder}"), |tx| {
        let reg = registry(tx)?;
        let now = now_ms();
        for id in open_ids(tx, reg)? {
            let job = read(tx, &id, job_oid(tx, reg, &id)?)?;
            if !kinds.contains(&job.kind.as_str()) || !runnable(&job, now) {
                continue;
            }
            let attempt = job.attempt + 1;
            if attempt > MAX_ATTEMPTS {
                let reason = format!(
                    "gave up after {MAX_ATTEMPTS} attempts; the last: {}",
                    job.error.as_deref().unwrap_or("its holder stopped answering")
                );
                finish(tx, reg, &job, JobState::Failed, &[("error", Value::Text(reason))])?;
                continue;
            }
            let until = now + lease_for.as_millis() as u64;
            tx.set_slot(job.oid, "state", &Value::Text(JobState::Leased.as_str().into()))?;
            tx.set_slot(job.oid, "attempt", &Value::Int(attempt))?;
            tx.set_slot(job.oid, "holder", &Value::Text(holder.to_owned()))?;
            tx.set_slot(job.oid, "leaseUntil", &Value::Int(until as i64))?;
            return Ok(Some(Lease {
                job: id,
                oid: job.oid,
                attempt,
                holder: holder.to_owned(),
                until_ms: until,
                kind: job.kind,
                payload: job.payload,
                steps: job.steps,
            }));
        }
        Ok(None)
    })?;
    Ok(committed.value)
}

fn runnable(job: &Job, now: u64) -> bool {
    match job.state {
        JobState::Queued => true,
        JobState::Leased => job.lease_until_ms < now,
        _ => false,
    }
}

fn finish(
    tx: &mut Tx<'_>,
    reg: Oid,
    job: &Job,
    state: JobState,
    extra: &[(&str, Value)],
) -> Result<()> {
    tx.set_slot(job.oid, "state", &Value::Text(state.as_str().into()))?;
    tx.set_slot(job.oid, "finishedMs", &Value::Int(now_ms() as i64))?;
    tx.remove_slot(job.oid, "leaseUntil")?;
    for (name, value) in extra {
        tx.set_slot(job.oid, name, value)?;
    }
    let open: Vec<String> = open_ids(tx, reg)?.into_iter().filter(|id| *id != job.id).collect();
    set_open(tx, reg, &open)
}

/// The job `id` as it stands, checked against the attempt `attempt` names: refused
/// with [`Error::StaleAttempt`] if a newer attempt exists, or if another attempt
/// finished it. A job finished by this very attempt is answered as it is (the caller
/// sees its final state); one requeued after this attempt's lease ended but not
/// leased again is still this attempt's, since no newer token was issued.
pub fn fence(tx: &Tx<'_>, id: &str, attempt: i64) -> Result<Job> {
    let reg = tx.root(JOBS_ROOT)?.ok_or_else(|| Error::NotFound {
        what: "job",
        name: id.to_owned(),
        hint: "this image has no jobs".into(),
    })?;
    let job = read(tx, id, job_oid(tx, reg, id)?)?;
    let stale = match job.state {
        JobState::Failed | JobState::Completed => job.completed_by != Some(attempt),
        JobState::Queued | JobState::Leased => job.attempt != attempt,
    };
    if stale {
        return Err(Error::StaleAttempt {
            job: id.to_owned(),
            attempt,
            current: job.attempt,
            state: job.state.as_str().to_owned(),
        });
    }
    Ok(job)
}

/// Completes the job inside the caller's transaction — the one that applies its effect
/// — with `result`, if `attempt` is current (see [`fence`]). Completing twice under the
/// same attempt writes nothing the second time.
pub fn complete_in(tx: &mut Tx<'_>, id: &str, attempt: i64, result: &Value) -> Result<Completion> {
    let job = fence(tx, id, attempt)?;
    if job.state.is_final() {
        return Ok(Completion::AlreadyCompleted(job.result));
    }
    let reg = registry(tx)?;
    finish(
        tx,
        reg,
        &job,
        JobState::Completed,
        &[
            ("result", result.clone()),
            ("completedAttempt", Value::Int(attempt)),
            ("holder", Value::Nil),
        ],
    )?;
    Ok(Completion::Completed)
}

/// [`complete_in`] in a transaction of its own, for jobs whose effect is already in the
/// image (or is the result itself).
pub fn complete(rt: &Runtime, lease: &Lease, result: &Value) -> Result<Completion> {
    let description = format!("complete job {} (attempt {})", lease.job, lease.attempt);
    Ok(rt
        .image()
        .transact(&description, |tx| complete_in(tx, &lease.job, lease.attempt, result))?
        .value)
}

/// Fails the job inside the caller's transaction, if `attempt` is current: for work
/// whose last step ran and failed in that transaction (a message its new method could
/// not answer), so that what the step's transaction keeps and the failure commit
/// together. Failing a job this attempt already finished writes nothing.
pub fn fail_in(tx: &mut Tx<'_>, id: &str, attempt: i64, reason: &str) -> Result<()> {
    let job = fence(tx, id, attempt)?;
    if job.state.is_final() {
        return Ok(());
    }
    let reg = registry(tx)?;
    let extra = [
        ("error", Value::Text(reason.to_owned())),
        ("completedAttempt", Value::Int(attempt)),
        ("holder", Value::Nil),
    ];
    finish(tx, reg, &job, JobState::Failed, &extra)
}

/// Records that the lease's attempt failed with `reason`: with `retry`, the job goes
/// back to the queue for another attempt (up to [`MAX_ATTEMPTS`]); without, it fails.
pub fn fail(rt: &Runtime, lease: &Lease, reason: &str, retry: bool) -> Result<()> {
    fail_attempt(rt, &lease.job, lease.attempt, reason, retry)
}

/// [`fail`] for a holder that knows the job and attempt but not the whole lease (a
/// worker's report).
pub fn fail_attempt(rt: &Runtime, id: &str, attempt: i64, reason: &str, retry: bool) -> Result<()> {
    let description = format!("job {id} attempt {attempt} failed");
    rt.image().transact(&description, |tx| {
        let job = fence(tx, id, attempt)?;
        if job.state.is_final() {
            return Ok(());
        }
        let reg = registry(tx)?;
        let error = Value::Text(reason.to_owned());
        if retry && job.attempt < MAX_ATTEMPTS {
            tx.set_slot(job.oid, "state", &Value::Text(JobState::Queued.as_str().into()))?;
            tx.set_slot(job.oid, "holder", &Value::Nil)?;
            tx.set_slot(job.oid, "error", &error)?;
            tx.remove_slot(job.oid, "leaseUntil")?;
            Ok(())
        } else {
            let extra = [
                ("error", error),
                ("holder", Value::Nil),
                ("completedAttempt", Value::Int(attempt)),
            ];
            finish(tx, reg, &job, JobState::Failed, &extra)
        }
    })?;
    Ok(())
}

/// Extends the lease by `lease_for` from now, if it is still current.
pub fn renew(rt: &Runtime, lease: &Lease, lease_for: Duration) -> Result<Lease> {
    let until = renew_attempt(rt, &lease.job, lease.attempt, lease_for)?;
    Ok(Lease { until_ms: until, ..lease.clone() })
}

/// [`renew`] by job and attempt (a worker's progress report); answers the new deadline.
pub fn renew_attempt(rt: &Runtime, id: &str, attempt: i64, lease_for: Duration) -> Result<u64> {
    let until = now_ms() + lease_for.as_millis() as u64;
    rt.image().transact(&format!("renew job {id} attempt {attempt}"), |tx| {
        let job = fence(tx, id, attempt)?;
        if job.state == JobState::Leased {
            tx.set_slot(job.oid, "leaseUntil", &Value::Int(until as i64))?;
        }
        Ok(())
    })?;
    Ok(until)
}

/// Records the output of step `step`, if the lease is still current: a later attempt
/// finds it in [`Lease::steps`] and resumes after it.
pub fn record_step(rt: &Runtime, lease: &Lease, step: &str, output: &Value) -> Result<()> {
    rt.image().transact(&format!("job {} step {step}", lease.job), |tx| {
        let job = fence(tx, &lease.job, lease.attempt)?;
        let mut steps = job.steps;
        steps.insert(step.to_owned(), output.clone());
        tx.set_slot(job.oid, "steps", &Value::Map(steps))
    })?;
    Ok(())
}

/// Returns leased jobs whose lease ended before now to the queue. Answers their ids.
pub fn requeue_expired(rt: &Runtime) -> Result<Vec<String>> {
    requeue(rt, "requeue expired leases", |job, now| job.lease_until_ms < now)
}

/// Returns every leased job whose holder starts with `prefix` to the queue, whatever
/// its deadline: for a kernel at awakening, whose previous process (the holder of those
/// leases) is certainly dead, since the new one holds the image's lock.
pub fn requeue_held_by(rt: &Runtime, prefix: &str) -> Result<Vec<String>> {
    requeue(rt, &format!("requeue jobs held by {prefix}"), |job, _| {
        job.holder.as_deref().is_some_and(|h| h.starts_with(prefix))
    })
}

fn requeue(
    rt: &Runtime,
    description: &str,
    pick: impl Fn(&Job, u64) -> bool,
) -> Result<Vec<String>> {
    let due = rt.image().view(|tx| {
        let Some(reg) = tx.root(JOBS_ROOT)? else { return Ok(false) };
        let now = now_ms();
        for id in open_ids(tx, reg)? {
            let job = read(tx, &id, job_oid(tx, reg, &id)?)?;
            if job.state == JobState::Leased && pick(&job, now) {
                return Ok(true);
            }
        }
        Ok(false)
    })?;
    if !due {
        return Ok(Vec::new());
    }
    Ok(rt
        .image()
        .transact(description, |tx| {
            let reg = registry(tx)?;
            let now = now_ms();
            let mut requeued = Vec::new();
            for id in open_ids(tx, reg)? {
                let job = read(tx, &id, job_oid(tx, reg, &id)?)?;
                if job.state == JobState::Leased && pick(&job, now) {
                    tx.set_slot(job.oid, "state", &Value::Text(JobState::Queued.as_str().into()))?;
                    tx.set_slot(job.oid, "holder", &Value::Nil)?;
                    tx.remove_slot(job.oid, "leaseUntil")?;
                    requeued.push(id);
                }
            }
            Ok(requeued)
        })?
        .value)
}

/// Every job, oldest first (at most the newest `limit`).
pub fn list(tx: &Tx<'_>, limit: usize) -> Result<Vec<Job>> {
    let Some(reg) = tx.root(JOBS_ROOT)? else { return Ok(Vec::new()) };
    let entries = crate::numbered_entries(tx, reg, "j")?;
    let skip = entries.len().saturating_sub(limit);
    entries.into_iter().skip(skip).map(|(id, oid)| read(tx, &id, oid)).collect()
}

/// The job `id`.
pub fn get(tx: &Tx<'_>, id: &str) -> Result<Job> {
    let reg = tx.root(JOBS_ROOT)?.ok_or_else(|| Error::NotFound {
        what: "job",
        name: id.to_owned(),
        hint: "this image has no jobs".into(),
    })?;
    read(tx, id, job_oid(tx, reg, id)?)
}
