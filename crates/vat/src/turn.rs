//! Objects and turns: the [`Object`] trait and the [`Turn`] context an object
//! runs in.
//!
//! Invariant (upheld by [`Turn`]): nothing a turn does is visible outside it
//! until the turn returns `Ok`. Every effect (a new object, a `become`, a
//! send, a resolution, a `when`) is staged in the turn's [`Delta`]; the vat
//! commits the delta after a successful turn and drops it after a failed one.

use std::borrow::Cow;
use std::rc::Rc;
use std::sync::Arc;

use crate::persist::Portrait;
use crate::refs::{
    Message, Outcome, Ref, RefInner, RefKind, Resolver, ResolverInner, Slot, Val, VatId, error,
};
use crate::vat::{ObjectTable, Persist, VatShared};

/// An object's behaviour: what it does with a message.
///
/// Behaviours are immutable (`&self`): an object changes state by staging a
/// new behaviour with [`Turn::become_`], which takes effect only if the turn
/// commits. A behaviour that uses interior mutability opts out of the
/// transactional rollback for that state (documented at the crate root).
///
/// Implementable by any crate; must be `Send` so it can be created on one
/// thread and moved into a vat (it then stays on the vat's thread).
pub trait Object: std::any::Any + Send + 'static {
    /// Handles one message. Return the answer (any value, including a
    /// promise ref to answer later) or `Err(reason)` to fail the turn: the
    /// turn's effects are discarded and the answer promise breaks with
    /// `reason`. A panic fails the turn the same way.
    ///
    /// # Errors
    /// Whatever reason the object chooses; conventionally [`error`] records.
    fn receive(&self, cx: &mut Turn<'_>, method: &str, args: Vec<Val>) -> Outcome;

    /// What this object looks like, if it is persistent: its kind, version
    /// and state (see [`crate::persist`]). The default, `None`, makes the
    /// object ephemeral: it lives only as long as the vat's process, and a
    /// persistent object may not hold it.
    fn portrait(&self) -> Option<Portrait> {
        None
    }
}

/// An object made from a closure (see [`from_fn`]).
pub struct FnObject<F>(F);

impl<F> Object for FnObject<F>
where
    F: Fn(&mut Turn<'_>, &str, Vec<Val>) -> Outcome + Send + 'static,
{
    fn receive(&self, cx: &mut Turn<'_>, method: &str, args: Vec<Val>) -> Outcome {
        (self.0)(cx, method, args)
    }
}

/// Makes an object from a closure `(turn, method, args) -> outcome`.
pub fn from_fn<F>(f: F) -> FnObject<F>
where
    F: Fn(&mut Turn<'_>, &str, Vec<Val>) -> Outcome + Send + 'static,
{
    FnObject(f)
}

/// An object's slot and behaviour.
pub(crate) type Entry = (Arc<Slot>, Rc<dyn Object>);

/// A callback registered with [`Turn::when`].
pub(crate) type Callback = Box<dyn for<'t> FnOnce(&mut Turn<'t>, Outcome) -> Outcome + Send>;

/// Who wants to hear about a settlement.
pub(crate) enum Listener {
    /// Settle this resolver with the outcome.
    Resolver(Resolver),
    /// Run this callback in a later turn of this vat, settle `result` with
    /// its outcome.
    Callback {
        cb: Callback,
        result: Resolver,
        me: Option<Arc<Slot>>,
    },
}

/// One effect, staged in a turn or pending in the vat's work list.
pub(crate) enum Work {
    Send {
        target: Ref,
        msg: Message,
        resolver: Option<Resolver>,
        hops: u32,
    },
    Resolve {
        resolver: Resolver,
        outcome: Outcome,
    },
    Listen {
        target: Ref,
        listener: Listener,
        hops: u32,
    },
}

/// The staged effects of one turn.
#[derive(Default)]
pub(crate) struct Delta {
    /// New objects and new behaviours, in order; the last entry for a slot
    /// wins.
    pub(crate) behaviours: Vec<(Arc<Slot>, Rc<dyn Object>)>,
    /// New promises.
    pub(crate) promises: Vec<Arc<Slot>>,
    /// Sends, resolutions and listens, in order.
    pub(crate) ops: Vec<Work>,
    /// Roots set (`Some`) or removed (`None`), in order.
    pub(crate) roots: Vec<(String, Option<Ref>)>,
}

/// The context of one turn: the only way an object acts on the world.
pub struct Turn<'a> {
    pub(crate) shared: &'a Arc<VatShared>,
    pub(crate) objects: &'a ObjectTable,
    pub(crate) delta: Delta,
    pub(crate) me: Option<Arc<Slot>>,
    depth: u32,
    promise_count: usize,
    /// The vat's persistence, if it has any (to revive stored objects).
    persist: Option<&'a std::cell::RefCell<Persist>>,
    /// Stored objects revived during this turn (unchanged by it; the vat
    /// keeps them whatever the turn's outcome).
    pub(crate) revived: crate::vat::IdMap<Entry>,
}

/// Nesting limit for synchronous calls (a runaway recursion fails the turn
/// instead of overflowing the vat thread's stack).
const MAX_CALL_DEPTH: u32 = 200;

impl<'a> Turn<'a> {
    pub(crate) fn new(
        shared: &'a Arc<VatShared>,
        objects: &'a ObjectTable,
        me: Option<Arc<Slot>>,
        promise_count: usize,
        persist: Option<&'a std::cell::RefCell<Persist>>,
    ) -> Self {
        Turn {
            shared,
            objects,
            delta: Delta::default(),
            me,
            depth: 0,
            promise_count,
            persist,
            revived: crate::vat::IdMap::default(),
        }
    }

    /// The current behaviour of near object `slot`: staged in this turn,
    /// committed, or revived from the store.
    fn behaviour_of(&mut self, slot: &Arc<Slot>) -> Result<Rc<dyn Object>, Val> {
        if let Some(b) = self
            .delta
            .behaviours
            .iter()
            .rev()
            .find(|(s, _)| s.id == slot.id)
            .map(|(_, b)| b.clone())
            .or_else(|| self.objects.get(&slot.id).map(|e| e.behaviour.clone()))
            .or_else(|| self.revived.get(&slot.id).map(|(_, b)| b.clone()))
        {
            return Ok(b);
        }
        let Some(persist) = self.persist else {
            return Err(error("no such object"));
        };
        let revived = persist.borrow_mut().revive(self.shared, slot.id)?;
        match revived {
            Some(b) => {
                self.shared.adopt(slot);
                self.revived.insert(slot.id, (slot.clone(), b.clone()));
                Ok(b)
            }
            None => Err(error("no such object")),
        }
    }

    /// The behaviour of near object `target` if it is a `T`: rights
    /// amplification by type. Only the module that defines `T` can make
    /// one, so a `Some` proves the object is genuine (a purse of this
    /// mint, say), which no message to it could prove. `None` for anything
    /// else (another type, a far or broken ref, a promise).
    pub fn inspect<T: Object>(&mut self, target: &Ref) -> Option<Rc<T>> {
        let slot = match &target.0 {
            RefInner::Object(s) if s.vat.id == self.shared.id => s.clone(),
            _ => return None,
        };
        let b: Rc<dyn std::any::Any> = self.behaviour_of(&slot).ok()?;
        b.downcast::<T>().ok()
    }

    /// Names `target` (a persistent object of this vat) as root `name` of
    /// this persistent vat, or removes the root with `None`, when this
    /// turn commits. Roots are how a restarted host finds its objects
    /// again ([`crate::Vat::root`]).
    ///
    /// # Errors
    /// If this vat is not persistent.
    pub fn set_root(&mut self, name: &str, target: Option<&Ref>) -> Result<(), Val> {
        if self.persist.is_none() {
            return Err(error("set_root: this vat is not persistent"));
        }
        self.delta.roots.push((name.to_owned(), target.cloned()));
        Ok(())
    }

    /// The vat this turn runs in.
    pub fn vat_id(&self) -> VatId {
        self.shared.id
    }

    /// How many objects this vat's table holds (committed ones; for
    /// monitoring and tests of collection).
    pub fn live_objects(&self) -> usize {
        self.objects.len()
    }

    /// How many promises this vat's table holds (for monitoring and tests
    /// of collection).
    pub fn live_promises(&self) -> usize {
        self.promise_count
    }

    /// A reference to the object whose method (or callback) is running;
    /// `None` in a turn started with [`crate::Vat::run`].
    pub fn me(&self) -> Option<Ref> {
        self.me.clone().map(|s| Ref(RefInner::Object(s)))
    }

    /// The kind of `r` as seen from this vat.
    pub fn kind(&self, r: &Ref) -> RefKind {
        r.kind_from(self.shared.id)
    }

    /// Whether `r` is an object in this vat (callable with [`Turn::call`]).
    pub fn is_near(&self, r: &Ref) -> bool {
        self.kind(r) == RefKind::Near
    }

    /// Creates a new object in this vat (it exists once the turn commits).
    pub fn spawn(&mut self, object: impl Object) -> Ref {
        let slot = Slot::new(self.shared);
        self.delta
            .behaviours
            .push((slot.clone(), Rc::new(object) as Rc<dyn Object>));
        Ref(RefInner::Object(slot))
    }

    /// Replaces the running object's behaviour with `next` when the turn
    /// commits (Goblins' `bcom`). Later synchronous calls in this turn
    /// already see `next`.
    ///
    /// # Errors
    /// Outside an object's turn (in [`crate::Vat::run`]) there is no object
    /// to change.
    #[doc(alias = "become")]
    pub fn become_(&mut self, next: impl Object) -> Result<(), Val> {
        let me = self
            .me
            .clone()
            .ok_or_else(|| error("become outside an object"))?;
        self.delta
            .behaviours
            .push((me, Rc::new(next) as Rc<dyn Object>));
        Ok(())
    }

    /// Sets the behaviour of an object spawned earlier in this same turn
    /// (to build cycles: spawn A, spawn B holding A, then `init` A holding
    /// B). Only objects born in this turn can be changed this way.
    ///
    /// # Errors
    /// If `target` was not spawned in this turn.
    pub fn init(&mut self, target: &Ref, behaviour: impl Object) -> Result<(), Val> {
        let slot = match &target.0 {
            RefInner::Object(s)
                if s.vat.id == self.shared.id
                    && !self.objects.contains_key(&s.id)
                    && self.delta.behaviours.iter().any(|(b, _)| b.id == s.id) =>
            {
                s.clone()
            }
            _ => return Err(error("init: not an object spawned in this turn")),
        };
        self.delta
            .behaviours
            .push((slot, Rc::new(behaviour) as Rc<dyn Object>));
        Ok(())
    }

    /// A fresh promise of this vat and the right to settle it.
    pub fn promise(&mut self) -> (Ref, Resolver) {
        let slot = Slot::new(self.shared);
        self.delta.promises.push(slot.clone());
        (
            Ref(RefInner::Promise(slot.clone())),
            Resolver(ResolverInner::Promise(slot)),
        )
    }

    /// Eventual send: delivers `method(args)` to `target` in a later turn
    /// and returns a promise for the answer. Works on every kind of ref:
    /// sends to a promise are queued and forwarded to its resolution in
    /// order (pipelining); sends to a broken ref break the answer.
    pub fn send(
        &mut self,
        target: &Ref,
        method: impl Into<Cow<'static, str>>,
        args: Vec<Val>,
    ) -> Ref {
        let (answer, resolver) = self.promise();
        self.send_message(target, Message::new(method, args), Some(resolver));
        answer
    }

    /// Eventual send without an answer.
    pub fn send_only(
        &mut self,
        target: &Ref,
        method: impl Into<Cow<'static, str>>,
        args: Vec<Val>,
    ) {
        self.send_message(target, Message::new(method, args), None);
    }

    /// Eventual send of a prepared message, settling `resolver` (if any)
    /// with the answer.
    pub fn send_message(&mut self, target: &Ref, msg: Message, resolver: Option<Resolver>) {
        self.delta.ops.push(Work::Send {
            target: target.clone(),
            msg,
            resolver,
            hops: 0,
        });
    }

    /// Immediate call of a near object, inside this turn. Its effects join
    /// this turn's delta; if it returns `Err` they are undone (a nested
    /// savepoint) and the error is returned. A panic fails the whole turn.
    ///
    /// # Errors
    /// The callee's error, or an error if `target` is not near.
    pub fn call(&mut self, target: &Ref, method: &str, args: Vec<Val>) -> Outcome {
        let slot = match &target.0 {
            RefInner::Object(s) if s.vat.id == self.shared.id => s.clone(),
            _ => return Err(error("call: not a near object")),
        };
        let behaviour = self.behaviour_of(&slot)?;
        let save = (
            self.delta.behaviours.len(),
            self.delta.promises.len(),
            self.delta.ops.len(),
            crate::vat::staged_len(),
            self.delta.roots.len(),
        );
        if self.depth >= MAX_CALL_DEPTH {
            return Err(error("call: nesting too deep"));
        }
        let caller = self.me.replace(slot);
        self.depth += 1;
        let outcome = behaviour.receive(self, method, args);
        self.depth -= 1;
        self.me = caller;
        if outcome.is_err() {
            self.delta.behaviours.truncate(save.0);
            self.delta.promises.truncate(save.1);
            self.delta.ops.truncate(save.2);
            crate::vat::truncate_staged(save.3);
            self.delta.roots.truncate(save.4);
        }
        outcome
    }

    /// Registers `callback` to run in a later turn of this vat once `target`
    /// settles (`Ok(value)` or `Err(reason)`); returns a promise for the
    /// callback's outcome. The callback runs as the registering object
    /// (`me` and `become_` refer to it; mind that the behaviour it captured
    /// may have been replaced since). If the registering turn fails, the
    /// callback is never registered. A settled target (a near or far object, plain
    /// data via a resolved promise, a broken ref) still runs the callback in
    /// a later turn, never in this one.
    pub fn when<F>(&mut self, target: &Ref, callback: F) -> Ref
    where
        F: for<'t> FnOnce(&mut Turn<'t>, Outcome) -> Outcome + Send + 'static,
    {
        let (result, resolver) = self.promise();
        self.delta.ops.push(Work::Listen {
            target: target.clone(),
            listener: Listener::Callback {
                cb: Box::new(callback),
                result: resolver,
                me: self.me.clone(),
            },
            hops: 0,
        });
        result
    }

    /// Like [`Turn::when`] on a value: a ref is awaited, plain data settles
    /// at once (still in a later turn).
    pub fn when_value<F>(&mut self, value: Val, callback: F) -> Ref
    where
        F: for<'t> FnOnce(&mut Turn<'t>, Outcome) -> Outcome + Send + 'static,
    {
        match value {
            Val::Ref(r) => self.when(&r, callback),
            data => {
                let (p, r) = self.promise();
                self.resolve(&r, data);
                self.when(&p, callback)
            }
        }
    }

    /// Settles `resolver` when this turn commits.
    pub fn settle(&mut self, resolver: &Resolver, outcome: Outcome) {
        self.delta.ops.push(Work::Resolve {
            resolver: resolver.clone(),
            outcome,
        });
    }

    /// Fulfils `resolver` with `value` when this turn commits.
    pub fn resolve(&mut self, resolver: &Resolver, value: Val) {
        self.settle(resolver, Ok(value));
    }

    /// Breaks `resolver` with `reason` when this turn commits.
    pub fn break_promise(&mut self, resolver: &Resolver, reason: Val) {
        self.settle(resolver, Err(reason));
    }

    pub(crate) fn into_parts(self) -> (Delta, crate::vat::IdMap<Entry>) {
        (self.delta, self.revived)
    }
}

/// An object that settles a resolver when told to: methods `fulfill(value)`
/// and `break(reason)`. Lets a resolver travel as a capability.
pub struct ResolverObject(pub Resolver);

impl Object for ResolverObject {
    fn receive(&self, cx: &mut Turn<'_>, method: &str, mut args: Vec<Val>) -> Outcome {
        let v = if args.is_empty() {
            Val::null()
        } else {
            args.swap_remove(0)
        };
        match method {
            "fulfill" | "resolve" => cx.resolve(&self.0, v),
            "break" => cx.break_promise(&self.0, v),
            _ => return Err(error("no such method")),
        }
        Ok(Val::null())
    }
}
