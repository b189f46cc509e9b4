//! The host: engine, loader, instances, and the ten host functions.
//!
//! Invariants:
//! - A caplet's [`Store`] holds exactly one instance, its own c-list and its
//!   own [`Outside`]; nothing is shared between instances but the compiled
//!   code (upheld by [`CapletModule::instantiate`]).
//! - Every entry into a caplet (instantiation, delivery, notification)
//!   starts with a fresh fuel budget and a cleared memory-limit flag.
//! - After a trap the instance is dead: its c-list is cleared, every
//!   resolver it held is broken, and every later call is
//!   [`CallError::Dead`]. Only that instance is affected.
//! - The host functions never panic on caplet input: every pointer, length
//!   and handle is checked and failures become a [`Code`].
//! - A caplet's storage writes are staged during an entry and applied only
//!   when the entry point returns `0` (see [`crate::storage`]); any other
//!   end of the entry discards them.

use std::fmt;
use std::sync::Arc;

use pola_syrup::{Limits, NoRef, Value};
use wasmtime::{
    Caller, Engine, InstanceAllocationStrategy, InstancePre, Linker, Memory, Module,
    PoolingAllocationConfig, ResourceLimiter, Store, Trap, TypedFunc,
};

use crate::abi::{self, Code, REF_LABEL};
use crate::bounds::Bounds;
use crate::check::examine;
use crate::clist::{CList, Entry, Kind};
use crate::cost;
use crate::engine::{deterministic, first_line, validate};
use crate::error::{CallError, LoadError, Problem, SetupError, TrapKind};
use crate::gate::Gate;
use crate::storage::{Quota, Staging, StorageMap};

/// The world outside a caplet, as its host sees it.
///
/// The sandbox calls these methods while the caplet runs (from inside its
/// host functions), so an implementation must not call back into the same
/// caplet instance; queue work for a later turn instead.
pub trait Outside: 'static {
    /// A reference to something outside the caplet: an object, a promise,
    /// or a promise's resolver. Chosen by the embedder (the vat runtime's
    /// references, or anything else).
    type Ref: Clone + Ord + fmt::Debug + 'static;

    /// An eventual send with an answer; returns a promise for the answer.
    ///
    /// # Errors
    /// [`Refused`] if the message cannot be sent; the caplet sees
    /// [`Code::Refused`].
    fn send(&mut self, target: &Self::Ref, message: Value<Self::Ref>)
    -> Result<Self::Ref, Refused>;

    /// An eventual send with no answer.
    ///
    /// # Errors
    /// [`Refused`] if the message cannot be sent.
    fn send_only(&mut self, target: &Self::Ref, message: Value<Self::Ref>) -> Result<(), Refused>;

    /// Settles a promise through its resolver: `Ok(value)` fulfils it,
    /// `Err(reason)` breaks it. Called by the caplet's `resolve` and
    /// `break_promise`, and by the host itself when a delivery fails or an
    /// instance dies holding resolvers.
    fn settle(&mut self, resolver: Self::Ref, outcome: Result<Value<Self::Ref>, Value<Self::Ref>>);

    /// The host breaks a promise on the caplet's behalf: its delivery
    /// failed, its instance died holding the resolver, or it dropped the
    /// resolver. Unlike [`Outside::settle`] this is never the caplet's own
    /// choice, so an embedder with transactional turns should apply it even
    /// when it discards the caplet's other effects. Defaults to `settle`.
    fn abandon(&mut self, resolver: Self::Ref, reason: Value<Self::Ref>) {
        self.settle(resolver, Err(reason));
    }

    /// The caplet asks to hear when `promise` settles: arrange for
    /// [`CapletInstance::notify`] to be called with `tag` later (never from
    /// inside this call). The default refuses.
    ///
    /// # Errors
    /// [`Refused`] if notifications are not supported.
    fn when(&mut self, promise: &Self::Ref, tag: i64) -> Result<(), Refused> {
        let _ = (promise, tag);
        Err(Refused)
    }

    /// The caplet passes on a reference it holds through a revocation
    /// [`Gate`]: return a forwarder to `target` that stops working when the
    /// gate shuts, so the grant stays revocable wherever it goes. The
    /// default refuses, which keeps gated grants from leaving the caplet.
    ///
    /// # Errors
    /// [`Refused`] if no forwarder can be made.
    fn attenuate(&mut self, target: &Self::Ref, gate: &Gate) -> Result<Self::Ref, Refused> {
        let _ = (target, gate);
        Err(Refused)
    }

    /// Whether the embedder wants the running entry stopped: checked at
    /// every host call the caplet makes; when it says yes, the call fails
    /// with [`Code::Exhausted`] and the entry ends as
    /// [`CallError::OutOfFuel`] (its effects discarded, the instance dead).
    /// This is how an embedder stops a caplet mid-entry (see
    /// [`crate::vat::Stopper`]); an entry that makes no host call runs on
    /// until its fuel or wall-clock limit. Defaults to never.
    fn should_stop(&self) -> bool {
        false
    }
}

/// The outside world declined an operation (the caplet sees
/// [`Code::Refused`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("refused")]
pub struct Refused;

/// A reference handed into a caplet: plain, or behind a revocation gate.
/// It is also how a caplet's storage holds references
/// ([`CapletInstance::storage`]): a grant stored stays behind its gate.
/// Ordered by variant, then reference, then gate identity.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Grant<R> {
    /// The reference itself.
    Plain(R),
    /// The reference behind a gate; uses fail once the gate's
    /// [`Revoker`](crate::Revoker) fires.
    Revocable(R, Gate),
}

/// Limits and sizes for a [`Sandbox`]. Start from `Config::default()` and
/// change fields.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Config {
    /// Fuel (roughly, wasm instructions) for each entry into a caplet.
    /// Default 50 M (about 5 ms of work).
    pub fuel_per_call: u64,
    /// Most linear memory one instance may have, in bytes. Default 16 MiB.
    pub memory_bytes: usize,
    /// Most table elements one instance may have. Default 10 000.
    pub table_elements: usize,
    /// Largest message in either direction, in encoded bytes. Default 1 MiB.
    pub max_message_bytes: usize,
    /// Most entries in one instance's c-list. Default 4096.
    pub max_handles: usize,
    /// Most native stack wasm may use, in bytes. Default 512 KiB.
    pub max_stack_bytes: usize,
    /// Instances that may be alive at once (pooling allocator slots).
    /// Default 256.
    pub max_instances: u32,
    /// Largest module accepted by the loader, in bytes. Default 16 MiB.
    pub max_module_bytes: usize,
    /// Fuel charged for every call the caplet makes to the host, on top of
    /// the per-byte charge. Host work is not metered by the engine, so this
    /// keeps a caplet from spending host CPU and memory without limit
    /// inside one delivery (for example sending in a loop). Default 10 000.
    pub host_call_fuel: u64,
    /// Fuel charged per byte of every message the caplet sends, settles
    /// or reads. Default 8 (so one delivery can move at most about 6 MB at
    /// the default budget).
    pub message_byte_fuel: u64,
    /// Bytes at the start of each pooled linear memory that stay resident
    /// between instances (reset in place instead of unmapped), which makes
    /// the first call into a fresh instance cheaper (measured: 16 µs instead
    /// of 25 µs for a small Rust caplet, p99 25 µs instead of 70 µs), at the
    /// price of up to this much resident memory per pool slot ever used.
    /// Default 1 MiB.
    pub keep_resident_bytes: usize,
    /// Wall-clock limit for each entry into a caplet, on top of fuel, or
    /// `None` for fuel alone. Fuel bounds the caplet's own work and the
    /// host calls it makes; this bounds time spent anywhere, including an
    /// [`Outside`] that blocks. It is enforced by epoch interruption: a
    /// ticker thread per [`Sandbox`] advances the engine's epoch every
    /// [`Config::epoch_tick`], and the caplet traps with
    /// [`CallError::TimedOut`] at the first function entry or loop back-edge
    /// after the deadline. A host call in progress is not interrupted: a
    /// blocking `Outside` delays the stop until it returns. The limit is
    /// rounded up to whole ticks. Default 1 s.
    pub wall_time_per_call: Option<std::time::Duration>,
    /// Granularity of [`Config::wall_time_per_call`]. Default 10 ms.
    pub epoch_tick: std::time::Duration,
    /// Longest storage key, in bytes. Default 256.
    pub storage_key_bytes: usize,
    /// Largest stored value (encoded; a reference counts
    /// [`StorageMap::REF_BYTES`]). Default 64 KiB.
    pub storage_value_bytes: usize,
    /// Most keys in one caplet's storage. Default 1024.
    pub storage_keys: usize,
    /// Most bytes (keys plus values) in one caplet's storage. Default 1 MiB.
    pub storage_bytes: usize,
    /// Fuel charged per byte of a caplet's storage the first time an entry
    /// writes to it, for the copy the host makes when the entry's writes
    /// are applied (and, in a persistent vat, the portrait it encodes).
    /// Default 1.
    pub storage_copy_fuel: u64,
    /// Bounds on a module's shape, checked before compiling it, so that
    /// compiling a module takes bounded time and memory (see [`Bounds`]).
    pub bounds: Bounds,
    /// Most values (atoms and containers, at every depth) in one message a
    /// caplet sends, settles or stores; a message over it is refused with
    /// [`Code::TooLarge`] as it is decoded. One encoded byte can become a
    /// value of several dozen bytes of host memory, so this, not
    /// [`Config::max_message_bytes`], bounds what decoding one message may
    /// allocate. Default 256 Ki (about 12 MiB decoded at most).
    pub max_message_values: usize,
    /// Fuel charged per value decoded from a caplet's message, on top of
    /// the per-byte charge, for the host memory and time decoding costs.
    /// Default 100 (so one entry can decode at most about 500 000 values
    /// at the default budget).
    pub value_fuel: u64,
    /// A caplet object's sustained CPU budget across its turns
    /// ([`crate::vat::CapletObject`]): fuel per second of wall time that
    /// refills its budget. A caplet that spends its budget faster than
    /// this, for longer than [`Config::fuel_burst`] allows, is stopped.
    /// Default 1 G (roughly a fifth to a half of one core, depending on
    /// the code).
    pub fuel_per_second: u64,
    /// The most fuel a caplet object may spend at once across its turns:
    /// its budget when full. Default 5 G (a hundred full entries, some
    /// seconds of one core).
    pub fuel_burst: u64,
    /// Fuel charged to a caplet object's budget for every entry (message
    /// or notification), on top of what the entry spends, for the vat's
    /// own work per turn (which fuel does not meter). Default 100 000.
    pub turn_fuel: u64,
    /// The most bytes of host memory a caplet object's sends may hold at
    /// once: each message it sends counts its decoded size
    /// ([`Config::value_fuel`]'s values plus their bytes) from the send
    /// until its answer settles (a send-only message: until it is
    /// delivered or dropped). A caplet over it is stopped. This bounds
    /// what a caplet can pile up in its vat, for example sends queued on a
    /// promise that never settles. Default 64 MiB.
    pub pending_bytes: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            fuel_per_call: 50_000_000,
            memory_bytes: 16 << 20,
            table_elements: 10_000,
            max_message_bytes: 1 << 20,
            max_handles: 4096,
            max_stack_bytes: 512 << 10,
            max_instances: 256,
            max_module_bytes: 16 << 20,
            keep_resident_bytes: 1 << 20,
            host_call_fuel: 10_000,
            message_byte_fuel: 8,
            wall_time_per_call: Some(std::time::Duration::from_secs(1)),
            epoch_tick: std::time::Duration::from_millis(10),
            storage_key_bytes: 256,
            storage_value_bytes: 64 << 10,
            storage_keys: 1024,
            storage_bytes: 1 << 20,
            storage_copy_fuel: 1,
            bounds: Bounds::default(),
            max_message_values: 256 << 10,
            value_fuel: 100,
            fuel_per_second: 1_000_000_000,
            fuel_burst: 5_000_000_000,
            turn_fuel: 100_000,
            pending_bytes: 64 << 20,
        }
    }
}

/// The per-instance memory and table limiter.
struct Limiter {
    memory_bytes: usize,
    table_elements: usize,
    /// Set when a growth was refused during the current call.
    hit: bool,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let ok = desired <= self.memory_bytes;
        self.hit |= !ok;
        Ok(ok)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let ok = desired <= self.table_elements;
        self.hit |= !ok;
        Ok(ok)
    }
}

/// A reference with its optional gate, while a message is being staged.
/// Ordered by the reference alone (the gate only rides along).
struct Split<R>(R, Option<Gate>);

impl<R: PartialEq> PartialEq for Split<R> {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}
impl<R: Eq> Eq for Split<R> {}
impl<R: Ord> PartialOrd for Split<R> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<R: Ord> Ord for Split<R> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.cmp(&other.0)
    }
}

/// Everything one caplet instance's store holds.
struct Data<O: Outside> {
    outside: O,
    clist: CList<O::Ref>,
    memory: Option<Memory>,
    /// The message of the current delivery or notification.
    inbound: Vec<u8>,
    inbound_pending: bool,
    limiter: Limiter,
    max_message_bytes: usize,
    limits: Limits,
    host_call_fuel: u64,
    message_byte_fuel: u64,
    /// Fuel per value decoded from a caplet's message.
    value_fuel: u64,
    /// The caplet's storage: committed base and this entry's writes.
    storage: Staging<Grant<O::Ref>>,
    storage_copy_fuel: u64,
    /// Whether an entry (delivery or notification) is running.
    in_entry: bool,
    /// Whether a host call of the current entry found the fuel budget
    /// spent (the entry then fails as [`CallError::OutOfFuel`]).
    exhausted: bool,
}

/// A compile-once caplet host for one kind of [`Outside`].
///
/// Holds the engine (with the pooling allocator and fuel metering) and the
/// linker with the ten host functions; build it once and load many
/// modules with it.
pub struct Sandbox<O: Outside> {
    engine: Engine,
    linker: Linker<Data<O>>,
    config: Config,
}

impl<O: Outside> Clone for Sandbox<O> {
    /// Another handle on the same engine and host functions (modules
    /// loaded by either run in the same engine and pool).
    fn clone(&self) -> Self {
        Sandbox {
            engine: self.engine.clone(),
            linker: self.linker.clone(),
            config: self.config.clone(),
        }
    }
}

impl<O: Outside> fmt::Debug for Sandbox<O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sandbox")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn engine_config(config: &Config) -> wasmtime::Config {
    let mut c = wasmtime::Config::new();
    c.consume_fuel(true);
    c.epoch_interruption(config.wall_time_per_call.is_some());
    c.max_wasm_stack(config.max_stack_bytes);
    deterministic(&mut c);
    let mut pool = PoolingAllocationConfig::new();
    pool.total_core_instances(config.max_instances)
        .total_memories(config.max_instances)
        .total_tables(config.max_instances)
        .max_memory_size(config.memory_bytes)
        .table_elements(config.table_elements)
        .linear_memory_keep_resident(config.keep_resident_bytes);
    c.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    c
}

/// Advances `engine`'s epoch every `tick` until the engine is dropped.
/// The thread holds only a weak reference, so it ends at the first tick
/// after the last [`Sandbox`] and module of this engine are gone.
fn spawn_ticker(engine: &Engine, tick: std::time::Duration) -> std::io::Result<()> {
    let weak = engine.weak();
    let tick = tick.max(std::time::Duration::from_millis(1));
    std::thread::Builder::new()
        .name("pola-sandbox-epoch".into())
        .spawn(move || {
            loop {
                std::thread::sleep(tick);
                match weak.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => break,
                }
            }
        })
        .map(drop)
}

/// Epoch ticks for a wall-clock limit (rounded up, at least one more than
/// the current, possibly half-spent, tick).
fn epoch_ticks(config: &Config) -> Option<u64> {
    let limit = config.wall_time_per_call?;
    let tick = config.epoch_tick.max(std::time::Duration::from_millis(1));
    let ticks = limit.as_nanos().div_ceil(tick.as_nanos()).saturating_add(1);
    Some(u64::try_from(ticks).unwrap_or(u64::MAX))
}

impl<O: Outside> Sandbox<O> {
    /// Builds the engine and the host-function registry.
    ///
    /// # Errors
    /// [`SetupError`] if the engine cannot be created (for example the
    /// pooling allocator cannot reserve its memory).
    pub fn new(config: Config) -> Result<Self, SetupError> {
        let engine = Engine::new(&engine_config(&config)).map_err(|e| SetupError(e.to_string()))?;
        let mut linker = Linker::new(&engine);
        define_host_functions(&mut linker).map_err(|e| SetupError(e.to_string()))?;
        if config.wall_time_per_call.is_some() {
            spawn_ticker(&engine, config.epoch_tick).map_err(|e| SetupError(e.to_string()))?;
        }
        Ok(Sandbox {
            engine,
            linker,
            config,
        })
    }

    /// The configuration this sandbox was built with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Compiles a caplet once, after checking that it imports nothing but
    /// the caplet interface, exports its entry points and is within the
    /// host's [`Bounds`] ([`Config::bounds`]). The check is the one
    /// [`crate::check_with`] makes with this sandbox's configuration: a
    /// module refused here has problems there, and the reverse.
    ///
    /// # Errors
    /// - [`LoadError::TooLarge`] before reading an oversized module;
    /// - [`LoadError::Invalid`] for bytes that are not a valid core module;
    /// - [`LoadError::NotConfined`] naming the first forbidden import or
    ///   missing export;
    /// - [`LoadError::Exceeded`] naming the first bound the module is over
    ///   (not compiled).
    pub fn load(&self, wasm: &[u8]) -> Result<CapletModule<O>, LoadError> {
        // Refuse before compiling: a hostile module costs no compile time.
        let examined = examine(wasm, &self.config)?;
        if let Some(problem) = examined.problems.into_iter().next() {
            return Err(match problem {
                Problem::Exceeded(e) => LoadError::Exceeded(e),
                other => LoadError::NotConfined(other),
            });
        }
        let module = Module::new(&self.engine, wasm).map_err(|e| {
            // Said in the checker's words, so `check` and `load` give the
            // same error for the same module (the compiler validates each
            // function as it goes and words it differently).
            match validate(wasm) {
                Err(checked) => checked,
                Ok(()) => LoadError::Invalid(first_line(&e)),
            }
        })?;
        let has_notify = module.get_export(abi::EXPORT_NOTIFY).is_some();
        let pre = self
            .linker
            .instantiate_pre(&module)
            .map_err(|e| LoadError::Invalid(first_line(&e)))?;
        Ok(CapletModule {
            pre,
            config: self.config.clone(),
            has_notify,
        })
    }
}

/// A compiled, checked caplet: instantiate it as often as you like.
pub struct CapletModule<O: Outside> {
    pre: InstancePre<Data<O>>,
    config: Config,
    has_notify: bool,
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
    /// The configuration of the [`Sandbox`] that loaded this module.
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

fn quota(config: &Config) -> Quota {
    Quota {
        key_bytes: config.storage_key_bytes,
        value_bytes: config.storage_value_bytes,
        keys: config.storage_keys,
        total_bytes: config.storage_bytes,
    }
}

fn message_limits(config: &Config) -> Limits {
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
fn failure_reason<R>(err: &CallError) -> Value<R> {
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
    pub fn storage(&self) -> &Arc<StorageMap<Grant<O::Ref>>> {
        self.store.data().storage.base()
    }

    /// Sets the storage the caplet sees from its next entry on (for a
    /// fresh instance of a caplet whose storage the embedder kept, or an
    /// embedder that keeps the committed storage itself, as a vat does).
    pub fn set_storage(&mut self, storage: Arc<StorageMap<Grant<O::Ref>>>) {
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
    /// # Errors
    /// See [`CapletInstance::deliver_granting`].
    pub fn deliver(
        &mut self,
        message: Value<O::Ref>,
        resolver: Option<O::Ref>,
    ) -> Result<(), CallError> {
        self.deliver_with(message, resolver, |r| (r, None))
    }

    /// Delivers a message whose references may be revocable grants.
    ///
    /// Whatever happens, `resolver` ends up either with the caplet or
    /// settled: if the delivery fails, the host breaks it with a fixed
    /// reason that carries no host detail.
    ///
    /// # Errors
    /// - [`CallError::Dead`] if an earlier call killed the instance;
    /// - [`CallError::ReservedLabel`], [`CallError::MessageTooLarge`],
    ///   [`CallError::CListFull`] before the caplet runs;
    /// - [`CallError::OutOfFuel`], [`CallError::MemoryLimit`],
    ///   [`CallError::StackOverflow`], [`CallError::Trap`]: the caplet was
    ///   stopped and the instance is now dead;
    /// - [`CallError::CapletFailed`] if the caplet returned a failure code.
    pub fn deliver_granting(
        &mut self,
        message: Value<Grant<O::Ref>>,
        resolver: Option<O::Ref>,
    ) -> Result<(), CallError> {
        self.deliver_with(message, resolver, |g| match g {
            Grant::Plain(r) => (r, None),
            Grant::Revocable(r, gate) => (r, Some(gate)),
        })
    }

    fn deliver_with<T>(
        &mut self,
        message: Value<T>,
        resolver: Option<O::Ref>,
        split: impl FnMut(T) -> (O::Ref, Option<Gate>),
    ) -> Result<(), CallError> {
        let result = self.try_deliver(message, resolver.clone(), split);
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
    fn try_deliver<T>(
        &mut self,
        message: Value<T>,
        resolver: Option<O::Ref>,
        split: impl FnMut(T) -> (O::Ref, Option<Gate>),
    ) -> Result<(i32, Option<i64>), (CallError, bool)> {
        if self.dead {
            return Err((CallError::Dead, false));
        }
        let extra = usize::from(resolver.is_some());
        let len = self.stage(message, extra, split).map_err(|e| (e, false))?;
        let handle = match resolver {
            Some(r) => {
                let h = self
                    .store
                    .data_mut()
                    .clist
                    .insert(Entry {
                        cap: r,
                        kind: Kind::Resolver,
                        gate: None,
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
        let len = self.stage(value, 0, |r| (r, None))?;
        let code = self.enter(|store| notify.call(store, (tag, broken, len)))?;
        if code != 0 {
            return Err(CallError::CapletFailed(code));
        }
        Ok(())
    }

    /// Encodes `message` into the inbound buffer, adding its references to
    /// the c-list. Checks everything before touching the c-list.
    fn stage<T>(
        &mut self,
        message: Value<T>,
        extra_handles: usize,
        mut split: impl FnMut(T) -> (O::Ref, Option<Gate>),
    ) -> Result<i32, CallError> {
        if has_reserved_label(&message) {
            return Err(CallError::ReservedLabel);
        }
        // Split first, so room can be counted exactly before any insert.
        let split_message = message
            .try_map_refs::<Split<O::Ref>, std::convert::Infallible>(&mut |r| {
                let (cap, gate) = split(r);
                Ok(Value::Ref(Split(cap, gate)))
            })
            .unwrap_or_else(|e| match e {});
        stage_inbound(self.store.data_mut(), split_message, extra_handles)
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

/// Encodes a message whose references are already split into the inbound
/// buffer, adding its references to the c-list (all or none), and makes it
/// the pending message. Returns its length.
fn stage_inbound<O: Outside>(
    d: &mut Data<O>,
    split_message: Value<Split<O::Ref>>,
    extra_handles: usize,
) -> Result<i32, CallError> {
    let mut refs = Vec::new();
    split_message.for_each_ref(&mut |Split(cap, gate)| refs.push((cap.clone(), gate.is_some())));
    let needed = d
        .clist
        .needed(refs.iter().map(|(r, g)| (r, *g)))
        .saturating_add(extra_handles);
    if !d.clist.has_room(needed) {
        return Err(CallError::CListFull);
    }
    let clist = &mut d.clist;
    let mut added = Vec::new();
    let lowered = split_message.try_map_refs::<NoRef, Code>(&mut |Split(cap, gate)| {
        let before = clist.len();
        let h = clist.insert(Entry {
            cap,
            kind: Kind::Ref,
            gate,
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

fn handle_i64(h: u64) -> i64 {
    // Handles are below 2^62 by construction (see clist).
    i64::try_from(h).unwrap_or(i64::MAX)
}

fn has_reserved_label<R>(v: &Value<R>) -> bool {
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

fn classify(e: &wasmtime::Error, memory_hit: bool) -> CallError {
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

// ---------------------------------------------------------------------------
// Host functions.

/// Checks `(ptr, len)` against the caplet's memory and the message limit.
fn range(ptr: i32, len: i32, max: usize) -> Result<std::ops::Range<usize>, Code> {
    let start = usize::try_from(ptr as u32).map_err(|_| Code::BadMemory)?;
    let len = usize::try_from(len as u32).map_err(|_| Code::BadMemory)?;
    if len > max {
        return Err(Code::TooLarge);
    }
    let end = start.checked_add(len).ok_or(Code::BadMemory)?;
    Ok(start..end)
}

/// Decodes one message from caplet memory, once (the caplet cannot change
/// what the host saw), within the message limits, and charges fuel for the
/// values decoded ([`Config::value_fuel`]). A message with more values
/// than [`Config::max_message_values`] is [`Code::TooLarge`]; the decoder
/// stops at the limit, so it never allocates more than the limit allows.
fn decode_message<O: Outside>(
    caller: &mut Caller<'_, Data<O>>,
    ptr: i32,
    len: i32,
) -> Result<Value, Code> {
    let memory = caller.data().memory.ok_or(Code::BadMemory)?;
    let max = caller.data().max_message_bytes;
    let r = range(ptr, len, max)?;
    let (mem, data) = memory.data_and_store_mut(&mut *caller);
    let bytes = mem.get(r).ok_or(Code::BadMemory)?;
    let plain = pola_syrup::decode_with(bytes, &data.limits).map_err(|e| match e.kind {
        pola_syrup::DecodeErrorKind::ValuesLimit | pola_syrup::DecodeErrorKind::ItemsLimit => {
            Code::TooLarge
        }
        _ => Code::BadMessage,
    })?;
    let values = u64::try_from(cost::values(&plain)).unwrap_or(u64::MAX);
    let fuel = values.saturating_mul(caller.data().value_fuel);
    burn(caller, fuel)?;
    Ok(plain)
}

/// Reads one message from caplet memory and turns its `<pola:ref h>`
/// records into references (going through gates).
fn read_value<O: Outside>(
    caller: &mut Caller<'_, Data<O>>,
    ptr: i32,
    len: i32,
) -> Result<Value<O::Ref>, Code> {
    let plain = decode_message(caller, ptr, len)?;
    let Data { clist, outside, .. } = caller.data_mut();
    lift(plain, &mut |h| {
        let e = clist.get(h, Kind::Ref)?;
        match &e.gate {
            None => Ok(e.cap.clone()),
            Some(g) => outside.attenuate(&e.cap, g).map_err(|_| Code::Refused),
        }
    })
}

/// Reads a value to store from caplet memory: references stay as the
/// caplet holds them, a gated one with its gate (storing a grant is not
/// passing it on, so no forwarder is made).
fn read_stored<O: Outside>(
    caller: &mut Caller<'_, Data<O>>,
    ptr: i32,
    len: i32,
) -> Result<Value<Grant<O::Ref>>, Code> {
    let plain = decode_message(caller, ptr, len)?;
    let clist = &caller.data().clist;
    lift(plain, &mut |h| {
        let e = clist.get(h, Kind::Ref)?;
        Ok(match &e.gate {
            None => Grant::Plain(e.cap.clone()),
            Some(g) => Grant::Revocable(e.cap.clone(), g.clone()),
        })
    })
}

/// Rebuilds a decoded value with every `<pola:ref h>` replaced by `f(h)`.
fn lift<R: Ord>(v: Value, f: &mut impl FnMut(i64) -> Result<R, Code>) -> Result<Value<R>, Code> {
    v.try_lift_refs(&mut |v| match v.as_record_labelled(REF_LABEL) {
        None => Ok(None),
        Some([h]) => f(h.as_i64().ok_or(Code::BadMessage)?).map(Some),
        Some(_) => Err(Code::BadMessage),
    })
}

/// Charges fuel for a host call moving `len` bytes. When the budget cannot
/// pay, the remaining fuel is taken too, so the caplet traps with
/// `OutOfFuel` at its next instruction.
fn charge<O: Outside>(caller: &mut Caller<'_, Data<O>>, len: i32) -> Result<(), Code> {
    let d = caller.data();
    // A length over the limit is refused unread, so it costs no bytes.
    let bytes = usize::try_from(len)
        .ok()
        .filter(|n| *n <= d.max_message_bytes)
        .map_or(0, |n| n as u64);
    let cost = bytes
        .saturating_mul(d.message_byte_fuel)
        .saturating_add(d.host_call_fuel);
    burn(caller, cost)
}

/// Takes `cost` fuel from the running entry; when the budget cannot pay,
/// takes the rest, so the caplet traps with `OutOfFuel` at its next
/// instruction.
fn burn<O: Outside>(caller: &mut Caller<'_, Data<O>>, cost: u64) -> Result<(), Code> {
    let paid = !caller.data().outside.should_stop()
        && caller
            .get_fuel()
            .ok()
            .and_then(|fuel| fuel.checked_sub(cost))
            .is_some_and(|left| caller.set_fuel(left).is_ok());
    if paid {
        return Ok(());
    }
    let _ = caller.set_fuel(0);
    // The entry fails as out of fuel however it ends: with no fuel left the
    // caplet usually traps at once, but code already paid for (the rest
    // of a basic block) can still return normally.
    caller.data_mut().exhausted = true;
    Err(Code::Exhausted)
}

/// Charges a storage call (a host call plus its key bytes) and reads the
/// key from caplet memory.
fn storage_key<O: Outside>(
    caller: &mut Caller<'_, Data<O>>,
    ptr: i32,
    len: i32,
) -> Result<Vec<u8>, Code> {
    charge(caller, len)?;
    if !caller.data().in_entry {
        return Err(Code::Refused);
    }
    let memory = caller.data().memory.ok_or(Code::BadMemory)?;
    let r = range(ptr, len, caller.data().storage.key_limit())?;
    let mem = memory.data(&*caller);
    mem.get(r).map(<[u8]>::to_vec).ok_or(Code::BadMemory)
}

/// Before an entry's first write, charges the copy of the storage that
/// applying its writes will make.
fn charge_first_write<O: Outside>(caller: &mut Caller<'_, Data<O>>) -> Result<(), Code> {
    let d = caller.data();
    if d.storage.has_written() {
        return Ok(());
    }
    let bytes = u64::try_from(d.storage.base().bytes()).unwrap_or(u64::MAX);
    let cost = bytes.saturating_mul(d.storage_copy_fuel);
    burn(caller, cost)
}

fn status(r: Result<(), Code>) -> i32 {
    match r {
        Ok(()) => 0,
        Err(c) => c.as_i32(),
    }
}

fn define_host_functions<O: Outside>(linker: &mut Linker<Data<O>>) -> wasmtime::Result<()> {
    linker.func_wrap(
        abi::MODULE,
        "read",
        |mut caller: Caller<'_, Data<O>>, ptr: i32, len: i32| -> i32 {
            status((|| {
                charge(&mut caller, len)?;
                let memory = caller.data().memory.ok_or(Code::BadMemory)?;
                let (mem, data) = memory.data_and_store_mut(&mut caller);
                if !data.inbound_pending {
                    return Err(Code::NoMessage);
                }
                let r = range(ptr, len, data.max_message_bytes)?;
                if r.len() != data.inbound.len() {
                    return Err(Code::NoMessage);
                }
                let dst = mem.get_mut(r).ok_or(Code::BadMemory)?;
                dst.copy_from_slice(&data.inbound);
                Ok(())
            })())
        },
    )?;
    linker.func_wrap(
        abi::MODULE,
        "send",
        |mut caller: Caller<'_, Data<O>>, target: i64, ptr: i32, len: i32| -> i64 {
            let r = (|| {
                charge(&mut caller, len)?;
                let cap = caller.data().clist.get(target, Kind::Ref)?.cap.clone();
                if !caller.data().clist.has_room(1) {
                    return Err(Code::CListFull);
                }
                let msg = read_value(&mut caller, ptr, len)?;
                let d = caller.data_mut();
                let answer = d.outside.send(&cap, msg).map_err(|_| Code::Refused)?;
                let h = d.clist.insert(Entry {
                    cap: answer,
                    kind: Kind::Ref,
                    gate: None,
                })?;
                Ok(handle_i64(h))
            })();
            r.unwrap_or_else(|c: Code| i64::from(c.as_i32()))
        },
    )?;
    linker.func_wrap(
        abi::MODULE,
        "send_only",
        |mut caller: Caller<'_, Data<O>>, target: i64, ptr: i32, len: i32| -> i32 {
            status((|| {
                charge(&mut caller, len)?;
                let cap = caller.data().clist.get(target, Kind::Ref)?.cap.clone();
                let msg = read_value(&mut caller, ptr, len)?;
                caller
                    .data_mut()
                    .outside
                    .send_only(&cap, msg)
                    .map_err(|_| Code::Refused)
            })())
        },
    )?;
    for (name, broken) in [("resolve", false), ("break_promise", true)] {
        linker.func_wrap(
            abi::MODULE,
            name,
            move |mut caller: Caller<'_, Data<O>>, resolver: i64, ptr: i32, len: i32| -> i32 {
                status((|| {
                    charge(&mut caller, len)?;
                    caller.data().clist.get(resolver, Kind::Resolver)?;
                    let v = read_value(&mut caller, ptr, len)?;
                    let d = caller.data_mut();
                    let r = d.clist.take_resolver(resolver)?;
                    d.outside.settle(r, if broken { Err(v) } else { Ok(v) });
                    Ok(())
                })())
            },
        )?;
    }
    linker.func_wrap(
        abi::MODULE,
        "when",
        |mut caller: Caller<'_, Data<O>>, promise: i64, tag: i64| -> i32 {
            status((|| {
                charge(&mut caller, 0)?;
                let d = caller.data_mut();
                let cap = d.clist.get(promise, Kind::Ref)?.cap.clone();
                d.outside.when(&cap, tag).map_err(|_| Code::Refused)
            })())
        },
    )?;
    linker.func_wrap(
        abi::MODULE,
        "drop",
        |mut caller: Caller<'_, Data<O>>, handle: i64| -> i32 {
            status((|| {
                charge(&mut caller, 0)?;
                let d = caller.data_mut();
                let e = d.clist.take(handle)?;
                if e.kind == Kind::Resolver {
                    // Dropping a resolver breaks its promise: nobody else
                    // can settle it now.
                    d.outside
                        .settle(e.cap, Err(Value::error("dropped by caplet")));
                }
                Ok(())
            })())
        },
    )?;
    linker.func_wrap(
        abi::MODULE,
        "storage_get",
        |mut caller: Caller<'_, Data<O>>, key_ptr: i32, key_len: i32| -> i32 {
            let r = (|| {
                let key = storage_key(&mut caller, key_ptr, key_len)?;
                let d = caller.data();
                let size = d.storage.get_sized(&key).ok_or(Code::NotFound)?.1;
                // Paid before the host copies and encodes the value (and
                // again, by size, when the caplet reads it).
                let cost = u64::try_from(size)
                    .unwrap_or(u64::MAX)
                    .saturating_mul(d.message_byte_fuel);
                burn(&mut caller, cost)?;
                let value = caller
                    .data()
                    .storage
                    .get(&key)
                    .cloned()
                    .ok_or(Code::NotFound)?;
                // Stored values never hold the reserved label as data
                // (they come from caplet messages, where it means a
                // reference); one restored from elsewhere might.
                if has_reserved_label(&value) {
                    return Err(Code::BadMessage);
                }
                let split = value
                    .try_map_refs::<Split<O::Ref>, std::convert::Infallible>(&mut |g| {
                        Ok(Value::Ref(match g {
                            Grant::Plain(r) => Split(r, None),
                            Grant::Revocable(r, gate) => Split(r, Some(gate)),
                        }))
                    })
                    .unwrap_or_else(|e| match e {});
                let len = stage_inbound(caller.data_mut(), split, 0).map_err(|e| match e {
                    CallError::CListFull => Code::CListFull,
                    CallError::MessageTooLarge { .. } => Code::TooLarge,
                    _ => Code::BadMessage,
                })?;
                Ok(len)
            })();
            r.unwrap_or_else(|c: Code| c.as_i32())
        },
    )?;
    linker.func_wrap(
        abi::MODULE,
        "storage_put",
        |mut caller: Caller<'_, Data<O>>, key_ptr: i32, key_len: i32, ptr: i32, len: i32| -> i32 {
            status((|| {
                let key = storage_key(&mut caller, key_ptr, key_len)?;
                charge(&mut caller, len)?;
                charge_first_write(&mut caller)?;
                let value = read_stored(&mut caller, ptr, len)?;
                caller.data_mut().storage.put(key, value)
            })())
        },
    )?;
    linker.func_wrap(
        abi::MODULE,
        "storage_delete",
        |mut caller: Caller<'_, Data<O>>, key_ptr: i32, key_len: i32| -> i32 {
            status((|| {
                let key = storage_key(&mut caller, key_ptr, key_len)?;
                charge_first_write(&mut caller)?;
                caller.data_mut().storage.delete(key)
            })())
        },
    )?;
    Ok(())
}
