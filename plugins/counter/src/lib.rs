//! `increment` — adds one to the receiver's `count` slot and answers the new count.
//! The state lives in the slot, inside the message's transaction: the persistence
//! covenant holds by construction.

use batos_guest_sdk::prelude::*;

#[capability]
fn increment(this: &Object) -> Result<i64, Error> {
    let count = match this.get("count") {
        Ok(value) => i64::from_value(value).map_err(|expected| {
            error(ErrorKind::BadArguments, format!("`count` must be {expected}"))
        })?,
        Err(e) if e.kind == ErrorKind::NotFound => 0,
        Err(e) => return Err(e),
    };
    this.set("count", &Value::Int(count + 1))?;
    Ok(count + 1)
}
