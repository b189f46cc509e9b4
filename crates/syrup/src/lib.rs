//! Syrup, the canonical binary encoding of OCapN, and pola's one data model.
//!
//! This crate owns [`Value`] and its byte form. It does no I/O and knows
//! nothing of sessions; see the `value` module for the data model.
#![forbid(unsafe_code)]

mod decode;
mod encode;
pub mod text;
pub mod value;

pub use decode::{
    DecodeError, DecodeErrorKind, Decoder, Limits, decode, decode_bytes, decode_bytes_with,
    decode_with,
};
pub use encode::{encode, encode_into};
pub use value::{Int, NoRef, Record, Value};
