//! CapTP session benchmarks: handshake, a call round trip, message parsing.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use pola_captp::locator::{Hints, PeerLocator, Swiss};
use pola_captp::wire::Op;
use pola_captp::{CapRef, Dialect, Event, LocalId, Session, SessionConfig};
use pola_syrup::Value;

fn session(seed: u8, name: &str) -> Session {
    let loc = PeerLocator::new("tcp-testing-only", name, Hints::Absent).unwrap();
    Session::new(SessionConfig::new(Dialect::Current, [seed; 32], loc))
}

fn pump(from: &mut Session, to: &mut Session) {
    while let Some(m) = from.poll_transmit() {
        to.handle_bytes(&m).unwrap();
    }
}

fn pair() -> (Session, Session) {
    let (mut a, mut b) = (session(1, "a"), session(2, "b"));
    pump(&mut a, &mut b);
    pump(&mut b, &mut a);
    while a.poll_event().is_some() {}
    while b.poll_event().is_some() {}
    (a, b)
}

fn benches(c: &mut Criterion) {
    c.bench_function("handshake (2 sessions, sign + verify each)", |bench| {
        bench.iter(|| black_box(pair()));
    });

    c.bench_function("call round trip (deliver, answer, gc)", |bench| {
        let (mut a, mut b) = pair();
        let q = a.fetch(&Swiss::new(&b"x"[..])).unwrap();
        pump(&mut a, &mut b);
        let Some(Event::Fetch { reply, .. }) = b.poll_event() else {
            panic!()
        };
        b.resolve(reply.unwrap(), Ok(Value::Ref(CapRef::Local(LocalId(1)))))
            .unwrap();
        pump(&mut b, &mut a);
        let target = loop {
            if let Some(Event::Answer {
                result: Ok(Value::Ref(r)),
                ..
            }) = a.poll_event()
            {
                break r;
            }
        };
        a.drop_question(q).unwrap();
        bench.iter(|| {
            let q = a
                .deliver(
                    &target,
                    vec![Value::sym("add"), Value::int(1i64), Value::int(2i64)],
                )
                .unwrap();
            pump(&mut a, &mut b);
            while let Some(e) = b.poll_event() {
                if let Event::Deliver { reply: Some(r), .. } = e {
                    b.resolve(r, Ok(Value::int(3i64))).unwrap();
                }
            }
            pump(&mut b, &mut a);
            while a.poll_event().is_some() {}
            a.drop_question(q).unwrap();
            pump(&mut a, &mut b);
            pump(&mut b, &mut a);
            while b.poll_event().is_some() {}
        });
    });

    let msg = pola_syrup::encode(&Value::record(
        "op:deliver",
        vec![
            Value::record("desc:export", vec![Value::int(5i64)]),
            Value::List(
                (0..10)
                    .map(|i| Value::record("desc:import-object", vec![Value::int(i as i64)]))
                    .collect(),
            ),
            Value::int(3i64),
            Value::record("desc:import-object", vec![Value::int(17i64)]),
        ],
    ));
    c.bench_function("decode + parse op:deliver with 10 references", |bench| {
        bench.iter(|| Op::parse(pola_syrup::decode(black_box(&msg)).unwrap()).unwrap());
    });
}

criterion_group! {
    name = group;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20);
    targets = benches
}
criterion_main!(group);
