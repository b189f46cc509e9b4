//! Fuzzes `pola_captp`'s locator parsers: `PeerLocator::from_uri`,
//! `SturdyRef::from_uri` (the input as text) and the Syrup forms
//! `PeerLocator::from_value`, `SturdyRef::from_value` (the input as Syrup
//! bytes). Every input is tried both ways. Seeds in `seeds/locator`.
//!
//! Oracle: no panic; a URI is a peer URI or a sturdyref URI, never both;
//! an accepted URI prints to a URI that parses back equal (hints written
//! `?` with nothing after it come back absent: the printed form omits an
//! empty query) and prints the same again; an accepted Syrup locator
//! re-encodes to exactly the input bytes (hint form and Swiss type kept),
//! and its URI parses back to the same peer (or is refused as too long).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pola_captp::locator::{Hints, LocatorError, MAX_URI_LEN, PeerLocator, SturdyRef};
use pola_syrup::{NoRef, Value, decode, encode};

/// The locator as its URI prints it: an empty hint map prints no query.
fn printed_form(p: &PeerLocator) -> PeerLocator {
    match p.hints() {
        Hints::Map(m) if m.is_empty() => {
            PeerLocator::new(p.transport(), p.designator(), Hints::Absent).expect("valid")
        }
        _ => p.clone(),
    }
}

fn check_peer_uri(p: &PeerLocator) {
    let uri = p.to_uri();
    match PeerLocator::from_uri(&uri) {
        Ok(back) => {
            assert_eq!(back, printed_form(p), "{uri}");
            assert_eq!(back.to_uri(), uri, "printing is not stable");
        }
        Err(LocatorError::TooLong) => assert!(uri.len() > MAX_URI_LEN),
        Err(e) => panic!("printed URI {uri:?} refused: {e}"),
    }
}

fn check_sturdy_uri(s: &SturdyRef) {
    let uri = s.to_uri();
    match SturdyRef::from_uri(&uri) {
        Ok(back) => {
            assert_eq!(back.peer, printed_form(&s.peer), "{uri}");
            assert_eq!(back.swiss.bytes(), s.swiss.bytes(), "{uri}");
            assert_eq!(back.to_uri(), uri, "printing is not stable");
        }
        Err(LocatorError::TooLong) => assert!(uri.len() > MAX_URI_LEN),
        Err(e) => panic!("printed URI {uri:?} refused: {e}"),
    }
}

fuzz_target!(|data: &[u8]| {
    // As a URI.
    let text = String::from_utf8_lossy(data);
    let peer = PeerLocator::from_uri(&text);
    let sturdy = SturdyRef::from_uri(&text);
    assert!(
        !(peer.is_ok() && sturdy.is_ok()),
        "both a peer and a sturdyref"
    );
    if let Ok(p) = &peer {
        assert!(text.len() <= MAX_URI_LEN);
        check_peer_uri(p);
        // Its Syrup form round-trips exactly.
        let v: Value<NoRef> = p.to_value();
        let back = PeerLocator::from_value(&decode(&encode(&v)).expect("decodes"));
        assert_eq!(back.as_ref(), Ok(p));
    }
    if let Ok(s) = &sturdy {
        check_sturdy_uri(s);
        let v: Value<NoRef> = s.to_value();
        let back = SturdyRef::from_value(&decode(&encode(&v)).expect("decodes")).expect("back");
        assert_eq!(back.peer, s.peer);
        assert_eq!(back.swiss.bytes(), s.swiss.bytes());
    }

    // As Syrup.
    let Ok(v) = decode(data) else {
        return;
    };
    let peer = PeerLocator::from_value(&v);
    let sturdy = SturdyRef::from_value(&v);
    if let Ok(p) = &peer {
        assert_eq!(
            encode(&p.to_value::<NoRef>()),
            data,
            "not re-encoded as received"
        );
        check_peer_uri(p);
    }
    if let Ok(s) = &sturdy {
        assert_eq!(
            encode(&s.to_value::<NoRef>()),
            data,
            "not re-encoded as received"
        );
        check_sturdy_uri(s);
    }
});
