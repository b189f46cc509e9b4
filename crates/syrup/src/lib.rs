//! Syrup, the canonical binary encoding of OCapN, and pola's one data model.
//!
//! This crate owns [`Value`] and its byte form. It does no I/O and knows
//! nothing of sessions; see the `value` module for the data model.
#![forbid(unsafe_code)]

pub mod value;

pub use value::{Int, NoRef, Record, Value};
