//! The red-team suite: `caplets/malicious` tries everything it must not be
//! able to do. Each test asserts the failure and its error. See ATTACKS.md.

use pola_sandbox::{CallError, TrapKind};
use pola_sandbox_guests::{BENIGN, MALICIOUS};
use pola_syrup::Value;

use crate::caplet;
use crate::world::{Driver, Outcome, TRef, TVal};

fn strs(v: &TVal) -> Vec<&str> {
    v.as_list()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect()
}

/// A world with the malicious caplet (0) and a benign one (1).
fn setup() -> (
    Driver,
    TRef,
    TRef,
    pola_sandbox::CapletModule<crate::world::Link>,
) {
    let bad = caplet(MALICIOUS);
    let good = caplet(BENIGN);
    let mut d = Driver::new();
    let m = d.spawn(&bad);
    let b = d.spawn(&good);
    (d, m, b, bad)
}

/// The promise of a killed delivery is broken with a fixed reason that
/// says nothing about the host.
fn assert_no_host_detail(outcome: &Outcome) {
    let Err(reason) = outcome else {
        panic!("expected a broken promise, got {outcome:?}")
    };
    let fields = reason.as_record_labelled("desc:error").unwrap();
    let text = fields[0].as_str().unwrap();
    for bad in ["/", "0x", "secret", "backtrace", "wasm", "panicked", ".rs"] {
        assert!(!text.contains(bad), "reason {text:?} leaks {bad:?}");
    }
}

/// After an attack that kills the malicious instance, the host and the
/// other caplet keep running, and a fresh instance works.
fn still_healthy(
    d: &mut Driver,
    benign: &TRef,
    bad: &pola_sandbox::CapletModule<crate::world::Link>,
) {
    assert_eq!(d.ok(benign, "hello", vec![]), Value::str("hi"));
    assert!(d.caplets[0].is_dead());
    assert_eq!(
        d.call(&TRef::Caplet(0), "guess", vec![])
            .map(|o| o.is_err()),
        Some(true)
    );
    d.replace(0, bad);
    assert!(!d.caplets[0].is_dead());
    let r = d.ok(&TRef::Caplet(0), "guess", vec![]);
    assert_eq!(strs(&r), ["unknown-handle"]);
}

#[test]
fn std_gives_no_files_sockets_or_environment() {
    let (mut d, m, _, _) = setup();
    assert_eq!(d.ok(&m, "std-fs", vec![]), Value::str("no file access"));
    assert_eq!(d.ok(&m, "std-net", vec![]), Value::str("no network"));
    assert_eq!(d.ok(&m, "std-env", vec![]), Value::str("no environment"));
}

#[test]
fn std_clock_is_not_there() {
    let (mut d, m, b, bad) = setup();
    let outcome = d.call(&m, "std-clock", vec![]).unwrap();
    assert_eq!(d.errors, [(0, CallError::Trap(TrapKind::Unreachable))]);
    assert_no_host_detail(&outcome);
    still_healthy(&mut d, &b, &bad);
}

#[test]
fn guessed_handles_are_unknown() {
    let (mut d, m, _, _) = setup();
    // Give it something real to hold, so there is something to find.
    d.ok(&m, "keep", vec![Value::Ref(TRef::Native(7))]);
    let r = d.ok(&m, "guess", vec![]);
    assert_eq!(strs(&r), ["unknown-handle"]);
    assert!(d.world.borrow().received.is_empty());
}

#[test]
fn forged_reference_record_is_unknown() {
    let (mut d, m, _, _) = setup();
    let r = d.ok(&m, "forge", vec![Value::Ref(TRef::Native(7))]);
    assert_eq!(r, Value::str("unknown-handle"));
    assert!(d.world.borrow().received.is_empty());
}

#[test]
fn host_data_can_never_become_a_reference() {
    let (mut d, _, _, _) = setup();
    // A peer's data that looks like the wire form of a reference.
    let p = d.world.borrow_mut().promise();
    let msg: TVal = Value::List(vec![
        Value::sym("use-handle"),
        Value::record("pola:ref", vec![Value::int(1i64 << 32)]),
    ]);
    let err = d.caplets[0]
        .deliver(msg, Some(TRef::Resolver(p)))
        .unwrap_err();
    assert_eq!(err, CallError::ReservedLabel);
    assert!(d.world.borrow().outcome(p).unwrap().is_err());
}

#[test]
fn revoked_grant_stays_revoked() {
    let (mut d, m, _, _) = setup();
    let fwd = d.world.borrow_mut().revocable(TRef::Native(7));
    d.ok(&m, "keep", vec![Value::Ref(fwd.clone())]);
    assert_eq!(d.ok(&m, "use-kept", vec![]), Value::str("ok"));
    d.world.borrow_mut().revoke(&fwd);
    // The caplet may still send (its handle names the forwarder), but
    // nothing gets through, however often it tries.
    for _ in 0..3 {
        d.ok(&m, "use-kept", vec![]);
    }
    // Passing it on after revocation hands on the revoked forwarder, not
    // the target.
    assert_eq!(
        d.ok(&m, "pass-kept", vec![Value::Ref(TRef::Native(8))]),
        Value::str("ok")
    );
    let passed = {
        let w = d.world.borrow();
        let (_, msg) = w.received.iter().rev().find(|(id, _)| *id == 8).unwrap();
        msg.as_list().unwrap()[1].as_ref().unwrap().clone()
    };
    assert_eq!(passed, fwd);
    assert_eq!(
        d.call(&passed, "steal", vec![]),
        Some(Err(Value::str("revoked")))
    );
    let w = d.world.borrow();
    assert_eq!(w.received.iter().filter(|(id, _)| *id == 7).count(), 1);
}

#[test]
fn handle_from_a_replaced_instance_is_unknown() {
    let (mut d, m, _, bad) = setup();
    let n = d.ok(&m, "leak", vec![Value::Ref(TRef::Native(7))]);
    // Still valid in the same instance.
    assert_eq!(d.ok(&m, "use-handle", vec![n.clone()]), Value::str("ok"));
    d.replace(0, &bad);
    // The fresh instance learns the old number (say, a careless host
    // stored it) and tries it: it names nothing here.
    assert_eq!(
        d.ok(&m, "use-handle", vec![n]),
        Value::str("unknown-handle")
    );
    let w = d.world.borrow();
    assert_eq!(w.received.iter().filter(|(id, _)| *id == 7).count(), 1);
}

#[test]
fn resolver_misuse_is_typed() {
    let (mut d, m, _, _) = setup();
    let reporter = TRef::Native(6);
    let answer = d.ok(&m, "resolver-tricks", vec![Value::Ref(reporter)]);
    assert_eq!(answer, Value::str("first"));
    let w = d.world.borrow();
    let (_, report) = w.received.iter().find(|(id, _)| *id == 6).unwrap();
    assert_eq!(
        strs(&Value::List(report.as_list().unwrap()[1..].to_vec())),
        ["wrong-kind", "ok", "unknown-handle"]
    );
}

#[test]
fn spinning_forever_is_stopped() {
    let (mut d, m, b, bad) = setup();
    let outcome = d.call(&m, "spin", vec![]).unwrap();
    assert_eq!(d.errors, [(0, CallError::OutOfFuel)]);
    assert_eq!(outcome, Err(Value::error("caplet exceeded its CPU budget")));
    assert_no_host_detail(&outcome);
    still_healthy(&mut d, &b, &bad);
}

#[test]
fn making_the_host_work_in_a_loop_is_metered() {
    let (mut d, m, b, bad) = setup();
    let outcome = d
        .call(&m, "flood", vec![Value::Ref(TRef::Native(7))])
        .unwrap();
    assert_eq!(d.errors, [(0, CallError::OutOfFuel)]);
    assert_no_host_detail(&outcome);
    // 20 M fuel at 8 per byte: at most a few 512 KiB messages got out.
    let sent = d.world.borrow().received.len();
    assert!((1..=5).contains(&sent), "{sent} messages");
    still_healthy(&mut d, &b, &bad);
}

#[test]
fn staging_answers_in_a_loop_is_metered() {
    let (mut d, m, b, bad) = setup();
    let outcome = d
        .call(&m, "flood-answers", vec![Value::Ref(TRef::Native(7))])
        .unwrap();
    assert_eq!(d.errors, [(0, CallError::OutOfFuel)]);
    assert_no_host_detail(&outcome);
    // Every send with an answer costs at least `host_call_fuel`, so the
    // host made at most fuel / host_call_fuel answers for the loop.
    let c = crate::test_config();
    let most = c.fuel_per_call / c.host_call_fuel;
    let sent = d.world.borrow().received.len() as u64;
    assert!((100..=most).contains(&sent), "{sent} sends, at most {most}");
    still_healthy(&mut d, &b, &bad);
}

#[test]
fn unbounded_allocation_fails_cleanly() {
    let (mut d, m, b, bad) = setup();
    let outcome = d.call(&m, "bomb", vec![]).unwrap();
    assert_eq!(d.errors, [(0, CallError::MemoryLimit)]);
    assert_no_host_detail(&outcome);
    still_healthy(&mut d, &b, &bad);
}

#[test]
fn unbounded_recursion_is_stopped() {
    let (mut d, m, b, bad) = setup();
    let outcome = d.call(&m, "recurse", vec![]).unwrap();
    let (_, err) = &d.errors[0];
    // The shadow stack in linear memory runs out first (an out-of-bounds
    // access) or the engine's stack guard fires; either way a trap.
    assert!(
        matches!(
            err,
            CallError::StackOverflow | CallError::Trap(TrapKind::MemoryOutOfBounds)
        ),
        "{err:?}"
    );
    assert_no_host_detail(&outcome);
    still_healthy(&mut d, &b, &bad);
}

#[test]
fn panic_is_a_trap_without_detail() {
    let (mut d, m, b, bad) = setup();
    let outcome = d.call(&m, "panic", vec![]).unwrap();
    assert_eq!(d.errors, [(0, CallError::Trap(TrapKind::Unreachable))]);
    assert_no_host_detail(&outcome);
    still_healthy(&mut d, &b, &bad);
}

#[test]
fn gigantic_and_out_of_bounds_messages_are_refused() {
    let (mut d, m, _, _) = setup();
    let r = d.ok(&m, "huge", vec![Value::Ref(TRef::Native(7))]);
    assert_eq!(strs(&r), ["bad-memory", "too-large"]);
    let r = d.ok(&m, "garbage", vec![Value::Ref(TRef::Native(7))]);
    assert_eq!(r, Value::str("bad-message"));
    assert!(d.world.borrow().received.is_empty());
}

#[test]
fn gigantic_message_from_the_host_is_refused() {
    let (mut d, _, _, _) = setup();
    let p = d.world.borrow_mut().promise();
    let msg: TVal = Value::List(vec![Value::sym("echo"), Value::bytes(vec![0u8; 2 << 20])]);
    let err = d.caplets[0]
        .deliver(msg, Some(TRef::Resolver(p)))
        .unwrap_err();
    assert!(matches!(err, CallError::MessageTooLarge { .. }), "{err:?}");
    assert!(!d.caplets[0].is_dead());
    assert!(d.world.borrow().outcome(p).unwrap().is_err());
}

#[test]
fn flooding_the_clist_is_refused() {
    let (mut d, _, _, _) = setup();
    let refs: Vec<TVal> = (0..5000).map(|i| Value::Ref(TRef::Native(i))).collect();
    let before = d.caplets[0].handles();
    let err = d.caplets[0]
        .deliver(
            Value::List(vec![Value::sym("keep"), Value::List(refs)]),
            None,
        )
        .unwrap_err();
    assert_eq!(err, CallError::CListFull);
    assert_eq!(d.caplets[0].handles(), before, "nothing half-added");
}

#[test]
fn error_codes_carry_no_host_detail() {
    // Everything a caplet can learn from a failed host call is one of
    // these names (the SDK's rendering of the numeric codes); the other
    // attack tests show which ones each attack produces.
    let (mut d, m, _, _) = setup();
    let mut seen = Vec::new();
    seen.extend(
        strs(&d.ok(&m, "guess", vec![]))
            .into_iter()
            .map(str::to_owned),
    );
    seen.extend(
        strs(&d.ok(&m, "huge", vec![Value::Ref(TRef::Native(7))]))
            .into_iter()
            .map(str::to_owned),
    );
    for s in &seen {
        assert!(
            ["unknown-handle", "bad-memory", "too-large"].contains(&s.as_str()),
            "{s}"
        );
    }
}
