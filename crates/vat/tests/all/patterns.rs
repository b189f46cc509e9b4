//! Facets, revocable forwarders, sealer/unsealer, membranes.

use pola_vat::patterns::{Facet, brand, membrane, revocable};
use pola_vat::{Ref, Val, Vat, WaitError, error, error_message, from_fn};

use crate::support::{Counter, Log, T, as_ref, int, list_ints, n};

fn reason(r: Result<Val, WaitError>) -> String {
    match r {
        Err(e) => e.reason().and_then(error_message).unwrap_or("?").to_owned(),
        Ok(v) => panic!("expected a broken promise, got {v:?}"),
    }
}

fn pair(v: &Vat, p: &Ref) -> (Ref, Ref) {
    let l = v.block_on(p, T).unwrap();
    let l = l.as_list().unwrap();
    (as_ref(&l[0]), as_ref(&l[1]))
}

#[test]
fn facet_exposes_only_its_methods() {
    let home = Vat::new("facet-home");
    let other = Vat::new("facet-other");
    let counter = home.spawn(Counter(3));
    let near_facet = home.spawn(Facet::new(counter.clone(), &["get"]));
    // Used from another vat: the facet is far there, the counter near to it.
    assert_eq!(
        int(&other
            .block_on(&other.send(&near_facet, "get", vec![]), T)
            .unwrap()),
        3
    );
    assert_eq!(
        reason(other.block_on(&other.send(&near_facet, "inc", vec![]), T)),
        "method not exposed by this facet"
    );
    // A facet in another vat than its target forwards eventually.
    let far_facet = other.spawn(Facet::new(counter.clone(), &["inc"]));
    assert_eq!(
        int(&other
            .block_on(&other.send(&far_facet, "inc", vec![]), T)
            .unwrap()),
        4
    );
    assert_eq!(
        reason(other.block_on(&other.send(&far_facet, "get", vec![]), T)),
        "method not exposed by this facet"
    );
    home.shutdown();
    other.shutdown();
}

#[test]
fn revoked_forwarder_breaks_every_send() {
    let home = Vat::new("rev-home");
    let far = Vat::new("rev-far");
    let counter = far.spawn(Counter(0));
    let c = counter.clone();
    let (fwd, rev) = pair(
        &home,
        &home.run(move |cx| {
            let (f, r) = revocable(cx, c);
            Ok(Val::List(vec![Val::Ref(f), Val::Ref(r)]))
        }),
    );
    assert_eq!(
        int(&home.block_on(&home.send(&fwd, "inc", vec![]), T).unwrap()),
        1
    );
    // Messages queued on a promise for the forwarder, not yet delivered.
    let (p, r) = home.promise();
    let queued: Vec<Ref> = (0..5).map(|_| home.send(&p, "inc", vec![])).collect();
    home.block_on(&home.send(&rev, "revoke", vec![]), T)
        .unwrap();
    r.resolve_now(Val::Ref(fwd.clone()));
    for q in &queued {
        assert_eq!(reason(home.block_on(q, T)), "revoked");
    }
    assert_eq!(
        reason(home.block_on(&home.send(&fwd, "get", vec![]), T)),
        "revoked"
    );
    // Only the one message before revocation got through.
    assert_eq!(
        int(&far.block_on(&far.send(&counter, "get", vec![]), T).unwrap()),
        1
    );
    home.shutdown();
    far.shutdown();
}

#[test]
fn revocation_stops_messages_held_for_an_unsettled_target() {
    let home = Vat::new("rev2-home");
    let (target, resolve_target) = home.promise();
    let t = target.clone();
    let (fwd, rev) = pair(
        &home,
        &home.run(move |cx| {
            let (f, r) = revocable(cx, t);
            Ok(Val::List(vec![Val::Ref(f), Val::Ref(r)]))
        }),
    );
    let held: Vec<Ref> = (0..3).map(|_| home.send(&fwd, "inc", vec![])).collect();
    home.block_on(&home.send(&rev, "revoke", vec![]), T)
        .unwrap();
    let counter = home.spawn(Counter(0));
    resolve_target.resolve_now(Val::Ref(counter.clone()));
    for h in &held {
        assert_eq!(reason(home.block_on(h, T)), "revoked");
    }
    assert_eq!(
        int(&home
            .block_on(&home.send(&counter, "get", vec![]), T)
            .unwrap()),
        0
    );
    // Without revocation the held messages do arrive, in order.
    let (target, resolve_target) = home.promise();
    let t = target.clone();
    let (fwd, _rev) = pair(
        &home,
        &home.run(move |cx| {
            let (f, r) = revocable(cx, t);
            Ok(Val::List(vec![Val::Ref(f), Val::Ref(r)]))
        }),
    );
    let log = home.spawn(Log::default());
    let sent: Vec<Ref> = (0..4).map(|i| home.send(&fwd, "add", vec![n(i)])).collect();
    resolve_target.resolve_now(Val::Ref(log.clone()));
    for s in &sent {
        home.block_on(s, T).unwrap();
    }
    let got = home.block_on(&home.send(&log, "get", vec![]), T).unwrap();
    assert_eq!(list_ints(&got), [0, 1, 2, 3]);
    home.shutdown();
}

#[test]
fn sealed_box_opens_only_with_its_unsealer() {
    let a = Vat::new("brand-a");
    let b = Vat::new("brand-b");
    let (sealer, unsealer) = pair(
        &a,
        &a.run(|cx| {
            let (s, u) = brand(cx);
            Ok(Val::List(vec![Val::Ref(s), Val::Ref(u)]))
        }),
    );
    let (_sealer2, unsealer2) = pair(
        &a,
        &a.run(|cx| {
            let (s, u) = brand(cx);
            Ok(Val::List(vec![Val::Ref(s), Val::Ref(u)]))
        }),
    );
    // Seal from vat b; the box travels as a promise and is unsealed there.
    let sealed = b.send(&sealer, "seal", vec![Val::str("secret")]);
    assert_eq!(
        b.block_on(
            &b.send(&unsealer, "unseal", vec![Val::Ref(sealed.clone())]),
            T
        )
        .unwrap(),
        Val::str("secret")
    );
    // The other brand's unsealer refuses it.
    assert_eq!(
        reason(b.block_on(
            &b.send(&unsealer2, "unseal", vec![Val::Ref(sealed.clone())]),
            T
        )),
        "not sealed by this brand"
    );
    // An object pretending to be a box is refused; so is plain data.
    let fake = b.spawn(from_fn(|_cx, _m, _a| Ok(Val::str("secret"))));
    assert_eq!(
        reason(b.block_on(&b.send(&unsealer, "unseal", vec![Val::Ref(fake)]), T)),
        "not sealed by this brand"
    );
    assert_eq!(
        reason(b.block_on(&b.send(&unsealer, "unseal", vec![Val::str("box")]), T)),
        "not sealed by this brand"
    );
    // The box itself reveals nothing.
    assert!(b.block_on(&b.send(&sealed, "contents", vec![]), T).is_err());
    a.shutdown();
    b.shutdown();
}

/// Inside the membrane: hands out a child counter, remembers a listener.
struct Inner {
    child: Ref,
    listener: Option<Ref>,
}

impl pola_vat::Object for Inner {
    fn receive(&self, cx: &mut pola_vat::Turn<'_>, m: &str, args: Vec<Val>) -> pola_vat::Outcome {
        match m {
            "child" => Ok(Val::Ref(self.child.clone())),
            "same_child" => Ok(Val::Bool(
                args.first() == Some(&Val::Ref(self.child.clone())),
            )),
            "remember" => {
                let l = args
                    .first()
                    .and_then(Val::as_ref)
                    .cloned()
                    .ok_or_else(|| error("arg"))?;
                cx.become_(Inner {
                    child: self.child.clone(),
                    listener: Some(l),
                })?;
                Ok(Val::null())
            }
            "poke" => {
                let l = self
                    .listener
                    .clone()
                    .ok_or_else(|| error("nobody to poke"))?;
                Ok(Val::Ref(cx.send(&l, "add", vec![n(7)])))
            }
            _ => Err(error("no such method")),
        }
    }
}

#[test]
fn membrane_wraps_the_subgraph_and_revokes_it_at_once() {
    let inside = Vat::new("membrane-inside");
    let outside = Vat::new("membrane-outside");
    let child = inside.spawn(Counter(0));
    let service = inside.spawn(Inner {
        child: child.clone(),
        listener: None,
    });
    let s = service.clone();
    let (wrapped, revoker) = pair(
        &inside,
        &inside.run(move |cx| {
            let (w, r) = membrane(cx, s);
            Ok(Val::List(vec![Val::Ref(w), Val::Ref(r)]))
        }),
    );
    // A ref obtained through the membrane is a wrapper, not the child.
    let got = as_ref(
        &outside
            .block_on(&outside.send(&wrapped, "child", vec![]), T)
            .unwrap(),
    );
    assert_ne!(got, child);
    assert_eq!(
        int(&outside
            .block_on(&outside.send(&got, "inc", vec![]), T)
            .unwrap()),
        1
    );
    // The same inner ref always gets the same wrapper.
    let again = as_ref(
        &outside
            .block_on(&outside.send(&wrapped, "child", vec![]), T)
            .unwrap(),
    );
    assert_eq!(got, again);
    // Passing the wrapper back in unwraps it (identity is kept).
    let same = outside
        .block_on(
            &outside.send(&wrapped, "same_child", vec![Val::Ref(got.clone())]),
            T,
        )
        .unwrap();
    assert_eq!(same, Val::Bool(true));
    // Refs passed in are wrapped too: the inside keeps a wrapper of the log.
    let log = outside.spawn(Log::default());
    outside
        .block_on(
            &outside.send(&wrapped, "remember", vec![Val::Ref(log.clone())]),
            T,
        )
        .unwrap();
    // (poke the service directly, not through the membrane)
    outside
        .block_on(&outside.send(&service, "poke", vec![]), T)
        .unwrap();
    assert_eq!(
        list_ints(
            &outside
                .block_on(&outside.send(&log, "get", vec![]), T)
                .unwrap()
        ),
        [7]
    );

    outside
        .block_on(&outside.send(&revoker, "revoke", vec![]), T)
        .unwrap();
    assert_eq!(
        reason(outside.block_on(&outside.send(&wrapped, "child", vec![]), T)),
        "revoked"
    );
    // The ref obtained through the membrane is revoked too.
    assert_eq!(
        reason(outside.block_on(&outside.send(&got, "inc", vec![]), T)),
        "revoked"
    );
    // And the inside's wrapper of the log no longer reaches it.
    assert_eq!(
        reason(outside.block_on(&outside.send(&service, "poke", vec![]), T)),
        "revoked"
    );
    assert_eq!(
        list_ints(
            &outside
                .block_on(&outside.send(&log, "get", vec![]), T)
                .unwrap()
        ),
        [7]
    );
    // The child itself is untouched and was incremented exactly once.
    assert_eq!(
        int(&inside
            .block_on(&inside.send(&child, "get", vec![]), T)
            .unwrap()),
        1
    );
    inside.shutdown();
    outside.shutdown();
}
