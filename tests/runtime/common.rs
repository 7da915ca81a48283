//! Helpers shared by the integration tests: every test gets a fresh image in its own
//! temporary folder (real fjall, real files).
#![allow(dead_code)]

use batos_runtime::{Oid, Runtime, Value};

/// A fresh image in a temporary folder, kept alive as long as the returned guard.
pub fn fresh() -> (tempfile::TempDir, Runtime) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let rt = Runtime::open(dir.path().join("image")).expect("a new image opens");
    (dir, rt)
}

/// Creates an object with these parents (no slots).
pub fn object(rt: &Runtime, parents: &[Oid]) -> Oid {
    rt.image()
        .transact("test object", |tx| tx.create_object(parents))
        .expect("object created")
        .value
}

/// Sets a slot, panicking on failure.
pub fn set(rt: &Runtime, oid: Oid, name: &str, value: impl Into<Value>) {
    rt.set_slot(oid, name, value.into()).expect("slot set");
}

pub fn text(s: &str) -> Value {
    Value::Text(s.to_owned())
}
