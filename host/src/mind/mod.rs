//! The mind layer: the LLM that answers `pLLM`.
//!
//! Built so far: reading GGUF model files ([`gguf`]) and decoding their tensors
//! ([`quant`]), the first steps of importing a model into ONNX Runtime. It depends on
//! nothing above the image layer.

pub mod gguf;
pub mod quant;
