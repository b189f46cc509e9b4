//! pola-store benchmarks: durable writes of small batches (one fsync'd
//! transaction each), group-committed batches, export throughput of a
//! ~100 MB store, the cost of opening it (the full checksum check), and
//! instance savepoints and rollbacks of a 10 000-object instance.
//!
//! Run: `cargo bench -p pola-store`.

use std::path::PathBuf;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pola_store::Store;
use pola_vat::backend::{Backend, Batch};

struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let dir =
            std::env::temp_dir().join(format!("pola-store-bench-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        Dir(dir)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const RECORD: &[u8; 60] = b"<pola:object 'counter 1 {count: 12345, owner: <pola:ref 7>}>";

fn writes(c: &mut Criterion) {
    let dir = Dir::new("writes");
    let store = Store::open(&dir.0.join("w.store")).expect("open");
    let mut vat = store.vat("bench").expect("vat");
    let mut next = vat.open().expect("open").next_id;

    let mut g = c.benchmark_group("durable_write");
    g.sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    g.throughput(Throughput::Elements(1));
    g.bench_function("1 object of 60 B per transaction", |b| {
        b.iter(|| {
            let id = next % 4096;
            next += 1;
            vat.write(&Batch {
                objects: vec![(id, RECORD.to_vec())],
                next_id: next,
                ..Batch::default()
            })
            .expect("write");
        })
    });
    g.throughput(Throughput::Elements(64));
    g.bench_function("64 objects of 60 B per transaction", |b| {
        b.iter(|| {
            let objects = (0..64)
                .map(|_| {
                    let id = next % 4096;
                    next += 1;
                    (id, RECORD.to_vec())
                })
                .collect();
            vat.write(&Batch {
                objects,
                next_id: next,
                ..Batch::default()
            })
            .expect("write");
        })
    });
    g.finish();
}

fn export(c: &mut Criterion) {
    let dir = Dir::new("export");
    let path = dir.0.join("big.store");
    let store = Store::open(&path).expect("open");
    // ~100 MB: 1600 objects of 62 KiB (so each fits a 64 KiB engine
    // allocation), in 4 instances, 25 batches each.
    let record = vec![0x5a_u8; 62 << 10];
    for v in 0..4 {
        let mut vat = store.vat(&format!("vat{v}")).expect("vat");
        vat.open().expect("open");
        for batch in 0..25u64 {
            vat.write(&Batch {
                objects: (0..16).map(|i| (batch * 16 + i, record.clone())).collect(),
                next_id: batch * 16 + 16,
                ..Batch::default()
            })
            .expect("write");
        }
    }
    let mut sink = Vec::new();
    let stats = store.export(&mut sink, None).expect("export");
    let exported = stats.bytes;
    drop(sink);

    let mut g = c.benchmark_group("store_100MB");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(6));
    g.throughput(Throughput::Bytes(exported));
    g.bench_function("export", |b| {
        b.iter(|| store.export(&mut std::io::sink(), None).expect("export"))
    });
    store.close().expect("close");
    let file_len = std::fs::metadata(&path).expect("stat").len();
    eprintln!("store file: {file_len} bytes; export: {exported} bytes");
    g.throughput(Throughput::Bytes(file_len));
    g.bench_function("open (full checksum check)", |b| {
        b.iter(|| Store::open(&path).expect("open"))
    });
    g.finish();
}

/// Instance savepoints of a 10 000-object instance (200 B records, ~2 MB):
/// the copy into the savepoint (with its delete), and a rollback.
fn instance_savepoints(c: &mut Criterion) {
    let dir = Dir::new("isave");
    let store = Store::open(&dir.0.join("isave.store")).expect("open");
    let record = vec![0x5a_u8; 200];
    {
        let mut vat = store.vat("ledger").expect("vat");
        vat.open().expect("open");
        for batch in 0..100u64 {
            vat.write(&Batch {
                objects: (0..100)
                    .map(|i| (batch * 100 + i, record.clone()))
                    .collect(),
                roots: vec![(format!("r{batch}"), Some(batch * 100))],
                next_id: batch * 100 + 100,
                ..Batch::default()
            })
            .expect("write");
        }
    }
    store
        .savepoint_instance("ledger", "base")
        .expect("savepoint");
    let mut g = c.benchmark_group("instance_savepoint_10k_objects");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(6));
    g.throughput(Throughput::Elements(10_000));
    g.bench_function("savepoint_instance + delete", |b| {
        b.iter(|| {
            store.savepoint_instance("ledger", "b").expect("savepoint");
            store
                .delete_instance_savepoint("ledger", "b")
                .expect("delete");
        })
    });
    g.bench_function("rollback_instance", |b| {
        b.iter(|| store.rollback_instance("ledger", "base").expect("rollback"))
    });
    g.finish();
}

criterion_group!(benches, writes, export, instance_savepoints);
criterion_main!(benches);
