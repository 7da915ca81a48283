//! History, undo, objects as of a past transaction, and pack.

use crate::common;

use batos_runtime::{Error, TxId, Value};
use common::{fresh, set, text};

#[test]
fn history_records_each_commit_with_its_changes() {
    let (_dir, rt) = fresh();
    let genesis = rt.resolve("genesis").expect("genesis");
    rt.send(genesis, "setSlot:value:", vec![text("x"), Value::Int(5)]).expect("send");
    let history = rt.image().history(10).expect("history");
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].tx, TxId(2));
    assert_eq!(history[0].description, r#"send #3 setSlot:value: "x" 5"#);
    assert_eq!(history[0].changes, vec!["created slot #3.x".to_owned()]);
    assert_eq!(history[1].description, "awakening");
}

#[test]
fn undo_reverses_a_transaction_with_a_new_one() {
    let (_dir, rt) = fresh();
    let genesis = rt.resolve("genesis").expect("genesis");
    set(&rt, genesis, "x", 1i64); // tx 2
    let tx3 = rt.set_slot(genesis, "x", 2i64.into()).expect("set").tx.expect("committed");
    let undo = rt.image().undo(tx3).expect("undo");
    assert!(undo > tx3);
    assert_eq!(rt.send(genesis, "x", vec![]).expect("x"), Value::Int(1));
    // Undoing the undo redoes.
    rt.image().undo(undo).expect("redo");
    assert_eq!(rt.send(genesis, "x", vec![]).expect("x"), Value::Int(2));
}

#[test]
fn undo_of_a_clone_removes_the_object_and_its_root() {
    let (_dir, rt) = fresh();
    let genesis = rt.resolve("genesis").expect("genesis");
    let clone = rt.clone_object(genesis, Some("doomed")).expect("clone");
    let tx = rt.image().last_tx().expect("tx");
    rt.image().undo(tx).expect("undo");
    assert!(matches!(rt.resolve("doomed"), Err(Error::UnknownRoot(_))));
    assert!(matches!(rt.object(clone), Err(Error::UnknownObject(_))));
    // The oid is never handed out again.
    let next = rt.clone_object(genesis, None).expect("clone");
    assert!(next > clone);
}

#[test]
fn undo_is_refused_when_later_work_touched_the_same_slot() {
    let (_dir, rt) = fresh();
    let genesis = rt.resolve("genesis").expect("genesis");
    let first = rt.set_slot(genesis, "x", 1i64.into()).expect("set").tx.expect("tx");
    let second = rt.set_slot(genesis, "x", 2i64.into()).expect("set").tx.expect("tx");
    let before = rt.image().last_tx();
    let err = rt.image().undo(first).expect_err("refused");
    match &err {
        Error::UndoRefused { tx, reason } => {
            assert_eq!(*tx, first);
            assert!(reason.contains(&format!("transaction {second} changed it since")), "{reason}");
        }
        other => panic!("expected UndoRefused, got {other}"),
    }
    assert_eq!(rt.image().last_tx(), before, "the refusal wrote nothing");
    assert_eq!(rt.send(genesis, "x", vec![]).expect("x"), Value::Int(2));
    assert!(matches!(rt.image().undo(TxId(999)), Err(Error::UnknownTransaction(_))));
    let err = rt.image().undo(TxId(1)).expect_err("the awakening is pinned");
    assert!(err.to_string().contains("`awakening` cannot be undone"), "{err}");
    let pack = rt.image().pack(None).expect("pack");
    assert_eq!(pack.objects, 0);
    let pack_tx = rt.image().last_tx().expect("pack committed");
    assert!(matches!(rt.image().undo(pack_tx), Err(Error::UndoRefused { .. })));
}

#[test]
fn an_object_can_be_shown_as_of_a_past_transaction() {
    let (_dir, rt) = fresh();
    let genesis = rt.resolve("genesis").expect("genesis");
    let t_a = rt.set_slot(genesis, "x", 1i64.into()).expect("set").tx.expect("tx");
    let t_b = rt.set_slot(genesis, "x", 2i64.into()).expect("set").tx.expect("tx");
    let t_c = rt.set_slot(genesis, "y", "new".into()).expect("set").tx.expect("tx");
    rt.send(genesis, "removeSlot:", vec![text("x")]).expect("remove");

    let then = |t| rt.image().object_at(genesis, t).expect("as of").slots;
    assert_eq!(then(TxId(1)).get("x"), None);
    assert_eq!(then(t_a).get("x"), Some(&Value::Int(1)));
    assert_eq!(then(t_b).get("x"), Some(&Value::Int(2)));
    assert_eq!(then(t_b).get("y"), None);
    assert_eq!(then(t_c).get("y"), Some(&text("new")));
    assert_eq!(rt.object(genesis).expect("now").slots.get("x"), None);
}

#[test]
fn pack_removes_unreachable_objects_and_blobs_but_keeps_reachable_ones() {
    let (_dir, rt) = fresh();
    let genesis = rt.resolve("genesis").expect("genesis");
    let kept = rt.clone_object(genesis, Some("kept")).expect("clone");
    let (orphan, kept_blob, orphan_blob) = rt
        .image()
        .transact("objects and blobs", |tx| {
            let referenced = tx.create_object(&[genesis])?;
            tx.set_slot(kept, "friend", &Value::List(vec![Value::Object(referenced)]))?;
            let kept_blob = tx.put_blob(b"kept")?;
            tx.set_slot(referenced, "data", &Value::Blob(kept_blob))?;
            let orphan = tx.create_object(&[genesis])?;
            let orphan_blob = tx.put_blob(b"orphaned")?;
            tx.set_slot(orphan, "data", &Value::Blob(orphan_blob))?;
            Ok((orphan, kept_blob, orphan_blob))
        })
        .expect("commits")
        .value;

    let report = rt.image().pack(None).expect("pack");
    assert_eq!(report.objects, 1);
    assert_eq!(report.blobs, 1);
    assert!(matches!(rt.object(orphan), Err(Error::UnknownObject(_))));
    assert!(!rt.image().blobs().contains(&orphan_blob.hash));
    assert!(rt.image().blobs().contains(&kept_blob.hash));
    assert_eq!(rt.object(kept).expect("kept").slots.len(), 2);
    // Packing again finds nothing more.
    let again = rt.image().pack(None).expect("pack");
    assert_eq!((again.objects, again.blobs), (0, 0));
}

#[test]
fn pack_drops_old_history_after_which_undo_and_as_of_are_refused() {
    let (_dir, rt) = fresh();
    let genesis = rt.resolve("genesis").expect("genesis");
    let old = rt.set_slot(genesis, "x", 1i64.into()).expect("set").tx.expect("tx");
    let recent = rt.set_slot(genesis, "y", 2i64.into()).expect("set").tx.expect("tx");
    let report = rt.image().pack(Some(recent)).expect("pack");
    assert_eq!(report.history, 2, "awakening and the first set");
    assert!(matches!(rt.image().undo(old), Err(Error::HistoryPacked { .. })));
    assert!(matches!(rt.image().object_at(genesis, TxId(1)), Err(Error::HistoryPacked { .. })));
    // What is left still works.
    rt.image().undo(recent).expect("undo of kept history");
    assert_eq!(rt.send(genesis, "x", vec![]).expect("x"), Value::Int(1));
    let history = rt.image().history(100).expect("history");
    assert!(history.iter().all(|e| e.tx >= recent), "{history:?}");
}

#[test]
fn packing_survives_reopen_without_reusing_oids_or_tx_ids() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("image");
    let (orphan, last) = {
        let rt = batos_runtime::Runtime::open(&path).expect("creates");
        let genesis = rt.resolve("genesis").expect("genesis");
        let orphan = rt.clone_object(genesis, None).expect("unnamed clone");
        let last = rt.set_slot(genesis, "x", 1i64.into()).expect("set").tx.expect("tx");
        rt.image().pack(Some(TxId(last.0 + 1))).expect("pack everything");
        (orphan, last)
    };
    let rt = batos_runtime::Runtime::open(&path).expect("reopens");
    let genesis = rt.resolve("genesis").expect("genesis");
    let fresh_clone = rt.clone_object(genesis, None).expect("clone");
    assert!(fresh_clone > orphan, "the packed oid {orphan} is not reused ({fresh_clone})");
    assert!(rt.image().last_tx().expect("tx") > last);
}

#[test]
fn as_of_after_pack_starts_from_the_state_the_floor_kept() {
    let (_dir, rt) = fresh();
    let genesis = rt.resolve("genesis").expect("genesis");
    set(&rt, genesis, "x", 1i64);
    set(&rt, genesis, "x", 2i64);
    let recent = rt.set_slot(genesis, "y", 3i64.into()).expect("set").tx.expect("tx");
    rt.image().pack(Some(recent)).expect("pack");
    let then = rt.image().object_at(genesis, recent).expect("as of the floor");
    assert_eq!(then.slots.get("x"), Some(&Value::Int(2)), "the newest version before the floor");
    assert_eq!(then.slots.get("y"), Some(&Value::Int(3)));
    let later = rt.set_slot(genesis, "x", 4i64.into()).expect("set").tx.expect("tx");
    assert_eq!(
        rt.image().object_at(genesis, recent).expect("as of").slots.get("x"),
        Some(&Value::Int(2))
    );
    assert_eq!(
        rt.image().object_at(genesis, later).expect("as of").slots.get("x"),
        Some(&Value::Int(4))
    );
}

#[test]
fn an_image_from_before_the_versions_index_gets_one_at_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("image");
    let (genesis, first, second) = {
        let rt = batos_runtime::Runtime::open(&path).expect("creates");
        let genesis = rt.resolve("genesis").expect("genesis");
        let first = rt.set_slot(genesis, "x", 1i64.into()).expect("set").tx.expect("tx");
        let second = rt.set_slot(genesis, "x", 2i64.into()).expect("set").tx.expect("tx");
        (genesis, first, second)
    };
    {
        // Make it look like format 1: no versions keyspace contents, format 1.
        let db = fjall::Database::builder(path.join("store")).open().expect("raw open");
        let versions = db.keyspace("versions", fjall::KeyspaceCreateOptions::default).expect("ks");
        versions.clear().expect("clear");
        let meta = db.keyspace("meta", fjall::KeyspaceCreateOptions::default).expect("meta");
        meta.insert("format", 1u32.to_be_bytes()).expect("write");
        db.persist(fjall::PersistMode::SyncAll).expect("persist");
    }
    let rt = batos_runtime::Runtime::open(&path).expect("reopens and migrates");
    assert_eq!(rt.image().format().expect("format"), Some(2));
    let at = |t| rt.image().object_at(genesis, t).expect("as of").slots.get("x").cloned();
    assert_eq!(at(first), Some(Value::Int(1)));
    assert_eq!(at(second), Some(Value::Int(2)));
    assert_eq!(at(TxId(1)), None);
}
