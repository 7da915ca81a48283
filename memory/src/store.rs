//! The memory as objects of the image.
//!
//! ```text
//! memory (root)        fractals, lengthTotal, generation, model, search:, search:limit:
//! ├─ sources           one slot per document: <blake3 of its path> → its source object
//! │   └─ source        path, contentHash, bytes, ingestedAt, fractals (list, in order)
//! │       └─ fractal   text, source, position, tokens (terms, for BM25), vector (f32 LE)
//! └─ postings          one slot per (term, fractal): "<term> <fractal oid hex>" → tf
//! ```
//!
//! A document's fractals, their postings and the counters change in one transaction
//! ([`replace_source`]), so a search sees a document's old passages or its new ones,
//! never a mixture, and a crash mid-ingest leaves one or the other. Replaced fractals
//! are unlinked (pack collects them); their postings are removed with them.

use std::collections::BTreeMap;

use batos_image::{Error, Method, Oid, Result, Tx, Value};

use crate::terms;

/// The root the memory lives under.
pub const MEMORY_ROOT: &str = "memory";

/// The native primitive behind `memory search:` and `search:limit:`.
pub const SEARCH_PRIMITIVE: &str = "memory.search";

/// The memory's objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// The root object.
    pub memory: Oid,
    /// The documents, by path.
    pub sources: Oid,
    /// The BM25 postings.
    pub postings: Oid,
}

/// The memory's objects, if this image has them.
pub fn layout(tx: &Tx<'_>) -> Result<Option<Layout>> {
    let Some(memory) = tx.root(MEMORY_ROOT)? else { return Ok(None) };
    let object = |name: &str| -> Result<Oid> {
        match tx.slot(memory, name)? {
            Some(Value::Object(oid)) => Ok(oid),
            _ => Err(Error::Corrupt(format!("the memory's `{name}` slot is not an object"))),
        }
    };
    Ok(Some(Layout { memory, sources: object("sources")?, postings: object("postings")? }))
}

/// The memory's objects, made the first time (with the `search:` methods).
pub fn ensure(tx: &mut Tx<'_>) -> Result<Layout> {
    if let Some(layout) = layout(tx)? {
        return Ok(layout);
    }
    let traits: Vec<Oid> = tx.root(batos_runtime::PRIMORDIAL_TRAITS)?.into_iter().collect();
    let memory = tx.create_object(&traits)?;
    let sources = tx.create_object(&[])?;
    let postings = tx.create_object(&[])?;
    tx.set_slot(memory, "description", &Value::Text("the memory: documents ingested as context fractals, searched by words and meaning (`search:`, `search:limit:`)".into()))?;
    tx.set_slot(memory, "sources", &Value::Object(sources))?;
    tx.set_slot(memory, "postings", &Value::Object(postings))?;
    for counter in ["fractals", "lengthTotal", "generation"] {
        tx.set_slot(memory, counter, &Value::Int(0))?;
    }
    let search = Value::Method(Method::Native { primitive: SEARCH_PRIMITIVE.into() });
    tx.set_slot(memory, "search:", &search)?;
    tx.set_slot(memory, "search:limit:", &search)?;
    tx.set_root(MEMORY_ROOT, memory)?;
    Ok(Layout { memory, sources, postings })
}

/// An integer slot (0 when absent).
pub fn counter(tx: &Tx<'_>, oid: Oid, name: &str) -> Result<i64> {
    Ok(match tx.slot(oid, name)? {
        Some(Value::Int(n)) => n,
        _ => 0,
    })
}

/// The slot name a document is kept under: a hash of its path, so any path fits a name.
pub fn source_key(path: &str) -> String {
    blake3::hash(path.as_bytes()).to_hex()[..32].to_owned()
}

/// The posting slot of `term` in `fractal`.
pub fn posting_name(term: &str, fractal: Oid) -> String {
    format!("{term} {:016x}", fractal.0)
}

/// The prefix of every posting of `term`.
pub fn posting_prefix(term: &str) -> String {
    format!("{term} ")
}

/// Reads the fractal oid back out of a posting's name.
pub fn posting_fractal(name: &str) -> Option<Oid> {
    let (_, hex) = name.rsplit_once(' ')?;
    u64::from_str_radix(hex, 16).ok().map(Oid)
}

/// The document kept under `path`: its object and content hash.
pub fn source(tx: &Tx<'_>, layout: &Layout, path: &str) -> Result<Option<(Oid, String)>> {
    let Some(Value::Object(source)) = tx.slot(layout.sources, &source_key(path))? else {
        return Ok(None);
    };
    let hash = match tx.slot(source, "contentHash")? {
        Some(Value::Text(h)) => h,
        _ => String::new(),
    };
    Ok(Some((source, hash)))
}

/// A passage about to be written.
#[derive(Clone, Debug)]
pub struct NewFractal {
    /// Its text.
    pub text: String,
    /// Its unit vector.
    pub vector: Vec<f32>,
}

/// A vector as a slot value: its floats, little-endian.
pub fn encode_vector(vector: &[f32]) -> Value {
    Value::Bytes(vector.iter().flat_map(|x| x.to_le_bytes()).collect())
}

/// A vector slot's floats (`None` when it is not one of `dimensions`).
pub fn decode_vector(value: &Value, dimensions: usize) -> Option<Vec<f32>> {
    match value {
        Value::Bytes(b) if b.len() == dimensions * 4 => {
            Some(b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
        }
        _ => None,
    }
}

/// The fractals of a document, in order.
pub fn fractals_of(tx: &Tx<'_>, source: Oid) -> Result<Vec<Oid>> {
    Ok(match tx.slot(source, "fractals")? {
        Some(Value::List(items)) => items
            .into_iter()
            .filter_map(|v| match v {
                Value::Object(o) => Some(o),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    })
}

/// What [`replace_source`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Replaced {
    /// Fractals the document had before.
    pub removed: usize,
    /// Fractals it has now.
    pub added: usize,
    /// The new fractals, in order.
    pub fractals: Vec<Oid>,
}

/// Replaces the document at `path` with `fractals` (written in order), in this
/// transaction: the old fractals' postings go, the new ones' come, the counters move
/// and the generation (what the vector index is checked against) steps.
pub fn replace_source(
    tx: &mut Tx<'_>,
    layout: &Layout,
    path: &str,
    content_hash: &str,
    bytes: u64,
    model: &str,
    fractals: &[NewFractal],
) -> Result<Replaced> {
    let memory = layout.memory;
    match tx.slot(memory, "model")? {
        Some(Value::Text(m)) if m != model => {
            return Err(Error::BadInput(format!(
                "this memory's vectors were made by `{m}`, and this batos embeds with `{model}`; vectors of two models cannot be compared"
            )))
        }
        Some(Value::Text(_)) => {}
        _ => tx.set_slot(memory, "model", &Value::Text(model.into()))?,
    }
    let mut fractal_count = counter(tx, memory, "fractals")?;
    let mut length_total = counter(tx, memory, "lengthTotal")?;
    let mut replaced = Replaced::default();
    let source = match tx.slot(layout.sources, &source_key(path))? {
        Some(Value::Object(source)) => {
            for old in fractals_of(tx, source)? {
                let text = match tx.slot(old, "text")? {
                    Some(Value::Text(t)) => t,
                    _ => continue,
                };
                let (counts, length) = terms::counts(&text);
                for term in counts.keys() {
                    tx.remove_slot(layout.postings, &posting_name(term, old))?;
                }
                fractal_count -= 1;
                length_total -= i64::from(length);
                replaced.removed += 1;
            }
            source
        }
        _ => {
            let source = tx.create_object(&[])?;
            tx.set_slot(source, "path", &Value::Text(path.into()))?;
            tx.set_slot(layout.sources, &source_key(path), &Value::Object(source))?;
            source
        }
    };
    let mut oids = Vec::with_capacity(fractals.len());
    for (position, fractal) in fractals.iter().enumerate() {
        let oid = tx.create_object(&[])?;
        let (counts, length) = terms::counts(&fractal.text);
        tx.set_slot(oid, "text", &Value::Text(fractal.text.clone()))?;
        tx.set_slot(oid, "source", &Value::Object(source))?;
        tx.set_slot(oid, "position", &Value::Int(position as i64))?;
        tx.set_slot(oid, "tokens", &Value::Int(i64::from(length)))?;
        tx.set_slot(oid, "vector", &encode_vector(&fractal.vector))?;
        for (term, tf) in &counts {
            let posting =
                Value::List(vec![Value::Int(i64::from(*tf)), Value::Int(i64::from(length))]);
            tx.set_slot(layout.postings, &posting_name(term, oid), &posting)?;
        }
        fractal_count += 1;
        length_total += i64::from(length);
        oids.push(Value::Object(oid));
        replaced.fractals.push(oid);
    }
    replaced.added = oids.len();
    tx.set_slot(source, "fractals", &Value::List(oids))?;
    tx.set_slot(source, "contentHash", &Value::Text(content_hash.into()))?;
    tx.set_slot(source, "bytes", &Value::Int(i64::try_from(bytes).unwrap_or(i64::MAX)))?;
    tx.set_slot(
        source,
        "ingestedAt",
        &Value::Int(i64::try_from(batos_image::now_ms()).unwrap_or(0)),
    )?;
    tx.set_slot(memory, "fractals", &Value::Int(fractal_count))?;
    tx.set_slot(memory, "lengthTotal", &Value::Int(length_total))?;
    let generation = counter(tx, memory, "generation")? + 1;
    tx.set_slot(memory, "generation", &Value::Int(generation))?;
    Ok(replaced)
}

/// Every document kept, by path.
pub fn sources(tx: &Tx<'_>, layout: &Layout) -> Result<BTreeMap<String, Oid>> {
    let mut out = BTreeMap::new();
    for (_, value) in tx.slots(layout.sources)? {
        if let Value::Object(source) = value {
            if let Some(Value::Text(path)) = tx.slot(source, "path")? {
                out.insert(path, source);
            }
        }
    }
    Ok(out)
}
