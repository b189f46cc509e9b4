//! The write-ahead log: replay after a crash, torn tails, damaged and
//! foreign logs, and the whole-store operations that must see logged
//! batches.
//!
//! A crash is real: a child process (this test binary, re-run with
//! `WAL_CHILD` set) writes batches and ends with `std::process::exit`,
//! which runs no destructor, so the store is left as a crash leaves it:
//! not shut down, batches in the log and not in the engine's durable
//! state. The parent then damages the files as a test asks and opens.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use pola_store::{Fault, Store, StoreError};
use pola_vat::backend::{Backend, Batch};

use crate::util::{Dump, TempDir, dump};

const CHILD_ENV: &str = "POLA_STORE_WAL_CHILD";
const INSTANCE: &str = "wal";

fn log_of(store: &Path) -> PathBuf {
    let mut name = store.file_name().expect("name").to_os_string();
    name.push("-log");
    store.with_file_name(name)
}

/// Batch `i` (from 1): overwrites object 0, adds object `i`, deletes
/// `i - 3`, moves roots around, so replaying it twice or out of place
/// would show.
fn batch(i: u64) -> Batch {
    let mut roots = vec![("last".to_string(), Some(i)), (format!("r{i}"), Some(i))];
    if i > 1 {
        roots.push((format!("r{}", i - 1), None));
    }
    Batch {
        objects: vec![
            (0, format!("zero after {i}").into_bytes()),
            (
                i,
                format!("object {i} {}", "p".repeat((i % 17) as usize)).into_bytes(),
            ),
        ],
        deletes: i.checked_sub(3).filter(|&d| d > 0).into_iter().collect(),
        roots,
        next_id: i + 1,
    }
}

/// What the instance holds after `batches`, computed without a store.
#[derive(Default)]
struct Model {
    objects: BTreeMap<u64, Vec<u8>>,
    roots: BTreeMap<String, u64>,
    next_id: u64,
}

impl Model {
    fn of(batches: impl IntoIterator<Item = u64>) -> Model {
        let mut m = Model::default();
        for i in batches {
            m.apply(&batch(i));
        }
        m
    }

    fn apply(&mut self, b: &Batch) {
        for (id, r) in &b.objects {
            self.objects.insert(*id, r.clone());
        }
        for id in &b.deletes {
            self.objects.remove(id);
        }
        for (k, v) in &b.roots {
            match v {
                Some(id) => self.roots.insert(k.clone(), *id),
                None => self.roots.remove(k),
            };
        }
        self.next_id = self.next_id.max(b.next_id);
    }

    fn dump(&self) -> Dump {
        vec![(
            INSTANCE.to_string(),
            self.objects.iter().map(|(k, v)| (*k, v.clone())).collect(),
            self.roots.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            self.next_id,
        )]
    }
}

/// The child: runs `scenario` on the store at `path`, then exits without
/// closing anything.
#[test]
fn wal_child() {
    let Some(spec) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let spec = spec.into_string().expect("utf-8");
    let (scenario, path) = spec.split_once(':').expect("scenario:path");
    let path = Path::new(path);
    let mut store = Store::open(path).expect("child open");
    let mut b = store.vat(INSTANCE).expect("vat");
    b.open().expect("open");
    let write = |b: &mut pola_store::VatBackend, range: std::ops::RangeInclusive<u64>| {
        for i in range {
            b.write(&batch(i)).expect("write");
        }
    };
    match scenario {
        // Batches 1..=10, all in the log only.
        "ten" => write(&mut b, 1..=10),
        // 1..=10, a copy of the log, a checkpoint (a savepoint), 11..=13.
        "checkpoint" => {
            write(&mut b, 1..=10);
            let log = std::fs::read(log_of(path)).expect("read log");
            std::fs::write(path.with_extension("log-copy"), log).expect("copy");
            store.savepoint("s").expect("savepoint");
            write(&mut b, 11..=13);
        }
        // 1..=10, savepoint, 11..=20, rollback to it, 21..=25.
        "rollback" => {
            write(&mut b, 1..=10);
            store.savepoint("s").expect("savepoint");
            write(&mut b, 11..=20);
            drop(b);
            store.rollback("s").expect("rollback");
            b = store.vat(INSTANCE).expect("vat");
            b.open().expect("open");
            write(&mut b, 21..=25);
        }
        // More than a checkpoint's worth of entries: 1..=1100.
        "many" => write(&mut b, 1..=1100),
        // Two instances on two threads, 1..=300 each, interleaved.
        "two" => {
            let mut other = store.vat("other").expect("vat");
            other.open().expect("open");
            let t = std::thread::spawn(move || {
                for i in 1..=300 {
                    other.write(&batch(i)).expect("write other");
                }
                other
            });
            write(&mut b, 1..=300);
            let other = t.join().expect("thread");
            std::mem::forget(other);
        }
        other => panic!("unknown scenario {other}"),
    }
    std::process::exit(0);
}

/// Runs the child on `path` and waits for it.
fn crash_after(scenario: &str, path: &Path) {
    let exe = std::env::current_exe().expect("current exe");
    let status = Command::new(exe)
        .args([
            "--exact",
            "wal::wal_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, format!("{scenario}:{}", path.display()))
        .stdout(std::process::Stdio::null())
        .status()
        .expect("run child");
    assert!(status.success(), "child {scenario} failed: {status}");
}

/// The entries of a log that was never checkpointed: (offset, length).
fn entries(log: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut at = 40;
    while at + 24 <= log.len() && &log[at..at + 4] == b"PLe1" {
        let len = u32::from_be_bytes(log[at + 4..at + 8].try_into().expect("4")) as usize;
        out.push((at, 24 + len));
        at += 24 + len;
    }
    out
}

fn store_state(path: &Path) -> Dump {
    let store = Store::open(path).expect("open");
    let d = dump(&store);
    store.close().expect("close");
    d
}

/// Opening must fail with a `Corrupt` (or `check`) error naming the log,
/// leaving both files byte for byte as they were, every time.
fn assert_log_refused(path: &Path, check: impl Fn(&StoreError) -> bool) -> String {
    let log = log_of(path);
    let before = (
        std::fs::read(path).expect("store"),
        std::fs::read(&log).ok(),
    );
    let err = Store::open(path).expect_err("open must refuse");
    assert!(check(&err), "unexpected error: {err:?}");
    assert_eq!(err.path(), log, "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&log.display().to_string()), "{msg}");
    let after = (
        std::fs::read(path).expect("store"),
        std::fs::read(&log).ok(),
    );
    assert!(before == after, "a refused store changed");
    let again = Store::open(path).expect_err("open must refuse again");
    assert_eq!(again.fault(), err.fault());
    msg
}

fn corrupt(e: &StoreError) -> bool {
    matches!(e, StoreError::Corrupt { .. })
}

#[test]
fn a_crash_loses_no_logged_batch_and_replay_is_idempotent() {
    let dir = TempDir::new("wal-replay");
    let path = dir.join("host.store");
    crash_after("ten", &path);
    let log = std::fs::read(log_of(&path)).expect("log");
    assert_eq!(entries(&log).len(), 10, "one entry per batch");
    let want = Model::of(1..=10).dump();
    assert_eq!(store_state(&path), want, "replayed");
    // Opened again (after the replay's checkpoint): the same.
    assert_eq!(store_state(&path), want, "replayed twice");
    // The old entries put back (a crash after the checkpoint, before the
    // log was reused): they are at or below the checkpoint, so skipped.
    std::fs::write(log_of(&path), &log).expect("put back");
    assert_eq!(store_state(&path), want, "stale entries applied");
}

#[test]
fn a_crash_after_a_checkpoint_replays_only_what_follows() {
    let dir = TempDir::new("wal-checkpoint");
    let path = dir.join("host.store");
    crash_after("checkpoint", &path);
    let want = Model::of(1..=13).dump();
    assert_eq!(store_state(&path), want);
    // The log as it was before the checkpoint, beside a store that has
    // everything: every entry is stale.
    let copy = std::fs::read(path.with_extension("log-copy")).expect("copy");
    assert_eq!(entries(&copy).len(), 10);
    std::fs::write(log_of(&path), &copy).expect("put back");
    assert_eq!(store_state(&path), want);
}

#[test]
fn checkpoints_every_thousand_entries_and_replays_the_rest() {
    let dir = TempDir::new("wal-many");
    let path = dir.join("host.store");
    crash_after("many", &path);
    let log = std::fs::read(log_of(&path)).expect("log");
    // The first 1000 were checkpointed; 1001..=1100 were written again
    // from the start of the log.
    let chain = entries(&log);
    let first_seq = |at: usize| u64::from_be_bytes(log[at + 8..at + 16].try_into().expect("8"));
    assert!(first_seq(chain[0].0) > 1000, "the log was not reused");
    assert_eq!(store_state(&path), Model::of(1..=1100).dump());
}

#[test]
fn rollback_keeps_numbering_and_replay_after_it() {
    let dir = TempDir::new("wal-rollback");
    let path = dir.join("host.store");
    crash_after("rollback", &path);
    let mut want = Model::of(1..=10);
    for i in 21..=25 {
        want.apply(&batch(i));
    }
    assert_eq!(store_state(&path), want.dump());
}

#[test]
fn a_torn_last_entry_is_discarded() {
    for how in ["zeros", "flip", "half"] {
        let dir = TempDir::new("wal-torn");
        let path = dir.join("host.store");
        crash_after("ten", &path);
        let log_path = log_of(&path);
        let mut log = std::fs::read(&log_path).expect("log");
        let (at, len) = *entries(&log).last().expect("entries");
        match how {
            // The end of the append never reached the disk.
            "zeros" => log[at + len / 2..at + len].fill(0),
            // A byte of it is wrong.
            "flip" => log[at + len - 1] ^= 0x40,
            // The file ends inside it.
            _ => log.truncate(at + len / 2),
        }
        std::fs::write(&log_path, &log).expect("write");
        assert_eq!(
            store_state(&path),
            Model::of(1..=9).dump(),
            "{how}: batch 10 was never acknowledged; 1..=9 were"
        );
    }
}

#[test]
fn damage_before_good_entries_is_refused() {
    let dir = TempDir::new("wal-damage");
    let path = dir.join("host.store");
    crash_after("ten", &path);
    let log_path = log_of(&path);
    let log = std::fs::read(&log_path).expect("log");
    let chain = entries(&log);
    let (at, len) = chain[3];

    // One bit flipped in the middle of entry 4's body.
    let mut bad = log.clone();
    bad[at + 24 + len / 2] ^= 1;
    std::fs::write(&log_path, &bad).expect("write");
    let msg = assert_log_refused(&path, corrupt);
    assert!(msg.contains("damaged"), "{msg}");
    // In its header.
    let mut bad = log.clone();
    bad[at + 5] ^= 0x10;
    std::fs::write(&log_path, &bad).expect("write");
    assert_log_refused(&path, corrupt);
    // Entry 4 cut in half (the rest moved up): entry 5 follows the stump.
    let mut bad = log.clone();
    bad.drain(at + len / 2..at + len);
    std::fs::write(&log_path, &bad).expect("write");
    assert_log_refused(&path, corrupt);
    // Entry 4 missing altogether: a gap in the numbers.
    let mut bad = log.clone();
    bad.drain(at..at + len);
    std::fs::write(&log_path, &bad).expect("write");
    let msg = assert_log_refused(&path, corrupt);
    assert!(msg.contains("missing"), "{msg}");
    // The first entry missing: the log starts after the checkpoint + 1.
    let mut bad = log.clone();
    bad.drain(chain[0].0..chain[0].0 + chain[0].1);
    std::fs::write(&log_path, &bad).expect("write");
    assert_log_refused(&path, corrupt);

    // Put right, it opens with everything.
    std::fs::write(&log_path, &log).expect("write");
    assert_eq!(store_state(&path), Model::of(1..=10).dump());
}

#[test]
fn an_entry_for_an_instance_not_in_the_store_is_refused() {
    let dir = TempDir::new("wal-instance");
    let path = dir.join("host.store");
    crash_after("ten", &path);
    let log_path = log_of(&path);
    let mut log = std::fs::read(&log_path).expect("log");
    let id: [u8; 16] = log[20..36].try_into().expect("16");
    // Rename entry 2's instance "wal" to "wax", checksums made right (as
    // only someone holding the log's id could).
    let (at, len) = entries(&log)[1];
    let body = at + 24;
    assert_eq!(&log[body..body + 4], b"\x03wal");
    log[body + 3] = b'x';
    let crc = crc32fast::hash(&log[body..at + len]);
    log[at + 16..at + 20].copy_from_slice(&crc.to_be_bytes());
    let mut h = crc32fast::Hasher::new();
    h.update(&id);
    h.update(&log[at..at + 20]);
    let head = h.finalize();
    log[at + 20..at + 24].copy_from_slice(&head.to_be_bytes());
    std::fs::write(&log_path, &log).expect("write");
    let msg = assert_log_refused(&path, corrupt);
    assert!(msg.contains("\"wax\""), "{msg}");
}

#[test]
fn a_log_from_another_store_is_refused() {
    let dir = TempDir::new("wal-foreign");
    let (a, b) = (dir.join("a.store"), dir.join("b.store"));
    crash_after("ten", &a);
    crash_after("ten", &b);
    std::fs::copy(log_of(&a), log_of(&b)).expect("copy");
    let msg = assert_log_refused(&b, corrupt);
    assert!(msg.contains("another store"), "{msg}");

    // Beside a store that never had a log (a fresh import, say), a log
    // with entries is foreign too.
    let c = dir.join("c.store");
    Store::open(&c).expect("make").close().expect("close");
    std::fs::copy(log_of(&a), log_of(&c)).expect("copy");
    assert_log_refused(&c, corrupt);
}

#[test]
fn a_missing_log_after_a_crash_is_refused() {
    let dir = TempDir::new("wal-missing");
    let path = dir.join("host.store");
    crash_after("ten", &path);
    let log_path = log_of(&path);
    let log = std::fs::read(&log_path).expect("log");
    std::fs::remove_file(&log_path).expect("rm");
    let msg = assert_log_refused(&path, corrupt);
    assert!(msg.contains("missing"), "{msg}");
    std::fs::write(&log_path, &log).expect("put back");
    std::fs::set_permissions(&log_path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    assert_eq!(store_state(&path), Model::of(1..=10).dump());
    // After a clean close the log holds nothing the store lacks: losing
    // it then loses nothing, and a new one is made.
    std::fs::remove_file(&log_path).expect("rm");
    assert_eq!(store_state(&path), Model::of(1..=10).dump());
    assert!(
        log_path.exists(),
        "the store records a log: it is made again at once"
    );
    // And it is this store's: a crash with it in play replays.
    crash_after("ten", &path);
    assert_eq!(store_state(&path), Model::of(1..=10).dump());
}

#[test]
fn a_log_that_is_not_a_log_or_not_private_is_refused() {
    let dir = TempDir::new("wal-kind");
    let path = dir.join("host.store");
    crash_after("ten", &path);
    let log_path = log_of(&path);
    let log = std::fs::read(&log_path).expect("log");

    std::fs::write(&log_path, vec![0x55; 4096]).expect("write");
    assert_log_refused(&path, |e| matches!(e, StoreError::NotAStore { .. }));
    std::fs::write(&log_path, b"").expect("write");
    assert_log_refused(&path, |e| matches!(e, StoreError::NotAStore { .. }));
    // A header from a newer pola.
    let mut newer = log.clone();
    newer[19] = 9;
    std::fs::write(&log_path, &newer).expect("write");
    assert_log_refused(&path, |e| matches!(e, StoreError::NewerFormat { .. }));
    // A header with a bad checksum.
    let mut bad = log.clone();
    bad[25] ^= 1;
    std::fs::write(&log_path, &bad).expect("write");
    assert_log_refused(&path, corrupt);

    std::fs::write(&log_path, &log).expect("write");
    std::fs::set_permissions(&log_path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let err = assert_log_refused(&path, |e| matches!(e, StoreError::Permissions { .. }));
    assert!(err.contains("chmod 600"), "{err}");
    std::fs::set_permissions(&log_path, std::fs::Permissions::from_mode(0o600)).expect("chmod");

    // A symbolic link to the real log, and a FIFO.
    let real = dir.join("elsewhere");
    std::fs::rename(&log_path, &real).expect("move");
    std::os::unix::fs::symlink(&real, &log_path).expect("symlink");
    let e = Store::open(&path).expect_err("link refused");
    assert_eq!(e.fault(), Fault::FileKind, "{e}");
    std::fs::remove_file(&log_path).expect("rm link");
    let made = Command::new("mkfifo")
        .arg(&log_path)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    let e = Store::open(&path).expect_err("fifo refused");
    assert!(
        matches!(e, StoreError::NotRegularFile { kind: "a FIFO", .. }),
        "{e}"
    );
    std::fs::remove_file(&log_path).expect("rm fifo");
    std::fs::rename(&real, &log_path).expect("move back");
    assert_eq!(store_state(&path), Model::of(1..=10).dump());
}

/// Export, savepoints and rollback see batches that are only in the log
/// (and in the engine's memory) when they run.
#[test]
fn whole_store_operations_see_logged_batches() {
    let dir = TempDir::new("wal-whole");
    let path = dir.join("host.store");
    let mut store = Store::open(&path).expect("open");
    let mut b = store.vat(INSTANCE).expect("vat");
    b.open().expect("open");
    for i in 1..=5 {
        b.write(&batch(i)).expect("write");
    }
    // Export while batches are only logged.
    let mut out = Vec::new();
    store.export(&mut out, None).expect("export");
    let imported = Store::import(&mut out.as_slice(), &dir.join("copy.store")).expect("import");
    assert_eq!(dump(&imported.store), Model::of(1..=5).dump());
    imported.store.close().expect("close");
    // An instance export too.
    let mut one = Vec::new();
    store.export_instance(INSTANCE, &mut one).expect("export");
    store
        .import_instance(&mut one.as_slice(), "twin")
        .expect("import instance");
    // Savepoint, more batches, rollback.
    store.savepoint("five").expect("savepoint");
    for i in 6..=8 {
        b.write(&batch(i)).expect("write");
    }
    drop(b);
    store.rollback("five").expect("rollback");
    let mut want = Model::of(1..=5).dump();
    let twin = (
        "twin".to_string(),
        want[0].1.clone(),
        want[0].2.clone(),
        want[0].3,
    );
    want.push(twin);
    want.sort();
    assert_eq!(dump(&store), want);
    // Writes after the rollback, then a drop of the twin, survive reopening.
    let mut b = store.vat(INSTANCE).expect("vat");
    b.open().expect("open");
    b.write(&batch(9)).expect("write");
    drop(b);
    assert!(store.drop_instance("twin").expect("drop"));
    store.close().expect("close");
    let mut m = Model::of(1..=5);
    m.apply(&batch(9));
    assert_eq!(store_state(&path), m.dump());
}

#[test]
fn two_instances_written_from_two_threads_both_replay() {
    let dir = TempDir::new("wal-two");
    let path = dir.join("host.store");
    crash_after("two", &path);
    let one = Model::of(1..=300).dump().remove(0);
    let mut other = one.clone();
    other.0 = "other".to_string();
    assert_eq!(store_state(&path), vec![other, one]);
}

/// Entries of many MiB make the log file grow; a checkpoint cuts it back
/// to 17 MiB.
#[test]
fn a_log_grown_by_large_entries_is_cut_back() {
    let dir = TempDir::new("wal-grow");
    let path = dir.join("host.store");
    let store = Store::open(&path).expect("open");
    let mut b = store.vat(INSTANCE).expect("vat");
    b.open().expect("open");
    let record = vec![0x5a_u8; 7 << 20];
    let len = || std::fs::metadata(log_of(&path)).expect("log").len();
    for i in 0..3u64 {
        b.write(&Batch {
            objects: vec![(i, record.clone())],
            next_id: i + 1,
            ..Batch::default()
        })
        .expect("write");
    }
    // 21 MiB of entries: past the 16 MiB bound, so the third write was
    // followed by a checkpoint, which cut the file back.
    assert_eq!(len(), 17 << 20);
    drop(b);
    store.close().expect("close");
    let store = Store::open(&path).expect("reopen");
    let mut b = store.vat(INSTANCE).expect("vat");
    assert_eq!(b.open().expect("open").next_id, 3);
    assert_eq!(b.load(2).expect("load").as_deref(), Some(&record[..]));
}

/// A batch too large for one log entry goes straight to the engine.
#[test]
fn a_batch_larger_than_an_entry_is_written_durably() {
    let dir = TempDir::new("wal-large");
    let path = dir.join("host.store");
    let store = Store::open(&path).expect("open");
    let mut b = store.vat(INSTANCE).expect("vat");
    b.open().expect("open");
    b.write(&batch(1)).expect("write");
    let record = vec![0xab_u8; 16 << 20];
    let big = Batch {
        objects: (100..105).map(|i| (i, record.clone())).collect(),
        next_id: 105,
        ..Batch::default()
    };
    b.write(&big).expect("write large");
    b.write(&batch(2)).expect("write");
    drop(b);
    store.close().expect("close");
    let store = Store::open(&path).expect("open");
    let mut b = store.vat(INSTANCE).expect("vat");
    assert_eq!(b.open().expect("open").next_id, 105);
    for i in 100..105 {
        assert_eq!(b.load(i).expect("load").as_deref(), Some(&record[..]));
    }
    assert!(b.load(2).expect("load").is_some());
}

/// A store that was never written has no log file (so a fresh import is
/// one file); the first batch makes it, mode 0600.
#[test]
fn the_log_is_made_by_the_first_batch() {
    let dir = TempDir::new("wal-first");
    let path = dir.join("host.store");
    let store = Store::open(&path).expect("open");
    assert!(!log_of(&path).exists());
    let mut b = store.vat(INSTANCE).expect("vat");
    b.open().expect("open");
    assert!(!log_of(&path).exists());
    b.write(&batch(1)).expect("write");
    let meta = std::fs::metadata(log_of(&path)).expect("log made");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
}
