//! Persistent wallets: `pola serve --wallet-from` keeps its purses at a far
//! mint across restarts (clean and `kill -9`) of itself and of the mint,
//! is never credited twice, and keeps every payment it acknowledged.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use pola_vat::{Val, WaitError, error_message};

mod common;

use common::{Client, TempDir, free_port, serve};

#[test]
fn wallets_survive_restarts_of_themselves_and_of_the_mint() {
    let dir = TempDir::new("cli");
    let (mint_dir, alice_dir, bob_dir) = (dir.join("mint"), dir.join("alice"), dir.join("bob"));
    let (mint_port, alice_port, bob_port) = (free_port(), free_port(), free_port());
    let client = Client::new();

    let mint = serve(&mint_dir, mint_port, &["--mint"]);
    let mint_uri = mint.uri("mint").to_owned();
    let issuer_uri = mint.uri("issuer").to_owned();
    let alice_role = ["--wallet-from", &mint_uri, "--initial", "100"];
    let bob_role = ["--wallet-from", &issuer_uri];
    let alice = serve(&alice_dir, alice_port, &alice_role);
    let bob = serve(&bob_dir, bob_port, &bob_role);
    let (alice_wallet, bob_wallet, bob_payee) = (
        alice.uri("wallet").to_owned(),
        bob.uri("wallet").to_owned(),
        bob.uri("payee").to_owned(),
    );
    assert_eq!(client.int(&alice_wallet, "balance", vec![]), 100);
    assert_eq!(
        client.int(
            &alice_wallet,
            "pay",
            vec![Val::str(&bob_payee), Val::int(30i64)]
        ),
        30
    );

    // Bob's host dies before Bob deposits what he received: the payment
    // it acknowledged is kept (in its incoming purse, at the mint).
    drop(bob);
    let bob = serve(&bob_dir, bob_port, &bob_role);
    assert_eq!(bob.uri("wallet"), bob_wallet, "same URI after a restart");
    assert_eq!(client.int(&bob_wallet, "deposit_received", vec![]), 30);

    // Alice's host restarts with the same flags: not credited again.
    drop(alice);
    let alice = serve(&alice_dir, alice_port, &alice_role);
    assert_eq!(client.int(&alice_wallet, "balance", vec![]), 70);

    // The mint restarts under both wallets: their far references to their
    // purses are fetched again on next use.
    drop(mint);
    let mint = serve(&mint_dir, mint_port, &["--mint"]);
    assert_eq!(mint.uri("mint"), mint_uri);
    let mut paid = None;
    for _ in 0..3 {
        // A call racing the old session's end may break once; the next
        // one fetches again.
        match client.call(
            &alice_wallet,
            "pay",
            vec![Val::str(&bob_payee), Val::int(5i64)],
        ) {
            Ok(v) => {
                paid = v.as_i64();
                break;
            }
            Err(e) => eprintln!("retrying after: {e:?}"),
        }
    }
    assert_eq!(paid, Some(5));
    assert_eq!(client.int(&bob_wallet, "deposit_received", vec![]), 35);
    assert_eq!(client.int(&alice_wallet, "balance", vec![]), 65);

    // A payment Bob cannot cover is refused and moves nothing.
    let refused = client.call(
        &bob_wallet,
        "pay",
        vec![Val::str(alice.uri("payee")), Val::int(1000i64)],
    );
    match refused {
        Err(WaitError::Broken(e)) => {
            assert_eq!(error_message(&e), Some("insufficient funds"), "{e:?}");
        }
        other => panic!("an overdraft was not refused: {other:?}"),
    }
    assert_eq!(client.int(&bob_wallet, "balance", vec![]), 35);
    drop(mint);
}

#[test]
fn a_payee_refuses_what_is_not_a_payment() {
    let dir = TempDir::new("cli");
    let client = Client::new();
    let mint = serve(&dir.join("mint"), 0, &["--mint"]);
    let wallet = serve(&dir.join("w"), 0, &["--wallet-from", mint.uri("issuer")]);
    let payee = wallet.uri("payee").to_owned();
    // Not a purse at all, and a purse the payer keeps pointing at a wrong
    // amount: neither credits the wallet.
    let bogus = client.call(&payee, "receive", vec![Val::int(3i64), Val::int(3i64)]);
    assert!(matches!(bogus, Err(WaitError::Broken(_))), "{bogus:?}");
    let empty = client
        .call(mint.uri("issuer"), "make_purse", vec![Val::int(0i64)])
        .unwrap();
    let short = client.call(&payee, "receive", vec![empty, Val::int(10i64)]);
    assert!(matches!(short, Err(WaitError::Broken(_))), "{short:?}");
    assert_eq!(
        client.int(wallet.uri("wallet"), "deposit_received", vec![]),
        0
    );
}
