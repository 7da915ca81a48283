//! A Jepsen-style check of the kernel: clients run list-append transactions (the
//! `listappend` plugin's `txn:`) through the bridge while a nemesis kills, stops and
//! upgrades the kernel under a supervisor; the Elle-style checker (tests/support/elle.rs)
//! then looks for G0, G1a, G1b, G1c, G-single, G2, lost appends and duplicates. The
//! checker itself is first proven on histories with planted anomalies.
//!
//! Short in CI; `BATOS_JEPSEN_SECONDS=600 cargo test --workspace --test cli jepsen`
//! runs it for ten minutes.

use crate::elle::{check, Mop, Outcome, Txn};

fn txn(process: usize, outcome: Outcome, invoke: u64, complete: u64, mops: Vec<Mop>) -> Txn {
    Txn { process, outcome, invoke, complete, mops }
}

fn append(k: &str, v: i64) -> Mop {
    Mop::Append(k.into(), v)
}

fn read(k: &str, seen: &[i64]) -> Mop {
    Mop::Read(k.into(), Some(seen.to_vec()))
}

use Outcome::{Fail, Ok as Done};

#[test]
fn the_checker_passes_a_serial_history() {
    let history = vec![
        txn(0, Done, 0, 1, vec![append("x", 1), read("x", &[1])]),
        txn(1, Done, 2, 3, vec![append("x", 2), append("y", 1)]),
        txn(0, Done, 4, 5, vec![read("x", &[1, 2]), read("y", &[1])]),
        // Concurrent with nothing it conflicts with; an indeterminate append not seen.
        txn(1, Outcome::Info, 6, u64::MAX, vec![append("y", 2)]),
        txn(0, Done, 7, 8, vec![read("y", &[1])]),
    ];
    let report = check(&history);
    assert!(report.is_clean(), "{:?}", report.anomalies);
}

#[test]
fn the_checker_finds_g0_write_cycles() {
    // T0 and T1 each append to x and y; x's order puts T0 first, y's puts T1 first.
    let history = vec![
        txn(0, Done, 0, 3, vec![append("x", 1), append("y", 1)]),
        txn(1, Done, 1, 2, vec![append("x", 2), append("y", 2)]),
        txn(2, Done, 4, 5, vec![read("x", &[1, 2]), read("y", &[2, 1])]),
    ];
    assert_eq!(check(&history).count("G0"), 1, "{:?}", check(&history).anomalies);
}

#[test]
fn the_checker_finds_g1a_aborted_reads() {
    let history =
        vec![txn(0, Fail, 0, 1, vec![append("x", 1)]), txn(1, Done, 2, 3, vec![read("x", &[1])])];
    assert_eq!(check(&history).count("G1a"), 1);
}

#[test]
fn the_checker_finds_g1b_intermediate_reads() {
    let history = vec![
        txn(0, Done, 0, 3, vec![append("x", 1), append("x", 2)]),
        txn(1, Done, 1, 2, vec![read("x", &[1])]),
    ];
    assert_eq!(check(&history).count("G1b"), 1, "{:?}", check(&history).anomalies);
}

#[test]
fn the_checker_finds_g1c_circular_information_flow() {
    // Each reads the other's append: T0 wr→ T1 and T1 wr→ T0.
    let history = vec![
        txn(0, Done, 0, 3, vec![append("x", 1), read("y", &[1])]),
        txn(1, Done, 1, 2, vec![append("y", 1), read("x", &[1])]),
    ];
    let report = check(&history);
    assert_eq!(report.count("G1c"), 1, "{:?}", report.anomalies);
    assert_eq!(report.count("G0") + report.count("G2"), 0);
}

#[test]
fn the_checker_finds_g_single_read_skew() {
    // T0 reads x before T1's append (rw: T0 → T1) but y after it (wr: T1 → T0).
    let history = vec![
        txn(0, Done, 0, 5, vec![read("x", &[]), read("y", &[1])]),
        txn(1, Done, 1, 2, vec![append("x", 1), append("y", 1)]),
        txn(2, Done, 6, 7, vec![read("x", &[1])]),
    ];
    let report = check(&history);
    assert_eq!(report.count("G-single"), 1, "{:?}", report.anomalies);
    assert_eq!(report.count("G2") + report.count("G1c"), 0);
}

#[test]
fn the_checker_finds_g2_write_skew() {
    // Each reads the key the other appends to, before it does: two rw edges.
    let history = vec![
        txn(0, Done, 0, 3, vec![read("y", &[]), append("x", 1)]),
        txn(1, Done, 1, 2, vec![read("x", &[]), append("y", 1)]),
        txn(2, Done, 4, 5, vec![read("x", &[1]), read("y", &[1])]),
    ];
    let report = check(&history);
    assert_eq!(report.count("G2"), 1, "{:?}", report.anomalies);
    assert_eq!(report.count("G-single"), 0);
}

#[test]
fn the_checker_finds_lost_appends_duplicates_and_incompatible_orders() {
    let lost =
        vec![txn(0, Done, 0, 1, vec![append("x", 1)]), txn(1, Done, 2, 3, vec![read("x", &[])])];
    let report = check(&lost);
    assert_eq!(report.count("lost-append"), 1, "{:?}", report.anomalies);

    let duplicated = vec![
        txn(0, Done, 0, 1, vec![append("x", 1)]),
        txn(1, Done, 2, 3, vec![read("x", &[1, 1])]),
    ];
    assert_eq!(check(&duplicated).count("duplicate"), 1);

    let incompatible = vec![
        txn(0, Done, 0, 1, vec![append("x", 1)]),
        txn(1, Done, 0, 1, vec![append("x", 2)]),
        txn(2, Done, 2, 3, vec![read("x", &[1, 2])]),
        txn(3, Done, 2, 3, vec![read("x", &[2, 1])]),
    ];
    assert_eq!(check(&incompatible).count("incompatible-order"), 1);
}

// ---------------------------------------------------------------------------------
// The workload, the nemesis and the run.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use batos_client::{Client, ClientError};
use batos_protocol::{KernelInfo, Request};
use serde_json::json;

/// Keys the clients append to: few, so that transactions contend.
const KEYS: usize = 5;

pub(crate) fn batos(image: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_batos"));
    c.arg("--image").arg(image);
    c
}

pub(crate) fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(relative)
}

/// A fresh image with the `listappend` plugin (`txn:` on genesis).
pub(crate) fn list_append_image(dir: &Path) -> PathBuf {
    let image = dir.join("image");
    let out = batos(&image)
        .args(["plugin", "add"])
        .arg(repo_path("plugins/listappend"))
        .output()
        .expect("batos runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    image
}

/// The kernel serving `image`, once one other than `not` does (waiting up to a
/// minute: a restart after a kill waits out the supervisor's backoff).
pub(crate) fn serving(image: &Path, not: Option<u32>) -> KernelInfo {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(info) = batos_protocol::read_kernel_info(image) {
            if Some(info.pid) != not && Client::connect(&info, Default::default()).is_ok() {
                return info;
            }
        }
        assert!(Instant::now() < deadline, "no kernel came to serve {}", image.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Copies the `batos` binary to `path`: a "new version" for an upgrade.
pub(crate) fn binary_copy(path: &Path) -> PathBuf {
    std::fs::copy(env!("CARGO_BIN_EXE_batos"), path).expect("copy the binary");
    path.to_path_buf()
}

/// What the clients recorded.
#[derive(Default)]
pub(crate) struct Recorder {
    clock: AtomicU64,
    pub(crate) history: Mutex<Vec<Txn>>,
    /// Connections refused (nobody listening).
    pub(crate) refused: AtomicUsize,
    /// When each acknowledged transaction was acknowledged.
    pub(crate) acks: Mutex<Vec<Instant>>,
    next_value: AtomicI64,
}

impl Recorder {
    fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::SeqCst)
    }
}

/// A random transaction of one to three operations.
fn random_mops(recorder: &Recorder, seed: &mut u64) -> Vec<Mop> {
    let mut next = || {
        // xorshift: the workload needs variety, not quality.
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed
    };
    let n = 1 + next() % 3;
    (0..n)
        .map(|_| {
            let key = format!("k{}", next() % KEYS as u64);
            if next() % 2 == 0 {
                Mop::Append(key, recorder.next_value.fetch_add(1, Ordering::SeqCst) + 1)
            } else {
                Mop::Read(key, None)
            }
        })
        .collect()
}

fn txn_request(mops: &[Mop]) -> Request {
    let ops: Vec<serde_json::Value> = mops
        .iter()
        .map(|m| match m {
            Mop::Append(k, v) => json!(["append", k, v]),
            Mop::Read(k, _) => json!(["r", k, null]),
        })
        .collect();
    Request::Send {
        object: "genesis".into(),
        selector: "txn:".into(),
        args: vec![json!(ops)],
        brief: None,
        examples: vec![],
        stateful: false,
        grants: vec![],
        wat: false,
        no_synthesis: true,
    }
}

/// The reads a `txn:` answer reports, filled into `mops`.
fn fill_reads(mops: &mut [Mop], answer: &serde_json::Value) {
    let done = answer["result"].as_array().expect("txn: answers a list");
    for (m, d) in mops.iter_mut().zip(done) {
        if let Mop::Read(_, seen) = m {
            *seen = Some(
                d[2].as_array()
                    .expect("a read answers a list")
                    .iter()
                    .map(|v| v.as_i64().expect("int"))
                    .collect(),
            );
        }
    }
}

/// Runs transactions against whichever kernel serves `image` until `stop` or `limit`
/// transactions, reconnecting as kernels come and go.
pub(crate) fn client_loop(
    image: &Path,
    process: usize,
    recorder: &Recorder,
    stop: &AtomicBool,
    limit: usize,
) {
    let mut client: Option<Client> = None;
    let mut seed =
        0x9E37_79B9_7F4A_7C15u64 ^ (process as u64 + 1).wrapping_mul(0x2545_F491_4F6C_DD1D);
    let mut ran = 0;
    while !stop.load(Ordering::SeqCst) && ran < limit {
        let Some(c) = client.as_mut() else {
            match batos_protocol::read_kernel_info(image) {
                Some(info) => match Client::connect(&info, Default::default()) {
                    Ok(c) => client = Some(c),
                    Err(ClientError::Connection(e)) if e.contains("refused") => {
                        recorder.refused.fetch_add(1, Ordering::SeqCst);
                        std::thread::yield_now();
                    }
                    Err(_) => std::thread::yield_now(),
                },
                None => std::thread::yield_now(),
            }
            continue;
        };
        let mut mops = random_mops(recorder, &mut seed);
        let invoke = recorder.tick();
        let answer = c.request(txn_request(&mops), &mut |_| {});
        ran += 1;
        let (outcome, complete) = match answer {
            Ok(Ok(output)) => {
                fill_reads(&mut mops, &output.json);
                recorder.acks.lock().expect("acks").push(Instant::now());
                (Outcome::Ok, recorder.tick())
            }
            Ok(Err(_refused)) => (Outcome::Fail, recorder.tick()),
            Err(_) => {
                client = None;
                (Outcome::Info, u64::MAX)
            }
        };
        if outcome == Outcome::Info {
            for m in &mut mops {
                if let Mop::Read(_, seen) = m {
                    *seen = None;
                }
            }
        }
        recorder.history.lock().expect("history").push(Txn {
            process,
            outcome,
            invoke,
            complete,
            mops,
        });
    }
}

/// One last transaction reading every key, so that the checker knows each key's
/// whole version order.
pub(crate) fn final_read(image: &Path, recorder: &Recorder) {
    let mut mops: Vec<Mop> = (0..KEYS).map(|k| Mop::Read(format!("k{k}"), None)).collect();
    let info = serving(image, None);
    let mut client = Client::connect(&info, Default::default()).expect("connect");
    let invoke = recorder.tick();
    let output = client.request(txn_request(&mops), &mut |_| {}).expect("answered").expect("read");
    fill_reads(&mut mops, &output.json);
    let complete = recorder.tick();
    recorder.history.lock().expect("history").push(Txn {
        process: usize::MAX,
        outcome: Outcome::Ok,
        invoke,
        complete,
        mops,
    });
}

/// Checks the recorded history on a thread with room for the checker's recursion.
pub(crate) fn check_history(recorder: &Recorder) -> crate::elle::Report {
    let history = recorder.history.lock().expect("history").clone();
    std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(move || check(&history))
        .expect("a checker thread")
        .join()
        .expect("the checker")
}

fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill").args([signal, &pid.to_string()]).status().expect("kill runs");
    assert!(status.success(), "kill {signal} {pid}");
}

/// What the nemesis does next.
#[derive(Clone, Copy, Debug)]
enum Fault {
    Kill,
    Terminate,
    Upgrade,
}

fn run_seconds() -> u64 {
    std::env::var("BATOS_JEPSEN_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(0)
}

#[test]
fn list_append_under_kills_stops_and_upgrades_shows_no_anomaly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let image = list_append_image(dir.path());
    let new_binary = binary_copy(&dir.path().join("batos-next"));
    let mut up: Child = batos(&image)
        .args(["up", "--", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("batos up");
    let mut info = serving(&image, None);
    let recorder = Arc::new(Recorder::default());
    let stop = Arc::new(AtomicBool::new(false));
    // Short in CI: a fixed round of faults; with BATOS_JEPSEN_SECONDS, faults for that
    // long.
    let long = run_seconds();
    let limit = if long > 0 { usize::MAX } else { 150 };
    let clients: Vec<_> = (0..4)
        .map(|p| {
            let (image, recorder, stop) = (image.clone(), recorder.clone(), stop.clone());
            std::thread::spawn(move || client_loop(&image, p, &recorder, &stop, limit))
        })
        .collect();
    let faults = [Fault::Upgrade, Fault::Kill, Fault::Terminate, Fault::Upgrade, Fault::Kill];
    let started = Instant::now();
    let mut done = Vec::new();
    for i in 0.. {
        let fault = faults[i % faults.len()];
        if long == 0 && i >= faults.len()
            || long > 0 && started.elapsed() > Duration::from_secs(long)
        {
            break;
        }
        // Let the load reach this kernel before the next fault.
        let acked = recorder.acks.lock().expect("acks").len();
        while recorder.acks.lock().expect("acks").len() < acked + 10
            && clients.iter().any(|c| !c.is_finished())
        {
            std::thread::yield_now();
        }
        match fault {
            Fault::Kill => signal(info.pid, "-9"),
            Fault::Terminate => signal(info.pid, "-TERM"),
            Fault::Upgrade => {
                let out = batos(&image).arg("upgrade").arg(&new_binary).output().expect("upgrade");
                assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            }
        }
        done.push(fault);
        info = serving(&image, Some(info.pid));
    }
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.join().expect("a client");
    }
    final_read(&image, &recorder);
    let report = check_history(&recorder);
    let history = recorder.history.lock().expect("history");
    let count = |o: Outcome| history.iter().filter(|t| t.outcome == o).count();
    eprintln!(
        "jepsen: {} transactions ({} ok, {} failed, {} indeterminate) through faults {done:?}: {:?}",
        history.len(),
        count(Outcome::Ok),
        count(Outcome::Fail),
        count(Outcome::Info),
        report.anomalies
    );
    assert!(report.is_clean(), "anomalies: {:?}", report.anomalies);
    assert!(count(Outcome::Ok) > 100, "the clients got work done");
    assert!(done.len() >= faults.len());
    // The supervisor followed every kernel; stopping it stops the kernel.
    signal(up.id(), "-TERM");
    let status = up.wait().expect("batos up ends");
    let mut log = String::new();
    std::io::Read::read_to_string(&mut up.stderr.take().expect("stderr"), &mut log).expect("log");
    assert!(status.success(), "{log}");
    assert!(log.contains("handed over to pid") && log.contains("died (signal 9)"), "{log}");
    assert!(batos_protocol::read_kernel_info(&image).is_none(), "no kernel is left serving");
}
