//! GGUF: the file format of llama.cpp models — header, metadata, tensor infos and
//! aligned tensor data (ggml's `docs/gguf.md`, version 3; versions 2 and 3 read alike).
//!
//! [`Gguf::read`] parses everything but the tensor data, which [`Gguf::tensor_bytes`]
//! reads on demand, so a 500 MB model costs a few kilobytes to inspect. Every count and
//! length read from the file is bounded before anything is allocated for it: a
//! truncated or hostile file is an error, never a huge allocation or a panic.
//! [`GgufWriter`] writes the same format (the tests build tiny models with it).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::quant::GgmlType;

/// The magic at the start of every GGUF file ("GGUF").
pub const MAGIC: [u8; 4] = *b"GGUF";

/// The default alignment of the tensor data, when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;

// Bounds on what the header may ask us to allocate. Real models have a few hundred
// tensors and a vocabulary of a few hundred thousand strings.
const MAX_TENSORS: u64 = 1 << 16;
const MAX_METADATA: u64 = 1 << 16;
const MAX_STRING: u64 = 1 << 24;
const MAX_ARRAY: u64 = 1 << 24;
const MAX_DIMS: u32 = 4;

/// What can go wrong reading a GGUF file.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The bytes are not a GGUF file, or not one this reader understands.
    #[error("{path} is not a usable GGUF file: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// A metadata value.
#[derive(Clone, Debug, PartialEq)]
pub enum MetaValue {
    /// `u8`
    U8(u8),
    /// `i8`
    I8(i8),
    /// `u16`
    U16(u16),
    /// `i16`
    I16(i16),
    /// `u32`
    U32(u32),
    /// `i32`
    I32(i32),
    /// `f32`
    F32(f32),
    /// `bool`
    Bool(bool),
    /// A UTF-8 string.
    String(String),
    /// An array of values of one type.
    Array(Vec<MetaValue>),
    /// `u64`
    U64(u64),
    /// `i64`
    I64(i64),
    /// `f64`
    F64(f64),
}

impl MetaValue {
    /// The value as an unsigned integer, if it is an integer that fits.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            MetaValue::U8(v) => Some(v.into()),
            MetaValue::U16(v) => Some(v.into()),
            MetaValue::U32(v) => Some(v.into()),
            MetaValue::U64(v) => Some(v),
            MetaValue::I8(v) => u64::try_from(v).ok(),
            MetaValue::I16(v) => u64::try_from(v).ok(),
            MetaValue::I32(v) => u64::try_from(v).ok(),
            MetaValue::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// The value as a float, if it is numeric.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            MetaValue::F32(v) => Some(v.into()),
            MetaValue::F64(v) => Some(v),
            _ => self.as_u64().map(|v| v as f64),
        }
    }

    /// The value as a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            MetaValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// The value as an array.
    pub fn as_array(&self) -> Option<&[MetaValue]> {
        match self {
            MetaValue::Array(items) => Some(items),
            _ => None,
        }
    }

    fn type_id(&self) -> u32 {
        match self {
            MetaValue::U8(_) => 0,
            MetaValue::I8(_) => 1,
            MetaValue::U16(_) => 2,
            MetaValue::I16(_) => 3,
            MetaValue::U32(_) => 4,
            MetaValue::I32(_) => 5,
            MetaValue::F32(_) => 6,
            MetaValue::Bool(_) => 7,
            MetaValue::String(_) => 8,
            MetaValue::Array(_) => 9,
            MetaValue::U64(_) => 10,
            MetaValue::I64(_) => 11,
            MetaValue::F64(_) => 12,
        }
    }
}

/// Where a tensor is and what it holds.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    /// Its name, e.g. `blk.0.attn_q.weight`.
    pub name: String,
    /// Its dimensions, innermost (contiguous) first, as ggml writes them.
    pub dims: Vec<u64>,
    /// Its element encoding.
    pub ggml_type: GgmlType,
    /// Its offset from the start of the data section.
    pub offset: u64,
}

impl TensorInfo {
    /// The number of elements.
    pub fn elements(&self) -> u64 {
        // Saturating: a file's dimensions are checked for overflow when it is read, so
        // for a parsed file this is exact, and no hand-made info can panic here.
        self.dims.iter().fold(1u64, |n, &d| n.saturating_mul(d))
    }

    /// Its size in bytes in the file.
    pub fn byte_len(&self) -> Option<u64> {
        self.ggml_type.byte_len(self.elements())
    }
}

/// A parsed GGUF file (header, metadata and tensor infos).
#[derive(Clone, Debug)]
pub struct Gguf {
    /// The file.
    pub path: PathBuf,
    /// The format version (2 or 3).
    pub version: u32,
    /// Metadata, by key.
    pub metadata: BTreeMap<String, MetaValue>,
    /// Tensor infos, in file order.
    pub tensors: Vec<TensorInfo>,
    /// Where the data section starts in the file.
    pub data_offset: u64,
}

struct Reader<R> {
    inner: R,
    path: PathBuf,
    position: u64,
    len: u64,
}

impl<R: Read> Reader<R> {
    fn invalid(&self, reason: impl Into<String>) -> GgufError {
        GgufError::Invalid { path: self.path.clone(), reason: reason.into() }
    }

    fn bytes(&mut self, n: u64, what: &str) -> Result<Vec<u8>, GgufError> {
        if n > self.len.saturating_sub(self.position) {
            return Err(self.invalid(format!("{what} runs past the end of the file (truncated?)")));
        }
        let mut buf = vec![
            0u8;
            usize::try_from(n)
                .map_err(|_| self.invalid(format!("{what} is too large")))?
        ];
        self.inner.read_exact(&mut buf).map_err(|_| {
            self.invalid(format!("{what} runs past the end of the file (truncated?)"))
        })?;
        self.position += n;
        Ok(buf)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], GgufError> {
        let v = self.bytes(N as u64, what)?;
        v.try_into().map_err(|_| self.invalid(what.to_owned()))
    }

    fn u32(&mut self, what: &str) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    fn string(&mut self, what: &str) -> Result<String, GgufError> {
        let len = self.u64(what)?;
        if len > MAX_STRING {
            return Err(self.invalid(format!("{what} claims {len} bytes")));
        }
        let bytes = self.bytes(len, what)?;
        String::from_utf8(bytes).map_err(|_| self.invalid(format!("{what} is not UTF-8")))
    }

    fn value(&mut self, type_id: u32, what: &str, depth: u32) -> Result<MetaValue, GgufError> {
        Ok(match type_id {
            0 => MetaValue::U8(self.array::<1>(what)?[0]),
            1 => MetaValue::I8(i8::from_le_bytes(self.array(what)?)),
            2 => MetaValue::U16(u16::from_le_bytes(self.array(what)?)),
            3 => MetaValue::I16(i16::from_le_bytes(self.array(what)?)),
            4 => MetaValue::U32(self.u32(what)?),
            5 => MetaValue::I32(i32::from_le_bytes(self.array(what)?)),
            6 => MetaValue::F32(f32::from_le_bytes(self.array(what)?)),
            7 => MetaValue::Bool(self.array::<1>(what)?[0] != 0),
            8 => MetaValue::String(self.string(what)?),
            9 => {
                if depth > 2 {
                    return Err(self.invalid(format!("{what} nests arrays too deeply")));
                }
                let item_type = self.u32(what)?;
                let count = self.u64(what)?;
                if count > MAX_ARRAY {
                    return Err(self.invalid(format!("{what} claims {count} items")));
                }
                let mut items = Vec::new();
                for _ in 0..count {
                    items.push(self.value(item_type, what, depth + 1)?);
                }
                MetaValue::Array(items)
            }
            10 => MetaValue::U64(self.u64(what)?),
            11 => MetaValue::I64(i64::from_le_bytes(self.array(what)?)),
            12 => MetaValue::F64(f64::from_le_bytes(self.array(what)?)),
            other => return Err(self.invalid(format!("{what} has unknown value type {other}"))),
        })
    }
}

impl Gguf {
    /// Reads the header, metadata and tensor infos of a GGUF file.
    pub fn read(path: impl AsRef<Path>) -> Result<Gguf, GgufError> {
        let path = path.as_ref().to_path_buf();
        let io = |source| GgufError::Io { path: path.clone(), source };
        let file = File::open(&path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let mut r = Reader { inner: BufReader::new(file), path: path.clone(), position: 0, len };
        if r.array::<4>("the magic")? != MAGIC {
            return Err(r.invalid("it does not start with the GGUF magic"));
        }
        let version = r.u32("the version")?;
        if !(2..=3).contains(&version) {
            return Err(r.invalid(format!("GGUF version {version} is not supported (2 and 3 are)")));
        }
        let tensor_count = r.u64("the tensor count")?;
        let metadata_count = r.u64("the metadata count")?;
        if tensor_count > MAX_TENSORS || metadata_count > MAX_METADATA {
            return Err(r.invalid(format!(
                "it claims {tensor_count} tensors and {metadata_count} metadata entries"
            )));
        }
        let mut metadata = BTreeMap::new();
        for _ in 0..metadata_count {
            let key = r.string("a metadata key")?;
            let type_id = r.u32("a metadata type")?;
            let value = r.value(type_id, &format!("metadata `{key}`"), 0)?;
            metadata.insert(key, value);
        }
        let mut tensors = Vec::new();
        for _ in 0..tensor_count {
            let name = r.string("a tensor name")?;
            let n_dims = r.u32("a tensor's dimension count")?;
            if n_dims == 0 || n_dims > MAX_DIMS {
                return Err(r.invalid(format!("tensor `{name}` has {n_dims} dimensions")));
            }
            let mut dims = Vec::new();
            for _ in 0..n_dims {
                dims.push(r.u64("a tensor dimension")?);
            }
            if dims.iter().try_fold(1u64, |n, &d| n.checked_mul(d)).is_none() {
                return Err(r.invalid(format!(
                    "tensor `{name}` has dimensions {dims:?}, whose product overflows"
                )));
            }
            let type_id = r.u32("a tensor type")?;
            let ggml_type = GgmlType::from_id(type_id).ok_or_else(|| {
                r.invalid(format!("tensor `{name}` has unknown ggml type {type_id}"))
            })?;
            let offset = r.u64("a tensor offset")?;
            tensors.push(TensorInfo { name, dims, ggml_type, offset });
        }
        let alignment = match metadata.get("general.alignment") {
            Some(v) => v
                .as_u64()
                .filter(|a| a.is_power_of_two())
                .ok_or_else(|| r.invalid("general.alignment is not a power of two"))?,
            None => DEFAULT_ALIGNMENT,
        };
        let data_offset =
            r.position.div_ceil(alignment).checked_mul(alignment).ok_or_else(|| {
                r.invalid(format!("general.alignment {alignment} puts the data past any file"))
            })?;
        let gguf = Gguf { path, version, metadata, tensors, data_offset };
        for t in &gguf.tensors {
            let size = t.byte_len().ok_or_else(|| {
                gguf.invalid(format!(
                    "tensor `{}` has {} elements, not whole blocks of {:?}",
                    t.name,
                    t.elements(),
                    t.ggml_type
                ))
            })?;
            let end = gguf.data_offset.checked_add(t.offset).and_then(|s| s.checked_add(size));
            if end.is_none_or(|end| end > len) {
                return Err(gguf.invalid(format!(
                    "tensor `{}` lies past the end of the file (truncated?)",
                    t.name
                )));
            }
        }
        Ok(gguf)
    }

    fn invalid(&self, reason: impl Into<String>) -> GgufError {
        GgufError::Invalid { path: self.path.clone(), reason: reason.into() }
    }

    /// A metadata value.
    pub fn get(&self, key: &str) -> Option<&MetaValue> {
        self.metadata.get(key)
    }

    /// The model architecture (`general.architecture`).
    pub fn architecture(&self) -> Option<&str> {
        self.get("general.architecture").and_then(MetaValue::as_str)
    }

    /// A tensor's info by name.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// The raw bytes of a tensor, read from the file.
    pub fn tensor_bytes(&self, info: &TensorInfo) -> Result<Vec<u8>, GgufError> {
        let io = |source| GgufError::Io { path: self.path.clone(), source };
        let size = info
            .byte_len()
            .ok_or_else(|| self.invalid(format!("tensor `{}` has a ragged size", info.name)))?;
        let mut file = File::open(&self.path).map_err(io)?;
        let start = self
            .data_offset
            .checked_add(info.offset)
            .ok_or_else(|| self.invalid(format!("tensor `{}` starts past any file", info.name)))?;
        file.seek(SeekFrom::Start(start)).map_err(io)?;
        let mut buf = vec![
            0u8;
            usize::try_from(size)
                .map_err(|_| self.invalid("a tensor is too large for memory"))?
        ];
        file.read_exact(&mut buf).map_err(io)?;
        Ok(buf)
    }

    /// A tensor dequantized to `f32`.
    pub fn tensor_f32(&self, info: &TensorInfo) -> Result<Vec<f32>, GgufError> {
        let bytes = self.tensor_bytes(info)?;
        super::quant::dequantize(info.ggml_type, &bytes)
            .map_err(|e| self.invalid(format!("tensor `{}`: {e}", info.name)))
    }
}

/// Writes a GGUF file: metadata, then tensors given as raw (already encoded) bytes.
#[derive(Default)]
pub struct GgufWriter {
    metadata: Vec<(String, MetaValue)>,
    tensors: Vec<(String, Vec<u64>, GgmlType, Vec<u8>)>,
}

impl GgufWriter {
    /// Adds a metadata entry.
    pub fn meta(&mut self, key: &str, value: MetaValue) -> &mut Self {
        self.metadata.push((key.to_owned(), value));
        self
    }

    /// Adds a tensor; `data` must be `dims`' elements encoded as `ggml_type`.
    pub fn tensor(
        &mut self,
        name: &str,
        dims: &[u64],
        ggml_type: GgmlType,
        data: Vec<u8>,
    ) -> &mut Self {
        self.tensors.push((name.to_owned(), dims.to_vec(), ggml_type, data));
        self
    }

    /// Writes the file (version 3, alignment 32).
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let mut out = Vec::new();
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        out.extend_from_slice(&(self.metadata.len() as u64).to_le_bytes());
        for (key, value) in &self.metadata {
            write_string(&mut out, key);
            out.extend_from_slice(&value.type_id().to_le_bytes());
            write_value(&mut out, value);
        }
        let mut offset = 0u64;
        let mut offsets = Vec::new();
        for (name, dims, ggml_type, data) in &self.tensors {
            write_string(&mut out, name);
            out.extend_from_slice(&(dims.len() as u32).to_le_bytes());
            for d in dims {
                out.extend_from_slice(&d.to_le_bytes());
            }
            out.extend_from_slice(&ggml_type.id().to_le_bytes());
            out.extend_from_slice(&offset.to_le_bytes());
            offsets.push(offset);
            offset = (offset + data.len() as u64).div_ceil(DEFAULT_ALIGNMENT) * DEFAULT_ALIGNMENT;
        }
        let data_start = (out.len() as u64).div_ceil(DEFAULT_ALIGNMENT) * DEFAULT_ALIGNMENT;
        out.resize(data_start as usize, 0);
        for ((_, _, _, data), at) in self.tensors.iter().zip(offsets) {
            out.resize((data_start + at) as usize, 0);
            out.extend_from_slice(data);
        }
        let mut file = File::create(path)?;
        file.write_all(&out)?;
        file.sync_all()
    }
}

fn write_string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn write_value(out: &mut Vec<u8>, value: &MetaValue) {
    match value {
        MetaValue::U8(v) => out.push(*v),
        MetaValue::I8(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetaValue::U16(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetaValue::I16(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetaValue::U32(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetaValue::I32(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetaValue::F32(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetaValue::Bool(v) => out.push(u8::from(*v)),
        MetaValue::String(s) => write_string(out, s),
        MetaValue::Array(items) => {
            let item_type = items.first().map_or(4, MetaValue::type_id);
            out.extend_from_slice(&item_type.to_le_bytes());
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for item in items {
                write_value(out, item);
            }
        }
        MetaValue::U64(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetaValue::I64(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetaValue::F64(v) => out.extend_from_slice(&v.to_le_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(path: &Path) {
        let weights: Vec<u8> =
            [1.5f32, -2.0, 0.25, 8.0].iter().flat_map(|f| f.to_le_bytes()).collect();
        GgufWriter::default()
            .meta("general.architecture", MetaValue::String("qwen2".into()))
            .meta("qwen2.block_count", MetaValue::U32(2))
            .meta(
                "tokenizer.ggml.tokens",
                MetaValue::Array(vec![
                    MetaValue::String("a".into()),
                    MetaValue::String("b".into()),
                ]),
            )
            .meta("qwen2.rope.freq_base", MetaValue::F32(1e6))
            .tensor("token_embd.weight", &[2, 2], GgmlType::F32, weights)
            .tensor(
                "output_norm.weight",
                &[2],
                GgmlType::F32,
                [1.0f32, 1.0].iter().flat_map(|f| f.to_le_bytes()).collect(),
            )
            .write(path)
            .expect("writes");
    }

    #[test]
    fn a_written_file_reads_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("m.gguf");
        sample(&path);
        let g = Gguf::read(&path).expect("reads");
        assert_eq!(g.version, 3);
        assert_eq!(g.architecture(), Some("qwen2"));
        assert_eq!(g.get("qwen2.block_count").and_then(MetaValue::as_u64), Some(2));
        assert_eq!(g.get("qwen2.rope.freq_base").and_then(MetaValue::as_f64), Some(1e6));
        assert_eq!(
            g.get("tokenizer.ggml.tokens").and_then(MetaValue::as_array).map(<[_]>::len),
            Some(2)
        );
        assert_eq!(g.data_offset % DEFAULT_ALIGNMENT, 0);
        let t = g.tensor("token_embd.weight").expect("tensor");
        assert_eq!(t.dims, vec![2, 2]);
        assert_eq!(g.tensor_f32(t).expect("data"), vec![1.5, -2.0, 0.25, 8.0]);
        let n = g.tensor("output_norm.weight").expect("tensor");
        assert_eq!(n.offset % DEFAULT_ALIGNMENT, 0);
        assert_eq!(g.tensor_f32(n).expect("data"), vec![1.0, 1.0]);
    }

    #[test]
    fn truncated_and_foreign_files_are_refused_clearly() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("m.gguf");
        sample(&path);
        let bytes = std::fs::read(&path).expect("read");
        for cut in [3, 20, 60, bytes.len() - 3] {
            std::fs::write(&path, &bytes[..cut]).expect("truncate");
            let e = Gguf::read(&path).expect_err("truncated");
            assert!(e.to_string().contains("not a usable GGUF file"), "cut at {cut}: {e}");
        }
        std::fs::write(&path, b"PK\x03\x04 a zip file, not a model").expect("write");
        let e = Gguf::read(&path).expect_err("foreign");
        assert!(e.to_string().contains("GGUF magic"), "{e}");
        let mut huge = bytes.clone();
        huge[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        std::fs::write(&path, &huge).expect("write");
        let e = Gguf::read(&path).expect_err("absurd count");
        assert!(e.to_string().contains("tensors"), "{e}");
    }
}
