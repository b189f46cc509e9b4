//! Savepoints of one instance: take, list, roll back, delete; what other
//! instances, the host table, whole-store savepoints, exports, drops and
//! crashes do with them.
//!
//! A crash is real, as in `wal.rs`: a child process (this test binary,
//! re-run with `ISAVE_CHILD` set) ends with `std::process::exit`, which
//! runs no destructor, so the store is left not shut down.

use std::path::Path;
use std::process::Command;

use pola_store::{Store, StoreError};
use pola_vat::backend::{Backend, Batch};

use crate::util::{TempDir, fill};

const CHILD_ENV: &str = "POLA_STORE_ISAVE_CHILD";

/// (objects by id, roots, next_id) of one instance, read exactly (every
/// stored id, not a guessed range).
type State = (Vec<(u64, Vec<u8>)>, Vec<(String, u64)>, u64);

fn state(store: &Store, vat: &str) -> State {
    let mut b = store.vat(vat).expect("vat");
    let opened = b.open().expect("open");
    let mut objects = Vec::new();
    for id in b.ids().expect("ids") {
        objects.push((id, b.load(id).expect("load").expect("listed id loads")));
    }
    (objects, opened.roots.into_iter().collect(), opened.next_id)
}

/// Batch `i`: overwrites object 0, adds object `i` (far above the ids
/// `fill` uses), deletes object `i - 2`'s twin, moves root `last`.
fn batch(i: u64) -> Batch {
    Batch {
        objects: vec![
            (0, format!("zero after {i}").into_bytes()),
            (1000 + i, format!("object {i}").into_bytes()),
        ],
        deletes: i.checked_sub(2).map(|d| 1000 + d).into_iter().collect(),
        roots: vec![("last".into(), Some(1000 + i)), (format!("r{i}"), Some(0))],
        next_id: 1001 + i,
    }
}

fn write(store: &Store, vat: &str, range: std::ops::RangeInclusive<u64>) {
    let mut b = store.vat(vat).expect("vat");
    b.open().expect("open");
    for i in range {
        b.write(&batch(i)).expect("write");
    }
}

fn names(list: Vec<(String, u64)>) -> Vec<String> {
    list.into_iter().map(|(n, _)| n).collect()
}

#[test]
fn rollback_returns_one_instance_and_leaves_the_rest() {
    let dir = TempDir::new("isave");
    let path = dir.join("host.store");
    let store = Store::open(&path).expect("open");
    fill(&store, "alpha", 30);
    fill(&store, "beta", 5);
    store.host_put("k", Some(b"before")).expect("host");
    let alpha_s1 = state(&store, "alpha");
    let t0 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    store.savepoint_instance("alpha", "s1").expect("savepoint");

    // Change both instances and the host table: new objects, deletes,
    // overwrites, roots added and moved, the counter raised.
    write(&store, "alpha", 1..=6);
    write(&store, "beta", 1..=3);
    store.host_put("k", Some(b"after")).expect("host");
    let alpha_s2 = state(&store, "alpha");
    store
        .savepoint_instance("alpha", "s2")
        .expect("savepoint 2");
    write(&store, "alpha", 7..=9);
    let beta_now = state(&store, "beta");
    assert_ne!(state(&store, "alpha"), alpha_s1);

    let list = store.instance_savepoints("alpha").expect("list");
    assert!(list.iter().all(|&(_, at)| at >= t0 && at <= t0 + 60));
    assert_eq!(names(list), ["s1", "s2"]);
    assert!(store.instance_savepoints("beta").expect("list").is_empty());
    // Whole-store savepoints are a different namespace.
    assert!(store.savepoints().expect("list").is_empty());

    store.rollback_instance("alpha", "s1").expect("rollback");
    assert_eq!(state(&store, "alpha"), alpha_s1);
    assert_eq!(state(&store, "beta"), beta_now);
    assert_eq!(
        store.host_get("k").expect("host").as_deref(),
        Some(&b"after"[..])
    );
    // Every savepoint stays: forward to s2, back to s1 again.
    assert_eq!(
        names(store.instance_savepoints("alpha").expect("list")),
        ["s1", "s2"]
    );
    store.rollback_instance("alpha", "s2").expect("rollback s2");
    assert_eq!(state(&store, "alpha"), alpha_s2);
    store
        .rollback_instance("alpha", "s1")
        .expect("rollback s1 again");
    assert_eq!(state(&store, "alpha"), alpha_s1);

    // The vat carries on from the restored counter.
    write(&store, "alpha", 50..=50);
    let after = state(&store, "alpha");
    assert_eq!(after.2, 1051);
    store.close().expect("close");

    // Everything is durable across a clean reopen.
    let store = Store::open(&path).expect("reopen");
    assert_eq!(state(&store, "alpha"), after);
    assert_eq!(
        names(store.instance_savepoints("alpha").expect("list")),
        ["s1", "s2"]
    );
    store
        .rollback_instance("alpha", "s2")
        .expect("rollback after reopen");
    assert_eq!(state(&store, "alpha"), alpha_s2);
    assert_eq!(state(&store, "beta"), beta_now);
}

#[test]
fn misuse_is_refused() {
    let dir = TempDir::new("isave-refuse");
    let store = Store::open(&dir.join("host.store")).expect("open");
    fill(&store, "alpha", 3);
    fill(&store, "beta", 3);
    store.savepoint_instance("alpha", "s").expect("savepoint");

    let err = store.savepoint_instance("alpha", "s").expect_err("taken");
    assert!(matches!(err, StoreError::AlreadyExists { .. }), "{err:?}");
    // The same name on another instance is another savepoint.
    store
        .savepoint_instance("beta", "s")
        .expect("other instance");
    let err = store
        .savepoint_instance("gamma", "s")
        .expect_err("no instance");
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    assert!(!store.instances().expect("list").contains(&"gamma".into()));
    let err = store
        .rollback_instance("alpha", "nope")
        .expect_err("unknown");
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    assert!(err.to_string().contains("alpha/nope"), "{err}");
    let err = store.rollback_instance("gamma", "s").expect_err("unknown");
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    for (inst, name) in [("a/b", "s"), ("alpha", ""), ("alpha", "a/b"), ("", "s")] {
        let bad = |e: StoreError| matches!(e, StoreError::InvalidName { .. });
        assert!(bad(store.savepoint_instance(inst, name).expect_err("bad")));
        assert!(bad(store.rollback_instance(inst, name).expect_err("bad")));
        assert!(bad(store
            .delete_instance_savepoint(inst, name)
            .expect_err("bad")));
    }
    assert!(matches!(
        store.instance_savepoints("a b"),
        Err(StoreError::InvalidName { .. })
    ));
    assert!(matches!(
        store.savepoint_instance("alpha", &"n".repeat(65)),
        Err(StoreError::InvalidName { .. })
    ));

    // A live backend of the instance refuses the rollback and nothing
    // changes; one of another instance does not.
    let before = state(&store, "alpha");
    {
        let mut live = store.vat("alpha").expect("vat");
        live.open().expect("open");
        live.write(&batch(1)).expect("write");
        let err = store.rollback_instance("alpha", "s").expect_err("live");
        assert!(matches!(err, StoreError::InUse { .. }), "{err:?}");
        // Taking a savepoint while it runs is fine.
        store
            .savepoint_instance("alpha", "live")
            .expect("savepoint live");
    }
    assert_ne!(state(&store, "alpha"), before);
    {
        let _beta = store.vat("beta").expect("vat");
        store.rollback_instance("alpha", "s").expect("rollback");
    }
    assert_eq!(state(&store, "alpha"), before);

    assert!(
        store
            .delete_instance_savepoint("alpha", "s")
            .expect("delete")
    );
    assert!(
        !store
            .delete_instance_savepoint("alpha", "s")
            .expect("again")
    );
    let err = store.rollback_instance("alpha", "s").expect_err("deleted");
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    assert_eq!(
        names(store.instance_savepoints("alpha").expect("list")),
        ["live"]
    );
    // beta's "s" is untouched by deleting alpha's.
    assert_eq!(
        names(store.instance_savepoints("beta").expect("list")),
        ["s"]
    );
    store
        .savepoint_instance("alpha", "s")
        .expect("name reusable");
    store.close().expect("close");
}

/// A savepoint taken while the vat writes from another thread is one
/// state between two batches, never half of one.
#[test]
fn a_savepoint_taken_while_the_vat_writes_is_consistent() {
    let dir = TempDir::new("isave-live");
    let store = Store::open(&dir.join("host.store")).expect("open");
    let mut b = store.vat("v").expect("vat");
    b.open().expect("open");
    b.write(&batch(1)).expect("write");
    let writer = std::thread::spawn(move || {
        for i in 2..=300 {
            b.write(&batch(i)).expect("write");
        }
    });
    let mut taken = 0;
    while !writer.is_finished() || taken == 0 {
        store
            .savepoint_instance("v", &format!("s{taken}"))
            .expect("savepoint");
        taken += 1;
    }
    writer.join().expect("writer");
    for k in 0..taken {
        store
            .rollback_instance("v", &format!("s{k}"))
            .expect("rollback");
        let (objects, roots, next_id) = state(&store, "v");
        let i = next_id - 1001;
        let zero = objects.iter().find(|(id, _)| *id == 0).expect("object 0");
        assert_eq!(
            zero.1,
            format!("zero after {i}").into_bytes(),
            "savepoint s{k}"
        );
        assert!(roots.contains(&("last".to_string(), 1000 + i)), "s{k}");
        assert!(roots.contains(&(format!("r{i}"), 0)), "s{k}");
        assert!(objects.iter().any(|(id, _)| *id == 1000 + i), "s{k}");
    }
}

/// Whole-store savepoints hold instance savepoints as they were; drop
/// deletes them; exports leave them out.
#[test]
fn whole_store_rollback_drop_and_export() {
    let dir = TempDir::new("isave-whole");
    let path = dir.join("host.store");
    let mut store = Store::open(&path).expect("open");
    fill(&store, "alpha", 10);
    let alpha_a1 = state(&store, "alpha");
    store.savepoint_instance("alpha", "a1").expect("a1");
    store.savepoint("w").expect("whole");
    write(&store, "alpha", 1..=3);
    store.savepoint_instance("alpha", "a2").expect("a2");
    assert!(
        store
            .delete_instance_savepoint("alpha", "a1")
            .expect("delete")
    );

    // Exports do not carry instance savepoints: the same export with and
    // without one, and an import has none.
    let mut with = Vec::new();
    let stats_with = store.export(&mut with, None).expect("export");
    let mut inst = Vec::new();
    store
        .export_instance("alpha", &mut inst)
        .expect("export instance");
    store.savepoint_instance("alpha", "a3").expect("a3");
    let mut with_more = Vec::new();
    let stats_more = store.export(&mut with_more, None).expect("export");
    assert_eq!(
        (stats_with.tables, stats_with.rows),
        (stats_more.tables, stats_more.rows)
    );
    assert!(
        store
            .delete_instance_savepoint("alpha", "a3")
            .expect("delete a3")
    );
    let imported = Store::import(&mut with.as_slice(), &dir.join("copy.store")).expect("import");
    assert!(
        imported
            .store
            .instance_savepoints("alpha")
            .expect("list")
            .is_empty()
    );
    imported
        .store
        .import_instance(&mut inst.as_slice(), "alpha2")
        .expect("import instance");
    assert!(
        imported
            .store
            .instance_savepoints("alpha2")
            .expect("list")
            .is_empty()
    );
    imported.store.close().expect("close copy");

    // The whole-store rollback brings back a1 (and its copy) and takes a2
    // away, as they were at "w".
    store.rollback("w").expect("rollback whole");
    assert_eq!(
        names(store.instance_savepoints("alpha").expect("list")),
        ["a1"]
    );
    assert!(matches!(
        store.rollback_instance("alpha", "a2"),
        Err(StoreError::NotFound { .. })
    ));
    write(&store, "alpha", 4..=5);
    store.rollback_instance("alpha", "a1").expect("rollback a1");
    assert_eq!(state(&store, "alpha"), alpha_a1);

    // Dropping the instance deletes its savepoints; a new instance of the
    // name starts without any.
    assert!(store.drop_instance("alpha").expect("drop"));
    assert!(store.instance_savepoints("alpha").expect("list").is_empty());
    assert!(matches!(
        store.rollback_instance("alpha", "a1"),
        Err(StoreError::NotFound { .. })
    ));
    fill(&store, "alpha", 2);
    store.savepoint_instance("alpha", "a1").expect("a1 again");
    store.close().expect("close");
    let store = Store::open(&path).expect("reopen");
    store.rollback_instance("alpha", "a1").expect("rollback");
    assert_eq!(state(&store, "alpha").2, 2);
}

/// The child: runs `scenario` on the store at `path`, then exits without
/// closing anything.
#[test]
fn isave_child() {
    let Some(spec) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let spec = spec.into_string().expect("utf-8");
    let (scenario, path) = spec.split_once(':').expect("scenario:path");
    let store = Store::open(Path::new(path)).expect("child open");
    let mut b = store.vat("v").expect("vat");
    b.open().expect("open");
    let mut other = store.vat("other").expect("vat");
    other.open().expect("open");
    for i in 1..=10 {
        b.write(&batch(i)).expect("write");
        other.write(&batch(i)).expect("write other");
    }
    // Every batch so far is in the log only (fewer than a checkpoint's
    // worth): the savepoint must take them in.
    store.savepoint_instance("v", "s").expect("savepoint");
    match scenario {
        "savepoint" => {}
        "rollback" | "rollback-write" => {
            for i in 11..=20 {
                b.write(&batch(i)).expect("write");
                other.write(&batch(i)).expect("write other");
            }
            drop(b);
            store.rollback_instance("v", "s").expect("rollback");
            if scenario == "rollback-write" {
                let mut b = store.vat("v").expect("vat");
                b.open().expect("open");
                for i in 21..=23 {
                    b.write(&batch(i)).expect("write");
                }
                std::mem::forget(b);
            }
        }
        other => panic!("unknown scenario {other}"),
    }
    std::mem::forget(other);
    std::process::exit(0);
}

fn crash_after(scenario: &str, path: &Path) {
    let exe = std::env::current_exe().expect("current exe");
    let status = Command::new(exe)
        .args([
            "--exact",
            "instance_savepoints::isave_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, format!("{scenario}:{}", path.display()))
        .stdout(std::process::Stdio::null())
        .status()
        .expect("run child");
    assert!(status.success(), "child {scenario} failed: {status}");
}

/// The state of instance `v` after `batches`, from a store that never
/// crashed.
fn reference(dir: &TempDir, tag: &str, batches: &[std::ops::RangeInclusive<u64>]) -> State {
    let store = Store::open(&dir.join(format!("ref-{tag}.store"))).expect("open ref");
    for r in batches {
        write(&store, "v", r.clone());
    }
    state(&store, "v")
}

#[test]
fn a_crash_right_after_a_savepoint_or_rollback_keeps_it() {
    let dir = TempDir::new("isave-crash");
    let at_s = reference(&dir, "s", &[1..=10]);
    let other_20 = reference(&dir, "o", &[1..=20]);

    let path = dir.join("savepoint.store");
    crash_after("savepoint", &path);
    let store = Store::open(&path).expect("open after crash");
    assert_eq!(names(store.instance_savepoints("v").expect("list")), ["s"]);
    write(&store, "v", 30..=31);
    store.rollback_instance("v", "s").expect("rollback");
    assert_eq!(state(&store, "v"), at_s);
    assert_eq!(state(&store, "other"), reference(&dir, "o10", &[1..=10]));
    drop(store);

    // The logged batches 11..=20 of "v" must not be replayed over the
    // rollback; those of "other" must be.
    let path = dir.join("rollback.store");
    crash_after("rollback", &path);
    let store = Store::open(&path).expect("open after crash");
    assert_eq!(state(&store, "v"), at_s);
    assert_eq!(state(&store, "other"), other_20);
    drop(store);

    let path = dir.join("rollback-write.store");
    crash_after("rollback-write", &path);
    let store = Store::open(&path).expect("open after crash");
    assert_eq!(state(&store, "v"), reference(&dir, "w", &[1..=10, 21..=23]));
    assert_eq!(state(&store, "other"), other_20);
}
