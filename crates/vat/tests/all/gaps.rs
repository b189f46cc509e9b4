//! Gaps found by the CapTP peer: `Vat::promise` inside a turn, release of far
//! references when a vat goes idle, keyed remote refs, method-less messages.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use pola_vat::{Message, Ref, Remote, Resolver, Val, Vat, error, from_fn};

use crate::support::{Counter, T, int};

/// A `Remote` that records when it is dropped.
struct Probe(Arc<AtomicBool>);

impl Remote for Probe {
    fn deliver(&self, _message: Message, resolver: Option<Resolver>) {
        if let Some(r) = resolver {
            r.break_now(error("probe"));
        }
    }
    fn is_promise(&self) -> bool {
        false
    }
    fn listen(&self, resolver: Resolver) {
        resolver.break_now(error("probe"));
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[test]
fn vat_promise_made_inside_a_turn_is_usable_in_that_turn() {
    let vat = Vat::new("inside");
    let counter = vat.spawn(Counter(41));
    let handle = vat.clone();
    let c = counter.clone();
    let answer = vat.run(move |cx| {
        // A promise made through the vat handle, not `Turn::promise`: sent
        // to and resolved within the same turn.
        let (p, r) = handle.promise();
        let got = cx.send(&p, "inc", vec![]);
        cx.resolve(&r, Val::Ref(c.clone()));
        Ok(Val::Ref(got))
    });
    assert_eq!(int(&vat.block_on(&answer, T).unwrap()), 42);
    // And one whose resolver leaves the turn and is used from outside.
    let handle = vat.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let seen = vat.run(move |cx| {
        let (p, r) = handle.promise();
        let _ = tx.send(r);
        Ok(Val::Ref(cx.when(&p, |_cx, v| {
            Ok(Val::int(v?.as_i64().unwrap_or(0) + 1))
        })))
    });
    let resolver = rx.recv_timeout(T).unwrap();
    resolver.resolve_now(Val::int(9i64));
    assert_eq!(int(&vat.block_on(&seen, T).unwrap()), 10);
    vat.shutdown();
}

#[test]
fn idle_vat_releases_far_refs_held_by_dead_promises() {
    let vat = Vat::new("idle");
    let dropped = Arc::new(AtomicBool::new(false));
    let far = Ref::remote(Arc::new(Probe(dropped.clone())));
    let (p, r) = vat.promise();
    r.resolve_now(Val::Ref(far));
    drop(r);
    // Settled: the vat's table now holds the only path to the probe.
    let got = vat.block_on(&p, T).unwrap();
    drop(got);
    drop(p);
    assert!(!dropped.load(Ordering::SeqCst));
    // Any event makes the vat go idle again afterwards; far fewer than the
    // thousands of inserts a size-triggered sweep needs.
    let ping = vat.spawn(from_fn(|_cx, _m, _a| Ok(Val::null())));
    let done = vat.send(&ping, "ping", vec![]);
    vat.block_on(&done, T).unwrap();
    let deadline = Instant::now() + T;
    while !dropped.load(Ordering::SeqCst) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(
        dropped.load(Ordering::SeqCst),
        "the far ref was not released"
    );
    vat.shutdown();
}

#[test]
fn keyed_remote_refs_share_identity_per_remote() {
    let flag = Arc::new(AtomicBool::new(false));
    let a: Arc<dyn Remote> = Arc::new(Probe(flag.clone()));
    let b: Arc<dyn Remote> = Arc::new(Probe(flag));
    let a1 = Ref::remote_keyed(a.clone());
    let a2 = Ref::remote_keyed(a.clone());
    let b1 = Ref::remote_keyed(b);
    assert_eq!(a1, a2);
    let hash = |r: &Ref| {
        use std::hash::BuildHasher;
        std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default()
            .hash_one(r)
    };
    assert_eq!(hash(&a1), hash(&a2));
    assert_ne!(a1, b1);
    // Unkeyed wrapping of the same remote is a different identity.
    assert_ne!(a1, Ref::remote(a));
}

#[test]
fn empty_method_means_no_method_symbol() {
    let m = Message::plain(vec![Val::int(1i64)]);
    assert_eq!(m.method_name(), None);
    assert_eq!(Message::new("go", vec![]).method_name(), Some("go"));
}

/// Settling a promise of a vat that has shut down is a no-op: it used to
/// post the settlement back to the stopped vat, which abandoned it by
/// posting it again, until the thread's stack overflowed (seen when a
/// peer's answer raced the shutdown of the vat that asked).
#[test]
fn settling_a_stopped_vats_promise_is_dropped() {
    let vat = pola_vat::Vat::new("stopped");
    let (promise, resolver) = vat.promise();
    vat.shutdown();
    resolver.settle_now(Ok(pola_vat::Val::int(1i64)));
    drop(promise);
}
