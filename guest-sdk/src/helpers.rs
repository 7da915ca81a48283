//! Slot access and sends for methods that use their receiver, in terms a small model
//! gets right. Synthesised methods get these in scope (`use batos_guest_sdk::helpers::*`):
//! a missing or mistyped slot reads as 0 or empty, and a send that fails or answers
//! another type panics with its reason, which the host reports as the method's trap.

use crate::{FromValue, IntoValue, Object, ObjectExt, Value};

/// Typed slot access and sends on an object.
pub trait Receiver {
    /// The integer slot `name`, if it holds one.
    fn get_int(&self, name: &str) -> Option<i64>;
    /// Writes the integer slot `name` (a refused write is ignored; the gate decides).
    fn set_int(&self, name: &str, value: i64);
    /// The text slot `name`, if it holds text.
    fn get_text(&self, name: &str) -> Option<String>;
    /// Writes the text slot `name`.
    fn set_text(&self, name: &str, value: impl AsRef<str>);
    /// Sends `selector` with integer arguments; the answer must be an integer.
    fn send_int(&self, selector: &str, args: &[i64]) -> i64;
    /// Sends `selector` with text arguments; the answer must be text.
    fn send_text(&self, selector: &str, args: &[&str]) -> String;
}

impl Receiver for Object {
    fn get_int(&self, name: &str) -> Option<i64> {
        match self.get(name) {
            Ok(Value::Int(n)) => Some(n),
            _ => None,
        }
    }
    fn set_int(&self, name: &str, value: i64) {
        let _ = self.set(name, &Value::Int(value));
    }
    fn get_text(&self, name: &str) -> Option<String> {
        match self.get(name) {
            Ok(Value::Text(s)) => Some(s),
            _ => None,
        }
    }
    fn set_text(&self, name: &str, value: impl AsRef<str>) {
        let _ = self.set(name, &Value::Text(value.as_ref().to_owned()));
    }
    fn send_int(&self, selector: &str, args: &[i64]) -> i64 {
        let args: Vec<Value> = args.iter().map(|n| Value::Int(*n)).collect();
        match self.send_message(selector, &args) {
            Ok(Value::Int(n)) => n,
            Ok(_) => panic!("{selector} did not answer an integer"),
            Err(e) => panic!("{selector} failed: {}", e.message),
        }
    }
    fn send_text(&self, selector: &str, args: &[&str]) -> String {
        let args: Vec<Value> = args.iter().map(|s| Value::Text((*s).to_owned())).collect();
        match self.send_message(selector, &args) {
            Ok(Value::Text(s)) => s,
            Ok(_) => panic!("{selector} did not answer text"),
            Err(e) => panic!("{selector} failed: {}", e.message),
        }
    }
}

/// The integer slot `name` of `this`, 0 when missing.
pub fn get_int(this: &Object, name: &str) -> i64 {
    this.get_int(name).unwrap_or(0)
}
/// Writes the integer slot `name` of `this`.
pub fn set_int(this: &Object, name: &str, value: i64) {
    this.set_int(name, value)
}
/// The text slot `name` of `this`, empty when missing.
pub fn get_text(this: &Object, name: &str) -> String {
    this.get_text(name).unwrap_or_default()
}
/// Writes the text slot `name` of `this`.
pub fn set_text(this: &Object, name: &str, value: impl AsRef<str>) {
    this.set_text(name, value)
}
/// Sends `selector` to `this` with integer arguments, answering an integer.
pub fn send_int(this: &Object, selector: &str, args: &[i64]) -> i64 {
    this.send_int(selector, args)
}
/// Sends `selector` to `this` with text arguments, answering text.
pub fn send_text(this: &Object, selector: &str, args: &[&str]) -> String {
    this.send_text(selector, args)
}

/// Argument lists for [`send`]: `()`, a tuple of up to four [`IntoValue`]s, or a
/// `Vec<Value>`.
pub trait IntoArgs {
    /// The arguments as values.
    fn into_args(self) -> Vec<Value>;
}

impl IntoArgs for Vec<Value> {
    fn into_args(self) -> Vec<Value> {
        self
    }
}

macro_rules! args {
    ($($t:ident $v:ident),*) => {
        impl<$($t: IntoValue),*> IntoArgs for ($($t,)*) {
            fn into_args(self) -> Vec<Value> {
                let ($($v,)*) = self;
                // A value batos cannot hold goes as nil; the method it reaches says so.
                vec![$($v.into_value().unwrap_or(Value::Nil)),*]
            }
        }
    };
}
args!();
args!(A a);
args!(A a, B b);
args!(A a, B b, C c);
args!(A a, B b, C c, D d);

/// Sends `selector` to `this` with `args` and converts the answer: the typed way for a
/// method to use what its receiver already understands. A send that fails, or answers
/// another type, panics with its reason, which the host reports as this method's
/// failure.
///
/// `let total: i64 = send(this, "sumOf:", (vec![1, 2, 3],));`
pub fn send<R: FromValue>(this: &Object, selector: &str, args: impl IntoArgs) -> R {
    match this.send_message(selector, &args.into_args()) {
        Ok(value) => match R::from_value(value) {
            Ok(answer) => answer,
            Err(expected) => panic!("`{selector}` answered something else than {expected}"),
        },
        Err(e) => panic!("`{selector}` failed: {}", e.message),
    }
}

/// The slot `name` of `this` as `T`, or `None` when it is missing or of another type.
pub fn get<T: FromValue>(this: &Object, name: &str) -> Option<T> {
    this.get(name).ok().and_then(|v| T::from_value(v).ok())
}

/// Writes the slot `name` of `this` (a refused write panics with the gate's reason).
pub fn set<T: IntoValue>(this: &Object, name: &str, value: T) {
    let value = match value.into_value() {
        Ok(v) => v,
        Err(e) => panic!("slot `{name}`: {}", e.message),
    };
    if let Err(e) = this.set(name, &value) {
        panic!("cannot write slot `{name}`: {}", e.message);
    }
}
