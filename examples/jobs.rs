//! Durable jobs in your own program: a job enqueued in the transaction that asks for
//! it, leased under a fencing token, a step recorded, and completed exactly once — the
//! stale holder refused. Run: `cargo run -p batos --example jobs -- /tmp/jobs-image`

use std::time::Duration;

use batos::runtime::jobs::{self, Completion};
use batos::{Error, Runtime, Value};

fn main() -> anyhow::Result<()> {
    let path = std::env::args().nth(1).unwrap_or_else(|| "jobs-image".into());
    let rt = Runtime::open(&path)?;

    // The job exists if and only if this transaction commits: write the order and
    // queue its fulfilment together.
    let (id, _) = rt
        .image()
        .transact("take an order", |tx| {
            let genesis = tx.root("genesis")?.ok_or(Error::UnknownRoot("genesis".into()))?;
            tx.set_slot(genesis, "order", &Value::Text("three widgets".into()))?;
            jobs::enqueue(tx, "fulfil", "ship the order", Value::Int(3), Some(genesis))
        })?
        .value;
    println!("queued {id}");

    // A worker leases it; a zero-length lease runs out at once, as if the worker hung.
    let slow = jobs::lease(&rt, &["fulfil"], "worker-a", Duration::ZERO)?.expect("a queued job");
    std::thread::sleep(Duration::from_millis(2));
    let fast =
        jobs::lease(&rt, &["fulfil"], "worker-b", Duration::from_secs(60))?.expect("it again");
    println!("{} leased as attempt {}, then as attempt {}", fast.job, slow.attempt, fast.attempt);

    // The current holder records a step (a restart would resume after it) and completes.
    jobs::record_step(&rt, &fast, "packed", &Value::Bool(true))?;
    assert_eq!(jobs::complete(&rt, &fast, &Value::Text("shipped".into()))?, Completion::Completed);
    // Delivered twice, it counts once; the stale holder is fenced off.
    assert!(matches!(jobs::complete(&rt, &fast, &Value::Nil)?, Completion::AlreadyCompleted(_)));
    match jobs::complete(&rt, &slow, &Value::Text("shipped too".into())) {
        Err(e @ Error::StaleAttempt { .. }) => println!("refused: {e}"),
        other => anyhow::bail!("the stale attempt was not refused: {other:?}"),
    }
    let job = rt.image().view(|tx| jobs::get(tx, &id))?;
    println!("{} is {} with {:?}", job.id, job.state.as_str(), job.result);
    Ok(())
}
