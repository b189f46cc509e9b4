//! pola's OCapN peer: the glue that joins a vat to CapTP sessions over
//! netlayers.
//!
//! A [`Peer`] owns one event loop per vat. It listens on its netlayers,
//! accepts and dials connections (one session per remote peer, reusing
//! inbound sessions too), drives a `pola_captp::Session` on each, and turns
//! session events into vat deliveries and vat sends into session commands.
//! Far references to objects on other peers are ordinary vat [`Ref`]s
//! (through the vat's `Remote` seam), so `send`, `send_only`, pipelining and
//! `when` work on them unchanged.
//!
//! What it is not: it holds no protocol logic (that is `pola-captp`) and
//! moves no bytes itself (that is `pola-netlayer`).
//!
//! Main types: [`Peer`], [`PeerHandle`], [`PeerConfig`]; the OCapN test
//! suite's objects are in [`test_peer`].
//!
//! [`Ref`]: pola_vat::Ref
#![forbid(unsafe_code)]

pub mod conn;
pub mod message;
mod peer;
pub mod remote;
pub mod swiss;
pub mod test_peer;

pub use peer::{Peer, PeerConfig, PeerError, PeerHandle, PeerStats, SessionStats};
