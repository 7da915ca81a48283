//! The operations benchmark, one run, side by side:
//!
//! - **Synthesis throughput**: the first tasks of the synthesis task set
//!   (`host/benches/synthesis_tasks.toml`), queued at once as durable jobs (`send
//!   --job`) on a fresh image thinking with the embedded model, worked by the kernel
//!   alone (its own runner) and then by 1, 2 and 3 workers (`batos worker`) over a local
//!   `nats-server`: cycles completed per minute, and each configuration's ratio to the
//!   kernel alone. Every worker is warmed first (its model loaded, its build folder
//!   built once), as a long-running worker would be.
//! - **Upgrade stall**: four clients sending as fast as they can while the kernel is
//!   upgraded (`batos upgrade`) 20 times, beside the anchor of a plain restart (SIGTERM,
//!   then `batos serve` on the same address): p50 and p99 of the longest wait between
//!   acknowledgements around each, and the connections each refused.
//!
//! Run: `cargo bench -p batos-cli --bench ops`. Knobs: `BATOS_OPS_TASKS=6` (tasks per
//! configuration), `BATOS_OPS_WORKERS=0,1,2,3`, `BATOS_OPS_UPGRADES=20`. Outside `cargo
//! bench` (the test suite) it runs three upgrades and three restarts only.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use batos_client::{Client, ClientError};
use batos_protocol::{KernelInfo, Request};

fn batos(image: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_batos"));
    c.arg("--image").arg(image);
    c
}

fn ok(image: &Path, args: &[&str]) -> serde_json::Value {
    let out = batos(image).arg("--json").args(args).output().expect("batos runs");
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON")
}

fn serving(image: &Path, not: Option<u32>) -> KernelInfo {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(info) = batos_protocol::read_kernel_info(image) {
            if Some(info.pid) != not && Client::connect(&info, Default::default()).is_ok() {
                return info;
            }
        }
        assert!(Instant::now() < deadline, "no kernel came to serve");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn serve(image: &Path, listen: &str, extra: &[&str]) -> Child {
    batos(image)
        .args(["serve", "--listen", listen])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("batos serve")
}

fn stop(pid: u32) {
    let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1e3)
}

// ---------------------------------------------------------------------------------
// Upgrade stall.

/// Four clients sending a trivial message as fast as they can; answers when each
/// acknowledgement came and how many connections were refused.
struct Load {
    stop: Arc<AtomicBool>,
    acks: Arc<Mutex<Vec<Instant>>>,
    refused: Arc<AtomicUsize>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(image: &Path) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let acks = Arc::new(Mutex::new(Vec::new()));
        let refused = Arc::new(AtomicUsize::new(0));
        let threads = (0..4)
            .map(|_| {
                let (image, stop, acks, refused) =
                    (image.to_path_buf(), stop.clone(), acks.clone(), refused.clone());
                std::thread::spawn(move || {
                    let mut client: Option<Client> = None;
                    while !stop.load(Ordering::SeqCst) {
                        let Some(c) = client.as_mut() else {
                            if let Some(info) = batos_protocol::read_kernel_info(&image) {
                                match Client::connect(&info, Default::default()) {
                                    Ok(c) => client = Some(c),
                                    Err(ClientError::Connection(e)) if e.contains("refused") => {
                                        refused.fetch_add(1, Ordering::SeqCst);
                                    }
                                    Err(_) => {}
                                }
                            }
                            std::thread::yield_now();
                            continue;
                        };
                        match c.request(
                            Request::send_known("genesis", "description", vec![]),
                            &mut |_| {},
                        ) {
                            Ok(Ok(_)) => acks.lock().expect("acks").push(Instant::now()),
                            Ok(Err(_)) => {}
                            Err(_) => client = None,
                        }
                    }
                })
            })
            .collect();
        Load { stop, acks, refused, threads }
    }

    fn acked(&self) -> usize {
        self.acks.lock().expect("acks").len()
    }

    fn wait_for(&self, more: usize) {
        let target = self.acked() + more;
        while self.acked() < target {
            std::thread::yield_now();
        }
    }

    /// The longest gap between acknowledgements after `since`.
    fn stall_since(&self, since: Instant) -> Duration {
        let acks = self.acks.lock().expect("acks");
        let after: Vec<&Instant> = acks.iter().filter(|t| **t >= since).collect();
        let first_gap = after.first().map(|t| t.duration_since(since)).unwrap_or_default();
        after
            .windows(2)
            .map(|w| w[1].duration_since(*w[0]))
            .max()
            .unwrap_or_default()
            .max(first_gap)
    }

    fn finish(self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

fn upgrade_stalls(rounds: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let image = dir.path().join("image");
    ok(&image, &["awaken"]);
    let port = TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
    let listen = format!("127.0.0.1:{port}");
    let copies: Vec<PathBuf> = (0..2)
        .map(|i| {
            let p = dir.path().join(format!("batos-{i}"));
            std::fs::copy(env!("CARGO_BIN_EXE_batos"), &p).expect("copy");
            p
        })
        .collect();
    let mut children = vec![serve(&image, &listen, &[])];
    let mut info = serving(&image, None);
    let load = Load::start(&image);
    load.wait_for(200);
    // Upgrades.
    let mut upgrades = Vec::new();
    let refused_before = load.refused.load(Ordering::SeqCst);
    for round in 0..rounds {
        let asked = Instant::now();
        let out = batos(&image).arg("upgrade").arg(&copies[round % 2]).output().expect("upgrade");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        info = serving(&image, Some(info.pid));
        load.wait_for(100);
        upgrades.push(load.stall_since(asked));
    }
    let upgrade_refused = load.refused.load(Ordering::SeqCst) - refused_before;
    // The anchor: stop, then start again on the same address.
    let mut restarts = Vec::new();
    let refused_before = load.refused.load(Ordering::SeqCst);
    for _ in 0..rounds {
        let asked = Instant::now();
        stop(info.pid);
        while batos_protocol::read_kernel_info(&image).is_some_and(|i| i.pid == info.pid) {
            std::thread::yield_now();
        }
        children.push(serve(&image, &listen, &[]));
        info = serving(&image, Some(info.pid));
        load.wait_for(100);
        restarts.push(load.stall_since(asked));
    }
    let restart_refused = load.refused.load(Ordering::SeqCst) - refused_before;
    load.finish();
    stop(info.pid);
    for mut c in children {
        let _ = c.wait();
    }
    upgrades.sort_unstable();
    restarts.sort_unstable();
    let (u50, u99, r50, r99) = (
        percentile(&upgrades, 50),
        percentile(&upgrades, 99),
        percentile(&restarts, 50),
        percentile(&restarts, 99),
    );
    println!("upgrade stall over {rounds} handovers (4 clients sending without pause):");
    println!(
        "  batos upgrade      p50 {:>8}  p99 {:>8}  refused connections {upgrade_refused}",
        ms(u50),
        ms(u99)
    );
    println!(
        "  stop + serve       p50 {:>8}  p99 {:>8}  refused connections {restart_refused}",
        ms(r50),
        ms(r99)
    );
    println!(
        "  ratio (upgrade / restart)  p50 {:.2}×  p99 {:.2}×",
        u50.as_secs_f64() / r50.as_secs_f64().max(1e-9),
        u99.as_secs_f64() / r99.as_secs_f64().max(1e-9)
    );
}

// ---------------------------------------------------------------------------------
// Synthesis throughput.

#[derive(serde::Deserialize)]
struct TaskSet {
    task: Vec<Task>,
}

#[derive(serde::Deserialize)]
struct Task {
    selector: String,
    args: String,
    brief: Option<String>,
    #[serde(default)]
    examples: Vec<String>,
    #[serde(default)]
    stateful: bool,
    #[serde(default)]
    plugins: Vec<String>,
}

/// The tasks a job can carry as they are: stateless, needing no plugin, with an
/// example (a job is installed only on a confirmed method or agreement).
fn tasks(n: usize) -> Vec<Task> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../host/benches/synthesis_tasks.toml");
    let text = std::fs::read_to_string(&path).expect("the task set");
    let set: TaskSet = toml::from_str(&text).expect("the task set parses");
    set.task
        .into_iter()
        .filter(|t| !t.stateful && t.plugins.is_empty() && !t.examples.is_empty())
        .take(n)
        .collect()
}

struct Nats(Child);

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn nats(dir: &Path) -> (Nats, String) {
    let port = TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
    let child = Command::new("nats-server")
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(dir.join("nats"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nats-server (Debian's nats-server)");
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_millis(20));
    }
    (Nats(child), format!("nats://127.0.0.1:{port}"))
}

fn queue(image: &Path, task: &Task, suffix: &str) -> String {
    // A selector per configuration, so that each synthesises afresh.
    let selector = match task.selector.find(':') {
        Some(i) => format!("{}{suffix}{}", &task.selector[..i], &task.selector[i..]),
        None => format!("{}{suffix}", task.selector),
    };
    let mut args = vec!["send".to_owned(), "genesis".into(), selector];
    let values: serde_json::Value =
        serde_json::from_str(&format!("[{}]", task.args)).expect("args");
    args.extend(values.as_array().expect("a list").iter().map(|v| v.to_string()));
    for e in &task.examples {
        args.push("--example".into());
        args.push(e.clone());
    }
    if let Some(b) = &task.brief {
        args.push("--brief".into());
        args.push(b.clone());
    }
    args.push("--job".into());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(image, &refs)["job"].as_str().expect("a job").to_owned()
}

fn wait_all(image: &Path, ids: &[String]) -> usize {
    loop {
        let jobs = ok(image, &["jobs", "--limit", "1000"]);
        let states: Vec<(String, String)> = jobs
            .as_array()
            .expect("jobs")
            .iter()
            .map(|j| {
                (
                    j["id"].as_str().unwrap_or("").to_owned(),
                    j["state"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect();
        let mine = states.iter().filter(|(id, _)| ids.contains(id));
        if mine.clone().all(|(_, s)| s == "completed" || s == "failed") {
            return mine.filter(|(_, s)| s == "completed").count();
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn throughput(n: usize, configurations: &[usize]) {
    let tasks = tasks(n);
    let model = batos::model::pull::CATALOGUE[0].name;
    batos::model::pull::pull(
        model,
        &batos::model::pull::models_dir(),
        &mut batos::model::pull::Quiet,
    )
    .expect("the model pulls");
    let dir = tempfile::tempdir().expect("tempdir");
    let (_nats, url) = nats(dir.path());
    let workspaces = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
        .join("tmp/bench-ops");
    println!(
        "synthesis throughput: {} tasks of the task set as jobs, {model}, this machine ({} cores):",
        tasks.len(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let mut alone = None;
    for &workers in configurations {
        let image = dir.path().join(format!("image-{workers}"));
        ok(&image, &["awaken"]);
        let nats_args = ["--nats", url.as_str()];
        let mut kernel = serve(&image, "127.0.0.1:0", if workers == 0 { &[] } else { &nats_args });
        serving(&image, None);
        let mut spawned: Vec<Child> = (0..workers)
            .map(|w| {
                Command::new(env!("CARGO_BIN_EXE_batos"))
                    .env("BATOS_WORKSPACE", workspaces.join(format!("w{w}")))
                    .args(["worker", "--nats", &url, "--name", &format!("bench-w{w}")])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("batos worker")
            })
            .collect();
        // Warm-up: one job per worker (or one for the kernel), not counted.
        let warm: Vec<String> =
            (0..workers.max(1)).map(|w| queue(&image, &tasks[0], &format!("Warm{w}"))).collect();
        wait_all(&image, &warm);
        let started = Instant::now();
        let ids: Vec<String> =
            tasks.iter().map(|t| queue(&image, t, &format!("W{workers}"))).collect();
        let solved = wait_all(&image, &ids);
        let minutes = started.elapsed().as_secs_f64() / 60.0;
        let rate = ids.len() as f64 / minutes;
        let base = *alone.get_or_insert(rate);
        let label =
            if workers == 0 { "kernel alone".to_owned() } else { format!("{workers} worker(s)") };
        println!(
            "  {label:<14} {:>5.2} cycles/min  ({} of {} solved, {:.1} s)  {:.2}× the kernel alone",
            rate,
            solved,
            ids.len(),
            minutes * 60.0,
            rate / base
        );
        for w in &mut spawned {
            let _ = w.kill();
            let _ = w.wait();
        }
        if let Some(info) = batos_protocol::read_kernel_info(&image) {
            stop(info.pid);
        }
        let _ = kernel.wait();
    }
}

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let knob = |name: &str, default: usize| {
        std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
    };
    if !benching {
        upgrade_stalls(3);
        return;
    }
    upgrade_stalls(knob("BATOS_OPS_UPGRADES", 20));
    let configurations: Vec<usize> = std::env::var("BATOS_OPS_WORKERS")
        .ok()
        .map(|v| v.split(',').filter_map(|w| w.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![0, 1, 2, 3]);
    throughput(knob("BATOS_OPS_TASKS", 6), &configurations);
}
