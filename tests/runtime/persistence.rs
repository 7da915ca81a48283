//! Persistence: every kind of value and a blob survive close and reopen; the image
//! folder is recognised, versioned and locked; bad input changes nothing.

use crate::common;

use std::collections::BTreeMap;

use batos_runtime::image::MAX_VALUE_BYTES;
use batos_runtime::{BlobRef, Error, Method, Oid, Runtime, Value};
use common::{set, text};

fn every_kind(genesis: Oid, blob: BlobRef) -> BTreeMap<String, Value> {
    let mut map = BTreeMap::new();
    map.insert("nested".to_owned(), Value::List(vec![Value::Nil, Value::Float(-0.5)]));
    [
        ("nil", Value::Nil),
        ("bool", Value::Bool(true)),
        ("int", Value::Int(i64::MIN)),
        ("float", Value::Float(std::f64::consts::PI)),
        ("text", text("héllo ✓")),
        ("bytes", Value::Bytes(vec![0, 1, 254, 255])),
        ("list", Value::List(vec![Value::Int(1), text("two"), Value::List(vec![])])),
        ("map", Value::Map(map)),
        ("object", Value::Object(genesis)),
        ("blob", Value::Blob(blob)),
        ("native", Value::Method(Method::Native { primitive: "clone".into() })),
        (
            "component",
            Value::Method(Method::Component {
                component: blob,
                grants: vec!["clock".into()],
                deadline_ms: Some(200),
            }),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

#[test]
fn every_kind_of_value_and_a_blob_survive_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("image");
    let blob_bytes: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let (holder, expected) = {
        let rt = Runtime::open(&path).expect("creates");
        assert!(rt.created());
        let genesis = rt.resolve("genesis").expect("genesis");
        let holder = rt.clone_object(genesis, Some("holder")).expect("clone");
        let expected = rt
            .image()
            .transact("store every kind", |tx| {
                let blob = tx.put_blob(&blob_bytes)?;
                let values = every_kind(genesis, blob);
                for (name, value) in &values {
                    tx.set_slot(holder, name, value)?;
                }
                Ok(values)
            })
            .expect("commits")
            .value;
        (holder, expected)
    };
    let rt = Runtime::open(&path).expect("reopens");
    assert!(!rt.created(), "reopening resumes, it does not awaken again");
    assert_eq!(rt.resolve("holder").expect("root survives"), holder);
    let mut slots = rt.object(holder).expect("holder").slots;
    slots.remove("description");
    assert_eq!(slots, expected);
    let Some(Value::Blob(blob)) = slots.get("blob") else { panic!("blob slot") };
    assert_eq!(rt.image().blobs().read(blob).expect("blob reads and verifies"), blob_bytes);
}

#[test]
fn the_primordial_objects_follow_the_creation_order() {
    let (_dir, rt) = common::fresh();
    let traits = rt.resolve("traits").expect("traits");
    let pllm = rt.resolve("pLLM").expect("pLLM");
    let genesis = rt.resolve("genesis").expect("genesis");
    assert_eq!((traits, pllm, genesis), (Oid(1), Oid(2), Oid(3)));
    assert_eq!(rt.object(traits).expect("traits").parents, vec![]);
    assert_eq!(rt.object(pllm).expect("pLLM").parents, vec![traits]);
    assert_eq!(rt.object(genesis).expect("genesis").parents, vec![traits, pllm]);
    for selector in ["clone", "setSlot:value:", "doesNotUnderstand"] {
        assert!(
            matches!(
                rt.object(traits).expect("traits").slots.get(selector),
                Some(Value::Method(_))
            ),
            "traits has {selector}"
        );
    }
    assert_eq!(rt.image().last_tx().map(|t| t.0), Some(1), "awakening is one transaction");
}

#[test]
fn a_second_process_is_refused_with_the_holder_named() {
    let (dir, _rt) = common::fresh();
    let err = Runtime::open(dir.path().join("image")).expect_err("already open");
    match err {
        Error::ImageLocked { holder, .. } => {
            assert!(holder.contains(&format!("pid {}", std::process::id())), "{holder}")
        }
        other => panic!("expected ImageLocked, got {other}"),
    }
}

#[test]
fn foreign_and_damaged_folders_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let foreign = dir.path().join("foreign");
    std::fs::create_dir(&foreign).expect("mkdir");
    std::fs::write(foreign.join("notes.txt"), "my files").expect("write");
    let err = Runtime::open(&foreign).expect_err("not an image");
    assert!(matches!(err, Error::NotAnImage { .. }), "{err}");
    assert!(
        foreign.join("notes.txt").exists() && !foreign.join("store").exists(),
        "nothing was touched"
    );

    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").expect("write");
    assert!(matches!(Runtime::open(&file), Err(Error::NotAnImage { .. })));

    let fake = dir.path().join("fake");
    std::fs::create_dir(&fake).expect("mkdir");
    std::fs::write(fake.join("IMAGE"), "something else\n").expect("write");
    assert!(matches!(Runtime::open(&fake), Err(Error::NotAnImage { .. })));

    // A store whose files are garbage: a clear refusal, not a panic or an empty image.
    let damaged = dir.path().join("damaged");
    drop(Runtime::open(&damaged).expect("creates"));
    std::fs::write(damaged.join("store").join("version"), b"\xff\xff garbage").expect("damage");
    let err = Runtime::open(&damaged).expect_err("damaged");
    assert!(matches!(err, Error::Corrupt(_)), "{err}");
}

#[test]
fn an_image_of_a_newer_format_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("image");
    drop(Runtime::open(&path).expect("creates"));
    {
        // Write a future format version straight into the store's meta keyspace.
        let db = fjall::Database::builder(path.join("store")).open().expect("raw open");
        let meta = db.keyspace("meta", fjall::KeyspaceCreateOptions::default).expect("meta");
        meta.insert("format", 99u32.to_be_bytes()).expect("write");
        db.persist(fjall::PersistMode::SyncAll).expect("persist");
    }
    let err = Runtime::open(&path).expect_err("too new");
    assert!(matches!(err, Error::ImageTooNew { found: 99, supported: 2, .. }), "{err}");
    assert!(err.to_string().contains("upgrade batos"), "{err}");
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let (_dir, rt) = common::fresh();
    let genesis = rt.resolve("genesis").expect("genesis");
    set(&rt, genesis, "keep", 1i64);
    let before = rt.image().last_tx();

    let cases: Vec<(&str, Result<batos_runtime::Committed<()>, Error>)> = vec![
        ("empty name", rt.set_slot(genesis, "", Value::Nil)),
        ("long name", rt.set_slot(genesis, &"n".repeat(300), Value::Nil)),
        ("control char", rt.set_slot(genesis, "a\u{7}b", Value::Nil)),
        ("too large", rt.set_slot(genesis, "big", Value::Bytes(vec![7; MAX_VALUE_BYTES + 10]))),
        ("unknown object", rt.set_slot(Oid(4242), "x", Value::Nil)),
        ("dangling ref", rt.set_slot(genesis, "ref", Value::Object(Oid(4242)))),
        (
            "missing blob",
            rt.set_slot(
                genesis,
                "blob",
                Value::Blob(BlobRef {
                    hash: batos_runtime::BlobHash::of(b"never stored"),
                    size: 12,
                }),
            ),
        ),
    ];
    for (what, result) in cases {
        let err = result.expect_err(what);
        let kind = err.kind();
        assert!(matches!(kind, "bad_input" | "not_found"), "{what}: {err}");
    }
    assert_eq!(rt.image().last_tx(), before, "nothing was committed");
    let slots = rt.object(genesis).expect("genesis").slots;
    assert_eq!(slots.len(), 2, "only description and keep: {slots:?}");
}

#[test]
fn a_damaged_blob_is_reported_never_returned() {
    let (_dir, rt) = common::fresh();
    let genesis = rt.resolve("genesis").expect("genesis");
    let blob = rt
        .image()
        .transact("blob", |tx| {
            let blob = tx.put_blob(b"the weights of a very small model")?;
            tx.set_slot(genesis, "weights", &Value::Blob(blob))?;
            Ok(blob)
        })
        .expect("commits")
        .value;
    let path = rt.image().blobs().path(&blob.hash);
    let mut bytes = std::fs::read(&path).expect("read");
    bytes[5] ^= 0x01;
    std::fs::write(&path, &bytes).expect("flip a bit");
    let err = rt.image().blobs().read(&blob).expect_err("damaged");
    assert!(matches!(err, Error::BlobCorrupt { .. }), "{err}");
    assert!(err.to_string().contains("restore"), "{err}");
    assert_eq!(
        rt.send(genesis, "weights", vec![]).expect("the reference is intact"),
        Value::Blob(blob)
    );
}

#[test]
fn a_store_half_made_by_a_killed_first_start_does_not_stop_the_next() {
    // fjall makes a new database in steps; a process killed between them leaves a folder
    // with a journal but no version marker, which fjall refuses ("File exists"). The
    // image makes its store under another name and renames it into place, so what a
    // killed first start leaves is that other folder, which the next start replaces.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("image");
    drop(Runtime::open(&path).expect("creates"));
    std::fs::remove_dir_all(path.join("store")).expect("remove the store");
    let half = path.join("store.new");
    std::fs::create_dir(&half).expect("mkdir");
    std::fs::write(half.join("0.jnl"), vec![0u8; 4096]).expect("a bare journal");
    let rt = Runtime::open(&path).expect("the next start makes a whole store");
    assert!(rt.resolve("genesis").is_ok(), "and awakens it");
    assert!(!half.exists(), "the half-made store is gone");
}
