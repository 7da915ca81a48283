//! # batos-sandbox
//!
//! The sandbox: every capability that is not a native primitive runs here, as a
//! WebAssembly component in wasmtime.
//!
//! It narrows wasmtime to one shape of program: a component of the `batos:uvm`
//! `capability` world (see `wit/uvm.wit`), which exports `invoke` and imports only
//! `types`, `log` and the optional interfaces its manifest is granted. Concretely:
//!
//! * one [`Gate`] decides every import, for the audit and for the linker alike;
//! * every component is audited before it is installed ([`audit`]);
//! * every call runs in a **fresh instance** (guest memory never carries state between
//!   calls: state lives only in slots), inside the caller's transaction, under the
//!   [`Limits`]: an epoch deadline, fuel, a memory cap, a stack limit, a value-size cap
//!   and a send-depth cap; each that trips is an [`Error::Limit`];
//! * compiled components are cached in memory by (hash, grants) as an `InstancePre`,
//!   and as precompiled artifacts in the blob store across restarts, keyed by the
//!   engine's compatibility hash so a different wasmtime never loads them;
//! * instances come from the pooling allocator when the address space allows, else
//!   from on-demand allocation; the log says which.
//!
//! The sandbox plugs into the runtime as its [`ComponentRunner`].

pub mod audit;
pub mod build;
pub mod gate;
mod host;
pub mod limits;
pub mod plugin;
mod stats;
pub mod watch;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wasmtime::component::Component;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap};

pub use gate::{parse_grants, Authority, Decision, Effect, Gate, Grant, Grants};
pub use limits::Limits;
pub use stats::CapabilityStats;

use batos_image as image;
use batos_image::error;
use batos_runtime as runtime;

use crate::error::{Error, Result};
use crate::image::{BlobHash, BlobRef, Image, Method, Value};
use crate::runtime::{Call, ComponentRunner, Context};
use host::{CallState, CapabilityPre};

/// Which instance allocator the engine uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Allocator {
    /// Pre-reserved slots: fastest instantiation.
    Pooling,
    /// Memory mapped per instance: used when the pool's address space is unavailable.
    OnDemand,
}

/// The component host.
pub struct Sandbox {
    engine: Engine,
    limits: Limits,
    allocator: Allocator,
    prepared: Mutex<HashMap<(BlobHash, Grants), CapabilityPre<CallState>>>,
    stats: stats::Recorder,
    stop_ticker: Arc<AtomicBool>,
    log_observer: Arc<std::sync::OnceLock<LogObserver>>,
}

/// Told of every line a capability logs: its name, the level (`error`, `warn`, `info`,
/// `debug`) and the line. Called on the calling thread, inside the call: it must be
/// quick and must not send to the image.
pub type LogObserver = Box<dyn Fn(&str, &str, &str) + Send + Sync>;

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("allocator", &self.allocator)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.stop_ticker.store(true, Ordering::Relaxed);
    }
}

fn config(limits: &Limits) -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    // Wall-time deadlines without a signal handler: a ticker thread advances the epoch.
    config.epoch_interruption(true);
    config.consume_fuel(true);
    config.max_wasm_stack(limits.max_wasm_stack);
    config
}

impl Sandbox {
    /// A sandbox with these limits. Probes the pooling allocator and falls back to
    /// on-demand allocation when its address-space reservation fails.
    pub fn new(limits: Limits) -> Result<Sandbox> {
        let mut pooled = config(&limits);
        let mut pool = PoolingAllocationConfig::default();
        // Nested sends can hold several instances at once; the depth cap bounds them.
        let slots = u32::try_from(limits.max_send_depth.saturating_mul(2).max(16)).unwrap_or(64);
        pool.total_component_instances(slots);
        pool.total_core_instances(slots * 2);
        pool.total_memories(slots * 2);
        pool.total_tables(slots * 2);
        pool.max_memory_size(limits.memory_bytes);
        // Resetting a slot for reuse by zeroing in place beats returning pages to the
        // kernel and faulting them back in for the next call (measured in
        // benches/sandbox.rs); small methods touch far less than this.
        pool.linear_memory_keep_resident(1 << 20);
        pool.table_keep_resident(1 << 16);
        pooled.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let (engine, allocator) = match Engine::new(&pooled) {
            Ok(engine) => (engine, Allocator::Pooling),
            Err(e) => {
                tracing::info!("pooling allocator unavailable ({e:#}); using on-demand allocation");
                let engine = Engine::new(&config(&limits))
                    .map_err(|e| Error::Failed(format!("cannot start wasmtime: {e:#}")))?;
                (engine, Allocator::OnDemand)
            }
        };
        tracing::info!(?allocator, "sandbox ready");
        let stop_ticker = Arc::new(AtomicBool::new(false));
        spawn_ticker(engine.clone(), limits.epoch_tick, stop_ticker.clone());
        Ok(Sandbox {
            engine,
            limits,
            allocator,
            prepared: Mutex::new(HashMap::new()),
            stats: stats::Recorder::default(),
            stop_ticker,
            log_observer: Arc::default(),
        })
    }

    /// The engine (for tools that compile or inspect components).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Which allocator the probe chose.
    pub fn allocator(&self) -> Allocator {
        self.allocator
    }

    /// Audits component bytes for the given grants (see [`audit`]); a component that
    /// passes is kept compiled, so its first call does not compile it again.
    pub fn audit(&self, bytes: &[u8], grants: &Grants, what: &str) -> Result<()> {
        let pre = audit::audit(&self.engine, &self.limits, bytes, grants, what)?;
        self.lock_prepared().insert((BlobHash::of(bytes), grants.clone()), pre);
        Ok(())
    }

    /// The grants component `bytes` would need to pass the audit (the optional
    /// interfaces it imports), as the gate decides them; `what` names it in errors.
    pub fn grants_needed(&self, bytes: &[u8], what: &str) -> Result<Grants> {
        audit::grants_needed(&self.engine, bytes, what)
    }

    /// Keeps the compiled form of an audited component in the image's blob store, so
    /// that the next process loads it instead of compiling it again.
    pub fn save_artifact(&self, image: &Image, component: &BlobRef, grants: &Grants) {
        let compiled = self
            .lock_prepared()
            .get(&(component.hash, grants.clone()))
            .map(|pre| pre.instance_pre().component().clone());
        if let Some(compiled) = compiled {
            self.store_artifact(image, component, &compiled);
        }
    }

    /// Statistics of every capability called, persisted and in this process.
    pub fn stats(&self, image: &Image) -> Result<HashMap<BlobHash, CapabilityStats>> {
        self.stats.all(image)
    }

    /// Has `observer` told of every line a capability logs from now on (beside the
    /// `tracing` record every line gets). Answers false, and changes nothing, if an
    /// observer was already set.
    pub fn observe_logs(&self, observer: LogObserver) -> bool {
        self.log_observer.set(observer).is_ok()
    }

    /// Writes the statistics gathered in this process to the image's advisory store.
    pub fn flush_stats(&self, image: &Image) -> Result<()> {
        self.stats.flush(image)
    }

    fn prepared(
        &self,
        image: &Image,
        component: &BlobRef,
        grants: &Grants,
    ) -> Result<CapabilityPre<CallState>> {
        let key = (component.hash, grants.clone());
        if let Some(pre) = self.lock_prepared().get(&key) {
            return Ok(pre.clone());
        }
        let what = format!("component {}", component.hash);
        let compiled = self.load_artifact(image, component).map_or_else(
            || {
                let bytes = image.blobs().read(component)?;
                let compiled =
                    Component::new(&self.engine, &bytes).map_err(|e| Error::AuditRefused {
                        what: what.clone(),
                        reason: format!("it does not compile: {e:#}"),
                    })?;
                self.store_artifact(image, component, &compiled);
                Ok::<_, Error>(compiled)
            },
            Ok,
        )?;
        // The gate runs again at link time: an installed method never gets more than
        // its grants, whatever the stored bytes import.
        audit::check_imports(&self.engine, &compiled, grants, &what)?;
        let pre = audit::prepare(&self.engine, &compiled, grants, &what)?;
        self.lock_prepared().insert(key, pre.clone());
        Ok(pre)
    }

    fn lock_prepared(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<(BlobHash, Grants), CapabilityPre<CallState>>> {
        self.prepared.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn artifact_key(&self, component: &BlobRef) -> String {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.engine.precompile_compatibility_hash().hash(&mut h);
        format!("artifact/{}/{:016x}", component.hash, h.finish())
    }

    fn load_artifact(&self, image: &Image, component: &BlobRef) -> Option<Component> {
        let raw = image.aux_get(&self.artifact_key(component)).ok()??;
        let blob: BlobRef = postcard::from_bytes(&raw).ok()?;
        let bytes = image.blobs().read(&blob).ok()?;
        // SAFETY: the bytes are an artifact this engine configuration serialized (the
        // key includes its compatibility hash), read back from a blob whose blake3
        // hash was just verified, so they are exactly what wasmtime wrote.
        unsafe { Component::deserialize(&self.engine, &bytes) }.ok()
    }

    fn store_artifact(&self, image: &Image, component: &BlobRef, compiled: &Component) {
        // A cache: failing to write it only costs a compile next time.
        let Ok(bytes) = compiled.serialize() else { return };
        let Ok(blob) = image.blobs().put(&bytes) else { return };
        if let Ok(raw) = postcard::to_stdvec(&blob) {
            let _ = image.aux_put(&self.artifact_key(component), &raw);
        }
    }

    fn invoke(
        &self,
        cx: &mut Context<'_, '_>,
        component: &BlobRef,
        grants: &Grants,
        deadline: Duration,
        call: &Call<'_>,
    ) -> Result<(Value, u64)> {
        if cx.depth() > self.limits.max_send_depth {
            return Err(Error::Limit {
                limit: "send depth",
                detail: format!(
                    "`{}` is {} sends deep; components may nest {}",
                    call.selector,
                    cx.depth(),
                    self.limits.max_send_depth
                ),
            });
        }
        let pre = self.prepared(cx.image(), component, grants)?;
        let name = call.selector.to_owned();
        // SAFETY: `store` (and the state holding the pointer to `cx`) is dropped at the
        // end of this function, while `cx` is still mutably borrowed by it.
        let state = unsafe {
            CallState::new(
                cx,
                limits::MemoryCap::new(self.limits.memory_bytes),
                name.clone(),
                self.limits.max_value_bytes,
                self.log_observer.clone(),
            )
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.memory);
        store.set_fuel(self.limits.fuel).map_err(|e| Error::Failed(format!("{e:#}")))?;
        store.set_epoch_deadline(self.limits.ticks(deadline));
        let outcome = (|| {
            let receiver = store.data_mut().handle(call.receiver)?;
            let mut args = Vec::with_capacity(call.args.len());
            for a in call.args {
                args.push(store.data_mut().lower(a)?);
            }
            let instance = pre.instantiate(&mut store)?;
            instance.call_invoke(&mut store, receiver, &args)
        })();
        let fuel_used = self.limits.fuel.saturating_sub(store.get_fuel().unwrap_or(0));
        let result = match outcome {
            Ok(Ok(value)) => store.data_mut().lift_result(value),
            Ok(Err(e)) => Err(host::error_from_wit(&name, e)),
            Err(trap) => Err(
                match (classify(&name, trap, deadline, &self.limits), store.data_mut().panic.take())
                {
                    (Error::Trapped { capability, .. }, Some(reason)) => {
                        Error::Trapped { capability, detail: format!("panicked: {reason}") }
                    }
                    (other, _) => other,
                },
            ),
        };
        drop(store);
        result.map(|v| (v, fuel_used))
    }
}

impl ComponentRunner for Sandbox {
    fn run(&self, cx: &mut Context<'_, '_>, method: &Method, call: &Call<'_>) -> Result<Value> {
        let Method::Component { component, grants, deadline_ms } = method.runnable() else {
            return Err(Error::Failed(format!("`{}` is not a component method", call.selector)));
        };
        let grants = gate::parse_grants(grants)
            .map_err(|reason| Error::AuditRefused { what: call.selector.to_owned(), reason })?;
        let deadline =
            deadline_ms.map_or(self.limits.deadline, |ms| Duration::from_millis(u64::from(ms)));
        let outcome = self.invoke(cx, component, &grants, deadline, call);
        self.stats.record(component.hash, &outcome, cx.image());
        outcome.map(|(value, _)| value)
    }
}

/// Turns a wasmtime error from a call into the host error it stands for.
fn classify(
    capability: &str,
    error: wasmtime::Error,
    deadline: Duration,
    limits: &Limits,
) -> Error {
    if let Some(trap) = error.downcast_ref::<Trap>() {
        return match trap {
            Trap::Interrupt => Error::Limit {
                limit: "deadline",
                detail: format!("`{capability}` ran past {deadline:?}"),
            },
            Trap::OutOfFuel => Error::Limit {
                limit: "fuel",
                detail: format!("`{capability}` used all {} units of fuel", limits.fuel),
            },
            Trap::StackOverflow => Error::Limit {
                limit: "stack",
                detail: format!(
                    "`{capability}` overflowed its {}-byte stack (deep recursion?)",
                    limits.max_wasm_stack
                ),
            },
            other => {
                Error::Trapped { capability: capability.to_owned(), detail: other.to_string() }
            }
        };
    }
    match error.downcast::<Error>() {
        Ok(host_error) => host_error,
        Err(other) => {
            Error::Trapped { capability: capability.to_owned(), detail: format!("{other:#}") }
        }
    }
}

fn spawn_ticker(engine: Engine, tick: Duration, stop: Arc<AtomicBool>) {
    let spawned = std::thread::Builder::new().name("batos-epoch".into()).spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(tick);
            engine.increment_epoch();
        }
    });
    if let Err(e) = spawned {
        tracing::error!(
            "cannot start the epoch ticker ({e}); deadlines will not be enforced, fuel still is"
        );
    }
}
