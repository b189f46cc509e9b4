//! pola peers over the authenticated `noise` netlayer: ordinary use, and a
//! peer that authenticates as one key but announces another's locator.

use std::sync::Arc;
use std::time::Duration;

use pola_captp::Dialect;
use pola_captp::locator::{Hints, PeerLocator, SturdyRef, Swiss};
use pola_captp::session::{Event, Session, SessionConfig};
use pola_netlayer::{Identity, Netlayer, NoiseNetlayer};
use pola_peer::{Peer, PeerConfig};
use pola_syrup::Value;
use pola_test_peer::ECHO;
use pola_testkit::{noise, runtime};
use pola_vat::Vat;

const T: Duration = Duration::from_secs(10);

#[test]
fn two_peers_over_noise() {
    let rt = runtime();
    let (na, nb) = (noise(&rt), noise(&rt));
    let _g = rt.enter();
    let (va, vb) = (Vat::new("a"), Vat::new("b"));
    let a = Peer::start(va.clone(), vec![Arc::new(na)], PeerConfig::default()).unwrap();
    let b = Peer::start(vb.clone(), vec![Arc::new(nb)], PeerConfig::default()).unwrap();
    pola_test_peer::host(&b.handle(), &vb);
    assert_eq!(b.location().transport(), "noise");
    let echo = a.enliven(SturdyRef {
        peer: b.location().clone(),
        swiss: Swiss::new(ECHO.as_bytes().to_vec()),
    });
    for i in 0..100i64 {
        let answer = va.send(&echo, "", vec![Value::str("over noise"), Value::int(i)]);
        assert_eq!(
            va.block_on(&answer, T).unwrap(),
            Value::List(vec![Value::str("over noise"), Value::int(i)])
        );
    }
    // Both ends read their noise session on the vat's own thread.
    for p in [&a, &b] {
        let stats = rt.block_on(p.stats()).unwrap();
        let on_vat: Vec<bool> = stats.sessions.iter().map(|s| s.read_on_vat).collect();
        assert_eq!(on_vat, vec![true]);
    }
    rt.block_on(a.shutdown());
    rt.block_on(b.shutdown());
    va.shutdown();
    vb.shutdown();
}

/// Connects to `victim` over noise as `net`'s identity and runs a CapTP
/// session announcing `claimed` as our location; returns how it ended:
/// `Ok(())` once established, `Err(reason)` if the victim aborted.
fn announce(
    rt: &tokio::runtime::Runtime,
    net: &NoiseNetlayer,
    victim: &PeerLocator,
    claimed: PeerLocator,
) -> Result<(), String> {
    rt.block_on(async {
        let to = pola_netlayer::Location {
            transport: victim.transport().to_owned(),
            designator: victim.designator().to_owned(),
            hints: victim
                .hints()
                .entries()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        };
        let mut conn = net.connect(&to).await.unwrap();
        let mut s = Session::new(SessionConfig::new(Dialect::Current, [5u8; 32], claimed));
        let deadline = tokio::time::Instant::now() + T;
        loop {
            while let Some(m) = s.poll_transmit() {
                let _ = conn.writer.send(&m).await;
            }
            let mut established = false;
            while let Some(ev) = s.poll_event() {
                match ev {
                    Event::Established { .. } => established = true,
                    Event::Aborted { reason, .. } => return Err(reason),
                    _ => {}
                }
            }
            if established {
                // Give the victim a moment to object, then call it good.
                match tokio::time::timeout(Duration::from_millis(300), conn.reader.recv()).await {
                    Ok(Ok(Some(b))) => {
                        let _ = s.handle_bytes(&b);
                        if let Some(Event::Aborted { reason, .. }) = s.poll_event() {
                            return Err(reason);
                        }
                        return Ok(());
                    }
                    Ok(_) => return Err("closed".into()),
                    Err(_) => return Ok(()),
                }
            }
            let chunk = tokio::time::timeout_at(deadline, conn.reader.recv())
                .await
                .expect("timed out");
            match chunk {
                Ok(Some(b)) => {
                    let _ = s.handle_bytes(&b);
                }
                _ => return Err("closed".into()),
            }
        }
    })
}

#[test]
fn announced_location_must_be_the_authenticated_key() {
    let rt = runtime();
    let victim_net = noise(&rt);
    let _g = rt.enter();
    let vat = Vat::new("victim");
    let victim = Peer::start(
        vat.clone(),
        vec![Arc::new(victim_net)],
        PeerConfig::default(),
    )
    .unwrap();
    let mallory = noise(&rt);
    let alice = noise(&rt);
    let loc = |n: &NoiseNetlayer| {
        let l = n.location();
        PeerLocator::new(
            l.transport.clone(),
            l.designator.clone(),
            Hints::Map(l.hints.clone()),
        )
        .unwrap()
    };
    // Mallory, authenticated as herself, claims to be Alice: refused.
    let claimed = loc(&alice);
    let got = announce(&rt, &mallory, victim.location(), claimed);
    assert!(got.is_err(), "impostor accepted");
    // Her own key under another transport's name: refused too.
    let mut other = mallory.location().clone();
    other.transport = "tcp-testing-only".into();
    let other =
        PeerLocator::new(other.transport, other.designator, Hints::Map(other.hints)).unwrap();
    assert!(
        announce(&rt, &mallory, victim.location(), other).is_err(),
        "a noise identity announced as a tcp-testing-only one"
    );
    // Claiming her own locator is fine.
    let own = loc(&mallory);
    assert_eq!(announce(&rt, &mallory, victim.location(), own), Ok(()));
    rt.block_on(victim.shutdown());
    vat.shutdown();
}

/// A peer listening on both netlayers (as `pola call` does) must not let an
/// unauthenticated tcp-testing-only connection claim a `noise` peer's
/// locator: otherwise the next fetch for that peer, Swiss number included,
/// would go to the impostor.
#[test]
fn unauthenticated_connection_cannot_claim_a_noise_identity() {
    use pola_netlayer::TcpTestingOnly;

    let rt = runtime();
    let _in_rt = rt.enter();
    // The victim: noise only, holding a secret under a sturdyref.
    let vat_v = Vat::new("victim");
    let victim = Peer::start(
        vat_v.clone(),
        vec![Arc::new(noise(&rt))],
        PeerConfig::default(),
    )
    .unwrap();
    let secret = vat_v.spawn(pola_vat::from_fn(|_t, _m, _a| Ok(Value::str("secret"))));
    let sturdy = victim.handle().mint_sturdyref(secret).unwrap();
    // The caller: noise and tcp-testing-only.
    let tcp = rt.block_on(TcpTestingOnly::bind("127.0.0.1", 0)).unwrap();
    let port: u16 = tcp.location().hints["port"].parse().unwrap();
    let vat_c = Vat::new("caller");
    let caller = Peer::start(
        vat_c.clone(),
        vec![Arc::new(noise(&rt)), Arc::new(tcp)],
        PeerConfig::default(),
    )
    .unwrap();
    // The attacker connects over plain TCP announcing the victim's locator.
    let claimed = sturdy.peer.clone();
    let (attacker, announced_rx) = claim_over_tcp(&rt, port, claimed);
    // Whether or not the caller let the session open, give it time to
    // settle before the caller looks the victim up.
    let _ = announced_rx.recv_timeout(Duration::from_secs(2));
    std::thread::sleep(Duration::from_millis(200));
    let far = caller.handle().enliven(sturdy);
    let answer = vat_c.send(&far, "get", vec![]);
    assert_eq!(
        vat_c.block_on(&answer, T).unwrap(),
        Value::str("secret"),
        "the caller must reach the real victim"
    );
    let got_fetch = rt.block_on(attacker).unwrap();
    assert!(
        !got_fetch,
        "the impostor received the victim's Swiss number"
    );
}

/// Connects to `port` over plain TCP and runs a CapTP session announcing
/// `claimed`; the task answers whether a `fetch` (a Swiss number) ever
/// arrived. The channel says the peer's start message arrived.
fn claim_over_tcp(
    rt: &tokio::runtime::Runtime,
    port: u16,
    claimed: PeerLocator,
) -> (tokio::task::JoinHandle<bool>, std::sync::mpsc::Receiver<()>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let (announced_tx, announced_rx) = std::sync::mpsc::channel();
    let task = rt.spawn(async move {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let mut sess = Session::new(SessionConfig::new(Dialect::Current, [9u8; 32], claimed));
        let mut buf = vec![0u8; 65536];
        let mut got_fetch = false;
        loop {
            while let Some(b) = sess.poll_transmit() {
                if s.write_all(&b).await.is_err() {
                    return got_fetch;
                }
            }
            while let Some(e) = sess.poll_event() {
                match e {
                    Event::Established { .. } => {
                        let _ = announced_tx.send(());
                    }
                    Event::Fetch { .. } => got_fetch = true,
                    _ => {}
                }
            }
            match tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => {
                    let _ = sess.handle_bytes(&buf[..n]);
                }
                _ => return got_fetch,
            }
        }
    });
    (task, announced_rx)
}

/// A peer with only tcp-testing-only cannot check a `noise` key, nor the
/// designator of a transport it does not know (here a made-up `onion`): an
/// unauthenticated connection announcing such a locator must be refused,
/// or a later sturdyref to that peer would find the impostor's session
/// (sessions are found by announced location) and hand it the Swiss
/// number, where it should fail for want of a netlayer.
#[test]
fn unauthenticated_connection_cannot_claim_a_transport_we_cannot_check() {
    use pola_netlayer::TcpTestingOnly;

    let rt = runtime();
    let _in_rt = rt.enter();
    let tcp = rt.block_on(TcpTestingOnly::bind("127.0.0.1", 0)).unwrap();
    let port: u16 = tcp.location().hints["port"].parse().unwrap();
    let vat = Vat::new("caller");
    let caller = Peer::start(vat.clone(), vec![Arc::new(tcp)], PeerConfig::default()).unwrap();
    let key = Identity::generate().unwrap().public_key().to_designator();
    for transport in ["noise", "onion"] {
        let claimed =
            PeerLocator::new(transport, key.clone(), Hints::Map(Default::default())).unwrap();
        let (attacker, announced) = claim_over_tcp(&rt, port, claimed.clone());
        // The caller's start message arrives either way; then give it time
        // to settle before looking the claimed peer up.
        let _ = announced.recv_timeout(Duration::from_secs(2));
        std::thread::sleep(Duration::from_millis(200));
        let far = caller.handle().enliven(SturdyRef {
            peer: claimed,
            swiss: Swiss::new(&b"the victim's secret"[..]),
        });
        let answer = vat.send(&far, "get", vec![]);
        let got = vat.block_on(&answer, T);
        assert!(got.is_err(), "{transport}: answered {got:?}");
        let got_fetch = rt.block_on(attacker).unwrap();
        assert!(
            !got_fetch,
            "{transport}: the impostor received the Swiss number"
        );
    }
    rt.block_on(caller.shutdown());
    vat.shutdown();
}
