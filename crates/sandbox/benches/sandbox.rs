//! Caplet sandbox benchmarks: fresh instances, calls in both directions,
//! a round trip with a small Syrup message, and a native Rust object as
//! the limit. Besides criterion's estimates, prints median and p99 from a
//! plain timing loop for instantiation and the round trip.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use pola_sandbox::{CapletInstance, CapletModule, Config, Outside, Refused, Sandbox};
use pola_syrup::Value;

/// Outside world for the benchmarks: references are plain numbers, the
/// answer is kept, sends are counted.
#[derive(Default)]
struct Bench {
    answer: Option<Result<Value<u32>, Value<u32>>>,
    sends: u64,
}

impl Outside for Bench {
    type Ref = u32;
    fn send(&mut self, _: &u32, _: Value<u32>) -> Result<u32, Refused> {
        self.sends += 1;
        Ok(1)
    }
    fn send_only(&mut self, _: &u32, _: Value<u32>) -> Result<(), Refused> {
        self.sends += 1;
        Ok(())
    }
    fn settle(&mut self, _: u32, outcome: Result<Value<u32>, Value<u32>>) {
        self.answer = Some(outcome);
    }
}

fn msg(method: &str, args: Vec<Value<u32>>) -> Value<u32> {
    let mut items = vec![Value::sym(method)];
    items.extend(args);
    Value::List(items)
}

fn setup() -> (Sandbox<Bench>, CapletModule<Bench>) {
    let mut c = Config::default();
    if let Some(n) = std::env::var("POLA_KEEP_RESIDENT")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        c.keep_resident_bytes = n;
    }
    let sb = Sandbox::new(c).unwrap();
    let module = sb.load(pola_sandbox_guests::ECHO).unwrap();
    (sb, module)
}

fn round_trip(inst: &mut CapletInstance<Bench>, m: &Value<u32>) -> Value<u32> {
    inst.deliver(m.clone(), Some(0)).unwrap();
    match inst.outside_mut().answer.take() {
        Some(Ok(v)) => v,
        other => panic!("{other:?}"),
    }
}

/// A native object with the same `add` method, called through a trait
/// object with the same `Value` message: the limit for a caplet call.
trait Object {
    fn call(&mut self, msg: &Value<u32>) -> Result<Value<u32>, Value<u32>>;
}
struct NativeAdd;
impl Object for NativeAdd {
    fn call(&mut self, msg: &Value<u32>) -> Result<Value<u32>, Value<u32>> {
        let items = msg.as_list().ok_or_else(|| Value::str("bad"))?;
        match items.split_first() {
            Some((m, args)) if m.as_symbol() == Some("add") => args
                .iter()
                .try_fold(0i64, |a, x| x.as_i64().and_then(|x| a.checked_add(x)))
                .map(Value::int)
                .ok_or_else(|| Value::str("bad")),
            _ => Err(Value::str("no such method")),
        }
    }
}

fn percentiles(name: &str, mut f: impl FnMut()) {
    const N: usize = 20_000;
    for _ in 0..1000 {
        f();
    }
    let mut t = Vec::with_capacity(N);
    for _ in 0..N {
        let s = Instant::now();
        f();
        t.push(s.elapsed());
    }
    t.sort();
    let at = |q: f64| t[((N as f64) * q) as usize].as_nanos() as f64 / 1000.0;
    println!(
        "{name}: median {:.2} us, p90 {:.2} us, p99 {:.2} us ({N} runs)",
        at(0.5),
        at(0.9),
        at(0.99)
    );
}

fn benches(c: &mut Criterion) {
    let (_sb, module) = setup();
    let add = msg("add", vec![Value::int(2i64), Value::int(40i64)]);

    percentiles("fresh instance (instantiate + drop)", || {
        black_box(module.instantiate(Bench::default()).unwrap());
    });
    percentiles("fresh instance + first call add(2, 40)", || {
        let mut i = module.instantiate(Bench::default()).unwrap();
        black_box(round_trip(&mut i, &add));
    });
    let mut inst = module.instantiate(Bench::default()).unwrap();
    percentiles("round trip add(2, 40)", || {
        black_box(round_trip(&mut inst, &add));
    });

    c.bench_function("fresh_instance", |b| {
        b.iter(|| black_box(module.instantiate(Bench::default()).unwrap()))
    });
    c.bench_function("fresh_instance_and_one_call", |b| {
        b.iter(|| {
            let mut i = module.instantiate(Bench::default()).unwrap();
            black_box(round_trip(&mut i, &add))
        })
    });
    c.bench_function("host_to_caplet_send_only", |b| {
        let m = msg("echo", vec![]);
        b.iter(|| inst.deliver(black_box(m.clone()), None).unwrap())
    });
    c.bench_function("round_trip_add", |b| {
        b.iter(|| round_trip(&mut inst, black_box(&add)))
    });
    c.bench_function("caplet_to_host_send_only_inside_call", |b| {
        // `ping(ref)`: one delivery in which the caplet sends once.
        let m = msg("ping", vec![Value::Ref(7)]);
        b.iter(|| round_trip(&mut inst, black_box(&m)))
    });
    c.bench_function("native_object_add", |b| {
        let mut o: Box<dyn Object> = Box::new(NativeAdd);
        b.iter(|| o.call(black_box(&add)))
    });
    assert!(inst.outside().sends > 0);
}

criterion_group! {
    name = sandbox;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30);
    targets = benches
}
criterion_main!(sandbox);
