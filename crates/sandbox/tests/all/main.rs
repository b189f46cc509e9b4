//! Integration tests of the caplet sandbox, against caplets built from
//! source (`caplets/`, via `pola-sandbox-guests`).
#![allow(clippy::unwrap_used)]

mod attacks;
mod benign;
mod bounds;
mod budget;
mod child;
mod determinism;
mod loader;
mod quotas;
mod shapes;
mod stop;
mod storage;
mod vat;
mod world;

use std::sync::{Mutex, OnceLock};

use pola_sandbox::vat::VatLink;
use pola_sandbox::{CapletModule, Config, Outside, Sandbox};
use world::Link;

/// The test limits: small, so the tests hit them quickly.
pub fn test_config() -> Config {
    let mut c = Config::default();
    c.max_instances = 64;
    c.fuel_per_call = 20_000_000;
    c.memory_bytes = 8 << 20;
    c.storage_keys = 64;
    c.storage_value_bytes = 4 << 10;
    c.storage_bytes = 32 << 10;
    c
}

/// A fresh sandbox with the test limits.
pub fn sandbox() -> Sandbox<Link> {
    Sandbox::new(test_config()).unwrap()
}

/// One sandbox shared by the tests, so each caplet is compiled once per
/// test run (a debug build of Cranelift is slow).
pub fn shared() -> &'static Sandbox<Link> {
    static SB: OnceLock<Sandbox<Link>> = OnceLock::new();
    SB.get_or_init(sandbox)
}

/// Compiled modules, by the address of their (static) bytes.
type Cache<O> = Mutex<Vec<(usize, CapletModule<O>)>>;

/// `wasm` compiled once per test binary in `sandbox`, through `cache`.
/// Compiling is most of the cost of these tests (Cranelift in a debug
/// build), so every test that does not need a sandbox of its own shares
/// one and reuses its modules.
fn cached<O: Outside>(
    cache: &'static OnceLock<Cache<O>>,
    sandbox: &Sandbox<O>,
    wasm: &'static [u8],
) -> CapletModule<O> {
    let key = wasm.as_ptr() as usize;
    let m = cache.get_or_init(Default::default);
    // Held while compiling, so two tests never compile the same module.
    let mut m = m.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, module)) = m.iter().find(|(k, _)| *k == key) {
        return module.clone();
    }
    let module = sandbox.load(wasm).unwrap();
    m.push((key, module.clone()));
    module
}

/// The built caplets, compiled once in the shared sandbox.
pub fn caplet(wasm: &'static [u8]) -> CapletModule<Link> {
    static MODULES: OnceLock<Cache<Link>> = OnceLock::new();
    cached(&MODULES, shared(), wasm)
}

/// One sandbox for caplets living in vats, shared by the tests.
pub fn vat_shared() -> &'static Sandbox<VatLink> {
    static SB: OnceLock<Sandbox<VatLink>> = OnceLock::new();
    SB.get_or_init(|| Sandbox::new(test_config()).unwrap())
}

/// The built caplets for vats, compiled once in the shared vat sandbox.
pub fn vat_caplet(wasm: &'static [u8]) -> CapletModule<VatLink> {
    static MODULES: OnceLock<Cache<VatLink>> = OnceLock::new();
    cached(&MODULES, vat_shared(), wasm)
}

/// Parses WAT in tests.
pub fn wat(text: &str) -> Vec<u8> {
    wat::parse_str(text).unwrap()
}

/// The smallest confined module, with `imports` spliced in.
pub fn module_with(imports: &str) -> Vec<u8> {
    wat(&format!(
        r#"(module
            {imports}
            (memory (export "memory") 1)
            (func (export "pola_deliver") (param i32 i64) (result i32) i32.const 0))"#
    ))
}
