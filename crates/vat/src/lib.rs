//! The pola vat runtime: the programming model of E and Spritely Goblins in
//! Rust.
//!
//! # The model
//!
//! A [`Vat`] is one event loop on its own thread, owning a set of objects.
//! Objects in different vats share no mutable state; they talk only by
//! **eventual sends** ([`Turn::send`], [`Turn::send_only`]), which queue a
//! message for a later turn and immediately return a **promise** for the
//! answer. A vat processes one message (or callback) at a time, to
//! completion — a **turn** — in FIFO order; nothing else runs in that vat
//! while a turn runs, so an object never sees its state change under it.
//!
//! References ([`Ref`], the `R` of [`Val`] = `pola_syrup::Value<Ref>`) are:
//! - **near**: an object in the same vat; besides eventual sends it can be
//!   called synchronously with [`Turn::call`];
//! - **far**: an object in another vat of this process, or behind a
//!   [`Remote`] (a CapTP import); eventual sends only;
//! - **promise**: an answer not yet known. Messages sent to it are queued and
//!   forwarded, in order, to whatever it resolves to (**pipelining**); a
//!   promise resolved to another promise forwards to it; one that breaks
//!   breaks every message queued on it and every later one;
//! - **broken**: carries an error value; every message to it breaks.
//!
//! [`Turn::when`] registers a callback that runs in a later turn of the
//! registering vat when a ref settles, with `Ok(value)` or `Err(reason)`.
//! [`Turn::promise`] gives an object a promise/[`Resolver`] pair to settle
//! later. Code outside any vat (main, tests) waits with [`Vat::block_on`] or
//! [`settled`] (with a timeout).
//!
//! # Transactional turns
//!
//! A turn that fails — its method returns `Err`, or panics (caught with
//! `catch_unwind`) — leaves no trace: no object changes state, no message it
//! sent leaves the vat, no promise it resolved is resolved, no object it
//! made exists, no callback it registered will run. Only its own answer
//! promise breaks, with the error (a panic gives the fixed reason
//! `"turn failed: panic"`, no host detail).
//!
//! The mechanism is Goblins': **behaviours are immutable, and objects change
//! by becoming a new behaviour.** [`Object::receive`] takes `&self`; to
//! change state an object stages a successor with [`Turn::become_`]. Every
//! effect of a turn — `become`s, new objects, sends, resolutions, `when`
//! registrations — is appended to the turn's private *delta* instead of
//! being applied. When the turn returns `Ok`, the vat commits the delta:
//! installs the new behaviours and objects, then routes the sends and
//! resolutions in order. When it fails, the delta is dropped; since nothing
//! was applied, there is nothing to undo. A synchronous [`Turn::call`] that
//! fails rolls back just its own part of the delta (a savepoint), so a
//! caller can catch the error and go on.
//!
//! Why this makes snapshots and persistence cheap later: a vat's whole
//! state is its table of behaviours (immutable values) plus its promise
//! table, and both change only at commit points, from a delta that lists
//! exactly what changed. A snapshot is a copy of the table (behaviours can
//! be shared, not deep-copied), and a write-ahead log of committed deltas
//! gives durable state without ever capturing a half-finished turn.
//!
//! Objects that use interior mutability (a `RefCell`, a WebAssembly
//! instance's memory) opt out of rollback for that state; the rest of the
//! turn is still rolled back.
//!
//! # Objects
//!
//! Implement [`Object`] (any crate can; objects must be `Send` so they can
//! be built on one thread and moved into a vat with [`Vat::spawn`]), or wrap
//! a closure with [`from_fn`]. A method is a symbol name and a `Vec<Val>` of
//! arguments; it returns a [`Val`] (possibly a promise ref: the answer then
//! follows that promise) or an error value.
//!
//! # The `Remote` seam (for CapTP)
//!
//! Far refs to objects on other machines use the same [`Ref`] type, so
//! `send`, `send_only`, pipelining and `when` work on them unchanged. A
//! networking layer plugs in at three points:
//! 1. **Imports.** For each import (far object or far promise) the session
//!    implements [`Remote`] and hands out [`Ref::remote_keyed`]`(import)`
//!    for its one `Arc` per import, so the same import received twice is
//!    the same (equal, same hash) `Ref` ([`Ref::remote`] instead makes a
//!    fresh identity on every call). The vat calls
//!    [`Remote::deliver`] for every message to it — after the sending turn
//!    commits, in order, including messages that were queued on a local
//!    promise which later resolved to the import — with a [`Resolver`] when
//!    an answer is wanted; for a remote promise it calls [`Remote::listen`]
//!    when someone waits for its value. The session settles those resolvers
//!    from its driver thread with [`Resolver::settle_now`]. For promise
//!    pipelining over the network, `deliver` settles the resolver at once
//!    with a `Ref::remote` of the *answer position* (a `Remote` whose
//!    `is_promise` is true): messages sent to the answer then go straight
//!    to the peer (`op:deliver` to the answer), and waiting on it becomes
//!    `op:listen`. Messages sent to the answer before that settlement was
//!    processed are queued locally and forwarded in order.
//! 2. **Incoming deliveries.** The session injects a message into the vat
//!    that owns an export with [`Vat::deliver`]. For `op:deliver-only` pass
//!    no resolver. For `op:deliver` with an answer position, make the answer
//!    a promise of that vat, `let (answer, r) = vat.promise()` (usable at
//!    once, even when called inside a turn), deliver with
//!    `Some(r)`, and keep `answer` in the answer table: pipelined messages
//!    the peer sends to that answer position are injected with
//!    `vat.deliver(&answer, ..)` (they queue behind it in order), and the
//!    value to report back comes from [`listen_external`]`(&answer,
//!    `[`Resolver::from_fn`]`(..))`. The same `listen_external` serves
//!    `op:listen` on an exported promise.
//! 3. **Exports.** Any [`Ref`] the session finds in an outgoing value
//!    ([`pola_syrup::Value::try_map_refs`] visits them) can be exported: refs
//!    are `Send`, `Hash` and `Eq` by identity, so an export table is a
//!    `HashMap<Ref, ExportId>` plus a `Vec<Ref>`. The session recognises its
//!    own imports coming back by downcasting [`Ref::remote_target`] (a
//!    `Remote` is `Any`).
//!
//! 4. **Running on the vat's thread.** A [`Driver`] attached with
//!    [`Vat::attach`] runs on the vat's thread, outside any turn: its
//!    `on_idle` whenever the vat runs out of events, its `poll_now` every
//!    [`BATCH`] events while the vat stays busy, and, for the one driver
//!    attached with a [`Wake`], its `wait` instead of parking the thread.
//!    A session driver that queues what its `Remote`s and resolvers ask
//!    for while on the vat's thread ([`Vat::thread_id`]) and drains that
//!    queue in `on_idle` sends without waking any other thread; one that
//!    sleeps in `wait` on its sockets reads what arrives on the vat's
//!    thread too (pola-peer does both).
//!
//! A message's method is a Syrup symbol; the empty name `""` means *no
//! method symbol* (an argument list only, as OCapN allows; see
//! [`Message::plain`] and [`Message::method_name`]).
//!
//! # Memory
//!
//! A vat drops objects and promises nothing refers to any more (only its
//! table holds them) in sweeps: after as many new entries as survived the
//! last sweep (at least 4096), and whenever the vat goes idle after
//! handling events, if the sweep costs at most 8 table entries per event
//! handled since the last one. So in a small or quiet vat a settled
//! promise nobody holds releases the far references it resolved to (for
//! CapTP: the import is reported back to its exporter) as soon as the vat
//! goes idle; a vat with a large table waits until enough has happened.
//! Dropping the last outside reference does not wake a sleeping vat: the
//! release then happens after the next event it handles.
//!
//! The test module `tests/all/remote.rs` implements such a session between
//! two vats, with Syrup bytes and `desc:export`/`desc:import` descriptors.
//!
//! # Patterns
//!
//! [`patterns`] has facets, revocable forwarders, sealer/unsealer brands and
//! membranes. E's mint and purse, the demo exchange `pola demo` prints,
//! live in the `pola-apps` crate (example applications stay out of the
//! trusted core).
//!
//! # Persistence
//!
//! A vat started with [`Vat::open`] keeps its persistent objects in a
//! [`backend::Backend`] (pola-store's redb file, or memory in tests):
//! - an object is persistent when its behaviour has a
//!   [`portrait`](Object::portrait) (kind, version, state); the vat's
//!   [`persist::Kinds`] registry rebuilds it from that portrait, the first
//!   time it is used after a restart (lazily: a vat of a million objects
//!   starts without reading them). Object ids are stable across restarts;
//!   named [roots](Turn::set_root) are how a host finds its objects again;
//! - a committed turn's changed portraits (and root changes) join the
//!   vat's pending batch; the vat writes the batch as one durable
//!   transaction whenever it goes idle or has run [`BATCH`] events (group
//!   commit: one sync for many turns). A failed turn writes nothing;
//! - **output commit**: everything leaving the vat (answers to other vats,
//!   peers and threads, messages to them) is held until the batch that
//!   holds its turn is durable, so no one ever sees an effect that a crash
//!   could undo. If the store fails, the held effects break and the vat
//!   stops ([`Vat::storage_error`]);
//! - a turn that would store something that cannot be stored (a reference
//!   to an ephemeral object, a promise, an object of another vat, a far
//!   reference) fails with an error saying so; nothing is silently lost;
//! - promises do not survive a restart: a persistent object cannot hold
//!   one, and whoever waited on an answer from the old process (another
//!   vat, a CapTP peer) sees it break (for a peer: with its session).
//!
//! [`Turn::inspect`] lets a module recognise its own objects by type
//! (rights amplification: a mint knows its genuine purses without keeping
//! a ledger map, so a payment touches two small objects).
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use pola_vat::{Val, Vat, error, from_fn};
//!
//! let home = Vat::new("home");
//! let away = Vat::new("away");
//! // A counter in `away`: its state changes only by becoming a new one.
//! struct Counter(i64);
//! impl pola_vat::Object for Counter {
//!     fn receive(&self, cx: &mut pola_vat::Turn<'_>, m: &str, _a: Vec<Val>) -> pola_vat::Outcome {
//!         match m {
//!             "inc" => { cx.become_(Counter(self.0 + 1))?; Ok(Val::int(self.0 + 1)) }
//!             _ => Err(error("no such method")),
//!         }
//!     }
//! }
//! let counter = away.spawn(Counter(0));
//! // An object in `home` sends to it and doubles the answer when it comes.
//! let c = counter.clone();
//! let doubler = home.spawn(from_fn(move |cx, _m, _a| {
//!     let answer = cx.send(&c, "inc", vec![]);
//!     Ok(Val::Ref(cx.when(&answer, |_cx, got| Ok(Val::int(got?.as_i64().unwrap_or(0) * 2)))))
//! }));
//! let result = home.send(&doubler, "go", vec![]);
//! assert_eq!(home.block_on(&result, Duration::from_secs(10)).ok(), Some(Val::int(2i64)));
//! home.shutdown();
//! away.shutdown();
//! ```
#![forbid(unsafe_code)]
// `Ref`'s identity (Eq/Ord/Hash) reads only immutable ids; the interior
// mutability clippy sees lives in the vat's inbox, behind the Arc.
#![allow(clippy::mutable_key_type)]

pub mod backend;
pub mod patterns;
pub mod persist;
mod refs;
mod settle;
mod turn;
mod vat;

pub use refs::{
    Message, Outcome, Ref, RefKind, Remote, Resolver, Val, VatId, error, error_message,
};
pub use settle::{Settled, WaitError, listen_external, settled};
pub use turn::{FnObject, Object, ResolverObject, Turn, from_fn};
pub use vat::{
    BATCH, Collected, DEFAULT_QUEUE_LIMIT, Driver, OpenError, Vat, Wake, batch_posts, wait,
};
