//! Durable payments per second (issue #9, section 6): the same ledger
//! workload on a persistent pola vat, SQLite and redb, in one run, side by
//! side. See `pola_bench_durable::payments` for the workload and checks.
//!
//! Run: `cargo bench -p pola-bench-durable --bench payments`.
//! Then, to show where pola's time goes, the store alone: durable batches
//! of 1 to 1024 small records at random ids among twice as many as there
//! are purses (a purse's account changes are what a payment writes).
//!
//! Environment (defaults in brackets):
//! - `POLA_BENCH_PAYMENTS` payments per engine [20 000];
//! - `POLA_BENCH_POLA_PAYMENTS` payments for pola [100 000];
//! - `POLA_BENCH_PURSES` [100 000]; `POLA_BENCH_PAYERS` [64];
//! - `POLA_BENCH_ENGINES` a comma-separated subset of
//!   `pola,sqlite,sqlite-serial,redb,redb-serial` [all of these], or
//!   `pola-log`: the same vat on a what-if backend (memory plus an
//!   append-only log synced per batch; not a store: no checkpoints), an
//!   upper bound for a log-structured store;
//! - `POLA_BENCH_STORE_ALONE=0` skips the store-alone lines;
//! - `POLA_BENCH_DIR` a folder on a real disk [the temporary folder;
//!   tmpfs is refused].
#![forbid(unsafe_code)]

use std::time::Instant;

use anyhow::{Result, bail};
use pola_bench_durable::disk::BenchDir;
use pola_bench_durable::env_number;
use pola_bench_durable::payments::{self, RunReport, Workload};
use pola_bench_durable::pola_ledger::{PolaLedger, store_alone};
use pola_bench_durable::redb_ledger::RedbLedger;
use pola_bench_durable::sqlite_ledger::SqliteLedger;

const INITIAL: u64 = 1_000_000;
/// Every engine, in the order they run.
const ALL: &str = "pola,sqlite,sqlite-serial,redb,redb-serial";

fn main() -> Result<()> {
    // `cargo test --benches` runs bench targets with `--test`-like flags;
    // `cargo bench` passes `--bench`. Only run when asked to bench.
    if !std::env::args().any(|a| a == "--bench") {
        println!("payments: run with `cargo bench` (skipped)");
        return Ok(());
    }
    let work = Workload {
        purses: usize::try_from(env_number("POLA_BENCH_PURSES", 100_000)?)?,
        initial: INITIAL,
        payers: usize::try_from(env_number("POLA_BENCH_PAYERS", 64)?)?,
        payments: env_number("POLA_BENCH_PAYMENTS", 20_000)?,
    };
    // pola runs longer by default (it is the figure of interest, and at
    // its rate 20 000 payments last about a second).
    let pola_work = Workload {
        payments: env_number("POLA_BENCH_POLA_PAYMENTS", 100_000)?,
        ..work
    };
    let engines = std::env::var("POLA_BENCH_ENGINES").unwrap_or_else(|_| ALL.into());
    let dir = BenchDir::new("durable")?;
    println!(
        "durable payments: {} purses, {} payers, {} payments per engine ({} for pola); files in {} ({})",
        work.purses,
        work.payers,
        work.payments,
        pola_work.payments,
        dir.path().display(),
        dir.fs_type()
    );
    let mut reports: Vec<RunReport> = Vec::new();
    for name in engines.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let t = Instant::now();
        let path = dir.path().join(name);
        let report = match name {
            "pola" => {
                let e = PolaLedger::create(&path.with_extension("redb"), work.purses, INITIAL)?;
                println!("pola: setup {:.1} s", t.elapsed().as_secs_f64());
                payments::run(e, &pola_work)?
            }
            "pola-log" => {
                let e =
                    PolaLedger::create_on_log(&path.with_extension("log"), work.purses, INITIAL)?;
                println!("{name}: setup {:.1} s", t.elapsed().as_secs_f64());
                payments::run(e, &pola_work)?
            }
            "sqlite" => {
                let e = SqliteLedger::create(&path.with_extension("sqlite"), work.purses, INITIAL)?;
                println!("sqlite: setup {:.1} s", t.elapsed().as_secs_f64());
                payments::run(e, &work)?
            }
            "sqlite-serial" => {
                let e = SqliteLedger::serial(&path.with_extension("sqlite"), work.purses, INITIAL)?;
                println!("{name}: setup {:.1} s", t.elapsed().as_secs_f64());
                payments::run(e, &work)?
            }
            "redb" => {
                let e = RedbLedger::create(&path.with_extension("redb"), work.purses, INITIAL)?;
                println!("redb: setup {:.1} s", t.elapsed().as_secs_f64());
                payments::run(e, &work)?
            }
            "redb-serial" => {
                let e = RedbLedger::serial(&path.with_extension("redb"), work.purses, INITIAL)?;
                println!("{name}: setup {:.1} s", t.elapsed().as_secs_f64());
                payments::run(e, &work)?
            }
            other => bail!("POLA_BENCH_ENGINES: unknown engine {other:?} ({ALL},pola-log)"),
        };
        println!(
            "{name}: {:.0} durable payments/s, invariants hold (supply, every acknowledged payment once, same after reopening)",
            report.rate()
        );
        reports.push(report);
    }
    println!();
    print!("{}", payments::table(&reports, "sqlite"));
    if env_number("POLA_BENCH_STORE_ALONE", 1)? != 0 {
        println!();
        let records = 2 * work.purses as u64;
        for per_batch in [1, 16, 64, 256, 1024] {
            let path = dir.path().join(format!("alone-{per_batch}.redb"));
            let per = store_alone(
                &path,
                records,
                per_batch,
                (20_000 / per_batch).clamp(50, 2000),
            )?;
            println!(
                "pola-store alone: durable batches of {per_batch} records of 32 B at random ids among {records}: {:.0} µs per batch, {:.1} µs per record",
                per.as_secs_f64() * 1e6,
                per.as_secs_f64() * 1e6 / per_batch as f64
            );
        }
    }
    Ok(())
}
