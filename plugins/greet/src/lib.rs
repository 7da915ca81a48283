//! `greet:` — answers "Hello, NAME!" for a text argument.

use batos_guest_sdk::prelude::*;

#[capability]
fn greet(name: &str) -> String {
    format!("Hello, {name}!")
}

#[cfg(test)]
mod tests {
    use batos_guest_sdk::{testing, Value};

    #[test]
    fn greets_by_name() {
        let answer = testing::call(super::__batos_call, vec![Value::from("Ada")]);
        assert_eq!(answer.map_err(|e| e.message), Ok(Value::from("Hello, Ada!")));
    }

    #[test]
    fn refuses_a_number() {
        let answer = testing::call(super::__batos_call, vec![Value::Int(3)]);
        let message = answer.map(|_| ()).map_err(|e| e.message);
        assert_eq!(message, Err("argument 1 must be text, got integer".to_owned()));
    }
}
