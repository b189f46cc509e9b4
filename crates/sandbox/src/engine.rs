//! The WebAssembly features and code generation settings every engine of
//! this crate shares, so that the loader's engine and the checker's engine
//! accept exactly the same modules.
//!
//! Determinism: a caplet's results must not depend on the CPU it runs on
//! (replay and persistence rely on it). Two things in standard wasm can:
//! the bit patterns of NaNs that arithmetic produces, which the compiler
//! here canonicalises, and the relaxed-SIMD instructions, whose results
//! are allowed to differ by platform, which are left out (a module using
//! them is invalid).

use std::sync::OnceLock;

use wasmtime::{Engine, Module};

use crate::error::LoadError;

/// Applies the shared features and settings to an engine configuration.
pub(crate) fn deterministic(c: &mut wasmtime::Config) {
    c.cranelift_nan_canonicalization(true);
    c.wasm_relaxed_simd(false);
    // A `table.grow` or `memory.grow` is charged for what it asks for, not
    // for what it gets: `table.grow(u32::MAX)` would run out of fuel before
    // the growth is refused, a trap where the caplet should see -1. Growth
    // is capped by the limiter (`Config::table_elements`,
    // `Config::memory_bytes`), so it needs no per-element charge: the flat
    // per-instruction cost remains.
    let mut cost = wasmtime::OperatorCost::default();
    cost.variable.table_grow_per_element = 0;
    cost.variable.memory_grow_per_page = 0;
    c.operator_cost(cost);
    // Errors that reach other parties carry no backtrace.
    c.wasm_backtrace_max_frames(None);
}

/// The engine the checker validates with: the loader's features, the
/// default allocator, and it never runs code.
fn check_engine() -> Option<&'static Engine> {
    static ENGINE: OnceLock<Option<Engine>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let mut c = wasmtime::Config::new();
            deterministic(&mut c);
            Engine::new(&c).ok()
        })
        .as_ref()
}

/// Validates a module by the loader's rules, without compiling it.
///
/// # Errors
/// [`LoadError::Invalid`] with the validator's first line;
/// [`LoadError::Engine`] if the checking engine cannot be created.
pub(crate) fn validate(bytes: &[u8]) -> Result<(), LoadError> {
    let engine = check_engine().ok_or(LoadError::Engine)?;
    Module::validate(engine, bytes).map_err(|e| LoadError::Invalid(first_line(&e)))
}

/// The first line of an engine error's root cause (no backtrace, no
/// context chain: "failed to compile: function 3" says less than the
/// validator's own words, which name the offset).
pub(crate) fn first_line(e: &wasmtime::Error) -> String {
    let s = e.root_cause().to_string();
    s.lines().next().unwrap_or_default().to_owned()
}
