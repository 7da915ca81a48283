//! The embedding side of the mind: text in, unit vectors out. The memory layer searches
//! by meaning through this trait; `batos-model` implements it on ONNX Runtime, so the
//! layers above never link a model runtime.

use crate::MindError;

/// A model that maps passages to unit vectors whose dot product is their cosine
/// similarity.
pub trait Embedder: Send + Sync {
    /// What the vectors are: a stable name for the model and its pooling, stored beside
    /// every vector so that vectors of different models are never compared.
    fn model_id(&self) -> &str;

    /// The length of every vector.
    fn dimensions(&self) -> usize;

    /// The most word pieces of one passage the model reads; longer passages are cut.
    fn max_tokens(&self) -> usize;

    /// How many word pieces `text` is, without the model's own markers: what the memory
    /// layer's chunking caps.
    fn count_tokens(&self, text: &str) -> Result<usize, MindError>;

    /// One L2-normalised vector per text, in order. Implementations batch as they see
    /// fit; an empty slice answers an empty vector.
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, MindError>;
}
