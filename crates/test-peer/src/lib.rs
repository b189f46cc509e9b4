//! The objects the public OCapN test suite expects a peer to host, at their
//! fixed Swiss numbers (ASCII text, sent by the suite as byte strings).
//!
//! The suite's tests (not its README) define the behaviour:
//!
//! | Swiss number | object | behaviour |
//! | --- | --- | --- |
//! | `JadQ0++RzsD4M+40uLxTWVaVqM10DcBJ` | car factory builder | no args → a car factory |
//! | — | car factory | one argument `['color 'model]` → a car; any other shape breaks |
//! | — | car | no args → `"Vroom! I am a <color> <model> car!"` |
//! | `IO58l1laTyhcrgDKbEzFOO32MDd6zE5w` | echo | answers all its arguments as one list; keeps nothing |
//! | `VMDDd1voKWarCe2GvgLbxbVFysNzRPzx` | greeter | sends `"Hello"` (with an answer wanted) to the reference it is given; keeps nothing |
//! | `IokCxYmMj04nos2JN1TDoY1bT8dXh6Lr` | promise resolver | no args → `[promise resolver]`; the resolver takes `'fulfill v` / `'break e` |
//! | `gi02I1qghIwPiKGKleCQAOhpy3ZtYRpB` | sturdyref enlivener | a sturdyref record → a live reference to its object |
//!
//! These objects are ordinary vat objects; the enlivener reaches the network
//! only through the [`Enliven`] capability it is built with (a
//! [`PeerHandle`] is one).
//!
//! This is test code: it lives outside the trusted `pola-peer` crate, and
//! only the `pola ocapn test-peer` command, tests and benches use it.
//!
//! ```
//! let rt = tokio::runtime::Runtime::new().unwrap();
//! let served = rt
//!     .block_on(pola_test_peer::serve("127.0.0.1", 0, pola_peer::PeerConfig::test_suite()))
//!     .unwrap();
//! assert!(served.peer.location().to_uri().starts_with("ocapn://"));
//! rt.block_on(served.peer.shutdown());
//! served.vat.shutdown();
//! ```
#![forbid(unsafe_code)]

use std::sync::Arc;

use pola_captp::locator::SturdyRef;
use pola_peer::message::full_args;
use pola_peer::{Peer, PeerConfig, PeerError, PeerHandle};
use pola_syrup::Value;
use pola_vat::{Object, Outcome, Ref, ResolverObject, Turn, Val, Vat, error};

/// Swiss number of the car factory builder.
pub const CAR_FACTORY_BUILDER: &str = "JadQ0++RzsD4M+40uLxTWVaVqM10DcBJ";
/// Swiss number of the echo object.
pub const ECHO: &str = "IO58l1laTyhcrgDKbEzFOO32MDd6zE5w";
/// Swiss number of the greeter.
pub const GREETER: &str = "VMDDd1voKWarCe2GvgLbxbVFysNzRPzx";
/// Swiss number of the promise resolver maker.
pub const PROMISE_RESOLVER: &str = "IokCxYmMj04nos2JN1TDoY1bT8dXh6Lr";
/// Swiss number of the sturdyref enlivener.
pub const STURDYREF_ENLIVENER: &str = "gi02I1qghIwPiKGKleCQAOhpy3ZtYRpB";

/// The capability to enliven sturdyrefs: turn `<ocapn-sturdyref …>` into a
/// live reference.
pub trait Enliven: Send + Sync + 'static {
    /// Settles `resolver` with the object `sturdy` names (or breaks it).
    /// The resolver is normally for a promise the caller made in its turn.
    fn enliven(&self, sturdy: SturdyRef, resolver: pola_vat::Resolver);
}

impl Enliven for PeerHandle {
    fn enliven(&self, sturdy: SturdyRef, resolver: pola_vat::Resolver) {
        self.enliven_into(sturdy, resolver);
    }
}

/// Makes the car factories.
pub struct CarFactoryBuilder;

impl Object for CarFactoryBuilder {
    fn receive(&self, cx: &mut Turn<'_>, _method: &str, _args: Vec<Val>) -> Outcome {
        Ok(Value::Ref(cx.spawn(CarFactory)))
    }
}

/// Makes one car per call from `['color 'model]`.
pub struct CarFactory;

impl Object for CarFactory {
    fn receive(&self, cx: &mut Turn<'_>, method: &str, args: Vec<Val>) -> Outcome {
        let args = full_args(method, args);
        let spec = match args.as_slice() {
            [Value::List(spec)] => spec,
            _ => return Err(error("a car factory takes one ['color 'model] list")),
        };
        let (color, model) = match spec.as_slice() {
            [Value::Symbol(c), Value::Symbol(m)] => (c.clone(), m.clone()),
            _ => return Err(error("a car spec is ['color 'model]")),
        };
        Ok(Value::Ref(cx.spawn(Car { color, model })))
    }
}

/// A car that says what it is.
pub struct Car {
    color: String,
    model: String,
}

impl Object for Car {
    fn receive(&self, _cx: &mut Turn<'_>, _method: &str, _args: Vec<Val>) -> Outcome {
        Ok(Value::str(format!(
            "Vroom! I am a {} {} car!",
            self.color, self.model
        )))
    }
}

/// Answers all its arguments as one list and keeps nothing.
pub struct Echo;

impl Object for Echo {
    fn receive(&self, _cx: &mut Turn<'_>, method: &str, args: Vec<Val>) -> Outcome {
        Ok(Value::List(full_args(method, args)))
    }
}

/// Sends `"Hello"` to the reference it is given, wanting an answer, and
/// drops the answer promise at once.
pub struct Greeter;

impl Object for Greeter {
    fn receive(&self, cx: &mut Turn<'_>, method: &str, args: Vec<Val>) -> Outcome {
        let args = full_args(method, args);
        let target = match args.as_slice() {
            [Value::Ref(r)] => r.clone(),
            _ => return Err(error("the greeter takes one reference")),
        };
        let _answer = cx.send(&target, "", vec![Value::str("Hello")]);
        Ok(Value::null())
    }
}

/// Answers `[promise resolver]`: a fresh promise and a resolver object for
/// it (`'fulfill value` / `'break error`).
pub struct PromiseResolverMaker;

impl Object for PromiseResolverMaker {
    fn receive(&self, cx: &mut Turn<'_>, _method: &str, _args: Vec<Val>) -> Outcome {
        let (promise, resolver) = cx.promise();
        let resolver = cx.spawn(ResolverObject(resolver));
        Ok(Value::List(vec![Value::Ref(promise), Value::Ref(resolver)]))
    }
}

/// Enlivens the sturdyref record it is given.
pub struct SturdyrefEnlivener {
    enliven: Arc<dyn Enliven>,
}

impl SturdyrefEnlivener {
    /// An enlivener that uses `enliven` to reach the network.
    pub fn new(enliven: Arc<dyn Enliven>) -> Self {
        SturdyrefEnlivener { enliven }
    }
}

impl Object for SturdyrefEnlivener {
    fn receive(&self, cx: &mut Turn<'_>, method: &str, args: Vec<Val>) -> Outcome {
        let args = full_args(method, args);
        let [record] = args.as_slice() else {
            return Err(error("the enlivener takes one sturdyref"));
        };
        let sturdy = SturdyRef::from_value(record).map_err(|_| error("not a sturdyref"))?;
        // The promise must be made in this turn: a promise made through the
        // vat handle would only exist after this turn ends.
        let (promise, resolver) = cx.promise();
        self.enliven.enliven(sturdy, resolver);
        Ok(Value::Ref(promise))
    }
}

/// Spawns the five suite objects in `vat`; returns `(swiss, object)` pairs
/// ready to register with a peer.
pub fn spawn_all(vat: &Vat, enliven: Arc<dyn Enliven>) -> Vec<(&'static str, Ref)> {
    vec![
        (CAR_FACTORY_BUILDER, vat.spawn(CarFactoryBuilder)),
        (ECHO, vat.spawn(Echo)),
        (GREETER, vat.spawn(Greeter)),
        (PROMISE_RESOLVER, vat.spawn(PromiseResolverMaker)),
        (
            STURDYREF_ENLIVENER,
            vat.spawn(SturdyrefEnlivener::new(enliven)),
        ),
    ]
}

/// Spawns the five suite objects in `vat` and registers them with `peer`
/// under their Swiss numbers; the enlivener enlivens through `peer`.
pub fn host(peer: &PeerHandle, vat: &Vat) {
    for (swiss, object) in spawn_all(vat, Arc::new(peer.clone())) {
        peer.register(swiss.as_bytes(), object);
    }
}

/// A running test peer: its peer (for the locator) and its vat.
#[derive(Debug)]
pub struct Served {
    /// The peer; print `peer.location().to_uri()` for the suite.
    pub peer: Peer,
    /// The vat hosting the objects.
    pub vat: Vat,
}

/// Starts a test peer on `tcp-testing-only` at `host:port` (0 picks a free
/// port) with the five suite objects registered, speaking `config`'s
/// dialect. Must be called inside a tokio runtime.
///
/// # Errors
/// The port cannot be bound, or the peer cannot start.
pub async fn serve(host: &str, port: u16, config: PeerConfig) -> Result<Served, PeerError> {
    let net = pola_netlayer::TcpTestingOnly::bind(host, port).await?;
    let vat = Vat::new("ocapn-test-peer");
    let peer = Peer::start(vat.clone(), vec![Arc::new(net)], config)?;
    self::host(&peer.handle(), &vat);
    Ok(Served { peer, vat })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;
    use pola_vat::{Message, Remote, Resolver, error_message};

    const T: Duration = Duration::from_secs(5);

    struct NoNet;
    impl Enliven for NoNet {
        fn enliven(&self, _sturdy: SturdyRef, resolver: Resolver) {
            resolver.break_now(error("no network"));
        }
    }

    fn objects(vat: &Vat) -> std::collections::HashMap<&'static str, Ref> {
        spawn_all(vat, Arc::new(NoNet)).into_iter().collect()
    }

    #[test]
    fn car_factory_pipeline() {
        let vat = Vat::new("t");
        let o = objects(&vat);
        let factory = vat.send(&o[CAR_FACTORY_BUILDER], "", vec![]);
        let spec = Value::List(vec![Value::sym("red"), Value::sym("zoomracer")]);
        let car = vat.send(&factory, "", vec![spec]);
        let vroom = vat.send(&car, "", vec![]);
        assert_eq!(
            vat.block_on(&vroom, T).unwrap(),
            Value::str("Vroom! I am a red zoomracer car!")
        );
        vat.shutdown();
    }

    #[test]
    fn bad_car_spec_breaks_the_whole_chain() {
        let vat = Vat::new("t");
        let o = objects(&vat);
        let factory = vat.send(&o[CAR_FACTORY_BUILDER], "", vec![]);
        for bad in [
            vec![Value::List((1..=5).map(|i| Value::int(i as i64)).collect())],
            vec![Value::List(vec![Value::sym("red")])],
            vec![Value::sym("red"), Value::sym("zoomracer")],
            vec![],
        ] {
            let car = vat.send(&factory, "", bad);
            let vroom = vat.send(&car, "", vec![]);
            assert!(vat.block_on(&vroom, T).is_err());
        }
        vat.shutdown();
    }

    #[test]
    fn echo_answers_every_argument() {
        let vat = Vat::new("t");
        let o = objects(&vat);
        let args = vec![
            Value::str("foo"),
            Value::int(1i64),
            Value::Bool(false),
            Value::bytes(&b"bar"[..]),
            Value::List(vec![Value::str("baz")]),
        ];
        let a = vat.send(&o[ECHO], "", args.clone());
        assert_eq!(vat.block_on(&a, T).unwrap(), Value::List(args));
        // A leading symbol is an argument like any other.
        let a = vat.send(&o[ECHO], "fetch", vec![Value::int(2i64)]);
        assert_eq!(
            vat.block_on(&a, T).unwrap(),
            Value::List(vec![Value::sym("fetch"), Value::int(2i64)])
        );
        vat.shutdown();
    }

    /// A far object that records what it is sent and answers "hi".
    struct Recorder(Mutex<Vec<Vec<Val>>>, std::sync::mpsc::Sender<()>);
    impl Remote for Recorder {
        fn deliver(&self, message: Message, resolver: Option<Resolver>) {
            self.0
                .lock()
                .unwrap()
                .push(pola_peer::message::args_from_message(message));
            assert!(resolver.is_some(), "the greeter must want an answer");
            if let Some(r) = resolver {
                r.resolve_now(Value::str("hi"));
            }
            let _ = self.1.send(());
        }
    }

    #[test]
    fn greeter_says_hello_and_wants_an_answer() {
        let vat = Vat::new("t");
        let o = objects(&vat);
        let (tx, rx) = std::sync::mpsc::channel();
        let rec = Arc::new(Recorder(Mutex::new(Vec::new()), tx));
        let far = Ref::remote(rec.clone());
        vat.send_only(&o[GREETER], "", vec![Value::Ref(far)]);
        rx.recv_timeout(T).unwrap();
        assert_eq!(*rec.0.lock().unwrap(), vec![vec![Value::str("Hello")]]);
        // Not a reference: the greeter refuses.
        let a = vat.send(&o[GREETER], "", vec![Value::str("x")]);
        assert!(vat.block_on(&a, T).is_err());
        vat.shutdown();
    }

    #[test]
    fn promise_resolver_pair() {
        let vat = Vat::new("t");
        let o = objects(&vat);
        for (verb, expect_ok) in [("fulfill", true), ("break", false)] {
            let pair = vat.send(&o[PROMISE_RESOLVER], "", vec![]);
            let pair = vat.block_on(&pair, T).unwrap();
            let [Value::Ref(promise), Value::Ref(resolver)] = pair.as_list().unwrap() else {
                panic!("not a pair: {pair:?}");
            };
            vat.send_only(resolver, verb, vec![Value::sym("ok")]);
            let got = vat.block_on(promise, T);
            if expect_ok {
                assert_eq!(got.unwrap(), Value::sym("ok"));
            } else {
                assert_eq!(got.unwrap_err().reason(), Some(&Value::sym("ok")));
            }
        }
        vat.shutdown();
    }

    #[test]
    fn enlivener_checks_its_argument() {
        let vat = Vat::new("t");
        let o = objects(&vat);
        let a = vat.send(&o[STURDYREF_ENLIVENER], "", vec![Value::str("nope")]);
        assert_eq!(
            error_message(vat.block_on(&a, T).unwrap_err().reason().unwrap()),
            Some("not a sturdyref")
        );
        let sturdy = Value::record(
            "ocapn-sturdyref",
            vec![
                Value::record(
                    "ocapn-peer",
                    vec![
                        Value::sym("tcp-testing-only"),
                        Value::str("d"),
                        Value::Bool(false),
                    ],
                ),
                Value::bytes(&b"my-object"[..]),
            ],
        );
        let a = vat.send(&o[STURDYREF_ENLIVENER], "", vec![sturdy]);
        assert_eq!(
            error_message(vat.block_on(&a, T).unwrap_err().reason().unwrap()),
            Some("no network")
        );
        vat.shutdown();
    }
}
