//! Export and import of a large store (issue #9, section 6): MB/s of
//! `Store::export` to a file and `Store::import` from it, with the copy
//! checked. See `pola_bench_durable::export`.
//!
//! Run: `cargo bench -p pola-bench-durable --bench export`.
//! Environment: `POLA_BENCH_EXPORT_MB` the store's payload in MB
//! [1024], `POLA_BENCH_DIR` a folder on a real disk with room for three
//! times that [the temporary folder; tmpfs is refused].
#![forbid(unsafe_code)]

use anyhow::Result;
use pola_bench_durable::disk::BenchDir;
use pola_bench_durable::{env_number, export};

fn main() -> Result<()> {
    if !std::env::args().any(|a| a == "--bench") {
        println!("export: run with `cargo bench` (skipped)");
        return Ok(());
    }
    let mb = env_number("POLA_BENCH_EXPORT_MB", 1024)?;
    let dir = BenchDir::new("export")?;
    println!(
        "export/import: about {mb} MB of records; files in {} ({})",
        dir.path().display(),
        dir.fs_type()
    );
    let report = export::run(dir.path(), mb)?;
    println!("imported store checked: same instances, tables, rows; sampled records identical");
    print!("{}", export::table(&report));
    Ok(())
}
