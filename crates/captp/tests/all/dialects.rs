//! The learning dialect (`Dialect::Auto`, the default) against peers of each
//! dialect: every message it writes must be one the peer's decoder takes,
//! including before the peer has shown its dialect.
//!
//! The decoders are modelled from their sources (what each refuses):
//! - the OCapN test suite's `main` branch (`6c146dc`): no `op:deliver` whose
//!   resolver is `false`, no two-field `op:listen`, no plural GC labels, no
//!   label it does not know (`op:get`…);
//! - its `remove-op-deliver-only` branch (`5bfcde9`): no `op:deliver-only`,
//!   no two-field `op:listen`, no plural GC labels, no unknown label;
//! - Endo's `@endo/ocapn` (`1fa6c227`): no `op:deliver-only`, no two-field
//!   `op:listen` (`wantsPartial` is required), no singular GC labels.

use pola_captp::locator::Swiss;
use pola_captp::{CapRef, Dialect, Event, LocalId, Session};
use pola_syrup::Value;

use crate::sim::{Pair, session};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Decoder {
    SuiteMain,
    SuiteBranch,
    Endo,
}

/// Why `decoder` would refuse `message`, if it would.
fn refusal(decoder: Decoder, message: &[u8]) -> Option<String> {
    let v = pola_syrup::decode(message).unwrap();
    let r = v.as_record().unwrap();
    let label = r.label.as_symbol().unwrap();
    let n = r.fields.len();
    let suite = matches!(decoder, Decoder::SuiteMain | Decoder::SuiteBranch);
    let bad = match label {
        "op:start-session" | "op:abort" => false,
        "op:deliver" => decoder == Decoder::SuiteMain && r.fields[3] == Value::Bool(false),
        "op:deliver-only" => decoder != Decoder::SuiteMain,
        "op:listen" => n != 3,
        "op:gc-export" | "op:gc-answer" => !suite,
        "op:gc-exports" | "op:gc-answers" => suite,
        "op:get" | "op:index" | "op:untag" => suite,
        _ => true,
    };
    bad.then(|| format!("{decoder:?} cannot decode {v}"))
}

/// A pair: `a` learns (Auto), `b` is the stand-in for the other peer.
fn pair(b_dialect: Dialect) -> Pair {
    let mut p = Pair {
        a: session(Dialect::Auto, 1, "pola"),
        b: session(b_dialect, 2, "other"),
        wire: Vec::new(),
        chunk: 5,
    };
    let (ea, eb) = p.run();
    assert!(matches!(ea.as_slice(), [Event::Established { .. }]));
    assert!(matches!(eb.as_slice(), [Event::Established { .. }]));
    p
}

/// Every message a sent so far is one `decoder` takes.
fn all_decodable(p: &Pair, decoder: Decoder) {
    for (from_a, m) in &p.wire {
        if *from_a && let Some(why) = refusal(decoder, m) {
            panic!("{why}");
        }
    }
}

/// b fetches a's object 10 (the suite's first move, before it has sent
/// anything that shows its dialect) and calls it; a answers both.
fn b_fetches_and_calls(p: &mut Pair) -> CapRef {
    let q = p.b.fetch(&Swiss::new(&b"obj"[..])).unwrap();
    let (ea, _) = p.run();
    for e in ea {
        if let Event::Fetch { reply, .. } = e {
            p.a.resolve(reply.unwrap(), Ok(Value::Ref(CapRef::Local(LocalId(10)))))
                .unwrap();
        }
    }
    let (_, eb) = p.run();
    let obj = eb
        .iter()
        .find_map(|e| match e {
            Event::Answer {
                question,
                result: Ok(Value::Ref(r)),
            } if *question == q => Some(r.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no fetch answer in {eb:?}"));
    let q = p.b.deliver(&obj, vec![Value::sym("hi")]).unwrap();
    let (ea, _) = p.run();
    for e in ea {
        if let Event::Deliver { reply, .. } = e {
            p.a.resolve(reply.unwrap(), Ok(Value::str("hello")))
                .unwrap();
        }
    }
    let (_, eb) = p.run();
    assert!(
        eb.contains(&Event::Answer {
            question: q,
            result: Ok(Value::str("hello"))
        }),
        "{eb:?}"
    );
    obj
}

#[test]
fn before_the_peer_shows_its_dialect_every_decoder_takes_what_we_send() {
    // The peer asks and needs an answer before it has sent anything that
    // tells its dialect (the suite's first move is a fetch): that answer
    // goes as `op:deliver … false <resolver>`, which every decoder takes.
    // (pola's AutoSuite stands in for a peer that needs an answer first;
    // being pola, it then shows itself as one, so the rest is not checked
    // against the suite branch's decoder.)
    for (stand_in, decoder) in [
        (Dialect::TestSuite, Some(Decoder::SuiteMain)),
        (Dialect::AutoSuite, None),
        (Dialect::Current, Some(Decoder::Endo)),
    ] {
        let mut p = pair(stand_in);
        b_fetches_and_calls(&mut p);
        let first = p
            .wire
            .iter()
            .filter(|(a, _)| *a)
            .map(|(_, m)| m)
            .find(|m| crate::sim::label(m) != "op:start-session")
            .unwrap();
        assert_eq!(crate::sim::label(first), "op:deliver/4");
        let v = pola_syrup::decode(first).unwrap();
        let resolver = &v.as_record().unwrap().fields[3];
        assert!(resolver.as_record().is_some(), "{v}");
        for d in [Decoder::SuiteMain, Decoder::SuiteBranch, Decoder::Endo] {
            assert_eq!(refusal(d, first), None);
        }
        // And everything after (once it has learned) suits this peer.
        if let Some(decoder) = decoder {
            all_decodable(&p, decoder);
        }
        assert!(!p.a.is_terminated() && !p.b.is_terminated());
    }
}

#[test]
fn a_peer_shows_its_dialect_and_we_write_its_forms() {
    for (stand_in, decoder, deliver_only) in [
        (Dialect::TestSuite, Decoder::SuiteMain, true),
        (Dialect::Current, Decoder::Endo, false),
    ] {
        let mut p = pair(stand_in);
        let obj = b_fetches_and_calls(&mut p);
        // A fire-and-forget message from the peer shows its form (pola's
        // stand-ins also show it by how they tell our resolver it ran).
        p.b.deliver_only(&obj, vec![Value::sym("ping")]).unwrap();
        p.run();
        let learned = p.a.learned();
        assert_eq!(learned.deliver_only, Some(deliver_only), "{stand_in:?}");
        if deliver_only {
            // Writers of op:deliver-only use the singular GC labels.
            assert_eq!(learned.gc_plural, Some(false));
        } else {
            assert_ne!(learned.gc_plural, Some(false));
        }
        // Our own fire-and-forget now takes that form: to an object of
        // b's that a fetches.
        let q = p.a.fetch(&Swiss::new(&b"back"[..])).unwrap();
        let (_, eb) = p.run();
        for e in eb {
            if let Event::Fetch { reply, .. } = e {
                p.b.resolve(reply.unwrap(), Ok(Value::Ref(CapRef::Local(LocalId(20)))))
                    .unwrap();
            }
        }
        let (ea, _) = p.run();
        let back = ea
            .iter()
            .find_map(|e| match e {
                Event::Answer {
                    question,
                    result: Ok(Value::Ref(r)),
                } if *question == q => Some(r.clone()),
                _ => None,
            })
            .unwrap();
        let before = p.wire.len();
        p.a.deliver_only(&back, vec![Value::sym("tick")]).unwrap();
        p.run();
        let (_, m) = p.wire[before..].iter().find(|(a, _)| *a).unwrap();
        let v = pola_syrup::decode(m).unwrap();
        if deliver_only {
            assert_eq!(crate::sim::label(m), "op:deliver-only", "{v}");
        } else {
            assert_eq!(crate::sim::label(m), "op:deliver/4", "{v}");
            assert_eq!(v.as_record().unwrap().fields[3], Value::Bool(false), "{v}");
        }
        // GC reports after dropping what we hold take the learned labels.
        if let CapRef::Import(i) = back {
            p.a.drop_import(i).unwrap();
        }
        p.a.drop_question(q).unwrap();
        p.run();
        let labels = p.labels(true);
        let gc = if deliver_only {
            "op:gc-answer"
        } else {
            "op:gc-answers"
        };
        assert!(labels.iter().any(|l| l == gc), "{labels:?}");
        all_decodable(&p, decoder);
    }
}

#[test]
fn a_listen_takes_three_fields_until_the_peer_sends_two() {
    // Fields: the three-field form until b (current text) sends a
    // two-field listen of its own; then two.
    let mut p = pair(Dialect::Current);
    let obj = b_fetches_and_calls(&mut p);
    assert!(p.a.forms().listen_wants_partial);
    // b listens on a promise of a's: a answers b's call with a promise.
    let q = p.b.deliver(&obj, vec![Value::sym("later")]).unwrap();
    let (ea, _) = p.run();
    for e in ea {
        if let Event::Deliver { reply, .. } = e {
            p.a.resolve(
                reply.unwrap(),
                Ok(Value::Ref(CapRef::LocalPromise(LocalId(30)))),
            )
            .unwrap();
        }
    }
    let (_, eb) = p.run();
    let promise = eb
        .iter()
        .find_map(|e| match e {
            Event::Answer {
                question,
                result: Ok(Value::Ref(CapRef::ImportPromise(i))),
            } if *question == q => Some(*i),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no promise in {eb:?}"));
    p.b.listen(promise, false).unwrap();
    p.run();
    assert_eq!(p.a.learned().listen_wants_partial, Some(false));
    assert!(!p.a.forms().listen_wants_partial);
}

#[test]
fn two_learning_peers_settle_on_the_current_forms_and_do_not_chatter() {
    let mut p = Pair {
        a: session(Dialect::Auto, 1, "a"),
        b: session(Dialect::Auto, 2, "b"),
        wire: Vec::new(),
        chunk: 64,
    };
    p.run();
    let obj = b_fetches_and_calls(&mut p);
    // Fire-and-forget before either has learned: each costs a sink
    // notification at most, and the exchange ends (sinks never answer).
    for _ in 0..3 {
        p.b.deliver_only(&obj, vec![Value::sym("ping")]).unwrap();
        let mut rounds = 0;
        while p.move_bytes() {
            while p.a.poll_event().is_some() {}
            while p.b.poll_event().is_some() {}
            rounds += 1;
            assert!(rounds < 20, "the sinks keep talking");
        }
    }
    // GC reports (plural labels) tell each side the other is current.
    if let CapRef::Import(i) = obj {
        p.b.drop_import(i).unwrap();
    }
    p.run();
    p.a.keepalive().unwrap();
    p.run();
    for s in [&p.a, &p.b] {
        assert_eq!(s.learned().deliver_only, Some(false), "{:?}", s.learned());
        assert_eq!(s.learned().gc_plural, Some(true));
    }
    assert!(!p.a.is_terminated() && !p.b.is_terminated());
    let _: &Session = &p.a;
}
