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
//! - if the caplet traps, runs out of fuel or memory, the turn commits
//!   nothing the caplet did, except breaking the promises it can no longer
//!   answer; its own answer is a broken reference with a fixed reason;
//! - a send to a promise is pipelined by the vat as usual.
//!
//! Grants: hand a caplet [`grant`]ed references (vat revocable forwarders,
//! [`pola_vat::patterns::revocable`]); revoking shuts the forwarder at
//! once, for the caplet and for anyone it passed the forwarder to.
//!
//! Limitation: the vat offers promise creation only through a `Turn`, and
//! the caplet runs while the turn is lent to no one, so the answer promises
//! for a caplet's `send`s are made before each delivery
//! ([`CapletObject::with_sends_per_delivery`], default 8). A caplet that
//! sends more than that with answers in one delivery gets
//! [`Code::Refused`](crate::abi::Code::Refused) for the rest (`send_only`
//! is unlimited).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use pola_syrup::Value;
use pola_vat::{Message, Object, Outcome, Ref, Resolver, Turn, Val, error};

use crate::error::CallError;
use crate::host::{CapletInstance, CapletModule, Outside, Refused};

/// One effect of a caplet run, applied to the turn afterwards.
enum Effect {
    Send {
        target: Ref,
        method: String,
        args: Vec<Val>,
        resolver: Option<Resolver>,
    },
    Settle {
        resolver: Resolver,
        outcome: Outcome,
    },
    /// Host-made breakage; applied even when the caplet's run failed.
    Abandon {
        resolver: Resolver,
        reason: Val,
    },
    When {
        promise: Ref,
        tag: i64,
    },
}

/// The [`Outside`] of a caplet that lives in a vat.
pub struct VatLink {
    effects: Vec<Effect>,
    /// Answer promises made ahead for the caplet's sends.
    spare: Vec<(Ref, Resolver)>,
    /// Resolvers handed to the caplet, by their promise.
    resolvers: BTreeMap<Ref, Resolver>,
}

impl VatLink {
    fn new() -> Self {
        VatLink {
            effects: Vec::new(),
            spare: Vec::new(),
            resolvers: BTreeMap::new(),
        }
    }
}

fn split(message: Val) -> Result<(String, Vec<Val>), Refused> {
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

impl Outside for VatLink {
    type Ref = Ref;

    fn send(&mut self, target: &Ref, message: Val) -> Result<Ref, Refused> {
        let (method, args) = split(message)?;
        let (promise, resolver) = self.spare.pop().ok_or(Refused)?;
        self.effects.push(Effect::Send {
            target: target.clone(),
            method,
            args,
            resolver: Some(resolver),
        });
        Ok(promise)
    }

    fn send_only(&mut self, target: &Ref, message: Val) -> Result<(), Refused> {
        let (method, args) = split(message)?;
        self.effects.push(Effect::Send {
            target: target.clone(),
            method,
            args,
            resolver: None,
        });
        Ok(())
    }

    fn settle(&mut self, resolver: Ref, outcome: Outcome) {
        if let Some(r) = self.resolvers.remove(&resolver) {
            self.effects.push(Effect::Settle {
                resolver: r,
                outcome,
            });
        }
    }

    fn abandon(&mut self, resolver: Ref, reason: Val) {
        if let Some(r) = self.resolvers.remove(&resolver) {
            self.effects.push(Effect::Abandon {
                resolver: r,
                reason,
            });
        }
    }

    fn when(&mut self, promise: &Ref, tag: i64) -> Result<(), Refused> {
        self.effects.push(Effect::When {
            promise: promise.clone(),
            tag,
        });
        Ok(())
    }
    // `attenuate` keeps its refusing default: inside a vat, grants are vat
    // forwarders (see `grant`), which can be passed on as they are.
}

/// How many instances a [`CapletObject`] uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Policy {
    /// One instance for the object's life; its state persists across
    /// messages. After a trap a fresh instance takes over (with an empty
    /// c-list: everything the old one held is gone).
    Persistent,
    /// A fresh instance for every message, discarded afterwards: the
    /// caplet is memoryless and must answer within the delivery (a kept
    /// resolver is broken when the instance goes).
    PerDelivery,
}

struct State {
    module: CapletModule<VatLink>,
    instance: Option<CapletInstance<VatLink>>,
    policy: Policy,
    sends_per_delivery: usize,
}

/// A caplet as a vat object. See the module docs.
#[derive(Clone)]
pub struct CapletObject {
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for CapletObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CapletObject").finish_non_exhaustive()
    }
}

impl CapletObject {
    /// A caplet object running `module` under `policy`.
    pub fn new(module: CapletModule<VatLink>, policy: Policy) -> Self {
        CapletObject {
            state: Arc::new(Mutex::new(State {
                module,
                instance: None,
                policy,
                sends_per_delivery: 8,
            })),
        }
    }

    /// Sets how many sends with answers the caplet may make per delivery.
    #[must_use]
    pub fn with_sends_per_delivery(self, n: usize) -> Self {
        if let Ok(mut s) = self.state.lock() {
            s.sends_per_delivery = n;
        }
        self
    }
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

/// Runs one entry into the caplet within turn `cx` and applies its effects.
fn run(
    state: &Arc<Mutex<State>>,
    cx: &mut Turn<'_>,
    entry: impl FnOnce(&mut CapletInstance<VatLink>, &mut Turn<'_>) -> Result<Option<Ref>, CallError>,
) -> Outcome {
    let mut guard = state.lock().unwrap_or_else(|p| p.into_inner());
    let st = &mut *guard;
    if st.instance.as_ref().is_none_or(CapletInstance::is_dead) {
        st.instance = None;
        match st.module.instantiate(VatLink::new()) {
            Ok(i) => st.instance = Some(i),
            Err(e) => return failed(&e),
        }
    }
    let Some(inst) = st.instance.as_mut() else {
        return failed(&CallError::Engine);
    };
    let spare: Vec<(Ref, Resolver)> = (0..st.sends_per_delivery).map(|_| cx.promise()).collect();
    inst.outside_mut().spare = spare;
    let result = entry(inst, cx);
    let link = inst.outside_mut();
    link.spare.clear();
    let effects = std::mem::take(&mut link.effects);
    let answer = match result {
        Ok(answer) => {
            for e in effects {
                apply(state, cx, e);
            }
            answer.map_or(Ok(Value::undefined()), |p| Ok(Value::Ref(p)))
        }
        Err(err) => {
            for e in effects {
                if matches!(e, Effect::Abandon { .. }) {
                    apply(state, cx, e);
                }
            }
            failed(&err)
        }
    };
    if st.policy == Policy::PerDelivery {
        // Dropping the instance breaks anything it still held.
        if let Some(old) = st.instance.take() {
            drop(old);
        }
    }
    answer
}

fn apply(state: &Arc<Mutex<State>>, cx: &mut Turn<'_>, e: Effect) {
    match e {
        Effect::Send {
            target,
            method,
            args,
            resolver,
        } => cx.send_message(&target, Message::new(method, args), resolver),
        Effect::Settle { resolver, outcome } => cx.settle(&resolver, outcome),
        Effect::Abandon { resolver, reason } => cx.break_promise(&resolver, reason),
        Effect::When { promise, tag } => {
            let state = state.clone();
            cx.when(&promise, move |cx2, outcome| {
                run(&state, cx2, |inst, _| {
                    inst.notify(tag, outcome).map(|()| None)
                })
            });
        }
    }
}

impl Object for CapletObject {
    fn receive(&self, cx: &mut Turn<'_>, method: &str, args: Vec<Val>) -> Outcome {
        let mut items = Vec::with_capacity(args.len().saturating_add(1));
        items.push(Value::sym(method));
        items.extend(args);
        let message = Value::List(items);
        run(&self.state, cx, move |inst, cx| {
            let (promise, resolver) = cx.promise();
            inst.outside_mut()
                .resolvers
                .insert(promise.clone(), resolver);
            inst.deliver(message, Some(promise.clone()))?;
            Ok(Some(promise))
        })
    }
}
