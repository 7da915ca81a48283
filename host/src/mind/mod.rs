//! The mind layer: the LLM that answers `pLLM`.
//!
//! The host asks every backend through one trait, [`Mind`]: [`OnnxMind`] runs a GGUF
//! model in-process (imported to ONNX by [`export`], run by ONNX Runtime through
//! [`runtime`]), [`OpenAiMind`] asks any OpenAI-compatible server. Models come from
//! [`pull`] (the catalogue, through the package registry) or [`import`] (a user's file).
//! [`object`] makes the mind an object of the image: `pLLM`'s `infer`, with its weights
//! as blobs. It depends on the runtime and image layers only.

mod chat;
pub mod export;
pub mod gguf;
pub mod import;
pub mod model;
pub mod object;
pub mod onnx_mind;
pub mod onnx_proto;
pub mod openai;
pub mod pull;
pub mod quant;
pub mod reference;
pub mod runtime;
pub mod sample;
pub mod session;
pub mod template;
pub mod tokenizer;

pub use chat::{Completion, Finish, Message, Mind, MindError, Role, Sampling};
pub use object::attach;
pub use onnx_mind::{Device, OnnxMind};
pub use openai::OpenAiMind;
