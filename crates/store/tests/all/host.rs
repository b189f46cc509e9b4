//! The host table: durable rows, carried by whole-store exports (not by
//! instance exports), covered by savepoints, and checked on import.

use pola_store::{MAX_HOST_VALUE, Store, StoreError};

use crate::export::Forge;
use crate::util::{TempDir, fill};

#[test]
fn host_rows_persist_and_are_checked() {
    let dir = TempDir::new("host");
    let path = dir.join("host.store");
    {
        let store = Store::open(&path).expect("open");
        assert_eq!(store.host_get("identity").expect("get"), None);
        store.host_put("identity", Some(&[7; 32])).expect("put");
        store
            .host_put_all(&[("swiss/mint", Some(b"aa")), ("swiss/issuer", Some(b"bb"))])
            .expect("put all");
        store.host_put("gone", Some(b"x")).expect("put");
        store.host_put("gone", None).expect("delete");
        for bad in ["", "a b", "x\n", &"k".repeat(129)] {
            let err = store.host_put(bad, Some(b"v")).expect_err("bad key");
            assert!(matches!(err, StoreError::InvalidName { .. }), "{err:?}");
            assert!(store.host_get(bad).is_err());
        }
        let err = store
            .host_put("big", Some(&vec![0; MAX_HOST_VALUE + 1]))
            .expect_err("too large");
        assert!(matches!(err, StoreError::TooLarge { .. }), "{err:?}");
        // One bad row: nothing of the batch is written.
        assert!(
            store
                .host_put_all(&[("fine", Some(b"1")), ("not fine", Some(b"2"))])
                .is_err()
        );
        assert_eq!(store.host_get("fine").expect("get"), None);
    }
    let store = Store::open(&path).expect("reopen");
    assert_eq!(store.host_get("identity").expect("get"), Some(vec![7; 32]));
    assert_eq!(store.host_get("gone").expect("get"), None);
    assert_eq!(
        store.host_keys("swiss/").expect("keys"),
        vec!["swiss/issuer".to_string(), "swiss/mint".to_string()]
    );
    assert!(store.host_keys("nothing/").expect("keys").is_empty());
}

#[test]
fn exports_carry_host_rows_and_savepoints_cover_them() {
    let dir = TempDir::new("host-export");
    let mut store = Store::open(&dir.join("host.store")).expect("open");
    fill(&store, "serve", 3);
    store.host_put("identity", Some(&[1; 32])).expect("put");
    store.savepoint("one").expect("savepoint");
    store.host_put("identity", Some(&[2; 32])).expect("put");
    store.host_put("swiss/wallet", Some(b"ff")).expect("put");

    let mut whole = Vec::new();
    let stats = store.export(&mut whole, None).expect("export");
    assert_eq!(stats.instances, 1);
    assert_eq!(stats.tables, 4, "host + three vat tables");
    let copy = Store::import(&mut whole.as_slice(), &dir.join("copy.store")).expect("import");
    assert_eq!(
        copy.store.host_get("identity").expect("get"),
        Some(vec![2; 32])
    );
    assert_eq!(
        copy.store.host_get("swiss/wallet").expect("get"),
        Some(b"ff".to_vec())
    );

    // An instance export has no host rows.
    let mut one = Vec::new();
    store.export_instance("serve", &mut one).expect("export");
    assert!(!one.windows(4).any(|w| w == b"host"));

    store.rollback("one").expect("rollback");
    assert_eq!(store.host_get("identity").expect("get"), Some(vec![1; 32]));
    assert_eq!(store.host_get("swiss/wallet").expect("get"), None);
}

fn refused(dir: &TempDir, bytes: &[u8], want: &str) {
    let path = dir.join("target.store");
    let err = Store::import(&mut &bytes[..], &path).expect_err("must refuse");
    assert!(err.to_string().contains(want), "{err}");
    assert!(!path.exists(), "a refused import left a store");
}

#[test]
fn hostile_host_tables_are_refused() {
    let dir = TempDir::new("host-hostile");
    let base = || Forge::new(1).header(b'S', 1, "");
    // A host row with a bad key.
    let bad_key = base()
        .record(b'T', b"host")
        .row(b"no spaces", b"v")
        .end(1, 1)
        .sealed();
    refused(&dir, &bad_key, "host key");
    // A host value over the limit is refused before it is stored.
    let big = base()
        .record(b'T', b"host")
        .row(b"big", &vec![0; MAX_HOST_VALUE + 1])
        .end(1, 1)
        .sealed();
    refused(&dir, &big, "over the limit");
    // Rows out of order.
    let order = base()
        .record(b'T', b"host")
        .row(b"b", b"1")
        .row(b"a", b"2")
        .end(1, 2)
        .sealed();
    refused(&dir, &order, "increasing key order");
    // The host table after a vat table (names must increase).
    let late = base()
        .record(b'T', b"vat/a/meta")
        .row(b"next_id", &0u64.to_be_bytes())
        .record(b'T', b"host")
        .end(2, 1)
        .sealed();
    refused(&dir, &late, "strictly increasing order");
    // A host table in an instance export.
    let mut inst = Forge::new(1)
        .header(b'I', 1, "a")
        .record(b'T', b"host")
        .row(b"identity", &[0; 32])
        .record(b'T', b"vat/a/meta")
        .row(b"next_id", &0u64.to_be_bytes())
        .end(2, 2)
        .sealed();
    let store = Store::open(&dir.join("live.store")).expect("open");
    let err = store
        .import_instance(&mut inst.as_slice(), "a")
        .expect_err("refused");
    assert!(err.to_string().contains("host table"), "{err}");
    assert!(store.instances().expect("list").is_empty());
    // And a good one imports.
    inst = base()
        .record(b'T', b"host")
        .row(b"identity", &[9; 32])
        .end(1, 1)
        .sealed();
    let ok = Store::import(&mut inst.as_slice(), &dir.join("ok.store")).expect("import");
    assert_eq!(
        ok.store.host_get("identity").expect("get"),
        Some(vec![9; 32])
    );
}
