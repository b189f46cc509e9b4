//! Plain TCP sessions read on the vat's own thread: that they are, that a
//! second peer on the same vat falls back to runtime readers and still
//! works, that the poll-before-sleep does not keep burning a CPU once
//! traffic stops, and that calls on one connection get through while
//! another floods the vat.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pola_captp::locator::{SturdyRef, Swiss};
use pola_netlayer::TcpTestingOnly;
use pola_peer::{Peer, PeerConfig, PeerStats};
use pola_syrup::Value;
use pola_test_peer::ECHO;
use pola_testkit::runtime;
use pola_vat::{Val, Vat, from_fn};

const T: Duration = Duration::from_secs(20);

fn start(rt: &tokio::runtime::Runtime, vat: &Vat) -> Peer {
    let net = rt.block_on(TcpTestingOnly::bind("127.0.0.1", 0)).unwrap();
    let _guard = rt.enter();
    Peer::start(vat.clone(), vec![Arc::new(net)], PeerConfig::default()).unwrap()
}

fn echo_at(peer: &Peer) -> SturdyRef {
    SturdyRef {
        peer: peer.location().clone(),
        swiss: Swiss::new(ECHO.as_bytes().to_vec()),
    }
}

fn call_echo(vat: &Vat, far: &pola_vat::Ref, n: i64) {
    let answer = vat.send(far, "", vec![Value::int(n)]);
    assert_eq!(
        vat.block_on(&answer, T).unwrap(),
        Value::List(vec![Value::int(n)])
    );
}

fn live(stats: &PeerStats) -> Vec<bool> {
    stats
        .sessions
        .iter()
        .filter(|s| !s.terminated)
        .map(|s| s.read_on_vat)
        .collect()
}

#[test]
fn tcp_sessions_are_read_on_the_vat_thread_and_a_second_peer_falls_back() {
    let rt = runtime();
    let (va, vb) = (Vat::new("direct-a"), Vat::new("direct-b"));
    let (a, b) = (start(&rt, &va), start(&rt, &vb));
    pola_test_peer::host(&b.handle(), &vb);
    let echo = a.enliven(echo_at(&b));
    call_echo(&va, &echo, 1);
    assert_eq!(live(&rt.block_on(a.stats()).unwrap()), vec![true]);
    assert_eq!(live(&rt.block_on(b.stats()).unwrap()), vec![true]);

    // A second peer on vat a: the vat already waits on the first peer's
    // sockets, so this one reads on runtime tasks, and works the same.
    let a2 = start(&rt, &va);
    let echo2 = a2.enliven(echo_at(&b));
    for n in 0..50 {
        call_echo(&va, &echo2, n);
        call_echo(&va, &echo, n);
    }
    assert_eq!(live(&rt.block_on(a2.stats()).unwrap()), vec![false]);
    let mut on_b = live(&rt.block_on(b.stats()).unwrap());
    on_b.sort();
    assert_eq!(on_b, vec![true, true]);

    for p in [a, a2, b] {
        rt.block_on(p.shutdown());
    }
    va.shutdown();
    vb.shutdown();
}

/// CPU time (user + system, in clock ticks) of this process's threads
/// named `name`.
fn thread_ticks(name: &str) -> u64 {
    let mut total = 0;
    let mut found = false;
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let dir = task.unwrap().path();
        let Ok(comm) = std::fs::read_to_string(dir.join("comm")) else {
            continue;
        };
        if comm.trim_end() != name {
            continue;
        }
        found = true;
        let stat = std::fs::read_to_string(dir.join("stat")).unwrap();
        // Fields after the parenthesised name: state is field 3, utime 14.
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = after.split(' ').collect();
        total += fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    }
    assert!(found, "no thread named {name}");
    total
}

#[test]
fn a_vat_stops_polling_once_traffic_stops() {
    let rt = runtime();
    let (va, vb) = (Vat::new("spin-a"), Vat::new("spin-b"));
    let (a, b) = (start(&rt, &va), start(&rt, &vb));
    pola_test_peer::host(&b.handle(), &vb);
    let echo = a.enliven(echo_at(&b));
    // Back-to-back calls: the vats' poll windows grow.
    for n in 0..2000 {
        call_echo(&va, &echo, n);
    }
    // Quiet: a few long sleeps shrink the windows to nothing.
    std::thread::sleep(Duration::from_millis(200));
    let before = thread_ticks("vat-spin-a") + thread_ticks("vat-spin-b");
    std::thread::sleep(Duration::from_millis(600));
    let used = thread_ticks("vat-spin-a") + thread_ticks("vat-spin-b") - before;
    // A vat that kept polling would use 60 ticks (at 100 Hz) per thread.
    assert!(used <= 3, "idle vats used {used} ticks in 600 ms");
    rt.block_on(a.shutdown());
    rt.block_on(b.shutdown());
    va.shutdown();
    vb.shutdown();
}

#[test]
fn a_flooding_connection_does_not_starve_another() {
    let rt = runtime();
    let victim = Vat::new("flood-victim");
    let b = start(&rt, &victim);
    let counted = Arc::new(AtomicU64::new(0));
    let c = counted.clone();
    let sink = victim.spawn(from_fn(move |_cx, _m, _args| {
        c.fetch_add(1, Ordering::Relaxed);
        Ok(Val::null())
    }));
    let sink_ref = b.mint_sturdyref(sink).unwrap();
    pola_test_peer::host(&b.handle(), &victim);

    let (vx, vy) = (Vat::new("flooder"), Vat::new("caller"));
    let (x, y) = (start(&rt, &vx), start(&rt, &vy));
    let far_sink = x.enliven(sink_ref);
    let echo = y.enliven(echo_at(&b));
    call_echo(&vy, &echo, 0);
    vx.block_on(&vx.send(&far_sink, "note", vec![]), T).unwrap();

    const FLOOD: u64 = 300_000;
    for i in 0..FLOOD - 1 {
        vx.send_only(&far_sink, "note", vec![Value::int(i as i64)]);
    }
    let start_flood = Instant::now();
    while counted.load(Ordering::Relaxed) < 1000 {
        assert!(start_flood.elapsed() < T, "flood never arrived");
        std::thread::sleep(Duration::from_micros(200));
    }
    // While the flood is being read and run, the other connection's calls
    // still get through.
    for n in 1..=20 {
        call_echo(&vy, &echo, n);
    }
    let done_at = counted.load(Ordering::Relaxed);
    assert!(
        done_at < FLOOD,
        "the calls waited for the whole flood ({done_at} notes)"
    );
    while counted.load(Ordering::Relaxed) < FLOOD {
        assert!(start_flood.elapsed() < T, "flood did not finish");
        std::thread::sleep(Duration::from_millis(5));
    }
    for p in [x, y, b] {
        rt.block_on(p.shutdown());
    }
    for v in [vx, vy, victim] {
        v.shutdown();
    }
}

#[test]
fn held_back_gc_reports_go_out_alone_when_the_vat_goes_quiet() {
    let rt = runtime();
    let (va, vb) = (Vat::new("gc-a"), Vat::new("gc-b"));
    let (a, b) = (start(&rt, &va), start(&rt, &vb));
    pola_test_peer::host(&b.handle(), &vb);
    let echo = a.enliven(echo_at(&b));
    call_echo(&va, &echo, 7);
    // a received the answers on its vat's thread and holds its
    // `op:gc-answers` for a next message that never comes: b frees its
    // answers only if a sends the report on its own.
    let started = Instant::now();
    loop {
        let stats = rt.block_on(b.stats()).unwrap();
        let s = &stats.sessions[0];
        if s.answers == 0 && s.tables.answers == 0 {
            break;
        }
        assert!(started.elapsed() < T, "b still holds answers: {s:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
    rt.block_on(a.shutdown());
    rt.block_on(b.shutdown());
    va.shutdown();
    vb.shutdown();
}

/// A vat that is never idle must still hear its peers: `tasks` objects
/// each keep sending to themselves (one: the usual way to run a long job a
/// turn at a time; thousands: a queue that never gets short). With
/// `claim_waiter_first`, another peer on the vat reads its sockets first,
/// so the peer under test reads on runtime tasks (the control case).
fn answered_while_busy(claim_waiter_first: bool, tasks: usize) -> bool {
    let rt = runtime();
    let (va, vb) = (Vat::new("busy-a"), Vat::new("busy-b"));
    let a = start(&rt, &va);
    let b0 = claim_waiter_first.then(|| start(&rt, &vb));
    let b = start(&rt, &vb);
    pola_test_peer::host(&b.handle(), &vb);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s = stop.clone();
    let spinner = vb.spawn(from_fn(move |cx, _m, _args| {
        if !s.load(Ordering::Relaxed) {
            let me = cx.me().unwrap();
            cx.send_only(&me, "spin", vec![]);
        }
        Ok(Val::null())
    }));
    for _ in 0..tasks {
        vb.send_only(&spinner, "spin", vec![]);
    }
    let echo = a.enliven(echo_at(&b));
    let answer = va.send(&echo, "", vec![Value::int(7i64)]);
    let got = va.block_on(&answer, Duration::from_secs(5));
    stop.store(true, Ordering::Relaxed);
    for p in [Some(a), b0, Some(b)].into_iter().flatten() {
        rt.block_on(p.shutdown());
    }
    va.shutdown();
    vb.shutdown();
    got.is_ok()
}

#[test]
fn a_busy_vat_still_hears_its_direct_peers() {
    assert!(answered_while_busy(false, 1), "no answer: one busy job");
    assert!(answered_while_busy(false, 2000), "no answer: long queue");
}

#[test]
fn a_busy_vat_still_hears_runtime_read_peers() {
    assert!(answered_while_busy(true, 1), "no answer: one busy job");
    assert!(answered_while_busy(true, 2000), "no answer: long queue");
}

/// A client that sends a few bytes and closes at once (both arrive before
/// the vat reads): the peer must see the end and close its side too,
/// long before the handshake timeout.
fn eof_after_data(data: &[u8]) -> bool {
    use std::io::Write;
    let rt = runtime();
    let vb = Vat::new("eof-b");
    let net = rt.block_on(TcpTestingOnly::bind("127.0.0.1", 0)).unwrap();
    let addr = net.local_addr().unwrap();
    let b = {
        let _guard = rt.enter();
        Peer::start(vb.clone(), vec![Arc::new(net)], PeerConfig::default()).unwrap()
    };
    let mut raw = std::net::TcpStream::connect(addr).unwrap();
    raw.write_all(data).unwrap();
    raw.shutdown(std::net::Shutdown::Write).unwrap();
    let closed = peer_closes(&mut raw);
    rt.block_on(b.shutdown());
    vb.shutdown();
    closed
}

#[test]
fn eof_without_data_is_seen() {
    assert!(eof_after_data(b""));
}

#[test]
fn eof_right_after_data_is_seen() {
    for _ in 0..3 {
        assert!(
            eof_after_data(b"<10'op:start"),
            "the peer never saw the end"
        );
    }
}

#[test]
fn sessions_end_when_the_vat_reading_them_stops() {
    let rt = runtime();
    let (va, vb) = (Vat::new("stop-a"), Vat::new("stop-b"));
    let (a, b) = (start(&rt, &va), start(&rt, &vb));
    pola_test_peer::host(&b.handle(), &vb);
    let echo = a.enliven(echo_at(&b));
    call_echo(&va, &echo, 1);
    // b's vat stops while its peer keeps running: nothing will read b's
    // sockets again, so b must end the session (a hears the abort or the
    // close) rather than leave it hanging.
    vb.shutdown();
    let started = Instant::now();
    loop {
        let stats = rt.block_on(a.stats()).unwrap();
        if stats.sessions.iter().all(|s| s.terminated) {
            break;
        }
        assert!(started.elapsed() < T, "a's session outlived b's vat");
        std::thread::sleep(Duration::from_millis(10));
    }
    rt.block_on(a.shutdown());
    rt.block_on(b.shutdown());
    va.shutdown();
}

/// Reads from `raw` until the peer closes (true) or 3 s pass (false).
fn peer_closes(raw: &mut std::net::TcpStream) -> bool {
    use std::io::Read;
    raw.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match raw.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(_) => return false,
        }
    }
}

/// Framed tcp-testing-only: part of a frame, then the close, arrive
/// together. The vat's reader gets one edge (with RDHUP) and must see the
/// cut; the session must end long before the handshake timeout.
#[test]
fn eof_right_after_a_partial_frame_is_seen() {
    use std::io::Write;
    let rt = runtime();
    let vb = Vat::new("eof-framed");
    let net = rt
        .block_on(TcpTestingOnly::bind("127.0.0.1", 0))
        .unwrap()
        .with_framing(pola_netlayer::Framing::ByteString { max_frame: 1 << 20 });
    let addr = net.local_addr().unwrap();
    let b = {
        let _guard = rt.enter();
        Peer::start(vb.clone(), vec![Arc::new(net)], PeerConfig::default()).unwrap()
    };
    let mut raw = std::net::TcpStream::connect(addr).unwrap();
    raw.write_all(b"100:<op:start").unwrap();
    raw.shutdown(std::net::Shutdown::Write).unwrap();
    let closed = peer_closes(&mut raw);
    rt.block_on(b.shutdown());
    vb.shutdown();
    assert!(closed, "the peer never saw the end after a partial frame");
}

/// The same over noise: a complete handshake, then part of a transport
/// frame and the close.
#[test]
fn noise_cut_right_after_a_partial_frame_is_seen() {
    use pola_netlayer::noise::handshake;
    use pola_netlayer::{Identity, NoiseNetlayer};
    use std::io::{Read, Write};
    let rt = runtime();
    let vb = Vat::new("eof-noise");
    let server_id = Identity::generate().unwrap();
    let server_key = server_id.public_key();
    let net = rt
        .block_on(NoiseNetlayer::bind(server_id, "127.0.0.1", 0))
        .unwrap();
    let addr = net.local_addr();
    let b = {
        let _guard = rt.enter();
        Peer::start(vb.clone(), vec![Arc::new(net)], PeerConfig::default()).unwrap()
    };
    let me = Identity::generate().unwrap();
    let (awaiting, syn) = handshake::initiate(&me, server_key).unwrap();
    let mut raw = std::net::TcpStream::connect(addr).unwrap();
    let frame = |m: &[u8]| {
        let mut f = (m.len() as u16).to_be_bytes().to_vec();
        f.extend_from_slice(m);
        f
    };
    raw.write_all(&frame(&syn)).unwrap();
    let mut len = [0u8; 2];
    raw.read_exact(&mut len).unwrap();
    let mut synack = vec![0u8; u16::from_be_bytes(len) as usize];
    raw.read_exact(&mut synack).unwrap();
    let (_established, ack) = awaiting.read_synack(&synack).unwrap();
    // The ack, then a header announcing 100 bytes and 10 of them, then FIN.
    let mut tail = frame(&ack);
    tail.extend_from_slice(&[0, 100]);
    tail.extend_from_slice(&[7u8; 10]);
    raw.write_all(&tail).unwrap();
    raw.shutdown(std::net::Shutdown::Write).unwrap();
    let closed = peer_closes(&mut raw);
    rt.block_on(b.shutdown());
    vb.shutdown();
    assert!(closed, "the peer never saw the cut after a partial frame");
}
