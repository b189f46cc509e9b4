//! Integration tests for pola-apps.
#![allow(clippy::unwrap_used)]

mod mint;
mod persistent_mint;

use std::time::Duration;

use pola_vat::{Ref, Val};

/// Generous wait: a correct run settles in microseconds.
pub const T: Duration = Duration::from_secs(20);

/// The integer in `v` (or `i64::MIN`).
pub fn int(v: &Val) -> i64 {
    v.as_i64().unwrap_or(i64::MIN)
}

/// The reference in `v`.
pub fn as_ref(v: &Val) -> Ref {
    v.as_ref().cloned().expect("a reference")
}

/// An integer value.
pub fn n(i: i64) -> Val {
    Val::int(i)
}
