//! The inverse of the attacks: a benign caplet given a capability uses it.

use pola_sandbox_guests::{BENIGN, ECHO};
use pola_syrup::Value;

use crate::caplet;
use crate::world::{Driver, TRef};

#[test]
fn hello_round_trip() {
    let mut d = Driver::new();
    let c = d.spawn(&caplet(ECHO));
    assert_eq!(
        d.ok(&c, "add", vec![Value::int(2i64), Value::int(40i64)]),
        Value::int(42i64)
    );
    assert_eq!(
        d.ok(&c, "echo", vec![Value::str("x"), Value::Bool(true)]),
        Value::List(vec![Value::str("x"), Value::Bool(true)])
    );
    // An unknown method is a broken promise, not a crash.
    assert!(matches!(d.call(&c, "nope", vec![]), Some(Err(_))));
}

#[test]
fn benign_caplet_uses_a_granted_capability() {
    let mut d = Driver::new();
    let c = d.spawn(&caplet(BENIGN));
    let counter = TRef::Native(0);
    // The caplet sends `increment` to the counter, waits for the answer
    // (when + notify), and answers with it.
    for expected in 1..=3i64 {
        let answer = d.ok(
            &c,
            "call",
            vec![Value::Ref(counter.clone()), Value::sym("increment")],
        );
        assert_eq!(answer, Value::int(expected));
    }
    assert_eq!(d.world.borrow().counter, 3);
    // Errors from the capability come back as a broken promise.
    let r = d.call(&c, "call", vec![Value::Ref(counter), Value::sym("explode")]);
    assert_eq!(r, Some(Err(Value::str("counter: no such method"))));
    // The instance keeps its state across deliveries.
    assert_eq!(d.ok(&c, "calls", vec![]), Value::int(5i64));
    assert!(d.errors.is_empty(), "{:?}", d.errors);
}

#[test]
fn send_only_and_passing_references_on() {
    let mut d = Driver::new();
    let c = d.spawn(&caplet(BENIGN));
    let log = TRef::Native(9);
    let other = TRef::Native(4);
    d.ok(
        &c,
        "tell",
        vec![
            Value::Ref(log.clone()),
            Value::sym("note"),
            Value::Ref(other.clone()),
        ],
    );
    let w = d.world.borrow();
    let (id, msg) = w.received.last().unwrap();
    assert_eq!(*id, 9);
    // The reference arrived as the same reference, not a number.
    assert_eq!(
        msg,
        &Value::List(vec![Value::sym("note"), Value::Ref(other)])
    );
}

#[test]
fn revocable_grant_works_until_revoked_even_when_passed_on() {
    let mut d = Driver::new();
    let c = d.spawn(&caplet(BENIGN));
    let grant = d.world.borrow_mut().revocable(TRef::Native(5));
    assert_eq!(
        d.ok(&c, "keep", vec![Value::Ref(grant.clone())]),
        Value::Bool(true)
    );
    assert_eq!(
        d.ok(&c, "use-kept", vec![Value::sym("hi")]),
        Value::Bool(true)
    );
    // Pass the grant to a third party (native 8): it receives the
    // forwarder itself, never the target.
    d.ok(&c, "pass-kept", vec![Value::Ref(TRef::Native(8))]);
    let fwd = {
        let w = d.world.borrow();
        let (_, msg) = w.received.iter().rev().find(|(id, _)| *id == 8).unwrap();
        msg.as_list().unwrap()[1].as_ref().unwrap().clone()
    };
    assert_eq!(fwd, grant);
    assert_eq!(d.ok(&fwd, "through-forwarder", vec![]), Value::Bool(true));

    d.world.borrow_mut().revoke(&grant);
    // At once: the caplet's uses and the third party's reach nothing.
    d.ok(&c, "use-kept", vec![Value::sym("hi")]);
    assert_eq!(
        d.call(&fwd, "through-forwarder", vec![]),
        Some(Err(Value::str("revoked")))
    );
    let to_five = d
        .world
        .borrow()
        .received
        .iter()
        .filter(|(id, _)| *id == 5)
        .count();
    assert_eq!(to_five, 2, "exactly the two uses before revocation");
}

#[test]
fn dropped_handle_is_gone() {
    let mut d = Driver::new();
    let c = d.spawn(&caplet(BENIGN));
    d.ok(&c, "keep", vec![Value::Ref(TRef::Native(3))]);
    let before = d.caplets[0].handles();
    d.ok(&c, "drop-kept", vec![]);
    assert_eq!(d.caplets[0].handles(), before - 1);
    // Ask to use it again: the kept handle number is stale.
    d.ok(&c, "keep", vec![Value::Ref(TRef::Native(3))]);
    d.ok(&c, "drop-kept", vec![]);
    assert_eq!(
        d.call(&c, "drop-kept", vec![]),
        Some(Err(Value::str("nothing kept")))
    );
}
