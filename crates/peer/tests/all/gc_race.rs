//! The distributed-GC race between a client releasing its import of an
//! object and fetching the same object again: the release
//! (`op:gc-exports`) and the new fetch reach the server together, the
//! server answers the fetch with the object (exported again) and then
//! handles the release. The object must stay reachable through the new
//! import; before the fix the server forgot it and answered the next
//! call with "unknown object".

use std::sync::Arc;
use std::time::Duration;

use pola_captp::locator::{SturdyRef, Swiss};
use pola_captp::session::CapRef;
use pola_captp::{ImportPosition, QuestionPosition};
use pola_netlayer::TcpTestingOnly;
use pola_peer::{Peer, PeerConfig};
use pola_syrup::Value;
use pola_testkit::captp::{RawSession, tcp_addr};
use pola_testkit::runtime;
use pola_vat::{Val, Vat, from_fn};

const T: Duration = Duration::from_secs(10);
const SWISS: &[u8] = b"the mint, fetched again and again";

/// A served vat with a mint under `SWISS`: `make_purse(n)` makes a purse
/// whose `balance` is `n`; any other method answers 42.
struct Server {
    rt: tokio::runtime::Runtime,
    vat: Vat,
    peer: Peer,
}

impl Server {
    fn new() -> Server {
        let rt = runtime();
        let net = rt.block_on(TcpTestingOnly::bind("127.0.0.1", 0)).unwrap();
        let _g = rt.enter();
        let vat = Vat::new("mint");
        let peer = Peer::start(vat.clone(), vec![Arc::new(net)], PeerConfig::default()).unwrap();
        let mint = vat.spawn(from_fn(|turn, method, args| match method {
            "make_purse" => {
                let n = args.first().and_then(|v| v.as_i64()).unwrap_or(0);
                Ok(Val::Ref(
                    turn.spawn(from_fn(move |_t, _m, _a| Ok(Val::int(n)))),
                ))
            }
            _ => Ok(Val::int(42i64)),
        }));
        peer.register(SWISS.to_vec(), mint);
        Server { rt, vat, peer }
    }

    fn sturdy(&self) -> SturdyRef {
        SturdyRef {
            peer: self.peer.location().clone(),
            swiss: Swiss::new(SWISS.to_vec()),
        }
    }

    fn addr(&self) -> String {
        tcp_addr(self.peer.location())
    }

    /// The server's table of exported local objects, once it is quiet.
    fn exported_locals(&self) -> usize {
        self.rt.block_on(self.peer.stats()).unwrap().exported_locals
    }

    fn stop(self) {
        self.rt.block_on(self.peer.shutdown());
        self.vat.shutdown();
    }
}

/// The client drives a CapTP session by hand over a raw socket
/// ([`RawSession`]), so the test decides exactly which messages share a
/// write.
fn fetch(c: &mut RawSession) -> QuestionPosition {
    c.session.fetch(&Swiss::new(SWISS.to_vec())).unwrap()
}

fn import(c: &mut RawSession, q: QuestionPosition) -> ImportPosition {
    match c.answer(q) {
        Ok(Value::Ref(CapRef::Import(p))) => p,
        other => panic!("expected the mint, got {other:?}"),
    }
}

/// Deterministic: each round releases the mint and fetches it again in
/// one write (the release after the fetch, as a driver that lets GC
/// reports ride with its next message sends them), then calls the mint
/// through the new import. Every call must reach it, and once the client
/// lets go the server holds nothing for it.
#[test]
fn release_and_refetch_in_one_write_keeps_the_object() {
    let server = Server::new();
    let mut c = RawSession::connect(&server.addr(), "racer", 7);
    let q = fetch(&mut c);
    c.flush();
    let mut held = import(&mut c, q);
    for round in 0..30 {
        c.session.drop_import(held).unwrap();
        let q = fetch(&mut c);
        c.flush();
        held = import(&mut c, q);
        let call = c
            .session
            .deliver(&CapRef::Import(held), vec![Value::sym("ping")])
            .unwrap();
        c.flush();
        match c.answer(call) {
            Ok(v) => assert_eq!(v, Value::int(42i64), "round {round}"),
            Err(e) => {
                panic!("round {round}: the mint was forgotten while the client held it: {e:?}")
            }
        }
    }
    c.session.drop_import(held).unwrap();
    c.flush();
    // The server lets go of the mint once the client released every copy.
    let deadline = std::time::Instant::now() + T;
    while server.exported_locals() != 0 {
        assert!(std::time::Instant::now() < deadline, "export leaked");
        std::thread::sleep(Duration::from_millis(5));
    }
    server.stop();
}

/// Two pola peers: the client fetches the mint afresh each round, makes a
/// purse (pipelined on the fetch, or after waiting for it so the call
/// goes to the import), asks its balance, and lets go of everything, so
/// its releases race its next fetches. The last reference to the mint is
/// given to an object in the client's vat, which drops it in its turn: a
/// release made on the vat's thread waits to ride with the next message
/// the session sends, here the next fetch.
#[test]
fn fetch_call_drop_loop_between_two_peers() {
    let server = Server::new();
    let net = server
        .rt
        .block_on(TcpTestingOnly::bind("127.0.0.1", 0))
        .unwrap();
    let _g = server.rt.enter();
    let vat = Vat::new("client");
    let client = Peer::start(vat.clone(), vec![Arc::new(net)], PeerConfig::default()).unwrap();
    let sink = vat.spawn(from_fn(|_t, _m, _a| Ok(Val::null())));
    let sturdy = server.sturdy();
    for round in 0..300i64 {
        let mint = client.enliven(sturdy.clone());
        if round % 3 == 1 {
            vat.block_on(&mint, T).unwrap();
        }
        let purse = vat.send(&mint, "make_purse", vec![Val::int(round)]);
        if round % 3 == 2 {
            vat.block_on(&purse, T).unwrap();
        }
        let balance = vat.send(&purse, "balance", vec![]);
        match vat.block_on(&balance, T) {
            Ok(v) => assert_eq!(v, Val::int(round), "round {round}"),
            Err(e) => panic!("round {round}: {e:?}"),
        }
        drop((purse, balance));
        let dropped = vat.send(&sink, "take", vec![Val::Ref(mint)]);
        vat.block_on(&dropped, T).unwrap();
    }
    server.rt.block_on(client.shutdown());
    vat.shutdown();
    server.stop();
}
