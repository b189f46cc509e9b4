//! Two and three pola peers over `tcp-testing-only` on 127.0.0.1: deliver,
//! deliver-only, pipelining, listen, sturdyrefs, GC, session reuse and a
//! three-peer handoff, each in both dialects and with the learning
//! default against each (both ways).

use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use pola_captp::Dialect;
use pola_captp::locator::SturdyRef;
use pola_netlayer::TcpTestingOnly;
use pola_peer::{Peer, PeerConfig, PeerStats};
use pola_syrup::Value;
use pola_test_peer::{CAR_FACTORY_BUILDER, ECHO, GREETER, PROMISE_RESOLVER};
use pola_testkit::{eventually, runtime};
use pola_vat::{Ref, Val, Vat, error_message, from_fn};

const T: Duration = Duration::from_secs(10);
/// (a's dialect, b's dialect): each forced dialect with itself, and the
/// learning default against itself and against each forced one, both ways
/// (a peer of either dialect must understand the default unprompted).
const DIALECTS: [(Dialect, Dialect); 8] = [
    (Dialect::Current, Dialect::Current),
    (Dialect::TestSuite, Dialect::TestSuite),
    (Dialect::Auto, Dialect::Auto),
    (Dialect::Auto, Dialect::TestSuite),
    (Dialect::TestSuite, Dialect::Auto),
    (Dialect::Auto, Dialect::Current),
    (Dialect::Current, Dialect::Auto),
    (Dialect::AutoSuite, Dialect::Auto),
];

struct Node {
    vat: Vat,
    peer: Peer,
}

impl Node {
    fn new(rt: &tokio::runtime::Runtime, dialect: Dialect) -> Node {
        let net = rt.block_on(TcpTestingOnly::bind("127.0.0.1", 0)).unwrap();
        let _guard = rt.enter();
        let vat = Vat::new("node");
        let peer = Peer::start(
            vat.clone(),
            vec![Arc::new(net)],
            PeerConfig::default().with_dialect(dialect),
        )
        .unwrap();
        Node { vat, peer }
    }

    /// A node hosting the OCapN test suite's objects.
    fn suite(rt: &tokio::runtime::Runtime, dialect: Dialect) -> Node {
        let node = Node::new(rt, dialect);
        pola_test_peer::host(&node.peer.handle(), &node.vat);
        node
    }

    fn sturdy(&self, swiss: &str) -> SturdyRef {
        SturdyRef {
            peer: self.peer.location().clone(),
            swiss: pola_captp::locator::Swiss::new(swiss.as_bytes().to_vec()),
        }
    }

    fn stats(&self, rt: &tokio::runtime::Runtime) -> PeerStats {
        rt.block_on(self.peer.stats()).unwrap()
    }

    fn stop(self, rt: &tokio::runtime::Runtime) {
        rt.block_on(self.peer.shutdown());
        self.vat.shutdown();
    }
}

#[test]
fn fetch_and_deliver() {
    let rt = runtime();
    for d in DIALECTS {
        let (a, b) = (Node::new(&rt, d.0), Node::suite(&rt, d.1));
        let echo = a.peer.enliven(b.sturdy(ECHO));
        let args = vec![
            Value::str("foo"),
            Value::int(1i64),
            Value::bytes(&b"bar"[..]),
        ];
        let answer = a.vat.send(&echo, "", args.clone());
        assert_eq!(
            a.vat.block_on(&answer, T).unwrap(),
            Value::List(args),
            "{d:?}"
        );
        // A method symbol travels as the first argument.
        let answer = a.vat.send(&echo, "ping", vec![Value::Bool(true)]);
        assert_eq!(
            a.vat.block_on(&answer, T).unwrap(),
            Value::List(vec![Value::sym("ping"), Value::Bool(true)])
        );
        a.stop(&rt);
        b.stop(&rt);
    }
}

#[test]
fn unknown_swiss_number_breaks() {
    let rt = runtime();
    for d in DIALECTS {
        let (a, b) = (Node::new(&rt, d.0), Node::suite(&rt, d.1));
        let nothing = a.peer.enliven(b.sturdy("no-such-object"));
        let err = a.vat.block_on(&nothing, T).unwrap_err();
        assert_eq!(error_message(err.reason().unwrap()), Some("no such object"));
        a.stop(&rt);
        b.stop(&rt);
    }
}

#[test]
fn deliver_only_arrives() {
    let rt = runtime();
    for d in DIALECTS {
        let (a, b) = (Node::new(&rt, d.0), Node::new(&rt, d.1));
        let (tx, rx) = mpsc::channel::<Val>();
        let tx = Mutex::new(tx);
        let inbox = b.vat.spawn(from_fn(move |_cx, method, args| {
            let _ = tx
                .lock()
                .unwrap()
                .send(Value::List(pola_peer::message::full_args(method, args)));
            Ok(Value::null())
        }));
        let sturdy = b.peer.mint_sturdyref(inbox).unwrap();
        // Through the URI form, as a user would pass it around.
        let sturdy = SturdyRef::from_uri(&sturdy.to_uri()).unwrap();
        let far = a.peer.enliven(sturdy);
        for i in 0..200i64 {
            a.vat.send_only(&far, "note", vec![Value::int(i)]);
        }
        for i in 0..200i64 {
            assert_eq!(
                rx.recv_timeout(T).unwrap(),
                Value::List(vec![Value::sym("note"), Value::int(i)]),
                "{d:?}: in order"
            );
        }
        a.stop(&rt);
        b.stop(&rt);
    }
}

#[test]
fn pipelined_car_factory() {
    let rt = runtime();
    for d in DIALECTS {
        let (a, b) = (Node::new(&rt, d.0), Node::suite(&rt, d.1));
        // Nothing is awaited until the very end: every send goes to a
        // promise for the previous answer.
        let builder = a.peer.enliven(b.sturdy(CAR_FACTORY_BUILDER));
        let factory = a.vat.send(&builder, "", vec![]);
        let spec = Value::List(vec![Value::sym("red"), Value::sym("zoomracer")]);
        let car = a.vat.send(&factory, "", vec![spec]);
        let vroom = a.vat.send(&car, "", vec![]);
        assert_eq!(
            a.vat.block_on(&vroom, T).unwrap(),
            Value::str("Vroom! I am a red zoomracer car!"),
            "{d:?}"
        );
        // A bad spec breaks the car and everything sent to it.
        let bad = a
            .vat
            .send(&factory, "", vec![Value::List(vec![Value::int(1i64)])]);
        let vroom = a.vat.send(&bad, "", vec![]);
        assert!(a.vat.block_on(&vroom, T).is_err(), "{d:?}");
        a.stop(&rt);
        b.stop(&rt);
    }
}

#[test]
fn listen_to_remote_promise() {
    let rt = runtime();
    for d in DIALECTS {
        let (a, b) = (Node::new(&rt, d.0), Node::suite(&rt, d.1));
        let maker = a.peer.enliven(b.sturdy(PROMISE_RESOLVER));
        for (verb, ok) in [("fulfill", true), ("break", false)] {
            let pair = a.vat.send(&maker, "", vec![]);
            let pair = a.vat.block_on(&pair, T).unwrap();
            let [Value::Ref(promise), Value::Ref(resolver)] = pair.as_list().unwrap() else {
                panic!("{d:?}: not a pair: {pair:?}");
            };
            assert!(promise.is_promise());
            // Listen first (op:listen), settle after.
            let waiting = a.vat.settled(promise);
            a.vat.send_only(resolver, verb, vec![Value::sym("ok")]);
            let got = waiting.wait(T);
            if ok {
                assert_eq!(got.unwrap(), Value::sym("ok"), "{d:?}");
            } else {
                assert_eq!(got.unwrap_err().reason(), Some(&Value::sym("ok")), "{d:?}");
            }
        }
        a.stop(&rt);
        b.stop(&rt);
    }
}

#[test]
fn remote_calls_back_into_local_object() {
    let rt = runtime();
    for d in DIALECTS {
        let (a, b) = (Node::new(&rt, d.0), Node::suite(&rt, d.1));
        // The greeter (on B) says "Hello" to an object on A and wants an
        // answer; A's object answers, and B releases what it held.
        let (tx, rx) = mpsc::channel::<Val>();
        let tx = Mutex::new(tx);
        let friend = a.vat.spawn(from_fn(move |_cx, method, args| {
            let _ = tx
                .lock()
                .unwrap()
                .send(Value::List(pola_peer::message::full_args(method, args)));
            Ok(Value::str("hi back"))
        }));
        let greeter = a.peer.enliven(b.sturdy(GREETER));
        a.vat.send_only(&greeter, "", vec![Value::Ref(friend)]);
        assert_eq!(
            rx.recv_timeout(T).unwrap(),
            Value::List(vec![Value::str("Hello")]),
            "{d:?}"
        );
        // B dropped the greeting's answer (op:gc-answers) and its import of
        // `friend` (op:gc-exports): A's tables shrink back.
        eventually("A's export of friend and B's answer freed", T, || {
            let sa = a.stats(&rt);
            let sb = b.stats(&rt);
            sa.exported_locals == 0 && sb.sessions.iter().all(|s| s.answers == 0)
        });
        a.stop(&rt);
        b.stop(&rt);
    }
}

#[test]
fn gc_frees_both_sides() {
    let rt = runtime();
    for d in DIALECTS {
        let (a, b) = (Node::new(&rt, d.0), Node::suite(&rt, d.1));
        let echo = a.peer.enliven(b.sturdy(ECHO));
        let mine = a.vat.spawn(from_fn(|_, _, _| Ok(Value::null())));
        // The same local object four times in one message, then in four.
        a.vat
            .send_only(&echo, "", vec![Value::Ref(mine.clone()); 4]);
        for _ in 0..4 {
            a.vat.send_only(&echo, "", vec![Value::Ref(mine.clone())]);
        }
        let answer = a.vat.send(&echo, "", vec![Value::int(7i64)]);
        a.vat.block_on(&answer, T).unwrap();
        // The echo keeps nothing: B reports every copy and A forgets `mine`.
        eventually("A's export freed", T, || a.stats(&rt).exported_locals == 0);
        eventually("B's import of it freed", T, || {
            b.stats(&rt).sessions.iter().all(|s| s.tables.imports == 0)
        });
        // Dropping A's reference to B's echo (a far promise from
        // `enliven`, settled to the import) frees B's export of it; the
        // bootstrap object stays.
        drop(echo);
        drop(answer);
        eventually("B's export of echo freed", T, || {
            b.stats(&rt).sessions.iter().all(|s| s.tables.exports == 1)
        });
        eventually("A's import freed", T, || {
            a.stats(&rt)
                .sessions
                .iter()
                .all(|s| s.tables.imports == 0 && s.live_imports == 0)
        });
        a.stop(&rt);
        b.stop(&rt);
    }
}

#[test]
fn one_session_per_peer_pair_both_ways() {
    let rt = runtime();
    for d in DIALECTS {
        let (a, b) = (Node::suite(&rt, d.0), Node::suite(&rt, d.1));
        let echo = a.peer.enliven(b.sturdy(ECHO));
        let car = a.peer.enliven(b.sturdy(CAR_FACTORY_BUILDER));
        a.vat.block_on(&a.vat.send(&echo, "", vec![]), T).unwrap();
        a.vat.block_on(&a.vat.send(&car, "", vec![]), T).unwrap();
        // B now enlivens a sturdyref naming A: it must reuse the session A
        // opened rather than dial A.
        let back = b.peer.enliven(a.sturdy(ECHO));
        let got = b.vat.send(&back, "", vec![Value::int(1i64)]);
        assert_eq!(
            b.vat.block_on(&got, T).unwrap(),
            Value::List(vec![Value::int(1i64)])
        );
        let live = |s: &PeerStats| s.sessions.iter().filter(|s| !s.terminated).count();
        assert_eq!(live(&a.stats(&rt)), 1, "{d:?}: A has one session");
        assert_eq!(live(&b.stats(&rt)), 1, "{d:?}: B has one session");
        a.stop(&rt);
        b.stop(&rt);
    }
}

#[test]
fn three_party_handoff() {
    let rt = runtime();
    for d in DIALECTS {
        // A holds a reference to an object on C and passes it to B's
        // greeter; B must reach C directly (a handoff certificate from A,
        // withdrawn at C), not through A.
        let (a, b, c) = (
            Node::new(&rt, d.0),
            Node::suite(&rt, d.1),
            Node::new(&rt, d.0),
        );
        let (tx, rx) = mpsc::channel::<Val>();
        let tx = Mutex::new(tx);
        let carol = c.vat.spawn(from_fn(move |_cx, method, args| {
            let _ = tx
                .lock()
                .unwrap()
                .send(Value::List(pola_peer::message::full_args(method, args)));
            Ok(Value::str("hello yourself"))
        }));
        let carol_sturdy = c.peer.mint_sturdyref(carol).unwrap();
        let carol_at_a = a.peer.enliven(carol_sturdy);
        // Make sure A holds a settled far reference (an import from C).
        let carol_at_a = match a.vat.block_on(&carol_at_a, T).unwrap() {
            Value::Ref(r) => r,
            other => panic!("not a ref: {other:?}"),
        };
        let greeter = a.peer.enliven(b.sturdy(GREETER));
        a.vat.send_only(&greeter, "", vec![Value::Ref(carol_at_a)]);
        assert_eq!(
            rx.recv_timeout(T).unwrap(),
            Value::List(vec![Value::str("Hello")]),
            "{d:?}"
        );
        // C now has a session with B (the receiver) besides the one with A.
        let b_loc = b.peer.location().clone();
        eventually("C has a session with B", T, || {
            c.stats(&rt)
                .sessions
                .iter()
                .any(|s| s.peer.as_ref().is_some_and(|p| p.same_peer(&b_loc)) && !s.terminated)
        });
        a.stop(&rt);
        b.stop(&rt);
        c.stop(&rt);
    }
}

#[test]
fn unreachable_peer_breaks_enliven() {
    let rt = runtime();
    let a = Node::new(&rt, Dialect::Current);
    // Bind then close a port so nobody listens there.
    let dead = {
        let n = Node::new(&rt, Dialect::Current);
        let s = n.sturdy(ECHO);
        n.stop(&rt);
        s
    };
    let _ = Ref::broken(Value::null());
    let far = a.peer.enliven(dead);
    assert!(a.vat.block_on(&far, T).is_err());
    a.stop(&rt);
}

#[test]
fn abort_breaks_far_references() {
    let rt = runtime();
    for d in DIALECTS {
        let (a, b) = (Node::new(&rt, d.0), Node::suite(&rt, d.1));
        let echo = a.peer.enliven(b.sturdy(ECHO));
        let Value::Ref(echo) = a.vat.block_on(&echo, T).unwrap() else {
            panic!("not a ref")
        };
        let maker = a.peer.enliven(b.sturdy(PROMISE_RESOLVER));
        let pair = a.vat.send(&maker, "", vec![]);
        let pair = a.vat.block_on(&pair, T).unwrap();
        let [Value::Ref(promise), _] = pair.as_list().unwrap() else {
            panic!("not a pair")
        };
        let waiting = a.vat.settled(promise);
        // B goes away: it aborts its sessions (op:abort) and closes.
        b.stop(&rt);
        // A's pending listen breaks, and so does every later message.
        assert!(waiting.wait(T).is_err(), "{d:?}");
        let answer = a.vat.send(&echo, "", vec![]);
        assert!(a.vat.block_on(&answer, T).is_err(), "{d:?}");
        eventually("A has no live session", T, || {
            a.stats(&rt).sessions.iter().all(|s| s.terminated)
        });
        a.stop(&rt);
    }
}

#[test]
fn revoked_sturdyref_no_longer_enlivens() {
    let rt = runtime();
    let (a, b) = (
        Node::new(&rt, Dialect::Current),
        Node::new(&rt, Dialect::Current),
    );
    let obj = b.vat.spawn(from_fn(|_, _, _| Ok(Value::str("still here"))));
    let sturdy = b.peer.mint_sturdyref(obj).unwrap();
    let live = a.peer.enliven(sturdy.clone());
    let Value::Ref(live) = a.vat.block_on(&live, T).unwrap() else {
        panic!("not a ref")
    };
    // In effect once `revoke` returns: no wait for B's loop.
    b.peer.revoke(&sturdy.swiss);
    let again = a.peer.enliven(sturdy);
    assert!(a.vat.block_on(&again, T).is_err(), "revoked");
    // The reference handed out before still works.
    let answer = a.vat.send(&live, "", vec![]);
    assert_eq!(
        a.vat.block_on(&answer, T).unwrap(),
        Value::str("still here")
    );
    a.stop(&rt);
    b.stop(&rt);
}

/// A Swiss number is served from the moment `register` (or
/// `mint_sturdyref`) returns, and refused from the moment `revoke`
/// returns, whether or not the peer's event loop has run since: a fetch
/// can arrive on a connection read by the vat's thread before that loop
/// wakes. Here the loop never runs (its runtime is never driven), so a
/// table that only the loop updated would answer "no such object" (the
/// CI flake of `listen_to_remote_promise`, about 1 run in 50).
#[test]
fn registration_and_revocation_hold_when_the_call_returns() {
    let idle = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let net = idle.block_on(TcpTestingOnly::bind("127.0.0.1", 0)).unwrap();
    let _in_runtime = idle.enter();
    let vat = Vat::new("b");
    let peer = Peer::start(vat.clone(), vec![Arc::new(net)], PeerConfig::default()).unwrap();
    let obj = vat.spawn(from_fn(|_, _, _| Ok(Value::str("here"))));
    let sturdy = peer.mint_sturdyref(obj).unwrap();
    // Sent from the vat's thread, the fetch is handled there too.
    let answer = vat.send(&peer.sturdy(sturdy.clone()), "", vec![]);
    assert_eq!(vat.block_on(&answer, T).unwrap(), Value::str("here"));
    peer.revoke(&sturdy.swiss);
    let again = vat.send(&peer.sturdy(sturdy), "", vec![]);
    let refused = vat.block_on(&again, T).unwrap_err();
    assert_eq!(
        refused.reason().map(error_message),
        Some(Some("no such object"))
    );
}
