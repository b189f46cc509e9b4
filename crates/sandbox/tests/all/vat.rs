//! Caplets as vat objects.

use std::time::Duration;

use crate::vat_caplet;
use pola_sandbox::vat::{CapletObject, Policy, grant};
use pola_sandbox_guests::{BENIGN, ECHO, MALICIOUS};
use pola_vat::{Object, Outcome, Turn, Val, Vat, error, error_message};

const T: Duration = Duration::from_secs(20);

struct Counter(i64);
impl Object for Counter {
    fn receive(&self, cx: &mut Turn<'_>, m: &str, _a: Vec<Val>) -> Outcome {
        match m {
            "increment" => {
                cx.become_(Counter(self.0 + 1))?;
                Ok(Val::int(self.0 + 1))
            }
            _ => Err(error("no such method")),
        }
    }
}

#[test]
fn caplet_object_answers_and_uses_a_capability() {
    let vat = Vat::new("caplets");
    let counter = vat.spawn(Counter(0));
    let echo = vat.spawn(CapletObject::new(vat_caplet(ECHO), Policy::PerDelivery));
    let r = vat.send(&echo, "add", vec![Val::int(20i64), Val::int(22i64)]);
    assert_eq!(vat.block_on(&r, T).unwrap(), Val::int(42i64));

    let benign = vat.spawn(CapletObject::new(vat_caplet(BENIGN), Policy::Persistent));
    for n in 1..=2i64 {
        let r = vat.send(
            &benign,
            "call",
            vec![Val::Ref(counter.clone()), Val::sym("increment")],
        );
        assert_eq!(vat.block_on(&r, T).unwrap(), Val::int(n));
    }
    // State persists in a persistent caplet.
    let r = vat.send(&benign, "calls", vec![]);
    assert_eq!(vat.block_on(&r, T).unwrap(), Val::int(3i64));
    vat.shutdown();
}

#[test]
fn revoking_a_grant_takes_effect_at_once() {
    let vat = Vat::new("caplets");
    let counter = vat.spawn(Counter(0));
    let benign = vat.spawn(CapletObject::new(vat_caplet(BENIGN), Policy::Persistent));
    let c = counter.clone();
    let pair = vat.run(move |cx| {
        let (fwd, revoker) = grant(cx, c);
        Ok(Val::List(vec![Val::Ref(fwd), Val::Ref(revoker)]))
    });
    let pair = vat.block_on(&pair, T).unwrap();
    let fwd = pair.as_list().unwrap()[0].clone();
    let revoker = pair.as_list().unwrap()[1].as_ref().unwrap().clone();
    let r = vat.send(&benign, "call", vec![fwd.clone(), Val::sym("increment")]);
    assert_eq!(vat.block_on(&r, T).unwrap(), Val::int(1i64));
    let done = vat.send(&revoker, "revoke", vec![]);
    vat.block_on(&done, T).unwrap();
    let r = vat.send(&benign, "call", vec![fwd, Val::sym("increment")]);
    let reason = vat.block_on(&r, T).unwrap_err();
    assert!(format!("{reason:?}").contains("revoked"), "{reason:?}");
    vat.shutdown();
}

#[test]
fn runaway_caplet_breaks_only_its_own_answer() {
    let vat = Vat::new("caplets");
    let bad = vat.spawn(CapletObject::new(vat_caplet(MALICIOUS), Policy::Persistent));
    let good = vat.spawn(CapletObject::new(vat_caplet(BENIGN), Policy::Persistent));
    let r = vat.send(&bad, "spin", vec![]);
    let reason = vat.block_on(&r, T).unwrap_err();
    let pola_vat::WaitError::Broken(reason) = reason else {
        panic!("{reason:?}")
    };
    let text = error_message(&reason)
        .map(str::to_owned)
        .unwrap_or_default();
    assert_eq!(text, "caplet exceeded its CPU budget");
    let r = vat.send(&good, "hello", vec![]);
    assert_eq!(vat.block_on(&r, T).unwrap(), Val::str("hi"));
    // The same object comes back with a fresh instance.
    let r = vat.send(&bad, "std-fs", vec![]);
    assert_eq!(vat.block_on(&r, T).unwrap(), Val::str("no file access"));
    vat.shutdown();
}

/// `make(i)` spawns a `Cell(i)`; `get()` on a cell answers its number.
struct Maker;
impl Object for Maker {
    fn receive(&self, cx: &mut Turn<'_>, m: &str, a: Vec<Val>) -> Outcome {
        match (m, a.as_slice()) {
            ("make", [n]) => Ok(Val::Ref(cx.spawn(Cell(n.clone())))),
            _ => Err(error("no such method")),
        }
    }
}
struct Cell(Val);
impl Object for Cell {
    fn receive(&self, _cx: &mut Turn<'_>, m: &str, _a: Vec<Val>) -> Outcome {
        match m {
            "get" => Ok(self.0.clone()),
            _ => Err(error("no such method")),
        }
    }
}

#[test]
fn a_hundred_sends_with_answers_in_one_delivery() {
    let vat = Vat::new("caplets");
    let maker = vat.spawn(Maker);
    let benign = vat.spawn(CapletObject::new(vat_caplet(BENIGN), Policy::Persistent));
    // Far past the old limit of 8 answer promises per delivery.
    let r = vat.send(&benign, "fan", vec![Val::Ref(maker), Val::int(100i64)]);
    let list = vat.block_on(&r, T).unwrap();
    let items = list.as_list().unwrap();
    assert_eq!(items.len(), 100);
    for (i, item) in items.iter().enumerate() {
        let item = item.as_ref().unwrap();
        let got = if i % 3 == 0 {
            // The caplet pipelined `get` on its own answer.
            vat.block_on(item, T).unwrap()
        } else {
            let g = vat.send(item, "get", vec![]);
            vat.block_on(&g, T).unwrap()
        };
        assert_eq!(got, Val::int(i as i64), "answer {i}");
    }
    // The answer handle the caplet kept is bound to the real promise in
    // later deliveries too.
    let r = vat.send(&benign, "ask-kept", vec![Val::sym("get")]);
    assert_eq!(vat.block_on(&r, T).unwrap(), Val::int(0i64));
    vat.shutdown();
}

#[test]
fn sending_with_answers_in_a_loop_is_stopped_and_commits_nothing() {
    let vat = Vat::new("caplets");
    let counter = vat.spawn(Counter(0));
    let bad = vat.spawn(CapletObject::new(vat_caplet(MALICIOUS), Policy::Persistent));
    // Each send is charged fuel, so the loop ends in OutOfFuel after at
    // most fuel / host_call_fuel sends; the failed turn sends none of them.
    let r = vat.send(&bad, "flood-answers", vec![Val::Ref(counter.clone())]);
    let reason = vat.block_on(&r, T).unwrap_err();
    assert!(format!("{reason:?}").contains("CPU budget"), "{reason:?}");
    let r = vat.send(&counter, "increment", vec![]);
    assert_eq!(vat.block_on(&r, T).unwrap(), Val::int(1i64));
    vat.shutdown();
}

#[test]
fn memoryless_caplet_that_answers_later_breaks_its_answer() {
    let vat = Vat::new("caplets");
    let counter = vat.spawn(Counter(0));
    let benign = vat.spawn(CapletObject::new(vat_caplet(BENIGN), Policy::PerDelivery));
    // `call` keeps its resolver to answer later, but the instance goes
    // when the delivery ends: the answer is broken, not left pending.
    let r = vat.send(
        &benign,
        "call",
        vec![Val::Ref(counter), Val::sym("increment")],
    );
    let reason = vat.block_on(&r, T).unwrap_err();
    assert!(
        format!("{reason:?}").contains("instance is gone"),
        "{reason:?}"
    );
    vat.shutdown();
}

/// Answers `hang` with a promise it never settles (it keeps the resolvers,
/// so the promises stay pending rather than breaking).
struct Hang(std::sync::Mutex<Vec<pola_vat::Resolver>>);
impl Object for Hang {
    fn receive(&self, cx: &mut Turn<'_>, _m: &str, _a: Vec<Val>) -> Outcome {
        let (p, r) = cx.promise();
        self.0.lock().unwrap().push(r);
        Ok(Val::Ref(p))
    }
}

#[test]
fn pending_whens_of_a_caplet_are_bounded() {
    use pola_sandbox::vat::MAX_WATCHES;
    let vat = Vat::new("caplets");
    let hang = vat.spawn(Hang(std::sync::Mutex::new(Vec::new())));
    let bad = vat.spawn(CapletObject::new(vat_caplet(MALICIOUS), Policy::Persistent));
    // Each delivery registers `when`s on promises that never settle; over
    // many deliveries they would pile up in the vat, outside the caplet's
    // memory cap. Past MAX_WATCHES pending, the host refuses more.
    let per_delivery = 250;
    let (mut accepted, mut last) = (0, usize::MAX);
    for _ in 0..(MAX_WATCHES / per_delivery + 2) {
        let r = vat.send(
            &bad,
            "watch",
            vec![Val::Ref(hang.clone()), Val::int(per_delivery as i64)],
        );
        last = vat.block_on(&r, T).unwrap().as_i64().unwrap() as usize;
        accepted += last;
    }
    // Without the bound all 4 500 would be accepted.
    assert!(accepted <= MAX_WATCHES, "{accepted}");
    assert!(accepted > MAX_WATCHES - per_delivery, "{accepted}");
    assert_eq!(last, 0, "the last delivery's whens were all refused");
    vat.shutdown();
}

/// Records the arguments of every `take` it receives.
struct Taker(std::sync::Arc<std::sync::Mutex<Vec<Val>>>);
impl Object for Taker {
    fn receive(&self, _cx: &mut Turn<'_>, _m: &str, a: Vec<Val>) -> Outcome {
        self.0.lock().unwrap().extend(a);
        Ok(Val::Bool(true))
    }
}

/// One revocation mechanism: a grant is a vat revocable forwarder, and
/// revoking it reaches every copy at once, wherever the caplet put it: in
/// its memory, in another object's hands, in its storage (read back by a
/// fresh instance after a trap).
#[test]
fn a_revoked_grant_is_dead_wherever_the_caplet_put_it() {
    let vat = Vat::new("caplets");
    let counter = vat.spawn(Counter(0));
    let taken = std::sync::Arc::default();
    let taker = vat.spawn(Taker(std::sync::Arc::clone(&taken)));
    let bad = vat.spawn(CapletObject::new(vat_caplet(MALICIOUS), Policy::Persistent));
    let c = counter.clone();
    let pair = vat.run(move |cx| {
        let (fwd, revoker) = grant(cx, c);
        Ok(Val::List(vec![Val::Ref(fwd), Val::Ref(revoker)]))
    });
    let pair = vat.block_on(&pair, T).unwrap();
    let fwd = pair.as_list().unwrap()[0].clone();
    let revoker = pair.as_list().unwrap()[1].as_ref().unwrap().clone();
    let ask = |target: &pola_vat::Ref, m: &'static str, args: Vec<Val>| {
        let r = vat.send(target, m, args);
        vat.block_on(&r, T)
    };
    assert_eq!(
        ask(&bad, "keep", vec![fwd.clone()]).unwrap(),
        Val::Bool(true)
    );
    assert_eq!(
        ask(&bad, "sput", vec![Val::str("g"), fwd.clone()]).unwrap(),
        Val::str("ok")
    );
    assert_eq!(
        ask(&bad, "pass-kept", vec![Val::Ref(taker)]).unwrap(),
        Val::str("ok")
    );
    // The taker got the forwarder (a turn later).
    let passed = loop {
        if let Some(v) = taken.lock().unwrap().first().cloned() {
            break v.as_ref().unwrap().clone();
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    assert_eq!(ask(&passed, "increment", vec![]).unwrap(), Val::int(1i64));

    ask(&revoker, "revoke", vec![]).unwrap();
    // The third party's copy: broken with "revoked".
    let reason = ask(&passed, "increment", vec![]).unwrap_err();
    assert!(format!("{reason:?}").contains("revoked"), "{reason:?}");
    // The caplet's copy in memory: its send goes nowhere.
    assert_eq!(ask(&bad, "use-kept", vec![]).unwrap(), Val::str("ok"));
    // The stored copy, read back by a fresh instance after a trap.
    assert!(ask(&bad, "panic", vec![]).is_err());
    let stored = ask(&bad, "sget", vec![Val::str("g")]).unwrap();
    let reason = ask(stored.as_ref().unwrap(), "increment", vec![]).unwrap_err();
    assert!(format!("{reason:?}").contains("revoked"), "{reason:?}");
    // Only the one use before revocation reached the counter.
    assert_eq!(ask(&counter, "increment", vec![]).unwrap(), Val::int(2i64));
    vat.shutdown();
}
