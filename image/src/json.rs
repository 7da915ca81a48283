//! Values as JSON, for the CLI and for scripts.
//!
//! Plain JSON maps onto values directly: `null`, booleans, strings, arrays and objects
//! become nil, bool, text, list and map; a number without a fraction or exponent that
//! fits in i64 becomes an integer, any other number a float. The kinds JSON lacks are
//! written as an object with exactly one `$`-key:
//!
//! | JSON                                   | value                          |
//! |----------------------------------------|--------------------------------|
//! | `{"$object": 42}` or `{"$object": "genesis"}` | object reference (a root name is resolved by the caller) |
//! | `{"$bytes": "00ff"}`                   | bytes, in hex                  |
//! | `{"$blob": {"hash": "…", "size": 5}}`  | blob reference                 |
//! | `{"$method": {"native": "clone"}}`     | native method                  |
//! | `{"$method": {"component": {"hash": "…", "size": 5}}}` | component method |
//! | `{"$float": "NaN"}` (or `"inf"`, `"-inf"`) | a float JSON cannot write   |
//!
//! A map whose only key starts with `$` but is none of these is refused, so a typo
//! never silently becomes data.

use serde_json::{json, Map as JsonMap, Value as Json};

use super::{BlobRef, Method, Oid, Value};

/// Converts a value to JSON (object references as `{"$object": 42}`).
pub fn to_json(value: &Value) -> Json {
    match value {
        Value::Nil => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Int(n) => json!(n),
        Value::Float(f) if f.is_finite() => json!(f),
        Value::Float(f) => {
            json!({ "$float": if f.is_nan() { "NaN" } else if *f > 0.0 { "inf" } else { "-inf" } })
        }
        Value::Text(s) => Json::String(s.clone()),
        Value::Bytes(b) => json!({ "$bytes": hex::encode(b) }),
        Value::List(items) => Json::Array(items.iter().map(to_json).collect()),
        Value::Map(map) => Json::Object(map.iter().map(|(k, v)| (k.clone(), to_json(v))).collect()),
        Value::Object(oid) => json!({ "$object": oid.0 }),
        Value::Blob(blob) => json!({ "$blob": blob_json(blob) }),
        Value::Method(Method::Native { primitive }) => {
            json!({ "$method": { "native": primitive } })
        }
        Value::Method(Method::Component { component, grants, deadline_ms }) => {
            json!({ "$method": { "component": blob_json(component), "grants": grants, "deadline_ms": deadline_ms } })
        }
        Value::Method(Method::Unconfirmed { method, reason }) => {
            let mut shown = to_json(&Value::Method((**method).clone()));
            if let Some(Json::Object(m)) = shown.get_mut("$method") {
                m.insert("unconfirmed".into(), Json::String(reason.clone()));
            }
            shown
        }
    }
}

fn blob_json(blob: &BlobRef) -> Json {
    json!({ "hash": blob.hash.to_hex(), "size": blob.size })
}

/// Converts JSON to a value. `resolve` turns a root name in `{"$object": "name"}` into
/// an oid; it is given the name and answers an error message when there is none.
pub fn from_json(
    json: &Json,
    resolve: &mut dyn FnMut(&str) -> Result<Oid, String>,
) -> Result<Value, String> {
    Ok(match json {
        Json::Null => Value::Nil,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) if !n.to_string().contains(['.', 'e', 'E']) => Value::Int(i),
            _ => Value::Float(
                n.as_f64().ok_or_else(|| format!("the number {n} does not fit a float"))?,
            ),
        },
        Json::String(s) => Value::Text(s.clone()),
        Json::Array(items) => {
            Value::List(items.iter().map(|j| from_json(j, resolve)).collect::<Result<_, _>>()?)
        }
        Json::Object(map) => {
            match tagged(map) {
                Some((tag, inner)) => from_tagged(tag, inner, resolve)?,
                None => Value::Map(
                    map.iter()
                        .map(|(k, v)| Ok((k.clone(), from_json(v, resolve)?)))
                        .collect::<Result<_, String>>()?,
                ),
            }
        }
    })
}

fn tagged(map: &JsonMap<String, Json>) -> Option<(&str, &Json)> {
    let mut entries = map.iter();
    match (entries.next(), entries.next()) {
        (Some((k, v)), None) if k.starts_with('$') => Some((k.as_str(), v)),
        _ => None,
    }
}

fn from_tagged(
    tag: &str,
    inner: &Json,
    resolve: &mut dyn FnMut(&str) -> Result<Oid, String>,
) -> Result<Value, String> {
    match (tag, inner) {
        ("$object", Json::Number(n)) => {
            n.as_u64().map(|n| Value::Object(Oid(n))).ok_or_else(|| format!("`$object` needs a positive oid, got {n}"))
        }
        ("$object", Json::String(s)) => {
            let oid = match s.parse::<Oid>() {
                Ok(oid) => oid,
                Err(_) => resolve(s)?,
            };
            Ok(Value::Object(oid))
        }
        ("$bytes", Json::String(s)) => {
            hex::decode(s).map(Value::Bytes).map_err(|_| format!("`$bytes` needs hex digits, got `{s}`"))
        }
        ("$blob", blob) => Ok(Value::Blob(parse_blob(blob)?)),
        ("$method", Json::Object(m)) if m.contains_key("unconfirmed") => {
            let Some(Json::String(reason)) = m.get("unconfirmed") else {
                return Err("`unconfirmed` says why, as text".into());
            };
            let mut inner = m.clone();
            inner.remove("unconfirmed");
            match from_json(&json!({ "$method": inner }), resolve)? {
                Value::Method(method) => Ok(Value::Method(Method::Unconfirmed {
                    method: Box::new(method),
                    reason: reason.clone(),
                })),
                _ => Err("`$method` holds a method".into()),
            }
        }
        ("$method", Json::Object(m)) => {
            if let Some(("native", Json::String(name))) = tagless(m) {
                return Ok(Value::Method(Method::Native { primitive: name.clone() }));
            }
            let Some(blob) = m.get("component") else {
                return Err("`$method` needs {\"native\": NAME} or {\"component\": BLOB, \"grants\": [...]}".into());
            };
            let grants = match m.get("grants") {
                None | Some(Json::Null) => Vec::new(),
                Some(Json::Array(items)) => items
                    .iter()
                    .map(|g| g.as_str().map(str::to_owned).ok_or("`grants` holds names such as \"clock\""))
                    .collect::<Result<_, _>>()?,
                Some(_) => return Err("`grants` must be a list of names".into()),
            };
            let deadline_ms = match m.get("deadline_ms") {
                None | Some(Json::Null) => None,
                Some(n) => Some(
                    n.as_u64()
                        .and_then(|n| u32::try_from(n).ok())
                        .ok_or("`deadline_ms` must be a whole number of milliseconds")?,
                ),
            };
            Ok(Value::Method(Method::Component { component: parse_blob(blob)?, grants, deadline_ms }))
        }
        ("$float", Json::String(s)) => match s.as_str() {
            "NaN" => Ok(Value::Float(f64::NAN)),
            "inf" => Ok(Value::Float(f64::INFINITY)),
            "-inf" => Ok(Value::Float(f64::NEG_INFINITY)),
            _ => Err(format!("`$float` takes \"NaN\", \"inf\" or \"-inf\", got `{s}`")),
        },
        _ => Err(format!(
            "`{tag}` is not a value tag this batos knows ($object, $bytes, $blob, $method, $float); write a map with other keys, or fix the tag"
        )),
    }
}

fn tagless(map: &JsonMap<String, Json>) -> Option<(&str, &Json)> {
    let mut entries = map.iter();
    match (entries.next(), entries.next()) {
        (Some((k, v)), None) => Some((k.as_str(), v)),
        _ => None,
    }
}

fn parse_blob(json: &Json) -> Result<BlobRef, String> {
    let hash = json
        .get("hash")
        .and_then(Json::as_str)
        .ok_or("a blob needs a `hash` of 64 hex digits")?
        .parse()?;
    let size = json.get("size").and_then(Json::as_u64).ok_or("a blob needs a `size` in bytes")?;
    Ok(BlobRef { hash, size })
}

/// Parses a JSON text into a value, with an error that says what to write instead.
pub fn parse(
    text: &str,
    resolve: &mut dyn FnMut(&str) -> Result<Oid, String>,
) -> Result<Value, String> {
    let json: Json = serde_json::from_str(text).map_err(|e| {
        format!("`{text}` is not JSON ({e}); write text in double quotes (e.g. '\"hello\"'), numbers, true/false/null, [lists] or {{maps}}")
    })?;
    from_json(&json, resolve)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BlobHash;

    fn no_roots(name: &str) -> Result<Oid, String> {
        Err(format!("no root `{name}`"))
    }

    #[test]
    fn every_kind_round_trips() {
        let blob = BlobRef { hash: BlobHash::of(b"b"), size: 1 };
        let values = vec![
            Value::Nil,
            Value::Bool(true),
            Value::Int(-5),
            Value::Float(2.5),
            Value::Float(3.0),
            Value::Float(f64::INFINITY),
            Value::Text("hé".into()),
            Value::Bytes(vec![0, 255]),
            Value::List(vec![Value::Int(1), Value::Text("x".into())]),
            Value::Map([("k".to_owned(), Value::Int(1))].into()),
            Value::Object(Oid(42)),
            Value::Blob(blob),
            Value::Method(Method::Native { primitive: "clone".into() }),
            Value::Method(Method::Component {
                component: blob,
                grants: vec!["clock".into()],
                deadline_ms: Some(50),
            }),
        ];
        for v in values {
            let back = from_json(&to_json(&v), &mut no_roots).expect("parses back");
            assert_eq!(back, v);
        }
    }

    #[test]
    fn integers_and_floats_stay_apart() {
        assert_eq!(parse("5", &mut no_roots), Ok(Value::Int(5)));
        assert_eq!(parse("5.0", &mut no_roots), Ok(Value::Float(5.0)));
        assert_eq!(parse("1e3", &mut no_roots), Ok(Value::Float(1000.0)));
    }

    #[test]
    fn bad_input_says_what_to_do() {
        let e = parse("hello", &mut no_roots).expect_err("bare word");
        assert!(e.contains("double quotes"), "{e}");
        let e = parse(r#"{"$objekt": 1}"#, &mut no_roots).expect_err("typo");
        assert!(e.contains("not a value tag"), "{e}");
        let e = parse(r#"{"$object": "nobody"}"#, &mut no_roots).expect_err("no root");
        assert!(e.contains("nobody"), "{e}");
    }
}
