//! The endpoint attacked: crossed hellos in every arrival order, duplicate
//! and reconnecting sessions, admission floods from one source and from
//! many, every deadline with the clock driven by hand, and third-party
//! handoffs routed between an exporter's sessions (forged, unknown, and with
//! either end leaving while the withdrawal waits). Sessions are real (their
//! hellos and certificates are signed, sent and checked); only the sockets
//! are absent.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use pola_captp::endpoint::{
    self, Activity, ConnState, Decision, Direction, Endpoint, EndpointConfig, Opening, PeerKey,
    Polled, Refused, SourceCap, Withdrawal, crossed_hellos_keep_outbound,
};
use pola_captp::handoff::SignedGive;
use pola_captp::locator::Swiss;
use pola_captp::{
    AnswerPosition, CapRef, Dialect, Event, ImportPosition, LocalId, LocalTarget, QuestionPosition,
    Session, SessionConfig,
};
use pola_syrup::Value;

use crate::sim::{self, Pair, loc};

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

// ----------------------------------------------------------------------
// Third-party handoffs routed by the exporter's endpoint
// ----------------------------------------------------------------------

/// Carol, the exporter's object the gifter hands the receiver.
const CAROL: LocalId = LocalId(7);
/// The exporter's connection from the gifter.
const G: u32 = 1;
/// The exporter's connection from the receiver.
const R: u32 = 2;

/// What the exporter's driver saw, in order.
#[derive(Debug, PartialEq)]
enum Seen {
    Started(u32, AnswerPosition),
    Ready {
        receiver: u32,
        gifter: u32,
        target: CapRef,
    },
    Broken(u32, &'static str),
    Deliver(u32, LocalTarget),
    Aborted(u32),
}

/// The exporter E as an endpoint with two sessions (from the gifter, G,
/// and from the receiver, R), driven by a minimal driver; the gifter's and
/// the receiver's sessions to E; the gifter–receiver pair. Every
/// certificate is made and checked by the sessions themselves.
struct Handoff {
    e: Endpoint<u32>,
    /// The gifter's session to E.
    g: Session,
    /// The receiver's session to E.
    r: Session,
    /// a = the gifter, b = the receiver.
    gr: Pair,
    seen: Vec<Seen>,
    t0: Instant,
}

impl Handoff {
    fn new() -> Handoff {
        let t0 = Instant::now();
        let mut config = EndpointConfig::default();
        config.unauthenticated_transports.insert("sim".to_owned());
        let mut e = Endpoint::new(config);
        for (conn, seed) in [(G, 10), (R, 11)] {
            let opening = Opening {
                direction: Direction::Inbound,
                source: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
                dialled: None,
                verified: None,
            };
            let session = SessionConfig::new(Dialect::Current, [seed; 32], loc("exporter"));
            assert!(e.admit(conn, opening, session, t0).unwrap().is_empty());
        }
        let mut h = Handoff {
            e,
            g: sim::session(Dialect::Current, 12, "gifter"),
            r: sim::session(Dialect::Current, 13, "receiver"),
            gr: Pair::named(Dialect::Current, 14, "gifter", 15, "receiver"),
            seen: Vec::new(),
            t0,
        };
        h.link(G);
        h.link(R);
        assert_eq!(h.e.state(G), Some(ConnState::Serving));
        assert_eq!(h.e.state(R), Some(ConnState::Serving));
        h
    }

    /// Moves bytes between E's session `conn` and its peer's until both
    /// are quiet, E's driver handling what its endpoint hands out; returns
    /// the peer's events.
    fn link(&mut self, conn: u32) -> Vec<Event> {
        let mut theirs = Vec::new();
        loop {
            let mut moved = false;
            let other = if conn == G { &mut self.g } else { &mut self.r };
            if let Some(ours) = self.e.session_mut(conn) {
                while let Some(m) = ours.poll_transmit() {
                    let _ = other.handle_bytes(&m);
                    moved = true;
                }
                while let Some(m) = other.poll_transmit() {
                    let _ = ours.handle_bytes(&m);
                    moved = true;
                }
            }
            theirs.extend(std::iter::from_fn(|| other.poll_event()));
            self.drive(conn);
            if !moved {
                return theirs;
            }
        }
    }

    /// E's driver: drains `conn`'s events and the withdrawal steps.
    fn drive(&mut self, conn: u32) {
        while let Some(p) = self.e.poll_event(conn) {
            match p {
                Polled::Event(Event::Established {
                    peer_location,
                    peer_id,
                    session_id,
                }) => {
                    let peer = PeerKey::of(&peer_location);
                    self.e.established(conn, peer, peer_id, session_id, self.t0);
                }
                Polled::Event(Event::Fetch { reply, .. }) => {
                    let s = self.e.session_mut(conn).unwrap();
                    s.resolve(reply.unwrap(), Ok(Value::Ref(CapRef::Local(CAROL))))
                        .unwrap();
                }
                Polled::Event(Event::Deliver { target, .. }) => {
                    self.seen.push(Seen::Deliver(conn, target));
                }
                Polled::Event(Event::Aborted { .. }) => {
                    self.seen.push(Seen::Aborted(conn));
                    self.e.ended(conn);
                }
                Polled::Event(_) => {}
                Polled::Withdrawal(w) => self.step(w),
                _ => {}
            }
        }
        while let Some(w) = self.e.poll_withdrawal() {
            self.step(w);
        }
    }

    /// A withdrawal step, as a driver carries it out: one of our objects
    /// is named alike on every session, so the gift settles the reply as
    /// it is.
    fn step(&mut self, w: Withdrawal<u32>) {
        match w {
            Withdrawal::Started { receiver, answer } => {
                self.seen.push(Seen::Started(receiver, answer));
            }
            Withdrawal::Ready {
                receiver,
                reply,
                gifter,
                target,
            } => {
                self.seen.push(Seen::Ready {
                    receiver,
                    gifter,
                    target: target.clone(),
                });
                let s = self.e.session_mut(receiver).unwrap();
                s.resolve(reply, Ok(Value::Ref(target))).unwrap();
            }
            Withdrawal::Broken {
                receiver,
                reply,
                reason,
            } => {
                self.seen.push(Seen::Broken(receiver, reason));
                let s = self.e.session_mut(receiver).unwrap();
                s.resolve(reply, Err(Value::error(reason))).unwrap();
            }
            other => panic!("{other:?}"),
        }
    }

    /// The gifter fetches carol from E (on G–E); returns its import.
    fn fetch_carol(&mut self) -> ImportPosition {
        let q = self.g.fetch(&Swiss::new(&b"carol"[..])).unwrap();
        let events = self.link(G);
        answer_of(&events, q)
            .ok()
            .and_then(|v| match v {
                Value::Ref(CapRef::Import(i)) => Some(i),
                _ => None,
            })
            .expect("carol")
    }

    /// The gifter gives carol to the receiver: a certificate signed on G–E
    /// for the receiver's key on G–R. With `deposit`, the gift reaches E
    /// now; else it waits in the gifter's outgoing queue.
    fn give(&mut self, deposit: bool) -> SignedGive {
        let carol = self.fetch_carol();
        let receiver_key = *self.gr.a.peer().unwrap().key();
        let signed = self
            .g
            .give(carol, receiver_key, Bytes::from(vec![0x42; 32]))
            .unwrap();
        if deposit {
            self.link(G);
            assert_eq!(self.e.session(G).unwrap().table_sizes().gifts, 1);
        }
        signed
    }

    /// The receiver redeems `gift` on R–E.
    fn withdraw(&mut self, gift: SignedGive) -> QuestionPosition {
        let receive = self.r.handoff_receive(gift).unwrap();
        let signed = self.gr.b.sign_handoff_receive(receive).unwrap();
        self.r.withdraw_gift(signed).unwrap()
    }
}

fn answer_of(events: &[Event], q: QuestionPosition) -> Result<Value<CapRef>, Value<CapRef>> {
    events
        .iter()
        .find_map(|e| match e {
            Event::Answer { question, result } if *question == q => Some(result.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no answer to {q:?} in {events:?}"))
}

fn has_answer(events: &[Event], q: QuestionPosition) -> bool {
    events
        .iter()
        .any(|e| matches!(e, Event::Answer { question, .. } if *question == q))
}

#[test]
fn the_exporters_endpoint_takes_a_withdrawal_to_the_gifters_session() {
    for deposit_first in [true, false] {
        let mut h = Handoff::new();
        let gift = h.give(deposit_first);
        let q = h.withdraw(gift);
        // The receiver pipelines a call on the withdrawal's answer at once.
        h.r.deliver_only(&CapRef::Question(q), vec![Value::sym("early")])
            .unwrap();
        let mut events = h.link(R);
        let Some(Seen::Started(R, a)) = h.seen.first() else {
            panic!("{:?}", h.seen)
        };
        let a = *a;
        // The answer is the driver's promise before the pipelined call
        // reaches it.
        let pipelined = Seen::Deliver(R, LocalTarget::Answer(a));
        let at = |h: &Handoff, s: &Seen| h.seen.iter().position(|x| x == s);
        assert!(at(&h, &pipelined) > Some(0), "{:?}", h.seen);
        let ready = Seen::Ready {
            receiver: R,
            gifter: G,
            target: CapRef::Local(CAROL),
        };
        if deposit_first {
            assert!(at(&h, &ready).is_some(), "{:?}", h.seen);
        } else {
            // Parked on the gifter's session under the endpoint's ticket.
            assert_eq!(at(&h, &ready), None, "{:?}", h.seen);
            assert!(!has_answer(&events, q));
            assert_eq!(h.e.parked_withdrawals(), 1);
            // The deposit lands on G–E: the gifter's session hands the
            // gift to the parked withdrawal, which settles on R–E.
            h.link(G);
            assert!(at(&h, &ready).is_some(), "{:?}", h.seen);
            events.extend(h.link(R));
        }
        assert_eq!(h.e.parked_withdrawals(), 0);
        let Ok(Value::Ref(CapRef::Import(carol_at_r))) = answer_of(&events, q) else {
            panic!("{events:?}")
        };
        // The receiver now calls carol straight on R–E.
        h.r.deliver_only(&CapRef::Import(carol_at_r), vec![Value::sym("hi")])
            .unwrap();
        h.link(R);
        assert_eq!(
            h.seen.last(),
            Some(&Seen::Deliver(R, LocalTarget::Object(CAROL)))
        );
        let e = h.e.session(G).unwrap();
        assert_eq!(e.table_sizes().gifts, 0, "each gift handed out once");
        assert!(!h.g.is_terminated() && !h.r.is_terminated());
    }
}

#[test]
fn a_withdrawal_naming_a_session_the_endpoint_does_not_have_breaks() {
    let mut h = Handoff::new();
    // The gifter's certificate names a session with "exporter" that this
    // endpoint never had (another process, or one long gone).
    let mut elsewhere = Pair::named(Dialect::Current, 20, "gifter", 21, "exporter");
    let q = elsewhere.a.fetch(&Swiss::new(&b"carol"[..])).unwrap();
    let (_, eb) = elsewhere.run();
    for e in eb {
        if let Event::Fetch { reply, .. } = e {
            let carol = Ok(Value::Ref(CapRef::Local(CAROL)));
            elsewhere.b.resolve(reply.unwrap(), carol).unwrap();
        }
    }
    let (ea, _) = elsewhere.run();
    let Ok(Value::Ref(CapRef::Import(carol))) = answer_of(&ea, q) else {
        panic!("{ea:?}")
    };
    let receiver_key = *h.gr.a.peer().unwrap().key();
    let gift = elsewhere
        .a
        .give(carol, receiver_key, Bytes::from(vec![1; 32]))
        .unwrap();
    elsewhere.run();
    let q = h.withdraw(gift);
    let events = h.link(R);
    assert!(answer_of(&events, q).is_err());
    assert_eq!(
        h.seen.last(),
        Some(&Seen::Broken(R, endpoint::UNKNOWN_GIFTER))
    );
    assert_eq!(h.e.parked_withdrawals(), 0);
    // Nothing reached the session with the gifter, and both live on.
    assert_eq!(h.e.state(G), Some(ConnState::Serving));
    assert!(!h.r.is_terminated());
}

#[test]
fn a_forged_gift_is_refused_by_the_gifters_session() {
    let mut h = Handoff::new();
    let mut gift = h.give(true);
    // Someone claims the gift was given by another key on G–E: the
    // receiver's own checks pass (it signs what it got), the gifter's
    // session does not.
    gift.give.gifter_side = pola_captp::crypto::PublicId([9; 32]);
    let q = h.withdraw(gift);
    let events = h.link(R);
    assert!(answer_of(&events, q).is_err());
    assert_eq!(
        h.seen.last(),
        Some(&Seen::Broken(R, endpoint::HANDOFF_REJECTED))
    );
    // The real gift is still there for the real certificate.
    assert_eq!(h.e.session(G).unwrap().table_sizes().gifts, 1);
    assert_eq!(h.e.parked_withdrawals(), 0);
}

#[test]
fn a_parked_withdrawal_breaks_when_the_gifters_session_ends() {
    let mut h = Handoff::new();
    let gift = h.give(false);
    let q = h.withdraw(gift);
    h.link(R);
    assert_eq!(h.e.parked_withdrawals(), 1);
    // The gifter goes away before its deposit was sent.
    h.g.abort("gifter leaving").unwrap();
    h.link(G);
    let broken = Seen::Broken(R, endpoint::GIFTER_ENDED);
    let at = |s: &Seen| h.seen.iter().position(|x| x == s);
    assert!(at(&broken) < at(&Seen::Aborted(G)), "{:?}", h.seen);
    assert!(at(&broken).is_some());
    assert_eq!(h.e.parked_withdrawals(), 0);
    let events = h.link(R);
    assert!(answer_of(&events, q).is_err());
    assert!(!h.r.is_terminated());
}

#[test]
fn a_parked_withdrawal_breaks_when_the_gifters_connection_is_removed() {
    let mut h = Handoff::new();
    let gift = h.give(false);
    let q = h.withdraw(gift);
    h.link(R);
    assert_eq!(h.e.parked_withdrawals(), 1);
    // The connection vanishes with its session unpolled (a driver that
    // never got to drain it): removing it breaks the withdrawal anyway.
    h.e.removed(G);
    assert!(h.e.session(G).is_none());
    assert_eq!(h.e.parked_withdrawals(), 0);
    h.drive(R);
    assert_eq!(
        h.seen.last(),
        Some(&Seen::Broken(R, endpoint::GIFTER_ENDED))
    );
    let events = h.link(R);
    assert!(answer_of(&events, q).is_err());
}

#[test]
fn a_receiver_that_ends_forgets_its_parked_withdrawal() {
    let mut h = Handoff::new();
    let gift = h.give(false);
    h.withdraw(gift);
    h.link(R);
    assert_eq!(h.e.parked_withdrawals(), 1);
    h.r.abort("receiver leaving").unwrap();
    h.link(R);
    assert_eq!(h.seen.last(), Some(&Seen::Aborted(R)));
    assert_eq!(h.e.parked_withdrawals(), 0);
    // The deposit arrives later: it goes to no one, and G–E lives on.
    let before = h.seen.len();
    h.link(G);
    assert_eq!(h.seen.len(), before, "{:?}", &h.seen[before..]);
    assert_eq!(h.e.state(G), Some(ConnState::Serving));
    assert!(!h.e.session(G).unwrap().is_terminated());
}
