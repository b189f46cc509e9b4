//! The memory attack of the `peer-memory` bench at a small size, as a
//! test: hostile sessions make a real pola peer (over loopback TCP, in this
//! process) hold their answers, then vanish; the live heap, counted by
//! this test binary's global allocator, must come back to where it was.
//! One session and four at once, three times over on one peer. It proves
//! the attack holds what it should (answers counted, bytes held) and that
//! nothing of it is leaked, nor kept late: when a session that held
//! answers ends, the peer asks its vat to sweep once idle, so the memory is
//! back before any other client calls (the bench allows up to 100 such
//! calls and reports how many it took; here none may be needed).
//!
//! Unsafe code: only in the counting allocator (`src/counting.rs`, shared
//! with the bench binary), where `GlobalAlloc` requires it; see its doc.
#![deny(unsafe_code)]
#![allow(clippy::unwrap_used)]

#[path = "../src/counting.rs"]
mod counting;

use pola_bench_memory::{Attack, InProcessVictim, Measure, Probe, round, rss_bytes};
use pola_peer::PeerConfig;

struct Live;

impl Probe for Live {
    fn measure(&self) -> Measure {
        Measure {
            rss: rss_bytes(None),
            live: Some(counting::ALLOCATOR.live()),
        }
    }
}

static PROBE: Live = Live;

/// What the victim may still hold once it released the attack: buffers
/// and table capacity that grew with it.
const SLACK: u64 = 2 << 20;

#[test]
fn answers_held_by_vanished_sessions_are_all_released() {
    let victim = InProcessVictim::start(PeerConfig::test_suite()).unwrap();
    let baseline = PROBE.measure().live.unwrap();
    for repeat in 0..3 {
        for sessions in [1usize, 4] {
            let attack = Attack {
                sessions,
                messages: 8,
                atoms: 10_000,
            };
            let r = round(
                &victim,
                &PROBE,
                attack,
                &format!("leak-{repeat}-{sessions}"),
            )
            .unwrap();
            assert!(r.aborted.is_empty(), "{:?}", r.aborted);
            // Each session's answers: the fetch, 8 messages and the sync.
            assert_eq!(r.answers_held, Some(sessions * 10), "{r:?}");
            let atoms = (sessions * attack.messages * attack.atoms) as u64;
            let held = r.held.live.unwrap().saturating_sub(baseline);
            assert!(
                held >= atoms * 16,
                "the attack held only {held} B for {atoms} atoms: {r:?}"
            );
            let released = r.released.live.unwrap();
            eprintln!(
                "round {repeat}, {sessions} sessions: held {} MB, after {} MB, \
                 released {} MB after {:?} calls (baseline {} MB)",
                held / 1_000_000,
                r.after.live.unwrap().saturating_sub(baseline) / 1_000_000,
                released.saturating_sub(baseline) / 1_000_000,
                r.release_calls,
                baseline / 1_000_000,
            );
            assert_eq!(
                r.release_calls,
                Some(0),
                "the memory came back only after other clients' calls: {r:?}"
            );
            assert!(
                released <= baseline + SLACK,
                "live heap {released} B, baseline {baseline} B: the attack's memory leaked"
            );
        }
    }
    victim.stop();
}
