//! Broken promises: errors propagate through answers and pipelines.

use pola_vat::{Ref, Val, Vat, error, error_message};

use crate::support::{Counter, Maker, T, n};

fn reason(r: Result<Val, pola_vat::WaitError>) -> String {
    match r {
        Err(e) => e.reason().and_then(error_message).unwrap_or("?").to_owned(),
        Ok(v) => panic!("expected a broken promise, got {v:?}"),
    }
}

#[test]
fn error_breaks_the_answer_and_everything_pipelined_on_it() {
    let home = Vat::new("broken-home");
    let far = Vat::new("broken-far");
    let c = far.spawn(Counter(0));
    let bad = home.send(&c, "no-such-method", vec![]);
    let next = home.send(&bad, "inc", vec![]);
    let next2 = home.send(&next, "inc", vec![]);
    assert_eq!(reason(home.block_on(&bad, T)), "no such method");
    assert_eq!(reason(home.block_on(&next, T)), "no such method");
    assert_eq!(reason(home.block_on(&next2, T)), "no such method");
    home.shutdown();
    far.shutdown();
}

#[test]
fn broken_ref_and_broken_promise() {
    let vat = Vat::new("broken-ref");
    let b = Ref::broken(error("gone"));
    assert_eq!(reason(vat.block_on(&vat.send(&b, "x", vec![]), T)), "gone");
    let (p, r) = vat.promise();
    let queued = vat.send(&p, "x", vec![]);
    r.break_now(error("nope"));
    assert_eq!(reason(vat.block_on(&queued, T)), "nope");
    assert_eq!(reason(vat.block_on(&vat.send(&p, "x", vec![]), T)), "nope");
    // Resolving with a broken ref is breaking.
    let (p2, r2) = vat.promise();
    r2.resolve_now(Val::Ref(Ref::broken(error("via ref"))));
    assert_eq!(reason(vat.block_on(&p2, T)), "via ref");
    vat.shutdown();
}

#[test]
fn sends_to_data_break() {
    let vat = Vat::new("data");
    let m = vat.spawn(Maker);
    let data = vat.send(&m, "data", vec![]);
    assert_eq!(vat.block_on(&data, T).unwrap(), n(42));
    assert_eq!(
        reason(vat.block_on(&vat.send(&data, "x", vec![]), T)),
        "not a reference"
    );
    vat.shutdown();
}

#[test]
fn first_settlement_wins() {
    let vat = Vat::new("once");
    let (p, r) = vat.promise();
    r.resolve_now(n(1));
    r.resolve_now(n(2));
    r.break_now(error("late"));
    assert_eq!(vat.block_on(&p, T).unwrap(), n(1));
    vat.shutdown();
}
