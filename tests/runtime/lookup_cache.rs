//! The image-wide lookup cache: a send served from it answers exactly what a walk of
//! the records would, whatever writes come between sends, inside a transaction or from
//! other threads.

use crate::common;

use std::sync::atomic::{AtomicBool, Ordering};

use batos_runtime::{Error, Oid, Runtime, Value};
use common::{fresh, object, set};

/// A chain bottom → … → top of `depth` links, `answer` on top.
fn chain(rt: &Runtime, depth: usize) -> Vec<Oid> {
    let top = object(rt, &[]);
    set(rt, top, "answer", 0i64);
    let mut chain = vec![top];
    for _ in 0..depth {
        let below = object(rt, &[*chain.last().expect("non-empty")]);
        chain.push(below);
    }
    chain
}

fn answer(rt: &Runtime, at: Oid) -> Value {
    rt.send(at, "answer", vec![]).expect("answer")
}

#[test]
fn every_write_that_changes_a_walk_changes_the_next_answer() {
    let (_dir, rt) = fresh();
    let links = chain(&rt, 16);
    let (top, bottom, middle) = (links[0], links[16], links[8]);
    assert_eq!(answer(&rt, bottom), Value::Int(0));
    let warm = rt.image().stats();
    assert_eq!(answer(&rt, bottom), Value::Int(0));
    assert!(rt.image().stats().lookup_hits > warm.lookup_hits, "the second send is a hit");

    // The holder's slot changes.
    set(&rt, top, "answer", 1i64);
    assert_eq!(answer(&rt, bottom), Value::Int(1));
    // A slot of that name appears on an object the walk passed through.
    set(&rt, middle, "answer", 2i64);
    assert_eq!(answer(&rt, bottom), Value::Int(2));
    // It goes away again.
    rt.image().transact("remove", |tx| tx.remove_slot(middle, "answer")).expect("remove");
    assert_eq!(answer(&rt, bottom), Value::Int(1));
    // A parent link changes: the middle now delegates to an object with its own answer.
    let other = object(&rt, &[]);
    set(&rt, other, "answer", 3i64);
    rt.image().transact("reparent", |tx| tx.set_parents(middle, &[other])).expect("reparent");
    assert_eq!(answer(&rt, bottom), Value::Int(3));
    // Undo restores the old link, and the old answer.
    let last = rt.image().last_tx().expect("tx");
    rt.image().undo(last).expect("undo");
    assert_eq!(answer(&rt, bottom), Value::Int(1));
    // Unrelated writes leave the cached walk alone.
    let before = rt.image().stats();
    set(&rt, middle, "unrelated", 9i64);
    assert_eq!(answer(&rt, bottom), Value::Int(1));
    assert!(rt.image().stats().lookup_hits > before.lookup_hits, "still a hit");
}

#[test]
fn a_transaction_sees_its_own_writes_through_delegation() {
    let (_dir, rt) = fresh();
    let links = chain(&rt, 4);
    let (top, bottom) = (links[0], links[4]);
    assert_eq!(answer(&rt, bottom), Value::Int(0), "cached");
    let inside = rt
        .image()
        .transact("write then look up", |tx| {
            tx.set_slot(top, "answer", &Value::Int(5))?;
            let first = tx.lookup(bottom, "answer")?.map(|(_, v)| v);
            let fresh = tx.create_object(&[top])?;
            let second = tx.lookup(fresh, "answer")?.map(|(_, v)| v);
            Ok((first, second))
        })
        .expect("commits")
        .value;
    assert_eq!(inside, (Some(Value::Int(5)), Some(Value::Int(5))));
    assert_eq!(answer(&rt, bottom), Value::Int(5));
    // A transaction that rolls back leaves the cache as the records are.
    let err = rt
        .image()
        .transact("write and fail", |tx| {
            tx.set_slot(top, "answer", &Value::Int(6))?;
            Err::<(), _>(Error::Failed("on purpose".into()))
        })
        .expect_err("fails");
    assert!(matches!(err, Error::Failed(_)));
    assert_eq!(answer(&rt, bottom), Value::Int(5));
}

#[test]
fn a_transaction_that_used_a_cached_walk_conflicts_when_the_walk_changes() {
    let (_dir, rt) = fresh();
    let links = chain(&rt, 4);
    let (top, bottom) = (links[0], links[4]);
    assert_eq!(answer(&rt, bottom), Value::Int(0));
    let mut runs = 0;
    rt.image()
        .transact("copy the answer", |tx| {
            runs += 1;
            let Some((_, value)) = tx.lookup(bottom, "answer")? else { panic!("found") };
            if runs == 1 {
                rt.image()
                    .transact("interloper", |tx2| tx2.set_slot(top, "answer", &Value::Int(7)))?;
            }
            tx.set_slot(bottom, "copied", &value)
        })
        .expect("commits on retry");
    assert_eq!(runs, 2, "the first attempt's walk went stale before it committed");
    assert_eq!(rt.send(bottom, "copied", vec![]).expect("copied"), Value::Int(7));
}

#[test]
fn concurrent_writers_never_make_a_send_answer_a_stale_value() {
    // One thread keeps rewriting the answer on the top of a chain and relinking the
    // middle; readers check, in each transaction, that the (cached) delegated answer
    // equals the holder's slot read directly from the same snapshot.
    let (_dir, rt) = fresh();
    let links = chain(&rt, 16);
    let (top, middle, below_middle, bottom) = (links[0], links[8], links[7], links[16]);
    let shadow = object(&rt, &[below_middle]);
    set(&rt, shadow, "answer", -1i64);
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 1..=301i64 {
                set(&rt, top, "answer", i);
                let parent = if i % 3 == 0 { shadow } else { below_middle };
                rt.image()
                    .transact("relink", |tx| tx.set_parents(middle, &[parent]))
                    .expect("relink");
            }
            done.store(true, Ordering::SeqCst);
        });
        for _ in 0..2 {
            s.spawn(|| {
                let mut checked = 0u32;
                while !done.load(Ordering::SeqCst) || checked == 0 {
                    rt.image()
                        .view(|tx| {
                            let (holder, value) = tx.lookup(bottom, "answer")?.expect("found");
                            let direct = tx.slot(holder, "answer")?;
                            assert_eq!(Some(value), direct, "a cached walk answered a stale value");
                            let parents = tx.parents(middle)?;
                            let expected = if parents == [shadow] { shadow } else { top };
                            assert_eq!(holder, expected, "the walk followed a stale link");
                            Ok(())
                        })
                        .expect("reads");
                    checked += 1;
                }
            });
        }
    });
    assert_eq!(answer(&rt, bottom), Value::Int(301), "the last write links past the shadow");
}

#[test]
fn big_data_values_are_answered_from_the_records_not_kept_in_the_cache() {
    let (_dir, rt) = fresh();
    let links = chain(&rt, 2);
    let (top, bottom) = (links[0], links[2]);
    set(&rt, top, "page", Value::Text("x".repeat(10_000)));
    set(&rt, top, "line", Value::Text("x".repeat(100)));
    let before = rt.image().stats();
    for _ in 0..3 {
        rt.send(bottom, "page", vec![]).expect("page");
        rt.send(bottom, "line", vec![]).expect("line");
    }
    let after = rt.image().stats();
    assert_eq!(
        after.lookup_hits - before.lookup_hits,
        2,
        "only the small value is served twice more"
    );
    assert_eq!(after.lookup_misses - before.lookup_misses, 4, "the big one is walked each time");
}
