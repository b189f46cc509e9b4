//! The vat: one thread, one event loop, one object table, one promise table.
//!
//! Invariants (upheld by the event loop in this module):
//! - Only the vat's own thread touches its tables; other threads talk to it
//!   only by posting [`Event`]s to its inbox (one lock per batch).
//! - Events are processed one at a time, to completion, in arrival order.
//! - A failed turn's delta is dropped before anything in it is applied.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::thread::{JoinHandle, Thread};
use std::time::Duration;

use crate::backend::{Backend, BackendError, Batch};
use crate::persist::{Kinds, MAX_OBJECT_ID, StoredRef, decode_record, encode_record, unescape};
use crate::refs::Remote;
use crate::refs::{
    Message, Outcome, Ref, RefInner, Resolver, ResolverInner, Slot, Val, VatId, error,
};
use crate::settle::{Settled, WaitError, settled};
use crate::turn::{Callback, Delta, Entry, Listener, Object, Turn, Work};

/// Forwarding hops after which a message or listener is assumed to be in a
/// promise cycle and is broken.
const MAX_HOPS: u32 = 100_000;
/// Turns between flushes of the outbox and checks of the inbox (and
/// [`Driver::poll_now`] calls) while the vat stays busy (fairness and
/// batching).
pub const BATCH: u32 = 128;
/// Default most events waiting in a vat's own queue, and most messages
/// waiting on one of its pending promises, before a send made by one of
/// its turns is refused ([`Vat::set_queue_limit`]).
pub const DEFAULT_QUEUE_LIMIT: usize = 1 << 20;

/// A post to a vat, held back until the turn that made it commits.
type StagedPost = (Arc<VatShared>, Event);

/// Work a vat's thread does beside its turns: the one seam through which
/// a driver (a session driver that owns sockets, say) runs on that thread.
///
/// The vat calls an attached driver ([`Vat::attach`]) outside any turn, at
/// three moments:
/// - [`on_idle`](Driver::on_idle) when it has run out of events, before
///   it sleeps, and once more when it shuts down: the work queued for the
///   vat's thread (a session driver encodes and writes the sends its far
///   references queued while the vat ran them);
/// - [`poll_now`](Driver::poll_now) every [`BATCH`] events while it stays
///   busy, so a vat that never runs out of work still does that work and
///   still hears its sockets;
/// - [`wait`](Driver::wait) to sleep, on the one driver it sleeps in.
///
/// By default an idle vat parks its thread and a post to its inbox unparks
/// it. A driver attached with a [`Wake`] becomes the one the vat sleeps
/// in: the thread then sleeps in its `wait` (say, in `epoll` on its
/// sockets), it handles what arrives on the same thread (posting
/// deliveries to the vat without waking anyone), and another thread's post
/// wakes it with that `Wake`: one thread wake-up per incoming message
/// instead of two.
///
/// Several drivers may attach to one vat (several peers serving one vat):
/// all of them get `on_idle` and `poll_now`, the one the vat sleeps in
/// first, then the others in the order they attached; at most one is the
/// one the vat sleeps in (the first attached with a `Wake`; a later one
/// asking for that is given back by [`Vat::attach`]).
///
/// What a driver posts to its own vat is queued without waking anyone and
/// processed right after the driver returns. A driver whose `on_idle`
/// returns `false`, or that panics in any of its methods, is detached and
/// dropped on the vat's thread; if it was the one the vat slept in, the
/// vat parks again and another driver may take that place. Drivers are
/// dropped on the vat's thread when the vat stops, after their last
/// `on_idle`. A driver must not block for long outside `wait`: the vat
/// runs no turn meanwhile.
pub trait Driver: Send + 'static {
    /// The vat has run out of events and is about to sleep (or is shutting
    /// down): do the work queued for its thread. `false` detaches this
    /// driver (it is dropped).
    fn on_idle(&mut self) -> bool;

    /// The vat stays busy and gives the driver a moment, every [`BATCH`]
    /// events: do a little of what `on_idle` and `wait` would do, without
    /// blocking. `backlog` is how many events are queued: a driver should
    /// take in the less the longer it is (what it takes only piles up, and
    /// what it leaves pushes back on whoever sends it). The default does
    /// nothing.
    fn poll_now(&mut self, backlog: usize) {
        let _ = backlog;
    }

    /// Called only on the driver the vat sleeps in (attached with a
    /// [`Wake`]): blocks until that `Wake` is called, or until it has done
    /// work that may have posted to the vat. Returning early is fine (the
    /// vat checks its inbox and calls again). The default returns at once,
    /// so a driver attached with a `Wake` must provide it.
    fn wait(&mut self) {}
}

/// Wakes a vat sleeping in its [`Driver::wait`]; called by whichever
/// thread posts to a sleeping vat.
pub type Wake = Arc<dyn Fn() + Send + Sync>;

thread_local! {
    /// Posts made from inside the turn running on this thread, if any.
    static STAGED: RefCell<Option<Vec<StagedPost>>> = const { RefCell::new(None) };
    /// Whether this thread runs a vat.
    static VAT_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

static NEXT_VAT: AtomicU64 = AtomicU64::new(1);

/// Sequential ids hash well by multiplication; std's SipHash is needless here.
#[derive(Default)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

pub(crate) type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;

pub(crate) struct ObjectEntry {
    pub(crate) slot: Arc<Slot>,
    pub(crate) behaviour: Rc<dyn Object>,
}

pub(crate) type ObjectTable = IdMap<ObjectEntry>;

/// What a vat's thread is asked to do.
pub(crate) enum Event {
    Deliver {
        target: Ref,
        msg: Message,
        resolver: Option<Resolver>,
        hops: u32,
    },
    Spawn {
        slot: Arc<Slot>,
        object: Box<dyn Object>,
    },
    NewPromise {
        slot: Arc<Slot>,
    },
    Resolve {
        slot: Arc<Slot>,
        outcome: Outcome,
    },
    Listen {
        slot: Arc<Slot>,
        resolver: Resolver,
        hops: u32,
    },
    Callback {
        cb: Callback,
        outcome: Outcome,
        result: Resolver,
        me: Option<Arc<Slot>>,
    },
    Run {
        f: Box<dyn for<'t> FnOnce(&mut Turn<'t>) -> Outcome + Send>,
        result: Option<Resolver>,
    },
    Attach {
        driver: Box<dyn Driver>,
        /// Set if the driver is the one the vat sleeps in.
        wake: Option<Wake>,
    },
    Collect {
        migrate: bool,
        reply: std::sync::mpsc::Sender<Result<Collected, String>>,
    },
    /// Sweep the tables once the vat is idle (see [`Vat::sweep_when_idle`]).
    Sweep,
    /// The writer finished a batch.
    Written,
    Stop,
}

/// What [`Vat::collect`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Collected {
    /// Objects in the store before.
    pub stored: u64,
    /// Objects reachable from the roots or from a live reference (kept).
    pub kept: u64,
    /// Unreachable objects deleted.
    pub deleted: u64,
    /// Kept objects rewritten by the current version of their kind.
    pub migrated: u64,
    /// Kept objects of an older version whose migration failed (their old
    /// record is left as it was).
    pub not_migrated: u64,
}

impl Event {
    /// The resolver that must hear about it if this event is never
    /// processed.
    fn abandon(self, reason: &Val) {
        let r = match self {
            // A promise of another vat waiting on this one hears that it
            // broke (the breakage reveals nothing not yet durable).
            Event::Resolve { slot, .. } => {
                let vat = slot.vat.clone();
                vat.post(Event::Resolve {
                    slot,
                    outcome: Err(reason.clone()),
                });
                None
            }
            Event::Deliver { resolver, .. } => resolver,
            Event::Listen { resolver, .. } => Some(resolver),
            Event::Callback { result, .. } => Some(result),
            Event::Run { result, .. } => result,
            _ => None,
        };
        if let Some(r) = r {
            r.break_now(reason.clone());
        }
    }
}

#[derive(Default)]
struct Inbox {
    events: Vec<Event>,
    closed: bool,
}

/// The part of a vat other threads see.
pub(crate) struct VatShared {
    pub(crate) id: VatId,
    name: String,
    next_id: AtomicU64,
    inbox: Mutex<Inbox>,
    has_mail: AtomicBool,
    sleeping: AtomicBool,
    thread: OnceLock<Thread>,
    join: Mutex<Option<JoinHandle<()>>>,
    /// Whether a driver holds (or is on its way to) the place the vat
    /// sleeps in ([`Vat::attach`] with a [`Wake`]); released when it goes.
    sleeper_claimed: AtomicBool,
    /// How to wake the vat's thread while it sleeps in its driver; set and
    /// cleared on the vat's thread while it is awake, so a poster that sees
    /// `sleeping` also sees which way to wake it (`None`: unpark).
    wake: Mutex<Option<Wake>>,
    /// Whether the vat keeps its persistent objects in a [`Backend`].
    persistent: bool,
    /// The slot of every persistent object that is alive in memory (made
    /// or revived), so that every reference to a stored object shares one
    /// slot (the vat's collection counts on that).
    slots: Mutex<IdMap<Weak<Slot>>>,
    /// The vat's roots: name → object id.
    roots: Mutex<BTreeMap<String, u64>>,
    /// Why the vat stopped, if its store failed.
    storage_error: Mutex<Option<String>>,
    /// See [`Vat::set_queue_limit`].
    queue_limit: std::sync::atomic::AtomicUsize,
}

impl VatShared {
    pub(crate) fn alloc_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// The one slot of persistent object `id` (made if none is alive).
    /// The id counter moves past `id`, so an id read from a store (which
    /// may be damaged or hostile) never names an object made later.
    pub(crate) fn slot_for(self: &Arc<Self>, id: u64) -> Arc<Slot> {
        self.next_id
            .fetch_max(id.saturating_add(1), Ordering::Relaxed);
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = slots.get(&id).and_then(Weak::upgrade) {
            return s;
        }
        let s = Arc::new(Slot {
            vat: self.clone(),
            id,
        });
        slots.insert(id, Arc::downgrade(&s));
        s
    }

    /// Makes `slot` the one slot of its persistent object, unless one is
    /// alive already.
    pub(crate) fn adopt(&self, slot: &Arc<Slot>) {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        if slots.get(&slot.id).is_none_or(|w| w.strong_count() == 0) {
            slots.insert(slot.id, Arc::downgrade(slot));
        }
    }

    /// Why what reaches a stopped vat breaks.
    fn stop_reason(&self) -> Val {
        let failed = self
            .storage_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some();
        error(if failed {
            "vat stopped: its store failed"
        } else {
            "vat shut down"
        })
    }

    /// Whether `id` is a persistent object alive in memory.
    fn is_persistent_object(&self, id: u64) -> bool {
        self.slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .is_some_and(|w| w.strong_count() > 0)
    }

    /// Posts one event. Inside a turn on a vat thread (an object using a
    /// `Vat` handle or `Resolver::settle_now`), the post is staged with the
    /// turn instead, and happens only if the turn commits.
    pub(crate) fn post(self: &Arc<Self>, event: Event) {
        let event = STAGED.with(|staged| match staged.borrow_mut().as_mut() {
            Some(list) => {
                list.push((self.clone(), event));
                None
            }
            None => Some(event),
        });
        if let Some(event) = event {
            self.post_batch(vec![event]);
        }
    }

    pub(crate) fn post_batch(&self, events: Vec<Event>) {
        let mut inbox = self.inbox.lock().unwrap_or_else(|p| p.into_inner());
        if inbox.closed {
            drop(inbox);
            let reason = self.stop_reason();
            for e in events {
                match e {
                    // A resolution of this (stopped) vat's own promise:
                    // nothing can hear it any more. Abandoning it would post
                    // it back here, again and again (a stack overflow seen
                    // when a peer's resolution raced a vat's shutdown).
                    Event::Resolve { ref slot, .. }
                        if std::ptr::eq(Arc::as_ptr(&slot.vat), self) => {}
                    e => e.abandon(&reason),
                }
            }
            return;
        }
        if inbox.events.is_empty() {
            inbox.events = events;
        } else {
            inbox.events.extend(events);
        }
        self.has_mail.store(true, Ordering::SeqCst);
        drop(inbox);
        if self.sleeping.swap(false, Ordering::SeqCst) {
            let wake = self.wake.lock().unwrap_or_else(|p| p.into_inner()).clone();
            if let Some(wake) = wake {
                wake();
            } else if let Some(t) = self.thread.get() {
                t.unpark();
            }
        }
    }
}

/// A handle to a vat: `Send + Clone`, usable from any thread.
///
/// Each vat runs on its own thread and owns its objects; vats share no
/// mutable state and talk only through eventual sends. An object may hold a
/// `Vat` handle; what it posts through it from inside a turn is staged with
/// that turn (posted only if the turn commits). Stop a vat with
/// [`Vat::shutdown`] (dropping handles does not stop it: refs to its objects
/// may still be held elsewhere).
#[derive(Clone)]
pub struct Vat {
    shared: Arc<VatShared>,
}

impl std::fmt::Debug for Vat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Vat({} {:?})", self.shared.id, self.shared.name)
    }
}

impl Vat {
    /// Starts a new vat on its own thread.
    ///
    /// # Panics
    /// If the OS refuses to start a thread (see [`Vat::try_new`]).
    pub fn new(name: &str) -> Vat {
        match Vat::try_new(name) {
            Ok(v) => v,
            Err(e) => panic!("failed to start a vat thread: {e}"),
        }
    }

    /// Starts a new vat on its own thread.
    ///
    /// # Errors
    /// If the OS refuses to start a thread.
    pub fn try_new(name: &str) -> std::io::Result<Vat> {
        Vat::start(name, None, 1, BTreeMap::new())
    }

    /// Starts a persistent vat whose objects live in `backend`: its
    /// persistent objects (those whose behaviour has a
    /// [`portrait`](Object::portrait)) and its roots survive restarts, and
    /// stored objects are revived from their portraits by `kinds` the
    /// first time they are used. Effects that leave the vat (answers,
    /// messages to other vats and peers) are released only once the turns
    /// that caused them are durable, and the turns since the last write go
    /// to the store as one batch (see the crate docs on persistence).
    ///
    /// # Errors
    /// The backend cannot open its namespace, or the OS refuses a thread.
    pub fn open(name: &str, mut backend: impl Backend, kinds: Kinds) -> Result<Vat, OpenError> {
        let opened = backend.open().map_err(OpenError::Store)?;
        // A damaged or hostile store must not make new objects reuse the
        // ids of stored ones, nor exhaust the id space.
        let highest = opened.roots.values().copied().max().unwrap_or(0);
        if highest >= MAX_OBJECT_ID || opened.next_id > MAX_OBJECT_ID {
            return Err(OpenError::Store(BackendError(
                "the store's object ids are out of range (damaged?)".into(),
            )));
        }
        let next_id = opened.next_id.max(highest + 1);
        let persist = Persist {
            backend: Arc::new(Mutex::new(Box::new(backend))),
            kinds,
            pending: IdMap::default(),
            roots: Vec::new(),
            in_flight: None,
            writer: None,
        };
        Vat::start(name, Some(persist), next_id, opened.roots).map_err(OpenError::Thread)
    }

    fn start(
        name: &str,
        persist: Option<Persist>,
        next_id: u64,
        roots: BTreeMap<String, u64>,
    ) -> std::io::Result<Vat> {
        let id = VatId(NEXT_VAT.fetch_add(1, Ordering::Relaxed));
        let shared = Arc::new(VatShared {
            id,
            name: name.to_owned(),
            next_id: AtomicU64::new(next_id),
            inbox: Mutex::new(Inbox::default()),
            has_mail: AtomicBool::new(false),
            sleeping: AtomicBool::new(false),
            thread: OnceLock::new(),
            join: Mutex::new(None),
            sleeper_claimed: AtomicBool::new(false),
            wake: Mutex::new(None),
            persistent: persist.is_some(),
            slots: Mutex::new(IdMap::default()),
            roots: Mutex::new(roots),
            storage_error: Mutex::new(None),
            queue_limit: std::sync::atomic::AtomicUsize::new(DEFAULT_QUEUE_LIMIT),
        });
        let mut persist = persist;
        if let Some(p) = &mut persist {
            p.writer = Some(Writer::spawn(p.backend.clone(), &shared)?);
        }
        let for_thread = shared.clone();
        let handle = std::thread::Builder::new()
            .name(format!("vat-{name}"))
            .spawn(move || {
                let _ = for_thread.thread.set(std::thread::current());
                VAT_THREAD.with(|v| v.set(true));
                VatCore::new(for_thread, persist).run();
            })?;
        let _ = shared.thread.set(handle.thread().clone());
        *shared.join.lock().unwrap_or_else(|p| p.into_inner()) = Some(handle);
        Ok(Vat { shared })
    }

    /// Whether this vat keeps its objects in a store ([`Vat::open`]).
    pub fn is_persistent(&self) -> bool {
        self.shared.persistent
    }

    /// The object named `name` among this persistent vat's roots (set with
    /// [`Turn::set_root`]); revived when first used.
    pub fn root(&self, name: &str) -> Option<Ref> {
        let id = *self
            .shared
            .roots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)?;
        Some(Ref(RefInner::Object(self.shared.slot_for(id))))
    }

    /// The names of this vat's roots, in order.
    pub fn root_names(&self) -> Vec<String> {
        self.shared
            .roots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect()
    }

    /// Why this vat stopped, if its store failed: a persistent vat whose
    /// write fails breaks every effect the lost turns would have released
    /// and stops (its memory is then ahead of its store).
    pub fn storage_error(&self) -> Option<String> {
        self.shared
            .storage_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// This vat's id.
    pub fn id(&self) -> VatId {
        self.shared.id
    }

    /// This vat's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The id of the thread this vat runs on.
    pub fn thread_id(&self) -> Option<std::thread::ThreadId> {
        self.shared.thread.get().map(Thread::id)
    }

    /// Attaches `driver`: from the next time the vat looks for work, its
    /// thread runs the driver beside its turns (see [`Driver`]). With
    /// `wake`, the driver asks to be the one the vat sleeps in, woken by
    /// `wake` when another thread posts to it; if another attached driver
    /// holds that place, `driver` is given back unattached (`Err`), and the
    /// caller may attach it without a `Wake`. Without one, it always
    /// attaches.
    ///
    /// This is how a session driver works on the vat's own thread (see the
    /// crate docs on the `Remote` seam): a [`Remote`] called by the vat
    /// queues its command without waking another thread, and the driver
    /// processes the queue (encoding, writing to the network) in
    /// `on_idle` before the vat sleeps, then sleeps in `epoll` on its
    /// sockets and reads them in `wait`.
    ///
    /// # Errors
    /// `driver`, given back, when it asked for a `wake` and another
    /// driver is the one the vat sleeps in.
    ///
    /// [`Remote`]: crate::Remote
    pub fn attach<D: Driver>(&self, driver: D, wake: Option<Wake>) -> Result<(), D> {
        if wake.is_some() && self.shared.sleeper_claimed.swap(true, Ordering::SeqCst) {
            return Err(driver);
        }
        self.shared.post(Event::Attach {
            driver: Box::new(driver),
            wake,
        });
        Ok(())
    }

    /// Moves `object` into this vat and returns a reference to it. Messages
    /// sent to the ref after this call are delivered after it exists.
    pub fn spawn(&self, object: impl Object) -> Ref {
        let slot = Slot::new(&self.shared);
        self.shared.post(Event::Spawn {
            slot: slot.clone(),
            object: Box::new(object),
        });
        Ref(RefInner::Object(slot))
    }

    /// A promise owned by this vat, with its resolver, for code outside any
    /// vat (inside a turn, prefer [`Turn::promise`]).
    ///
    /// Usable at once from anywhere: called inside a turn (of this or any
    /// vat), its creation is staged with the turn like any other post, and
    /// the vat creates the promise on first use if a message, listener or
    /// settlement reaches it before that (so sends to it queue, and its
    /// resolver works, even within the same turn). If the turn fails, the
    /// promise is never created and messages to it are dropped with the
    /// turn, like every other effect.
    pub fn promise(&self) -> (Ref, Resolver) {
        let slot = Slot::new(&self.shared);
        self.shared.post(Event::NewPromise { slot: slot.clone() });
        (
            Ref(RefInner::Promise(slot.clone())),
            Resolver(ResolverInner::Promise(slot)),
        )
    }

    /// Eventual send from outside any vat, routed through this vat (which
    /// owns the answer promise).
    pub fn send(
        &self,
        target: &Ref,
        method: impl Into<std::borrow::Cow<'static, str>>,
        args: Vec<Val>,
    ) -> Ref {
        let (answer, resolver) = self.promise();
        self.deliver(target, Message::new(method, args), Some(resolver));
        answer
    }

    /// Eventual send without an answer, from outside any vat.
    pub fn send_only(
        &self,
        target: &Ref,
        method: impl Into<std::borrow::Cow<'static, str>>,
        args: Vec<Val>,
    ) {
        self.deliver(target, Message::new(method, args), None);
    }

    /// Injects a delivery into this vat, as a session driver does for an
    /// incoming `op:deliver`: `msg` goes to `target` (normally a ref of this
    /// vat the session exported) in a later turn, and `resolver` (for
    /// example [`Resolver::from_fn`]) is settled with the answer.
    pub fn deliver(&self, target: &Ref, msg: Message, resolver: Option<Resolver>) {
        self.shared.post(Event::Deliver {
            target: target.clone(),
            msg,
            resolver,
            hops: 0,
        });
    }

    /// Runs `f` as a turn of this vat (transactional like any other) and
    /// returns a promise for its outcome.
    pub fn run<F>(&self, f: F) -> Ref
    where
        F: for<'t> FnOnce(&mut Turn<'t>) -> Outcome + Send + 'static,
    {
        let (answer, resolver) = self.promise();
        self.shared.post(Event::Run {
            f: Box::new(f),
            result: Some(resolver),
        });
        answer
    }

    /// Waits (blocking this thread, at most `timeout`) for `target` to
    /// settle. Must not be called on a vat's own thread.
    ///
    /// # Errors
    /// [`WaitError::Broken`] with the reason, or a timeout.
    pub fn block_on(&self, target: &Ref, timeout: Duration) -> Result<Val, WaitError> {
        settled(target).wait(timeout)
    }

    /// A handle to wait on `target`'s settlement (see [`Settled`]).
    pub fn settled(&self, target: &Ref) -> Settled {
        settled(target)
    }

    /// Collects the vat's store: deletes every stored object that neither a
    /// root, nor a reference alive in memory, nor a kept object's record
    /// refers to; with `migrate`, also rewrites every kept object stored
    /// by an older version of its kind (eager migration; an object whose
    /// migration fails keeps its old record). Runs on the vat's thread
    /// between turns, after writing what is pending; waits at most
    /// `timeout`. Not on the vat's own thread.
    ///
    /// A stored object that cannot be read stops the collection before
    /// anything is deleted (it might refer to anything).
    ///
    /// # Errors
    /// The vat is not persistent or stopped, a record is unreadable, the
    /// store failed, or the time ran out.
    pub fn collect(&self, migrate: bool, timeout: Duration) -> Result<Collected, String> {
        let (reply, answer) = std::sync::mpsc::channel();
        self.shared.post(Event::Collect { migrate, reply });
        match answer.recv_timeout(timeout) {
            Ok(r) => r,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                Err("the collection did not finish in time".into())
            }
            Err(_) => Err("the vat stopped".into()),
        }
    }

    /// Asks the vat to drop what nothing can reach any more (objects, and
    /// promises with their values) the next time it runs out of work, even
    /// if it did little since its last sweep; wakes it if it sleeps.
    ///
    /// A vat otherwise sweeps when the work since the last sweep makes the
    /// sweep cheap by comparison, so a big vat that just lost many
    /// references at once (a CapTP session that ended, leaving the answers
    /// it held unreachable) would keep their memory until it had done
    /// enough other work; a driver asks for a sweep then. Requests made
    /// before the vat gets to sweep are one sweep.
    pub fn sweep_when_idle(&self) {
        self.shared.post(Event::Sweep);
    }

    /// Bounds the vat's queue: once `limit` events wait in it, a message
    /// routed to an object of this vat by one of its own turns (or
    /// forwarded there from a promise that resolved) is refused, and so is
    /// any message to a pending promise of this vat that already holds
    /// `limit` of them: its answer breaks with "vat queue full", and a
    /// message sent without an answer is dropped. One object sending to
    /// itself (or to its neighbours) without end thus costs a bounded
    /// queue, and the vat keeps serving everyone else in turn. Messages
    /// posted from outside to an object are not refused here: their
    /// senders are held back by their own means (the network's
    /// backpressure). Default [`DEFAULT_QUEUE_LIMIT`]; at least 1.
    pub fn set_queue_limit(&self, limit: usize) {
        self.shared
            .queue_limit
            .store(limit.max(1), Ordering::Relaxed);
    }

    /// Stops the vat after the events already posted, breaks every promise
    /// still waiting on it ("vat shut down") and joins its thread.
    /// Idempotent; from the vat's own thread it only asks it to stop.
    pub fn shutdown(&self) {
        self.shared.post(Event::Stop);
        let on_own_thread = self
            .shared
            .thread
            .get()
            .is_some_and(|t| t.id() == std::thread::current().id());
        if on_own_thread {
            return;
        }
        let handle = self
            .shared
            .join
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}

/// Why [`Vat::open`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The backend could not open the vat's namespace.
    #[error("opening the vat's store: {0}")]
    Store(BackendError),
    /// The OS refused a thread.
    #[error("starting the vat's thread: {0}")]
    Thread(std::io::Error),
}

/// A persistent vat's store and what it has not written yet.
pub(crate) struct Persist {
    /// Shared with the writer thread, which holds it while it writes.
    backend: Arc<Mutex<Box<dyn Backend>>>,
    kinds: Kinds,
    /// Records of objects changed since the last write (id → record).
    pending: IdMap<Vec<u8>>,
    /// Roots changed since the last write, in order.
    roots: Vec<(String, Option<u64>)>,
    /// The batch the writer is writing (read by revival until it is in
    /// the store).
    in_flight: Option<Arc<Batch>>,
    /// The writer thread, once the vat runs.
    writer: Option<Writer>,
}

/// The thread that writes a persistent vat's batches, so that the vat
/// runs turns while a batch is made durable (its effects stay held until
/// then). One batch at a time, in order.
struct Writer {
    jobs: Option<std::sync::mpsc::Sender<Arc<Batch>>>,
    done: std::sync::mpsc::Receiver<Result<(), BackendError>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    /// Starts the writer of `backend` for the vat `shared` (woken with
    /// [`Event::Written`] after each batch).
    fn spawn(
        backend: Arc<Mutex<Box<dyn Backend>>>,
        shared: &Arc<VatShared>,
    ) -> std::io::Result<Writer> {
        let (jobs, rx) = std::sync::mpsc::channel::<Arc<Batch>>();
        let (tx, done) = std::sync::mpsc::channel();
        let vat = Arc::downgrade(shared);
        let thread = std::thread::Builder::new()
            .name(format!("vat-{}-writer", shared.name))
            .spawn(move || {
                for batch in rx {
                    // A panicking backend is a failed write, never a
                    // batch left unanswered.
                    let written = catch_unwind(AssertUnwindSafe(|| {
                        backend
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .write(&batch)
                    }))
                    .unwrap_or_else(|_| Err(BackendError("the store's write panicked".into())));
                    if tx.send(written).is_err() {
                        break;
                    }
                    match vat.upgrade() {
                        Some(v) => v.post(Event::Written),
                        None => break,
                    }
                }
            })?;
        Ok(Writer {
            jobs: Some(jobs),
            done,
            thread: Some(thread),
        })
    }

    /// Hands `batch` to the thread.
    fn send(&self, batch: Arc<Batch>) -> bool {
        self.jobs.as_ref().is_some_and(|j| j.send(batch).is_ok())
    }
}

impl Drop for Writer {
    /// Stops the thread and waits for it, so that the backend (which it
    /// shares) is released when the vat is gone: a store can be reopened
    /// or closed right after `Vat::shutdown`.
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Effects waiting for the batch being written.
struct InFlight {
    held: Vec<Held>,
    outbox: Vec<(Arc<VatShared>, Vec<Event>)>,
}

/// Most records pending while a batch is being written before the vat
/// waits for the writer (bounds memory when the disk is slower than the
/// turns).
const MAX_PENDING: usize = 1 << 16;

impl Persist {
    /// Rebuilds stored object `id` from its record (`None`: not stored).
    ///
    /// # Errors
    /// A record that cannot be read or revived (the reason says why, with
    /// no host detail).
    pub(crate) fn revive(
        &mut self,
        shared: &Arc<VatShared>,
        id: u64,
    ) -> Result<Option<Rc<dyn Object>>, Val> {
        let in_flight = self
            .in_flight
            .as_ref()
            .and_then(|b| b.objects.iter().rev().find(|(i, _)| *i == id));
        let bytes = match self.pending.get(&id).or(in_flight.map(|(_, b)| b)) {
            Some(b) => b.clone(),
            None => match self
                .backend
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .load(id)
            {
                Ok(Some(b)) => b,
                Ok(None) => return Ok(None),
                Err(_) => return Err(error("cannot revive object: store unreadable")),
            },
        };
        let record = decode_record(&bytes)?;
        let kinds = &self.kinds;
        let state = unescape(
            record.state,
            &mut |id| Ref(RefInner::Object(shared.slot_for(id))),
            &mut |recipe| kinds.enliven(recipe),
        )?;
        let made = catch_unwind(AssertUnwindSafe(|| {
            kinds.make(&record.kind, record.version, state)
        }))
        .unwrap_or_else(|_| Err(error("cannot revive object: its maker panicked")))?;
        Ok(Some(Rc::from(made)))
    }

    fn is_dirty(&self) -> bool {
        !self.pending.is_empty() || !self.roots.is_empty()
    }
}

/// An effect that leaves the vat (in a persistent vat, held until the
/// turn that made it is durable).
enum Held {
    Deliver(Arc<dyn Remote>, Message, Option<Resolver>),
    Listen(Arc<dyn Remote>, Resolver),
    Settle(Resolver, Outcome),
}

impl Held {
    fn release(self) {
        // A panicking session or resolver must not take the vat down.
        let _ = catch_unwind(AssertUnwindSafe(|| match self {
            Held::Deliver(target, msg, resolver) => target.deliver(msg, resolver),
            Held::Listen(target, resolver) => target.listen(resolver),
            Held::Settle(resolver, outcome) => resolver.settle_now(outcome),
        }));
    }

    fn abandon(self, reason: &Val) {
        let resolver = match self {
            Held::Deliver(_, _, r) => r,
            Held::Listen(_, r) | Held::Settle(r, _) => Some(r),
        };
        if let Some(r) = resolver {
            r.break_now(reason.clone());
        }
    }
}

struct PromiseEntry {
    slot: Arc<Slot>,
    state: PromiseState,
}

enum PromiseState {
    Pending {
        queued: Vec<(Message, Option<Resolver>)>,
        listeners: Vec<Listener>,
    },
    Resolved(Outcome),
}

/// The vat's own state, living on its thread.
struct VatCore {
    shared: Arc<VatShared>,
    objects: ObjectTable,
    promises: IdMap<PromiseEntry>,
    queue: VecDeque<Event>,
    work: VecDeque<Work>,
    outbox: Vec<(Arc<VatShared>, Vec<Event>)>,
    /// Table inserts since the last sweep.
    inserts: usize,
    /// Table entries left by the last sweep.
    survivors: usize,
    /// Events handled since the last sweep.
    events: usize,
    /// A sweep was asked for ([`Vat::sweep_when_idle`]).
    sweep_asked: bool,
    /// The driver the thread sleeps in when idle (`None`: `thread::park`).
    sleeper: Option<Box<dyn Driver>>,
    /// The other attached drivers, in the order they attached.
    drivers: Vec<Box<dyn Driver>>,
    /// The store of a persistent vat.
    persist: Option<std::cell::RefCell<Persist>>,
    /// Effects leaving a persistent vat, waiting for their turns to be
    /// durable.
    held: Vec<Held>,
    /// The effects of the batch being written.
    in_flight: Option<InFlight>,
    /// Set when the store failed: the vat stops.
    halted: bool,
}

fn panic_reason() -> Val {
    error("turn failed: panic")
}

impl VatCore {
    fn new(shared: Arc<VatShared>, persist: Option<Persist>) -> Self {
        VatCore {
            persist: persist.map(std::cell::RefCell::new),
            held: Vec::new(),
            in_flight: None,
            halted: false,
            shared,
            objects: IdMap::default(),
            promises: IdMap::default(),
            queue: VecDeque::new(),
            work: VecDeque::new(),
            outbox: Vec::new(),
            inserts: 0,
            survivors: 0,
            events: 0,
            sweep_asked: false,
            sleeper: None,
            drivers: Vec::new(),
        }
    }

    /// Serves events until `Stop`, then closes. Turns already run under
    /// `catch_unwind`; this outer guard keeps the vat serving (and able to
    /// break its promises at the end) even if a bug or a panicking `Drop`
    /// escapes one event.
    fn run(mut self) {
        while catch_unwind(AssertUnwindSafe(|| self.serve())).is_err() {}
        self.close();
    }

    fn serve(&mut self) {
        // After an escaped panic, no turn is running any more.
        STAGED.with(|s| *s.borrow_mut() = None);
        let mut since = 0u32;
        loop {
            if self.halted {
                break;
            }
            if let Some(ev) = self.queue.pop_front() {
                if matches!(ev, Event::Stop) {
                    break;
                }
                self.handle(ev);
                self.events = self.events.saturating_add(1);
                since += 1;
                if since >= BATCH {
                    since = 0;
                    self.flush();
                    self.maybe_sweep();
                    self.poll_drivers();
                    self.pull_inbox();
                }
                continue;
            }
            self.flush();
            // Drivers first: a session driver's writes should not wait for
            // the sweep.
            self.idle_drivers();
            if self.maybe_sweep() || self.idle_sweep() || self.asked_sweep() {
                continue;
            }
            // While mail keeps coming the vat never sleeps; `since` keeps
            // counting, so the drivers still get their turn every BATCH
            // events above.
            if !self.pull_inbox() {
                since = 0;
                self.sleep();
            }
        }
    }

    /// Gives every driver a moment while the vat stays busy; drops those
    /// that panic.
    fn poll_drivers(&mut self) {
        let backlog = self.queue.len();
        if let Some(d) = &mut self.sleeper
            && catch_unwind(AssertUnwindSafe(|| d.poll_now(backlog))).is_err()
        {
            self.drop_sleeper();
        }
        self.drivers
            .retain_mut(|d| catch_unwind(AssertUnwindSafe(|| d.poll_now(backlog))).is_ok());
    }

    /// Runs every driver's `on_idle`, dropping those that ask to go or
    /// panic.
    fn idle_drivers(&mut self) {
        if let Some(d) = &mut self.sleeper
            && !catch_unwind(AssertUnwindSafe(|| d.on_idle())).unwrap_or(false)
        {
            self.drop_sleeper();
        }
        self.drivers
            .retain_mut(|d| catch_unwind(AssertUnwindSafe(|| d.on_idle())).unwrap_or(false));
    }

    /// Detaches the driver the vat sleeps in: from now on the vat parks,
    /// and another driver may take the place.
    fn drop_sleeper(&mut self) {
        *self.shared.wake.lock().unwrap_or_else(|p| p.into_inner()) = None;
        let gone = self.sleeper.take();
        self.shared.sleeper_claimed.store(false, Ordering::SeqCst);
        let _ = catch_unwind(AssertUnwindSafe(move || drop(gone)));
    }

    fn pull_inbox(&mut self) -> bool {
        if !self.shared.has_mail.load(Ordering::SeqCst) {
            return false;
        }
        let events = {
            let mut inbox = self.shared.inbox.lock().unwrap_or_else(|p| p.into_inner());
            self.shared.has_mail.store(false, Ordering::SeqCst);
            std::mem::take(&mut inbox.events)
        };
        let got = !events.is_empty();
        self.queue.extend(events);
        got
    }

    fn sleep(&mut self) {
        self.shared.sleeping.store(true, Ordering::SeqCst);
        if self.shared.has_mail.load(Ordering::SeqCst) {
            self.shared.sleeping.store(false, Ordering::SeqCst);
            return;
        }
        match &mut self.sleeper {
            Some(d) => {
                if catch_unwind(AssertUnwindSafe(|| d.wait())).is_err() {
                    self.shared.sleeping.store(false, Ordering::SeqCst);
                    self.drop_sleeper();
                }
            }
            None => std::thread::park(),
        }
        self.shared.sleeping.store(false, Ordering::SeqCst);
    }

    /// Sends an effect out of the vat: at once, or, in a persistent vat,
    /// once the turns before it are durable (the next [`VatCore::flush`]).
    fn emit(&mut self, effect: Held) {
        if self.persist.is_some() {
            self.held.push(effect);
        } else {
            effect.release();
        }
    }

    /// Lets effects out: in an ephemeral vat at once; in a persistent one,
    /// starts writing what is pending (if no batch is being written) and
    /// lets out only what depends on nothing that is not yet durable.
    fn flush(&mut self) {
        if let Some(persist) = &self.persist {
            if self.in_flight.is_some() {
                // Its completion flushes again; until then everything new
                // waits behind it.
                let backlog = persist.borrow().pending.len() >= MAX_PENDING;
                if backlog {
                    self.wait_write();
                }
                return;
            }
            if persist.borrow().is_dirty() {
                self.start_write();
                return;
            }
            for h in std::mem::take(&mut self.held) {
                h.release();
            }
        }
        self.post_outbox();
    }

    fn post_outbox(&mut self) {
        for (vat, events) in &mut self.outbox {
            if !events.is_empty() {
                vat.post_batch(std::mem::take(events));
            }
        }
        if self.outbox.len() > 32 {
            self.outbox.clear();
        }
    }

    /// Hands the pending batch to the writer; the effects of the turns in
    /// it wait for it.
    fn start_write(&mut self) {
        let Some(persist) = &self.persist else {
            return;
        };
        let mut p = persist.borrow_mut();
        let batch = Arc::new(Batch {
            objects: p.pending.drain().collect(),
            deletes: Vec::new(),
            roots: std::mem::take(&mut p.roots),
            next_id: self.shared.next_id.load(Ordering::Relaxed),
        });
        p.in_flight = Some(batch.clone());
        let sent = p.writer.as_ref().is_some_and(|w| w.send(batch));
        drop(p);
        let outbox = self
            .outbox
            .iter_mut()
            .filter(|(_, evs)| !evs.is_empty())
            .map(|(v, evs)| (v.clone(), std::mem::take(evs)))
            .collect();
        self.in_flight = Some(InFlight {
            held: std::mem::take(&mut self.held),
            outbox,
        });
        if !sent {
            self.finish_write(Err(BackendError("the store's writer stopped".into())));
        }
    }

    /// The batch being written is done: its effects go out (and the next
    /// batch starts), or, if the write failed, the vat stops.
    fn finish_write(&mut self, result: Result<(), BackendError>) {
        if let Some(persist) = &self.persist {
            persist.borrow_mut().in_flight = None;
        }
        let Some(done) = self.in_flight.take() else {
            return;
        };
        match result {
            Ok(()) => {
                for h in done.held {
                    h.release();
                }
                for (vat, events) in done.outbox {
                    vat.post_batch(events);
                }
                self.flush();
            }
            Err(e) => {
                // What the vat remembers is now ahead of what it stored:
                // everything that depends on it breaks, and the vat stops.
                *self
                    .shared
                    .storage_error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = Some(e.0);
                self.halted = true;
                let reason = self.shared.stop_reason();
                let held = done.held.into_iter().chain(std::mem::take(&mut self.held));
                for h in held {
                    h.abandon(&reason);
                }
                let outbox = done
                    .outbox
                    .into_iter()
                    .chain(std::mem::take(&mut self.outbox));
                for (_, events) in outbox {
                    events.into_iter().for_each(|e| e.abandon(&reason));
                }
            }
        }
    }

    /// Blocks until the batch being written is done (and handles it).
    fn wait_write(&mut self) {
        if self.in_flight.is_none() {
            return;
        }
        let result = match &self.persist {
            Some(p) => match p.borrow().writer.as_ref().map(|w| w.done.recv()) {
                Some(Ok(r)) => r,
                _ => Err(BackendError("the store's writer stopped".into())),
            },
            None => return,
        };
        self.finish_write(result);
    }

    /// Writes everything pending and waits until it is durable (and its
    /// effects are out). Returns false if the store failed.
    fn flush_sync(&mut self) -> bool {
        loop {
            if self.halted {
                return false;
            }
            if self.in_flight.is_some() {
                self.wait_write();
                continue;
            }
            let dirty = self.persist.as_ref().is_some_and(|p| p.borrow().is_dirty());
            if !dirty {
                self.flush();
                return !self.halted;
            }
            self.start_write();
        }
    }

    fn post_to(&mut self, vat: &Arc<VatShared>, ev: Event) {
        if let Some((_, evs)) = self.outbox.iter_mut().find(|(v, _)| v.id == vat.id) {
            evs.push(ev);
        } else {
            self.outbox.push((vat.clone(), vec![ev]));
        }
    }

    fn handle(&mut self, ev: Event) {
        match ev {
            Event::Deliver {
                target,
                msg,
                resolver,
                hops,
            } => match &target.0 {
                RefInner::Object(slot) if slot.vat.id == self.shared.id => {
                    let entry = match self.objects.get(&slot.id) {
                        Some(e) => Ok(Some((e.slot.clone(), e.behaviour.clone()))),
                        None => self.revive(slot),
                    };
                    match entry {
                        Err(reason) => {
                            self.break_answer(resolver, reason);
                            self.run_work();
                        }
                        Ok(Some((slot, behaviour))) => {
                            let Message { method, args } = msg;
                            self.run_turn(
                                Some(slot),
                                |cx| behaviour.receive(cx, &method, args),
                                resolver,
                            );
                        }
                        Ok(None) => {
                            if let Some(r) = resolver {
                                self.work.push_back(Work::Resolve {
                                    resolver: r,
                                    outcome: Err(error("no such object")),
                                });
                                self.run_work();
                            }
                        }
                    }
                }
                _ => {
                    self.work.push_back(Work::Send {
                        target,
                        msg,
                        resolver,
                        hops,
                    });
                    self.run_work();
                }
            },
            Event::Spawn { slot, object } if self.persist.is_some() => {
                // In a persistent vat a spawn is stored like one made in a
                // turn; one that cannot be stored answers every message
                // with the reason.
                let mut delta = Delta::default();
                delta.behaviours.push((slot.clone(), Rc::from(object)));
                match self.stage_for_store(&delta) {
                    Ok(()) => self.commit(delta),
                    Err(reason) => {
                        self.inserts += 1;
                        let behaviour: Rc<dyn Object> =
                            Rc::new(crate::turn::from_fn(move |_, _, _| Err(reason.clone())));
                        self.objects
                            .insert(slot.id, ObjectEntry { slot, behaviour });
                    }
                }
            }
            Event::Spawn { slot, object } => {
                self.inserts += 1;
                self.objects.insert(
                    slot.id,
                    ObjectEntry {
                        slot,
                        behaviour: Rc::from(object),
                    },
                );
            }
            Event::NewPromise { slot } => self.insert_promise(slot),
            Event::Resolve { slot, outcome } => {
                self.settle_local(slot, outcome);
                self.run_work();
            }
            Event::Listen {
                slot,
                resolver,
                hops,
            } => {
                self.work.push_back(Work::Listen {
                    target: Ref(RefInner::Promise(slot)),
                    listener: Listener::Resolver(resolver),
                    hops,
                });
                self.run_work();
            }
            Event::Callback {
                cb,
                outcome,
                result,
                me,
            } => self.run_turn(me, |cx| cb(cx, outcome), Some(result)),
            Event::Run { f, result } => self.run_turn(None, f, result),
            Event::Attach { driver, wake } => match wake {
                // Set while the thread is awake: once `sleeping` is set for
                // the new driver, a poster finds the way to wake it.
                Some(wake) => {
                    *self.shared.wake.lock().unwrap_or_else(|p| p.into_inner()) = Some(wake);
                    self.sleeper = Some(driver);
                }
                None => self.drivers.push(driver),
            },
            Event::Collect { migrate, reply } => {
                let _ = reply.send(self.collect(migrate));
            }
            Event::Sweep => self.sweep_asked = true,
            Event::Written => {
                let done = self
                    .persist
                    .as_ref()
                    .and_then(|p| p.borrow().writer.as_ref().map(|w| w.done.try_recv()));
                if let Some(Ok(result)) = done {
                    self.finish_write(result);
                }
            }
            Event::Stop => {}
        }
    }

    /// See [`Vat::collect`].
    fn collect(&mut self, migrate: bool) -> Result<Collected, String> {
        if self.persist.is_none() {
            return Err("the vat is not persistent".into());
        }
        if !self.flush_sync() {
            return Err("the vat stopped: its store failed".into());
        }
        // What nothing references any more leaves memory first, so it is
        // not counted as alive.
        self.sweep();
        let Some(persist) = &self.persist else {
            return Err("the vat is not persistent".into());
        };
        let p = persist.borrow();
        let backend = p.backend.clone();
        let mut backend = backend.lock().unwrap_or_else(|p| p.into_inner());
        let stored: HashSet<u64> = backend.ids().map_err(|e| e.0)?.into_iter().collect();
        // Everything named by a root or alive in memory is kept, and
        // everything a kept object's record refers to.
        let mut work: Vec<u64> = self
            .shared
            .roots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .copied()
            .collect();
        work.extend(
            self.shared
                .slots
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .filter(|(_, w)| w.strong_count() > 0)
                .map(|(id, _)| *id),
        );
        work.extend(self.objects.keys().copied());
        let mut kept: HashSet<u64> = HashSet::new();
        let mut old = Vec::new();
        while let Some(id) = work.pop() {
            if !stored.contains(&id) || !kept.insert(id) {
                continue;
            }
            let Some(bytes) = backend.load(id).map_err(|e| e.0)? else {
                continue;
            };
            // An unreadable record may refer to anything: delete nothing.
            let record = decode_record(&bytes).map_err(|e| {
                format!(
                    "object {id} is unreadable ({}); nothing was deleted",
                    crate::error_message(&e).unwrap_or("?")
                )
            })?;
            crate::persist::refs_of(&record.state, &mut work);
            if migrate
                && p.kinds
                    .version(&record.kind)
                    .is_some_and(|v| v > record.version)
            {
                old.push(id);
            }
        }
        let mut deletes: Vec<u64> = stored.difference(&kept).copied().collect();
        deletes.sort_unstable();
        let mut done = Collected {
            stored: stored.len() as u64,
            kept: kept.len() as u64,
            deleted: deletes.len() as u64,
            ..Collected::default()
        };
        if !deletes.is_empty() {
            let batch = Batch {
                deletes,
                next_id: self.shared.next_id.load(Ordering::Relaxed),
                ..Batch::default()
            };
            backend.write(&batch).map_err(|e| e.0)?;
        }
        drop(backend);
        drop(p);
        // Eager migration: revive each old object and store it again as
        // its kind's current version writes it.
        old.sort_unstable();
        for (n, id) in old.into_iter().enumerate() {
            let slot = self.shared.slot_for(id);
            let entry = match self.objects.get(&id) {
                Some(e) => Ok(Some((e.slot.clone(), e.behaviour.clone()))),
                None => self.revive(&slot),
            };
            let Ok(Some((slot, behaviour))) = entry else {
                done.not_migrated += 1;
                continue;
            };
            let mut delta = Delta::default();
            delta.behaviours.push((slot, behaviour));
            match self.stage_for_store(&delta) {
                Ok(()) => {
                    self.commit(delta);
                    done.migrated += 1;
                }
                Err(_) => done.not_migrated += 1,
            }
            if n % 1024 == 1023 {
                self.flush();
            }
        }
        if !self.flush_sync() {
            return Err("the vat stopped: its store failed".into());
        }
        Ok(done)
    }

    /// Adds a pending promise (no-op if it is already there: a promise made
    /// by [`Vat::promise`] inside a turn may be used before its
    /// `NewPromise` event arrives, see [`VatCore::pending_entry`]).
    fn insert_promise(&mut self, slot: Arc<Slot>) {
        if self.promises.contains_key(&slot.id) {
            return;
        }
        self.inserts += 1;
        self.promises.insert(
            slot.id,
            PromiseEntry {
                slot,
                state: PromiseState::Pending {
                    queued: Vec::new(),
                    listeners: Vec::new(),
                },
            },
        );
    }

    /// The entry of a promise of this vat that a live `Ref` or `Resolver`
    /// names. An entry is only ever removed once no ref or resolver can
    /// name it (see `settle_local` and `sweep`), so a missing one is a
    /// promise whose `NewPromise` event is still on its way (made with
    /// [`Vat::promise`] inside a turn, or from another thread just before
    /// a message that raced ahead): it is created here, pending.
    fn pending_entry(&mut self, slot: &Arc<Slot>) -> Option<&mut PromiseState> {
        if !self.promises.contains_key(&slot.id) {
            self.insert_promise(slot.clone());
        }
        self.promises.get_mut(&slot.id).map(|e| &mut e.state)
    }

    /// Runs one turn: `body` under `catch_unwind`, then commit or discard.
    fn run_turn(
        &mut self,
        me: Option<Arc<Slot>>,
        body: impl FnOnce(&mut Turn<'_>) -> Outcome,
        result: Option<Resolver>,
    ) {
        let mut turn = Turn::new(
            &self.shared,
            &self.objects,
            me,
            self.promises.len(),
            self.persist.as_ref(),
        );
        STAGED.with(|s| *s.borrow_mut() = Some(Vec::new()));
        let r = catch_unwind(AssertUnwindSafe(|| body(&mut turn)));
        let staged = STAGED.with(|s| s.borrow_mut().take()).unwrap_or_default();
        let (delta, revived) = turn.into_parts();
        for (_, (slot, behaviour)) in revived {
            self.inserts += 1;
            self.objects
                .insert(slot.id, ObjectEntry { slot, behaviour });
        }
        // A persistent vat writes what the turn changed, or fails the turn
        // if that cannot be stored.
        let r = match r {
            Ok(Ok(v)) => match self.stage_for_store(&delta) {
                Ok(()) => Ok(Ok(v)),
                Err(e) => Ok(Err(e)),
            },
            other => other,
        };
        let outcome = match r {
            Ok(Ok(v)) => {
                self.commit(delta);
                for (vat, ev) in staged {
                    if vat.id == self.shared.id {
                        self.queue.push_back(ev);
                    } else {
                        self.post_to(&vat, ev);
                    }
                }
                Ok(v)
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(panic_reason()),
        };
        if let Some(resolver) = result {
            self.work.push_back(Work::Resolve { resolver, outcome });
        }
        self.run_work();
    }

    /// Revives stored object `slot` into the table (outside any turn).
    fn revive(&mut self, slot: &Arc<Slot>) -> Result<Option<Entry>, Val> {
        let Some(persist) = &self.persist else {
            return Ok(None);
        };
        let Some(behaviour) = persist.borrow_mut().revive(&self.shared, slot.id)? else {
            return Ok(None);
        };
        self.shared.adopt(slot);
        self.inserts += 1;
        self.objects.insert(
            slot.id,
            ObjectEntry {
                slot: slot.clone(),
                behaviour: behaviour.clone(),
            },
        );
        Ok(Some((slot.clone(), behaviour)))
    }

    /// Encodes what a successful turn changed into the pending batch of a
    /// persistent vat (a no-op for others).
    ///
    /// # Errors
    /// The turn would store what cannot be stored (see
    /// [`crate::persist`]); nothing is staged then.
    fn stage_for_store(&mut self, delta: &Delta) -> Result<(), Val> {
        let Some(persist) = &self.persist else {
            return Ok(());
        };
        if delta.behaviours.is_empty() && delta.roots.is_empty() {
            return Ok(());
        }
        // The last behaviour staged for each slot is the one that counts;
        // `staged` says which of them are persistent.
        // (Most turns change one or two objects: a short list is searched
        // linearly, which costs no allocation of a map.)
        let few = delta.behaviours.len() <= 8;
        let mut staged: IdMap<bool> = IdMap::default();
        let mut latest: Vec<(&Arc<Slot>, Option<crate::persist::Portrait>)> =
            Vec::with_capacity(if few { delta.behaviours.len() } else { 0 });
        for (slot, b) in delta.behaviours.iter().rev() {
            let seen = if few {
                latest.iter().any(|(s, _)| s.id == slot.id)
            } else {
                staged.contains_key(&slot.id)
            };
            if seen {
                continue;
            }
            let portrait = b.portrait();
            if !few {
                staged.insert(slot.id, portrait.is_some());
            }
            latest.push((slot, portrait));
        }
        let shared = &self.shared;
        let latest_ref = &latest;
        let is_persistent = |id: u64| {
            let here = if few {
                latest_ref
                    .iter()
                    .find(|(s, _)| s.id == id)
                    .map(|(_, p)| p.is_some())
            } else {
                staged.get(&id).copied()
            };
            here.unwrap_or_else(|| shared.is_persistent_object(id))
        };
        let store_ref = &mut |r: &Ref| -> Result<StoredRef, Val> {
            match &r.0 {
                RefInner::Object(s) if s.vat.id == shared.id => {
                    if is_persistent(s.id) {
                        Ok(StoredRef::Local(s.id))
                    } else {
                        Err(error("cannot persist a reference to an ephemeral object"))
                    }
                }
                RefInner::Object(_) => Err(error(
                    "cannot persist a reference to an object of another vat",
                )),
                RefInner::Promise(_) => Err(error(
                    "cannot persist a promise (hold what it resolves to instead)",
                )),
                RefInner::Remote(far) => match far.target.recipe().map(|r| {
                    r.try_map_refs(&mut |_| Err::<pola_syrup::Value<pola_syrup::NoRef>, ()>(()))
                }) {
                    Some(Ok(recipe)) => Ok(StoredRef::Far(recipe)),
                    _ => Err(error(
                        "cannot persist a far reference that cannot be made again \
                         (hold a sturdyref to it instead)",
                    )),
                },
                RefInner::Broken(e) => Ok(StoredRef::Broken(
                    (**e)
                        .clone()
                        .try_map_refs(&mut |_| Ok::<_, ()>(pola_syrup::Value::null()))
                        .unwrap_or_else(|()| pola_syrup::Value::null()),
                )),
            }
        };
        let mut records = Vec::with_capacity(latest.len());
        let p = persist.borrow();
        for (slot, portrait) in &latest {
            match portrait {
                Some(portrait) => {
                    if p.kinds.version(portrait.kind) != Some(portrait.version) {
                        return Err(error(format!(
                            "cannot persist a {}: kind not registered at version {} in this vat",
                            portrait.kind, portrait.version
                        )));
                    }
                    records.push((*slot, encode_record(portrait, store_ref)?));
                }
                None if shared.is_persistent_object(slot.id) => {
                    return Err(error("a persistent object cannot become ephemeral"));
                }
                None => {}
            }
        }
        let mut roots = Vec::with_capacity(delta.roots.len());
        for (name, target) in &delta.roots {
            match target {
                Some(r) => match store_ref(r)? {
                    StoredRef::Local(id) => roots.push((name.clone(), Some(id))),
                    StoredRef::Broken(_) | StoredRef::Far(_) => {
                        return Err(error("a root must be a persistent object"));
                    }
                },
                None => roots.push((name.clone(), None)),
            }
        }
        drop(p);
        let mut p = persist.borrow_mut();
        // Objects already in the table were registered when made or
        // revived; only new ones need the lock.
        if records
            .iter()
            .any(|(s, _)| !self.objects.contains_key(&s.id))
        {
            let mut slots = shared.slots.lock().unwrap_or_else(|p| p.into_inner());
            for (slot, _) in &records {
                if !self.objects.contains_key(&slot.id) {
                    slots.insert(slot.id, Arc::downgrade(slot));
                }
            }
        }
        for (slot, bytes) in records {
            p.pending.insert(slot.id, bytes);
        }
        if !roots.is_empty() {
            let mut live = shared.roots.lock().unwrap_or_else(|p| p.into_inner());
            for (name, id) in &roots {
                match id {
                    Some(id) => live.insert(name.clone(), *id),
                    None => live.remove(name),
                };
            }
            p.roots.extend(roots);
        }
        Ok(())
    }

    fn commit(&mut self, delta: Delta) {
        let Delta {
            behaviours,
            promises,
            ops,
            roots: _,
        } = delta;
        for (slot, behaviour) in behaviours {
            self.inserts += 1;
            self.objects
                .insert(slot.id, ObjectEntry { slot, behaviour });
        }
        for slot in promises {
            // Held only by the delta and at most one resolver: nobody can
            // ever send to, wait on, or look at this promise (the usual case
            // for an answer whose promise the sender dropped), so it needs
            // no table entry; settling it is then a no-op.
            if Arc::strong_count(&slot) > 2 {
                self.insert_promise(slot);
            }
        }
        self.work.extend(ops);
    }

    fn run_work(&mut self) {
        while let Some(w) = self.work.pop_front() {
            match w {
                Work::Send {
                    target,
                    msg,
                    resolver,
                    hops,
                } => self.route_send(target, msg, resolver, hops),
                Work::Resolve { resolver, outcome } => match resolver.0 {
                    ResolverInner::Promise(slot) => {
                        if slot.vat.id == self.shared.id {
                            self.settle_local(slot, outcome);
                        } else {
                            let vat = slot.vat.clone();
                            self.post_to(&vat, Event::Resolve { slot, outcome });
                        }
                    }
                    foreign @ ResolverInner::Foreign(_) => {
                        self.emit(Held::Settle(Resolver(foreign), outcome));
                    }
                },
                Work::Listen {
                    target,
                    listener,
                    hops,
                } => self.route_listen(target, listener, hops),
            }
        }
    }

    fn break_answer(&mut self, resolver: Option<Resolver>, reason: Val) {
        if let Some(resolver) = resolver {
            self.work.push_back(Work::Resolve {
                resolver,
                outcome: Err(reason),
            });
        }
    }

    fn route_send(&mut self, target: Ref, msg: Message, resolver: Option<Resolver>, hops: u32) {
        if hops > MAX_HOPS {
            self.break_answer(resolver, error("promise forwarding cycle"));
            return;
        }
        let limit = self.shared.queue_limit.load(Ordering::Relaxed);
        match &target.0 {
            RefInner::Object(slot) => {
                if slot.vat.id == self.shared.id {
                    if self.queue.len() >= limit {
                        self.break_answer(resolver, error("vat queue full"));
                        return;
                    }
                    self.queue.push_back(Event::Deliver {
                        target,
                        msg,
                        resolver,
                        hops,
                    });
                } else {
                    let vat = slot.vat.clone();
                    self.post_to(
                        &vat,
                        Event::Deliver {
                            target,
                            msg,
                            resolver,
                            hops,
                        },
                    );
                }
            }
            RefInner::Promise(slot) => {
                if slot.vat.id != self.shared.id {
                    let vat = slot.vat.clone();
                    self.post_to(
                        &vat,
                        Event::Deliver {
                            target,
                            msg,
                            resolver,
                            hops,
                        },
                    );
                    return;
                }
                match self.pending_entry(slot) {
                    None => self.break_answer(resolver, error("promise can never settle")),
                    Some(PromiseState::Pending { queued, .. }) => {
                        if queued.len() >= limit {
                            self.break_answer(resolver, error("vat queue full"));
                        } else {
                            queued.push((msg, resolver));
                        }
                    }
                    Some(PromiseState::Resolved(Ok(Val::Ref(next)))) => {
                        let next = next.clone();
                        self.work.push_back(Work::Send {
                            target: next,
                            msg,
                            resolver,
                            hops: hops + 1,
                        });
                    }
                    Some(PromiseState::Resolved(Ok(_))) => {
                        self.break_answer(resolver, error("not a reference"))
                    }
                    Some(PromiseState::Resolved(Err(e))) => {
                        let e = e.clone();
                        self.break_answer(resolver, e);
                    }
                }
            }
            RefInner::Remote(r) => {
                self.emit(Held::Deliver(r.target.clone(), msg, resolver));
            }
            RefInner::Broken(e) => {
                let e = (**e).clone();
                self.break_answer(resolver, e);
            }
        }
    }

    /// Turns a local listener into a resolver that can travel: callbacks
    /// get a fresh local promise carrying them.
    fn listener_to_resolver(&mut self, listener: Listener) -> Resolver {
        match listener {
            Listener::Resolver(r) => r,
            cb @ Listener::Callback { .. } => {
                let slot = Slot::new(&self.shared);
                self.insert_promise(slot.clone());
                if let Some(PromiseEntry {
                    state: PromiseState::Pending { listeners, .. },
                    ..
                }) = self.promises.get_mut(&slot.id)
                {
                    listeners.push(cb);
                }
                Resolver(ResolverInner::Promise(slot))
            }
        }
    }

    fn fire(&mut self, listener: Listener, outcome: Outcome) {
        match listener {
            Listener::Resolver(resolver) => {
                self.work.push_back(Work::Resolve { resolver, outcome })
            }
            Listener::Callback { cb, result, me } => self.queue.push_back(Event::Callback {
                cb,
                outcome,
                result,
                me,
            }),
        }
    }

    fn route_listen(&mut self, target: Ref, listener: Listener, hops: u32) {
        if hops > MAX_HOPS {
            self.fire(listener, Err(error("promise forwarding cycle")));
            return;
        }
        match &target.0 {
            RefInner::Promise(slot) if slot.vat.id == self.shared.id => {
                match self.pending_entry(slot) {
                    None => self.fire(listener, Err(error("promise can never settle"))),
                    Some(PromiseState::Pending { listeners, .. }) => listeners.push(listener),
                    Some(PromiseState::Resolved(outcome)) => {
                        let outcome = outcome.clone();
                        self.listen_outcome(outcome, listener, hops + 1);
                    }
                }
            }
            RefInner::Promise(slot) => {
                let resolver = self.listener_to_resolver(listener);
                let vat = slot.vat.clone();
                self.post_to(
                    &vat,
                    Event::Listen {
                        slot: slot.clone(),
                        resolver,
                        hops: hops + 1,
                    },
                );
            }
            RefInner::Remote(r) if r.target.is_promise() => {
                let resolver = self.listener_to_resolver(listener);
                self.emit(Held::Listen(r.target.clone(), resolver));
            }
            RefInner::Broken(e) => {
                let e = (**e).clone();
                self.fire(listener, Err(e));
            }
            RefInner::Object(_) | RefInner::Remote(_) => self.fire(listener, Ok(Val::Ref(target))),
        }
    }

    /// Delivers a (possibly promise-valued) outcome to a listener: promises
    /// are followed, everything else fires.
    fn listen_outcome(&mut self, outcome: Outcome, listener: Listener, hops: u32) {
        match outcome {
            Ok(Val::Ref(r)) => self.work.push_back(Work::Listen {
                target: r,
                listener,
                hops,
            }),
            other => self.fire(listener, other),
        }
    }

    fn settle_local(&mut self, slot: Arc<Slot>, outcome: Outcome) {
        if Arc::strong_count(&slot) == 1 {
            // Not in the table (it would hold a count): nobody is interested.
            return;
        }
        let outcome = match outcome {
            Ok(Val::Ref(Ref(RefInner::Broken(e)))) => Err((*e).clone()),
            Ok(Val::Ref(Ref(RefInner::Promise(p))))
                if p.id == slot.id && p.vat.id == slot.vat.id =>
            {
                Err(error("promise resolved to itself"))
            }
            o => o,
        };
        let outcome = match outcome {
            Ok(Val::Ref(Ref(RefInner::Promise(p)))) if self.forwards_to(&p, &slot) => {
                Err(error("promise resolution cycle"))
            }
            o => o,
        };
        if self.pending_entry(&slot).is_none() {
            return;
        }
        let Some(entry) = self.promises.get_mut(&slot.id) else {
            return;
        };
        if matches!(entry.state, PromiseState::Resolved(_)) {
            return;
        }
        // Held only by the table and by `slot` (the resolver being used up):
        // nobody can look at this promise again, so it need not be kept.
        let unreferenced = Arc::strong_count(&entry.slot) <= 2;
        let old = if unreferenced {
            self.promises.remove(&slot.id).map(|e| e.state)
        } else {
            Some(std::mem::replace(
                &mut entry.state,
                PromiseState::Resolved(Ok(Val::Bool(false))),
            ))
        };
        if let Some(PromiseState::Pending { queued, listeners }) = old {
            for (msg, resolver) in queued {
                match &outcome {
                    Ok(Val::Ref(r)) => self.work.push_back(Work::Send {
                        target: r.clone(),
                        msg,
                        resolver,
                        hops: 1,
                    }),
                    Ok(_) => self.break_answer(resolver, error("not a reference")),
                    Err(e) => self.break_answer(resolver, e.clone()),
                }
            }
            for l in listeners {
                self.listen_outcome(outcome.clone(), l, 1);
            }
        }
        if !unreferenced && let Some(entry) = self.promises.get_mut(&slot.id) {
            entry.state = PromiseState::Resolved(outcome);
        }
    }

    /// Whether following the local resolutions from `start` reaches
    /// `target` (resolving `target` to `start` would then make a cycle).
    fn forwards_to(&self, start: &Arc<Slot>, target: &Arc<Slot>) -> bool {
        if start.vat.id != self.shared.id {
            return false;
        }
        let mut cur = start.id;
        for _ in 0..MAX_HOPS {
            if cur == target.id {
                return true;
            }
            match self.promises.get(&cur).map(|e| &e.state) {
                Some(PromiseState::Resolved(Ok(Val::Ref(Ref(RefInner::Promise(next))))))
                    if next.vat.id == self.shared.id =>
                {
                    cur = next.id;
                }
                _ => return false,
            }
        }
        true
    }

    /// Sweeps once there have been as many inserts as entries survived the
    /// last sweep (so the cost is amortised over the inserts).
    fn maybe_sweep(&mut self) -> bool {
        if self.inserts > 4096usize.max(self.survivors) {
            self.sweep();
            true
        } else {
            false
        }
    }

    /// Sweeps when the vat is about to sleep if [`Vat::sweep_when_idle`]
    /// asked for it (however many times: once).
    fn asked_sweep(&mut self) -> bool {
        if std::mem::take(&mut self.sweep_asked) {
            self.sweep();
            true
        } else {
            false
        }
    }

    /// Sweeps when the vat is about to sleep, if anything happened since the
    /// last sweep and the sweep is cheap next to the work since then (at
    /// most 8 entries looked at per event handled). A small vat thus drops
    /// unreachable promises, and the far references they hold (which is
    /// what lets a CapTP session release imports to the other peer), as
    /// soon as it goes idle; a large one waits until enough has happened.
    fn idle_sweep(&mut self) -> bool {
        if self.events == 0 {
            return false;
        }
        // A sweep walks the tables' whole capacity, not just the entries.
        let cost = self
            .survivors
            .saturating_add((self.objects.capacity() + self.promises.capacity()) / 16);
        if self.events.saturating_mul(8) >= cost {
            self.sweep();
            true
        } else {
            false
        }
    }

    /// Drops objects and promises nothing can reach any more (only the table
    /// holds their slot). A pending promise nobody can settle breaks its
    /// listeners.
    fn sweep(&mut self) {
        self.inserts = 0;
        self.events = 0;
        self.objects.retain(|_, e| Arc::strong_count(&e.slot) > 1);
        if self.persist.is_some() {
            // Stored objects dropped from memory stay in the store.
            self.shared
                .slots
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .retain(|_, w| w.strong_count() > 0);
        }
        // Promises: follow chains (a dead promise resolved to another local
        // promise may be the last holder of it) in this one sweep.
        let mut dead: Vec<u64> = self
            .promises
            .iter()
            .filter(|(_, e)| Arc::strong_count(&e.slot) == 1)
            .map(|(id, _)| *id)
            .collect();
        let mut orphans = Vec::new();
        while let Some(id) = dead.pop() {
            let Some(entry) = self.promises.remove(&id) else {
                continue;
            };
            match entry.state {
                PromiseState::Pending { listeners, queued } => orphans.push((listeners, queued)),
                PromiseState::Resolved(outcome) => {
                    let mut next = Vec::new();
                    let v = match &outcome {
                        Ok(v) | Err(v) => v,
                    };
                    v.for_each_ref(&mut |r| {
                        if let RefInner::Promise(s) = &r.0
                            && s.vat.id == self.shared.id
                        {
                            next.push(s.id);
                        }
                    });
                    drop(outcome);
                    for n in next {
                        if self
                            .promises
                            .get(&n)
                            .is_some_and(|e| Arc::strong_count(&e.slot) == 1)
                        {
                            dead.push(n);
                        }
                    }
                }
            }
        }
        for (listeners, queued) in orphans {
            for l in listeners {
                self.fire(l, Err(error("promise abandoned")));
            }
            for (_, r) in queued {
                self.break_answer(r, error("promise abandoned"));
            }
        }
        self.survivors = self.objects.len() + self.promises.len();
        // A burst can leave the tables far larger than what survives; give
        // the memory back (and keep later sweeps cheap).
        if self.objects.capacity() > 1024 && self.objects.capacity() > 4 * self.objects.len() {
            self.objects.shrink_to(2 * self.objects.len());
        }
        if self.promises.capacity() > 1024 && self.promises.capacity() > 4 * self.promises.len() {
            self.promises.shrink_to(2 * self.promises.len());
        }
        self.run_work();
    }

    fn close(mut self) {
        let leftover = {
            let mut inbox = self.shared.inbox.lock().unwrap_or_else(|p| p.into_inner());
            inbox.closed = true;
            std::mem::take(&mut inbox.events)
        };
        let reason = self.shared.stop_reason();
        let queued: Vec<Event> = self.queue.drain(..).chain(leftover).collect();
        let mut pending = Vec::new();
        for (_, e) in self.promises.drain() {
            if let PromiseState::Pending { queued, listeners } = e.state {
                pending.push((queued, listeners));
            }
        }
        for (q, listeners) in pending {
            for (_, r) in q {
                if let Some(r) = r {
                    self.work.push_back(Work::Resolve {
                        resolver: r,
                        outcome: Err(reason.clone()),
                    });
                }
            }
            for l in listeners {
                if let Listener::Resolver(r) = l {
                    self.work.push_back(Work::Resolve {
                        resolver: r,
                        outcome: Err(reason.clone()),
                    });
                }
            }
        }
        // Local promises are gone: resolutions aimed at them are dropped by
        // settle_local; everything else reaches other vats or foreign code.
        self.run_work();
        self.flush_sync();
        if let Some(p) = &self.persist {
            // Joins the writer: the backend is free once the vat is gone.
            p.borrow_mut().writer = None;
        }
        // Last chance for a session driver to send what the above queued
        // (breakages of answers it is waiting for).
        self.idle_drivers();
        for ev in queued {
            ev.abandon(&reason);
        }
        self.objects.clear();
        // The drivers go now, on this thread (a socket driver ends the
        // sessions nothing will read any more).
        if self.sleeper.is_some() {
            self.drop_sleeper();
        }
        for d in std::mem::take(&mut self.drivers) {
            let _ = catch_unwind(AssertUnwindSafe(move || drop(d)));
        }
    }
}

/// Runs `f`, holding back the posts to vats it makes on this thread
/// (deliveries, resolutions, sends through refs) and posting them when it
/// returns, one batch per vat in the order they were made: each vat is
/// woken once, not once per post. For a session driver that turns one
/// incoming chunk into several posts on a non-vat thread; the batch goes
/// out after `f` returns, so a lock `f` held is free by then. Inside a turn
/// (or another batch) `f` just runs: its posts are already held back.
pub fn batch_posts<T>(f: impl FnOnce() -> T) -> T {
    let outer = STAGED.with(|s| {
        let mut s = s.borrow_mut();
        if s.is_some() {
            false
        } else {
            *s = Some(Vec::new());
            true
        }
    });
    if !outer {
        return f();
    }
    /// Posts the batch even if `f` panics (as unbatched posts would be).
    struct Flush;
    impl Drop for Flush {
        fn drop(&mut self) {
            let staged = STAGED.with(|s| s.borrow_mut().take()).unwrap_or_default();
            let mut by_vat: Vec<(Arc<VatShared>, Vec<Event>)> = Vec::new();
            for (vat, ev) in staged {
                match by_vat.iter_mut().find(|(v, _)| v.id == vat.id) {
                    Some((_, evs)) => evs.push(ev),
                    None => by_vat.push((vat, vec![ev])),
                }
            }
            for (vat, evs) in by_vat {
                vat.post_batch(evs);
            }
        }
    }
    let _flush = Flush;
    f()
}

/// How many posts the running turn has staged (a savepoint for
/// `Turn::call`).
pub(crate) fn staged_len() -> usize {
    STAGED.with(|s| s.borrow().as_ref().map_or(0, Vec::len))
}

/// Drops posts staged after a savepoint (a failed `Turn::call`).
pub(crate) fn truncate_staged(len: usize) {
    STAGED.with(|s| {
        if let Some(list) = s.borrow_mut().as_mut() {
            list.truncate(len);
        }
    });
}

/// Whether the current thread is a vat's thread.
pub(crate) fn on_vat_thread() -> bool {
    VAT_THREAD.with(std::cell::Cell::get)
}

/// Waits for a promise from outside a vat with `timeout`; shorthand for
/// [`settled`]`(target).wait(timeout)`.
///
/// # Errors
/// See [`Settled::wait`].
pub fn wait(target: &Ref, timeout: Duration) -> Result<Val, WaitError> {
    settled(target).wait(timeout)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::refs::Resolver;

    fn shareable<T: Send + Sync + Clone + 'static>() {}

    #[test]
    fn handles_refs_and_resolvers_cross_threads() {
        shareable::<Vat>();
        shareable::<Ref>();
        shareable::<Resolver>();
        shareable::<Val>();
    }

    #[test]
    fn id_hasher_spreads_sequential_ids() {
        use std::hash::BuildHasher;
        let b = BuildHasherDefault::<IdHasher>::default();
        let low: std::collections::HashSet<u64> =
            (0..1024u64).map(|i| b.hash_one(i) & 1023).collect();
        assert_eq!(low.len(), 1024);
        let top: std::collections::HashSet<u64> =
            (0..1024u64).map(|i| b.hash_one(i) >> 57).collect();
        assert!(top.len() > 100);
    }
}
