//! Where the command line's requests go: to the kernel serving the image (found
//! through `<image>/kernel.json`), or to a kernel of this process that opens the image
//! itself. Both execute the same `batos_protocol::Request` and answer the same output,
//! so a command prints the same either way.

use std::path::Path;
use std::sync::Arc;

use batos::ImageOptions;
use batos_client::{Client, ClientError, ConnectOptions};
use batos_kernel::{Failure, Kernel};
use batos_protocol::{ErrorBody, Event, Format, Output, Request, ServerMessage};

/// The kernel the command line talks to.
pub enum Backend {
    /// This process holds the image.
    Local(Arc<Kernel>),
    /// A kernel serves the image; this process is its client.
    Remote(Box<Client>),
}

fn client_failure(e: ClientError) -> Failure {
    Failure(ErrorBody::new("kernel", e.to_string()))
}

impl Backend {
    /// Connects to the kernel serving `dir`, or opens the image when none does.
    pub fn open(dir: &Path, options: ImageOptions) -> Result<Backend, Failure> {
        if let Some(info) = batos_protocol::read_kernel_info(dir) {
            let connect = ConnectOptions {
                format: Format::Msgpack,
                client: format!("batos-cli {}", env!("CARGO_PKG_VERSION")),
                resume_from: None,
            };
            return match Client::connect(&info, connect) {
                Ok(client) => Ok(Backend::Remote(Box::new(client))),
                Err(e) => Err(Failure(ErrorBody::new(
                    "kernel",
                    format!(
                        "a kernel (pid {}) serves {} at {}, but {e}; stop it, or remove {} if it is gone",
                        info.pid,
                        dir.display(),
                        info.address,
                        dir.join(batos_protocol::KERNEL_FILE).display()
                    ),
                ))),
            };
        }
        Ok(Backend::Local(Arc::new(Kernel::open(dir, options)?)))
    }

    /// Whether a kernel serves the image.
    pub fn remote(&self) -> bool {
        matches!(self, Backend::Remote(_))
    }

    /// Executes `request`; with `live`, the cycle lines it causes go to stderr as
    /// they happen.
    pub fn execute(&mut self, request: Request, live: bool) -> Result<Output, Failure> {
        match self {
            Backend::Local(kernel) => {
                if !live {
                    return kernel.execute(request, None);
                }
                // Our own subscription, read by a printer thread while the request runs.
                // The queue ends once the log lets go of it and its own sender is dropped.
                let batos_kernel::events::Subscription { id, mut queue, sender, .. } =
                    kernel.events().subscribe(None);
                drop(sender);
                let printer = std::thread::spawn(move || {
                    while let Some(out) = queue.blocking_recv() {
                        if let batos_kernel::events::Outgoing::Event(stored) = out {
                            show(&stored.event);
                        }
                    }
                });
                let result = kernel.execute(request, None);
                kernel.events().unsubscribe(id);
                let _ = printer.join();
                result
            }
            Backend::Remote(client) => {
                let answer = client
                    .request(request, &mut |m| {
                        if let (true, ServerMessage::Event { event, .. }) = (live, m) {
                            show(event);
                        }
                    })
                    .map_err(client_failure)?;
                answer.map_err(Failure)
            }
        }
    }
}

/// Prints a cycle event's line on stderr, and moves the ingest's progress bar.
fn show(event: &Event) {
    match event {
        // The mind's text as it is written is for a page to stream; a terminal shows the
        // cycle's steps.
        Event::Cycle { line, phase, .. } if phase != "text" => eprintln!("{line}"),
        Event::Memory { outcome, detail, .. } if outcome == "concept" => {
            eprintln!("compress: {detail}")
        }
        Event::Memory { source, outcome, detail, done, total } => {
            ingest_progress(source, outcome, detail, *done, *total)
        }
        Event::Dialogue { persona, phase, text } => answering(persona, phase, text),
        Event::Heartbeat { beat, cem, detail, .. } => {
            eprintln!("heartbeat {beat}: CEM {cem:.3}; {detail}")
        }
        _ => {}
    }
}

/// A spinner on stderr while a persona answers, showing the end of what it has written;
/// cleared when its answer is whole (the reply prints the whole dialogue once).
fn answering(persona: &str, phase: &str, text: &str) {
    use indicatif::ProgressBar;
    static SPINNER: std::sync::Mutex<Option<(ProgressBar, String)>> = std::sync::Mutex::new(None);
    let mut held = SPINNER.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if phase == "turn" {
        if let Some((bar, _)) = held.take() {
            bar.finish_and_clear();
        }
        return;
    }
    let (bar, written) = held.get_or_insert_with(|| {
        let bar = ProgressBar::new_spinner();
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        (bar, String::new())
    });
    written.push_str(text);
    let tail: String =
        written.chars().rev().take(60).collect::<Vec<_>>().into_iter().rev().collect();
    bar.set_message(format!(
        "{} is answering: {}",
        persona.to_uppercase(),
        tail.replace('\n', " ")
    ));
}

/// One bar per ingest, on stderr: files done of all, the file last finished; skipped
/// files are printed above it with their reason.
fn ingest_progress(source: &str, outcome: &str, detail: &str, done: u64, total: u64) {
    use indicatif::{ProgressBar, ProgressStyle};
    static BAR: std::sync::Mutex<Option<ProgressBar>> = std::sync::Mutex::new(None);
    let mut held = BAR.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let bar = held.get_or_insert_with(|| {
        let bar = ProgressBar::new(total);
        if let Ok(style) = ProgressStyle::with_template("ingest [{bar:30}] {pos}/{len} {wide_msg}")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar
    });
    if outcome == "skipped" {
        bar.println(format!("skipped {source}: {detail}"));
    }
    bar.set_length(total);
    bar.set_position(done);
    bar.set_message(source.rsplit('/').next().unwrap_or(source).to_owned());
    if done >= total {
        bar.finish_and_clear();
        *held = None;
    }
}
