//! # batos-ops
//!
//! Operating batos: what keeps a kernel running and spreads its expensive work.
//!
//! - [`supervise`]: `batos up`, a supervisor that restarts `batos serve` with backoff,
//!   keeps its log, and follows it across `batos upgrade` (the upgrade itself is the
//!   kernel's: `batos_kernel::upgrade`).
//! - [`dispatch`]: a kernel's synthesis jobs published on a NATS JetStream work queue,
//!   and the proven components its workers send back verified and installed.
//! - [`worker`]: `batos worker`, which runs synthesis for any kernel on the queue.
//! - [`wire`]: what travels between them.
//!
//! This crate narrows its dependencies to the kernel (through which it reaches the
//! image, the runtime and synthesis), `async-nats` for JetStream, and libc for the
//! supervisor's process handling. The image stays the only source of truth: JetStream
//! is a transport, and the job table in the image decides what happened.

pub mod dispatch;
pub mod supervise;
pub mod wire;
pub mod worker;

use batos_kernel::{bad_input, Failure};

/// The servers of a `--nats` argument: one URL, or several separated by commas (a
/// cluster). A bare `host:port` is taken as `nats://host:port`.
pub fn servers(url: &str) -> Result<Vec<async_nats::ServerAddr>, Failure> {
    let list: Vec<_> = url.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    if list.is_empty() {
        return Err(bad_input("--nats names no server; give a URL such as nats://127.0.0.1:4222"));
    }
    list.into_iter()
        .map(|u| {
            u.parse::<async_nats::ServerAddr>().map_err(|e| {
                bad_input(format!(
                    "`{u}` is not a NATS server address ({e}); write nats://HOST:PORT"
                ))
            })
        })
        .collect()
}

/// Connects to the first of `servers` that answers, reconnecting to any of them for
/// as long as the process lives.
pub async fn connect(servers: &[async_nats::ServerAddr]) -> Result<async_nats::Client, Failure> {
    async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connection_timeout(std::time::Duration::from_secs(5))
        .connect(servers.to_vec())
        .await
        .map_err(|e| bad_input(format!("cannot connect to NATS: {e}")))
}

/// Completes on SIGTERM or Ctrl-C.
pub async fn stop_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(t) => t,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// The next batch of up to `most` messages from `consumer`, waiting at most `wait` for
/// them; on a failure (a server lost, a leader being elected) it says so and answers
/// `None` after a short pause, for the caller's loop to try again.
pub(crate) async fn next_batch(
    consumer: &async_nats::jetstream::consumer::PullConsumer,
    most: usize,
    wait: std::time::Duration,
    what: &str,
) -> Option<async_nats::jetstream::consumer::pull::Batch> {
    match consumer.batch().max_messages(most).expires(wait).messages().await {
        Ok(batch) => Some(batch),
        Err(e) => {
            tracing::warn!("NATS: cannot fetch {what} ({e}); trying again");
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            None
        }
    }
}
