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
//! What spans the sessions of one peer (admission, one session per peer,
//! crossed hellos, timeouts, handoff routing) is the sans-IO
//! [`endpoint::Endpoint`].
//!
//! Main types: [`Session`], [`SessionConfig`], [`Event`], [`CapRef`],
//! [`LocalTarget`], [`Reply`], [`wire::Op`], [`locator::PeerLocator`],
//! [`locator::SturdyRef`].
//!
//! # Example: two sessions, one call
//!
//! ```
//! use pola_captp::locator::{Hints, PeerLocator, Swiss};
//! use pola_captp::{CapRef, Dialect, Event, LocalId, LocalTarget, Session, SessionConfig};
//! use pola_syrup::Value;
//!
//! let loc = |n: &str| PeerLocator::new("tcp-testing-only", n, Hints::Absent).unwrap();
//! // Each session gets fresh key material from the caller.
//! let mut alice = Session::new(SessionConfig::new(Dialect::Current, [1; 32], loc("alice")));
//! let mut bob = Session::new(SessionConfig::new(Dialect::Current, [2; 32], loc("bob")));
//! // What a driver does: move every queued message to the other side.
//! fn pump(from: &mut Session, to: &mut Session) {
//!     while let Some(bytes) = from.poll_transmit() {
//!         to.handle_bytes(&bytes).unwrap();
//!     }
//! }
//!
//! // Alice enlivens a sturdyref and, without waiting, pipelines a call on it.
//! let q_obj = alice.fetch(&Swiss::new(&b"greeter"[..])).unwrap();
//! let q_hi = alice.deliver(&CapRef::Question(q_obj), vec![Value::sym("hi")]).unwrap();
//! pump(&mut alice, &mut bob);
//! pump(&mut bob, &mut alice);
//!
//! // Bob's local side: look up the Swiss number, then run the call.
//! assert!(matches!(bob.poll_event(), Some(Event::Established { .. })));
//! let Some(Event::Fetch { swiss, reply }) = bob.poll_event() else { panic!() };
//! assert_eq!(swiss.bytes().as_ref(), b"greeter");
//! bob.resolve(reply.unwrap(), Ok(Value::Ref(CapRef::Local(LocalId(1))))).unwrap();
//! let Some(Event::Deliver { target: LocalTarget::Answer(_), args, reply }) = bob.poll_event()
//! else { panic!() };
//! assert_eq!(args, vec![Value::sym("hi")]);
//! bob.resolve(reply.unwrap(), Ok(Value::str("hello"))).unwrap();
//! pump(&mut bob, &mut alice);
//!
//! let answers: Vec<Event> = std::iter::from_fn(|| alice.poll_event()).collect();
//! assert!(answers.contains(&Event::Answer { question: q_hi, result: Ok(Value::str("hello")) }));
//! ```
//!
//! # Security notes
//!
//! - Every incoming message is decoded under [`pola_syrup::Limits`] and
//!   validated completely before any table changes; bad input aborts the
//!   session with a short reason and never panics.
//! - The peer cannot grow our answer, import, gift or waiting tables beyond
//!   [`SessionConfig::max_table_entries`].
//! - Signatures are made over, and checked against, canonical re-encodings.
//!   A checked `op:start-session` yields [`PeerVerified`], a checked
//!   withdrawal [`handoff::VerifiedReceive`]; neither can be built outside
//!   this crate.
//! - Swiss numbers never appear in `Debug` output.
//! - CapTP has no timers, so the session takes no clock; keys come from a
//!   caller-supplied seed.
#![forbid(unsafe_code)]

pub mod budget;
pub mod crypto;
pub mod dialects;
pub mod endpoint;
pub mod handoff;
pub mod ids;
pub mod locator;
pub mod session;
mod shape;
pub mod wire;

pub use ids::{
    AnswerPosition, ExportPosition, GiftTicket, ImportPosition, LocalId, Position, QuestionPosition,
};
pub use wire::{Dialect, Forms, WireError};

pub use session::{
    CapRef, Event, Learned, LocalTarget, Misuse, PeerVerified, ProjectKind, Reply, Session,
    SessionConfig, SessionError, Settlement, TableSizes, Violation,
};
