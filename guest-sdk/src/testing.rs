//! Unit-testing a capability without an image: `cargo test` on the host runs the typed
//! entry `#[capability]` made — the same argument and answer conversions the host's
//! call goes through — on values the test gives.
//!
//! ```
//! use batos_guest_sdk::prelude::*;
//! use batos_guest_sdk::testing;
//!
//! #[capability]
//! fn mean(values: Vec<f64>) -> f64 {
//!     values.iter().sum::<f64>() / values.len() as f64
//! }
//!
//! // In a plugin this is a `#[test]`.
//! let two = Value::List(vec![Value::Float(1.0), Value::Int(2)]);
//! assert_eq!(testing::call(__batos_call, vec![two]).ok(), Some(Value::Float(1.5)));
//! let wrong = testing::call(__batos_call, vec![Value::Text("1, 2".into())]);
//! assert_eq!(wrong.err().map(|e| e.message), Some("argument 1 must be a list, got text".into()));
//! ```
//!
//! There is no receiver outside the host: a capability whose first parameter is
//! `&Object` answers a `bad-arguments` error here, and the host's imports (`log`,
//! `now`, `complete`, object handles) are not available.

use crate::{Error, Object, Value};

/// The typed entry `#[capability]` defines as `__batos_call`.
pub type Entry = fn(Option<&Object>, Vec<Value>) -> Result<Value, Error>;

/// Calls a capability's typed entry with `args`, as the host would with no receiver.
pub fn call(entry: Entry, args: Vec<Value>) -> Result<Value, Error> {
    entry(None, args)
}
