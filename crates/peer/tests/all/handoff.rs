//! pola as the *exporter* of a third-party handoff, driven by hand-made
//! gifter and receiver sessions (the captp engine over raw TCP), for the
//! case the DIGEST (section 13) warns about: the gifter releases its
//! reference right after depositing, before the receiver withdraws. The
//! gift must survive that.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use pola_captp::locator::Swiss;
use pola_captp::session::{CapRef, Event};
use pola_netlayer::TcpTestingOnly;
use pola_peer::{Peer, PeerConfig};
use pola_test_peer::GREETER;
use pola_testkit::captp::{RawSession, session_pair, tcp_addr};
use pola_testkit::runtime;
use pola_vat::Vat;

#[test]
fn gift_survives_the_gifters_release() {
    let rt = runtime();
    let net = rt.block_on(TcpTestingOnly::bind("127.0.0.1", 0)).unwrap();
    let _g = rt.enter();
    let vat = Vat::new("exporter");
    let peer = Peer::start(vat.clone(), vec![Arc::new(net)], PeerConfig::default()).unwrap();
    pola_test_peer::host(&peer.handle(), &vat);
    let addr = tcp_addr(peer.location());

    let (_g_to_r, r_to_g) = session_pair("tcp-testing-only");

    // Gifter: fetch the greeter, deposit it as a gift, release it at once.
    let mut gifter = RawSession::established(&addr, "gifter", 1);
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
    let mut receiver = RawSession::established(&addr, "receiver", 2);
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
