//! pola peer over loopback TCP (`tcp-testing-only`, current dialect):
//! - `round_trip`: one `op:deliver` to an echo, answered;
//! - `raw_tcp_ping_pong`: the same request and answer bytes bounced over a
//!   plain TCP socket pair (the floor for `round_trip`);
//! - `chain3/pipelined` vs `chain3/awaited`: builder → factory → car →
//!   drive, pipelined (one round trip) or waiting for each answer (three);
//! - `deliver_only`: fire-and-forget messages per second (1000 per
//!   iteration, then one answered message to know they all arrived).
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pola_captp::locator::{SturdyRef, Swiss};
use pola_netlayer::TcpTestingOnly;
use pola_peer::{Peer, PeerConfig};
use pola_syrup::Value;
use pola_test_peer::{CAR_FACTORY_BUILDER, ECHO};
use pola_vat::{Ref, Vat, from_fn};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const T: Duration = Duration::from_secs(10);

struct Pair {
    rt: tokio::runtime::Runtime,
    a_vat: Vat,
    a: Peer,
    b_vat: Vat,
    b: Peer,
}

fn pair() -> Pair {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let na = rt.block_on(TcpTestingOnly::bind("127.0.0.1", 0)).unwrap();
    let nb = rt.block_on(TcpTestingOnly::bind("127.0.0.1", 0)).unwrap();
    let _g = rt.enter();
    let a_vat = Vat::new("a");
    let b_vat = Vat::new("b");
    let a = Peer::start(a_vat.clone(), vec![Arc::new(na)], PeerConfig::default()).unwrap();
    let b = Peer::start(b_vat.clone(), vec![Arc::new(nb)], PeerConfig::default()).unwrap();
    pola_test_peer::host(&b.handle(), &b_vat);
    Pair {
        rt,
        a_vat,
        a,
        b_vat,
        b,
    }
}

impl Pair {
    fn far(&self, swiss: &str) -> Ref {
        let p = self.a.enliven(SturdyRef {
            peer: self.b.location().clone(),
            swiss: Swiss::new(swiss.as_bytes().to_vec()),
        });
        match self.a_vat.block_on(&p, T).unwrap() {
            Value::Ref(r) => r,
            other => panic!("not a ref: {other:?}"),
        }
    }
}

fn benches(c: &mut Criterion) {
    let p = pair();
    let echo = p.far(ECHO);
    let builder = p.far(CAR_FACTORY_BUILDER);
    let spec = Value::List(vec![Value::sym("red"), Value::sym("zoomracer")]);

    let mut g = c.benchmark_group("peer");
    g.measurement_time(Duration::from_secs(3));
    g.warm_up_time(Duration::from_millis(500));
    g.sample_size(20);

    g.bench_function("round_trip", |bch| {
        bch.iter(|| {
            let a = p.a_vat.send(&echo, "", vec![Value::int(1i64)]);
            p.a_vat.block_on(&a, T).unwrap()
        });
    });

    g.bench_function("chain3/pipelined", |bch| {
        bch.iter(|| {
            let factory = p.a_vat.send(&builder, "", vec![]);
            let car = p.a_vat.send(&factory, "", vec![spec.clone()]);
            let vroom = p.a_vat.send(&car, "", vec![]);
            p.a_vat.block_on(&vroom, T).unwrap()
        });
    });

    g.bench_function("chain3/awaited", |bch| {
        bch.iter(|| {
            let factory = p.a_vat.send(&builder, "", vec![]);
            let factory = p.a_vat.block_on(&factory, T).unwrap();
            let Value::Ref(factory) = factory else {
                panic!()
            };
            let car = p.a_vat.send(&factory, "", vec![spec.clone()]);
            let Value::Ref(car) = p.a_vat.block_on(&car, T).unwrap() else {
                panic!()
            };
            let vroom = p.a_vat.send(&car, "", vec![]);
            p.a_vat.block_on(&vroom, T).unwrap()
        });
    });

    // A counter on B for fire-and-forget messages.
    let count = Arc::new(AtomicU64::new(0));
    let c2 = count.clone();
    let counter = p.b_vat.spawn(from_fn(move |_, method, _| {
        if method == "sync" {
            return Ok(Value::int(c2.load(Ordering::Relaxed) as i64));
        }
        c2.fetch_add(1, Ordering::Relaxed);
        Ok(Value::null())
    }));
    let swiss = p.b.mint_sturdyref(counter).unwrap();
    let counter = {
        let r = p.a.enliven(swiss);
        match p.a_vat.block_on(&r, T).unwrap() {
            Value::Ref(r) => r,
            _ => panic!(),
        }
    };
    const BATCH: u64 = 1000;
    g.throughput(Throughput::Elements(BATCH));
    g.bench_function("deliver_only", |bch| {
        bch.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                for i in 0..BATCH {
                    p.a_vat
                        .send_only(&counter, "tick", vec![Value::int(i as i64)]);
                }
                let s = p.a_vat.send(&counter, "sync", vec![]);
                p.a_vat.block_on(&s, T).unwrap();
            }
            start.elapsed()
        });
    });
    g.finish();

    // The floor: the same bytes bounced over a plain TCP socket pair.
    let request = pola_syrup::encode(&Value::record(
        "op:deliver",
        vec![
            Value::record("desc:export", vec![Value::int(1i64)]),
            Value::List(vec![Value::int(1i64)]),
            Value::int(5i64),
            Value::record("desc:import-object", vec![Value::int(7i64)]),
        ],
    ));
    let answer = pola_syrup::encode(&Value::record(
        "op:deliver",
        vec![
            Value::record("desc:export", vec![Value::int(7i64)]),
            Value::List(vec![
                Value::sym("fulfill"),
                Value::List(vec![Value::int(1i64)]),
            ]),
            Value::Bool(false),
            Value::Bool(false),
        ],
    ));
    let (mut client, server) = p.rt.block_on(async {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let (c, s) = tokio::join!(tokio::net::TcpStream::connect(addr), l.accept());
        let c = c.unwrap();
        c.set_nodelay(true).unwrap();
        let s = s.unwrap().0;
        s.set_nodelay(true).unwrap();
        (c, s)
    });
    let (req_len, ans) = (request.len(), answer.clone());
    p.rt.spawn(async move {
        let mut s = server;
        let mut buf = vec![0u8; req_len];
        while s.read_exact(&mut buf).await.is_ok() {
            if s.write_all(&ans).await.is_err() {
                break;
            }
        }
    });
    let mut g = c.benchmark_group("baseline");
    g.measurement_time(Duration::from_secs(3));
    g.warm_up_time(Duration::from_millis(500));
    g.sample_size(20);
    let mut buf = vec![0u8; answer.len()];
    g.bench_function("raw_tcp_ping_pong", |bch| {
        bch.iter(|| {
            p.rt.block_on(async {
                client.write_all(&request).await.unwrap();
                client.read_exact(&mut buf).await.unwrap();
            });
        });
    });
    g.finish();

    p.rt.block_on(p.a.shutdown());
    p.rt.block_on(p.b.shutdown());
    p.a_vat.shutdown();
    p.b_vat.shutdown();
}

criterion_group!(all, benches);
criterion_main!(all);
