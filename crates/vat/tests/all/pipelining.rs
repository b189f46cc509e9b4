//! Promise pipelining: sends to unresolved promises are queued and forwarded
//! in order; chains; promises resolved to promises forward.

use pola_vat::{Val, Vat};

use crate::support::{Counter, Log, Maker, T, int, list_ints, n};

#[test]
fn pipelined_sends_reach_the_resolution_in_order() {
    let home = Vat::new("pipe-home");
    let far = Vat::new("pipe-far");
    let maker = far.spawn(Maker);
    let m = maker.clone();
    // All sends happen in one turn, before the first answer exists.
    let p = home.run(move |cx| {
        let counter = cx.send(&m, "make", vec![n(10)]);
        let mut last = counter.clone();
        for _ in 0..50 {
            last = cx.send(&counter, "inc", vec![]);
        }
        Ok(Val::Ref(last))
    });
    assert_eq!(int(&home.block_on(&p, T).unwrap()), 60);
    home.shutdown();
    far.shutdown();
}

#[test]
fn chain_of_three_pipelined_sends() {
    let home = Vat::new("chain-home");
    let far = Vat::new("chain-far");
    let maker = far.spawn(Maker);
    let m = maker.clone();
    let p = home.run(move |cx| {
        let m2 = cx.send(&m, "next", vec![]);
        let m3 = cx.send(&m2, "next", vec![]);
        let c = cx.send(&m3, "make", vec![n(7)]);
        Ok(Val::Ref(cx.send(&c, "inc", vec![])))
    });
    assert_eq!(int(&home.block_on(&p, T).unwrap()), 8);
    // From outside too: every step a promise of the home vat.
    let m2 = home.send(&maker, "next", vec![]);
    let m3 = home.send(&m2, "next", vec![]);
    let c = home.send(&m3, "make", vec![n(1)]);
    let v = home.send(&c, "get", vec![]);
    assert_eq!(int(&home.block_on(&v, T).unwrap()), 1);
    home.shutdown();
    far.shutdown();
}

#[test]
fn promise_resolved_to_promise_forwards() {
    let vat = Vat::new("forward");
    let other = Vat::new("forward-other");
    let (p1, r1) = vat.promise();
    let (p2, r2) = other.promise();
    let log = vat.spawn(Log::default());
    for i in 0..5 {
        vat.send_only(&p1, "add", vec![n(i)]);
    }
    r1.resolve_now(Val::Ref(p2.clone()));
    for i in 5..10 {
        vat.send_only(&p1, "add", vec![n(i)]);
    }
    let waiting = vat.settled(&p1);
    r2.resolve_now(Val::Ref(log.clone()));
    // Waiting on p1 yields the final object, not the intermediate promise.
    assert_eq!(waiting.wait(T).unwrap(), Val::Ref(log.clone()));
    let got = vat.block_on(&vat.send(&p1, "get", vec![]), T).unwrap();
    assert_eq!(list_ints(&got), (0..10).collect::<Vec<_>>());
    vat.shutdown();
    other.shutdown();
}

#[test]
fn a_promise_resolved_to_itself_breaks() {
    let vat = Vat::new("self");
    let (p, r) = vat.promise();
    r.resolve_now(Val::Ref(p.clone()));
    assert!(vat.block_on(&p, T).is_err());
    // A two-promise cycle breaks its messages instead of looping forever.
    let (a, ra) = vat.promise();
    let (b, rb) = vat.promise();
    ra.resolve_now(Val::Ref(b.clone()));
    rb.resolve_now(Val::Ref(a.clone()));
    assert!(vat.block_on(&vat.send(&a, "get", vec![]), T).is_err());
    assert!(vat.block_on(&a, T).is_err());
    let c = vat.spawn(Counter(3));
    assert_eq!(
        int(&vat.block_on(&vat.send(&c, "get", vec![]), T).unwrap()),
        3
    );
    vat.shutdown();
}
