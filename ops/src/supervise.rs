//! `batos up`: the supervisor. The process is disposable, the image is the identity:
//! a kernel that dies is started again, after a pause that doubles while it keeps
//! dying young, and one that hands over to a new binary (`batos upgrade`) is followed.
//!
//! The supervisor is a child subreaper (Linux `PR_SET_CHILD_SUBREAPER`): the successor
//! an upgrading kernel starts becomes the supervisor's own child when the old kernel
//! exits, so the supervisor waits on it, stops it and restarts it like the first.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use batos_kernel::upgrade::{EXIT_UPGRADED, TAKEOVER_PATIENCE};
use batos_kernel::{bad_input, Failure};
use batos_protocol::Output;
use serde_json::json;

/// The first pause before a restart.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// The longest pause: a kernel that cannot start is retried twice a minute, not
/// hammered.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A kernel that ran this long died of something else than its start: the pause
/// starts again from [`FIRST_BACKOFF`].
pub const HEALTHY_AFTER: Duration = Duration::from_secs(60);

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// What to supervise.
#[derive(Clone, Debug)]
pub struct Supervised {
    /// The image folder.
    pub image: PathBuf,
    /// The `batos` binary to start.
    pub binary: PathBuf,
    /// Arguments before `serve` (`--image DIR`, `--durable`).
    pub global: Vec<String>,
    /// Arguments after `serve`.
    pub serve: Vec<String>,
}

fn io(what: &str, e: std::io::Error) -> Failure {
    Failure(batos_protocol::ErrorBody::new("io", format!("{what}: {e}")))
}

/// Supervises until SIGTERM or Ctrl-C, which it passes on to the kernel before it
/// exits. Answers how many times the kernel was restarted.
pub fn up(what: Supervised) -> Result<Output, Failure> {
    // SAFETY: prctl and sigaction with a handler that only stores an atomic.
    unsafe {
        if libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0 {
            return Err(io("cannot become a subreaper", std::io::Error::last_os_error()));
        }
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_stop as extern "C" fn(libc::c_int) as usize;
        // No SA_RESTART: a signal interrupts the wait, so it is seen at once.
        action.sa_flags = 0;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGTERM, &action, std::ptr::null_mut());
        libc::sigaction(libc::SIGINT, &action, std::ptr::null_mut());
    }
    let log_path = what.image.join("kernel.log");
    std::fs::create_dir_all(&what.image).map_err(|e| io("cannot make the image folder", e))?;
    let mut binary = what.binary.clone();
    let mut backoff = FIRST_BACKOFF;
    let mut restarts = 0u64;
    let say = |line: &str| {
        eprintln!("batos up: {line}");
        if let Ok(mut log) = OpenOptions::new().create(true).append(true).open(&log_path) {
            use std::io::Write;
            let _ = writeln!(log, "batos up: {line}");
        }
    };
    'supervise: loop {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| io(&format!("cannot open {}", log_path.display()), e))?;
        let err = log.try_clone().map_err(|e| io("cannot share the log", e))?;
        let child = Command::new(&binary)
            .args(&what.global)
            .arg("serve")
            .args(&what.serve)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| io(&format!("cannot start {}", binary.display()), e))?;
        let mut kernel = child.id() as libc::pid_t;
        // The std handle is not waited on: the loop below reaps every child.
        std::mem::forget(child);
        say(&format!("kernel pid {kernel} started ({})", binary.display()));
        let mut started = Instant::now();
        let mut stopping = false;
        loop {
            if STOP.load(Ordering::SeqCst) && !stopping {
                stopping = true;
                let pid = current_kernel(&what.image).unwrap_or(kernel);
                say(&format!("stopping kernel pid {pid}"));
                // SAFETY: a signal to a process id we started or adopted.
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
            let mut status: libc::c_int = 0;
            // SAFETY: waitpid on any child; status is a valid out-pointer.
            let pid = unsafe { libc::waitpid(-1, &mut status, 0) };
            if pid < 0 {
                let e = std::io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                // No child at all: the kernel is gone without our noticing (cannot
                // happen while we are its reaper); start one.
                break;
            }
            if pid != kernel {
                continue; // an orphan of the kernel's, reaped
            }
            let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
            if code == Some(EXIT_UPGRADED) {
                match successor(&what.image, kernel) {
                    Some((next, exe)) => {
                        say(&format!(
                            "kernel pid {kernel} handed over to pid {next} ({})",
                            exe.display()
                        ));
                        kernel = next;
                        binary = exe;
                        started = Instant::now();
                        continue;
                    }
                    None => {
                        say(&format!("kernel pid {kernel} handed over, but no successor took over"))
                    }
                }
            }
            if stopping || STOP.load(Ordering::SeqCst) {
                say(&format!("kernel pid {kernel} stopped ({})", describe(status)));
                break 'supervise;
            }
            if started.elapsed() >= HEALTHY_AFTER {
                backoff = FIRST_BACKOFF;
            }
            say(&format!(
                "kernel pid {kernel} died ({}); restarting in {:.1} s",
                describe(status),
                backoff.as_secs_f64()
            ));
            let until = Instant::now() + backoff;
            while Instant::now() < until {
                if STOP.load(Ordering::SeqCst) {
                    break 'supervise;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
            restarts += 1;
            continue 'supervise;
        }
        // Only reached when waitpid found no child: start again.
        restarts += 1;
    }
    Ok(Output {
        text: format!("stopped after {restarts} restart(s)"),
        json: json!({ "stopped": true, "restarts": restarts }),
    })
}

fn describe(status: libc::c_int) -> String {
    if libc::WIFEXITED(status) {
        format!("exit status {}", libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        format!("signal {}", libc::WTERMSIG(status))
    } else {
        format!("status {status}")
    }
}

/// The pid serving the image now, from its `kernel.json`.
fn current_kernel(image: &Path) -> Option<libc::pid_t> {
    batos_protocol::read_kernel_info(image).map(|info| info.pid as libc::pid_t)
}

/// Waits for the kernel that replaced `old` to announce itself; answers its pid and
/// executable.
fn successor(image: &Path, old: libc::pid_t) -> Option<(libc::pid_t, PathBuf)> {
    let deadline = Instant::now() + TAKEOVER_PATIENCE;
    while Instant::now() < deadline {
        if let Some(pid) = current_kernel(image).filter(|p| *p != old) {
            let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok()?;
            return Some((pid, exe));
        }
        if STOP.load(Ordering::SeqCst) {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// The supervised command line for `batos up` run as `binary` on `image`.
pub fn supervised(image: &Path, durable: bool, serve: Vec<String>) -> Result<Supervised, Failure> {
    let binary =
        std::env::current_exe().map_err(|e| bad_input(format!("cannot find this binary: {e}")))?;
    let mut global = vec!["--image".to_owned(), image.display().to_string()];
    if durable {
        global.push("--durable".to_owned());
    }
    Ok(Supervised { image: image.to_path_buf(), binary, global, serve })
}
