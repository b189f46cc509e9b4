//! Shared helpers: a temp folder that removes itself, store fixtures.

use std::path::PathBuf;

use pola_store::Store;
use pola_vat::backend::{Backend, Batch};

pub use pola_testkit::TempDir;

/// Writes `n` objects (ids 0..n, record "obj-{i}" padded), one root per
/// object, in batches of 10, to instance `vat`.
pub fn fill(store: &Store, vat: &str, n: u64) {
    let mut b = store.vat(vat).expect("vat");
    b.open().expect("open");
    let mut i = 0;
    while i < n {
        let end = (i + 10).min(n);
        let batch = Batch {
            objects: (i..end).map(|j| (j, record(vat, j))).collect(),
            roots: (i..end).map(|j| (format!("root-{j}"), Some(j))).collect(),
            deletes: vec![],
            next_id: end,
        };
        b.write(&batch).expect("write");
        i = end;
    }
}

pub fn record(vat: &str, i: u64) -> Vec<u8> {
    format!("{vat}-object-{i:08}-{}", "x".repeat((i % 50) as usize)).into_bytes()
}

/// A small store with two instances, closed; returns its path.
pub fn small_store(dir: &TempDir) -> PathBuf {
    let path = dir.join("host.store");
    let store = Store::open(&path).expect("open");
    fill(&store, "alpha", 25);
    fill(&store, "beta", 5);
    store.close().expect("close");
    path
}

/// Every (instance, objects, roots, next_id) of a store, read through the
/// Backend seam.
pub type Dump = Vec<(String, Vec<(u64, Vec<u8>)>, Vec<(String, u64)>, u64)>;

pub fn dump(store: &Store) -> Dump {
    let mut out = Vec::new();
    for name in store.instances().expect("instances") {
        let mut b = store.vat(&name).expect("vat");
        let opened = b.open().expect("open");
        let mut objects = Vec::new();
        for id in 0..opened.next_id.max(1) + 5 {
            if let Some(r) = b.load(id).expect("load") {
                objects.push((id, r));
            }
        }
        out.push((
            name,
            objects,
            opened.roots.into_iter().collect(),
            opened.next_id,
        ));
    }
    out
}
