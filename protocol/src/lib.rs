//! `batos.v1`, the Synaptic Bridge's wire protocol: what a client and the kernel
//! (`batos serve`) say to each other over a WebSocket at `/ws`.
//!
//! This crate narrows its dependencies to serde (the message types, defined once as
//! tagged enums), serde_json and rmp-serde (the two encodings) and base64 (bytes in
//! JSON). It knows nothing of images, sandboxes or minds: the kernel and every Rust
//! client share it, and `docs/protocol.md` describes the same messages for everyone
//! else.
//!
//! The shape of a conversation (see [`ClientMessage`] and [`ServerMessage`]):
//!
//! 1. The client opens `/ws`, asking for the subprotocol [`SUBPROTOCOL_MSGPACK`] for
//!    binary msgpack frames; otherwise frames are JSON text.
//! 2. It sends [`ClientMessage::Hello`] with the protocol version and the kernel's
//!    token; the kernel answers [`ServerMessage::Welcome`], or an error and a close with
//!    one of the [`close`] codes.
//! 3. Each [`ClientMessage::Request`] carries an `id` of the client's choosing. The
//!    kernel answers `status busy`, then the events the request causes, its `reply`,
//!    then `status idle`, all with `re`/`cause` naming that id (Jupyter's convention).
//! 4. [`ServerMessage::Event`]s carry a monotonic `seq`; a client that reconnects with
//!    `resume_from` gets exactly the ones it missed, then the live stream.

#![forbid(unsafe_code)]

mod codec;
mod discovery;
mod messages;

pub use codec::{decode, encode, DecodeError, Format, Frame};
pub use discovery::{read_kernel_info, KernelInfo, KERNEL_FILE};
pub use messages::{
    Bytes, Cause, ClientMessage, ErrorBody, Event, EventKind, Output, Request, ServerMessage, State,
};

/// The protocol's name and version, sent in `hello` and `welcome`. A kernel refuses any
/// other with [`close::BAD_VERSION`]; compatible additions (new optional fields, new
/// message or event types) keep the name, incompatible changes make `batos.v2`.
pub const PROTOCOL: &str = "batos.v1";

/// The WebSocket subprotocol for JSON text frames (also the default when a client asks
/// for none).
pub const SUBPROTOCOL_JSON: &str = "batos.v1";

/// The WebSocket subprotocol for msgpack binary frames (rmp-serde, maps with field names).
pub const SUBPROTOCOL_MSGPACK: &str = "batos.v1.msgpack";

/// The WebSocket close codes the kernel uses, and why.
pub mod close {
    /// The client said goodbye, or the kernel closed a connection it had no quarrel with.
    pub const NORMAL: u16 = 1000;
    /// A frame that is not a message of this protocol where a `hello` was needed, or a
    /// frame kind (text in a msgpack connection, or the reverse) the connection did not
    /// ask for.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// A frame over [`super::limits::MAX_FRAME_BYTES`].
    pub const TOO_BIG: u16 = 1009;
    /// The kernel is stopping (SIGTERM, SIGINT): reconnect, with `resume_from`, to the
    /// next one (RFC 6455's "service restart").
    pub const RESTARTING: u16 = 1012;
    /// `hello` named a protocol this kernel does not speak.
    pub const BAD_VERSION: u16 = 4000;
    /// `hello` carried a token other than the kernel's (see `kernel.json`).
    pub const BAD_TOKEN: u16 = 4001;
    /// The client did not read fast enough: its queue overflowed. A `lagged` message
    /// came first; reconnect with `resume_from` set to the last `seq` you handled.
    pub const LAGGED: u16 = 4002;
    /// No `hello` within [`super::limits::HELLO_TIMEOUT_MS`].
    pub const HELLO_TIMEOUT: u16 = 4003;
}

/// The protocol's limits, each with its reason.
pub mod limits {
    /// The largest frame either side may send: a plugin's component travels in one
    /// request, and the audit refuses components over 8 MiB, so 16 MiB leaves room for
    /// base64 in JSON without letting one client make the kernel buffer without bound.
    pub const MAX_FRAME_BYTES: usize = 16 << 20;
    /// Messages waiting for one connection before it counts as lagged: enough for a
    /// burst of events from a synthesis cycle or a busy image, small enough that a
    /// client that stopped reading costs a bounded amount of memory.
    pub const QUEUE_LENGTH: usize = 4096;
    /// Events the kernel keeps in the image for `resume_from`: older ones are dropped
    /// (a client that comes back later gets `error resume_expired` and the live stream).
    pub const RETAINED_EVENTS: u64 = 10_000;
    /// How long a new connection may take to say `hello`.
    pub const HELLO_TIMEOUT_MS: u64 = 10_000;
    /// How long a stopping kernel waits for requests in flight before failing them.
    pub const STOP_DEADLINE_MS: u64 = 10_000;
}
