//! The caplet interface: the one and only thing a caplet may import.
//!
//! A caplet is a WebAssembly **core module**. It may import functions from
//! the module `"pola"` listed below and nothing else (no WASI, no memory, no
//! table, no global); the loader refuses anything else, naming the import.
//! It must export its linear memory as `"memory"` and the entry point
//! `"pola_deliver"`; `"pola_notify"` is optional.
//!
//! # Values and references
//! Every message, answer and reason is one Syrup value (canonical bytes, see
//! `pola_syrup`) in the caplet's memory, passed as `(ptr, len)`. A reference
//! inside it is written as the record `<pola:ref HANDLE>` ([`REF_LABEL`]),
//! where `HANDLE` is an integer naming an entry of the instance's own c-list
//! (capability list). Handles are opaque positive `i64`s; they mean nothing
//! outside their own instance, are never reused, and a guessed, stale,
//! dropped, consumed or foreign handle is the error [`Code::UnknownHandle`],
//! never another object. Passing a handle in a message copies the reference;
//! the caplet keeps its own handle until it calls `drop`.
//!
//! Because the record `<pola:ref …>` means a reference, plain data from the
//! host can never contain it: the host refuses to deliver such a value
//! ([`crate::CallError::ReservedLabel`]), so data can never be turned into a
//! capability.
//!
//! # Imports (module `"pola"`)
//! | name | signature | meaning |
//! |---|---|---|
//! | `read` | `(ptr: i32, len: i32) -> i32` | copy the message of the current delivery or notification into `[ptr, ptr+len)`; `len` must be the length given to the entry point |
//! | `send` | `(target: i64, ptr: i32, len: i32) -> i64` | eventual send; returns the handle of a promise for the answer |
//! | `send_only` | `(target: i64, ptr: i32, len: i32) -> i32` | eventual send, no answer |
//! | `resolve` | `(resolver: i64, ptr: i32, len: i32) -> i32` | fulfil a promise; consumes the resolver handle |
//! | `break_promise` | `(resolver: i64, ptr: i32, len: i32) -> i32` | break a promise with a reason; consumes the resolver handle |
//! | `when` | `(promise: i64, tag: i64) -> i32` | ask for `pola_notify(tag, …)` once the promise settles |
//! | `drop` | `(handle: i64) -> i32` | forget a handle |
//! | `storage_get` | `(key_ptr: i32, key_len: i32) -> i32` | look up `key` in the caplet's storage; returns the value's length and makes the value the pending message, to fetch with `read` (this replaces the delivery's message: read that first), or [`Code::NotFound`] |
//! | `storage_put` | `(key_ptr: i32, key_len: i32, ptr: i32, len: i32) -> i32` | store the value at `(ptr, len)` under `key` (replacing any) |
//! | `storage_delete` | `(key_ptr: i32, key_len: i32) -> i32` | remove `key`; [`Code::NotFound`] if absent |
//!
//! # Storage
//! A caplet's persistent state is its **storage**: a map from keys (byte
//! strings) to Syrup values, which may hold references (a caplet keeps a
//! capability by storing it). Its linear memory is never kept: an instance
//! may be replaced at any time (after a trap, or by a restart of its
//! vat), and a fresh instance sees the same storage.
//!
//! Storage is **transactional per entry**: reads see the delivery's own
//! writes at once, but the writes are staged, and applied only when the
//! entry point returns `0`. A trap, running out of fuel or memory, the
//! wall-clock limit, or a non-zero return discards every write of that
//! delivery (or notification), as it discards its sends. The storage
//! functions work only inside an entry (during the start function they
//! return [`Code::Refused`]).
//!
//! Quotas ([`crate::Config`]): a key of at most
//! [`crate::Config::storage_key_bytes`], a value of at most
//! [`crate::Config::storage_value_bytes`] (its encoded size, each
//! reference counted as [`crate::StorageMap::REF_BYTES`] bytes), at most
//! [`crate::Config::storage_keys`] keys and
//! [`crate::Config::storage_bytes`] bytes of keys and values in all. A put
//! over a limit fails with [`Code::TooLarge`] (key or value) or
//! [`Code::StorageFull`] and changes nothing. A resolver cannot be stored
//! ([`Code::WrongKind`]).
//!
//! Every import is charged fuel: a fixed amount per call plus an amount
//! per message byte ([`crate::Config::host_call_fuel`],
//! [`crate::Config::message_byte_fuel`]), so host work done for a caplet
//! counts against its CPU budget.
//!
//! `i32` results are `0` for success; `i64` results are a handle (`> 0`);
//! both are a negative [`Code`] on failure. Failures are plain numbers: they
//! carry no host detail.
//!
//! # Exports
//! | name | signature | meaning |
//! |---|---|---|
//! | `memory` | memory | the caplet's linear memory |
//! | `pola_deliver` | `(len: i32, resolver: i64) -> i32` | a message of `len` bytes has arrived (fetch it with `read`); `resolver` is the handle of the promise for its answer, or `0` for a send-only |
//! | `pola_notify` | `(tag: i64, broken: i32, len: i32) -> i32` | optional: the promise watched with `when(promise, tag)` settled; the value (or the reason, if `broken` is 1) is fetched with `read` |
//!
//! An entry point returns `0`; any other value is reported to the host as
//! [`crate::CallError::CapletFailed`].
//!
//! # Why a core-module ABI, not the component model
//! The interface is ten functions over integers and byte ranges, so WIT
//! would buy little: Syrup already is the data format, and handles need our
//! own c-list anyway (per-instance, never reused, revocable). Core-module
//! calls are about ten times cheaper than component calls in wasmtime (see
//! DEPENDENCIES.md), the host needs no `component-model` feature, and a
//! guest is a plain `wasm32-unknown-unknown` `cdylib` with no adapter step.

use wasmparser::ValType;

/// The import module every caplet function comes from.
pub const MODULE: &str = "pola";

/// The record label that stands for a reference inside a message.
pub const REF_LABEL: &str = "pola:ref";

/// Name of the required delivery entry point.
pub const EXPORT_DELIVER: &str = "pola_deliver";
/// Name of the optional notification entry point.
pub const EXPORT_NOTIFY: &str = "pola_notify";
/// Name of the required memory export.
pub const EXPORT_MEMORY: &str = "memory";

/// Failure codes returned to a caplet (always negative).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[repr(i32)]
pub enum Code {
    /// No such handle in this instance's c-list (guessed, stale, dropped,
    /// already consumed, or from another instance).
    UnknownHandle = -1,
    /// The handle exists but is of the wrong kind (a resolver used as a
    /// reference or the reverse).
    WrongKind = -2,
    /// Reserved (kept so that numbers never change meaning): this host no
    /// longer returns it. A revocable grant is a reference to a revocable
    /// forwarder, and a revoked one breaks the messages sent through it
    /// (in a vat, with the reason "revoked").
    Revoked = -3,
    /// `(ptr, len)` is not inside the caplet's memory.
    BadMemory = -4,
    /// The bytes are not one canonical Syrup value, or a `<pola:ref>`
    /// record is malformed.
    BadMessage = -5,
    /// The message is larger than the configured limit.
    TooLarge = -6,
    /// The c-list is full.
    CListFull = -7,
    /// The host refused the operation (for example a send to a broken
    /// reference).
    Refused = -8,
    /// `read` was called with no message pending or with the wrong length.
    NoMessage = -9,
    /// The call's CPU budget cannot pay for this host call; the caplet
    /// traps with out-of-fuel at its next instruction.
    Exhausted = -10,
    /// No such key in the caplet's storage.
    NotFound = -11,
    /// The storage quota (number of keys, or total bytes) would be
    /// exceeded; nothing was written.
    StorageFull = -12,
}

impl Code {
    /// The code as returned to the caplet.
    pub fn as_i32(self) -> i32 {
        self as i32
    }

    /// The code for a number, if it is one.
    pub fn from_i32(n: i32) -> Option<Code> {
        Some(match n {
            -1 => Code::UnknownHandle,
            -2 => Code::WrongKind,
            -3 => Code::Revoked,
            -4 => Code::BadMemory,
            -5 => Code::BadMessage,
            -6 => Code::TooLarge,
            -7 => Code::CListFull,
            -8 => Code::Refused,
            -9 => Code::NoMessage,
            -10 => Code::Exhausted,
            -11 => Code::NotFound,
            -12 => Code::StorageFull,
            _ => return None,
        })
    }
}

/// A WebAssembly number type used by the interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Num {
    I32,
    I64,
}

impl Num {
    pub(crate) fn matches(self, t: &ValType) -> bool {
        matches!(
            (self, t),
            (Num::I32, ValType::I32) | (Num::I64, ValType::I64)
        )
    }
}

/// The allowed imports with their signatures `(params, results)`.
pub(crate) fn allowed_import(name: &str) -> Option<(&'static [Num], &'static [Num])> {
    use Num::{I32, I64};
    Some(match name {
        "read" => (&[I32, I32], &[I32]),
        "send" => (&[I64, I32, I32], &[I64]),
        "send_only" | "resolve" | "break_promise" => (&[I64, I32, I32], &[I32]),
        "when" => (&[I64, I64], &[I32]),
        "drop" => (&[I64], &[I32]),
        "storage_get" | "storage_delete" => (&[I32, I32], &[I32]),
        "storage_put" => (&[I32, I32, I32, I32], &[I32]),
        _ => return None,
    })
}

/// Signatures of the entry points `(params, results)`.
pub(crate) fn entry_point(name: &str) -> Option<(&'static [Num], &'static [Num])> {
    use Num::{I32, I64};
    Some(match name {
        EXPORT_DELIVER => (&[I32, I64], &[I32]),
        EXPORT_NOTIFY => (&[I64, I32, I32], &[I32]),
        _ => return None,
    })
}

/// Every allowed import name.
pub const IMPORTS: [&str; 10] = [
    "read",
    "send",
    "send_only",
    "resolve",
    "break_promise",
    "when",
    "drop",
    "storage_get",
    "storage_put",
    "storage_delete",
];
