//! `shout:` — sends `greet:` to its receiver and answers the greeting in capitals:
//! a capability that uses another one through an ordinary message send.

use batos_guest_sdk::prelude::*;

fn shout(call: Call) -> Result<Value, Error> {
    let name = call.text(0)?;
    match call.receiver.send_message("greet:", &[Value::from(name)])? {
        Value::Text(greeting) => Ok(greeting.to_uppercase().into()),
        other => Err(error(ErrorKind::Failed, format!("`greet:` answered {}, not text", other.type_name()))),
    }
}

capability!(shout);
