//! Inputs the host makes up to tell candidates apart: from the signature's parameter
//! types and the arguments of the examples and the real call, small variations a
//! correct function must answer consistently — and on which wrong ones tend to differ
//! (AlphaCode's behavioural clustering, CodeT's execution agreement).
//!
//! Values stay small and non-negative where a size is likely (a count, an index, a
//! length): an input that makes every candidate loop to its deadline tells nothing
//! and costs seconds.

use crate::candidate::Type;
use crate::image::Value;

/// How many generated input tuples a candidate is run on.
pub const GENERATED: usize = 8;

/// Up to [`GENERATED`] argument tuples for `params`, made from the `seen` tuples (the
/// examples' arguments and the real call's) by varying one argument at a time, then
/// from small values of each type. Deterministic: every candidate of a cycle runs the
/// same inputs. None of the `seen` tuples is repeated.
pub fn generate(params: &[Type], seen: &[Vec<Value>]) -> Vec<Vec<Value>> {
    let mut out: Vec<Vec<Value>> = Vec::new();
    let push = |args: Vec<Value>, out: &mut Vec<Vec<Value>>| {
        if args.len() == params.len()
            && params.iter().zip(&args).all(|(t, a)| t.fits(a) || t.unify(&Type::of(a)) == *t)
            && !seen.contains(&args)
            && !out.contains(&args)
            && out.len() < GENERATED
        {
            out.push(args);
        }
    };
    if params.is_empty() {
        // Nothing to vary: a method of no arguments differs from another only over a
        // sequence of calls (it keeps state in its receiver), so it is called again.
        return vec![Vec::new(); 3];
    }
    // Vary one argument of each seen tuple at a time.
    for base in seen.iter().filter(|b| b.len() == params.len()) {
        for (i, value) in base.iter().enumerate() {
            for variant in variants(value, &params[i]) {
                let mut args = base.clone();
                args[i] = variant;
                push(args, &mut out);
            }
        }
    }
    // Then tuples of small values, one type at a time.
    for round in 0..GENERATED {
        let args: Vec<Value> = params.iter().map(|t| small(t, round)).collect();
        push(args, &mut out);
    }
    out
}

/// Neighbours of a value of type `t`.
fn variants(value: &Value, t: &Type) -> Vec<Value> {
    match value {
        Value::Int(n) => {
            let mut v = vec![Value::Int(n + 1), Value::Int(0), Value::Int(1)];
            if *n > 1 {
                v.push(Value::Int(n - 1));
                v.push(Value::Int(n / 2));
            }
            v
        }
        Value::Float(f) => vec![Value::Float(f * 2.0), Value::Float(0.5), Value::Float(-f)],
        Value::Bool(b) => vec![Value::Bool(!b)],
        Value::Text(s) => {
            let reversed: String = s.chars().rev().collect();
            let mut v = vec![Value::Text(reversed), Value::Text(format!("{s}a"))];
            if let Some((i, _)) = s.char_indices().nth(s.chars().count() / 2) {
                v.push(Value::Text(s[..i].to_owned()));
            }
            v.push(Value::Text(s.to_uppercase()));
            v
        }
        Value::List(items) => {
            let mut v = Vec::new();
            let mut reversed = items.clone();
            reversed.reverse();
            v.push(Value::List(reversed));
            if items.len() > 1 {
                v.push(Value::List(items[..items.len() - 1].to_vec()));
            }
            if let Some(first) = items.first() {
                let mut longer = items.clone();
                longer.push(first.clone());
                v.push(Value::List(longer));
            }
            if let Type::List(item) = t {
                v.push(Value::List(vec![small(item, 2), small(item, 3), small(item, 1)]));
            }
            v
        }
        _ => Vec::new(),
    }
}

/// A small value of type `t`; `round` picks which.
fn small(t: &Type, round: usize) -> Value {
    match t {
        Type::Int => Value::Int([0, 1, 2, 3, 5, 7, 10, 4][round % 8]),
        Type::Float => Value::Float([0.0, 1.0, 2.5, -1.5, 3.25, 10.0, 0.5, 4.0][round % 8]),
        Type::Bool => Value::Bool(round % 2 == 1),
        Type::Text => Value::Text(
            ["", "a", "ab", "abc", "hello world", "Racecar", "a b c", "x1y2"][round % 8].into(),
        ),
        Type::List(item) => {
            Value::List((0..round % 5).map(|i| small(item, round + i + 1)).collect())
        }
        Type::Map(item) => Value::Map(
            (0..round % 3)
                .map(|i| (["a", "b", "c"][i].to_owned(), small(item, round + i)))
                .collect(),
        ),
        Type::Option(_) if round.is_multiple_of(3) => Value::Nil,
        Type::Option(inner) => small(inner, round),
        Type::Object | Type::Any => Value::Nil,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_vary_the_seen_arguments_and_fit_the_types() {
        let params = [Type::Int, Type::List(Box::new(Type::Text))];
        let seen = vec![vec![Value::Int(5), Value::List(vec![Value::Text("x".into())])]];
        let inputs = generate(&params, &seen);
        assert_eq!(inputs.len(), GENERATED);
        assert!(!inputs.contains(&seen[0]), "the seen tuple is not repeated");
        assert!(inputs.contains(&vec![Value::Int(6), Value::List(vec![Value::Text("x".into())])]));
        assert!(inputs.iter().all(|args| params.iter().zip(args).all(|(t, a)| t.fits(a))));
        assert_eq!(generate(&params, &seen), inputs, "deterministic");
        assert_eq!(
            generate(&[], &[vec![]]),
            vec![Vec::<Value>::new(); 3],
            "without parameters: calls again, for the state it keeps"
        );
    }
}
