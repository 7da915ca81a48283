//! The event log: every event gets the next `seq`, is kept in the image's `aux` store
//! (the last [`RETAINED_EVENTS`] of them, so a client can resume after a disconnect or
//! a restart of the kernel), and is queued for every subscriber whose filter takes it.
//!
//! A subscriber's queue is bounded ([`QUEUE_LENGTH`]). One that overflows is marked
//! lagged with the last `seq` it was given and dropped from the log: its connection
//! sends what was queued, then `lagged {seq}`, and closes. No event is ever dropped
//! silently.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use batos::Runtime;
use batos_protocol::limits::{QUEUE_LENGTH, RETAINED_EVENTS};
use batos_protocol::{Cause, Event, EventKind, Format, Frame, ServerMessage};
use tokio::sync::{mpsc, Notify};

/// The `aux` keys of retained events: the prefix and a zero-padded `seq`, so the keys
/// sort in `seq` order.
const KEY_PREFIX: &str = "event/";

fn key(seq: u64) -> String {
    format!("{KEY_PREFIX}{seq:020}")
}

/// One event as kept and sent.
#[derive(Clone, Debug, PartialEq)]
pub struct Stored {
    /// Its sequence number.
    pub seq: u64,
    /// The request that caused it.
    pub cause: Option<Cause>,
    /// What happened.
    pub event: Event,
    /// Its frame in each format, encoded by the first connection that sends it and
    /// shared by the rest (fifty subscribers, one encoding).
    encoded: [std::sync::OnceLock<Frame>; 2],
}

impl Stored {
    /// An event as kept.
    pub fn new(seq: u64, cause: Option<Cause>, event: Event) -> Stored {
        Stored { seq, cause, event, encoded: Default::default() }
    }

    /// As a message to a client.
    pub fn message(&self) -> ServerMessage {
        ServerMessage::Event { seq: self.seq, cause: self.cause.clone(), event: self.event.clone() }
    }

    /// As a frame for a connection using `format`.
    pub fn frame(&self, format: Format) -> &Frame {
        let slot = match format {
            Format::Json => &self.encoded[0],
            Format::Msgpack => &self.encoded[1],
        };
        slot.get_or_init(|| batos_protocol::encode(&self.message(), format))
    }
}

/// Which events a subscriber takes.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Only these kinds (all when `None`).
    pub kinds: Option<Vec<EventKind>>,
    /// Only events concerning these objects (all when `None`).
    pub objects: Option<Vec<String>>,
}

impl Filter {
    fn takes(&self, event: &Event) -> bool {
        self.kinds.as_ref().is_none_or(|k| k.contains(&event.kind()))
            && self.objects.as_ref().is_none_or(|o| event.concerns(o))
    }
}

/// What a connection's queue carries: its own replies and statuses, and events.
#[derive(Debug)]
pub enum Outgoing {
    /// A message for this connection only.
    Direct(ServerMessage),
    /// An event from the log.
    Event(Arc<Stored>),
}

/// Set when a subscriber's queue overflowed: the last `seq` queued for it.
#[derive(Debug, Default)]
pub struct Lag {
    seq: AtomicU64,
    lagged: std::sync::atomic::AtomicBool,
    notify: Notify,
}

impl Lag {
    /// Marks the subscriber lagged after `seq`, and wakes its connection.
    pub fn mark(&self, seq: u64) {
        if !self.lagged.swap(true, Ordering::SeqCst) {
            self.seq.store(seq, Ordering::SeqCst);
        }
        self.notify.notify_one();
    }

    /// The last `seq` queued before the overflow, once lagged.
    pub fn lagged(&self) -> Option<u64> {
        self.lagged.load(Ordering::SeqCst).then(|| self.seq.load(Ordering::SeqCst))
    }

    /// Waits until the subscriber is marked lagged.
    pub async fn wait(&self) {
        while self.lagged().is_none() {
            self.notify.notified().await;
        }
    }
}

struct Subscriber {
    id: u64,
    queue: mpsc::Sender<Outgoing>,
    filter: Arc<Mutex<Filter>>,
    lag: Arc<Lag>,
    last_seq: u64,
}

struct Inner {
    head: u64,
    retained: VecDeque<Arc<Stored>>,
    subscribers: Vec<Subscriber>,
    next_subscriber: u64,
}

/// The kernel's event log.
pub struct EventLog {
    inner: Mutex<Inner>,
    // Weak: the image holds the commit observer, which holds this log.
    runtime: std::sync::OnceLock<Weak<Runtime>>,
}

/// A new subscription: its queue, the events it missed, and its handles.
pub struct Subscription {
    /// Its id in the log (for [`EventLog::unsubscribe`]).
    pub id: u64,
    /// The newest `seq` when it subscribed: the replay ends here, the queue starts after.
    pub head: u64,
    /// Events after the `resume_from` it asked for, up to the head when it subscribed:
    /// send these first; the queue holds only later ones.
    pub replay: Vec<Arc<Stored>>,
    /// Whether `resume_from` asked for events older than the oldest retained one.
    pub expired: bool,
    /// Live events and the connection's own messages.
    pub queue: mpsc::Receiver<Outgoing>,
    /// Where the connection puts its own messages (replies, statuses).
    pub sender: mpsc::Sender<Outgoing>,
    /// Its filter, changed by `subscribe`.
    pub filter: Arc<Mutex<Filter>>,
    /// Set when it overflowed.
    pub lag: Arc<Lag>,
}

fn lock(inner: &Mutex<Inner>) -> std::sync::MutexGuard<'_, Inner> {
    inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl EventLog {
    /// A log continuing from the events retained in `runtime`'s image.
    pub fn open(runtime: &Arc<Runtime>) -> EventLog {
        let mut retained = VecDeque::new();
        // Advisory: a damaged entry is skipped, and `seq` continues after the newest.
        for (_, bytes) in runtime.image().aux_scan(KEY_PREFIX).unwrap_or_default() {
            if let Ok((seq, cause, event)) =
                rmp_serde::from_slice::<(u64, Option<Cause>, Event)>(&bytes)
            {
                retained.push_back(Arc::new(Stored::new(seq, cause, event)));
            }
        }
        let head = retained.back().map_or(0, |s| s.seq);
        let log = EventLog {
            inner: Mutex::new(Inner {
                head,
                retained,
                subscribers: Vec::new(),
                next_subscriber: 1,
            }),
            runtime: std::sync::OnceLock::new(),
        };
        let _ = log.runtime.set(Arc::downgrade(runtime));
        log
    }

    /// The newest event's `seq` (0 before the first).
    pub fn head(&self) -> u64 {
        lock(&self.inner).head
    }

    /// Records an event and queues it for every subscriber that takes it; answers its
    /// `seq`.
    pub fn publish(&self, cause: Option<Cause>, event: Event) -> u64 {
        let mut inner = lock(&self.inner);
        let seq = inner.head + 1;
        inner.head = seq;
        let stored = Arc::new(Stored::new(seq, cause, event));
        if let Some(rt) = self.runtime.get().and_then(Weak::upgrade) {
            let image = rt.image();
            // Advisory, like all of `aux`: an event that cannot be kept is still sent.
            if let Ok(bytes) =
                rmp_serde::to_vec(&(stored.seq, stored.cause.clone(), stored.event.clone()))
            {
                let _ = image.aux_put(&key(seq), &bytes);
            }
            if seq > RETAINED_EVENTS {
                let _ = image.aux_remove(&key(seq - RETAINED_EVENTS));
            }
        }
        inner.retained.push_back(stored.clone());
        while inner.retained.len() as u64 > RETAINED_EVENTS {
            inner.retained.pop_front();
        }
        inner.subscribers.retain_mut(|s| {
            let takes = s.filter.lock().map(|f| f.takes(&stored.event)).unwrap_or(true);
            if !takes {
                return true;
            }
            match s.queue.try_send(Outgoing::Event(stored.clone())) {
                Ok(()) => {
                    s.last_seq = seq;
                    true
                }
                Err(mpsc::error::TrySendError::Full(_)) => {
                    s.lag.mark(s.last_seq);
                    false
                }
                // The connection is gone.
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
        seq
    }

    /// Subscribes, replaying the retained events after `resume_from` (none when
    /// `None`: a new client starts from the live stream).
    pub fn subscribe(&self, resume_from: Option<u64>) -> Subscription {
        let (sender, queue) = mpsc::channel(QUEUE_LENGTH);
        let filter = Arc::new(Mutex::new(Filter::default()));
        let lag = Arc::new(Lag::default());
        let mut inner = lock(&self.inner);
        let (replay, expired) = match resume_from {
            None => (Vec::new(), false),
            Some(from) => {
                let oldest = inner.retained.front().map_or(inner.head + 1, |s| s.seq);
                let replay: Vec<_> =
                    inner.retained.iter().filter(|s| s.seq > from).cloned().collect();
                (replay, from + 1 < oldest)
            }
        };
        let id = inner.next_subscriber;
        inner.next_subscriber += 1;
        let head = inner.head;
        inner.subscribers.push(Subscriber {
            id,
            queue: sender.clone(),
            filter: filter.clone(),
            lag: lag.clone(),
            last_seq: head,
        });
        Subscription { id, head, replay, expired, queue, sender, filter, lag }
    }

    /// Marks subscriber `id` lagged (its connection could not queue one of its own
    /// messages) with the last `seq` queued for it, and stops queueing for it.
    pub fn mark_lagged(&self, id: u64) {
        let mut inner = lock(&self.inner);
        if let Some(s) = inner.subscribers.iter().find(|s| s.id == id) {
            s.lag.mark(s.last_seq);
        }
        inner.subscribers.retain(|s| s.id != id);
    }

    /// Stops queueing events for subscriber `id`.
    pub fn unsubscribe(&self, id: u64) {
        lock(&self.inner).subscribers.retain(|s| s.id != id);
    }

    /// How many subscribers are attached.
    pub fn subscribers(&self) -> usize {
        lock(&self.inner).subscribers.len()
    }
}
