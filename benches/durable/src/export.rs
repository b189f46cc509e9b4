//! Export and import of a large store: builds a store of about `mb`
//! megabytes (vat objects of a few KB each, in a few instances, written
//! through the `Backend` API in large batches), then times
//! [`Store::export`] to a file (synced) and [`Store::import`] from it
//! (which writes a new store, syncs it, and opens it with the full
//! checksum check). The imported store is checked against the original:
//! the same instances, tables and rows, and a sample of object records
//! byte for byte.

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, ensure};
use pola_store::{ExportStats, Store};
use pola_vat::backend::{Backend, Batch};

use crate::Rng;

/// Bytes of one object record.
pub const RECORD: usize = 4000;
/// Vat instances the objects are spread over.
pub const INSTANCES: u64 = 4;
/// Objects per write batch.
const PER_BATCH: u64 = 1024;
/// Records compared byte for byte after the import.
const SAMPLE: u64 = 2000;

/// What the export/import run measured.
#[derive(Debug, Clone)]
pub struct ExportReport {
    /// Object records written.
    pub objects: u64,
    /// Payload bytes written (records only).
    pub payload: u64,
    /// Size of the store file.
    pub store_bytes: u64,
    /// Time to build the store (durable batches).
    pub build: Duration,
    /// Time to open the built store (full checksum check).
    pub open: Duration,
    /// What the export wrote.
    pub stats: ExportStats,
    /// Time to export to `io::sink` (no disk: reading and encoding).
    pub export_sink: Duration,
    /// Time to export to the file and sync it.
    pub export: Duration,
    /// Time to copy the export file to a new file and sync it (what the
    /// disk allows for these bytes: a reference, not pola).
    pub copy: Duration,
    /// Size of the export file.
    pub export_bytes: u64,
    /// Time to import (write, sync, publish and open the new store).
    pub import: Duration,
    /// Size of the imported store file.
    pub imported_bytes: u64,
}

/// The record of object `id` of instance `vat`: bytes that depend on
/// both, so a record in the wrong place is seen.
pub fn record(vat: u64, id: u64) -> Vec<u8> {
    let mut rng = Rng::new((vat << 48) ^ id ^ 0x5eed_0000_0000);
    let mut out = Vec::with_capacity(RECORD + 8);
    while out.len() < RECORD {
        out.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    out.truncate(RECORD);
    out
}

fn instance(v: u64) -> String {
    format!("vat{v}")
}

fn err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("{e}")
}

/// Builds a store of about `mb` MB of records in `dir`, exports it,
/// imports the export, checks the copy, and reports the times.
///
/// # Errors
/// Any step fails, or the imported store differs from the original.
pub fn run(dir: &Path, mb: u64) -> Result<ExportReport> {
    let original = dir.join("original.redb");
    let exported = dir.join("store.pola-export");
    let imported = dir.join("imported.redb");
    let objects = (mb << 20) / RECORD as u64;
    let per_vat = objects.div_ceil(INSTANCES);

    let start = Instant::now();
    let store = Store::open(&original).map_err(err)?;
    for v in 0..INSTANCES {
        let mut backend = store.vat(&instance(v)).map_err(err)?;
        backend.open().map_err(err)?;
        let mut id = 0;
        while id < per_vat {
            let end = (id + PER_BATCH).min(per_vat);
            backend
                .write(&Batch {
                    objects: (id..end).map(|i| (i, record(v, i))).collect(),
                    roots: if id == 0 {
                        vec![("first".to_string(), Some(0))]
                    } else {
                        Vec::new()
                    },
                    next_id: end,
                    ..Batch::default()
                })
                .map_err(err)?;
            id = end;
        }
    }
    store.close().map_err(err)?;
    let build = start.elapsed();
    let store_bytes = std::fs::metadata(&original)?.len();

    let t = Instant::now();
    let store = Store::open(&original).map_err(err)?;
    let open = t.elapsed();

    let t = Instant::now();
    let sunk = store.export(&mut std::io::sink(), None).map_err(err)?;
    let export_sink = t.elapsed();

    let t = Instant::now();
    let file = File::create(&exported).context("create the export file")?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let stats = store.export(&mut out, None).map_err(err)?;
    let file = out
        .into_inner()
        .map_err(|e| anyhow!("flush: {}", e.error()))?;
    file.sync_all().context("sync the export file")?;
    let export = t.elapsed();
    let export_bytes = std::fs::metadata(&exported)?.len();
    ensure!(
        export_bytes == stats.bytes,
        "the export says {} bytes, the file has {export_bytes}",
        stats.bytes
    );
    ensure!(
        sunk == stats,
        "two exports of one store differ: {sunk:?}, {stats:?}"
    );

    let t = Instant::now();
    let copy_path = dir.join("copy");
    let mut copy_file = File::create(&copy_path)?;
    std::io::copy(&mut File::open(&exported)?, &mut copy_file)?;
    copy_file.sync_all()?;
    let copy = t.elapsed();
    drop(copy_file);
    std::fs::remove_file(&copy_path)?;

    let t = Instant::now();
    let mut input = BufReader::with_capacity(1 << 20, File::open(&exported)?);
    let got = Store::import(&mut input, &imported).map_err(err)?;
    let import = t.elapsed();
    ensure!(
        got.stats.instances == stats.instances
            && got.stats.tables == stats.tables
            && got.stats.rows == stats.rows,
        "import read {:?}, export wrote {stats:?}",
        got.stats
    );
    ensure!(
        got.store.instances().map_err(err)? == store.instances().map_err(err)?,
        "the imported store has other instances"
    );
    check_sample(&got.store, per_vat)?;
    got.store.close().map_err(err)?;
    store.close().map_err(err)?;
    let imported_bytes = std::fs::metadata(&imported)?.len();
    Ok(ExportReport {
        objects: per_vat * INSTANCES,
        payload: per_vat * INSTANCES * RECORD as u64,
        store_bytes,
        build,
        open,
        stats,
        export_sink,
        export,
        copy,
        export_bytes,
        import,
        imported_bytes,
    })
}

/// Compares a random sample of records (and each instance's last one,
/// and a missing one past the end) with what was written.
fn check_sample(store: &Store, per_vat: u64) -> Result<()> {
    let mut rng = Rng::new(7);
    for v in 0..INSTANCES {
        let mut backend = store.vat(&instance(v)).map_err(err)?;
        let opened = backend.open().map_err(err)?;
        ensure!(
            opened.next_id == per_vat && opened.roots.get("first") == Some(&0),
            "instance {v}: counter {} and roots {:?} after import",
            opened.next_id,
            opened.roots
        );
        let ids = (0..SAMPLE / INSTANCES)
            .map(|_| rng.below(per_vat))
            .chain([per_vat - 1]);
        for id in ids {
            let got = backend.load(id).map_err(err)?;
            ensure!(
                got.as_deref() == Some(record(v, id).as_slice()),
                "instance {v}, object {id}: imported record differs"
            );
        }
        ensure!(
            backend.load(per_vat).map_err(err)?.is_none(),
            "instance {v}: an object past the end after import"
        );
    }
    Ok(())
}

/// MB/s (10^6 bytes per second) of `bytes` in `d`.
pub fn mb_per_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64()
}

/// The report as a table.
pub fn table(r: &ExportReport) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let mb = |b: u64| b as f64 / 1e6;
    let _ = writeln!(
        out,
        "store: {} objects of {RECORD} B in {INSTANCES} instances = {:.0} MB payload; store file {:.0} MB; export file {:.0} MB; imported store file {:.0} MB",
        r.objects,
        mb(r.payload),
        mb(r.store_bytes),
        mb(r.export_bytes),
        mb(r.imported_bytes)
    );
    let _ = writeln!(out, "{:<34} {:>9} {:>9}  of", "step", "time", "MB/s");
    let mut row = |step: &str, d: Duration, bytes: u64, of: &str| {
        let _ = writeln!(
            out,
            "{:<34} {:>7.2} s {:>9.0}  {of}",
            step,
            d.as_secs_f64(),
            mb_per_s(bytes, d)
        );
    };
    let (e, store) = (r.export_bytes, r.store_bytes);
    row(
        "build (durable batches of 1024)",
        r.build,
        r.payload,
        "payload",
    );
    row("open (full checksum check)", r.open, store, "store file");
    row("export to io::sink (no disk)", r.export_sink, e, "export");
    row("export to a file + fsync", r.export, e, "export");
    row("import (+ fsync, open check)", r.import, e, "export");
    row("reference: cp export + fsync", r.copy, e, "export");
    out
}
