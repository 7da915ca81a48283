//! # batos-mind
//!
//! The mind's contract: what the rest of batos knows about thinking. It narrows every
//! backend to one trait, [`Mind`] (a chat in, streamed text out), and makes the mind an
//! object of the image: `pLLM`'s `infer` ([`Minds`]), asking whichever backend
//! `pLLM`'s slots name, through the one gate and outside the send's transaction.
//!
//! It depends on the image and runtime layers, on `ureq` for [`OpenAiMind`] (any
//! OpenAI-compatible server) and on tokio's blocking pool for [`session`]. It does
//! **not** link ONNX Runtime: the in-process model is `batos-model`, which registers
//! itself here as a [`Backend`]; the synthesis layer sees only this crate. Embeddings are the same
//! kind of contract: [`Embedder`], implemented by `batos-model`.

mod chat;
pub mod embed;
pub mod object;
pub mod openai;
pub mod session;

pub use chat::{Completion, Constraint, Finish, Message, Mind, MindError, Prefix, Role, Sampling};
pub use embed::Embedder;
pub use object::{Backend, Minds, COMPANION_SLOT, INFER};
pub use openai::OpenAiMind;

use batos_image as image;
use batos_image::error;
use batos_runtime as runtime;
