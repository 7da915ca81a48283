//! Operations, as a user runs them: `batos upgrade` under load, durable jobs (`send
//! --job`, `batos jobs`) through a kernel killed mid-job, and synthesis workers
//! (`batos worker`) over real NATS servers (Debian's `nats-server`, with JetStream) —
//! one server, then a three-node cluster — with workers, servers and the kernel killed
//! mid-run. The mind is a stand-in chat server (a test double) answering WAT.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::chat_stub::always_after_hangs;
use crate::elle::Outcome;
use crate::jepsen::{
    batos, binary_copy, check_history, client_loop, final_read, list_append_image, serving,
    Recorder,
};

/// A doubling `$invoke`, the stand-in mind's answer to every request.
const DOUBLE_WAT: &str = "```wat\n(func $invoke (param $receiver i32) (param $args i32) (param $nargs i32) (result i32)\n  (call $ok_int (i64.mul (call $arg_int (local.get $args) (local.get $nargs) (i32.const 0)) (i64.const 2))))\n```";

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn ok(image: &Path, args: &[&str]) -> serde_json::Value {
    let out = batos(image).arg("--json").args(args).output().expect("batos runs");
    assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON")
}

/// Kills a process group member and reaps it (ours) — or just kills (an orphan).
fn kill9(pid: u32) {
    let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
}

/// A kernel process started by the test, stopped when dropped.
struct Served {
    child: Child,
    image: PathBuf,
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(info) = batos_protocol::read_kernel_info(&self.image) {
            kill9(info.pid);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(image: &Path, dir: &Path, extra: &[&str]) -> Served {
    let child = batos(image)
        .env("BATOS_WORKSPACE", dir.join("ws"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("batos serve");
    Served { child, image: image.to_path_buf() }
}

/// `image`'s mind is the stand-in server at `base_url`.
fn thinking_with(image: &Path, base_url: &str) {
    for (slot, value) in [
        ("backend", "\"openai\"".to_owned()),
        ("model", "\"stub\"".to_owned()),
        ("baseUrl", format!("{base_url:?}")),
    ] {
        ok(image, &["set", "pLLM", slot, &value]);
    }
}

/// Waits (up to `patience`) until job `id` is final; answers it.
fn finished(image: &Path, id: &str, patience: Duration) -> serde_json::Value {
    let deadline = Instant::now() + patience;
    loop {
        let job = ok(image, &["jobs", id]);
        if job["state"] == "completed" || job["state"] == "failed" {
            return job;
        }
        assert!(Instant::now() < deadline, "job {id} did not finish: {job}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// How many committed transactions finished job `id` (exactly-once is exactly 1).
fn finishing_transactions(image: &Path, id: &str) -> usize {
    let history = ok(image, &["history", "--limit", "100000"]);
    history
        .as_array()
        .expect("a list")
        .iter()
        .filter(|t| {
            t["description"].as_str().is_some_and(|d| d.starts_with(&format!("finish job {id} ")))
        })
        .count()
}

#[test]
fn an_upgrade_under_load_refuses_no_connection_and_loses_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let image = list_append_image(dir.path());
    let binaries =
        [binary_copy(&dir.path().join("batos-a")), binary_copy(&dir.path().join("batos-b"))];
    let first = serve(&image, dir.path(), &[]);
    let mut info = serving(&image, None);
    let recorder = Arc::new(Recorder::default());
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|p| {
            let (image, recorder, stop) = (image.clone(), recorder.clone(), stop.clone());
            std::thread::spawn(move || client_loop(&image, p, &recorder, &stop, usize::MAX))
        })
        .collect();
    let mut stalls = Vec::new();
    for round in 0..4 {
        let acked = recorder.acks.lock().expect("acks").len();
        while recorder.acks.lock().expect("acks").len() < acked + 20 {
            std::thread::yield_now();
        }
        let binary = &binaries[round % 2];
        let asked = Instant::now();
        let out = batos(&image).arg("upgrade").arg(binary).output().expect("upgrade");
        assert!(out.status.success(), "{}", text(&out.stderr));
        let next = serving(&image, Some(info.pid));
        assert_eq!(next.address, info.address, "the same socket serves");
        assert_eq!(
            std::fs::read_link(format!("/proc/{}/exe", next.pid)).expect("exe"),
            *binary,
            "the new version serves"
        );
        // The stall: the longest wait between acknowledgements around the handover.
        let acked = recorder.acks.lock().expect("acks").len();
        while recorder.acks.lock().expect("acks").len() < acked + 20 {
            std::thread::yield_now();
        }
        let acks = recorder.acks.lock().expect("acks").clone();
        let window: Vec<_> = acks.iter().filter(|t| **t >= asked).collect();
        let stall = window.windows(2).map(|w| w[1].duration_since(*w[0])).max().unwrap_or_default();
        stalls.push(stall);
        info = next;
    }
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.join().expect("a client");
    }
    final_read(&image, &recorder);
    eprintln!("upgrade stalls: {stalls:?}");
    assert_eq!(recorder.refused.load(Ordering::SeqCst), 0, "no connection was refused");
    let report = check_history(&recorder);
    assert!(
        report.is_clean(),
        "every acknowledged append present exactly once: {:?}",
        report.anomalies
    );
    let history = recorder.history.lock().expect("history");
    assert!(history.iter().filter(|t| t.outcome == Outcome::Ok).count() > 100);
    // A stall is bounded by the drain and the new kernel's start, not by any timeout.
    assert!(stalls.iter().all(|s| *s < Duration::from_secs(10)), "{stalls:?}");
    drop(first);
}

#[test]
fn an_upgrade_to_a_binary_that_fails_its_checks_leaves_the_old_kernel_serving() {
    let dir = tempfile::tempdir().expect("tempdir");
    let image = dir.path().join("image");
    ok(&image, &["awaken"]);
    let _served = serve(&image, dir.path(), &[]);
    let info = serving(&image, None);
    let broken = dir.path().join("broken");
    std::fs::write(
        &broken,
        "#!/bin/sh\necho 'refused: this build cannot read format 9' >&4\nexit 3\n",
    )
    .expect("script");
    std::fs::set_permissions(&broken, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let out = batos(&image).arg("upgrade").arg(&broken).output().expect("upgrade");
    assert!(!out.status.success());
    let said = text(&out.stderr);
    assert!(said.contains("cannot read format 9") && said.contains("goes on serving"), "{said}");
    let still = serving(&image, None);
    assert_eq!(still.pid, info.pid, "the old kernel serves on");
    assert!(ok(&image, &["send", "genesis", "slotNames"])["result"].is_array());
}

#[test]
fn a_queued_job_synthesises_and_answers_once_even_when_the_kernel_is_killed_mid_job() {
    let dir = tempfile::tempdir().expect("tempdir");
    let image = dir.path().join("image");
    ok(&image, &["awaken"]);
    // The first mind call hangs: the job is mid-synthesis when the kernel is killed.
    let (mind, arrived) = always_after_hangs(DOUBLE_WAT, 1);
    thinking_with(&image, &mind);
    let mut kernel = serve(&image, dir.path(), &[]);
    serving(&image, None);
    let queued =
        ok(&image, &["send", "genesis", "double:", "21", "--example", "3 => 6", "--wat", "--job"]);
    let id = queued["job"].as_str().expect("a job id").to_owned();
    assert!(ok(&image, &["jobs", &id])["describe"]
        .as_str()
        .is_some_and(|d| d.starts_with("send double: to")));
    arrived.recv_timeout(Duration::from_secs(60)).expect("the job asked the mind");
    let held = ok(&image, &["jobs", &id]);
    assert_eq!(
        (held["state"].as_str(), held["attempt"].as_i64()),
        (Some("leased"), Some(1)),
        "{held}"
    );
    kill9(serving(&image, None).pid);
    drop(kernel);
    // The next kernel requeues the dead one's job at awakening and finishes it.
    kernel = serve(&image, dir.path(), &[]);
    serving(&image, None);
    let job = finished(&image, &id, Duration::from_secs(120));
    assert_eq!(job["state"], "completed", "{job}");
    assert_eq!(job["result"], 42);
    assert_eq!(job["attempt"], 2, "resumed as the next attempt");
    assert_eq!(finishing_transactions(&image, &id), 1, "answered exactly once");
    assert_eq!(
        ok(&image, &["send", "genesis", "double:", "5"])["result"],
        10,
        "the method is installed"
    );
    let listed = ok(&image, &["jobs"]);
    assert_eq!(listed.as_array().map(Vec::len), Some(1));
    drop(kernel);
}

// -------------------------------------------------------------------------------------
// NATS: real servers on loopback.

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("addr").port()
}

/// A `nats-server` with JetStream, stopped when dropped.
struct Nats {
    child: Child,
    port: u16,
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Nats {
    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

/// Starts one server, or one node of a cluster (`cluster`: this node's route port and
/// every node's route ports).
fn nats_server(dir: &Path, name: &str, port: u16, cluster: Option<(u16, &[u16])>) -> Nats {
    let mut command = Command::new("nats-server");
    command
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-n", name, "-sd"])
        .arg(dir.join(name))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some((own, all)) = cluster {
        let routes: Vec<String> =
            all.iter().filter(|p| **p != own).map(|p| format!("nats://127.0.0.1:{p}")).collect();
        command.args([
            "--cluster_name",
            "batos",
            "--cluster",
            &format!("nats://127.0.0.1:{own}"),
            "--routes",
            &routes.join(","),
        ]);
    }
    let child = command.spawn().expect("nats-server runs (Debian's nats-server package)");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nats-server did not listen on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
    Nats { child, port }
}

/// A worker whose scratch folder is under `dir`'s parent's `tmp` (shared by a test's
/// workers, so a later one sweeps what a killed one left, and removed with the test).
fn worker(url: &str, name: &str, dir: &Path) -> Child {
    let temp = dir.parent().expect("a worker's folder is in the test's").join("tmp");
    std::fs::create_dir_all(&temp).expect("tmp");
    Command::new(env!("CARGO_BIN_EXE_batos"))
        .env("BATOS_WORKSPACE", dir.join("ws"))
        .env("TMPDIR", &temp)
        .args(["worker", "--nats", url, "--name", name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("batos worker")
}

/// Queues `n` doubling jobs under different selectors; answers their ids.
fn queue_doublings(image: &Path, n: usize) -> Vec<String> {
    queue_doublings_from(image, 0, n)
}

/// Every job completed with 42, each by exactly one committed transaction, its method
/// installed from a worker.
fn all_done_once(image: &Path, ids: &[String], patience: Duration) {
    for (i, id) in ids.iter().enumerate() {
        let job = finished(image, id, patience);
        assert_eq!(
            (job["state"].as_str(), job["result"].as_i64()),
            (Some("completed"), Some(42)),
            "{job}"
        );
        assert_eq!(finishing_transactions(image, id), 1, "job {id} finished exactly once");
        assert_eq!(ok(image, &["send", "genesis", &format!("double{i}:"), "4"])["result"], 8);
    }
    let cycles = ok(image, &["cycles"]);
    let adopted = cycles.as_array().expect("cycles").len();
    assert_eq!(adopted, ids.len(), "one cycle recorded per job: {cycles}");
}

#[test]
fn workers_over_nats_prove_what_the_kernel_installs_exactly_once_through_kills() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nats = nats_server(dir.path(), "n1", free_port(), None);
    let image = dir.path().join("image");
    ok(&image, &["awaken"]);
    // The first worker to think hangs: it is killed mid-job.
    let (mind, arrived) = always_after_hangs(DOUBLE_WAT, 1);
    thinking_with(&image, &mind);
    let mut kernel = serve(&image, dir.path(), &["--nats", &nats.url()]);
    serving(&image, None);
    let mut first = worker(&nats.url(), "w1", &dir.path().join("w1"));
    let ids = queue_doublings(&image, 1);
    arrived.recv_timeout(Duration::from_secs(60)).expect("a worker asked the mind");
    // The kernel dies while the worker works, and comes back; then the worker dies.
    kill9(serving(&image, None).pid);
    drop(kernel);
    kernel = serve(&image, dir.path(), &["--nats", &nats.url()]);
    serving(&image, None);
    kill9(first.id());
    let _ = first.wait();
    let mut second = worker(&nats.url(), "w2", &dir.path().join("w2"));
    let more = queue_doublings_from(&image, 1, 2);
    let mut all = ids.clone();
    all.extend(more);
    all_done_once(&image, &all, Duration::from_secs(120));
    let cycle = ok(&image, &["cycle", "c1"]);
    assert!(cycle["worker"].as_str().is_some_and(|w| w == "w2"), "{cycle}");
    // The killed worker's scratch went when the second started; the second's remains.
    let scratch: Vec<_> = std::fs::read_dir(dir.path().join("tmp"))
        .expect("tmp")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("batos-worker-"))
        .collect();
    assert_eq!(scratch.len(), 1, "{scratch:?}");
    let _ = second.kill();
    let _ = second.wait();
    drop(kernel);
}

/// Like [`queue_doublings`], for selectors `double{from}:` on.
fn queue_doublings_from(image: &Path, from: usize, n: usize) -> Vec<String> {
    (from..from + n)
        .map(|i| {
            let selector = format!("double{i}:");
            let queued = ok(
                image,
                &["send", "genesis", &selector, "21", "--example", "3 => 6", "--wat", "--job"],
            );
            queued["job"].as_str().expect("an id").to_owned()
        })
        .collect()
}

#[test]
fn a_three_node_nats_cluster_and_three_workers_complete_every_job_once_through_kills() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let routes: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let mut servers: Vec<Option<Nats>> = (0..3)
        .map(|i| {
            Some(nats_server(dir.path(), &format!("n{i}"), ports[i], Some((routes[i], &routes))))
        })
        .collect();
    let urls = servers.iter().flatten().map(Nats::url).collect::<Vec<_>>().join(",");
    let image = dir.path().join("image");
    ok(&image, &["awaken"]);
    let (mind, _arrived) = always_after_hangs(DOUBLE_WAT, 0);
    thinking_with(&image, &mind);
    let kernel = serve(&image, dir.path(), &["--nats", &urls]);
    serving(&image, None);
    let mut workers: Vec<Child> = (0..3)
        .map(|i| worker(&urls, &format!("w{i}"), &dir.path().join(format!("w{i}"))))
        .collect();
    let mut ids = queue_doublings(&image, 3);
    // Mid-run: once work flows, a server and a worker die, and more jobs come.
    let deadline = Instant::now() + Duration::from_secs(120);
    while ok(&image, &["jobs"]).as_array().expect("jobs").iter().all(|j| j["state"] != "completed")
    {
        assert!(Instant::now() < deadline, "no job completed");
        std::thread::sleep(Duration::from_millis(100));
    }
    servers[1] = None;
    kill9(workers[0].id());
    let _ = workers[0].wait();
    ids.extend(queue_doublings_from(&image, 3, 3));
    all_done_once(&image, &ids, Duration::from_secs(180));
    for w in &mut workers[1..] {
        let _ = w.kill();
        let _ = w.wait();
    }
    drop(kernel);
    drop(servers);
}

#[test]
fn a_job_queued_with_no_kernel_serving_runs_when_one_serves() {
    let dir = tempfile::tempdir().expect("tempdir");
    let image = dir.path().join("image");
    ok(&image, &["awaken"]);
    let (mind, _arrived) = always_after_hangs(DOUBLE_WAT, 0);
    thinking_with(&image, &mind);
    let out = batos(&image)
        .args(["send", "genesis", "double:", "4", "--example", "3 => 6", "--wat", "--job"])
        .output()
        .expect("batos runs");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    assert!(
        said.contains("queued as job j1") && said.contains("runs when a kernel serves"),
        "{said}"
    );
    assert_eq!(ok(&image, &["jobs", "j1"])["state"], "queued");
    let bad = batos(&image)
        .args(["send", "genesis", "double:", "--job", "--no-synthesis"])
        .output()
        .expect("runs");
    assert!(!bad.status.success(), "--job and --no-synthesis contradict each other");
    let _kernel = serve(&image, dir.path(), &[]);
    serving(&image, None);
    let job = finished(&image, "j1", Duration::from_secs(120));
    assert_eq!(
        (job["state"].as_str(), job["result"].as_i64()),
        (Some("completed"), Some(8)),
        "{job}"
    );
    let listed = text(&batos(&image).arg("jobs").output().expect("runs").stdout);
    assert!(
        listed.contains("j1") && listed.contains("completed") && listed.contains('8'),
        "{listed}"
    );
}
