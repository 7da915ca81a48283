//! The mind layer: the LLM that answers `pLLM`.
//!
//! The host asks every backend through one trait, [`Mind`]. Built so far: the
//! OpenAI-compatible backend ([`OpenAiMind`]), and the first steps of importing a model
//! for ONNX Runtime — reading GGUF files ([`gguf`]), decoding their tensors
//! ([`quant`]), rebuilding their tokenizer ([`tokenizer`]) and rendering their chat
//! template ([`template`]); and choosing tokens from logits ([`sample`]). It depends on nothing above the image layer.

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
