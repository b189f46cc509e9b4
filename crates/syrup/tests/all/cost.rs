//! What a decoded value costs: `Value::count` and `Value::footprint`.

use pola_syrup::Value;

#[test]
fn counts_every_value_at_every_depth() {
    let v: Value = Value::List(vec![
        Value::Bool(true),
        Value::record("r", vec![Value::int(1i64), Value::str("ab")]),
        Value::Dict(
            [(Value::str("k"), Value::List(vec![]))]
                .into_iter()
                .collect(),
        ),
    ]);
    // list, bool, record, label, 1, "ab", dict, "k", []
    assert_eq!(v.count(), 9);
    let atoms: Value = Value::List(vec![Value::Bool(true); 1000]);
    assert_eq!(atoms.count(), 1001);
    // A thousand one-byte atoms take far more than a thousand bytes.
    assert!(atoms.footprint() >= 1000 * std::mem::size_of::<Value>());
    let big: Value = Value::bytes(vec![0u8; 1 << 20]);
    assert!(big.footprint() >= 1 << 20);
    let wide: Value = Value::int(num_bigint::BigInt::from(1u8) << 80_000u32);
    assert!(wide.footprint() >= 10_000);
}

#[test]
fn deep_values_do_not_recurse() {
    let mut v: Value = Value::Bool(false);
    for _ in 0..100_000 {
        v = Value::List(vec![v]);
    }
    assert_eq!(v.count(), 100_001);
    assert!(v.footprint() > 100_000);
    // Dropping a value this deep recurses in the value's own drop; take it
    // apart by hand.
    while let Value::List(mut items) = v {
        v = items.pop().unwrap_or(Value::Bool(false));
    }
}
