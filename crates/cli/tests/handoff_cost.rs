//! The cost of a third-party handoff, counted in CapTP messages and round
//! trips, seen from the receiver (Bob).
//!
//! Three in-process peers over the `noise` netlayer on loopback: the Mint,
//! Alice (holding a purse at the Mint) and Bob. Bob's netlayer is wrapped
//! so every CapTP message he sends or receives is logged with its peer and
//! its operation. Alice sends Bob a payment purse (a reference to an object
//! at the Mint); Bob asks the payment its balance, which needs the handoff
//! to be redeemed at the Mint first. The test prints the message log and
//! the number of Bob→Mint→Bob round trips, for a *cold* Bob (no session
//! with the Mint yet: the handoff opens one) and a *warm* Bob (already has
//! one), and checks the answer is right. Run with `--nocapture` to see
//! the figures.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use pola_apps::mint::spawn_mint;
use pola_netlayer::{
    BoxFuture, Connection, Direction, Location, MessageReader, MessageWriter, NetError, Netlayer,
    NoiseNetlayer,
};
use pola_peer::{Peer, PeerConfig};
use pola_syrup::{Decoder, Value};
use pola_testkit::{noise, runtime};
use pola_vat::{Ref, Val, Vat, error, from_fn};

const T: Duration = Duration::from_secs(10);

/// `(outgoing?, remote designator or "inbound", op label)`.
type Log = Arc<Mutex<Vec<(bool, String, String)>>>;

fn op_of(v: &Value) -> String {
    match v.as_record().and_then(|r| r.label.as_symbol()) {
        Some(s) => s.to_owned(),
        None => "?".to_owned(),
    }
}

struct Counting {
    inner: NoiseNetlayer,
    log: Log,
}

struct CountingWriter {
    inner: Box<dyn MessageWriter>,
    log: Log,
    remote: String,
}

impl MessageWriter for CountingWriter {
    fn send<'a>(&'a mut self, message: &'a [u8]) -> BoxFuture<'a, Result<(), NetError>> {
        // One send may carry several messages back to back.
        let mut d = Decoder::new();
        d.feed(message);
        let mut log = self.log.lock().unwrap();
        loop {
            match d.next_value() {
                Ok(Some(v)) => log.push((true, self.remote.clone(), op_of(&v))),
                Ok(None) => break,
                Err(_) => {
                    log.push((true, self.remote.clone(), "undecodable".into()));
                    break;
                }
            }
        }
        drop(log);
        self.inner.send(message)
    }
    fn close(&mut self) -> BoxFuture<'_, Result<(), NetError>> {
        self.inner.close()
    }
}

struct CountingReader {
    inner: Box<dyn MessageReader>,
    log: Log,
    remote: String,
    decoder: Decoder,
}

impl MessageReader for CountingReader {
    fn recv(&mut self) -> BoxFuture<'_, Result<Option<Bytes>, NetError>> {
        Box::pin(async move {
            let got = self.inner.recv().await?;
            if let Some(chunk) = &got {
                self.decoder.feed(chunk);
                while let Ok(Some(v)) = self.decoder.next_value() {
                    self.log
                        .lock()
                        .unwrap()
                        .push((false, self.remote.clone(), op_of(&v)));
                }
            }
            Ok(got)
        })
    }
}

impl Counting {
    fn wrap(&self, c: Connection, remote: String) -> Connection {
        Connection {
            reader: Box::new(CountingReader {
                inner: c.reader,
                log: self.log.clone(),
                remote: remote.clone(),
                decoder: Decoder::new(),
            }),
            writer: Box::new(CountingWriter {
                inner: c.writer,
                log: self.log.clone(),
                remote,
            }),
            direction: c.direction,
            remote: c.remote,
            source: c.source,
            authenticated: c.authenticated,
        }
    }
}

impl Netlayer for Counting {
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
        Box::pin(async move {
            let c = self.inner.connect(to).await?;
            Ok(self.wrap(c, to.designator.clone()))
        })
    }
    fn accept(&self) -> BoxFuture<'_, Result<Connection, NetError>> {
        Box::pin(async move {
            let c = self.inner.accept().await?;
            debug_assert_eq!(c.direction, Direction::Inbound);
            Ok(self.wrap(c, "inbound".to_owned()))
        })
    }
}

/// Bob's receiver: answers the balance of the payment it is handed.
fn receiver() -> impl pola_vat::Object {
    from_fn(|cx, method, args| {
        if method != "receive" {
            return Err(error("no such method"));
        }
        let payment = args
            .first()
            .and_then(Val::as_ref)
            .cloned()
            .ok_or_else(|| error("no payment"))?;
        Ok(Val::Ref(cx.send(&payment, "balance", Vec::new())))
    })
}

struct Run {
    log: Vec<(bool, String, String)>,
    mint_designator: String,
}

fn run(warm: bool) -> Run {
    let rt = runtime();
    let (nm, na, nb) = (noise(&rt), noise(&rt), noise(&rt));
    let log: Log = Arc::default();
    let nb = Counting {
        inner: nb,
        log: log.clone(),
    };
    let _g = rt.enter();
    let (vm, va, vb) = (Vat::new("mint"), Vat::new("alice"), Vat::new("bob"));
    let m = Peer::start(vm.clone(), vec![Arc::new(nm)], PeerConfig::default()).unwrap();
    let a = Peer::start(va.clone(), vec![Arc::new(na)], PeerConfig::default()).unwrap();
    let b = Peer::start(vb.clone(), vec![Arc::new(nb)], PeerConfig::default()).unwrap();
    let mint_designator = m.location().designator().to_owned();
    let mint_uri = m.mint_sturdyref(spawn_mint(&vm)).unwrap();
    let bob_uri = b.mint_sturdyref(vb.spawn(receiver())).unwrap();

    // Alice: a purse of 100 at the Mint, a payment purse of 10 from it.
    let mint_at_alice = a.enliven(mint_uri.clone());
    let purse = va.send(&mint_at_alice, "make_purse", vec![Val::int(100u64)]);
    let purse: Ref = va.block_on(&purse, T).unwrap().as_ref().cloned().unwrap();
    let payment = va.send(&purse, "sprout", Vec::new());
    let payment: Ref = va.block_on(&payment, T).unwrap().as_ref().cloned().unwrap();
    let moved = va.send(
        &payment,
        "deposit",
        vec![Val::int(10u64), Val::Ref(purse.clone())],
    );
    va.block_on(&moved, T).unwrap();
    // Alice's session with Bob, set up outside the measured window.
    let bob_at_alice = a.enliven(bob_uri);
    let hello = va.send(&bob_at_alice, "no-such", Vec::new());
    let _ = va.block_on(&hello, T);
    if warm {
        let mint_at_bob = b.enliven(mint_uri);
        let p = vb.send(&mint_at_bob, "make_purse", vec![Val::int(0u64)]);
        vb.block_on(&p, T).unwrap();
    }

    log.lock().unwrap().clear();
    let answer = va.send(&bob_at_alice, "receive", vec![Val::Ref(payment)]);
    assert_eq!(va.block_on(&answer, T).unwrap(), Val::int(10u64));
    let log = std::mem::take(&mut *log.lock().unwrap());
    rt.block_on(a.shutdown());
    rt.block_on(b.shutdown());
    rt.block_on(m.shutdown());
    for v in [va, vb, vm] {
        v.shutdown();
    }
    Run {
        log,
        mint_designator,
    }
}

/// Prints the log from Alice's message on; returns (non-GC messages with
/// the Mint, all messages with the Mint, Bob->Mint->Bob round trips: each
/// switch from Bob sending to the Mint to the Mint answering, GC excluded,
/// whether a session was started with the Mint).
fn report(name: &str, run: &Run) -> (usize, usize, usize, bool) {
    println!("handoff cost, {name} Bob:");
    let start = run
        .log
        .iter()
        .position(|(out, remote, op)| !out && remote == "inbound" && op == "op:deliver")
        .expect("Alice's delivery reached Bob");
    let (mut essential, mut all, mut trips, mut started) = (0, 0, 0, false);
    let mut last_out = false;
    for (out, remote, op) in &run.log[start..] {
        let to_mint = *remote == run.mint_designator;
        let who = if to_mint { "mint" } else { "alice" };
        println!("  {} {who:5} {op}", if *out { "bob ->" } else { "bob <-" });
        if !to_mint {
            continue;
        }
        all += 1;
        started |= op == "op:start-session";
        if op.starts_with("op:gc-") {
            continue;
        }
        essential += 1;
        if *out {
            last_out = true;
        } else if last_out {
            trips += 1;
            last_out = false;
        }
    }
    println!(
        "  => with the Mint: {essential} messages besides GC ({all} in all), {trips} round trip(s) Bob->Mint->Bob"
    );
    (essential, all, trips, started)
}

#[test]
fn handoff_cost_in_round_trips() {
    let cold = run(false);
    let (cold_msgs, cold_all, cold_trips, cold_started) = report("cold", &cold);
    let warm = run(true);
    let (warm_msgs, warm_all, warm_trips, warm_started) = report("warm", &warm);
    // Bob reached the Mint himself in both runs (not through Alice); the
    // cold one opened the session, the warm one reused it.
    assert!(cold_trips >= 1 && warm_trips >= 1);
    assert!(cold_started && !warm_started);
    println!(
        "summary: cold {cold_msgs} msgs ({cold_all} with GC) / {cold_trips} RTT (+ TCP connect and the 3-message Noise XX handshake); \
         warm {warm_msgs} msgs ({warm_all} with GC) / {warm_trips} RTT"
    );
}
