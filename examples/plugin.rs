//! Running a capability in the sandbox from your own program: attach a `Sandbox`, install
//! a WAT plugin (audit, blobs, method slot in one transaction) and send it a message.
//! `cargo run -p batos --example plugin -- /tmp/plugin-image`

use std::sync::Arc;

use batos::sandbox::{plugin, Limits, Sandbox};
use batos::{Runtime, Value};

fn main() -> anyhow::Result<()> {
    let path = std::env::args().nth(1).unwrap_or_else(|| "plugin-image".into());
    let sandbox = Arc::new(Sandbox::new(Limits::default())?);
    let rt = Runtime::builder().component_runner(sandbox.clone()).open(&path)?;

    // plugins/double.wat and its manifest plugins/double.toml, beside this crate.
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/double.wat");
    let installed = plugin::add(&rt, &sandbox, &source)?;
    println!(
        "installed `{}` on {} (component {})",
        installed.selector, installed.target, installed.component.hash
    );

    let genesis = rt.resolve("genesis")?;
    let answer = rt.send(genesis, "double:", vec![Value::Int(21)])?;
    println!("genesis double: 21 → {}", batos::image::json::to_json(&answer));
    Ok(())
}
