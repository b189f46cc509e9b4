//! The caplets of `caplets/`, built from source for `wasm32-unknown-unknown`
//! by this crate's build script (no `.wasm` is committed).
//!
//! Needs `rustup target add wasm32-unknown-unknown wasm32-wasip1`.
#![forbid(unsafe_code)]

/// `caplets/echo`: answers `echo`, `add` and `ping` (benchmarks).
pub const ECHO: &[u8] = include_bytes!(env!("POLA_CAPLET_ECHO"));
/// `caplets/benign`: uses the capabilities it is given.
pub const BENIGN: &[u8] = include_bytes!(env!("POLA_CAPLET_BENIGN"));
/// `caplets/malicious`: tries every forbidden thing.
pub const MALICIOUS: &[u8] = include_bytes!(env!("POLA_CAPLET_MALICIOUS"));

/// Path of the built `echo` caplet.
pub const ECHO_PATH: &str = env!("POLA_CAPLET_ECHO");
/// Path of the built `benign` caplet.
pub const BENIGN_PATH: &str = env!("POLA_CAPLET_BENIGN");
/// Path of the built `malicious` caplet.
pub const MALICIOUS_PATH: &str = env!("POLA_CAPLET_MALICIOUS");

/// `caplets/wasi-attacker`, built for `wasm32-wasip1` with std: it imports
/// WASI files, clock, randomness and environment, and must be refused.
pub const WASI_ATTACKER: &[u8] = include_bytes!(env!("POLA_CAPLET_WASI_ATTACKER"));
/// Path of the built `wasi-attacker` caplet.
pub const WASI_ATTACKER_PATH: &str = env!("POLA_CAPLET_WASI_ATTACKER");
