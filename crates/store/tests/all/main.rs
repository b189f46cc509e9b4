//! Integration tests of pola-store: real files in a fresh folder under the
//! system temp dir, one per test.

mod crash;
mod export;
mod host;
mod instance_savepoints;
mod props;
mod refuse;
mod roundtrip;
mod savepoints;
mod util;
mod wal;
