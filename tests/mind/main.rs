//! The mind crate's integration tests: `OpenAiMind` and `pLLM`'s `infer` against a
//! stand-in chat server on loopback.

#[path = "../support/chat_stub.rs"]
mod chat_stub;
mod openai;
