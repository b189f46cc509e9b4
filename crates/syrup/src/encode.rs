//! Canonical Syrup encoding.
//!
//! Invariant (upheld here): the output is the one canonical byte form of the
//! value. Integers have no leading zeros, lengths are plain decimal,
//! dictionary entries are ordered by the encoded bytes of their keys and set
//! members by their own encoded bytes (unsigned lexicographic order, a proper
//! prefix first), and nothing else is emitted (no whitespace).

use num_bigint::Sign;

use crate::value::{Int, NoRef, Value};

/// Encodes `value` in canonical Syrup.
///
/// Encoding plain data cannot fail.
///
/// ```
/// use pola_syrup::{encode, Value};
/// let v: Value = Value::record("op:deliver-only", vec![Value::int(5i64), Value::sym("ping")]);
/// assert_eq!(encode(&v), b"<15'op:deliver-only5+4'ping>");
/// ```
pub fn encode(value: &Value<NoRef>) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(value, &mut out);
    out
}

/// Appends the canonical Syrup encoding of `value` to `out`.
///
/// ```
/// use pola_syrup::{encode_into, Value};
/// let mut out = b"prefix:".to_vec();
/// encode_into(&Value::<pola_syrup::NoRef>::Bool(true), &mut out);
/// assert_eq!(out, b"prefix:t");
/// ```
pub fn encode_into(value: &Value<NoRef>, out: &mut Vec<u8>) {
    encode_with_refs(value, out, &mut |r: &NoRef, _: &mut Vec<u8>| match *r {});
}

/// Appends the canonical Syrup encoding of a value that holds references,
/// writing each reference with `encode_ref`.
///
/// This saves converting the whole value with
/// [`Value::try_map_refs`] first: a CapTP layer, for instance, writes each
/// reference as its descriptor record. `encode_ref` must append exactly one
/// complete canonical Syrup value (typically by calling [`encode_into`]);
/// dictionary keys and set members holding references are then ordered by
/// those bytes, as canonical order requires. If it appends anything else the
/// output is not valid Syrup.
///
/// ```
/// use pola_syrup::{encode_with_refs, Value};
/// let v: Value<u32> = Value::List(vec![Value::Ref(7), Value::Bool(true)]);
/// let mut out = Vec::new();
/// encode_with_refs(&v, &mut out, &mut |r: &u32, out: &mut Vec<u8>| {
///     pola_syrup::encode_into(&Value::record("desc:export", vec![Value::int(i64::from(*r))]), out)
/// });
/// assert_eq!(out, b"[<11'desc:export7+>t]");
/// ```
pub fn encode_with_refs<R>(
    value: &Value<R>,
    out: &mut Vec<u8>,
    encode_ref: &mut impl FnMut(&R, &mut Vec<u8>),
) {
    match value {
        Value::Bool(true) => out.push(b't'),
        Value::Bool(false) => out.push(b'f'),
        Value::Int(Int::Small(i)) => {
            push_decimal(i.unsigned_abs(), out);
            out.push(if *i < 0 { b'-' } else { b'+' });
        }
        Value::Int(Int::Big(b)) => {
            out.extend_from_slice(b.magnitude().to_str_radix(10).as_bytes());
            out.push(if b.sign() == Sign::Minus { b'-' } else { b'+' });
        }
        Value::Float32(bits) => {
            out.push(b'F');
            out.extend_from_slice(&bits.to_be_bytes());
        }
        Value::Float64(bits) => {
            out.push(b'D');
            out.extend_from_slice(&bits.to_be_bytes());
        }
        Value::Bytes(b) => push_body(b, b':', out),
        Value::String(s) => push_body(s.as_bytes(), b'"', out),
        Value::Symbol(s) => push_body(s.as_bytes(), b'\'', out),
        Value::List(items) => {
            out.push(b'[');
            for item in items {
                encode_with_refs(item, out, encode_ref);
            }
            out.push(b']');
        }
        Value::Dict(map) => {
            out.push(b'{');
            let base = out.len();
            let mut spans = Vec::with_capacity(map.len());
            for (k, v) in map {
                let start = out.len();
                encode_with_refs(k, out, encode_ref);
                let key_end = out.len();
                encode_with_refs(v, out, encode_ref);
                spans.push(Span {
                    start,
                    key_end,
                    end: out.len(),
                });
            }
            sort_spans(out, base, &mut spans);
            out.push(b'}');
        }
        Value::Set(set) => {
            out.push(b'#');
            let base = out.len();
            let mut spans = Vec::with_capacity(set.len());
            for member in set {
                let start = out.len();
                encode_with_refs(member, out, encode_ref);
                spans.push(Span {
                    start,
                    key_end: out.len(),
                    end: out.len(),
                });
            }
            sort_spans(out, base, &mut spans);
            out.push(b'$');
        }
        Value::Record(r) => {
            out.push(b'<');
            encode_with_refs(&r.label, out, encode_ref);
            for field in &r.fields {
                encode_with_refs(field, out, encode_ref);
            }
            out.push(b'>');
        }
        Value::Ref(r) => encode_ref(r, out),
    }
}

/// One encoded entry in `out`: `start..key_end` is the sort key (the
/// dictionary key or the set member), `start..end` the whole entry.
struct Span {
    start: usize,
    key_end: usize,
    end: usize,
}

/// Reorders the entries written at `out[base..]` into canonical order.
/// Leaves `out` untouched (and allocates nothing more) when the entries are
/// already in order, which is common.
fn sort_spans(out: &mut Vec<u8>, base: usize, spans: &mut [Span]) {
    let key = |s: &Span| s.start..s.key_end;
    let sorted = spans.windows(2).all(|w| out[key(&w[0])] < out[key(&w[1])]);
    if sorted {
        return;
    }
    spans.sort_unstable_by(|a, b| out[key(a)].cmp(&out[key(b)]));
    let tail = out.split_off(base);
    for s in spans.iter() {
        out.extend_from_slice(&tail[s.start - base..s.end - base]);
    }
}

fn push_body(body: &[u8], marker: u8, out: &mut Vec<u8>) {
    push_decimal(body.len() as u64, out);
    out.push(marker);
    out.extend_from_slice(body);
}

/// Writes `n` in decimal with no leading zeros (Syrup's length and
/// integer prefixes), for code that writes Syrup by hand on a hot path.
pub fn push_decimal(mut n: u64, out: &mut Vec<u8>) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::value::Record;
    use num_bigint::BigInt;
    use std::collections::{BTreeMap, BTreeSet};

    fn enc(v: Value) -> Vec<u8> {
        encode(&v)
    }

    #[test]
    fn atoms() {
        assert_eq!(enc(Value::Bool(true)), b"t");
        assert_eq!(enc(Value::Bool(false)), b"f");
        assert_eq!(enc(Value::int(0i64)), b"0+");
        assert_eq!(enc(Value::int(72i64)), b"72+");
        assert_eq!(enc(Value::int(-5i64)), b"5-");
        assert_eq!(enc(Value::int(i64::MIN)), b"9223372036854775808-");
        assert_eq!(enc(Value::int(u64::MAX)), b"18446744073709551615+");
        let big: BigInt = BigInt::from(10u8).pow(30u32);
        assert_eq!(enc(Value::int(-big)), b"1000000000000000000000000000000-");
        assert_eq!(enc(Value::f64(f64::NAN)), b"D\x7f\xf8\0\0\0\0\0\0");
        assert_eq!(enc(Value::f64(-0.0)), b"D\x80\0\0\0\0\0\0\0");
        assert_eq!(enc(Value::Float32(1.5f32.to_bits())), b"F\x3f\xc0\0\0");
        assert_eq!(enc(Value::bytes(&b"cat"[..])), b"3:cat");
        assert_eq!(enc(Value::str("björn")), "6\"björn".as_bytes());
        assert_eq!(enc(Value::sym("fetch")), b"5'fetch");
        assert_eq!(enc(Value::str("")), b"0\"");
    }

    #[test]
    fn containers_and_order() {
        let list = Value::List(vec![Value::int(1i64), Value::int(2i64), Value::int(3i64)]);
        assert_eq!(enc(list), b"[1+2+3+]");
        let set: BTreeSet<Value> = [3i64, 2, 1].into_iter().map(Value::int).collect();
        assert_eq!(enc(Value::Set(set)), b"#1+2+3+$");
        // A 10-byte key sorts before a 9-byte one; a string before a symbol
        // before a byte string of the same length.
        let mut d = BTreeMap::new();
        d.insert(Value::str("123456789"), Value::Bool(true));
        d.insert(Value::str("1234567890"), Value::Bool(false));
        d.insert(Value::sym("abc"), Value::int(1i64));
        d.insert(Value::str("abc"), Value::int(2i64));
        d.insert(Value::bytes(&b"abc"[..]), Value::int(3i64));
        assert_eq!(
            enc(Value::Dict(d)),
            b"{10\"1234567890f3\"abc2+3'abc1+3:abc3+9\"123456789t}"
        );
        // Byte order, not numeric order: `+` (0x2b) sorts before `0` (0x30).
        let set: BTreeSet<Value> = [10i64, 1, 2].into_iter().map(Value::int).collect();
        assert_eq!(enc(Value::Set(set)), b"#1+10+2+$");
        let rec = Value::Record(Box::new(Record {
            label: Value::bytes(&b"zoo"[..]),
            fields: vec![Value::str("x")],
        }));
        assert_eq!(enc(rec), b"<3:zoo1\"x>");
    }

    #[test]
    fn refs_encode_like_their_mapped_form() {
        // Reference keys sort by the bytes the callback writes, exactly as
        // if the value had been mapped to plain data first.
        let desc = |r: u32| Value::record("desc:import-object", vec![Value::int(i64::from(r))]);
        let mut d: BTreeMap<Value<u32>, Value<u32>> = BTreeMap::new();
        for r in [3u32, 12, 7, 100] {
            d.insert(Value::Ref(r), Value::Ref(r + 1));
        }
        d.insert(Value::sym("zz"), Value::Bool(true));
        let v = Value::Set([Value::Dict(d), Value::Ref(5)].into_iter().collect());
        let mut direct = Vec::new();
        encode_with_refs(&v, &mut direct, &mut |r: &u32, out: &mut Vec<u8>| {
            encode_into(&desc(*r), out)
        });
        let mapped = v.try_map_refs::<NoRef, ()>(&mut |r| Ok(desc(r))).unwrap();
        assert_eq!(direct, encode(&mapped));
        assert!(crate::decode(&direct).is_ok());
    }
}
