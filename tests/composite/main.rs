//! The composite mind's integration tests, on real images with test doubles for the
//! minds and the embedding model (named as such): `ScriptedTestMind` answers from a
//! script and keeps every prompt; `HashingTestEmbedder` maps words to a hashed bag of
//! words, so similar wording is similar and nothing here needs a model. The contrapunto
//! with the real model is in `tests/cli/real_model.rs`.

mod cem;
mod crucible;
mod dialogue;
mod heartbeat;
mod routing;
#[path = "../support/scripted_mind.rs"]
mod scripted_mind;

pub(crate) use scripted_mind::ScriptedTestMind;

use std::sync::Arc;

use batos_image::{Oid, Value};
use batos_memory::Memory;
use batos_mind::{Backend, Embedder, Mind, MindError, Minds};
use batos_runtime::{Context, Runtime};

/// The backend `scripted`: every thinker thinks with the one scripted mind.
struct ScriptedTestBackend(Arc<ScriptedTestMind>);

impl Backend for ScriptedTestBackend {
    fn mind(
        &self,
        _: &Minds,
        _: &mut Context<'_, '_>,
        _: Oid,
        _: &str,
    ) -> batos_image::Result<(String, Arc<dyn Mind>)> {
        Ok(("scripted".into(), self.0.clone()))
    }
}

/// A test double for the embedding model: each lower-cased word hashed into one of 256
/// dimensions, L2-normalised. Shared words make texts similar; nothing else does.
pub(crate) struct HashingTestEmbedder;

impl HashingTestEmbedder {
    fn vector(text: &str) -> Vec<f32> {
        let mut v = vec![0f32; 256];
        for word in text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
            let h = blake3::hash(word.to_lowercase().as_bytes());
            v[usize::from(h.as_bytes()[0])] += 1.0;
        }
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > 0.0 {
            v.iter_mut().for_each(|x| *x /= norm);
        }
        v
    }
}

impl Embedder for HashingTestEmbedder {
    fn model_id(&self) -> &str {
        "hashing-test-double"
    }
    fn dimensions(&self) -> usize {
        256
    }
    fn max_tokens(&self) -> usize {
        256
    }
    fn count_tokens(&self, text: &str) -> Result<usize, MindError> {
        Ok(text.split_whitespace().count())
    }
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, MindError> {
        Ok(texts.iter().map(|t| Self::vector(t)).collect())
    }
}

/// A new image with the composite mind, its minds the scripted one.
pub(crate) struct World {
    pub(crate) _dir: tempfile::TempDir,
    pub(crate) rt: Arc<Runtime>,
    pub(crate) minds: Minds,
    pub(crate) memory: Arc<Memory>,
    pub(crate) mind: Arc<ScriptedTestMind>,
}

pub(crate) fn world(answers: &[&str]) -> World {
    let dir = tempfile::tempdir().expect("tempdir");
    let mind = ScriptedTestMind::new(answers);
    let minds = Minds::new()
        .backend("scripted", ScriptedTestBackend(mind.clone()))
        .awaken_with("backend", Value::Text("scripted".into()));
    let memory = Memory::with_embedder(Arc::new(HashingTestEmbedder));
    let rt = Arc::new(
        batos_composite::attach(memory.attach(minds.attach(Runtime::builder())))
            .open(dir.path().join("image"))
            .expect("opens"),
    );
    World { _dir: dir, rt, minds, memory, mind }
}

impl World {
    /// Sets `slot` of the object the root `name` names.
    pub(crate) fn set(&self, name: &str, slot: &str, value: Value) {
        let oid = self.rt.resolve(name).expect("root");
        self.rt.set_slot(oid, slot, value).expect("set");
    }

    /// The routing made plain for a test: one archetype whose prototype is anything,
    /// BRICK then ROBIN far ahead, no noise.
    pub(crate) fn plain_routing(&self) {
        let row = |w: [(&str, f64); 4]| {
            Value::Map(w.iter().map(|(k, v)| ((*k).to_owned(), Value::Float(*v))).collect())
        };
        self.set(
            "personas",
            "matrix",
            Value::Map(
                [(
                    "any".to_owned(),
                    row([("alfred", 0.1), ("babs", 0.1), ("brick", 1.0), ("robin", 0.5)]),
                )]
                .into(),
            ),
        );
        self.set(
            "personas",
            "archetypes",
            Value::Map(
                [("any".to_owned(), Value::List(vec![Value::Text("anything".into())]))].into(),
            ),
        );
        self.set("personas", "noise", Value::Float(0.0));
    }
}
