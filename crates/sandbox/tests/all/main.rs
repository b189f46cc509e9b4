//! Integration tests of the caplet sandbox, against caplets built from
//! source (`caplets/`, via `pola-sandbox-guests`).
#![allow(clippy::unwrap_used)]

mod attacks;
mod benign;
mod loader;
mod quotas;
mod vat;
mod world;

use std::sync::OnceLock;

use pola_sandbox::{CapletModule, Config, Sandbox};
use world::Link;

/// The test limits: small, so the tests hit them quickly.
pub fn test_config() -> Config {
    let mut c = Config::default();
    c.max_instances = 64;
    c.fuel_per_call = 20_000_000;
    c.memory_bytes = 8 << 20;
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

/// The built caplets, compiled once in the shared sandbox.
pub fn caplet(wasm: &'static [u8]) -> CapletModule<Link> {
    type Cache = std::sync::Mutex<Vec<(usize, CapletModule<Link>)>>;
    static MODULES: OnceLock<Cache> = OnceLock::new();
    let key = wasm.as_ptr() as usize;
    let m = MODULES.get_or_init(Default::default);
    if let Some((_, module)) = m.lock().unwrap().iter().find(|(k, _)| *k == key) {
        return module.clone();
    }
    let module = shared().load(wasm).unwrap();
    m.lock().unwrap().push((key, module.clone()));
    module
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
