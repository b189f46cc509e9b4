//! What a decoded value costs the host: how many values it holds and
//! roughly how many bytes of host memory it occupies.
//!
//! A Syrup message's encoded size says little about its decoded size: one
//! input byte (`t`) becomes one in-memory [`Value`] of several dozen bytes.
//! The host charges a caplet by these counts (fuel per decoded value, see
//! [`crate::Config::value_fuel`], and the bytes of its pending sends, see
//! [`crate::Config::pending_bytes`]), not by the encoded length alone.

use pola_syrup::Value;

/// The number of values in `v`, counting every atom and container at every
/// depth (a reference counts as one). The walk uses its own stack, so a
/// deep value cannot exhaust the host's.
pub(crate) fn values<R>(v: &Value<R>) -> usize {
    let mut count = 0usize;
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        count = count.saturating_add(1);
        match v {
            Value::List(items) => stack.extend(items.iter()),
            Value::Set(items) => stack.extend(items.iter()),
            Value::Dict(d) => {
                for (k, v) in d {
                    stack.push(k);
                    stack.push(v);
                }
            }
            Value::Record(r) => {
                stack.push(&r.label);
                stack.extend(r.fields.iter());
            }
            _ => {}
        }
    }
    count
}

/// Roughly the bytes of host memory `v` occupies once decoded: a fixed size
/// per value (the enum itself, plus a map node's or a record box's
/// overhead) and the bytes of its strings, symbols and byte strings.
pub(crate) fn footprint<R>(v: &Value<R>) -> usize {
    // The enum, plus a share of the collection that holds it (a vector
    // slot, a B-tree node's key and value, a record's box).
    let per_value = std::mem::size_of::<Value<R>>().saturating_mul(2);
    let mut bytes = 0usize;
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        bytes = bytes.saturating_add(per_value);
        match v {
            Value::Bytes(b) => bytes = bytes.saturating_add(b.len()),
            Value::String(s) | Value::Symbol(s) => bytes = bytes.saturating_add(s.len()),
            Value::List(items) => stack.extend(items.iter()),
            Value::Set(items) => stack.extend(items.iter()),
            Value::Dict(d) => {
                for (k, v) in d {
                    stack.push(k);
                    stack.push(v);
                }
            }
            Value::Record(r) => {
                stack.push(&r.label);
                stack.extend(r.fields.iter());
            }
            _ => {}
        }
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(values(&v), 9);
        let atoms: Value = Value::List(vec![Value::Bool(true); 1000]);
        assert_eq!(values(&atoms), 1001);
        // A thousand one-byte atoms take far more than a thousand bytes.
        assert!(footprint(&atoms) >= 1000 * std::mem::size_of::<Value>());
        let big: Value = Value::bytes(vec![0u8; 1 << 20]);
        assert!(footprint(&big) >= 1 << 20);
    }

    #[test]
    fn deep_values_do_not_recurse() {
        let mut v: Value = Value::Bool(false);
        for _ in 0..100_000 {
            v = Value::List(vec![v]);
        }
        assert_eq!(values(&v), 100_001);
        assert!(footprint(&v) > 100_000);
        // Dropping a value this deep recurses in the value's own drop; take
        // it apart by hand.
        while let Value::List(mut items) = v {
            v = items.pop().unwrap_or(Value::Bool(false));
        }
    }
}
