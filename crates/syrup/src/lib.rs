//! Syrup, the canonical binary encoding of OCapN, and pola's one data model.
//!
//! # What this crate is
//!
//! - [`Value`], the one value type every pola layer passes around (see the
//!   [`value`] module for the data model and its invariants);
//! - the Syrup codec: [`encode`] / [`encode_into`] write canonical bytes;
//!   [`decode`] / [`decode_bytes`] read exactly one value from a buffer, and
//!   [`Decoder`] reads a stream of values fed in chunks of any size;
//! - [`Limits`], the caps on untrusted input, and [`DecodeError`], which
//!   says what went wrong ([`DecodeErrorKind`]) and at which byte;
//! - a readable [`text`] form: `Display` for plain values and
//!   [`text::parse`] to read it back (for CLIs, logs and tests).
//!
//! It is not a transport or a protocol: it does no I/O, knows nothing of
//! sessions, CapTP messages or framing, and never creates a reference
//! ([`Value::Ref`]); the layer that owns a reference type maps it to and
//! from plain data with [`Value::try_map_refs`], or writes each reference
//! itself with [`encode_with_refs`].
//!
//! ```
//! use pola_syrup::{decode, encode, Value};
//! let msg: Value = pola_syrup::text::parse("<op:deliver-only <desc:export 0> ['ping 1]>").unwrap();
//! let wire = encode(&msg);
//! assert_eq!(wire, b"<15'op:deliver-only<11'desc:export0+>[4'ping1+]>");
//! assert_eq!(decode(&wire).unwrap(), msg);
//! ```
//!
//! # Decoding policy: strict canonical
//!
//! The decoder accepts only the canonical encoding and rejects everything
//! else with a typed error carrying the byte offset:
//!
//! - dictionary keys and set members out of canonical order
//!   ([`DecodeErrorKind::DictKeyOrder`], [`DecodeErrorKind::SetMemberOrder`])
//!   or repeated ([`DecodeErrorKind::DuplicateDictKey`],
//!   [`DecodeErrorKind::DuplicateSetMember`]);
//! - leading zeros in integers and lengths, and `0-`;
//! - string and symbol bodies that are not well-formed UTF-8;
//! - whitespace, unknown type markers and mismatched closing bytes
//!   ([`DecodeErrorKind::UnexpectedByte`]);
//! - bytes after the value, for [`decode`] and [`decode_bytes`].
//!
//! Why: signatures in OCapN (handoff certificates, for instance) are made
//! over canonical bytes, so a value has to have exactly one byte form; with
//! a strict reader, `encode(&decode(b)?) == b` for every accepted `b`, and
//! two peers can never disagree about what a message said. Nothing is lost
//! in practice: the OCapN test suite and Goblins emit canonical Syrup. (The
//! Syrup README lets readers skip whitespace between values; we do not.)
//!
//! Canonical order is the order of the *encoded bytes* (unsigned
//! lexicographic, a proper prefix first), so `10"…` sorts before `9"…`, and
//! for equal lengths a string before a symbol before a byte string. The
//! decoder checks it by comparing the input spans of neighbouring keys, so
//! it costs no re-encoding.
//!
//! Single floats (`F`) are decoded and encoded (Syrup has them), although
//! OCapN does not use them. Floats keep their exact bits, NaN payloads
//! included. Records may have any value as their label.
//!
//! # Limits
//!
//! Peer data is untrusted, so the decoder caps everything it allocates for,
//! *before* allocating (see [`Limits`] for the defaults):
//!
//! | cap | default | guards |
//! | --- | --- | --- |
//! | [`Limits::max_len`] | 16 MiB | one byte string, string or symbol |
//! | [`Limits::max_depth`] | 64 | nesting; the decoder uses an explicit stack, never recursion |
//! | [`Limits::max_int_digits`] | 4096 | big-integer parsing time |
//! | [`Limits::max_items`] | 1 Mi | one list, dictionary, set or record |
//! | [`Limits::max_values`] | 4 Mi | all values in one message (memory blow-up from 1-byte atoms) |
//! | [`Limits::max_value_bytes`] | 64 MiB | one encoded message, and what [`Decoder`] buffers for it |
//!
//! A length prefix is checked when its marker is read, so announcing a
//! terabyte costs the attacker an error, not us the memory. No allocation
//! is ever sized from a number in the input: lists grow as their items
//! actually arrive. "Need more bytes" ([`DecodeErrorKind::Incomplete`]) is
//! reported apart from malformed input and from exceeded limits (see
//! [`DecodeErrorKind::is_incomplete`] and [`DecodeErrorKind::is_limit`]).
//!
//! The encoder and `Display` recurse over a value's nesting; decoded values
//! are at most [`Limits::max_depth`] deep.
//!
//! # Text form
//!
//! See the [`text`] module: `<op:deliver <desc:export 5> ['deposit 10
//! <desc:import-object 3>] 7 <desc:import-object 9>>` is a CapTP message,
//! following OCapN's notation with small extensions so that every value
//! prints, and parses back, exactly.
#![forbid(unsafe_code)]

mod decode;
mod encode;
pub mod text;
pub mod value;

pub use decode::{
    DecodeError, DecodeErrorKind, Decoder, Limits, decode, decode_bytes, decode_bytes_with,
    decode_with,
};
pub use encode::{encode, encode_into, encode_with_refs, push_decimal};
pub use value::{Int, NoRef, Record, Value};
