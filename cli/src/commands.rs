//! What each command does, on an open image (or, for `model`, on the models folder).

use std::sync::Arc;

use batos::image::json;
use batos::model::{import, pull};
use batos::sandbox::{plugin, watch, Sandbox};
use batos::{Runtime, TxId, Value};
use serde_json::json;

use crate::args::{Command, MessageArgs, ModelCommand, PluginCommand};
use crate::output::{self, bad_input, Failure, Output};
use crate::synthesis;

pub fn watch_forever(
    rt: Runtime,
    sandbox: Arc<Sandbox>,
    json_mode: bool,
) -> Result<Output, Failure> {
    let rt = Arc::new(rt);
    let dir = rt.image().path().join("plugins");
    eprintln!("watching {} for plugins (Ctrl-C to stop)", dir.display());
    let _folder =
        watch::DropFolder::watch(rt.clone(), sandbox.clone(), &dir, move |report| match report {
            Ok(r) if json_mode => println!("{}", output::sync_output(&r).json),
            Ok(r) if r != watch::SyncReport::default() => {
                println!("{}", output::sync_output(&r).text)
            }
            Ok(_) => {}
            Err(e) => eprintln!("error: {e}"),
        })?;
    loop {
        std::thread::park();
        let _ = sandbox.flush_stats(rt.image());
    }
}

pub fn dispatch(
    command: Command,
    rt: &Arc<Runtime>,
    sandbox: &Arc<Sandbox>,
    json_mode: bool,
) -> Result<Output, Failure> {
    match command {
        Command::Awaken => output::awaken(rt),
        Command::Inspect { obj, at } => output::inspect(rt, &obj, at.map(TxId)),
        Command::Send(message) => {
            let request = request(rt, &message)?;
            let value = synthesis::send(rt, sandbox, &request, !message.no_synthesis, !json_mode)?;
            Ok(output::value_output(&value, rt.image().last_tx()))
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
            Ok(output::value_output(&value, committed.tx))
        }
        Command::Clone { obj, name } => {
            let original = rt.resolve(&obj)?;
            let clone = rt.clone_object(original, name.as_deref())?;
            Ok(Output { text: clone.to_string(), json: json!({ "oid": clone.0 }) })
        }
        Command::History { limit } => output::history(rt, limit),
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

pub fn model_command(command: ModelCommand) -> Result<Output, Failure> {
    let dir = pull::models_dir();
    let pull_failure = |e: pull::PullError| {
        let what = matches!(e, pull::PullError::UnknownModel(_)).then_some("model");
        Failure { kind: e.kind(), what, message: e.to_string(), grants: vec![] }
    };
    match command {
        ModelCommand::Pull { name } => {
            let name = name.unwrap_or_else(|| pull::CATALOGUE[0].name.to_owned());
            let model = pull::pull(&name, &dir, &mut Bars(None)).map_err(pull_failure)?;
            Ok(output::imported_output(&model))
        }
        ModelCommand::Import { file } => {
            let model = import::import(&file, &dir, &mut Bars(None)).map_err(|e| Failure {
                kind: e.kind(),
                what: None,
                message: e.to_string(),
                grants: vec![],
            })?;
            Ok(output::imported_output(&model))
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
                json: output::installed_json(&p),
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
            Ok(Output {
                text,
                json: json!(all.iter().map(output::installed_json).collect::<Vec<_>>()),
            })
        }
        PluginCommand::Remove { name } => {
            let p = plugin::remove(rt, &name)?;
            Ok(Output {
                text: format!("removed {} (`{}` on {})", p.name, p.selector, p.target),
                json: output::installed_json(&p),
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
        PluginCommand::Sync => Ok(output::sync_output(&watch::sync(rt, sandbox, &drop_in)?)),
        PluginCommand::Watch => {
            Err(bad_input("`plugin watch` runs only as the top-level command".into()))
        }
    }
}

pub fn parse_value(rt: &Runtime, text: &str) -> Result<Value, Failure> {
    json::parse(text, &mut |name| rt.resolve(name).map_err(|e| e.to_string())).map_err(bad_input)
}

/// The synthesis request a message asks for: arguments parsed as JSON (objects by root
/// name or oid), the flags' texts unquoted when the session kept their quotes.
pub fn request(rt: &Runtime, message: &MessageArgs) -> Result<batos::synthesis::Request, Failure> {
    let receiver = rt.resolve(&message.obj)?;
    let args = message.args.iter().map(|a| parse_value(rt, a)).collect::<Result<Vec<_>, _>>()?;
    let examples: Vec<String> = message.examples.iter().map(|e| unquote(e)).collect();
    synthesis::request(
        receiver,
        &message.selector,
        args,
        message.brief.as_deref().map(unquote),
        &examples,
        message.stateful,
        message.wat,
    )
    .map(|mut request| {
        request.grants = message.grants.iter().map(|g| unquote(g)).collect();
        request
    })
    .map_err(bad_input)
}

/// A flag's text without the quotes a session line keeps (`"5 => 120"` → `5 => 120`);
/// unquoted text, as a shell passes it, is left as it is.
pub fn unquote(text: &str) -> String {
    match serde_json::from_str::<String>(text) {
        Ok(s) if text.starts_with('"') => s,
        _ => text.to_owned(),
    }
}
