//! Vat throughput and latency.
//!
//! - `sends/*`: object A sends N messages to object B (same vat, or B in a
//!   second vat); throughput is messages delivered per second.
//! - `roundtrip/*`: A sends to B and waits (`when`) for the answer before
//!   sending the next; time per element is one send + answer.
//! - `external/*`: a thread outside any vat sends and blocks on the answer.

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use pola_vat::{Object, Outcome, Ref, Turn, Val, Vat, error, from_fn};

const BURST: i64 = 20_000;
const CHAIN: i64 = 2_000;
const WAIT: Duration = Duration::from_secs(60);

/// Answers everything at once with null.
fn sink() -> impl Object {
    from_fn(|_cx, _m, _a| Ok(Val::null()))
}

/// `run(n)`: n sends to the target, then one answered marker.
struct Sender {
    target: Ref,
    answers: bool,
}

impl Object for Sender {
    fn receive(&self, cx: &mut Turn<'_>, _m: &str, args: Vec<Val>) -> Outcome {
        let n = args
            .first()
            .and_then(Val::as_i64)
            .ok_or_else(|| error("n"))?;
        for _ in 0..n {
            if self.answers {
                cx.send(&self.target, "ping", Vec::new());
            } else {
                cx.send_only(&self.target, "ping", Vec::new());
            }
        }
        Ok(Val::Ref(cx.send(&self.target, "done", Vec::new())))
    }
}

/// `run(n)`: n sequential round trips to the target.
struct Chainer {
    target: Ref,
}

fn step(cx: &mut Turn<'_>, target: Ref, left: i64) -> Outcome {
    let answer = cx.send(&target, "ping", Vec::new());
    if left <= 1 {
        return Ok(Val::Ref(answer));
    }
    Ok(Val::Ref(cx.when(&answer, move |cx, o| {
        o?;
        step(cx, target, left - 1)
    })))
}

impl Object for Chainer {
    fn receive(&self, cx: &mut Turn<'_>, _m: &str, args: Vec<Val>) -> Outcome {
        let n = args
            .first()
            .and_then(Val::as_i64)
            .ok_or_else(|| error("n"))?;
        step(cx, self.target.clone(), n)
    }
}

fn run(vat: &Vat, obj: &Ref, n: i64) {
    let p = vat.send(obj, "run", vec![Val::int(n)]);
    if let Err(e) = vat.block_on(&p, WAIT) {
        panic!("bench run failed: {e}");
    }
}

fn sends(c: &mut Criterion) {
    let mut g = c.benchmark_group("sends");
    g.throughput(Throughput::Elements(BURST as u64));
    for (name, cross, answers) in [
        ("within_vat", false, false),
        ("within_vat_with_answers", false, true),
        ("across_vats", true, false),
        ("across_vats_with_answers", true, true),
    ] {
        let a = Vat::new("bench-a");
        let b = if cross {
            Vat::new("bench-b")
        } else {
            a.clone()
        };
        let target = b.spawn(sink());
        let sender = a.spawn(Sender { target, answers });
        g.bench_function(BenchmarkId::from_parameter(name), |bench| {
            bench.iter(|| run(&a, &sender, BURST));
        });
        a.shutdown();
        b.shutdown();
    }
    g.finish();
}

fn roundtrip(c: &mut Criterion) {
    let mut g = c.benchmark_group("roundtrip");
    g.throughput(Throughput::Elements(CHAIN as u64));
    for (name, cross) in [("within_vat", false), ("across_vats", true)] {
        let a = Vat::new("rt-a");
        let b = if cross { Vat::new("rt-b") } else { a.clone() };
        let target = b.spawn(sink());
        let chainer = a.spawn(Chainer { target });
        g.bench_function(BenchmarkId::from_parameter(name), |bench| {
            bench.iter(|| run(&a, &chainer, CHAIN));
        });
        a.shutdown();
        b.shutdown();
    }
    g.finish();
}

fn external(c: &mut Criterion) {
    let mut g = c.benchmark_group("external");
    let a = Vat::new("ext");
    let target = a.spawn(sink());
    g.bench_function("send_and_block_on", |bench| {
        bench.iter(|| {
            let p = a.send(&target, "ping", Vec::new());
            if let Err(e) = a.block_on(&p, WAIT) {
                panic!("{e}");
            }
        });
    });
    a.shutdown();
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = sends, roundtrip, external
}
criterion_main!(benches);
