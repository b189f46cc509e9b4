//! A hostile peer: raw bytes into `handle_bytes`. Every case must end in
//! an `op:abort` to the peer, broken questions, cleared tables and a
//! terminal session.

use pola_captp::crypto::SessionKeys;
use pola_captp::locator::Swiss;
use pola_captp::wire::{Op, OpStartSession};
use pola_captp::{CapRef, Dialect, Event, Session, SessionError, TableSizes, Violation};
use pola_syrup::Value;

use crate::sim::{loc, session};

/// A raw peer: its start-session bytes, signed properly unless told not to.
pub(crate) fn start_bytes(seed: u8, sign_with: u8, version: &str) -> Vec<u8> {
    let keys = SessionKeys::from_seed([seed; 32]);
    let other = SessionKeys::from_seed([sign_with; 32]);
    let l = loc("mallory");
    let op = Op::StartSession(OpStartSession {
        captp_version: version.to_owned(),
        session_pubkey: *keys.public(),
        acceptable_location_sig: other.sign_location(&l),
        acceptable_location: l,
    });
    pola_syrup::encode(&op.to_value(Dialect::Current))
}

pub(crate) fn enc(v: Value) -> Vec<u8> {
    pola_syrup::encode(&v)
}

pub(crate) fn desc(label: &str, n: i64) -> Value {
    Value::record(label, vec![Value::int(n)])
}

pub(crate) fn deliver(to: Value, args: Vec<Value>, answer: Value, resolver: Value) -> Vec<u8> {
    enc(Value::record(
        "op:deliver",
        vec![to, Value::List(args), answer, resolver],
    ))
}

/// Victim that has completed the handshake and has one question pending.
fn victim() -> Session {
    let mut s = session(Dialect::TestSuite, 42, "victim");
    s.handle_bytes(&start_bytes(1, 1, "1.0")).unwrap();
    s.fetch(&Swiss::new(&b"pending"[..])).unwrap();
    while s.poll_transmit().is_some() {}
    assert!(matches!(s.poll_event(), Some(Event::Established { .. })));
    s
}

/// Feeds `bytes` and checks the full abort contract.
fn assert_aborts(mut s: Session, bytes: &[u8], had_question: bool) -> SessionError {
    let err = s.handle_bytes(bytes).expect_err("hostile input accepted");
    let out: Vec<Vec<u8>> = std::iter::from_fn(|| s.poll_transmit()).collect();
    let last = out.last().expect("no op:abort queued");
    let v = pola_syrup::decode(last).unwrap();
    let reason = v
        .as_record_labelled("op:abort")
        .expect("last message is not op:abort")[0]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        reason.len() < 80 && !reason.contains('/'),
        "reason leaks detail: {reason}"
    );
    let events: Vec<Event> = std::iter::from_fn(|| s.poll_event()).collect();
    if had_question {
        assert!(
            events
                .iter()
                .any(|e| matches!(e, Event::Answer { result: Err(_), .. })),
            "pending question not broken: {events:?}"
        );
    }
    assert!(matches!(
        events.last(),
        Some(Event::Aborted { by_peer: false, .. })
    ));
    assert_eq!(s.table_sizes(), TableSizes::default());
    assert!(s.is_terminated());
    // Terminal: every later call returns the same error.
    assert_eq!(s.handle_bytes(b"t").unwrap_err(), err);
    assert_eq!(s.deliver_only(&CapRef::Bootstrap, vec![]).unwrap_err(), err);
    assert_eq!(s.fetch(&Swiss::new(&b"x"[..])).unwrap_err(), err);
    assert!(s.poll_transmit().is_none());
    err
}

#[test]
fn malformed_frame() {
    let e = assert_aborts(victim(), b"[1+2+>", true);
    assert!(matches!(e, SessionError::Malformed(_)), "{e:?}");
    // Non-canonical: a leading zero.
    let e = assert_aborts(victim(), b"<8'op:abort03\"abc>", true);
    assert!(matches!(e, SessionError::Malformed(_)), "{e:?}");
}

#[test]
fn terabyte_length_is_a_limit_not_an_allocation() {
    let e = assert_aborts(victim(), b"<10'op:deliver1099511627776:", true);
    assert_eq!(e, SessionError::Limit);
}

#[test]
fn a_message_of_millions_of_tiny_atoms_is_a_limit() {
    // 4 MB on the wire would be ~160 MB decoded: refused by the atom cap
    // long before that.
    let mut msg = b"<15'op:deliver-only<10'desc:export0+>[".to_vec();
    msg.extend(std::iter::repeat_n(b't', 4_000_000));
    msg.extend_from_slice(b"]>");
    let e = assert_aborts(victim(), &msg, true);
    assert_eq!(e, SessionError::Limit);
}

#[test]
fn unknown_op_and_non_record() {
    let e = assert_aborts(victim(), &enc(Value::record("op:frobnicate", vec![])), true);
    assert!(matches!(e, SessionError::Wire(_)), "{e:?}");
    assert_aborts(victim(), b"5'hello", true);
}

#[test]
fn position_never_exported() {
    let e = assert_aborts(
        victim(),
        &deliver(desc("desc:export", 99), vec![], false.into(), false.into()),
        true,
    );
    assert_eq!(e, SessionError::Protocol(Violation::UnknownExport));
    // Inside args, too (and nothing was counted before the check).
    let e = assert_aborts(
        victim(),
        &deliver(
            desc("desc:export", 0),
            vec![
                Value::sym("x"),
                desc("desc:import-object", 3),
                desc("desc:export", 55),
            ],
            false.into(),
            false.into(),
        ),
        true,
    );
    assert_eq!(e, SessionError::Protocol(Violation::UnknownExport));
    let e = assert_aborts(
        victim(),
        &deliver(desc("desc:answer", 7), vec![], false.into(), false.into()),
        true,
    );
    assert_eq!(e, SessionError::Protocol(Violation::UnknownAnswer));
    let e = assert_aborts(
        victim(),
        &enc(Value::record(
            "op:gc-export",
            vec![
                Value::List(vec![Value::int(12i64)]),
                Value::List(vec![Value::int(1i64)]),
            ],
        )),
        true,
    );
    assert_eq!(e, SessionError::Protocol(Violation::UnknownExport));
}

#[test]
fn gc_delta_larger_than_sent() {
    // Position 1 is the resolver of our pending question, sent once.
    let e = assert_aborts(
        victim(),
        &enc(Value::record(
            "op:gc-exports",
            vec![
                Value::List(vec![Value::int(1i64), Value::int(1i64)]),
                Value::List(vec![Value::int(1i64), Value::int(1i64)]),
            ],
        )),
        true,
    );
    assert_eq!(e, SessionError::Protocol(Violation::GcDeltaTooLarge));
}

#[test]
fn answer_position_reused() {
    let mut s = victim();
    let m = deliver(
        desc("desc:export", 0),
        vec![Value::sym("x")],
        Value::int(4i64),
        false.into(),
    );
    s.handle_bytes(&m).unwrap();
    let e = assert_aborts(s, &m, true);
    assert_eq!(e, SessionError::Protocol(Violation::AnswerInUse));
}

#[test]
fn bad_signature_wrong_version_and_order() {
    let fresh = || session(Dialect::Current, 42, "victim");
    let e = assert_aborts(fresh(), &start_bytes(1, 2, "1.0"), false);
    assert_eq!(e, SessionError::Protocol(Violation::BadLocationSignature));
    let e = assert_aborts(fresh(), &start_bytes(1, 1, "0.9"), false);
    assert_eq!(e, SessionError::Protocol(Violation::BadVersion));
    let e = assert_aborts(
        fresh(),
        &deliver(desc("desc:export", 0), vec![], false.into(), false.into()),
        false,
    );
    assert_eq!(e, SessionError::Protocol(Violation::BeforeStartSession));
    let e = assert_aborts(victim(), &start_bytes(1, 1, "1.0"), true);
    assert_eq!(e, SessionError::Protocol(Violation::DuplicateStartSession));
}

#[test]
fn forged_gift_certificate_for_someone_else() {
    use pola_captp::crypto::{PublicId, SessionId};
    use pola_captp::handoff::{GiftId, HandoffGive};
    let g = SessionKeys::from_seed([1; 32]);
    let give = HandoffGive {
        receiver_key: *SessionKeys::from_seed([99; 32]).public(),
        exporter_location: loc("exporter"),
        session: SessionId([0; 32]),
        gifter_side: PublicId([0; 32]),
        gift_id: GiftId::Bytes(vec![1; 32].into()),
    }
    .sign(&g);
    let e = assert_aborts(
        victim(),
        &deliver(
            desc("desc:export", 0),
            vec![give.to_value()],
            false.into(),
            false.into(),
        ),
        true,
    );
    assert_eq!(e, SessionError::Protocol(Violation::HandoffNotForUs));
}

#[test]
fn table_flooding_hits_a_limit() {
    let mut cfg = pola_captp::SessionConfig::new(Dialect::Current, [42; 32], loc("victim"));
    cfg.max_table_entries = 8;
    let mut s = Session::new(cfg);
    s.handle_bytes(&start_bytes(1, 1, "1.0")).unwrap();
    let mut err = None;
    for i in 0..20i64 {
        let m = deliver(
            desc("desc:export", 0),
            vec![Value::sym("x")],
            Value::int(i),
            false.into(),
        );
        if let Err(e) = s.handle_bytes(&m) {
            err = Some(e);
            break;
        }
    }
    assert_eq!(err, Some(SessionError::Limit));
}

#[test]
fn peer_abort_is_honoured_even_before_start() {
    let mut s = session(Dialect::Current, 42, "victim");
    s.handle_bytes(&enc(Value::record("op:abort", vec![Value::str("bye")])))
        .unwrap_err();
    assert!(s.is_terminated());
    while s.poll_transmit().is_some() {}
    assert!(matches!(
        std::iter::from_fn(|| s.poll_event()).last(),
        Some(Event::Aborted { by_peer: true, .. })
    ));
}

#[test]
fn unknown_bootstrap_method_breaks_without_aborting() {
    let mut s = victim();
    s.handle_bytes(&deliver(
        desc("desc:export", 0),
        vec![Value::sym("launch-missiles")],
        Value::int(0i64),
        desc("desc:import-object", 0),
    ))
    .unwrap();
    let out: Vec<_> = std::iter::from_fn(|| s.poll_transmit()).collect();
    let v = pola_syrup::decode(&out[0]).unwrap();
    let f = v.as_record_labelled("op:deliver-only").unwrap();
    assert_eq!(f[1].as_list().unwrap()[0], Value::sym("break"));
    assert!(!s.is_terminated());
}

#[test]
fn listen_and_gc_on_unknown_positions() {
    let e = assert_aborts(
        victim(),
        &enc(Value::record(
            "op:listen",
            vec![
                desc("desc:answer", 3),
                desc("desc:import-object", 1),
                false.into(),
            ],
        )),
        true,
    );
    assert_eq!(e, SessionError::Protocol(Violation::UnknownAnswer));
    let e = assert_aborts(
        victim(),
        &enc(Value::record(
            "op:gc-answers",
            vec![Value::List(vec![Value::int(0i64)])],
        )),
        true,
    );
    assert_eq!(e, SessionError::Protocol(Violation::UnknownAnswer));
    // A resolver that is not an import descriptor.
    let e = assert_aborts(
        victim(),
        &deliver(
            desc("desc:export", 0),
            vec![],
            false.into(),
            desc("desc:export", 0),
        ),
        true,
    );
    assert!(matches!(e, SessionError::Wire(_)), "{e:?}");
}

#[test]
fn gc_of_the_bootstrap_object_is_ignored() {
    let mut s = victim();
    s.handle_bytes(&enc(Value::record(
        "op:gc-exports",
        vec![
            Value::List(vec![Value::int(0i64)]),
            Value::List(vec![Value::int(5i64)]),
        ],
    )))
    .unwrap();
    assert!(!s.is_terminated());
    // Still reachable.
    s.handle_bytes(&deliver(
        desc("desc:export", 0),
        vec![Value::sym("fetch"), Value::bytes(&b"x"[..])],
        false.into(),
        false.into(),
    ))
    .unwrap();
    assert!(std::iter::from_fn(|| s.poll_event()).any(|e| matches!(e, Event::Fetch { .. })));
}

#[test]
fn depositing_someone_elses_object_is_refused() {
    let mut s = victim();
    // The peer tries to deposit an object *it* exports (not ours).
    s.handle_bytes(&deliver(
        desc("desc:export", 0),
        vec![
            Value::sym("deposit-gift"),
            Value::bytes(vec![1u8; 32]),
            desc("desc:import-object", 4),
        ],
        Value::int(0i64),
        desc("desc:import-object", 5),
    ))
    .unwrap();
    assert_eq!(s.table_sizes().gifts, 0);
    let out: Vec<_> = std::iter::from_fn(|| s.poll_transmit()).collect();
    let v = pola_syrup::decode(&out[0]).unwrap();
    let f = v.as_record_labelled("op:deliver-only").unwrap();
    assert_eq!(f[1].as_list().unwrap()[0], Value::sym("break"));
}

#[test]
fn peer_abort_reason_is_bounded() {
    let mut s = victim();
    let long = "x".repeat(100_000);
    let _ = s.handle_bytes(&enc(Value::record("op:abort", vec![Value::str(long)])));
    let last = std::iter::from_fn(|| s.poll_event()).last();
    let Some(Event::Aborted {
        reason,
        by_peer: true,
    }) = last
    else {
        panic!("{last:?}")
    };
    assert!(reason.len() <= 200);
    // Nothing is sent in reply to an abort.
    assert!(s.poll_transmit().is_none());
}

#[test]
fn channel_closing_breaks_pending_questions() {
    let mut s = victim();
    s.handle_closed().unwrap();
    let events: Vec<Event> = std::iter::from_fn(|| s.poll_event()).collect();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Answer { result: Err(_), .. }))
    );
    assert!(
        s.poll_transmit().is_none(),
        "nothing is sent on a closed channel"
    );
    assert_eq!(s.handle_closed().unwrap_err(), SessionError::Closed);
    assert_eq!(s.table_sizes(), TableSizes::default());
}

#[test]
fn a_resolver_also_passed_as_an_argument_survives_the_local_drop() {
    let mut s = victim();
    // The peer fetches an object of ours (export position 2 once sent).
    s.handle_bytes(&deliver(
        desc("desc:export", 0),
        vec![Value::sym("fetch"), Value::bytes(&b"k"[..])],
        Value::int(0i64),
        desc("desc:import-object", 5),
    ))
    .unwrap();
    let Some(Event::Fetch { reply, .. }) = s.poll_event() else {
        panic!()
    };
    s.resolve(
        reply.unwrap(),
        Ok(Value::Ref(CapRef::Local(pola_captp::LocalId(10)))),
    )
    .unwrap();
    while s.poll_transmit().is_some() {}
    // Its resolver 6 is both the resolve-me and an argument.
    s.handle_bytes(&deliver(
        desc("desc:export", 2),
        vec![Value::sym("m"), desc("desc:import-object", 6)],
        Value::int(1i64),
        desc("desc:import-object", 6),
    ))
    .unwrap();
    let Some(Event::Deliver { args, reply, .. }) = s.poll_event() else {
        panic!()
    };
    let Value::Ref(CapRef::Import(six)) = args[1] else {
        panic!("{args:?}")
    };
    // The local side never kept the argument: drops it at once.
    s.drop_import(six).unwrap();
    s.resolve(reply.unwrap(), Ok(Value::int(1i64))).unwrap();
    let out: Vec<Value> = std::iter::from_fn(|| s.poll_transmit())
        .map(|m| pola_syrup::decode(&m).unwrap())
        .collect();
    let fulfil = out
        .iter()
        .find_map(|v| v.as_record_labelled("op:deliver-only"))
        .expect("resolver was not notified");
    assert_eq!(fulfil[0], desc("desc:export", 6));
    assert_eq!(fulfil[1].as_list().unwrap()[0], Value::sym("fulfill"));
    // Both receipts reported, in total.
    let total: i64 = out
        .iter()
        .filter_map(|v| v.as_record_labelled("op:gc-export"))
        .flat_map(|f| f[1].as_list().unwrap().iter().map(|d| d.as_i64().unwrap()))
        .sum();
    assert_eq!(total, 2);
    // Resolver 5 (notified and released earlier) and 6 are both gone.
    assert_eq!(s.table_sizes().imports, 0);
}

#[test]
fn imports_nobody_receives_are_reported_back() {
    let mut s = victim();
    // An unknown bootstrap method carrying the peer's objects, and a
    // second fulfilment of our (pending) question's resolver.
    s.handle_bytes(&deliver(
        desc("desc:export", 0),
        vec![
            Value::sym("nope"),
            desc("desc:import-object", 8),
            desc("desc:import-object", 8),
        ],
        false.into(),
        false.into(),
    ))
    .unwrap();
    let fulfil = |n: i64| {
        enc(Value::record(
            "op:deliver-only",
            vec![
                desc("desc:export", 1),
                Value::List(vec![Value::sym("fulfill"), desc("desc:import-object", n)]),
            ],
        ))
    };
    s.handle_bytes(&fulfil(9)).unwrap();
    s.handle_bytes(&fulfil(10)).unwrap();
    let answers = std::iter::from_fn(|| s.poll_event())
        .filter(|e| matches!(e, Event::Answer { .. }))
        .count();
    assert_eq!(answers, 1, "only the first resolution counts");
    assert_eq!(
        s.table_sizes().imports,
        1,
        "only the delivered answer is held"
    );
    let mut released = std::collections::BTreeMap::new();
    for m in std::iter::from_fn(|| s.poll_transmit()) {
        let v = pola_syrup::decode(&m).unwrap();
        if let Some(f) = v.as_record_labelled("op:gc-export") {
            for (p, d) in f[0].as_list().unwrap().iter().zip(f[1].as_list().unwrap()) {
                *released.entry(p.as_i64().unwrap()).or_insert(0) += d.as_i64().unwrap();
            }
        }
    }
    assert_eq!(released.get(&8), Some(&2));
    assert_eq!(released.get(&10), Some(&1));
    assert_eq!(released.get(&9), None);
}
