//! Two sessions talking: every op, both dialects, pipelining, listen, GC.

use pola_captp::locator::Swiss;
use pola_captp::{
    CapRef, Dialect, Event, LocalId, LocalTarget, QuestionPosition, Session, TableSizes,
};
use pola_syrup::Value;

use crate::sim::Pair;

const DIALECTS: [Dialect; 2] = [Dialect::TestSuite, Dialect::Current];

fn answer(events: &[Event], q: QuestionPosition) -> &Value<CapRef> {
    events
        .iter()
        .find_map(|e| match e {
            Event::Answer {
                question,
                result: Ok(v),
            } if *question == q => Some(v),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no answer for {q:?} in {events:?}"))
}

/// Fetches `swiss` from b; b's vat answers with `LocalId(id)`. Returns a's
/// import of it.
fn fetch(p: &mut Pair, swiss: &[u8], id: u64) -> (CapRef, QuestionPosition) {
    let q = p.a.fetch(&Swiss::new(swiss.to_vec())).unwrap();
    let (_, eb) = p.run();
    let mut resolved = false;
    for e in eb {
        if let Event::Fetch { swiss: s, reply } = e {
            assert_eq!(s.bytes().as_ref(), swiss);
            p.b.resolve(reply.unwrap(), Ok(Value::Ref(CapRef::Local(LocalId(id)))))
                .unwrap();
            resolved = true;
        }
    }
    assert!(resolved);
    let (ea, _) = p.run();
    let r = answer(&ea, q).as_ref().cloned().unwrap();
    assert!(matches!(r, CapRef::Import(_)), "{r:?}");
    (r, q)
}

fn idle(s: &Session) {
    let want = TableSizes {
        exports: 1,
        imports: 0,
        questions: 0,
        answers: 0,
        gifts: 0,
    };
    assert_eq!(s.table_sizes(), want, "not idle");
}

#[test]
fn handshake_agrees_on_session_id() {
    for d in DIALECTS {
        let p = Pair::new(d, 1, 2);
        let (pa, pb) = (p.a.peer().unwrap(), p.b.peer().unwrap());
        assert_eq!(pa.session_id(), pb.session_id());
        assert_eq!(pa.id(), p.b.public_id());
        assert_eq!(pb.id(), p.a.public_id());
        assert_eq!(pa.location().designator(), "bob");
    }
}

#[test]
fn call_and_answer_then_gc_frees_both_sides() {
    for d in DIALECTS {
        let mut p = Pair::new(d, 1, 2);
        let (obj, q0) = fetch(&mut p, b"echo", 10);
        let CapRef::Import(pos) = obj else {
            unreachable!()
        };
        // A sends its own object along, twice (counted twice).
        let q =
            p.a.deliver(
                &obj,
                vec![
                    Value::sym("ping"),
                    Value::Ref(CapRef::Local(LocalId(77))),
                    Value::List(vec![Value::Ref(CapRef::Local(LocalId(77)))]),
                ],
            )
            .unwrap();
        let (_, eb) = p.run();
        let [Event::Deliver { target, args, .. }] = eb.as_slice() else {
            panic!("{eb:?}")
        };
        assert_eq!(*target, LocalTarget::Object(LocalId(10)));
        let theirs = args[1].clone();
        assert!(matches!(theirs, Value::Ref(CapRef::Import(_))));
        assert_eq!(args[2], Value::List(vec![theirs.clone()]));
        let reply = eb.into_iter().find_map(|e| match e {
            Event::Deliver { reply, .. } => reply,
            _ => None,
        });
        // B answers with A's own object: it goes back as desc:export.
        p.b.resolve(reply.unwrap(), Ok(theirs.clone())).unwrap();
        let (ea, _) = p.run();
        assert_eq!(answer(&ea, q), &Value::Ref(CapRef::Local(LocalId(77))));

        // Release everything: B drops its import of A's object, A drops
        // its import of B's and both questions.
        let Value::Ref(CapRef::Import(bpos)) = theirs else {
            unreachable!()
        };
        p.b.drop_import(bpos).unwrap();
        p.a.drop_import(pos).unwrap();
        p.a.drop_question(q0).unwrap();
        p.a.drop_question(q).unwrap();
        let (ea, eb) = p.run();
        assert!(
            ea.contains(&Event::ExportDropped { local: LocalId(77) }),
            "{ea:?}"
        );
        assert!(
            eb.contains(&Event::ExportDropped { local: LocalId(10) }),
            "{eb:?}"
        );
        idle(&p.a);
        idle(&p.b);
        // The GC labels follow the dialect.
        let labels = p.labels(true);
        let (gce, gca) = match d {
            Dialect::TestSuite => ("op:gc-export", "op:gc-answer"),
            Dialect::Current => ("op:gc-exports", "op:gc-answers"),
            Dialect::Auto | Dialect::AutoSuite => unreachable!("forced dialects only"),
        };
        assert!(labels.iter().any(|l| l == gce), "{labels:?}");
        assert!(labels.iter().any(|l| l == gca), "{labels:?}");
        // Using a dropped import is caller misuse, not a crash.
        assert!(p.a.deliver(&obj, vec![]).is_err());
        assert!(!p.a.is_terminated());
    }
}

#[test]
fn gc_keeps_export_alive_while_copies_are_in_flight() {
    let mut p = Pair::new(Dialect::Current, 1, 2);
    let (obj, _) = fetch(&mut p, b"x", 10);
    // A sends its object twice; B drops after the first arrived but before
    // processing the second: B reports only what it saw.
    p.a.deliver_only(&obj, vec![Value::Ref(CapRef::Local(LocalId(5)))])
        .unwrap();
    let m1 = p.a.poll_transmit().unwrap();
    p.a.deliver_only(&obj, vec![Value::Ref(CapRef::Local(LocalId(5)))])
        .unwrap();
    let m2 = p.a.poll_transmit().unwrap();
    p.b.handle_bytes(&m1).unwrap();
    let imp = loop {
        match p.b.poll_event().unwrap() {
            Event::Deliver { args, .. } => match &args[0] {
                Value::Ref(CapRef::Import(i)) => break *i,
                other => panic!("{other:?}"),
            },
            _ => continue,
        }
    };
    p.b.drop_import(imp).unwrap();
    let gc = p.b.poll_transmit().unwrap();
    p.b.handle_bytes(&m2).unwrap();
    p.a.handle_bytes(&gc).unwrap();
    // One copy still in B's hands: A's export must survive.
    assert_eq!(p.a.table_sizes().exports, 2, "bootstrap and object");
    assert!(
        std::iter::from_fn(|| p.a.poll_event()).all(|e| !matches!(e, Event::ExportDropped { .. }))
    );
    p.b.drop_import(imp).unwrap();
    let (ea, _) = p.run();
    assert!(ea.contains(&Event::ExportDropped { local: LocalId(5) }));
}

/// The test vat on b for pipelining: a factory (id 1) whose `make-car`
/// returns car (id 2), whose `drive` returns "vroom".
fn factory_vat(p: &mut Pair, events: Vec<Event>) {
    use std::collections::BTreeMap;
    let mut answers: BTreeMap<u64, LocalId> = BTreeMap::new();
    for e in events {
        match e {
            Event::Fetch { reply, .. } => {
                let reply = reply.unwrap();
                answers.insert(reply.answer_position().unwrap().get(), LocalId(1));
                p.b.resolve(reply, Ok(Value::Ref(CapRef::Local(LocalId(1)))))
                    .unwrap();
            }
            Event::Deliver {
                target,
                args,
                reply,
            } => {
                let recipient = match target {
                    LocalTarget::Answer(a) => answers[&a.get()],
                    LocalTarget::Object(id) => id,
                    LocalTarget::Promise(_) => panic!(),
                };
                let reply = reply.unwrap();
                let result = match (recipient, args[0].as_symbol()) {
                    (LocalId(1), Some("make-car")) => {
                        if let Some(a) = reply.answer_position() {
                            answers.insert(a.get(), LocalId(2));
                        }
                        Value::Ref(CapRef::Local(LocalId(2)))
                    }
                    (LocalId(2), Some("drive")) => Value::str("vroom"),
                    other => panic!("{other:?}"),
                };
                p.b.resolve(reply, Ok(result)).unwrap();
            }
            _ => {}
        }
    }
}

#[test]
fn pipelining_a_chain_of_three_calls() {
    for d in DIALECTS {
        let mut p = Pair::new(d, 3, 4);
        let q0 = p.a.fetch(&Swiss::new(&b"factory"[..])).unwrap();
        let q1 =
            p.a.deliver(&CapRef::Question(q0), vec![Value::sym("make-car")])
                .unwrap();
        let q2 =
            p.a.deliver(&CapRef::Question(q1), vec![Value::sym("drive")])
                .unwrap();
        // All three go out before any answer comes back.
        let mut sent = 0;
        while let Some(m) = p.a.poll_transmit() {
            p.b.handle_bytes(&m).unwrap();
            sent += 1;
        }
        assert_eq!(sent, 3);
        let eb: Vec<_> = std::iter::from_fn(|| p.b.poll_event()).collect();
        assert_eq!(eb.len(), 3, "{eb:?}");
        assert!(matches!(
            eb[1],
            Event::Deliver {
                target: LocalTarget::Answer(_),
                ..
            }
        ));
        factory_vat(&mut p, eb);
        let (ea, _) = p.run();
        assert_eq!(answer(&ea, q2), &Value::str("vroom"));
        assert!(matches!(answer(&ea, q1), Value::Ref(CapRef::Import(_))));
        // Clean up: everything freed on both sides.
        for q in [q0, q1, q2] {
            p.a.drop_question(q).unwrap();
        }
        for e in &ea {
            if let Event::Answer {
                result: Ok(Value::Ref(CapRef::Import(i))),
                ..
            } = e
            {
                let _ = p.a.drop_import(*i);
            }
        }
        p.run();
        idle(&p.a);
        idle(&p.b);
    }
}

#[test]
fn listen_on_an_imported_promise_and_resolve() {
    for d in DIALECTS {
        let mut p = Pair::new(d, 5, 6);
        let q = p.a.fetch(&Swiss::new(&b"later"[..])).unwrap();
        let (_, eb) = p.run();
        for e in eb {
            if let Event::Fetch { reply, .. } = e {
                p.b.resolve(
                    reply.unwrap(),
                    Ok(Value::Ref(CapRef::LocalPromise(LocalId(9)))),
                )
                .unwrap();
            }
        }
        let (ea, _) = p.run();
        let Value::Ref(CapRef::ImportPromise(prom)) = answer(&ea, q).clone() else {
            panic!("{ea:?}")
        };
        assert_eq!(p.a.import_is_promise(prom), Some(true));
        p.a.listen(prom, false).unwrap();
        let (_, eb) = p.run();
        let [Event::Listen { target, .. }] = eb.as_slice() else {
            panic!("{eb:?}")
        };
        assert_eq!(*target, LocalTarget::Promise(LocalId(9)));
        let reply = eb.into_iter().find_map(|e| match e {
            Event::Listen { reply, .. } => Some(reply),
            _ => None,
        });
        p.b.resolve(reply.unwrap(), Ok(Value::str("done"))).unwrap();
        let (ea, _) = p.run();
        assert!(
            ea.contains(&Event::PromiseSettled {
                promise: prom,
                result: Ok(Value::str("done"))
            }),
            "{ea:?}"
        );
        let want = match d {
            Dialect::TestSuite => "op:listen/3",
            Dialect::Current => "op:listen/2",
            Dialect::Auto | Dialect::AutoSuite => unreachable!("forced dialects only"),
        };
        assert!(p.labels(true).iter().any(|l| l == want));
        // Fire-and-forget resolutions use the dialect's form.
        let ff = match d {
            Dialect::TestSuite => "op:deliver-only",
            Dialect::Current => "op:deliver/4",
            Dialect::Auto | Dialect::AutoSuite => unreachable!("forced dialects only"),
        };
        assert!(
            p.labels(false).iter().any(|l| l == ff),
            "{:?}",
            p.labels(false)
        );
        p.a.drop_import(prom).unwrap();
        p.a.drop_question(q).unwrap();
        p.run();
        idle(&p.a);
        idle(&p.b);
    }
}

#[test]
fn deliver_only_and_break() {
    for d in DIALECTS {
        let mut p = Pair::new(d, 7, 8);
        let (obj, _) = fetch(&mut p, b"o", 3);
        p.a.deliver_only(&obj, vec![Value::sym("poke")]).unwrap();
        let q = p.a.deliver(&obj, vec![Value::sym("fail")]).unwrap();
        let (_, eb) = p.run();
        let mut replies = Vec::new();
        for e in eb {
            if let Event::Deliver { args, reply, .. } = e {
                replies.push((args[0].clone(), reply));
            }
        }
        assert_eq!(replies.len(), 2);
        assert_eq!(replies[0].0, Value::sym("poke"));
        assert!(replies[0].1.is_none());
        let r = replies.pop().unwrap().1.unwrap();
        p.b.resolve(r, Err(Value::error("nope"))).unwrap();
        let (ea, _) = p.run();
        assert!(ea.contains(&Event::Answer {
            question: q,
            result: Err(Value::error("nope"))
        }));
    }
}

#[test]
fn abort_breaks_pending_questions_on_both_sides() {
    for d in DIALECTS {
        let mut p = Pair::new(d, 9, 10);
        let q = p.a.fetch(&Swiss::new(&b"never"[..])).unwrap();
        let (_, eb) = p.run();
        // b asks something of a too, then a aborts before answering.
        let qb = p.b.fetch(&Swiss::new(&b"x"[..])).unwrap();
        drop(eb);
        p.a.abort("going away").unwrap();
        let (ea, eb) = p.run();
        assert!(
            ea.iter()
                .any(|e| matches!(e, Event::Answer { question, result: Err(_) } if *question == q))
        );
        assert!(
            ea.iter()
                .any(|e| matches!(e, Event::Aborted { by_peer: false, .. }))
        );
        assert!(
            eb.iter().any(
                |e| matches!(e, Event::Answer { question, result: Err(_) } if *question == qb)
            )
        );
        assert!(eb.contains(&Event::Aborted {
            reason: "going away".into(),
            by_peer: true
        }));
        assert!(p.a.is_terminated() && p.b.is_terminated());
        assert_eq!(p.a.table_sizes(), TableSizes::default());
        assert_eq!(p.b.table_sizes(), TableSizes::default());
        assert!(p.b.deliver_only(&CapRef::Bootstrap, vec![]).is_err());
    }
}

#[test]
fn pipelined_get_and_listen_on_an_answer() {
    let mut p = Pair::new(Dialect::Current, 11, 12);
    let q0 = p.a.fetch(&Swiss::new(&b"record"[..])).unwrap();
    let q1 =
        p.a.project(
            &CapRef::Question(q0),
            pola_captp::ProjectKind::Field("x".into()),
        )
        .unwrap();
    let (_, eb) = p.run();
    let mut project_reply = None;
    for e in eb {
        match e {
            Event::Fetch { reply, .. } => {
                p.b.resolve(reply.unwrap(), Ok(Value::int(0i64))).unwrap()
            }
            Event::Project {
                receiver,
                kind,
                reply,
            } => {
                assert!(matches!(receiver, LocalTarget::Answer(_)));
                assert_eq!(kind, pola_captp::ProjectKind::Field("x".into()));
                project_reply = Some(reply);
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(p.labels(true).iter().any(|l| l == "op:get"));
    assert!(p.labels(true).iter().any(|l| l == "op:listen/2"));
    // The listen waits on the unsettled answer; settling it notifies.
    p.b.resolve(project_reply.unwrap(), Ok(Value::int(5i64)))
        .unwrap();
    let (ea, _) = p.run();
    assert_eq!(answer(&ea, q1), &Value::int(5i64));
    p.a.drop_question(q0).unwrap();
    p.a.drop_question(q1).unwrap();
    p.run();
    idle(&p.a);
    idle(&p.b);
    // The suite's dialect has no op:get.
    let mut s = Pair::new(Dialect::TestSuite, 1, 2);
    assert!(
        s.a.project(&CapRef::Bootstrap, pola_captp::ProjectKind::Index(0))
            .is_err()
    );
    assert!(!s.a.is_terminated());
    s.run();
}

#[test]
fn stale_and_unsendable_replies_are_caller_misuse() {
    let mut p = Pair::new(Dialect::Current, 13, 14);
    let q = p.a.fetch(&Swiss::new(&b"x"[..])).unwrap();
    let (_, eb) = p.run();
    let Some(Event::Fetch { reply, .. }) = eb.into_iter().next() else {
        panic!()
    };
    // a loses interest before b answers: the answer is freed on b.
    p.a.drop_question(q).unwrap();
    let (_, eb) = p.run();
    assert!(
        matches!(eb.as_slice(), [Event::AnswerDropped { .. }]),
        "{eb:?}"
    );
    let e =
        p.b.resolve(reply.unwrap(), Ok(Value::int(1i64)))
            .unwrap_err();
    assert_eq!(
        e,
        pola_captp::SessionError::Misuse(pola_captp::Misuse::StaleReply)
    );

    // Answering with a promise the peer hosts cannot be sent back: the
    // reply breaks instead, and the session lives on.
    let q = p.a.fetch(&Swiss::new(&b"y"[..])).unwrap();
    let (_, eb) = p.run();
    let Some(Event::Fetch { reply, .. }) = eb.into_iter().next() else {
        panic!()
    };
    let bad = Value::Ref(CapRef::Answer(
        reply.as_ref().unwrap().answer_position().unwrap(),
    ));
    assert!(p.b.resolve(reply.unwrap(), Ok(bad)).is_err());
    let (ea, _) = p.run();
    assert!(
        ea.iter()
            .any(|e| matches!(e, Event::Answer { question, result: Err(_) } if *question == q))
    );
    assert!(!p.a.is_terminated() && !p.b.is_terminated());
}

#[test]
fn a_pending_answer_passed_as_an_argument_arrives_as_the_hosted_promise() {
    let mut p = Pair::new(Dialect::TestSuite, 15, 16);
    let (obj, _) = fetch(&mut p, b"o", 3);
    let q = p.a.deliver(&obj, vec![Value::sym("slow")]).unwrap();
    p.a.deliver_only(
        &obj,
        vec![Value::sym("use"), Value::Ref(CapRef::Question(q))],
    )
    .unwrap();
    let (_, eb) = p.run();
    let Some(Event::Deliver { reply: Some(r), .. }) = eb.first() else {
        panic!("{eb:?}")
    };
    let hosted = r.answer_position().unwrap();
    let Some(Event::Deliver {
        args, reply: None, ..
    }) = eb.get(1)
    else {
        panic!("{eb:?}")
    };
    assert_eq!(args[1], Value::Ref(CapRef::Answer(hosted)));
}

/// A driver that defers GC reports sends them with its next message, or
/// alone when it flushes; nothing is lost either way.
#[test]
fn deferred_gc_reports_ride_with_the_next_message() {
    for d in DIALECTS {
        let mut p = Pair::new(d, 41, 42);
        let (obj, q0) = fetch(&mut p, b"thing", 5);
        p.a.drop_question(q0).unwrap();
        assert!(p.a.has_pending_gc());
        // Nothing else to say: the report waits.
        assert!(p.a.poll_transmit_deferring_gc().is_none());
        assert!(p.a.has_pending_gc());
        // The next call carries it, after the call itself.
        p.a.deliver(&obj, vec![Value::int(1i64)]).unwrap();
        let first = p.a.poll_transmit_deferring_gc().unwrap();
        let second = p.a.poll_transmit_deferring_gc().unwrap();
        assert!(p.a.poll_transmit_deferring_gc().is_none());
        assert!(!p.a.has_pending_gc());
        assert!(crate::sim::label(&first).starts_with("op:deliver"), "{d:?}");
        let gca = match d {
            Dialect::TestSuite => "op:gc-answer",
            Dialect::Current => "op:gc-answers",
            Dialect::Auto | Dialect::AutoSuite => unreachable!("forced dialects only"),
        };
        assert_eq!(crate::sim::label(&second), gca);
        // b holds the fetch's answer and now the call's; the report frees
        // the fetch's.
        p.b.handle_bytes(&first).unwrap();
        assert_eq!(p.b.table_sizes().answers, 2, "{d:?}");
        p.b.handle_bytes(&second).unwrap();
        assert_eq!(p.b.table_sizes().answers, 1, "{d:?}");
        let (_, eb) = p.run();
        assert!(
            eb.iter().any(|e| matches!(e, Event::Deliver { .. })),
            "{eb:?}"
        );

        // Dropped again with nothing else to send: an ordinary
        // poll_transmit sends it alone.
        let q1 = p.a.fetch(&Swiss::new(b"thing".to_vec())).unwrap();
        let (_, eb) = p.run();
        for e in eb {
            if let Event::Fetch { reply, .. } = e {
                p.b.resolve(reply.unwrap(), Ok(Value::Ref(CapRef::Local(LocalId(5)))))
                    .unwrap();
            }
        }
        p.run();
        p.a.drop_question(q1).unwrap();
        assert!(p.a.poll_transmit_deferring_gc().is_none());
        let alone = p.a.poll_transmit().unwrap();
        assert_eq!(crate::sim::label(&alone), gca);
        assert!(!p.a.has_pending_gc());
    }
}

/// `v` wrapped in `n` lists.
fn nested(n: usize, v: Value<CapRef>) -> Value<CapRef> {
    (0..n).fold(v, |v, _| Value::List(vec![v]))
}

/// An echo that answers with its arguments as a list nests one level deeper
/// than what it was sent: at the decoder's depth limit that reply must not
/// go out as a message the caller's decoder refuses (which would abort the
/// session); the answer breaks with a plain reason instead, and the
/// session lives on.
#[test]
fn a_reply_never_exceeds_the_depth_the_caller_accepts() {
    for d in DIALECTS {
        let mut p = Pair::new(d, 1, 2);
        let (echo, _) = fetch(&mut p, b"echo", 10);
        // The deepest argument that fits: `<op:deliver to [arg] …>` is 2
        // levels above it, and the limit is 64.
        let deepest = nested(62, Value::int(1u64));
        let q = p.a.deliver(&echo, vec![deepest.clone()]).unwrap();
        let (_, mut eb) = p.run();
        assert_eq!(eb.len(), 1, "{eb:?}");
        let Some(Event::Deliver { args, reply, .. }) = eb.pop() else {
            panic!("{eb:?}")
        };
        assert_eq!(args, vec![deepest.clone()]);
        // Echoing the list of arguments is one level too deep.
        let err =
            p.b.resolve(reply.unwrap(), Ok(Value::List(args)))
                .unwrap_err();
        assert!(err.to_string().contains("nested too deeply"), "{err}");
        let (ea, _) = p.run();
        let broken = ea
            .iter()
            .find_map(|e| match e {
                Event::Answer {
                    question,
                    result: Err(v),
                } if *question == q => Some(v.clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no broken answer in {ea:?}"));
        assert_eq!(
            broken,
            Value::error("result nested deeper than the peer accepts")
        );
        assert!(!p.a.is_terminated() && !p.b.is_terminated());

        // Echoing the argument itself fits exactly, and arrives whole.
        let q = p.a.deliver(&echo, vec![deepest.clone()]).unwrap();
        let (_, mut eb) = p.run();
        assert_eq!(eb.len(), 1, "{eb:?}");
        let Some(Event::Deliver { args, reply, .. }) = eb.pop() else {
            panic!("{eb:?}")
        };
        p.b.resolve(reply.unwrap(), Ok(args[0].clone())).unwrap();
        let (ea, _) = p.run();
        assert_eq!(answer(&ea, q), &deepest);

        // The caller's own side refuses a call one level deeper, sending
        // nothing; a reference at the bottom counts as its descriptor
        // record (one level), so it tips a 62-deep argument over too.
        let sent = p.wire.len();
        for too_deep in [
            nested(63, Value::int(1u64)),
            nested(62, Value::Ref(CapRef::Local(LocalId(5)))),
        ] {
            let err = p.a.deliver(&echo, vec![too_deep.clone()]).unwrap_err();
            assert!(err.to_string().contains("nested too deeply"), "{err}");
            let err = p.a.deliver_only(&echo, vec![too_deep]).unwrap_err();
            assert!(err.to_string().contains("nested too deeply"), "{err}");
        }
        p.run();
        assert_eq!(p.wire.len(), sent, "nothing may be sent");
        assert!(!p.a.is_terminated() && !p.b.is_terminated());
        // A deep local value is refused as well (measured without recursion).
        let err =
            p.a.deliver(&echo, vec![nested(5_000, Value::int(1u64))])
                .unwrap_err();
        assert!(err.to_string().contains("nested too deeply"), "{err}");
    }
}
