//! Promise pipelining costs one round trip, shown without a clock: with
//! every byte *to* A held back, A still gets a three-step chain (builder →
//! factory → car → drive) all the way to B, and B runs all of it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use pola_captp::locator::{SturdyRef, Swiss};
use pola_netlayer::{
    BoxFuture, Connection, Location, MessageReader, NetError, Netlayer, TcpTestingOnly,
};
use pola_peer::{Peer, PeerConfig};
use pola_syrup::Value;
use pola_test_peer::CAR_FACTORY_BUILDER;
use pola_testkit::runtime;
use pola_vat::Vat;
use tokio::sync::watch;

const T: Duration = Duration::from_secs(10);

/// A netlayer whose incoming bytes flow only while the gate is open.
struct Gated {
    inner: TcpTestingOnly,
    gate: watch::Receiver<bool>,
}

struct GatedReader {
    inner: Box<dyn MessageReader>,
    gate: watch::Receiver<bool>,
}

impl MessageReader for GatedReader {
    fn recv(&mut self) -> BoxFuture<'_, Result<Option<Bytes>, NetError>> {
        Box::pin(async move {
            // Hold each chunk until the gate is open (checked after the
            // read, so a read already waiting when the gate shuts is held
            // too).
            let chunk = self.inner.recv().await;
            let _ = self.gate.wait_for(|open| *open).await;
            chunk
        })
    }
}

impl Gated {
    fn wrap(&self, c: Connection) -> Connection {
        Connection {
            reader: Box::new(GatedReader {
                inner: c.reader,
                gate: self.gate.clone(),
            }),
            ..c
        }
    }
}

impl Netlayer for Gated {
    fn transport(&self) -> &str {
        self.inner.transport()
    }
    fn location(&self) -> &Location {
        self.inner.location()
    }
    fn authenticates(&self) -> bool {
        self.inner.authenticates()
    }
    fn connect<'a>(&'a self, to: &'a Location) -> BoxFuture<'a, Result<Connection, NetError>> {
        Box::pin(async move { Ok(self.wrap(self.inner.connect(to).await?)) })
    }
    fn accept(&self) -> BoxFuture<'_, Result<Connection, NetError>> {
        Box::pin(async move { Ok(self.wrap(self.inner.accept().await?)) })
    }
}

#[test]
fn pipelined_chain_needs_no_answer_to_proceed() {
    let rt = runtime();
    let (open, gate) = watch::channel(true);
    let na = Gated {
        inner: rt.block_on(TcpTestingOnly::bind("127.0.0.1", 0)).unwrap(),
        gate,
    };
    let nb = rt.block_on(TcpTestingOnly::bind("127.0.0.1", 0)).unwrap();
    let _g = rt.enter();
    let (a_vat, b_vat) = (Vat::new("a"), Vat::new("b"));
    let a = Peer::start(a_vat.clone(), vec![Arc::new(na)], PeerConfig::default()).unwrap();
    let b = Peer::start(b_vat.clone(), vec![Arc::new(nb)], PeerConfig::default()).unwrap();
    pola_test_peer::host(&b.handle(), &b_vat);
    // Set up the session and get a settled far reference to the builder.
    let builder = a.enliven(SturdyRef {
        peer: b.location().clone(),
        swiss: Swiss::new(CAR_FACTORY_BUILDER.as_bytes().to_vec()),
    });
    let Value::Ref(builder) = a_vat.block_on(&builder, T).unwrap() else {
        panic!("not a ref")
    };
    let answers_at_b = || -> usize {
        rt.block_on(b.stats())
            .unwrap()
            .sessions
            .iter()
            .map(|s| s.answers)
            .sum()
    };
    let start = Instant::now();
    while answers_at_b() != 0 {
        // The fetch's answer is released once A has it.
        assert!(start.elapsed() < T);
        std::thread::sleep(Duration::from_millis(10));
    }

    // From now on A hears nothing from B.
    open.send_replace(false);
    let factory = a_vat.send(&builder, "", vec![]);
    let spec = Value::List(vec![Value::sym("red"), Value::sym("zoomracer")]);
    let car = a_vat.send(&factory, "", vec![spec]);
    let vroom = a_vat.send(&car, "", vec![]);
    // B receives and answers all three questions although A has not seen a
    // single answer: the second and third went to B's answer positions.
    let start = Instant::now();
    while answers_at_b() < 3 {
        assert!(start.elapsed() < T, "B saw {} questions", answers_at_b());
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        a_vat.settled(&vroom).try_get().is_none(),
        "A heard nothing yet"
    );
    // Open the gate: the answer arrives.
    open.send_replace(true);
    assert_eq!(
        a_vat.block_on(&vroom, T).unwrap(),
        Value::str("Vroom! I am a red zoomracer car!")
    );
    rt.block_on(a.shutdown());
    rt.block_on(b.shutdown());
    a_vat.shutdown();
    b_vat.shutdown();
}
