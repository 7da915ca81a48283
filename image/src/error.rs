//! The one error type of batos: every layer reports with it, so that a failure keeps
//! its kind from the layer that met it to the person, script or embedder that sees it.
//!
//! Every variant says what went wrong *and* what the user can do about it, because the
//! same text reaches a person at the CLI, a script through `--json` (with [`Error::kind`]),
//! and an embedder through `Result`. Whatever the error, a failed operation changes
//! nothing in the image: the transaction that met it is rolled back.

use std::path::PathBuf;

use crate::{BlobHash, Oid, TxId};

/// Result alias used throughout the host.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the image and the runtime.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No live object has this oid.
    #[error("there is no object {0} in this image; `batos inspect` a root such as `genesis` to find live objects")]
    UnknownObject(Oid),

    /// No named root has this name.
    #[error("there is no root named `{0}`; the image's roots are listed by `batos awaken`, and `batos clone OBJ --name {0}` makes one")]
    UnknownRoot(String),

    /// The object, its parents and `traits` all lack the selector, and nothing handled
    /// `doesNotUnderstand`.
    #[error(
        "{receiver} does not understand `{selector}`: no slot of that name on it or its parents"
    )]
    DoesNotUnderstand {
        /// Who received the message.
        receiver: Oid,
        /// The selector nobody had.
        selector: String,
    },

    /// A slot or root name that cannot be stored.
    #[error("invalid name `{name}`: {reason}")]
    InvalidName {
        /// The offending name (possibly truncated for display).
        name: String,
        /// Why it was refused.
        reason: &'static str,
    },

    /// A value whose encoding exceeds [`crate::MAX_VALUE_BYTES`].
    #[error("value of {size} bytes is larger than the {limit}-byte limit for a slot; store large data as a blob (Image::put_blob) and keep the reference in the slot")]
    ValueTooLarge {
        /// Encoded size of the refused value.
        size: usize,
        /// The limit.
        limit: usize,
    },

    /// A message was sent with arguments that the method cannot take.
    #[error("`{selector}`: {reason}")]
    BadArguments {
        /// The selector being run.
        selector: String,
        /// What is wrong with the arguments.
        reason: String,
    },

    /// A method slot names a native primitive that this host does not register.
    #[error("method `{selector}` names the native primitive `{primitive}`, which this host does not provide; register it with RuntimeBuilder::primitive before opening the image")]
    UnknownPrimitive {
        /// The selector whose slot holds the method.
        selector: String,
        /// The primitive's name.
        primitive: String,
    },

    /// A method kind that needs a layer this runtime was not given.
    #[error(
        "method `{selector}` is a {kind} method, but no {kind} runner is attached to this runtime"
    )]
    NoRunner {
        /// The selector whose slot holds the method.
        selector: String,
        /// The method kind (e.g. `component`).
        kind: &'static str,
    },

    /// Nested sends went deeper than the runtime allows (almost always a method that
    /// sends itself forever).
    #[error("message `{selector}` nested {depth} sends deep, past the limit; a method probably sends itself without end")]
    SendTooDeep {
        /// The selector at which the limit tripped.
        selector: String,
        /// The depth reached.
        depth: usize,
    },

    /// A native primitive or user code refused the message with its own reason.
    #[error("{0}")]
    Failed(String),

    /// Something named does not exist: a plugin, a cycle, a model, a primitive.
    #[error("there is no {what} `{name}`; {hint}")]
    NotFound {
        /// What kind of thing (`plugin`, `cycle`, `model`, …).
        what: &'static str,
        /// The name asked for.
        name: String,
        /// What to do instead.
        hint: String,
    },

    /// Input that cannot be used as given (a command's argument, an example, a selector).
    #[error("{0}")]
    BadInput(String),

    /// The mind could not be reached or could not answer.
    #[error("the mind is unavailable: {0}")]
    MindUnavailable(String),

    /// A synthesised method needs grants the person has not given: it was not
    /// installed; the person decides.
    #[error("the method `{selector}` needs the grant(s) {} to run, which were not given, so it was not installed; grant them if it should have them", grants.join(", "))]
    NeedsGrant {
        /// The selector.
        selector: String,
        /// The grants it needs (`clock`, `random`, `mind`).
        grants: Vec<String>,
    },

    /// A synthesis cycle with no example from the caller found no two candidates that
    /// agree, so it installed nothing: the caller should say what the answer is.
    #[error("no two candidates for `{selector}` agree ({detail}), so none was installed; give an example of what it should answer")]
    NeedsExample {
        /// The selector.
        selector: String,
        /// How the candidates differ.
        detail: String,
    },

    /// The send stopped because it needs work done outside any transaction (asking the
    /// mind, loading a model), named by this key. Never reaches a caller of the
    /// runtime: the runtime holds the work, rolls the transaction back, runs the work,
    /// and runs the send again (see the runtime's `outside` module).
    #[error("internal: the send waits for work outside its transaction ({0})")]
    Outside(String),

    /// An error relayed from another thread's operation (a shared synthesis cycle):
    /// the same kind and words as the original.
    #[error("{message}")]
    Relayed {
        /// The original error's kind.
        kind: &'static str,
        /// The original error's text.
        message: String,
    },

    /// The directory exists but is not a batos image.
    #[error("{path} is not a batos image: {reason}")]
    NotAnImage {
        /// The directory given.
        path: PathBuf,
        /// What gave it away.
        reason: String,
    },

    /// The image was written by a newer batos with a format this build cannot read.
    #[error("the image at {path} has format version {found}, but this batos understands versions up to {supported}; upgrade batos to open it")]
    ImageTooNew {
        /// The image directory.
        path: PathBuf,
        /// The version recorded in the image.
        found: u32,
        /// The newest version this build reads.
        supported: u32,
    },

    /// Another process holds the image.
    #[error("the image at {path} is in use by another process ({holder}); stop it or use another --image")]
    ImageLocked {
        /// The image directory.
        path: PathBuf,
        /// What the lock file says about its holder.
        holder: String,
    },

    /// Stored bytes that do not decode: a damaged or foreign image.
    #[error("the image is damaged: {0}; restore the image directory from a backup")]
    Corrupt(String),

    /// A blob file's content does not match its name.
    #[error("blob {hash} is damaged: its content hashes to {actual}; restore {path} from a backup (the referencing slot is untouched)")]
    BlobCorrupt {
        /// The expected hash.
        hash: BlobHash,
        /// The hash of what is on disk.
        actual: BlobHash,
        /// The file.
        path: PathBuf,
    },

    /// A blob referenced but absent from the blob store.
    #[error("blob {0} is not in this image's blob store")]
    BlobMissing(BlobHash),

    /// Optimistic transactions kept conflicting.
    #[error("the transaction conflicted with concurrent writers {attempts} times and was abandoned; nothing was written, retry later")]
    Conflict {
        /// How many times it was tried.
        attempts: u32,
    },

    /// No transaction with this id is in the history.
    #[error("there is no transaction {0} in the history; `batos history` lists them")]
    UnknownTransaction(TxId),

    /// The history before this transaction was removed by `pack`.
    #[error(
        "the history before transaction {floor} was packed away; {wanted} is no longer available"
    )]
    HistoryPacked {
        /// The oldest transaction still kept.
        floor: TxId,
        /// The transaction asked for.
        wanted: TxId,
    },

    /// An undo that would overwrite later work.
    #[error("cannot undo transaction {tx}: {reason}")]
    UndoRefused {
        /// The transaction asked to be undone.
        tx: TxId,
        /// Which later transaction touched the same data.
        reason: String,
    },

    /// A job's worker reported under an attempt that is no longer the job's current
    /// one: its lease expired and the job was given to another (the fencing token).
    #[error("job {job}: attempt {attempt} is stale (the job is at attempt {current}, {state}); its result is refused")]
    StaleAttempt {
        /// The job.
        job: String,
        /// The attempt the worker reported under.
        attempt: i64,
        /// The job's current attempt.
        current: i64,
        /// The job's state.
        state: String,
    },

    /// A capability tried something its authority does not cover.
    #[error("{capability} is not permitted to {action}")]
    NotPermitted {
        /// The capability (selector or plugin name).
        capability: String,
        /// What it tried.
        action: String,
    },

    /// A per-call execution limit tripped; the call was stopped and its transaction
    /// rolled back.
    #[error("the {limit} limit stopped the call: {detail}")]
    Limit {
        /// Which limit (`deadline`, `fuel`, `memory`, `stack`, `result size`, `send depth`).
        limit: &'static str,
        /// What happened.
        detail: String,
    },

    /// A capability trapped (a WebAssembly fault); its transaction was rolled back.
    #[error("{capability} trapped: {detail}")]
    Trapped {
        /// The capability.
        capability: String,
        /// The trap.
        detail: String,
    },

    /// The audit refused a component; nothing was installed.
    #[error("refused {what}: {reason}")]
    AuditRefused {
        /// What was audited (a file or plugin name).
        what: String,
        /// Why, naming the offending import or limit.
        reason: String,
    },

    /// A plugin could not be built (WAT syntax, a Rust compile error, componentization).
    #[error("cannot build {what}: {detail}")]
    BuildFailed {
        /// What was being built.
        what: String,
        /// The compiler's or parser's words.
        detail: String,
    },

    /// A plugin manifest that cannot be used.
    #[error("bad plugin manifest {path}: {reason}")]
    BadManifest {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// The storage engine failed.
    #[error("storage engine error: {0}; if this persists the disk may be failing or full")]
    Storage(#[from] fjall::Error),

    /// A file-system operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing.
        context: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// A stable, machine-readable name for the error's kind (the `kind` of `--json` output).
    pub fn kind(&self) -> &'static str {
        match self {
            Error::UnknownObject(_)
            | Error::UnknownRoot(_)
            | Error::UnknownTransaction(_)
            | Error::BlobMissing(_)
            | Error::UnknownPrimitive { .. }
            | Error::NotFound { .. } => "not_found",
            Error::InvalidName { .. }
            | Error::ValueTooLarge { .. }
            | Error::BadArguments { .. }
            | Error::BadInput(_) => "bad_input",
            Error::DoesNotUnderstand { .. } => "does_not_understand",
            Error::NoRunner { .. } => "no_runner",
            Error::SendTooDeep { .. } | Error::Limit { .. } => "limit",
            Error::Failed(_) => "failed",
            Error::MindUnavailable(_) => "mind_unavailable",
            Error::NeedsExample { .. } => "needs_example",
            Error::NeedsGrant { .. } => "needs_grant",
            Error::NotAnImage { .. } => "not_an_image",
            Error::ImageTooNew { .. } => "image_too_new",
            Error::ImageLocked { .. } => "image_locked",
            Error::Corrupt(_) | Error::BlobCorrupt { .. } => "corrupt",
            Error::Conflict { .. } => "conflict",
            Error::HistoryPacked { .. } => "history_packed",
            Error::UndoRefused { .. } => "undo_refused",
            Error::StaleAttempt { .. } => "stale_attempt",
            Error::NotPermitted { .. } => "not_permitted",
            Error::Trapped { .. } => "trapped",
            Error::AuditRefused { .. } => "audit_refused",
            Error::BuildFailed { .. } => "build_failed",
            Error::BadManifest { .. } => "bad_manifest",
            Error::Storage(_) => "storage",
            Error::Io { .. } => "io",
            Error::Outside(_) => "internal",
            Error::Relayed { kind, .. } => kind,
        }
    }

    /// For a `not_found` error, what was not found (`object`, `root`, `transaction`,
    /// `blob`, `primitive`, `plugin`, `cycle`, `model`); `None` for other kinds. The
    /// `what` of `--json` output.
    pub fn subject(&self) -> Option<&'static str> {
        Some(match self {
            Error::UnknownObject(_) => "object",
            Error::UnknownRoot(_) => "root",
            Error::UnknownTransaction(_) => "transaction",
            Error::BlobMissing(_) => "blob",
            Error::UnknownPrimitive { .. } => "primitive",
            Error::NotFound { what, .. } => what,
            _ => return None,
        })
    }

    /// A copy with the same kind and words, for handing one failure to several waiters.
    pub fn relay(&self) -> Error {
        Error::Relayed { kind: self.kind(), message: self.to_string() }
    }

    /// Shorthand for a [`Error::NotFound`].
    pub fn not_found(what: &'static str, name: impl Into<String>, hint: impl Into<String>) -> Self {
        Error::NotFound { what, name: name.into(), hint: hint.into() }
    }

    /// Wraps an I/O error with what we were doing.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io { context: context.into(), source }
    }

    /// Shorthand for a [`Error::BadArguments`].
    pub fn bad_arguments(selector: &str, reason: impl Into<String>) -> Self {
        Error::BadArguments { selector: selector.to_owned(), reason: reason.into() }
    }
}
