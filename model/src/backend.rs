//! The `onnx` backend of `pLLM`: a GGUF model run in-process by ONNX Runtime.
//!
//! The weights belong to the image (the seeds' blob-proxy): `pLLM`'s `weights` slot maps
//! a model name to the blob of its GGUF. On the first use of a model the image does not
//! hold yet, the file from the models folder is adopted into the blob store (hard-linked
//! when it can be, so no second copy), outside the transaction, and recorded on `pLLM`
//! when the sender may write it. From then on the image thinks with its own weights,
//! whatever happens to the models folder; the ONNX export is a cache rebuilt from the
//! blob when missing.

use std::collections::BTreeMap;
use std::sync::Arc;

use batos_image::{Error, Oid, Result, Value};
use batos_mind::object::text_slot;
use batos_mind::{Backend, Mind, Minds};
use batos_runtime::{Context, Effect};

use crate::folder::models_dir;
use crate::onnx_mind::{export_dir, OnnxMind};
use crate::onnxruntime::Device;
use crate::pull;

/// The `onnx` backend (see the module documentation).
pub struct OnnxBackend;

/// Adds the `onnx` backend to `minds`, and awakens new images with it and the
/// catalogue's default model on `device: "auto"`.
pub fn attach(minds: Minds) -> Minds {
    minds
        .backend("onnx", OnnxBackend)
        .awaken_with("backend", Value::Text("onnx".into()))
        .awaken_with("model", Value::Text(pull::CATALOGUE[0].name.into()))
        // Where a local model runs: auto (CUDA when present), cpu or cuda.
        .awaken_with("device", Value::Text("auto".into()))
}

impl Backend for OnnxBackend {
    /// The best catalogued model ranked above `model` (the catalogue is best first) that
    /// this machine can run without a download: held by the image (`weights`) or pulled
    /// into the models folder (for a model outside the catalogue, the best pulled one).
    /// A weaker companion is never offered: measured, the 0.5B writing every second
    /// candidate for the 1.5B solved 20 of the 22 tasks the 1.5B solves alone, while the
    /// 1.5B beside the 0.5B lifts it from 16 to 18 (ARCHITECTURE.md, "The default model").
    fn companion(
        &self,
        cx: &mut Context<'_, '_>,
        pllm: Oid,
        model: &str,
    ) -> Result<Option<String>> {
        let weights = match cx.lookup(pllm, "weights")? {
            Some((_, Value::Map(map))) => map,
            _ => BTreeMap::new(),
        };
        let held = |name: &str| match weights.get(name) {
            Some(Value::Blob(blob)) => cx.image().blobs().contains(&blob.hash),
            _ => false,
        };
        Ok(pull::CATALOGUE
            .iter()
            .map(|entry| entry.name)
            .take_while(|name| *name != model)
            .find(|name| held(name) || models_dir().join(format!("{name}.gguf")).is_file())
            .map(str::to_owned))
    }

    fn mind(
        &self,
        minds: &Minds,
        cx: &mut Context<'_, '_>,
        pllm: Oid,
        model: &str,
    ) -> Result<(String, Arc<dyn Mind>)> {
        let device: Device = text_slot(cx, pllm, "device")?
            .as_deref()
            .unwrap_or("auto")
            .parse()
            .map_err(Error::BadInput)?;
        let mut weights = match cx.lookup(pllm, "weights")? {
            Some((_, Value::Map(map))) => map,
            _ => BTreeMap::new(),
        };
        let blob = match weights.get(model) {
            Some(Value::Blob(blob)) if cx.image().blobs().contains(&blob.hash) => *blob,
            _ => {
                let gguf = models_dir().join(format!("{model}.gguf"));
                if !gguf.is_file() {
                    let hint = match pull::entry(model) {
                        Ok(_) => format!("it is not pulled yet; run `batos model pull {model}`"),
                        Err(_) => "`batos model list` shows the models, `batos model import FILE.gguf` adds one".to_owned(),
                    };
                    return Err(Error::not_found("model", model, hint));
                }
                // Hashing and linking a model file takes seconds: outside the transaction.
                let blobs = cx.image().blob_store();
                let source = gguf.clone();
                let adopted = cx.outside(format!("adopt {}", gguf.display()), move || {
                    Ok(Value::Blob(blobs.adopt_file(&source)?))
                })?;
                let Value::Blob(blob) = adopted else {
                    return Err(Error::Corrupt(format!(
                        "adopting {} answered no blob",
                        gguf.display()
                    )));
                };
                // Beside the `model` slot that chose it (pLLM itself for its descendants).
                // The record is the image's own bookkeeping; it is kept when the sender may
                // write there (a person), and otherwise left for the next person's send.
                let holder = cx.lookup(pllm, "model")?.map_or(pllm, |(holder, _)| holder);
                if cx.permit(Effect::Write(holder)).is_ok() {
                    weights.insert(model.to_owned(), Value::Blob(blob));
                    cx.set_slot(holder, "weights", &Value::Map(weights))?;
                }
                blob
            }
        };
        let key = blob.hash.to_hex();
        let path = cx.image().blobs().path(&blob.hash);
        let model = model.to_owned();
        minds.cached(cx, format!("onnx|{key}|{device:?}"), move || {
            let dir = export_dir(&models_dir(), &key);
            let mind = OnnxMind::open(&path, &dir, &model, device)
                .map_err(|e| Error::MindUnavailable(e.to_string()))?;
            Ok(Arc::new(mind))
        })
    }
}
