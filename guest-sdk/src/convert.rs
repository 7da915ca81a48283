//! Typed values: [`FromValue`] turns a batos [`Value`] into a Rust type, [`IntoValue`]
//! the other way, and [`IntoError`] turns a function's error into the contract's
//! [`Error`]. `#[capability]` uses them for every argument and answer, so a capability
//! is an ordinary Rust function.
//!
//! What converts, both ways: integers of every width (range-checked), `f64`/`f32` (an
//! integer argument is taken as a float), `bool`, `String`/`char`/`&'static str` (in),
//! `Vec`, `HashSet`/`BTreeSet` (lists), `HashMap`/`BTreeMap` (maps; keys are text, or
//! integers and chars written as text), `Option` (nil is `None`), pairs and triples
//! (lists of two or three), `Object`, and `Value` itself.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::Hash;

use crate::{error, Error, ErrorKind, Object, Value};

/// A Rust type a batos value converts into.
pub trait FromValue: Sized {
    /// The value as this type, or what the value should have been (for the error that
    /// names the argument): "an integer", "a list of texts".
    fn from_value(value: Value) -> Result<Self, String>;
}

/// A Rust type that converts into a batos value.
pub trait IntoValue {
    /// The value; fails only where batos cannot hold it (an integer beyond `i64`, a
    /// float that is not finite is kept, a map key that is not text).
    fn into_value(self) -> Result<Value, Error>;
}

/// An error a capability's function may answer, turned into the contract's [`Error`].
pub trait IntoError {
    /// The error as the host will see it.
    fn into_error(self) -> Error;
}

fn mismatch(expected: &str, got: &Value) -> String {
    format!("{expected}, got {}", got.type_name())
}

impl FromValue for Value {
    fn from_value(value: Value) -> Result<Self, String> {
        Ok(value)
    }
}

impl IntoValue for Value {
    fn into_value(self) -> Result<Value, Error> {
        Ok(self)
    }
}

impl IntoValue for () {
    fn into_value(self) -> Result<Value, Error> {
        Ok(Value::Nil)
    }
}

macro_rules! integers {
    ($($t:ty),*) => {$(
        impl FromValue for $t {
            fn from_value(value: Value) -> Result<Self, String> {
                match value {
                    Value::Int(n) => <$t>::try_from(n).map_err(|_| {
                        format!("an integer that fits {}, got {n}", stringify!($t))
                    }),
                    other => Err(mismatch("an integer", &other)),
                }
            }
        }
        impl IntoValue for $t {
            fn into_value(self) -> Result<Value, Error> {
                i64::try_from(self).map(Value::Int).map_err(|_| {
                    error(ErrorKind::Failed, format!("the answer {self} does not fit a batos integer (i64)"))
                })
            }
        }
    )*};
}
integers!(i8, i16, i32, i64, i128, isize, u8, u16, u32, u64, u128, usize);

impl FromValue for f64 {
    fn from_value(value: Value) -> Result<Self, String> {
        match value {
            Value::Float(f) => Ok(f),
            Value::Int(n) => Ok(n as f64),
            other => Err(mismatch("a number", &other)),
        }
    }
}

impl FromValue for f32 {
    fn from_value(value: Value) -> Result<Self, String> {
        f64::from_value(value).map(|f| f as f32)
    }
}

impl IntoValue for f64 {
    fn into_value(self) -> Result<Value, Error> {
        Ok(Value::Float(self))
    }
}

impl IntoValue for f32 {
    fn into_value(self) -> Result<Value, Error> {
        Ok(Value::Float(f64::from(self)))
    }
}

impl FromValue for bool {
    fn from_value(value: Value) -> Result<Self, String> {
        match value {
            Value::Bool(b) => Ok(b),
            other => Err(mismatch("a boolean", &other)),
        }
    }
}

impl IntoValue for bool {
    fn into_value(self) -> Result<Value, Error> {
        Ok(Value::Bool(self))
    }
}

impl FromValue for String {
    fn from_value(value: Value) -> Result<Self, String> {
        match value {
            Value::Text(s) => Ok(s),
            other => Err(mismatch("text", &other)),
        }
    }
}

/// A borrowed text argument (`Vec<&str>`): each call runs in a fresh instance, so the
/// text lives as long as the call, which is what leaking it means here.
impl FromValue for &'static str {
    fn from_value(value: Value) -> Result<Self, String> {
        String::from_value(value).map(|s| &*Box::leak(s.into_boxed_str()))
    }
}

impl IntoValue for String {
    fn into_value(self) -> Result<Value, Error> {
        Ok(Value::Text(self))
    }
}

impl IntoValue for &str {
    fn into_value(self) -> Result<Value, Error> {
        Ok(Value::Text(self.to_owned()))
    }
}

impl FromValue for char {
    fn from_value(value: Value) -> Result<Self, String> {
        match value {
            Value::Text(s) => {
                let mut chars = s.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) => Ok(c),
                    _ => Err(format!("a text of one character, got {s:?}")),
                }
            }
            other => Err(mismatch("a text of one character", &other)),
        }
    }
}

impl IntoValue for char {
    fn into_value(self) -> Result<Value, Error> {
        Ok(Value::Text(self.to_string()))
    }
}

impl FromValue for Object {
    fn from_value(value: Value) -> Result<Self, String> {
        match value {
            Value::Object(o) => Ok(o),
            other => Err(mismatch("an object", &other)),
        }
    }
}

impl IntoValue for Object {
    fn into_value(self) -> Result<Value, Error> {
        Ok(Value::Object(self))
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(value: Value) -> Result<Self, String> {
        match value {
            Value::Nil => Ok(None),
            other => T::from_value(other).map(Some).map_err(|e| format!("nil or {e}")),
        }
    }
}

impl<T: IntoValue> IntoValue for Option<T> {
    fn into_value(self) -> Result<Value, Error> {
        self.map_or(Ok(Value::Nil), IntoValue::into_value)
    }
}

/// The items of a list (bytes count as a list of integers), each converted.
fn items<T: FromValue>(value: Value) -> Result<Vec<T>, String> {
    let items = match value {
        Value::List(items) => items,
        Value::Bytes(bytes) => bytes.into_iter().map(|b| Value::Int(i64::from(b))).collect(),
        other => return Err(mismatch("a list", &other)),
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, v)| T::from_value(v).map_err(|e| format!("a list whose item {} is {e}", i + 1)))
        .collect()
}

fn list<T: IntoValue>(items: impl IntoIterator<Item = T>) -> Result<Value, Error> {
    items.into_iter().map(IntoValue::into_value).collect::<Result<_, _>>().map(Value::List)
}

impl<T: FromValue> FromValue for Vec<T> {
    fn from_value(value: Value) -> Result<Self, String> {
        items(value)
    }
}

impl<T: IntoValue> IntoValue for Vec<T> {
    fn into_value(self) -> Result<Value, Error> {
        list(self)
    }
}

impl<T: IntoValue + Clone> IntoValue for &[T] {
    fn into_value(self) -> Result<Value, Error> {
        list(self.iter().cloned())
    }
}

impl<T: FromValue + Ord> FromValue for BTreeSet<T> {
    fn from_value(value: Value) -> Result<Self, String> {
        items(value).map(|v: Vec<T>| v.into_iter().collect())
    }
}

impl<T: IntoValue> IntoValue for BTreeSet<T> {
    fn into_value(self) -> Result<Value, Error> {
        list(self)
    }
}

impl<T: FromValue + Eq + Hash> FromValue for HashSet<T> {
    fn from_value(value: Value) -> Result<Self, String> {
        items(value).map(|v: Vec<T>| v.into_iter().collect())
    }
}

/// Sorted, so the same set always answers the same list.
impl<T: IntoValue + Ord> IntoValue for HashSet<T> {
    fn into_value(self) -> Result<Value, Error> {
        let mut items: Vec<T> = self.into_iter().collect();
        items.sort();
        list(items)
    }
}

/// A map key: batos maps have text keys; integers and chars are written as text.
pub trait MapKey: Sized {
    /// The key from its text.
    fn from_key(key: String) -> Result<Self, String>;
    /// The key as text.
    fn into_key(self) -> String;
}

impl MapKey for String {
    fn from_key(key: String) -> Result<Self, String> {
        Ok(key)
    }
    fn into_key(self) -> String {
        self
    }
}

impl MapKey for char {
    fn from_key(key: String) -> Result<Self, String> {
        char::from_value(Value::Text(key))
    }
    fn into_key(self) -> String {
        self.to_string()
    }
}

macro_rules! integer_keys {
    ($($t:ty),*) => {$(
        impl MapKey for $t {
            fn from_key(key: String) -> Result<Self, String> {
                key.parse().map_err(|_| format!("a key that is an integer, got {key:?}"))
            }
            fn into_key(self) -> String {
                self.to_string()
            }
        }
    )*};
}
integer_keys!(i8, i16, i32, i64, isize, u8, u16, u32, u64, usize);

fn entries<K: MapKey, V: FromValue>(value: Value) -> Result<Vec<(K, V)>, String> {
    match value {
        Value::Map(map) => map
            .into_iter()
            .map(|(k, v)| {
                let value = V::from_value(v).map_err(|e| format!("a map whose `{k}` is {e}"))?;
                Ok((K::from_key(k)?, value))
            })
            .collect(),
        other => Err(mismatch("a map", &other)),
    }
}

fn map<K: MapKey, V: IntoValue>(entries: impl IntoIterator<Item = (K, V)>) -> Result<Value, Error> {
    let mut out = BTreeMap::new();
    for (k, v) in entries {
        out.insert(k.into_key(), v.into_value()?);
    }
    Ok(Value::Map(out))
}

impl<K: MapKey + Ord, V: FromValue> FromValue for BTreeMap<K, V> {
    fn from_value(value: Value) -> Result<Self, String> {
        entries(value).map(|e| e.into_iter().collect())
    }
}

impl<K: MapKey, V: IntoValue> IntoValue for BTreeMap<K, V> {
    fn into_value(self) -> Result<Value, Error> {
        map(self)
    }
}

impl<K: MapKey + Eq + Hash, V: FromValue> FromValue for HashMap<K, V> {
    fn from_value(value: Value) -> Result<Self, String> {
        entries(value).map(|e| e.into_iter().collect())
    }
}

impl<K: MapKey, V: IntoValue> IntoValue for HashMap<K, V> {
    fn into_value(self) -> Result<Value, Error> {
        map(self)
    }
}

macro_rules! tuples {
    ($n:literal: $($t:ident $v:ident),*) => {
        impl<$($t: FromValue),*> FromValue for ($($t,)*) {
            fn from_value(value: Value) -> Result<Self, String> {
                match value {
                    Value::List(items) if items.len() == $n => {
                        let mut items = items.into_iter();
                        $(let $v = $t::from_value(items.next().unwrap_or(Value::Nil))?;)*
                        Ok(($($v,)*))
                    }
                    other => Err(mismatch(concat!("a list of ", $n), &other)),
                }
            }
        }
        impl<$($t: IntoValue),*> IntoValue for ($($t,)*) {
            fn into_value(self) -> Result<Value, Error> {
                let ($($v,)*) = self;
                Ok(Value::List(vec![$($v.into_value()?),*]))
            }
        }
    };
}
tuples!(2: A a, B b);
tuples!(3: A a, B b, C c);

impl<T: IntoValue> IntoValue for Box<T> {
    fn into_value(self) -> Result<Value, Error> {
        (*self).into_value()
    }
}

impl IntoError for Error {
    fn into_error(self) -> Error {
        self
    }
}

impl IntoError for String {
    fn into_error(self) -> Error {
        error(ErrorKind::Failed, self)
    }
}

impl IntoError for &str {
    fn into_error(self) -> Error {
        error(ErrorKind::Failed, self)
    }
}

impl IntoError for Box<dyn std::error::Error> {
    fn into_error(self) -> Error {
        error(ErrorKind::Failed, self.to_string())
    }
}

/// `?` on the errors a small function meets turns them into the contract's error.
macro_rules! failures {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Error {
                error(ErrorKind::Failed, e.to_string())
            }
        }
        impl IntoError for $t {
            fn into_error(self) -> Error {
                error(ErrorKind::Failed, self.to_string())
            }
        }
    )*};
}
failures!(
    std::num::ParseIntError,
    std::num::ParseFloatError,
    std::num::TryFromIntError,
    std::str::ParseBoolError,
    std::char::ParseCharError,
    std::char::CharTryFromError,
    std::string::FromUtf8Error,
    std::str::Utf8Error,
    std::fmt::Error
);

impl From<String> for Error {
    fn from(message: String) -> Error {
        error(ErrorKind::Failed, message)
    }
}

impl From<&str> for Error {
    fn from(message: &str) -> Error {
        error(ErrorKind::Failed, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn back<T: FromValue>(value: Value) -> Result<T, String> {
        T::from_value(value)
    }

    #[test]
    fn integers_are_range_checked_both_ways() {
        assert_eq!(back::<u8>(Value::Int(255)), Ok(255));
        assert_eq!(back::<u8>(Value::Int(256)), Err("an integer that fits u8, got 256".into()));
        assert_eq!(back::<i32>(Value::Text("1".into())), Err("an integer, got text".into()));
        assert_eq!(i64::MAX.into_value().map_err(|e| e.message), Ok(Value::Int(i64::MAX)));
        let too_big = u64::MAX.into_value().map_err(|e| e.message);
        assert!(too_big.is_err_and(|m| m.contains("does not fit")));
    }

    #[test]
    fn containers_convert_item_by_item_and_name_the_bad_one() {
        let list = Value::List(vec![Value::Float(1.5), Value::Int(2)]);
        assert_eq!(back::<Vec<f64>>(list), Ok(vec![1.5, 2.0]));
        let bad = Value::List(vec![Value::Int(1), Value::Text("x".into())]);
        assert_eq!(
            back::<Vec<i64>>(bad),
            Err("a list whose item 2 is an integer, got text".into())
        );
        let map = Value::Map([("7".to_owned(), Value::Bool(true))].into());
        assert_eq!(back::<HashMap<u32, bool>>(map), Ok([(7, true)].into()));
        assert_eq!(back::<Option<String>>(Value::Nil), Ok(None));
        let pair = Value::List(vec![Value::Int(1), Value::Text("a".into())]);
        assert_eq!(back::<(i64, String)>(pair), Ok((1, "a".to_owned())));
        assert_eq!(back::<Vec<u8>>(Value::Bytes(vec![1, 2])), Ok(vec![1, 2]));
        assert_eq!(
            back::<char>(Value::Text("ab".into())),
            Err("a text of one character, got \"ab\"".into())
        );
    }

    #[test]
    fn answers_become_values() {
        let set: HashSet<i64> = [3, 1, 2].into();
        assert_eq!(
            set.into_value().map_err(|e| e.message),
            Ok(Value::List(vec![Value::Int(1), Value::Int(2), Value::Int(3)]))
        );
        let nested = vec![Some(vec![1.5f32]), None];
        assert_eq!(
            nested.into_value().map_err(|e| e.message),
            Ok(Value::List(vec![Value::List(vec![Value::Float(1.5)]), Value::Nil]))
        );
        let map: BTreeMap<char, &str> = [('a', "x")].into();
        assert_eq!(
            map.into_value().map_err(|e| e.message),
            Ok(Value::Map([("a".to_owned(), Value::Text("x".into()))].into()))
        );
        let parse: Result<i64, Error> = "x".parse::<i64>().map_err(Error::from);
        assert_eq!(parse.map_err(|e| e.kind), Err(ErrorKind::Failed));
    }
}
