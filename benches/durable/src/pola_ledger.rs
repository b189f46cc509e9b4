//! The ledger as pola runs it: a persistent vat on a `pola_store::Store`,
//! the mint kinds of pola-apps, one purse per ledger entry (purse `i` is
//! the root `purse<i>`). A payment is `deposit(amount, source)` sent to
//! the destination purse from the payer's thread, which blocks on the
//! answer; the vat releases the answer only once the group-committed
//! batch holding the payment's turn is durable (output commit).
//!
//! The store's backend is wrapped in [`Counted`], which counts the
//! batches the vat writes (one entry appended to the store's write-ahead
//! log and fdatasynced, then applied to redb without a sync, each) and
//! the time spent in them: the figures that say where a payment's time
//! goes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, ensure};
use pola_apps::mint::{kinds as mint_kinds, new_mint};
use pola_store::Store;
use pola_vat::backend::{Backend, BackendError, Batch, Opened};
use pola_vat::persist::Kinds;
use pola_vat::{Ref, Val, Vat};

use crate::log_bound::LogBackend;
use crate::payments::{Engine, Payer};

/// How long a payer waits for one answer before the run fails.
const WAIT: Duration = Duration::from_secs(120);
/// Purses made per setup turn.
const CHUNK: usize = 10_000;
/// The vat instance's name in the store.
const INSTANCE: &str = "ledger";

/// Counts of what a [`Counted`] backend wrote.
#[derive(Debug, Default)]
pub struct WriteStats {
    /// Batches written (durable transactions).
    pub batches: AtomicU64,
    /// Object records written, over all batches.
    pub objects: AtomicU64,
    /// Largest batch, in object records.
    pub largest: AtomicU64,
    /// Time spent in `write`, in nanoseconds.
    pub nanos: AtomicU64,
}

impl WriteStats {
    fn snapshot(&self) -> [u64; 3] {
        [
            self.batches.load(Ordering::Relaxed),
            self.objects.load(Ordering::Relaxed),
            self.nanos.load(Ordering::Relaxed),
        ]
    }
}

/// A backend that counts the batches written through it.
#[derive(Debug)]
pub struct Counted<B> {
    inner: B,
    stats: Arc<WriteStats>,
}

impl<B: Backend> Counted<B> {
    /// Wraps `inner`, counting into `stats`.
    pub fn new(inner: B, stats: Arc<WriteStats>) -> Counted<B> {
        Counted { inner, stats }
    }
}

impl<B: Backend> Backend for Counted<B> {
    fn open(&mut self) -> Result<Opened, BackendError> {
        self.inner.open()
    }

    fn load(&mut self, id: u64) -> Result<Option<Vec<u8>>, BackendError> {
        self.inner.load(id)
    }

    fn ids(&mut self) -> Result<Vec<u64>, BackendError> {
        self.inner.ids()
    }

    fn write(&mut self, batch: &Batch) -> Result<(), BackendError> {
        let t = Instant::now();
        let r = self.inner.write(batch);
        let s = &self.stats;
        s.nanos.fetch_add(
            u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        s.batches.fetch_add(1, Ordering::Relaxed);
        let n = batch.objects.len() as u64;
        s.objects.fetch_add(n, Ordering::Relaxed);
        s.largest.fetch_max(n, Ordering::Relaxed);
        r
    }
}

/// What the vat's backend is.
enum Files {
    /// A `pola_store::Store` (the real thing).
    Store(Store),
    /// The what-if log of [`crate::log_bound`].
    Log,
}

/// The pola engine: a store, its persistent vat, and the purses.
pub struct PolaLedger {
    path: PathBuf,
    files: Files,
    vat: Vat,
    purses: Arc<Vec<Ref>>,
    stats: Arc<WriteStats>,
    /// Counts at the end of setup (payments are measured from there).
    base: [u64; 3],
}

fn kinds() -> Kinds {
    let mut k = Kinds::new();
    mint_kinds(&mut k, None);
    k
}

fn open_vat(files: &Files, path: &Path, stats: &Arc<WriteStats>) -> Result<Vat> {
    let opened = match files {
        Files::Store(store) => Vat::open(
            INSTANCE,
            Counted::new(
                store.vat(INSTANCE).map_err(|e| anyhow!("{e}"))?,
                stats.clone(),
            ),
            kinds(),
        ),
        Files::Log => Vat::open(
            INSTANCE,
            Counted::new(LogBackend::open(path)?, stats.clone()),
            kinds(),
        ),
    };
    opened.map_err(|e| anyhow!("open the vat: {e}"))
}

fn as_ref(v: &Val) -> Result<Ref> {
    v.as_ref()
        .cloned()
        .ok_or_else(|| anyhow!("expected a reference, got {v:?}"))
}

impl PolaLedger {
    /// Makes a new store at `path` with a mint and `purses` purses of
    /// `initial` each (setup: a few large turns, not timed by the bench).
    ///
    /// # Errors
    /// The store or the vat fails.
    pub fn create(path: &Path, purses: usize, initial: u64) -> Result<PolaLedger> {
        let store = Store::open(path).map_err(|e| anyhow!("{e}"))?;
        PolaLedger::make(path, Files::Store(store), purses, initial)
    }

    /// Makes the ledger as [`PolaLedger::create`] does, but on the
    /// what-if log of [`crate::log_bound`] (an upper bound, not a store).
    ///
    /// # Errors
    /// The log or the vat fails.
    pub fn create_on_log(path: &Path, purses: usize, initial: u64) -> Result<PolaLedger> {
        PolaLedger::make(path, Files::Log, purses, initial)
    }

    fn make(path: &Path, files: Files, purses: usize, initial: u64) -> Result<PolaLedger> {
        let stats = Arc::new(WriteStats::default());
        let vat = open_vat(&files, path, &stats)?;
        let made = vat.run(|cx| {
            let mint = new_mint(cx, None);
            cx.set_root("mint", Some(&mint))?;
            Ok(Val::Ref(mint))
        });
        let mint = as_ref(&vat.block_on(&made, WAIT)?)?;
        let mut refs = Vec::with_capacity(purses);
        for start in (0..purses).step_by(CHUNK) {
            let end = (start + CHUNK).min(purses);
            let mint = mint.clone();
            let made = vat.run(move |cx| {
                let mut out = Vec::with_capacity(end - start);
                for i in start..end {
                    let purse = cx.call(&mint, "make_purse", vec![Val::int(initial)])?;
                    if let Val::Ref(r) = &purse {
                        cx.set_root(&format!("purse{i}"), Some(r))?;
                    }
                    out.push(purse);
                }
                Ok(Val::List(out))
            });
            let list = vat.block_on(&made, WAIT)?;
            for v in list.as_list().unwrap_or_default() {
                refs.push(as_ref(v)?);
            }
        }
        ensure!(
            refs.len() == purses,
            "made {} purses of {purses}",
            refs.len()
        );
        let base = stats.snapshot();
        stats.largest.store(0, Ordering::Relaxed);
        Ok(PolaLedger {
            path: path.to_path_buf(),
            files,
            vat,
            purses: Arc::new(refs),
            stats,
            base,
        })
    }
}

/// Every purse's balance, asked in one turn of `vat`.
fn read_balances(vat: &Vat, purses: Arc<Vec<Ref>>) -> Result<Vec<u64>> {
    let asked = vat.run(move |cx| {
        let mut out = Vec::with_capacity(purses.len());
        for p in purses.iter() {
            out.push(cx.call(p, "balance", Vec::new())?);
        }
        Ok(Val::List(out))
    });
    let list = vat.block_on(&asked, WAIT)?;
    list.as_list()
        .unwrap_or_default()
        .iter()
        .map(|v| {
            v.as_i64()
                .and_then(|n| u64::try_from(n).ok())
                .ok_or_else(|| anyhow!("a balance that is not an amount: {v:?}"))
        })
        .collect()
}

/// A payer of the pola engine: a vat handle and the purse refs.
pub struct PolaPayer<'a> {
    ledger: &'a PolaLedger,
}

impl Payer for PolaPayer<'_> {
    fn pay(&mut self, from: usize, to: usize, amount: u64) -> Result<()> {
        let l = self.ledger;
        let (src, dst) = (
            l.purses.get(from).context("no such purse")?,
            l.purses.get(to).context("no such purse")?,
        );
        let answer = l.vat.send(
            dst,
            "deposit",
            vec![Val::int(amount), Val::Ref(src.clone())],
        );
        let got = l.vat.block_on(&answer, WAIT)?;
        ensure!(
            got.as_i64() == i64::try_from(amount).ok(),
            "deposit answered {got:?}"
        );
        Ok(())
    }
}

impl Engine for PolaLedger {
    type Payer<'a> = PolaPayer<'a>;

    fn name(&self) -> &'static str {
        match self.files {
            Files::Store(_) => "pola",
            Files::Log => "pola-log",
        }
    }

    fn payer(&self) -> Result<PolaPayer<'_>> {
        Ok(PolaPayer { ledger: self })
    }

    fn balances(&self) -> Result<Vec<u64>> {
        read_balances(&self.vat, self.purses.clone())
    }

    fn reopen_balances(self) -> Result<Vec<u64>> {
        let PolaLedger {
            path,
            files,
            vat,
            purses,
            ..
        } = self;
        let n = purses.len();
        drop(purses);
        vat.shutdown();
        if let Some(e) = vat.storage_error() {
            return Err(anyhow!("the store failed: {e}"));
        }
        drop(vat);
        let files = match files {
            Files::Store(store) => {
                store.close().map_err(|e| anyhow!("close: {e}"))?;
                Files::Store(Store::open(&path).map_err(|e| anyhow!("{e}"))?)
            }
            Files::Log => Files::Log,
        };
        let vat = open_vat(&files, &path, &Arc::new(WriteStats::default()))?;
        let purses: Vec<Ref> = (0..n)
            .map(|i| {
                vat.root(&format!("purse{i}"))
                    .ok_or_else(|| anyhow!("the reopened store has no purse{i}"))
            })
            .collect::<Result<_>>()?;
        let got = read_balances(&vat, Arc::new(purses));
        vat.shutdown();
        got
    }

    fn notes(&self, elapsed: Duration) -> Vec<String> {
        let [b, o, ns] = self.stats.snapshot();
        let [b0, o0, ns0] = self.base;
        let (batches, objects, nanos) = (b - b0, o - o0, ns - ns0);
        let secs = elapsed.as_secs_f64();
        let per = |x: u64| x as f64 / batches.max(1) as f64;
        vec![
            format!(
                "{batches} durable batches ({:.0}/s), {:.1} object records per batch ({:.1} payments at 2 records each; largest {})",
                batches as f64 / secs,
                per(objects),
                per(objects) / 2.0,
                self.stats.largest.load(Ordering::Relaxed),
            ),
            format!(
                "store writes {:.0} µs per batch, {:.0} % of the wall time on the vat's thread",
                per(nanos) / 1e3,
                nanos as f64 / 1e9 / secs * 100.0
            ),
        ]
    }
}

/// What the store alone costs for the ledger's write pattern: durable
/// batches of `per_batch` small records (32 bytes, like a purse's
/// account) at random ids among `records` stored ones, written straight
/// through the vat's `Backend` API (no vat). Returns the mean time per
/// batch.
///
/// # Errors
/// The store fails.
pub fn store_alone(path: &Path, records: u64, per_batch: u64, batches: u64) -> Result<Duration> {
    let store = Store::open(path).map_err(|e| anyhow!("{e}"))?;
    let mut backend = store.vat(INSTANCE).map_err(|e| anyhow!("{e}"))?;
    backend.open().map_err(|e| anyhow!("{e}"))?;
    let record = vec![0x42u8; 32];
    for start in (0..records).step_by(10_000) {
        let end = (start + 10_000).min(records);
        backend
            .write(&Batch {
                objects: (start..end).map(|i| (i, record.clone())).collect(),
                next_id: end,
                ..Batch::default()
            })
            .map_err(|e| anyhow!("{e}"))?;
    }
    let mut rng = crate::Rng::new(11);
    let t = Instant::now();
    for _ in 0..batches {
        backend
            .write(&Batch {
                objects: (0..per_batch)
                    .map(|_| (rng.below(records), record.clone()))
                    .collect(),
                next_id: records,
                ..Batch::default()
            })
            .map_err(|e| anyhow!("{e}"))?;
    }
    let per = t.elapsed() / u32::try_from(batches.max(1))?;
    drop(backend);
    store.close().map_err(|e| anyhow!("{e}"))?;
    Ok(per)
}
