//! `shout:` — sends `greet:` to its receiver and answers the greeting in capitals:
//! a capability that uses another one through an ordinary message send.

use batos_guest_sdk::prelude::*;

#[capability]
fn shout(this: &Object, name: &str) -> Result<String, Error> {
    let greeting = this.send_message("greet:", &[Value::from(name)])?;
    let greeting = String::from_value(greeting)
        .map_err(|expected| error(ErrorKind::Failed, format!("`greet:` answered {expected}")))?;
    Ok(greeting.to_uppercase())
}
