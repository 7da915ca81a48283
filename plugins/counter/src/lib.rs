//! `increment` — adds one to the receiver's `count` slot and answers the new count.
//! The state lives in the slot, inside the message's transaction: the persistence
//! covenant holds by construction.

use batos_guest_sdk::prelude::*;

fn increment(call: Call) -> Result<Value, Error> {
    let count = match call.receiver.get("count") {
        Ok(Value::Int(n)) => n,
        Ok(other) => {
            return Err(error(ErrorKind::BadArguments, format!("`count` holds {}, not an integer", other.type_name())))
        }
        Err(e) if e.kind == ErrorKind::NotFound => 0,
        Err(e) => return Err(e),
    };
    call.receiver.set("count", &Value::Int(count + 1))?;
    Ok(Value::Int(count + 1))
}

capability!(increment);
