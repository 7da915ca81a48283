//! `greet:` — answers "Hello, NAME!" for a text argument.

use batos_guest_sdk::prelude::*;

fn greet(call: Call) -> Result<Value, Error> {
    let name = call.text(0)?;
    Ok(format!("Hello, {name}!").into())
}

capability!(greet);
