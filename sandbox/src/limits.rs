//! Per-call execution limits. Every knob has its reason beside it; each one that trips
//! becomes an [`Error::Limit`] (the caller's transaction aborts, the host serves on).

use std::time::Duration;

use crate::error::Error;

/// The limits applied to every capability call and every component installed.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Wall time per call (epoch deadline). A capability is a method, not a service:
    /// one second is long for a method and short for a person waiting at a prompt.
    /// A manifest may set its own (`deadline_ms`).
    pub deadline: Duration,
    /// How often the epoch ticks; the deadline is enforced to this granularity. Ten
    /// milliseconds keeps the ticker thread's cost negligible.
    pub epoch_tick: Duration,
    /// Fuel (roughly, wasm instructions) per call. The deadline stops a loop in wall
    /// time; fuel makes runaway work fail the same way on fast and slow machines.
    pub fuel: u64,
    /// Linear memory per instance, summed over its memories. 64 MiB is ample for a
    /// method and keeps a growth bomb far from the host's memory.
    pub memory_bytes: usize,
    /// The wasm stack. Deep recursion traps here rather than in the host's stack.
    pub max_wasm_stack: usize,
    /// Bytes of text and byte data in a value crossing from a capability to the host
    /// (a result, or an argument it passes on). Slots hold at most 1 MiB anyway.
    pub max_value_bytes: usize,
    /// How deep sends may nest below a component call. Each level is a wasm call on
    /// the native stack, so this is far below the runtime's limit for native sends.
    pub max_send_depth: usize,
    /// The largest component the audit accepts.
    pub max_component_bytes: usize,
    /// The most functions (summed over its core modules) the audit accepts: a proxy for
    /// compile time and memory, which grow with code size.
    pub max_functions: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            deadline: Duration::from_secs(1),
            epoch_tick: Duration::from_millis(10),
            fuel: 500_000_000,
            memory_bytes: 64 << 20,
            max_wasm_stack: 512 << 10,
            max_value_bytes: 1 << 20,
            max_send_depth: 32,
            max_component_bytes: 16 << 20,
            max_functions: 50_000,
        }
    }
}

impl Limits {
    /// Epoch ticks for a deadline (at least one).
    pub(crate) fn ticks(&self, deadline: Duration) -> u64 {
        let tick = self.epoch_tick.as_nanos().max(1);
        u64::try_from(deadline.as_nanos().div_ceil(tick)).unwrap_or(u64::MAX).max(1)
    }
}

/// Caps the linear memory of one instance, summed over all its memories.
pub(crate) struct MemoryCap {
    cap: usize,
    used: usize,
    pub(crate) tripped: bool,
}

impl MemoryCap {
    pub(crate) fn new(cap: usize) -> Self {
        MemoryCap { cap, used: 0, tripped: false }
    }
}

impl wasmtime::ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let after = self.used.saturating_sub(current).saturating_add(desired);
        if after > self.cap {
            self.tripped = true;
            return Err(wasmtime::Error::new(Error::Limit {
                limit: "memory",
                detail: format!(
                    "the capability asked for {after} bytes of memory; the cap is {}",
                    self.cap
                ),
            }));
        }
        self.used = after;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Tables hold function references; 100k entries is far beyond any method.
        Ok(desired <= 100_000)
    }
}
