//! The on-disk layout: which keyspace holds what, how keys and records are encoded.
//!
//! | keyspace  | key                     | record                                  |
//! |-----------|-------------------------|-----------------------------------------|
//! | `objects` | oid (u64 BE)            | stamped: the object's `parent*` list    |
//! | `slots`   | oid (u64 BE) ++ name    | stamped: the slot's [`Value`]           |
//! | `roots`   | name                    | stamped: the root's oid                 |
//! | `history` | tx id (u64 BE)          | a [`TxRecord`]                          |
//! | `versions`| see `versions.rs`       | every body a header or slot has had     |
//! | `meta`    | a fixed name            | raw bytes (format version, history floor) |
//!
//! A *stamped* record is `tx id (u64 BE) ++ tag (0 = tombstone, 1 = live) ++ body`.
//! The stamp names the last transaction that wrote the key; `undo` compares it to
//! refuse undoing a transaction whose writes were overwritten since. A removal writes a
//! tombstone (not a delete) so that the stamp survives until `pack` drops it.
//!
//! Slots are one key each, so transactions writing *different* slots of one object never
//! conflict: a transaction is validated by the stamps of the keys it read (`tx.rs`).

use serde::{Deserialize, Serialize};

use super::{Oid, TxId, Value};
use crate::error::{Error, Result};

/// The image format this build writes. Bump it (and add a migration) whenever the
/// layout above or the encoding of [`Value`] changes incompatibly. 2 added the
/// `versions` keyspace (built at open for images of format 1).
pub const FORMAT_VERSION: u32 = 2;

/// The largest encoded value a slot may hold. Bigger data belongs in a blob: fjall
/// copies every value through its journal, memtable and transaction buffer.
pub const MAX_VALUE_BYTES: usize = 1 << 20;

/// The longest slot or root name, in bytes. Names are keys and are repeated per slot.
pub const MAX_NAME_BYTES: usize = 256;

/// The keyspaces of the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Space {
    /// Object headers (the `parent*` list).
    Objects,
    /// Slots.
    Slots,
    /// Named roots.
    Roots,
}

/// One write of a transaction, kept in the history so that it can be undone.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Write {
    /// The keyspace written.
    pub space: Space,
    /// The key written.
    pub key: Vec<u8>,
    /// The record body before the write (`None`: absent or a tombstone).
    pub before: Option<Vec<u8>>,
    /// The record body after the write (`None`: removed).
    pub after: Option<Vec<u8>>,
}

/// The history entry of one committed transaction.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TxRecord {
    /// Commit time, milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// What caused it (e.g. the top-level send).
    pub description: String,
    /// Every key it changed, with the bodies before and after.
    pub writes: Vec<Write>,
    /// Whether `undo` must refuse it: the awakening (undoing it would unmake the
    /// primordial objects) and `pack` (whose removals keep no before-images).
    pub pinned: bool,
}

/// The longest description kept in the history.
pub(crate) const MAX_DESCRIPTION: usize = 200;

pub(crate) fn oid_key(oid: Oid) -> [u8; 8] {
    oid.0.to_be_bytes()
}

pub(crate) fn slot_key(oid: Oid, name: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(8 + name.len());
    key.extend_from_slice(&oid.0.to_be_bytes());
    key.extend_from_slice(name.as_bytes());
    key
}

pub(crate) fn tx_key(tx: TxId) -> [u8; 8] {
    tx.0.to_be_bytes()
}

pub(crate) fn decode_u64(bytes: &[u8], what: &str) -> Result<u64> {
    let arr: [u8; 8] = bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| Error::Corrupt(format!("{what} is shorter than 8 bytes")))?;
    Ok(u64::from_be_bytes(arr))
}

/// Splits a slot key into its oid and name.
pub(crate) fn split_slot_key(key: &[u8]) -> Result<(Oid, String)> {
    let oid = Oid(decode_u64(key, "a slot key")?);
    let name = std::str::from_utf8(key.get(8..).unwrap_or_default())
        .map_err(|_| Error::Corrupt(format!("slot name of {oid} is not UTF-8")))?;
    Ok((oid, name.to_owned()))
}

/// A decoded stamped record.
pub(crate) struct Stamped<'a> {
    pub tx: TxId,
    pub body: Option<&'a [u8]>,
}

pub(crate) fn encode_stamped(tx: TxId, body: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + body.map_or(0, <[u8]>::len));
    out.extend_from_slice(&tx.0.to_be_bytes());
    match body {
        Some(b) => {
            out.push(1);
            out.extend_from_slice(b);
        }
        None => out.push(0),
    }
    out
}

pub(crate) fn decode_stamped(bytes: &[u8]) -> Result<Stamped<'_>> {
    let tx = TxId(decode_u64(bytes, "a record stamp")?);
    match bytes.get(8) {
        Some(0) => Ok(Stamped { tx, body: None }),
        Some(1) => Ok(Stamped { tx, body: Some(bytes.get(9..).unwrap_or_default()) }),
        _ => Err(Error::Corrupt("a record has an unknown tag".into())),
    }
}

pub(crate) fn encode_value(value: &Value) -> Result<Vec<u8>> {
    let bytes = postcard::to_stdvec(value)
        .map_err(|e| Error::Failed(format!("cannot encode value: {e}")))?;
    if bytes.len() > MAX_VALUE_BYTES {
        return Err(Error::ValueTooLarge { size: bytes.len(), limit: MAX_VALUE_BYTES });
    }
    Ok(bytes)
}

pub(crate) fn decode_value(bytes: &[u8]) -> Result<Value> {
    postcard::from_bytes(bytes)
        .map_err(|e| Error::Corrupt(format!("a slot value does not decode: {e}")))
}

pub(crate) fn encode_parents(parents: &[Oid]) -> Vec<u8> {
    let mut out = Vec::with_capacity(parents.len() * 8);
    for p in parents {
        out.extend_from_slice(&p.0.to_be_bytes());
    }
    out
}

pub(crate) fn decode_parents(bytes: &[u8]) -> Result<Vec<Oid>> {
    if !bytes.len().is_multiple_of(8) {
        return Err(Error::Corrupt("an object's parent list has a ragged length".into()));
    }
    bytes.chunks_exact(8).map(|c| decode_u64(c, "a parent oid").map(Oid)).collect()
}

pub(crate) fn encode_tx_record(record: &TxRecord) -> Result<Vec<u8>> {
    postcard::to_stdvec(record).map_err(|e| Error::Failed(format!("cannot encode history: {e}")))
}

pub(crate) fn decode_tx_record(bytes: &[u8]) -> Result<TxRecord> {
    postcard::from_bytes(bytes)
        .map_err(|e| Error::Corrupt(format!("a history record does not decode: {e}")))
}

/// Checks a slot or root name: non-empty, at most [`MAX_NAME_BYTES`], no control characters.
pub fn validate_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        "names must not be empty"
    } else if name.len() > MAX_NAME_BYTES {
        "names are at most 256 bytes long"
    } else if name.chars().any(char::is_control) {
        "names must not contain control characters"
    } else {
        return Ok(());
    };
    let mut shown: String = name.chars().take(40).collect();
    if shown.len() < name.len() {
        shown.push('…');
    }
    Err(Error::InvalidName { name: shown.escape_debug().to_string(), reason })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamped_records_round_trip() {
        let live = encode_stamped(TxId(9), Some(b"abc"));
        let s = decode_stamped(&live).expect("decodes");
        assert_eq!((s.tx, s.body), (TxId(9), Some(&b"abc"[..])));
        let dead = encode_stamped(TxId(3), None);
        let s = decode_stamped(&dead).expect("decodes");
        assert_eq!((s.tx, s.body), (TxId(3), None));
        assert!(decode_stamped(&[0, 0, 0]).is_err());
        assert!(decode_stamped(&[0, 0, 0, 0, 0, 0, 0, 1, 7]).is_err());
    }

    #[test]
    fn names_are_validated() {
        assert!(validate_name("x").is_ok());
        assert!(validate_name("setSlot:value:").is_ok());
        assert!(validate_name("").is_err());
        assert!(validate_name(&"a".repeat(257)).is_err());
        assert!(validate_name("a\nb").is_err());
    }

    #[test]
    fn oversized_values_are_refused() {
        let big = Value::Bytes(vec![0; MAX_VALUE_BYTES + 1]);
        assert!(matches!(encode_value(&big), Err(Error::ValueTooLarge { .. })));
    }

    #[test]
    fn slot_keys_split_back() {
        let key = slot_key(Oid(5), "name");
        let (oid, name) = split_slot_key(&key).expect("splits");
        assert_eq!((oid, name.as_str()), (Oid(5), "name"));
    }
}
