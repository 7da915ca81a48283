//! `txn:` — a list-append transaction, the workload of Jepsen's Elle checker: each
//! operation `["append", KEY, N]` appends the integer N to the list in the receiver's
//! slot KEY, `["r", KEY, null]` reads that list. All of them run in the message's
//! one transaction, so the image's isolation is what a checker of the answers sees.

use batos_guest_sdk::prelude::*;

#[capability]
fn txn(this: &Object, ops: Vec<Vec<Value>>) -> Result<Vec<Vec<Value>>, Error> {
    let shape = || error(ErrorKind::BadArguments, "each operation is [\"append\", KEY, INTEGER] or [\"r\", KEY, null]");
    let mut done = Vec::with_capacity(ops.len());
    for op in ops {
        let mut parts = op.into_iter();
        let (Some(Value::Text(f)), Some(Value::Text(key)), value) = (parts.next(), parts.next(), parts.next()) else {
            return Err(shape());
        };
        let mut list: Vec<Value> = match this.get(&key) {
            Ok(Value::List(items)) => items,
            Ok(Value::Nil) => Vec::new(),
            Ok(_) => return Err(error(ErrorKind::BadArguments, format!("slot `{key}` does not hold a list"))),
            Err(e) if e.kind == ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        match (f.as_str(), value) {
            ("append", Some(Value::Int(n))) => {
                list.push(Value::Int(n));
                this.set(&key, &Value::List(list))?;
                done.push(vec![Value::Text(f), Value::Text(key), Value::Int(n)]);
            }
            ("r", _) => done.push(vec![Value::Text(f), Value::Text(key), Value::List(list)]),
            ("append", _) => return Err(shape()),
            (other, _) => return Err(error(ErrorKind::BadArguments, format!("unknown operation `{other}`; use append or r"))),
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use batos_guest_sdk::{testing, Value};

    // Outside the host there is no receiver (see the SDK's `testing`): what is tested
    // here is the typed entry's refusal of arguments that are not operations; the
    // operations themselves are checked through a kernel by tests/cli/jepsen.rs.
    #[test]
    fn refuses_operations_that_are_not_lists() {
        let answer = testing::call(super::__batos_call, vec![Value::Text("append".into())]);
        assert_eq!(answer.err().map(|e| e.message), Some("argument 1 must be a list, got text".into()));
    }
}
