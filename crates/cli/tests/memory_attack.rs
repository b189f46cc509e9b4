//! The memory attack on a real `pola` process (`pola ocapn test-peer`,
//! the binary as shipped, jemalloc included): hostile sessions over
//! loopback keep the answers to big messages until the peer cuts them at
//! their byte budget; one session, then four at once, twice over. The
//! process's resident memory must stay bounded while it is attacked and
//! come back once the sessions are gone.
//!
//! Sizes: each message is 262 000 one-byte atoms (0.26 MB on the wire,
//! ~20 MB decoded); the default budget is 64 MiB per session, so each
//! session is cut after a few messages.
#![allow(clippy::unwrap_used)]

use std::process::Command;

use pola_bench_memory::{Attack, MAX_ATOMS, PidProbe, round, settle, spawn_victim};

const MB: u64 = 1_000_000;

#[test]
fn a_pola_process_cuts_hoarders_at_their_budget_and_gives_the_memory_back() {
    let (mut child, victim) = spawn_victim(
        Command::new(env!("CARGO_BIN_EXE_pola"))
            .args(["ocapn", "test-peer"])
            .stderr(std::process::Stdio::null()),
    )
    .unwrap();
    let probe: &'static PidProbe = Box::leak(Box::new(PidProbe(child.id())));
    let base = settle(probe).rss.unwrap();
    eprintln!("base rss {} MB", base / MB);
    for repeat in 0..2 {
        for sessions in [1usize, 4] {
            let attack = Attack {
                sessions,
                messages: 12,
                atoms: MAX_ATOMS,
            };
            let r = round(
                &victim,
                probe,
                attack,
                &format!("hoard-{repeat}-{sessions}"),
            )
            .unwrap();
            eprintln!(
                "round {repeat}, {sessions} sessions: peak {} MB, after {} MB, released {} MB, aborted {:?}",
                r.peak_rss.unwrap_or(0) / MB,
                r.after.rss.unwrap_or(0) / MB,
                r.released.rss.unwrap_or(0) / MB,
                r.aborted
            );
            // Every hoarder was cut, for memory, with the reason.
            assert_eq!(r.aborted.len(), sessions, "{r:?}");
            for reason in &r.aborted {
                assert!(reason.contains("memory budget"), "cut for {reason:?}");
            }
            // Bounded while attacked: the budget (64 MiB a session, as
            // decoded values) and what decoding a message in flight costs.
            let peak = r.peak_rss.unwrap();
            let bound = base + sessions as u64 * 120 * MB;
            assert!(
                peak <= bound,
                "peak rss {} MB over {} MB",
                peak / MB,
                bound / MB
            );
            // And given back once the sessions are gone.
            let released = r.released.rss.unwrap();
            assert!(
                released <= base + 64 * MB,
                "rss {} MB after the attack, {} MB before",
                released / MB,
                base / MB
            );
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}
