//! The kernel crate's tests: a real kernel serving a real image on loopback, in this
//! process (`serve_until`), driven by real WebSocket clients. The kernel as its own
//! process (signals, `kill -9`, the command line as its client) is tested in
//! `tests/cli/bridge.rs`.

mod bridge;
mod fuzz;
mod support;
