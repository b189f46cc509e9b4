//! Crash consistency of a persistent `pola serve --mint`: payers in this
//! process move money between purses at the server over the encrypted
//! netlayer while the server is killed with SIGKILL at random moments and
//! restarted on the same state folder. After every restart the ledger
//! must hold: the total supply is unchanged, every payment the payers saw
//! answered is there, and each payment whose answer was lost in the crash
//! is either wholly applied or not at all.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pola_captp::locator::SturdyRef;
use pola_vat::{Ref, Val, Vat, WaitError, error_message};

mod common;

use common::{Client, TempDir, free_port, serve};

const T: Duration = Duration::from_secs(20);
const PURSES: usize = 6;
const START: i64 = 1000;
const PAYERS: usize = 4;
const ROUNDS: usize = 6;

fn sturdy(uri: &str) -> SturdyRef {
    SturdyRef::from_uri(uri).unwrap()
}

/// Outcome of one payment as a payer saw it.
enum Seen {
    /// Answered: applied.
    Done,
    /// Refused by the mint (applied: nothing).
    Refused,
    /// No answer (the server died): applied wholly or not at all.
    InDoubt,
}

/// `(from, to, amount, what the payer saw)`.
type Payment = (usize, usize, i64, Seen);

fn pay(vat: &Vat, to: &Ref, from: &Ref, amount: i64) -> Seen {
    let answer = vat.send(
        to,
        "deposit",
        vec![Val::int(amount), Val::Ref(from.clone())],
    );
    match vat.block_on(&answer, T) {
        Ok(_) => Seen::Done,
        Err(WaitError::Broken(e)) if error_message(&e) == Some("insufficient funds") => {
            Seen::Refused
        }
        Err(_) => Seen::InDoubt,
    }
}

fn balances(vat: &Vat, purses: &[Ref]) -> Vec<i64> {
    purses
        .iter()
        .map(|p| {
            vat.block_on(&vat.send(p, "balance", vec![]), T)
                .unwrap()
                .as_i64()
                .unwrap()
        })
        .collect()
}

/// Whether some subset of `doubtful` payments `(from, to, amount)`,
/// applied to `model`, gives `seen`.
fn explained(model: &[i64], doubtful: &[(usize, usize, i64)], seen: &[i64]) -> bool {
    (0u32..1 << doubtful.len()).any(|mask| {
        let mut m = model.to_vec();
        for (i, (from, to, amount)) in doubtful.iter().enumerate() {
            if mask & (1 << i) != 0 {
                m[*from] -= amount;
                m[*to] += amount;
            }
        }
        m == seen
    })
}

/// A tiny deterministic generator (the test must not need a crate).
fn next(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

#[test]
fn the_ledger_survives_kill_9() {
    let dir = TempDir::new("cli");
    let state = dir.join("mint");
    let port = free_port();
    let payers = Client::new();
    let (vat, client) = (payers.vat.clone(), payers.peer.clone());

    // First start: purses of START each, named durably by sturdyrefs.
    let mut server = serve(&state, port, &["--mint"]);
    let mint_uri = server.uri("mint").to_owned();
    let mint = client.enliven(sturdy(&mint_uri));
    let mut uris = Vec::new();
    for _ in 0..PURSES {
        let p = vat.send(&mint, "make_purse", vec![Val::int(START)]);
        let p = vat.block_on(&p, T).unwrap().as_ref().cloned().unwrap();
        let uri = vat.block_on(&vat.send(&p, "sturdyref", vec![]), T).unwrap();
        uris.push(uri.as_str().unwrap().to_owned());
    }
    let mut model = vec![START; PURSES];
    let mut seed = 0x9E37_79B9_7F4A_7C15u64 ^ u64::from(std::process::id());
    let mut paid = 0usize;

    for round in 0..ROUNDS {
        let purses: Vec<Ref> = uris.iter().map(|u| client.enliven(sturdy(u))).collect();
        assert_eq!(
            balances(&vat, &purses),
            model,
            "round {round}: ledger at start"
        );
        // Payers run until the server dies; a killer waits a random while.
        let dead = Arc::new(AtomicBool::new(false));
        let log: Arc<Mutex<Vec<Payment>>> = Arc::default();
        let payers: Vec<_> = (0..PAYERS)
            .map(|k| {
                let (vat, purses, dead, log) =
                    (vat.clone(), purses.clone(), dead.clone(), log.clone());
                let mut s = seed.wrapping_add(k as u64 + 1);
                std::thread::spawn(move || {
                    let deadline = Instant::now() + T;
                    while Instant::now() < deadline {
                        let from = (next(&mut s) % PURSES as u64) as usize;
                        let to =
                            (from + 1 + (next(&mut s) % (PURSES as u64 - 1)) as usize) % PURSES;
                        let amount = 1 + (next(&mut s) % 9) as i64;
                        let seen = pay(&vat, &purses[to], &purses[from], amount);
                        let doubt = matches!(seen, Seen::InDoubt);
                        log.lock().unwrap().push((from, to, amount, seen));
                        if doubt || dead.load(Ordering::SeqCst) {
                            return;
                        }
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(100 + next(&mut seed) % 400));
        drop(server); // SIGKILL, and reaped
        dead.store(true, Ordering::SeqCst);
        for p in payers {
            p.join().unwrap();
        }
        let mut doubtful = Vec::new();
        for (from, to, amount, seen) in log.lock().unwrap().drain(..) {
            match seen {
                Seen::Done => {
                    model[from] -= amount;
                    model[to] += amount;
                    paid += 1;
                }
                Seen::Refused => {}
                Seen::InDoubt => doubtful.push((from, to, amount)),
            }
        }
        // Restart on the same state: the same mint, purses and balances.
        server = serve(&state, port, &["--mint"]);
        assert_eq!(
            server.uri("mint"),
            mint_uri,
            "the mint's URI changed across a restart"
        );
        let purses: Vec<Ref> = uris.iter().map(|u| client.enliven(sturdy(u))).collect();
        let seen = balances(&vat, &purses);
        assert_eq!(
            seen.iter().sum::<i64>(),
            START * PURSES as i64,
            "supply changed"
        );
        assert!(
            explained(&model, &doubtful, &seen),
            "round {round}: balances {seen:?} are not the answered payments {model:?} \
             plus some of the unanswered {doubtful:?}"
        );
        model = seen;
    }
    assert!(paid > 0, "no payment was answered");
    println!("{paid} payments answered over {ROUNDS} kill -9 restarts");
    drop(server);
    drop(payers);
    vat.shutdown();
}
