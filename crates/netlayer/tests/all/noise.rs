//! The `noise` netlayer over real loopback TCP, against a hostile network:
//! a man in the middle with another key, replayed handshakes, tampered,
//! replayed, reordered, dropped and truncated frames, a dialler that stalls
//! mid-handshake, and a flood of half-open handshakes.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use pola_netlayer::noise::handshake::{self, SYN_LEN};
use pola_netlayer::noise::{
    Identity, IdentityError, NoiseConfig, NoiseError, PeerKey, Role, Stage, noise_error,
};
use pola_netlayer::{Connection, Direction, Location, NetError, Netlayer, NoiseNetlayer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

use crate::read_exactly;

async fn bind_with(config: NoiseConfig) -> NoiseNetlayer {
    NoiseNetlayer::bind_with(Identity::generate().unwrap(), "127.0.0.1", 0, config)
        .await
        .unwrap()
}

async fn bind() -> NoiseNetlayer {
    bind_with(NoiseConfig::default()).await
}

fn noise(e: &NetError) -> NoiseError {
    noise_error(e)
        .cloned()
        .unwrap_or_else(|| panic!("not a noise error: {e:?}"))
}

/// `to` reached through another address (a proxy).
fn via(to: &Location, addr: SocketAddr) -> Location {
    let mut l = to.clone();
    l.hints.insert("port".into(), addr.port().to_string());
    l
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[tokio::test]
async fn locator_names_the_key() {
    let id = Identity::generate().unwrap();
    let key = id.public_key();
    let net = NoiseNetlayer::bind(id, "127.0.0.1", 0).await.unwrap();
    let loc = net.location();
    assert_eq!(loc.transport, "noise");
    assert_eq!(loc.designator.len(), 52);
    assert_eq!(PeerKey::from_designator(&loc.designator).unwrap(), key);
    let port = net.local_addr().port();
    assert_eq!(
        loc.to_uri(),
        format!(
            "ocapn://{}.noise?host=127.0.0.1&port={port}",
            loc.designator
        )
    );
}

#[tokio::test]
async fn happy_path_both_ways_with_large_messages() {
    let server = bind().await;
    let client = bind().await;
    let to = server.location().clone();
    let (out, inb) = tokio::join!(
        client.connect_authenticated(&to),
        server.accept_authenticated()
    );
    let (out, inb) = (out.unwrap(), inb.unwrap());
    // Each side learns the other's verified key.
    assert_eq!(out.peer, server.public_key());
    assert_eq!(inb.peer, client.public_key());
    assert_eq!(inb.peer_location().designator, client.location().designator);
    assert_eq!(out.connection.direction, Direction::Outbound);
    assert_eq!(inb.connection.direction, Direction::Inbound);
    assert_eq!(verified_peer(&inb.connection), Some(client.public_key()));
    assert_eq!(verified_peer(&out.connection), Some(server.public_key()));
    // The identity names the peer's own locator (hints aside), no other.
    let auth = inb.connection.authenticated().unwrap();
    assert_eq!(auth.location(), inb.peer_location());
    assert!(auth.names("noise", &client.location().designator));
    assert!(!auth.names("noise", &server.location().designator));
    assert!(!auth.names("tcp-testing-only", &client.location().designator));

    let (mut a, mut b) = (out.connection, inb.connection);
    // 3 MiB + change: many Noise frames per message, both directions at once.
    let big_ab = pattern(3 * 1024 * 1024 + 12345, 1);
    let big_ba = pattern(2 * 1024 * 1024 + 7, 2);
    let (ab, ba) = (big_ab.clone(), big_ba.clone());
    let writer_a = tokio::spawn(async move {
        a.writer.send(&ab).await.unwrap();
        a.writer.send(b"tail").await.unwrap();
        a
    });
    let writer_b = tokio::spawn(async move {
        b.writer.send(&ba).await.unwrap();
        b
    });
    let mut a = writer_a.await.unwrap();
    let mut b = writer_b.await.unwrap();
    let got = read_exactly(b.reader.as_mut(), big_ab.len() + 4)
        .await
        .unwrap();
    assert_eq!(&got[..big_ab.len()], &big_ab[..]);
    assert_eq!(&got[big_ab.len()..], b"tail");
    let got = read_exactly(a.reader.as_mut(), big_ba.len()).await.unwrap();
    assert_eq!(got, big_ba);

    // A clean close is an authenticated end of stream.
    a.writer.close().await.unwrap();
    assert!(b.reader.recv().await.unwrap().is_none());
    assert!(b.reader.recv().await.unwrap().is_none());
}

/// The key a connection's netlayer verified, if it is a `noise` identity.
fn verified_peer(connection: &Connection) -> Option<PeerKey> {
    let auth = connection.authenticated()?;
    assert_eq!(auth.transport(), "noise");
    Some(PeerKey::from_designator(auth.designator()).unwrap())
}

#[tokio::test]
async fn works_through_the_netlayer_trait() {
    let server: Box<dyn Netlayer> = Box::new(bind().await);
    let client: Box<dyn Netlayer> = Box::new(bind().await);
    let to = server.location().clone();
    let (out, inb) = tokio::join!(client.connect(&to), server.accept());
    let (mut out, mut inb) = (out.unwrap(), inb.unwrap());
    let client_key = PeerKey::from_designator(&client.location().designator).unwrap();
    let server_key = PeerKey::from_designator(&server.location().designator).unwrap();
    assert!(client.authenticates() && server.authenticates());
    assert_eq!(verified_peer(&inb), Some(client_key));
    assert_eq!(verified_peer(&out), Some(server_key));
    out.writer.send(b"<op:abort \"x\">").await.unwrap();
    let got = read_exactly(inb.reader.as_mut(), 14).await.unwrap();
    assert_eq!(got, b"<op:abort \"x\">");
    inb.writer.send(b"pong").await.unwrap();
    assert_eq!(read_exactly(out.reader.as_mut(), 4).await.unwrap(), b"pong");
    out.close_gracefully(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn wrong_transport_and_bad_designator_are_refused() {
    let client = bind().await;
    let mut to = bind().await.location().clone();
    to.designator = "not-a-key".into();
    let err = client.connect(&to).await.unwrap_err();
    assert_eq!(noise(&err), NoiseError::BadDesignator);
    to.transport = "tcp-testing-only".into();
    assert!(matches!(
        client.connect(&to).await,
        Err(NetError::WrongTransport { .. })
    ));
}

/// A man in the middle that terminates the handshake with its own key: it
/// rewrites the SYN's cleartext prefix to its own key and answers.
#[tokio::test]
async fn man_in_the_middle_with_another_key_is_refused() {
    let victim = bind().await;
    let client = bind().await;
    let mallory = Identity::generate().unwrap();
    let mallory_key = mallory.public_key();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mitm_addr = listener.local_addr().unwrap();
    let mitm = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut header = [0u8; 2];
        s.read_exact(&mut header).await.unwrap();
        let mut syn = vec![0u8; usize::from(u16::from_be_bytes(header))];
        s.read_exact(&mut syn).await.unwrap();
        syn[..32].copy_from_slice(&mallory.public_key().to_bytes());
        let (_, synack) = handshake::respond(&mallory, &syn).unwrap();
        let mut frame = (synack.len() as u16).to_be_bytes().to_vec();
        frame.extend_from_slice(&synack);
        s.write_all(&frame).await.unwrap();
        // The dialler hangs up instead of sending ACK.
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest).await;
        rest
    });
    let to = via(victim.location(), mitm_addr);
    let err = client.connect(&to).await.unwrap_err();
    match noise(&err) {
        NoiseError::WrongResponder {
            expected,
            presented,
        } => {
            assert_eq!(expected, victim.public_key());
            assert_eq!(presented, mallory_key);
        }
        other => panic!("{other:?}"),
    }
    assert!(
        err.to_string().contains(&victim.location().designator),
        "{err}"
    );
    // Nothing beyond the SYN reached mallory.
    assert!(mitm.await.unwrap().is_empty());
}

/// A peer at the locator's address that is not the locator's key (stale
/// locator, wrong host) refuses the SYN addressed to someone else.
#[tokio::test]
async fn another_peer_at_the_address_is_not_accepted() {
    let real = bind().await;
    let other = bind_with(NoiseConfig {
        handshake_timeout: Duration::from_millis(500),
        ..NoiseConfig::default()
    })
    .await;
    let client = bind().await;
    let mut to = other.location().clone();
    to.designator = real.location().designator.clone();
    let err = client.connect(&to).await.unwrap_err();
    assert_eq!(noise(&err), NoiseError::Truncated { buffered: 0 });
    assert!(
        tokio::time::timeout(Duration::from_millis(200), other.accept())
            .await
            .is_err()
    );
}

/// One-shot, frame-aware TCP proxy: server-to-client bytes pass untouched;
/// client-to-server Noise frames (0 = SYN, 1 = ACK, 2.. = transport) go
/// through `edit`, which returns the frames to forward, or `None` to cut
/// the connection there.
async fn proxy<F>(target: SocketAddr, mut edit: F) -> SocketAddr
where
    F: FnMut(usize, Vec<u8>) -> Option<Vec<Vec<u8>>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (client, _) = listener.accept().await.unwrap();
        let server = TcpStream::connect(target).await.unwrap();
        let (mut cr, mut cw) = client.into_split();
        let (mut sr, mut sw) = server.into_split();
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut sr, &mut cw).await;
            let _ = cw.shutdown().await;
        });
        let mut i = 0;
        loop {
            let mut header = [0u8; 2];
            if cr.read_exact(&mut header).await.is_err() {
                break;
            }
            let mut body = vec![0u8; usize::from(u16::from_be_bytes(header))];
            if cr.read_exact(&mut body).await.is_err() {
                break;
            }
            let Some(frames) = edit(i, body) else { break };
            i += 1;
            for f in frames {
                let mut out = (f.len() as u16).to_be_bytes().to_vec();
                out.extend_from_slice(&f);
                if sw.write_all(&out).await.is_err() {
                    return;
                }
            }
        }
        let _ = sw.shutdown().await;
    });
    addr
}

/// Sends `messages` from a client through a proxy applying `edit`, and
/// returns what the server read before the error that ended the session.
async fn through_proxy<F>(messages: &[&[u8]], edit: F) -> (Vec<u8>, NetError)
where
    F: FnMut(usize, Vec<u8>) -> Option<Vec<Vec<u8>>> + Send + 'static,
{
    let server = bind().await;
    let client = bind().await;
    let p = proxy(server.local_addr(), edit).await;
    let to = via(server.location(), p);
    let (out, inb) = tokio::join!(client.connect(&to), server.accept());
    let (mut out, mut inb) = (out.unwrap(), inb.unwrap());
    for m in messages {
        out.writer.send(m).await.unwrap();
    }
    let mut got = Vec::new();
    let err = loop {
        match inb.reader.recv().await {
            Ok(Some(chunk)) => got.extend_from_slice(&chunk),
            Ok(None) => panic!("clean end after {got:?}"),
            Err(e) => break e,
        }
    };
    // The failure is sticky.
    assert!(inb.reader.recv().await.is_err());
    drop(out);
    (got, err)
}

#[tokio::test]
async fn flipped_byte_in_a_transport_frame_ends_the_session() {
    for at in [0usize, 7, 20] {
        let (got, err) = through_proxy(&[b"first", b"second message"], move |i, mut f| {
            if i == 3 {
                let n = f.len();
                f[at.min(n - 1)] ^= 0x01;
            }
            Some(vec![f])
        })
        .await;
        assert_eq!(got, b"first");
        assert_eq!(noise(&err), NoiseError::Decrypt { nonce: 1 });
    }
}

#[tokio::test]
async fn replayed_frame_ends_the_session() {
    let (got, err) = through_proxy(&[b"pay 10", b"ok"], |i, f| {
        Some(if i == 2 { vec![f.clone(), f] } else { vec![f] })
    })
    .await;
    assert_eq!(got, b"pay 10");
    assert_eq!(noise(&err), NoiseError::Decrypt { nonce: 1 });
}

#[tokio::test]
async fn reordered_frames_end_the_session() {
    let mut held = None;
    let (got, err) = through_proxy(&[b"one", b"two"], move |i, f| {
        Some(match i {
            2 => {
                held = Some(f);
                vec![]
            }
            3 => vec![f, held.take().unwrap()],
            _ => vec![f],
        })
    })
    .await;
    assert!(got.is_empty(), "{got:?} {err:?}");
    assert_eq!(noise(&err), NoiseError::Decrypt { nonce: 0 });
}

#[tokio::test]
async fn dropped_frame_ends_the_session() {
    let (got, err) = through_proxy(&[b"one", b"two"], |i, f| {
        Some(if i == 2 { vec![] } else { vec![f] })
    })
    .await;
    assert!(got.is_empty(), "{got:?} {err:?}");
    assert_eq!(noise(&err), NoiseError::Decrypt { nonce: 0 });
}

#[tokio::test]
async fn truncated_stream_is_not_a_clean_end() {
    // Cut at a frame boundary: the end-of-stream frame never comes.
    let (got, err) = through_proxy(&[b"one", b"two"], |i, f| (i < 3).then(|| vec![f])).await;
    assert_eq!(got, b"one");
    assert_eq!(noise(&err), NoiseError::Truncated { buffered: 0 });
    // Cut mid-frame.
    let (got, err) = through_proxy(&[b"one", b"two"], |i, f| {
        (i < 3).then(|| vec![if i == 2 { f[..5].to_vec() } else { f }])
    })
    .await;
    assert!(got.is_empty(), "{got:?} {err:?}");
    // The shortened frame's header says 5 bytes: shorter than a tag.
    assert_eq!(noise(&err), NoiseError::FrameTooShort { len: 5 });
}

#[tokio::test]
async fn injected_frame_ends_the_session() {
    let (got, err) = through_proxy(&[b"one", b"two"], |i, f| {
        Some(if i == 3 {
            vec![vec![0x55; 40], f]
        } else {
            vec![f]
        })
    })
    .await;
    assert_eq!(got, b"one");
    assert_eq!(noise(&err), NoiseError::Decrypt { nonce: 1 });
}

/// Records a real dialler's handshake, then replays it to the responder: no
/// connection results (the responder's fresh ephemeral key makes the old
/// ACK fail) and the handshake slot is freed.
#[tokio::test]
async fn replayed_handshake_is_refused() {
    let server = bind().await;
    let client = bind().await;
    let recorded = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let rec = recorded.clone();
    let p = proxy(server.local_addr(), move |i, f| {
        rec.lock().unwrap().push(f.clone());
        (i < 3).then(|| vec![f])
    })
    .await;
    let to = via(server.location(), p);
    let (out, inb) = tokio::join!(client.connect(&to), server.accept());
    let (mut out, _inb) = (out.unwrap(), inb.unwrap());
    out.writer.send(b"secret").await.unwrap();
    out.writer.close().await.unwrap();
    while recorded.lock().unwrap().len() < 3 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let frames = recorded.lock().unwrap().clone();

    let mut replay = TcpStream::connect(server.local_addr()).await.unwrap();
    for f in &frames {
        let mut out = (f.len() as u16).to_be_bytes().to_vec();
        out.extend_from_slice(f);
        replay.write_all(&out).await.unwrap();
    }
    // The server answers the replayed SYN with a fresh SYNACK, then drops
    // the connection when the old ACK fails.
    let mut answer = Vec::new();
    let _ = replay.read_to_end(&mut answer).await;
    assert_eq!(answer.len(), 2 + handshake::SYNACK_LEN);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), server.accept())
            .await
            .is_err(),
        "a replayed handshake produced a connection"
    );
    assert_eq!(server.handshakes_in_flight(), 0);
}

/// Waits (bounded) until `f` holds.
async fn eventually(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn stalled_dialler_is_dropped_after_the_timeout() {
    let server = bind_with(NoiseConfig {
        handshake_timeout: Duration::from_millis(300),
        ..NoiseConfig::default()
    })
    .await;
    // Half a SYN, then silence.
    let dialled = Instant::now();
    let mut stall = TcpStream::connect(server.local_addr()).await.unwrap();
    let mut partial = (SYN_LEN as u16).to_be_bytes().to_vec();
    partial.extend_from_slice(&[0u8; 60]);
    stall.write_all(&partial).await.unwrap();
    eventually("slot taken", Duration::from_secs(2), || {
        server.handshakes_in_flight() == 1
    })
    .await;
    // The server closes the stalled connection: we read end of stream.
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(5), stall.read(&mut buf))
        .await
        .expect("stalled connection was never dropped")
        .unwrap_or(0);
    assert_eq!(n, 0);
    // Not before the timeout (which started after we dialled).
    assert!(dialled.elapsed() >= Duration::from_millis(290));
    eventually("slot freed", Duration::from_secs(2), || {
        server.handshakes_in_flight() == 0
    })
    .await;
    // And the listener still serves.
    let client = bind().await;
    let (out, inb) = tokio::join!(client.connect(server.location()), server.accept());
    assert!(out.is_ok() && inb.is_ok());
}

#[tokio::test]
async fn stalled_responder_times_out_the_dialler() {
    let client = bind_with(NoiseConfig {
        handshake_timeout: Duration::from_millis(300),
        ..NoiseConfig::default()
    })
    .await;
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let (s, _) = silent.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(3)).await;
        drop(s);
    });
    let target = bind().await;
    let to = via(target.location(), addr);
    let err = client.connect(&to).await.unwrap_err();
    assert_eq!(noise(&err), NoiseError::HandshakeTimeout);
    hold.abort();
}

/// A flood of half-open handshakes from one address takes at most its
/// per-address share of slots; the rest are closed at once, and a
/// legitimate dialler from another address connects while the flood holds.
#[tokio::test]
async fn half_open_flood_does_not_lock_out_a_legitimate_dialler() {
    let server = bind_with(NoiseConfig {
        handshake_timeout: Duration::from_secs(20),
        max_handshakes: 32,
        max_handshakes_per_ip: 4,
        ..NoiseConfig::default()
    })
    .await;
    let mut flood = Vec::new();
    for i in 0..100 {
        let sock = TcpSocket::new_v4().unwrap();
        sock.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        let mut s = sock.connect(server.local_addr()).await.unwrap();
        if i % 2 == 0 {
            // Some send a partial SYN, others nothing at all.
            let _ = s.write_all(&[0, 164, 1, 2, 3]).await;
        }
        flood.push(s);
    }
    eventually("flood slots taken", Duration::from_secs(5), || {
        server.handshakes_in_flight() == 4
    })
    .await;
    // Excess flood connections were closed without a handshake.
    let mut buf = [0u8; 8];
    let last = flood.last_mut().unwrap();
    let n = tokio::time::timeout(Duration::from_secs(2), last.read(&mut buf))
        .await
        .expect("excess flood connection left open")
        .unwrap_or(0);
    assert_eq!(n, 0);

    let client = bind().await;
    let started = Instant::now();
    let (out, inb) = tokio::join!(
        client.connect_authenticated(server.location()),
        server.accept_authenticated()
    );
    let (out, inb) = (out.unwrap(), inb.unwrap());
    assert_eq!(inb.peer, client.public_key());
    assert_eq!(out.peer, server.public_key());
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(server.handshakes_in_flight(), 4, "flood still held");
    drop(flood);
    eventually("flood slots freed", Duration::from_secs(5), || {
        server.handshakes_in_flight() == 0
    })
    .await;
}

/// Garbage and oversize claims in place of a SYN end the handshake at once.
#[tokio::test]
async fn malformed_handshake_frames_are_refused() {
    let server = bind().await;
    for bytes in [
        vec![0xff, 0xff, 1, 2, 3],               // 65535-byte claim: wrong length
        vec![0, 164],                            // right length, then EOF
        [vec![0, 164], vec![0u8; 164]].concat(), // prefix is not our key
    ] {
        let mut s = TcpStream::connect(server.local_addr()).await.unwrap();
        s.write_all(&bytes).await.unwrap();
        let _ = s.shutdown().await;
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut rest))
            .await
            .expect("server kept a malformed handshake open");
        assert!(rest.is_empty());
    }
    eventually("slots freed", Duration::from_secs(2), || {
        server.handshakes_in_flight() == 0
    })
    .await;
}

#[tokio::test]
async fn identity_survives_restarts() {
    use std::os::unix::fs::PermissionsExt;
    let dir = pola_testkit::TempDir::new("noise-restart");
    let path = dir.join("vat.key");
    let first = Identity::load_or_create(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let net = NoiseNetlayer::bind(first.clone(), "127.0.0.1", 0)
        .await
        .unwrap();
    let designator = net.location().designator.clone();
    drop(net);
    // "Restart": a new netlayer from the same key file has the same locator.
    let again = Identity::load_or_create(&path).unwrap();
    let net = NoiseNetlayer::bind(again, "127.0.0.1", 0).await.unwrap();
    assert_eq!(net.location().designator, designator);
    // No temporary files left behind.
    let entries: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(entries.len(), 1);
}

#[test]
fn key_files_with_wide_permissions_or_bad_contents_are_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = pola_testkit::TempDir::new("noise-refuse");
    let path = dir.join("vat.key");
    let id = Identity::load_or_create(&path).unwrap();
    for mode in [0o640, 0o604, 0o660, 0o644] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        match Identity::load_or_create(&path) {
            Err(IdentityError::Permissions { mode: m, .. }) => assert_eq!(m, mode),
            other => panic!("mode {mode:o}: {other:?}"),
        }
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
    assert_eq!(
        Identity::load_or_create(&path).unwrap().public_key(),
        id.public_key()
    );

    let bad = dir.join("bad.key");
    for contents in [&b""[..], b"garbage", &[0xffu8; 300][..]] {
        std::fs::write(&bad, contents).unwrap();
        std::fs::set_permissions(&bad, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(
            Identity::load_or_create(&bad),
            Err(IdentityError::BadContents(_))
        ));
    }
    // A symlink to a key is not a key file.
    let link = dir.join("link.key");
    std::os::unix::fs::symlink(&path, &link).unwrap();
    assert!(matches!(
        Identity::load_or_create(&link),
        Err(IdentityError::NotAFile(_))
    ));
}

#[test]
fn error_kinds_are_typed() {
    let e = NoiseError::BadSignature(Role::Initiator);
    let net: NetError = e.clone().into();
    assert_eq!(noise_error(&net), Some(&e));
    assert!(noise_error(&NetError::Closed).is_none());
    let _ = Stage::Ack;
}

/// Crossed hellos: both peers dial each other at once. The netlayer does not
/// pick one; both connections complete and each side sees the same verified
/// peer key on its inbound and outbound connection, which is what the peer
/// layer needs to keep one session (it aborts one by CapTP's rule).
#[tokio::test]
async fn crossed_hellos_both_complete_with_the_same_verified_key() {
    let a = bind().await;
    let b = bind().await;
    let (a_out, b_out, a_in, b_in) = tokio::join!(
        a.connect_authenticated(b.location()),
        b.connect_authenticated(a.location()),
        a.accept_authenticated(),
        b.accept_authenticated(),
    );
    let (a_out, b_out, a_in, b_in) = (a_out.unwrap(), b_out.unwrap(), a_in.unwrap(), b_in.unwrap());
    assert_eq!(a_out.peer, b.public_key());
    assert_eq!(a_in.peer, b.public_key());
    assert_eq!(b_out.peer, a.public_key());
    assert_eq!(b_in.peer, a.public_key());
    assert_eq!(a_out.connection.direction, Direction::Outbound);
    assert_eq!(a_in.connection.direction, Direction::Inbound);
    // Both carry data.
    let (mut a_out, mut b_in) = (a_out.connection, b_in.connection);
    a_out.writer.send(b"on the a->b connection").await.unwrap();
    assert_eq!(
        read_exactly(b_in.reader.as_mut(), 22).await.unwrap(),
        b"on the a->b connection"
    );
}
