//! The mint as persistent kinds: balances and purses survive a restart,
//! and a purse can name itself durably.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

static NEXT: AtomicU64 = AtomicU64::new(1);

use pola_apps::mint::{SturdyMaker, kinds, new_issuer, new_mint};
use pola_vat::backend::MemoryBackend;
use pola_vat::persist::Kinds;
use pola_vat::{Ref, Val, Vat, error};

use crate::{T, as_ref, int, n};

/// A host's sturdyref maker, as a test: names the purse by a root.
fn roots_as_sturdyrefs() -> SturdyMaker {
    Arc::new(|cx, target: &Ref, _valid_for| {
        let name = format!("purse-{}", NEXT.fetch_add(1, Ordering::Relaxed));
        cx.set_root(&name, Some(target))?;
        Ok(name)
    })
}

fn open(backend: &MemoryBackend) -> Vat {
    let mut k = Kinds::new();
    kinds(&mut k, Some(roots_as_sturdyrefs()));
    Vat::open("mint", backend.clone(), k).unwrap()
}

fn ask(vat: &Vat, target: &Ref, method: &'static str, args: Vec<Val>) -> Val {
    vat.block_on(&vat.send(target, method, args), T).unwrap()
}

#[test]
fn balances_and_purses_survive_a_restart() {
    let backend = MemoryBackend::new();
    let vat = open(&backend);
    let made = vat.run(|cx| {
        let mint = new_mint(cx, Some(roots_as_sturdyrefs()));
        let issuer = new_issuer(cx, &mint);
        cx.set_root("mint", Some(&mint))?;
        cx.set_root("issuer", Some(&issuer))?;
        Ok(Val::null())
    });
    vat.block_on(&made, T).unwrap();
    let mint = vat.root("mint").unwrap();
    let alice = as_ref(&ask(&vat, &mint, "make_purse", vec![n(100)]));
    let bob = as_ref(&ask(
        &vat,
        &vat.root("issuer").unwrap(),
        "make_purse",
        vec![n(0)],
    ));
    assert!(
        vat.block_on(
            &vat.send(&vat.root("issuer").unwrap(), "make_purse", vec![n(5)]),
            T
        )
        .is_err()
    );
    ask(&vat, &bob, "deposit", vec![n(30), Val::Ref(alice.clone())]);
    let alice_name = ask(&vat, &alice, "sturdyref", vec![]);
    let bob_name = ask(&vat, &bob, "sturdyref", vec![]);
    vat.shutdown();

    let vat = open(&backend);
    let alice = vat.root(alice_name.as_str().unwrap()).unwrap();
    let bob = vat.root(bob_name.as_str().unwrap()).unwrap();
    assert_eq!(int(&ask(&vat, &alice, "balance", vec![])), 70);
    assert_eq!(int(&ask(&vat, &bob, "balance", vec![])), 30);
    // Still the same currency: a deposit between them works after the
    // restart, and a purse of a new mint is refused.
    ask(&vat, &alice, "deposit", vec![n(5), Val::Ref(bob.clone())]);
    assert_eq!(int(&ask(&vat, &alice, "balance", vec![])), 75);
    let other = vat.run(|cx| {
        let m = new_mint(cx, None);
        Ok(Val::Ref(m))
    });
    let other = as_ref(&vat.block_on(&other, T).unwrap());
    let counterfeit = as_ref(&ask(&vat, &other, "make_purse", vec![n(1000)]));
    let r = vat.block_on(
        &vat.send(&alice, "deposit", vec![n(1), Val::Ref(counterfeit)]),
        T,
    );
    assert_eq!(
        r.err().and_then(|e| e.reason().cloned()),
        Some(error("not a purse of this mint"))
    );
    // A sprouted payment purse can be named and found again too.
    let payment = as_ref(&ask(&vat, &alice, "sprout", vec![]));
    ask(
        &vat,
        &payment,
        "deposit",
        vec![n(25), Val::Ref(alice.clone())],
    );
    let payment_name = ask(&vat, &payment, "sturdyref", vec![]);
    vat.shutdown();
    let vat = open(&backend);
    let payment = vat.root(payment_name.as_str().unwrap()).unwrap();
    assert_eq!(int(&ask(&vat, &payment, "balance", vec![])), 25);
    let alice = vat.root(alice_name.as_str().unwrap()).unwrap();
    assert_eq!(int(&ask(&vat, &alice, "balance", vec![])), 50);
    vat.shutdown();
}
