//! The host stops a caplet in the middle of an entry (issue #10): a
//! caplet making host calls in a loop under a large budget is stopped at
//! its next host call, long before its fuel or its wall-clock limit would
//! have ended the entry, and nothing the entry did is kept.

use std::time::{Duration, Instant};

use pola_sandbox::vat::{CapletObject, Policy, StopReason, VatLink};
use pola_sandbox::{CallError, CapletModule, Sandbox};
use pola_vat::{Ref, Val, Vat, WaitError, error_message};

use crate::{test_config, wat};

/// Generous: bounds a hang, not a speed assertion.
const T: Duration = Duration::from_secs(60);

/// The wall-clock limit of an entry here.
const WALL: Duration = Duration::from_secs(3);

/// Stores `k`, answers `true`, then asks for `k` again and again for ever:
/// a host call on every turn of the loop, nothing else.
const LOOPER: &str = r#"(module
    (import "pola" "resolve" (func $resolve (param i64 i32 i32) (result i32)))
    (import "pola" "storage_put" (func $put (param i32 i32 i32 i32) (result i32)))
    (import "pola" "storage_get" (func $get (param i32 i32) (result i32)))
    (memory (export "memory") 1)
    (data (i32.const 0) "k")
    (data (i32.const 8) "t")
    (func (export "pola_deliver") (param $len i32) (param $resolver i64) (result i32)
        (drop (call $put (i32.const 0) (i32.const 1) (i32.const 8) (i32.const 1)))
        (drop (call $resolve (local.get $resolver) (i32.const 8) (i32.const 1)))
        (loop $again
            (drop (call $get (i32.const 0) (i32.const 1)))
            (br $again))
        (i32.const 0)))"#;

/// A budget so large that only the wall clock ends the loop by itself:
/// at a few microseconds and 10 000 fuel per host call, a trillion fuel
/// lasts minutes.
fn looper() -> CapletModule<VatLink> {
    let mut c = test_config();
    c.max_instances = 4;
    c.fuel_per_call = 1_000_000_000_000;
    c.fuel_burst = 10_000_000_000_000;
    c.fuel_per_second = 1_000_000_000_000;
    c.wall_time_per_call = Some(WALL);
    let sb = Sandbox::<VatLink>::new(c).unwrap();
    sb.load(&wat(LOOPER)).unwrap()
}

/// Why `r` broke.
fn broken(vat: &Vat, r: &Ref) -> String {
    match vat.block_on(r, T) {
        Err(WaitError::Broken(reason)) => error_message(&reason).unwrap_or_default().to_owned(),
        other => panic!("expected a broken promise, got {other:?}"),
    }
}

/// How many keys the caplet object `caplet` has stored (committed).
fn stored_keys(vat: &Vat, caplet: &Ref) -> usize {
    let caplet = caplet.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let r = vat.run(move |cx| {
        let obj = cx.inspect::<CapletObject>(&caplet).unwrap();
        tx.send(obj.stored_keys()).unwrap();
        Ok(Val::null())
    });
    vat.block_on(&r, T).unwrap();
    rx.recv().unwrap()
}

#[test]
fn the_host_stops_a_caplet_in_the_middle_of_an_entry() {
    let module = looper();
    let vat = Vat::new("stop-mid-entry");

    // Left alone, the entry runs until its wall-clock limit ends it (its
    // fuel would last far longer), and keeps nothing.
    let alone = vat.spawn(CapletObject::new(module.clone(), Policy::Persistent));
    let started = Instant::now();
    let r = vat.send(&alone, "go", vec![]);
    let why = broken(&vat, &r);
    let unstopped = started.elapsed();
    assert_eq!(why, CallError::TimedOut.public_reason(), "{why}");
    assert!(unstopped >= WALL * 9 / 10, "ended after {unstopped:?}");
    assert_eq!(stored_keys(&vat, &alone), 0);

    // Stopped by its host a little way into the same entry.
    let object = CapletObject::new(module, Policy::Persistent);
    let stopper = object.stopper();
    let caplet = vat.spawn(object);
    let started = Instant::now();
    let r = vat.send(&caplet, "go", vec![]);
    std::thread::sleep(Duration::from_millis(300));
    assert!(vat.settled(&r).try_get().is_none(), "the entry ended early");
    let stopping = Instant::now();
    stopper.stop();
    let why = broken(&vat, &r);
    let after_stop = stopping.elapsed();
    let entry = started.elapsed();
    eprintln!(
        "left alone the entry ran {unstopped:?} (wall-clock limit {WALL:?}); stopped after 300 ms it ended {after_stop:?} after the stop ({entry:?} in all)"
    );
    // Its answer (settled `true` inside the entry) breaks with the stop's
    // reason: the settlement was not kept, nor was the stored key.
    assert_eq!(why, StopReason::Host.public_reason(), "{why}");
    assert!(
        after_stop < Duration::from_secs(1) && entry < unstopped / 2,
        "the entry ended {after_stop:?} after the stop, {entry:?} in all"
    );
    assert_eq!(stored_keys(&vat, &caplet), 0);
    assert_eq!(stopper.stopped(), Some(StopReason::Host));
    // Later messages break with the same reason, without running.
    for _ in 0..3 {
        let t = Instant::now();
        let r = vat.send(&caplet, "go", vec![]);
        assert_eq!(broken(&vat, &r), StopReason::Host.public_reason());
        assert!(t.elapsed() < Duration::from_secs(1));
    }
    vat.shutdown();
}
