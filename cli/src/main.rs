//! `batos`: the command-line face of the living image.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use batos::sandbox::{Limits, Sandbox};
use batos::{Durability, ImageOptions, Runtime};
use clap::Parser;
use serde_json::json;

mod args;
mod commands;
mod minds;
mod output;
#[path = "cli/session.rs"]
mod session;
#[path = "cli/synthesis.rs"]
mod synthesis;

use args::{Cli, Command, PluginCommand};
use commands::{dispatch, model_command, watch_forever};
use output::{Failure, Output};

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
                    "warn,batos_mind=info,batos_model=info".into()
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
    let rt = minds::minds()
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
