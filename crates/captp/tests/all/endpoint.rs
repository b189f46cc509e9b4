//! The endpoint attacked: crossed hellos in every arrival order, duplicate
//! and reconnecting sessions, admission floods from one source and from
//! many, and every deadline with the clock driven by hand. Sessions are real
//! (their hellos are signed, sent and checked); only the sockets are absent.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use pola_captp::endpoint::{
    self, Activity, ConnState, Decision, Direction, Endpoint, EndpointConfig, Opening, PeerKey,
    Refused, SourceCap, crossed_hellos_keep_outbound,
};
use pola_captp::{Dialect, Event, Session, SessionConfig};

use crate::sim::loc;

fn key(name: &str) -> PeerKey {
    PeerKey::of(&loc(name))
}

/// One peer: its endpoint (which owns its sessions, by connection id).
struct Side {
    name: &'static str,
    ep: Endpoint<u32>,
    /// Each session's hello, written as it was created.
    hellos: HashMap<u32, Vec<u8>>,
}

impl Side {
    fn new(name: &'static str, mut config: EndpointConfig) -> Side {
        // The simulated transport authenticates nobody.
        config.unauthenticated_transports.insert("sim".to_owned());
        Side {
            name,
            ep: Endpoint::new(config),
            hellos: HashMap::new(),
        }
    }

    fn session(&mut self, conn: u32) -> &mut Session {
        self.ep.session_mut(conn).expect("a session")
    }

    fn open(&mut self, conn: u32, opening: Opening, seed: u8, now: Instant) -> Vec<Decision<u32>> {
        let config = SessionConfig::new(Dialect::Current, [seed; 32], loc(self.name));
        let decisions = self.ep.admit(conn, opening, config, now).unwrap();
        let hello = self.session(conn).poll_transmit().unwrap();
        self.hellos.insert(conn, hello);
        decisions
    }

    fn dial(&mut self, conn: u32, to: &str, seed: u8, now: Instant) {
        let opening = Opening {
            direction: Direction::Outbound,
            source: None,
            dialled: Some(key(to)),
            verified: None,
        };
        assert!(self.open(conn, opening, seed, now).is_empty());
    }

    fn accept(&mut self, conn: u32, seed: u8, now: Instant) {
        let opening = Opening {
            direction: Direction::Inbound,
            source: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            dialled: None,
            verified: None,
        };
        assert!(self.open(conn, opening, seed, now).is_empty());
    }

    /// The peer's `op:start-session` on `conn` arrives (sent by `from`'s
    /// session `from_conn`): the session checks it, the endpoint decides.
    fn hello(&mut self, conn: u32, from: &mut Side, from_conn: u32, now: Instant) -> Vec<u32> {
        let hello = from.hellos.remove(&from_conn).expect("one hello each");
        let ours = self.session(conn);
        if ours.is_terminated() {
            // We aborted this one already: what arrives is ignored.
            return Vec::new();
        }
        ours.handle_bytes(&hello).unwrap();
        let Some(Event::Established {
            peer_location,
            peer_id,
            session_id,
        }) = ours.poll_event()
        else {
            panic!("not established");
        };
        let d = self
            .ep
            .established(conn, PeerKey::of(&peer_location), peer_id, session_id, now);
        self.carry_out(d)
    }

    /// Aborts what the endpoint says; returns the connections aborted.
    fn carry_out(&mut self, decisions: Vec<Decision<u32>>) -> Vec<u32> {
        let mut aborted = Vec::new();
        for d in decisions {
            if let Decision::Abort { conn, reason, .. } = d {
                self.session(conn).abort(reason).unwrap();
                aborted.push(conn);
            }
        }
        aborted
    }
}

fn assert_abort(d: &[Decision<u32>], conn: u32, reason: &str) {
    assert!(
        d.iter()
            .any(|d| matches!(d, Decision::Abort { conn: c, reason: r, .. }
            if *c == conn && *r == reason)),
        "expected abort of {conn} ({reason}): {d:?}"
    );
}

// ----------------------------------------------------------------------
// Crossed hellos
// ----------------------------------------------------------------------

/// Alice and Bob dial each other at once. Link 1 is Alice's dial (her
/// connection 1, his connection 1), link 2 is Bob's (his 2, her 2). The
/// four hellos arrive in `order` (index: 0 Alice hears on 1, 1 Alice hears
/// on 2, 2 Bob hears on 1, 3 Bob hears on 2); then, if `aborts_first`, each
/// side hears the other's aborts before its grace ends, else the graces
/// end first. Returns the link both keep.
fn crossed(seeds: [u8; 4], order: &[usize], aborts_first: bool) -> u32 {
    let t0 = Instant::now();
    let mut alice = Side::new("alice", EndpointConfig::default());
    let mut bob = Side::new("bob", EndpointConfig::default());
    alice.dial(1, "bob", seeds[0], t0);
    bob.accept(1, seeds[1], t0);
    bob.dial(2, "alice", seeds[2], t0);
    alice.accept(2, seeds[3], t0);
    let mut aborted_by_alice = Vec::new();
    let mut aborted_by_bob = Vec::new();
    for &i in order {
        let link = [1, 2, 1, 2][i];
        if i < 2 {
            aborted_by_alice.extend(alice.hello(link, &mut bob, link, t0));
        } else {
            aborted_by_bob.extend(bob.hello(link, &mut alice, link, t0));
        }
    }
    let later = t0 + EndpointConfig::default().settle_grace + Duration::from_millis(1);
    let activity = |_: &Session| Activity::default();
    // Each side's aborts reach the other (op:abort, or the socket closing).
    for round in 0..3 {
        if round > 0 || !aborts_first {
            let d = alice.ep.expire(later, activity);
            aborted_by_alice.extend(alice.carry_out(d));
            let d = bob.ep.expire(later, activity);
            aborted_by_bob.extend(bob.carry_out(d));
        }
        for c in std::mem::take(&mut aborted_by_alice) {
            let d = bob.ep.ended(c);
            aborted_by_bob.extend(bob.carry_out(d));
            alice.ep.ended(c);
        }
        for c in std::mem::take(&mut aborted_by_bob) {
            let d = alice.ep.ended(c);
            aborted_by_alice.extend(alice.carry_out(d));
            bob.ep.ended(c);
        }
    }
    let a = alice.ep.route(&key("bob"));
    let b = bob.ep.route(&key("alice"));
    assert_eq!(a, b, "both keep the same link ({order:?}, {aborts_first})");
    let kept = a.expect("one link survives");
    let lost = 3 - kept;
    for side in [&alice, &bob] {
        assert_eq!(
            side.ep.state(kept),
            Some(ConnState::Serving),
            "{}",
            side.name
        );
        assert_eq!(side.ep.state(lost), Some(ConnState::Ended), "{}", side.name);
    }
    kept
}

fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![Vec::new()];
    }
    let mut out = Vec::new();
    for p in permutations(n - 1) {
        for i in 0..=p.len() {
            let mut q = p.clone();
            q.insert(i, n - 1);
            out.push(q);
        }
    }
    out
}

#[test]
fn crossed_hellos_keep_the_same_link_on_both_sides_in_every_order() {
    // Seeds for which each of the two verdicts comes out.
    let id = |seed: u8| {
        *Session::new(SessionConfig::new(Dialect::Current, [seed; 32], loc("x"))).public_id()
    };
    let mut cases = Vec::new();
    for want_outbound in [true, false] {
        let s = (1u8..=40)
            .find(|&s| crossed_hellos_keep_outbound(&id(s), &id(s + 100)) == want_outbound)
            .unwrap();
        // Alice's key on her dial: s; Bob's key on his dial: s + 100.
        cases.push(([s, 7, s + 100, 9], if want_outbound { 1 } else { 2 }));
    }
    let orders = permutations(4);
    assert_eq!(orders.len(), 24);
    for (seeds, expected) in cases {
        for order in &orders {
            for aborts_first in [true, false] {
                assert_eq!(crossed(seeds, order, aborts_first), expected, "{order:?}");
            }
        }
    }
}

#[test]
fn crossed_hellos_verdict_is_antisymmetric() {
    let x = pola_captp::crypto::PublicId([1; 32]);
    let y = pola_captp::crypto::PublicId([2; 32]);
    assert!(!crossed_hellos_keep_outbound(&x, &y));
    assert!(crossed_hellos_keep_outbound(&y, &x));
    // Equal identifiers cannot come from two fresh keys; either way exactly
    // one side would keep its outbound connection only if they differ.
    assert!(!crossed_hellos_keep_outbound(&x, &x));
}

#[test]
fn the_loser_of_crossed_hellos_hands_its_waiting_work_to_the_survivor() {
    let t0 = Instant::now();
    // Alice's dial waits for its hello; Bob's dial reaches her first and
    // wins (its identifier is chosen higher).
    let id = |seed: u8| {
        *Session::new(SessionConfig::new(Dialect::Current, [seed; 32], loc("x"))).public_id()
    };
    let (mine, his) = (1u8..=40)
        .flat_map(|a| (41u8..=80).map(move |b| (a, b)))
        .find(|&(a, b)| !crossed_hellos_keep_outbound(&id(a), &id(b)))
        .unwrap();
    let mut alice = Side::new("alice", EndpointConfig::default());
    let mut bob = Side::new("bob", EndpointConfig::default());
    alice.dial(1, "bob", mine, t0);
    assert_eq!(
        alice.ep.route(&key("bob")),
        Some(1),
        "work waits on the dial"
    );
    bob.dial(2, "alice", his, t0);
    alice.accept(2, 3, t0);
    let hello = bob.hellos.remove(&2).unwrap();
    let ours = alice.session(2);
    ours.handle_bytes(&hello).unwrap();
    let Some(Event::Established {
        peer_location,
        peer_id,
        session_id,
    }) = ours.poll_event()
    else {
        panic!()
    };
    let d = alice
        .ep
        .established(2, PeerKey::of(&peer_location), peer_id, session_id, t0);
    assert_eq!(
        d,
        vec![
            Decision::Abort {
                conn: 1,
                reason: endpoint::CROSSED_HELLOS,
                hand_over_to: Some(2)
            },
            Decision::Serve {
                conn: 2,
                peer: key("bob")
            },
        ]
    );
    assert_eq!(alice.ep.route(&key("bob")), Some(2));
    assert_eq!(alice.ep.by_session_id(&session_id), Some(2));
}

// ----------------------------------------------------------------------
// Duplicates and reconnects
// ----------------------------------------------------------------------

/// Bob (a peer of our `alice` endpoint) opens sessions to her by hand.
struct Duplicates {
    alice: Side,
    bob: Side,
    t0: Instant,
}

impl Duplicates {
    fn new() -> Self {
        let t0 = Instant::now();
        let mut d = Duplicates {
            alice: Side::new("alice", EndpointConfig::default()),
            bob: Side::new("bob", EndpointConfig::default()),
            t0,
        };
        d.connect(1, t0);
        assert_eq!(d.alice.ep.state(1), Some(ConnState::Serving));
        d
    }

    /// Bob dials Alice on `conn` (the same id on both sides) and she hears
    /// his hello at `now`.
    fn connect(&mut self, conn: u32, now: Instant) -> Vec<u32> {
        self.bob.dial(conn, "alice", 40 + conn as u8, now);
        self.alice.accept(conn, 80 + conn as u8, now);
        self.alice.hello(conn, &mut self.bob, conn, now)
    }
}

#[test]
fn a_second_session_from_the_same_peer_is_aborted_after_the_grace() {
    let mut w = Duplicates::new();
    let t = w.t0 + Duration::from_secs(5);
    assert!(w.connect(2, t).is_empty(), "held, not decided at once");
    assert_eq!(w.alice.ep.state(2), Some(ConnState::Held));
    assert_eq!(
        w.alice.ep.route(&key("bob")),
        Some(1),
        "work still goes to 1"
    );
    // Within the grace nothing happens.
    let grace = w.alice.ep.config().settle_grace;
    let none = w.alice.ep.expire(t + grace / 2, |_| Activity::default());
    assert!(none.is_empty(), "{none:?}");
    let d = w.alice.ep.expire(t + grace, |_| Activity::default());
    assert_abort(&d, 2, endpoint::DUPLICATE);
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(w.alice.ep.state(1), Some(ConnState::Serving));
    assert_eq!(w.alice.ep.state(2), Some(ConnState::Ended));
    assert_eq!(w.alice.ep.route(&key("bob")), Some(1));
    // Newest does not win: nothing replaces session 1 later either.
    let d = w.alice.ep.removed(2);
    assert!(d.is_empty());
    assert_eq!(w.alice.ep.route(&key("bob")), Some(1));
}

#[test]
fn a_reconnect_that_overtakes_the_old_sessions_end_takes_its_place() {
    let mut w = Duplicates::new();
    let t = w.t0 + Duration::from_secs(5);
    // Bob aborted session 1 and dialled again; his new hello arrives before
    // his abort on the old socket does.
    assert!(w.connect(2, t).is_empty());
    assert_eq!(w.alice.ep.state(2), Some(ConnState::Held));
    let d = w.alice.ep.ended(1);
    assert_eq!(
        d,
        vec![Decision::Serve {
            conn: 2,
            peer: key("bob")
        }]
    );
    assert_eq!(w.alice.ep.route(&key("bob")), Some(2));
    // The grace ending later changes nothing.
    let d = w
        .alice
        .ep
        .expire(t + Duration::from_secs(60), |_| Activity {
            awaiting_peer: true,
            ..Activity::default()
        });
    assert!(d.is_empty(), "{d:?}");
    assert_eq!(w.alice.ep.state(2), Some(ConnState::Serving));
}

#[test]
fn a_third_session_while_one_is_held_is_aborted_at_once() {
    let mut w = Duplicates::new();
    assert!(w.connect(2, w.t0).is_empty());
    assert_eq!(w.connect(3, w.t0), vec![3]);
    assert_eq!(w.alice.ep.state(3), Some(ConnState::Ended));
    // A flood of duplicates never displaces the serving session.
    for c in 4..40 {
        assert_eq!(w.connect(c, w.t0), vec![c]);
    }
    assert_eq!(w.alice.ep.route(&key("bob")), Some(1));
}

#[test]
fn a_dial_to_a_peer_served_meanwhile_is_refused_before_a_word_is_sent() {
    let mut w = Duplicates::new();
    let config = SessionConfig::new(Dialect::Current, [5; 32], loc("alice"));
    let opening = Opening {
        direction: Direction::Outbound,
        source: None,
        dialled: Some(key("bob")),
        verified: None,
    };
    let r = w.alice.ep.admit(77, opening, config, w.t0);
    assert!(matches!(r, Err(Refused::AlreadyConnected(1))), "{r:?}");
    assert_eq!(w.alice.ep.state(77), None);
}

#[test]
fn the_session_id_index_follows_the_sessions_life() {
    let mut w = Duplicates::new();
    let sid = *w.alice.session(1).peer().unwrap().session_id();
    assert_eq!(w.alice.ep.by_session_id(&sid), Some(1));
    w.alice.ep.ended(1);
    assert_eq!(w.alice.ep.by_session_id(&sid), None);
    assert_eq!(w.alice.ep.route(&key("bob")), None);
    // Ended, it still counts against the limits until the socket is gone.
    assert_eq!(w.alice.ep.len(), 1);
    assert!(w.alice.ep.session(1).is_some(), "kept until removed");
    w.alice.ep.removed(1);
    assert!(w.alice.ep.is_empty());
    assert!(w.alice.ep.session(1).is_none(), "dropped when removed");
}

#[test]
fn a_connection_id_cannot_be_admitted_twice() {
    let mut w = Duplicates::new();
    let config = SessionConfig::new(Dialect::Current, [5; 32], loc("alice"));
    let opening = Opening {
        direction: Direction::Inbound,
        source: None,
        dialled: None,
        verified: None,
    };
    let r = w.alice.ep.admit(1, opening, config, w.t0);
    assert!(matches!(r, Err(Refused::IdInUse)), "{r:?}");
    assert_eq!(w.alice.ep.state(1), Some(ConnState::Serving));
}

// ----------------------------------------------------------------------
// Admission
// ----------------------------------------------------------------------

fn limits(max: usize, per_source: usize, cap: SourceCap) -> Endpoint<u32> {
    let mut c = EndpointConfig::default();
    c.max_sessions = max;
    c.max_sessions_per_source = per_source;
    c.source_cap = cap;
    Endpoint::new(c)
}

fn inbound(
    ep: &mut Endpoint<u32>,
    conn: u32,
    ip: IpAddr,
) -> Result<Vec<Decision<u32>>, Refused<u32>> {
    let config = SessionConfig::new(Dialect::Current, [conn as u8; 32], loc("v"));
    let opening = Opening {
        direction: Direction::Inbound,
        source: Some(ip),
        dialled: None,
        verified: None,
    };
    ep.admit(conn, opening, config, Instant::now())
}

fn outbound(ep: &mut Endpoint<u32>, conn: u32, to: &str) -> Result<(), Refused<u32>> {
    let config = SessionConfig::new(Dialect::Current, [conn as u8; 32], loc("v"));
    let opening = Opening {
        direction: Direction::Outbound,
        source: None,
        dialled: Some(key(to)),
        verified: None,
    };
    ep.admit(conn, opening, config, Instant::now()).map(|_| ())
}

fn v4(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
}

#[test]
fn a_flood_from_one_source_gets_its_cap_and_no_more() {
    let mut ep = limits(64, 4, SourceCap::Strict);
    let mut refused = 0;
    for c in 0..50 {
        match inbound(&mut ep, c, v4(1)) {
            Ok(_) => {}
            Err(Refused::SourceFull) => refused += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(ep.len(), 4);
    assert_eq!(refused, 46);
    // Another host still gets in, and so does a dial of ours.
    assert!(inbound(&mut ep, 100, v4(2)).is_ok());
    assert!(outbound(&mut ep, 101, "x").is_ok());
    // The flooder's slots come back once its connections are gone.
    ep.removed(0);
    assert!(inbound(&mut ep, 102, v4(1)).is_ok());
    assert!(matches!(
        inbound(&mut ep, 103, v4(1)),
        Err(Refused::SourceFull)
    ));
}

#[test]
fn an_ipv6_host_counts_as_one_source_for_its_whole_slash_64() {
    let mut ep = limits(64, 2, SourceCap::Strict);
    let host = |last: u16| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 0, 0, 7, last));
    assert!(inbound(&mut ep, 1, host(1)).is_ok());
    assert!(inbound(&mut ep, 2, host(2)).is_ok());
    assert!(matches!(
        inbound(&mut ep, 3, host(3)),
        Err(Refused::SourceFull)
    ));
    // A v4-mapped address is its IPv4 address.
    let mapped = IpAddr::V6(Ipv4Addr::new(10, 0, 0, 9).to_ipv6_mapped());
    assert!(inbound(&mut ep, 4, mapped).is_ok());
    assert!(inbound(&mut ep, 5, v4(9)).is_ok());
    assert!(matches!(
        inbound(&mut ep, 6, v4(9)),
        Err(Refused::SourceFull)
    ));
}

#[test]
fn a_flood_from_many_sources_cannot_take_the_share_kept_for_our_dials() {
    let mut ep = limits(16, 4, SourceCap::Strict);
    // 16 / 8 = 2 slots are kept for our dials: 14 inbound at most.
    let mut admitted = 0;
    for c in 0..200u32 {
        match inbound(&mut ep, c, v4(c as u8)) {
            Ok(_) => admitted += 1,
            Err(Refused::InboundFull) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(admitted, 14);
    assert!(outbound(&mut ep, 1000, "a").is_ok());
    assert!(outbound(&mut ep, 1001, "b").is_ok());
    assert!(matches!(outbound(&mut ep, 1002, "c"), Err(Refused::Full)));
}

#[test]
fn the_smallest_table_still_keeps_one_slot_each_way() {
    let mut ep = limits(2, 8, SourceCap::Strict);
    assert!(inbound(&mut ep, 1, v4(1)).is_ok());
    assert!(matches!(
        inbound(&mut ep, 2, v4(2)),
        Err(Refused::InboundFull)
    ));
    assert!(outbound(&mut ep, 3, "a").is_ok());
    // With one slot nothing can be kept: first come, first served.
    let mut one = limits(1, 8, SourceCap::Strict);
    assert!(inbound(&mut one, 1, v4(1)).is_ok());
    assert!(matches!(
        inbound(&mut one, 2, v4(2)),
        Err(Refused::InboundFull)
    ));
    assert!(matches!(outbound(&mut one, 3, "a"), Err(Refused::Full)));
}

#[test]
fn adaptive_cap_serves_a_crowded_nat_while_slots_are_free() {
    let mut ep = limits(16, 3, SourceCap::Adaptive);
    // Ten users behind one NAT address: all served (strict would stop at 3).
    for c in 0..10 {
        assert!(inbound(&mut ep, c, v4(1)).unwrap().is_empty());
    }
    let mut strict = limits(16, 3, SourceCap::Strict);
    for c in 0..3 {
        assert!(inbound(&mut strict, c, v4(1)).is_ok());
    }
    assert!(matches!(
        inbound(&mut strict, 3, v4(1)),
        Err(Refused::SourceFull)
    ));
    // Its later users fill the inbound slots (14).
    for c in 10..14 {
        assert!(inbound(&mut ep, c, v4(1)).is_ok());
    }
    // Full: the NAT's 15th user is refused, it is over its cap.
    assert!(matches!(
        inbound(&mut ep, 14, v4(1)),
        Err(Refused::SourceFull)
    ));
    // A newcomer under its cap takes back a borrowed slot: the newest
    // borrowed session of the source holding the most.
    let d = inbound(&mut ep, 100, v4(2)).unwrap();
    assert_eq!(
        d,
        vec![Decision::Abort {
            conn: 13,
            reason: endpoint::RECLAIMED,
            hand_over_to: None
        }]
    );
    assert_eq!(ep.state(13), Some(ConnState::Ended));
    assert_eq!(ep.state(100), Some(ConnState::AwaitingHello));
}

#[test]
fn adaptive_cap_never_reclaims_a_slot_within_a_sources_cap() {
    let mut ep = limits(16, 3, SourceCap::Adaptive);
    // A flooder borrows every free slot...
    for c in 0..14 {
        assert!(inbound(&mut ep, c, v4(1)).is_ok());
    }
    // ...and three other hosts reclaim 3 x 3 of them, one each time.
    let mut reclaimed = Vec::new();
    for host in 2..5u8 {
        for i in 0..3u32 {
            let c = 100 * u32::from(host) + i;
            for d in inbound(&mut ep, c, v4(host)).unwrap() {
                let Decision::Abort { conn, reason, .. } = d else {
                    panic!("{d:?}")
                };
                assert_eq!(reason, endpoint::RECLAIMED);
                reclaimed.push(conn);
            }
        }
    }
    assert_eq!(reclaimed.len(), 9);
    assert!(reclaimed.iter().all(|c| *c < 14), "only the flooder's");
    // The flooder keeps 5, of which only 2 are borrowed; two more
    // reclaims take those, then its first 3 are safe.
    for c in [500, 501] {
        assert_eq!(inbound(&mut ep, c, v4(5)).unwrap().len(), 1);
    }
    let r = inbound(&mut ep, 502, v4(5));
    assert!(matches!(r, Err(Refused::InboundFull)), "{r:?}");
    for c in 0..3 {
        assert_eq!(ep.state(c), Some(ConnState::AwaitingHello), "kept {c}");
    }
}

// ----------------------------------------------------------------------
// Deadlines, with the clock driven by hand
// ----------------------------------------------------------------------

#[test]
fn a_silent_connection_is_aborted_when_its_handshake_time_is_over() {
    let t0 = Instant::now();
    let mut alice = Side::new("alice", EndpointConfig::default());
    alice.accept(1, 1, t0);
    let limit = alice.ep.config().handshake_timeout;
    // Bytes that are not a hello yet do not extend the deadline.
    alice.ep.heard(1, t0 + limit / 2, true);
    assert!(
        alice
            .ep
            .expire(t0 + limit, |_| Activity::default())
            .is_empty()
    );
    let d = alice.ep.expire(t0 + limit + Duration::from_millis(1), |_| {
        Activity::default()
    });
    assert_abort(&d, 1, endpoint::HANDSHAKE_TOO_SLOW);
    // Decided once: the next tick says nothing more.
    let again = alice.ep.expire(t0 + limit * 2, |_| Activity::default());
    assert!(again.is_empty());
}

#[test]
fn idle_sessions_end_unless_busy_or_holding_the_peers_references() {
    let mut w = Duplicates::new();
    let t0 = w.t0;
    let idle = w.alice.ep.config().idle_timeout;
    let quiet = |_: &Session| Activity::default();
    let waiting = |_: &Session| Activity {
        awaiting_peer: true,
        ..Activity::default()
    };
    let holding = |_: &Session| Activity {
        holds_peer_refs: true,
        ..Activity::default()
    };
    assert!(w.alice.ep.expire(t0 + idle, quiet).is_empty());
    // Awaiting an answer: kept however long.
    assert!(w.alice.ep.expire(t0 + idle * 10, waiting).is_empty());
    // Holding the peer's references: a keepalive each half idle time.
    let d = w.alice.ep.expire(t0 + idle / 2, holding);
    assert_eq!(d, vec![Decision::Keepalive { conn: 1 }]);
    assert!(
        w.alice
            .ep
            .expire(t0 + idle / 2 + idle / 4, holding)
            .is_empty()
    );
    let d = w.alice.ep.expire(t0 + idle, holding);
    assert_eq!(d, vec![Decision::Keepalive { conn: 1 }]);
    // Bytes reset the silence.
    w.alice.ep.heard(1, t0 + idle, false);
    assert!(w.alice.ep.expire(t0 + idle * 2, quiet).is_empty());
    let d = w
        .alice
        .ep
        .expire(t0 + idle * 2 + Duration::from_millis(1), quiet);
    assert_abort(&d, 1, endpoint::IDLE);
    assert_eq!(w.alice.ep.route(&key("bob")), None);
}

#[test]
fn a_message_trickled_too_slowly_is_aborted() {
    let mut w = Duplicates::new();
    let t0 = w.t0;
    let slow = w.alice.ep.config().message_timeout;
    // A message starts, then a byte now and then: the start counts.
    w.alice.ep.heard(1, t0, true);
    for i in 1..10 {
        w.alice.ep.heard(1, t0 + slow / 10 * i, true);
    }
    let busy = |_: &Session| Activity {
        awaiting_peer: true,
        holds_peer_refs: true,
    };
    assert!(w.alice.ep.expire(t0 + slow, busy).is_empty());
    let d = w
        .alice
        .ep
        .expire(t0 + slow + Duration::from_millis(1), busy);
    assert_abort(&d, 1, endpoint::MESSAGE_TOO_SLOW);
    // A message that completes in time restarts the count.
    let mut w = Duplicates::new();
    w.alice.ep.heard(1, t0, true);
    w.alice.ep.heard(1, t0 + slow / 2, false);
    w.alice.ep.heard(1, t0 + slow, true);
    assert!(w.alice.ep.expire(t0 + slow + slow / 2, busy).is_empty());
}

// ----------------------------------------------------------------------
// Who a connection may claim to be
// ----------------------------------------------------------------------

/// Bob's hello arrives on Alice's connection 1, opened with `verified`;
/// Alice serves transports `plain` without authentication.
fn claim(verified: Option<PeerKey>, plain: &[&str]) -> Vec<Decision<u32>> {
    let t0 = Instant::now();
    let mut config = EndpointConfig::default();
    config.unauthenticated_transports = plain.iter().map(|t| (*t).to_owned()).collect();
    let mut alice = Side {
        name: "alice",
        ep: Endpoint::new(config),
        hellos: HashMap::new(),
    };
    let mut bob = Side::new("bob", EndpointConfig::default());
    let opening = Opening {
        direction: Direction::Inbound,
        source: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        dialled: None,
        verified,
    };
    assert!(alice.open(1, opening, 1, t0).is_empty());
    bob.dial(1, "alice", 2, t0);
    let hello = bob.hellos.remove(&1).unwrap();
    let ours = alice.session(1);
    ours.handle_bytes(&hello).unwrap();
    let Some(Event::Established {
        peer_location,
        peer_id,
        session_id,
    }) = ours.poll_event()
    else {
        panic!("not established");
    };
    alice
        .ep
        .established(1, PeerKey::of(&peer_location), peer_id, session_id, t0)
}

#[test]
fn a_connection_may_announce_only_the_peer_its_netlayer_vouches_for() {
    // Bob announces `sim` "bob". Unauthenticated, on a transport Alice
    // serves without authentication: believed (nothing better exists).
    let d = claim(None, &["sim"]);
    assert!(
        matches!(d.as_slice(), [Decision::Serve { conn: 1, .. }]),
        "{d:?}"
    );
    // Unauthenticated, claiming a transport Alice either authenticates or
    // does not serve at all: an impostor.
    assert_abort(&claim(None, &["tcp-testing-only"]), 1, endpoint::IMPOSTOR);
    assert_abort(&claim(None, &[]), 1, endpoint::IMPOSTOR);
    // Authenticated as someone else: an impostor.
    let mallory = PeerKey::new("sim", "mallory");
    assert_abort(&claim(Some(mallory), &["sim"]), 1, endpoint::IMPOSTOR);
    // Authenticated as Bob on another transport: an impostor too.
    let other = PeerKey::new("noise", "bob");
    assert_abort(&claim(Some(other), &[]), 1, endpoint::IMPOSTOR);
    // Authenticated as exactly who it announces: served.
    let d = claim(Some(key("bob")), &[]);
    assert!(
        matches!(d.as_slice(), [Decision::Serve { conn: 1, .. }]),
        "{d:?}"
    );
}
