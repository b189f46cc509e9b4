//! pola as the *exporter* of a third-party handoff, driven by hand-made
//! gifter and receiver sessions (the captp engine over raw TCP), for the
//! case the DIGEST (section 13) warns about: the gifter releases its
//! reference right after depositing, before the receiver withdraws. The
//! gift must survive that.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use pola_captp::Dialect;
use pola_captp::locator::{Hints, PeerLocator, Swiss};
use pola_captp::session::{CapRef, Event, Session, SessionConfig};
use pola_netlayer::TcpTestingOnly;
use pola_peer::{Peer, PeerConfig};
use pola_test_peer::GREETER;
use pola_vat::Vat;

const T: Duration = Duration::from_secs(10);

/// A CapTP session over a blocking TCP stream.
struct Raw {
    stream: TcpStream,
    session: Session,
}

impl Raw {
    fn connect(addr: &str, name: &str, seed: u8) -> Raw {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let me = PeerLocator::new("tcp-testing-only", name, Hints::Absent).unwrap();
        let session = Session::new(SessionConfig::new(Dialect::Current, [seed; 32], me));
        let mut raw = Raw { stream, session };
        raw.until(|e| matches!(e, Event::Established { .. }));
        raw
    }

    fn flush(&mut self) {
        while let Some(m) = self.session.poll_transmit() {
            self.stream.write_all(&m).unwrap();
        }
    }

    /// Pumps until an event matching `want` arrives; returns it.
    fn until(&mut self, mut want: impl FnMut(&Event) -> bool) -> Event {
        let start = Instant::now();
        let mut buf = [0u8; 8192];
        loop {
            self.flush();
            while let Some(ev) = self.session.poll_event() {
                if want(&ev) {
                    self.flush();
                    return ev;
                }
            }
            assert!(start.elapsed() < T, "timed out");
            match self.stream.read(&mut buf) {
                Ok(0) => panic!("connection closed"),
                Ok(n) => self.session.handle_bytes(&buf[..n]).unwrap(),
                Err(_) => {}
            }
        }
    }
}

/// An in-process session pair standing for the gifter–receiver session.
fn gifter_receiver_pair() -> (Session, Session) {
    let loc = |n: &str| PeerLocator::new("tcp-testing-only", n, Hints::Absent).unwrap();
    let mut g = Session::new(SessionConfig::new(Dialect::Current, [3; 32], loc("gifter")));
    let mut r = Session::new(SessionConfig::new(
        Dialect::Current,
        [4; 32],
        loc("receiver"),
    ));
    for _ in 0..2 {
        while let Some(m) = g.poll_transmit() {
            r.handle_bytes(&m).unwrap();
        }
        while let Some(m) = r.poll_transmit() {
            g.handle_bytes(&m).unwrap();
        }
    }
    (g, r)
}

#[test]
fn gift_survives_the_gifters_release() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let net = rt.block_on(TcpTestingOnly::bind("127.0.0.1", 0)).unwrap();
    let _g = rt.enter();
    let vat = Vat::new("exporter");
    let peer = Peer::start(vat.clone(), vec![Arc::new(net)], PeerConfig::default()).unwrap();
    pola_test_peer::host(&peer.handle(), &vat);
    let h = peer.location().hints();
    let addr = format!("{}:{}", h.get("host").unwrap(), h.get("port").unwrap());

    let (_g_to_r, r_to_g) = gifter_receiver_pair();

    // Gifter: fetch the greeter, deposit it as a gift, release it at once.
    let mut gifter = Raw::connect(&addr, "gifter", 1);
    let q = gifter
        .session
        .fetch(&Swiss::new(GREETER.as_bytes().to_vec()))
        .unwrap();
    let greeter = match gifter.until(|e| matches!(e, Event::Answer { .. })) {
        Event::Answer {
            question,
            result: Ok(pola_syrup::Value::Ref(CapRef::Import(p))),
        } if question == q => p,
        other => panic!("fetch failed: {other:?}"),
    };
    let gift = gifter
        .session
        .give(
            greeter,
            *r_to_g.public_key(),
            Bytes::from_static(&[9u8; 32]),
        )
        .unwrap();
    gifter.session.drop_import(greeter).unwrap();
    gifter.flush();
    // Give the exporter time to process the deposit and the release.
    std::thread::sleep(Duration::from_millis(200));

    // Receiver: withdraw the gift on its own session with the exporter.
    let mut receiver = Raw::connect(&addr, "receiver", 2);
    let receive = receiver.session.handoff_receive(gift).unwrap();
    let signed = r_to_g.sign_handoff_receive(receive).unwrap();
    let q = receiver.session.withdraw_gift(signed).unwrap();
    match receiver.until(|e| matches!(e, Event::Answer { .. })) {
        Event::Answer {
            question,
            result: Ok(pola_syrup::Value::Ref(CapRef::Import(_))),
        } if question == q => {}
        other => panic!("withdrawal failed: {other:?}"),
    }
    rt.block_on(peer.shutdown());
    vat.shutdown();
}
