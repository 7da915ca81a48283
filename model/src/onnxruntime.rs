//! ONNX Runtime, loaded dynamically (`ort` with `load-dynamic`): the shared library comes
//! from the Python registry's `onnxruntime` package, which `scripts/setup.sh` installs
//! under `~/.cache/batos/`; `ORT_DYLIB_PATH` overrides where it is looked for.

use std::path::PathBuf;
use std::sync::OnceLock;

/// Where a model runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Device {
    /// CUDA when ONNX Runtime offers it and it registers, else the CPU.
    #[default]
    Auto,
    /// The CPU only.
    Cpu,
    /// CUDA or an error: for people who would rather fail than wait.
    Cuda,
}

impl std::str::FromStr for Device {
    type Err = String;
    fn from_str(s: &str) -> Result<Device, String> {
        match s {
            "auto" => Ok(Device::Auto),
            "cpu" => Ok(Device::Cpu),
            "cuda" => Ok(Device::Cuda),
            other => Err(format!("`{other}` is not a device; use auto, cpu or cuda")),
        }
    }
}

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

/// A session for `model` on `device`, and the name of the execution provider that runs
/// it. `Auto` tries CUDA only when this ONNX Runtime build offers it (the `onnxruntime-gpu`
/// package does, the plain one does not) and falls back to the CPU, logging why;
/// `Cuda` turns the same failure into an error.
pub fn session(
    model: &std::path::Path,
    device: Device,
) -> Result<(ort::session::Session, &'static str), batos_mind::MindError> {
    use ort::ep::ExecutionProvider;
    let error = |e: String| {
        batos_mind::MindError::Model(format!("ONNX Runtime cannot load {}: {e}", model.display()))
    };
    let env = environment().map_err(batos_mind::MindError::Model)?;
    // Decoding is memory-bound and prefill compute-bound; one intra-op thread per core
    // serves both, and the caller's thread is the one that waits.
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let builder = || -> Result<ort::session::builder::SessionBuilder, String> {
        ort::session::Session::builder(env)
            .map_err(|e| e.to_string())?
            .with_intra_threads(threads)
            .map_err(|e| e.to_string())
    };
    let want_cuda = match device {
        Device::Cpu => false,
        Device::Cuda => true,
        Device::Auto => ort::ep::CUDA::is_available().unwrap_or(false),
    };
    if want_cuda {
        let attempt = builder().and_then(|mut b| {
            ort::ep::CUDA::default().register(&mut b).map_err(|e| e.to_string())?;
            b.commit_from_file(model).map_err(|e| e.to_string())
        });
        match attempt {
            Ok(session) => return Ok((session, "CUDAExecutionProvider")),
            Err(e) if device == Device::Cuda => {
                return Err(batos_mind::MindError::Model(format!(
                    "the CUDA execution provider is not usable ({e}); the ONNX Runtime at {} needs to be the onnxruntime-gpu build with CUDA present, or ask for device auto or cpu",
                    dylib_path().display()
                )))
            }
            Err(e) => tracing::warn!("CUDA is offered but not usable, running on the CPU: {e}"),
        }
    }
    let session =
        builder().map_err(error)?.commit_from_file(model).map_err(|e| error(e.to_string()))?;
    Ok((session, "CPUExecutionProvider"))
}

#[cfg(test)]
mod tests {
    use crate::onnx_proto::{
        DataType, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
        ValueInfoProto,
    };
    use ort::ep::ExecutionProvider;
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
        let mut session = ort::session::Session::builder(env)
            .expect("builder")
            .commit_from_memory(&bytes)
            .expect("ONNX Runtime accepts the model");
        let x = ort::value::Tensor::from_array(([3usize], vec![1.0f32, 2.0, 3.0])).expect("tensor");
        let outputs = session.run(ort::inputs!["x" => x]).expect("runs");
        let (_, y) = outputs["y"].try_extract_tensor::<f32>().expect("f32 output");
        assert_eq!(y, &[11.0, 22.0, 33.0]);
    }

    /// This machine's ONNX Runtime is the CPU build: `auto` must say it runs on the CPU,
    /// and `cuda` must refuse with what to do instead of quietly using the CPU.
    #[test]
    fn the_device_choice_names_the_provider_that_runs() {
        use super::Device;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("smoke.onnx");
        let graph = GraphProto {
            name: "smoke".into(),
            node: vec![NodeProto::op("Identity", &["x"], &["y"])],
            initializer: vec![],
            input: vec![ValueInfoProto::tensor("x", DataType::Float, &["1"])],
            output: vec![ValueInfoProto::tensor("y", DataType::Float, &["1"])],
        };
        let model = ModelProto {
            ir_version: 10,
            opset_import: vec![OperatorSetIdProto { domain: String::new(), version: 21 }],
            graph: Some(graph),
            ..Default::default()
        };
        std::fs::write(&path, model.encode_to_vec()).expect("writes");
        let cuda_offered = ort::ep::CUDA::is_available().unwrap_or(false);
        let (_, provider) = super::session(&path, Device::Cpu).expect("cpu");
        assert_eq!(provider, "CPUExecutionProvider");
        let (_, provider) = super::session(&path, Device::Auto).expect("auto");
        if cuda_offered {
            assert_eq!(
                provider, "CUDAExecutionProvider",
                "a GPU build with CUDA present must be used"
            );
        } else {
            assert_eq!(provider, "CPUExecutionProvider");
            let Err(e) = super::session(&path, Device::Cuda) else {
                panic!("cuda must be refused without a CUDA build")
            };
            assert!(e.to_string().contains("onnxruntime-gpu"), "{e}");
        }
    }
}
