//! # batos-memory
//!
//! The memory batos builds itself (the design's O-RAG): documents ingested as **context
//! fractals** — passages cut where the meaning moves, each with its vector — kept as
//! objects of the image under the root `memory`, and searched by words (BM25 over
//! postings kept in the image, transactional with the passages) and by meaning (an
//! exact scan of the vectors), the two rankings fused by reciprocal rank.
//!
//! It narrows its dependencies to the image and runtime layers and to the mind's
//! [`Embedder`] trait: the embedding model itself (ONNX Runtime) is `batos-model`'s,
//! handed in by whoever builds a [`Memory`] (`batos::memory()`), so this crate never
//! links a model runtime. Modules: [`text`] (files into sentences, and why a file is
//! skipped), [`chunk`] (sentences into passages), [`terms`] (BM25's words),
//! [`store`] (the objects), [`search`] (the rankings and their fusion), [`ingest`].
//!
//! Everything a search or an ingest does to the image goes through a transaction with
//! the caller's authority; a capability searches only with the `memory` grant
//! (`Effect::Recall`, decided by the one gate), by the WIT `memory` interface or by
//! sending `search:` to `memory`: one path.

pub mod approximate;
pub mod chunk;
pub mod compress;
pub mod ingest;
pub mod search;
pub mod store;
pub mod terms;
pub mod text;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use batos_image::{Error, Result, Value};
use batos_mind::{Embedder, MindError};
use batos_runtime::{Call, Context, Effect, Runtime, RuntimeBuilder};

pub use compress::Compressed;
pub use ingest::{FileOutcome, FileReport, IngestProgress, MAX_FILES};
pub use search::{Hit, SearchOptions, VectorIndex};
pub use store::MEMORY_ROOT;

/// The persona codex: ALFRED, BRICK, ROBIN and BABS in batos's own words, shipped with
/// batos and ingested into every image's memory when it first wakes (see
/// [`Memory::awaken`]).
pub const PERSONA_CODEX: &str = include_str!("../codex/personas.md");

/// The source name the codex is kept under.
pub const PERSONA_CODEX_SOURCE: &str = "batos:codex/personas.md";

/// Loads the embedding model (pulling it the first time): called once, on first need.
pub type LoadEmbedder =
    Box<dyn Fn() -> std::result::Result<Arc<dyn Embedder>, MindError> + Send + Sync>;

/// The memory of a process: its embedding model, loaded on first use, and the vector
/// index derived from each image it searches. Share one per process (`Arc`).
pub struct Memory {
    load: LoadEmbedder,
    embedder: Mutex<Option<Arc<dyn Embedder>>>,
    vectors: VectorIndex,
}

impl Memory {
    /// A memory whose embedding model `load` makes on first use.
    pub fn new(load: LoadEmbedder) -> Arc<Memory> {
        Arc::new(Memory { load, embedder: Mutex::new(None), vectors: VectorIndex::default() })
    }

    /// A memory with this embedding model.
    pub fn with_embedder(embedder: Arc<dyn Embedder>) -> Arc<Memory> {
        let memory = Memory::new(Box::new(|| {
            Err(MindError::Model("the embedding model was handed in and is gone".into()))
        }));
        *memory.embedder.lock().unwrap_or_else(PoisonError::into_inner) = Some(embedder);
        memory
    }

    /// The embedding model, loaded (once) if it is not yet.
    pub fn embedder(&self) -> Result<Arc<dyn Embedder>> {
        let mut held = self.embedder.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(e) = held.as_ref() {
            return Ok(e.clone());
        }
        let loaded = (self.load)().map_err(|e| {
            Error::MindUnavailable(format!("the embedding model is not available: {e}"))
        })?;
        *held = Some(loaded.clone());
        Ok(loaded)
    }

    /// Registers `memory search:` and `search:limit:` with a runtime being built, and
    /// makes the memory's objects when a new image is awakened.
    pub fn attach(self: &Arc<Self>, builder: RuntimeBuilder) -> RuntimeBuilder {
        let memory = self.clone();
        builder
            .primitive(store::SEARCH_PRIMITIVE, move |cx, call| memory.search_primitive(cx, call))
            .awakening(|tx, _| store::ensure(tx).map(|_| ()))
    }

    /// Makes the memory's objects in an image awakened before memory existed; a no-op
    /// (no transaction) when they are there.
    pub fn prepare(&self, rt: &Runtime) -> Result<()> {
        if rt.view(|cx| store::layout(cx.tx()))?.is_none() {
            rt.transact("make the memory", |cx| store::ensure(cx.tx_mut("make the memory")?))?;
        }
        Ok(())
    }

    /// The vector index (its approximate part's threshold, an explicit build, what the
    /// last ranking used).
    pub fn vector_index(&self) -> &VectorIndex {
        &self.vectors
    }

    /// Builds the approximate vector index of `rt`'s memory now (see
    /// [`VectorIndex::build_approximate`]); answers how many vectors it holds.
    pub fn build_approximate_index(&self, rt: &Runtime) -> Result<usize> {
        let dimensions = self.embedder()?.dimensions();
        rt.view(|cx| match store::layout(cx.tx())? {
            Some(layout) => self.vectors.build_approximate(cx.tx(), &layout, dimensions),
            None => Ok(0),
        })
    }

    /// Wakes the memory of `rt`: ingests the persona codex unless the image holds this
    /// very text already (a view, no transaction, when it does). The first ingest,
    /// search or compression of each image in a process does this, since it loads the
    /// embedding model anyway; a capability's search does not (it runs inside a send).
    pub fn awaken(&self, rt: &Runtime) -> Result<()> {
        let embedder = self.embedder()?;
        ingest::ingest_text(
            rt,
            embedder.as_ref(),
            PERSONA_CODEX_SOURCE,
            PERSONA_CODEX,
            text::Kind::Markdown,
        )?;
        Ok(())
    }

    /// Ingests files and folders (see [`ingest::ingest`]).
    pub fn ingest(
        &self,
        rt: &Runtime,
        paths: &[PathBuf],
        progress: &mut dyn FnMut(IngestProgress<'_>),
    ) -> Result<Vec<FileReport>> {
        let files = ingest::collect(paths)?;
        if files.is_empty() {
            return Ok(Vec::new());
        }
        let embedder = self.embedder()?;
        self.awaken(rt)?;
        ingest::ingest(rt, embedder.as_ref(), &files, progress)
    }

    /// Compresses the memory of `rt` once (see [`compress::compress`]), asking `mind`
    /// as BABS; `progress` hears (clusters done, clusters).
    pub fn compress(
        &self,
        rt: &Runtime,
        mind: &dyn batos_mind::Mind,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Compressed> {
        let embedder = self.embedder()?;
        self.awaken(rt)?;
        compress::compress(rt, mind, embedder.as_ref(), progress)
    }

    /// Searches the memory of `rt` for `query`, as a person.
    pub fn search(&self, rt: &Runtime, query: &str, options: SearchOptions) -> Result<Vec<Hit>> {
        search::check_query(query)?;
        self.awaken(rt)?;
        let vector = if options.meaning > 0.0 { Some(self.embed_query(query)?) } else { None };
        rt.view(|cx| self.ranked(cx, query, vector.as_deref(), &options))
    }

    fn embed_query(&self, query: &str) -> Result<Vec<f32>> {
        let embedder = self.embedder()?;
        let mut vectors = embedder
            .embed(&[query])
            .map_err(|e| Error::MindUnavailable(format!("the embedding model failed: {e}")))?;
        vectors
            .pop()
            .ok_or_else(|| Error::MindUnavailable("the embedding model answered no vector".into()))
    }

    fn ranked(
        &self,
        cx: &Context<'_, '_>,
        query: &str,
        vector: Option<&[f32]>,
        options: &SearchOptions,
    ) -> Result<Vec<Hit>> {
        let tx = cx.tx();
        let Some(layout) = store::layout(tx)? else { return Ok(Vec::new()) };
        let words =
            if options.words > 0.0 { search::rank_words(tx, &layout, query)? } else { Vec::new() };
        let meaning = match vector {
            Some(v) => self.vectors.rank(tx, &layout, v)?,
            None => Vec::new(),
        };
        search::fuse(tx, &words, &meaning, options)
    }

    /// `search: query` and `search:limit: query n`: the best passages as a list of maps
    /// (`text`, `source`, `position`, `score`, `fractal`, and each ranking's rank).
    /// Recalling is an effect the gate decides; the query is embedded outside the
    /// transaction, once per send.
    fn search_primitive(
        self: &Arc<Self>,
        cx: &mut Context<'_, '_>,
        call: &Call<'_>,
    ) -> Result<Value> {
        cx.permit(Effect::Recall)?;
        let query = call.text(0)?.to_owned();
        let limit = match call.args.len() {
            1 => SearchOptions::default().limit,
            2 => usize::try_from(call.int(1)?)
                .ok()
                .filter(|n| (1..=search::MAX_LIMIT).contains(n))
                .ok_or_else(|| {
                    Error::bad_arguments(
                        call.selector,
                        format!("the limit must be 1 to {}", search::MAX_LIMIT),
                    )
                })?,
            n => {
                return Err(Error::bad_arguments(
                    call.selector,
                    format!("expects 1 or 2 arguments, got {n}"),
                ))
            }
        };
        search::check_query(&query)?;
        let memory = self.clone();
        let key = format!("embed|{}", blake3::hash(query.as_bytes()).to_hex());
        let asked = query.clone();
        let vector =
            cx.outside(key, move || memory.embed_query(&asked).map(|v| store::encode_vector(&v)))?;
        let vector = store::decode_vector(&vector, vector_len(&vector))
            .ok_or_else(|| Error::Failed("the query's vector was lost".into()))?;
        let options = SearchOptions { limit, ..SearchOptions::default() };
        let hits = self.ranked(cx, &query, Some(&vector), &options)?;
        Ok(Value::List(hits.iter().map(Hit::to_value).collect()))
    }
}

fn vector_len(value: &Value) -> usize {
    match value {
        Value::Bytes(b) => b.len() / 4,
        _ => 0,
    }
}
