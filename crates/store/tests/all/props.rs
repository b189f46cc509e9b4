//! Properties: arbitrary bytes never panic an import, and export → import
//! round-trips every row.

use std::collections::BTreeMap;

use pola_store::{EXPORT_MAGIC, Store};
use pola_vat::backend::{Backend, Batch};
use proptest::prelude::*;

use crate::export::Forge;
use crate::util::{TempDir, dump};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Import `bytes`; it must fail (or, for a valid export, succeed) without
/// panicking, and a failure leaves no file.
fn import_never_panics(dir: &TempDir, bytes: &[u8]) {
    let path = dir.join("p.store");
    match Store::import(&mut &bytes[..], &path) {
        Ok(imported) => {
            drop(imported);
            std::fs::remove_file(&path).expect("remove");
        }
        Err(e) => {
            assert!(!path.exists(), "{e}");
            assert!(!dir.join("p.store.tmp").exists());
            let _ = e.to_string();
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..config() })]

    #[test]
    fn arbitrary_bytes_never_panic_import(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let dir = TempDir::new("prop-bytes");
        import_never_panics(&dir, &bytes);
    }

    #[test]
    fn arbitrary_records_after_a_valid_start_never_panic(
        records in proptest::collection::vec(
            (prop_oneof![Just(b'H'), Just(b'C'), Just(b'T'), Just(b'R'), Just(b'E'), any::<u8>()],
             proptest::collection::vec(any::<u8>(), 0..64)),
            0..12),
        seal in any::<bool>(),
        scope in prop_oneof![Just(b'S'), Just(b'I')],
    ) {
        let dir = TempDir::new("prop-records");
        let mut forge = Forge::new(1).header(scope, 1, if scope == b'I' { "x" } else { "" });
        for (tag, body) in &records {
            forge = forge.record(*tag, body);
        }
        let bytes = if seal { forge.sealed() } else { forge.0 };
        import_never_panics(&dir, &bytes);
        let store = Store::open(&dir.join("host.store")).expect("open");
        // A refused instance import changes nothing.
        let expected: Vec<String> = match store.import_instance(&mut bytes.as_slice(), "target") {
            Ok(_) => vec!["target".to_string()],
            Err(_) => vec![],
        };
        prop_assert_eq!(store.instances().expect("instances"), expected);
    }
}

/// A vat's contents: objects and roots.
fn vat_contents() -> impl Strategy<Value = (BTreeMap<u64, Vec<u8>>, BTreeMap<String, u64>)> {
    (
        proptest::collection::btree_map(
            prop_oneof![0u64..64, any::<u64>()],
            proptest::collection::vec(any::<u8>(), 0..300),
            0..20,
        ),
        proptest::collection::btree_map("\\PC{0,12}", any::<u64>(), 0..6),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..config() })]

    #[test]
    fn export_import_roundtrips_every_row(
        vats in proptest::collection::btree_map("[A-Za-z0-9._-]{1,10}", vat_contents(), 0..4),
        config_bytes in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..200)),
        mutate_at in any::<prop::sample::Index>(),
    ) {
        let dir = TempDir::new("prop-roundtrip");
        let store = Store::open(&dir.join("host.store")).expect("open");
        for (name, (objects, roots)) in &vats {
            let mut b = store.vat(name).expect("vat");
            b.open().expect("open");
            b.write(&Batch {
                objects: objects.iter().map(|(k, v)| (*k, v.clone())).collect(),
                deletes: vec![],
                roots: roots.iter().map(|(k, v)| (k.clone(), Some(*v))).collect(),
                next_id: objects.keys().max().map_or(0, |m| m.saturating_add(1)),
            }).expect("write");
        }
        let mut bytes = Vec::new();
        let stats = store.export(&mut bytes, config_bytes.as_deref()).expect("export");
        prop_assert!(bytes.starts_with(EXPORT_MAGIC));
        let imported = Store::import(&mut bytes.as_slice(), &dir.join("copy.store")).expect("import");
        prop_assert_eq!(imported.stats.rows, stats.rows);
        prop_assert_eq!(&imported.config, &config_bytes);
        prop_assert_eq!(imported.store.instances().expect("i"), store.instances().expect("i"));
        // Every row, read back through the Backend seam.
        for (name, (objects, roots)) in &vats {
            let mut b = imported.store.vat(name).expect("vat");
            let opened = b.open().expect("open");
            prop_assert_eq!(&opened.roots, roots);
            for (id, record) in objects {
                let got = b.load(*id).expect("load");
                prop_assert_eq!(got.as_ref(), Some(record));
            }
        }
        if vats.values().all(|(o, _)| o.keys().all(|&k| k < 64)) {
            prop_assert_eq!(dump(&imported.store), dump(&store));
        }
        // Any single changed byte is refused.
        let mut mangled = bytes.clone();
        let at = mutate_at.index(mangled.len());
        mangled[at] ^= 0x01;
        prop_assert!(Store::import(&mut mangled.as_slice(), &dir.join("m.store")).is_err());
        prop_assert!(!dir.join("m.store").exists());
    }
}
