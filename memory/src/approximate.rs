//! The approximate vector index: HNSW (the `instant-distance` crate) over the vectors of
//! the documents it was built from, for memories past the size an exact scan serves.
//!
//! It is derived like the exact copy it is built from, and never saved: built in the
//! background the first time a search finds the memory past
//! [`APPROXIMATE_ABOVE`] vectors (searches scan exactly until it is ready), and rebuilt
//! when documents changed since account for more than a tenth of the vectors. Between
//! builds a search asks it for the documents it covers that are unchanged and scans the
//! rest exactly, so a search never misses a new passage nor returns a replaced one.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use batos_image::Oid;
use instant_distance::{Builder, HnswMap, Search};

use crate::search::{dot, Document, CANDIDATES};

/// Past this many vectors searches use the approximate index: measured on this
/// machine, the exact scan takes 22 ms at 100,000 vectors and 210 ms at 1,000,000
/// (`memory/benches/memory.rs`); at 200,000 it is about 45 ms, a third of a search's
/// budget of interactivity, and it grows linearly from there.
pub const APPROXIMATE_ABOVE: usize = 200_000;

/// HNSW's construction breadth: instant-distance's default, which its authors tuned
/// for recall above 0.95 on embedding data.
const EF_CONSTRUCTION: usize = 100;

/// How many neighbours a search explores: twice the candidates a ranking contributes,
/// so the hundred it keeps are nearly always the true hundred nearest.
const EF_SEARCH: usize = 2 * CANDIDATES;

/// Fixed, so that two builds of the same vectors answer alike.
const SEED: u64 = 0x6261_746f_735f_6d65;

/// One vector of a document, by position: the index holds no copy of the vectors.
#[derive(Clone)]
pub(crate) struct Row {
    doc: Arc<Document>,
    at: usize,
}

impl Row {
    fn vector(&self) -> &[f32] {
        let dims = self.doc.dimensions.max(1);
        &self.doc.vectors[self.at * dims..(self.at + 1) * dims]
    }
}

impl instant_distance::Point for Row {
    fn distance(&self, other: &Self) -> f32 {
        1.0 - dot(self.vector(), other.vector())
    }
}

/// An HNSW over some documents' vectors.
pub(crate) struct Approximate {
    /// The document versions it covers, by source.
    covers: HashMap<Oid, Arc<Document>>,
    map: HnswMap<Row, (Oid, Oid)>,
    /// How many vectors it holds.
    pub(crate) size: usize,
    /// The image it was built for.
    pub(crate) image: PathBuf,
    /// The length of its vectors.
    pub(crate) dimensions: usize,
}

impl Approximate {
    /// Builds the index over `documents` (minutes for a million vectors on two cores,
    /// so callers build it off the search's thread).
    pub(crate) fn build(
        documents: &HashMap<Oid, Arc<Document>>,
        image: PathBuf,
        dimensions: usize,
    ) -> Approximate {
        let mut points = Vec::new();
        let mut values = Vec::new();
        for (&source, doc) in documents {
            for (at, &oid) in doc.oids.iter().enumerate() {
                points.push(Row { doc: doc.clone(), at });
                values.push((source, oid));
            }
        }
        let size = points.len();
        let map = Builder::default()
            .ef_construction(EF_CONSTRUCTION)
            .ef_search(EF_SEARCH)
            .seed(SEED)
            .build(points, values);
        Approximate { covers: documents.clone(), map, size, image, dimensions }
    }

    /// Whether it covers this version of a document.
    pub(crate) fn covers(&self, source: Oid, doc: &Arc<Document>) -> bool {
        self.covers.get(&source).is_some_and(|d| Arc::ptr_eq(d, doc))
    }

    /// The nearest vectors to `query` among the documents it covers that are still
    /// `current`, as (fractal, cosine).
    pub(crate) fn search(
        &self,
        query: &[f32],
        current: &HashMap<Oid, Arc<Document>>,
    ) -> Vec<(Oid, f32)> {
        let probe = Row {
            doc: Arc::new(Document {
                oids: vec![Oid(0)],
                vectors: query.to_vec(),
                dimensions: query.len(),
            }),
            at: 0,
        };
        let mut search = Search::default();
        self.map
            .search(&probe, &mut search)
            .filter(|item| {
                let (source, _) = *item.value;
                current.get(&source).is_some_and(|doc| self.covers(source, doc))
            })
            .map(|item| (item.value.1, 1.0 - item.distance))
            .collect()
    }
}
