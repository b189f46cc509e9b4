//! Named savepoints of the whole store, and rollback.

use pola_store::{Store, StoreError};
use pola_vat::backend::{Backend, Batch};

use crate::util::{TempDir, dump, fill};

fn write_one(store: &Store, vat: &str, id: u64, bytes: &[u8]) {
    let mut b = store.vat(vat).expect("vat");
    let opened = b.open().expect("open");
    b.write(&Batch {
        objects: vec![(id, bytes.to_vec())],
        deletes: vec![0],
        roots: vec![("latest".into(), Some(id))],
        next_id: opened.next_id.max(id + 1),
    })
    .expect("write");
}

#[test]
fn rollback_restores_every_instance() {
    let dir = TempDir::new("savepoint");
    let path = dir.join("host.store");
    let mut store = Store::open(&path).expect("open");
    fill(&store, "alpha", 10);
    let at_s1 = dump(&store);
    let t0 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    store.savepoint("s1").expect("savepoint s1");
    write_one(&store, "alpha", 100, b"after s1");
    fill(&store, "gamma", 4);
    let at_s2 = dump(&store);
    store.savepoint("s2").expect("savepoint s2");
    write_one(&store, "alpha", 200, b"after s2");
    assert!(store.drop_instance("gamma").expect("drop"));

    let list = store.savepoints().expect("list");
    assert_eq!(
        list.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        ["s1", "s2"]
    );
    assert!(list.iter().all(|&(_, at)| at >= t0 && at <= t0 + 60));

    // Misuse is refused: duplicate and unknown names, live backends.
    assert!(matches!(
        store.savepoint("s1"),
        Err(StoreError::AlreadyExists { .. })
    ));
    assert!(matches!(
        store.rollback("nope"),
        Err(StoreError::NotFound { .. })
    ));
    {
        let live = store.vat("alpha").expect("vat");
        // rollback needs &mut Store, so a live backend is the only way to
        // hold the store, and it is refused.
        let err = store.rollback("s2").expect_err("live backend");
        assert!(matches!(err, StoreError::InUse { .. }), "{err:?}");
        drop(live);
    }

    store.rollback("s2").expect("rollback s2");
    assert_eq!(dump(&store), at_s2);
    store.rollback("s1").expect("rollback s1");
    assert_eq!(dump(&store), at_s1);
    // s2 was taken after s1, so it is gone; s1 stays usable.
    let names: Vec<String> = store
        .savepoints()
        .expect("list")
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names, ["s1"]);
    assert!(matches!(
        store.rollback("s2"),
        Err(StoreError::NotFound { .. })
    ));
    write_one(&store, "alpha", 300, b"after rollback");
    store.close().expect("close");

    // Savepoints persist across reopen.
    let mut store = Store::open(&path).expect("reopen");
    store.rollback("s1").expect("rollback after reopen");
    assert_eq!(dump(&store), at_s1);
    assert!(store.delete_savepoint("s1").expect("delete"));
    assert!(!store.delete_savepoint("s1").expect("delete again"));
    assert!(store.savepoints().expect("list").is_empty());
    store.savepoint("s1").expect("name reusable after delete");
}
