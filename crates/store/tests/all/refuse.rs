//! Every file `Store::open` must refuse, each left byte for byte as it was.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use pola_store::{Fault, Store, StoreError};

use crate::util::{TempDir, small_store};

/// Opens `path`, expects a refusal matching `check`, a message naming the
/// file, and the file unchanged.
fn assert_refused(path: &Path, check: impl Fn(&StoreError) -> bool) -> StoreError {
    let before = std::fs::read(path).ok();
    let mode_before = std::fs::symlink_metadata(path)
        .map(|m| m.permissions().mode())
        .ok();
    let err = Store::open(path).expect_err("open must refuse");
    assert!(check(&err), "unexpected error: {err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains(&path.display().to_string()),
        "message does not name the file: {msg}"
    );
    assert_eq!(err.path(), path);
    let after = std::fs::read(path).ok();
    assert!(before == after, "the refused file changed");
    let mode_after = std::fs::symlink_metadata(path)
        .map(|m| m.permissions().mode())
        .ok();
    assert_eq!(mode_before, mode_after);
    // Opening again gives the same answer (nothing was "repaired").
    let again = Store::open(path).expect_err("open must refuse again");
    assert_eq!(again.fault(), err.fault());
    err
}

fn write_private(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).expect("write");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
}

#[test]
fn symlink_is_refused_and_target_untouched() {
    let dir = TempDir::new("symlink");
    let real = small_store(&dir);
    let link = dir.join("link.store");
    std::os::unix::fs::symlink(&real, &link).expect("symlink");
    let before = std::fs::read(&real).expect("read");
    let err = assert_refused(&link, |e| {
        matches!(
            e,
            StoreError::NotRegularFile {
                kind: "a symbolic link",
                ..
            }
        )
    });
    assert_eq!(err.fault(), Fault::FileKind);
    assert!(
        std::fs::read(&real).expect("read") == before,
        "the link's target changed"
    );
    // A dangling link is refused too, not followed to create a file.
    let dangling = dir.join("dangling.store");
    std::os::unix::fs::symlink(dir.join("nowhere"), &dangling).expect("symlink");
    assert_refused(&dangling, |e| {
        matches!(e, StoreError::NotRegularFile { .. })
    });
    assert!(!dir.join("nowhere").exists());
}

#[test]
fn fifo_is_refused_without_blocking() {
    let dir = TempDir::new("fifo");
    let fifo = dir.join("fifo.store");
    let ok = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("run mkfifo")
        .success();
    assert!(ok, "mkfifo failed");
    std::fs::set_permissions(&fifo, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let err = Store::open(&fifo).expect_err("must refuse");
    assert!(
        matches!(err, StoreError::NotRegularFile { kind: "a FIFO", .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains(&fifo.display().to_string()));
}

#[test]
fn directory_is_refused() {
    let dir = TempDir::new("dir");
    let sub = dir.join("sub.store");
    std::fs::create_dir(&sub).expect("mkdir");
    let err = Store::open(&sub).expect_err("must refuse");
    assert!(
        matches!(
            err,
            StoreError::NotRegularFile {
                kind: "a directory",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains(&sub.display().to_string()));
}

#[test]
fn mode_open_to_others_is_refused() {
    let dir = TempDir::new("mode");
    let path = small_store(&dir);
    for mode in [0o644, 0o640, 0o604, 0o660] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        let err = assert_refused(&path, |e| matches!(e, StoreError::Permissions { .. }));
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    Store::open(&path).expect("0600 opens");
}

#[test]
fn new_store_is_private() {
    let dir = TempDir::new("new");
    let path = dir.join("fresh.store");
    let store = Store::open(&path).expect("create");
    let mode = std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(!dir.join("fresh.store.tmp").exists());
    drop(store);
}

#[test]
fn truncated_store_is_refused() {
    let dir = TempDir::new("trunc");
    let pristine = std::fs::read(small_store(&dir)).expect("read");
    let len = pristine.len();
    for cut in [
        len - 1,
        len - 4096,
        len / 2,
        8192,
        4096,
        1000,
        320,
        100,
        9,
        3,
    ] {
        let path = dir.join(format!("cut-{cut}.store"));
        write_private(&path, &pristine[..cut]);
        let err = assert_refused(&path, |e| e.fault() == Fault::Corrupt);
        assert!(
            matches!(
                err,
                StoreError::Corrupt { .. } | StoreError::NotAStore { .. }
            ),
            "cut at {cut}: {err:?}"
        );
    }
}

#[test]
fn bit_flip_in_a_data_page_is_refused() {
    let dir = TempDir::new("flip");
    let path = small_store(&dir);
    const MARK: &[u8] = b"MARKER-a7c3e9f1-0b2d-4e6f-8a9c";
    {
        use pola_vat::backend::{Backend, Batch};
        let store = Store::open(&path).expect("open");
        let mut b = store.vat("marked").expect("vat");
        b.open().expect("open");
        b.write(&Batch {
            objects: vec![(7, MARK.to_vec())],
            next_id: 8,
            ..Batch::default()
        })
        .expect("write");
        drop(b);
        store.close().expect("close");
    }
    let pristine = std::fs::read(&path).expect("read");
    let hits: Vec<usize> = pristine
        .windows(MARK.len())
        .enumerate()
        .filter(|(_, w)| *w == MARK)
        .map(|(i, _)| i)
        .collect();
    assert!(!hits.is_empty(), "marker not found in the file");
    let mut flipped = pristine.clone();
    for &at in &hits {
        flipped[at + 3] ^= 0x10;
    }
    let bad = dir.join("flipped.store");
    write_private(&bad, &flipped);
    let err = assert_refused(&bad, |e| matches!(e, StoreError::Corrupt { .. }));
    assert_eq!(err.fault(), Fault::Corrupt);
    // The unflipped copy still opens and reads back.
    let good = dir.join("good.store");
    write_private(&good, &pristine);
    Store::open(&good).expect("pristine copy opens");
}

#[test]
fn random_and_blank_files_are_refused() {
    let dir = TempDir::new("random");
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut random = vec![0u8; 64 << 10];
    for b in random.iter_mut() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        *b = seed as u8;
    }
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("random", random.clone()),
        ("zeros", vec![0u8; 16 << 10]),
        ("empty", Vec::new()),
        ("text", b"[host]\nname = \"not a store\"\n".to_vec()),
        ("redb-magic-then-random", {
            let mut v = b"redb\x1a\x0a\xa9\x0d\x0a".to_vec();
            v.extend_from_slice(&random);
            v
        }),
    ];
    for (name, bytes) in cases {
        let path = dir.join(format!("{name}.store"));
        write_private(&path, &bytes);
        let err = assert_refused(&path, |e| e.fault() == Fault::Corrupt);
        if name != "redb-magic-then-random" {
            assert!(
                matches!(err, StoreError::NotAStore { .. }),
                "{name}: {err:?}"
            );
        }
    }
}

#[test]
fn other_redb_file_is_not_a_store() {
    let dir = TempDir::new("foreign");
    let path = dir.join("foreign.redb");
    {
        let f = std::fs::OpenOptions::new()
            .create_new(true)
            .read(true)
            .write(true)
            .open(&path)
            .expect("create");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        drop(f);
        let db = redb::Database::create(&path).expect("redb create");
        let txn = db.begin_write().expect("write");
        {
            let mut t = txn
                .open_table(redb::TableDefinition::<u64, u64>::new("theirs"))
                .expect("table");
            t.insert(1, 2).expect("insert");
        }
        txn.commit().expect("commit");
    }
    let err = assert_refused(&path, |e| matches!(e, StoreError::NotAStore { .. }));
    assert!(err.to_string().contains("meta"), "{err}");
}

#[test]
fn newer_format_is_refused() {
    let dir = TempDir::new("format");
    let path = small_store(&dir);
    {
        let db = redb::Database::open(&path).expect("redb open");
        let txn = db.begin_write().expect("write");
        {
            let mut t = txn
                .open_table(redb::TableDefinition::<&str, &[u8]>::new("meta"))
                .expect("meta");
            t.insert("format", 2u64.to_be_bytes().as_slice())
                .expect("insert");
        }
        txn.commit().expect("commit");
    }
    let err = assert_refused(&path, |e| {
        matches!(
            e,
            StoreError::NewerFormat {
                found: 2,
                supported: 1,
                ..
            }
        )
    });
    assert!(err.to_string().contains("made by a newer pola"), "{err}");
    assert_eq!(err.fault(), Fault::Version);
}

#[test]
fn second_open_is_locked() {
    let dir = TempDir::new("lock");
    let path = small_store(&dir);
    let store = Store::open(&path).expect("open");
    let err = Store::open(&path).expect_err("second open");
    assert!(matches!(err, StoreError::Locked { .. }), "{err:?}");
    assert!(err.to_string().contains(&path.display().to_string()));
    drop(store);
    Store::open(&path).expect("open after close");
}
