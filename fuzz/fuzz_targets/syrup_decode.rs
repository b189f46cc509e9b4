//! Fuzzes the Syrup decoder: whole and zero-copy decoding, streaming in
//! chunks, tight limits, canonical re-encoding and the text form. The
//! oracle is shared with the stable harness
//! (`crates/syrup/examples/fuzz_decode`).
#![no_main]

#[path = "../../crates/syrup/examples/fuzz_decode/check.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    check::check(data);
});
