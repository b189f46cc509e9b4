//! What persistence costs a vat (its CPU side: portraits, staging, held
//! outputs; the store is in memory here, the disk's cost is pola-store's
//! bench).
//!
//! - `persist/sends/{off,on}`: one object sends N `inc`s to a counter that
//!   changes one small integer per turn, in an ephemeral vat and in a
//!   persistent one; throughput is turns per second.
//! - `persist/restart`: a vat with 1 000 000 stored objects: time from
//!   `Vat::open` to the first answered call (lazy revival), and to revive
//!   100 000 of them.
//!
//! Prints the stored bytes per small object once.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pola_vat::backend::MemoryBackend;
use pola_vat::persist::{Kinds, Portrait};
use pola_vat::{Object, Outcome, Ref, Turn, Val, Vat, error};

const BURST: i64 = 20_000;
const WAIT: Duration = Duration::from_secs(120);

struct Counter(i64);

impl Object for Counter {
    fn receive(&self, cx: &mut Turn<'_>, m: &str, _a: Vec<Val>) -> Outcome {
        match m {
            "inc" => {
                cx.become_(Counter(self.0 + 1))?;
                Ok(Val::null())
            }
            "get" => Ok(Val::int(self.0)),
            _ => Err(error("no such method")),
        }
    }
    fn portrait(&self) -> Option<Portrait> {
        Some(Portrait::new("counter", 1, Val::int(self.0)))
    }
}

fn kinds() -> Kinds {
    let mut k = Kinds::new();
    k.add("counter", 1, |_, s| Ok(Counter(s.as_i64().unwrap_or(0))));
    k
}

/// `run(n)`: n sends to the target, then one answered marker.
struct Sender(Ref);

impl Object for Sender {
    fn receive(&self, cx: &mut Turn<'_>, _m: &str, args: Vec<Val>) -> Outcome {
        let n = args.first().and_then(Val::as_i64).unwrap_or(0);
        for _ in 0..n {
            cx.send_only(&self.0, "inc", Vec::new());
        }
        Ok(Val::Ref(cx.send(&self.0, "get", Vec::new())))
    }
}

fn sends(c: &mut Criterion) {
    let mut g = c.benchmark_group("persist/sends");
    g.throughput(Throughput::Elements(BURST as u64));
    for on in [false, true] {
        let vat = if on {
            Vat::open("bench", MemoryBackend::new(), kinds()).unwrap()
        } else {
            Vat::new("bench")
        };
        let counter = vat.spawn(Counter(0));
        let sender = vat.spawn(Sender(counter));
        g.bench_function(if on { "on" } else { "off" }, |b| {
            b.iter(|| {
                let done = vat.send(&sender, "run", vec![Val::int(BURST)]);
                vat.block_on(&done, WAIT).unwrap();
            })
        });
        vat.shutdown();
    }
    g.finish();
}

fn restart(c: &mut Criterion) {
    const N: u64 = 1_000_000;
    let backend = MemoryBackend::new();
    let vat = Vat::open("bench", backend.clone(), kinds()).unwrap();
    for _ in 0..(N / 10_000) {
        let made = vat.run(|cx| {
            for i in 0..10_000 {
                let o = cx.spawn(Counter(i));
                if i == 0 {
                    cx.set_root("first", Some(&o))?;
                }
            }
            Ok(Val::null())
        });
        vat.block_on(&made, WAIT).unwrap();
    }
    vat.shutdown();
    let (count, bytes) = backend.with(|c| {
        (
            c.objects.len(),
            c.objects.values().map(Vec::len).sum::<usize>(),
        )
    });
    println!(
        "persist: {count} stored objects, {:.1} record bytes per small object",
        bytes as f64 / count as f64
    );
    let mut g = c.benchmark_group("persist/restart");
    g.sample_size(10);
    g.bench_function("first_answer_1M", |b| {
        b.iter(|| {
            let vat = Vat::open("bench", backend.clone(), kinds()).unwrap();
            let first = vat.root("first").unwrap();
            vat.block_on(&vat.send(&first, "get", vec![]), WAIT)
                .unwrap();
            vat.shutdown();
        })
    });
    // 100 000 objects, each a root, revived one by one in one turn.
    let many = MemoryBackend::new();
    let vat = Vat::open("bench", many.clone(), kinds()).unwrap();
    for chunk in 0..10 {
        let made = vat.run(move |cx| {
            for i in 0..10_000 {
                let o = cx.spawn(Counter(i));
                cx.set_root(&format!("o{}", chunk * 10_000 + i), Some(&o))?;
            }
            Ok(Val::null())
        });
        vat.block_on(&made, WAIT).unwrap();
    }
    vat.shutdown();
    g.bench_function("revive_100k", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let vat = Vat::open("bench", many.clone(), kinds()).unwrap();
                let refs: Vec<Ref> = vat
                    .root_names()
                    .iter()
                    .filter_map(|n| vat.root(n))
                    .collect();
                let start = Instant::now();
                let done = vat.run(move |cx| {
                    let mut sum = 0i64;
                    for r in &refs {
                        sum += cx.call(r, "get", vec![])?.as_i64().unwrap_or(0);
                    }
                    Ok(Val::int(sum))
                });
                vat.block_on(&done, WAIT).unwrap();
                total += start.elapsed();
                vat.shutdown();
            }
            total
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    targets = sends, restart
}
criterion_main!(benches);
