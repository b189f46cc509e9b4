//! The queue quota: one object flooding its own vat costs a bounded queue,
//! gets a clear error, and the vat keeps serving others.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pola_vat::{Val, Vat, error_message, from_fn};

use crate::support::{Counter, T, int, n};

const LIMIT: usize = 1000;
/// Turns after which the flooder stops sending.
const STOP: u64 = 40_000;

#[test]
fn an_object_flooding_its_own_vat_is_refused_and_the_vat_keeps_serving() {
    let vat = Vat::new("flood");
    vat.set_queue_limit(LIMIT);
    let turns = Arc::new(AtomicU64::new(0));
    let t = turns.clone();
    // Each turn sends itself two messages (the queue doubles) and answers
    // with the second one's answer, so the outside caller's answer follows
    // a chain that ends where a send was refused.
    let flood = vat.spawn(from_fn(move |cx, _method, _args| {
        if t.fetch_add(1, Ordering::Relaxed) >= STOP {
            return Ok(Val::null());
        }
        let me = cx.me().expect("an object");
        let _first = cx.send(&me, "go", vec![]);
        Ok(Val::Ref(cx.send(&me, "go", vec![])))
    }));
    let counter = vat.spawn(Counter(0));
    let answer = vat.send(&flood, "go", vec![]);
    let got = vat.block_on(&answer, T);
    let err = got.expect_err("the flood should have been refused");
    assert_eq!(
        err.reason().and_then(error_message),
        Some("vat queue full"),
        "{err:?}"
    );
    // Meanwhile, and after, others are served.
    let c = vat.send(&counter, "add", vec![n(5)]);
    assert_eq!(int(&vat.block_on(&c, T).unwrap()), 5);
    // Once it stops, what was queued drains: never more than the limit
    // beyond the turns it ran (without the quota, as many again).
    let start = Instant::now();
    let mut last = turns.load(Ordering::Relaxed);
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let now = turns.load(Ordering::Relaxed);
        if now == last && now >= STOP {
            break;
        }
        last = now;
        assert!(start.elapsed() < T * 3, "the flood never ends");
    }
    let total = turns.load(Ordering::Relaxed);
    assert!(
        total <= STOP + 2 * LIMIT as u64,
        "{total} turns: the queue grew past its limit"
    );
    vat.shutdown();
}

#[test]
fn messages_piling_on_one_pending_promise_are_bounded() {
    let vat = Vat::new("pile");
    vat.set_queue_limit(LIMIT);
    let (promise, resolver) = vat.promise();
    let answers: Vec<_> = (0..LIMIT + 10)
        .map(|i| vat.send(&promise, "get", vec![n(i as i64)]))
        .collect();
    let counter = vat.spawn(Counter(0));
    resolver.resolve_now(Val::Ref(counter));
    let mut refused = 0;
    for a in &answers {
        match vat.block_on(a, T) {
            Ok(_) => {}
            Err(e) => {
                assert_eq!(e.reason().and_then(error_message), Some("vat queue full"));
                refused += 1;
            }
        }
    }
    // The ten past the limit at once; forwarding the rest to the object
    // when the promise resolves counts against the vat's queue too, so a
    // few more may be refused there, each with the same clear error.
    assert!((10..=20).contains(&refused), "{refused} refused");
    vat.shutdown();
}
