//! The durable-payments workload, its driver and its checks.
//!
//! A ledger of `purses` purses of one currency, each starting with
//! `initial`. `payers` threads each make their share of `payments`
//! payments: a small amount (1 to 100) from one random purse to another
//! (never the same), and wait for the engine to acknowledge it before the
//! next. An engine acknowledges a payment only once it is durable (on
//! disk, with fsync). Every payment must succeed (an overdraft is
//! practically impossible with these amounts, and is reported as a
//! failure if it happens).
//!
//! Checks after a run (each failing the run with a reason):
//! - every payer's every payment was acknowledged with the amount sent;
//! - each purse's balance is its initial balance plus what the
//!   acknowledged payments moved in and out of it, so every acknowledged
//!   payment was applied exactly once and nothing else happened;
//! - the total supply is unchanged;
//! - the same balances are read back after the engine's files are closed
//!   and opened again (what was acknowledged was written).

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

use crate::Rng;

/// The shape of one run.
#[derive(Clone, Copy, Debug)]
pub struct Workload {
    /// Purses in the ledger.
    pub purses: usize,
    /// Each purse's balance at the start.
    pub initial: u64,
    /// Concurrent payers (threads).
    pub payers: usize,
    /// Payments over all payers.
    pub payments: u64,
}

/// An engine under test: a ledger on disk that many payers use at once.
pub trait Engine: Sync {
    /// One payer's connection (made on the payer's own thread).
    type Payer<'a>: Payer
    where
        Self: 'a;

    /// A short name for the table.
    fn name(&self) -> &'static str;

    /// A new payer.
    ///
    /// # Errors
    /// The engine refuses a new connection.
    fn payer(&self) -> Result<Self::Payer<'_>>;

    /// Every purse's balance, in purse order, read from the live engine.
    ///
    /// # Errors
    /// The engine cannot be read.
    fn balances(&self) -> Result<Vec<u64>>;

    /// Closes the engine, opens its files again, and reads every balance
    /// from them.
    ///
    /// # Errors
    /// The files cannot be closed, opened or read.
    fn reopen_balances(self) -> Result<Vec<u64>>;

    /// Engine-specific lines for the report (batches, fsyncs, ...), about
    /// the payments made since the engine was set up.
    fn notes(&self, elapsed: Duration) -> Vec<String>;
}

/// One payer's handle on an engine.
pub trait Payer {
    /// Moves `amount` from purse `from` to purse `to` and returns once the
    /// engine says the payment is durable.
    ///
    /// # Errors
    /// The payment was refused or failed.
    fn pay(&mut self, from: usize, to: usize, amount: u64) -> Result<()>;
}

/// What one run measured.
#[derive(Clone, Debug)]
pub struct RunReport {
    /// The engine's name.
    pub engine: &'static str,
    /// Payments acknowledged.
    pub payments: u64,
    /// Wall time of the payments (from the first payer's start to the
    /// last payer's end).
    pub elapsed: Duration,
    /// Latency of one payment (send to acknowledgement): median.
    pub p50: Duration,
    /// Latency: 99th percentile.
    pub p99: Duration,
    /// Latency: worst.
    pub max: Duration,
    /// The engine's own notes.
    pub notes: Vec<String>,
}

impl RunReport {
    /// Acknowledged durable payments per second.
    pub fn rate(&self) -> f64 {
        self.payments as f64 / self.elapsed.as_secs_f64()
    }
}

/// Runs `work` on `engine`, checks the invariants (see the module docs),
/// and consumes the engine (its files are reopened for the last check).
///
/// # Errors
/// A payment failed, or an invariant does not hold.
pub fn run<E: Engine>(engine: E, work: &Workload) -> Result<RunReport> {
    let name = engine.name();
    let moved: Vec<AtomicI64> = (0..work.purses).map(|_| AtomicI64::new(0)).collect();
    let payers = work.payers.max(1);
    let start = Instant::now();
    let results: Vec<Result<(u64, Vec<u32>)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..payers)
            .map(|i| {
                let share = work.payments / payers as u64
                    + u64::from((i as u64) < work.payments % payers as u64);
                let (engine, moved) = (&engine, &moved);
                s.spawn(move || pay_share(engine, work, moved, i as u64, share))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a payer panicked")))
            })
            .collect()
    });
    let elapsed = start.elapsed();
    let mut done = 0;
    let mut latencies = Vec::with_capacity(work.payments as usize);
    for r in results {
        let (n, mut l) = r.with_context(|| format!("{name}: a payer failed"))?;
        done += n;
        latencies.append(&mut l);
    }
    ensure!(
        done == work.payments,
        "{name}: {done} payments acknowledged, {} made",
        work.payments
    );
    let notes = engine.notes(elapsed);
    let expected: Vec<u64> = moved
        .iter()
        .map(|m| {
            work.initial
                .checked_add_signed(m.load(Ordering::Relaxed))
                .context("a balance went below zero in the bookkeeping")
        })
        .collect::<Result<_>>()?;
    check_balances(name, "live", &engine.balances()?, &expected, work)?;
    let reread = engine
        .reopen_balances()
        .with_context(|| format!("{name}: reopen"))?;
    check_balances(name, "after reopening", &reread, &expected, work)?;
    latencies.sort_unstable();
    let pick = |q: f64| {
        let i = ((latencies.len() as f64 - 1.0) * q).round() as usize;
        Duration::from_micros(latencies.get(i).copied().unwrap_or(0).into())
    };
    Ok(RunReport {
        engine: name,
        payments: done,
        elapsed,
        p50: pick(0.5),
        p99: pick(0.99),
        max: pick(1.0),
        notes,
    })
}

/// One payer's loop: `share` payments, each awaited; returns how many
/// were acknowledged and their latencies in microseconds.
fn pay_share<E: Engine>(
    engine: &E,
    work: &Workload,
    moved: &[AtomicI64],
    index: u64,
    share: u64,
) -> Result<(u64, Vec<u32>)> {
    let mut payer = engine.payer()?;
    let mut rng = Rng::new(0x9e11_5eed ^ index.wrapping_mul(0x1000_0001));
    let n = work.purses as u64;
    ensure!(n >= 2, "a ledger needs two purses");
    let mut latencies = Vec::with_capacity(share as usize);
    for _ in 0..share {
        let from = rng.below(n) as usize;
        let to = (from + 1 + rng.below(n - 1) as usize) % n as usize;
        let amount = 1 + rng.below(100);
        let t = Instant::now();
        payer
            .pay(from, to, amount)
            .with_context(|| format!("payment of {amount} from {from} to {to}"))?;
        latencies.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
        let a = i64::try_from(amount)?;
        moved[from].fetch_sub(a, Ordering::Relaxed);
        moved[to].fetch_add(a, Ordering::Relaxed);
    }
    Ok((share, latencies))
}

fn check_balances(
    name: &str,
    when: &str,
    got: &[u64],
    expected: &[u64],
    work: &Workload,
) -> Result<()> {
    ensure!(
        got.len() == expected.len(),
        "{name} ({when}): {} purses, expected {}",
        got.len(),
        expected.len()
    );
    let supply: u128 = got.iter().map(|&b| u128::from(b)).sum();
    let want = u128::from(work.initial) * work.purses as u128;
    ensure!(
        supply == want,
        "{name} ({when}): total supply {supply}, expected {want}"
    );
    if let Some(i) = (0..got.len()).find(|&i| got[i] != expected[i]) {
        let wrong = (0..got.len()).filter(|&i| got[i] != expected[i]).count();
        bail!(
            "{name} ({when}): {wrong} purses differ from the acknowledged payments; purse {i} holds {}, expected {}",
            got[i],
            expected[i]
        );
    }
    Ok(())
}

/// Formats the side-by-side table of `reports`, with each rate as a
/// multiple of the best rate among the engines whose name starts with
/// `baseline` (`sqlite`: the better of the SQLite variants).
pub fn table(reports: &[RunReport], baseline: &str) -> String {
    use std::fmt::Write;
    let base = reports
        .iter()
        .filter(|r| r.engine.starts_with(baseline))
        .map(RunReport::rate)
        .reduce(f64::max);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<13} {:>9} {:>10} {:>13} {:>9} {:>9} {:>9}",
        "engine",
        "payments",
        "durable/s",
        format!("× best {baseline}"),
        "p50",
        "p99",
        "max"
    );
    for r in reports {
        let ratio = base.map_or("-".to_string(), |b| format!("{:.2}", r.rate() / b));
        let _ = writeln!(
            out,
            "{:<13} {:>9} {:>10.0} {:>13} {:>9} {:>9} {:>9}",
            r.engine,
            r.payments,
            r.rate(),
            ratio,
            micros(r.p50),
            micros(r.p99),
            micros(r.max)
        );
    }
    for r in reports {
        for n in &r.notes {
            let _ = writeln!(out, "  {}: {n}", r.engine);
        }
    }
    out
}

/// A duration as microseconds or milliseconds, for the table.
pub fn micros(d: Duration) -> String {
    let us = d.as_micros();
    if us >= 10_000 {
        format!("{:.1} ms", d.as_secs_f64() * 1e3)
    } else {
        format!("{us} µs")
    }
}
