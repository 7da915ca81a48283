//! Transactions: atomic commit and abort, savepoints for nested sends, per-slot
//! conflict detection with bounded retry, and serializable concurrent increments.

use crate::common;

use std::sync::atomic::{AtomicU32, Ordering};

use batos_runtime::{Error, ImageOptions, Method, Runtime, Value};
use common::{fresh, set, text};

#[test]
fn a_transaction_commits_all_its_writes_or_none() {
    let (_dir, rt) = fresh();
    let genesis = rt.resolve("genesis").expect("genesis");
    let committed = rt
        .transact("two writes", |cx| {
            cx.send(genesis, "setSlot:value:", &[text("a"), Value::Int(1)])?;
            cx.send(genesis, "setSlot:value:", &[text("b"), Value::Int(2)])?;
            Ok(())
        })
        .expect("commits");
    assert!(committed.tx.is_some());
    assert_eq!(rt.send(genesis, "a", vec![]).expect("a"), Value::Int(1));
    assert_eq!(rt.send(genesis, "b", vec![]).expect("b"), Value::Int(2));

    let before = rt.image().last_tx();
    let err = rt
        .transact("fails half way", |cx| {
            cx.send(genesis, "setSlot:value:", &[text("a"), Value::Int(10)])?;
            cx.send(genesis, "noSuchThing", &[])?;
            cx.send(genesis, "setSlot:value:", &[text("b"), Value::Int(20)])?;
            Ok(())
        })
        .expect_err("aborts");
    assert!(matches!(err, Error::DoesNotUnderstand { .. }), "{err}");
    assert_eq!(
        rt.send(genesis, "a", vec![]).expect("a"),
        Value::Int(1),
        "the first write was rolled back"
    );
    assert_eq!(rt.send(genesis, "b", vec![]).expect("b"), Value::Int(2));
    assert_eq!(rt.image().last_tx(), before, "nothing committed");
}

#[test]
fn a_failing_nested_send_rolls_back_only_its_own_writes() {
    let dir = tempfile::tempdir().expect("tempdir");
    // `test.writeThenFail` writes a slot and then fails: as a nested send its write
    // must vanish while the caller's earlier and later writes stay.
    let rt = Runtime::builder()
        .primitive("test.writeThenFail", |cx, call| {
            cx.set_slot(
                call.receiver,
                "inner",
                &Value::Text("written by the failing send".into()),
            )?;
            cx.set_slot(
                call.receiver,
                "outer",
                &Value::Text("overwritten by the failing send".into()),
            )?;
            Err(Error::Failed("deliberate failure".into()))
        })
        .open(dir.path().join("image"))
        .expect("opens");
    let genesis = rt.resolve("genesis").expect("genesis");
    set(
        &rt,
        genesis,
        "writeThenFail",
        Value::Method(Method::Native { primitive: "test.writeThenFail".into() }),
    );

    rt.transact("outer", |cx| {
        cx.set_slot(genesis, "outer", &text("before"))?;
        let nested = cx.send(genesis, "writeThenFail", &[]);
        assert!(matches!(nested, Err(Error::Failed(_))));
        cx.set_slot(genesis, "after", &text("after"))?;
        Ok(())
    })
    .expect("the outer transaction recovers and commits");

    let slots = rt.object(genesis).expect("genesis").slots;
    assert_eq!(slots.get("outer"), Some(&text("before")));
    assert_eq!(slots.get("after"), Some(&text("after")));
    assert_eq!(slots.get("inner"), None);
}

#[test]
fn savepoints_nest() {
    let (_dir, rt) = fresh();
    let genesis = rt.resolve("genesis").expect("genesis");
    rt.image()
        .transact("nesting", |tx| {
            tx.set_slot(genesis, "level", &Value::Int(0))?;
            let outer = tx.savepoint();
            tx.set_slot(genesis, "level", &Value::Int(1))?;
            let inner = tx.savepoint();
            tx.set_slot(genesis, "level", &Value::Int(2))?;
            tx.set_slot(genesis, "deep", &Value::Bool(true))?;
            tx.rollback_to(inner);
            assert_eq!(tx.slot(genesis, "level")?, Some(Value::Int(1)));
            assert_eq!(tx.slot(genesis, "deep")?, None);
            tx.release(outer);
            Ok(())
        })
        .expect("commits");
    assert_eq!(rt.send(genesis, "level", vec![]).expect("level"), Value::Int(1));
}

#[test]
fn writes_to_different_slots_of_one_object_do_not_conflict() {
    let (_dir, rt) = fresh();
    let genesis = rt.resolve("genesis").expect("genesis");
    let runs = AtomicU32::new(0);
    rt.image()
        .transact("writer A", |tx| {
            runs.fetch_add(1, Ordering::SeqCst);
            tx.slot(genesis, "a")?;
            tx.set_slot(genesis, "a", &Value::Int(1))?;
            if runs.load(Ordering::SeqCst) == 1 {
                // A concurrent writer commits a different slot of the same object in
                // the middle of A.
                rt.image()
                    .transact("writer B", |tx2| tx2.set_slot(genesis, "b", &Value::Int(2)))?;
            }
            Ok(())
        })
        .expect("A commits");
    assert_eq!(runs.load(Ordering::SeqCst), 1, "A did not have to retry");
    let slots = rt.object(genesis).expect("genesis").slots;
    assert_eq!((slots.get("a"), slots.get("b")), (Some(&Value::Int(1)), Some(&Value::Int(2))));
}

#[test]
fn writes_to_the_same_slot_conflict_and_are_retried() {
    let (_dir, rt) = fresh();
    let genesis = rt.resolve("genesis").expect("genesis");
    set(&rt, genesis, "n", 0i64);
    let runs = AtomicU32::new(0);
    rt.image()
        .transact("increment", |tx| {
            let run = runs.fetch_add(1, Ordering::SeqCst) + 1;
            let Some(Value::Int(n)) = tx.slot(genesis, "n")? else { panic!("n is an integer") };
            if run == 1 {
                // Someone else increments n after we read it.
                rt.image()
                    .transact("interloper", |tx2| tx2.set_slot(genesis, "n", &Value::Int(100)))?;
            }
            tx.set_slot(genesis, "n", &Value::Int(n + 1))
        })
        .expect("commits on retry");
    assert_eq!(runs.load(Ordering::SeqCst), 2, "the first attempt conflicted");
    assert_eq!(
        rt.send(genesis, "n", vec![]).expect("n"),
        Value::Int(101),
        "the retry saw the interloper's write"
    );
}

#[test]
fn retries_are_bounded_and_end_in_a_typed_conflict() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = Runtime::builder()
        .image_options(ImageOptions { max_attempts: 3, ..ImageOptions::default() })
        .open(dir.path().join("image"))
        .expect("opens");
    let genesis = rt.resolve("genesis").expect("genesis");
    let runs = AtomicU32::new(0);
    let err = rt
        .image()
        .transact("always loses", |tx| {
            runs.fetch_add(1, Ordering::SeqCst);
            tx.slot(genesis, "hot")?;
            rt.image().transact("winner", |tx2| {
                tx2.set_slot(genesis, "hot", &Value::Int(i64::from(runs.load(Ordering::SeqCst))))
            })?;
            tx.set_slot(genesis, "hot", &Value::Int(-1))
        })
        .expect_err("gives up");
    assert!(matches!(err, Error::Conflict { attempts: 3 }), "{err}");
    assert_eq!(runs.load(Ordering::SeqCst), 3);
    assert_eq!(
        rt.send(genesis, "hot", vec![]).expect("hot"),
        Value::Int(3),
        "the loser wrote nothing"
    );
}

#[test]
fn concurrent_increments_are_serializable() {
    const THREADS: i64 = 4;
    const INCREMENTS: i64 = 200;
    let (_dir, rt) = fresh();
    let genesis = rt.resolve("genesis").expect("genesis");
    let counter = rt.clone_object(genesis, Some("counter")).expect("clone");
    set(&rt, counter, "count", 0i64);
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| {
                for _ in 0..INCREMENTS {
                    rt.transact("increment", |cx| {
                        let Value::Int(n) = cx.send(counter, "count", &[])? else {
                            return Err(Error::Failed("count is not an integer".into()));
                        };
                        cx.send(counter, "setSlot:value:", &[text("count"), Value::Int(n + 1)])
                    })
                    .expect("increment commits");
                }
            });
        }
    });
    assert_eq!(rt.send(counter, "count", vec![]).expect("count"), Value::Int(THREADS * INCREMENTS));
    let last = rt.image().last_tx().expect("transactions").0;
    // awakening + clone + initial set + one transaction per increment, in order.
    assert_eq!(last, 3 + (THREADS * INCREMENTS) as u64);
}

#[test]
fn sends_that_change_nothing_commit_nothing() {
    let (_dir, rt) = fresh();
    let genesis = rt.resolve("genesis").expect("genesis");
    set(&rt, genesis, "x", 1i64);
    let before = rt.image().last_tx();
    let read = rt.send_committed(genesis, "x", vec![]).expect("reads");
    assert_eq!(read.tx, None);
    let same = rt
        .send_committed(genesis, "setSlot:value:", vec![text("x"), Value::Int(1)])
        .expect("same value");
    assert_eq!(same.tx, None, "writing the value a slot already holds is not a change");
    assert_eq!(rt.image().last_tx(), before);
}

#[test]
fn write_skew_is_refused_so_concurrent_transactions_stay_serializable() {
    // T1 reads x and writes y = x + 1; T2 reads y and writes x = y + 1. Run one after the
    // other they end (x, y) = (2, 1) or (1, 2). Both on the same snapshot would give
    // (1, 1), which no serial order produces: the second to commit must be retried.
    let (_dir, rt) = fresh();
    let genesis = rt.resolve("genesis").expect("genesis");
    set(&rt, genesis, "x", 0i64);
    set(&rt, genesis, "y", 0i64);
    let runs = AtomicU32::new(0);
    rt.image()
        .transact("t1", |tx| {
            let run = runs.fetch_add(1, Ordering::SeqCst) + 1;
            let Some(Value::Int(x)) = tx.slot(genesis, "x")? else { panic!("x") };
            if run == 1 {
                // T2 runs and commits entirely between T1's read and T1's commit.
                rt.image().transact("t2", |tx2| {
                    let Some(Value::Int(y)) = tx2.slot(genesis, "y")? else { panic!("y") };
                    tx2.set_slot(genesis, "x", &Value::Int(y + 1))
                })?;
            }
            tx.set_slot(genesis, "y", &Value::Int(x + 1))
        })
        .expect("t1 commits on its retry");
    assert_eq!(runs.load(Ordering::SeqCst), 2, "t1's first attempt read x before t2 wrote it");
    let x = rt.send(genesis, "x", vec![]).expect("x");
    let y = rt.send(genesis, "y", vec![]).expect("y");
    assert_eq!((x, y), (Value::Int(1), Value::Int(2)), "t2 then t1");
}

#[test]
fn a_slot_added_under_a_scan_is_a_conflict() {
    // A transaction that listed an object's slots must not commit after another added
    // one: what it computed from the list is stale (a phantom).
    let (_dir, rt) = fresh();
    let genesis = rt.resolve("genesis").expect("genesis");
    let bag = common::object(&rt, &[]);
    set(&rt, bag, "a", 1i64);
    let runs = AtomicU32::new(0);
    rt.image()
        .transact("count the bag", |tx| {
            let run = runs.fetch_add(1, Ordering::SeqCst) + 1;
            let count = tx.slots(bag)?.len();
            if run == 1 {
                rt.image()
                    .transact("add to the bag", |tx2| tx2.set_slot(bag, "b", &Value::Int(2)))?;
            }
            tx.set_slot(genesis, "bagSize", &Value::Int(i64::try_from(count).expect("small")))
        })
        .expect("commits on retry");
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    assert_eq!(rt.send(genesis, "bagSize", vec![]).expect("size"), Value::Int(2));
}

#[test]
fn durable_commits_are_acknowledged_only_once_synced_and_share_syncs() {
    const THREADS: i64 = 16;
    const COMMITS: i64 = 20;
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = Runtime::builder()
        .image_options(ImageOptions {
            durability: batos_runtime::Durability::Durable,
            ..ImageOptions::default()
        })
        .open(dir.path().join("image"))
        .expect("opens");
    let genesis = rt.resolve("genesis").expect("genesis");
    let before = rt.image().stats();
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let rt = &rt;
            s.spawn(move || {
                let mine = rt.clone_object(genesis, None).expect("clone");
                for i in 0..COMMITS {
                    let committed = rt.set_slot(mine, "n", Value::Int(t * 1000 + i)).expect("set");
                    let tx = committed.tx.expect("a change").0;
                    let synced = rt.image().stats().synced_through;
                    assert!(
                        synced >= tx,
                        "transaction {tx} acknowledged with syncs through {synced}"
                    );
                }
            });
        }
    });
    let after = rt.image().stats();
    let commits = after.last_tx - before.last_tx;
    let syncs = after.journal_syncs - before.journal_syncs;
    assert_eq!(commits, u64::try_from(THREADS * (COMMITS + 1)).expect("fits"));
    assert!(syncs >= 1 && syncs <= commits, "{syncs} syncs for {commits} commits");
    assert_eq!(after.synced_through, after.last_tx, "every commit is synced");
}
