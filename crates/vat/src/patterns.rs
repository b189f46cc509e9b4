//! The classic object-capability patterns as library objects: facets,
//! revocable forwarders, sealer/unsealer pairs (brands) and membranes.
//!
//! All of them keep their mutable state (revoked or not, sealed contents,
//! wrapper tables) in private objects that change only by `become`, so a
//! failed turn cannot half-revoke or half-seal anything. The private objects
//! live in the vat of the turn that made the pattern and are reached with
//! synchronous calls; clients in any vat use eventual sends as usual.

use std::collections::{BTreeMap, BTreeSet};

use crate::refs::{Outcome, Ref, Val, error};
use crate::turn::{Object, Turn};

/// Forwards `method(args)` to `target`: a synchronous call when the target
/// is near (the answer is part of this turn), an eventual send otherwise
/// (the answer is a promise).
///
/// # Errors
/// The near callee's error.
pub fn forward(cx: &mut Turn<'_>, target: &Ref, method: &str, args: Vec<Val>) -> Outcome {
    if cx.is_near(target) {
        cx.call(target, method, args)
    } else {
        Ok(Val::Ref(cx.send(target, method.to_owned(), args)))
    }
}

/// A facet: exposes only the listed methods of its target.
pub struct Facet {
    target: Ref,
    methods: BTreeSet<String>,
}

impl Facet {
    /// A facet of `target` that answers only `methods`.
    pub fn new(target: Ref, methods: &[&str]) -> Facet {
        Facet {
            target,
            methods: methods.iter().map(|m| (*m).to_owned()).collect(),
        }
    }
}

impl Object for Facet {
    fn receive(&self, cx: &mut Turn<'_>, method: &str, args: Vec<Val>) -> Outcome {
        if !self.methods.contains(method) {
            return Err(error("method not exposed by this facet"));
        }
        forward(cx, &self.target, method, args)
    }
}

/// The private state of a revocable forwarder: its target until revoked.
struct Gate(Option<Ref>);

impl Object for Gate {
    fn receive(&self, cx: &mut Turn<'_>, method: &str, _args: Vec<Val>) -> Outcome {
        match method {
            "get" => self.0.clone().map(Val::Ref).ok_or_else(|| error("revoked")),
            "revoke" => {
                cx.become_(Gate(None))?;
                Ok(Val::null())
            }
            _ => Err(error("no such method")),
        }
    }
}

/// The forwarder half of a revocable pair (see [`revocable`]).
struct Forwarder {
    gate: Ref,
}

fn gate_target(cx: &mut Turn<'_>, gate: &Ref) -> Result<Ref, Val> {
    match cx.call(gate, "get", Vec::new())? {
        Val::Ref(r) => Ok(r),
        _ => Err(error("revoked")),
    }
}

impl Object for Forwarder {
    fn receive(&self, cx: &mut Turn<'_>, method: &str, args: Vec<Val>) -> Outcome {
        let target = gate_target(cx, &self.gate)?;
        if !target.is_promise() {
            return forward(cx, &target, method, args);
        }
        // The target is not settled yet: hold the message here (as a
        // callback, in order) so that a revocation before the target settles
        // still stops it.
        let gate = self.gate.clone();
        let method = method.to_owned();
        Ok(Val::Ref(cx.when(&target, move |cx, settled| {
            gate_target(cx, &gate)?;
            match settled? {
                Val::Ref(r) => forward(cx, &r, &method, args),
                _ => Err(error("not a reference")),
            }
        })))
    }
}

/// The revoker half of a revocable pair: method `revoke`.
struct Revoker {
    gate: Ref,
}

impl Object for Revoker {
    fn receive(&self, cx: &mut Turn<'_>, method: &str, _args: Vec<Val>) -> Outcome {
        match method {
            "revoke" => cx.call(&self.gate, "revoke", Vec::new()),
            _ => Err(error("no such method")),
        }
    }
}

/// Makes a revocable forwarder to `target` in this vat: returns
/// `(forwarder, revoker)`. Every message to the forwarder goes to the
/// target until `revoke` is sent to the revoker; from then on every message
/// breaks with "revoked", including messages still queued: those not yet
/// delivered to the forwarder, and those the forwarder is holding because
/// the target has not settled yet.
pub fn revocable(cx: &mut Turn<'_>, target: Ref) -> (Ref, Ref) {
    let gate = cx.spawn(Gate(Some(target)));
    let forwarder = cx.spawn(Forwarder { gate: gate.clone() });
    let revoker = cx.spawn(Revoker { gate });
    (forwarder, revoker)
}

/// A brand's private table: which box holds which value.
struct BrandTable {
    boxes: BTreeMap<Ref, Val>,
}

/// A sealed box: opaque, answers no method; only its brand's unsealer can
/// get its contents.
struct SealedBox;

impl Object for SealedBox {
    fn receive(&self, _cx: &mut Turn<'_>, _method: &str, _args: Vec<Val>) -> Outcome {
        Err(error("a sealed box has no methods"))
    }
}

impl Object for BrandTable {
    fn receive(&self, cx: &mut Turn<'_>, method: &str, mut args: Vec<Val>) -> Outcome {
        match method {
            "seal" => {
                let value = if args.is_empty() {
                    Val::null()
                } else {
                    args.swap_remove(0)
                };
                let sealed = cx.spawn(SealedBox);
                let mut boxes = self.boxes.clone();
                boxes.insert(sealed.clone(), value);
                cx.become_(BrandTable { boxes })?;
                Ok(Val::Ref(sealed))
            }
            "unseal" => match args.first() {
                Some(Val::Ref(b)) => self
                    .boxes
                    .get(b)
                    .cloned()
                    .ok_or_else(|| error("not sealed by this brand")),
                _ => Err(error("not sealed by this brand")),
            },
            _ => Err(error("no such method")),
        }
    }
}

/// The sealer of a brand: `seal(value)` returns a new opaque box.
struct Sealer {
    table: Ref,
}

impl Object for Sealer {
    fn receive(&self, cx: &mut Turn<'_>, method: &str, args: Vec<Val>) -> Outcome {
        match method {
            "seal" => cx.call(&self.table, "seal", args),
            _ => Err(error("no such method")),
        }
    }
}

/// The unsealer of a brand: `unseal(box)` returns the contents of a box
/// sealed by the same brand's sealer, and fails for any other object.
struct Unsealer {
    table: Ref,
}

impl Object for Unsealer {
    fn receive(&self, cx: &mut Turn<'_>, method: &str, args: Vec<Val>) -> Outcome {
        if method != "unseal" {
            return Err(error("no such method"));
        }
        match args.first() {
            // A promise for a box: unseal once it settles.
            Some(Val::Ref(p)) if p.is_promise() => {
                let table = self.table.clone();
                Ok(Val::Ref(cx.when(p, move |cx, settled| {
                    cx.call(&table, "unseal", vec![settled?])
                })))
            }
            _ => cx.call(&self.table, "unseal", args),
        }
    }
}

/// Makes a brand in this vat: returns `(sealer, unsealer)`. A box made by
/// `sealer.seal(v)` opens (`unsealer.unseal(box)` → `v`) only with this
/// unsealer: the unsealer looks the box up by identity in the brand's
/// private table, so neither another brand's box nor an object that merely
/// claims to be a box can pass.
pub fn brand(cx: &mut Turn<'_>) -> (Ref, Ref) {
    let table = cx.spawn(BrandTable {
        boxes: BTreeMap::new(),
    });
    let sealer = cx.spawn(Sealer {
        table: table.clone(),
    });
    let unsealer = cx.spawn(Unsealer { table });
    (sealer, unsealer)
}

/// A membrane's private state: revoked or not, and the two-way table
/// between wrapped references and their wrappers (one wrapper per ref, so
/// identity is kept across the membrane).
struct MembraneCore {
    revoked: bool,
    wrapper_of: BTreeMap<Ref, Ref>,
    wrapped_by: BTreeMap<Ref, Ref>,
}

impl Object for MembraneCore {
    fn receive(&self, cx: &mut Turn<'_>, method: &str, args: Vec<Val>) -> Outcome {
        match method {
            "check" => {
                if self.revoked {
                    Err(error("revoked"))
                } else {
                    Ok(Val::null())
                }
            }
            "revoke" => {
                cx.become_(MembraneCore {
                    revoked: true,
                    wrapper_of: BTreeMap::new(),
                    wrapped_by: BTreeMap::new(),
                })?;
                Ok(Val::null())
            }
            // Crossing in either direction: a wrapper is unwrapped, anything
            // else gets (its one) wrapper.
            "translate" => {
                if self.revoked {
                    return Err(error("revoked"));
                }
                let Some(Val::Ref(r)) = args.first() else {
                    return Err(error("translate: not a ref"));
                };
                if let Some(inner) = self.wrapped_by.get(r) {
                    return Ok(Val::Ref(inner.clone()));
                }
                if let Some(w) = self.wrapper_of.get(r) {
                    return Ok(Val::Ref(w.clone()));
                }
                if r.broken_reason().is_some() {
                    return Ok(Val::Ref(r.clone()));
                }
                let core = cx.me().ok_or_else(|| error("membrane core"))?;
                let w = cx.spawn(Wrapper {
                    core,
                    target: r.clone(),
                });
                let mut wrapper_of = self.wrapper_of.clone();
                let mut wrapped_by = self.wrapped_by.clone();
                wrapper_of.insert(r.clone(), w.clone());
                wrapped_by.insert(w.clone(), r.clone());
                cx.become_(MembraneCore {
                    revoked: false,
                    wrapper_of,
                    wrapped_by,
                })?;
                Ok(Val::Ref(w))
            }
            _ => Err(error("no such method")),
        }
    }
}

/// Translates every reference in `v` across the membrane.
fn translate(cx: &mut Turn<'_>, core: &Ref, v: Val) -> Outcome {
    if !v.has_refs() {
        return Ok(v);
    }
    v.try_map_refs(&mut |r| cx.call(core, "translate", vec![Val::Ref(r)]))
}

/// One reference seen through a membrane.
struct Wrapper {
    core: Ref,
    target: Ref,
}

impl Object for Wrapper {
    fn receive(&self, cx: &mut Turn<'_>, method: &str, args: Vec<Val>) -> Outcome {
        cx.call(&self.core, "check", Vec::new())?;
        let args = match translate(cx, &self.core, Val::List(args))? {
            Val::List(a) => a,
            _ => return Err(error("membrane: bad arguments")),
        };
        if cx.is_near(&self.target) {
            let answer = cx.call(&self.target, method, args);
            return match answer {
                Ok(v) => translate(cx, &self.core, v),
                Err(e) => Err(translate(cx, &self.core, e).unwrap_or_else(|e| e)),
            };
        }
        let answer = cx.send(&self.target, method.to_owned(), args);
        let core = self.core.clone();
        Ok(Val::Ref(cx.when(
            &answer,
            move |cx, outcome| match outcome {
                Ok(v) => translate(cx, &core, v),
                Err(e) => Err(translate(cx, &core, e).unwrap_or_else(|e| e)),
            },
        )))
    }
}

/// The revoker of a membrane: `revoke` cuts every wrapper at once.
struct MembraneRevoker {
    core: Ref,
}

impl Object for MembraneRevoker {
    fn receive(&self, cx: &mut Turn<'_>, method: &str, _args: Vec<Val>) -> Outcome {
        match method {
            "revoke" => cx.call(&self.core, "revoke", Vec::new()),
            _ => Err(error("no such method")),
        }
    }
}

/// Wraps `target` in a membrane made in this vat: returns `(wrapped,
/// revoker)`. Every reference that passes through the membrane, in answers
/// or in arguments, is wrapped too (and a wrapper passing back is
/// unwrapped), so the whole subgraph reached through `wrapped` stays behind
/// the membrane; `revoke` on the revoker cuts all of it at once.
pub fn membrane(cx: &mut Turn<'_>, target: Ref) -> (Ref, Ref) {
    let core = cx.spawn(MembraneCore {
        revoked: false,
        wrapper_of: BTreeMap::new(),
        wrapped_by: BTreeMap::new(),
    });
    let wrapper = cx.spawn(Wrapper {
        core: core.clone(),
        target: target.clone(),
    });
    // Register the first wrapper so that it unwraps when passed back in.
    // Cannot fail: `core` was spawned just above, in this turn.
    let _ = cx.init(
        &core,
        MembraneCore {
            revoked: false,
            wrapper_of: BTreeMap::from([(target.clone(), wrapper.clone())]),
            wrapped_by: BTreeMap::from([(wrapper.clone(), target)]),
        },
    );
    let revoker = cx.spawn(MembraneRevoker { core });
    (wrapper, revoker)
}
