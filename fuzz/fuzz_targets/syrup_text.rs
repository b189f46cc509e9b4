//! Fuzzes `pola_syrup::text::parse` on arbitrary text: the Syrup text form
//! is read from people and their scripts (`pola call` arguments, test and
//! manifest fixtures), never only from pola's own printer. `syrup_decode`
//! parses only what the printer wrote; this target parses anything.
//! Seeds in `seeds/syrup_text`.
//!
//! Oracle: no panic; an error's offset lies within the text; an accepted
//! value prints to text that parses back to the same value and prints the
//! same again, and its wire form decodes (with the default limits) to the
//! same value: the text parser accepts nothing the decoder refuses.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pola_syrup::{decode, encode, text};

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    match text::parse(input) {
        Ok(v) => {
            let printed = v.to_string();
            let back = text::parse(&printed)
                .unwrap_or_else(|e| panic!("printed text {printed:?} refused: {e}"));
            assert_eq!(back, v, "text form does not round-trip: {printed}");
            assert_eq!(back.to_string(), printed, "printing is not stable");
            let wire = encode(&v);
            match decode(&wire) {
                Ok(w) => assert_eq!(w, v, "wire form decodes to another value"),
                Err(e) => panic!("the decoder refuses what the text parser accepted: {e}"),
            }
        }
        Err(e) => assert!(e.offset <= input.len(), "offset past the end: {e:?}"),
    }
});
