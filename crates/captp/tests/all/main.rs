//! Integration tests for pola-captp: a deterministic two- and three-session
//! simulator, hostile peers feeding raw bytes, and property tests.
#![allow(clippy::unwrap_used)]

mod budget;
mod dialects;
mod endpoint;
mod export_race;
mod gc_model;
mod handoff;
mod hostile;
mod props;
mod sim;
mod two_party;
