//! References, messages, resolvers and the [`Remote`] seam.
//!
//! Invariants (upheld by this crate):
//! - A [`Ref`] is unforgeable: the only ways to obtain one are to create an
//!   object or promise, to receive one in a message or resolution, or to wrap
//!   a [`Remote`] (which only code holding that remote can do).
//! - Equality, ordering and hashing of a `Ref` are by identity: (vat, slot)
//!   for vat objects and promises, a process-unique key for remote refs, the
//!   reason for broken refs. Two `Ref`s to the same object are equal wherever
//!   they travel inside the process.

use std::any::Any;
use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};

use pola_syrup::Value;

use crate::vat::{Event, VatShared};

/// The value type inside vats: Syrup data plus live references.
pub type Val = Value<Ref>;

/// The settled outcome of a promise or a method: `Ok` is fulfilment, `Err` is
/// breakage with a reason (conventionally a [`Value::error`] record).
pub type Outcome = Result<Val, Val>;

/// An OCapN error value `<desc:error "message">`, the conventional reason of a
/// broken promise.
pub fn error(message: impl Into<String>) -> Val {
    Value::error(message)
}

/// The text of an error value made by [`error`], if it is one.
pub fn error_message(v: &Val) -> Option<&str> {
    v.as_record_labelled("desc:error")
        .and_then(|f| f.first())
        .and_then(Value::as_str)
}

/// Identifies a vat within this process (allocated by [`crate::Vat::new`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VatId(pub(crate) u64);

impl VatId {
    /// The number behind the id.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for VatId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "vat{}", self.0)
    }
}

/// A message: a method name (a Syrup symbol) and its arguments.
///
/// The empty method name `""` means *no method symbol*: the message is just
/// its arguments (OCapN lets an `op:deliver` carry any argument list, and
/// objects such as an echo or a function-like object take one without a
/// leading symbol). [`Message::plain`] builds one, [`Message::method_name`]
/// reads the method as an `Option`.
#[derive(Debug)]
pub struct Message {
    /// The method (selector); `""` for none.
    pub method: Cow<'static, str>,
    /// The arguments.
    pub args: Vec<Val>,
}

impl Message {
    /// A message with this method and these arguments.
    pub fn new(method: impl Into<Cow<'static, str>>, args: Vec<Val>) -> Self {
        Message {
            method: method.into(),
            args,
        }
    }

    /// A message without a method symbol: just arguments.
    pub fn plain(args: Vec<Val>) -> Self {
        Message::new("", args)
    }

    /// The method name, or `None` for a message without one.
    pub fn method_name(&self) -> Option<&str> {
        if self.method.is_empty() {
            None
        } else {
            Some(&self.method)
        }
    }
}

/// A slot in a vat's object or promise table. The table keeps one strong
/// count; every `Ref`/`Resolver` to it keeps another, which is how the vat
/// knows (without locks) that a slot can no longer be reached.
pub(crate) struct Slot {
    pub(crate) vat: Arc<VatShared>,
    pub(crate) id: u64,
}

impl Slot {
    pub(crate) fn new(vat: &Arc<VatShared>) -> Arc<Slot> {
        Arc::new(Slot {
            vat: vat.clone(),
            id: vat.alloc_id(),
        })
    }
}

/// The target of a far reference that does not live in a vat of this
/// process: the seam a networking layer (OCapN CapTP) implements.
///
/// A CapTP session wraps each import (a far object or a far promise on a
/// peer) in a `Remote` and hands the vat [`Ref::remote`] of it. From then on
/// `send`, `send_only`, pipelining and `when` work on it exactly as on a ref
/// to another local vat:
/// - [`Remote::deliver`] is called (on the sending vat's thread, after the
///   sending turn committed, in send order) for every message to the ref,
///   including messages that were queued on a local promise which resolved
///   to this ref; `resolver` is `Some` when an answer is wanted (the
///   session sends `op:deliver` with an answer position and later settles
///   the resolver from its driver with [`Resolver::settle_now`]).
/// - For a promise (`is_promise` true), [`Remote::listen`] is called when
///   someone waits for the settled value (`when`, `block_on`, a local
///   promise resolved to this one); the session sends `op:listen` and
///   settles the resolver when the answer comes.
///
/// Implementations must not block for long: they are called on a vat's
/// thread, typically they push onto the session driver's queue.
/// `Remote: Any` lets a session recognise its own imports when they come
/// back in arguments (downcast `&dyn Any` to its type).
pub trait Remote: Any + Send + Sync {
    /// Delivers one message; settle `resolver` (if any) with the answer.
    fn deliver(&self, message: Message, resolver: Option<Resolver>);

    /// Whether this target is a promise (an unsettled answer or a remote
    /// promise), rather than a settled far object.
    fn is_promise(&self) -> bool {
        false
    }

    /// Settles `resolver` with this promise's eventual value. Called only
    /// when [`Remote::is_promise`] is true; the default breaks it.
    fn listen(&self, resolver: Resolver) {
        resolver.break_now(error("not a promise"));
    }

    /// How to make this reference again after a restart, if it can be:
    /// plain data (no references) that the enlivener of a persistent vat
    /// ([`crate::persist::Kinds::set_enlivener`]) turns back into a
    /// reference, such as a sturdyref's URI. Only far references with a
    /// recipe can be held by persistent objects; the default has none.
    fn recipe(&self) -> Option<Val> {
        None
    }
}

static NEXT_REMOTE_KEY: AtomicU64 = AtomicU64::new(1);
/// The key space of [`Ref::remote_keyed`] (addresses with the top bit set;
/// the counter of [`Ref::remote`] never gets there).
const KEYED_REMOTE: u64 = 1 << 63;

pub(crate) struct RemoteSlot {
    pub(crate) key: u64,
    pub(crate) target: Arc<dyn Remote>,
}

/// A reference (capability): the `R` of [`Val`].
///
/// What kind of reference it is depends on who looks ([`Ref::kind_from`]):
/// an object in the observer's own vat is *near* (callable synchronously),
/// one in another vat or behind a [`Remote`] is *far*; promises and broken
/// refs are what they are everywhere.
#[derive(Clone)]
pub struct Ref(pub(crate) RefInner);

#[derive(Clone)]
pub(crate) enum RefInner {
    Object(Arc<Slot>),
    Promise(Arc<Slot>),
    Remote(Arc<RemoteSlot>),
    Broken(Arc<Val>),
}

/// The kind of a reference as seen from one vat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefKind {
    /// An object in the observer's vat.
    Near,
    /// A settled object in another vat or behind a [`Remote`].
    Far,
    /// An unsettled (or forwarded) promise, local or remote.
    Promise,
    /// A broken reference: every message to it breaks.
    Broken,
}

impl Ref {
    /// A broken reference with this reason.
    pub fn broken(reason: Val) -> Ref {
        Ref(RefInner::Broken(Arc::new(reason)))
    }

    /// A far reference to a target reached through `remote` (a CapTP import,
    /// for example). Each call makes a new identity: a session should wrap
    /// each import once and reuse the `Ref`, or use [`Ref::remote_keyed`].
    pub fn remote(remote: Arc<dyn Remote>) -> Ref {
        Ref(RefInner::Remote(Arc::new(RemoteSlot {
            key: NEXT_REMOTE_KEY.fetch_add(1, AtomicOrdering::Relaxed),
            target: remote,
        })))
    }

    /// A far reference whose identity is the `remote` itself: every call
    /// with the same `Arc` (pointer-equal) gives an equal `Ref` (same
    /// `Eq`, `Ord` and `Hash`), so a session that hands out one `Remote`
    /// per import gets equal refs for the same import received twice.
    /// Keyed refs never equal refs made by [`Ref::remote`]. The key stays
    /// unique for as long as any such ref lives (each holds the `Arc`, so
    /// the allocation cannot be reused meanwhile).
    pub fn remote_keyed(remote: Arc<dyn Remote>) -> Ref {
        let addr = Arc::as_ptr(&remote).cast::<()>().addr() as u64;
        Ref(RefInner::Remote(Arc::new(RemoteSlot {
            key: KEYED_REMOTE | addr,
            target: remote,
        })))
    }

    /// The kind of this reference as seen from vat `observer`.
    pub fn kind_from(&self, observer: VatId) -> RefKind {
        match &self.0 {
            RefInner::Object(s) if s.vat.id == observer => RefKind::Near,
            RefInner::Object(_) => RefKind::Far,
            RefInner::Promise(_) => RefKind::Promise,
            RefInner::Remote(r) if r.target.is_promise() => RefKind::Promise,
            RefInner::Remote(_) => RefKind::Far,
            RefInner::Broken(_) => RefKind::Broken,
        }
    }

    /// The vat that owns this object or promise, if it lives in a vat of
    /// this process.
    pub fn vat_id(&self) -> Option<VatId> {
        match &self.0 {
            RefInner::Object(s) | RefInner::Promise(s) => Some(s.vat.id),
            _ => None,
        }
    }

    /// Whether this is a promise (local or remote).
    pub fn is_promise(&self) -> bool {
        match &self.0 {
            RefInner::Promise(_) => true,
            RefInner::Remote(r) => r.target.is_promise(),
            _ => false,
        }
    }

    /// The reason, if this reference is broken.
    pub fn broken_reason(&self) -> Option<&Val> {
        match &self.0 {
            RefInner::Broken(e) => Some(e),
            _ => None,
        }
    }

    /// The remote target, if this is a ref made by [`Ref::remote`].
    pub fn remote_target(&self) -> Option<&Arc<dyn Remote>> {
        match &self.0 {
            RefInner::Remote(r) => Some(&r.target),
            _ => None,
        }
    }

    fn rank(&self) -> u8 {
        match &self.0 {
            RefInner::Object(_) => 0,
            RefInner::Promise(_) => 1,
            RefInner::Remote(_) => 2,
            RefInner::Broken(_) => 3,
        }
    }
}

impl PartialEq for Ref {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Ref {}

impl PartialOrd for Ref {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Ref {
    fn cmp(&self, other: &Self) -> Ordering {
        match (&self.0, &other.0) {
            (RefInner::Object(a), RefInner::Object(b))
            | (RefInner::Promise(a), RefInner::Promise(b)) => {
                (a.vat.id, a.id).cmp(&(b.vat.id, b.id))
            }
            (RefInner::Remote(a), RefInner::Remote(b)) => a.key.cmp(&b.key),
            (RefInner::Broken(a), RefInner::Broken(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl Hash for Ref {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.rank().hash(state);
        match &self.0 {
            RefInner::Object(s) | RefInner::Promise(s) => {
                s.vat.id.hash(state);
                s.id.hash(state);
            }
            RefInner::Remote(r) => r.key.hash(state),
            RefInner::Broken(e) => e.hash(state),
        }
    }
}

impl fmt::Debug for Ref {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            RefInner::Object(s) => write!(f, "Object({}#{})", s.vat.id, s.id),
            RefInner::Promise(s) => write!(f, "Promise({}#{})", s.vat.id, s.id),
            RefInner::Remote(r) => write!(f, "Remote(#{})", r.key),
            RefInner::Broken(e) => write!(f, "Broken({e:?})"),
        }
    }
}

type ForeignFn = Box<dyn FnOnce(Outcome) + Send>;

/// The right to settle one promise: fulfil it with a value or break it.
///
/// Cloning shares the right; the first settlement wins and later ones are
/// ignored. Inside a turn settle through [`crate::Turn::resolve`] (staged,
/// dropped if the turn fails); from outside any turn (a session driver, a
/// test) use [`Resolver::settle_now`].
#[derive(Clone)]
pub struct Resolver(pub(crate) ResolverInner);

#[derive(Clone)]
pub(crate) enum ResolverInner {
    Promise(Arc<Slot>),
    Foreign(Arc<Mutex<Option<ForeignFn>>>),
}

impl Resolver {
    /// A resolver that calls `f` with the settled outcome (once). This is
    /// how foreign code (a CapTP session driver, a test) gets answers out of
    /// a vat: pass it to [`crate::Vat::deliver`]. `f` runs on a vat's
    /// thread, outside any turn, and must not block for long.
    pub fn from_fn(f: impl FnOnce(Outcome) + Send + 'static) -> Resolver {
        Resolver(ResolverInner::Foreign(Arc::new(Mutex::new(Some(
            Box::new(f),
        )))))
    }

    /// Settles now, from outside any turn. Called inside a turn (an object
    /// holding a resolver) it settles a vat promise only if the turn commits,
    /// like [`crate::Turn::settle`] (a foreign resolver's function, though,
    /// runs at once).
    pub fn settle_now(&self, outcome: Outcome) {
        match &self.0 {
            ResolverInner::Promise(slot) => slot.vat.post(Event::Resolve {
                slot: slot.clone(),
                outcome,
            }),
            ResolverInner::Foreign(f) => {
                let f = f.lock().unwrap_or_else(|p| p.into_inner()).take();
                if let Some(f) = f {
                    // A panicking callback must not take the vat down.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(outcome)));
                }
            }
        }
    }

    /// Fulfils now (see [`Resolver::settle_now`]).
    pub fn resolve_now(&self, value: Val) {
        self.settle_now(Ok(value));
    }

    /// Breaks now (see [`Resolver::settle_now`]).
    pub fn break_now(&self, reason: Val) {
        self.settle_now(Err(reason));
    }
}

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            ResolverInner::Promise(s) => write!(f, "Resolver({}#{})", s.vat.id, s.id),
            ResolverInner::Foreign(_) => write!(f, "Resolver(foreign)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Nowhere;
    impl Remote for Nowhere {
        fn deliver(&self, _m: Message, r: Option<Resolver>) {
            if let Some(r) = r {
                r.break_now(error("nowhere"));
            }
        }
    }

    #[test]
    fn broken_refs_compare_by_reason_remote_refs_by_identity() {
        assert_eq!(Ref::broken(error("a")), Ref::broken(error("a")));
        assert_ne!(Ref::broken(error("a")), Ref::broken(error("b")));
        let target: Arc<dyn Remote> = Arc::new(Nowhere);
        let r1 = Ref::remote(target.clone());
        let r2 = Ref::remote(target);
        assert_ne!(r1, r2, "each wrap is a new identity");
        assert_eq!(r1, r1.clone());
        // Ordering is total and consistent across kinds.
        assert!(r1 < Ref::broken(error("a")));
        assert_eq!(r1.cmp(&r2), r2.cmp(&r1).reverse());
    }

    #[test]
    fn remote_kinds_and_error_text() {
        let r = Ref::remote(Arc::new(Nowhere));
        assert_eq!(r.kind_from(VatId(1)), RefKind::Far);
        assert!(!r.is_promise());
        assert_eq!(r.vat_id(), None);
        let any: &dyn Any = &**r.remote_target().unwrap_or_else(|| panic!("remote"));
        assert!(any.downcast_ref::<Nowhere>().is_some());
        assert_eq!(error_message(&error("x")), Some("x"));
        assert_eq!(error_message(&Val::str("x")), None);
        assert_eq!(Ref::broken(error("y")).kind_from(VatId(1)), RefKind::Broken);
    }
}
