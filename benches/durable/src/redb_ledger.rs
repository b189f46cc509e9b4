//! The ledger on redb directly: one table `purses` (`u64` id → `u64`
//! balance), one durable write transaction per payment (redb's default
//! `Durability::Immediate`: committed means fsync'd). redb runs write
//! transactions one at a time; the payers queue for them inside
//! `begin_write`. The *serial* variant ([`RedbLedger::serial`]) queues
//! them on a mutex of the application's instead (a waiter is woken one at
//! a time), to show what the engine does without that queue.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail, ensure};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::payments::{Engine, Payer};

const PURSES: TableDefinition<'_, u64, u64> = TableDefinition::new("purses");

/// The redb engine: the database.
#[derive(Debug)]
pub struct RedbLedger {
    path: PathBuf,
    db: Database,
    purses: usize,
    serial: Option<Mutex<()>>,
}

impl RedbLedger {
    /// Makes a new database at `path` with `purses` purses of `initial`
    /// each (one transaction; setup, not timed).
    ///
    /// # Errors
    /// redb fails.
    pub fn create(path: &Path, purses: usize, initial: u64) -> Result<RedbLedger> {
        let db = Database::create(path).with_context(|| format!("create {}", path.display()))?;
        let txn = db.begin_write()?;
        {
            let mut t = txn.open_table(PURSES)?;
            for i in 0..purses as u64 {
                t.insert(i, initial)?;
            }
        }
        txn.commit()?;
        Ok(RedbLedger {
            path: path.to_path_buf(),
            db,
            purses,
            serial: None,
        })
    }

    /// Makes the ledger as [`RedbLedger::create`] does, for payers that
    /// take turns on a mutex before each write transaction.
    ///
    /// # Errors
    /// redb fails.
    pub fn serial(path: &Path, purses: usize, initial: u64) -> Result<RedbLedger> {
        let mut l = RedbLedger::create(path, purses, initial)?;
        l.serial = Some(Mutex::new(()));
        Ok(l)
    }
}

fn read_balances(db: &Database, purses: usize) -> Result<Vec<u64>> {
    let txn = db.begin_read()?;
    let t = txn.open_table(PURSES)?;
    let mut out = Vec::with_capacity(purses);
    for (i, row) in t.iter()?.enumerate() {
        let (k, v) = row?;
        ensure!(k.value() == i as u64, "purse ids are not 0..n");
        out.push(v.value());
    }
    Ok(out)
}

/// A payer of the redb engine (the database is shared by all).
#[derive(Debug)]
pub struct RedbPayer<'a> {
    db: &'a Database,
    serial: Option<&'a Mutex<()>>,
}

impl Payer for RedbPayer<'_> {
    fn pay(&mut self, from: usize, to: usize, amount: u64) -> Result<()> {
        let _turn = self
            .serial
            .map(|m| m.lock().unwrap_or_else(|p| p.into_inner()));
        let (from, to) = (from as u64, to as u64);
        let txn = self.db.begin_write()?;
        {
            let mut t = txn.open_table(PURSES)?;
            let a = t.get(from)?.map(|v| v.value()).context("no such purse")?;
            let Some(a) = a.checked_sub(amount) else {
                drop(t);
                txn.abort()?;
                bail!("insufficient funds");
            };
            let b = t.get(to)?.map(|v| v.value()).context("no such purse")?;
            let b = b
                .checked_add(amount)
                .ok_or_else(|| anyhow!("balance overflow"))?;
            t.insert(from, a)?;
            t.insert(to, b)?;
        }
        txn.commit()?;
        Ok(())
    }
}

impl Engine for RedbLedger {
    type Payer<'a> = RedbPayer<'a>;

    fn name(&self) -> &'static str {
        if self.serial.is_some() {
            "redb-serial"
        } else {
            "redb"
        }
    }

    fn payer(&self) -> Result<RedbPayer<'_>> {
        Ok(RedbPayer {
            db: &self.db,
            serial: self.serial.as_ref(),
        })
    }

    fn balances(&self) -> Result<Vec<u64>> {
        read_balances(&self.db, self.purses)
    }

    fn reopen_balances(self) -> Result<Vec<u64>> {
        let RedbLedger {
            path, db, purses, ..
        } = self;
        drop(db);
        let db = Database::open(&path).with_context(|| format!("open {}", path.display()))?;
        read_balances(&db, purses)
    }

    fn notes(&self, _elapsed: Duration) -> Vec<String> {
        vec![if self.serial.is_some() {
            "one durable write transaction per payment; payers take turns on a mutex".to_string()
        } else {
            "one durable write transaction per payment; payers wait in redb's begin_write"
                .to_string()
        }]
    }
}
