//! The same remote object received twice over CapTP is the same `Ref`;
//! sends made on the vat's own thread keep their order.

use std::sync::Arc;
use std::time::Duration;

use pola_netlayer::TcpTestingOnly;
use pola_peer::{Peer, PeerConfig};
use pola_syrup::Value;
use pola_vat::{Val, Vat, from_fn};

const T: Duration = Duration::from_secs(10);

#[test]
fn same_import_received_twice_gives_equal_refs() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (net_a, net_b) = rt.block_on(async {
        (
            TcpTestingOnly::bind("127.0.0.1", 0).await.unwrap(),
            TcpTestingOnly::bind("127.0.0.1", 0).await.unwrap(),
        )
    });
    let _in_runtime = rt.enter();
    let (vat_a, vat_b) = (Vat::new("a"), Vat::new("b"));
    let a = Peer::start(vat_a.clone(), vec![Arc::new(net_a)], PeerConfig::default()).unwrap();
    let b = Peer::start(vat_b.clone(), vec![Arc::new(net_b)], PeerConfig::default()).unwrap();

    let thing = vat_b.spawn(from_fn(|_cx, _m, _a| Ok(Value::str("thing"))));
    let other = vat_b.spawn(from_fn(|_cx, _m, _a| Ok(Value::str("other"))));
    let giver = vat_b.spawn(from_fn(move |_cx, m, _a| {
        Ok(Val::Ref(if m == "other" {
            other.clone()
        } else {
            thing.clone()
        }))
    }));
    let sturdy = b.mint_sturdyref(giver).unwrap();
    let far = a.enliven(sturdy);

    let first = vat_a.send(&far, "thing", vec![]);
    let first = vat_a.block_on(&first, T).unwrap();
    let second = vat_a.send(&far, "thing", vec![]);
    let second = vat_a.block_on(&second, T).unwrap();
    let third = vat_a.send(&far, "other", vec![]);
    let third = vat_a.block_on(&third, T).unwrap();
    let (Val::Ref(first), Val::Ref(second), Val::Ref(third)) = (first, second, third) else {
        panic!("answers are not references");
    };
    assert!(
        first.remote_target().is_some(),
        "{first:?} is not a far ref"
    );
    assert_eq!(first, second, "the same export arrived as two identities");
    assert_ne!(first, third);
    // Both still reach the object.
    let said = vat_a.send(&second, "hi", vec![]);
    assert_eq!(vat_a.block_on(&said, T).unwrap(), Value::str("thing"));

    rt.block_on(a.shutdown());
    rt.block_on(b.shutdown());
    vat_a.shutdown();
    vat_b.shutdown();
}

/// Sends made inside vat A go out through the vat-thread path (queued on
/// the vat's thread, written by the peer's driver): sends on one reference
/// still arrive in the order sent, and ones pipelined on answers not yet
/// back all arrive.
#[test]
fn sends_from_inside_a_vat_keep_their_order() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (net_a, net_b) = rt.block_on(async {
        (
            TcpTestingOnly::bind("127.0.0.1", 0).await.unwrap(),
            TcpTestingOnly::bind("127.0.0.1", 0).await.unwrap(),
        )
    });
    let _in_runtime = rt.enter();
    let (vat_a, vat_b) = (Vat::new("a"), Vat::new("b"));
    let a = Peer::start(vat_a.clone(), vec![Arc::new(net_a)], PeerConfig::default()).unwrap();
    let b = Peer::start(vat_b.clone(), vec![Arc::new(net_b)], PeerConfig::default()).unwrap();

    // B: a log that records every number it is sent, and hands out itself.
    let seen = Arc::new(std::sync::Mutex::new(Vec::<i64>::new()));
    let log_seen = seen.clone();
    let log = vat_b.spawn(from_fn(move |cx, m, a| {
        if m == "self" {
            return Ok(Val::Ref(cx.me().unwrap()));
        }
        let n = a.first().and_then(Val::as_i64).unwrap_or(-1);
        log_seen.lock().unwrap().push(n);
        Ok(Val::int(n))
    }));
    let far = a.enliven(b.mint_sturdyref(log).unwrap());
    // Establish the session first.
    let first = vat_a.send(&far, "add", vec![Val::int(0i64)]);
    vat_a.block_on(&first, T).unwrap();

    let f = far.clone();
    let last = vat_a.run(move |cx| {
        let mut last = None;
        for i in 1..=300i64 {
            if i % 3 == 0 {
                // Pipelined: to the log through an answer not yet back.
                let again = cx.send(&f, "self", vec![]);
                last = Some(cx.send(&again, "add", vec![Val::int(i)]));
            } else {
                last = Some(cx.send(&f, "add", vec![Val::int(i)]));
            }
        }
        Ok(Val::Ref(last.unwrap()))
    });
    let last = vat_a.block_on(&last, T).unwrap();
    assert_eq!(last, Val::int(300i64));
    let got = seen.lock().unwrap().clone();
    let direct: Vec<i64> = got.iter().copied().filter(|n| n % 3 != 0).collect();
    let expect: Vec<i64> = (0..=300).filter(|n| n % 3 != 0).collect();
    assert_eq!(direct, expect, "direct sends reordered");
    // Each pipelined send goes through a promise of its own: E-order
    // orders messages on one reference, not across references, so these
    // may arrive in any order (each waits for its own `self` answer), but
    // every one arrives once.
    let mut piped: Vec<i64> = got
        .iter()
        .copied()
        .filter(|n| n % 3 == 0 && *n > 0)
        .collect();
    piped.sort_unstable();
    assert_eq!(
        piped,
        (1..=100).map(|k| k * 3).collect::<Vec<_>>(),
        "pipelined sends lost or repeated"
    );

    rt.block_on(a.shutdown());
    rt.block_on(b.shutdown());
    vat_a.shutdown();
    vat_b.shutdown();
}
