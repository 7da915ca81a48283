//! [`OutsideWork`]: work a send needs done outside its transaction (see the runtime's
//! `outside` module, which runs it). It lives here, beside the error that carries it,
//! because the error type is shared by every layer.

use std::fmt;
use std::sync::{Mutex, PoisonError};

use crate::error::{Error, Result};
use crate::Value;

type Work = Box<dyn FnOnce() -> Result<Value> + Send>;

/// One piece of work to run outside the transaction, and the key its answer is
/// remembered under.
pub struct OutsideWork {
    key: String,
    // A Mutex only to make the error `Sync` (it travels inside wasmtime's errors).
    work: Mutex<Option<Work>>,
}

impl fmt::Debug for OutsideWork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutsideWork").field("key", &self.key).finish_non_exhaustive()
    }
}

impl OutsideWork {
    /// Work to run outside the transaction, its answer remembered under `key`.
    pub fn new(key: String, work: impl FnOnce() -> Result<Value> + Send + 'static) -> OutsideWork {
        OutsideWork { key, work: Mutex::new(Some(Box::new(work))) }
    }

    /// Runs the work (once) and answers its key and outcome.
    pub fn run(self) -> (String, Result<Value>) {
        let work = self.work.into_inner().unwrap_or_else(PoisonError::into_inner);
        let answer = match work {
            Some(work) => work(),
            None => Err(Error::Failed("outside work ran twice".into())),
        };
        (self.key, answer)
    }
}
