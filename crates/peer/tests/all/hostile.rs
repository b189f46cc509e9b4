//! Hostile and broken peers against a pola peer over real TCP: garbage
//! bytes, a silent connection, a peer that stops reading, too many
//! connections. Each must cost the victim one session at most, never the
//! peer.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pola_captp::Dialect;
use pola_captp::QuestionPosition;
use pola_captp::locator::{Hints, PeerLocator, SturdyRef, Swiss};
use pola_captp::session::{CapRef, Event, Session, SessionConfig};
use pola_netlayer::TcpTestingOnly;
use pola_peer::{Peer, PeerConfig};
use pola_syrup::{Decoder, Value};
use pola_test_peer::{ECHO, PROMISE_RESOLVER};
use pola_testkit::runtime;
use pola_vat::Vat;

const T: Duration = Duration::from_secs(10);

struct Victim {
    rt: tokio::runtime::Runtime,
    vat: Vat,
    peer: Peer,
}

impl Victim {
    fn new(config: PeerConfig) -> Victim {
        let rt = runtime();
        let net = rt.block_on(TcpTestingOnly::bind("127.0.0.1", 0)).unwrap();
        let _g = rt.enter();
        let vat = Vat::new("victim");
        let peer = Peer::start(vat.clone(), vec![Arc::new(net)], config).unwrap();
        pola_test_peer::host(&peer.handle(), &vat);
        Victim { rt, vat, peer }
    }

    fn addr(&self) -> String {
        pola_testkit::captp::tcp_addr(self.peer.location())
    }

    fn live_sessions(&self) -> usize {
        let s = self.rt.block_on(self.peer.stats()).unwrap();
        s.sessions.iter().filter(|s| !s.terminated).count()
    }

    /// A well-behaved pola client can still use the victim.
    fn still_serves(&self) {
        let net = self
            .rt
            .block_on(TcpTestingOnly::bind("127.0.0.1", 0))
            .unwrap();
        let _g = self.rt.enter();
        let vat = Vat::new("client");
        let client = Peer::start(vat.clone(), vec![Arc::new(net)], PeerConfig::default()).unwrap();
        let echo = client.enliven(SturdyRef {
            peer: self.peer.location().clone(),
            swiss: Swiss::new(ECHO.as_bytes().to_vec()),
        });
        let a = vat.send(&echo, "", vec![Value::int(5i64)]);
        assert_eq!(
            vat.block_on(&a, T).unwrap(),
            Value::List(vec![Value::int(5i64)])
        );
        self.rt.block_on(client.shutdown());
        vat.shutdown();
    }

    fn stop(self) {
        self.rt.block_on(self.peer.shutdown());
        self.vat.shutdown();
    }
}

/// Reads whole Syrup values until end of stream (or `T`).
fn read_all_values(s: &mut TcpStream) -> Vec<Value> {
    s.set_read_timeout(Some(T)).unwrap();
    let mut d = Decoder::new();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                d.feed(&buf[..n]);
                while let Ok(Some(v)) = d.next_value() {
                    out.push(v);
                }
            }
        }
    }
    out
}

fn label(v: &Value) -> Option<&str> {
    v.as_record().and_then(|r| r.label.as_symbol())
}

#[test]
fn garbage_gets_abort_and_close() {
    let victim = Victim::new(PeerConfig::default());
    let mut s = TcpStream::connect(victim.addr()).unwrap();
    s.write_all(b"<10'op:deliver 99999999999999999999999999:")
        .unwrap();
    s.write_all(b"this is not syrup at all").unwrap();
    let got = read_all_values(&mut s);
    let labels: Vec<_> = got.iter().filter_map(label).collect();
    assert_eq!(labels.first(), Some(&"op:start-session"), "{labels:?}");
    assert_eq!(labels.last(), Some(&"op:abort"), "{labels:?}");
    victim.still_serves();
    victim.stop();
}

#[test]
fn silent_connection_times_out() {
    let victim =
        Victim::new(PeerConfig::default().with_handshake_timeout(Duration::from_millis(200)));
    let mut s = TcpStream::connect(victim.addr()).unwrap();
    let start = Instant::now();
    let got = read_all_values(&mut s);
    let labels: Vec<_> = got.iter().filter_map(label).collect();
    assert_eq!(labels, vec!["op:start-session", "op:abort"]);
    assert!(start.elapsed() < Duration::from_secs(5));
    victim.still_serves();
    victim.stop();
}

#[test]
fn connection_cap_refuses_extra_connections() {
    // Four slots: one is kept for the victim's own dials, three inbound.
    let victim = Victim::new(PeerConfig::default().with_max_sessions(4));
    let held: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(victim.addr()).unwrap())
        .collect();
    let start = Instant::now();
    while victim.live_sessions() < 3 {
        assert!(start.elapsed() < T);
        std::thread::sleep(Duration::from_millis(10));
    }
    // The fourth is accepted by the OS and closed by the peer unread.
    let mut extra = TcpStream::connect(victim.addr()).unwrap();
    let got = read_all_values(&mut extra);
    assert!(got.is_empty(), "{got:?}");
    assert_eq!(victim.live_sessions(), 3);
    drop(held);
    victim.stop();
}

#[test]
fn peer_that_stops_reading_is_cut_off() {
    let victim = Victim::new(PeerConfig::default().with_max_queued_bytes(256 * 1024));
    let mut s = TcpStream::connect(victim.addr()).unwrap();
    // A real CapTP client (the captp engine), driven by hand.
    let me = PeerLocator::new("tcp-testing-only", "hostile", Hints::Absent).unwrap();
    let mut client = Session::new(SessionConfig::new(Dialect::Current, [7u8; 32], me));
    let mut buf = [0u8; 4096];
    s.set_read_timeout(Some(T)).unwrap();
    while let Some(m) = client.poll_transmit() {
        s.write_all(&m).unwrap();
    }
    // Read until the session is open.
    'open: loop {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0);
        client.handle_bytes(&buf[..n]).unwrap();
        while let Some(ev) = client.poll_event() {
            if matches!(ev, Event::Established { .. }) {
                break 'open;
            }
        }
    }
    // Fetch the echo and, pipelined on the answer, ask it to echo 64 KiB
    // again and again, never reading a reply.
    let q = client.fetch(&Swiss::new(ECHO.as_bytes().to_vec())).unwrap();
    let payload = Value::Bytes(vec![0x55u8; 64 * 1024].into());
    let mut writer = s.try_clone().unwrap();
    let flood = std::thread::spawn(move || {
        let mut sent = 0usize;
        for _ in 0..2000 {
            if client
                .deliver(&CapRef::Question(q), vec![payload.clone()])
                .is_err()
            {
                break;
            }
            while let Some(m) = client.poll_transmit() {
                if writer.write_all(&m).is_err() {
                    return sent;
                }
                sent += m.len();
            }
        }
        sent
    });
    // The victim gives up on this session (its queue passed the cap)
    // instead of buffering 128 MiB of answers.
    let start = Instant::now();
    loop {
        let stats = victim.rt.block_on(victim.peer.stats()).unwrap();
        let hostile_gone = stats
            .sessions
            .iter()
            .all(|s| s.terminated || s.peer.as_ref().is_none_or(|p| p.designator() != "hostile"));
        if hostile_gone {
            break;
        }
        assert!(start.elapsed() < T, "the flooding session is still alive");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(s);
    let sent = flood.join().unwrap();
    assert!(sent < 128 << 20);
    victim.still_serves();
    victim.stop();
}

/// Opens a real session (the captp engine signs our `op:start-session`),
/// then writes `raw` as is; returns every value the victim sent after its
/// own `op:start-session`, up to end of stream.
fn after_handshake(victim: &Victim, raw: &[u8]) -> Vec<Value> {
    let mut s = TcpStream::connect(victim.addr()).unwrap();
    let me = PeerLocator::new("tcp-testing-only", "prober", Hints::Absent).unwrap();
    let mut client = Session::new(SessionConfig::new(Dialect::Current, [9u8; 32], me));
    while let Some(m) = client.poll_transmit() {
        s.write_all(&m).unwrap();
    }
    s.write_all(raw).unwrap();
    let mut got = read_all_values(&mut s);
    if got.first().and_then(label) == Some("op:start-session") {
        got.remove(0);
    }
    got
}

#[test]
fn protocol_violations_abort_only_their_session() {
    let victim = Victim::new(PeerConfig::default());
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "unknown export",
            text("<op:deliver <desc:export 99> [] f f>"),
        ),
        (
            "unknown answer",
            text("<op:deliver <desc:answer 5> [] f f>"),
        ),
        ("gc of an unknown export", text("<op:gc-exports [7] [1]>")),
        (
            "gc lists of unequal length",
            text("<op:gc-exports [0 1] [1]>"),
        ),
        (
            "listen with a bad listener",
            text("<op:listen <desc:export 0> <desc:export 0>>"),
        ),
        ("unknown operation", text("<op:bogus 1 2 3>")),
        ("not a record", text("[1 2 3]")),
        (
            "answer position reused",
            [
                text("<op:deliver <desc:export 0> ['fetch :00] 1 <desc:import-object 1>>"),
                text("<op:deliver <desc:export 0> ['fetch :00] 1 <desc:import-object 2>>"),
            ]
            .concat(),
        ),
        ("nesting too deep", deep.into_bytes()),
        ("declared length of a terabyte", b"1099511627776:".to_vec()),
    ];
    for (what, raw) in cases {
        let got = after_handshake(&victim, &raw);
        assert_eq!(
            got.last().and_then(label),
            Some("op:abort"),
            "{what}: the victim should abort, got {got:?}"
        );
    }
    victim.still_serves();
    victim.stop();
}

fn text(t: &str) -> Vec<u8> {
    pola_syrup::encode(&pola_syrup::text::parse(t).unwrap())
}

/// A connection to the victim from a chosen loopback source address.
fn connect_from(victim: &Victim, source: &str) -> TcpStream {
    let addr: std::net::SocketAddr = victim.addr().parse().unwrap();
    let source: std::net::SocketAddr = format!("{source}:0").parse().unwrap();
    let s = victim.rt.block_on(async {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind(source).unwrap();
        sock.connect(addr).await.unwrap()
    });
    let s = s.into_std().unwrap();
    s.set_nonblocking(false).unwrap();
    s
}

fn wait_for_sessions(victim: &Victim, n: usize) {
    let start = Instant::now();
    while victim.live_sessions() < n {
        assert!(
            start.elapsed() < T,
            "only {} sessions",
            victim.live_sessions()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn one_host_cannot_take_every_slot() {
    let victim = Victim::new(
        PeerConfig::default()
            .with_max_sessions(16)
            .with_max_sessions_per_source(3),
    );
    // One attacking host (127.0.0.2) opens many connections and idles.
    let held: Vec<TcpStream> = (0..8).map(|_| connect_from(&victim, "127.0.0.2")).collect();
    wait_for_sessions(&victim, 3);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(victim.live_sessions(), 3, "only its quota is accepted");
    // Another host is still served.
    victim.still_serves();
    drop(held);
    victim.stop();
}

#[test]
fn adaptive_cap_lends_free_slots_to_one_address_and_takes_them_back() {
    use pola_captp::endpoint::SourceCap;
    let victim = Victim::new(
        PeerConfig::default()
            .with_max_sessions(16)
            .with_max_sessions_per_source(3)
            .with_source_cap(SourceCap::Adaptive),
    );
    // Many users behind one address (127.0.0.2) take every inbound slot
    // (16 less the 2 kept for the victim's dials), well past their cap of 3.
    let mut nat: Vec<TcpStream> = (0..14)
        .map(|_| connect_from(&victim, "127.0.0.2"))
        .collect();
    wait_for_sessions(&victim, 14);
    // A 15th user there finds no free slot: refused, nothing sent.
    let mut refused = connect_from(&victim, "127.0.0.2");
    assert!(read_all_values(&mut refused).is_empty(), "no 15th");
    // Another address is under its cap: it takes a borrowed slot back.
    let mut other = connect_from(&victim, "127.0.0.3");
    other.set_read_timeout(Some(T)).unwrap();
    let mut buf = [0u8; 1];
    other.read_exact(&mut buf).unwrap();
    let mut reclaimed = Vec::new();
    for (i, s) in nat.iter_mut().enumerate() {
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut d = Decoder::new();
        let mut chunk = [0u8; 4096];
        let start = Instant::now();
        // Each has our op:start-session; the reclaimed one an op:abort too.
        while start.elapsed() < Duration::from_secs(1) {
            match s.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => d.feed(&chunk[..n]),
                Err(_) => break,
            }
        }
        while let Ok(Some(v)) = d.next_value() {
            if label(&v) == Some("op:abort") {
                reclaimed.push((i, v));
            }
        }
    }
    assert_eq!(reclaimed.len(), 1, "{reclaimed:?}");
    let why = &reclaimed[0].1.as_record().unwrap().fields[0];
    assert_eq!(why, &Value::str("slot reclaimed for another source"));
    // And a well-behaved client from a third address is served.
    victim.still_serves();
    drop(nat);
    victim.stop();
}

#[test]
fn inbound_connections_cannot_lock_out_our_own_dials() {
    let victim = Victim::new(PeerConfig::default().with_max_sessions(4));
    // Every inbound slot taken (three, from three hosts)...
    let held: Vec<TcpStream> = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
        .iter()
        .map(|ip| connect_from(&victim, ip))
        .collect();
    wait_for_sessions(&victim, 3);
    let mut extra = connect_from(&victim, "127.0.0.5");
    assert!(read_all_values(&mut extra).is_empty(), "no fourth inbound");
    // ...yet the victim can still dial out to another peer.
    let other = Victim::new(PeerConfig::default());
    let _g = victim.rt.enter();
    let echo = victim.peer.enliven(SturdyRef {
        peer: other.peer.location().clone(),
        swiss: Swiss::new(ECHO.as_bytes().to_vec()),
    });
    let a = victim.vat.send(&echo, "", vec![Value::int(7i64)]);
    assert_eq!(
        victim.vat.block_on(&a, T).unwrap(),
        Value::List(vec![Value::int(7i64)])
    );
    drop(held);
    other.stop();
    victim.stop();
}

/// Opens a session with the victim by hand (the captp engine signs our
/// `op:start-session`) and reads until it is established.
fn open_session(victim: &Victim, name: &str, seed: u8) -> (TcpStream, Session) {
    let mut s = TcpStream::connect(victim.addr()).unwrap();
    let me = PeerLocator::new("tcp-testing-only", name, Hints::Absent).unwrap();
    let mut client = Session::new(SessionConfig::new(Dialect::Current, [seed; 32], me));
    while let Some(m) = client.poll_transmit() {
        s.write_all(&m).unwrap();
    }
    s.set_read_timeout(Some(T)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed before the session opened");
        client.handle_bytes(&buf[..n]).unwrap();
        while let Some(ev) = client.poll_event() {
            if matches!(ev, Event::Established { .. }) {
                return (s, client);
            }
        }
    }
}

/// The reason of an `op:abort`.
fn abort_reason(v: &Value) -> Option<&str> {
    let r = v.as_record()?;
    (r.label.as_symbol()? == "op:abort").then(|| r.fields.first()?.as_str())?
}

/// Whether the victim still lists a session (ended or not) with `name`.
fn has_session(victim: &Victim, name: &str) -> bool {
    let stats = victim.rt.block_on(victim.peer.stats()).unwrap();
    stats
        .sessions
        .iter()
        .any(|s| s.peer.as_ref().is_some_and(|p| p.designator() == name))
}

#[test]
fn a_quiet_session_is_closed_once_idle_and_says_why() {
    let idle = Duration::from_millis(300);
    let victim = Victim::new(PeerConfig::default().with_idle_timeout(idle));
    // Timed from before the handshake: the victim's clock starts later,
    // when it has our hello.
    let opened = Instant::now();
    let (mut s, _client) = open_session(&victim, "quiet", 11);
    // The peer finished the handshake and says nothing more.
    let got = read_all_values(&mut s);
    let waited = opened.elapsed();
    assert_eq!(
        got.last().and_then(abort_reason),
        Some("idle for too long"),
        "{got:?}"
    );
    assert!(
        waited >= idle,
        "closed after {waited:?}, before the timeout"
    );
    assert!(waited < T, "never closed");
    // The slot is given back, and others are still served.
    let start = Instant::now();
    while has_session(&victim, "quiet") {
        assert!(start.elapsed() < T, "the idle session is still listed");
        std::thread::sleep(Duration::from_millis(20));
    }
    victim.still_serves();
    victim.stop();
}

/// Sends what `client` queued and reads until question `q` is answered.
fn answer_of(
    s: &mut TcpStream,
    client: &mut Session,
    q: QuestionPosition,
) -> Result<Value<CapRef>, Value<CapRef>> {
    while let Some(m) = client.poll_transmit() {
        s.write_all(&m).unwrap();
    }
    let mut buf = [0u8; 4096];
    loop {
        while let Some(ev) = client.poll_event() {
            if let Event::Answer { question, result } = ev
                && question == q
            {
                return result;
            }
        }
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed before the answer");
        client.handle_bytes(&buf[..n]).unwrap();
    }
}

#[test]
fn a_session_the_peer_awaits_is_not_idle() {
    let idle = Duration::from_millis(200);
    let victim = Victim::new(PeerConfig::default().with_idle_timeout(idle));
    let (mut s, mut client) = open_session(&victim, "waiting", 12);
    // A promise on the victim that nothing resolves, and a message sent to
    // it: the victim hosts an answer we wait for, so our silence is not
    // idleness.
    let maker = client
        .fetch(&Swiss::new(PROMISE_RESOLVER.as_bytes().to_vec()))
        .unwrap();
    let pair = client.deliver(&CapRef::Question(maker), vec![]).unwrap();
    let Ok(Value::List(pair)) = answer_of(&mut s, &mut client, pair) else {
        panic!("not a pair")
    };
    let Some(Value::Ref(promise)) = pair.first().cloned() else {
        panic!("no promise in {pair:?}")
    };
    let q = client.deliver(&promise, vec![Value::sym("hi")]).unwrap();
    while let Some(m) = client.poll_transmit() {
        s.write_all(&m).unwrap();
    }
    std::thread::sleep(idle * 6);
    assert!(has_session(&victim, "waiting"), "closed while we waited");
    // Settle it (through the resolver): the victim owes nothing any more,
    // and once we have the answer and are quiet, we are idle.
    let Some(Value::Ref(resolver)) = pair.get(1).cloned() else {
        panic!("no resolver in {pair:?}")
    };
    client
        .deliver_only(&resolver, vec![Value::sym("fulfill"), Value::int(5i64)])
        .unwrap();
    // The message queued on the promise breaks (5 is not a reference).
    let broken = answer_of(&mut s, &mut client, q);
    assert!(broken.is_err(), "{broken:?}");
    let got = read_all_values(&mut s);
    assert_eq!(
        got.last().and_then(abort_reason),
        Some("idle for too long"),
        "{got:?}"
    );
    victim.stop();
}

#[test]
fn a_session_holding_the_peers_references_is_kept_alive() {
    // Both sides close idle sessions after 1 s; the client holds a far
    // reference to the server's echo, so it pokes the server while quiet
    // and the same reference still works long after. (The client pokes
    // after half the timeout, at its next tick: a quarter of a second of
    // slack for a busy machine.)
    let idle = Duration::from_secs(1);
    let server = Victim::new(PeerConfig::default().with_idle_timeout(idle));
    let client = Victim::new(PeerConfig::default().with_idle_timeout(idle));
    let _g = client.rt.enter();
    let echo = client.peer.enliven(SturdyRef {
        peer: server.peer.location().clone(),
        swiss: Swiss::new(ECHO.as_bytes().to_vec()),
    });
    let call = |n: i64| {
        let a = client.vat.send(&echo, "", vec![Value::int(n)]);
        client.vat.block_on(&a, T)
    };
    assert_eq!(call(1).unwrap(), Value::List(vec![Value::int(1i64)]));
    std::thread::sleep(idle * 3);
    assert_eq!(
        call(2).unwrap(),
        Value::List(vec![Value::int(2i64)]),
        "the far reference broke: the session was closed as idle"
    );
    drop(_g);
    server.stop();
    client.stop();
}

#[test]
fn a_message_that_stalls_or_trickles_is_cut_off() {
    let slow = Duration::from_millis(500);
    let victim = Victim::new(
        PeerConfig::default()
            .with_message_timeout(slow)
            .with_idle_timeout(Duration::from_secs(60)),
    );
    // A message of 4 KiB, of which half arrives, then nothing.
    let message = text(&format!(
        "<op:deliver <desc:export 0> [\"{}\"] f f>",
        "x".repeat(4096)
    ));
    let (mut s, _c) = open_session(&victim, "staller", 14);
    // Timed from before the first byte leaves: the victim's clock starts
    // when it arrives.
    let started = Instant::now();
    s.write_all(&message[..2048]).unwrap();
    let got = read_all_values(&mut s);
    assert_eq!(
        got.last().and_then(abort_reason),
        Some("message too slow"),
        "{got:?}"
    );
    assert!(started.elapsed() >= slow);

    // The same message a byte every 20 ms: bytes keep coming, so the
    // session is never silent, but the message is not done in time.
    let (s, _c) = open_session(&victim, "trickler", 15);
    let mut w = s.try_clone().unwrap();
    let started = Instant::now();
    let trickle = std::thread::spawn(move || {
        for b in &message {
            if w.write_all(std::slice::from_ref(b)).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let mut s = s;
    let got = read_all_values(&mut s);
    assert_eq!(
        got.last().and_then(abort_reason),
        Some("message too slow"),
        "{got:?}"
    );
    assert!(started.elapsed() >= slow);
    assert!(started.elapsed() < T);
    drop(s);
    trickle.join().unwrap();
    victim.still_serves();
    victim.stop();
}

/// Opens a session named `name` and, on a thread, sends the echo 64 KiB
/// messages (up to 2000) without reading the answers, until writing fails.
fn flood_without_reading(
    victim: &Victim,
    name: &str,
    seed: u8,
) -> (TcpStream, std::thread::JoinHandle<()>) {
    let (s, mut client) = open_session(victim, name, seed);
    let q = client.fetch(&Swiss::new(ECHO.as_bytes().to_vec())).unwrap();
    let payload = Value::Bytes(vec![0x55u8; 64 * 1024].into());
    let mut writer = s.try_clone().unwrap();
    let flood = std::thread::spawn(move || {
        for _ in 0..2000 {
            if client
                .deliver(&CapRef::Question(q), vec![payload.clone()])
                .is_err()
            {
                return;
            }
            while let Some(m) = client.poll_transmit() {
                if writer.write_all(&m).is_err() {
                    return;
                }
            }
        }
    });
    (s, flood)
}

#[test]
fn a_peer_that_stops_reading_gets_an_abort_when_it_reads_again_and_its_slot_back() {
    let victim = Victim::new(PeerConfig::default().with_max_queued_bytes(256 * 1024));
    let (s, flood) = flood_without_reading(&victim, "deaf", 16);
    // Wait until the victim gives up on us (the session is listed as ended,
    // or no longer listed at all: it may be removed between two looks)...
    let start = Instant::now();
    let mut seen = false;
    loop {
        let stats = victim.rt.block_on(victim.peer.stats()).unwrap();
        let deaf = stats
            .sessions
            .iter()
            .find(|s| s.peer.as_ref().is_some_and(|p| p.designator() == "deaf"));
        let ended = match deaf {
            Some(s) => {
                seen = true;
                s.terminated
            }
            None => seen,
        };
        if ended {
            break;
        }
        assert!(start.elapsed() < T, "the deaf session is still alive");
        std::thread::sleep(Duration::from_millis(5));
    }
    // ...then read again at once: the stream ends with its op:abort.
    let mut s = s;
    let got = read_all_values(&mut s);
    assert_eq!(
        got.last().and_then(abort_reason),
        Some("peer is not reading"),
        "{} values, the last {:?}",
        got.len(),
        got.last().map(label)
    );
    drop(s);
    flood.join().unwrap();
    victim.still_serves();
    victim.stop();
}

#[test]
fn a_peer_that_never_reads_again_is_dropped_without_holding_its_slot() {
    let victim = Victim::new(PeerConfig::default().with_max_queued_bytes(256 * 1024));
    let (s, flood) = flood_without_reading(&victim, "gone", 17);
    // We keep the socket open and never read: the victim must still let
    // go of the session (its writer gives up after the close grace).
    let start = Instant::now();
    while has_session(&victim, "gone") || start.elapsed() < Duration::from_millis(100) {
        assert!(
            start.elapsed() < T,
            "the session of a peer that never reads is held"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    flood.join().unwrap();
    drop(s);
    victim.still_serves();
    victim.stop();
}

/// A value of `n` one-byte atoms: small on the wire, big once decoded.
fn atoms(n: usize) -> Value<CapRef> {
    Value::List(vec![Value::Bool(true); n])
}

/// Calls echo with big arguments and keeps every answer (never sends
/// `op:gc-answers`) until the victim aborts; returns its reason.
fn keep_answers_until_cut(s: &mut TcpStream, client: &mut Session, calls: usize) -> String {
    let fetch = client.fetch(&Swiss::new(ECHO.as_bytes().to_vec())).unwrap();
    let echo = CapRef::Question(fetch);
    for _ in 0..calls {
        // ~1 MiB decoded, 16 KiB on the wire.
        client.deliver(&echo, vec![atoms(16 << 10)]).unwrap();
        while let Some(m) = client.poll_transmit() {
            if s.write_all(&m).is_err() {
                break;
            }
        }
    }
    let got = read_all_values(s);
    got.last()
        .and_then(abort_reason)
        .unwrap_or("(no abort)")
        .to_owned()
}

/// Waits until the victim's sessions hold no bytes (they were all given
/// back), or fails.
fn wait_held_zero(victim: &Victim) {
    let start = Instant::now();
    loop {
        let held = victim.rt.block_on(victim.peer.stats()).unwrap().held_bytes;
        if held == 0 {
            return;
        }
        assert!(start.elapsed() < T, "{held} bytes still held");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_peer_that_keeps_its_answers_is_cut_at_its_memory_budget() {
    let victim = Victim::new(PeerConfig::default().with_held_budget(8 << 20, 64 << 20));
    let (mut s, mut client) = open_session(&victim, "hoarder", 21);
    let reason = keep_answers_until_cut(&mut s, &mut client, 40);
    assert!(
        reason.starts_with("over memory budget"),
        "not cut for memory: {reason}"
    );
    wait_held_zero(&victim);
    victim.still_serves();
    victim.stop();
}

#[test]
fn many_hoarders_share_one_budget_and_a_modest_peer_is_spared() {
    let victim = Victim::new(PeerConfig::default().with_held_budget(64 << 20, 16 << 20));
    // A modest session that keeps one small answer throughout.
    let (mut ms, mut modest) = open_session(&victim, "modest", 30);
    let fetch = modest.fetch(&Swiss::new(ECHO.as_bytes().to_vec())).unwrap();
    let q = modest
        .deliver(&CapRef::Question(fetch), vec![atoms(16)])
        .unwrap();
    assert!(answer_of(&mut ms, &mut modest, q).is_ok());
    let hoarders: Vec<_> = (0..6u8)
        .map(|i| {
            let (s, c) = open_session(&victim, &format!("hoarder{i}"), 40 + i);
            std::thread::spawn(move || {
                let (mut s, mut c) = (s, c);
                keep_answers_until_cut(&mut s, &mut c, 40)
            })
        })
        .collect();
    for h in hoarders {
        let reason = h.join().unwrap();
        assert!(
            reason.starts_with("over shared memory budget"),
            "not cut for memory: {reason}"
        );
    }
    // The modest peer is still served on its own session.
    let q = modest
        .deliver(&CapRef::Question(fetch), vec![atoms(16)])
        .unwrap();
    assert!(answer_of(&mut ms, &mut modest, q).is_ok());
    drop(ms);
    wait_held_zero(&victim);
    victim.stop();
}
