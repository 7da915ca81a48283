//! Generation off the async host's threads. A completion takes seconds of CPU; run on
//! an executor thread it would stall every other task there. [`spawn_completion`]
//! runs it on tokio's blocking pool and streams its text back over a channel.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::chat::{Completion, Message, Mind, MindError, Sampling};

/// A completion running on the blocking pool.
pub struct Streaming {
    pieces: mpsc::UnboundedReceiver<String>,
    done: JoinHandle<Result<Completion, MindError>>,
}

impl Streaming {
    /// The next piece of text, or `None` once the generation has ended.
    pub async fn next_piece(&mut self) -> Option<String> {
        self.pieces.recv().await
    }

    /// Waits for the end and answers the whole completion (pieces not yet read are
    /// part of its text).
    pub async fn finish(self) -> Result<Completion, MindError> {
        match self.done.await {
            Ok(result) => result,
            Err(e) => Err(MindError::Model(format!("the generation thread failed: {e}"))),
        }
    }
}

/// Starts `mind` completing `messages` on the blocking pool of the current tokio
/// runtime. Must be called from within that runtime.
pub fn spawn_completion(
    mind: Arc<dyn Mind>,
    messages: Vec<Message>,
    sampling: Sampling,
) -> Streaming {
    let (tx, pieces) = mpsc::unbounded_channel();
    let done = tokio::task::spawn_blocking(move || {
        // A reader that went away just stops receiving; the generation still finishes.
        mind.complete(&messages, &sampling, &mut |piece| {
            let _ = tx.send(piece.to_owned());
        })
    });
    Streaming { pieces, done }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::Finish;
    use std::sync::Mutex;

    /// A test double that says "think", then waits for the test to let it go on: if
    /// it ran on the executor's only thread, the test could never let it go.
    struct GatedTestMind {
        gate: Mutex<std::sync::mpsc::Receiver<()>>,
    }

    impl Mind for GatedTestMind {
        fn describe(&self) -> String {
            "gated test double".into()
        }
        fn complete(
            &self,
            _: &[Message],
            _: &Sampling,
            on_text: &mut dyn FnMut(&str),
        ) -> Result<Completion, MindError> {
            on_text("think");
            let gate = self.gate.lock().map_err(|_| MindError::Model("poisoned".into()))?;
            gate.recv_timeout(std::time::Duration::from_secs(60))
                .map_err(|_| MindError::Model("never let go: the executor was stalled".into()))?;
            on_text("ing");
            Ok(Completion {
                text: "thinking".into(),
                prompt_tokens: None,
                cached_tokens: None,
                completion_tokens: Some(2),
                finish: Finish::Stop,
            })
        }
    }

    #[test]
    fn a_completion_runs_off_the_executor_and_streams() {
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        let (go, gate) = std::sync::mpsc::channel();
        let mind: Arc<dyn Mind> = Arc::new(GatedTestMind { gate: Mutex::new(gate) });
        let completion = rt.block_on(async move {
            let mut streaming =
                spawn_completion(mind, vec![Message::user("hi")], Sampling::default());
            assert_eq!(streaming.next_piece().await.as_deref(), Some("think"));
            // The executor still runs this task while the mind waits.
            go.send(()).expect("the mind is waiting");
            assert_eq!(streaming.next_piece().await.as_deref(), Some("ing"));
            assert_eq!(streaming.next_piece().await, None, "the stream ends with the generation");
            streaming.finish().await
        });
        assert_eq!(completion.expect("completes").text, "thinking");
    }
}
