//! The Syrup project's `zoo.bin` test vector.

use std::collections::BTreeSet;

use bytes::Bytes;
use pola_syrup::{Decoder, Value, decode, decode_bytes, encode};

const ZOO: &[u8] = include_bytes!("../data/zoo.bin");

fn sym(s: &str) -> Value {
    Value::sym(s)
}

#[test]
fn zoo_round_trips_byte_identically() {
    assert_eq!(ZOO.len(), 290);
    let v = decode(ZOO).expect("zoo.bin decodes");
    assert_eq!(encode(&v), ZOO);
    let v2 = decode_bytes(Bytes::from_static(ZOO)).expect("zoo.bin decodes zero-copy");
    assert_eq!(v, v2);
}

#[test]
fn zoo_streams_one_byte_at_a_time() {
    let mut d = Decoder::new();
    let mut got = Vec::new();
    for b in ZOO {
        d.feed(std::slice::from_ref(b));
        while let Some(v) = d.next_value().expect("no error") {
            got.push(v);
        }
    }
    assert_eq!(got, vec![decode(ZOO).expect("decodes")]);
}

#[test]
fn zoo_structure_matches_the_digest() {
    let v = decode(ZOO).expect("zoo.bin decodes");
    let rec = v.as_record().expect("a record");
    assert_eq!(rec.label, Value::bytes(&b"zoo"[..]));
    assert_eq!(rec.fields.len(), 2);
    assert_eq!(rec.fields[0], Value::str("The Grand Menagerie"));
    let animals = rec.fields[1].as_list().expect("a list");
    assert_eq!(animals.len(), 3);

    let expect = [
        (
            "Tabatha",
            12i64,
            &["fish", "mice", "kibble"][..],
            true,
            8.2f64,
            "cat",
        ),
        (
            "George",
            6,
            &["bananas", "insects"][..],
            false,
            17.24,
            "monkey",
        ),
        ("Casper", -12, &[][..], false, -34.5, "ghost"),
    ];
    for (animal, (name, age, eats, alive, weight, species)) in animals.iter().zip(expect) {
        let Value::Dict(d) = animal else {
            panic!("animal is not a dictionary: {animal:?}")
        };
        let keys: Vec<&str> = d.keys().filter_map(Value::as_symbol).collect();
        assert_eq!(keys.len(), 6);
        assert_eq!(d[&sym("name")], Value::str(name));
        assert_eq!(d[&sym("age")], Value::int(age));
        let eats: BTreeSet<Value> = eats
            .iter()
            .map(|e| Value::bytes(e.as_bytes().to_vec()))
            .collect();
        assert_eq!(d[&sym("eats")], Value::Set(eats));
        assert_eq!(d[&sym("alive?")], Value::Bool(alive));
        assert_eq!(d[&sym("weight")], Value::f64(weight));
        assert_eq!(
            d[&sym("species")],
            Value::bytes(species.as_bytes().to_vec())
        );
    }
}

#[test]
fn zoo_keys_are_in_canonical_byte_order() {
    // Shorter encodings first: age, eats, name, alive?, weight, species.
    let text = String::from_utf8_lossy(ZOO);
    let first = text.find("3'age").expect("age");
    let order = [
        "3'age",
        "4'eats",
        "4'name",
        "6'alive?",
        "6'weight",
        "7'species",
    ];
    let mut at = first;
    for k in order {
        let i = text[at..].find(k).expect("key present") + at;
        at = i;
    }
}
