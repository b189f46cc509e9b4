//! Integration tests for pola-vat.
#![allow(clippy::unwrap_used)]

mod broken;
mod cross_vat;
mod driver;
mod fifo;
mod gaps;
mod patterns;
mod persist;
mod pipelining;
mod quota;
mod remote;
mod support;
mod turns;
mod when;
