//! Compiled modules and live instances: [`CapletModule`] and
//! [`CapletInstance`] (deliveries, notifications, staging inbound
//! messages, the kill).

use std::fmt;
use std::sync::Arc;

use pola_syrup::{Limits, NoRef, Value};
use wasmtime::{InstancePre, Store, Trap, TypedFunc};

use super::data::{Data, Limiter};
use super::epoch_ticks;
use super::outside::Outside;
use crate::abi::{self, Code, REF_LABEL};
use crate::clist::{CList, Entry, Kind};
use crate::config::Config;
use crate::error::{CallError, TrapKind};
use crate::storage::{Quota, Staging, StorageMap};

/// A compiled, checked caplet: instantiate it as often as you like.
pub struct CapletModule<O: Outside> {
    pub(super) pre: InstancePre<Data<O>>,
    pub(super) config: Config,
    pub(super) has_notify: bool,
}

impl<O: Outside> Clone for CapletModule<O> {
    fn clone(&self) -> Self {
        CapletModule {
            pre: self.pre.clone(),
            config: self.config.clone(),
            has_notify: self.has_notify,
        }
    }
}

impl<O: Outside> fmt::Debug for CapletModule<O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CapletModule")
            .field("has_notify", &self.has_notify)
            .finish_non_exhaustive()
    }
}

impl<O: Outside> CapletModule<O> {
    /// The configuration of the [`Sandbox`](crate::Sandbox) that loaded this module.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// A fresh instance with its own memory, c-list and `outside`. Cheap:
    /// the code is compiled already and the memory comes from the pool.
    ///
    /// # Errors
    /// [`CallError::Busy`] when every pool slot is in use; a trap or quota
    /// failure if the module's start-up code fails.
    pub fn instantiate(&self, outside: O) -> Result<CapletInstance<O>, CallError> {
        let engine = self.pre.module().engine();
        let data = Data {
            outside,
            clist: CList::new(self.config.max_handles),
            memory: None,
            inbound: Vec::new(),
            inbound_pending: false,
            limiter: Limiter {
                memory_bytes: self.config.memory_bytes,
                table_elements: self.config.table_elements,
                hit: false,
            },
            max_message_bytes: self.config.max_message_bytes,
            limits: message_limits(&self.config),
            host_call_fuel: self.config.host_call_fuel,
            message_byte_fuel: self.config.message_byte_fuel,
            value_fuel: self.config.value_fuel,
            storage: Staging::new(quota(&self.config)),
            storage_copy_fuel: self.config.storage_copy_fuel,
            in_entry: false,
            exhausted: false,
        };
        let mut store = Store::new(engine, data);
        store.limiter(|d| &mut d.limiter);
        store
            .set_fuel(self.config.fuel_per_call)
            .map_err(|_| CallError::Engine)?;
        let epoch_ticks = epoch_ticks(&self.config);
        if let Some(ticks) = epoch_ticks {
            store.epoch_deadline_trap();
            store.set_epoch_deadline(ticks);
        }
        let instance = self.pre.instantiate(&mut store).map_err(|e| {
            if e.is::<wasmtime::PoolConcurrencyLimitError>() {
                CallError::Busy
            } else {
                classify(&e, store.data().limiter.hit)
            }
        })?;
        // The start function's host calls spent the budget.
        if store.data().exhausted {
            return Err(CallError::OutOfFuel);
        }
        let memory = instance
            .get_memory(&mut store, abi::EXPORT_MEMORY)
            .ok_or(CallError::Engine)?;
        store.data_mut().memory = Some(memory);
        let deliver = instance
            .get_typed_func::<(i32, i64), i32>(&mut store, abi::EXPORT_DELIVER)
            .map_err(|_| CallError::Engine)?;
        let notify = if self.has_notify {
            Some(
                instance
                    .get_typed_func::<(i64, i32, i32), i32>(&mut store, abi::EXPORT_NOTIFY)
                    .map_err(|_| CallError::Engine)?,
            )
        } else {
            None
        };
        Ok(CapletInstance {
            store,
            deliver,
            notify,
            fuel: self.config.fuel_per_call,
            max_fuel: self.config.fuel_per_call,
            fuel_spent: 0,
            epoch_ticks,
            dead: false,
        })
    }
}

pub(super) fn quota(config: &Config) -> Quota {
    Quota {
        key_bytes: config.storage_key_bytes,
        value_bytes: config.storage_value_bytes,
        keys: config.storage_keys,
        total_bytes: config.storage_bytes,
    }
}

pub(super) fn message_limits(config: &Config) -> Limits {
    let mut l = Limits::default();
    l.max_len = l.max_len.min(config.max_message_bytes);
    l.max_value_bytes = l.max_value_bytes.min(config.max_message_bytes);
    l.max_values = config.max_message_values;
    l.max_items = l.max_items.min(config.max_message_values);
    l
}

/// One live caplet instance: its store, c-list and entry points.
///
/// Dropping it (or a trap) breaks every promise whose resolver it still
/// holds and releases every reference in its c-list.
pub struct CapletInstance<O: Outside> {
    store: Store<Data<O>>,
    deliver: TypedFunc<(i32, i64), i32>,
    notify: Option<TypedFunc<(i64, i32, i32), i32>>,
    /// Fuel for each entry ([`Config::fuel_per_call`] unless lowered).
    fuel: u64,
    /// [`Config::fuel_per_call`].
    max_fuel: u64,
    /// Fuel spent by every entry so far.
    fuel_spent: u64,
    /// Wall-clock limit per entry, in epoch ticks (`None`: no limit).
    epoch_ticks: Option<u64>,
    dead: bool,
}

impl<O: Outside> fmt::Debug for CapletInstance<O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CapletInstance")
            .field("handles", &self.store.data().clist.len())
            .field("dead", &self.dead)
            .finish_non_exhaustive()
    }
}

/// The reason given when the host breaks a promise for a failed caplet.
/// Deliberately fixed text: no host detail crosses the boundary.
pub(super) fn failure_reason<R>(err: &CallError) -> Value<R> {
    Value::error(err.public_reason())
}

impl<O: Outside> CapletInstance<O> {
    /// The embedder's view of the outside world of this instance.
    pub fn outside(&self) -> &O {
        &self.store.data().outside
    }

    /// Mutable access to this instance's outside world.
    pub fn outside_mut(&mut self) -> &mut O {
        &mut self.store.data_mut().outside
    }

    /// Number of handles in the c-list.
    pub fn handles(&self) -> usize {
        self.store.data().clist.len()
    }

    /// Whether a trap or quota failure has killed this instance.
    pub fn is_dead(&self) -> bool {
        self.dead
    }

    /// The fuel every entry of this instance has spent so far (host calls'
    /// charges included; an entry that ran out counts all it was given).
    pub fn fuel_spent(&self) -> u64 {
        self.fuel_spent
    }

    /// Sets the fuel each later entry gets, at most
    /// [`Config::fuel_per_call`] (a larger figure is lowered to it). For an
    /// embedder that keeps a budget across entries, as
    /// [`crate::vat::CapletObject`] does: an entry given less than the
    /// usual budget runs out sooner, with [`CallError::OutOfFuel`].
    pub fn set_fuel_per_entry(&mut self, fuel: u64) {
        self.fuel = fuel.min(self.max_fuel);
    }

    /// The caplet's committed storage: what [`CapletInstance::set_storage`]
    /// gave (empty for a new instance), with the writes of every successful entry since applied. A
    /// failed entry (trap, quota, failure code) changes nothing here, and
    /// this stays readable after the instance died, to hand to a fresh one.
    pub fn storage(&self) -> &Arc<StorageMap<O::Ref>> {
        self.store.data().storage.base()
    }

    /// Sets the storage the caplet sees from its next entry on (for a
    /// fresh instance of a caplet whose storage the embedder kept, or an
    /// embedder that keeps the committed storage itself, as a vat does).
    pub fn set_storage(&mut self, storage: Arc<StorageMap<O::Ref>>) {
        self.store.data_mut().storage.set_base(storage);
    }

    /// Rebinds references in this instance's c-list: for each `(old,
    /// new)`, the handle that names `old` names `new` from now on (the
    /// caplet sees the same handle). Pairs whose `old` has no handle are
    /// skipped. For embedders that hand a caplet placeholders and bind
    /// them to real references after the call (see [`crate::vat`]).
    pub fn rebind(&mut self, pairs: impl IntoIterator<Item = (O::Ref, O::Ref)>) {
        let clist = &mut self.store.data_mut().clist;
        for (old, new) in pairs {
            clist.rebind(&old, new);
        }
    }

    /// Ends this instance and gives back its outside world. Like dropping
    /// it, this breaks every promise whose resolver the instance still
    /// held (through [`Outside::abandon`], so the breakage is in the
    /// returned outside's hands) and releases its c-list.
    pub fn retire(mut self) -> O
    where
        O: Default,
    {
        if !self.dead {
            self.kill(&CallError::Dead);
        }
        std::mem::take(&mut self.store.data_mut().outside)
    }

    /// Delivers a message. Every reference in it becomes a new handle in
    /// this instance's c-list; `resolver`, if any, is handed to the caplet
    /// as the promise for the answer.
    ///
    /// Whatever happens, `resolver` ends up either with the caplet or
    /// settled: if the delivery fails, the host breaks it with a fixed
    /// reason that carries no host detail.
    ///
    /// To hand a caplet a grant that can be revoked, hand it a reference
    /// to a revocable forwarder (in a vat,
    /// [`pola_vat::patterns::revocable`], or [`crate::vat::grant`]):
    /// revoking shuts the forwarder for the caplet and for anyone it
    /// passed the reference to.
    ///
    /// # Errors
    /// - [`CallError::Dead`] if an earlier call killed the instance;
    /// - [`CallError::ReservedLabel`], [`CallError::MessageTooLarge`],
    ///   [`CallError::CListFull`] before the caplet runs;
    /// - [`CallError::OutOfFuel`], [`CallError::MemoryLimit`],
    ///   [`CallError::StackOverflow`], [`CallError::Trap`]: the caplet was
    ///   stopped and the instance is now dead;
    /// - [`CallError::CapletFailed`] if the caplet returned a failure code.
    pub fn deliver(
        &mut self,
        message: Value<O::Ref>,
        resolver: Option<O::Ref>,
    ) -> Result<(), CallError> {
        let result = self.try_deliver(message, resolver.clone());
        match result {
            Ok((code, handle)) => {
                if code != 0 {
                    // The caplet gave up on this message: break its promise
                    // unless the caplet settled it already.
                    if let Some(h) = handle {
                        let d = self.store.data_mut();
                        if let Ok(r) = d.clist.take_resolver(h) {
                            let err = CallError::CapletFailed(code);
                            d.outside.abandon(r, failure_reason(&err));
                        }
                    }
                    return Err(CallError::CapletFailed(code));
                }
                Ok(())
            }
            Err((err, resolver_in_clist)) => {
                if !resolver_in_clist && let Some(r) = resolver {
                    self.store
                        .data_mut()
                        .outside
                        .abandon(r, failure_reason(&err));
                }
                Err(err)
            }
        }
    }

    /// Runs one delivery. On error, says whether the resolver had already
    /// been put in the c-list (and so was settled by the kill, if any).
    #[allow(clippy::type_complexity)]
    fn try_deliver(
        &mut self,
        message: Value<O::Ref>,
        resolver: Option<O::Ref>,
    ) -> Result<(i32, Option<i64>), (CallError, bool)> {
        if self.dead {
            return Err((CallError::Dead, false));
        }
        let extra = usize::from(resolver.is_some());
        let len = self.stage(message, extra).map_err(|e| (e, false))?;
        let handle = match resolver {
            Some(r) => {
                let h = self
                    .store
                    .data_mut()
                    .clist
                    .insert(Entry {
                        cap: r,
                        kind: Kind::Resolver,
                    })
                    .map_err(|_| (CallError::CListFull, false))?;
                Some(handle_i64(h))
            }
            None => None,
        };
        let deliver = self.deliver.clone();
        let code = self
            .enter(|store| deliver.call(store, (len, handle.unwrap_or(0))))
            .map_err(|e| {
                // If the instance was killed, the kill settled the resolver.
                let settled = self.dead;
                if !settled && let Some(h) = handle {
                    // Not killed (cannot happen today), but be safe.
                    let _ = self.store.data_mut().clist.take(h);
                }
                (e, settled)
            })?;
        Ok((code, handle))
    }

    /// Tells the caplet that the promise it watched with `when(promise,
    /// tag)` settled: `Ok(value)` or `Err(reason)`.
    ///
    /// # Errors
    /// [`CallError::NoNotify`] if the caplet has no `pola_notify` entry
    /// point; otherwise as for [`CapletInstance::deliver`].
    pub fn notify(
        &mut self,
        tag: i64,
        outcome: Result<Value<O::Ref>, Value<O::Ref>>,
    ) -> Result<(), CallError> {
        if self.dead {
            return Err(CallError::Dead);
        }
        let notify = self.notify.clone().ok_or(CallError::NoNotify)?;
        let (broken, value) = match outcome {
            Ok(v) => (0, v),
            Err(v) => (1, v),
        };
        let len = self.stage(value, 0)?;
        let code = self.enter(|store| notify.call(store, (tag, broken, len)))?;
        if code != 0 {
            return Err(CallError::CapletFailed(code));
        }
        Ok(())
    }

    /// Encodes `message` into the inbound buffer, adding its references to
    /// the c-list. Checks everything before touching the c-list.
    fn stage(&mut self, message: Value<O::Ref>, extra_handles: usize) -> Result<i32, CallError> {
        if has_reserved_label(&message) {
            return Err(CallError::ReservedLabel);
        }
        stage_inbound(self.store.data_mut(), message, extra_handles)
    }

    /// Runs one entry into the caplet under a fresh fuel budget; on a trap,
    /// kills the instance.
    fn enter(
        &mut self,
        call: impl FnOnce(&mut Store<Data<O>>) -> wasmtime::Result<i32>,
    ) -> Result<i32, CallError> {
        self.store.data_mut().limiter.hit = false;
        self.store.data_mut().exhausted = false;
        self.store
            .set_fuel(self.fuel)
            .map_err(|_| CallError::Engine)?;
        if let Some(ticks) = self.epoch_ticks {
            self.store.set_epoch_deadline(ticks);
        }
        self.store.data_mut().in_entry = true;
        let result = call(&mut self.store);
        let left = self.store.get_fuel().unwrap_or(0);
        self.fuel_spent = self
            .fuel_spent
            .saturating_add(self.fuel.saturating_sub(left));
        let d = self.store.data_mut();
        d.in_entry = false;
        d.inbound_pending = false;
        d.inbound.clear();
        // A host call found the budget spent: whatever the caplet returned
        // after that, the entry ran out of fuel.
        let result = match result {
            Ok(_) if d.exhausted => Err(CallError::OutOfFuel),
            Ok(code) => Ok(code),
            Err(e) => Err(classify(&e, d.limiter.hit)),
        };
        // The entry's storage writes stand only if it returned 0.
        if matches!(result, Ok(0)) {
            d.storage.commit();
        } else {
            d.storage.discard();
        }
        result.inspect_err(|err| self.kill(err))
    }

    /// Marks the instance dead, empties its c-list and breaks every promise
    /// it was holding a resolver for.
    fn kill(&mut self, err: &CallError) {
        self.dead = true;
        let d = self.store.data_mut();
        for r in d.clist.clear() {
            d.outside.abandon(r, failure_reason(err));
        }
    }
}

/// Encodes a message into the inbound buffer, adding its references to the
/// c-list (all or none), and makes it the pending message. Returns its
/// length.
pub(super) fn stage_inbound<O: Outside>(
    d: &mut Data<O>,
    message: Value<O::Ref>,
    extra_handles: usize,
) -> Result<i32, CallError> {
    let mut refs = Vec::new();
    message.for_each_ref(&mut |cap| refs.push(cap.clone()));
    // Counted exactly before any insert.
    let needed = d.clist.needed(refs.iter()).saturating_add(extra_handles);
    if !d.clist.has_room(needed) {
        return Err(CallError::CListFull);
    }
    let clist = &mut d.clist;
    let mut added = Vec::new();
    let lowered = message.try_map_refs::<NoRef, Code>(&mut |cap| {
        let before = clist.len();
        let h = clist.insert(Entry {
            cap,
            kind: Kind::Ref,
        })?;
        if clist.len() > before {
            added.push(h);
        }
        Ok(Value::record(REF_LABEL, vec![Value::int(h)]))
    });
    // Room was checked, so insertion cannot fail; map it anyway.
    let lowered = lowered.map_err(|_| CallError::CListFull)?;
    d.inbound.clear();
    pola_syrup::encode_into(&lowered, &mut d.inbound);
    let len = d.inbound.len();
    let too_large = CallError::MessageTooLarge {
        len,
        max: d.max_message_bytes,
    };
    let len = match i32::try_from(len) {
        Ok(n) if len <= d.max_message_bytes => n,
        _ => {
            // Roll back: the handles just added must not linger.
            for h in added {
                let _ = d.clist.take(handle_i64(h));
            }
            d.inbound.clear();
            d.inbound_pending = false;
            return Err(too_large);
        }
    };
    d.inbound_pending = true;
    Ok(len)
}

impl<O: Outside> Drop for CapletInstance<O> {
    fn drop(&mut self) {
        if !self.dead {
            self.kill(&CallError::Dead);
        }
    }
}

pub(super) fn handle_i64(h: u64) -> i64 {
    // Handles are below 2^62 by construction (see clist).
    i64::try_from(h).unwrap_or(i64::MAX)
}

pub(super) fn has_reserved_label<R>(v: &Value<R>) -> bool {
    match v {
        Value::Record(r) => {
            r.label.as_symbol() == Some(REF_LABEL)
                || has_reserved_label(&r.label)
                || r.fields.iter().any(has_reserved_label)
        }
        Value::List(l) => l.iter().any(has_reserved_label),
        Value::Set(s) => s.iter().any(has_reserved_label),
        Value::Dict(d) => d
            .iter()
            .any(|(k, v)| has_reserved_label(k) || has_reserved_label(v)),
        _ => false,
    }
}

pub(super) fn classify(e: &wasmtime::Error, memory_hit: bool) -> CallError {
    match e.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => CallError::OutOfFuel,
        Some(Trap::Interrupt) => CallError::TimedOut,
        Some(Trap::StackOverflow) => CallError::StackOverflow,
        // A refused growth, then an abort: the caplet's allocator gave up
        // (Rust's out-of-memory handler ends in `unreachable`). Any other
        // trap after a refused growth is reported as itself: the caplet saw
        // the refusal (-1) and went on to fail some other way.
        Some(Trap::UnreachableCodeReached) if memory_hit => CallError::MemoryLimit,
        Some(Trap::UnreachableCodeReached) => CallError::Trap(TrapKind::Unreachable),
        Some(Trap::MemoryOutOfBounds) => CallError::Trap(TrapKind::MemoryOutOfBounds),
        Some(
            Trap::IntegerDivisionByZero | Trap::IntegerOverflow | Trap::BadConversionToInteger,
        ) => CallError::Trap(TrapKind::Arithmetic),
        Some(Trap::TableOutOfBounds | Trap::IndirectCallToNull | Trap::BadSignature) => {
            CallError::Trap(TrapKind::IndirectCall)
        }
        _ => CallError::Trap(TrapKind::Other),
    }
}
