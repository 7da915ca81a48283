//! The memory crate's integration tests, on real images and THE REAL EMBEDDING MODEL
//! (all-MiniLM-L6-v2 from the package registry, cached; this test binary links ONNX
//! Runtime through `batos-model`, a dev-dependency, so that nothing here is a stand-in).

mod compress;
mod ingest;
mod search;

use std::path::Path;
use std::sync::{Arc, OnceLock};

use batos_memory::Memory;
use batos_runtime::Runtime;

/// One embedding model for the whole binary: loading it takes a second.
pub fn embedder() -> Arc<dyn batos_mind::Embedder> {
    static EMBEDDER: OnceLock<Arc<dyn batos_mind::Embedder>> = OnceLock::new();
    EMBEDDER
        .get_or_init(|| {
            let files = batos_model::embed::pull(
                &batos_model::pull::models_dir(),
                &mut batos_model::pull::Quiet,
            )
            .expect("the embedding model pulls");
            Arc::new(
                batos_model::OnnxEmbedder::load(&files, batos_model::Device::Cpu)
                    .expect("the embedding model loads"),
            )
        })
        .clone()
}

/// A memory on the real embedder, and a runtime on a new image with it attached.
pub fn open(dir: &Path) -> (Arc<Memory>, Runtime) {
    let memory = Memory::with_embedder(embedder());
    let rt = memory.attach(Runtime::builder()).open(dir.join("image")).expect("opens");
    (memory, rt)
}
