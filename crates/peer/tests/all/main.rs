//! pola talking to pola over real TCP on loopback, in both dialects.
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used)]

mod direct_io;
mod gc_race;
mod handoff;
mod hostile;
mod identity;
mod interop;
mod noise;
mod pipelining;
