//! A caplet as an object of the vat runtime ([`pola_vat::Object`]).
//!
//! [`CapletObject`] wraps a [`CapletModule`] so that a caplet is an ordinary
//! vat object: `vat.spawn(CapletObject::new(module, policy))`. Each message
//! `method(args…)` becomes one delivery of the Syrup list `[method, args…]`;
//! the caplet's sends, resolutions and `when`s become the turn's own sends,
//! settlements and callbacks, applied through the [`Turn`] when the caplet
//! returns, so they follow the vat's transactional rules:
//!
//! - the caplet answers now (its promise is settled during the delivery) or
//!   later (it keeps the resolver; the turn answers with a promise);
//! - if the caplet traps, runs out of fuel or memory, or returns a failure
//!   code, the turn commits nothing the caplet did, except breaking the
//!   promises it can no longer answer; its own answer is a broken
//!   reference with a fixed reason;
//! - a send to a promise is pipelined by the vat as usual.
//!
//! # Answers are placeholders until the turn applies them
//!
//! The vat makes promises only through a [`Turn`], and the caplet runs
//! while its host functions cannot reach the turn. So the handle a caplet
//! gets back from `send` names a placeholder ([`LinkRef`]): a number, not
//! yet a vat promise. Everything the caplet does in a delivery is staged
//! anyway; when it returns, the effects are applied through the turn in
//! order, and the send that made a placeholder makes its vat promise
//! (`cx.promise()` plus `cx.send_message`) before any later effect can
//! use it (a pipelined send to it, a message carrying it, a `when` on it).
//! Then the c-list entries that still hold placeholders are rebound to the
//! vat promises ([`CapletInstance::rebind`]). A placeholder can therefore
//! never be observed unbound, by the caplet or by anyone else. If the
//! delivery fails, its placeholders are rebound to broken references.
//!
//! There is no fixed limit on sends per delivery: each send is a host call
//! charged fuel ([`crate::Config::host_call_fuel`] plus
//! [`crate::Config::message_byte_fuel`] per byte), so the staged effects of
//! one delivery are bounded by its CPU budget (at the defaults at most
//! 5 000 host calls and about 6 MB of messages), and a delivery that runs
//! out commits none of them.
//!
//! Grants: hand a caplet [`grant`]ed references (vat revocable forwarders,
//! [`pola_vat::patterns::revocable`]); revoking shuts the forwarder at
//! once, for the caplet and for anyone it passed the forwarder to.
//!
//! # Storage is the caplet object's state
//!
//! A caplet's storage ([`crate::abi`], "Storage") is part of the caplet
//! object's behaviour, not of its instance: each delivery starts from the
//! object's committed storage, and a delivery that wrote replaces the
//! object's behaviour with one holding the new storage
//! ([`Turn::become_`]). So storage follows the vat's transactional turns
//! exactly: a delivery that traps, runs out of fuel, memory or time, or
//! returns a failure code writes nothing (the host discards its writes, as
//! the turn discards its sends), and a turn that fails for any other reason
//! (for instance the vat refusing to store what the caplet stored) leaves
//! the storage as it was. A fresh instance, after a trap or a restart, sees
//! the same storage; only linear memory is lost.
//!
//! # Persistent caplets
//!
//! In a persistent vat ([`pola_vat::Vat::open`]) a caplet is two objects of
//! registered kinds (register both with [`kinds`]):
//! - a [`CapletCode`] (kind [`CODE_KIND`]): the module's bytes, written once;
//!   revived by compiling them again with the [`Sandbox`] given to
//!   [`kinds`]. It answers `make(policy)` with a new caplet object running
//!   it (`'persistent` or `'per-delivery`).
//! - a [`CapletObject`] made with [`CapletObject::persistent`] (kind
//!   [`CAPLET_KIND`]): its portrait is `{"code": CODE, "policy": POLICY,
//!   "storage": {KEY-BYTES: VALUE, …}}`, a reference to its code object (so
//!   the module is stored once, however many caplets run it, and a storage
//!   write rewrites only the storage) and the storage, whose references are
//!   stored as vat references under the vat's rules: a caplet that stores
//!   a reference the vat cannot keep (an ephemeral object, a promise) fails
//!   that turn with the vat's reason and its storage stays as it was.
//!
//! A revived caplet object gets a fresh instance on its first message, and
//! its storage back.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use pola_syrup::Value;
use pola_vat::persist::{Kinds, Portrait};
use pola_vat::{Message, Object, Outcome, Ref, Resolver, Turn, Val, error};

use crate::error::{CallError, LoadError};
use crate::host::{CapletInstance, CapletModule, Outside, Refused, Sandbox};
use crate::storage::StorageMap;

mod budget;

use budget::{Budget, Charge, Control};
pub use budget::{StopReason, Stopper};

/// A reference as a caplet in a vat holds it: a vat reference, or the
/// answer of a send made during the current delivery, which becomes a vat
/// promise when the delivery's effects are applied (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct LinkRef(Held);

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Held {
    Vat(Ref),
    Answer(u64),
}

impl LinkRef {
    fn vat(r: Ref) -> Self {
        LinkRef(Held::Vat(r))
    }
}

/// A value as the caplet's outside sees it.
type LinkVal = Value<LinkRef>;

fn lower(v: Val) -> LinkVal {
    v.try_map_refs::<LinkRef, std::convert::Infallible>(&mut |r| Ok(Value::Ref(LinkRef::vat(r))))
        .unwrap_or_else(|e| match e {})
}

/// One effect of a caplet run, applied to the turn afterwards.
enum Effect {
    Send {
        target: LinkRef,
        method: String,
        args: Vec<LinkVal>,
        /// The placeholder standing for the answer, if one was asked for.
        answer: Option<u64>,
        /// The message's decoded size, held against the object's pending
        /// budget until the answer settles (or, for a send-only, until the
        /// message is delivered or dropped).
        charge: Charge,
    },
    Settle {
        resolver: Resolver,
        outcome: Result<LinkVal, LinkVal>,
    },
    /// Host-made breakage; applied even when the caplet's run failed.
    Abandon { resolver: Resolver, reason: Val },
    When {
        promise: LinkRef,
        tag: i64,
        /// Counts against [`MAX_WATCHES`] until the callback runs or is
        /// dropped (also when the run fails and its effects are discarded).
        watch: Watch,
        /// The control of the object as it was when the caplet asked: a
        /// callback for an object restarted since ([`RESTART`]) does
        /// nothing.
        control: Arc<Control>,
    },
}

/// Most `when` registrations one caplet object may have pending at once.
/// Each lives in the vat, outside the caplet's memory cap, so without a
/// bound a caplet could pile them up on promises that never settle.
pub const MAX_WATCHES: usize = 4096;

/// The count of a caplet object's pending `when`s.
#[derive(Clone, Default)]
struct Watching(Arc<std::sync::atomic::AtomicUsize>);

impl Watching {
    /// One more pending `when`, unless [`MAX_WATCHES`] are pending.
    fn watch(&self) -> Option<Watch> {
        use std::sync::atomic::Ordering;
        self.0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_WATCHES).then_some(n + 1)
            })
            .ok()
            .map(|_| Watch(self.0.clone()))
    }
}

/// One pending `when`; dropping it releases its place.
struct Watch(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for Watch {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// The [`Outside`] of a caplet that lives in a vat.
#[derive(Default)]
pub struct VatLink {
    effects: Vec<Effect>,
    /// `when`s of this caplet object not yet fired or dropped (shared by
    /// every instance the object uses).
    watching: Watching,
    /// The next placeholder number (never reused in one instance).
    next_answer: u64,
    /// The object's stop flag and pending budget (shared by every
    /// instance the object uses).
    control: Arc<Control>,
    /// Resolvers handed to the caplet, by their promise.
    resolvers: BTreeMap<Ref, Resolver>,
}

impl VatLink {
    fn resolver(&mut self, r: &LinkRef) -> Option<Resolver> {
        match &r.0 {
            Held::Vat(p) => self.resolvers.remove(p),
            Held::Answer(_) => None,
        }
    }
}

fn split(message: LinkVal) -> Result<(String, Vec<LinkVal>), Refused> {
    let Value::List(mut items) = message else {
        return Err(Refused);
    };
    if items.is_empty() {
        return Err(Refused);
    }
    let Value::Symbol(method) = items.remove(0) else {
        return Err(Refused);
    };
    Ok((method, items))
}

/// Reasons given for discarded work: fixed texts, no detail.
fn reason(text: &str) -> Val {
    error(text)
}

impl Outside for VatLink {
    type Ref = LinkRef;

    fn send(&mut self, target: &LinkRef, message: LinkVal) -> Result<LinkRef, Refused> {
        let charge = self.control.reserve(message.footprint()).ok_or(Refused)?;
        let (method, args) = split(message)?;
        let n = self.next_answer;
        self.next_answer = n.checked_add(1).ok_or(Refused)?;
        self.effects.push(Effect::Send {
            target: target.clone(),
            method,
            args,
            answer: Some(n),
            charge,
        });
        Ok(LinkRef(Held::Answer(n)))
    }

    fn send_only(&mut self, target: &LinkRef, message: LinkVal) -> Result<(), Refused> {
        let charge = self.control.reserve(message.footprint()).ok_or(Refused)?;
        let (method, args) = split(message)?;
        self.effects.push(Effect::Send {
            target: target.clone(),
            method,
            args,
            answer: None,
            charge,
        });
        Ok(())
    }

    fn should_stop(&self) -> bool {
        self.control.stopped().is_some()
    }

    fn settle(&mut self, resolver: LinkRef, outcome: Result<LinkVal, LinkVal>) {
        if let Some(r) = self.resolver(&resolver) {
            self.effects.push(Effect::Settle {
                resolver: r,
                outcome,
            });
        }
    }

    fn abandon(&mut self, resolver: LinkRef, reason: LinkVal) {
        if let Some(r) = self.resolver(&resolver) {
            // Host-made reasons are plain data; a reference in one (there is
            // none today) would not outlive the failed delivery.
            let reason = reason
                .try_map_refs::<Ref, ()>(&mut |_| Err(()))
                .unwrap_or_else(|()| error("caplet failed"));
            self.effects.push(Effect::Abandon {
                resolver: r,
                reason,
            });
        }
    }

    fn when(&mut self, promise: &LinkRef, tag: i64) -> Result<(), Refused> {
        let watch = self.watching.watch().ok_or(Refused)?;
        self.effects.push(Effect::When {
            promise: promise.clone(),
            tag,
            watch,
            control: self.control.clone(),
        });
        Ok(())
    }
}

/// How many instances a [`CapletObject`] uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Policy {
    /// One instance for the object's life; its linear memory lasts across
    /// messages (as a cache: it is never stored). After a trap a fresh
    /// instance takes over, with an empty c-list and fresh memory; what the
    /// caplet keeps in its storage (data and references) carries on.
    Persistent,
    /// A fresh instance for every message, discarded afterwards: the
    /// caplet is memoryless and must answer within the delivery (a kept
    /// resolver is broken when the instance goes).
    PerDelivery,
}

/// What a caplet object keeps outside the vat's transactional state: its
/// live instance (a cache; linear memory is never part of the object's
/// state) and its pending `when`s. Shared by every behaviour the object
/// becomes.
struct State {
    /// `None` until the code object is looked up (revived caplets).
    module: Option<CapletModule<VatLink>>,
    instance: Option<CapletInstance<VatLink>>,
    watching: Watching,
    /// The CPU budget across turns; made from the module's configuration
    /// at the first entry.
    budget: Option<Budget>,
    /// The stop flag and the pending budget.
    control: Arc<Control>,
}

/// A caplet as a vat object. See the module docs.
#[derive(Clone)]
pub struct CapletObject {
    state: Arc<Mutex<State>>,
    /// The committed storage (its references are vat references).
    storage: Arc<StorageMap<LinkRef>>,
    /// The code object, for a persistent caplet.
    code: Option<Ref>,
    policy: Policy,
    /// The stop flag and pending budget (also in the state; here too so
    /// that a stopper can be had without the state's lock).
    control: Arc<Control>,
}

/// The method that upgrades a persistent caplet object in place:
/// `UPGRADE(upgrader, code)` with a genuine [`Upgrader`] and a
/// [`CapletCode`] of the same vat. The object keeps its id, its storage and
/// every reference to it, and runs the new code from its next message.
pub const UPGRADE: &str = "pola.upgrade";

/// The method that restarts a caplet object: `RESTART(upgrader)` with a
/// genuine [`Upgrader`] of the vat. The object keeps its id, its code, its
/// storage and every reference to it, and starts afresh: a new instance,
/// a full budget across turns, not stopped (a stopped object is stopped
/// for good until its host restarts it). Whatever the old one was doing
/// ends: the promises it held break, its pending `when`s do nothing when
/// they fire, and its old [`Stopper`]s no longer reach it (take a new one).
/// For a host that gives a person's app another chance on request.
pub const RESTART: &str = "pola.restart";

/// The authority to upgrade the persistent caplets of a vat (see
/// [`UPGRADE`]). Recognised by type, so only a host that makes one and
/// passes a reference to it can upgrade; keep it private. It answers no
/// messages and is never stored.
#[derive(Debug, Default)]
pub struct Upgrader;

impl Object for Upgrader {
    fn receive(&self, _cx: &mut Turn<'_>, _method: &str, _args: Vec<Val>) -> Outcome {
        Err(error("no such method"))
    }
}

/// The kind name of a persistent caplet object.
pub const CAPLET_KIND: &str = "pola.caplet";
/// The kind name of a caplet's code object.
pub const CODE_KIND: &str = "pola.caplet-code";

impl std::fmt::Debug for CapletObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CapletObject").finish_non_exhaustive()
    }
}

impl CapletObject {
    /// An ephemeral caplet object running `module` under `policy`: its
    /// storage lives as long as the vat's process (it has no portrait, so a
    /// persistent vat does not keep it).
    pub fn new(module: CapletModule<VatLink>, policy: Policy) -> Self {
        Self::with(Some(module), None, policy, Arc::default())
    }

    /// A persistent caplet object running the [`CapletCode`] object `code`
    /// (of this vat) under `policy`, with empty storage. The module is
    /// looked up on the first message; if `code` is not a [`CapletCode`],
    /// messages fail with a reason.
    pub fn persistent(code: Ref, policy: Policy) -> Self {
        Self::with(None, Some(code), policy, Arc::default())
    }

    fn with(
        module: Option<CapletModule<VatLink>>,
        code: Option<Ref>,
        policy: Policy,
        storage: Arc<StorageMap<LinkRef>>,
    ) -> Self {
        let control = Arc::<Control>::default();
        CapletObject {
            state: Arc::new(Mutex::new(State {
                module,
                instance: None,
                watching: Watching::default(),
                budget: None,
                control: control.clone(),
            })),
            storage,
            code,
            policy,
            control,
        }
    }

    /// The code object of a persistent caplet.
    pub fn code(&self) -> Option<&Ref> {
        self.code.as_ref()
    }

    /// A persistent caplet with this one's policy and (committed) storage,
    /// running the [`CapletCode`] object `code` instead. The new behaviour
    /// starts with a fresh instance. To upgrade a caplet object in place
    /// (same object, same references to it), send it [`UPGRADE`] with an
    /// [`Upgrader`] and the code.
    fn upgraded(&self, code: Ref) -> Self {
        let mut next = Self::with(None, Some(code), self.policy, self.storage.clone());
        // Still the same object: its stoppers and pending sends carry on.
        next.control = self.control.clone();
        next.state.lock().unwrap_or_else(|p| p.into_inner()).control = self.control.clone();
        next
    }

    /// This object started afresh (see [`RESTART`]): the old incarnation is
    /// stopped, its instance dropped and the promises it held broken.
    fn restarted(&self, cx: &mut Turn<'_>) -> Self {
        self.control.stop(StopReason::Host);
        let module = {
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            for r in retire_stopped(&mut st) {
                cx.break_promise(&r, error(StopReason::Host.public_reason()));
            }
            st.module.clone()
        };
        Self::with(module, self.code.clone(), self.policy, self.storage.clone())
    }

    /// The value the caplet stored under `key` (committed), as vat values.
    pub fn stored(&self, key: &[u8]) -> Option<Val> {
        self.storage.get(key).map(|v| to_vat(v.clone()))
    }

    /// The number of keys in the caplet's committed storage.
    pub fn stored_keys(&self) -> usize {
        self.storage.len()
    }

    /// The bytes used by the caplet's committed storage.
    pub fn stored_bytes(&self) -> usize {
        self.storage.bytes()
    }

    /// A handle with which the host stops this caplet object at once
    /// ([`Stopper::stop`]), from any thread. Every behaviour the object
    /// becomes (storage writes, upgrades) shares it, so take it before
    /// spawning and keep it as long as the object may need stopping:
    ///
    /// ```
    /// use pola_sandbox::vat::{CapletObject, Policy, StopReason, VatLink};
    /// use pola_sandbox::{Config, Sandbox};
    /// use pola_vat::{Val, Vat};
    ///
    /// // A caplet that never answers (it keeps every resolver).
    /// let wasm = wat::parse_str(r#"(module
    ///     (memory (export "memory") 1)
    ///     (func (export "pola_deliver") (param i32 i64) (result i32) (i32.const 0)))"#)?;
    /// let sandbox = Sandbox::<VatLink>::new(Config::default())?;
    /// let object = CapletObject::new(sandbox.load(&wasm)?, Policy::Persistent);
    /// let stopper = object.stopper();
    /// let vat = Vat::new("apps");
    /// let app = vat.spawn(object);
    /// let _pending = vat.send(&app, "hello", vec![]);
    /// // … later, to kill the app or renderer:
    /// stopper.stop();
    /// let answer = vat.send(&app, "hello", vec![]);
    /// assert!(vat.block_on(&answer, std::time::Duration::from_secs(5)).is_err());
    /// assert_eq!(stopper.stopped(), Some(StopReason::Host));
    /// vat.shutdown();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// Inside a turn, `cx.inspect::<CapletObject>(&app)` gives the object
    /// back, and with it a stopper.
    pub fn stopper(&self) -> Stopper {
        Stopper::new(self.control.clone(), Arc::downgrade(&self.state))
    }

    /// Why this caplet object was stopped (by its budget or its host), if
    /// it was.
    pub fn stopped(&self) -> Option<StopReason> {
        self.control.stopped()
    }

    /// The decoded bytes of this object's sends still pending (counted
    /// against [`crate::Config::pending_bytes`]).
    pub fn pending_bytes(&self) -> usize {
        self.control.pending()
    }
}

/// Drops a stopped object's instance; returns the resolvers of the
/// promises it held, for the caller to break with the stop's reason.
fn retire_stopped(st: &mut State) -> Vec<Resolver> {
    let Some(inst) = st.instance.take() else {
        return Vec::new();
    };
    inst.retire()
        .effects
        .into_iter()
        .filter_map(|e| match e {
            Effect::Abandon { resolver, .. } | Effect::Settle { resolver, .. } => Some(resolver),
            Effect::Send { .. } | Effect::When { .. } => None,
        })
        .collect()
}

/// A stored value as vat values (an unbound placeholder, which a vat
/// caplet's committed storage never holds, would read as broken).
fn to_vat(v: Value<LinkRef>) -> Val {
    v.try_map_refs::<Ref, std::convert::Infallible>(&mut |r| {
        Ok(Value::Ref(match r {
            LinkRef(Held::Vat(r)) => r,
            LinkRef(Held::Answer(_)) => Ref::broken(reason("unbound answer")),
        }))
    })
    .unwrap_or_else(|e| match e {})
}

/// A vat value as stored.
fn to_stored(v: Val) -> Value<LinkRef> {
    lower(v)
}

fn policy_name(p: Policy) -> &'static str {
    match p {
        Policy::Persistent => "persistent",
        Policy::PerDelivery => "per-delivery",
    }
}

fn policy_from(v: &Val) -> Option<Policy> {
    match v.as_symbol()? {
        "persistent" => Some(Policy::Persistent),
        "per-delivery" => Some(Policy::PerDelivery),
        _ => None,
    }
}

/// A caplet's module as a persistent vat object: its bytes (written once)
/// and the compiled module. See the module docs.
pub struct CapletCode {
    wasm: Val,
    module: CapletModule<VatLink>,
}

impl std::fmt::Debug for CapletCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CapletCode").finish_non_exhaustive()
    }
}

impl CapletCode {
    /// Checks and compiles `wasm` in `sandbox` (as [`Sandbox::load`]).
    ///
    /// # Errors
    /// As for [`Sandbox::load`].
    pub fn load(sandbox: &Sandbox<VatLink>, wasm: &[u8]) -> Result<Self, LoadError> {
        let module = sandbox.load(wasm)?;
        Ok(CapletCode {
            wasm: Value::bytes(wasm.to_vec()),
            module,
        })
    }

    /// The compiled module.
    pub fn module(&self) -> &CapletModule<VatLink> {
        &self.module
    }

    /// The module's bytes.
    pub fn wasm(&self) -> &[u8] {
        match &self.wasm {
            Value::Bytes(b) => b,
            _ => &[],
        }
    }
}

impl Object for CapletCode {
    fn receive(&self, cx: &mut Turn<'_>, method: &str, args: Vec<Val>) -> Outcome {
        match (method, args.as_slice()) {
            ("make", [policy]) => {
                let policy = policy_from(policy)
                    .ok_or_else(|| error("make: policy is 'persistent or 'per-delivery"))?;
                let me = cx.me().ok_or_else(|| error("make: no code object"))?;
                Ok(Val::Ref(cx.spawn(CapletObject::persistent(me, policy))))
            }
            _ => Err(error("no such method")),
        }
    }

    fn portrait(&self) -> Option<Portrait> {
        Some(Portrait::new(CODE_KIND, 1, self.wasm.clone()))
    }
}

/// Registers the kinds of persistent caplets ([`CODE_KIND`], [`CAPLET_KIND`])
/// in `kinds`; revived code is compiled again in `sandbox`.
pub fn kinds(kinds: &mut Kinds, sandbox: &Sandbox<VatLink>) {
    let sandbox = sandbox.clone();
    kinds_with(kinds, move |_| sandbox.clone());
}

/// Like [`kinds`], compiling revived code in the sandbox `pick` chooses
/// for its module bytes (so each caplet keeps its own quotas after a
/// restart, e.g. chosen by the module's hash).
pub fn kinds_with(
    kinds: &mut Kinds,
    pick: impl Fn(&[u8]) -> Sandbox<VatLink> + Send + Sync + 'static,
) {
    kinds.add(CODE_KIND, 1, move |_version, state| {
        let Value::Bytes(wasm) = &state else {
            return Err(error(
                "cannot revive caplet code: stored state is not bytes",
            ));
        };
        CapletCode::load(&pick(wasm), wasm)
            .map_err(|e| error(format!("cannot revive caplet code: {e}")))
    });
    kinds.add(CAPLET_KIND, 1, |_version, state| revive_caplet(state));
}

/// Rebuilds a persistent caplet object from its portrait's state.
fn revive_caplet(state: Val) -> Result<CapletObject, Val> {
    let bad = |what: &str| error(format!("cannot revive caplet: {what}"));
    let Value::Dict(mut d) = state else {
        return Err(bad("state is not a dictionary"));
    };
    let code = match d.remove(&Value::str("code")) {
        Some(Value::Ref(r)) => r,
        _ => return Err(bad("no code reference")),
    };
    let policy = d
        .get(&Value::str("policy"))
        .and_then(policy_from)
        .ok_or_else(|| bad("unknown policy"))?;
    let Some(Value::Dict(entries)) = d.remove(&Value::str("storage")) else {
        return Err(bad("storage is not a dictionary"));
    };
    let mut restored = Vec::with_capacity(entries.len());
    for (k, v) in entries {
        let Value::Bytes(k) = k else {
            return Err(bad("a storage key is not bytes"));
        };
        restored.push((k.to_vec(), to_stored(v)));
    }
    Ok(CapletObject::with(
        None,
        Some(code),
        policy,
        Arc::new(StorageMap::restore(restored)),
    ))
}

/// Makes a revocable grant of `target` for a caplet: returns
/// `(forwarder, revoker)`; hand the forwarder to the caplet, keep the
/// revoker (send it `revoke`). A thin name for
/// [`pola_vat::patterns::revocable`].
pub fn grant(cx: &mut Turn<'_>, target: Ref) -> (Ref, Ref) {
    pola_vat::patterns::revocable(cx, target)
}

fn failed(err: &CallError) -> Outcome {
    // A broken reference as the answer: the turn still commits, so the
    // host-made breakage of other promises is applied.
    Ok(Value::Ref(Ref::broken(error(err.public_reason()))))
}

/// The vat promises made for placeholders while applying one delivery.
type Answers = BTreeMap<u64, Ref>;

fn real(answers: &Answers, r: LinkRef) -> Ref {
    match r.0 {
        Held::Vat(r) => r,
        // Cannot happen: a placeholder is made by an earlier effect of the
        // same delivery, and rebound before the next one. Be safe anyway.
        Held::Answer(n) => answers
            .get(&n)
            .cloned()
            .unwrap_or_else(|| Ref::broken(reason("no such answer"))),
    }
}

fn raise(answers: &Answers, v: LinkVal) -> Val {
    v.try_map_refs::<Ref, std::convert::Infallible>(&mut |r| Ok(Value::Ref(real(answers, r))))
        .unwrap_or_else(|e| match e {})
}

/// Runs one entry into the caplet object `obj` (its current behaviour)
/// within turn `cx` and applies its effects.
fn run(
    obj: &CapletObject,
    cx: &mut Turn<'_>,
    entry: impl FnOnce(&mut CapletInstance<VatLink>, &mut Turn<'_>) -> Result<Option<Ref>, CallError>,
) -> Outcome {
    let mut guard = obj.state.lock().unwrap_or_else(|p| p.into_inner());
    let st = &mut *guard;
    if let Some(why) = st.control.stopped() {
        for r in retire_stopped(st) {
            cx.break_promise(&r, error(why.public_reason()));
        }
        return Err(error(why.public_reason()));
    }
    if st.module.is_none() {
        let code = obj
            .code
            .as_ref()
            .and_then(|c| cx.inspect::<CapletCode>(c))
            .ok_or_else(|| error("cannot run caplet: its code is unavailable"))?;
        st.module = Some(code.module.clone());
    }
    // The budget across turns: what this entry may spend.
    let allowance = {
        let Some(module) = st.module.as_ref() else {
            return failed(&CallError::Engine);
        };
        let config = module.config();
        st.control.set_pending_limit(config.pending_bytes);
        st.budget
            .get_or_insert_with(|| Budget::new(config))
            .allowance(Instant::now())
    };
    let Some((entry_fuel, limited)) = allowance else {
        st.control.stop(StopReason::Cpu);
        return stop_now(st, cx, StopReason::Cpu, Vec::new());
    };
    if st.instance.as_ref().is_none_or(CapletInstance::is_dead) {
        st.instance = None;
        let link = VatLink {
            watching: st.watching.clone(),
            control: st.control.clone(),
            ..VatLink::default()
        };
        let Some(module) = st.module.as_ref() else {
            return failed(&CallError::Engine);
        };
        match module.instantiate(link) {
            Ok(i) => st.instance = Some(i),
            Err(e) => return failed(&e),
        }
    }
    let Some(inst) = st.instance.as_mut() else {
        return failed(&CallError::Engine);
    };
    // Every entry starts from the object's committed storage.
    inst.set_storage(obj.storage.clone());
    inst.set_fuel_per_entry(entry_fuel);
    let first_answer = inst.outside().next_answer;
    let spent_before = inst.fuel_spent();
    let result = entry(inst, cx);
    let spent = inst.fuel_spent().saturating_sub(spent_before);
    if let Some(b) = st.budget.as_mut() {
        b.spend(spent);
    }
    if limited && result == Err(CallError::OutOfFuel) {
        // Out of fuel because the budget across turns was low.
        st.control.stop(StopReason::Cpu);
    }
    if let Some(why) = st.control.stopped() {
        // Stopped during this entry (by its budgets or its host): nothing
        // it did is committed.
        let effects = match st.instance.take() {
            Some(inst) => inst.retire().effects,
            None => Vec::new(),
        };
        return stop_now(st, cx, why, effects);
    }
    let Some(inst) = st.instance.as_mut() else {
        return failed(&CallError::Engine);
    };
    // What the entry committed (the same map if it failed or wrote nothing).
    let stored = inst.storage().clone();
    let (effects, end_answer) = if obj.policy == Policy::PerDelivery {
        // Retiring the instance breaks anything it still held, as effects.
        match st.instance.take() {
            Some(old) => {
                let link = old.retire();
                (link.effects, link.next_answer)
            }
            None => (Vec::new(), first_answer),
        }
    } else {
        let link = inst.outside_mut();
        (std::mem::take(&mut link.effects), link.next_answer)
    };
    let mut answers = Answers::new();
    let answer = match result {
        Ok(answer) => {
            for e in effects {
                apply(cx, e, &mut answers);
            }
            if !Arc::ptr_eq(&stored, &obj.storage) {
                let mut next = stored;
                if end_answer > first_answer {
                    // Answers stored in this delivery name their promises.
                    Arc::make_mut(&mut next).rebind(&mut |g| match g {
                        r @ LinkRef(Held::Answer(_)) => {
                            Some(LinkRef::vat(real(&answers, r.clone())))
                        }
                        _ => None,
                    });
                }
                cx.become_(CapletObject {
                    state: obj.state.clone(),
                    storage: next,
                    code: obj.code.clone(),
                    policy: obj.policy,
                    control: obj.control.clone(),
                })?;
            }
            answer.map_or(Ok(Value::undefined()), |p| Ok(Value::Ref(p)))
        }
        Err(err) => {
            for e in effects {
                match e {
                    Effect::Abandon { .. } => apply(cx, e, &mut answers),
                    // The caplet consumed this resolver, but its settlement
                    // is discarded with the rest of the failed run.
                    Effect::Settle { resolver, .. } => {
                        cx.break_promise(&resolver, error(err.public_reason()));
                    }
                    Effect::Send { .. } | Effect::When { .. } => {}
                }
            }
            failed(&err)
        }
    };
    // The placeholders still in the c-list now name their vat promises (or
    // are broken, if the run failed and its sends were discarded).
    if end_answer > first_answer
        && let Some(inst) = st.instance.as_mut()
    {
        inst.rebind((first_answer..end_answer).map(|n| {
            let bound = answers
                .remove(&n)
                .unwrap_or_else(|| Ref::broken(reason("send discarded")));
            (LinkRef(Held::Answer(n)), LinkRef::vat(bound))
        }));
    }
    answer
}

/// Ends a stopped object's entry: drops its instance (already taken, its
/// effects given), breaks every promise it held or settled with the
/// stop's reason, discards everything else it did, and answers with the
/// reason.
fn stop_now(st: &mut State, cx: &mut Turn<'_>, why: StopReason, effects: Vec<Effect>) -> Outcome {
    let reason = || error(why.public_reason());
    let mut held = retire_stopped(st);
    for e in effects {
        match e {
            Effect::Abandon { resolver, .. } | Effect::Settle { resolver, .. } => {
                held.push(resolver);
            }
            Effect::Send { .. } | Effect::When { .. } => {}
        }
    }
    for r in held {
        cx.break_promise(&r, reason());
    }
    Ok(Value::Ref(Ref::broken(reason())))
}

fn apply(cx: &mut Turn<'_>, e: Effect, answers: &mut Answers) {
    match e {
        Effect::Send {
            target,
            method,
            args,
            answer,
            charge,
        } => {
            let target = real(answers, target);
            let args = args.into_iter().map(|a| raise(answers, a)).collect();
            let resolver = match answer {
                Some(n) => {
                    let (promise, resolver) = cx.promise();
                    answers.insert(n, promise.clone());
                    // The message's bytes count until its answer settles
                    // (or the vat drops the callback with the promise).
                    cx.when(&promise, move |_, _| {
                        drop(charge);
                        Ok(Value::undefined())
                    });
                    Some(resolver)
                }
                // A message to another vat leaves this one when its session
                // takes it (and must stay a send-only on the wire): it
                // counts no longer.
                None if target.remote_target().is_some() => {
                    drop(charge);
                    None
                }
                // A send-only message in this vat counts until it is
                // delivered (the vat then settles this resolver with the
                // receiver's outcome, which nobody reads) or dropped with
                // it (for instance queued on a promise that never settles).
                None => Some(Resolver::from_fn(move |_| drop(charge))),
            };
            cx.send_message(&target, Message::new(method, args), resolver);
        }
        Effect::Settle { resolver, outcome } => {
            let outcome = match outcome {
                Ok(v) => Ok(raise(answers, v)),
                Err(v) => Err(raise(answers, v)),
            };
            cx.settle(&resolver, outcome);
        }
        Effect::Abandon { resolver, reason } => cx.break_promise(&resolver, reason),
        Effect::When {
            promise,
            tag,
            watch,
            control,
        } => {
            let promise = real(answers, promise);
            cx.when(&promise, move |cx2, outcome| {
                drop(watch);
                let outcome = match outcome {
                    Ok(v) => Ok(lower(v)),
                    Err(v) => Err(lower(v)),
                };
                // The callback runs as the caplet object: its behaviour now
                // holds the storage committed since the `when`.
                let me = cx2.me().ok_or_else(|| error("caplet object is gone"))?;
                let obj = cx2
                    .inspect::<CapletObject>(&me)
                    .ok_or_else(|| error("caplet object is gone"))?;
                if !Arc::ptr_eq(&obj.control, &control) {
                    // Asked for before a restart: the caplet that asked is
                    // gone.
                    return Ok(Value::undefined());
                }
                run(&obj, cx2, |inst, _| {
                    inst.notify(tag, outcome).map(|()| None)
                })
            });
        }
    }
}

impl Object for CapletObject {
    fn receive(&self, cx: &mut Turn<'_>, method: &str, args: Vec<Val>) -> Outcome {
        // The host's in-place upgrade: only with a genuine upgrader of this
        // vat and a genuine code object; anything else is the caplet's.
        if method == UPGRADE
            && self.code.is_some()
            && let [Value::Ref(key), Value::Ref(code)] = args.as_slice()
            && cx.inspect::<Upgrader>(key).is_some()
            && cx.inspect::<CapletCode>(code).is_some()
        {
            cx.become_(self.upgraded(code.clone()))?;
            return Ok(Value::null());
        }
        if method == RESTART
            && let [Value::Ref(key)] = args.as_slice()
            && cx.inspect::<Upgrader>(key).is_some()
        {
            let fresh = self.restarted(cx);
            cx.become_(fresh)?;
            return Ok(Value::null());
        }
        let mut items = Vec::with_capacity(args.len().saturating_add(1));
        items.push(Value::sym(method));
        items.extend(args.into_iter().map(lower));
        let message = Value::List(items);
        run(self, cx, move |inst, cx| {
            let (promise, resolver) = cx.promise();
            inst.outside_mut()
                .resolvers
                .insert(promise.clone(), resolver);
            inst.deliver(message, Some(LinkRef::vat(promise.clone())))?;
            Ok(Some(promise))
        })
    }

    // A `Ref` is ordered by identity, which its interior state never
    // changes, so it is a sound map key.
    #[allow(clippy::mutable_key_type)]
    fn portrait(&self) -> Option<Portrait> {
        let code = self.code.clone()?;
        let storage = self
            .storage
            .iter()
            .map(|(k, v)| (Value::bytes(k.to_vec()), to_vat(v.clone())))
            .collect();
        let state = Value::Dict(
            [
                (Value::str("code"), Value::Ref(code)),
                (Value::str("policy"), Value::sym(policy_name(self.policy))),
                (Value::str("storage"), Value::Dict(storage)),
            ]
            .into_iter()
            .collect(),
        );
        Some(Portrait::new(CAPLET_KIND, 1, state))
    }
}
