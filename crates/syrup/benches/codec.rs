//! Encode and decode throughput on three shapes of data:
//! (a) byte-heavy: a list of 256 byte strings of 64 KiB (16 MiB);
//! (b) many small atoms: a list of 100 000 small integers, booleans and
//!     short symbols;
//! (c) CapTP-shaped: 10 000 `op:deliver` records, as a stream;
//! (d) streaming a 1 MiB byte string fed one byte at a time (linearity);
//! (e) the worst case for integers: 4096-digit integers.
//!
//! Run with `cargo bench -p pola-syrup`.
#![allow(missing_docs, clippy::unwrap_used)]

use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pola_syrup::{Decoder, Value, decode, decode_bytes, encode, encode_into};

fn byte_heavy() -> Value {
    Value::List(
        (0..256u32)
            .map(|i| Value::bytes(vec![(i % 251) as u8; 64 * 1024]))
            .collect(),
    )
}

fn small_atoms() -> Value {
    let syms = ["ping", "pong", "deposit", "get", "op:gc"];
    Value::List(
        (0..100_000i64)
            .map(|i| match i % 3 {
                0 => Value::int(i % 1000),
                1 => Value::Bool(i % 2 == 0),
                _ => Value::sym(syms[(i as usize / 3) % syms.len()]),
            })
            .collect(),
    )
}

fn deliver(i: i64) -> Value {
    Value::record(
        "op:deliver",
        vec![
            Value::record("desc:export", vec![Value::int(5i64 + i % 7)]),
            Value::List(vec![
                Value::sym("deposit"),
                Value::int(10i64),
                Value::record("desc:import-object", vec![Value::int(3i64)]),
            ]),
            Value::int(i),
            Value::record("desc:import-object", vec![Value::int(9i64)]),
        ],
    )
}

const MESSAGES: u64 = 10_000;

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
}

fn bench(c: &mut Criterion) {
    // (a) byte-heavy
    let v = byte_heavy();
    let wire = Bytes::from(encode(&v));
    let mut g = c.benchmark_group("a_bytes_16MiB");
    g.throughput(Throughput::Bytes(wire.len() as u64));
    g.bench_function("decode_bytes", |b| {
        b.iter(|| decode_bytes(wire.clone()).unwrap())
    });
    g.bench_function("decode_copy", |b| b.iter(|| decode(&wire).unwrap()));
    g.bench_function("encode", |b| {
        let mut out = Vec::with_capacity(wire.len());
        b.iter(|| {
            out.clear();
            encode_into(&v, &mut out);
        })
    });
    g.finish();

    // (b) small atoms
    let v = small_atoms();
    let wire = Bytes::from(encode(&v));
    eprintln!("(b) small atoms: {} bytes for 100000 atoms", wire.len());
    let mut g = c.benchmark_group("b_atoms_100k");
    g.throughput(Throughput::Elements(100_000));
    g.bench_function("decode_bytes", |b| {
        b.iter(|| decode_bytes(wire.clone()).unwrap())
    });
    g.bench_function("encode", |b| {
        let mut out = Vec::with_capacity(wire.len());
        b.iter(|| {
            out.clear();
            encode_into(&v, &mut out);
        })
    });
    g.finish();

    // (c) CapTP-shaped messages, as a stream
    let msgs: Vec<Value> = (0..MESSAGES as i64).map(deliver).collect();
    let mut stream = Vec::new();
    for m in &msgs {
        encode_into(m, &mut stream);
    }
    eprintln!(
        "(c) captp: {} bytes for {MESSAGES} messages, e.g. {}",
        stream.len(),
        msgs[0]
    );
    let mut g = c.benchmark_group("c_captp_10k_msgs");
    g.throughput(Throughput::Elements(MESSAGES));
    g.bench_function("stream_decode_64KiB_chunks", |b| {
        b.iter(|| {
            let mut d = Decoder::new();
            let mut n = 0;
            for chunk in stream.chunks(64 * 1024) {
                d.feed(chunk);
                while let Some(v) = d.next_value().unwrap() {
                    n += 1;
                    std::hint::black_box(v);
                }
            }
            assert_eq!(n, MESSAGES);
        })
    });
    g.bench_function("encode", |b| {
        let mut out = Vec::with_capacity(stream.len());
        b.iter(|| {
            out.clear();
            for m in &msgs {
                encode_into(m, &mut out);
            }
        })
    });
    g.finish();

    // Streaming one byte at a time must stay linear: the same throughput
    // for a 256 KiB and a 4 MiB byte string.
    let mut g = c.benchmark_group("d_stream_byte_by_byte");
    for size in [256usize << 10, 4 << 20] {
        let big = encode(&Value::bytes(vec![7u8; size]));
        g.throughput(Throughput::Bytes(big.len() as u64));
        g.bench_function(format!("feed_1_byte_{}KiB", size >> 10), |b| {
            b.iter(|| {
                let mut d = Decoder::new();
                let mut got = None;
                for byte in &big {
                    d.feed(std::slice::from_ref(byte));
                    if let Some(v) = d.next_value().unwrap() {
                        got = Some(v);
                    }
                }
                assert!(got.is_some());
            })
        });
    }
    g.finish();

    // Worst case for integers: 1000 integers of the maximum 4096 digits.
    let digits: String = (0..4096)
        .map(|i| char::from(b'1' + (i % 9) as u8))
        .collect();
    let mut big = b"[".to_vec();
    for _ in 0..1000 {
        big.extend_from_slice(digits.as_bytes());
        big.push(b'+');
    }
    big.push(b']');
    let big = Bytes::from(big);
    let mut g = c.benchmark_group("e_big_ints_1000x4096_digits");
    g.throughput(Throughput::Bytes(big.len() as u64));
    g.bench_function("decode_bytes", |b| {
        b.iter(|| decode_bytes(big.clone()).unwrap())
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench
}
criterion_main!(benches);
