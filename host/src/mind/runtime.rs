//! ONNX Runtime, loaded dynamically (`ort` with `load-dynamic`): the shared library comes
//! from the Python registry's `onnxruntime` package, which `scripts/setup.sh` installs
//! under `~/.cache/batos/`; `ORT_DYLIB_PATH` overrides where it is looked for.

use std::path::PathBuf;
use std::sync::OnceLock;

/// The ONNX Runtime release batos is built against (`ort` 2.0.0-rc.15's API level).
pub const ORT_VERSION: &str = "1.31.1";

/// Where the shared library is: `$ORT_DYLIB_PATH`, else the copy set-up installs.
pub fn dylib_path() -> PathBuf {
    if let Some(path) = std::env::var_os("ORT_DYLIB_PATH") {
        return PathBuf::from(path);
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".cache")
        .join("batos")
        .join(format!("onnxruntime-{ORT_VERSION}"))
        .join("onnxruntime")
        .join("capi")
        .join(format!("libonnxruntime.so.{ORT_VERSION}"))
}

/// ONNX Runtime's environment, loaded once per process; later calls return the first
/// outcome. Sessions are built from it.
pub fn environment() -> Result<&'static ort::environment::Environment, String> {
    // The environment must outlive every session; ort itself keeps only a weak
    // reference, so it lives here for the rest of the process.
    static LOADED: OnceLock<Result<ort::environment::Environment, String>> = OnceLock::new();
    LOADED
        .get_or_init(|| {
            let path = dylib_path();
            if !path.is_file() {
                return Err(format!(
                    "ONNX Runtime's library is not at {}; run ./scripts/setup.sh (it installs the onnxruntime {ORT_VERSION} package) or set ORT_DYLIB_PATH",
                    path.display()
                ));
            }
            ort::init_from(&path)
                .map_err(|e| format!("cannot load ONNX Runtime from {}: {e}", path.display()))?
                .with_name("batos")
                .build()
                .map_err(|e| format!("cannot start ONNX Runtime: {e}"))
        })
        .as_ref()
        .map_err(Clone::clone)
}

#[cfg(test)]
mod tests {
    use super::super::onnx_proto::{DataType, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, ValueInfoProto};
    use prost::Message;

    #[test]
    fn a_graph_we_write_runs_in_onnx_runtime() {
        let env = super::environment().expect("ONNX Runtime loads (installed by scripts/setup.sh)");
        let graph = GraphProto {
            name: "smoke".into(),
            node: vec![NodeProto::op("Add", &["x", "c"], &["y"])],
            initializer: vec![TensorProto::f32("c", &[3], &[10.0, 20.0, 30.0])],
            input: vec![ValueInfoProto::tensor("x", DataType::Float, &["3"])],
            output: vec![ValueInfoProto::tensor("y", DataType::Float, &["3"])],
        };
        let model = ModelProto {
            ir_version: 10,
            opset_import: vec![OperatorSetIdProto { domain: String::new(), version: 21 }],
            producer_name: "batos".into(),
            producer_version: env!("CARGO_PKG_VERSION").into(),
            graph: Some(graph),
        };
        let bytes = model.encode_to_vec();
        let mut session = ort::session::Session::builder(env).expect("builder").commit_from_memory(&bytes).expect("ONNX Runtime accepts the model");
        let x = ort::value::Tensor::from_array(([3usize], vec![1.0f32, 2.0, 3.0])).expect("tensor");
        let outputs = session.run(ort::inputs!["x" => x]).expect("runs");
        let (_, y) = outputs["y"].try_extract_tensor::<f32>().expect("f32 output");
        assert_eq!(y, &[11.0, 22.0, 33.0]);
    }
}
