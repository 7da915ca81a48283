//! Upgrading a serving kernel without refusing a connection (the seeds' Ship of
//! Theseus): the process is replaced, the image — the identity — stays.
//!
//! The sequence (ARCHITECTURE.md, "Upgrading a serving kernel", gives the guarantees):
//!
//! 1. An `upgrade` request names the new binary. The serving kernel starts it with the
//!    same command line, its listening socket as descriptor 3 (`BATOS_LISTEN_FD`) and
//!    one end of a socket pair as descriptor 4 (`BATOS_HANDOVER_FD`).
//! 2. The new binary checks, without opening the image (the old kernel holds its
//!    lock): the folder is a batos image, its format (`BATOS_IMAGE_FORMAT`) is one this
//!    build reads, it speaks the old kernel's protocol (`BATOS_PROTOCOL`), and its
//!    sandbox starts. It says `checked` on the pair, or `refused: REASON` and exits.
//! 3. Refused, silent past [`CHECK_DEADLINE`], or dead: the old kernel stops it and
//!    goes on serving (the rollback); the request is answered with why.
//! 4. Checked: the old kernel answers the request, says `go`, then stops as on SIGTERM
//!    — stops accepting, cancels cycles, lets requests in flight finish, closes every
//!    connection with `restarting` — and releases the image. Connections arriving
//!    meanwhile wait in the socket's backlog: the socket never closes.
//! 5. The new kernel waits for the image's lock, opens it, writes `kernel.json`, and
//!    accepts; clients reconnect with `resume_from`.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use batos_protocol::{ErrorBody, Output};
use serde_json::json;

use crate::{bad_input, Failure, Kernel};

/// The environment variable naming the inherited listening socket's descriptor.
pub const LISTEN_FD: &str = "BATOS_LISTEN_FD";
/// The environment variable naming the handover socket's descriptor.
pub const HANDOVER_FD: &str = "BATOS_HANDOVER_FD";
/// The image format the old kernel found, for the new binary to check.
pub const IMAGE_FORMAT: &str = "BATOS_IMAGE_FORMAT";
/// The protocol the old kernel speaks, for the new binary to check.
pub const PROTOCOL_VAR: &str = "BATOS_PROTOCOL";

/// How long a new binary may take to check: starting a process and its sandbox takes
/// well under a second; ten leave room for a loaded machine without leaving the old
/// kernel waiting on a hung binary for long.
pub const CHECK_DEADLINE: Duration = Duration::from_secs(10);

/// How long a new kernel waits for the old one to release the image: its drain
/// deadline plus time to flush and exit.
pub const TAKEOVER_PATIENCE: Duration = Duration::from_secs(60);

/// The exit status of a kernel that handed over to a new binary: not a failure, and
/// not a stop either — a supervisor (`batos up`) follows the new process.
pub const EXIT_UPGRADED: i32 = 75;

/// An `upgrade` request on its way to the serving loop, with where to answer.
pub struct Asked {
    /// The new binary.
    pub binary: PathBuf,
    /// The answer: the request's output or why the upgrade was refused.
    pub reply: std::sync::mpsc::Sender<Result<Output, Failure>>,
}

/// The `upgrade` request: hands it to the serving loop and waits for the new binary's
/// checks.
pub fn ask(kernel: &Kernel, binary: &str) -> Result<Output, Failure> {
    let binary = PathBuf::from(binary);
    let binary = binary.canonicalize().map_err(|e| {
        bad_input(format!("cannot use {} as the new kernel: {e}", binary.display()))
    })?;
    let sender = kernel
        .upgrades
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
        .ok_or_else(|| {
            bad_input("only a kernel started by `batos serve` can be upgraded, and this one is not serving")
        })?;
    let (reply, answer) = std::sync::mpsc::channel();
    sender
        .send(Asked { binary, reply })
        .map_err(|_| bad_input("the kernel is stopping; upgrade the one that replaces it"))?;
    answer
        .recv_timeout(CHECK_DEADLINE + Duration::from_secs(5))
        .map_err(|_| Failure(ErrorBody::new("failed", "the kernel did not answer the upgrade")))?
}

/// A new binary that passed its checks, waiting for `go`.
pub struct Successor {
    child: Child,
    handover: UnixStream,
}

impl Successor {
    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Tells it to take over as soon as the image is free. The process is left
    /// running: it outlives this one.
    pub fn go(mut self) {
        if let Err(e) = self.handover.write_all(b"go\n") {
            tracing::warn!(
                "cannot tell the new kernel to go ({e}); it takes over when this one exits"
            );
        }
    }
}

/// Starts `binary` with `args`, the listener and a handover socket, and waits for its
/// checks (steps 1–3 of the module's sequence). `Err` says why it was refused; the
/// process is gone then.
pub fn start_successor(
    binary: &Path,
    args: &[String],
    listener: RawFd,
    image_format: Option<u32>,
) -> Result<Successor, String> {
    let (ours, theirs) =
        UnixStream::pair().map_err(|e| format!("cannot make a socket pair: {e}"))?;
    let theirs_fd = theirs.as_raw_fd();
    let mut command = Command::new(binary);
    command
        .args(args)
        .env(LISTEN_FD, "3")
        .env(HANDOVER_FD, "4")
        .env(IMAGE_FORMAT, image_format.map(|f| f.to_string()).unwrap_or_default())
        .env(PROTOCOL_VAR, batos_protocol::PROTOCOL);
    // SAFETY: between fork and exec only async-signal-safe calls (dup2, fcntl) run, on
    // descriptors this process owns for the whole call.
    unsafe {
        command.pre_exec(move || {
            place(listener, 3)?;
            place(theirs_fd, 4)?;
            Ok(())
        });
    }
    let mut child =
        command.spawn().map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
    drop(theirs);
    let refuse = |child: &mut Child, why: String| {
        let _ = child.kill();
        let _ = child.wait();
        Err(why)
    };
    if let Err(e) = ours.set_read_timeout(Some(CHECK_DEADLINE)) {
        return refuse(&mut child, format!("cannot time the checks: {e}"));
    }
    let mut line = String::new();
    let read = BufReader::new(&ours).read_line(&mut line);
    match read {
        Ok(_) if line.trim() == "checked" => {
            let _ = ours.set_read_timeout(None);
            Ok(Successor { child, handover: ours })
        }
        Ok(0) => {
            let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
            Err(format!("{} ended before its checks ({status})", binary.display()))
        }
        Ok(_) => refuse(&mut child, format!("{} {}", binary.display(), line.trim())),
        Err(e) => {
            refuse(&mut child, format!("{} did not finish its checks: {e}", binary.display()))
        }
    }
}

/// Makes `fd` descriptor `target` of the new process, inherited across exec.
fn place(fd: RawFd, target: RawFd) -> std::io::Result<()> {
    // SAFETY: plain descriptor calls on descriptors owned by this (forked) process.
    unsafe {
        if fd == target {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                return Err(std::io::Error::last_os_error());
            }
        } else if libc::dup2(fd, target) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The handover of a kernel started by an upgrade: the inherited listener, and the
/// socket to the old kernel.
pub struct Takeover {
    /// The listening socket, already bound and listening.
    pub listener: std::net::TcpListener,
    handover: UnixStream,
}

impl Takeover {
    /// The handover this process was started for, if it was (`BATOS_LISTEN_FD` set).
    pub fn inherited() -> Result<Option<Takeover>, Failure> {
        let fd = |name: &str| -> Result<Option<RawFd>, Failure> {
            match std::env::var(name) {
                Ok(v) => v
                    .parse()
                    .map(Some)
                    .map_err(|_| bad_input(format!("{name} is not a descriptor: {v}"))),
                Err(_) => Ok(None),
            }
        };
        let (Some(listen), Some(handover)) = (fd(LISTEN_FD)?, fd(HANDOVER_FD)?) else {
            return Ok(None);
        };
        // Not for the kernels this one may start in turn.
        for name in [LISTEN_FD, HANDOVER_FD] {
            std::env::remove_var(name);
        }
        // SAFETY: the old kernel placed these descriptors for this process alone, and
        // nothing else in it uses them.
        let (listener, handover) = unsafe {
            (std::net::TcpListener::from_raw_fd(listen), UnixStream::from_raw_fd(handover))
        };
        Ok(Some(Takeover { listener, handover }))
    }

    /// Step 2: checks this build can serve `image`, and tells the old kernel.
    pub fn check(&mut self, image: &Path) -> Result<(), Failure> {
        let verdict = checks(image);
        let line = match &verdict {
            Ok(()) => "checked\n".to_owned(),
            Err(why) => format!("refused: {why}\n"),
        };
        self.handover.write_all(line.as_bytes()).map_err(|e| {
            Failure(ErrorBody::new("io", format!("cannot answer the old kernel: {e}")))
        })?;
        verdict.map_err(bad_input)
    }

    /// Step 5's start: waits for `go` (or for the old kernel to end), then for the
    /// image's lock, opening it with `open`.
    pub fn take_over<T>(
        &mut self,
        mut open: impl FnMut() -> Result<T, Failure>,
    ) -> Result<T, Failure> {
        let mut line = String::new();
        // `go`, or the end of the old process (its end of the pair closes): either way
        // the image is about to be free.
        let _ = BufReader::new(&self.handover).read_line(&mut line);
        let started = Instant::now();
        loop {
            match open() {
                Err(Failure(e))
                    if e.kind == "image_locked" && started.elapsed() < TAKEOVER_PATIENCE =>
                {
                    // The lock's own patience (half a second) paces this loop.
                }
                other => return other,
            }
        }
    }
}

fn checks(image: &Path) -> Result<(), String> {
    if !image.join("IMAGE").is_file() {
        return Err(format!("{} is not a batos image", image.display()));
    }
    if let Ok(found) = std::env::var(IMAGE_FORMAT) {
        if let Ok(found) = found.parse::<u32>() {
            if found > batos::image::FORMAT_VERSION {
                return Err(format!(
                    "the image is of format {found}; this build reads up to {}",
                    batos::image::FORMAT_VERSION
                ));
            }
        }
    }
    if let Ok(protocol) = std::env::var(PROTOCOL_VAR) {
        if protocol != batos_protocol::PROTOCOL {
            return Err(format!(
                "this build speaks {}, the serving kernel's clients speak {protocol}",
                batos_protocol::PROTOCOL
            ));
        }
    }
    batos::sandbox::Sandbox::new(batos::sandbox::Limits::default())
        .map_err(|e| format!("its sandbox does not start: {e}"))?;
    Ok(())
}

/// The answer to an upgrade request that the new binary accepted.
pub fn accepted(binary: &Path, pid: u32) -> Output {
    Output {
        text: format!("handing over to {} (pid {pid}); clients reconnect", binary.display()),
        json: json!({ "binary": binary.display().to_string(), "pid": pid }),
    }
}
