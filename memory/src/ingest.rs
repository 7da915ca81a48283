//! Ingest: files and folders into context fractals, one transaction per document.

use std::path::{Path, PathBuf};

use batos_image::{Error, Result};
use batos_mind::Embedder;
use batos_runtime::Runtime;

use crate::chunk;
use crate::store::{self, NewFractal};
use crate::text::{self, Kind, Skip};

/// The most files one ingest takes: a folder holding more is refused before anything is
/// read, since it is nearly always a build output or a dependency tree by mistake, and
/// the person should name a narrower folder.
pub const MAX_FILES: usize = 10_000;

/// What happened to one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileOutcome {
    /// Its fractals were written (replacing `replaced` old ones).
    Ingested {
        /// How many fractals it has now.
        fractals: usize,
        /// How many it had before (0 for a new document).
        replaced: usize,
    },
    /// Its content was ingested before, unchanged: nothing was written.
    Unchanged,
    /// It was not read, for this reason.
    Skipped(String),
}

/// One file's outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileReport {
    /// The file, by its canonical path.
    pub path: String,
    /// What happened.
    pub outcome: FileOutcome,
}

/// Where an ingest is, for a progress bar.
#[derive(Clone, Debug)]
pub struct IngestProgress<'a> {
    /// Files done.
    pub done: usize,
    /// Files in all.
    pub total: usize,
    /// The file just finished.
    pub file: &'a FileReport,
}

/// The files under `paths` by canonical path: files as they are, folders walked
/// recursively in name order (hidden entries — `.git`, `.cache` — and symbolic links to
/// folders left out). A path that does not exist is an error naming it; more than
/// [`MAX_FILES`] files is an error before anything is read.
pub fn collect(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|e| Error::Io {
            context: format!("cannot read {}; name a file or folder that exists", path.display()),
            source: e,
        })?;
        // A document is known by its canonical path: the same file reached as
        // `docs/a.md` and `./docs/../docs/a.md` is one document.
        let absolute = std::fs::canonicalize(path).map_err(|e| Error::Io {
            context: format!("cannot resolve {}", path.display()),
            source: e,
        })?;
        if meta.is_dir() {
            walk(&absolute, &mut files)?;
        } else {
            files.push(absolute);
        }
        if files.len() > MAX_FILES {
            return Err(Error::BadInput(format!(
                "{} holds more than {MAX_FILES} files; ingest a narrower folder (or several, one at a time)",
                path.display()
            )));
        }
    }
    files.sort();
    files.dedup();
    Ok(files)
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| Error::Io { context: format!("cannot list {}", dir.display()), source: e })?;
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let Ok(kind) = entry.file_type() else { continue };
        if kind.is_dir() {
            walk(&entry.path(), files)?;
        } else if kind.is_file() || (kind.is_symlink() && entry.path().is_file()) {
            files.push(entry.path());
        }
        if files.len() > MAX_FILES {
            return Ok(());
        }
    }
    Ok(())
}

/// A document read and cut into passages, ready to be written.
struct Prepared {
    hash: String,
    bytes: u64,
    fractals: Vec<NewFractal>,
}

fn mind_error(e: batos_mind::MindError) -> Error {
    Error::MindUnavailable(format!("the embedding model failed: {e}"))
}

/// Reads one file and cuts it into embedded fractals, or says why it is skipped.
/// `known` is the content hash the memory holds for it, if any: equal content is
/// `Ok(None)` without embedding anything.
fn prepare(
    path: &Path,
    known: Option<&str>,
    embedder: &dyn Embedder,
) -> Result<std::result::Result<Option<Prepared>, Skip>> {
    let size = std::fs::metadata(path)
        .map_err(|e| Error::Io { context: format!("cannot read {}", path.display()), source: e })?
        .len();
    if size > text::MAX_FILE_BYTES {
        return Ok(Err(Skip::TooLarge(size)));
    }
    let bytes = std::fs::read(path)
        .map_err(|e| Error::Io { context: format!("cannot read {}", path.display()), source: e })?;
    let hash = blake3::hash(&bytes).to_hex().to_string();
    if known == Some(hash.as_str()) {
        return Ok(Ok(None));
    }
    let text = match text::decode(&bytes) {
        Ok(t) => t,
        Err(skip) => return Ok(Err(skip)),
    };
    Ok(fractals(text, Kind::of(path), embedder)?
        .map(|fractals| Some(Prepared { hash, bytes: size, fractals })))
}

/// A document's text cut into embedded fractals, or why it has none.
fn fractals(
    text: &str,
    kind: Kind,
    embedder: &dyn Embedder,
) -> Result<std::result::Result<Vec<NewFractal>, Skip>> {
    let sentences = match text::sentences(kind, text) {
        Ok(s) => s,
        Err(skip) => return Ok(Err(skip)),
    };
    if sentences.is_empty() {
        return Ok(Err(Skip::Empty));
    }
    let cap = embedder.max_tokens().saturating_sub(2).max(1);
    let count = |s: &str| embedder.count_tokens(s);
    let mut pieces = Vec::new();
    for sentence in &sentences {
        pieces.extend(chunk::split_long(sentence, cap, &count).map_err(mind_error)?);
    }
    let texts: Vec<&str> = pieces.iter().map(|(t, _)| t.as_str()).collect();
    let tokens: Vec<usize> = pieces.iter().map(|(_, n)| *n).collect();
    let vectors = embedder.embed(&texts).map_err(mind_error)?;
    let ranges = chunk::passages(&tokens, &vectors, cap);
    let passages: Vec<String> = ranges.iter().map(|r| texts[r.clone()].join(" ")).collect();
    // A passage's vector is the mean of its sentences' vectors, scaled to unit length,
    // not the vector of its whole text: measured on the design documents'
    // questions (`memory/benches/memory.rs`), recall@5 by meaning rose from 0.58 to
    // 0.70 and fused from 0.81 to 0.88, and ingest takes half the time, since the
    // sentences are embedded for the breakpoints anyway. A 256-word-piece passage's own
    // vector blurs the few sentences a question is about.
    let passage_vectors: Vec<Vec<f32>> = ranges
        .iter()
        .map(|r| {
            let mut mean = vec![0f32; embedder.dimensions()];
            for v in &vectors[r.clone()] {
                mean.iter_mut().zip(v).for_each(|(m, x)| *m += x);
            }
            let norm = mean.iter().map(|x| x * x).sum::<f32>().sqrt();
            if norm > 0.0 {
                mean.iter_mut().for_each(|m| *m /= norm);
            }
            mean
        })
        .collect();
    Ok(Ok(passages
        .into_iter()
        .zip(passage_vectors)
        .map(|(text, vector)| NewFractal { text, vector })
        .collect()))
}

/// Ingests a document given as text under `label` (a path, or a name such as
/// `batos:codex/personas.md` for what batos ships): unchanged content is a no-op, new
/// content replaces the old in one transaction.
pub fn ingest_text(
    rt: &Runtime,
    embedder: &dyn Embedder,
    label: &str,
    text: &str,
    kind: Kind,
) -> Result<FileOutcome> {
    let hash = blake3::hash(text.as_bytes()).to_hex().to_string();
    let known = rt.view(|cx| {
        Ok(match store::layout(cx.tx())? {
            Some(layout) => store::source(cx.tx(), &layout, label)?.map(|(_, h)| h),
            None => None,
        })
    })?;
    if known.as_deref() == Some(hash.as_str()) {
        return Ok(FileOutcome::Unchanged);
    }
    let fractals = match fractals(text, kind, embedder)? {
        Ok(f) => f,
        Err(skip) => return Ok(FileOutcome::Skipped(skip.to_string())),
    };
    write(rt, embedder, label, &Prepared { hash, bytes: text.len() as u64, fractals })
}

fn write(
    rt: &Runtime,
    embedder: &dyn Embedder,
    path: &str,
    prepared: &Prepared,
) -> Result<FileOutcome> {
    let model = embedder.model_id().to_owned();
    let replaced = rt
        .transact(&format!("ingest {path}"), |cx| {
            let tx = cx.tx_mut("ingest a document")?;
            let layout = store::ensure(tx)?;
            store::replace_source(
                tx,
                &layout,
                path,
                &prepared.hash,
                prepared.bytes,
                &model,
                &prepared.fractals,
            )
        })?
        .value;
    Ok(FileOutcome::Ingested { fractals: replaced.added, replaced: replaced.removed })
}

/// Ingests `paths` into the memory of `rt`: each file read, cut into passages, embedded
/// and written in its own transaction (so a document's fractals appear all at once or
/// not at all); unchanged files are left as they are; files that are not text say why.
/// `progress` hears of each file as it finishes.
pub fn ingest(
    rt: &Runtime,
    embedder: &dyn Embedder,
    paths: &[PathBuf],
    progress: &mut dyn FnMut(IngestProgress<'_>),
) -> Result<Vec<FileReport>> {
    let files = collect(paths)?;
    let mut reports = Vec::with_capacity(files.len());
    for (i, file) in files.iter().enumerate() {
        let path = file.to_string_lossy().into_owned();
        let known = rt.view(|cx| {
            Ok(match store::layout(cx.tx())? {
                Some(layout) => store::source(cx.tx(), &layout, &path)?.map(|(_, h)| h),
                None => None,
            })
        })?;
        let outcome = match prepare(file, known.as_deref(), embedder)? {
            Err(skip) => FileOutcome::Skipped(skip.to_string()),
            Ok(None) => FileOutcome::Unchanged,
            Ok(Some(prepared)) => write(rt, embedder, &path, &prepared)?,
        };
        reports.push(FileReport { path, outcome });
        if let Some(last) = reports.last() {
            progress(IngestProgress { done: i + 1, total: files.len(), file: last });
        }
    }
    Ok(reports)
}
