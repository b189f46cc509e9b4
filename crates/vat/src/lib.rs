//! pola vat runtime (docs below are expanded later).
#![forbid(unsafe_code)]

pub mod mint;
pub mod patterns;
mod refs;
mod settle;
mod turn;
mod vat;

pub use refs::{
    Message, Outcome, Ref, RefKind, Remote, Resolver, Val, VatId, error, error_message,
};
pub use settle::{Settled, WaitError, listen_external, settled};
pub use turn::{FnObject, Object, ResolverObject, Turn, from_fn};
pub use vat::{Vat, wait};
