//! The distributed-GC race between an importer's `op:gc-exports` and the
//! exporter sending the same object again (DIGEST section 14), at the
//! level of one session and its local side.
//!
//! The exporter's local side keeps its own record of what the session
//! exports (pola's peer: which local objects each session holds), built
//! from the `Event::ExportDropped` events it polls. Those events are
//! queued: a batch of bytes can free an export (`op:gc-exports`) while an
//! earlier message of the same batch (a `fetch`) makes the local side
//! export the same object again before it has polled the drop. The event
//! it then polls must not say "dropped" about an object the session
//! exports once more, or the local side forgets the object while the
//! peer still holds it (and later messages find "unknown object").

use pola_captp::locator::Swiss;
use pola_captp::{CapRef, Dialect, Event, ImportPosition, LocalId, LocalTarget, Session};
use pola_syrup::Value;

use crate::sim::Pair;

const MINT: LocalId = LocalId(10);

/// Every message `s` has queued, concatenated (one write on a stream).
fn one_write(s: &mut Session) -> Vec<u8> {
    std::iter::from_fn(|| s.poll_transmit()).flatten().collect()
}

/// Fetches `swiss` from b, whose local side answers with MINT.
fn fetch_mint(p: &mut Pair) -> ImportPosition {
    let q = p.a.fetch(&Swiss::new(b"mint".to_vec())).unwrap();
    let (_, eb) = p.run();
    for e in eb {
        if let Event::Fetch { reply, .. } = e {
            p.b.resolve(reply.unwrap(), Ok(Value::Ref(CapRef::Local(MINT))))
                .unwrap();
        }
    }
    let (ea, _) = p.run();
    let got = ea.into_iter().find_map(|e| match e {
        Event::Answer {
            question,
            result: Ok(Value::Ref(CapRef::Import(i))),
        } if question == q => Some(i),
        _ => None,
    });
    p.a.drop_question(q).unwrap();
    got.expect("the fetch is answered with an import")
}

/// The exact interleaving: a releases its import of the mint and fetches
/// the mint again; both messages reach b in one batch (fetch first, as a
/// driver that lets GC reports ride with its next message sends them). b's
/// local side polls the fetch and answers with the mint (exported again)
/// before it polls what the GC report did. It must then never hear that
/// the mint was dropped while a still holds it, and a's next call on its
/// new import reaches the mint.
#[test]
fn a_gc_report_racing_a_new_export_of_the_same_object_does_not_drop_it() {
    for d in [Dialect::Current, Dialect::TestSuite] {
        let mut p = Pair::new(d, 1, 2);
        let first = fetch_mint(&mut p);
        for round in 0..5 {
            let old = if round == 0 {
                first
            } else {
                fetch_mint(&mut p)
            };
            p.a.drop_import(old).unwrap();
            let q = p.a.fetch(&Swiss::new(b"mint".to_vec())).unwrap();
            let batch = one_write(&mut p.a);
            p.b.handle_bytes(&batch).unwrap();

            // b's local side, one event at a time, as a driver does.
            let mut exported = true; // its record: does the session export MINT?
            while let Some(e) = p.b.poll_event() {
                match e {
                    Event::Fetch { reply, .. } => {
                        p.b.resolve(reply.unwrap(), Ok(Value::Ref(CapRef::Local(MINT))))
                            .unwrap();
                        exported = true;
                    }
                    Event::ExportDropped { local } => {
                        assert_eq!(local, MINT);
                        exported = false;
                    }
                    Event::AnswerDropped { .. } => {}
                    other => panic!("unexpected {other:?}"),
                }
            }
            // b sent the mint again, so its session exports it; its local
            // side's record must agree.
            assert_eq!(p.b.table_sizes().exports, 2, "bootstrap and the mint");
            assert!(
                exported,
                "{d:?} round {round}: b's local side heard the mint was dropped \
                 although its session exports it again"
            );

            // a gets the answer and calls the mint through its new import.
            let (ea, eb) = p.run();
            assert!(
                eb.iter().all(|e| matches!(e, Event::AnswerDropped { .. })),
                "{eb:?}"
            );
            let new = ea
                .into_iter()
                .find_map(|e| match e {
                    Event::Answer {
                        question,
                        result: Ok(Value::Ref(CapRef::Import(i))),
                    } if question == q => Some(i),
                    _ => None,
                })
                .expect("the second fetch is answered with an import");
            p.a.drop_question(q).unwrap();
            p.a.deliver_only(&CapRef::Import(new), vec![Value::sym("balance")])
                .unwrap();
            let (_, eb) = p.run();
            assert!(
                eb.iter().any(|e| matches!(
                    e,
                    Event::Deliver {
                        target: LocalTarget::Object(MINT),
                        ..
                    }
                )),
                "{eb:?}"
            );
            // Releasing the new import does drop the mint, once.
            p.a.drop_import(new).unwrap();
            let (_, eb) = p.run();
            let drops = eb
                .iter()
                .filter(|e| **e == Event::ExportDropped { local: MINT })
                .count();
            assert_eq!(drops, 1, "{eb:?}");
            assert_eq!(p.b.table_sizes().exports, 1, "the bootstrap object only");
            assert!(!p.a.is_terminated() && !p.b.is_terminated());
        }
    }
}

/// The drops b's local side hears of, in order.
fn drops(events: &[Event]) -> Vec<LocalId> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::ExportDropped { local } => Some(*local),
            _ => None,
        })
        .collect()
}

/// Without the race the drop is still reported: a releases, b polls the
/// drop, and only then does a fetch again (the mint is exported afresh).
#[test]
fn a_drop_polled_before_the_next_export_is_reported() {
    let mut p = Pair::new(Dialect::Current, 1, 2);
    let old = fetch_mint(&mut p);
    p.a.drop_import(old).unwrap();
    let (_, eb) = p.run();
    assert_eq!(drops(&eb), vec![MINT]);
    let new = fetch_mint(&mut p);
    p.a.drop_import(new).unwrap();
    let (_, eb) = p.run();
    assert_eq!(drops(&eb), vec![MINT]);
    assert_eq!(p.b.table_sizes().exports, 1);
}

/// One local object exported both as an object and as a promise (a vat
/// promise that settled between two sends): releasing one of the two
/// exports must not tell the local side the object is dropped while the
/// other is still held.
#[test]
fn releasing_one_flavour_of_an_export_keeps_the_other() {
    let mut p = Pair::new(Dialect::Current, 1, 2);
    let obj = fetch_mint(&mut p);
    let q =
        p.a.deliver(&CapRef::Import(obj), vec![Value::sym("both")])
            .unwrap();
    let (_, eb) = p.run();
    let reply = eb
        .into_iter()
        .find_map(|e| match e {
            Event::Deliver { reply, .. } => reply,
            _ => None,
        })
        .unwrap();
    const P: LocalId = LocalId(11);
    p.b.resolve(
        reply,
        Ok(Value::List(vec![
            Value::Ref(CapRef::Local(P)),
            Value::Ref(CapRef::LocalPromise(P)),
        ])),
    )
    .unwrap();
    let (ea, _) = p.run();
    let imports: Vec<ImportPosition> = ea
        .into_iter()
        .find_map(|e| match e {
            Event::Answer {
                question,
                result: Ok(Value::List(l)),
            } if question == q => Some(
                l.into_iter()
                    .map(|v| match v {
                        Value::Ref(CapRef::Import(i) | CapRef::ImportPromise(i)) => i,
                        other => panic!("{other:?}"),
                    })
                    .collect(),
            ),
            _ => None,
        })
        .unwrap();
    assert_eq!(imports.len(), 2);
    p.a.drop_import(imports[0]).unwrap();
    let (_, eb) = p.run();
    assert!(
        !eb.contains(&Event::ExportDropped { local: P }),
        "the promise export still holds it: {eb:?}"
    );
    p.a.drop_import(imports[1]).unwrap();
    let (_, eb) = p.run();
    assert!(eb.contains(&Event::ExportDropped { local: P }), "{eb:?}");
}
