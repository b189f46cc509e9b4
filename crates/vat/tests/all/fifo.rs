//! FIFO order: per vat, and between a pair of vats.

use pola_vat::{Val, Vat, error, from_fn};

use crate::support::{Log, T, list_ints, n};

#[test]
fn messages_from_outside_arrive_in_order() {
    let vat = Vat::new("fifo");
    let log = vat.spawn(Log::default());
    for i in 0..2000 {
        vat.send_only(&log, "add", vec![n(i)]);
    }
    let got = vat.block_on(&vat.send(&log, "get", vec![]), T).unwrap();
    assert_eq!(list_ints(&got), (0..2000).collect::<Vec<_>>());
    vat.shutdown();
}

#[test]
fn messages_between_vats_arrive_in_order() {
    let a = Vat::new("fifo-a");
    let b = Vat::new("fifo-b");
    let log = b.spawn(Log::default());
    let l = log.clone();
    // Each turn of the sender sends a burst; bursts and messages stay in order.
    let sender = a.spawn(from_fn(move |cx, _m, args| {
        let base = args
            .first()
            .and_then(Val::as_i64)
            .ok_or_else(|| error("arg"))?;
        for i in 0..100 {
            cx.send_only(&l, "add", vec![n(base * 100 + i)]);
        }
        Ok(Val::null())
    }));
    for burst in 0..30 {
        a.send_only(&sender, "go", vec![n(burst)]);
    }
    // A marker sent after the bursts, from the same vat, lands after them.
    let done = a.send(&sender, "go", vec![n(30)]);
    a.block_on(&done, T).unwrap();
    let l = log.clone();
    let fin = a.run(move |cx| Ok(Val::Ref(cx.send(&l, "get", vec![]))));
    let got = a.block_on(&fin, T).unwrap();
    assert_eq!(list_ints(&got), (0..3100).collect::<Vec<_>>());
    a.shutdown();
    b.shutdown();
}

#[test]
fn batched_posts_wait_for_the_batch_then_arrive_in_order() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let vat = Vat::new("batched");
    let log = vat.spawn(Log::default());
    let hits = Arc::new(AtomicUsize::new(0));
    let count = hits.clone();
    let counter = vat.spawn(from_fn(move |_turn, _method, _args| {
        count.fetch_add(1, Ordering::SeqCst);
        Ok(Val::null())
    }));
    vat.block_on(&vat.send(&counter, "hit", vec![]), T).unwrap();
    pola_vat::batch_posts(|| {
        for i in 0..5 {
            vat.send_only(&log, "add", vec![n(i)]);
            vat.send_only(&counter, "hit", vec![]);
        }
        // Held back: the vat has nothing to run while the batch is open.
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    });
    let got = vat.block_on(&vat.send(&log, "get", vec![]), T).unwrap();
    assert_eq!(list_ints(&got), (0..5).collect::<Vec<_>>());
    assert_eq!(hits.load(Ordering::SeqCst), 6);
    vat.shutdown();
}
