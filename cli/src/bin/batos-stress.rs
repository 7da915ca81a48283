//! `batos-stress`: the workload of the crash harness (RocksDB's `db_stress`, for batos).
//!
//! It opens an image, makes a `bank` of accounts on first use, then sends random
//! `transfer:` messages forever (or `--ops` times), from `--writers` threads at once.
//! Every transfer moves money between two accounts and counts itself in its writer's
//! `bank.opsW`, in one transaction, so the total is conserved by every committed
//! transaction and broken by any partial one. Every 8th transfer of a writer also
//! stores a random blob and refers to it from `bank.lastBlob`. Transfers of different
//! writers touching the same account conflict and are retried by the image; one that
//! keeps conflicting is given up (and not acknowledged).
//!
//! After each acknowledged commit it appends the transaction id to the oracle file: the
//! oracle is the list of commits that must survive a `kill -9`. A write is enough for
//! that (the OS keeps it when the process dies); fsyncing it would also serialise the
//! writers and hide group commit. `tests/crash.rs` kills it at random moments and checks
//! the image against the oracle.
//!
//! ```text
//! batos-stress --image DIR --oracle FILE --seed N [--ops N] [--writers N] [--durable]
//! ```

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use anyhow::{bail, Context as _, Result};
use batos::{Durability, Error, ImageOptions, Method, Oid, Runtime, Value};
use clap::Parser;
use rand::{Rng, SeedableRng};

/// Number of accounts in the bank, and each one's opening balance.
pub const ACCOUNTS: i64 = 8;
/// Opening balance of each account.
pub const OPENING_BALANCE: i64 = 1000;

#[derive(Parser)]
struct Args {
    /// The image folder.
    #[arg(long)]
    image: PathBuf,
    /// Where acknowledged transaction ids are appended.
    #[arg(long)]
    oracle: PathBuf,
    /// Seed of the workload.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Stop after this many transfers (default: run until killed).
    #[arg(long)]
    ops: Option<u64>,
    /// fsync each commit (group commit when several writers commit together).
    #[arg(long)]
    durable: bool,
    /// Threads sending transfers at once.
    #[arg(long, default_value_t = 1)]
    writers: u32,
}

fn accounts(cx: &mut batos::Context<'_, '_>, bank: Oid) -> batos::Result<Vec<Oid>> {
    match cx.tx().slot(bank, "accounts")? {
        Some(Value::List(items)) => items
            .iter()
            .map(|v| match v {
                Value::Object(o) => Ok(*o),
                _ => Err(Error::Failed("bank.accounts holds a non-object".into())),
            })
            .collect(),
        _ => Err(Error::Failed("bank has no accounts list".into())),
    }
}

fn balance(cx: &mut batos::Context<'_, '_>, account: Oid) -> batos::Result<i64> {
    match cx.tx().slot(account, "balance")? {
        Some(Value::Int(n)) => Ok(n),
        _ => Err(Error::Failed(format!("{account} has no integer balance"))),
    }
}

/// `transfer:to:amount:writer:` — the only method the workload sends.
fn transfer(cx: &mut batos::Context<'_, '_>, call: &batos::Call<'_>) -> batos::Result<Value> {
    call.expect_arity(4)?;
    let bank = call.receiver;
    let all = accounts(cx, bank)?;
    let pick = |i: usize| -> batos::Result<Oid> {
        let index = usize::try_from(call.int(i)?)
            .map_err(|_| Error::bad_arguments(call.selector, "negative index"))?;
        all.get(index)
            .copied()
            .ok_or_else(|| Error::bad_arguments(call.selector, "no such account"))
    };
    let (from, to, amount) = (pick(0)?, pick(1)?, call.int(2)?);
    let from_balance = balance(cx, from)?;
    cx.set_slot(from, "balance", &Value::Int(from_balance - amount))?;
    let to_balance = balance(cx, to)?;
    cx.set_slot(to, "balance", &Value::Int(to_balance + amount))?;
    let counter = format!("ops{}", call.int(3)?);
    let ops = match cx.tx().slot(bank, &counter)? {
        Some(Value::Int(n)) => n,
        _ => 0,
    };
    cx.set_slot(bank, &counter, &Value::Int(ops + 1))?;
    Ok(Value::Int(ops + 1))
}

fn open_bank(rt: &Runtime) -> Result<Oid> {
    if let Ok(bank) = rt.resolve("bank") {
        return Ok(bank);
    }
    let committed = rt.transact("stress setup", |cx| {
        let traits = cx.tx().root("traits")?.ok_or_else(|| Error::UnknownRoot("traits".into()))?;
        let bank = cx.tx_mut("create an object")?.create_object(&[traits])?;
        let mut list = Vec::new();
        for _ in 0..ACCOUNTS {
            let account = cx.tx_mut("create an object")?.create_object(&[traits])?;
            cx.set_slot(account, "balance", &Value::Int(OPENING_BALANCE))?;
            list.push(Value::Object(account));
        }
        cx.set_slot(bank, "accounts", &Value::List(list))?;
        cx.set_slot(
            bank,
            "transfer:to:amount:writer:",
            &Value::Method(Method::Native { primitive: "stress.transfer".into() }),
        )?;
        cx.tx_mut("name a root")?.set_root("bank", bank)?;
        Ok(bank)
    })?;
    Ok(committed.value)
}

fn main() -> Result<()> {
    let args = Args::parse();
    let options = ImageOptions {
        durability: if args.durable { Durability::Durable } else { Durability::Buffered },
        ..ImageOptions::default()
    };
    let rt = Runtime::builder()
        .image_options(options)
        .primitive("stress.transfer", transfer)
        .open(&args.image)
        .context("opening the image")?;
    let bank = open_bank(&rt)?;
    let oracle = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&args.oracle)
        .with_context(|| format!("opening the oracle {}", args.oracle.display()))?;
    let oracle = Mutex::new(oracle);
    println!("ready");
    std::io::stdout().flush()?;

    let writers = args.writers.max(1);
    std::thread::scope(|s| -> Result<()> {
        let workers: Vec<_> = (0..writers)
            .map(|writer| {
                let (rt, oracle, args) = (&rt, &oracle, &args);
                let ops = args.ops.map(|n| n / u64::from(writers));
                s.spawn(move || write(rt, bank, oracle, args.seed, writer, ops))
            })
            .collect();
        for worker in workers {
            worker.join().map_err(|_| anyhow::anyhow!("a writer panicked"))??;
        }
        Ok(())
    })
}

/// One writer's loop: transfers until `ops` (or forever), each acknowledged one logged.
fn write(
    rt: &Runtime,
    bank: Oid,
    oracle: &Mutex<std::fs::File>,
    seed: u64,
    writer: u32,
    ops: Option<u64>,
) -> Result<()> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed.wrapping_add(u64::from(writer)));
    let mut done = 0u64;
    while ops.is_none_or(|n| done < n) {
        let from = Value::Int(rng.random_range(0..ACCOUNTS));
        let to = Value::Int(rng.random_range(0..ACCOUNTS));
        let amount = Value::Int(rng.random_range(1..50));
        let transfer_args = [from, to, amount, Value::Int(i64::from(writer))];
        let committed = if done % 8 == 7 {
            let size = rng.random_range(1..4096);
            let bytes: Vec<u8> = (0..size).map(|_| rng.random()).collect();
            rt.transact("transfer with blob", |cx| {
                let blob = cx.tx_mut("store a blob")?.put_blob(&bytes)?;
                cx.set_slot(bank, "lastBlob", &Value::Blob(blob))?;
                cx.send(bank, "transfer:to:amount:writer:", &transfer_args)
            })
        } else {
            rt.send_committed(bank, "transfer:to:amount:writer:", transfer_args.to_vec())
        };
        let committed = match committed {
            Ok(committed) => committed,
            // Lost to other writers every time: nothing was written, nothing is owed.
            Err(Error::Conflict { .. }) => continue,
            Err(e) => return Err(e.into()),
        };
        let Some(tx) = committed.tx else { bail!("a transfer committed nothing") };
        oracle
            .lock()
            .map_err(|_| anyhow::anyhow!("the oracle lock is poisoned"))?
            .write_all(format!("{tx}\n").as_bytes())?;
        done += 1;
    }
    Ok(())
}
