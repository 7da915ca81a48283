//! `batos worker`: a synthesis worker on any machine that reaches the NATS server.
//!
//! It pulls one job at a time from the workers' consumer, rebuilds the job's receiver
//! from its snapshot in a scratch image of its own, runs the very cycle a kernel runs
//! (the mind the image chose, the sealed build, the audit, the proof), and publishes
//! what it proved — the method, its blobs, its skill and its cycle — for the kernel to
//! verify and install. While it works it reports progress (renewing the job's lease in
//! the image and its message's ack deadline in JetStream); it acks the job only once
//! its result is stored in JetStream. Killed at any point, its job is handed to another
//! worker (the same attempt, by JetStream's redelivery) or published again (the next
//! attempt, when the lease runs out); either way the kernel installs it once.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, AckKind};
use batos::image::Ref;
use batos::{ImageOptions, Oid, Value};
use batos_kernel::{bad_input, Failure, Kernel};
use batos_protocol::{Cause, Output};
use futures_util::StreamExt;
use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::wire::{self, JobMessage, Outcome, Progress, ResultMessage};

/// How often a working worker reports progress: well inside JetStream's ack wait and
/// the kernel's working lease, so two lost reports in a row lose nothing.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(3);

/// Runs a worker until SIGTERM or Ctrl-C (a job in hand is left to redelivery).
pub fn run(url: &str, name: Option<String>) -> Result<Output, Failure> {
    let name = name.unwrap_or_else(|| {
        let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
        format!("worker-{}-{}", host.trim(), std::process::id())
    });
    // Workers on one machine must not share a build folder: each gets its own, warm
    // across its jobs.
    let workspace = batos_kernel::workspace_dir().with_extension(format!("worker-{name}"));
    std::env::set_var("BATOS_WORKSPACE", &workspace);
    let servers = crate::servers(url)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("batos-worker")
        .build()
        .map_err(|e| bad_input(format!("cannot start the worker: {e}")))?;
    let done = AtomicU64::new(0);
    runtime.block_on(async {
        let client = crate::connect(&servers).await?;
        let js = jetstream::new(client.clone());
        tracing::info!(%name, "the worker is waiting for jobs");
        eprintln!("batos worker {name} pulling synthesis jobs from {url}");
        tokio::select! {
            r = work(&client, &js, &name, &done) => r,
            () = crate::stop_signal() => Ok(()),
        }
    })?;
    let done = done.load(Ordering::SeqCst);
    runtime.shutdown_timeout(Duration::from_millis(200));
    Ok(Output {
        text: format!("worker {name} stopped after {done} job(s)"),
        json: json!({ "worker": name, "jobs": done }),
    })
}

async fn work(
    client: &async_nats::Client,
    js: &jetstream::Context,
    name: &str,
    done: &AtomicU64,
) -> Result<(), Failure> {
    let scratch = Arc::new(Scratch::new()?);
    // The kernel makes the streams and the consumer; wait for them.
    let consumer: jetstream::consumer::PullConsumer = loop {
        let found = async {
            js.get_stream(wire::JOBS_STREAM)
                .await
                .map_err(|e| e.to_string())?
                .get_consumer(wire::WORKERS_CONSUMER)
                .await
                .map_err(|e| e.to_string())
        };
        match found.await {
            Ok(c) => break c,
            Err(e) => {
                tracing::info!("no jobs stream yet ({e}); a kernel served with --nats makes it");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    loop {
        let Some(mut batch) = crate::next_batch(&consumer, 1, Duration::from_secs(5), "jobs").await
        else {
            continue;
        };
        while let Some(message) = batch.next().await {
            let Ok(message) = message else { continue };
            let job: JobMessage = match rmp_serde::from_slice(&message.payload) {
                Ok(j) => j,
                Err(e) => {
                    tracing::warn!("a message on the jobs stream is not a job ({e}); dropped");
                    let _ = message.ack_with(AckKind::Term).await;
                    continue;
                }
            };
            tracing::info!(job = %job.job, attempt = job.attempt, "working");
            let reporter = {
                let (client, message_reply) = (client.clone(), message.reply.clone());
                let progress = Progress {
                    job: job.job.clone(),
                    attempt: job.attempt,
                    worker: name.to_owned(),
                };
                let subject = wire::progress_subject(&job.image);
                tokio::spawn(async move {
                    let bytes = rmp_serde::to_vec_named(&progress).unwrap_or_default();
                    loop {
                        tokio::time::sleep(PROGRESS_EVERY).await;
                        let _ = client.publish(subject.clone(), bytes.clone().into()).await;
                        if let Some(reply) = &message_reply {
                            // `+WPI`: work in progress, extend the ack deadline.
                            let _ = client.publish(reply.clone(), "+WPI".into()).await;
                        }
                    }
                })
            };
            let (image, id, attempt) = (job.image.clone(), job.job.clone(), job.attempt);
            let (worker, scratch) = (name.to_owned(), scratch.clone());
            let outcome = tokio::task::spawn_blocking(move || prove(&scratch, &job, &worker))
                .await
                .unwrap_or_else(|e| Outcome::Failed {
                    reason: format!("the worker panicked: {e}"),
                    retry: true,
                });
            reporter.abort();
            let result =
                ResultMessage { job: id.clone(), attempt, worker: name.to_owned(), outcome };
            match publish_result(js, &image, &result).await {
                Ok(()) => {
                    let _ = message.double_ack().await;
                    done.fetch_add(1, Ordering::SeqCst);
                    tracing::info!(job = %id, attempt, "result published");
                }
                Err(e) => {
                    // Not acked: JetStream hands the job to a worker again.
                    tracing::warn!(
                        "job {id}: cannot publish the result ({}); left for redelivery",
                        e.0.message
                    );
                    let _ = message.ack_with(AckKind::Nak(Some(Duration::from_secs(1)))).await;
                }
            }
        }
    }
}

async fn publish_result(
    js: &jetstream::Context,
    image: &str,
    result: &ResultMessage,
) -> Result<(), Failure> {
    let bytes = rmp_serde::to_vec_named(result)
        .map_err(|e| bad_input(format!("cannot encode a result: {e}")))?;
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(
        "Nats-Msg-Id",
        format!("{image}-{}-a{}-result", result.job, result.attempt).as_str(),
    );
    let nats = |e: &dyn std::fmt::Display| bad_input(format!("NATS: {e}"));
    js.publish_with_headers(wire::result_subject(image), headers, bytes.into())
        .await
        .map_err(|e| nats(&e))?
        .await
        .map_err(|e| nats(&e))?;
    Ok(())
}

/// The worker's scratch images, one per image it works for, kept for the worker's
/// life: opened once, and the mind's weights adopted into each once, not per job. Each
/// job's receiver is made afresh in it; what earlier jobs for the same image left (their
/// methods, skills and cycles) stays, and is offered to later cycles as worked examples.
/// Jobs of different images never share one.
pub struct Scratch {
    dir: tempfile::TempDir,
    /// An exclusive `flock` on `<dir>/OWNER` for the worker's life: the kernel frees it
    /// however the worker ends, so a folder whose `OWNER` can be locked was abandoned.
    _owner: std::fs::File,
    images: Mutex<HashMap<String, Arc<Kernel>>>,
}

/// Scratch folders are `<temp>/batos-worker-*`.
const SCRATCH_PREFIX: &str = "batos-worker-";

/// The lock file that says a scratch folder's worker is alive.
const OWNER: &str = "OWNER";

impl Scratch {
    /// A fresh set in the system's temporary folder (`TMPDIR`), removed when the worker
    /// ends; first, the folders of workers that were killed there (a SIGKILL, a crash)
    /// are removed, since nothing else ever would.
    pub fn new() -> Result<Scratch, Failure> {
        let temp = std::env::temp_dir();
        let swept = sweep_abandoned(&temp);
        if swept > 0 {
            tracing::info!(swept, "removed scratch folders of workers that were killed");
        }
        let failed =
            |e: std::io::Error| bad_input(format!("no scratch folder for the worker: {e}"));
        let dir =
            tempfile::Builder::new().prefix(SCRATCH_PREFIX).tempdir_in(&temp).map_err(failed)?;
        // Locked under another name, then renamed: a sweep never sees an unlocked OWNER
        // of a worker that is starting. The lock is on the file, so it survives the rename.
        let staging = dir.path().join(format!("{OWNER}.partial"));
        let owner = std::fs::File::create(&staging).map_err(failed)?;
        owner.lock().map_err(failed)?;
        std::fs::rename(&staging, dir.path().join(OWNER)).map_err(failed)?;
        Ok(Scratch { dir, _owner: owner, images: Mutex::new(HashMap::new()) })
    }

    /// The scratch image for jobs of `image`.
    fn kernel(&self, image: &str) -> Result<Arc<Kernel>, Failure> {
        let mut images = self.images.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(k) = images.get(image) {
            return Ok(k.clone());
        }
        // The id came over the wire: it names a folder only if it is plain.
        if image.is_empty() || !image.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(bad_input(format!("`{image}` is not an image id")));
        }
        let kernel = Arc::new(Kernel::open(&self.dir.path().join(image), ImageOptions::default())?);
        images.insert(image.to_owned(), kernel.clone());
        Ok(kernel)
    }
}

/// Removes every scratch folder in `temp` whose `OWNER` lock is free (its worker is
/// gone); answers how many. A folder without an `OWNER` (a worker between creating it
/// and locking, or an older worker's) is left alone.
fn sweep_abandoned(temp: &std::path::Path) -> usize {
    let mut swept = 0;
    for entry in std::fs::read_dir(temp).into_iter().flatten().flatten() {
        if !entry.file_name().to_string_lossy().starts_with(SCRATCH_PREFIX) {
            continue;
        }
        let Ok(owner) = std::fs::File::open(entry.path().join(OWNER)) else { continue };
        // Holding the lock while removing: a worker cannot take the folder meanwhile.
        if owner.try_lock().is_ok() && std::fs::remove_dir_all(entry.path()).is_ok() {
            swept += 1;
        }
    }
    swept
}

/// Runs the job's cycle on a scratch image (see the module's doc).
pub fn prove(scratch: &Scratch, job: &JobMessage, worker: &str) -> Outcome {
    match prove_or_fail(scratch, job, worker) {
        Ok(outcome) => outcome,
        Err(Failure(e)) => {
            // The work's own failures are final; the worker's (its disk, its mind's
            // server) are worth another attempt elsewhere.
            let retry =
                matches!(e.kind.as_str(), "io" | "storage" | "mind_unavailable" | "internal");
            Outcome::Failed { reason: e.message, retry }
        }
    }
}

fn prove_or_fail(scratch: &Scratch, job: &JobMessage, worker: &str) -> Result<Outcome, Failure> {
    let kernel = scratch.kernel(&job.image)?;
    let rt = kernel.runtime();
    let oids = rebuild(&kernel, job)?;
    // The skill recorded for the receiver is this job's (its oid is new).
    let receiver = oids[0];
    let at = |o: Oid| oids.get(o.0 as usize).copied();
    let request = batos::synthesis::Request {
        receiver,
        selector: job.selector.clone(),
        args: job.args.iter().map(|a| wire::remap(a, &at).unwrap_or(Value::Nil)).collect(),
        brief: job.brief.clone(),
        examples: job
            .examples
            .iter()
            .map(|e| batos::synthesis::Example::parse(e))
            .collect::<Result<Vec<_>, _>>()
            .map_err(bad_input)?,
        stateful: job.stateful,
        language: if job.language == "wat" {
            batos::synthesis::Language::Wat
        } else {
            batos::synthesis::Language::Rust
        },
        grants: job.grants.clone(),
    };
    if rt.view(|cx| cx.lookup(receiver, &job.selector))?.is_some() {
        return Ok(Outcome::Understood);
    }
    let cause = Cause { session: worker.to_owned(), id: format!("{}-a{}", job.job, job.attempt) };
    kernel.synthesize(&request, Some(cause))?;
    rt.image()
        .view(|tx| {
            let method = tx.slot(receiver, &job.selector)?.unwrap_or(Value::Nil);
            let skills = tx.root(batos::synthesis::skills::SKILLS_ROOT)?;
            let skill = match skills
                .map(|s| tx.slot(s, &format!("{}@{receiver}", job.selector)))
                .transpose()?
                .flatten()
            {
                Some(Value::Map(m)) => m,
                _ => BTreeMap::new(),
            };
            let cycle = match tx.root(batos::synthesis::cycle::CYCLES_ROOT)? {
                Some(reg) => match batos::runtime::numbered_entries(tx, reg, "c")?.last() {
                    Some((_, oid)) => tx.slots(*oid)?,
                    None => BTreeMap::new(),
                },
                None => BTreeMap::new(),
            };
            let mut blobs = Vec::new();
            let mut refs = Vec::new();
            let mut collect = |v: &Value| {
                v.visit_refs(&mut |r| {
                    if let Ref::Blob(b) = r {
                        refs.push(b)
                    }
                })
            };
            collect(&method);
            skill.values().for_each(&mut collect);
            cycle.values().for_each(&mut collect);
            for blob in refs {
                blobs.push(tx.image().blobs().read(&blob)?);
            }
            Ok(Outcome::Proven { method, blobs, skill, cycle })
        })
        .map_err(Failure::from)
}

/// Re-makes the snapshot's objects in the scratch image; answers their oids there, in
/// the snapshot's order.
fn rebuild(kernel: &Kernel, job: &JobMessage) -> Result<Vec<Oid>, Failure> {
    let rt = kernel.runtime();
    let committed = rt.transact("rebuild a job's receiver", |cx| {
        let tx = cx.tx_mut("rebuild a snapshot")?;
        for bytes in &job.snapshot.blobs {
            tx.put_blob(bytes)?;
        }
        let traits: Vec<Oid> = tx.root(batos::runtime::PRIMORDIAL_TRAITS)?.into_iter().collect();
        let mut oids = Vec::new();
        for _ in &job.snapshot.objects {
            oids.push(tx.create_object(&traits)?);
        }
        for (i, object) in job.snapshot.objects.iter().enumerate() {
            let parents: Vec<Oid> = object
                .parents
                .iter()
                .flat_map(|p| match p {
                    Some(index) => oids.get(*index).copied().into_iter().collect::<Vec<_>>(),
                    None => traits.clone(),
                })
                .collect();
            tx.set_parents(oids[i], &parents)?;
            for (name, value) in &object.slots {
                let at = |o: Oid| oids.get(o.0 as usize).copied();
                if let Some(v) = wire::remap(value, &at) {
                    tx.set_slot(oids[i], name, &v)?;
                }
            }
        }
        if let Some(pllm) = tx.root(batos::runtime::PRIMORDIAL_PLLM)? {
            for (name, value) in &job.mind {
                tx.set_slot(pllm, name, value)?;
            }
        }
        Ok(oids)
    })?;
    Ok(committed.value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch_folder(temp: &std::path::Path, name: &str, owner: bool) -> std::path::PathBuf {
        let dir = temp.join(format!("{SCRATCH_PREFIX}{name}"));
        std::fs::create_dir_all(dir.join("image")).expect("folder");
        if owner {
            std::fs::write(dir.join(OWNER), b"").expect("owner");
        }
        dir
    }

    /// Only a folder whose worker is gone goes: one with its `OWNER` locked stays, as do
    /// one without an `OWNER` and folders that are not scratch at all.
    #[test]
    fn the_sweep_removes_only_abandoned_scratch() {
        let temp = tempfile::tempdir().expect("tempdir");
        let abandoned = scratch_folder(temp.path(), "dead", true);
        let alive = scratch_folder(temp.path(), "alive", true);
        let held = std::fs::File::open(alive.join(OWNER)).expect("open");
        held.lock().expect("lock");
        let starting = scratch_folder(temp.path(), "starting", false);
        let other = temp.path().join("not-ours");
        std::fs::create_dir_all(&other).expect("folder");
        std::fs::write(other.join(OWNER), b"").expect("owner");

        assert_eq!(sweep_abandoned(temp.path()), 1);
        assert!(!abandoned.exists());
        assert!(alive.join("image").is_dir() && starting.is_dir() && other.is_dir());
        drop(held);
        assert_eq!(sweep_abandoned(temp.path()), 1, "its worker gone, it goes too");
        assert!(!alive.exists());
    }
}
