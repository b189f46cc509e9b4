//! Confined WebAssembly caplets: a host where a caplet's only authority is
//! the references it is handed.
//!
//! A caplet is a WebAssembly core module that imports nothing but pola's
//! caplet interface (ten functions, see [`abi`]) and receives messages
//! through one exported entry point. Data crosses as Syrup-encoded
//! [`pola_syrup::Value`]s; references cross as handles into the instance's
//! own c-list (capability list). There is no WASI, no clock, no randomness,
//! no file or socket: the loader refuses any module asking for one, naming
//! the import.
//!
//! What this crate is not: it is not the vat runtime (it does not schedule
//! turns or keep promises; the embedder supplies an [`Outside`] for that),
//! and it is not the guest SDK (that is `caplets/sdk`).
//!
//! Main types:
//! - [`Sandbox`]: the engine (pooling allocator, fuel metering) and the
//!   host-function registry; build once.
//! - [`CapletModule`]: a compiled, checked caplet ([`Sandbox::load`]).
//! - [`CapletInstance`]: one live instance with its own memory and c-list
//!   ([`CapletModule::instantiate`]); [`CapletInstance::deliver`] runs one
//!   message under a CPU budget and a memory cap.
//! - [`check`] / [`check_with`]: a module's imports, exports, confinement
//!   and size, and whether the loader would take it, without compiling it.
//!   The loader decides by the same function, so the two always agree.
//! - [`Bounds`]: the host's bounds on a module's shape (nesting,
//!   instructions per function and in all, functions, locals, …), checked
//!   in linear time before compiling, so that compiling a module takes
//!   bounded time and memory.
//! - Revocation: one mechanism for the whole project, the vat's revocable
//!   forwarders ([`vat::grant`], [`pola_vat::patterns::revocable`]). A
//!   revocable grant is a reference to a forwarder; the sandbox keeps no
//!   revocation state of its own.
//! - [`StorageMap`]: a caplet's storage, its persistent state (keys to
//!   values with references); writes are staged per entry and applied
//!   only when the entry succeeds (see [`abi`], "Storage").
//! - [`vat::CapletObject`]: a caplet as an object of the vat runtime.
//!
//! ```text
//!   embedder (vat)                    caplet instance (own Store)
//!   ───────────────                   ───────────────────────────
//!   deliver(msg, resolver) ──encode──► c-list += refs; pola_deliver(len, r)
//!                                         │ read(ptr,len)
//!   Outside::send(target, msg) ◄─decode── send(h, ptr, len) -> promise h'
//!   Outside::settle(resolver, v) ◄─────── resolve(r, ptr, len)
//! ```
//!
//! A caplet (here in WAT; normally Rust built with `caplets/sdk`) that
//! answers every message with `true`:
//!
//! ```
//! use pola_sandbox::{Config, Outside, Refused, Sandbox};
//! use pola_syrup::Value;
//!
//! /// The caplet's world: it may settle promises, nothing else.
//! #[derive(Default)]
//! struct Answers(Vec<Result<Value<u32>, Value<u32>>>);
//! impl Outside for Answers {
//!     type Ref = u32;
//!     fn send(&mut self, _: &u32, _: Value<u32>) -> Result<u32, Refused> {
//!         Err(Refused)
//!     }
//!     fn send_only(&mut self, _: &u32, _: Value<u32>) -> Result<(), Refused> {
//!         Err(Refused)
//!     }
//!     fn settle(&mut self, _: u32, outcome: Result<Value<u32>, Value<u32>>) {
//!         self.0.push(outcome);
//!     }
//! }
//!
//! let wasm = wat::parse_str(r#"(module
//!     (import "pola" "resolve" (func $resolve (param i64 i32 i32) (result i32)))
//!     (memory (export "memory") 1)
//!     (data (i32.const 0) "t")
//!     (func (export "pola_deliver") (param $len i32) (param $resolver i64) (result i32)
//!         (drop (call $resolve (local.get $resolver) (i32.const 0) (i32.const 1)))
//!         (i32.const 0)))"#)?;
//! assert!(pola_sandbox::check(&wasm)?.confined);
//! let sandbox = Sandbox::new(Config::default())?;
//! let module = sandbox.load(&wasm)?;
//! let mut caplet = module.instantiate(Answers::default())?;
//! caplet.deliver(Value::List(vec![Value::sym("hello")]), Some(7))?;
//! assert_eq!(caplet.outside().0, [Ok(Value::Bool(true))]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Quotas: every entry into a caplet gets [`Config::fuel_per_call`] fuel
//! (host calls are charged too) and a wall-clock limit,
//! [`Config::wall_time_per_call`] (epoch interruption driven by a ticker
//! thread, so a blocking [`Outside`] cannot hold a caplet's run open past
//! the limit once the host call returns); every instance is capped at
//! [`Config::memory_bytes`] of memory and [`Config::max_stack_bytes`] of
//! stack. A caplet that runs out, traps or
//! overflows its stack kills only its own instance ([`CallError`]); the host
//! and all other instances carry on.
//!
//! Across turns: a caplet running as a [`vat::CapletObject`] also has a
//! budget that spans its entries, a token bucket of fuel
//! ([`Config::fuel_per_second`], [`Config::fuel_burst`],
//! [`Config::turn_fuel`]) and the host memory its pending sends hold
//! ([`Config::pending_bytes`]); over either, the object is stopped for
//! good (every later message breaks with a plain reason) while its vat
//! and the other objects in it carry on. The host stops one at will with
//! a [`vat::Stopper`]. Messages from a caplet are charged by what decoding
//! them costs ([`Config::value_fuel`] per value, at most
//! [`Config::max_message_values`] values), not by their bytes alone.
//!
//! Costs (release build, 2-core machine, `cargo bench -p pola-sandbox`,
//! measured before the wall-clock limit added epoch checks to compiled
//! code):
//! a fresh instance from a loaded module 3.7 µs median (p99 3.9 µs); a
//! fresh instance plus its first call about 16 µs; a round trip into a
//! live caplet carrying a small Syrup message about 1.0 µs; a caplet's
//! send to the host about 0.75 µs; the same method on a native Rust object
//! 10 ns.
//!
//! Determinism: NaNs produced by arithmetic are canonical and relaxed SIMD
//! is not available, so a caplet computes the same bits on every CPU.
//!
//! The security argument and the attack table are in `ATTACKS.md` next to
//! this crate.
#![forbid(unsafe_code)]

pub mod abi;
mod bounds;
mod check;
mod clist;
mod config;
mod engine;
mod error;
mod host;
mod storage;
pub mod vat;

pub use bounds::Bounds;
pub use check::{Item, Measures, Report, check, check_with};
pub use config::Config;
pub use error::{CallError, Exceeded, Limit, LoadError, Problem, SetupError, TrapKind};
pub use host::{CapletInstance, CapletModule, Outside, Refused, Sandbox};
pub use storage::StorageMap;
