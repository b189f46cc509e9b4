//! Execution does not depend on the CPU: NaNs are canonical and relaxed
//! SIMD (whose results may differ by platform) is not available.

use pola_sandbox::{CallError, LoadError};
use pola_syrup::Value;

use crate::{sandbox, shared, wat};

/// Runs a caplet whose entry point returns the 16 bits of an `i32`
/// expression at `shift`, with bit 16 set: a failure code, so the bits
/// come back in the error (0 would be success, and say nothing).
fn half(expression: &str, shift: u32) -> u32 {
    let wasm = wat(&format!(
        r#"(module
            (memory (export "memory") 1)
            (func (export "pola_deliver") (param i32 i64) (result i32)
                (i32.or (i32.const 0x10000)
                    (i32.and (i32.const 0xffff)
                        (i32.shr_u {expression} (i32.const {shift}))))))"#
    ));
    let m = shared().load(&wasm).unwrap();
    let mut c = m
        .instantiate(crate::world::Link {
            world: Default::default(),
            me: 0,
        })
        .unwrap();
    match c.deliver(Value::List(vec![]), None) {
        Err(CallError::CapletFailed(code)) => code as u32 & 0xffff,
        other => panic!("{other:?}"),
    }
}

/// The value of an `i32` expression, one half per run.
fn word(expression: &str) -> u32 {
    (half(expression, 16) << 16) | half(expression, 0)
}

/// The bits of an `f32` expression.
fn bits_of(expression: &str) -> u32 {
    word(&format!("(i32.reinterpret_f32 {expression})"))
}

/// The bits of an `f64` expression.
fn bits_of_f64(expression: &str) -> u64 {
    let bits = format!("(i64.reinterpret_f64 {expression})");
    let high = word(&format!("(i32.wrap_i64 (i64.shr_u {bits} (i64.const 32)))"));
    let low = word(&format!("(i32.wrap_i64 {bits})"));
    (u64::from(high) << 32) | u64::from(low)
}

/// The bits of the four lanes of an `f32x4` expression.
fn lanes_of(expression: &str) -> [u32; 4] {
    [0, 1, 2, 3].map(|lane| word(&format!("(i32x4.extract_lane {lane} {expression})")))
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

/// The same for `f64`: a negative NaN and a signalling NaN with a payload
/// in, the canonical NaN out.
#[test]
fn f64_nans_are_canonical() {
    const CANONICAL: u64 = 0x7ff8_0000_0000_0000;
    assert_eq!(
        bits_of_f64("(f64.div (f64.const 0) (f64.const 0))"),
        CANONICAL
    );
    assert_eq!(
        bits_of_f64(
            "(f64.mul (f64.reinterpret_i64 (i64.const 0xfff8_0000_0000_0123)) (f64.const 2))"
        ),
        CANONICAL
    );
    assert_eq!(
        bits_of_f64(
            "(f64.sub (f64.const 1) (f64.reinterpret_i64 (i64.const 0x7ff0_0000_dead_beef)))"
        ),
        CANONICAL
    );
    assert_eq!(bits_of_f64("(f64.sqrt (f64.const -1))"), CANONICAL);
    assert_eq!(
        bits_of_f64("(f64.add (f64.const 1) (f64.const 2))"),
        3.0f64.to_bits()
    );
}

/// And lane by lane in SIMD: three NaN inputs with payloads (one negative,
/// one signalling) and a 0/0 give canonical NaNs, next to a plain lane.
#[test]
fn simd_nans_are_canonical() {
    const CANONICAL: u32 = 0x7fc0_0000;
    let nans = "(v128.const i32x4 0x7fa00001 0xffc00123 0x7f800001 0x3f800000)";
    assert_eq!(
        lanes_of(&format!("(f32x4.add {nans} (v128.const f32x4 1 1 1 1))")),
        [CANONICAL, CANONICAL, CANONICAL, 2.0f32.to_bits()]
    );
    assert_eq!(
        lanes_of("(f32x4.div (v128.const f32x4 0 1 0 6) (v128.const f32x4 0 2 0 3))"),
        [CANONICAL, 0.5f32.to_bits(), CANONICAL, 2.0f32.to_bits()]
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
