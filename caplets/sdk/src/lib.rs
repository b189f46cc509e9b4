//! Write a pola caplet in ordinary Rust.
//!
//! A caplet is one object: a type implementing [`Caplet`], registered with
//! [`caplet!`]. Each message is a list `[method-symbol, args…]`; the object
//! answers through a [`Reply`], now or later. Everything the caplet can
//! affect it reaches through a [`Ref`] it was handed: it can send to it
//! ([`Ref::send`], [`Ref::send_only`]), pass it on inside a message, wait
//! for an answer ([`Promise::when`]) and drop it. There is nothing else: no
//! files, clock, randomness or network, unless someone hands you a
//! reference to one.
//!
//! ```ignore
//! use pola_caplet_sdk::{Caplet, Reply, Val, caplet};
//!
//! #[derive(Default)]
//! struct Greeter;
//!
//! impl Caplet for Greeter {
//!     fn call(&mut self, method: &str, args: Vec<Val>, reply: Reply) {
//!         match method {
//!             "hello" => reply.ok(Val::str("hi")),
//!             _ => reply.err(Val::str("no such method")),
//!         }
//!     }
//! }
//! caplet!(Greeter);
//! ```
//!
//! # State lives in storage
//!
//! A caplet's memory is a cache: its instance may be replaced at any time
//! (after a trap, or when its vat restarts), and a fresh one starts from
//! `Default`. What must last goes in the caplet's [`storage`]: keys to
//! values that may hold references, so a caplet keeps a capability by
//! storing it. Writes are part of the delivery: if the delivery traps,
//! runs out of its budget or is given up ([`Reply::abort`]), none of its
//! writes (and none of its sends) happen.
//!
//! ```ignore
//! fn call(&mut self, method: &str, args: Vec<Val>, reply: Reply) {
//!     let n = storage::get("count").ok().flatten().and_then(|v| v.as_i64()).unwrap_or(0);
//!     match storage::put("count", &Val::int(n + 1)) {
//!         Ok(()) => reply.ok(Val::int(n + 1)),
//!         Err(e) => reply.err(Val::str(e.name())),
//!     }
//! }
//! ```
//!
//! Build for `wasm32-unknown-unknown` as a `cdylib`. A caplet crate should
//! say `#![deny(unsafe_code)]`; the only unsafe item in it is the pair of
//! entry points [`caplet!`] writes, and the raw imports live in
//! `pola-caplet-sys`.
#![forbid(unsafe_code)]

use std::any::Any;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;

pub use pola_syrup::{self as syrup, Value};

pub mod view;

/// The record label standing for a reference on the wire.
pub const REF_LABEL: &str = "pola:ref";

/// A value that may hold references: what caplets send and receive.
pub type Val = Value<Ref>;

/// A reference (capability) held by this caplet instance: a handle into
/// its c-list. Copying a `Ref` copies the name, not authority: the handle
/// means something only in this instance, and only until dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ref(i64);

/// A promise for an answer; it is also a reference you can send to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Promise(Ref);

/// The right to settle one promise, once.
#[derive(Debug, PartialEq, Eq)]
pub struct Resolver(i64);

/// Why a call to the host failed. Plain codes: the host tells a caplet
/// nothing else.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Error {
    /// No such handle in this instance (guessed, stale, dropped, foreign).
    UnknownHandle,
    /// A resolver used as a reference or the reverse.
    WrongKind,
    /// The grant was revoked.
    Revoked,
    /// A pointer or length outside this caplet's memory.
    BadMemory,
    /// Bytes that are not one canonical Syrup value.
    BadMessage,
    /// Over the host's message limit.
    TooLarge,
    /// The c-list is full.
    CListFull,
    /// The host refused.
    Refused,
    /// No message to read.
    NoMessage,
    /// The CPU budget of this delivery is spent.
    Exhausted,
    /// No such key in storage.
    NotFound,
    /// The storage quota (keys or total bytes) would be exceeded.
    StorageFull,
    /// Any other code.
    Other(i32),
}

impl Error {
    /// The error for a negative code from the host.
    pub fn from_code(code: i32) -> Error {
        match code {
            -1 => Error::UnknownHandle,
            -2 => Error::WrongKind,
            -3 => Error::Revoked,
            -4 => Error::BadMemory,
            -5 => Error::BadMessage,
            -6 => Error::TooLarge,
            -7 => Error::CListFull,
            -8 => Error::Refused,
            -9 => Error::NoMessage,
            -10 => Error::Exhausted,
            -11 => Error::NotFound,
            -12 => Error::StorageFull,
            c => Error::Other(c),
        }
    }

    /// A short name, handy for reporting back.
    pub fn name(self) -> &'static str {
        match self {
            Error::UnknownHandle => "unknown-handle",
            Error::WrongKind => "wrong-kind",
            Error::Revoked => "revoked",
            Error::BadMemory => "bad-memory",
            Error::BadMessage => "bad-message",
            Error::TooLarge => "too-large",
            Error::CListFull => "clist-full",
            Error::Refused => "refused",
            Error::NoMessage => "no-message",
            Error::Exhausted => "exhausted",
            Error::NotFound => "not-found",
            Error::StorageFull => "storage-full",
            Error::Other(_) => "other",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::error::Error for Error {}

fn check(code: i32) -> Result<(), Error> {
    if code == 0 {
        Ok(())
    } else {
        Err(Error::from_code(code))
    }
}

fn check_handle(h: i64) -> Result<i64, Error> {
    if h > 0 {
        Ok(h)
    } else {
        Err(Error::from_code(i32::try_from(h).unwrap_or(i32::MIN)))
    }
}

/// Encodes a value, writing each reference as `<pola:ref HANDLE>`.
pub fn encode(value: &Val) -> Vec<u8> {
    let plain = lower(value.clone());
    pola_syrup::encode(&plain)
}

fn lower(value: Val) -> Value {
    match value.try_map_refs::<pola_syrup::NoRef, std::convert::Infallible>(&mut |r| {
        Ok(Value::record(REF_LABEL, vec![Value::int(r.0)]))
    }) {
        Ok(v) => v,
        Err(e) => match e {},
    }
}

/// Decodes a message, turning `<pola:ref HANDLE>` records into [`Ref`]s.
///
/// # Errors
/// [`Error::BadMessage`] for bytes that are not one canonical Syrup value
/// or a malformed reference record.
pub fn decode(bytes: &[u8]) -> Result<Val, Error> {
    let plain = pola_syrup::decode(bytes).map_err(|_| Error::BadMessage)?;
    lift(plain)
}

fn lift(v: Value) -> Result<Val, Error> {
    v.try_lift_refs(&mut |v| match v.as_record_labelled(REF_LABEL) {
        None => Ok(None),
        Some([h]) => Ok(Some(Ref(h.as_i64().ok_or(Error::BadMessage)?))),
        Some(_) => Err(Error::BadMessage),
    })
}

/// The message `[method, args…]`.
pub fn message(method: &str, args: Vec<Val>) -> Val {
    let mut items = Vec::with_capacity(args.len().saturating_add(1));
    items.push(Value::sym(method));
    items.extend(args);
    Value::List(items)
}

impl Ref {
    /// The raw handle number. Knowing it gives no authority anywhere else.
    pub fn handle(self) -> i64 {
        self.0
    }

    /// A `Ref` from a raw number. This forges nothing: a number that is not
    /// a live handle of this instance fails with [`Error::UnknownHandle`].
    pub fn from_handle(h: i64) -> Ref {
        Ref(h)
    }

    /// Eventual send `method(args…)`; returns a promise for the answer.
    ///
    /// # Errors
    /// The host's code, e.g. [`Error::UnknownHandle`] or [`Error::Revoked`].
    pub fn send(self, method: &str, args: Vec<Val>) -> Result<Promise, Error> {
        self.send_value(&message(method, args))
    }

    /// Eventual send of an arbitrary message value.
    ///
    /// # Errors
    /// As for [`Ref::send`].
    pub fn send_value(self, msg: &Val) -> Result<Promise, Error> {
        let bytes = encode(msg);
        check_handle(pola_caplet_sys::send_bytes(self.0, &bytes)).map(|h| Promise(Ref(h)))
    }

    /// Eventual send with no answer.
    ///
    /// # Errors
    /// As for [`Ref::send`].
    pub fn send_only(self, method: &str, args: Vec<Val>) -> Result<(), Error> {
        let bytes = encode(&message(method, args));
        check(pola_caplet_sys::send_only_bytes(self.0, &bytes))
    }

    /// Forgets this handle.
    ///
    /// # Errors
    /// [`Error::UnknownHandle`] if it was not live.
    pub fn drop_ref(self) -> Result<(), Error> {
        check(pola_caplet_sys::drop_handle(self.0))
    }

    /// This reference as a value, to pass in a message.
    pub fn val(self) -> Val {
        Value::Ref(self)
    }
}

impl Promise {
    /// The promise as a reference (to send to it, pipelining).
    pub fn as_ref(self) -> Ref {
        self.0
    }

    /// Runs `f` with this caplet's object and the outcome once the promise
    /// settles (`Ok(answer)` or `Err(reason)`). `T` must be the type given
    /// to [`caplet!`].
    ///
    /// # Errors
    /// The host's code; [`Error::Refused`] if the host does not notify.
    pub fn when<T: 'static>(
        self,
        f: impl FnOnce(&mut T, Result<Val, Val>) + 'static,
    ) -> Result<(), Error> {
        let tag = WHENS.with(|w| {
            let mut w = w.borrow_mut();
            w.next = w.next.wrapping_add(1);
            let tag = w.next;
            w.pending.insert(
                tag,
                Box::new(move |any: &mut dyn Any, outcome| {
                    if let Some(t) = any.downcast_mut::<T>() {
                        f(t, outcome);
                    }
                }),
            );
            tag
        });
        let r = check(pola_caplet_sys::when_settled(self.0.0, tag));
        if r.is_err() {
            WHENS.with(|w| w.borrow_mut().pending.remove(&tag));
        }
        r
    }
}

impl Resolver {
    /// Fulfils the promise with `value`.
    ///
    /// # Errors
    /// The host's code, e.g. [`Error::UnknownHandle`] if already settled.
    pub fn resolve(self, value: &Val) -> Result<(), Error> {
        check(pola_caplet_sys::resolve_bytes(self.0, &encode(value)))
    }

    /// Breaks the promise with `reason`.
    ///
    /// # Errors
    /// As for [`Resolver::resolve`].
    pub fn reject(self, reason: &Val) -> Result<(), Error> {
        check(pola_caplet_sys::break_bytes(self.0, &encode(reason)))
    }

    /// The raw handle number.
    pub fn handle(&self) -> i64 {
        self.0
    }
}

/// How a method answers: now ([`Reply::ok`], [`Reply::err`]) or later
/// (keep the [`Resolver`] from [`Reply::later`]). A `Reply` dropped without
/// an answer breaks the promise.
#[derive(Debug)]
pub struct Reply(Option<Resolver>);

impl Reply {
    /// Answers with a value (ignored for a send-only message).
    pub fn ok(mut self, value: Val) {
        if let Some(r) = self.0.take() {
            let _ = r.resolve(&value);
        }
    }

    /// Answers with an error reason.
    pub fn err(mut self, reason: Val) {
        if let Some(r) = self.0.take() {
            let _ = r.reject(&reason);
        }
    }

    /// Answers with `Ok(value)` or `Err(reason)`.
    pub fn result(self, outcome: Result<Val, Val>) {
        match outcome {
            Ok(v) => self.ok(v),
            Err(e) => self.err(e),
        }
    }

    /// Takes the resolver to answer later (`None` for a send-only).
    pub fn later(mut self) -> Option<Resolver> {
        self.0.take()
    }

    /// Gives up on this message: the entry point returns a failure code,
    /// so the host discards everything this delivery did (its sends and
    /// its storage writes) and breaks the answer with a fixed reason.
    pub fn abort(mut self) {
        // Not settled here: the host breaks it (any settlement made now
        // would be discarded with the rest of the delivery anyway).
        let _ = self.0.take();
        ABORTED.with(|a| a.set(true));
    }
}

thread_local! {
    static ABORTED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The code an entry point returns for a delivery given up with
/// [`Reply::abort`].
pub const ABORT_CODE: i32 = 4;

/// The caplet's storage: its persistent state (see the crate docs).
///
/// Keys are byte strings (`&str` works too) of at most the host's key
/// limit; values are any [`Val`], references included, within the host's
/// quotas (value size, number of keys, total bytes: errors
/// [`Error::TooLarge`] and [`Error::StorageFull`], and nothing changes).
/// A resolver cannot be stored ([`Error::WrongKind`]). Reads see this
/// delivery's own writes; the writes are applied when the delivery ends
/// well, and dropped if it does not.
pub mod storage {
    use super::{Error, Val, check, decode, encode};

    /// The value under `key`, or `None`. A reference in it is a handle of
    /// this instance (the same handle as one already held for it).
    ///
    /// # Errors
    /// The host's code, e.g. [`Error::TooLarge`] for an overlong key or
    /// [`Error::CListFull`] if the references in the value find no room.
    pub fn get(key: impl AsRef<[u8]>) -> Result<Option<Val>, Error> {
        let n = pola_caplet_sys::storage_get_key(key.as_ref());
        if n == -11 {
            return Ok(None);
        }
        let len = usize::try_from(n).map_err(|_| Error::from_code(n))?;
        let mut buf = vec![0u8; len];
        check(pola_caplet_sys::read_into(&mut buf))?;
        decode(&buf).map(Some)
    }

    /// Stores `value` under `key`, replacing any value there.
    ///
    /// # Errors
    /// [`Error::TooLarge`], [`Error::StorageFull`], or the code of a bad
    /// reference in `value` ([`Error::UnknownHandle`], [`Error::WrongKind`]).
    pub fn put(key: impl AsRef<[u8]>, value: &Val) -> Result<(), Error> {
        check(pola_caplet_sys::storage_put_bytes(
            key.as_ref(),
            &encode(value),
        ))
    }

    /// Removes `key`; answers whether it was there.
    ///
    /// # Errors
    /// The host's code, e.g. [`Error::TooLarge`] for an overlong key.
    pub fn delete(key: impl AsRef<[u8]>) -> Result<bool, Error> {
        match check(pola_caplet_sys::storage_delete_key(key.as_ref())) {
            Ok(()) => Ok(true),
            Err(Error::NotFound) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

impl Drop for Reply {
    fn drop(&mut self) {
        if let Some(r) = self.0.take() {
            let _ = r.reject(&Value::str("no answer"));
        }
    }
}

/// A caplet: one object receiving messages.
pub trait Caplet: Default + 'static {
    /// Handles `method(args…)`; answer through `reply`.
    fn call(&mut self, method: &str, args: Vec<Val>, reply: Reply);
}

type Reaction = Box<dyn FnOnce(&mut dyn Any, Result<Val, Val>)>;

#[derive(Default)]
struct Whens {
    next: i64,
    pending: BTreeMap<i64, Reaction>,
}

thread_local! {
    static WHENS: RefCell<Whens> = RefCell::new(Whens::default());
}

fn read_inbound(len: i32) -> Result<Val, Error> {
    let len = usize::try_from(len).map_err(|_| Error::NoMessage)?;
    let mut buf = vec![0u8; len];
    check(pola_caplet_sys::read_into(&mut buf))?;
    decode(&buf)
}

/// Entry-point code for [`caplet!`]; not for direct use.
#[doc(hidden)]
pub fn __deliver<T: Caplet>(
    cell: &'static std::thread::LocalKey<RefCell<Option<T>>>,
    len: i32,
    resolver: i64,
) -> i32 {
    let reply = Reply((resolver != 0).then_some(Resolver(resolver)));
    let msg = match read_inbound(len) {
        Ok(m) => m,
        Err(e) => {
            reply.err(Value::str(e.name()));
            return 1;
        }
    };
    let Value::List(mut items) = msg else {
        reply.err(Value::str("message is not a list"));
        return 2;
    };
    if items.is_empty() {
        reply.err(Value::str("empty message"));
        return 2;
    }
    let Value::Symbol(method) = items.remove(0) else {
        reply.err(Value::str("method is not a symbol"));
        return 2;
    };
    ABORTED.with(|a| a.set(false));
    cell.with(|c| {
        let mut c = c.borrow_mut();
        c.get_or_insert_with(T::default).call(&method, items, reply);
    });
    if ABORTED.with(|a| a.replace(false)) {
        return ABORT_CODE;
    }
    0
}

/// Entry-point code for [`caplet!`]; not for direct use.
#[doc(hidden)]
pub fn __notify<T: Caplet>(
    cell: &'static std::thread::LocalKey<RefCell<Option<T>>>,
    tag: i64,
    broken: i32,
    len: i32,
) -> i32 {
    let Some(reaction) = WHENS.with(|w| w.borrow_mut().pending.remove(&tag)) else {
        return 3;
    };
    let value = match read_inbound(len) {
        Ok(v) => v,
        Err(_) => return 1,
    };
    let outcome = if broken == 0 { Ok(value) } else { Err(value) };
    cell.with(|c| {
        let mut c = c.borrow_mut();
        let this = c.get_or_insert_with(T::default);
        reaction(this, outcome);
    });
    0
}

/// Registers `$t` (a [`Caplet`]) as this module's object and writes the
/// entry points `pola_deliver` and `pola_notify`.
#[macro_export]
macro_rules! caplet {
    ($t:ty) => {
        ::std::thread_local! {
            static __POLA_CAPLET: ::std::cell::RefCell<::std::option::Option<$t>> =
                const { ::std::cell::RefCell::new(::std::option::Option::None) };
        }

        /// Entry point: a message arrived.
        #[allow(unsafe_code)]
        #[unsafe(no_mangle)]
        pub extern "C" fn pola_deliver(len: i32, resolver: i64) -> i32 {
            $crate::__deliver::<$t>(&__POLA_CAPLET, len, resolver)
        }

        /// Entry point: a watched promise settled.
        #[allow(unsafe_code)]
        #[unsafe(no_mangle)]
        pub extern "C" fn pola_notify(tag: i64, broken: i32, len: i32) -> i32 {
            $crate::__notify::<$t>(&__POLA_CAPLET, tag, broken, len)
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_round_trip_through_bytes() {
        let v = message("give", vec![Ref(1 << 40).val(), Value::int(3i64)]);
        assert_eq!(decode(&encode(&v)), Ok(v));
    }

    #[test]
    fn malformed_ref_record_is_refused() {
        let bad: Value = Value::record(REF_LABEL, vec![Value::str("x")]);
        assert_eq!(decode(&pola_syrup::encode(&bad)), Err(Error::BadMessage));
    }
}
