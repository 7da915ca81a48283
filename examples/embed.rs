//! Embedding the living image in your own program: open, resolve, clone, send, and a
//! native primitive of your own. Run it twice to see the image remember:
//! `cargo run -p batos --example embed -- /tmp/embed-image`

use batos::{Call, Context, Method, Runtime, Value};

/// A native primitive: `increment` adds one to the receiver's `count` slot.
fn increment(cx: &mut Context<'_, '_>, call: &Call<'_>) -> batos::Result<Value> {
    call.expect_arity(0)?;
    let count = match cx.send(call.receiver, "count", &[]) {
        Ok(Value::Int(n)) => n,
        _ => 0,
    };
    cx.set_slot(call.receiver, "count", &Value::Int(count + 1))?;
    Ok(Value::Int(count + 1))
}

fn main() -> anyhow::Result<()> {
    let path = std::env::args().nth(1).unwrap_or_else(|| "embed-image".into());
    let rt = Runtime::builder().primitive("example.increment", increment).open(&path)?;

    // The counter is a clone of genesis, named so that it is found (and kept) next time.
    let counter = match rt.resolve("counter") {
        Ok(oid) => oid,
        Err(_) => {
            let genesis = rt.resolve("genesis")?;
            let counter = rt.clone_object(genesis, Some("counter"))?;
            let method = Value::Method(Method::Native { primitive: "example.increment".into() });
            rt.set_slot(counter, "increment", method)?;
            counter
        }
    };

    // Each send is one transaction: it commits whole, or not at all.
    let count = rt.send(counter, "increment", vec![])?;
    println!(
        "counter {counter} has been incremented {} times in {path}",
        batos::image::json::to_json(&count)
    );
    Ok(())
}
