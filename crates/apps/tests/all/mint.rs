//! The mint/purse payment example: Alice, Bob and the mint in three vats,
//! and every attack that must fail.

use pola_apps::mint::{MAX_AMOUNT, demo_exchange, spawn_mint};
use pola_vat::patterns::revocable;
use pola_vat::{Ref, Val, Vat, WaitError, error_message, from_fn};

use crate::{T, as_ref, int, n};

struct World {
    mint_vat: Vat,
    alice_vat: Vat,
    bob_vat: Vat,
    mint: Ref,
}

impl World {
    fn new() -> World {
        let mint_vat = Vat::new("mint");
        let mint = spawn_mint(&mint_vat);
        World {
            mint_vat,
            alice_vat: Vat::new("alice"),
            bob_vat: Vat::new("bob"),
            mint,
        }
    }
    fn purse(&self, amount: i64) -> Ref {
        as_ref(
            &self
                .mint_vat
                .block_on(
                    &self
                        .mint_vat
                        .send(&self.mint, "make_purse", vec![n(amount)]),
                    T,
                )
                .unwrap(),
        )
    }
    fn balance(&self, p: &Ref) -> i64 {
        int(&self
            .bob_vat
            .block_on(&self.bob_vat.send(p, "balance", vec![]), T)
            .unwrap())
    }
    fn deposit(&self, from_vat: &Vat, to: &Ref, amount: Val, src: Val) -> Result<Val, WaitError> {
        from_vat.block_on(&from_vat.send(to, "deposit", vec![amount, src]), T)
    }
    fn stop(self) {
        for v in [self.mint_vat, self.alice_vat, self.bob_vat] {
            v.shutdown();
        }
    }
}

fn refused(r: Result<Val, WaitError>) -> String {
    match r {
        Err(e) => e.reason().and_then(error_message).unwrap_or("?").to_owned(),
        Ok(v) => panic!("expected a refusal, got {v:?}"),
    }
}

#[test]
fn alice_pays_bob_across_three_vats() {
    let w = World::new();
    let alice_purse = w.purse(100);
    let bob_purse = w.purse(50);
    // Alice, in her vat: sprout a payment purse, fill it (pipelined on the
    // unresolved sprout), hand it to Bob when the deposit is done.
    let bob_purse2 = bob_purse.clone();
    let bob = w.bob_vat.spawn(from_fn(move |cx, _m, args| {
        let payment = args[0].clone();
        Ok(Val::Ref(cx.send(
            &bob_purse2,
            "deposit",
            vec![n(10), payment],
        )))
    }));
    let ap = alice_purse.clone();
    let paid = w.alice_vat.run(move |cx| {
        let payment = cx.send(&ap, "sprout", vec![]);
        let filled = cx.send(&payment, "deposit", vec![n(10), Val::Ref(ap.clone())]);
        Ok(Val::Ref(cx.when(&filled, move |cx, o| {
            o?;
            let done = cx.send(&bob, "receive", vec![Val::Ref(payment.clone())]);
            Ok(Val::List(vec![Val::Ref(payment), Val::Ref(done)]))
        })))
    });
    let paid = w.alice_vat.block_on(&paid, T).unwrap();
    let paid = paid.as_list().unwrap();
    assert_eq!(
        int(&w.alice_vat.block_on(&as_ref(&paid[1]), T).unwrap()),
        10
    );
    let payment = as_ref(&w.alice_vat.block_on(&as_ref(&paid[0]), T).unwrap());
    assert_eq!(w.balance(&alice_purse), 90);
    assert_eq!(w.balance(&bob_purse), 60);
    assert_eq!(w.balance(&payment), 0);
    // Spending the empty payment again is an overdraft.
    assert_eq!(
        refused(w.deposit(&w.bob_vat, &bob_purse, n(10), Val::Ref(payment.clone()))),
        "insufficient funds"
    );
    assert_eq!((w.balance(&alice_purse), w.balance(&bob_purse)), (90, 60));
    w.stop();
}

#[test]
fn a_purse_of_another_mint_is_refused() {
    let w = World::new();
    let mine = w.purse(10);
    let other_mint = spawn_mint(&w.alice_vat);
    let foreign = as_ref(
        &w.alice_vat
            .block_on(
                &w.alice_vat.send(&other_mint, "make_purse", vec![n(1000)]),
                T,
            )
            .unwrap(),
    );
    assert_eq!(
        refused(w.deposit(&w.bob_vat, &mine, n(5), Val::Ref(foreign.clone()))),
        "not a purse of this mint"
    );
    // Nor the other way round.
    assert_eq!(
        refused(w.deposit(&w.bob_vat, &foreign, n(5), Val::Ref(mine.clone()))),
        "not a purse of this mint"
    );
    assert_eq!(w.balance(&mine), 10);
    assert_eq!(w.balance(&foreign), 1000);
    w.stop();
}

#[test]
fn bad_amounts_are_refused_without_change() {
    let w = World::new();
    let a = w.purse(10);
    let b = w.purse(10);
    let cases: Vec<(Val, &str)> = vec![
        (n(-1), "negative amount"),
        (n(i64::MIN), "negative amount"),
        (Val::f64(1.5), "amount must be an integer"),
        (Val::str("5"), "amount must be an integer"),
        (Val::int(u64::MAX), "amount too large"),
        (n(11), "insufficient funds"),
    ];
    for (amount, why) in cases {
        assert_eq!(
            refused(w.deposit(&w.bob_vat, &a, amount, Val::Ref(b.clone()))),
            why
        );
        assert_eq!((w.balance(&a), w.balance(&b)), (10, 10));
    }
    // make_purse validates too.
    assert_eq!(
        refused(
            w.mint_vat
                .block_on(&w.mint_vat.send(&w.mint, "make_purse", vec![n(-3)]), T)
        ),
        "negative amount"
    );
    // A balance may not overflow; the source keeps its money.
    let big = w.purse(MAX_AMOUNT as i64);
    assert_eq!(
        refused(w.deposit(&w.bob_vat, &big, n(1), Val::Ref(a.clone()))),
        "balance would exceed the maximum"
    );
    assert_eq!(w.balance(&a), 10);
    // The whole balance can move; zero is a valid amount.
    assert_eq!(
        int(&w
            .deposit(&w.bob_vat, &a, n(10), Val::Ref(b.clone()))
            .unwrap()),
        10
    );
    assert_eq!(
        int(&w
            .deposit(&w.bob_vat, &a, n(0), Val::Ref(b.clone()))
            .unwrap()),
        0
    );
    assert_eq!((w.balance(&a), w.balance(&b)), (20, 0));
    // Depositing from itself changes nothing.
    assert_eq!(
        int(&w
            .deposit(&w.bob_vat, &a, n(20), Val::Ref(a.clone()))
            .unwrap()),
        20
    );
    assert_eq!(w.balance(&a), 20);
    assert_eq!(
        refused(w.deposit(&w.bob_vat, &a, n(21), Val::Ref(a.clone()))),
        "insufficient funds"
    );
    w.stop();
}

#[test]
fn forged_purses_are_refused() {
    let w = World::new();
    let mine = w.purse(10);
    let real = w.purse(100);
    // An object that answers like a purse.
    let fake = w.bob_vat.spawn(from_fn(|_cx, m, _a| match m {
        "balance" => Ok(n(1_000_000)),
        _ => Ok(n(0)),
    }));
    assert_eq!(
        refused(w.deposit(&w.bob_vat, &mine, n(5), Val::Ref(fake))),
        "not a purse of this mint"
    );
    // A forwarder to a genuine purse is not that purse either.
    let r = real.clone();
    let fwd = w
        .bob_vat
        .block_on(
            &w.bob_vat.run(move |cx| Ok(Val::Ref(revocable(cx, r).0))),
            T,
        )
        .unwrap();
    assert_eq!(
        refused(w.deposit(&w.bob_vat, &mine, n(5), fwd)),
        "not a purse of this mint"
    );
    // Data and broken refs are not purses.
    assert_eq!(
        refused(w.deposit(&w.bob_vat, &mine, n(5), Val::str("purse"))),
        "not a purse of this mint"
    );
    assert_eq!(
        refused(w.deposit(&w.bob_vat, &mine, n(5), Val::Ref(Ref::broken(n(0))))),
        "not a purse of this mint"
    );
    assert_eq!((w.balance(&mine), w.balance(&real)), (10, 100));
    w.stop();
}

#[test]
fn demo_transcript() {
    let lines = demo_exchange(T).unwrap();
    for l in &lines {
        println!("{l}");
    }
    assert!(
        lines
            .iter()
            .any(|l| l == "balances: Alice 90, Bob 60, payment 0"),
        "{lines:#?}"
    );
    assert!(lines.iter().any(|l| l.contains("forged purse") && l.contains("refused (not a purse of this mint)")));
    assert!(lines.iter().any(|l| l.contains("another mint") && l.contains("refused (not a purse of this mint)")));
    assert!(
        lines
            .iter()
            .any(|l| l.contains("-5") && l.contains("refused (negative amount)"))
    );
    assert_eq!(
        lines.last().map(String::as_str),
        Some("balances unchanged: Alice 90, Bob 60")
    );
}
