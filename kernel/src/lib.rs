//! The batos kernel: the one process that owns an image, and the one executor of
//! requests.
//!
//! [`Kernel`] opens an image with everything a person's work needs (the sandbox, the
//! minds, cycle recovery) and executes [`batos_protocol::Request`]s with a person's
//! full authority, publishing what they cause to its [`events::EventLog`]. The
//! command line executes its commands through a `Kernel` of its own when no kernel
//! serves the image, and through the bridge when one does, so both paths answer the
//! same [`batos_protocol::Output`]. [`serve`] puts a kernel on the Synaptic Bridge
//! (`batos serve`).
//!
//! This crate narrows its dependencies to the `batos` facade (the image, runtime,
//! sandbox, mind and synthesis), the protocol crate, and axum on tokio for the bridge.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use batos::sandbox::{Limits, Sandbox};
use batos::{ImageOptions, Runtime};
use batos_protocol::{Cause, ErrorBody, Event, Output, Request};

mod browse;
pub mod events;
mod execute;
pub mod heartbeat;
pub mod jobs;
pub mod render;
pub mod serve;
pub mod ui;
pub mod upgrade;

pub use serve::{serve, serve_until, ServeOptions, Served};

/// A failed request: the protocol's error body, made from the image's errors.
#[derive(Clone, Debug, PartialEq)]
pub struct Failure(pub ErrorBody);

impl From<batos::Error> for Failure {
    fn from(e: batos::Error) -> Self {
        let mut message = e.to_string();
        match &e {
            batos::Error::NeedsExample { .. } => message.push_str(
                ": send it again with --example 'ARGS => RESULT' (e.g. --example '10 => 55')",
            ),
            batos::Error::NeedsGrant { grants, .. } => message.push_str(&format!(
                ": send it again with {}",
                grants.iter().map(|g| format!("--grant {g}")).collect::<Vec<_>>().join(" ")
            )),
            _ => {}
        }
        let grants = match &e {
            batos::Error::NeedsGrant { grants, .. } => grants.clone(),
            _ => Vec::new(),
        };
        Failure(ErrorBody {
            kind: e.kind().to_owned(),
            what: e.subject().map(str::to_owned),
            message,
            grants,
        })
    }
}

/// A `bad_input` failure saying `message`.
pub fn bad_input(message: impl Into<String>) -> Failure {
    Failure(ErrorBody::new("bad_input", message))
}

/// Where candidates are built: one warm workspace for every image of this user
/// (`$BATOS_WORKSPACE`, else `~/.cache/batos/synthesis`).
pub fn workspace_dir() -> PathBuf {
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    std::env::var_os("BATOS_WORKSPACE")
        .map_or_else(|| home.join(".cache").join("batos").join("synthesis"), PathBuf::from)
}

/// The minds of this process (the backends and every model loaded), shared by every
/// kernel in it.
pub fn minds() -> &'static batos::mind::Minds {
    static MINDS: std::sync::OnceLock<batos::mind::Minds> = std::sync::OnceLock::new();
    MINDS.get_or_init(batos::minds)
}

/// The memory of this process (its embedding model, loaded on first use, and the
/// vector index of each image), shared by every kernel in it.
pub fn memory() -> &'static Arc<batos::memory::Memory> {
    static MEMORY: std::sync::OnceLock<Arc<batos::memory::Memory>> = std::sync::OnceLock::new();
    MEMORY.get_or_init(batos::memory)
}

/// An open image and what it takes to do a person's work on it.
pub struct Kernel {
    runtime: Arc<Runtime>,
    sandbox: Arc<Sandbox>,
    events: Arc<events::EventLog>,
    /// The cancel flags of running requests, by cause.
    running: Mutex<Vec<(Cause, Arc<AtomicBool>)>>,
    /// Whether an `awaken` request has been answered.
    awakened: AtomicBool,
    /// Set when a job is enqueued; the job runner waits on it.
    jobs_queued: (Mutex<bool>, std::sync::Condvar),
    /// Where an `upgrade` request is handed to the serving loop, while one serves.
    upgrades: Mutex<Option<std::sync::mpsc::Sender<upgrade::Asked>>>,
}

impl Kernel {
    /// Opens (or creates) the image in `dir`, holding its lock, and marks cycles a dead
    /// process left unfinished as FAILED.
    pub fn open(dir: &Path, options: ImageOptions) -> Result<Kernel, Failure> {
        let sandbox = Arc::new(Sandbox::new(Limits::default())?);
        let runtime = Arc::new(
            batos::composite::attach(memory().attach(minds().attach(Runtime::builder())))
                .image_options(options)
                .component_runner(sandbox.clone())
                .open(dir)?,
        );
        let events = Arc::new(events::EventLog::open(&runtime));
        let observer = Arc::downgrade(&events);
        runtime.image().observe_commits(Box::new(move |notice| {
            cause::note_commit(notice.tx.0);
            if let Some(events) = observer.upgrade() {
                let mut changes = std::collections::BTreeMap::<String, Vec<String>>::new();
                for (oid, slot) in &notice.slots {
                    changes.entry(oid.to_string()).or_default().push(slot.clone());
                }
                for oid in &notice.objects {
                    changes.entry(oid.to_string()).or_default();
                }
                events.publish(
                    cause::current(),
                    Event::Transaction {
                        tx: notice.tx.0,
                        description: notice.description.clone(),
                        changes,
                    },
                );
            }
        }));
        let observer = Arc::downgrade(&events);
        sandbox.observe_logs(Box::new(move |capability, level, message| {
            if let Some(events) = observer.upgrade() {
                events.publish(
                    cause::current(),
                    Event::Log {
                        capability: capability.to_owned(),
                        level: level.to_owned(),
                        message: message.to_owned(),
                    },
                );
            }
        }));
        // A cycle a killed process left mid-way is marked FAILED at the next awakening.
        // An image awakened before the memory existed gets its objects now.
        memory().prepare(&runtime)?;
        batos::composite::prepare(&runtime)?;
        for id in batos::synthesis::cycle::recover(&runtime)? {
            tracing::warn!("cycle {id} was interrupted by the end of its process; marked FAILED");
        }
        // Jobs a dead kernel of this image held, and leases that ran out while nobody
        // watched, go back to the queue.
        let mut requeued = batos::runtime::jobs::requeue_held_by(&runtime, jobs::KERNEL_HOLDER)?;
        requeued.extend(batos::runtime::jobs::requeue_expired(&runtime)?);
        if !requeued.is_empty() {
            tracing::info!(
                "jobs {} were left running by an earlier process; queued again",
                requeued.join(", ")
            );
        }
        Ok(Kernel {
            runtime,
            sandbox,
            events,
            running: Mutex::new(Vec::new()),
            awakened: AtomicBool::new(false),
            jobs_queued: (Mutex::new(false), std::sync::Condvar::new()),
            upgrades: Mutex::new(None),
        })
    }

    /// The runtime (for embedders and tests that look inside).
    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// The sandbox that runs components.
    pub fn sandbox(&self) -> &Arc<Sandbox> {
        &self.sandbox
    }

    /// The event log.
    pub fn events(&self) -> &Arc<events::EventLog> {
        &self.events
    }

    /// Executes `request` with a person's full authority. Every event it causes —
    /// transactions committed on this thread, cycle transitions, plugin changes, model
    /// progress — is published with `cause`.
    pub fn execute(&self, request: Request, cause: Option<Cause>) -> Result<Output, Failure> {
        let cancel = Arc::new(AtomicBool::new(false));
        if let Some(c) = &cause {
            self.running_list().push((c.clone(), cancel.clone()));
        }
        let _scope = cause::Scope::enter(cause.clone());
        let result = execute::execute(self, request, cause.as_ref(), &cancel);
        if let Some(c) = &cause {
            self.running_list().retain(|(r, _)| r != c);
        }
        result
    }

    /// Whether `request` only touches the image and so ends within microseconds to
    /// milliseconds: reads, writes, history, listings, and a send answered by a data
    /// slot. Not a send that runs a method (a plugin may run for its deadline, a
    /// primitive may ask the mind) or that nothing understands (a synthesis cycle), nor
    /// plugin installs, packs, model pulls or translations. The bridge runs these on the
    /// connection's own task instead of handing them to a worker thread.
    pub fn runs_briefly(&self, request: &Request) -> bool {
        match request {
            Request::Awaken
            | Request::Roots
            | Request::Inspect { .. }
            | Request::Set { .. }
            | Request::Clone { .. }
            | Request::History { .. }
            | Request::Undo { .. }
            | Request::Cycles
            | Request::Cycle { .. }
            | Request::PluginList
            | Request::PluginStats
            | Request::ModelList
            | Request::Objects
            | Request::Journal { .. }
            | Request::Layout
            | Request::Place { .. }
            | Request::Enqueue { .. }
            | Request::Jobs { .. } => true,
            Request::Send { object, selector, .. } => {
                let Ok(receiver) = self.runtime.resolve(object) else { return true };
                matches!(
                    self.runtime.view(|cx| cx.lookup(receiver, selector)),
                    Ok(Some((_, value))) if !matches!(value, batos::Value::Method(_))
                )
            }
            Request::Pack { .. }
            | Request::PluginAdd { .. }
            | Request::PluginRemove { .. }
            | Request::PluginSync
            | Request::ModelPull { .. }
            | Request::Translate { .. }
            // Both run the embedding model.
            | Request::Ingest { .. }
            | Request::Search { .. }
            | Request::Compress
            // The personas think; the metric embeds.
            | Request::Chat { .. }
            | Request::Cem { .. }
            // A component's audit compiles it.
            | Request::Resolve { .. }
            // Waits for the new binary's checks.
            | Request::Upgrade { .. } => false,
        }
    }

    /// Asks the request `target` to stop; answers whether it was running. A synthesis
    /// cycle stops before its next step, failed and recorded.
    pub fn cancel(&self, target: &Cause) -> bool {
        let running = self.running_list();
        let found = running.iter().filter(|(c, _)| c == target).count() > 0;
        for (_, flag) in running.iter().filter(|(c, _)| c == target) {
            flag.store(true, Ordering::SeqCst);
        }
        found
    }

    /// Asks every running request to stop (the kernel is stopping).
    pub fn cancel_all(&self) {
        for (_, flag) in self.running_list().iter() {
            flag.store(true, Ordering::SeqCst);
        }
    }

    /// How many requests are executing.
    pub fn in_flight(&self) -> usize {
        self.running_list().len()
    }

    /// Tells subscribers what a sync of the drop-in folder installed and removed.
    pub fn publish_sync(&self, report: &batos::sandbox::watch::SyncReport) {
        let installed = batos::sandbox::plugin::list(&self.runtime).unwrap_or_default();
        for (change, names) in [("installed", &report.installed), ("removed", &report.removed)] {
            for name in names {
                let p = installed.iter().find(|p| &p.name == name);
                let target = p
                    .and_then(|p| self.runtime.resolve(&p.target).ok())
                    .map(|o| o.to_string())
                    .unwrap_or_default();
                self.events.publish(
                    None,
                    Event::Plugin {
                        change: change.into(),
                        name: name.clone(),
                        target,
                        selector: p.map(|p| p.selector.clone()).unwrap_or_default(),
                    },
                );
            }
        }
    }

    /// Makes the request's receiver understand its selector — synthesising and
    /// installing the method unless something answers it already — without sending
    /// it; the cycle's events are published with `cause`. A job's first step, and a
    /// worker's whole work.
    pub fn synthesize(
        &self,
        request: &batos::synthesis::Request,
        cause: Option<Cause>,
    ) -> Result<(), Failure> {
        let cancel = Arc::new(AtomicBool::new(false));
        if let Some(c) = &cause {
            self.running_list().push((c.clone(), cancel.clone()));
        }
        let _scope = cause::Scope::enter(cause.clone());
        let result = execute::synthesize(self, request, cause.as_ref(), &cancel);
        if let Some(c) = &cause {
            self.running_list().retain(|(r, _)| r != c);
        }
        result
    }

    /// Whether this kernel serves the bridge now (and so runs its jobs).
    pub fn serving(&self) -> bool {
        self.upgrades.lock().unwrap_or_else(std::sync::PoisonError::into_inner).is_some()
    }

    /// Tells the job runner a job was queued.
    pub fn wake_jobs(&self) {
        let (queued, signal) = &self.jobs_queued;
        *queued.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = true;
        signal.notify_all();
    }

    /// Waits until a job is queued or `at_most` passes.
    pub fn wait_for_jobs(&self, at_most: std::time::Duration) {
        let (queued, signal) = &self.jobs_queued;
        let guard = queued.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (mut guard, _) = signal
            .wait_timeout_while(guard, at_most, |queued| !*queued)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *guard = false;
    }

    /// Saves the advisory statistics (plugin calls and fuel).
    pub fn flush(&self) {
        // Advisory: a failure to save them must not fail anything.
        let _ = self.sandbox.flush_stats(self.runtime.image());
    }

    pub(crate) fn running_list(&self) -> std::sync::MutexGuard<'_, Vec<(Cause, Arc<AtomicBool>)>> {
        self.running.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Drop for Kernel {
    fn drop(&mut self) {
        self.flush();
    }
}

/// The request a thread is executing, so that a commit on that thread is told as
/// caused by it; and the transactions a thread commits, for whoever collects them (the
/// heartbeat records what each act committed).
pub(crate) mod cause {
    use std::cell::RefCell;

    use batos_protocol::Cause;

    thread_local! {
        static CURRENT: RefCell<Option<Cause>> = const { RefCell::new(None) };
        static COMMITTED: RefCell<Option<Vec<u64>>> = const { RefCell::new(None) };
    }

    /// Tells a collector on this thread, if any, that transaction `tx` committed.
    pub fn note_commit(tx: u64) {
        COMMITTED.with(|c| {
            if let Some(list) = c.borrow_mut().as_mut() {
                list.push(tx);
            }
        });
    }

    /// Collects the transactions this thread commits until [`Collect::finish`].
    pub struct Collect(Option<Vec<u64>>);

    impl Collect {
        pub fn start() -> Collect {
            Collect(COMMITTED.with(|c| c.replace(Some(Vec::new()))))
        }

        pub fn finish(mut self) -> Vec<u64> {
            let previous = self.0.take();
            COMMITTED.with(|c| c.replace(previous)).unwrap_or_default()
        }
    }

    /// The cause of the work on this thread.
    pub fn current() -> Option<Cause> {
        CURRENT.with(|c| c.borrow().clone())
    }

    /// Sets this thread's cause until dropped.
    pub struct Scope(Option<Cause>);

    impl Scope {
        pub fn enter(cause: Option<Cause>) -> Scope {
            Scope(CURRENT.with(|c| c.replace(cause)))
        }
    }

    impl Drop for Scope {
        fn drop(&mut self) {
            let previous = self.0.take();
            CURRENT.with(|c| *c.borrow_mut() = previous);
        }
    }
}
