//! The same remote object received twice over CapTP is the same `Ref`.

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
