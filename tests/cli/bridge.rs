//! `batos serve` as a real process: the command line becomes its client, a SIGTERM
//! under load stops it cleanly (exit 0, `kernel.json` gone, every acknowledged write
//! kept), and a `kill -9` under load loses no acknowledged write either.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;

use batos_client::{Client, ConnectOptions};
use batos_protocol::{Event, Format, KernelInfo, Request, ServerMessage, KERNEL_FILE};
use serde_json::{json, Value as Json};

use super::commands::{err_json, ok_json};

/// A `batos serve` process on a free port, and what its `kernel.json` says.
pub struct Kernel {
    child: Child,
    info: KernelInfo,
}

impl Kernel {
    /// Serves `image` (creating it), once it listens.
    pub fn start(image: &Path) -> Kernel {
        Kernel::start_with(image, &[])
    }

    /// [`Kernel::start`] with these environment variables.
    pub fn start_with(image: &Path, env: &[(&str, &Path)]) -> Kernel {
        Kernel::start_on(image, "127.0.0.1:0", env)
    }

    /// [`Kernel::start_with`] listening on `listen` (to come back on the same address).
    pub fn start_on(image: &Path, listen: &str, env: &[(&str, &Path)]) -> Kernel {
        let mut child = Command::new(env!("CARGO_BIN_EXE_batos"))
            .arg("--json")
            .arg("--image")
            .arg(image)
            .args(["serve", "--listen", listen])
            .env_remove("BATOS_IMAGE")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("batos serve starts");
        // The kernel prints one line once it listens (and kernel.json is written).
        let stdout = child.stdout.take().expect("piped");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("a line");
        let said: Json = serde_json::from_str(&line).expect("the listening line is JSON");
        let info = batos_protocol::read_kernel_info(image).expect("kernel.json names the kernel");
        assert_eq!(said["listening"], json!(info.address));
        assert_eq!(said["ui"], json!(info.login_url()));
        assert_eq!(said["pid"], json!(child.id()));
        Kernel { child, info }
    }

    /// What its `kernel.json` says.
    pub fn info(&self) -> &KernelInfo {
        &self.info
    }

    /// Stops it with SIGTERM (its clean stop) and waits for it to exit.
    pub fn stop(mut self) -> std::process::ExitStatus {
        self.signal("-TERM");
        self.child.wait().expect("the kernel exits")
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }
}

impl Drop for Kernel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client(info: &KernelInfo) -> Client {
    let options = ConnectOptions { format: Format::Msgpack, ..Default::default() };
    Client::connect(info, options).expect("connects")
}

#[test]
fn commands_become_clients_of_the_kernel_serving_the_image() {
    let dir = tempfile::tempdir().expect("tempdir");
    let image = dir.path().join("image");
    ok_json(&image, &["awaken"]);
    let kernel = Kernel::start(&image);
    let mut watcher = client(&kernel.info);

    // The kernel holds the image's lock, so these can only work through it.
    ok_json(&image, &["clone", "genesis", "--name", "acct"]);
    ok_json(&image, &["set", "acct", "balance", "41"]);
    let sent = ok_json(&image, &["send", "acct", "balance"]);
    assert_eq!(sent["result"], 41);
    assert_eq!(ok_json(&image, &["inspect", "acct"])["slots"]["balance"], 41);

    // A watching client saw the command's transactions, each linked to its request.
    let mut set_by_cli = None;
    while set_by_cli.is_none() {
        if let ServerMessage::Event {
            cause, event: Event::Transaction { description, .. }, ..
        } = watcher.next_message().expect("events")
        {
            if description.starts_with("set ") {
                set_by_cli = Some(cause);
            }
        }
    }
    assert!(matches!(set_by_cli, Some(Some(_))), "the set names the request that caused it");

    // A bad request is refused by the kernel with the same error kinds as ever.
    assert_eq!(err_json(&image, &["inspect", "nobody"])["error"]["kind"], "not_found");
}

/// Writers that each set their own slot to 1, 2, 3… until the kernel goes away; each
/// tells `acked` of every write the kernel acknowledged, and answers its last.
fn writers(info: &KernelInfo, count: usize, acked: mpsc::Sender<()>) -> Vec<JoinHandle<i64>> {
    (0..count)
        .map(|w| {
            let info = info.clone();
            let acked = acked.clone();
            std::thread::spawn(move || {
                let mut client = client(&info);
                let mut last = 0;
                for i in 1.. {
                    let request = Request::Set {
                        object: "genesis".into(),
                        slot: format!("w{w}"),
                        value: json!(i),
                    };
                    match client.request(request, &mut |_| {}) {
                        Ok(Ok(_)) => {
                            last = i;
                            let _ = acked.send(());
                        }
                        // Refused (`stopping`) or disconnected: the kernel is going.
                        Ok(Err(_)) | Err(_) => break,
                    }
                }
                last
            })
        })
        .collect()
}

/// Loads `kernel` with four writers, signals it after 200 acknowledged writes, and
/// answers each writer's last acknowledged value and how the kernel exited.
fn load_then_signal(kernel: &mut Kernel, signal: &str) -> (Vec<i64>, std::process::ExitStatus) {
    let (acked, acks) = mpsc::channel();
    let workers = writers(&kernel.info, 4, acked);
    for _ in 0..200 {
        acks.recv().expect("writers acknowledged");
    }
    kernel.signal(signal);
    let status = kernel.child.wait().expect("the kernel exits");
    let last = workers.into_iter().map(|w| w.join().expect("a writer")).collect();
    (last, status)
}

fn assert_kept(image: &Path, last: &[i64]) {
    let slots = ok_json(image, &["inspect", "genesis"])["slots"].clone();
    for (w, acked) in last.iter().enumerate() {
        let kept = slots[format!("w{w}")].as_i64().unwrap_or(0);
        assert!(kept >= *acked, "writer {w}: acknowledged {acked} but the image has {kept}");
        // At most the one write in flight when the kernel went.
        assert!(kept <= acked + 1, "writer {w}: {kept} was never sent after {acked}");
    }
}

#[test]
fn sigterm_under_load_exits_zero_and_keeps_every_acknowledged_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let image = dir.path().join("image");
    ok_json(&image, &["awaken"]);
    let mut kernel = Kernel::start(&image);
    // A watcher reads events until the kernel closes its connection.
    let watcher = {
        let mut client = client(&kernel.info);
        std::thread::spawn(move || loop {
            match client.next_message() {
                Ok(_) => {}
                Err(batos_client::ClientError::Closed { code, .. }) => {
                    return (code, client.last_seq())
                }
                Err(e) => panic!("the watcher: {e}"),
            }
        })
    };
    let (last, status) = load_then_signal(&mut kernel, "-TERM");
    assert!(status.success(), "a SIGTERM is a clean stop: {status:?}");
    assert!(!image.join(KERNEL_FILE).exists(), "kernel.json goes with the kernel");
    assert!(last.iter().sum::<i64>() >= 200);
    let (code, seen) = watcher.join().expect("the watcher");
    assert_eq!(code, batos_protocol::close::RESTARTING, "clients are told to come back");
    assert_kept(&image, &last);

    // The watcher comes back to the next kernel and misses nothing: the events after
    // the last it saw, then the live stream, with seq continuing.
    let next = Kernel::start(&image);
    let mut writer = client(&next.info);
    writer
        .request(
            Request::Set { object: "genesis".into(), slot: "after".into(), value: json!(true) },
            &mut |_| {},
        )
        .expect("connected")
        .expect("set");
    let options =
        ConnectOptions { format: Format::Json, resume_from: Some(seen), ..Default::default() };
    let mut back = Client::connect(&next.info, options).expect("resumes");
    let mut seqs = Vec::new();
    loop {
        if let ServerMessage::Event { seq, event, .. } = back.next_message().expect("events") {
            seqs.push(seq);
            if let Event::Transaction { changes, .. } = event {
                if changes.values().any(|slots| slots.iter().any(|s| s == "after")) {
                    break;
                }
            }
        }
    }
    assert_eq!(seqs.first(), Some(&(seen + 1)), "resumes right after the last event seen");
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "no gap, no repeat: {seqs:?}");
}

#[test]
fn kill_nine_under_load_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let image = dir.path().join("image");
    ok_json(&image, &["awaken"]);
    let (last, status) = load_then_signal(&mut Kernel::start(&image), "-KILL");
    assert!(!status.success());
    // The dead kernel's kernel.json is left behind; commands see it is stale.
    assert!(image.join(KERNEL_FILE).exists());
    assert_kept(&image, &last);
    // And a new kernel serves the image again.
    let _again = Kernel::start(&image);
}
