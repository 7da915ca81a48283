//! Image benchmarks, each side by side with raw fjall on the same machine in the same
//! run, reported as ratios. Run: `cargo bench -p batos --bench image`
//!
//! * committed sends/s, one writer, buffered and durable, vs raw fjall optimistic
//!   transactions writing one key with the same persist mode;
//! * slot read latency (a data-slot send and a direct read) vs a raw fjall read;
//! * lookup cost by delegation depth.

use std::hint::black_box;
use std::time::{Duration, Instant};

use batos::{Durability, ImageOptions, Oid, Runtime, Value};
use fjall::{KeyspaceCreateOptions, OptimisticTxDatabase, PersistMode, Readable};

struct Timing {
    per_op: Duration,
}

impl Timing {
    fn ops_per_sec(&self) -> f64 {
        1.0 / self.per_op.as_secs_f64()
    }
    fn micros(&self) -> f64 {
        self.per_op.as_secs_f64() * 1e6
    }
}

/// Runs `op` `n` times after a warm-up of n/10 and returns the mean time per op.
fn time(n: u32, mut op: impl FnMut(u32)) -> Timing {
    for i in 0..n / 10 {
        op(i);
    }
    let start = Instant::now();
    for i in 0..n {
        op(i);
    }
    Timing { per_op: start.elapsed() / n }
}

fn runtime(dir: &std::path::Path, durability: Durability) -> (Runtime, Oid) {
    let rt = Runtime::builder()
        .image_options(ImageOptions { durability, ..ImageOptions::default() })
        .open(dir)
        .expect("image opens");
    let genesis = rt.resolve("genesis").expect("genesis");
    let counter = rt.clone_object(genesis, Some("counter")).expect("clone");
    (rt, counter)
}

fn raw_fjall(dir: &std::path::Path) -> (OptimisticTxDatabase, fjall::OptimisticTxKeyspace) {
    let db = OptimisticTxDatabase::builder(dir).open().expect("fjall opens");
    let ks = db.keyspace("bench", KeyspaceCreateOptions::default).expect("keyspace");
    (db, ks)
}

fn commits(n: u32, durability: Durability) -> (Timing, Timing) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (rt, counter) = runtime(&dir.path().join("batos"), durability);
    let name = Value::Text("n".into());
    let batos = time(n, |i| {
        rt.send(counter, "setSlot:value:", vec![name.clone(), Value::Int(i64::from(i))])
            .expect("send");
    });
    drop(rt);
    let (db, ks) = raw_fjall(&dir.path().join("fjall"));
    let mode = match durability {
        Durability::Buffered => PersistMode::Buffer,
        Durability::Durable => PersistMode::SyncAll,
    };
    let raw = time(n, |i| {
        let mut tx = db.write_tx().expect("tx").durability(Some(mode));
        tx.insert(&ks, "n", i.to_be_bytes());
        tx.commit().expect("io").expect("no conflict");
    });
    (batos, raw)
}

fn reads(n: u32) -> (Timing, Timing, Timing) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (rt, counter) = runtime(&dir.path().join("batos"), Durability::Buffered);
    rt.send(counter, "setSlot:value:", vec![Value::Text("n".into()), Value::Int(7)]).expect("send");
    let send = time(n, |_| {
        black_box(rt.send(counter, "n", vec![]).expect("send"));
    });
    let direct = time(n, |_| {
        black_box(rt.view(|cx| cx.tx().slot(counter, "n")).expect("read"));
    });
    let (db, ks) = raw_fjall(&dir.path().join("fjall"));
    ks.insert("n", 7u64.to_be_bytes()).expect("insert");
    let raw = time(n, |_| {
        let tx = db.write_tx().expect("tx");
        black_box(tx.get(&ks, "n").expect("get"));
    });
    (send, direct, raw)
}

fn lookup_depth(depth: usize, n: u32) -> Timing {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = Runtime::open(dir.path().join("batos")).expect("opens");
    let (top, bottom) = rt
        .image()
        .transact("chain", |tx| {
            let top = tx.create_object(&[])?;
            tx.set_slot(top, "answer", &Value::Int(42))?;
            let mut below = top;
            for _ in 0..depth {
                below = tx.create_object(&[below])?;
            }
            Ok((top, below))
        })
        .expect("chain")
        .value;
    let _ = top;
    time(n, |_| {
        black_box(rt.send(bottom, "answer", vec![]).expect("found"));
    })
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing useful. A
    // quick mode keeps `cargo test --all-targets` from running the full benchmark.
    let quick = std::env::args().all(|a| a != "--bench");
    let scale = if quick { 50 } else { 1 };
    println!(
        "batos image benchmarks ({} cores){}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        if quick { " — quick mode" } else { "" }
    );
    println!();

    let (b, r) = commits(40_000 / scale, Durability::Buffered);
    println!("committed sends, buffered (flush to OS per commit), one writer");
    println!("  batos send setSlot:value:   {:>10.0} /s   {:>7.2} µs", b.ops_per_sec(), b.micros());
    println!("  raw fjall tx, one key       {:>10.0} /s   {:>7.2} µs", r.ops_per_sec(), r.micros());
    println!(
        "  ratio batos / raw fjall     {:>10.2}x throughput",
        b.ops_per_sec() / r.ops_per_sec()
    );
    println!();

    let (b, r) = commits(400 / scale.min(40), Durability::Durable);
    println!("committed sends, durable (fsync per commit), one writer");
    println!("  batos send setSlot:value:   {:>10.0} /s   {:>7.2} µs", b.ops_per_sec(), b.micros());
    println!("  raw fjall tx, SyncAll       {:>10.0} /s   {:>7.2} µs", r.ops_per_sec(), r.micros());
    println!("  ratio batos / raw latency   {:>10.2}x", b.micros() / r.micros());
    println!();

    let (send, direct, raw) = reads(100_000 / scale);
    println!("slot read latency");
    println!("  batos send of a data slot   {:>10.2} µs", send.micros());
    println!("  batos Tx::slot in a view    {:>10.2} µs", direct.micros());
    println!("  raw fjall tx get            {:>10.2} µs", raw.micros());
    println!("  ratio send / raw            {:>10.2}x", send.micros() / raw.micros());
    println!();

    println!("lookup by delegation depth (read-only send, slot on the farthest ancestor)");
    let base = lookup_depth(0, 50_000 / scale);
    println!("  depth  0                    {:>10.2} µs", base.micros());
    for depth in [1usize, 4, 16, 64] {
        let t = lookup_depth(depth, 50_000 / scale);
        let per_level = (t.micros() - base.micros()) / depth as f64;
        println!(
            "  depth {depth:>2}                    {:>10.2} µs   (+{per_level:.2} µs per level)",
            t.micros()
        );
    }
}
