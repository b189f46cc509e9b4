//! The ledger on SQLite (bundled, via rusqlite): one table
//! `purses(id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)`, WAL
//! journal, `synchronous=FULL` (the WAL is synced at every commit), one
//! `BEGIN IMMEDIATE` transaction per payment (a guarded debit and a
//! credit), each payer with its own connection and a busy timeout.
//!
//! SQLite lets one writer in at a time; other connections wait in its busy
//! handler, which sleeps and retries (1, 2, 5, 10 ... 100 ms), so with many
//! connections the lock is often free while every waiter sleeps. The
//! *serial* variant ([`SqliteLedger::serial`]) is the fairer baseline: the
//! payers share one connection behind a mutex (still one transaction, so
//! one fsync, per payment), as an application that knows SQLite would do.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, ensure};
use rusqlite::{Connection, TransactionBehavior, params};

use crate::payments::{Engine, Payer};

/// How long a writer waits for the database lock before failing.
const BUSY: Duration = Duration::from_secs(60);

/// The SQLite engine: the database file.
#[derive(Debug)]
pub struct SqliteLedger {
    path: PathBuf,
    purses: usize,
    /// The one connection of the serial variant.
    shared: Option<Mutex<Connection>>,
}

fn connect(path: &Path) -> Result<Connection> {
    let c = Connection::open(path).with_context(|| format!("open {}", path.display()))?;
    c.busy_timeout(BUSY)?;
    let mode: String = c.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    ensure!(
        mode.eq_ignore_ascii_case("wal"),
        "journal mode {mode}, not WAL"
    );
    // Per connection: FULL syncs the WAL at every commit.
    c.execute_batch("PRAGMA synchronous=FULL")?;
    let sync: i64 = c.query_row("PRAGMA synchronous", [], |r| r.get(0))?;
    ensure!(sync == 2, "synchronous is {sync}, not FULL (2)");
    Ok(c)
}

impl SqliteLedger {
    /// Makes a new database at `path` with `purses` purses of `initial`
    /// each (one transaction; setup, not timed).
    ///
    /// # Errors
    /// SQLite fails.
    pub fn create(path: &Path, purses: usize, initial: u64) -> Result<SqliteLedger> {
        let mut c = connect(path)?;
        c.execute_batch("CREATE TABLE purses (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)")?;
        let tx = c.transaction()?;
        {
            let mut insert = tx.prepare("INSERT INTO purses (id, balance) VALUES (?1, ?2)")?;
            let initial = i64::try_from(initial)?;
            for i in 0..purses {
                insert.execute(params![i64::try_from(i)?, initial])?;
            }
        }
        tx.commit()?;
        c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")?;
        Ok(SqliteLedger {
            path: path.to_path_buf(),
            purses,
            shared: None,
        })
    }

    /// Makes the ledger as [`SqliteLedger::create`] does, for payers that
    /// share one connection behind a mutex.
    ///
    /// # Errors
    /// SQLite fails.
    pub fn serial(path: &Path, purses: usize, initial: u64) -> Result<SqliteLedger> {
        let mut l = SqliteLedger::create(path, purses, initial)?;
        l.shared = Some(Mutex::new(connect(path)?));
        Ok(l)
    }
}

fn read_balances(c: &Connection, purses: usize) -> Result<Vec<u64>> {
    let mut q = c.prepare("SELECT id, balance FROM purses ORDER BY id")?;
    let rows = q.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))?;
    let mut out = Vec::with_capacity(purses);
    for (i, row) in rows.enumerate() {
        let (id, balance) = row?;
        ensure!(id == i64::try_from(i)?, "purse ids are not 0..n");
        out.push(u64::try_from(balance).map_err(|_| anyhow!("negative balance {balance}"))?);
    }
    Ok(out)
}

/// A payer of the SQLite engine: its own connection, or the shared one.
#[derive(Debug)]
pub enum SqlitePayer<'a> {
    /// A connection of its own.
    Own(Connection),
    /// The serial variant's connection.
    Shared(&'a Mutex<Connection>),
}

impl Payer for SqlitePayer<'_> {
    fn pay(&mut self, from: usize, to: usize, amount: u64) -> Result<()> {
        let mut guard: MutexGuard<'_, Connection>;
        let c = match self {
            SqlitePayer::Own(c) => c,
            SqlitePayer::Shared(m) => {
                guard = m.lock().unwrap_or_else(|p| p.into_inner());
                &mut guard
            }
        };
        pay(c, from, to, amount)
    }
}

fn pay(c: &mut Connection, from: usize, to: usize, amount: u64) -> Result<()> {
    let amount = i64::try_from(amount)?;
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let debited = tx
        .prepare_cached("UPDATE purses SET balance = balance - ?1 WHERE id = ?2 AND balance >= ?1")?
        .execute(params![amount, i64::try_from(from)?])?;
    ensure!(debited == 1, "insufficient funds (or no such purse)");
    let credited = tx
        .prepare_cached("UPDATE purses SET balance = balance + ?1 WHERE id = ?2")?
        .execute(params![amount, i64::try_from(to)?])?;
    ensure!(credited == 1, "no such purse");
    tx.commit()?;
    Ok(())
}

impl Engine for SqliteLedger {
    type Payer<'a> = SqlitePayer<'a>;

    fn name(&self) -> &'static str {
        if self.shared.is_some() {
            "sqlite-serial"
        } else {
            "sqlite"
        }
    }

    fn payer(&self) -> Result<SqlitePayer<'_>> {
        Ok(match &self.shared {
            Some(m) => SqlitePayer::Shared(m),
            None => SqlitePayer::Own(connect(&self.path)?),
        })
    }

    fn balances(&self) -> Result<Vec<u64>> {
        read_balances(&connect(&self.path)?, self.purses)
    }

    fn reopen_balances(self) -> Result<Vec<u64>> {
        // Every connection is closed by now (the shared one here); a
        // fresh one reads the database and its WAL from the files.
        drop(self.shared);
        read_balances(&connect(&self.path)?, self.purses)
    }

    fn notes(&self, _elapsed: Duration) -> Vec<String> {
        vec![if self.shared.is_some() {
            "one WAL commit (fsync) per payment; payers share one connection behind a mutex"
                .to_string()
        } else {
            "one WAL commit (fsync) per payment; a connection per payer, waiting in SQLite's busy handler for the write lock".to_string()
        }]
    }
}
