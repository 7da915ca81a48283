//! The model crate's integration tests: tiny random models through the GGUF reader,
//! the ONNX export and ONNX Runtime against the reference forward pass; import and its
//! refusals; the tokenizer rebuild; mutated model files; and THE REAL EMBEDDED MODEL
//! (pulled once from the package registry, then cached) and THE REAL EMBEDDING MODEL
//! against its f32 reference.

#[path = "../support/tiny_model.rs"]
mod tiny_model;

mod embedding;
mod fuzz;
mod import;
mod parity;
mod real_model;
mod tokenizer;
