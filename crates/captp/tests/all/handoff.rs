//! Third-party handoffs across three sessions (DIGEST section 13):
//! G (gifter) passes R (receiver) a reference to an object on E (exporter).

use bytes::Bytes;
use pola_captp::locator::Swiss;
use pola_captp::{
    CapRef, Dialect, Event, GiftTicket, ImportPosition, LocalId, LocalTarget, Misuse,
    QuestionPosition, Reply, SessionError,
};
use pola_syrup::Value;

use crate::sim::Pair;

struct World {
    /// a = G, b = E
    ge: Pair,
    /// a = G, b = R
    gr: Pair,
    /// a = R, b = E
    re: Pair,
}

const CAROL: LocalId = LocalId(7);
const INBOX: LocalId = LocalId(1);

/// `p.a` fetches swiss from `p.b`, whose vat answers with `id`.
fn fetch(p: &mut Pair, id: LocalId) -> ImportPosition {
    let q = p.a.fetch(&Swiss::new(&b"s"[..])).unwrap();
    let (_, eb) = p.run();
    for e in eb {
        if let Event::Fetch { reply, .. } = e {
            p.b.resolve(reply.unwrap(), Ok(Value::Ref(CapRef::Local(id))))
                .unwrap();
        }
    }
    let (ea, _) = p.run();
    ea.iter()
        .find_map(|e| match e {
            Event::Answer {
                question,
                result: Ok(Value::Ref(CapRef::Import(i))),
            } if *question == q => Some(*i),
            _ => None,
        })
        .unwrap()
}

fn world(d: Dialect) -> World {
    World {
        ge: Pair::named(d, 1, "gifter", 2, "exporter"),
        gr: Pair::named(d, 3, "gifter", 4, "receiver"),
        re: Pair::named(d, 5, "receiver", 6, "exporter"),
    }
}

/// G gives R a reference to carol; returns the certificate R received.
fn give(w: &mut World, deposit_first: bool) -> Box<pola_captp::handoff::SignedGive> {
    give_keep(w, deposit_first).0
}

/// As `give`, also returning G's import of carol.
fn give_keep(
    w: &mut World,
    deposit_first: bool,
) -> (Box<pola_captp::handoff::SignedGive>, ImportPosition) {
    let carol = fetch(&mut w.ge, CAROL);
    let inbox = fetch(&mut w.gr, INBOX);
    let receiver_key = *w.gr.a.peer().unwrap().key();
    let signed =
        w.ge.a
            .give(carol, receiver_key, Bytes::from(vec![0x42; 32]))
            .unwrap();
    if deposit_first {
        w.ge.run();
        assert_eq!(w.ge.b.table_sizes().gifts, 1);
    }
    w.gr.a
        .deliver_only(
            &CapRef::Import(inbox),
            vec![
                Value::sym("take"),
                Value::Ref(CapRef::Gift(Box::new(signed))),
            ],
        )
        .unwrap();
    let (_, er) = w.gr.run();
    let [
        Event::Deliver {
            target: LocalTarget::Object(INBOX),
            args,
            ..
        },
    ] = er.as_slice()
    else {
        panic!("{er:?}")
    };
    match &args[1] {
        Value::Ref(CapRef::Gift(g)) => (g.clone(), carol),
        other => panic!("{other:?}"),
    }
}

/// R redeems `gift` on R–E; returns the question.
fn withdraw(w: &mut World, gift: pola_captp::handoff::SignedGive) -> QuestionPosition {
    let receive = w.re.a.handoff_receive(gift).unwrap();
    let signed = w.gr.b.sign_handoff_receive(receive).unwrap();
    w.re.a.withdraw_gift(signed).unwrap()
}

/// E's vat: routes a withdrawal to the G–E session; returns the reply if
/// the gift is parked.
fn exporter_handles(w: &mut World, events: Vec<Event>) -> Vec<(u64, Reply)> {
    let mut parked = Vec::new();
    for e in events {
        if let Event::WithdrawGift { request, reply } = e {
            let reply = reply.unwrap();
            assert_eq!(&request.give().session, w.ge.b.peer().unwrap().session_id());
            match w.ge.b.redeem_gift(request, GiftTicket(77)) {
                Ok(Some(target)) => w.re.b.resolve(reply, Ok(Value::Ref(target))).unwrap(),
                Ok(None) => parked.push((77, reply)),
                Err(_) => {
                    w.re.b
                        .resolve(reply, Err(Value::error("handoff failed")))
                        .unwrap()
                }
            }
        }
    }
    parked
}

fn answer(events: &[Event], q: QuestionPosition) -> Result<Value<CapRef>, Value<CapRef>> {
    events
        .iter()
        .find_map(|e| match e {
            Event::Answer { question, result } if *question == q => Some(result.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no answer in {events:?}"))
}

#[test]
fn three_party_handoff_then_replay_is_refused() {
    for d in [Dialect::TestSuite, Dialect::Current] {
        let mut w = world(d);
        let gift = give(&mut w, true);
        let receive = w.re.a.handoff_receive((*gift).clone()).unwrap();
        assert_eq!(receive.handoff_count, 0);
        let signed = w.gr.b.sign_handoff_receive(receive).unwrap();
        let q = w.re.a.withdraw_gift(signed.clone()).unwrap();
        let (_, ee) = w.re.run();
        assert!(exporter_handles(&mut w, ee).is_empty());
        let (er, _) = w.re.run();
        let Ok(Value::Ref(CapRef::Import(carol_at_r))) = answer(&er, q) else {
            panic!("{er:?}")
        };
        assert_eq!(w.ge.b.table_sizes().gifts, 0, "each gift handed out once");
        // R can now talk to carol directly on R–E.
        w.re.a
            .deliver_only(&CapRef::Import(carol_at_r), vec![Value::sym("hi")])
            .unwrap();
        let (_, ee) = w.re.run();
        assert!(
            matches!(
                ee.as_slice(),
                [Event::Deliver {
                    target: LocalTarget::Object(CAROL),
                    ..
                }]
            ),
            "{ee:?}"
        );

        // Replaying the same certificate (same handoff count) is refused.
        let q2 = w.re.a.withdraw_gift(signed).unwrap();
        let (er, ee) = w.re.run();
        assert!(
            !ee.iter().any(|e| matches!(e, Event::WithdrawGift { .. })),
            "{ee:?}"
        );
        assert!(answer(&er, q2).is_err());
        // A fresh count for an already-withdrawn gift parks (never pays twice).
        let q3 = withdraw(&mut w, (*gift).clone());
        let (_, ee) = w.re.run();
        assert_eq!(exporter_handles(&mut w, ee).len(), 1);
        let _ = q3;
        assert!(!w.re.a.is_terminated() && !w.re.b.is_terminated());
    }
}

#[test]
fn withdrawal_before_deposit_parks_until_the_gift_arrives() {
    let mut w = world(Dialect::Current);
    let gift = give(&mut w, false);
    let q = withdraw(&mut w, *gift);
    let (_, ee) = w.re.run();
    let mut parked = exporter_handles(&mut w, ee);
    assert_eq!(parked.len(), 1);
    // Now the deposit lands on G–E.
    let (_, eg) = w.ge.run();
    let target = eg
        .into_iter()
        .find_map(|e| match e {
            Event::GiftReady {
                ticket: GiftTicket(77),
                target,
            } => Some(target),
            _ => None,
        })
        .unwrap();
    assert_eq!(target, CapRef::Local(CAROL));
    let (_, reply) = parked.pop().unwrap();
    w.re.b.resolve(reply, Ok(Value::Ref(target))).unwrap();
    let (er, _) = w.re.run();
    assert!(matches!(answer(&er, q), Ok(Value::Ref(CapRef::Import(_)))));
}

#[test]
fn forged_certificates_are_refused() {
    let mut w = world(Dialect::Current);
    let gift = give(&mut w, true);

    // 1. A receive signed by someone other than the named receiver.
    let receive = w.re.a.handoff_receive((*gift).clone()).unwrap();
    let wrong = receive
        .clone()
        .sign(&pola_captp::crypto::SessionKeys::from_seed([9; 32]));
    let q = w.re.a.withdraw_gift(wrong).unwrap();
    let (er, ee) = w.re.run();
    assert!(
        !ee.iter().any(|e| matches!(e, Event::WithdrawGift { .. })),
        "{ee:?}"
    );
    assert!(answer(&er, q).is_err());

    // 2. A give whose gifter signature does not verify (tampered gift id):
    // R signs it faithfully, E–R passes it, G–E refuses it.
    let mut tampered = (*gift).clone();
    tampered.give.gift_id = pola_captp::handoff::GiftId::Bytes(Bytes::from(vec![0x43; 32]));
    let receive = w.re.a.handoff_receive(tampered).unwrap();
    let signed = w.gr.b.sign_handoff_receive(receive).unwrap();
    let q = w.re.a.withdraw_gift(signed).unwrap();
    let (_, ee) = w.re.run();
    let request = ee
        .into_iter()
        .find_map(|e| match e {
            Event::WithdrawGift { request, .. } => Some(request),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        w.ge.b
            .redeem_gift(request.clone(), GiftTicket(1))
            .unwrap_err(),
        SessionError::Misuse(Misuse::Handoff("bad give signature"))
    );
    // 3. The right certificate presented on the wrong gifter session.
    assert!(w.gr.b.redeem_gift(request, GiftTicket(1)).is_err());
    let _ = q;
    // The real gift is still there for the real withdrawal.
    assert_eq!(w.ge.b.table_sizes().gifts, 1);

    // 4. A receiver cannot sign for a gift addressed to someone else.
    let receive = w.re.a.handoff_receive((*gift).clone()).unwrap();
    assert!(w.re.a.sign_handoff_receive(receive).is_err());
}

#[test]
fn gifter_session_ending_breaks_parked_withdrawals() {
    let mut w = world(Dialect::Current);
    let gift = give(&mut w, false);
    let _ = withdraw(&mut w, *gift);
    let (_, ee) = w.re.run();
    assert_eq!(exporter_handles(&mut w, ee).len(), 1);
    w.ge.a.abort("gifter leaves").unwrap();
    let (_, eg) = w.ge.run();
    assert!(
        eg.contains(&Event::GiftWithdrawalBroken {
            ticket: GiftTicket(77)
        }),
        "{eg:?}"
    );
}

#[test]
fn a_deposited_gift_outlives_the_gifters_reference() {
    let mut w = world(Dialect::TestSuite);
    let (gift, carol) = give_keep(&mut w, true);
    // G lets go of carol right after depositing.
    w.ge.a.drop_import(carol).unwrap();
    let (_, eg) = w.ge.run();
    assert!(
        !eg.iter().any(|e| matches!(e, Event::ExportDropped { .. })),
        "{eg:?}"
    );
    assert_eq!(w.ge.b.table_sizes().exports, 1, "export gone, gift kept");
    let q = withdraw(&mut w, *gift);
    let (_, ee) = w.re.run();
    assert!(exporter_handles(&mut w, ee).is_empty());
    // Handed over: now G–E no longer holds carol.
    let eg: Vec<_> = std::iter::from_fn(|| w.ge.b.poll_event()).collect();
    assert!(
        eg.contains(&Event::ExportDropped { local: CAROL }),
        "{eg:?}"
    );
    let (er, _) = w.re.run();
    assert!(matches!(answer(&er, q), Ok(Value::Ref(CapRef::Import(_)))));
}

#[test]
fn crossed_hellos_pick_the_same_survivor_on_both_sides() {
    use pola_captp::endpoint::crossed_hellos_keep_outbound;
    let x = *crate::sim::session(Dialect::Current, 1, "a").public_id();
    let y = *crate::sim::session(Dialect::Current, 2, "b").public_id();
    // Peer 1's outbound connection is peer 2's inbound one and vice versa:
    // exactly one of the two connections survives, on both sides.
    let one_keeps_outbound = crossed_hellos_keep_outbound(&x, &y);
    let two_keeps_outbound = crossed_hellos_keep_outbound(&y, &x);
    assert_ne!(one_keeps_outbound, two_keeps_outbound);
}

#[test]
fn a_forged_withdrawal_does_not_burn_the_receivers_count() {
    let mut w = world(Dialect::TestSuite);
    let gift = give(&mut w, true);
    let receive = w.re.a.handoff_receive((*gift).clone()).unwrap();
    assert_eq!(receive.handoff_count, 0);
    // Someone signs count 0 with the wrong key first.
    let forged = receive
        .clone()
        .sign(&pola_captp::crypto::SessionKeys::from_seed([9; 32]));
    let q = w.re.a.withdraw_gift(forged).unwrap();
    let (er, _) = w.re.run();
    assert!(answer(&er, q).is_err());
    // The genuine certificate with count 0 still works.
    let genuine = w.gr.b.sign_handoff_receive(receive).unwrap();
    let q = w.re.a.withdraw_gift(genuine).unwrap();
    let (_, ee) = w.re.run();
    assert!(exporter_handles(&mut w, ee).is_empty());
    let (er, _) = w.re.run();
    assert!(matches!(answer(&er, q), Ok(Value::Ref(CapRef::Import(_)))));
}

#[test]
fn a_gift_cannot_be_sent_to_the_wrong_receiver() {
    let mut w = world(Dialect::Current);
    let carol = fetch(&mut w.ge, CAROL);
    // G builds a certificate for R but tries to send it to E instead.
    let receiver_key = *w.gr.a.peer().unwrap().key();
    let signed =
        w.ge.a
            .give(carol, receiver_key, Bytes::from(vec![1; 32]))
            .unwrap();
    let e_obj = fetch(&mut w.ge, LocalId(3));
    let err =
        w.ge.a
            .deliver_only(
                &CapRef::Import(e_obj),
                vec![Value::Ref(CapRef::Gift(Box::new(signed)))],
            )
            .unwrap_err();
    assert_eq!(
        err,
        SessionError::Misuse(Misuse::Handoff("gift addressed to another receiver"))
    );
}
