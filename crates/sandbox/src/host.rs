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
//!
//! One file per concept: [`outside`] (the embedder's world), [`data`] (an
//! instance's store state), [`instance`] (modules and instances),
//! [`calls`] (the host functions); this file builds the engine and loads
//! modules ([`Sandbox`]). The limits, [`crate::config`], sit beside this
//! module, so that the checker needs nothing from here.

use std::fmt;

use wasmtime::{Engine, InstanceAllocationStrategy, Linker, Module, PoolingAllocationConfig};

use crate::abi;
use crate::check::examine;
use crate::engine::{deterministic, first_line, validate};
use crate::error::{LoadError, Problem, SetupError};

mod calls;
mod data;
mod instance;
mod outside;

pub(crate) use crate::config::Config;
use calls::define_host_functions;
pub(crate) use data::Data;
pub use instance::{CapletInstance, CapletModule};
pub use outside::{Outside, Refused};

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
    /// host's [`Bounds`](crate::Bounds) ([`Config::bounds`]). The check is the one
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
