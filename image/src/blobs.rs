//! Content-addressed blob files (the seeds' blob-proxy pattern).
//!
//! Large binaries live outside fjall as `blobs/<first 2 hex>/<64 hex>`, named by the
//! blake3 hash of their content. A blob is made durable *before* any transaction can
//! reference it: write to `blobs/tmp/`, fsync the file, rename into place, fsync the
//! directory. A crash therefore leaves at worst an unreferenced file (swept by `pack`),
//! never a reference to a missing or partial one. Blob writes are fsynced whatever the
//! image's durability mode, because their whole point is to precede the commit.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::{BlobHash, BlobRef};
use crate::error::{Error, Result};

/// The blob directory of one image.
#[derive(Debug)]
pub struct BlobStore {
    dir: PathBuf,
    tmp_counter: AtomicU64,
}

impl BlobStore {
    pub(crate) fn open(dir: PathBuf) -> Result<Self> {
        let tmp = dir.join("tmp");
        fs::create_dir_all(&tmp)
            .map_err(|e| Error::io(format!("cannot create {}", tmp.display()), e))?;
        // Leftovers of writes cut short by a crash: never referenced, safe to drop.
        if let Ok(entries) = fs::read_dir(&tmp) {
            for entry in entries.flatten() {
                let _ = fs::remove_file(entry.path());
            }
        }
        Ok(BlobStore { dir, tmp_counter: AtomicU64::new(0) })
    }

    /// Where the blob with this hash lives (whether or not it exists).
    pub fn path(&self, hash: &BlobHash) -> PathBuf {
        let hex = hash.to_hex();
        self.dir.join(&hex[..2]).join(hex)
    }

    /// Whether the blob's file exists.
    pub fn contains(&self, hash: &BlobHash) -> bool {
        self.path(hash).is_file()
    }

    /// Stores `bytes` durably and returns their reference. Idempotent.
    pub fn put(&self, bytes: &[u8]) -> Result<BlobRef> {
        self.put_reader(bytes)
    }

    /// Streams a file into the store (for model weights and other large inputs).
    pub fn put_file(&self, source: &Path) -> Result<BlobRef> {
        let file = File::open(source)
            .map_err(|e| Error::io(format!("cannot read {}", source.display()), e))?;
        self.put_reader(std::io::BufReader::new(file))
    }

    /// Adds a large file that will never change in place (a model's weights) without
    /// copying it when it can: after hashing, the file is hard-linked into the store,
    /// and copied only where linking fails (another filesystem). Both paths then name
    /// one inode, so whoever writes the source later must replace it by rename, never
    /// rewrite it.
    pub fn adopt_file(&self, source: &Path) -> Result<BlobRef> {
        let file = File::open(source)
            .map_err(|e| Error::io(format!("cannot read {}", source.display()), e))?;
        let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
        let mut hasher = blake3::Hasher::new();
        let size = std::io::copy(&mut reader, &mut hasher)
            .map_err(|e| Error::io(format!("cannot read {}", source.display()), e))?;
        let hash = BlobHash(*hasher.finalize().as_bytes());
        let dest = self.path(&hash);
        if dest.is_file() {
            return Ok(BlobRef { hash, size });
        }
        let n = self.tmp_counter.fetch_add(1, Ordering::Relaxed);
        let tmp_path = self.dir.join("tmp").join(format!("{}-{n}", std::process::id()));
        if fs::hard_link(source, &tmp_path).is_err() {
            return self.put_file(source);
        }
        let shard = dest.parent().unwrap_or(&self.dir);
        fs::create_dir_all(shard)
            .map_err(|e| Error::io(format!("cannot create {}", shard.display()), e))?;
        fs::rename(&tmp_path, &dest)
            .map_err(|e| Error::io(format!("cannot move {} into place", tmp_path.display()), e))?;
        sync_dir(shard)?;
        sync_dir(&self.dir)?;
        Ok(BlobRef { hash, size })
    }

    fn put_reader(&self, mut reader: impl Read) -> Result<BlobRef> {
        let n = self.tmp_counter.fetch_add(1, Ordering::Relaxed);
        let tmp_path = self.dir.join("tmp").join(format!("{}-{n}", std::process::id()));
        let io = |what: &str, e| Error::io(format!("{what} {}", tmp_path.display()), e);
        let mut file = File::create(&tmp_path).map_err(|e| io("cannot create", e))?;
        let mut hasher = blake3::Hasher::new();
        let mut size = 0u64;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let got = reader.read(&mut buf).map_err(|e| io("cannot read input for", e))?;
            if got == 0 {
                break;
            }
            let chunk = &buf[..got];
            hasher.update(chunk);
            file.write_all(chunk).map_err(|e| io("cannot write", e))?;
            size += got as u64;
        }
        let hash = BlobHash(*hasher.finalize().as_bytes());
        let blob = BlobRef { hash, size };
        let dest = self.path(&hash);
        if dest.is_file() {
            drop(file);
            let _ = fs::remove_file(&tmp_path);
            return Ok(blob);
        }
        file.sync_all().map_err(|e| io("cannot fsync", e))?;
        drop(file);
        let shard = dest.parent().unwrap_or(&self.dir);
        fs::create_dir_all(shard)
            .map_err(|e| Error::io(format!("cannot create {}", shard.display()), e))?;
        fs::rename(&tmp_path, &dest).map_err(|e| io("cannot move into place", e))?;
        sync_dir(shard)?;
        sync_dir(&self.dir)?;
        Ok(blob)
    }

    /// Reads a whole blob and checks that its content still hashes to its name.
    pub fn read(&self, blob: &BlobRef) -> Result<Vec<u8>> {
        let path = self.path(&blob.hash);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::BlobMissing(blob.hash))
            }
            Err(e) => return Err(Error::io(format!("cannot read {}", path.display()), e)),
        };
        let actual = BlobHash::of(&bytes);
        if actual != blob.hash {
            return Err(Error::BlobCorrupt { hash: blob.hash, actual, path });
        }
        Ok(bytes)
    }

    /// Every blob hash on disk.
    pub(crate) fn list(&self) -> Result<Vec<BlobHash>> {
        let mut out = Vec::new();
        let entries = fs::read_dir(&self.dir)
            .map_err(|e| Error::io(format!("cannot list {}", self.dir.display()), e))?;
        for shard in entries.flatten() {
            if shard.file_name() == "tmp" || !shard.path().is_dir() {
                continue;
            }
            let files =
                fs::read_dir(shard.path()).map_err(|e| Error::io("cannot list a blob shard", e))?;
            for f in files.flatten() {
                if let Some(hash) = f.file_name().to_str().and_then(|n| n.parse().ok()) {
                    out.push(hash);
                }
            }
        }
        Ok(out)
    }

    pub(crate) fn remove(&self, hash: &BlobHash) -> Result<()> {
        let path = self.path(hash);
        fs::remove_file(&path)
            .map_err(|e| Error::io(format!("cannot remove {}", path.display()), e))
    }
}

pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(format!("cannot fsync directory {}", dir.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_is_idempotent_and_verified_on_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = BlobStore::open(dir.path().join("blobs")).expect("opens");
        let a = store.put(b"hello").expect("put");
        let b = store.put(b"hello").expect("put again");
        assert_eq!(a, b);
        assert_eq!(a.size, 5);
        assert_eq!(store.read(&a).expect("reads"), b"hello");
        assert_eq!(store.list().expect("lists"), vec![a.hash]);

        fs::write(store.path(&a.hash), b"hellp").expect("damage");
        assert!(matches!(store.read(&a), Err(Error::BlobCorrupt { .. })));
        store.remove(&a.hash).expect("removes");
        assert!(matches!(store.read(&a), Err(Error::BlobMissing(_))));
    }
}
