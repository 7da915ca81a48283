//! The command line's integration tests, run as a user would run `batos`: the
//! kernel it becomes a client of (`batos serve`),
//! commands and their error kinds, plugins, synthesis against a stand-in chat server,
//! the kill -9 crash harness, model import, and THE REAL EMBEDDED MODEL end to end.

#[path = "../support/browser.rs"]
mod browser_support;
#[path = "../support/chat_stub.rs"]
mod chat_stub;
#[path = "../support/elle.rs"]
mod elle;
#[path = "../support/tiny_model.rs"]
mod tiny_model;

mod bridge;
mod browser;
mod commands;
mod crash;
mod import;
mod jepsen;
mod memory;
mod ops;
mod personas;
mod real_model;
mod real_model_synthesis;
mod synthesis;
