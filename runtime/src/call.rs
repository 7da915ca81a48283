//! [`Call`]: one message as a method sees it, with typed argument accessors whose
//! errors name the selector, the position and the type that was expected.

use crate::error::{Error, Result};
use crate::image::{Oid, Value};

/// The message a method is running for.
#[derive(Clone, Copy, Debug)]
pub struct Call<'a> {
    /// The object that received the message (not necessarily the slot's holder).
    pub receiver: Oid,
    /// The selector sent.
    pub selector: &'a str,
    /// The arguments.
    pub args: &'a [Value],
}

impl Call<'_> {
    /// Fails unless exactly `n` arguments were given.
    pub fn expect_arity(&self, n: usize) -> Result<()> {
        if self.args.len() == n {
            return Ok(());
        }
        let plural = if n == 1 { "" } else { "s" };
        Err(Error::bad_arguments(
            self.selector,
            format!("expects {n} argument{plural}, got {}", self.args.len()),
        ))
    }

    /// Argument `i` (0-based), whatever its type.
    pub fn arg(&self, i: usize) -> Result<&Value> {
        self.args.get(i).ok_or_else(|| {
            Error::bad_arguments(
                self.selector,
                format!("argument {} is missing ({} given)", i + 1, self.args.len()),
            )
        })
    }

    fn wrong(&self, i: usize, expected: &str, got: &Value) -> Error {
        Error::bad_arguments(
            self.selector,
            format!("argument {} must be {expected}, got {}", i + 1, got.type_name()),
        )
    }

    /// Argument `i` as text.
    pub fn text(&self, i: usize) -> Result<&str> {
        match self.arg(i)? {
            Value::Text(s) => Ok(s),
            other => Err(self.wrong(i, "text", other)),
        }
    }

    /// Argument `i` as an integer.
    pub fn int(&self, i: usize) -> Result<i64> {
        match self.arg(i)? {
            Value::Int(n) => Ok(*n),
            other => Err(self.wrong(i, "an integer", other)),
        }
    }

    /// Argument `i` as an object reference.
    pub fn object(&self, i: usize) -> Result<Oid> {
        match self.arg(i)? {
            Value::Object(o) => Ok(*o),
            other => Err(self.wrong(i, "an object", other)),
        }
    }

    /// Argument `i` as a list of object references.
    pub fn objects(&self, i: usize) -> Result<Vec<Oid>> {
        match self.arg(i)? {
            Value::List(items) => items
                .iter()
                .map(|v| match v {
                    Value::Object(o) => Ok(*o),
                    other => Err(self.wrong(i, "a list of objects", other)),
                })
                .collect(),
            other => Err(self.wrong(i, "a list of objects", other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accessors_name_what_is_wrong() {
        let args = [Value::Int(3), Value::Text("x".into())];
        let call = Call { receiver: Oid(1), selector: "at:put:", args: &args };
        assert_eq!(call.int(0).ok(), Some(3));
        assert_eq!(call.text(1).ok(), Some("x"));
        let e = call.text(0).expect_err("an int is not text").to_string();
        assert!(e.contains("at:put:") && e.contains("argument 1 must be text, got integer"), "{e}");
        let e = call.arg(2).expect_err("missing").to_string();
        assert!(e.contains("argument 3 is missing"), "{e}");
        assert!(call.expect_arity(2).is_ok());
        assert!(call.expect_arity(1).is_err());
    }
}
