//! Memory budgets: a peer that makes a session hold too many bytes is
//! aborted with a clear reason, and what it held is given back.

use pola_captp::budget::{MemoryPool, OverBudget};
use pola_captp::{
    CapRef, Dialect, Event, LocalId, LocalTarget, Session, SessionConfig, SessionError,
};
use pola_syrup::Value;

use crate::hostile::{deliver, desc, enc, start_bytes};
use crate::sim::loc;

/// A value of `n` one-byte atoms: small on the wire, big once decoded.
fn atoms(n: usize) -> Value {
    Value::List(vec![Value::Bool(true); n])
}

/// A victim with budget `max_held`, drawing on `pool`, that has handed the
/// peer one object at export position 1.
fn victim(max_held: usize, pool: Option<MemoryPool>, seed: u8) -> Session {
    let mut cfg = SessionConfig::new(Dialect::Current, [42; 32], loc("victim"));
    cfg.max_held_bytes = max_held;
    cfg.pool = pool;
    let mut s = Session::new(cfg);
    s.handle_bytes(&start_bytes(seed, seed, "1.0")).unwrap();
    // The peer fetches an object; the local side hands over LocalId(1).
    let fetch = deliver(
        desc("desc:export", 0),
        vec![Value::sym("fetch"), Value::bytes(&b"obj"[..])],
        Value::int(0i64),
        // A resolver, so the answer is sent (and the object exported).
        desc("desc:import-object", 0),
    );
    s.handle_bytes(&fetch).unwrap();
    let reply = loop {
        match s.poll_event() {
            Some(Event::Fetch { reply, .. }) => break reply.unwrap(),
            Some(_) => {}
            None => panic!("no fetch event"),
        }
    };
    s.resolve(reply, Ok(Value::Ref(CapRef::Local(LocalId(1)))))
        .unwrap();
    let gc = enc(Value::record(
        "op:gc-answers",
        vec![Value::List(vec![Value::int(0i64)])],
    ));
    s.handle_bytes(&gc).unwrap();
    while s.poll_transmit().is_some() {}
    while s.poll_event().is_some() {}
    s
}

/// Plays the local side: echoes every delivery's arguments as its answer.
/// Returns the first error.
fn echo_all(s: &mut Session) -> Result<(), SessionError> {
    while let Some(e) = s.poll_event() {
        if let Event::Deliver {
            args,
            reply: Some(reply),
            ..
        } = e
        {
            s.resolve(reply, Ok(Value::List(args)))?;
        }
    }
    Ok(())
}

fn call(answer: i64, arg: Value) -> Vec<u8> {
    deliver(
        desc("desc:export", 1),
        vec![Value::sym("echo"), arg],
        Value::int(answer),
        false.into(),
    )
}

fn abort_reason(s: &mut Session) -> String {
    let out: Vec<Vec<u8>> = std::iter::from_fn(|| s.poll_transmit()).collect();
    let v = pola_syrup::decode(out.last().expect("nothing sent")).unwrap();
    v.as_record_labelled("op:abort").expect("no op:abort")[0]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn answers_a_peer_never_releases_are_bounded_in_bytes() {
    let budget = 4 << 20;
    let mut s = victim(budget, None, 1);
    let mut failed = None;
    for i in 1..100i64 {
        // ~1 MiB decoded each, 16 KiB on the wire.
        let r = s
            .handle_bytes(&call(i, atoms(16 << 10)))
            .and_then(|()| echo_all(&mut s));
        if let Err(e) = r {
            failed = Some((i, e));
            break;
        }
        assert!(s.held() <= budget, "held {} over budget", s.held());
    }
    let (i, err) = failed.expect("never aborted");
    assert!(i < 10, "aborted only after {i} answers");
    assert!(
        matches!(err, SessionError::OverBudget(OverBudget::Session { limit, .. }) if limit == budget),
        "{err:?}"
    );
    assert!(s.is_terminated());
    assert!(abort_reason(&mut s).starts_with("over memory budget"));
    assert_eq!(s.table_sizes().answers, 0);
    let events: Vec<Event> = std::iter::from_fn(|| s.poll_event()).collect();
    assert!(matches!(
        events.last(),
        Some(Event::Aborted { by_peer: false, .. })
    ));
    assert_eq!(s.held(), 0, "an aborted session holds nothing");
}

#[test]
fn a_peer_that_releases_its_answers_runs_for_ever() {
    let mut s = victim(2 << 20, None, 1);
    for i in 1..200i64 {
        s.handle_bytes(&call(i, atoms(8 << 10))).unwrap();
        echo_all(&mut s).unwrap();
        let gc = enc(Value::record(
            "op:gc-answers",
            vec![Value::List(vec![Value::int(i)])],
        ));
        s.handle_bytes(&gc).unwrap();
        while s.poll_event().is_some() {}
        while s.poll_transmit().is_some() {}
    }
    assert!(!s.is_terminated());
    assert!(s.held() < 64 << 10, "held {}", s.held());
}

#[test]
fn messages_pipelined_on_an_unsettled_answer_are_charged() {
    let budget = 4 << 20;
    let mut s = victim(budget, None, 1);
    // An answer the local side never settles…
    s.handle_bytes(&call(1, Value::int(0i64))).unwrap();
    let _pending = s.poll_event();
    // …and messages pipelined on it, each kept until it settles.
    let mut err = None;
    for i in 2..100i64 {
        let m = deliver(
            desc("desc:answer", 1),
            vec![Value::sym("m"), atoms(16 << 10)],
            Value::int(i),
            false.into(),
        );
        // The local side takes each event (parks the message) at once.
        let r = s.handle_bytes(&m);
        while s.poll_event().is_some() {}
        if let Err(e) = r {
            err = Some((i, e));
            break;
        }
    }
    let (i, err) = err.expect("never aborted");
    assert!(i < 10, "aborted only after {i} messages");
    assert!(matches!(err, SessionError::OverBudget(_)), "{err:?}");
}

#[test]
fn events_the_local_side_has_not_taken_are_charged() {
    let budget = 4 << 20;
    let mut s = victim(budget, None, 1);
    // One burst of deliveries without answers, none polled yet.
    let mut burst = Vec::new();
    for _ in 0..20 {
        burst.extend(enc(Value::record(
            "op:deliver",
            vec![
                desc("desc:export", 1),
                Value::List(vec![Value::sym("m"), atoms(16 << 10)]),
                false.into(),
                false.into(),
            ],
        )));
    }
    let err = s.handle_bytes(&burst).expect_err("burst accepted");
    assert!(matches!(err, SessionError::OverBudget(_)), "{err:?}");
}

#[test]
fn a_shared_pool_cuts_the_greedy_and_spares_the_modest() {
    let pool = MemoryPool::new(8 << 20);
    let mut modest = victim(64 << 20, Some(pool.clone()), 1);
    let mut greedy: Vec<Session> = (2..6u8)
        .map(|seed| victim(64 << 20, Some(pool.clone()), seed))
        .collect();
    assert_eq!(pool.sessions(), 5);
    // The modest peer keeps one small answer.
    modest.handle_bytes(&call(1, atoms(64))).unwrap();
    echo_all(&mut modest).unwrap();
    // Greedy peers keep big answers, round after round.
    let mut cut = 0;
    for round in 1..40i64 {
        for g in greedy.iter_mut().filter(|g| !g.is_terminated()) {
            let r = g
                .handle_bytes(&call(round, atoms(8 << 10)))
                .and_then(|()| echo_all(g));
            if let Err(e) = r {
                assert!(
                    matches!(e, SessionError::OverBudget(OverBudget::Shared { .. })),
                    "{e:?}"
                );
                cut += 1;
            }
        }
        // The modest peer goes on working throughout.
        modest.handle_bytes(&call(round + 1, atoms(64))).unwrap();
        echo_all(&mut modest).unwrap();
        let gc = enc(Value::record(
            "op:gc-answers",
            vec![Value::List(vec![Value::int(round + 1)])],
        ));
        modest.handle_bytes(&gc).unwrap();
        while modest.poll_event().is_some() {}
        assert!(
            pool.used() <= 2 * pool.limit(),
            "pool overdrawn: {} of {}",
            pool.used(),
            pool.limit()
        );
    }
    assert!(cut >= 1, "no greedy session was cut");
    assert!(!modest.is_terminated());
    // Everything the aborted sessions held went back to the pool.
    let live: usize = greedy
        .iter()
        .filter(|g| !g.is_terminated())
        .map(Session::held)
        .sum::<usize>()
        + modest.held();
    assert_eq!(pool.used(), live);
    drop(greedy);
    drop(modest);
    assert_eq!(pool.used(), 0);
    assert_eq!(pool.sessions(), 0);
}

#[test]
fn a_listen_on_a_settled_answer_goes_to_the_local_side_which_holds_the_settlement() {
    let mut s = victim(4 << 20, None, 1);
    s.handle_bytes(&call(1, Value::int(7i64))).unwrap();
    echo_all(&mut s).unwrap();
    while s.poll_transmit().is_some() {}
    // The session kept no copy of the settlement; a listen on the answer
    // is the local side's to answer.
    let listen = enc(Value::record(
        "op:listen",
        vec![
            desc("desc:answer", 1),
            desc("desc:import-object", 9),
            false.into(),
        ],
    ));
    s.handle_bytes(&listen).unwrap();
    let reply = match s.poll_event() {
        Some(Event::Listen {
            target: LocalTarget::Answer(a),
            reply,
            ..
        }) if a.get() == 1 => reply,
        other => panic!("expected a listen on answer 1, got {other:?}"),
    };
    s.resolve(reply, Ok(Value::List(vec![Value::int(7i64)])))
        .unwrap();
    let sent: Vec<Value> = std::iter::from_fn(|| s.poll_transmit())
        .map(|m| pola_syrup::decode(&m).unwrap())
        .collect();
    assert!(
        sent.iter().any(|v| {
            v.as_record()
                .is_some_and(|r| r.fields.first() == Some(&desc("desc:export", 9)))
        }),
        "listener not told: {sent:?}"
    );
}

#[test]
fn an_old_reply_cannot_settle_a_new_answer_at_a_reused_position() {
    let mut s = victim(4 << 20, None, 1);
    let take_reply = |s: &mut Session| loop {
        match s.poll_event() {
            Some(Event::Deliver {
                reply: Some(reply), ..
            }) => break reply,
            Some(_) => {}
            None => panic!("no delivery"),
        }
    };
    s.handle_bytes(&call(5, Value::int(1i64))).unwrap();
    let old = take_reply(&mut s);
    // The peer frees answer 5 and opens another answer there.
    let gc = enc(Value::record(
        "op:gc-answers",
        vec![Value::List(vec![Value::int(5i64)])],
    ));
    s.handle_bytes(&gc).unwrap();
    s.handle_bytes(&call(5, Value::int(2i64))).unwrap();
    let new = take_reply(&mut s);
    assert_eq!(old.answer_position(), new.answer_position());
    assert_eq!(
        s.resolve(old, Ok(Value::int(1i64))),
        Err(SessionError::Misuse(pola_captp::Misuse::StaleReply))
    );
    assert!(
        s.is_waiting(),
        "the new answer was settled by the old reply"
    );
    s.resolve(new, Ok(Value::int(2i64))).unwrap();
    assert!(!s.is_waiting());
}
