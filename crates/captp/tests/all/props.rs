//! Property tests: arbitrary bytes and random message streams never panic
//! a session; it ends healthy or aborted.

use pola_captp::{Dialect, Session, TableSizes};
use pola_syrup::Value;
use proptest::prelude::*;

use crate::sim::Pair;

fn established() -> (Session, Vec<u8>) {
    // Reuse a real handshake; return b and the start-session bytes a sent.
    let mut p = Pair::new(Dialect::TestSuite, 1, 2);
    let start = p.wire.iter().find(|(a, _)| *a).unwrap().1.clone();
    p.run();
    (p.b, start)
}

fn check_state(s: &Session, r: &Result<(), pola_captp::SessionError>) {
    if r.is_err() {
        assert!(s.is_terminated());
        assert_eq!(s.table_sizes(), TableSizes::default());
    }
}

fn small_value() -> impl Strategy<Value = Value> {
    let pos = 0i64..4;
    let leaf = prop_oneof![
        pos.clone().prop_map(Value::int),
        any::<bool>().prop_map(Value::Bool),
        "[a-z]{0,3}".prop_map(Value::sym),
        "[a-z]{0,3}".prop_map(Value::str),
        pos.clone()
            .prop_map(|n| Value::record("desc:export", vec![Value::int(n)])),
        pos.clone()
            .prop_map(|n| Value::record("desc:import-object", vec![Value::int(n)])),
        pos.clone()
            .prop_map(|n| Value::record("desc:import-promise", vec![Value::int(n)])),
        pos.clone()
            .prop_map(|n| Value::record("desc:answer", vec![Value::int(n)])),
        Just(Value::sym("fetch")),
        Just(Value::sym("fulfill")),
        Just(Value::sym("break")),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::List),
            (
                prop::sample::select(vec![
                    "op:deliver",
                    "op:deliver-only",
                    "op:listen",
                    "op:gc-export",
                    "op:gc-answers",
                    "op:get",
                    "op:index",
                    "op:untag",
                    "op:abort",
                    "desc:export",
                ]),
                prop::collection::vec(inner, 0..5)
            )
                .prop_map(|(l, f)| Value::record(l, f)),
        ]
    })
}

fn message() -> impl Strategy<Value = Value> {
    let pos = 0i64..4;
    let export = pos
        .clone()
        .prop_map(|n| Value::record("desc:export", vec![Value::int(n)]));
    let target = prop_oneof![
        export.clone(),
        pos.clone()
            .prop_map(|n| Value::record("desc:answer", vec![Value::int(n)]))
    ];
    let resolver = prop_oneof![
        Just(Value::Bool(false)),
        pos.clone()
            .prop_map(|n| Value::record("desc:import-object", vec![Value::int(n)]))
    ];
    let answer = prop_oneof![Just(Value::Bool(false)), pos.clone().prop_map(Value::int)];
    let args = || prop::collection::vec(small_value(), 0..4).prop_map(Value::List);
    prop_oneof![
        4 => (target.clone(), args(), answer, resolver.clone())
            .prop_map(|(t, a, q, r)| Value::record("op:deliver", vec![t, a, q, r])),
        2 => (target.clone(), args()).prop_map(|(t, a)| Value::record("op:deliver-only", vec![t, a])),
        1 => (target, resolver, any::<bool>())
            .prop_map(|(t, r, w)| Value::record("op:listen", vec![t, r, Value::Bool(w)])),
        1 => (pos.clone(), 0i64..3).prop_map(|(p, d)| Value::record(
            "op:gc-exports",
            vec![Value::List(vec![Value::int(p)]), Value::List(vec![Value::int(d)])]
        )),
        1 => pos.prop_map(|p| Value::record("op:gc-answer", vec![Value::List(vec![Value::int(p)])])),
        1 => small_value(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let (mut s, _) = established();
        let r = s.handle_bytes(&bytes);
        check_state(&s, &r);
        while s.poll_transmit().is_some() {}
        while s.poll_event().is_some() {}
    }

    #[test]
    fn arbitrary_bytes_before_start_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..128)) {
        let mut s = crate::sim::session(Dialect::Current, 5, "x");
        let r = s.handle_bytes(&bytes);
        check_state(&s, &r);
    }

    #[test]
    fn random_message_streams_end_healthy_or_aborted(
        msgs in prop::collection::vec(message(), 1..12),
        chunk in 1usize..40,
    ) {
        let (mut s, _) = established();
        let mut stream = Vec::new();
        for m in &msgs {
            stream.extend(pola_syrup::encode(m));
        }
        let mut result = Ok(());
        for c in stream.chunks(chunk) {
            result = s.handle_bytes(c);
            check_state(&s, &result);
            // A local side that answers everything it is asked.
            while let Some(e) = s.poll_event() {
                let reply = match e {
                    pola_captp::Event::Deliver { reply, .. } | pola_captp::Event::Fetch { reply, .. } => reply,
                    pola_captp::Event::Listen { reply, .. } | pola_captp::Event::Project { reply, .. } => Some(reply),
                    _ => None,
                };
                if let Some(r) = reply {
                    let _ = s.resolve(r, Ok(Value::int(1i64)));
                }
            }
            while s.poll_transmit().is_some() {}
            if result.is_err() {
                break;
            }
        }
        if result.is_ok() {
            prop_assert!(!s.is_terminated() || s.error().is_some());
        }
    }
}

/// Corrupts one byte of one message in transit between two live sessions.
fn corrupted_pair_run(
    dialect: Dialect,
    victim_msg: usize,
    at: usize,
    xor: u8,
) -> (Session, Session) {
    use pola_captp::locator::Swiss;
    use pola_captp::{CapRef, Event, LocalId};
    let mut p = Pair::new(dialect, 3, 4);
    let q = p.a.fetch(&Swiss::new(&b"o"[..])).unwrap();
    let _ = p.a.deliver(
        &CapRef::Question(q),
        vec![Value::sym("m"), Value::Ref(CapRef::Local(LocalId(1)))],
    );
    let mut n = 0;
    for _ in 0..10 {
        let mut moved = false;
        while let Some(mut m) = p.a.poll_transmit() {
            moved = true;
            if n == victim_msg && !m.is_empty() {
                let i = at % m.len();
                m[i] ^= xor;
            }
            n += 1;
            let _ = p.b.handle_bytes(&m);
        }
        while let Some(m) = p.b.poll_transmit() {
            moved = true;
            let _ = p.a.handle_bytes(&m);
        }
        while let Some(e) = p.b.poll_event() {
            let reply = match e {
                Event::Deliver { reply, .. } | Event::Fetch { reply, .. } => reply,
                _ => None,
            };
            if let Some(r) = reply {
                let _ = p.b.resolve(r, Ok(Value::Ref(CapRef::Local(LocalId(9)))));
            }
        }
        while p.a.poll_event().is_some() {}
        if !moved {
            break;
        }
    }
    (p.a, p.b)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// A hostile link flips bits in one message: no panic, and if the
    /// receiver aborts, the sender learns of it (both end terminated).
    #[test]
    fn corrupted_link_never_panics_and_aborts_both_ends(
        suite in any::<bool>(),
        victim_msg in 0usize..3,
        at in any::<usize>(),
        xor in 1u8..=255,
    ) {
        let dialect = if suite { Dialect::TestSuite } else { Dialect::Current };
        let (a, b) = corrupted_pair_run(dialect, victim_msg, at, xor);
        if b.is_terminated() {
            prop_assert!(a.is_terminated());
            prop_assert_eq!(b.table_sizes(), TableSizes::default());
            prop_assert_eq!(a.table_sizes(), TableSizes::default());
        }
    }
}

fn any_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(Value::int),
        any::<bool>().prop_map(Value::Bool),
        any::<u64>().prop_map(Value::Float64),
        "[a-z:-]{0,12}".prop_map(Value::sym),
        ".{0,6}".prop_map(Value::str),
        prop::collection::vec(any::<u8>(), 0..40).prop_map(Value::bytes),
    ];
    leaf.prop_recursive(4, 32, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::List),
            (
                prop::sample::select(vec![
                    "op:start-session",
                    "op:deliver",
                    "op:deliver-only",
                    "op:listen",
                    "op:get",
                    "op:index",
                    "op:untag",
                    "op:gc-exports",
                    "op:gc-answer",
                    "op:abort",
                    "desc:export",
                    "desc:import-object",
                    "desc:answer",
                    "desc:sig-envelope",
                    "desc:handoff-give",
                    "desc:handoff-receive",
                    "ocapn-peer",
                    "public-key",
                ]),
                prop::collection::vec(inner, 0..6),
            )
                .prop_map(|(l, f)| Value::record(l, f)),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// The wire parser takes any value without panicking, and whatever it
    /// accepts it rebuilds into a value that parses and rebuilds to the
    /// same value again (a dialect may drop a legacy field once).
    #[test]
    fn wire_parse_total_and_stable(v in any_value(), suite in any::<bool>()) {
        use pola_captp::wire::Op;
        let dialect = if suite { Dialect::TestSuite } else { Dialect::Current };
        if let Ok(op) = Op::parse(v) {
            let rebuilt = op.to_value(dialect);
            let again = Op::parse(rebuilt.clone());
            prop_assert!(again.is_ok());
            prop_assert_eq!(again.unwrap().to_value(dialect), rebuilt);
        }
    }
}
