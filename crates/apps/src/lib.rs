//! Example applications on the pola vat runtime, kept out of the trusted
//! core crates.
//!
//! - [`mint`]: E's mint and purse as persistent kinds (a ledger that
//!   survives restarts and crashes in a persistent vat, and works unchanged
//!   in an ephemeral one), and the three-vat demo exchange `pola demo`
//!   prints.
//! - [`wallet`]: a wallet and its payee facet over purses at a far mint,
//!   as persistent kinds holding far references made from sturdyrefs.
#![forbid(unsafe_code)]
#![allow(clippy::mutable_key_type)]

pub mod mint;
pub mod wallet;
