//! Lookup and delegation: own slots first, then parents depth-first in order, each
//! object once; data slots answer as values; unknown selectors reach doesNotUnderstand.

use crate::common;

use batos_runtime::lookup;
use batos_runtime::{Error, Oid, Value};
use common::{fresh, object, set, text};

#[test]
fn parents_are_searched_in_order() {
    let (_dir, rt) = fresh();
    let first = object(&rt, &[]);
    let second = object(&rt, &[]);
    set(&rt, first, "who", "first");
    set(&rt, second, "who", "second");
    set(&rt, second, "only_second", 2i64);
    let child = object(&rt, &[first, second]);
    assert_eq!(rt.send(child, "who", vec![]).expect("found"), text("first"));
    assert_eq!(rt.send(child, "only_second", vec![]).expect("found"), Value::Int(2));

    let reversed = object(&rt, &[second, first]);
    assert_eq!(rt.send(reversed, "who", vec![]).expect("found"), text("second"));
}

#[test]
fn depth_first_goes_up_the_first_parent_before_trying_the_second() {
    // child -> [left, right]; left -> [grand]; both grand and right define `x`.
    let (_dir, rt) = fresh();
    let grand = object(&rt, &[]);
    let left = object(&rt, &[grand]);
    let right = object(&rt, &[]);
    set(&rt, grand, "x", "grand");
    set(&rt, right, "x", "right");
    let child = object(&rt, &[left, right]);
    assert_eq!(rt.send(child, "x", vec![]).expect("found"), text("grand"));
}

#[test]
fn diamond_visits_the_shared_ancestor_once_and_finds_later_parents() {
    //      top
    //     /   \
    //  left   right(y)
    //     \   /
    //     bottom
    let (_dir, rt) = fresh();
    let top = object(&rt, &[]);
    let left = object(&rt, &[top]);
    let right = object(&rt, &[top]);
    set(&rt, top, "x", "top");
    set(&rt, right, "y", "right");
    let bottom = object(&rt, &[left, right]);
    assert_eq!(rt.send(bottom, "x", vec![]).expect("found"), text("top"));
    assert_eq!(rt.send(bottom, "y", vec![]).expect("found"), text("right"));
    let holder = rt.view(|cx| cx.lookup(bottom, "x")).expect("lookup runs").map(|(h, _)| h);
    assert_eq!(holder, Some(top));
}

#[test]
fn cycles_terminate() {
    let (_dir, rt) = fresh();
    let a = object(&rt, &[]);
    let b = object(&rt, &[a]);
    rt.image().transact("cycle", |tx| tx.set_parents(a, &[b])).expect("cycle made");
    set(&rt, b, "here", true);
    assert_eq!(rt.send(a, "here", vec![]).expect("found through the cycle"), Value::Bool(true));
    let missing = rt.image().view(|tx| lookup(tx, a, "nowhere")).expect("lookup terminates");
    assert_eq!(missing, None);
    // No traits in the cycle, so nothing handles doesNotUnderstand either.
    let err = rt.send(a, "nowhere", vec![]).expect_err("nobody understands");
    assert!(matches!(err, Error::DoesNotUnderstand { receiver, .. } if receiver == a), "{err}");
}

#[test]
fn own_slots_shadow_inherited_ones() {
    let (_dir, rt) = fresh();
    let genesis = rt.resolve("genesis").expect("genesis");
    let child = object(&rt, &[genesis]);
    set(&rt, genesis, "colour", "red");
    let grandchild = object(&rt, &[child]);
    assert_eq!(rt.send(grandchild, "colour", vec![]).expect("inherited"), text("red"));
    set(&rt, grandchild, "colour", "blue");
    assert_eq!(rt.send(grandchild, "colour", vec![]).expect("own"), text("blue"));
    assert_eq!(rt.send(child, "colour", vec![]).expect("the parent is untouched"), text("red"));
    // Removing the own slot uncovers the inherited one again.
    rt.send(grandchild, "removeSlot:", vec![text("colour")]).expect("removed");
    assert_eq!(rt.send(grandchild, "colour", vec![]).expect("inherited again"), text("red"));
}

#[test]
fn clones_copy_slots_share_parents_and_are_independent() {
    let (_dir, rt) = fresh();
    let genesis = rt.resolve("genesis").expect("genesis");
    set(&rt, genesis, "count", 1i64);
    let clone = rt.clone_object(genesis, Some("copy")).expect("clone");
    assert_ne!(clone, genesis);
    let original = rt.object(genesis).expect("genesis");
    let copy = rt.object(clone).expect("clone");
    assert_eq!(copy.parents, original.parents, "Self semantics: same parents, not the original");
    assert_eq!(copy.slots, original.slots);

    set(&rt, clone, "count", 2i64);
    set(&rt, genesis, "other", "only on genesis");
    assert_eq!(rt.send(genesis, "count", vec![]).expect("count"), Value::Int(1));
    assert_eq!(rt.send(clone, "count", vec![]).expect("count"), Value::Int(2));
    assert!(rt.send(clone, "other", vec![]).is_err(), "later slots of the original are not shared");
    assert_eq!(rt.resolve("copy").expect("named root"), clone);
}

#[test]
fn data_slots_refuse_arguments_and_methods_take_them() {
    let (_dir, rt) = fresh();
    let genesis = rt.resolve("genesis").expect("genesis");
    set(&rt, genesis, "x", 5i64);
    let err = rt.send(genesis, "x", vec![Value::Int(1)]).expect_err("data takes no args");
    assert!(matches!(err, Error::BadArguments { .. }), "{err}");
    let err = rt
        .send(genesis, "setSlot:value:", vec![Value::Int(1), Value::Int(2)])
        .expect_err("slot name must be text");
    assert!(err.to_string().contains("argument 1 must be text"), "{err}");
}

#[test]
fn unknown_selectors_reach_does_not_understand_with_a_reified_message() {
    let (_dir, rt) = fresh();
    let genesis = rt.resolve("genesis").expect("genesis");
    let err = rt.send(genesis, "frobnicate:", vec![Value::Int(7)]).expect_err("not understood");
    assert!(
        matches!(&err, Error::DoesNotUnderstand { receiver, selector } if *receiver == genesis && selector == "frobnicate:"),
        "{err}"
    );
    assert_eq!(rt.image().last_tx().map(|t| t.0), Some(1), "a failed send commits nothing");

    // A handler installed on the receiver sees the reified message object.
    let rt = {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("image");
        let rt = batos_runtime::Runtime::builder()
            .primitive("test.echoMessage", |cx, call| {
                let message = call.object(0)?;
                let selector = cx.tx().slot(message, "selector")?.unwrap_or_default();
                let args = cx.tx().slot(message, "arguments")?.unwrap_or_default();
                let receiver = cx.tx().slot(message, "receiver")?.unwrap_or_default();
                Ok(Value::List(vec![selector, args, receiver]))
            })
            .open(&path)
            .expect("opens");
        (dir, rt)
    };
    let (_dir, rt) = rt;
    let genesis = rt.resolve("genesis").expect("genesis");
    set(
        &rt,
        genesis,
        "doesNotUnderstand",
        Value::Method(batos_runtime::Method::Native { primitive: "test.echoMessage".into() }),
    );
    let answer = rt.send(genesis, "frobnicate:", vec![Value::Int(7)]).expect("handled");
    assert_eq!(
        answer,
        Value::List(vec![
            text("frobnicate:"),
            Value::List(vec![Value::Int(7)]),
            Value::Object(genesis)
        ])
    );
}

#[test]
fn unknown_objects_and_primitives_are_clear_errors() {
    let (_dir, rt) = fresh();
    let err = rt.send(Oid(999), "clone", vec![]).expect_err("no such object");
    assert!(matches!(err, Error::UnknownObject(Oid(999))), "{err}");
    assert!(matches!(rt.resolve("#999"), Err(Error::UnknownObject(_))));
    assert!(matches!(rt.resolve("nobody"), Err(Error::UnknownRoot(_))));
    let genesis = rt.resolve("genesis").expect("genesis");
    set(
        &rt,
        genesis,
        "broken",
        Value::Method(batos_runtime::Method::Native { primitive: "not.registered".into() }),
    );
    let err = rt.send(genesis, "broken", vec![]).expect_err("unregistered");
    assert!(matches!(err, Error::UnknownPrimitive { .. }), "{err}");
}

#[test]
fn runaway_recursion_is_stopped_at_the_depth_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = batos_runtime::Runtime::builder()
        .max_send_depth(32)
        .primitive("test.forever", |cx, call| cx.send(call.receiver, call.selector, &[]))
        .open(dir.path().join("image"))
        .expect("opens");
    let genesis = rt.resolve("genesis").expect("genesis");
    set(
        &rt,
        genesis,
        "forever",
        Value::Method(batos_runtime::Method::Native { primitive: "test.forever".into() }),
    );
    let err = rt.send(genesis, "forever", vec![]).expect_err("too deep");
    assert!(matches!(err, Error::SendTooDeep { depth: 32, .. }), "{err}");
}
