//! `batos model import FILE.gguf`, and the import step every pulled model goes through:
//! a GGUF is checked (header, architecture, tensor types, tokenizer, chat template),
//! exported to ONNX and copied into the models folder — all or nothing.
//!
//! The export is keyed by the GGUF's content (its blake3), not its name: the same
//! weights reached through an image's blob store or through the models folder share one
//! export. A model's key is cached beside it in `<name>.blake3`, with the file's size
//! and modification time, so an unchanged file is not hashed again.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use super::gguf::Gguf;
use super::onnx_mind::{ensure_export, export_dir};
use super::progress::Progress;
use super::{model, template::ChatTemplate, tokenizer};

/// A model ready to run: its GGUF in the models folder and its ONNX export.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Imported {
    /// The name `pLLM`'s `model` slot takes.
    pub name: String,
    /// `<models>/<name>.gguf`.
    pub gguf: PathBuf,
    /// The content key (blake3 of the GGUF, hex).
    pub key: String,
    /// The export's `model.onnx`.
    pub onnx: PathBuf,
}

/// What can go wrong importing a model.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file is not a model batos can run.
    #[error("{path} cannot be imported: {reason}")]
    Unusable {
        /// The file.
        path: PathBuf,
        /// Why, in words that name the part at fault.
        reason: String,
    },
    /// Another model already has the name.
    #[error("a different model named `{name}` is already imported; rename the file (the name comes from it) or remove {existing}")]
    NameTaken {
        /// The name.
        name: String,
        /// The file holding it.
        existing: PathBuf,
    },
    /// A file-system operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

impl ImportError {
    /// The error's stable kind: `bad_input` for a file that cannot be imported or a
    /// name already taken, `io` for the file system.
    pub fn kind(&self) -> &'static str {
        match self {
            ImportError::Unusable { .. } | ImportError::NameTaken { .. } => "bad_input",
            ImportError::Io { .. } => "io",
        }
    }
}

fn io_error(context: impl Into<String>) -> impl FnOnce(io::Error) -> ImportError {
    let context = context.into();
    move |source| ImportError::Io { context, source }
}

/// The model name a file gives: its stem, kept to letters, digits, `.`, `-` and `_`.
pub fn name_of(path: &Path) -> Option<String> {
    let stem = path.file_stem()?.to_str()?;
    let name: String = stem
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '-' })
        .collect();
    (!name.trim_matches(['-', '.']).is_empty()).then_some(name)
}

/// Checks that `path` is a GGUF batos can run, before any bytes are copied or
/// converted: readable header and metadata, a supported architecture with complete
/// hyper-parameters, supported tensor types, a tokenizer and a chat template.
pub fn check(path: &Path) -> Result<(), ImportError> {
    let unusable = |reason: String| ImportError::Unusable { path: path.to_owned(), reason };
    let g = Gguf::read(path).map_err(|e| unusable(e.to_string()))?;
    model::config(&g).map_err(unusable)?;
    tokenizer::tokenizer(&g).map_err(unusable)?;
    ChatTemplate::from_gguf(&g).map_err(unusable)?;
    Ok(())
}

/// The blake3 of a file, hex, reporting bytes to `progress`.
fn hash_file(path: &Path, progress: &mut dyn Progress) -> Result<String, ImportError> {
    let mut file =
        fs::File::open(path).map_err(io_error(format!("cannot read {}", path.display())))?;
    let total = file.metadata().map(|m| m.len()).ok();
    progress.start("hash", total);
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(io_error(format!("cannot read {}", path.display())))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        progress.advance(n as u64);
    }
    progress.finish();
    Ok(hasher.finalize().to_hex().to_string())
}

fn stamp(path: &Path) -> Option<String> {
    let meta = fs::metadata(path).ok()?;
    let modified = meta.modified().ok()?.duration_since(std::time::UNIX_EPOCH).ok()?;
    Some(format!("{} {}.{:09}", meta.len(), modified.as_secs(), modified.subsec_nanos()))
}

/// The content key of a GGUF in the models folder, from its `.blake3` sidecar when the
/// file has not changed since, else hashed (and the sidecar rewritten).
pub fn content_key(gguf: &Path, progress: &mut dyn Progress) -> Result<String, ImportError> {
    let sidecar = gguf.with_extension("blake3");
    if let (Some(now), Ok(text)) = (stamp(gguf), fs::read_to_string(&sidecar)) {
        if let Some((key, then)) = text.trim().split_once(' ') {
            if then == now && key.len() == 64 {
                return Ok(key.to_owned());
            }
        }
    }
    let key = hash_file(gguf, progress)?;
    let text = format!("{key} {}", stamp(gguf).unwrap_or_default());
    fs::write(&sidecar, text).map_err(io_error(format!("cannot write {}", sidecar.display())))?;
    Ok(key)
}

/// Exports a model already in the models folder (a pulled one) if that was not done.
/// An exported model is not read again: `pull` of a present model stays a no-op. The
/// caller holds the folder's [`super::folder::ModelsLock`].
pub fn prepare(
    name: &str,
    models: &Path,
    progress: &mut dyn Progress,
) -> Result<Imported, ImportError> {
    let gguf = models.join(format!("{name}.gguf"));
    let key = content_key(&gguf, progress)?;
    let dir = export_dir(models, &key);
    if !dir.join("model.onnx").is_file() {
        check(&gguf)?;
    }
    let onnx = ensure_export(&gguf, &dir, progress)
        .map_err(|e| ImportError::Unusable { path: gguf.clone(), reason: e.to_string() })?;
    Ok(Imported { name: name.to_owned(), gguf, key, onnx })
}

/// Imports a user's GGUF into `models` under the name its file gives. Checks it, exports
/// it, then copies it in: a failure at any step leaves the models folder as it was.
/// Importing the same file again does nothing.
pub fn import(
    source: &Path,
    models: &Path,
    progress: &mut dyn Progress,
) -> Result<Imported, ImportError> {
    let name = name_of(source).ok_or_else(|| ImportError::Unusable {
        path: source.to_owned(),
        reason: "its file name gives no model name; rename it to something like my-model.gguf"
            .into(),
    })?;
    check(source)?;
    let _held = super::folder::ModelsLock::acquire(models)
        .map_err(io_error(format!("cannot lock the models folder {}", models.display())))?;
    let key = hash_file(source, progress)?;
    let target = models.join(format!("{name}.gguf"));
    if target.is_file() && content_key(&target, progress)? != key {
        return Err(ImportError::NameTaken { name, existing: target });
    }
    let dir = export_dir(models, &key);
    let onnx = ensure_export(source, &dir, progress)
        .map_err(|e| ImportError::Unusable { path: source.to_owned(), reason: e.to_string() })?;
    if !target.is_file() {
        copy_into_place(source, &target, progress)?;
        let text = format!("{key} {}", stamp(&target).unwrap_or_default());
        let sidecar = target.with_extension("blake3");
        fs::write(&sidecar, text)
            .map_err(io_error(format!("cannot write {}", sidecar.display())))?;
    }
    Ok(Imported { name, gguf: target, key, onnx })
}

/// Copies through `<target>.partial`, fsynced and renamed, so a crash leaves either no
/// model or a whole one.
fn copy_into_place(
    source: &Path,
    target: &Path,
    progress: &mut dyn Progress,
) -> Result<(), ImportError> {
    let partial = target.with_extension("gguf.partial");
    let result = (|| {
        let mut from = fs::File::open(source)
            .map_err(io_error(format!("cannot read {}", source.display())))?;
        let mut to = fs::File::create(&partial)
            .map_err(io_error(format!("cannot create {}", partial.display())))?;
        progress.start("copy", from.metadata().map(|m| m.len()).ok());
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = from
                .read(&mut buf)
                .map_err(io_error(format!("cannot read {}", source.display())))?;
            if n == 0 {
                break;
            }
            to.write_all(&buf[..n])
                .map_err(io_error(format!("cannot write {}", partial.display())))?;
            progress.advance(n as u64);
        }
        progress.finish();
        to.sync_all().map_err(io_error(format!("cannot fsync {}", partial.display())))?;
        fs::rename(&partial, target)
            .map_err(io_error(format!("cannot move the model into {}", target.display())))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&partial);
    }
    result
}

/// The models in the folder: `(name, size in bytes)`, sorted by name.
pub fn installed(models: &Path) -> Vec<(String, u64)> {
    let mut found: Vec<(String, u64)> = fs::read_dir(models)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let path = e.path();
            let name = path.file_name()?.to_str()?.strip_suffix(".gguf")?.to_owned();
            Some((name, e.metadata().ok()?.len()))
        })
        .collect();
    found.sort();
    found
}
