//! Fuzzes what a person installs: `pola_powerbox::Package::decode` on a
//! hostile package, and `Manifest::from_toml` on a hostile manifest file
//! (any input that does not start with `<`, the first byte of a package).
//!
//! Oracle: no panic; an accepted package encodes to bytes that decode to
//! the same package (and encode again identically), no longer than the
//! input; an accepted TOML manifest passes `Manifest::check`; every error's
//! sentence is free of control, bidirectional and zero-width characters
//! whatever the input put in it.
#![no_main]

use pola_powerbox::{Manifest, Package};

fn printable(message: &str) {
    assert!(
        message.chars().all(|c| !c.is_control()
            && !matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')),
        "unsafe character in {message:?}"
    );
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if data.first() == Some(&b'<') {
        match Package::decode(data) {
            Ok(package) => {
                let bytes = package.encode();
                assert!(bytes.len() <= data.len());
                let again = Package::decode(&bytes).expect("an accepted package re-decodes");
                assert_eq!(again, package);
                assert_eq!(again.encode(), bytes);
            }
            Err(e) => printable(&e.to_string()),
        }
    } else {
        let text = String::from_utf8_lossy(data);
        match Manifest::from_toml(&text) {
            Ok(manifest) => assert_eq!(manifest.check(), Ok(())),
            Err(e) => printable(&e.to_string()),
        }
    }
});
