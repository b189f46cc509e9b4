//! Property tests: round trips, canonical re-encoding, no panics, streaming
//! equals whole decoding, and the text form.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use num_bigint::{BigInt, Sign};
use pola_syrup::{
    Decoder, Int, Limits, Record, Value, decode, decode_bytes, decode_with, encode, text,
};
use proptest::prelude::*;

fn big_int() -> impl Strategy<Value = Int> {
    (any::<bool>(), prop::collection::vec(any::<u32>(), 1..8)).prop_map(|(neg, digits)| {
        let sign = if neg { Sign::Minus } else { Sign::Plus };
        Int::from_big(BigInt::new(sign, digits))
    })
}

fn float64() -> impl Strategy<Value = u64> {
    prop_oneof![
        any::<u64>(),
        // NaNs with random payloads and signs, and the special values.
        any::<u64>().prop_map(|x| x | 0x7ff0_0000_0000_0001),
        Just(0x7ff8_0000_0000_0000u64),
        Just((-0.0f64).to_bits()),
        Just(f64::INFINITY.to_bits()),
        Just(f64::NEG_INFINITY.to_bits()),
        any::<f64>().prop_map(f64::to_bits),
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::int),
        (0i64..20).prop_map(Value::int),
        big_int().prop_map(Value::Int),
        any::<u32>().prop_map(Value::Float32),
        float64().prop_map(Value::Float64),
        prop::collection::vec(any::<u8>(), 0..40).prop_map(|b| Value::Bytes(Bytes::from(b))),
        any::<String>().prop_map(Value::String),
        "[a-z:?-]{0,12}".prop_map(Value::Symbol),
        any::<String>().prop_map(Value::Symbol),
    ]
}

/// Arbitrary plain values, nested a few levels deep.
pub fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::List),
            prop::collection::btree_map(inner.clone(), inner.clone(), 0..6).prop_map(Value::Dict),
            prop::collection::btree_set(inner.clone(), 0..6).prop_map(Value::Set),
            (inner.clone(), prop::collection::vec(inner, 0..6))
                .prop_map(|(label, fields)| { Value::Record(Box::new(Record { label, fields })) }),
        ]
    })
}

/// Byte strings that look like Syrup: valid encodings with a few random
/// mutations (flips, insertions, deletions, truncation), or plain noise.
fn syrupish() -> impl Strategy<Value = Vec<u8>> {
    let mutated = (
        value(),
        prop::collection::vec((any::<usize>(), any::<u8>(), 0u8..4), 0..4),
    )
        .prop_map(|(v, edits)| {
            let mut b = encode(&v);
            for (at, byte, op) in edits {
                if b.is_empty() {
                    b.push(byte);
                    continue;
                }
                let i = at % b.len();
                match op {
                    0 => b[i] = byte,
                    1 => b.insert(i, byte),
                    2 => {
                        b.remove(i);
                    }
                    _ => b.truncate(i),
                }
            }
            b
        });
    prop_oneof![
        mutated,
        prop::collection::vec(any::<u8>(), 0..64),
        prop::collection::vec(
            prop::sample::select(b"0123456789+-:\"'tfFD[]{}<>#$ ".to_vec()),
            0..48
        ),
    ]
}

/// Values and their encodings, fed to a streaming decoder in the given
/// chunk sizes.
fn stream_values(input: &[u8], chunks: &[usize]) -> Result<Vec<Value>, pola_syrup::DecodeError> {
    let mut d = Decoder::new();
    let mut out = Vec::new();
    let mut rest = input;
    let mut sizes = chunks.iter().cycle();
    while !rest.is_empty() {
        let n = (*sizes.next().unwrap_or(&1)).clamp(1, rest.len());
        let (chunk, tail) = rest.split_at(n);
        d.feed(chunk);
        rest = tail;
        while let Some(v) = d.next_value()? {
            out.push(v);
        }
    }
    assert!(d.next_value()?.is_none());
    Ok(out)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Lifting `<ref n>` records into references undoes writing references
    /// as those records, at any depth (dictionary keys and set members too).
    #[test]
    fn lifting_refs_inverts_writing_them(v in value(), n in any::<u32>()) {
        let as_record = |n: u32| Value::<pola_syrup::NoRef>::record("ref", vec![Value::int(i64::from(n))]);
        // A value holding references: every integer leaf of `v` becomes one.
        let with_refs: Value<u32> = v
            .clone()
            .try_lift_refs::<u32, std::convert::Infallible>(&mut |x| {
                Ok(x.as_i64().and_then(|i| u32::try_from(i).ok()))
            })
            .unwrap();
        let wrapped = Value::List(vec![with_refs, Value::Ref(n)]);
        let written = wrapped
            .clone()
            .try_map_refs::<pola_syrup::NoRef, std::convert::Infallible>(&mut |r| Ok(as_record(r)))
            .unwrap();
        let lifted = written
            .try_lift_refs::<u32, ()>(&mut |x| match x.as_record_labelled("ref") {
                Some([i]) => Ok(i.as_i64().and_then(|i| u32::try_from(i).ok())),
                Some(_) => Err(()),
                None => Ok(None),
            })
            .unwrap();
        prop_assert_eq!(lifted, wrapped);
    }

    #[test]
    fn decode_inverts_encode(v in value()) {
        let bytes = encode(&v);
        prop_assert_eq!(&decode(&bytes).unwrap(), &v);
        prop_assert_eq!(&decode_bytes(Bytes::from(bytes)).unwrap(), &v);
    }

    #[test]
    fn every_proper_prefix_is_incomplete(v in value()) {
        let bytes = encode(&v);
        for cut in 0..bytes.len() {
            let e = decode(&bytes[..cut]).unwrap_err();
            prop_assert!(e.kind.is_incomplete(), "cut {}: {:?}", cut, e);
            prop_assert_eq!(e.offset, cut);
        }
    }

    #[test]
    fn canonical_reencode_is_identical(input in syrupish()) {
        if let Ok(v) = decode(&input) {
            prop_assert_eq!(encode(&v), input);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(input in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode(&input);
        let _ = decode_bytes(Bytes::from(input.clone()));
        let mut tight = Limits::default();
        tight.max_len = 8;
        tight.max_depth = 3;
        tight.max_int_digits = 3;
        tight.max_items = 4;
        tight.max_values = 10;
        tight.max_value_bytes = 32;
        let _ = decode_with(&input, &tight);
        let mut d = Decoder::with_limits(tight);
        d.feed(&input);
        while let Ok(Some(_)) = d.next_value() {}
        let _ = stream_values(&input, &[1, 3, 7]);
    }

    #[test]
    fn streaming_equals_whole_decoding(
        values in prop::collection::vec(value(), 1..5),
        chunks in prop::collection::vec(1usize..64, 1..8),
    ) {
        let mut wire = Vec::new();
        for v in &values {
            wire.extend_from_slice(&encode(v));
        }
        prop_assert_eq!(&stream_values(&wire, &chunks).unwrap(), &values);
        prop_assert_eq!(&stream_values(&wire, &[1]).unwrap(), &values);
    }

    #[test]
    fn streaming_agrees_with_whole_decode_on_noise(input in syrupish(), chunk in 1usize..9) {
        // A single value decodes whole iff the stream yields exactly it and
        // consumes every byte.
        let whole = decode(&input).ok();
        let streamed = stream_values(&input, &[chunk]);
        if let Some(v) = whole {
            prop_assert_eq!(streamed.unwrap(), vec![v]);
        }
    }

    #[test]
    fn text_form_round_trips(v in value()) {
        let printed = v.to_string();
        prop_assert_eq!(&text::parse(&printed).unwrap(), &v, "text: {}", printed);
    }

    #[test]
    fn dict_and_set_order_is_by_encoded_bytes(v in prop::collection::btree_set(leaf(), 0..12)) {
        let set = Value::Set(v.clone());
        let wire = encode(&set);
        let mut members: Vec<Vec<u8>> = v.iter().map(encode).collect();
        members.sort();
        let mut expect = vec![b'#'];
        for m in members {
            expect.extend_from_slice(&m);
        }
        expect.push(b'$');
        prop_assert_eq!(&wire, &expect);
        let dict: BTreeMap<Value, Value> = v.into_iter().map(|k| (k, Value::Bool(true))).collect();
        prop_assert_eq!(decode(&encode(&Value::Dict(dict.clone()))).unwrap(), Value::Dict(dict));
    }
}

#[test]
fn unsorted_set_is_rejected_even_if_values_are_distinct() {
    let set: BTreeSet<Value> = [Value::int(1i64), Value::int(10i64)].into_iter().collect();
    let wire = encode(&Value::Set(set));
    assert_eq!(wire, b"#1+10+$");
    assert!(decode(b"#10+1+$").is_err());
}
