//! What travels over NATS between a kernel and its workers, in msgpack: a job (the
//! message to make understood, a snapshot of its receiver, the image's mind settings),
//! a worker's progress, and its result. Every message names the job and the attempt
//! (the fencing token); the kernel's checks, not the transport, decide what counts.

use std::collections::BTreeMap;

use batos::runtime::Runtime;
use batos::{Method, Oid, Value};
use serde::{Deserialize, Serialize};

/// The stream workers pull jobs from (a work queue: each message goes to one worker).
pub const JOBS_STREAM: &str = "BATOS_JOBS";
/// The stream kernels read results from.
pub const RESULTS_STREAM: &str = "BATOS_RESULTS";
/// The durable consumer all workers share.
pub const WORKERS_CONSUMER: &str = "batos-workers";

/// The subject a kernel of image `image` publishes its jobs on.
pub fn job_subject(image: &str) -> String {
    format!("batos.jobs.{image}")
}

/// The subject results for image `image` are published on.
pub fn result_subject(image: &str) -> String {
    format!("batos.results.{image}")
}

/// The subject progress reports for image `image` are published on (plain NATS: a
/// lost one only lets a lease run out, which re-sends the job).
pub fn progress_subject(image: &str) -> String {
    format!("batos.progress.{image}")
}

/// A synthesis job for a worker.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct JobMessage {
    /// The image's id on the wire (which kernel to answer).
    pub image: String,
    /// The job (`j3`).
    pub job: String,
    /// The attempt this message is for.
    pub attempt: i64,
    /// The selector to make understood.
    pub selector: String,
    /// The message's arguments (objects among them are the snapshot's indices).
    pub args: Vec<Value>,
    /// What the method should do.
    pub brief: Option<String>,
    /// `ARGS => RESULT` cases.
    pub examples: Vec<String>,
    /// The method keeps state in its receiver.
    pub stateful: bool,
    /// Grants the person allowed.
    pub grants: Vec<String>,
    /// `rust` or `wat`.
    pub language: String,
    /// The receiver and its ancestors.
    pub snapshot: Snapshot,
    /// The image's `pLLM` settings (model, backend, sampling), so the worker thinks
    /// with the mind the image chose.
    pub mind: BTreeMap<String, Value>,
}

/// A worker's report that it still works on a job (renews the lease).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Progress {
    /// The job.
    pub job: String,
    /// Its attempt.
    pub attempt: i64,
    /// Who works on it.
    pub worker: String,
}

/// What a worker made of a job.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ResultMessage {
    /// The job.
    pub job: String,
    /// The attempt it worked under.
    pub attempt: i64,
    /// Who.
    pub worker: String,
    /// What came of it.
    pub outcome: Outcome,
}

/// A worker's outcome.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub enum Outcome {
    /// A method was proven on the snapshot.
    Proven {
        /// The method value as installed there (blob references are content hashes,
        /// the same in every image).
        method: Value,
        /// The bytes of every blob the method, skill and cycle refer to.
        blobs: Vec<Vec<u8>>,
        /// The skill entry.
        skill: BTreeMap<String, Value>,
        /// The cycle's slots.
        cycle: BTreeMap<String, Value>,
    },
    /// The snapshot's receiver understood the selector already (nothing to install).
    Understood,
    /// The cycle failed; `retry` when another attempt may succeed (the worker, not the
    /// work, failed).
    Failed {
        /// Why.
        reason: String,
        /// Worth another attempt.
        retry: bool,
    },
}

/// One object of a snapshot.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SnapshotObject {
    /// Its parents, as indices into the snapshot; `None` for a parent outside it
    /// (the primordial `traits`, re-made by every image).
    pub parents: Vec<Option<usize>>,
    /// Its slots: data with object references as `Value::Object(Oid(index))` into the
    /// snapshot (others dropped), and component methods whose blobs ride along.
    pub slots: BTreeMap<String, Value>,
}

/// A job's receiver (index 0) and its ancestors up to the primordial objects, with
/// the component blobs its methods need.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Snapshot {
    /// The objects, receiver first.
    pub objects: Vec<SnapshotObject>,
    /// The component blobs the methods refer to.
    pub blobs: Vec<Vec<u8>>,
}

/// The most component bytes a snapshot carries: the receiver's own methods let a new
/// one compose with them, but a JetStream message has a size limit (1 MB by default).
pub const MAX_SNAPSHOT_BLOBS: usize = 512 * 1024;

/// Takes the snapshot of `receiver` (see [`Snapshot`]).
pub fn snapshot(rt: &Runtime, receiver: Oid) -> batos::Result<Snapshot> {
    rt.image().view(|tx| {
        let traits = tx.root(batos::runtime::PRIMORDIAL_TRAITS)?;
        let mut order = vec![receiver];
        let mut i = 0;
        while i < order.len() {
            for p in tx.parents(order[i])? {
                if Some(p) != traits && !order.contains(&p) {
                    order.push(p);
                }
            }
            i += 1;
        }
        let index = |oid: Oid| order.iter().position(|o| *o == oid);
        let mut snap = Snapshot::default();
        let mut carried = 0usize;
        for oid in &order {
            let parents = tx.parents(*oid)?.into_iter().map(index).collect();
            let mut slots = BTreeMap::new();
            for (name, value) in tx.slots(*oid)? {
                if let Value::Method(m) = &value {
                    if let Method::Component { component, .. } = m.runnable() {
                        if carried + component.size as usize > MAX_SNAPSHOT_BLOBS {
                            continue;
                        }
                        carried += component.size as usize;
                        snap.blobs.push(tx.image().blobs().read(component)?);
                    }
                    slots.insert(name, value);
                    continue;
                }
                if let Some(v) = remap(&value, &|o| index(o).map(|i| Oid(i as u64))) {
                    slots.insert(name, v);
                }
            }
            snap.objects.push(SnapshotObject { parents, slots });
        }
        Ok(snap)
    })
}

/// `value` with every object reference mapped by `map`; `None` if one maps to nothing.
pub fn remap(value: &Value, map: &dyn Fn(Oid) -> Option<Oid>) -> Option<Value> {
    Some(match value {
        Value::Object(o) => Value::Object(map(*o)?),
        Value::List(items) => {
            Value::List(items.iter().map(|v| remap(v, map)).collect::<Option<_>>()?)
        }
        Value::Map(m) => Value::Map(
            m.iter().map(|(k, v)| Some((k.clone(), remap(v, map)?))).collect::<Option<_>>()?,
        ),
        other => other.clone(),
    })
}
