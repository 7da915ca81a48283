//! The runtime crate's integration tests, on real images in temporary folders: sends
//! and delegation, transactions and savepoints, persistence, history, undo and pack.

mod common;
mod delegation;
mod history;
mod jobs;
mod lookup_cache;
mod persistence;
mod transactions;
