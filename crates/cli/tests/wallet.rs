//! Persistent wallets: `pola serve --wallet-from` keeps its purses at a far
//! mint across restarts (clean and `kill -9`) of itself and of the mint,
//! is never credited twice, and keeps every payment it acknowledged.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use pola_captp::locator::SturdyRef;
use pola_netlayer::{Identity, NoiseNetlayer};
use pola_peer::{Peer, PeerConfig, PeerHandle};
use pola_vat::{Ref, Val, Vat, WaitError, error_message};

mod common;

use common::{POLA, Served, TempDir};

const T: Duration = Duration::from_secs(20);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn serve(state: &Path, port: u16, role: &[&str]) -> Served {
    let mut cmd = Command::new(POLA);
    cmd.arg("serve")
        .args(role)
        .args(["--listen", "127.0.0.1", "--port"])
        .arg(port.to_string())
        .arg("--state")
        .arg(state);
    Served::start(cmd)
}

/// A client vat and peer in this process.
struct Client {
    vat: Vat,
    peer: PeerHandle,
    _peer: Peer,
    _rt: tokio::runtime::Runtime,
}

impl Client {
    fn new() -> Client {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let net = rt
            .block_on(NoiseNetlayer::bind(
                Identity::generate().unwrap(),
                "127.0.0.1",
                0,
            ))
            .unwrap();
        let vat = Vat::new("client");
        let peer = {
            let _g = rt.enter();
            Peer::start(vat.clone(), vec![Arc::new(net)], PeerConfig::default()).unwrap()
        };
        Client {
            vat,
            peer: peer.handle(),
            _peer: peer,
            _rt: rt,
        }
    }

    /// Calls `method` on the object at `uri` (fetched afresh) and waits.
    fn call(&self, uri: &str, method: &'static str, args: Vec<Val>) -> Result<Val, WaitError> {
        let target: Ref = self.peer.enliven(SturdyRef::from_uri(uri).unwrap());
        self.vat.block_on(&self.vat.send(&target, method, args), T)
    }

    fn int(&self, uri: &str, method: &'static str, args: Vec<Val>) -> i64 {
        self.call(uri, method, args)
            .unwrap_or_else(|e| panic!("{method}: {e:?}"))
            .as_i64()
            .unwrap()
    }
}

#[test]
fn wallets_survive_restarts_of_themselves_and_of_the_mint() {
    let dir = TempDir::new();
    let (mint_dir, alice_dir, bob_dir) =
        (dir.0.join("mint"), dir.0.join("alice"), dir.0.join("bob"));
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
    let dir = TempDir::new();
    let client = Client::new();
    let mint = serve(&dir.0.join("mint"), 0, &["--mint"]);
    let wallet = serve(&dir.0.join("w"), 0, &["--wallet-from", mint.uri("issuer")]);
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
