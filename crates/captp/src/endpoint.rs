//! The endpoint: what spans the sessions of one peer, as a sans-IO state
//! machine.
//!
//! A [`Session`] knows one connection; the [`Endpoint`] knows them all. It
//! decides which connections are admitted, which session is *the* session
//! with a given peer (one per peer pair, as the spec requires), what happens
//! when two sessions with the same peer meet (crossed hellos and duplicates,
//! decided here and nowhere else), when a connection has been silent or slow
//! for too long, and which session a handoff names. It does no I/O and reads
//! no clock: the driver (the `pola-peer` crate) names each connection with an
//! opaque id of its own (`C`), passes the current time into every call that
//! needs one and carries out the [`Decision`]s it returns.
//!
//! # Who owns what
//!
//! The endpoint owns every [`Session`]: it creates one in
//! [`Endpoint::admit`] from the driver's [`SessionConfig`] (whose key seed
//! is the driver's randomness), keeps it beside its own bookkeeping for the
//! connection, and drops it in [`Endpoint::removed`]. The driver reaches a
//! session through [`Endpoint::session_mut`] (or [`Endpoint::sessions`]) to
//! feed it bytes and commands and to drain its output. The driver owns the
//! connection itself (socket, writer) and everything on the local side of
//! the session: what its [`LocalId`](crate::LocalId)s, imports, questions
//! and answers stand for in its vat.
//!
//! # Call order
//!
//! 1. A connection is up (accepted, or one we dialled):
//!    [`Endpoint::admit`]. Refused: close the connection, send nothing.
//!    Admitted: the session's `op:start-session` is queued; send it at once.
//! 2. Bytes arrive: [`Endpoint::heard`], and the session's `handle_bytes`.
//!    After any input to a session, drain its events with
//!    [`Endpoint::poll_event`] (never the session's own `poll_event`: the
//!    endpoint routes handoffs from there) and then its bytes.
//! 3. The session reports `Established`: [`Endpoint::established`].
//! 4. The session ends (aborted either way, or closed): [`Endpoint::ended`];
//!    the connection is gone: [`Endpoint::removed`], which drops the
//!    session (until then it still counts against the admission limits);
//!    then drain [`Endpoint::poll_withdrawal`].
//! 5. Now and then (a timer): [`Endpoint::expire`].
//!
//! Every call returns the [`Decision`]s to carry out, in order. An
//! [`Decision::Abort`] is final for the endpoint: the connection stops
//! counting as a session with its peer at once.
//!
//! # Third-party handoffs, exporter side
//!
//! A withdrawal arrives on the receiver's session R (`withdraw-gift`,
//! checked there) but its gift is deposited on the gifter's session G,
//! the one whose Session ID the certificate names. The endpoint takes it
//! there ([`Endpoint::poll_event`] intercepts the session's
//! `Event::WithdrawGift`): it calls `redeem_gift` on G with a
//! [`GiftTicket`] it mints, and parks the ticket with R and the
//! withdrawal's reply until G's session reports `Event::GiftReady` or
//! `Event::GiftWithdrawalBroken`. The driver sees only [`Withdrawal`]
//! steps: `Started` (make the answer a local promise, as the peer may
//! pipeline on it), then `Ready` (settle the reply with the gift, a
//! reference of G) or `Broken` (no live session has that Session ID, G
//! refused the withdrawal, or G ended first). Invariants (upheld here):
//! every withdrawal with a reply gets exactly one `Ready` or `Broken` while
//! R lives; when R ends its parked withdrawals are forgotten (their replies
//! went with it); when G ends its session breaks them, and
//! [`Endpoint::removed`] breaks any it did not.
//!
//! # One session per peer
//!
//! A peer is named by the transport and designator it announces in
//! `op:start-session` ([`PeerKey`]); inbound sessions are indexed that way
//! too, so a later need to reach a peer uses the session it opened to us.
//! Each connection goes through these states:
//!
//! ```text
//!   admit ──► AwaitingHello ──(hello; no other session with the peer)──► Serving
//!                │    │                                                    ▲  │
//!                │    └──(hello; another session with the peer)──► Held ───┘  │
//!                │          crossed with a dial of ours: decided at once  │   │
//!                │                                                        │   │
//!                └───── handshake timeout / lost a decision ──► Ended ◄───┴───┘
//! ```
//!
//! When a session's hello names a peer we already have a session with (the
//! *other* one), the rule is the same everywhere:
//!
//! - **Crossed hellos** (one session is inbound, the other outbound): the
//!   spec's comparison decides. X is our Public Identifier on our outbound
//!   connection, Y the peer's on its outbound one (our inbound); the outbound
//!   connection survives if X > Y, else the inbound one does. The peer
//!   computes the same two identifiers, swapped, and keeps the same
//!   connection. The loser is aborted with `"Crossed hellos mitigated"`.
//! - **Duplicate** (both in the same direction: the peer dialled twice, or
//!   its reconnect overtook the end of its previous session): the spec's
//!   rule, the session already established stays and the new one is
//!   aborted (`"already have a session with this peer"`).
//!
//! When the other session is still awaiting its hello (only our own dial can
//! be, since an inbound one names its peer only in its hello), the verdict is
//! given at once: nothing has been sent on either yet. When the other session
//! is already serving, the new one is **held** for
//! [`EndpointConfig::settle_grace`] before the rule is applied: a peer that
//! aborts a session and dials again at once has its new hello arrive on
//! another socket, possibly before its abort on the old one (DIGEST section
//! 7), and the peer at the other end of a crossed pair may already have
//! aborted the loser. If the serving session ends within the grace, the held
//! one takes its place; otherwise the rule above decides. A held session is
//! a real session (the peer may use it) but we route nothing to it. A third
//! session arriving while one is held is a duplicate at once.
//!
//! Invariants (upheld by this module): at most one session is `Serving` per
//! peer; a session leaves `Ended` never; a connection counts against the
//! admission limits from `admit` to `removed`.
//!
//! # Admission, and many users behind one address
//!
//! At most [`EndpointConfig::max_sessions`] connections exist at once; an
//! eighth of them (at least one) is kept for connections we dial, so inbound
//! connections cannot lock us out of reaching others. Inbound connections
//! from one source address (an IPv6 source counts by its /64) are capped at
//! [`EndpointConfig::max_sessions_per_source`], so one host cannot take
//! every slot.
//!
//! The trade-off: every user behind one address (a home router, an office
//! or carrier-grade NAT, a VPN exit) is one source. With
//! [`SourceCap::Strict`] the cap applies always, so the 65th user behind a
//! busy NAT is refused while the peer has free slots, and one hostile user
//! behind that NAT can take its neighbours' share. With
//! [`SourceCap::Adaptive`] a source may go past its cap while slots are
//! free: those extra sessions are *borrowed*, and when the inbound slots run
//! out, a connection from a source still under its cap takes the slot of a
//! borrowed session (the newest one of the source holding the most), which
//! is aborted (`"slot reclaimed for another source"`). So a crowded NAT is
//! served while the peer is not busy, and no single address can keep a
//! source under its cap out; what adaptive cannot fix is that under load the
//! users behind one address still share one cap.
//!
//! # Time
//!
//! Deadlines (handshake, idle, message, the settle grace) are checked only
//! in [`Endpoint::expire`], against the `now` passed in, so tests drive the
//! clock by hand.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::hash::Hash;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::crypto::{PublicId, SessionId};
use crate::handoff::VerifiedReceive;
use crate::ids::{AnswerPosition, GiftTicket};
use crate::locator::PeerLocator;
use crate::session::{CapRef, Event, Reply, Session, SessionConfig};

/// The abort reason for the loser of crossed hellos (the implementation
/// guide's wording).
pub const CROSSED_HELLOS: &str = "Crossed hellos mitigated";
/// The abort reason for a second session with a peer in the same direction.
pub const DUPLICATE: &str = "already have a session with this peer";
/// The abort reason for a connection that never sent `op:start-session`.
pub const HANDSHAKE_TOO_SLOW: &str = "no op:start-session in time";
/// The abort reason for a session silent for too long while idle.
pub const IDLE: &str = "idle for too long";
/// The abort reason for a message that took too long to arrive whole.
pub const MESSAGE_TOO_SLOW: &str = "message too slow";
/// The abort reason for a borrowed session whose slot is reclaimed.
pub const RECLAIMED: &str = "slot reclaimed for another source";
/// The abort reason for a session whose announced location its connection
/// does not vouch for (see [`Opening::verified`]).
pub const IMPOSTOR: &str = "location does not match the authenticated peer";
/// Why a withdrawal breaks when no live session has the Session ID its
/// certificate names.
pub const UNKNOWN_GIFTER: &str = "unknown gifter session";
/// Why a withdrawal breaks when the gifter–exporter session refuses it (a
/// bad signature, the wrong gifter, a gift already awaited, a full table).
pub const HANDOFF_REJECTED: &str = "handoff rejected";
/// Why a parked withdrawal breaks when its gifter–exporter session ends
/// before the gift is deposited.
pub const GIFTER_ENDED: &str = "gifter session ended";

/// Who opened a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// We dialled the peer.
    Outbound,
    /// The peer dialled us.
    Inbound,
}

/// How the per-source cap applies (see the module docs for the trade-off).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SourceCap {
    /// A source never holds more than its cap.
    #[default]
    Strict,
    /// A source may borrow free slots past its cap; a borrowed slot is
    /// taken back when a source under its cap finds none free.
    Adaptive,
}

/// Limits and deadlines of an [`Endpoint`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct EndpointConfig {
    /// Most connections at once (an eighth, at least one, kept for ours).
    pub max_sessions: usize,
    /// Most inbound connections from one source address.
    pub max_sessions_per_source: usize,
    /// Whether a source may borrow free slots past its cap.
    pub source_cap: SourceCap,
    /// How long a connection may take to send `op:start-session`.
    pub handshake_timeout: Duration,
    /// How long an established session may stay silent while idle (awaiting
    /// nothing, holding none of the peer's references). A session holding
    /// the peer's references is sent a keepalive after half this silence
    /// instead.
    pub idle_timeout: Duration,
    /// How long one incoming message may take from its first byte to its
    /// last.
    pub message_timeout: Duration,
    /// How long a second session with a peer is held before the
    /// one-session rule decides (see the module docs).
    pub settle_grace: Duration,
    /// The transports we serve whose netlayers authenticate nobody
    /// (`tcp-testing-only`): the only ones a session without an
    /// authenticated identity may announce (see [`Opening::verified`]).
    pub unauthenticated_transports: BTreeSet<String>,
}

impl Default for EndpointConfig {
    /// 1024 connections, 64 per source (strict), 30 s to start a session,
    /// 10 minutes idle, 60 s per message, 2 s to settle a second session.
    fn default() -> Self {
        EndpointConfig {
            max_sessions: 1024,
            max_sessions_per_source: 64,
            source_cap: SourceCap::Strict,
            handshake_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(600),
            message_timeout: Duration::from_secs(60),
            settle_grace: Duration::from_secs(2),
            unauthenticated_transports: BTreeSet::new(),
        }
    }
}

/// A peer as the one-session rule sees it: the transport and designator it
/// announced (hints do not name a peer).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerKey {
    transport: String,
    designator: String,
}

impl PeerKey {
    /// The key of the peer `loc` names.
    pub fn of(loc: &PeerLocator) -> Self {
        PeerKey {
            transport: loc.transport().to_owned(),
            designator: loc.designator().to_owned(),
        }
    }

    /// The transport's name.
    pub fn transport(&self) -> &str {
        &self.transport
    }

    /// The key of the peer named `designator` on `transport`.
    pub fn new(transport: impl Into<String>, designator: impl Into<String>) -> Self {
        PeerKey {
            transport: transport.into(),
            designator: designator.into(),
        }
    }

    /// The peer's name on that transport.
    pub fn designator(&self) -> &str {
        &self.designator
    }
}

/// What the driver knows about a connection when it is up.
#[derive(Clone, Debug)]
pub struct Opening {
    /// Who dialled.
    pub direction: Direction,
    /// The remote address, when the transport has one (for the per-source
    /// cap; inbound connections only).
    pub source: Option<IpAddr>,
    /// For a connection we dialled: the peer we meant to reach.
    pub dialled: Option<PeerKey>,
    /// The peer the netlayer authenticated, if its transport authenticates.
    /// Such a session must announce exactly this peer; a session without
    /// one may announce only a transport of
    /// [`EndpointConfig::unauthenticated_transports`]. Otherwise a plain-TCP
    /// connection could claim a `noise` peer's locator (or one on a
    /// transport we cannot check at all) and, as sessions are found by the
    /// peer they announce, be handed the fetches and Swiss numbers meant
    /// for that peer. It is aborted ([`IMPOSTOR`]) instead.
    pub verified: Option<PeerKey>,
}

/// Why a connection was not admitted. Nothing has been sent on it: close it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refused<C> {
    /// Every slot is taken.
    #[error("too many connections")]
    Full,
    /// Every slot not kept for our own dials is taken.
    #[error("too many inbound connections")]
    InboundFull,
    /// The source address holds its share.
    #[error("too many connections from this address")]
    SourceFull,
    /// We dialled a peer we already have a session with (it dialled us
    /// meanwhile): use that one.
    #[error("already have a session with this peer")]
    AlreadyConnected(C),
    /// The driver named a connection the endpoint already has.
    #[error("connection id already in use")]
    IdInUse,
}

/// Something the driver must do.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Decision<C> {
    /// Abort `conn`'s session with `reason` (send `op:abort`, then close).
    /// Work still waiting for that session to open goes to `hand_over_to`
    /// when there is one, or fails.
    Abort {
        /// The connection.
        conn: C,
        /// The `op:abort` reason.
        reason: &'static str,
        /// The session that takes over what waited on this one.
        hand_over_to: Option<C>,
    },
    /// `conn` is now the session with `peer`: route work for that peer to it
    /// and run what waits on it.
    Serve {
        /// The connection.
        conn: C,
        /// The peer it serves.
        peer: PeerKey,
    },
    /// Send a keepalive on `conn` (the session holds the peer's references
    /// and has been quiet; see [`Session::keepalive`]).
    Keepalive {
        /// The connection.
        conn: C,
    },
}

/// What [`Endpoint::poll_event`] hands the driver.
// An event is moved once, from the session to the driver, as the session's
// own `poll_event` moves it; boxing it would cost an allocation per event.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, PartialEq)]
#[non_exhaustive]
pub enum Polled<C> {
    /// An event of the polled connection's session.
    Event(Event),
    /// A step of a withdrawal, on whichever connection it names.
    Withdrawal(Withdrawal<C>),
}

/// A step of a third-party handoff on the exporter's side (see the module
/// docs): what the driver does for a withdrawal the endpoint routed. The
/// endpoint does not settle the reply itself: the gift is a reference of
/// the gifter's session, which only the driver can turn into a reference
/// of the receiver's (its local objects and the answers it hosts are the
/// driver's).
#[derive(Debug, PartialEq)]
#[non_exhaustive]
pub enum Withdrawal<C> {
    /// A withdrawal arrived on `receiver` whose answer is at `answer`. The
    /// peer may pipeline messages on that answer before the gift is found:
    /// make it a promise of the local side now, settled by the
    /// [`Withdrawal::Ready`] or [`Withdrawal::Broken`] that follows.
    Started {
        /// The receiver's connection.
        receiver: C,
        /// The withdrawal's answer position there.
        answer: AnswerPosition,
    },
    /// The gift is found: settle `reply` on `receiver` with `target`, a
    /// reference of `gifter`'s session (one of our objects, or an answer we
    /// host there). `gifter`'s session may have output to send.
    Ready {
        /// The receiver's connection.
        receiver: C,
        /// The withdrawal's reply (on the receiver's session).
        reply: Reply,
        /// The gifter–exporter connection the gift was deposited on.
        gifter: C,
        /// The gift, as `gifter`'s session names it.
        target: CapRef,
    },
    /// The withdrawal fails: break `reply` on `receiver` with `reason`.
    Broken {
        /// The receiver's connection.
        receiver: C,
        /// The withdrawal's reply.
        reply: Reply,
        /// [`UNKNOWN_GIFTER`], [`HANDOFF_REJECTED`] or [`GIFTER_ENDED`].
        reason: &'static str,
    },
}

impl<C: Copy> Withdrawal<C> {
    /// The receiver's connection.
    pub fn receiver(&self) -> C {
        match self {
            Withdrawal::Started { receiver, .. }
            | Withdrawal::Ready { receiver, .. }
            | Withdrawal::Broken { receiver, .. } => *receiver,
        }
    }
}

/// A withdrawal waiting for its gift to be deposited.
#[derive(Debug)]
struct Parked<C> {
    receiver: C,
    gifter: C,
    reply: Option<Reply>,
}

/// What the driver tells [`Endpoint::expire`] about an established session
/// (usually [`Activity::of`] it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Activity {
    /// We hold references the peer exported (the session must stay).
    pub holds_peer_refs: bool,
    /// One side awaits the other (a question, a listen, a gift).
    pub awaiting_peer: bool,
}

impl Activity {
    /// What `session`'s tables show: it imports something of the peer's,
    /// or a question, listen or answer is unsettled.
    pub fn of(session: &Session) -> Self {
        Activity {
            holds_peer_refs: session.table_sizes().imports > 0,
            awaiting_peer: session.is_waiting(),
        }
    }
}

/// Where a connection stands (see the module's state diagram).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnState {
    /// No `op:start-session` from the peer yet.
    AwaitingHello,
    /// The session with its peer.
    Serving,
    /// Established, waiting for another session with the same peer to
    /// settle.
    Held,
    /// Aborted, or decided to be; still counted until removed.
    Ended,
}

#[derive(Debug)]
enum State {
    AwaitingHello,
    Serving(PeerKey),
    Held { peer: PeerKey, until: Instant },
    Ended,
}

#[derive(Debug)]
struct Entry {
    /// The connection's session, from `admit` to `removed`.
    session: Session,
    direction: Direction,
    source: Option<IpAddr>,
    dialled: Option<PeerKey>,
    verified: Option<PeerKey>,
    our_id: PublicId,
    their_id: Option<PublicId>,
    session_id: Option<SessionId>,
    state: State,
    /// Admitted past its source's cap (adaptive only).
    borrowed: bool,
    /// Counted against the limits (a reclaimed slot stops counting at
    /// once, though its connection is still closing).
    counted: bool,
    opened: Instant,
    heard: Instant,
    partial_since: Option<Instant>,
    poked: Instant,
    /// Admission order, for "newest".
    seq: u64,
}

impl Entry {
    fn peer(&self) -> Option<&PeerKey> {
        match &self.state {
            State::Serving(p) | State::Held { peer: p, .. } => Some(p),
            _ => None,
        }
    }
}

/// The cross-session bookkeeping of one peer (see the module docs).
#[derive(Debug)]
pub struct Endpoint<C> {
    config: EndpointConfig,
    conns: HashMap<C, Entry>,
    serving: HashMap<PeerKey, C>,
    by_session_id: HashMap<SessionId, C>,
    next_seq: u64,
    /// Withdrawals waiting for their gift, by the ticket given to the
    /// gifter's session.
    parked: HashMap<GiftTicket, Parked<C>>,
    next_ticket: u64,
    /// Withdrawal steps for the driver, oldest first.
    withdrawals: VecDeque<Withdrawal<C>>,
}

impl<C: Copy + Eq + Hash> Endpoint<C> {
    /// An endpoint with no connections.
    pub fn new(config: EndpointConfig) -> Self {
        Endpoint {
            config,
            conns: HashMap::new(),
            serving: HashMap::new(),
            by_session_id: HashMap::new(),
            next_seq: 0,
            parked: HashMap::new(),
            next_ticket: 0,
            withdrawals: VecDeque::new(),
        }
    }

    /// The limits and deadlines.
    pub fn config(&self) -> &EndpointConfig {
        &self.config
    }

    /// Decides whether connection `conn` may start a session and, if so,
    /// creates it from `session` (whose key seed must be fresh randomness)
    /// and keeps it (reach it with [`Endpoint::session_mut`]; its
    /// `op:start-session` is queued). Returns what admitting it requires (a
    /// borrowed slot reclaimed).
    ///
    /// # Errors
    /// [`Refused`] when a limit is reached, when we dialled a peer that is
    /// served meanwhile by another session, or when `conn` is already known.
    pub fn admit(
        &mut self,
        conn: C,
        opening: Opening,
        session: SessionConfig,
        now: Instant,
    ) -> Result<Vec<Decision<C>>, Refused<C>> {
        if self.conns.contains_key(&conn) {
            return Err(Refused::IdInUse);
        }
        if let Some(to) = &opening.dialled
            && let Some(existing) = self.serving.get(to)
        {
            return Err(Refused::AlreadyConnected(*existing));
        }
        let max = self.config.max_sessions;
        let source = opening.source.map(source_key);
        let mut decisions = Vec::new();
        let mut borrowed = false;
        if opening.direction == Direction::Inbound {
            let reserved = (max / 8).max(1).min(max.saturating_sub(1));
            let inbound_cap = max.saturating_sub(reserved);
            let inbound = self.count(|e| e.direction == Direction::Inbound);
            let from_source = source.map_or(0, |s| {
                self.count(|e| e.direction == Direction::Inbound && e.source == Some(s))
            });
            let over_cap = source.is_some() && from_source >= self.config.max_sessions_per_source;
            let room = inbound < inbound_cap && self.count(|_| true) < max;
            match self.config.source_cap {
                SourceCap::Strict if over_cap => return Err(Refused::SourceFull),
                SourceCap::Strict if !room => return Err(full(inbound, inbound_cap)),
                SourceCap::Strict => {}
                SourceCap::Adaptive if room => borrowed = over_cap,
                SourceCap::Adaptive if over_cap => return Err(Refused::SourceFull),
                SourceCap::Adaptive => match self.reclaim(source) {
                    Some(d) => decisions.extend(d),
                    None => return Err(full(inbound, inbound_cap)),
                },
            }
        } else if self.count(|_| true) >= max {
            return Err(Refused::Full);
        }
        let session = Session::new(session);
        let our_id = *session.public_id();
        let seq = self.next_seq;
        self.next_seq += 1;
        self.conns.insert(
            conn,
            Entry {
                session,
                direction: opening.direction,
                source,
                dialled: opening.dialled,
                verified: opening.verified,
                our_id,
                their_id: None,
                session_id: None,
                state: State::AwaitingHello,
                borrowed,
                counted: true,
                opened: now,
                heard: now,
                partial_since: None,
                poked: now,
                seq,
            },
        );
        Ok(decisions)
    }

    /// Bytes arrived on `conn` at `now`; `partial` says whether a message is
    /// now partly received.
    pub fn heard(&mut self, conn: C, now: Instant, partial: bool) {
        if let Some(e) = self.conns.get_mut(&conn) {
            e.heard = now;
            e.partial_since = match partial {
                true => Some(e.partial_since.unwrap_or(now)),
                false => None,
            };
        }
    }

    /// `conn`'s session checked the peer's `op:start-session`: the peer
    /// announced `peer`, its key's identifier is `their_id`, the session's
    /// id `session_id`. Applies the one-session rule (module docs).
    ///
    /// The driver checks first that the announced location may be believed
    /// (an authenticated connection's identity); this trusts it.
    pub fn established(
        &mut self,
        conn: C,
        peer: PeerKey,
        their_id: PublicId,
        session_id: SessionId,
        now: Instant,
    ) -> Vec<Decision<C>> {
        let vouched = |e: &Entry| match &e.verified {
            Some(v) => *v == peer,
            None => self
                .config
                .unauthenticated_transports
                .contains(peer.transport()),
        };
        match self.conns.get(&conn) {
            Some(e) if matches!(e.state, State::AwaitingHello) => {
                if !vouched(e) {
                    return self.abort(conn, IMPOSTOR, None);
                }
            }
            _ => return Vec::new(),
        }
        if let Some(e) = self.conns.get_mut(&conn) {
            e.their_id = Some(their_id);
            e.session_id = Some(session_id);
        }
        self.by_session_id.insert(session_id, conn);
        // Another session with this peer: the one serving it, else a dial
        // of ours to it still awaiting its hello.
        let serving = self.serving.get(&peer).copied();
        let dialling = self
            .conns
            .iter()
            .find(|(c, e)| {
                **c != conn
                    && matches!(e.state, State::AwaitingHello)
                    && e.dialled.as_ref() == Some(&peer)
            })
            .map(|(c, _)| *c);
        let held = self.conns.iter().any(|(c, e)| {
            *c != conn && matches!(&e.state, State::Held { peer: p, .. } if *p == peer)
        });
        if held {
            return self.abort(conn, DUPLICATE, None);
        }
        if let Some(other) = serving {
            if let Some(e) = self.conns.get_mut(&conn) {
                e.state = State::Held {
                    peer,
                    until: now + self.config.settle_grace,
                };
            }
            // Our dial to that peer, if any, is redundant.
            return match dialling {
                Some(d) => self.abort(d, DUPLICATE, Some(other)),
                None => Vec::new(),
            };
        }
        if let Some(other) = dialling {
            let survivor = self.verdict(conn, other);
            let loser = if survivor == conn { other } else { conn };
            let reason = if self.direction(loser) == self.direction(survivor) {
                DUPLICATE
            } else {
                CROSSED_HELLOS
            };
            let mut out = self.abort(loser, reason, Some(survivor));
            if survivor == conn {
                out.extend(self.serve(conn, peer));
            }
            return out;
        }
        self.serve(conn, peer)
    }

    /// `conn`'s session has ended (aborted by either side or closed). A
    /// session held for the same peer takes its place.
    pub fn ended(&mut self, conn: C) -> Vec<Decision<C>> {
        let Some(e) = self.conns.get_mut(&conn) else {
            return Vec::new();
        };
        let was = std::mem::replace(&mut e.state, State::Ended);
        self.unindex(conn, was)
    }

    /// `conn` is gone: it no longer counts against the limits, and its
    /// session is dropped. Withdrawals parked on it that its session did
    /// not break already break now (drain [`Endpoint::poll_withdrawal`]).
    pub fn removed(&mut self, conn: C) -> Vec<Decision<C>> {
        let out = self.ended(conn);
        self.conns.remove(&conn);
        let orphans: Vec<GiftTicket> = self
            .parked
            .iter()
            .filter(|(_, p)| p.gifter == conn)
            .map(|(t, _)| *t)
            .collect();
        for t in orphans {
            self.gift_settled(t, Err(GIFTER_ENDED));
        }
        out
    }

    /// The next event of `conn`'s session, or a withdrawal step. Events of
    /// a third-party handoff never reach the driver: a withdrawal
    /// (`Event::WithdrawGift`) is taken to the gifter–exporter session its
    /// certificate names, redeemed there under a ticket of the endpoint's,
    /// and parked if the gift is not there yet; that session's
    /// `Event::GiftReady` and `Event::GiftWithdrawalBroken` complete it.
    /// What the driver must do comes back as [`Polled::Withdrawal`], in
    /// order, possibly naming another connection than `conn`.
    ///
    /// Call it until it returns `None` after every input to a session.
    pub fn poll_event(&mut self, conn: C) -> Option<Polled<C>> {
        loop {
            if let Some(w) = self.withdrawals.pop_front() {
                return Some(Polled::Withdrawal(w));
            }
            let event = self.conns.get_mut(&conn)?.session.poll_event()?;
            match event {
                Event::WithdrawGift { request, reply } => self.withdraw(conn, request, reply),
                Event::GiftReady { ticket, target } => self.gift_settled(ticket, Ok(target)),
                Event::GiftWithdrawalBroken { ticket } => {
                    self.gift_settled(ticket, Err(GIFTER_ENDED));
                }
                other => return Some(Polled::Event(other)),
            }
        }
    }

    /// The next withdrawal step not yet handed out by
    /// [`Endpoint::poll_event`] (after [`Endpoint::removed`], when no
    /// session is left to poll).
    pub fn poll_withdrawal(&mut self) -> Option<Withdrawal<C>> {
        self.withdrawals.pop_front()
    }

    /// Withdrawals parked until their gift is deposited.
    pub fn parked_withdrawals(&self) -> usize {
        self.parked.len()
    }

    /// Applies every deadline at `now`: handshakes too slow, sessions idle
    /// or slow on a message, held sessions whose grace is over. `activity`
    /// is asked about established sessions only (the driver's policy;
    /// usually [`Activity::of`]).
    pub fn expire(
        &mut self,
        now: Instant,
        activity: impl Fn(&Session) -> Activity,
    ) -> Vec<Decision<C>> {
        let cfg = &self.config;
        let mut aborts = Vec::new();
        let mut settle = Vec::new();
        let mut out = Vec::new();
        for (c, e) in &mut self.conns {
            let since = |t: Instant| now.saturating_duration_since(t);
            match &e.state {
                State::Ended => continue,
                State::AwaitingHello => {
                    if since(e.opened) > cfg.handshake_timeout {
                        aborts.push((*c, HANDSHAKE_TOO_SLOW));
                    }
                    continue;
                }
                State::Held { until, .. } if now >= *until => settle.push((*c, e.seq)),
                _ => {}
            }
            if e.partial_since
                .is_some_and(|t| since(t) > cfg.message_timeout)
            {
                aborts.push((*c, MESSAGE_TOO_SLOW));
                continue;
            }
            let silent = since(e.heard);
            let half = cfg.idle_timeout / 2;
            let a = activity(&e.session);
            if a.holds_peer_refs {
                if silent >= half && since(e.poked) >= half {
                    e.poked = now;
                    out.push(Decision::Keepalive { conn: *c });
                }
            } else if silent > cfg.idle_timeout && e.partial_since.is_none() && !a.awaiting_peer {
                aborts.push((*c, IDLE));
            }
        }
        for (c, reason) in aborts {
            out.extend(self.abort(c, reason, None));
        }
        settle.sort_by_key(|(_, seq)| *seq);
        for (c, _) in settle {
            out.extend(self.settle(c));
        }
        out
    }

    /// The session to use for `peer`: the one serving it, else a dial of
    /// ours to it still awaiting its hello.
    pub fn route(&self, peer: &PeerKey) -> Option<C> {
        self.serving.get(peer).copied().or_else(|| {
            self.conns
                .iter()
                .find(|(_, e)| {
                    matches!(e.state, State::AwaitingHello) && e.dialled.as_ref() == Some(peer)
                })
                .map(|(c, _)| *c)
        })
    }

    /// The established, not ended, session whose Session ID is `id` (the
    /// gifter session a handoff names).
    pub fn by_session_id(&self, id: &SessionId) -> Option<C> {
        self.by_session_id.get(id).copied()
    }

    /// `conn`'s session, from [`Endpoint::admit`] to [`Endpoint::removed`].
    pub fn session(&self, conn: C) -> Option<&Session> {
        self.conns.get(&conn).map(|e| &e.session)
    }

    /// `conn`'s session, to feed it bytes or commands and drain it.
    pub fn session_mut(&mut self, conn: C) -> Option<&mut Session> {
        self.conns.get_mut(&conn).map(|e| &mut e.session)
    }

    /// Every session not yet removed, by connection (in no set order).
    pub fn sessions(&self) -> impl Iterator<Item = (C, &Session)> {
        self.conns.iter().map(|(c, e)| (*c, &e.session))
    }

    /// Every session not yet removed, mutably.
    pub fn sessions_mut(&mut self) -> impl Iterator<Item = (C, &mut Session)> {
        self.conns.iter_mut().map(|(c, e)| (*c, &mut e.session))
    }

    /// Where `conn` stands, if the endpoint knows it.
    pub fn state(&self, conn: C) -> Option<ConnState> {
        self.conns.get(&conn).map(|e| match e.state {
            State::AwaitingHello => ConnState::AwaitingHello,
            State::Serving(_) => ConnState::Serving,
            State::Held { .. } => ConnState::Held,
            State::Ended => ConnState::Ended,
        })
    }

    /// The peer `conn` is established with (serving or held).
    pub fn peer_of(&self, conn: C) -> Option<&PeerKey> {
        self.conns.get(&conn).and_then(Entry::peer)
    }

    /// Connections counted against the limits.
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    // ------------------------------------------------------------------

    fn count(&self, f: impl Fn(&Entry) -> bool) -> usize {
        self.conns.values().filter(|e| e.counted && f(e)).count()
    }

    fn direction(&self, c: C) -> Option<Direction> {
        self.conns.get(&c).map(|e| e.direction)
    }

    /// Of two sessions with one peer, the one the rule keeps. Opposite
    /// directions: crossed hellos. Same direction: the one admitted first.
    fn verdict(&self, a: C, b: C) -> C {
        let (Some(ea), Some(eb)) = (self.conns.get(&a), self.conns.get(&b)) else {
            return a;
        };
        if ea.direction == eb.direction {
            return if ea.seq <= eb.seq { a } else { b };
        }
        let (outbound, inbound, o, i) = match ea.direction {
            Direction::Outbound => (a, b, ea, eb),
            Direction::Inbound => (b, a, eb, ea),
        };
        // The inbound session is established (only an established inbound
        // session names its peer), so its peer identifier is known.
        match i.their_id {
            Some(y) if !crossed_hellos_keep_outbound(&o.our_id, &y) => inbound,
            _ => outbound,
        }
    }

    /// The grace of held session `c` is over: apply the rule.
    fn settle(&mut self, c: C) -> Vec<Decision<C>> {
        let Some(peer) = self.conns.get(&c).and_then(Entry::peer).cloned() else {
            return Vec::new();
        };
        let Some(other) = self.serving.get(&peer).copied() else {
            return self.serve(c, peer);
        };
        let crossed = self.direction(c) != self.direction(other);
        if crossed && self.verdict(c, other) == c {
            let mut out = self.abort(other, CROSSED_HELLOS, Some(c));
            out.extend(self.serve(c, peer));
            return out;
        }
        let reason = if crossed { CROSSED_HELLOS } else { DUPLICATE };
        self.abort(c, reason, None)
    }

    fn serve(&mut self, c: C, peer: PeerKey) -> Vec<Decision<C>> {
        if let Some(e) = self.conns.get_mut(&c) {
            e.state = State::Serving(peer.clone());
        }
        self.serving.insert(peer.clone(), c);
        vec![Decision::Serve { conn: c, peer }]
    }

    fn abort(&mut self, c: C, reason: &'static str, hand_over_to: Option<C>) -> Vec<Decision<C>> {
        let Some(e) = self.conns.get_mut(&c) else {
            return Vec::new();
        };
        let was = std::mem::replace(&mut e.state, State::Ended);
        if matches!(was, State::Ended) {
            return Vec::new();
        }
        let mut out = vec![Decision::Abort {
            conn: c,
            reason,
            hand_over_to,
        }];
        out.extend(self.unindex(c, was));
        out
    }

    /// A withdrawal arrived on `receiver`: redeems it on the gifter's
    /// session, or parks it there, or breaks it.
    fn withdraw(&mut self, receiver: C, request: VerifiedReceive, reply: Option<Reply>) {
        if let Some(answer) = reply.as_ref().and_then(Reply::answer_position) {
            self.withdrawals
                .push_back(Withdrawal::Started { receiver, answer });
        }
        let ticket = GiftTicket(self.next_ticket);
        self.next_ticket = self.next_ticket.wrapping_add(1);
        let Some(gifter) = self.by_session_id.get(&request.give().session).copied() else {
            return self.withdrawn(receiver, reply, Err(UNKNOWN_GIFTER));
        };
        let redeemed = match self.conns.get_mut(&gifter) {
            Some(e) if !e.session.is_terminated() => e.session.redeem_gift(request, ticket),
            _ => return self.withdrawn(receiver, reply, Err(UNKNOWN_GIFTER)),
        };
        match redeemed {
            Ok(Some(target)) => self.withdrawn(receiver, reply, Ok((gifter, target))),
            Ok(None) => {
                let parked = Parked {
                    receiver,
                    gifter,
                    reply,
                };
                self.parked.insert(ticket, parked);
            }
            Err(_) => self.withdrawn(receiver, reply, Err(HANDOFF_REJECTED)),
        }
    }

    /// The gifter's session settled the withdrawal parked under `ticket`
    /// (a ticket whose receiver is gone is forgotten already: ignored).
    fn gift_settled(&mut self, ticket: GiftTicket, outcome: Result<CapRef, &'static str>) {
        if let Some(p) = self.parked.remove(&ticket) {
            let outcome = outcome.map(|target| (p.gifter, target));
            self.withdrawn(p.receiver, p.reply, outcome);
        }
    }

    /// Queues what the driver does to finish a withdrawal (nothing if the
    /// peer wants no reply).
    fn withdrawn(
        &mut self,
        receiver: C,
        reply: Option<Reply>,
        outcome: Result<(C, CapRef), &'static str>,
    ) {
        let Some(reply) = reply else {
            return;
        };
        self.withdrawals.push_back(match outcome {
            Ok((gifter, target)) => Withdrawal::Ready {
                receiver,
                reply,
                gifter,
                target,
            },
            Err(reason) => Withdrawal::Broken {
                receiver,
                reply,
                reason,
            },
        });
    }

    /// Forgets `c` (whose state was `was`) as a session with its peer; a
    /// session held for that peer serves it instead. Withdrawals it
    /// received are forgotten (their replies went with the session).
    fn unindex(&mut self, c: C, was: State) -> Vec<Decision<C>> {
        if let Some(sid) = self.conns.get(&c).and_then(|e| e.session_id) {
            self.by_session_id.remove(&sid);
        }
        self.parked.retain(|_, p| p.receiver != c);
        self.withdrawals.retain(|w| w.receiver() != c);
        let State::Serving(peer) = was else {
            return Vec::new();
        };
        if self.serving.get(&peer) == Some(&c) {
            self.serving.remove(&peer);
        }
        let next = self
            .conns
            .iter()
            .filter(|(_, e)| matches!(&e.state, State::Held { peer: p, .. } if *p == peer))
            .min_by_key(|(_, e)| e.seq)
            .map(|(c, _)| *c);
        match next {
            Some(n) => self.serve(n, peer),
            None => Vec::new(),
        }
    }

    /// Under [`SourceCap::Adaptive`], with no inbound slot free: aborts the
    /// newest borrowed session of the source holding the most, unless that
    /// source is `for_source` itself. `None`: nothing to reclaim.
    fn reclaim(&mut self, for_source: Option<IpAddr>) -> Option<Vec<Decision<C>>> {
        let mut per_source: HashMap<IpAddr, usize> = HashMap::new();
        for e in self.conns.values() {
            if e.counted
                && e.direction == Direction::Inbound
                && let Some(s) = e.source
            {
                *per_source.entry(s).or_default() += 1;
            }
        }
        let victim = self
            .conns
            .iter()
            .filter(|(_, e)| e.counted && e.borrowed && e.source != for_source)
            .max_by_key(|(_, e)| {
                let held = e.source.and_then(|s| per_source.get(&s)).copied();
                (held.unwrap_or(0), e.seq)
            })
            .map(|(c, _)| *c)?;
        if let Some(e) = self.conns.get_mut(&victim) {
            e.counted = false;
        }
        Some(self.abort(victim, RECLAIMED, None))
    }
}

fn full<C>(inbound: usize, inbound_cap: usize) -> Refused<C> {
    if inbound >= inbound_cap {
        Refused::InboundFull
    } else {
        Refused::Full
    }
}

/// Crossed hellos (DIGEST section 7): we dialled a peer while it dialled us.
/// `our_outbound` is our Public Identifier on our outbound connection,
/// `their_inbound` the peer's on its (our inbound) connection. Returns
/// whether to keep our outbound connection (and abort the inbound one);
/// `false` means abort the outbound one. The peer reaches the same verdict.
pub fn crossed_hellos_keep_outbound(our_outbound: &PublicId, their_inbound: &PublicId) -> bool {
    our_outbound.0 > their_inbound.0
}

/// The address a source is counted by: an IPv4 address, or an IPv6 /64
/// (one host usually holds a whole /64).
pub fn source_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut seg = v6.segments();
                seg[4..].fill(0);
                IpAddr::V6(seg.into())
            }
        },
    }
}
