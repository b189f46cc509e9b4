//! Execution does not depend on the CPU: NaNs are canonical and relaxed
//! SIMD (whose results may differ by platform) is not available.

use pola_sandbox::{CallError, LoadError};
use pola_syrup::Value;

use crate::{sandbox, wat};

/// Runs a caplet whose entry point returns the bits of a float expression
/// (a failure code, so the bits come back in the error).
fn bits_of(expression: &str) -> u32 {
    let wasm = wat(&format!(
        r#"(module
            (memory (export "memory") 1)
            (func (export "pola_deliver") (param i32 i64) (result i32)
                (i32.reinterpret_f32 {expression})))"#
    ));
    let sb = sandbox();
    let m = sb.load(&wasm).unwrap();
    let mut c = m
        .instantiate(crate::world::Link {
            world: Default::default(),
            me: 0,
        })
        .unwrap();
    match c.deliver(Value::List(vec![]), None) {
        Err(CallError::CapletFailed(code)) => code as u32,
        other => panic!("{other:?}"),
    }
}

/// 0/0 and arithmetic on a NaN with a payload give the one canonical NaN
/// (x86 would give a negative NaN for 0/0 and keep the payload otherwise).
#[test]
fn nans_are_canonical() {
    const CANONICAL: u32 = 0x7fc0_0000;
    assert_eq!(bits_of("(f32.div (f32.const 0) (f32.const 0))"), CANONICAL);
    assert_eq!(
        bits_of("(f32.add (f32.reinterpret_i32 (i32.const 0x7fa00001)) (f32.const 1))"),
        CANONICAL
    );
    assert_eq!(bits_of("(f32.sqrt (f32.const -1))"), CANONICAL);
    // Plain values are untouched.
    assert_eq!(
        bits_of("(f32.add (f32.const 1) (f32.const 2))"),
        3.0f32.to_bits()
    );
}

/// A module using a relaxed-SIMD instruction is invalid, for `check` and
/// for the loader alike.
#[test]
fn relaxed_simd_is_refused() {
    let wasm = wat(r#"(module
        (memory (export "memory") 1)
        (func (export "pola_deliver") (param i32 i64) (result i32)
            (i32x4.extract_lane 0
                (i32x4.relaxed_trunc_f32x4_s (v128.const f32x4 -1.5 1e10 0 0)))))"#);
    let checked = pola_sandbox::check(&wasm).unwrap_err();
    assert!(matches!(checked, LoadError::Invalid(_)), "{checked}");
    let loaded = sandbox().load(&wasm).unwrap_err();
    assert_eq!(loaded, checked);
    // Plain SIMD stays.
    let plain = wat(r#"(module
        (memory (export "memory") 1)
        (func (export "pola_deliver") (param i32 i64) (result i32)
            (i32x4.extract_lane 0 (i32x4.trunc_sat_f32x4_s (v128.const f32x4 0 0 0 0)))))"#);
    assert!(pola_sandbox::check(&plain).unwrap().loads);
}
