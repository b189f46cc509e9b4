//! Batches written through `VatBackend` survive closing and reopening.

use std::collections::BTreeMap;

use pola_store::{Store, StoreError};
use pola_vat::backend::{Backend, Batch};

use crate::util::{TempDir, dump, fill, record};

#[test]
fn batches_roundtrip_across_reopen() {
    let dir = TempDir::new("roundtrip");
    let path = dir.join("host.store");
    let host_id;
    {
        let store = Store::open(&path).expect("open");
        host_id = store.host_id();
        let mut b = store.vat("desk").expect("vat");
        let opened = b.open().expect("open");
        assert_eq!(opened.next_id, 0);
        assert!(opened.roots.is_empty());
        b.write(&Batch {
            objects: vec![
                (0, b"zero".to_vec()),
                (1, b"one".to_vec()),
                (2, b"two".to_vec()),
            ],
            deletes: vec![],
            roots: vec![("main".into(), Some(0)), ("spare".into(), Some(2))],
            next_id: 3,
        })
        .expect("write 1");
        b.write(&Batch {
            objects: vec![(1, b"one, changed".to_vec()), (3, vec![0u8; 70_000])],
            deletes: vec![2],
            roots: vec![("spare".into(), None), ("big".into(), Some(3))],
            next_id: 4,
        })
        .expect("write 2");
        // A smaller next_id never moves the counter back.
        b.write(&Batch {
            next_id: 1,
            ..Batch::default()
        })
        .expect("write 3");
        assert_eq!(b.load(2).expect("load"), None);
        drop(b);
        store.close().expect("close");
    }
    let store = Store::open(&path).expect("reopen");
    assert_eq!(store.host_id(), host_id);
    assert_eq!(
        store.instances().expect("instances"),
        vec!["desk".to_string()]
    );
    let mut b = store.vat("desk").expect("vat");
    let opened = b.open().expect("open");
    assert_eq!(opened.next_id, 4);
    let roots: BTreeMap<String, u64> = [("main".to_string(), 0), ("big".to_string(), 3)]
        .into_iter()
        .collect();
    assert_eq!(opened.roots, roots);
    assert_eq!(b.load(0).expect("load"), Some(b"zero".to_vec()));
    assert_eq!(b.load(1).expect("load"), Some(b"one, changed".to_vec()));
    assert_eq!(b.load(2).expect("load"), None);
    assert_eq!(b.load(3).expect("load"), Some(vec![0u8; 70_000]));
    assert_eq!(b.load(99).expect("load"), None);
}

#[test]
fn instances_are_separate_and_droppable() {
    let dir = TempDir::new("instances");
    let path = dir.join("host.store");
    let store = Store::open(&path).expect("open");
    fill(&store, "alpha", 12);
    fill(&store, "beta", 3);
    assert_eq!(
        store.instances().expect("instances"),
        vec!["alpha".to_string(), "beta".to_string()]
    );
    {
        let mut beta = store.vat("beta").expect("vat");
        assert_eq!(beta.open().expect("open").next_id, 3);
        assert_eq!(beta.load(11).expect("load"), None);
        assert_eq!(beta.load(2).expect("load"), Some(record("beta", 2)));
        // While a backend is live, the name is taken and cannot be dropped.
        assert!(matches!(store.vat("beta"), Err(StoreError::InUse { .. })));
        assert!(matches!(
            store.drop_instance("beta"),
            Err(StoreError::InUse { .. })
        ));
    }
    assert!(store.drop_instance("beta").expect("drop"));
    assert!(!store.drop_instance("beta").expect("drop again"));
    assert_eq!(
        store.instances().expect("instances"),
        vec!["alpha".to_string()]
    );
    let mut beta = store.vat("beta").expect("vat");
    let opened = beta.open().expect("open");
    assert_eq!(opened.next_id, 0);
    assert!(opened.roots.is_empty());
    assert_eq!(beta.load(2).expect("load"), None);
}

#[test]
fn names_are_checked() {
    let dir = TempDir::new("names");
    let store = Store::open(&dir.join("host.store")).expect("open");
    for bad in ["", "a/b", "..\u{0}", "spa ce", "é", &"x".repeat(65)] {
        let err = store.vat(bad).expect_err("bad name");
        assert!(
            matches!(err, StoreError::InvalidName { .. }),
            "{bad:?}: {err:?}"
        );
        assert!(err.to_string().contains("host.store"));
    }
    for good in ["a", "A-b_c.d", "0", &"x".repeat(64), "..", "-"] {
        drop(store.vat(good).expect("good name"));
    }
}

#[test]
fn many_threads_write_through_one_store() {
    let dir = TempDir::new("threads");
    let path = dir.join("host.store");
    let store = Store::open(&path).expect("open");
    std::thread::scope(|s| {
        for t in 0..4 {
            let store = &store;
            s.spawn(move || fill(store, &format!("vat{t}"), 40));
        }
    });
    let before = dump(&store);
    assert_eq!(before.len(), 4);
    for (name, objects, roots, next_id) in &before {
        assert_eq!(objects.len(), 40, "{name}");
        assert_eq!(roots.len(), 40, "{name}");
        assert_eq!(*next_id, 40);
    }
    store.close().expect("close");
    let store = Store::open(&path).expect("reopen");
    assert_eq!(dump(&store), before);
}

#[test]
fn backend_moves_to_its_own_thread() {
    let dir = TempDir::new("send");
    let store = Store::open(&dir.join("host.store")).expect("open");
    let mut b = store.vat("mover").expect("vat");
    let handle = std::thread::spawn(move || {
        b.open().expect("open");
        b.write(&Batch {
            objects: vec![(5, b"five".to_vec())],
            next_id: 6,
            ..Batch::default()
        })
        .expect("write");
        b
    });
    let b = handle.join().expect("join");
    drop(b);
    let mut again = store.vat("mover").expect("vat after drop");
    assert_eq!(again.load(5).expect("load"), Some(b"five".to_vec()));
    // close refuses while a backend is live.
    let err = store.close().expect_err("close with live backend");
    assert!(matches!(err, StoreError::InUse { .. }));
    drop(again);
}
