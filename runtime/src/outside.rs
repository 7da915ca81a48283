//! Work that must not run inside a transaction: asking the mind, loading a model,
//! adopting a large file into the blob store.
//!
//! A transaction's closure may run several times (a conflict retries it), and it holds
//! the blob gate shared while it runs. Effects outside the image — a paid server asked
//! again on every retry, seconds of model loading under the gate — do not belong there.
//! So a primitive that needs such work asks [`crate::Context::outside`]: the first time,
//! the work is left with this send's [`Memo`] and the send stops with
//! [`Error::Outside`]; [`crate::Runtime::transact`] rolls the transaction back, runs the
//! work with no transaction open, remembers its answer for the rest of this send, and
//! runs the send again, which now finds the answer. The memory lives as long as one
//! top-level send, across its conflict retries: however often the transaction runs, the
//! work runs once per key.
//!
//! The work waits in the memo, not in the error, so a method that catches the error of
//! a nested send cannot lose it: a transaction that ends with work pending is never
//! committed, whatever its closure answered.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, PoisonError};

use crate::error::{Error, Result};
use crate::image::Value;

/// How many times one send may stop for outside work before it is refused: each stop
/// is one distinct piece of work (a model to load, a prompt to ask), so a send needing
/// more is almost certainly asking something new on every run.
pub const MAX_OUTSIDE_WORK: usize = 16;

type Work = Box<dyn FnOnce() -> Result<Value> + Send>;

/// One piece of work to run outside the transaction, and the key its answer is
/// remembered under.
pub struct OutsideWork {
    key: String,
    work: Work,
}

impl fmt::Debug for OutsideWork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutsideWork").field("key", &self.key).finish_non_exhaustive()
    }
}

impl OutsideWork {
    /// Work to run outside the transaction, its answer remembered under `key`.
    pub fn new(key: String, work: impl FnOnce() -> Result<Value> + Send + 'static) -> OutsideWork {
        OutsideWork { key, work: Box::new(work) }
    }

    /// Runs the work and answers its key and outcome.
    fn run(self) -> (String, Result<Value>) {
        let answer = (self.work)();
        (self.key, answer)
    }
}

/// The answers of outside work for one top-level send, and the work it waits for.
#[derive(Default)]
pub(crate) struct Memo {
    answers: Mutex<HashMap<String, Value>>,
    pending: Mutex<Option<OutsideWork>>,
}

impl Memo {
    pub(crate) fn get(&self, key: &str) -> Option<Value> {
        self.answers.lock().unwrap_or_else(PoisonError::into_inner).get(key).cloned()
    }

    /// Leaves `work` to run before the send runs again; the first request of a run wins
    /// (the run stops at it, and the next run asks again for whatever it still needs).
    pub(crate) fn request(&self, work: OutsideWork) {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner).get_or_insert(work);
    }

    /// Whether this run of the send left work to do: then its transaction must not
    /// commit, whatever the closure answered.
    pub(crate) fn is_pending(&self) -> Option<String> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner).as_ref().map(|w| w.key.clone())
    }

    /// Runs `body` (one whole transaction) until it needs no more outside work.
    pub(crate) fn drive<R>(&self, mut body: impl FnMut(&Memo) -> Result<R>) -> Result<R> {
        for _ in 0..MAX_OUTSIDE_WORK {
            let outcome = body(self);
            let pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner).take();
            match pending {
                Some(work) => {
                    let (key, answer) = work.run();
                    self.answers
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(key, answer?);
                }
                None => return outcome,
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
