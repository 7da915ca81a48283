//! The built-in native primitives, installed as methods on `traits` at awakening, so
//! every object that delegates to `traits` understands them.
//!
//! | selector           | answers                                              |
//! |--------------------|------------------------------------------------------|
//! | `clone`            | a new object: copy of the slots, same parents (Self) |
//! | `setSlot:value:`   | the receiver, after writing one of its own slots     |
//! | `slot:`            | an own slot's value, without running it (or nil)     |
//! | `removeSlot:`      | whether the own slot existed                         |
//! | `slotNames`        | the own slot names                                   |
//! | `parents`          | the `parent*` list                                   |
//! | `setParents:`      | the receiver, after replacing its `parent*` list     |
//! | `respondsTo:`      | whether lookup finds the selector                    |
//! | `doesNotUnderstand`| an error naming the message (the synthesis issue replaces it) |
//!
//! A primitive has no authority of its own: each write goes through [`Context`]'s gated
//! methods with the caller's authority (see [`super::gate`]), so a capability that
//! sends `setSlot:value:` to an object it may not write is refused as if it had written
//! the slot itself.

use std::collections::HashMap;
use std::sync::Arc;

use crate::call::Call;
use crate::dispatch::{Context, Primitive, DOES_NOT_UNDERSTAND};
use crate::error::{Error, Result};
use crate::image::Value;

fn clone(cx: &mut Context<'_, '_>, call: &Call<'_>) -> Result<Value> {
    call.expect_arity(0)?;
    Ok(Value::Object(cx.clone_object(call.receiver)?))
}

fn set_slot(cx: &mut Context<'_, '_>, call: &Call<'_>) -> Result<Value> {
    call.expect_arity(2)?;
    cx.set_slot(call.receiver, call.text(0)?, call.arg(1)?)?;
    Ok(Value::Object(call.receiver))
}

fn slot(cx: &mut Context<'_, '_>, call: &Call<'_>) -> Result<Value> {
    call.expect_arity(1)?;
    Ok(cx.tx().slot(call.receiver, call.text(0)?)?.unwrap_or(Value::Nil))
}

fn remove_slot(cx: &mut Context<'_, '_>, call: &Call<'_>) -> Result<Value> {
    call.expect_arity(1)?;
    Ok(Value::Bool(cx.remove_slot(call.receiver, call.text(0)?)?))
}

fn slot_names(cx: &mut Context<'_, '_>, call: &Call<'_>) -> Result<Value> {
    call.expect_arity(0)?;
    Ok(Value::List(cx.tx().slots(call.receiver)?.into_keys().map(Value::Text).collect()))
}

fn parents(cx: &mut Context<'_, '_>, call: &Call<'_>) -> Result<Value> {
    call.expect_arity(0)?;
    Ok(Value::List(cx.tx().parents(call.receiver)?.into_iter().map(Value::Object).collect()))
}

fn set_parents(cx: &mut Context<'_, '_>, call: &Call<'_>) -> Result<Value> {
    call.expect_arity(1)?;
    cx.set_parents(call.receiver, &call.objects(0)?)?;
    Ok(Value::Object(call.receiver))
}

fn responds_to(cx: &mut Context<'_, '_>, call: &Call<'_>) -> Result<Value> {
    call.expect_arity(1)?;
    Ok(Value::Bool(cx.lookup(call.receiver, call.text(0)?)?.is_some()))
}

fn does_not_understand(cx: &mut Context<'_, '_>, call: &Call<'_>) -> Result<Value> {
    let message = call.object(0)?;
    let selector = match cx.tx().slot(message, "selector")? {
        Some(Value::Text(s)) => s,
        _ => {
            return Err(Error::bad_arguments(
                call.selector,
                "the message object has no `selector` text slot",
            ))
        }
    };
    Err(Error::DoesNotUnderstand { receiver: call.receiver, selector })
}

/// Selector → primitive name, as installed on `traits`. The primitive is registered
/// under the same name as its selector.
pub(crate) const TRAITS_METHODS: [&str; 9] = [
    "clone",
    "setSlot:value:",
    "slot:",
    "removeSlot:",
    "slotNames",
    "parents",
    "setParents:",
    "respondsTo:",
    DOES_NOT_UNDERSTAND,
];

pub(crate) fn builtins() -> HashMap<String, Primitive> {
    let table: [(&str, Primitive); 9] = [
        ("clone", Arc::new(clone)),
        ("setSlot:value:", Arc::new(set_slot)),
        ("slot:", Arc::new(slot)),
        ("removeSlot:", Arc::new(remove_slot)),
        ("slotNames", Arc::new(slot_names)),
        ("parents", Arc::new(parents)),
        ("setParents:", Arc::new(set_parents)),
        ("respondsTo:", Arc::new(responds_to)),
        (DOES_NOT_UNDERSTAND, Arc::new(does_not_understand)),
    ];
    table.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}
