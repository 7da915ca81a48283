//! Work that must not run inside a transaction: asking the mind, loading a model,
//! adopting a large file into the blob store.
//!
//! A transaction's closure may run several times (a conflict retries it), and it holds
//! the blob gate shared while it runs. Effects outside the image — a paid server asked
//! again on every retry, seconds of model loading under the gate — do not belong there.
//! So a primitive that needs such work asks [`super::Context::outside`]: the first time,
//! the send stops with [`Error::Outside`]; [`super::Runtime::transact`] rolls the
//! transaction back, runs the work with no transaction open, remembers its answer for
//! the rest of this send, and runs the send again, which now finds the answer. The
//! memory lives as long as one top-level send, across its conflict retries: however
//! often the transaction runs, the work runs once per key.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use crate::error::{Error, Result};
use crate::image::Value;

/// How many times one send may stop for outside work before it is refused: each stop
/// is one distinct piece of work (a model to load, a prompt to ask), so a send needing
/// more is almost certainly asking something new on every run.
pub const MAX_OUTSIDE_WORK: usize = 16;

/// The answers of outside work for one top-level send.
#[derive(Default)]
pub(crate) struct Memo {
    answers: Mutex<HashMap<String, Value>>,
}

impl Memo {
    pub(crate) fn get(&self, key: &str) -> Option<Value> {
        self.answers.lock().unwrap_or_else(PoisonError::into_inner).get(key).cloned()
    }

    /// Runs `body` (one whole transaction) until it needs no more outside work.
    pub(crate) fn drive<R>(&self, mut body: impl FnMut(&Memo) -> Result<R>) -> Result<R> {
        for _ in 0..MAX_OUTSIDE_WORK {
            match body(self) {
                Err(Error::Outside(work)) => {
                    let (key, answer) = work.run();
                    self.answers
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(key, answer?);
                }
                other => return other,
            }
        }
        Err(Error::Limit {
            limit: "outside work",
            detail: format!(
                "the send needed work outside its transaction more than {MAX_OUTSIDE_WORK} times"
            ),
        })
    }
}
