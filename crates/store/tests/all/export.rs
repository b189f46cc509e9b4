//! Export and import: round trips, exports under concurrent writes,
//! instance exports, and hostile export files.

use std::os::unix::fs::PermissionsExt;

use pola_store::{EXPORT_MAGIC, Fault, MAX_RECORD, Store, StoreError};
use pola_vat::backend::{Backend, Batch};
use sha2::{Digest, Sha256};

use crate::util::{TempDir, dump, fill, small_store};

const CONFIG: &[u8] = b"[host]\nname = \"test\"\n";

#[test]
fn export_import_roundtrip_with_config() {
    let dir = TempDir::new("export");
    let path = small_store(&dir);
    let store = Store::open(&path).expect("open");
    store.savepoint("before-export").expect("savepoint");
    let mut bytes = Vec::new();
    let stats = store.export(&mut bytes, Some(CONFIG)).expect("export");
    assert_eq!(stats.bytes, bytes.len() as u64);
    assert_eq!(stats.instances, 2);
    assert_eq!(stats.tables, 6);
    // 25 + 5 objects, as many roots, one next_id each.
    assert_eq!(stats.rows, 30 + 30 + 2);
    assert!(bytes.starts_with(EXPORT_MAGIC));

    let copy = dir.join("copy.store");
    let imported = Store::import(&mut bytes.as_slice(), &copy).expect("import");
    assert_eq!(imported.config.as_deref(), Some(CONFIG));
    assert_eq!(imported.stats.rows, stats.rows);
    assert_eq!(imported.stats.tables, stats.tables);
    assert_eq!(imported.store.host_id(), store.host_id());
    assert_eq!(dump(&imported.store), dump(&store));
    assert!(imported.store.savepoints().expect("list").is_empty());
    let mode = std::fs::metadata(&copy).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(!dir.join("copy.store.tmp").exists());

    // The imported store exports to the same rows (the header's time may
    // differ, so compare the stats and the contents).
    let mut again = Vec::new();
    let stats2 = imported
        .store
        .export(&mut again, Some(CONFIG))
        .expect("export");
    assert_eq!((stats2.tables, stats2.rows), (stats.tables, stats.rows));

    // Without a config, none comes back.
    let mut bare = Vec::new();
    store.export(&mut bare, None).expect("export");
    let imported = Store::import(&mut bare.as_slice(), &dir.join("bare.store")).expect("import");
    assert_eq!(imported.config, None);

    // An existing path is never replaced.
    drop(store);
    let before = std::fs::read(&path).expect("read");
    let err = Store::import(&mut bytes.as_slice(), &path).expect_err("exists");
    assert!(matches!(err, StoreError::AlreadyExists { .. }), "{err:?}");
    assert!(
        std::fs::read(&path).expect("read") == before,
        "the existing file changed"
    );
}

#[test]
fn export_is_a_consistent_snapshot_under_concurrent_writes() {
    let dir = TempDir::new("export-live");
    let path = dir.join("host.store");
    let store = Store::open(&path).expect("open");
    fill(&store, "steady", 50);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let progress = std::sync::atomic::AtomicU64::new(0);
    let mut exports = Vec::new();
    std::thread::scope(|s| {
        let writer = s.spawn(|| {
            let mut b = store.vat("busy").expect("vat");
            let mut c = b.open().expect("open").next_id;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // Each batch moves the counter: object c, root, next_id,
                // and deletes the object before it.
                b.write(&Batch {
                    objects: vec![(c, format!("busy-{c}").into_bytes())],
                    deletes: c.checked_sub(1).into_iter().collect(),
                    roots: vec![("counter".into(), Some(c))],
                    next_id: c + 1,
                })
                .expect("write");
                c += 1;
                progress.store(c, std::sync::atomic::Ordering::Relaxed);
            }
            c
        });
        for _ in 0..6 {
            let mut bytes = Vec::new();
            store.export(&mut bytes, None).expect("export");
            exports.push(bytes);
            // Let the writer commit something before the next export.
            let seen = progress.load(std::sync::atomic::Ordering::Relaxed);
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while progress.load(std::sync::atomic::Ordering::Relaxed) < seen + 2
                && std::time::Instant::now() < deadline
            {
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let written = writer.join().expect("writer");
        assert!(written > 0);
    });
    let mut counters = std::collections::BTreeSet::new();
    for (i, bytes) in exports.iter().enumerate() {
        let copy = dir.join(format!("snap-{i}.store"));
        let imported = Store::import(&mut bytes.as_slice(), &copy).expect("import");
        let d = dump(&imported.store);
        let steady = d.iter().find(|v| v.0 == "steady").expect("steady");
        assert_eq!(steady.1.len(), 50);
        if let Some(busy) = d.iter().find(|v| v.0 == "busy") {
            let (_, objects, roots, next_id) = busy;
            if let Some(&(_, r)) = roots.iter().find(|(n, _)| n == "counter") {
                assert_eq!(*next_id, r + 1, "snapshot {i} is torn");
                counters.insert(r);
                assert_eq!(objects, &vec![(r, format!("busy-{r}").into_bytes())]);
            } else {
                assert!(objects.is_empty());
            }
        }
    }
    assert!(counters.len() > 1, "the exports did not overlap any writes");
}

#[test]
fn instance_export_imports_under_a_new_name() {
    let dir = TempDir::new("instance");
    let path = small_store(&dir);
    let store = Store::open(&path).expect("open");
    let mut bytes = Vec::new();
    let stats = store.export_instance("alpha", &mut bytes).expect("export");
    assert_eq!((stats.instances, stats.tables, stats.rows), (1, 3, 51));
    assert!(matches!(
        store.export_instance("nope", &mut Vec::new()),
        Err(StoreError::NotFound { .. })
    ));

    // Into the same store, under a new name.
    let got = store
        .import_instance(&mut bytes.as_slice(), "alpha-copy")
        .expect("import");
    assert_eq!(got.rows, 51);
    let d = dump(&store);
    let alpha = d.iter().find(|v| v.0 == "alpha").expect("alpha");
    let copy = d.iter().find(|v| v.0 == "alpha-copy").expect("copy");
    assert_eq!((&alpha.1, &alpha.2, alpha.3), (&copy.1, &copy.2, copy.3));

    // Not over an existing instance, nor a live one.
    let err = store
        .import_instance(&mut bytes.as_slice(), "beta")
        .expect_err("exists");
    assert!(matches!(err, StoreError::AlreadyExists { .. }), "{err:?}");
    let live = store.vat("fresh").expect("vat");
    let err = store
        .import_instance(&mut bytes.as_slice(), "fresh")
        .expect_err("live");
    assert!(matches!(err, StoreError::InUse { .. }), "{err:?}");
    drop(live);

    // Into another store.
    let other = Store::open(&dir.join("other.store")).expect("open");
    other
        .import_instance(&mut bytes.as_slice(), "alpha")
        .expect("import");
    let d2 = dump(&other);
    assert_eq!(d2.len(), 1);
    assert_eq!((&d2[0].1, &d2[0].2, d2[0].3), (&alpha.1, &alpha.2, alpha.3));

    // Scopes do not mix.
    let mut whole = Vec::new();
    store.export(&mut whole, None).expect("export");
    let err = other
        .import_instance(&mut whole.as_slice(), "x")
        .expect_err("whole into instance");
    assert!(matches!(err, StoreError::BadExport { .. }), "{err:?}");
    let err =
        Store::import(&mut bytes.as_slice(), &dir.join("y.store")).expect_err("instance as whole");
    assert!(matches!(err, StoreError::BadExport { .. }), "{err:?}");
    assert!(!dir.join("y.store").exists());
    assert_eq!(other.instances().expect("instances"), ["alpha"]);
}

/// Builds an export by hand: records, then the right checksum.
pub struct Forge(pub Vec<u8>);

impl Forge {
    pub fn new(version: u32) -> Forge {
        let mut v = EXPORT_MAGIC.to_vec();
        v.extend_from_slice(&version.to_be_bytes());
        Forge(v)
    }

    pub fn record(mut self, tag: u8, body: &[u8]) -> Forge {
        self.0.push(tag);
        self.0.extend_from_slice(&(body.len() as u32).to_be_bytes());
        self.0.extend_from_slice(body);
        self
    }

    pub fn header(self, scope: u8, format: u64, name: &str) -> Forge {
        let mut body = vec![scope];
        body.extend_from_slice(&format.to_be_bytes());
        body.extend_from_slice(&[7u8; 16]);
        body.extend_from_slice(&0u64.to_be_bytes());
        body.extend_from_slice(name.as_bytes());
        self.record(b'H', &body)
    }

    pub fn row(self, key: &[u8], value: &[u8]) -> Forge {
        let mut body = (key.len() as u32).to_be_bytes().to_vec();
        body.extend_from_slice(key);
        body.extend_from_slice(value);
        self.record(b'R', &body)
    }

    pub fn end(self, tables: u64, rows: u64) -> Forge {
        let mut body = tables.to_be_bytes().to_vec();
        body.extend_from_slice(&rows.to_be_bytes());
        self.record(b'E', &body)
    }

    pub fn sealed(self) -> Vec<u8> {
        let mut v = self.0;
        let digest = Sha256::digest(&v);
        v.extend_from_slice(digest.as_slice());
        v
    }
}

fn valid_forge() -> Forge {
    Forge::new(1)
        .header(b'S', 1, "")
        .record(b'T', b"vat/a/meta")
        .row(b"next_id", &5u64.to_be_bytes())
        .record(b'T', b"vat/a/objects")
        .row(&1u64.to_be_bytes(), b"one")
        .row(&2u64.to_be_bytes(), b"two")
        .record(b'T', b"vat/a/roots")
        .row(b"main", &1u64.to_be_bytes())
}

/// Imports `bytes` and expects a refusal; no file may be left behind.
fn refuse(dir: &TempDir, bytes: &[u8]) -> StoreError {
    let path = dir.join("target.store");
    let err = Store::import(&mut &bytes[..], &path).expect_err("must refuse");
    assert!(!path.exists(), "a refused import left a store");
    assert!(
        !dir.join("target.store.tmp").exists(),
        "a refused import left a temp file"
    );
    assert!(err.to_string().contains("target.store"), "{err}");
    err
}

#[test]
fn forged_valid_export_imports() {
    let dir = TempDir::new("forge");
    let bytes = valid_forge().end(3, 4).sealed();
    let imported = Store::import(&mut bytes.as_slice(), &dir.join("ok.store")).expect("import");
    let d = dump(&imported.store);
    assert_eq!(
        d,
        vec![(
            "a".to_string(),
            vec![(1, b"one".to_vec()), (2, b"two".to_vec())],
            vec![("main".to_string(), 1)],
            5
        )]
    );
    assert_eq!(imported.store.host_id(), [7u8; 16]);
}

#[test]
fn hostile_exports_are_refused() {
    let dir = TempDir::new("hostile");
    let good = valid_forge().end(3, 4).sealed();
    let bad = |e: &StoreError| e.fault() == Fault::BadInput;
    type Check = fn(&StoreError) -> bool;
    let cases: Vec<(&str, Vec<u8>, Check)> = vec![
        ("empty", vec![], |e| {
            matches!(e, StoreError::BadExport { .. })
        }),
        (
            "bad magic",
            {
                let mut v = good.clone();
                v[0] = b'P';
                v
            },
            |e| matches!(e, StoreError::BadExport { offset: 0, .. }),
        ),
        (
            "newer version",
            Forge::new(2).header(b'S', 1, "").end(0, 0).sealed(),
            |e| matches!(e, StoreError::NewerExport { found: 2, .. }),
        ),
        (
            "newer store format",
            Forge::new(1).header(b'S', 9, "").end(0, 0).sealed(),
            |e| matches!(e, StoreError::NewerExport { found: 9, .. }),
        ),
        (
            "checksum",
            {
                let mut v = good.clone();
                let n = v.len();
                v[n - 1] ^= 1;
                v
            },
            |e| e.to_string().contains("checksum"),
        ),
        (
            "trailing byte",
            {
                let mut v = good.clone();
                v.push(0);
                v
            },
            |e| e.to_string().contains("follow"),
        ),
        ("no checksum", good[..good.len() - 32].to_vec(), |e| {
            e.to_string().contains("ends early")
        }),
        (
            "huge length",
            {
                let mut v = Forge::new(1).header(b'S', 1, "").0;
                v.push(b'T');
                v.extend_from_slice(&u32::MAX.to_be_bytes());
                v
            },
            |e| e.to_string().contains("over the limit"),
        ),
        (
            "length at the limit, no bytes",
            {
                let mut v = Forge::new(1).header(b'S', 1, "").0;
                v.push(b'R');
                v.extend_from_slice(&MAX_RECORD.to_be_bytes());
                v.extend_from_slice(b"short");
                v
            },
            |e| e.to_string().contains("ends early"),
        ),
        (
            "row before table",
            Forge::new(1)
                .header(b'S', 1, "")
                .row(b"k", b"v")
                .end(0, 1)
                .sealed(),
            |e| e.to_string().contains("before any table"),
        ),
        (
            "unknown table",
            Forge::new(1)
                .header(b'S', 1, "")
                .record(b'T', b"meta")
                .end(1, 0)
                .sealed(),
            |e| e.to_string().contains("unknown table"),
        ),
        (
            "an instance savepoint's copy (never exported)",
            Forge::new(1)
                .header(b'S', 1, "")
                .record(b'T', b"isave/a/s/meta")
                .end(1, 0)
                .sealed(),
            |e| e.to_string().contains("unknown table"),
        ),
        (
            "the instance savepoint catalog (never exported)",
            Forge::new(1)
                .header(b'S', 1, "")
                .record(b'T', b"instance_savepoints")
                .end(1, 0)
                .sealed(),
            |e| e.to_string().contains("unknown table"),
        ),
        (
            "bad instance name",
            Forge::new(1)
                .header(b'S', 1, "")
                .record(b'T', b"vat/a b/meta")
                .end(1, 0)
                .sealed(),
            |e| e.to_string().contains("unknown table"),
        ),
        (
            "tables out of order",
            Forge::new(1)
                .header(b'S', 1, "")
                .record(b'T', b"vat/b/meta")
                .record(b'T', b"vat/a/meta")
                .end(2, 0)
                .sealed(),
            |e| e.to_string().contains("order"),
        ),
        (
            "duplicate key",
            Forge::new(1)
                .header(b'S', 1, "")
                .record(b'T', b"vat/a/meta")
                .row(b"next_id", &1u64.to_be_bytes())
                .record(b'T', b"vat/a/objects")
                .row(&1u64.to_be_bytes(), b"x")
                .row(&1u64.to_be_bytes(), b"y")
                .end(2, 3)
                .sealed(),
            |e| e.to_string().contains("order"),
        ),
        (
            "short object id",
            Forge::new(1)
                .header(b'S', 1, "")
                .record(b'T', b"vat/a/objects")
                .row(&[1, 2, 3], b"x")
                .end(1, 1)
                .sealed(),
            |e| e.to_string().contains("8 bytes"),
        ),
        (
            "key longer than row",
            Forge::new(1)
                .header(b'S', 1, "")
                .record(b'T', b"vat/a/objects")
                .record(b'R', &[0, 0, 1, 0, 1])
                .end(1, 1)
                .sealed(),
            |e| e.to_string().contains("key length"),
        ),
        (
            "bad meta key",
            Forge::new(1)
                .header(b'S', 1, "")
                .record(b'T', b"vat/a/meta")
                .row(b"evil", &1u64.to_be_bytes())
                .end(1, 1)
                .sealed(),
            |e| e.to_string().contains("next_id"),
        ),
        (
            "root not utf-8",
            Forge::new(1)
                .header(b'S', 1, "")
                .record(b'T', b"vat/a/meta")
                .record(b'T', b"vat/a/roots")
                .row(&[0xff, 0xfe], &1u64.to_be_bytes())
                .end(2, 1)
                .sealed(),
            |e| e.to_string().contains("UTF-8"),
        ),
        (
            "instance without meta",
            Forge::new(1)
                .header(b'S', 1, "")
                .record(b'T', b"vat/a/objects")
                .end(1, 0)
                .sealed(),
            |e| e.to_string().contains("no meta table"),
        ),
        ("counts lie", valid_forge().end(3, 5).sealed(), |e| {
            e.to_string().contains("counts")
        }),
        (
            "config twice",
            Forge::new(1)
                .header(b'S', 1, "")
                .record(b'C', b"a")
                .record(b'C', b"b")
                .end(0, 0)
                .sealed(),
            |e| e.to_string().contains("config"),
        ),
        (
            "unknown record",
            Forge::new(1)
                .header(b'S', 1, "")
                .record(b'Z', b"")
                .end(0, 0)
                .sealed(),
            |e| e.to_string().contains("unknown record"),
        ),
        (
            "unknown scope",
            Forge::new(1).header(b'Q', 1, "").end(0, 0).sealed(),
            |e| e.to_string().contains("scope"),
        ),
        (
            "short header",
            Forge::new(1).record(b'H', b"S").end(0, 0).sealed(),
            |e| e.to_string().contains("too short"),
        ),
    ];
    for (name, bytes, check) in cases {
        let err = refuse(&dir, &bytes);
        assert!(check(&err), "{name}: unexpected {err:?}");
        assert!(
            bad(&err) || err.fault() == Fault::Version,
            "{name}: {err:?}"
        );
    }
}

#[test]
fn every_truncation_and_bit_flip_of_an_export_is_refused() {
    let dir = TempDir::new("mangle");
    let store = Store::open(&dir.join("host.store")).expect("open");
    fill(&store, "m", 3);
    let mut bytes = Vec::new();
    store.export(&mut bytes, Some(b"cfg")).expect("export");
    for cut in 0..bytes.len() {
        refuse(&dir, &bytes[..cut]);
    }
    for at in 0..bytes.len() {
        let mut v = bytes.clone();
        v[at] ^= 0x40;
        refuse(&dir, &v);
    }
}
