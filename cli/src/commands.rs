//! Commands into requests: each command of the command line becomes the
//! `batos_protocol::Request` the kernel executes (ours or the one serving the image).
//! The models folder is not an image's: `model` commands run here.

use std::sync::Arc;

use batos::model::{import, pull};
use batos::sandbox::{plugin, watch, Sandbox};
use batos_kernel::{bad_input, render, Failure, Kernel};
use batos_protocol::{Bytes, ErrorBody, Output, Request};

use crate::args::{Command, MessageArgs, ModelCommand, PluginCommand};
use crate::backend::Backend;

/// Runs a command of the image through `backend`.
pub fn dispatch(
    command: Command,
    backend: &mut Backend,
    json_mode: bool,
) -> Result<Output, Failure> {
    let live = !json_mode;
    let request = match command {
        Command::Awaken => Request::Awaken,
        Command::Inspect { obj, at } => Request::Inspect { object: obj, at },
        Command::Send(message) => send_request(&message)?,
        Command::Cycles => Request::Cycles,
        Command::Cycle { id } => Request::Cycle { id },
        Command::Objects => Request::Objects,
        Command::Resolve { object, selector } => Request::Resolve { object, selector },
        Command::Journal { limit } => Request::Journal { limit },
        Command::Jobs { id, limit } => Request::Jobs { limit: Some(limit), job: id },
        Command::Upgrade { binary } => Request::Upgrade {
            binary: std::fs::canonicalize(&binary)
                .map_err(|e| {
                    bad_input(format!("{} cannot be the new kernel: {e}", binary.display()))
                })?
                .display()
                .to_string(),
        },
        Command::Session
        | Command::Serve { .. }
        | Command::Up { .. }
        | Command::Worker { .. }
        | Command::Model(_) => return Err(bad_input("this command is not run through the kernel")),
        Command::Set { obj, slot, value } => {
            Request::Set { object: obj, slot, value: parse_json(&value)? }
        }
        Command::Clone { obj, name } => Request::Clone { object: obj, name },
        Command::History { limit } => Request::History { limit },
        Command::Undo { tx } => Request::Undo { tx },
        Command::Pack { drop_history_before } => Request::Pack { drop_history_before },
        // The kernel reads the files, so it gets canonical paths (a document is known by
        // one name however it was reached); one that does not exist is refused here,
        // before anything is ingested.
        Command::Ingest { paths } => Request::Ingest {
            paths: paths
                .iter()
                .map(|p| {
                    std::fs::canonicalize(p).ok().map(|a| a.display().to_string()).ok_or_else(
                        || {
                            bad_input(format!(
                                "{} does not exist; name files or folders to ingest",
                                p.display()
                            ))
                        },
                    )
                })
                .collect::<Result<_, _>>()?,
        },
        Command::Compress => Request::Compress,
        Command::Chat { question, persona } => Request::Chat { question, persona },
        Command::Cem { limit } => Request::Cem { limit: Some(limit) },
        Command::Search { query, k, words, meaning } => {
            Request::Search { query, limit: Some(k), words: Some(words), meaning: Some(meaning) }
        }
        Command::Plugin(command) => match command {
            PluginCommand::Add { path } => plugin_add(&path)?,
            PluginCommand::List => Request::PluginList,
            PluginCommand::Remove { name } => Request::PluginRemove { name },
            PluginCommand::Stats => Request::PluginStats,
            PluginCommand::Sync => Request::PluginSync,
            PluginCommand::Watch => {
                return Err(bad_input("`plugin watch` runs only as the top-level command"))
            }
        },
    };
    backend.execute(request, live)
}

/// `plugin add PATH`: the plugin is built here, with the person's privileges (a crate
/// runs its build script), and sent to the kernel as bytes to audit and install.
fn plugin_add(path: &std::path::Path) -> Result<Request, Failure> {
    let built = plugin::build(path)?;
    let manifest_path =
        if path.is_dir() { path.join("plugin.toml") } else { path.with_extension("toml") };
    let manifest = std::fs::read_to_string(&manifest_path).map_err(|e| {
        bad_input(format!("cannot read the manifest {}: {e}", manifest_path.display()))
    })?;
    let file = match path.extension().and_then(|e| e.to_str()) {
        Some("wat") => format!("{}.wat", built.name),
        _ => format!("{}.wasm", built.name),
    };
    // WAT travels as its text (the kernel compiles it), anything else as the component.
    let component = match path.extension().and_then(|e| e.to_str()) {
        Some("wat") => built.source.clone().unwrap_or_default(),
        _ => built.component.clone(),
    };
    Ok(Request::PluginAdd {
        file,
        component: Bytes(component),
        manifest,
        source: built.source.map(Bytes),
        origin: Some(path.display().to_string()),
    })
}

/// A message's request: arguments as JSON values (objects by root name or oid), the
/// flags' texts unquoted when the session kept their quotes.
pub fn send_request(message: &MessageArgs) -> Result<Request, Failure> {
    let args = message.args.iter().map(|a| parse_json(a)).collect::<Result<Vec<_>, _>>()?;
    let examples: Vec<String> = message.examples.iter().map(|e| unquote(e)).collect();
    for e in &examples {
        batos::synthesis::Example::parse(e).map_err(bad_input)?;
    }
    if message.job {
        return Ok(Request::Enqueue {
            object: message.obj.clone(),
            selector: message.selector.clone(),
            args,
            brief: message.brief.as_deref().map(unquote),
            examples,
            stateful: message.stateful,
            grants: message.grants.iter().map(|g| unquote(g)).collect(),
            wat: message.wat,
        });
    }
    Ok(Request::Send {
        object: message.obj.clone(),
        selector: message.selector.clone(),
        args,
        brief: message.brief.as_deref().map(unquote),
        examples,
        stateful: message.stateful,
        grants: message.grants.iter().map(|g| unquote(g)).collect(),
        wat: message.wat,
        no_synthesis: message.no_synthesis,
    })
}

/// A JSON argument, with an error that says what to write instead.
pub fn parse_json(text: &str) -> Result<serde_json::Value, Failure> {
    serde_json::from_str(text).map_err(|e| {
        bad_input(format!("`{text}` is not JSON ({e}); write text in double quotes (e.g. '\"hello\"'), numbers, true/false/null, [lists] or {{maps}}"))
    })
}

/// A flag's text without the quotes a session line keeps (`"5 => 120"` → `5 => 120`);
/// unquoted text, as a shell passes it, is left as it is.
pub fn unquote(text: &str) -> String {
    match serde_json::from_str::<String>(text) {
        Ok(s) if text.starts_with('"') => s,
        _ => text.to_owned(),
    }
}

/// `plugin watch`: keeps the drop-in folder in sync until interrupted.
pub fn watch_forever(kernel: Arc<Kernel>, json_mode: bool) -> Result<Output, Failure> {
    let rt = kernel.runtime().clone();
    let sandbox: Arc<Sandbox> = kernel.sandbox().clone();
    let dir = rt.image().path().join("plugins");
    eprintln!("watching {} for plugins (Ctrl-C to stop)", dir.display());
    let _folder =
        watch::DropFolder::watch(rt.clone(), sandbox.clone(), &dir, move |report| match report {
            Ok(r) if json_mode => println!("{}", render::sync_output(&r).json),
            Ok(r) if r != watch::SyncReport::default() => {
                println!("{}", render::sync_output(&r).text)
            }
            Ok(_) => {}
            Err(e) => eprintln!("error: {e}"),
        })?;
    loop {
        std::thread::park();
        kernel.flush();
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

/// `model pull`, `model import`, `model list`: the models folder, no image.
pub fn model_command(command: ModelCommand) -> Result<Output, Failure> {
    let dir = pull::models_dir();
    let pull_failure = |e: pull::PullError| {
        let what = matches!(e, pull::PullError::UnknownModel(_)).then(|| "model".to_owned());
        Failure(ErrorBody {
            kind: e.kind().to_owned(),
            what,
            message: e.to_string(),
            grants: vec![],
        })
    };
    match command {
        ModelCommand::Pull { name } => {
            let name = name.unwrap_or_else(|| pull::CATALOGUE[0].name.to_owned());
            let model = pull::pull(&name, &dir, &mut Bars(None)).map_err(pull_failure)?;
            Ok(render::imported_output(&model))
        }
        ModelCommand::Import { file } => {
            let model = import::import(&file, &dir, &mut Bars(None))
                .map_err(|e| Failure(ErrorBody::new(e.kind(), e.to_string())))?;
            Ok(render::imported_output(&model))
        }
        ModelCommand::List => Ok(render::model_list()),
    }
}
