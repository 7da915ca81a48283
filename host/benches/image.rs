//! Image benchmarks, each side by side with its anchor on the same machine in the same
//! run, reported as ratios. Run: `cargo bench -p batos --bench image`
//!
//! * committed sends/s, one writer, buffered and durable, vs raw fjall optimistic
//!   transactions writing one key with the same persist mode;
//! * durable throughput with 1, 4 and 16 concurrent writers (group commit) vs raw fjall
//!   `SyncAll` transactions from as many threads, and vs a bare write+fsync loop on the
//!   same disk (the physical ceiling of one sync at a time);
//! * slot read latency (a data-slot send and a direct read) vs a raw fjall read;
//! * lookup cost by delegation depth (the lookup cache: depth 16 vs depth 0);
//! * `object_at` on an image of 100,000 transactions, early and recent, vs a slot read.

use std::hint::black_box;
use std::io::Write as _;
use std::time::{Duration, Instant};

use batos::{Durability, ImageOptions, Oid, Runtime, TxId, Value};
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

/// Times `a` and `b` in alternating rounds (so that both meet the same disk and the
/// same neighbours: fsync latency drifts by tens of percent within a minute), after a
/// warm-up of one round each, and returns the mean time per op of each.
fn interleaved(
    rounds: u32,
    per_round: u32,
    mut a: impl FnMut(u32),
    mut b: impl FnMut(u32),
) -> (Timing, Timing) {
    for i in 0..per_round {
        a(i);
        b(i);
    }
    let (mut spent_a, mut spent_b) = (Duration::ZERO, Duration::ZERO);
    for round in 0..rounds {
        let start = Instant::now();
        for i in 0..per_round {
            a(round * per_round + i);
        }
        spent_a += start.elapsed();
        let start = Instant::now();
        for i in 0..per_round {
            b(round * per_round + i);
        }
        spent_b += start.elapsed();
    }
    let n = rounds * per_round;
    (Timing { per_op: spent_a / n }, Timing { per_op: spent_b / n })
}

fn commits(n: u32, durability: Durability) -> (Timing, Timing) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (rt, counter) = runtime(&dir.path().join("batos"), durability);
    let name = Value::Text("n".into());
    let (db, ks) = raw_fjall(&dir.path().join("fjall"));
    let mode = match durability {
        Durability::Buffered => PersistMode::Buffer,
        Durability::Durable => PersistMode::SyncAll,
    };
    let rounds = 20;
    interleaved(
        rounds,
        (n / rounds).max(1),
        |i| {
            rt.send(counter, "setSlot:value:", vec![name.clone(), Value::Int(i64::from(i))])
                .expect("send");
        },
        |i| {
            let mut tx = db.write_tx().expect("tx").durability(Some(mode));
            tx.insert(&ks, "n", i.to_be_bytes());
            tx.commit().expect("io").expect("no conflict");
        },
    )
}

/// Raw fjall one-key transactions with the workaround batos used before it stopped using
/// fjall's oracle: closing extra snapshots so that the oracle's committed list, pruned
/// only by a snapshot GC every 10,000 closes, stays short.
fn raw_nudged(n: u32) -> Timing {
    let dir = tempfile::tempdir().expect("tempdir");
    let (db, ks) = raw_fjall(&dir.path().join("fjall"));
    time(n, |i| {
        let mut tx = db.write_tx().expect("tx").durability(Some(PersistMode::Buffer));
        tx.insert(&ks, "n", i.to_be_bytes());
        tx.commit().expect("io").expect("no conflict");
        for _ in 0..15 {
            drop(db.read_tx());
        }
    })
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

/// Durable commits per second with `writers` threads, each sending to its own object.
fn durable_batos(writers: usize, per_writer: u32) -> (f64, f64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (rt, counter) = runtime(&dir.path().join("batos"), Durability::Durable);
    let objects: Vec<Oid> =
        (0..writers).map(|_| rt.clone_object(counter, None).expect("clone")).collect();
    let name = Value::Text("n".into());
    let before = rt.image().stats();
    let start = Instant::now();
    std::thread::scope(|s| {
        for oid in &objects {
            let (rt, name) = (&rt, &name);
            s.spawn(move || {
                for i in 0..per_writer {
                    rt.send(*oid, "setSlot:value:", vec![name.clone(), Value::Int(i64::from(i))])
                        .expect("send");
                }
            });
        }
    });
    let elapsed = start.elapsed().as_secs_f64();
    let after = rt.image().stats();
    let commits = (after.last_tx - before.last_tx) as f64;
    let syncs = (after.journal_syncs - before.journal_syncs) as f64;
    (commits / elapsed, commits / syncs.max(1.0))
}

/// Raw fjall `SyncAll` transactions per second from `writers` threads, distinct keys.
fn durable_raw(writers: usize, per_writer: u32) -> f64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let (db, ks) = raw_fjall(&dir.path().join("fjall"));
    let start = Instant::now();
    std::thread::scope(|s| {
        for w in 0..writers {
            let (db, ks) = (&db, &ks);
            s.spawn(move || {
                for i in 0..per_writer {
                    let mut tx = db.write_tx().expect("tx").durability(Some(PersistMode::SyncAll));
                    tx.insert(ks, format!("n{w}"), i.to_be_bytes());
                    tx.commit().expect("io").expect("distinct keys never conflict");
                }
            });
        }
    });
    f64::from(per_writer) * writers as f64 / start.elapsed().as_secs_f64()
}

/// A bare append of a small record and fsync, one at a time: what the disk allows.
fn write_fsync(n: u32) -> f64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut file = std::fs::File::create(dir.path().join("log")).expect("file");
    let record = [7u8; 96];
    let t = time(n, |_| {
        file.write_all(&record).expect("write");
        file.sync_all().expect("fsync");
    });
    t.ops_per_sec()
}

/// `object_at` latency on an image of `transactions` commits to a handful of objects.
fn object_at(transactions: u32, n: u32) -> (Timing, Timing, Timing) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (rt, counter) = runtime(&dir.path().join("batos"), Durability::Buffered);
    let others: Vec<Oid> = (0..7).map(|_| rt.clone_object(counter, None).expect("clone")).collect();
    let first = rt.image().last_tx().expect("tx");
    let name = Value::Text("n".into());
    for i in 0..transactions {
        let target = if i % 8 == 0 { counter } else { others[(i % 7) as usize] };
        rt.send(target, "setSlot:value:", vec![name.clone(), Value::Int(i64::from(i))])
            .expect("send");
    }
    let last = rt.image().last_tx().expect("tx");
    let early = TxId(first.0 + 100);
    let recent = TxId(last.0 - 100);
    let image = rt.image();
    let early_t = time(n, |_| {
        black_box(image.object_at(counter, early).expect("as of"));
    });
    let recent_t = time(n, |_| {
        black_box(image.object_at(counter, recent).expect("as of"));
    });
    let read = time(n, |_| {
        black_box(image.view(|tx| tx.object(counter)).expect("read"));
    });
    (early_t, recent_t, read)
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
    let nudged = raw_nudged(40_000 / scale);
    println!("committed sends, buffered (flush to OS per commit), one writer");
    println!("  batos send setSlot:value:   {:>10.0} /s   {:>7.2} µs", b.ops_per_sec(), b.micros());
    println!("  raw fjall tx, one key       {:>10.0} /s   {:>7.2} µs", r.ops_per_sec(), r.micros());
    println!(
        "  raw fjall tx + 15 snapshot closes per commit (batos's former oracle nudge) {:>8.0} /s",
        nudged.ops_per_sec()
    );
    println!(
        "  ratio batos / raw fjall     {:>10.2}x throughput",
        b.ops_per_sec() / r.ops_per_sec()
    );
    println!();

    let (b, r) = commits(2_000 / scale.min(40), Durability::Durable);
    println!("committed sends, durable (fsync per commit), one writer");
    println!("  batos send setSlot:value:   {:>10.0} /s   {:>7.2} µs", b.ops_per_sec(), b.micros());
    println!("  raw fjall tx, SyncAll       {:>10.0} /s   {:>7.2} µs", r.ops_per_sec(), r.micros());
    println!("  ratio batos / raw latency   {:>10.2}x", b.micros() / r.micros());
    println!();

    println!("durable throughput, concurrent writers (group commit), commits/s");
    // Each configuration runs three times, the configurations taken in turn, so that
    // all of them meet the same disk; each run commits about the same total.
    let total = 1_600 / scale.min(40);
    let configs = [1usize, 4, 16];
    let mut sums = [(0.0f64, 0.0f64, 0.0f64); 3];
    let mut ceiling = 0.0;
    for _ in 0..3 {
        for (k, writers) in configs.iter().enumerate() {
            let per = (total / *writers as u32).max(5);
            let (b, per_sync) = durable_batos(*writers, per);
            let r = durable_raw(*writers, per);
            sums[k].0 += b / 3.0;
            sums[k].1 += per_sync / 3.0;
            sums[k].2 += r / 3.0;
        }
        ceiling += write_fsync(total / 4) / 3.0;
    }
    for (k, writers) in configs.iter().enumerate() {
        let (b, per_sync, r) = sums[k];
        println!(
            "  {writers:>2} writers: batos {b:>8.0}/s ({per_sync:>4.1} commits per sync)   raw fjall {r:>8.0}/s   batos/raw {:>5.2}x   batos/1 writer {:>5.2}x",
            b / r,
            b / sums[0].0
        );
    }
    println!("  bare write+fsync loop       {ceiling:>8.0}/s   (one sync at a time: the physical ceiling without grouping)");
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
        println!(
            "  depth {depth:>2}                    {:>10.2} µs   ({:.2}x depth 0)",
            t.micros(),
            t.micros() / base.micros()
        );
    }
    println!();

    let transactions = 100_000 / scale;
    let (early, recent, read) = object_at(transactions, 2_000 / scale);
    println!("object_at on an image of {transactions} transactions (one object written every 8th)");
    println!("  as of 100 tx after the start {:>8.2} µs", early.micros());
    println!("  as of 100 tx before the end  {:>8.2} µs", recent.micros());
    println!(
        "  the object now (Tx::object)  {:>8.2} µs   (a prefix scan: fjall's memtable still holds every overwritten version of its slot)",
        read.micros()
    );
}
