//! The kernel's side of the workers: leases synthesis jobs, publishes each with a
//! snapshot of its receiver on a JetStream work queue, renews leases on the workers'
//! progress, and verifies and installs what they prove.
//!
//! The image stays the only source of truth. A job is published once per attempt,
//! with the deduplication id `IMAGE-JOB-aATTEMPT` (JetStream drops a second publish of
//! it within its window); a result counts only if its attempt is current when the
//! kernel commits it, in the same transaction as the install and the message's answer
//! ([`batos_kernel::jobs::finish`]). Whatever the transport loses — a server that dies
//! with the only copy, a worker killed after its last progress — ends as a lease that
//! runs out, and the job is published again as its next attempt.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream, AckKind};
use batos::image::Ref;
use batos::runtime::jobs;
use batos::Value;
use batos_kernel::jobs::{RemoteInstall, SYNTHESIS};
use batos_kernel::{bad_input, Failure, Kernel};
use futures_util::StreamExt;

use crate::wire::{self, JobMessage, Outcome, Progress, ResultMessage};

/// A dispatched job's lease until a worker reports progress: long, since it waits in
/// the queue for a free worker; a lease that runs out re-publishes the job.
pub const QUEUED_LEASE: Duration = Duration::from_secs(600);
/// A job's lease after each progress report: a few missed reports (every
/// [`crate::worker::PROGRESS_EVERY`]) before the kernel gives the job to another.
pub const WORKING_LEASE: Duration = Duration::from_secs(30);
/// How long JetStream waits for a worker's ack before handing its message to another
/// worker (progress reports extend it).
pub const ACK_WAIT: Duration = Duration::from_secs(15);
/// How long JetStream remembers a deduplication id.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(600);

/// The holder name of jobs dispatched to workers.
pub const NATS_HOLDER: &str = "nats:";

/// A running dispatcher; stops when dropped.
pub struct Dispatcher {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Dispatcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The id of this image on the wire, made once and kept in the image.
pub fn image_id(kernel: &Kernel) -> Result<String, Failure> {
    const KEY: &str = "ops/image-id";
    let image = kernel.runtime().image();
    if let Some(kept) = image.aux_get(KEY)? {
        if let Ok(id) = String::from_utf8(kept) {
            return Ok(id);
        }
    }
    let id = format!("{:016x}", rand_id());
    image.aux_put(KEY, id.as_bytes())?;
    Ok(id)
}

fn rand_id() -> u64 {
    rand::random()
}

/// Connects to `url` (comma-separated for a cluster), making the streams if need be
/// (replicated on up to three servers when several are named), and dispatches until
/// the returned value is dropped.
pub fn start(kernel: Arc<Kernel>, url: &str) -> Result<Dispatcher, Failure> {
    let image = image_id(&kernel)?;
    let servers = crate::servers(url)?;
    let replicas = servers.len().clamp(1, 3);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("batos-dispatch")
        .build()
        .map_err(|e| bad_input(format!("cannot start the dispatcher: {e}")))?;
    let stop = Arc::new(AtomicBool::new(false));
    let thread = {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("batos-dispatch".into())
            .spawn(move || {
                runtime.block_on(async move {
                    // The kernel serves whether or not NATS is up: jobs wait in the
                    // image until the streams can be reached (a cluster elects its
                    // JetStream leader some seconds after it starts).
                    let client = match crate::connect(&servers).await {
                        Ok(c) => c,
                        Err(Failure(e)) => {
                            tracing::error!("{}; no jobs are dispatched", e.message);
                            return;
                        }
                    };
                    let js = jetstream::new(client.clone());
                    loop {
                        match ensure_streams(&js, replicas).await {
                            Ok(()) => break,
                            Err(Failure(e)) if !stop.load(Ordering::SeqCst) => {
                                tracing::warn!("{}; trying again", e.message);
                                tokio::time::sleep(Duration::from_secs(1)).await;
                            }
                            Err(_) => return,
                        }
                    }
                    tracing::info!("dispatching synthesis jobs to workers over NATS");
                    let a = tokio::spawn(publish_jobs(
                        kernel.clone(),
                        js.clone(),
                        image.clone(),
                        stop.clone(),
                    ));
                    let b =
                        tokio::spawn(take_results(kernel.clone(), js, image.clone(), stop.clone()));
                    let c = tokio::spawn(take_progress(kernel, client, image, stop));
                    let _ = tokio::join!(a, b, c);
                });
            })
            .map_err(|e| bad_input(format!("cannot start the dispatcher: {e}")))?
    };
    Ok(Dispatcher { stop, thread: Some(thread) })
}

/// The two work queues and the workers' consumer, made if absent.
pub async fn ensure_streams(js: &jetstream::Context, replicas: usize) -> Result<(), Failure> {
    let nats =
        |what: &str, e: &dyn std::fmt::Display| bad_input(format!("NATS: cannot {what}: {e}"));
    for (name, subjects) in
        [(wire::JOBS_STREAM, "batos.jobs.>"), (wire::RESULTS_STREAM, "batos.results.>")]
    {
        js.get_or_create_stream(stream::Config {
            name: name.to_owned(),
            subjects: vec![subjects.to_owned()],
            retention: stream::RetentionPolicy::WorkQueue,
            storage: stream::StorageType::File,
            num_replicas: replicas,
            duplicate_window: DUPLICATE_WINDOW,
            ..Default::default()
        })
        .await
        .map_err(|e| nats(&format!("make the stream {name}"), &e))?;
    }
    let jobs =
        js.get_stream(wire::JOBS_STREAM).await.map_err(|e| nats("read the jobs stream", &e))?;
    jobs.get_or_create_consumer(
        wire::WORKERS_CONSUMER,
        consumer::pull::Config {
            durable_name: Some(wire::WORKERS_CONSUMER.to_owned()),
            ack_wait: ACK_WAIT,
            max_deliver: -1,
            ..Default::default()
        },
    )
    .await
    .map_err(|e| nats("make the workers' consumer", &e))?;
    Ok(())
}

async fn publish_jobs(
    kernel: Arc<Kernel>,
    js: jetstream::Context,
    image: String,
    stop: Arc<AtomicBool>,
) {
    let holder = format!("{NATS_HOLDER}{image}");
    while !stop.load(Ordering::SeqCst) {
        let rt = kernel.runtime();
        if let Err(e) = jobs::requeue_expired(rt) {
            tracing::warn!("cannot requeue expired jobs: {e}");
        }
        match jobs::lease(rt, &[SYNTHESIS], &holder, QUEUED_LEASE) {
            Ok(Some(lease)) => {
                publish_until_taken(&kernel, &js, &image, &lease, &stop).await;
                continue;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!("cannot lease a job: {e}"),
        }
        let waiting = kernel.clone();
        let _ =
            tokio::task::spawn_blocking(move || waiting.wait_for_jobs(Duration::from_millis(500)))
                .await;
    }
}

/// Publishes one attempt until JetStream takes it: a cluster that lost a server answers
/// nothing until it elects a new leader, and waiting out the whole queued lease for
/// that would stall the job for minutes. Each retry renews the lease and carries the
/// same deduplication id, so a publish that did land but whose answer was lost is not
/// queued twice. It gives up when the attempt is no longer current (the job was
/// cancelled or requeued meanwhile) or the dispatcher stops. A job that cannot be
/// made into a message (a receiver too big to send, say) fails instead: no retry
/// cures that.
async fn publish_until_taken(
    kernel: &Arc<Kernel>,
    js: &jetstream::Context,
    image: &str,
    lease: &jobs::Lease,
    stop: &AtomicBool,
) {
    let bytes = match job_message(kernel, image, lease) {
        Ok(bytes) => bytes,
        Err(Failure(e)) => {
            let retry = matches!(e.kind.as_str(), "conflict" | "storage" | "io");
            tracing::warn!(job = %lease.job, "cannot be sent to the workers: {}", e.message);
            let reason = format!("cannot be sent to the workers: {}", e.message);
            if let Err(e) =
                jobs::fail_attempt(kernel.runtime(), &lease.job, lease.attempt, &reason, retry)
            {
                tracing::warn!(job = %lease.job, "cannot record that: {e}");
            }
            return;
        }
    };
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", format!("{image}-{}-a{}", lease.job, lease.attempt).as_str());
    loop {
        let sent = async {
            js.publish_with_headers(wire::job_subject(image), headers.clone(), bytes.clone().into())
                .await
                .map_err(|e| e.to_string())?
                .await
                .map_err(|e| e.to_string())
        };
        let failure = match sent.await {
            Ok(_) => {
                tracing::info!(job = %lease.job, attempt = lease.attempt, "published to the workers");
                return;
            }
            Err(e) => e,
        };
        if stop.load(Ordering::SeqCst) {
            return;
        }
        tracing::warn!(job = %lease.job, "NATS did not take it yet ({failure}); trying again");
        tokio::time::sleep(PUBLISH_RETRY).await;
        let renewing = kernel.clone();
        let (id, attempt) = (lease.job.clone(), lease.attempt);
        let renewed = tokio::task::spawn_blocking(move || {
            jobs::renew_attempt(renewing.runtime(), &id, attempt, QUEUED_LEASE)
        })
        .await;
        if !matches!(renewed, Ok(Ok(_))) {
            tracing::info!(job = %lease.job, attempt = lease.attempt, "no longer current; not published");
            return;
        }
    }
}

/// How long the dispatcher waits between tries to publish a job NATS did not take.
const PUBLISH_RETRY: Duration = Duration::from_secs(1);

/// The job's message: its request, its receiver's snapshot and the mind's settings.
fn job_message(kernel: &Kernel, image: &str, lease: &jobs::Lease) -> Result<Vec<u8>, Failure> {
    let rt = kernel.runtime();
    let request = batos_kernel::jobs::synthesis_request(&lease.payload)?;
    let snapshot = wire::snapshot(rt, request.receiver)?;
    let mind = rt.image().view(|tx| {
        let Some(pllm) = tx.root(batos::runtime::PRIMORDIAL_PLLM)? else {
            return Ok(Default::default());
        };
        Ok(tx
            .slots(pllm)?
            .into_iter()
            .filter(|(_, v)| !matches!(v, Value::Method(_) | Value::Object(_)))
            .collect())
    })?;
    let index = |o| (o == request.receiver).then_some(batos::Oid(0));
    let message = JobMessage {
        image: image.to_owned(),
        job: lease.job.clone(),
        attempt: lease.attempt,
        selector: request.selector.clone(),
        args: request.args.iter().map(|a| wire::remap(a, &index).unwrap_or(Value::Nil)).collect(),
        brief: request.brief.clone(),
        examples: batos_kernel::jobs::payload_texts(&lease.payload, "examples"),
        stateful: request.stateful,
        grants: request.grants.clone(),
        language: match request.language {
            batos::synthesis::Language::Wat => "wat".into(),
            batos::synthesis::Language::Rust => "rust".into(),
        },
        snapshot,
        mind,
    };
    rmp_serde::to_vec_named(&message).map_err(|e| bad_input(format!("cannot encode the job: {e}")))
}

async fn take_results(
    kernel: Arc<Kernel>,
    js: jetstream::Context,
    image: String,
    stop: Arc<AtomicBool>,
) {
    let consumer = loop {
        let made = async {
            let results = js.get_stream(wire::RESULTS_STREAM).await.map_err(|e| e.to_string())?;
            results
                .get_or_create_consumer(
                    &format!("kernel-{image}"),
                    consumer::pull::Config {
                        durable_name: Some(format!("kernel-{image}")),
                        filter_subject: wire::result_subject(&image),
                        ack_wait: ACK_WAIT,
                        max_deliver: -1,
                        ..Default::default()
                    },
                )
                .await
                .map_err(|e| e.to_string())
        };
        match made.await {
            Ok(c) => break c,
            Err(e) if !stop.load(Ordering::SeqCst) => {
                tracing::warn!("NATS: cannot read results yet ({e}); trying again");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(_) => return,
        }
    };
    while !stop.load(Ordering::SeqCst) {
        let Some(mut batch) =
            crate::next_batch(&consumer, 16, Duration::from_millis(500), "results").await
        else {
            continue;
        };
        while let Some(message) = batch.next().await {
            let Ok(message) = message else { continue };
            let decoded: Result<ResultMessage, _> = rmp_serde::from_slice(&message.payload);
            let kernel = kernel.clone();
            let handled = match decoded {
                Ok(result) => tokio::task::spawn_blocking(move || accept(&kernel, result))
                    .await
                    .unwrap_or_else(|e| Err(bad_input(format!("panicked: {e}")))),
                Err(e) => Err(bad_input(format!("a result that is not one: {e}"))),
            };
            let ack = match handled {
                Err(Failure(e)) if matches!(e.kind.as_str(), "conflict" | "storage" | "io") => {
                    tracing::warn!("a result could not be recorded yet: {}", e.message);
                    AckKind::Nak(Some(Duration::from_millis(200)))
                }
                Err(Failure(e)) => {
                    tracing::warn!("a result was refused: {}", e.message);
                    AckKind::Ack
                }
                Ok(()) => AckKind::Ack,
            };
            let _ = message.ack_with(ack).await;
        }
    }
}

/// Checks a worker's result and commits it (see the module's doc).
pub fn accept(kernel: &Kernel, result: ResultMessage) -> Result<(), Failure> {
    let rt = kernel.runtime();
    let ResultMessage { job, attempt, worker, outcome } = result;
    match outcome {
        Outcome::Failed { reason, retry } => {
            jobs::fail_attempt(rt, &job, attempt, &format!("{worker}: {reason}"), retry)?;
            Ok(())
        }
        Outcome::Understood => {
            let finished = batos_kernel::jobs::finish(kernel, &job, attempt, None)?;
            tracing::info!(job = %job, state = finished.state.as_str(), "finished (understood already)");
            Ok(())
        }
        Outcome::Proven { method, blobs, skill, cycle } => {
            let payload = rt.image().view(|tx| jobs::fence(tx, &job, attempt))?.payload;
            let allowed = batos_kernel::jobs::synthesis_request(&payload)?.grants;
            let Value::Method(m) = &method else {
                return Err(bad_input(format!(
                    "{worker} answered job {job} with a {} for a method",
                    method.type_name()
                )));
            };
            let batos::Method::Component { component, grants, .. } = m.runnable() else {
                return Err(bad_input(format!(
                    "{worker} answered job {job} with a method that is not a component"
                )));
            };
            if let Some(extra) = grants.iter().find(|g| !allowed.contains(g)) {
                return Err(bad_input(format!("{worker}'s method for job {job} claims the grant `{extra}` the person did not allow")));
            }
            // Every blob referred to must be among those sent, and be what its hash says.
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
            for blob in &refs {
                let found = blobs.iter().any(|bytes| {
                    bytes.len() as u64 == blob.size && batos::BlobHash::of(bytes) == blob.hash
                });
                if !found {
                    return Err(bad_input(format!("{worker}'s result for job {job} lacks blob {} or it does not match its hash", blob.hash.to_hex())));
                }
            }
            let bytes = blobs
                .iter()
                .find(|b| batos::BlobHash::of(b) == component.hash)
                .ok_or_else(|| bad_input("the component is missing"))?;
            let parsed = batos::sandbox::gate::parse_grants(grants)
                .map_err(|reason| bad_input(format!("{worker}'s grants: {reason}")))?;
            kernel.sandbox().audit(bytes, &parsed, &format!("job {job}'s method from {worker}"))?;
            let remote = RemoteInstall { method, blobs, skill, cycle, worker: worker.clone() };
            let finished = batos_kernel::jobs::finish(kernel, &job, attempt, Some(&remote))?;
            tracing::info!(job = %job, %worker, state = finished.state.as_str(), "installed a worker's method");
            Ok(())
        }
    }
}

async fn take_progress(
    kernel: Arc<Kernel>,
    client: async_nats::Client,
    image: String,
    stop: Arc<AtomicBool>,
) {
    let Ok(mut reports) = client.subscribe(wire::progress_subject(&image)).await else {
        tracing::warn!("NATS: cannot hear progress; leases run their full length");
        return;
    };
    while !stop.load(Ordering::SeqCst) {
        let Ok(Some(report)) =
            tokio::time::timeout(Duration::from_millis(500), reports.next()).await
        else {
            continue;
        };
        let Ok(progress) = rmp_serde::from_slice::<Progress>(&report.payload) else { continue };
        let kernel = kernel.clone();
        let _ = tokio::task::spawn_blocking(move || {
            if let Err(e) = jobs::renew_attempt(
                kernel.runtime(),
                &progress.job,
                progress.attempt,
                WORKING_LEASE,
            ) {
                tracing::debug!("progress of {} refused: {e}", progress.worker);
            }
        })
        .await;
    }
}
