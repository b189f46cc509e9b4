//! Fuzzes a CapTP session with a hostile peer's bytes.
//!
//! The first input byte picks the dialect (bits 0 and 7: the two forced
//! ones and the two learning ones) and whether the session is first
//! opened with a genuine, correctly signed `op:start-session` from a real
//! peer session (so the fuzzer reaches every op after the handshake, not
//! only the handshake check); the rest is fed as the peer's byte stream, in
//! chunks whose sizes come from the input too. Oracle: no panic; events and
//! output drain; once terminated, the session stays terminated with the
//! same error, and emits nothing but (at most) its one `op:abort`.
#![no_main]

use pola_captp::locator::{Hints, PeerLocator};
use pola_captp::{Dialect, Session, SessionConfig};

fn session(dialect: Dialect, seed: u8, name: &str) -> Option<Session> {
    let loc = PeerLocator::new("fuzz", name, Hints::Absent).ok()?;
    Some(Session::new(SessionConfig::new(dialect, [seed; 32], loc)))
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let dialect = match (mode & 1, mode >> 7) {
        (0, 0) => Dialect::Current,
        (_, 0) => Dialect::TestSuite,
        (0, _) => Dialect::Auto,
        _ => Dialect::AutoSuite,
    };
    let Some(mut us) = session(dialect, 1, "us") else {
        return;
    };
    if mode & 2 != 0 {
        // A real peer opens the session first.
        let Some(mut peer) = session(dialect, 2, "peer") else {
            return;
        };
        while let Some(m) = peer.poll_transmit() {
            let _ = us.handle_bytes(&m);
        }
    }
    let chunk = usize::from(mode >> 2).max(1);
    for piece in rest.chunks(chunk) {
        let was_terminated = us.is_terminated();
        let result = us.handle_bytes(piece);
        if was_terminated {
            assert!(result.is_err(), "a terminated session accepted input");
        }
        while us.poll_event().is_some() {}
        while us.poll_transmit().is_some() {}
    }
    if us.is_terminated() {
        let first = us.error().cloned();
        assert!(us.handle_bytes(b"t").is_err());
        assert_eq!(first, us.error().cloned());
        assert!(us.poll_transmit().is_none(), "output after termination");
    }
});
