//! Sturdyrefs that objects of `pola serve` make of themselves: they
//! survive restarts, can carry an expiry, and an expired one is refused
//! (and forgotten at the next start); a far reference a client keeps
//! across a restart breaks while the server is down and works after.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use pola_vat::{Val, WaitError, error_message};

mod common;

use common::{Client, TempDir, free_port, serve};

fn broken(r: Result<Val, WaitError>) -> String {
    match r {
        Err(WaitError::Broken(e)) => error_message(&e).unwrap_or("?").to_owned(),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn a_sturdyref_can_expire_and_an_expired_one_is_refused_and_forgotten() {
    let dir = TempDir::new("cli");
    let state = dir.join("mint");
    let port = free_port();
    let client = Client::new();
    let mint = serve(&state, port, &["--mint"]);
    let mint_uri = mint.uri("mint").to_owned();
    let purse_uri = |amount: i64, valid_for: Option<i64>| {
        let purse = client.vat.send(
            &client.fetch(&mint_uri),
            "make_purse",
            vec![Val::int(amount)],
        );
        let args = valid_for.map(Val::int).into_iter().collect();
        let uri = client
            .vat
            .block_on(&client.vat.send(&purse, "sturdyref", args), common::T)
            .unwrap();
        uri.as_str().unwrap().to_owned()
    };
    let lasting = purse_uri(7, None);
    let brief = purse_uri(5, Some(1));
    assert_eq!(client.int(&brief, "balance", vec![]), 5);
    // Nonsense validity is refused.
    for bad in [0i64, -1] {
        let purse = client
            .vat
            .send(&client.fetch(&mint_uri), "make_purse", vec![Val::int(1i64)]);
        let e = broken(client.vat.block_on(
            &client.vat.send(&purse, "sturdyref", vec![Val::int(bad)]),
            common::T,
        ));
        assert!(e.contains("second"), "{e}");
    }
    std::thread::sleep(Duration::from_millis(1100));
    let e = broken(client.call(&brief, "balance", vec![]));
    assert_eq!(e, "this sturdyref has expired");

    // A far reference the client keeps across the restart: a call while
    // the server is down breaks; after the restart the same reference
    // works again (fetched again on its next use).
    let kept = client
        .peer
        .sturdy(pola_captp::locator::SturdyRef::from_uri(&lasting).unwrap());
    let balance = |r: &pola_vat::Ref| {
        client
            .vat
            .block_on(&client.vat.send(r, "balance", vec![]), common::T)
    };
    assert_eq!(balance(&kept).unwrap(), Val::int(7i64));
    drop(mint);
    assert!(matches!(balance(&kept), Err(WaitError::Broken(_))));
    let _mint = serve(&state, port, &["--mint"]);
    assert_eq!(balance(&kept).unwrap(), Val::int(7i64));
    assert_eq!(client.int(&lasting, "balance", vec![]), 7);
    let e = broken(client.call(&brief, "balance", vec![]));
    assert_eq!(e, "no such object");
}
