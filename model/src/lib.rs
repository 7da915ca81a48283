//! # batos-model
//!
//! The local model: a GGUF file imported to an ONNX graph and run in-process by ONNX
//! Runtime, as the `onnx` backend of `pLLM` ([`backend`]).
//!
//! It narrows the model world to what batos runs: the GGUF reader ([`gguf`], [`quant`]),
//! qwen2 and llama decoders ([`model`], with a plain Rust [`reference`] forward pass as
//! the yardstick), their export to ONNX ([`export`], [`onnx_proto`]) and ONNX Runtime
//! loaded dynamically ([`onnxruntime`]), the tokenizer and chat template the GGUF
//! carries ([`tokenizer`], [`template`]), sampling ([`sample`]), and models reaching
//! this machine only through the package registry ([`pull`], [`import`], the folder
//! and its lock in [`folder`]). The embedding model, all-MiniLM-L6-v2, runs here too
//! ([`embed`], checked against the plain forward pass in [`bert`]). Everything a file says is checked before anything is
//! sized from it. It depends on the image, runtime and mind layers; only this crate
//! links ONNX Runtime, `tokenizers` and `minijinja`.

pub mod backend;
pub mod bert;
pub mod embed;
pub mod export;
pub mod folder;
pub mod gguf;
pub mod import;
pub mod model;
pub mod onnx_mind;
pub mod onnx_proto;
pub mod onnxruntime;
pub mod progress;
pub mod prompt_cache;
pub mod pull;
pub mod quant;
pub mod reference;
pub mod sample;
pub mod template;
pub mod tokenizer;

pub use backend::{attach, OnnxBackend};
pub use embed::OnnxEmbedder;
pub use onnx_mind::OnnxMind;
pub use onnxruntime::Device;
