//! A caplet's storage: its state outlives its instance, and a delivery
//! that fails writes nothing. Each test attacks one promise of
//! `pola_sandbox::abi` ("Storage") and `pola_sandbox::vat`.

use std::time::Duration;

use pola_sandbox::CallError;
use pola_sandbox::vat::{CapletCode, CapletObject, Policy, kinds};
use pola_sandbox_guests::{BENIGN, MALICIOUS};
use pola_syrup::Value;
use pola_vat::backend::MemoryBackend;
use pola_vat::persist::{Kinds, Portrait};
use pola_vat::{Object, Outcome, Ref, Turn, Val, Vat, WaitError, error, error_message, from_fn};

use crate::world::{Driver, TRef};
use crate::{caplet, test_config, vat_caplet, vat_shared};

const T: Duration = Duration::from_secs(30);

/// A counter that may live in a persistent vat (kind `test.counter`).
struct Counter(i64);
impl Object for Counter {
    fn receive(&self, cx: &mut Turn<'_>, m: &str, _a: Vec<Val>) -> Outcome {
        match m {
            "increment" => {
                cx.become_(Counter(self.0 + 1))?;
                Ok(Val::int(self.0 + 1))
            }
            "value" => Ok(Val::int(self.0)),
            _ => Err(error("no such method")),
        }
    }
    fn portrait(&self) -> Option<Portrait> {
        Some(Portrait::new("test.counter", 1, Val::int(self.0)))
    }
}

fn call(vat: &Vat, target: &Ref, method: &str, args: Vec<Val>) -> Result<Val, WaitError> {
    let r = vat.send(target, method.to_owned(), args);
    vat.block_on(&r, T)
}

fn ok(vat: &Vat, target: &Ref, method: &str, args: Vec<Val>) -> Val {
    match call(vat, target, method, args) {
        Ok(v) => v,
        Err(e) => panic!("{method}: {e:?}"),
    }
}

fn broken_text(e: WaitError) -> String {
    match e {
        WaitError::Broken(reason) => error_message(&reason)
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{reason:?}")),
        other => panic!("not broken: {other:?}"),
    }
}

/// The caplet object's committed storage under `key` (rights
/// amplification by type, from inside the vat).
fn stored(vat: &Vat, caplet: &Ref, key: &str) -> Option<Val> {
    let c = caplet.clone();
    let key = key.as_bytes().to_vec();
    let r = vat.run(move |cx| {
        let obj = cx
            .inspect::<CapletObject>(&c)
            .ok_or_else(|| error("not a caplet"))?;
        Ok(obj.stored(&key).unwrap_or(Val::Bool(false)))
    });
    match vat.block_on(&r, T).unwrap() {
        Val::Bool(false) => None,
        v => Some(v),
    }
}

fn stored_keys(vat: &Vat, caplet: &Ref) -> usize {
    let c = caplet.clone();
    let r = vat.run(move |cx| {
        let obj = cx
            .inspect::<CapletObject>(&c)
            .ok_or_else(|| error("not a caplet"))?;
        Ok(Val::int(obj.stored_keys() as i64))
    });
    vat.block_on(&r, T).unwrap().as_i64().unwrap() as usize
}

#[test]
fn a_fuel_exhausting_message_leaves_the_benign_caplets_counter_and_kept_capability_as_they_were() {
    let vat = Vat::new("storage");
    let counter = vat.spawn(Counter(0));
    let benign = vat.spawn(CapletObject::new(vat_caplet(BENIGN), Policy::Persistent));
    assert_eq!(
        ok(&vat, &benign, "keep", vec![Val::Ref(counter.clone())]),
        Val::Bool(true)
    );
    for n in 1..=3i64 {
        let got = ok(&vat, &benign, "ask-kept", vec![Val::sym("increment")]);
        assert_eq!(got, Val::int(n));
    }
    // keep + 3 ask-kept + this one.
    assert_eq!(ok(&vat, &benign, "calls", vec![]), Val::int(5i64));

    // The attack of issue #9: 250 KB of booleans. Decoding them costs the
    // caplet more than its budget, so its instance dies; before storage,
    // the fresh instance had forgotten the counter and the capability.
    let bools = Val::List(vec![Val::Bool(true); 250_000]);
    let reason = broken_text(call(&vat, &benign, "hello", vec![bools]).unwrap_err());
    eprintln!("250 KB of booleans: {reason}");
    assert!(
        reason == "caplet exceeded its CPU budget" || reason == "caplet exceeded its memory limit",
        "{reason}"
    );

    // A fresh instance: the count goes on from 5 (the failed delivery
    // counted nothing), and the kept capability is the same counter.
    assert_eq!(ok(&vat, &benign, "calls", vec![]), Val::int(6i64));
    let got = ok(&vat, &benign, "ask-kept", vec![Val::sym("increment")]);
    assert_eq!(got, Val::int(4i64));
    assert_eq!(ok(&vat, &counter, "value", vec![]), Val::int(4i64));
    assert_eq!(stored(&vat, &benign, "kept"), Some(Val::Ref(counter)));
    vat.shutdown();
}

#[test]
fn a_failure_code_after_writing_and_sending_discards_both() {
    let vat = Vat::new("storage");
    let counter = vat.spawn(Counter(0));
    let bad = vat.spawn(CapletObject::new(vat_caplet(MALICIOUS), Policy::Persistent));
    let put = ok(
        &vat,
        &bad,
        "sput",
        vec![Val::str("victim"), Val::str("original")],
    );
    assert_eq!(put, Val::str("ok"));
    // Writes `victim`, stores the counter under `extra`, sends
    // `increment`, then returns a failure code.
    let reason = broken_text(
        call(
            &vat,
            &bad,
            "store-send-abort",
            vec![Val::Ref(counter.clone())],
        )
        .unwrap_err(),
    );
    assert_eq!(reason, "caplet failed");
    // The send was dropped and the storage is as it was: consistent.
    assert_eq!(ok(&vat, &counter, "value", vec![]), Val::int(0i64));
    assert_eq!(
        ok(&vat, &bad, "sget", vec![Val::str("victim")]),
        Val::str("original")
    );
    assert_eq!(
        ok(&vat, &bad, "sget", vec![Val::str("extra")]),
        Val::Bool(false)
    );
    assert_eq!(stored_keys(&vat, &bad), 1);
    vat.shutdown();
}

#[test]
fn a_trap_after_writing_and_sending_discards_both() {
    let vat = Vat::new("storage");
    let counter = vat.spawn(Counter(0));
    let bad = vat.spawn(CapletObject::new(vat_caplet(MALICIOUS), Policy::Persistent));
    ok(
        &vat,
        &bad,
        "sput",
        vec![Val::str("victim"), Val::str("original")],
    );
    ok(
        &vat,
        &bad,
        "sput",
        vec![Val::str("kept"), Val::Ref(counter.clone())],
    );
    // Writes `victim`, deletes `kept`, sends `increment`, then panics.
    let reason = broken_text(
        call(
            &vat,
            &bad,
            "store-send-panic",
            vec![Val::Ref(counter.clone())],
        )
        .unwrap_err(),
    );
    assert_eq!(reason, "caplet trapped");
    assert_eq!(ok(&vat, &counter, "value", vec![]), Val::int(0i64));
    // A fresh instance reads the storage as it was before the delivery,
    // the kept capability included (a new handle for the same object).
    assert_eq!(
        ok(&vat, &bad, "sget", vec![Val::str("victim")]),
        Val::str("original")
    );
    assert_eq!(
        ok(&vat, &bad, "sget", vec![Val::str("kept")]),
        Val::Ref(counter.clone())
    );
    assert_eq!(stored(&vat, &bad, "kept"), Some(Val::Ref(counter)));
    vat.shutdown();
}

#[test]
fn a_failed_entry_writes_nothing_outside_a_vat_either() {
    // The host alone (no vat): the instance's committed storage changes
    // only when an entry returns 0.
    let mut d = Driver::new();
    let c = d.spawn(&caplet(MALICIOUS));
    d.ok(
        &c,
        "sput",
        vec![Value::str("victim"), Value::str("original")],
    );
    let before = d.caplets[0].storage().clone();
    assert_eq!(before.len(), 1);
    let _ = d.call(&c, "store-send-abort", vec![Value::Ref(TRef::Native(3))]);
    assert_eq!(
        d.errors.last().map(|(_, e)| e.clone()),
        Some(CallError::CapletFailed(4))
    );
    let after = d.caplets[0].storage().clone();
    assert!(std::sync::Arc::ptr_eq(&before, &after), "storage changed");
    assert_eq!(
        d.ok(&c, "sget", vec![Value::str("victim")]),
        Value::str("original")
    );
    assert_eq!(
        d.ok(&c, "sget", vec![Value::str("extra")]),
        Value::Bool(false)
    );
    // (Whether its sends go is this test world's business: it sends at
    // once. A vat discards them with the turn; see the tests above.)
}

#[test]
fn a_stored_grant_stays_revoked() {
    // A stored revocable grant is the forwarder: after revocation the
    // caplet's use of it, from a fresh instance too, reaches nothing.
    let mut d = Driver::new();
    let c = d.spawn(&caplet(BENIGN));
    let grant = d.world.borrow_mut().revocable(TRef::Native(5));
    assert_eq!(
        d.ok(&c, "keep", vec![Value::Ref(grant.clone())]),
        Value::Bool(true)
    );
    let kept = d.caplets[0].storage().clone();
    assert_eq!(kept.get(b"kept"), Some(&Value::Ref(grant.clone())));
    d.world.borrow_mut().revoke(&grant);
    d.replace(0, &caplet(BENIGN));
    d.caplets[0].set_storage(kept);
    d.ok(&c, "use-kept", vec![Value::sym("hi")]);
    assert!(d.world.borrow().received.iter().all(|(id, _)| *id != 5));
}

#[test]
fn storage_quota_abuse_gets_typed_errors_and_leaves_state_intact() {
    let config = test_config();
    let vat = Vat::new("storage");
    let bad = vat.spawn(CapletObject::new(vat_caplet(MALICIOUS), Policy::Persistent));
    ok(
        &vat,
        &bad,
        "sput",
        vec![Val::str("k0"), Val::str("original")],
    );

    // Too many keys: small values until the host says no.
    let got = ok(&vat, &bad, "hoard", vec![Val::int(1i64)]);
    let got = got.as_list().unwrap();
    assert_eq!(got[1], Val::str("storage-full"));
    // `k0` was there already (replaced, no new key): all of them fit.
    assert_eq!(got[0].as_i64(), Some(config.storage_keys as i64));
    assert_eq!(stored_keys(&vat, &bad), config.storage_keys);

    // A value over the per-value limit: refused, `k0` unchanged.
    let big = config.storage_value_bytes as i64 + 1;
    let got = ok(&vat, &bad, "oversize", vec![Val::str("k0"), Val::int(big)]);
    assert_eq!(got, Val::str("too-large"));
    // An overlong key.
    let long = config.storage_key_bytes as i64 + 1;
    assert_eq!(
        ok(&vat, &bad, "long-key", vec![Val::int(long)]),
        Val::str("too-large")
    );
    // A new key when full.
    assert_eq!(
        ok(
            &vat,
            &bad,
            "oversize",
            vec![Val::str("new"), Val::int(1i64)]
        ),
        Val::str("storage-full")
    );
    assert_eq!(stored_keys(&vat, &bad), config.storage_keys);
    assert_eq!(
        ok(&vat, &bad, "sget", vec![Val::str("k0")]),
        Val::bytes(vec![7u8; 1])
    );
    vat.shutdown();

    // Too many bytes: large values in a fresh caplet.
    let vat = Vat::new("storage");
    let bad = vat.spawn(CapletObject::new(vat_caplet(MALICIOUS), Policy::Persistent));
    let size = config.storage_value_bytes as i64 - 16;
    let got = ok(&vat, &bad, "hoard", vec![Val::int(size)]);
    let got = got.as_list().unwrap();
    assert_eq!(got[1], Val::str("storage-full"));
    let fit = got[0].as_i64().unwrap() as usize;
    assert!(fit >= 1 && fit < config.storage_keys, "{fit}");
    let bytes = {
        let c = bad.clone();
        let r = vat.run(move |cx| {
            let obj = cx.inspect::<CapletObject>(&c).ok_or_else(|| error("?"))?;
            Ok(Val::int(obj.stored_bytes() as i64))
        });
        vat.block_on(&r, T).unwrap().as_i64().unwrap() as usize
    };
    assert!(bytes <= config.storage_bytes, "{bytes}");
    assert!(
        bytes + config.storage_value_bytes > config.storage_bytes,
        "{bytes}"
    );
    vat.shutdown();
}

#[test]
fn forged_handles_and_resolvers_cannot_be_stored() {
    let vat = Vat::new("storage");
    let bad = vat.spawn(CapletObject::new(vat_caplet(MALICIOUS), Policy::Persistent));
    let got = ok(&vat, &bad, "store-forged", vec![]);
    assert_eq!(
        got,
        Val::List(vec![Val::str("unknown-handle"), Val::str("wrong-kind")])
    );
    assert_eq!(stored_keys(&vat, &bad), 0);
    vat.shutdown();
}

fn persistent_kinds() -> Kinds {
    let mut k = Kinds::new();
    kinds(&mut k, vat_shared());
    k.add("test.counter", 1, |_v, state| {
        state
            .as_i64()
            .map(Counter)
            .ok_or_else(|| error("test.counter: not an integer"))
    });
    k
}

#[test]
fn a_caplets_storage_survives_reopening_a_persistent_vat() {
    let backend = MemoryBackend::new();
    let vat = Vat::open("caplets", backend.clone(), persistent_kinds()).unwrap();
    let made = vat.run(|cx| {
        let code = CapletCode::load(vat_shared(), BENIGN).map_err(|e| error(e.to_string()))?;
        let code = cx.spawn(code);
        let benign = cx.spawn(CapletObject::persistent(code, Policy::Persistent));
        let counter = cx.spawn(Counter(0));
        cx.set_root("benign", Some(&benign))?;
        cx.set_root("counter", Some(&counter))?;
        Ok(Val::Bool(true))
    });
    vat.block_on(&made, T).unwrap();
    let benign = vat.root("benign").unwrap();
    let counter = vat.root("counter").unwrap();
    ok(&vat, &benign, "keep", vec![Val::Ref(counter.clone())]);
    for n in 1..=2i64 {
        let got = ok(&vat, &benign, "ask-kept", vec![Val::sym("increment")]);
        assert_eq!(got, Val::int(n));
    }
    assert_eq!(ok(&vat, &benign, "calls", vec![]), Val::int(4i64));
    vat.shutdown();

    // Another process, as far as the vat knows: every object is revived
    // from the store; the caplet gets a fresh instance (compiled again
    // from the stored code) and its storage back.
    let vat = Vat::open("caplets", backend.clone(), persistent_kinds()).unwrap();
    let benign = vat.root("benign").unwrap();
    let counter = vat.root("counter").unwrap();
    assert_eq!(ok(&vat, &benign, "calls", vec![]), Val::int(5i64));
    let got = ok(&vat, &benign, "ask-kept", vec![Val::sym("increment")]);
    assert_eq!(got, Val::int(3i64));
    assert_eq!(ok(&vat, &counter, "value", vec![]), Val::int(3i64));
    assert_eq!(stored(&vat, &benign, "kept"), Some(Val::Ref(counter)));
    vat.shutdown();
}

#[test]
fn storing_an_ephemeral_reference_in_a_persistent_vat_is_refused_and_changes_nothing() {
    let backend = MemoryBackend::new();
    let vat = Vat::open("caplets", backend.clone(), persistent_kinds()).unwrap();
    let made = vat.run(|cx| {
        let code = CapletCode::load(vat_shared(), BENIGN).map_err(|e| error(e.to_string()))?;
        let code = cx.spawn(code);
        let benign = cx.spawn(CapletObject::persistent(code, Policy::Persistent));
        let counter = cx.spawn(Counter(0));
        cx.set_root("benign", Some(&benign))?;
        cx.set_root("counter", Some(&counter))?;
        Ok(Val::Bool(true))
    });
    vat.block_on(&made, T).unwrap();
    let benign = vat.root("benign").unwrap();
    let counter = vat.root("counter").unwrap();
    ok(&vat, &benign, "keep", vec![Val::Ref(counter.clone())]);
    let calls = ok(&vat, &benign, "calls", vec![]);
    // A closure object cannot be stored: the turn fails at commit with
    // the vat's reason, and the caplet's storage is what it was.
    let ephemeral = vat.spawn(from_fn(|_cx, _m, _a| Ok(Val::Bool(true))));
    let reason = broken_text(call(&vat, &benign, "keep", vec![Val::Ref(ephemeral)]).unwrap_err());
    assert!(reason.contains("ephemeral"), "{reason}");
    assert_eq!(
        stored(&vat, &benign, "kept"),
        Some(Val::Ref(counter.clone()))
    );
    let next = ok(&vat, &benign, "calls", vec![]);
    assert_eq!(next.as_i64(), calls.as_i64().map(|n| n + 1));
    vat.shutdown();

    // And what is on disk is the last good state.
    let vat = Vat::open("caplets", backend, persistent_kinds()).unwrap();
    let benign = vat.root("benign").unwrap();
    let got = ok(&vat, &benign, "ask-kept", vec![Val::sym("increment")]);
    assert_eq!(got, Val::int(1i64));
    vat.shutdown();
}

#[test]
fn only_the_host_can_upgrade_a_caplet_in_place_and_its_storage_carries_over() {
    use pola_sandbox::vat::{UPGRADE, Upgrader};
    let backend = MemoryBackend::new();
    let vat = Vat::open("caplets", backend, persistent_kinds()).unwrap();
    let made = vat.run(|cx| {
        let code = CapletCode::load(vat_shared(), BENIGN).map_err(|e| error(e.to_string()))?;
        let code = cx.spawn(code);
        let benign = cx.spawn(CapletObject::persistent(code, Policy::Persistent));
        cx.set_root("benign", Some(&benign))?;
        Ok(Val::Bool(true))
    });
    vat.block_on(&made, T).unwrap();
    let benign = vat.root("benign").unwrap();
    assert_eq!(ok(&vat, &benign, "calls", vec![]), Val::int(1i64));
    let echo = vat.run(|cx| {
        let code = CapletCode::load(vat_shared(), pola_sandbox_guests::ECHO)
            .map_err(|e| error(e.to_string()))?;
        Ok(Val::Ref(cx.spawn(code)))
    });
    let echo = vat.block_on(&echo, T).unwrap().as_ref().cloned().unwrap();
    // A client's look-alike upgrader is not the host's: the message is the
    // caplet's own (benign counts it), and its code stays.
    let fake = vat.spawn(from_fn(|_cx, _m, _a| Ok(Val::Bool(true))));
    let _ = call(
        &vat,
        &benign,
        UPGRADE,
        vec![Val::Ref(fake), Val::Ref(echo.clone())],
    );
    assert_eq!(ok(&vat, &benign, "calls", vec![]), Val::int(3i64));
    // The host's upgrader: the same object now runs the echo code.
    let upgrader = vat.spawn(Upgrader);
    ok(
        &vat,
        &benign,
        UPGRADE,
        vec![Val::Ref(upgrader.clone()), Val::Ref(echo)],
    );
    assert_eq!(
        ok(&vat, &benign, "echo", vec![Val::int(7i64)]),
        Val::List(vec![Val::int(7i64)])
    );
    assert_eq!(stored(&vat, &benign, "calls"), Some(Val::int(3i64)));
    // And back: benign carries on counting over the same storage.
    let back = vat.run(|cx| {
        let code = CapletCode::load(vat_shared(), BENIGN).map_err(|e| error(e.to_string()))?;
        Ok(Val::Ref(cx.spawn(code)))
    });
    let back = vat.block_on(&back, T).unwrap().as_ref().cloned().unwrap();
    ok(
        &vat,
        &benign,
        UPGRADE,
        vec![Val::Ref(upgrader), Val::Ref(back)],
    );
    assert_eq!(ok(&vat, &benign, "calls", vec![]), Val::int(4i64));
    vat.shutdown();
}
