//! `batos`: the command-line face of the living image.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use batos::{Durability, ImageOptions};
use clap::Parser;
use serde_json::json;

mod args;
mod backend;
mod commands;
#[path = "cli/session.rs"]
mod session;

use args::{Cli, Command, PluginCommand};
use backend::Backend;
use batos_kernel::{Failure, Kernel};
use batos_protocol::Output;
use commands::{dispatch, model_command, watch_forever};

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            // Warnings, and (for people, not scripts reading JSON) which model and
            // execution provider the mind runs on, and where the kernel listens.
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                if cli.json {
                    "warn".into()
                } else {
                    "warn,batos_mind=info,batos_model=info,batos_kernel=info".into()
                }
            }),
        )
        .with_writer(std::io::stderr)
        .init();
    let json_mode = cli.json;
    match run(cli) {
        Ok(output) => {
            // A reader that went away (`batos serve | head -1`) is no failure of the
            // command: its work is done.
            let mut stdout = std::io::stdout();
            let _ = if json_mode {
                writeln!(stdout, "{}", output.json)
            } else if !output.text.is_empty() {
                writeln!(stdout, "{}", output.text)
            } else {
                Ok(())
            };
            ExitCode::SUCCESS
        }
        Err(Failure(f)) => {
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
    match cli.command {
        // Models live outside any image: no image is opened for these.
        Command::Model(command) => model_command(command),
        Command::Serve { listen, nats } => serve(&dir, options, listen, nats, cli.json),
        Command::Up { serve_args } => batos_ops::supervise::up(batos_ops::supervise::supervised(
            &dir,
            cli.durable,
            serve_args,
        )?),
        Command::Worker { nats, name } => batos_ops::worker::run(&nats, name),
        command => {
            let mut backend = Backend::open(&dir, options)?;
            match command {
                Command::Plugin(PluginCommand::Watch) => match &backend {
                    Backend::Local(kernel) => watch_forever(kernel.clone(), cli.json),
                    Backend::Remote(_) => Err(batos_kernel::bad_input(
                        "a kernel serves this image and already keeps its drop-in folder in sync",
                    )),
                },
                Command::Session => {
                    session::run(&mut backend, &dir)?;
                    Ok(Output { text: String::new(), json: json!(null) })
                }
                command => dispatch(command, &mut backend, cli.json),
            }
        }
    }
}

/// `batos serve`: a kernel on the bridge — or, started by `batos upgrade`, the
/// successor that checks, waits for the image and takes over the inherited socket.
fn serve(
    dir: &std::path::Path,
    options: ImageOptions,
    listen: std::net::SocketAddr,
    nats: Option<String>,
    json_mode: bool,
) -> Result<Output, Failure> {
    let mut takeover = batos_kernel::upgrade::Takeover::inherited()?;
    let kernel = match &mut takeover {
        Some(t) => {
            t.check(dir)?;
            t.take_over(|| Kernel::open(dir, options.clone()))?
        }
        None => Kernel::open(dir, options)?,
    };
    let kernel = std::sync::Arc::new(kernel);
    let serve = batos_kernel::ServeOptions {
        listen,
        inherited: takeover.map(|t| std::sync::Arc::new(t.listener)),
        upgrade_args: Some(std::env::args().skip(1).collect()),
        local_jobs: nats.is_none(),
        ..Default::default()
    };
    let _dispatcher =
        nats.map(|url| batos_ops::dispatch::start(kernel.clone(), &url)).transpose()?;
    let served = batos_kernel::serve(kernel, serve, |info| {
        // The one line a script or a person waits for (one that stopped reading does
        // not stop the kernel).
        let line = if json_mode {
            json!({
                "listening": info.address, "pid": info.pid, "url": info.url(),
                "ui": info.login_url(),
            })
            .to_string()
        } else {
            format!(
                "batos kernel serving {} at {}; open the UI at {}",
                dir.display(),
                info.url(),
                info.login_url()
            )
        };
        let _ = writeln!(std::io::stdout(), "{line}");
    })?;
    if let Some(pid) = served.successor {
        // The successor waits for this process to let go of the image: go at once.
        let _ = writeln!(std::io::stdout(), "handed over to pid {pid}");
        let _ = std::io::stdout().flush();
        std::process::exit(batos_kernel::upgrade::EXIT_UPGRADED);
    }
    Ok(Output {
        text: format!(
            "the kernel stopped ({} request(s) abandoned at the deadline)",
            served.abandoned
        ),
        json: json!({ "stopped": true, "abandoned": served.abandoned }),
    })
}
