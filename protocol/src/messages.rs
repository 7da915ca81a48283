//! Every message of `batos.v1`, defined once. Unknown fields are ignored (serde's
//! default), so a newer peer may add optional fields; an unknown `type` or `op` is an
//! error the receiver answers, never a crash.

use serde::{Deserialize, Serialize};

/// Raw bytes: base64 text in JSON, a binary string in msgpack.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Bytes(pub Vec<u8>);

impl Serialize for Bytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use base64::Engine;
        if s.is_human_readable() {
            s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(&self.0))
        } else {
            s.serialize_bytes(&self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl serde::de::Visitor<'_> for Visit {
            type Value = Bytes;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("base64 text or bytes")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Bytes, E> {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD
                    .decode(v)
                    .map(Bytes)
                    .map_err(|e| E::custom(format!("not base64: {e}")))
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Bytes, E> {
                Ok(Bytes(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Bytes, E> {
                Ok(Bytes(v))
            }
        }
        d.deserialize_any(Visit)
    }
}

/// What a client sends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// The first message of every connection.
    Hello {
        /// Must be [`crate::PROTOCOL`].
        protocol: String,
        /// Who is talking, for the kernel's log (e.g. `batos-cli 0.1.0`).
        client: String,
        /// The kernel's access token, from `kernel.json`.
        token: String,
        /// The last event `seq` this client handled: the kernel replays every later
        /// retained event before the live stream.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resume_from: Option<u64>,
    },
    /// Do something: everything the command line does.
    Request {
        /// The client's name for this request; the reply's `re` and its events' `cause`.
        id: String,
        /// What to do.
        request: Request,
    },
    /// Stop the synthesis cycle that request `target` started (if it is still running).
    /// Answered at once with a `reply`: cancelling never waits behind other work.
    Cancel {
        /// This message's own id.
        id: String,
        /// The id of the request to stop.
        target: String,
    },
    /// Choose which events this connection receives from now on (all, at first).
    Subscribe {
        /// This message's own id.
        id: String,
        /// Only events of these kinds (all kinds when absent).
        #[serde(default)]
        kinds: Option<Vec<EventKind>>,
        /// Only events about these objects (by oid, e.g. `#12`); events about no object
        /// in particular (model progress) pass. All objects when absent.
        #[serde(default)]
        objects: Option<Vec<String>>,
    },
}

/// A request: one for each thing the command line does, and the two a browser needs
/// beyond them (`layout` and `place`, where its morphs stand).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// The image's path, whether it was just created, its last transaction and roots.
    Awaken,
    /// The root names and their objects.
    Roots,
    /// An object's parents and slots, now or as of a transaction.
    Inspect {
        /// A root name or `#oid`.
        object: String,
        /// As it was right after this transaction.
        #[serde(default)]
        at: Option<u64>,
    },
    /// Send a message; one nothing understands starts a synthesis cycle.
    Send {
        /// The receiver: a root name or `#oid`.
        object: String,
        /// The selector, e.g. `factorial:`.
        selector: String,
        /// The arguments as batos JSON values (`{"$object": "genesis"}` for an object).
        #[serde(default)]
        args: Vec<serde_json::Value>,
        /// If synthesised: what the method should do.
        #[serde(default)]
        brief: Option<String>,
        /// If synthesised: cases it must pass, `ARGS => RESULT` in JSON.
        #[serde(default)]
        examples: Vec<String>,
        /// If synthesised: the method keeps state in its receiver.
        #[serde(default)]
        stateful: bool,
        /// If synthesised: grants the person allows (`clock`, `random`, `mind`).
        #[serde(default)]
        grants: Vec<String>,
        /// If synthesised: ask for WAT instead of Rust.
        #[serde(default)]
        wat: bool,
        /// Never synthesise: fail with `does_not_understand` instead.
        #[serde(default)]
        no_synthesis: bool,
    },
    /// Write one slot.
    Set {
        /// A root name or `#oid`.
        object: String,
        /// The slot's name.
        slot: String,
        /// The value as batos JSON.
        value: serde_json::Value,
    },
    /// Clone an object, optionally naming the clone a root.
    Clone {
        /// A root name or `#oid`.
        object: String,
        /// The new root's name.
        #[serde(default)]
        name: Option<String>,
    },
    /// Recent transactions, newest first.
    History {
        /// How many (20 when absent).
        #[serde(default = "twenty")]
        limit: usize,
    },
    /// Reverse a transaction with a new one.
    Undo {
        /// The transaction's id.
        tx: u64,
    },
    /// Remove what nothing reaches; optionally drop old history.
    Pack {
        /// Drop the history of every transaction older than this one.
        #[serde(default)]
        drop_history_before: Option<u64>,
    },
    /// Audit and install a plugin sent as bytes.
    PluginAdd {
        /// Its file name, `NAME.wasm` or `NAME.wat`: the extension says which it is.
        file: String,
        /// The component (or WAT text) itself.
        component: Bytes,
        /// Its manifest (`NAME.toml`), TOML text.
        manifest: String,
        /// The source it was built from, kept beside it (a crate's `src/lib.rs`).
        #[serde(default)]
        source: Option<Bytes>,
        /// Where it came from, for `plugin list` (the file name when absent).
        #[serde(default)]
        origin: Option<String>,
    },
    /// The installed plugins.
    PluginList,
    /// Remove a plugin and its method slot.
    PluginRemove {
        /// Its name.
        name: String,
    },
    /// Calls, failures, fuel and last error per plugin.
    PluginStats,
    /// Make the plugins installed from the drop-in folder match it, once.
    PluginSync,
    /// The synthesis cycles.
    Cycles,
    /// One cycle in full.
    Cycle {
        /// Its id, e.g. `c3`.
        id: String,
    },
    /// The model catalogue and the imported models.
    ModelList,
    /// Fetch and import a model, with `model` progress events.
    ModelPull {
        /// The model (the catalogue's first when absent).
        #[serde(default)]
        name: Option<String>,
        /// Queue the pull as a durable job and answer its id at once: it survives the
        /// kernel's restarts (resuming what was downloaded) and its status is on the
        /// job (`jobs`); progress still comes as `model` events.
        #[serde(default)]
        job: bool,
    },
    /// Every object reachable from the roots (through parents and references), each
    /// with its root name, parents and slot count: the browser's object list.
    Objects,
    /// Where `selector` resolves from `object`: the objects the delegation walk visits
    /// in order, the one that holds it, and what it is — data, a native primitive, or
    /// a component with its grants, source, audit verdict and the cycle or plugin that
    /// made it.
    Resolve {
        /// The receiver: a root name or `#oid`.
        object: String,
        /// The selector.
        selector: String,
    },
    /// The metacognition journal's newest entries, newest last.
    Journal {
        /// How many (100 when absent).
        #[serde(default = "hundred")]
        limit: usize,
    },
    /// Where the browser UI placed each morph and which are open (kept in the image,
    /// outside its transaction history).
    Layout,
    /// Place a morph, or close it.
    Place {
        /// A root name or `#oid`.
        object: String,
        /// Its left edge in the world, in CSS pixels.
        x: f64,
        /// Its top edge in the world, in CSS pixels.
        y: f64,
        /// Whether it is open.
        open: bool,
    },
    /// Words into a message, by the image's mind: the reply's JSON is
    /// `{"object", "selector", "args"}` and its text the message as a session line.
    Translate {
        /// What the person said.
        words: String,
    },
    /// Ingest files and folders into the memory (`memory` events report each file).
    /// The kernel reads the paths from its own file system, so they are absolute.
    Ingest {
        /// Files and folders (folders recursively).
        paths: Vec<String>,
    },
    /// Search the memory by words and by meaning; the reply's JSON is the passages,
    /// best first.
    Search {
        /// What to look for (at most 4,096 bytes).
        query: String,
        /// How many passages (5 when absent, at most 100).
        #[serde(default)]
        limit: Option<usize>,
        /// The weight of the word (BM25) ranking in the fusion; 1 when absent, 0 leaves
        /// it out.
        #[serde(default)]
        words: Option<f64>,
        /// The weight of the meaning (vector) ranking; 1 when absent, 0 leaves it out.
        #[serde(default)]
        meaning: Option<f64>,
    },
    /// Compress the memory once: cluster the passages of its lowest level that no
    /// concept covers and have the mind, as BABS, write a concept for each (`memory`
    /// events report each concept; the reply names the job).
    Compress,
    /// Ask the personas. Without `persona`, the routing chooses who answers (two, in a
    /// Socratic Contrapunto: the second having read the first); with it, that persona
    /// answers alone. Each answer streams as `dialogue` events; the reply is the whole
    /// exchange, kept as a dialogue object.
    Chat {
        /// The question (at most 8,192 bytes).
        question: String,
        /// A persona to answer alone (`brick`, `robin`, `alfred`, `babs`).
        #[serde(default)]
        persona: Option<String>,
    },
    /// The Composite Entropy Metric now, over the heartbeat's window, and the beats kept
    /// (the last `limit`, 20 when absent).
    Cem {
        /// How many past beats.
        #[serde(default)]
        limit: Option<usize>,
    },
    /// Queue a message as a durable job, in one transaction: the kernel's job runner (or
    /// a synthesis worker) makes the receiver understand it — synthesising the method
    /// if nothing does — and sends it exactly once; the answer lands on the job. Answers
    /// the job's id at once.
    Enqueue {
        /// The receiver: a root name or `#oid`.
        object: String,
        /// The selector.
        selector: String,
        /// The arguments as batos JSON values.
        #[serde(default)]
        args: Vec<serde_json::Value>,
        /// If synthesised: what the method should do.
        #[serde(default)]
        brief: Option<String>,
        /// If synthesised: cases it must pass, `ARGS => RESULT` in JSON.
        #[serde(default)]
        examples: Vec<String>,
        /// If synthesised: the method keeps state in its receiver.
        #[serde(default)]
        stateful: bool,
        /// If synthesised: grants the person allows.
        #[serde(default)]
        grants: Vec<String>,
        /// If synthesised: ask for WAT instead of Rust.
        #[serde(default)]
        wat: bool,
    },
    /// The durable jobs, newest last (the last `limit`, 20 when absent), or one in full.
    Jobs {
        /// How many.
        #[serde(default)]
        limit: Option<usize>,
        /// One job's id (`j3`), to see its payload, steps and result.
        #[serde(default)]
        job: Option<String>,
    },
    /// Hand this kernel's work to another binary without refusing a connection (the Ship
    /// of Theseus; ARCHITECTURE.md, "Upgrading a serving kernel"). Answered once the new
    /// binary has checked the image and is about to take over; refused, with the old
    /// kernel still serving, if it fails its checks.
    Upgrade {
        /// The new `batos` executable, as a path on the kernel's machine.
        binary: String,
    },
}

impl Request {
    /// A send that never synthesises: one nothing understands fails with
    /// `does_not_understand`.
    pub fn send_known(object: &str, selector: &str, args: Vec<serde_json::Value>) -> Request {
        Request::Send {
            object: object.to_owned(),
            selector: selector.to_owned(),
            args,
            brief: None,
            examples: vec![],
            stateful: false,
            grants: vec![],
            wat: false,
            no_synthesis: true,
        }
    }
}

fn twenty() -> usize {
    20
}

fn hundred() -> usize {
    100
}

/// A request's answer, in two representations (as Jupyter's results carry a MIME
/// bundle): `json` for programs, `text` for people, exactly what the command line
/// prints with and without `--json`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Output {
    /// For people.
    pub text: String,
    /// For programs.
    pub json: serde_json::Value,
}

/// Why a request failed: the same stable `kind` as the command line's `--json` errors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The stable machine name (`not_found`, `bad_input`, `needs_example`, …).
    pub kind: String,
    /// For `not_found`: what was not found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub what: Option<String>,
    /// What is wrong and what to do.
    pub message: String,
    /// For `needs_grant`: the grants the method needs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<String>,
}

impl ErrorBody {
    /// An error of `kind` saying `message`.
    pub fn new(kind: &str, message: impl Into<String>) -> ErrorBody {
        ErrorBody { kind: kind.to_owned(), what: None, message: message.into(), grants: vec![] }
    }
}

/// Whether the kernel is working on a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// The request was accepted; its events follow.
    Busy,
    /// The request is done: its reply and every event it caused have been sent.
    Idle,
}

/// What caused an event: the connection's session and the request's id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cause {
    /// The session id the kernel gave that connection in `welcome`.
    pub session: String,
    /// The request's id.
    pub id: String,
}

/// What the kernel sends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// The answer to `hello`.
    Welcome {
        /// [`crate::PROTOCOL`].
        protocol: String,
        /// The kernel's name and version.
        server: String,
        /// This connection's session id, used in every `cause` it brings about.
        session: String,
        /// What this kernel can do beyond the protocol's core (e.g. `msgpack`, `cancel`).
        capabilities: Vec<String>,
        /// The newest event's `seq` (0 when there is none yet).
        head_seq: u64,
    },
    /// A request's answer: exactly one of `ok` and `error`.
    Reply {
        /// The request's id.
        re: String,
        /// Its result.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ok: Option<Output>,
        /// Why it failed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<ErrorBody>,
    },
    /// `busy` before a request's first event, `idle` after its reply.
    Status {
        /// The request's id.
        re: String,
        /// Busy or idle.
        state: State,
    },
    /// Something happened in the kernel.
    Event {
        /// Monotonic across the image's life (it survives restarts of the kernel).
        seq: u64,
        /// The request that caused it; absent for the kernel's own work (the drop-in
        /// folder, a heartbeat).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cause: Option<Cause>,
        /// What happened.
        event: Event,
    },
    /// A message the kernel could not take (malformed, unknown type, no hello yet), or
    /// a problem with the connection itself. `re` names the message when it had an id.
    Error {
        /// The message's id, when it had one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        re: Option<String>,
        /// What went wrong.
        error: ErrorBody,
    },
    /// This connection fell behind: events after `seq` were not sent. The kernel closes
    /// with [`crate::close::LAGGED`]; reconnect with `resume_from: seq`.
    Lagged {
        /// The last event `seq` that was queued for this connection.
        seq: u64,
    },
}

/// The kinds of event, for `subscribe`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A committed transaction.
    Transaction,
    /// A synthesis cycle's transition or attempt.
    Cycle,
    /// A line a capability logged.
    Log,
    /// A plugin installed or removed.
    Plugin,
    /// Model pull progress.
    Model,
    /// Ingest progress.
    Memory,
    /// A persona's answer being written, or finished.
    Dialogue,
    /// A beat of the heartbeat, and what it did.
    Heartbeat,
}

/// What happened.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// A transaction committed.
    Transaction {
        /// Its id.
        tx: u64,
        /// What it did (the message sent, the slot set).
        description: String,
        /// The slots it changed, by object (`#12` → `["count"]`).
        changes: std::collections::BTreeMap<String, Vec<String>>,
    },
    /// A synthesis cycle moved on.
    Cycle {
        /// The cycle's id (`c3`).
        cycle: String,
        /// `started`, `joined`, `state`, `attempt`, or `text` (more of a candidate's code
        /// as the mind writes it, in `detail`).
        phase: String,
        /// The line the command line prints for it.
        line: String,
        /// The state entered (for `state`), or the attempt's outcome (for `attempt`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        state: Option<String>,
        /// The selector (for `started`), the detail (signature, diagnostics, the
        /// failing case) otherwise.
        #[serde(default)]
        detail: String,
        /// For `attempt`: the round, from 1.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        round: Option<usize>,
        /// For `attempt`: the candidate within its round, from 1.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        candidate: Option<usize>,
    },
    /// A capability logged a line.
    Log {
        /// The capability.
        capability: String,
        /// `error`, `warn`, `info`, `debug` or `trace`.
        level: String,
        /// The line.
        message: String,
    },
    /// A plugin was installed or removed.
    Plugin {
        /// `installed` or `removed`.
        change: String,
        /// The plugin's name.
        name: String,
        /// The object it is a method of (`#oid`).
        target: String,
        /// Its selector.
        selector: String,
    },
    /// A model pull moved on.
    Model {
        /// The model.
        model: String,
        /// The step (`download`, `verify`, `import`, …) or `done`.
        step: String,
        /// Bytes or items done in this step.
        done: u64,
        /// The step's total, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        total: Option<u64>,
    },
    /// An ingest finished a file, or a compression a concept.
    Memory {
        /// The file, or `compress`.
        source: String,
        /// `ingested`, `unchanged` or `skipped` for a file; `concept` for a compression.
        outcome: String,
        /// How many fractals it has (for `ingested`), or why it was skipped.
        detail: String,
        /// Files (or clusters) done.
        done: u64,
        /// Files (or clusters) in all.
        total: u64,
    },
    /// A persona in a chat: more of its answer (`phase` `text`, the new piece in
    /// `text`), or its whole answer (`phase` `turn`).
    Dialogue {
        /// The persona's key (`brick`).
        persona: String,
        /// `text` or `turn`.
        phase: String,
        /// The piece, or the whole answer.
        text: String,
    },
    /// The heartbeat beat: the metric and its terms, how many beats in a row were
    /// stagnant, and what it did — an act's own transactions and cycles follow as
    /// events with the same cause (session `heartbeat`).
    Heartbeat {
        /// The beat's number.
        beat: i64,
        /// The Composite Entropy Metric.
        cem: f64,
        /// Its terms: `cog`, `sol`, `struc`, `rel`.
        terms: std::collections::BTreeMap<String, f64>,
        /// Stagnant beats in a row (0 after an act).
        stagnant: i64,
        /// The act's kind (`resynthesize`, `compress`, `pursue`), if it acted.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        act: Option<String>,
        /// What it did or why it did not.
        detail: String,
    },
}

impl Event {
    /// This event's kind, for filtering.
    pub fn kind(&self) -> EventKind {
        match self {
            Event::Transaction { .. } => EventKind::Transaction,
            Event::Cycle { .. } => EventKind::Cycle,
            Event::Log { .. } => EventKind::Log,
            Event::Plugin { .. } => EventKind::Plugin,
            Event::Model { .. } => EventKind::Model,
            Event::Memory { .. } => EventKind::Memory,
            Event::Dialogue { .. } => EventKind::Dialogue,
            Event::Heartbeat { .. } => EventKind::Heartbeat,
        }
    }

    /// Whether this event concerns one of `objects` (by `#oid`); events about no
    /// object in particular concern everyone.
    pub fn concerns(&self, objects: &[String]) -> bool {
        match self {
            Event::Transaction { changes, .. } => changes.keys().any(|o| objects.contains(o)),
            Event::Plugin { target, .. } => objects.contains(target),
            _ => true,
        }
    }
}
