//! Durable-payment and export/import benchmarks of issue #9, section 6.
//!
//! Not a library anyone should depend on: the code the two `harness =
//! false` benches of this crate share (`cargo bench -p
//! pola-bench-durable`).
//!
//! - [`payments`]: one workload (a ledger of purses, many concurrent
//!   payers, each payment acknowledged only once it is on disk with
//!   fsync) run on three engines: a persistent pola vat on a
//!   `pola_store::Store` ([`pola_ledger`]), SQLite ([`sqlite_ledger`])
//!   and redb ([`redb_ledger`]). Every run ends with invariant checks
//!   (each acknowledged payment applied exactly once, supply conserved,
//!   the same balances read back after closing and reopening the files),
//!   so a run that measured nothing fails instead of printing a figure.
//!   On request, `pola-log` runs the same vat on [`log_bound`], a what-if
//!   backend (memory plus a synced append-only log) that bounds what a
//!   log-structured store would give.
//! - [`export`]: export and import of a large store, with the imported
//!   copy checked against the original.
//! - [`disk`]: where the files go, and a refusal of memory file systems
//!   (a durable benchmark on tmpfs measures no disk).
#![forbid(unsafe_code)]

pub mod disk;
pub mod export;
pub mod log_bound;
pub mod payments;
pub mod pola_ledger;
pub mod redb_ledger;
pub mod sqlite_ledger;

/// A small deterministic random generator (SplitMix64): workload choices
/// only, nothing secret.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`; the tiny modulo bias does not matter
    /// here).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// Reads a number from the environment variable `name`, or `default`.
///
/// # Errors
/// The variable is set but is not a number.
pub fn env_number(name: &str, default: u64) -> anyhow::Result<u64> {
    match std::env::var(name) {
        Ok(s) => s
            .trim()
            .replace('_', "")
            .parse()
            .map_err(|_| anyhow::anyhow!("{name}={s:?} is not a whole number")),
        Err(std::env::VarError::NotPresent) => Ok(default),
        Err(e) => Err(anyhow::anyhow!("{name}: {e}")),
    }
}
