//! The synthesis crate's integration tests: cycles with a scripted test-double mind,
//! sealing, and candidates built, audited and run.

mod candidate;
mod cycles;
#[path = "../support/scripted_mind.rs"]
mod scripted_mind;
