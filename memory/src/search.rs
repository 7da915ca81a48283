//! Hybrid search: BM25 over the postings in the image, an exact scan of the vectors, and
//! the two rankings fused by reciprocal rank.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use batos_image::{Oid, Result, Tx, Value};

use crate::approximate::{Approximate, APPROXIMATE_ABOVE};
use crate::store::{self, Layout};
use crate::terms::{self, Bm25};

/// Reciprocal rank fusion's constant (Cormack et al. 2009): a passage at rank r of a
/// list adds `weight / (K + r)`, so the top of each list counts, but no single list's
/// first place dominates.
pub const RRF_K: f64 = 60.0;

/// Queries longer than this are refused: a query is a question or a phrase, and BM25
/// reads one posting list per distinct term.
pub const MAX_QUERY_BYTES: usize = 4096;

/// How many passages each ranking contributes to the fusion: enough that a passage
/// ranked well by one list and poorly by the other still meets itself.
pub const CANDIDATES: usize = 100;

/// The most passages one search answers.
pub const MAX_LIMIT: usize = 100;

/// How a search ranks.
#[derive(Clone, Copy, Debug)]
pub struct SearchOptions {
    /// How many passages to answer.
    pub limit: usize,
    /// The weight of the BM25 ranking in the fusion (0 leaves it out).
    pub words: f64,
    /// The weight of the vector ranking in the fusion (0 leaves it out).
    pub meaning: f64,
}

impl Default for SearchOptions {
    fn default() -> Self {
        SearchOptions { limit: 5, words: 1.0, meaning: 1.0 }
    }
}

/// One passage found.
#[derive(Clone, Debug, PartialEq)]
pub struct Hit {
    /// The fractal.
    pub fractal: Oid,
    /// Its text.
    pub text: String,
    /// The document's path.
    pub source: String,
    /// Its place in the document, from 0.
    pub position: i64,
    /// The fused score: the sum of `weight / (RRF_K + rank)` over the rankings.
    pub score: f64,
    /// Its rank (from 1) and score in the BM25 ranking, if it is in it.
    pub words: Option<(usize, f64)>,
    /// Its rank (from 1) and cosine similarity in the vector ranking, if it is in it.
    pub meaning: Option<(usize, f32)>,
}

impl Hit {
    /// The hit as a batos value (what `memory search:` answers).
    pub fn to_value(&self) -> Value {
        let mut map = std::collections::BTreeMap::new();
        map.insert("fractal".to_owned(), Value::Object(self.fractal));
        map.insert("text".to_owned(), Value::Text(self.text.clone()));
        map.insert("source".to_owned(), Value::Text(self.source.clone()));
        map.insert("position".to_owned(), Value::Int(self.position));
        map.insert("score".to_owned(), Value::Float(self.score));
        if let Some((rank, score)) = self.words {
            map.insert("wordsRank".to_owned(), Value::Int(rank as i64));
            map.insert("bm25".to_owned(), Value::Float(score));
        }
        if let Some((rank, cosine)) = self.meaning {
            map.insert("meaningRank".to_owned(), Value::Int(rank as i64));
            map.insert("cosine".to_owned(), Value::Float(f64::from(cosine)));
        }
        Value::Map(map)
    }
}

/// Checks a query before anything is computed for it.
pub fn check_query(query: &str) -> Result<()> {
    if query.trim().is_empty() {
        return Err(batos_image::Error::BadInput(
            "the query is empty; say what to search for".into(),
        ));
    }
    if query.len() > MAX_QUERY_BYTES {
        return Err(batos_image::Error::BadInput(format!(
            "the query is {} bytes, over the {MAX_QUERY_BYTES}-byte limit; search with a sentence or a few words",
            query.len()
        )));
    }
    Ok(())
}

/// The BM25 ranking of `query`: the best [`CANDIDATES`] fractals, best first.
pub fn rank_words(tx: &Tx<'_>, layout: &Layout, query: &str) -> Result<Vec<(Oid, f64)>> {
    let n = store::counter(tx, layout.memory, "fractals")?.max(0) as u64;
    if n == 0 {
        return Ok(Vec::new());
    }
    let average = store::counter(tx, layout.memory, "lengthTotal")? as f64 / n as f64;
    let bm25 = Bm25::default();
    let mut query_terms = terms::terms(query);
    query_terms.sort();
    query_terms.dedup();
    let mut scores: HashMap<Oid, f64> = HashMap::new();
    for term in &query_terms {
        let postings = tx.slots_named(layout.postings, &store::posting_prefix(term))?;
        let idf = bm25.idf(n, postings.len() as u64);
        for (name, value) in postings {
            let (Some(fractal), Value::List(pair)) = (store::posting_fractal(&name), value) else {
                continue;
            };
            let (Some(Value::Int(tf)), Some(Value::Int(len))) = (pair.first(), pair.get(1)) else {
                continue;
            };
            let tf = u32::try_from(*tf).unwrap_or(0);
            let len = u32::try_from(*len).unwrap_or(0);
            *scores.entry(fractal).or_insert(0.0) += idf * bm25.term(tf, len, average);
        }
    }
    Ok(top(scores.into_iter().collect(), CANDIDATES, |a, b| {
        b.1.total_cmp(&a.1).then(a.0.cmp(&b.0))
    }))
}

fn top<T>(mut items: Vec<T>, n: usize, order: impl Fn(&T, &T) -> std::cmp::Ordering) -> Vec<T> {
    if items.len() > n {
        items.select_nth_unstable_by(n, &order);
        items.truncate(n);
    }
    items.sort_by(order);
    items
}

/// Every fractal's vector, held in memory: derived from the image, brought up to date
/// when the memory's generation (stepped by every change of a document) is not the one
/// it was built at. Vectors are kept per document, so an update re-reads only the
/// documents whose list of fractals changed: a fractal's vector is written once, when
/// it is made, and never changes. Past [`APPROXIMATE_ABOVE`] vectors an HNSW built
/// from this copy answers for the documents it covers (see [`crate::approximate`]).
pub struct VectorIndex {
    built: Mutex<Option<Arc<Built>>>,
    approximate: Arc<Mutex<Option<Arc<Approximate>>>>,
    building: Arc<AtomicBool>,
    threshold: AtomicUsize,
    covered: AtomicUsize,
}

impl Default for VectorIndex {
    fn default() -> Self {
        VectorIndex {
            built: Mutex::default(),
            approximate: Arc::default(),
            building: Arc::default(),
            threshold: AtomicUsize::new(APPROXIMATE_ABOVE),
            covered: AtomicUsize::new(0),
        }
    }
}

struct Built {
    image: PathBuf,
    generation: i64,
    dimensions: usize,
    /// By source object.
    documents: HashMap<Oid, Arc<Document>>,
}

impl Built {
    fn vectors(&self) -> usize {
        self.documents.values().map(|d| d.oids.len()).sum()
    }
}

/// One document's fractals and their vectors (`oids.len() × dimensions`, row by row).
pub(crate) struct Document {
    pub(crate) oids: Vec<Oid>,
    pub(crate) vectors: Vec<f32>,
    pub(crate) dimensions: usize,
}

impl Document {
    fn scan<'a>(&'a self, query: &'a [f32]) -> impl Iterator<Item = (Oid, f32)> + 'a {
        let dims = self.dimensions.max(1);
        self.oids
            .iter()
            .zip(self.vectors.chunks_exact(dims))
            .map(move |(&oid, v)| (oid, dot(v, query)))
    }
}

impl VectorIndex {
    /// The index as of `tx`'s snapshot: the one held when its generation matches, else
    /// an update of it that re-reads the documents whose fractals changed (and is kept
    /// for the next search).
    fn current(&self, tx: &Tx<'_>, layout: &Layout, dimensions: usize) -> Result<Arc<Built>> {
        let generation = store::counter(tx, layout.memory, "generation")?;
        let image = tx.image().path().to_path_buf();
        let held = self.built.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let reusable = held.filter(|b| b.image == image && b.dimensions == dimensions);
        if let Some(b) = reusable.as_ref().filter(|b| b.generation == generation) {
            return Ok(b.clone());
        }
        let mut documents = HashMap::new();
        for source in store::sources(tx, layout)?.into_values() {
            let fractals = store::fractals_of(tx, source)?;
            let kept = reusable.as_ref().and_then(|b| b.documents.get(&source));
            if let Some(doc) = kept.filter(|d| d.oids == fractals) {
                documents.insert(source, doc.clone());
                continue;
            }
            let mut doc = Document {
                oids: Vec::with_capacity(fractals.len()),
                vectors: Vec::new(),
                dimensions,
            };
            for fractal in fractals {
                let vector = tx.slot(fractal, "vector")?;
                if let Some(v) = vector.as_ref().and_then(|v| store::decode_vector(v, dimensions)) {
                    doc.oids.push(fractal);
                    doc.vectors.extend_from_slice(&v);
                }
            }
            documents.insert(source, Arc::new(doc));
        }
        let built = Arc::new(Built { image, generation, dimensions, documents });
        *self.built.lock().unwrap_or_else(PoisonError::into_inner) = Some(built.clone());
        Ok(built)
    }

    /// The vector ranking of a query vector: the best [`CANDIDATES`] fractals by cosine
    /// similarity, best first — by an exact scan, or past the threshold by the
    /// approximate index for the documents it covers and a scan of the rest.
    pub fn rank(&self, tx: &Tx<'_>, layout: &Layout, query: &[f32]) -> Result<Vec<(Oid, f32)>> {
        let built = self.current(tx, layout, query.len())?;
        let total = built.vectors();
        let mut scored: Vec<(Oid, f32)> = Vec::new();
        let mut covered = 0;
        if total >= self.threshold.load(Ordering::Relaxed) {
            let approximate = self
                .approximate
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
                .filter(|a| a.image == built.image && a.dimensions == built.dimensions);
            if let Some(a) = &approximate {
                scored.extend(a.search(query, &built.documents));
            }
            for (&source, doc) in &built.documents {
                if approximate.as_ref().is_some_and(|a| a.covers(source, doc)) {
                    covered += doc.oids.len();
                } else {
                    scored.extend(doc.scan(query));
                }
            }
            // Missing, or a tenth of the vectors changed since: build anew, off this thread.
            if approximate.is_none() || (total - covered) * 10 > total {
                self.build_in_background(built.clone());
            }
        } else {
            for doc in built.documents.values() {
                scored.extend(doc.scan(query));
            }
        }
        self.covered.store(covered, Ordering::Relaxed);
        Ok(top(scored, CANDIDATES, |a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0))))
    }

    fn build_in_background(&self, built: Arc<Built>) {
        if self.building.swap(true, Ordering::AcqRel) {
            return;
        }
        let slot = self.approximate.clone();
        let building = self.building.clone();
        std::thread::spawn(move || {
            let made = Approximate::build(&built.documents, built.image.clone(), built.dimensions);
            *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(made));
            building.store(false, Ordering::Release);
        });
    }

    /// Builds the approximate index now, on this thread, as of `tx` (searches build it
    /// in the background by themselves; this is for benchmarks, tests and warm-ups).
    /// Answers how many vectors it holds.
    pub fn build_approximate(
        &self,
        tx: &Tx<'_>,
        layout: &Layout,
        dimensions: usize,
    ) -> Result<usize> {
        let built = self.current(tx, layout, dimensions)?;
        let made = Approximate::build(&built.documents, built.image.clone(), built.dimensions);
        let size = made.size;
        *self.approximate.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(made));
        Ok(size)
    }

    /// Sets how many vectors a memory must hold before searches use the approximate
    /// index ([`APPROXIMATE_ABOVE`] unless set).
    pub fn set_approximate_above(&self, vectors: usize) {
        self.threshold.store(vectors, Ordering::Relaxed);
    }

    /// How many vectors the approximate index answered for in the last ranking (0 when
    /// it was an exact scan).
    pub fn last_covered(&self) -> usize {
        self.covered.load(Ordering::Relaxed)
    }

    /// How many vectors the index held at its last update (0 before any).
    pub fn len(&self) -> usize {
        self.built
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map_or(0, |b| b.vectors())
    }

    /// Whether the index holds no vectors.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A dot product in eight independent lanes, which the compiler turns into SIMD.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let chunks = a.len() / 8 * 8;
    for (x, y) in a[..chunks].chunks_exact(8).zip(b[..chunks].chunks_exact(8)) {
        for i in 0..8 {
            lanes[i] += x[i] * y[i];
        }
    }
    let tail: f32 = a[chunks..].iter().zip(&b[chunks.min(b.len())..]).map(|(x, y)| x * y).sum();
    lanes.iter().sum::<f32>() + tail
}

/// A passage's fused score, and its rank and score in each ranking.
type Fused = (f64, Option<(usize, f64)>, Option<(usize, f32)>);

/// Fuses the rankings by reciprocal rank and reads the winners' passages.
pub fn fuse(
    tx: &Tx<'_>,
    words: &[(Oid, f64)],
    meaning: &[(Oid, f32)],
    options: &SearchOptions,
) -> Result<Vec<Hit>> {
    let mut fused: HashMap<Oid, Fused> = HashMap::new();
    if options.words > 0.0 {
        for (i, &(oid, score)) in words.iter().enumerate() {
            let e = fused.entry(oid).or_default();
            e.0 += options.words / (RRF_K + (i + 1) as f64);
            e.1 = Some((i + 1, score));
        }
    }
    if options.meaning > 0.0 {
        for (i, &(oid, cosine)) in meaning.iter().enumerate() {
            let e = fused.entry(oid).or_default();
            e.0 += options.meaning / (RRF_K + (i + 1) as f64);
            e.2 = Some((i + 1, cosine));
        }
    }
    let ranked = top(fused.into_iter().collect(), options.limit.min(MAX_LIMIT), |a, b| {
        b.1 .0.total_cmp(&a.1 .0).then(a.0.cmp(&b.0))
    });
    let mut hits = Vec::with_capacity(ranked.len());
    let mut paths: HashMap<Oid, String> = HashMap::new();
    for (fractal, (score, words, meaning)) in ranked {
        let text = match tx.slot(fractal, "text")? {
            Some(Value::Text(t)) => t,
            _ => continue,
        };
        let position = store::counter(tx, fractal, "position")?;
        let source = match tx.slot(fractal, "source")? {
            Some(Value::Object(s)) => {
                if let Some(p) = paths.get(&s) {
                    p.clone()
                } else {
                    let p = match tx.slot(s, "path")? {
                        Some(Value::Text(p)) => p,
                        _ => String::new(),
                    };
                    paths.insert(s, p.clone());
                    p
                }
            }
            _ => String::new(),
        };
        hits.push(Hit { fractal, text, source, position, score, words, meaning });
    }
    Ok(hits)
}
