//! The sandbox crate's integration tests: the example plugins through the host API,
//! hostile components written as WAT fixtures, the gate's refusals by every path, the
//! drop-in folder, and mutated components through the audit.

mod components;
mod fuzz;
