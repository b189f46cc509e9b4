//! The glue between a vat and OCapN: a peer owns a vat, listens on
//! netlayers, and drives one CapTP session per remote peer.
#![forbid(unsafe_code)]

pub mod conn;
pub mod message;
pub mod swiss;
pub mod test_peer;
