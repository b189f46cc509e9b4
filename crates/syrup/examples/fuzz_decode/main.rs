//! A stable-toolchain fuzzer for the Syrup decoder: mutates a corpus of
//! valid encodings (and random token soup) for a number of seconds and runs
//! the same oracle as the cargo-fuzz target on every input.
//!
//! `cargo run --release -p pola-syrup --example fuzz_decode -- SECONDS [SEED]`
//!
//! On a failure it prints the input in hex and exits non-zero.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod check;

use std::time::{Duration, Instant};

use pola_syrup::{Record, Value, encode};

/// xorshift64*: a small deterministic generator, enough for mutation.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

fn random_value(rng: &mut Rng, depth: usize) -> Value {
    let kinds = if depth >= 4 { 9 } else { 13 };
    match rng.below(kinds) {
        0 => Value::Bool(rng.below(2) == 0),
        1 => Value::int(rng.next() as i64 >> rng.below(64)),
        2 => {
            let digits: String = (0..rng.below(60) + 1)
                .map(|i| {
                    let d = rng.below(10) as u8;
                    char::from(b'0' + if i == 0 { d.max(1) } else { d })
                })
                .collect();
            let v = pola_syrup::text::parse(&digits).unwrap();
            if rng.below(2) == 0 {
                v
            } else {
                pola_syrup::text::parse(&format!("-{digits}")).unwrap()
            }
        }
        3 => Value::Float64(rng.next()),
        4 => Value::Float32(rng.next() as u32),
        5 => Value::bytes(
            (0..rng.below(20))
                .map(|_| rng.next() as u8)
                .collect::<Vec<u8>>(),
        ),
        6 => Value::str(["", "a", "björn", "熊", "\u{0}\u{10ffff}", "op:deliver"][rng.below(6)]),
        7 => Value::sym(["age", "eats", "name", "alive?", "desc:export", "op:abort"][rng.below(6)]),
        8 => Value::int(rng.below(20) as i64),
        9 => Value::List(
            (0..rng.below(6))
                .map(|_| random_value(rng, depth + 1))
                .collect(),
        ),
        10 => Value::Dict(
            (0..rng.below(6))
                .map(|_| (random_value(rng, depth + 1), random_value(rng, depth + 1)))
                .collect(),
        ),
        11 => Value::Set(
            (0..rng.below(6))
                .map(|_| random_value(rng, depth + 1))
                .collect(),
        ),
        _ => Value::Record(Box::new(Record {
            label: random_value(rng, depth + 1),
            fields: (0..rng.below(5))
                .map(|_| random_value(rng, depth + 1))
                .collect(),
        })),
    }
}

const TOKENS: &[&[u8]] = &[
    b"[",
    b"]",
    b"{",
    b"}",
    b"<",
    b">",
    b"#",
    b"$",
    b"t",
    b"f",
    b"0+",
    b"0-",
    b"00+",
    b"1-",
    b"99999999999999999999:",
    b"18446744073709551616+",
    b"9223372036854775808-",
    b"3:abc",
    b"2\"\xc3(",
    b"1'a",
    b"D",
    b"F",
    b" ",
    b"\n",
    b"16777217:",
];

fn mutate(rng: &mut Rng, input: &mut Vec<u8>, corpus: &[Vec<u8>]) {
    for _ in 0..rng.below(4) + 1 {
        let len = input.len();
        match rng.below(7) {
            0 if len > 0 => {
                let i = rng.below(len);
                input[i] = rng.next() as u8;
            }
            1 if len > 0 => {
                let i = rng.below(len);
                input[i] ^= 1 << rng.below(8);
            }
            2 => {
                let i = rng.below(len + 1);
                let t = TOKENS[rng.below(TOKENS.len())];
                input.splice(i..i, t.iter().copied());
            }
            3 if len > 0 => {
                let i = rng.below(len);
                let n = rng.below(len - i).min(8) + 1;
                input.drain(i..(i + n).min(len));
            }
            4 => input.truncate(rng.below(len + 1)),
            5 => {
                // Splice a piece of another corpus entry.
                let other = &corpus[rng.below(corpus.len())];
                let a = rng.below(other.len() + 1);
                let b = a + rng.below(other.len() - a + 1);
                let i = rng.below(len + 1);
                input.splice(i..i, other[a..b].iter().copied());
            }
            _ => {
                let i = rng.below(len + 1);
                input.insert(i, rng.next() as u8);
            }
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let seconds: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(10);
    let seed: u64 = args
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_1234_abcd_0001);
    let mut rng = Rng(seed | 1);

    let mut corpus: Vec<Vec<u8>> = vec![include_bytes!("../../tests/data/zoo.bin").to_vec()];
    for _ in 0..256 {
        corpus.push(encode(&random_value(&mut rng, 0)));
    }
    std::panic::set_hook(Box::new(|_| {}));

    let deadline = Instant::now() + Duration::from_secs(seconds);
    let (mut runs, mut accepted, mut incomplete) = (0u64, 0u64, 0u64);
    while Instant::now() < deadline {
        for _ in 0..1000 {
            let mut input = match rng.below(10) {
                0 => (0..rng.below(64))
                    .map(|_| b"0123456789+-:\"'tfFD[]{}<>#$ "[rng.below(28)])
                    .collect(),
                1 => encode(&random_value(&mut rng, 0)),
                _ => corpus[rng.below(corpus.len())].clone(),
            };
            mutate(&mut rng, &mut input, &corpus);
            let outcome = std::panic::catch_unwind(|| check::check(&input));
            if let Err(panic) = outcome {
                let msg = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                let hex: String = input.iter().map(|b| format!("{b:02x}")).collect();
                eprintln!("FAILURE after {runs} runs: {msg}\ninput (hex): {hex}");
                std::process::exit(1);
            }
            runs += 1;
            match pola_syrup::decode(&input) {
                Ok(_) => {
                    accepted += 1;
                    // Keep new valid inputs as seeds, within bounds.
                    if corpus.len() < 4096 && input.len() < 4096 {
                        corpus.push(input);
                    }
                }
                Err(e) if e.kind.is_incomplete() => incomplete += 1,
                Err(_) => {}
            }
        }
    }
    println!(
        "fuzz_decode: {runs} inputs in {seconds} s, {accepted} accepted (each re-encoded identically), \
         {incomplete} incomplete, the rest rejected; no failures (seed {seed})"
    );
}
