//! Durable jobs in the kernel: `enqueue` and `jobs` requests, the runner that works
//! the queue in this process, and the transaction that finishes a job — the same for a
//! job run here and one run by a worker on another machine.
//!
//! A synthesis job's payload is the message (receiver, selector, arguments, and what
//! synthesis may need). Its work has two steps: `method` (make the receiver understand
//! the selector: synthesise and install unless something already answers it), then the
//! finishing transaction, which checks the attempt (the fencing token), applies a
//! remote worker's install if there is one, sends the message, and completes the job
//! with the answer — all or nothing. So the message is answered exactly once, whatever
//! process dies when, and a restarted job resumes after the step it had done.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use batos::image::json;
use batos::runtime::jobs::{self, Completion, Job, JobState, Lease};
use batos::runtime::Context;
use batos::{Oid, Value};
use batos_protocol::{Cause, Output};
use serde_json::json;

use crate::{bad_input, Failure, Kernel};

/// The kind of job that synthesises (if needed) and sends a message.
pub const SYNTHESIS: &str = "synthesis";

/// The kind of job that pulls a model of the catalogue.
pub const MODEL_PULL: &str = "model-pull";

/// Holders of leases this kernel's own runner takes start with this (then the pid):
/// at awakening, leases so held belong to a dead process, since this one holds the
/// image's lock.
pub const KERNEL_HOLDER: &str = "kernel:";

/// How long the local runner's lease lasts; it renews at a third of it while it works,
/// so a live runner never loses its job and a dead one's job waits at most this long.
pub const LOCAL_LEASE: Duration = Duration::from_secs(60);

/// How often a serving kernel looks for expired leases (a worker that died) even when
/// nothing wakes it.
pub const SWEEP_EVERY: Duration = Duration::from_secs(2);

/// The message a synthesis job sends, read from its payload.
pub fn synthesis_request(payload: &Value) -> Result<batos::synthesis::Request, Failure> {
    let Value::Map(m) = payload else {
        return Err(bad_input("a synthesis job's payload must be a map"));
    };
    let text = |k: &str| match m.get(k) {
        Some(Value::Text(t)) => Some(t.clone()),
        _ => None,
    };
    let texts = |k: &str| payload_texts(payload, k);
    let Some(Value::Object(receiver)) = m.get("receiver") else {
        return Err(bad_input("a synthesis job's payload names no receiver"));
    };
    let selector = text("selector").ok_or_else(|| bad_input("a synthesis job has no selector"))?;
    let examples = texts("examples")
        .iter()
        .map(|e| batos::synthesis::Example::parse(e))
        .collect::<Result<Vec<_>, _>>()
        .map_err(bad_input)?;
    Ok(batos::synthesis::Request {
        receiver: *receiver,
        selector,
        args: match m.get("args") {
            Some(Value::List(a)) => a.clone(),
            _ => Vec::new(),
        },
        brief: text("brief"),
        examples,
        stateful: matches!(m.get("stateful"), Some(Value::Bool(true))),
        language: match text("language").as_deref() {
            Some("wat") => batos::synthesis::Language::Wat,
            _ => batos::synthesis::Language::Rust,
        },
        grants: texts("grants"),
    })
}

/// The texts of the list `key` of a job's payload (a synthesis job's `examples` as the
/// caller wrote them, its `grants`); none when absent.
pub fn payload_texts(payload: &Value, key: &str) -> Vec<String> {
    match payload {
        Value::Map(m) => match m.get(key) {
            Some(Value::List(items)) => items
                .iter()
                .filter_map(|v| match v {
                    Value::Text(t) => Some(t.clone()),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

/// What a request to enqueue asks.
pub struct Enqueue {
    /// The receiver, as written.
    pub object: String,
    /// The selector.
    pub selector: String,
    /// The arguments, as batos JSON.
    pub args: Vec<serde_json::Value>,
    /// What the method should do.
    pub brief: Option<String>,
    /// `ARGS => RESULT` cases.
    pub examples: Vec<String>,
    /// The method keeps state in its receiver.
    pub stateful: bool,
    /// Grants allowed.
    pub grants: Vec<String>,
    /// Written in WAT rather than Rust.
    pub wat: bool,
}

/// The `enqueue` request: one transaction that records the job.
pub fn enqueue(kernel: &Kernel, ask: Enqueue) -> Result<Output, Failure> {
    let rt = kernel.runtime();
    let receiver = rt.resolve(&ask.object)?;
    let args = ask
        .args
        .iter()
        .map(|a| json::from_json(a, &mut |name| rt.resolve(name).map_err(|e| e.to_string())))
        .collect::<Result<Vec<_>, _>>()
        .map_err(bad_input)?;
    for e in &ask.examples {
        batos::synthesis::Example::parse(e).map_err(bad_input)?;
    }
    if batos::synthesis::candidate::rust_name(&ask.selector).is_none() {
        return Err(bad_input(format!(
            "`{}` cannot be a job's selector: it must start with a letter and hold only letters, digits, `_` and `:`",
            ask.selector
        )));
    }
    let list = |items: &[String]| Value::List(items.iter().cloned().map(Value::Text).collect());
    let payload = Value::Map(BTreeMap::from([
        ("receiver".to_owned(), Value::Object(receiver)),
        ("selector".to_owned(), Value::Text(ask.selector.clone())),
        ("args".to_owned(), Value::List(args)),
        ("brief".to_owned(), ask.brief.clone().map_or(Value::Nil, Value::Text)),
        ("examples".to_owned(), list(&ask.examples)),
        ("stateful".to_owned(), Value::Bool(ask.stateful)),
        ("grants".to_owned(), list(&ask.grants)),
        ("language".to_owned(), Value::Text(if ask.wat { "wat" } else { "rust" }.into())),
    ]));
    let describe = format!("send {} to {receiver}", ask.selector);
    let committed = rt.transact(&format!("enqueue: {describe}"), |cx| {
        jobs::enqueue(
            cx.tx_mut("enqueue a job")?,
            SYNTHESIS,
            &describe,
            payload.clone(),
            Some(receiver),
        )
    })?;
    let (id, oid) = committed.value;
    kernel.wake_jobs();
    Ok(queued(kernel, &id, oid, committed.tx))
}

/// `model_pull` with `job`: one transaction that records the pull as a job.
pub fn enqueue_pull(kernel: &Kernel, name: Option<String>) -> Result<Output, Failure> {
    let name = name.unwrap_or_else(|| batos::model::pull::CATALOGUE[0].name.to_owned());
    if !batos::model::pull::CATALOGUE.iter().any(|m| m.name == name) {
        return Err(bad_input(format!(
            "`{name}` is not in the catalogue; `batos model list` shows what is"
        )));
    }
    let describe = format!("pull the model {name}");
    let payload = Value::Map(BTreeMap::from([("model".to_owned(), Value::Text(name))]));
    let committed = kernel.runtime().transact(&format!("enqueue: {describe}"), |cx| {
        jobs::enqueue(cx.tx_mut("enqueue a job")?, MODEL_PULL, &describe, payload.clone(), None)
    })?;
    let (id, oid) = committed.value;
    kernel.wake_jobs();
    Ok(queued(kernel, &id, oid, committed.tx))
}

/// The answer to a request that queued a job.
fn queued(kernel: &Kernel, id: &str, oid: Oid, tx: Option<batos::TxId>) -> Output {
    let when = if kernel.serving() {
        String::new()
    } else {
        "; it runs when a kernel serves this image (`batos serve`)".to_owned()
    };
    Output {
        text: format!("queued as job {id} ({oid}){when}; `batos jobs {id}` shows it"),
        json: json!({ "job": id, "oid": oid.0, "tx": tx.map(|t| t.0) }),
    }
}

fn job_json(job: &Job) -> serde_json::Value {
    json!({
        "id": job.id, "oid": job.oid.0, "kind": job.kind, "describe": job.describe,
        "state": job.state.as_str(), "attempt": job.attempt, "holder": job.holder,
        "steps": job.steps.iter().map(|(k, v)| (k.clone(), json::to_json(v))).collect::<serde_json::Map<_, _>>(),
        "result": json::to_json(&job.result), "error": job.error,
        "enqueued_ms": job.enqueued_ms, "finished_ms": job.finished_ms,
    })
}

/// The `jobs` request: the newest `limit` jobs, or one in full.
pub fn list(kernel: &Kernel, limit: usize, one: Option<&str>) -> Result<Output, Failure> {
    let rt = kernel.runtime();
    if let Some(id) = one {
        let job = rt.image().view(|tx| jobs::get(tx, id))?;
        let mut text = format!(
            "{} {} — {}\nattempt {}{}\n",
            job.id,
            job.state.as_str(),
            job.describe,
            job.attempt,
            job.holder.as_deref().map(|h| format!(", held by {h}")).unwrap_or_default()
        );
        for (step, output) in &job.steps {
            text.push_str(&format!("step {step}: {}\n", json::to_json(output)));
        }
        if job.state == JobState::Completed {
            text.push_str(&format!("result: {}\n", json::to_json(&job.result)));
        }
        if let Some(e) = &job.error {
            text.push_str(&format!("error: {e}\n"));
        }
        return Ok(Output { text: text.trim_end().to_owned(), json: job_json(&job) });
    }
    let all = rt.image().view(|tx| jobs::list(tx, limit))?;
    let mut text = String::new();
    for job in &all {
        let outcome = match job.state {
            JobState::Completed => json::to_json(&job.result).to_string(),
            JobState::Failed => job.error.clone().unwrap_or_default(),
            _ => job.holder.clone().map(|h| format!("held by {h}")).unwrap_or_default(),
        };
        text.push_str(&format!(
            "{:<5} {:<10} attempt {} {:<36} {}\n",
            job.id,
            job.state.as_str(),
            job.attempt,
            job.describe,
            outcome
        ));
    }
    if text.is_empty() {
        text = "no jobs yet: `batos send --job …` queues one".into();
    }
    Ok(Output {
        text: text.trim_end().to_owned(),
        json: json!(all.iter().map(job_json).collect::<Vec<_>>()),
    })
}

/// What a remote worker proved and the kernel installs while finishing the job: the
/// method's value and the blobs it refers to (their hashes already checked), and the
/// records of its skill and cycle.
pub struct RemoteInstall {
    /// The method, as the worker installed it on its copy of the receiver.
    pub method: Value,
    /// The bytes of every blob the method and records refer to.
    pub blobs: Vec<Vec<u8>>,
    /// The skill entry (its `receiver` is set to the job's receiver here).
    pub skill: BTreeMap<String, Value>,
    /// The worker's cycle, its slots as recorded there.
    pub cycle: BTreeMap<String, Value>,
    /// Who proved it.
    pub worker: String,
}

/// The finishing transaction of a synthesis job (see the module's doc): answers the
/// job as it then stands. A message its method cannot answer fails the job, in the
/// same transaction, keeping the install.
pub fn finish(
    kernel: &Kernel,
    id: &str,
    attempt: i64,
    remote: Option<&RemoteInstall>,
) -> Result<Job, Failure> {
    let rt = kernel.runtime();
    let description = format!("finish job {id} (attempt {attempt})");
    rt.transact(&description, |cx| {
        let job = jobs::fence(cx.tx(), id, attempt)?;
        if job.state.is_final() {
            return Ok(());
        }
        let request =
            synthesis_request(&job.payload).map_err(|f| batos::Error::BadInput(f.0.message))?;
        if let Some(remote) = remote {
            install_remote(cx, &request, remote)?;
        }
        // A nested send: its savepoint undoes its own writes if it fails, keeping the
        // install.
        match cx.send(request.receiver, &request.selector, &request.args) {
            Ok(answer) => {
                match jobs::complete_in(cx.tx_mut("complete a job")?, id, attempt, &answer)? {
                    Completion::Completed | Completion::AlreadyCompleted(_) => Ok(()),
                }
            }
            Err(e) => jobs::fail_in(cx.tx_mut("fail a job")?, id, attempt, &e.to_string()),
        }
    })?;
    Ok(rt.image().view(|tx| jobs::get(tx, id))?)
}

/// A worker's method on the receiver, its skill and its cycle, in the finishing
/// transaction.
fn install_remote(
    cx: &mut Context<'_, '_>,
    request: &batos::synthesis::Request,
    remote: &RemoteInstall,
) -> Result<(), batos::Error> {
    let tx = cx.tx_mut("install a worker's method")?;
    for bytes in &remote.blobs {
        tx.put_blob(bytes)?;
    }
    tx.set_slot(request.receiver, &request.selector, &remote.method)?;
    let mut skill = remote.skill.clone();
    skill.insert("receiver".into(), Value::Object(request.receiver));
    skill.insert("worker".into(), Value::Text(remote.worker.clone()));
    let cycle_id =
        batos::synthesis::cycle::adopt(tx, request.receiver, &remote.cycle, &remote.worker)?;
    skill.insert("cycle".into(), Value::Text(cycle_id));
    batos::synthesis::skills::record(tx, request.receiver, skill)
}

/// Runs one leased job (a synthesis, a model pull) in this process, renewing its
/// lease while it works.
pub fn run_here(kernel: &Arc<Kernel>, lease: &Lease) -> Result<Job, Failure> {
    let cause = Cause { session: "jobs".into(), id: lease.job.clone() };
    let cancel = Arc::new(AtomicBool::new(false));
    let renewing = Arc::new(AtomicBool::new(true));
    let renewer = {
        let (kernel, lease, cancel, renewing) =
            (kernel.clone(), lease.clone(), cancel.clone(), renewing.clone());
        std::thread::spawn(move || {
            let mut waited = Duration::ZERO;
            while renewing.load(Ordering::SeqCst) {
                std::thread::park_timeout(Duration::from_millis(200));
                waited += Duration::from_millis(200);
                if waited < LOCAL_LEASE / 3 {
                    continue;
                }
                waited = Duration::ZERO;
                if let Err(e) = jobs::renew(kernel.runtime(), &lease, LOCAL_LEASE) {
                    // Another attempt owns the job now: stop working on it.
                    tracing::warn!("job {}: {e}; stopping this attempt", lease.job);
                    cancel.store(true, Ordering::SeqCst);
                    return;
                }
            }
        })
    };
    // Counted in flight and cancelled with the kernel's other work when it stops.
    kernel.running_list().push((cause.clone(), cancel.clone()));
    let result = work(kernel, lease, &cause, &cancel);
    kernel.running_list().retain(|(c, _)| c != &cause);
    renewing.store(false, Ordering::SeqCst);
    renewer.thread().unpark();
    let _ = renewer.join();
    result
}

fn work(
    kernel: &Arc<Kernel>,
    lease: &Lease,
    cause: &Cause,
    cancel: &Arc<AtomicBool>,
) -> Result<Job, Failure> {
    let rt = kernel.runtime();
    if lease.kind == MODEL_PULL {
        let name = match &lease.payload {
            Value::Map(m) => match m.get("model") {
                Some(Value::Text(t)) => t.clone(),
                _ => return Err(bad_input("a model-pull job names no model")),
            },
            _ => return Err(bad_input("a model-pull job's payload must be a map")),
        };
        // The pull keeps what it downloaded and verified; a restarted attempt goes on
        // from there, and one that finds the model imported is done at once.
        let pulled = crate::execute::model_pull(kernel, Some(cause), Some(name))?;
        let result = json::from_json(&pulled.json, &mut |_| Err("no objects here".to_owned()))
            .map_err(bad_input)?;
        jobs::complete(rt, lease, &result)?;
        return Ok(rt.image().view(|tx| jobs::get(tx, &lease.job))?);
    }
    let request = synthesis_request(&lease.payload)?;
    if !lease.steps.contains_key("method") {
        let understood = rt.view(|cx| cx.lookup(request.receiver, &request.selector))?.is_some();
        let made = if understood {
            Value::Text("understood already".into())
        } else {
            let _scope = crate::cause::Scope::enter(Some(cause.clone()));
            crate::execute::synthesize(kernel, &request, Some(cause), cancel)?;
            Value::Text("synthesised".into())
        };
        jobs::record_step(rt, lease, "method", &made)?;
    }
    let _scope = crate::cause::Scope::enter(Some(cause.clone()));
    finish(kernel, &lease.job, lease.attempt, None)
}

/// The local runner: until `stop`, leases jobs of `kinds` and runs them one at a time,
/// and returns expired leases to the queue. Woken by [`Kernel::wake_jobs`].
pub fn run_local(kernel: Arc<Kernel>, stop: Arc<AtomicBool>, kinds: &[&str]) {
    let holder = format!("{KERNEL_HOLDER}{}", std::process::id());
    while !stop.load(Ordering::SeqCst) {
        if let Err(e) = jobs::requeue_expired(kernel.runtime()) {
            tracing::warn!("cannot requeue expired jobs: {e}");
        }
        let leased = jobs::lease(kernel.runtime(), kinds, &holder, LOCAL_LEASE);
        match leased {
            Ok(Some(lease)) => {
                tracing::info!(job = %lease.job, attempt = lease.attempt, "running a job");
                match run_here(&kernel, &lease) {
                    Ok(job) => {
                        tracing::info!(job = %job.id, state = job.state.as_str(), "job finished")
                    }
                    Err(Failure(e)) if stop.load(Ordering::SeqCst) => {
                        // The kernel is stopping: the next awakening requeues the job.
                        tracing::info!(job = %lease.job, "job interrupted by the stop: {}", e.message);
                    }
                    Err(Failure(e)) => {
                        let retry = e.kind == "conflict" || e.kind == "storage";
                        if let Err(why) = jobs::fail(kernel.runtime(), &lease, &e.message, retry) {
                            tracing::warn!("job {}: cannot record its failure: {why}", lease.job);
                        }
                    }
                }
                continue;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!("cannot lease a job: {e}"),
        }
        kernel.wait_for_jobs(SWEEP_EVERY);
    }
}

/// The receiver's object id in a payload (for the snapshot a worker gets).
pub fn receiver_of(payload: &Value) -> Option<Oid> {
    match payload {
        Value::Map(m) => match m.get("receiver") {
            Some(Value::Object(o)) => Some(*o),
            _ => None,
        },
        _ => None,
    }
}
