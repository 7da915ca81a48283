//! Shared cycles: concurrent sends of one unknown selector to one object share one
//! cycle. The first send leads it; the others wait for its outcome and then send again.
//! A leader that fails in any way — an error or a panic — releases every waiter with
//! that failure.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use crate::error::{Error, Result};
use crate::image::Oid;

/// One cycle in flight, as its waiters see it.
pub(crate) struct Flight {
    /// The cycle's id.
    pub(crate) cycle: String,
    outcome: Mutex<Option<std::result::Result<(), Error>>>,
    done: Condvar,
}

impl Flight {
    /// Records the outcome once and wakes every waiter.
    fn land(&self, outcome: std::result::Result<(), Error>) {
        let mut slot = self.outcome.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.is_none() {
            *slot = Some(outcome);
        }
        self.done.notify_all();
    }

    /// Waits for the outcome; a failure comes back with the leader's kind and words.
    pub(crate) fn wait(&self) -> Result<()> {
        let mut outcome = self.outcome.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            match &*outcome {
                Some(Ok(())) => return Ok(()),
                Some(Err(e)) => return Err(e.relay()),
                None => outcome = self.done.wait(outcome).unwrap_or_else(PoisonError::into_inner),
            }
        }
    }
}

type Key = (Oid, String);

/// The cycles in flight in one synthesizer, by receiver and selector.
#[derive(Default)]
pub(crate) struct Flights {
    by_message: Mutex<HashMap<Key, Arc<Flight>>>,
}

/// What a send does about a cycle: lead a new one, or wait for one in flight.
pub(crate) enum Role<'a> {
    /// This send leads the cycle (its id and object were just created).
    Lead(Leading<'a>),
    /// Another send leads it.
    Join(Arc<Flight>),
}

impl Flights {
    /// Joins the cycle in flight for `key`, or — when there is none — creates one with
    /// `create` (answering its id and object) and leads it.
    pub(crate) fn join_or_lead(
        &self,
        key: Key,
        create: impl FnOnce() -> Result<(String, Oid)>,
    ) -> Result<Role<'_>> {
        let mut flights = self.by_message.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(flight) = flights.get(&key) {
            return Ok(Role::Join(flight.clone()));
        }
        let (cycle, oid) = create()?;
        let flight = Arc::new(Flight { cycle, outcome: Mutex::new(None), done: Condvar::new() });
        flights.insert(key.clone(), flight.clone());
        Ok(Role::Lead(Leading { flights: self, key, flight, oid }))
    }
}

/// A led cycle. Landing it tells every waiter the outcome; dropping it unlanded (an
/// unwinding panic) tells them it stopped, so no waiter blocks forever.
pub(crate) struct Leading<'a> {
    flights: &'a Flights,
    key: Key,
    flight: Arc<Flight>,
    /// The cycle's object.
    pub(crate) oid: Oid,
}

impl Leading<'_> {
    /// The cycle's id.
    pub(crate) fn cycle(&self) -> &str {
        &self.flight.cycle
    }

    /// Tells every waiter the outcome (a failure relayed with its kind and words).
    pub(crate) fn land(self, outcome: &Result<()>) {
        self.flight.land(outcome.as_ref().map(|_| ()).map_err(Error::relay));
    }
}

impl Drop for Leading<'_> {
    fn drop(&mut self) {
        self.flight.land(Err(Error::Failed(format!(
            "cycle {} stopped without an outcome (its leader panicked)",
            self.flight.cycle
        ))));
        self.flights.by_message.lock().unwrap_or_else(PoisonError::into_inner).remove(&self.key);
    }
}
