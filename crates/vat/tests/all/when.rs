//! `when` callbacks run in a later turn of the registering vat.

use pola_vat::{Val, Vat, error, error_message, from_fn};

use crate::support::{Counter, Log, T, int, n};

#[test]
fn callback_runs_after_the_registering_turn() {
    let vat = Vat::new("when");
    let log = vat.spawn(Log::default());
    let c = vat.spawn(Counter(5));
    let (l, c2) = (log.clone(), c.clone());
    let p = vat.run(move |cx| {
        let l2 = l.clone();
        // The target is already settled, yet the callback waits its turn.
        let done = cx.when(&c2, move |cx, outcome| {
            cx.call(&l2, "add", vec![Val::str("callback")])?;
            outcome
        });
        cx.call(&l, "add", vec![Val::str("turn end")])?;
        Ok(Val::Ref(done))
    });
    assert_eq!(vat.block_on(&p, T).unwrap(), Val::Ref(c.clone()));
    let got = vat.block_on(&vat.send(&log, "get", vec![]), T).unwrap();
    assert_eq!(
        got,
        Val::List(vec![Val::str("turn end"), Val::str("callback")])
    );
    vat.shutdown();
}

#[test]
fn callback_gets_value_or_reason_across_vats() {
    let home = Vat::new("when-home");
    let far = Vat::new("when-far");
    let c = far.spawn(Counter(1));
    let c2 = c.clone();
    let p = home.run(move |cx| {
        let ans = cx.send(&c2, "inc", vec![]);
        let bad = cx.send(&c2, "fail", vec![]);
        let doubled = cx.when(&ans, |_cx, o| Ok(n(o?.as_i64().unwrap_or(0) * 2)));
        let caught = cx.when(&bad, |_cx, o| match o {
            Ok(_) => Err(error("should have broken")),
            Err(e) => Ok(e),
        });
        Ok(Val::List(vec![Val::Ref(doubled), Val::Ref(caught)]))
    });
    let v = home.block_on(&p, T).unwrap();
    let items: Vec<_> = v.as_list().unwrap().to_vec();
    let doubled = home
        .block_on(&crate::support::as_ref(&items[0]), T)
        .unwrap();
    assert_eq!(int(&doubled), 4);
    let caught = home
        .block_on(&crate::support::as_ref(&items[1]), T)
        .unwrap();
    assert_eq!(error_message(&caught), Some("counter refuses"));
    home.shutdown();
    far.shutdown();
}

#[test]
fn failing_callback_breaks_its_promise_and_callbacks_of_failed_turns_never_run() {
    let vat = Vat::new("when-fail");
    let log = vat.spawn(Log::default());
    let l = log.clone();
    let p = vat.run(move |cx| {
        let me = cx.spawn(Counter(0));
        Ok(Val::Ref(cx.when(&me, |_cx, _o| panic!("callback panics"))))
    });
    // The run's answer is the callback's promise, so it follows it and breaks.
    let e = vat.block_on(&p, T).unwrap_err();
    assert_eq!(
        e.reason().and_then(error_message),
        Some("turn failed: panic")
    );
    let obj = vat.spawn(from_fn(move |cx, _m, _a| {
        let l2 = l.clone();
        let me = cx.me().ok_or_else(|| error("me"))?;
        cx.when(&me, move |cx, _o| {
            cx.call(&l2, "add", vec![Val::str("ghost")])
        });
        Err(error("turn fails after registering"))
    }));
    assert!(vat.block_on(&vat.send(&obj, "go", vec![]), T).is_err());
    // A later marker turn: if the ghost callback existed it would have run.
    let marker = vat.send(&log, "add", vec![Val::str("marker")]);
    vat.block_on(&marker, T).unwrap();
    let marker2 = vat.send(&log, "get", vec![]);
    let got = vat.block_on(&marker2, T).unwrap();
    assert_eq!(got, Val::List(vec![Val::str("marker")]));
    vat.shutdown();
}
