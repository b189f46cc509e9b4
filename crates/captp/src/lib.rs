//! OCapN CapTP for pola, as a sans-IO state machine.
//!
//! This crate is the protocol logic of CapTP: the wire messages and
//! descriptors ([`wire`]), peer locators and sturdyrefs ([`locator`]), the
//! per-session cryptography ([`crypto`]), third-party handoff certificates
//! ([`handoff`]) and the [`Session`] state machine with its import, export,
//! question and answer tables, promise pipelining and distributed GC.
//!
//! It is **not** I/O: it opens no socket, reads no clock and never touches
//! the OS random number generator. A driver (in the vat or netlayer crates)
//! feeds it bytes and commands and drains bytes and events:
//!
//! ```text
//!            handle_bytes(&[u8])                 poll_transmit() -> bytes
//!   peer ───────────────────────►  Session  ─────────────────────────► peer
//!            deliver / listen /                 poll_event() -> Event
//!   vat  ───────────────────────►  (tables) ─────────────────────────► vat
//!            resolve / drop_import ...
//! ```
//!
//! Main types: [`Session`], [`SessionConfig`], [`Event`], [`CapRef`],
//! [`LocalTarget`], [`Reply`], [`wire::Op`], [`locator::PeerLocator`],
//! [`locator::SturdyRef`].
#![forbid(unsafe_code)]

pub mod crypto;
pub mod handoff;
pub mod ids;
pub mod locator;
pub mod session;
pub mod wire;

pub use ids::{
    AnswerPosition, ExportPosition, ImportPosition, LocalId, Position, QuestionPosition,
};
pub use wire::{Dialect, WireError};

pub use session::{
    CapRef, Event, LocalTarget, Misuse, PeerVerified, ProjectKind, Reply, Session, SessionConfig,
    SessionError, Settlement, TableSizes, Violation,
};
