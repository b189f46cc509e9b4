//! The peer: one event loop that owns every CapTP session of a vat.
//!
//! ```text
//!   netlayer ─accept/dial─► conn tasks ──NetEvent──┐
//!   readers (vat thread or tasks) ──Ingress────────┤
//!                                                  ▼
//!   vat threads ──Cmd (far refs, resolvers)──► event loop (Core) ── owns ──► Endpoint ── owns ──► Session per connection
//!        ▲                                         │
//!        └──── vat.deliver / Resolver::settle_now ─┘
//! ```
//!
//! The loop keeps, per connection, the connection itself and what the
//! session's positions stand for in the vat (`Sess`); the sessions are the
//! endpoint's. The loop is the only place sessions are touched; vats reach
//! it by posting [`Cmd`]s (from [`ImportRemote`], [`QuestionRemote`] and
//! foreign resolvers). After every input the loop drains each touched session's
//! events (turning them into vat deliveries) and its outgoing messages
//! (handing them to the connection's writer).
//!
//! Invariants (upheld by the loop):
//! - one session per peer pair: the captp endpoint
//!   (`pola_captp::endpoint`) indexes sessions by the location the peer
//!   announced (inbound ones included) and by the location we dialled, and
//!   decides crossed hellos and duplicates; a second need for a peer reuses
//!   the session it routes to, or the dial in flight. The loop only carries
//!   out the endpoint's decisions (admission, aborts, deadlines).
//! - a local object keeps one [`LocalId`] while any session exports it; the
//!   id is forgotten when every session has released it.
//! - a stale import drop (for an older generation of the import) never
//!   releases a newer import of the same position.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::convert::Infallible;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use pola_captp::budget::MemoryPool;
use pola_captp::crypto::SessionId;
use pola_captp::endpoint::{
    self, Activity, Decision, Endpoint, EndpointConfig, Opening, PeerKey, Polled, SourceCap,
    Withdrawal,
};
use pola_captp::handoff::SignedGive;
use pola_captp::locator::{Hints, PeerLocator, SturdyRef, Swiss};
use pola_captp::session::{
    CapRef, Event, LocalTarget, ProjectKind, Reply, Session, SessionConfig, Settlement,
};
use pola_captp::{AnswerPosition, Dialect, ImportPosition, LocalId, QuestionPosition};
use pola_netlayer::{Direction, Location, Netlayer};
use pola_syrup::Value;
use pola_vat::{Outcome, Ref, Resolver, Val, Vat, error, listen_external};
use tokio::sync::{mpsc, oneshot};

use crate::conn::{self, ConnHandle, ConnId, DialToken, Input, NetEvent};
use crate::message::{args_from_message, message_from_args};
use crate::remote::{
    ApiCmd, Cmd, CmdTx, ImportGeneration, ImportRemote, LocalCmds, LocalQueue, OutTarget,
    QuestionRemote, SturdyRemote, WaitToken,
};
use crate::stats::{PeerStats, SessionStats};
use crate::swiss::{SturdyTable, random_swiss};

/// How a peer behaves on the wire.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct PeerConfig {
    /// What our sessions emit (everything is accepted either way); the
    /// default, [`Dialect::Auto`], learns each peer's forms from what it
    /// sends (see `pola_captp::dialects`).
    pub dialect: Dialect,
    /// Most connections at once; further inbound connections are closed
    /// at once. An eighth of them (at least one) is kept for connections we
    /// dial ourselves, so inbound connections can never lock us out.
    pub max_sessions: usize,
    /// Most inbound connections from one source address (an IPv6 source
    /// counts by its /64) at once, so one host cannot take every slot.
    /// Every user behind one NAT address counts as that one source.
    pub max_sessions_per_source: usize,
    /// Whether a source may borrow free slots past
    /// `max_sessions_per_source`, taken back when a source under its cap
    /// finds none free (for many users behind one NAT address; see
    /// `pola_captp::endpoint` for the trade-off). Default: strict.
    pub source_cap: SourceCap,
    /// Most bytes queued for one connection's writer; a peer that stops
    /// reading past this has its session aborted.
    pub max_queued_bytes: usize,
    /// Most bytes of ours one peer's session may hold (answers it keeps,
    /// messages it pipelines, values waiting for the vat), measured
    /// decoded; over it the session is aborted. See `pola_captp::budget`.
    pub max_held_bytes: usize,
    /// Most bytes all sessions together may hold. When it is spent, a
    /// session that grows beyond its fair share (this divided by the
    /// sessions) is aborted; modest sessions go on.
    pub max_held_bytes_total: usize,
    /// How long a connection may take to send a valid `op:start-session`.
    pub handshake_timeout: Duration,
    /// How long an established session may stay silent (nothing arrives)
    /// while it is idle: neither side awaits the other and we hold none of
    /// the peer's references. It is then aborted ("idle for too long").
    /// A session on which we hold the peer's references is kept: we send
    /// an empty `op:gc-answers` after half this silence, so a peer with
    /// the same rule keeps it too.
    pub idle_timeout: Duration,
    /// How long one incoming message may take from its first byte to its
    /// last; a peer that stalls or trickles a started message is aborted
    /// ("message too slow"). With the default message size cap (8 MiB) the
    /// default asks a sender of the largest message for about 140 KiB/s.
    /// (Over noise a partly received frame is not seen here: a peer that
    /// stalls inside one counts as silent.)
    pub message_timeout: Duration,
    /// The most the vat's thread polls its sockets before it sleeps, when
    /// it reads them itself (plain TCP). The window adapts between zero
    /// (no traffic) and this; zero turns polling off. See the README's
    /// figures for what it buys and costs.
    pub spin_max: Duration,
}

impl Default for PeerConfig {
    /// Understood by a peer of either dialect ([`Dialect::Auto`]), 1024 sessions, 16 MiB queued per
    /// connection, 30 s to start a session, 10 minutes idle, 60 s per
    /// message.
    fn default() -> Self {
        PeerConfig {
            dialect: Dialect::Auto,
            max_sessions: 1024,
            max_sessions_per_source: 64,
            source_cap: SourceCap::Strict,
            max_queued_bytes: conn::DEFAULT_MAX_QUEUED,
            max_held_bytes: 64 << 20,
            max_held_bytes_total: 1 << 30,
            handshake_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(600),
            message_timeout: Duration::from_secs(60),
            spin_max: crate::io::SPIN_MAX,
        }
    }
}

impl PeerConfig {
    /// For the public OCapN test suite, either branch: learn the form of
    /// fire-and-forget from the suite, three-field `op:listen`, singular GC
    /// labels ([`Dialect::AutoSuite`]).
    pub fn test_suite() -> Self {
        PeerConfig::default().with_dialect(Dialect::AutoSuite)
    }

    /// At most `n` connections at once.
    #[must_use]
    pub fn with_max_sessions(mut self, n: usize) -> Self {
        self.max_sessions = n;
        self
    }

    /// At most `n` inbound connections from one source address at once.
    #[must_use]
    pub fn with_max_sessions_per_source(mut self, n: usize) -> Self {
        self.max_sessions_per_source = n;
        self
    }

    /// Sets [`PeerConfig::max_held_bytes`] and
    /// [`PeerConfig::max_held_bytes_total`].
    #[must_use]
    pub fn with_held_budget(mut self, per_session: usize, total: usize) -> Self {
        self.max_held_bytes = per_session;
        self.max_held_bytes_total = total;
        self
    }

    /// Whether the per-source cap is strict or lends free slots.
    #[must_use]
    pub fn with_source_cap(mut self, cap: SourceCap) -> Self {
        self.source_cap = cap;
        self
    }

    /// At most `bytes` queued for one connection's writer.
    #[must_use]
    pub fn with_max_queued_bytes(mut self, bytes: usize) -> Self {
        self.max_queued_bytes = bytes;
        self
    }

    /// A connection must send `op:start-session` within `t`.
    #[must_use]
    pub fn with_handshake_timeout(mut self, t: Duration) -> Self {
        self.handshake_timeout = t;
        self
    }

    /// An idle session is closed after `t` of silence.
    #[must_use]
    pub fn with_idle_timeout(mut self, t: Duration) -> Self {
        self.idle_timeout = t;
        self
    }

    /// One incoming message must arrive whole within `t` of its first byte.
    #[must_use]
    pub fn with_message_timeout(mut self, t: Duration) -> Self {
        self.message_timeout = t;
        self
    }

    /// Poll the sockets for at most `t` before sleeping (zero: never).
    #[must_use]
    pub fn with_spin_max(mut self, t: Duration) -> Self {
        self.spin_max = t;
        self
    }

    /// Emit `dialect`.
    #[must_use]
    pub fn with_dialect(mut self, dialect: Dialect) -> Self {
        self.dialect = dialect;
        self
    }
}

/// Why a peer could not start or act.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PeerError {
    /// Caller misuse: a peer needs at least one netlayer.
    #[error("a peer needs at least one netlayer")]
    NoNetlayer,
    /// The netlayer's location is not a valid peer locator.
    #[error("bad netlayer location: {0}")]
    Location(#[from] pola_captp::locator::LocatorError),
    /// The OS random number generator failed.
    #[error("os rng: {0}")]
    Rng(getrandom::Error),
    /// A netlayer failed (binding a port, for example).
    #[error("netlayer: {0}")]
    Net(#[from] pola_netlayer::NetError),
    /// The peer's event loop has stopped.
    #[error("peer stopped")]
    Stopped,
}

/// A cheap, cloneable handle on a running peer (usable from any thread).
#[derive(Clone, Debug)]
pub struct PeerHandle {
    tx: CmdTx,
    vat: Vat,
    location: PeerLocator,
    sturdy: Sturdies,
}

/// The Swiss numbers this peer serves, shared by its handles and its core:
/// a registration or revocation holds from the moment its call returns,
/// even for a fetch already on its way in.
type Sturdies = Arc<Mutex<SturdyTable<Ref>>>;

/// Locks the Swiss-number table. Nothing panics while holding it (it is
/// a map), but a poisoned lock still holds a consistent table.
fn sturdies(t: &Sturdies) -> std::sync::MutexGuard<'_, SturdyTable<Ref>> {
    t.lock().unwrap_or_else(|p| p.into_inner())
}

impl std::fmt::Debug for Cmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cmd")
    }
}

impl PeerHandle {
    /// Where this peer can be reached (its first netlayer's locator).
    pub fn location(&self) -> &PeerLocator {
        &self.location
    }

    /// The vat whose objects this peer serves.
    pub fn vat(&self) -> &Vat {
        &self.vat
    }

    /// Registers `object` under a chosen Swiss number (what `fetch` finds):
    /// a [`Swiss`], or its bytes.
    pub fn register(&self, swiss: impl Into<Swiss>, object: Ref) {
        self.register_until(swiss, object, None);
    }

    /// Registers `object` under a chosen Swiss number until `expires`
    /// (never, if `None`); a fetch after that fails saying the sturdyref
    /// has expired.
    pub fn register_until(
        &self,
        swiss: impl Into<Swiss>,
        object: Ref,
        expires: Option<std::time::SystemTime>,
    ) {
        sturdies(&self.sturdy).register_until(swiss.into(), object, expires);
    }

    /// Forgets the Swiss number `swiss`: every `fetch` of it handled after
    /// this call returns fails, including one already on its way in.
    /// References already handed out stay live (revoke those with a
    /// revocable forwarder).
    pub fn revoke(&self, swiss: &Swiss) {
        sturdies(&self.sturdy).revoke(swiss);
    }

    /// Mints a sturdyref for `object`: a fresh random Swiss number (256
    /// bits from the OS RNG) registered with this peer.
    ///
    /// # Errors
    /// The OS RNG failed.
    pub fn mint_sturdyref(&self, object: Ref) -> Result<SturdyRef, PeerError> {
        let swiss = random_swiss().map_err(PeerError::Rng)?;
        self.register(swiss.clone(), object);
        Ok(SturdyRef {
            peer: self.location.clone(),
            swiss,
        })
    }

    /// A promise for the object `sturdy` names: connects to (or reuses a
    /// session with) its peer and fetches it. Breaks if the peer cannot be
    /// reached or knows no such Swiss number.
    ///
    /// The result is a far promise (no vat promise holds it, so dropping it
    /// releases the import at once); inside a turn that must answer with a
    /// promise of its own vat, use [`PeerHandle::enliven_into`].
    pub fn enliven(&self, sturdy: SturdyRef) -> Ref {
        let answer = QuestionRemote::pending(self.tx.clone());
        self.post_enliven(sturdy, answer.clone());
        Ref::remote(answer)
    }

    /// A far reference to the object `sturdy` names that fetches it on
    /// first use and again after its session ends (a restart of either
    /// side), so it can be kept for good: a persistent object may hold it
    /// (it is stored as the sturdyref's URI and made again by
    /// [`PeerHandle::enliven_recipe`]). Making it does not connect.
    pub fn sturdy(&self, sturdy: SturdyRef) -> Ref {
        Ref::remote(SturdyRemote::new(self.tx.clone(), sturdy))
    }

    /// Makes a stored far reference again from its recipe (a sturdyref
    /// URI, see [`PeerHandle::sturdy`]): the enlivener of a persistent vat
    /// served by this peer (`pola_vat::persist::Kinds::set_enlivener`).
    /// A recipe that is not a sturdyref URI gives a broken reference
    /// saying so.
    pub fn enliven_recipe(&self, recipe: &Val) -> Ref {
        match recipe.as_str().map(SturdyRef::from_uri) {
            Some(Ok(sturdy)) => self.sturdy(sturdy),
            _ => Ref::broken(error(
                "cannot revive a far reference: its recipe is not a sturdyref",
            )),
        }
    }

    /// Like [`PeerHandle::enliven`], settling `resolver` with the far
    /// reference instead (for a promise made in a vat turn).
    pub fn enliven_into(&self, sturdy: SturdyRef, resolver: Resolver) {
        let answer = QuestionRemote::pending(self.tx.clone());
        self.post_enliven(sturdy, answer.clone());
        resolver.resolve_now(Value::Ref(Ref::remote(answer)));
    }

    fn post_enliven(&self, sturdy: SturdyRef, answer: Arc<QuestionRemote>) {
        if let Err(mpsc::error::SendError(Cmd::Api(ApiCmd::Enliven { answer, .. }))) =
            self.tx.send(Cmd::Api(ApiCmd::Enliven { sturdy, answer }))
        {
            answer.settle(Err(error("peer stopped")));
        }
    }

    /// A snapshot of the peer's sessions and tables.
    ///
    /// # Errors
    /// [`PeerError::Stopped`] if the peer has stopped.
    pub async fn stats(&self) -> Result<PeerStats, PeerError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Cmd::Api(ApiCmd::Stats { reply }))
            .map_err(|_| PeerError::Stopped)?;
        rx.await.map_err(|_| PeerError::Stopped)
    }

    /// Aborts every session, closes every connection and stops the loop.
    pub async fn shutdown(&self) {
        let (done, rx) = oneshot::channel();
        if self.tx.send(Cmd::Api(ApiCmd::Shutdown { done })).is_ok() {
            let _ = rx.await;
        }
    }
}

/// A running peer: a vat served over one or more netlayers.
#[derive(Debug)]
pub struct Peer {
    handle: PeerHandle,
    task: tokio::task::JoinHandle<()>,
}

impl std::ops::Deref for Peer {
    type Target = PeerHandle;
    fn deref(&self) -> &PeerHandle {
        &self.handle
    }
}

impl Peer {
    /// Starts serving `vat` on `netlayers` (the first one's location is the
    /// peer's own locator; each session announces the location of the
    /// netlayer it runs on). Must be called inside a tokio runtime.
    ///
    /// # Errors
    /// No netlayer, or a netlayer location that is not a valid locator.
    pub fn start(
        vat: Vat,
        netlayers: Vec<Arc<dyn Netlayer>>,
        config: PeerConfig,
    ) -> Result<Peer, PeerError> {
        let first = netlayers.first().ok_or(PeerError::NoNetlayer)?;
        let loc = first.location();
        let location = PeerLocator::new(
            loc.transport.clone(),
            loc.designator.clone(),
            Hints::Map(loc.hints.clone()),
        )?;
        let locations = netlayers
            .iter()
            .map(|n| n.location())
            .filter_map(|l| {
                PeerLocator::new(
                    l.transport.clone(),
                    l.designator.clone(),
                    Hints::Map(l.hints.clone()),
                )
                .ok()
            })
            .collect();
        let (chan, cmd_rx) = mpsc::unbounded_channel();
        let local = Arc::new(LocalCmds {
            thread: vat.thread_id(),
            queue: Mutex::new(LocalQueue::default()),
        });
        let tx = CmdTx {
            chan,
            local: local.clone(),
        };
        let spin_max = config.spin_max;
        let sturdy: Sturdies = Arc::default();
        let (net_tx, net_rx) = mpsc::channel(conn::EVENT_QUEUE);
        for n in &netlayers {
            conn::spawn_acceptor(n.clone(), net_tx.clone());
        }
        let endpoint = Endpoint::new(endpoint_config(&config, &netlayers));
        let pool = MemoryPool::new(config.max_held_bytes_total);
        let mut core = Core {
            pool,
            vat: vat.clone(),
            tx: tx.clone(),
            net_tx,
            config,
            netlayers,
            location: location.clone(),
            locations,
            sessions: HashMap::new(),
            endpoint,
            dialing: HashMap::new(),
            dial_tokens: HashMap::new(),
            locals: HashMap::new(),
            local_of: HashMap::new(),
            next_local: 1,
            sturdy: sturdy.clone(),
            waiting: HashMap::new(),
            next_token: 1,
            dirty: BTreeSet::new(),
            reroute_depth: 0,
            // Replaced below, once the core has its place.
            ingress: Arc::new(|_, _| {}),
            io: None,
            runtime: tokio::runtime::Handle::current(),
            finished: false,
        };
        let tick = [
            core.config.handshake_timeout,
            core.config.idle_timeout,
            core.config.message_timeout,
            core.endpoint.config().settle_grace,
        ]
        .into_iter()
        .min()
        .map_or(Duration::from_secs(1), |t| t / 4)
        .max(Duration::from_millis(10));
        let core = Arc::new_cyclic(|me| {
            core.ingress = ingress_to(me.clone());
            Mutex::new(core)
        });
        // The session work a vat thread asks for (sends through far refs,
        // answers it settled) runs on that thread when the vat goes idle,
        // by the peer's driver on the vat: no wake-up of the event loop on
        // the way out. The driver also makes the vat sleep on the sockets
        // it reads, if no other peer's does.
        let side = OnVat {
            core: Arc::downgrade(&core),
            local: local.clone(),
        };
        let io = crate::io::VatIo::attach(&vat, spin_max, side);
        lock(&core).io = io;
        let task = tokio::spawn(run(core, local, cmd_rx, net_rx, tick));
        Ok(Peer {
            handle: PeerHandle {
                tx,
                vat,
                location,
                sturdy,
            },
            task,
        })
    }

    /// A handle usable from anywhere (vat objects, other threads).
    pub fn handle(&self) -> PeerHandle {
        self.handle.clone()
    }

    /// Waits until the peer's loop ends (after [`PeerHandle::shutdown`]).
    pub async fn stopped(self) {
        let _ = self.task.await;
    }
}

fn key_of(loc: &PeerLocator) -> PeerKey {
    PeerKey::of(loc)
}

/// The endpoint's limits and deadlines, from the peer's.
fn endpoint_config(config: &PeerConfig, netlayers: &[Arc<dyn Netlayer>]) -> EndpointConfig {
    let mut e = EndpointConfig::default();
    e.max_sessions = config.max_sessions;
    e.max_sessions_per_source = config.max_sessions_per_source;
    e.source_cap = config.source_cap;
    e.handshake_timeout = config.handshake_timeout;
    e.idle_timeout = config.idle_timeout;
    e.message_timeout = config.message_timeout;
    e.unauthenticated_transports = netlayers
        .iter()
        .filter(|n| !n.authenticates())
        .map(|n| n.transport().to_owned())
        .collect();
    e
}

fn location_of(loc: &PeerLocator) -> Location {
    Location {
        transport: loc.transport().to_owned(),
        designator: loc.designator().to_owned(),
        hints: loc
            .hints()
            .entries()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
    }
}

/// The one path what arrives on a connection takes into the core, from
/// whichever thread read it (the vat's own, or a connection's reader
/// task): bytes are decoded, turned into vat deliveries and answers as
/// they arrive; the end of a connection ends its session.
fn ingress_to(core: Weak<Mutex<Core>>) -> conn::Ingress {
    Arc::new(move |id, input| {
        on_core(&core, |c| {
            c.handle_input(id, input);
            c.pump();
        });
    })
}

/// The peer's work on its vat's thread (see the `io` module).
struct OnVat {
    core: Weak<Mutex<Core>>,
    local: Arc<LocalCmds>,
}

impl crate::io::VatSide for OnVat {
    fn run_queued(&mut self) -> bool {
        if self.local.is_empty() {
            return self.core.strong_count() > 0;
        }
        let Some(core) = self.core.upgrade() else {
            return false;
        };
        // A bug in one command must not stop the vat-side path for good
        // (its queue would then only grow): keep going.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            lock(&core).drain_local(&self.local);
        }));
        true
    }

    /// GC reports held back for a message to ride with go out alone once
    /// the vat has been quiet for a moment.
    fn quiet(&mut self) {
        on_core(&self.core, Core::flush_gc);
    }
}

/// Work that needs an established session with some peer.
enum Pending {
    Fetch {
        swiss: Swiss,
        answer: Arc<QuestionRemote>,
    },
    Withdraw {
        gift: Box<SignedGive>,
        via: ConnId,
        answer: Arc<QuestionRemote>,
    },
}

impl Pending {
    fn fail(self, reason: &str) {
        match self {
            Pending::Fetch { answer, .. } | Pending::Withdraw { answer, .. } => {
                answer.settle(Err(error(reason)));
            }
        }
    }
}

/// A settlement the peer is waiting for from a vat.
enum Waiting {
    Reply(Reply),
}

/// The driver's side of one connection: the connection itself and what
/// the session's positions stand for in the vat. The session is the
/// endpoint's (`Endpoint::session_mut`).
struct Sess {
    conn: ConnHandle,
    peer: Option<PeerLocator>,
    imports: HashMap<ImportPosition, (Weak<ImportRemote>, ImportGeneration)>,
    questions: HashMap<QuestionPosition, Arc<QuestionRemote>>,
    answers: HashMap<AnswerPosition, Ref>,
    /// The local objects this session's values were translated with (a
    /// superset of what its export table holds: a value whose references
    /// were translated may still fail to be sent). Each counts once in
    /// [`LocalEntry::sessions`] until the session reports it dropped or
    /// ends, so an object some session may still name is never forgotten;
    /// the session remains the authority on what the peer holds.
    exported: HashSet<LocalId>,
    listens: HashMap<ImportPosition, (Arc<ImportRemote>, Vec<Resolver>)>,
    /// The local promises of withdrawals the endpoint is routing (see
    /// `endpoint::Withdrawal`), by their answer position (their promises
    /// are in `answers`).
    withdrawals: HashMap<AnswerPosition, Resolver>,
    pending: Vec<Pending>,
    net_closed: bool,
    cleaned: bool,
}

/// One of our objects as the sessions name it (a [`LocalId`]).
struct LocalEntry {
    object: Ref,
    /// Sessions whose `exported` set holds it; at zero it is forgotten.
    sessions: usize,
}

struct Core {
    /// The budget all sessions' held bytes draw on.
    pool: MemoryPool,
    vat: Vat,
    tx: CmdTx,
    net_tx: mpsc::Sender<NetEvent>,
    config: PeerConfig,
    netlayers: Vec<Arc<dyn Netlayer>>,
    location: PeerLocator,
    /// Every netlayer's location that is a valid locator, first one first.
    locations: Vec<PeerLocator>,
    sessions: HashMap<ConnId, Sess>,
    /// Admission, the session serving each peer, crossed hellos and
    /// duplicates, deadlines, sessions by Session ID.
    endpoint: Endpoint<ConnId>,
    /// Work waiting for a dial in flight (no connection yet).
    dialing: HashMap<PeerKey, Vec<Pending>>,
    dial_tokens: HashMap<DialToken, PeerKey>,
    locals: HashMap<LocalId, LocalEntry>,
    local_of: HashMap<Ref, LocalId>,
    next_local: u64,
    sturdy: Sturdies,
    waiting: HashMap<WaitToken, (ConnId, Waiting)>,
    next_token: u64,
    dirty: BTreeSet<ConnId>,
    reroute_depth: u8,
    /// Where connection readers hand what arrives.
    ingress: conn::Ingress,
    /// The vat's own reactor, when the vat waits on its sockets (see the
    /// `io` module); `None`: every connection is read on a runtime task.
    io: Option<crate::io::VatIo>,
    /// The runtime the peer was started on, for tasks started from a vat's
    /// thread.
    runtime: tokio::runtime::Handle,
    /// The event loop has ended: incoming bytes are ignored.
    finished: bool,
}

/// Runs `f` on the core, if the peer still exists and has not finished,
/// from outside the event loop (a vat's thread, a reader task). The vat
/// deliveries it makes go out as one batch once the core is unlocked (the
/// vat wakes once and finds the core free for its driver); a panic in it
/// is contained, not passed to the caller's thread.
fn on_core(core: &Weak<Mutex<Core>>, f: impl FnOnce(&mut Core)) {
    let Some(core) = core.upgrade() else {
        return;
    };
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        pola_vat::batch_posts(|| {
            let mut c = lock(&core);
            if !c.finished {
                f(&mut c);
            }
        });
    }));
}

/// Locks the core. A panic while it was held left the tables as they were
/// between two commands; keep serving.
fn lock(c: &Mutex<Core>) -> std::sync::MutexGuard<'_, Core> {
    c.lock().unwrap_or_else(|p| p.into_inner())
}

/// The event loop: network events, commands from other threads, timers.
/// The core is locked only between awaits; the peer's driver on the vat
/// locks it too, to process commands from the vat's own thread, and so do
/// the connections' readers.
async fn run(
    core: Arc<Mutex<Core>>,
    local: Arc<LocalCmds>,
    mut cmd_rx: mpsc::UnboundedReceiver<Cmd>,
    mut net_rx: mpsc::Receiver<NetEvent>,
    tick: Duration,
) {
    let mut tick = tokio::time::interval(tick);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let done = loop {
        tokio::select! {
            Some(cmd) = cmd_rx.recv() => {
                let mut c = lock(&core);
                if let Some(done) = c.handle_cmd(cmd) {
                    break Some(done);
                }
                c.pump();
            }
            Some(ev) = net_rx.recv() => {
                let mut c = lock(&core);
                c.handle_net(ev);
                c.pump();
            }
            _ = tick.tick() => {
                let mut c = lock(&core);
                c.expire();
                c.pump();
            }
            else => break None,
        }
    };
    let mut c = lock(&core);
    // Commands the vat queued and its driver has not run yet still go out
    // (in order) before the sessions end; later ones are refused.
    for cmd in local.close() {
        let _ = c.handle_cmd(cmd);
    }
    c.finish(done);
}

impl Core {
    /// Runs the commands the vat's thread queued, in order, and sends what
    /// they produced (called on the vat's thread by the peer's driver).
    fn drain_local(&mut self, local: &LocalCmds) {
        loop {
            let cmds = local.take();
            if cmds.is_empty() {
                break;
            }
            for cmd in cmds {
                // API commands never come this way (see `CmdTx::send`).
                let _ = self.handle_cmd(cmd);
            }
            self.pump();
        }
    }

    /// Aborts every session and closes every connection.
    fn finish(&mut self, done: Option<oneshot::Sender<()>>) {
        self.finished = true;
        for (id, session) in self.endpoint.sessions_mut() {
            let _ = session.abort("peer shutting down");
            self.dirty.insert(id);
        }
        self.pump();
        for s in self.sessions.values() {
            s.conn.close();
        }
        if let Some(done) = done {
            let _ = done.send(());
        }
    }

    /// The next number of the one sequence behind every token (wait
    /// tokens, import generations, dial tokens): each use
    /// wraps it in its own type, so one cannot be passed for another.
    fn token(&mut self) -> u64 {
        let t = self.next_token;
        self.next_token = self.next_token.wrapping_add(1);
        t
    }

    // ------------------------------------------------------------------
    // Inputs
    // ------------------------------------------------------------------

    fn handle_net(&mut self, ev: NetEvent) {
        match ev {
            NetEvent::Accepted(c, transport) => {
                let _ = self.add_session(c, &transport, None);
            }
            NetEvent::Dialed {
                token, result, to, ..
            } => {
                let Some(key) = self.dial_tokens.remove(&token) else {
                    return;
                };
                let waiters = self.dialing.remove(&key).unwrap_or_default();
                match result {
                    Ok(c) => match self.add_session(c, &to.transport, Some(key)) {
                        Ok(id) => {
                            if let Some(s) = self.sessions.get_mut(&id) {
                                s.pending.extend(waiters);
                            }
                        }
                        // The peer dialled us meanwhile (the new connection
                        // is dropped before a word is sent): use its session.
                        Err(Some(existing)) => {
                            for w in waiters {
                                self.with_session_id(existing, w);
                            }
                        }
                        Err(None) => waiters
                            .into_iter()
                            .for_each(|w| w.fail("cannot start session")),
                    },
                    Err(_) => {
                        for w in waiters {
                            w.fail("cannot reach peer");
                        }
                    }
                }
            }
        }
    }

    /// What arrived on connection `id` (see [`ingress_to`]).
    fn handle_input(&mut self, id: ConnId, input: Input) {
        let (Some(s), Some(session)) = (self.sessions.get_mut(&id), self.endpoint.session_mut(id))
        else {
            return;
        };
        match input {
            Input::Bytes(bytes) => {
                let _ = session.handle_bytes(&bytes);
                let partial = session.partial_input() > 0;
                self.endpoint.heard(id, Instant::now(), partial);
            }
            Input::Closed(_) => {
                s.net_closed = true;
                if !session.is_terminated() {
                    let _ = session.abort("connection closed");
                }
            }
        }
        self.dirty.insert(id);
    }

    /// Applies the endpoint's deadlines: handshakes, idle or slow sessions
    /// (a quiet one we hold references on is kept alive instead), and the
    /// settle grace of a second session with a peer.
    fn expire(&mut self) {
        let decisions = self.endpoint.expire(Instant::now(), Activity::of);
        self.apply(decisions);
    }

    /// Carries out what the endpoint decided.
    fn apply(&mut self, decisions: Vec<Decision<ConnId>>) {
        for d in decisions {
            match d {
                Decision::Abort {
                    conn,
                    reason,
                    hand_over_to,
                } => {
                    if let Some(session) = self.endpoint.session_mut(conn) {
                        let _ = session.abort(reason);
                    }
                    let moved = self
                        .sessions
                        .get_mut(&conn)
                        .map(|s| std::mem::take(&mut s.pending))
                        .unwrap_or_default();
                    self.dirty.insert(conn);
                    for p in moved {
                        match hand_over_to {
                            Some(to) => self.with_session_id(to, p),
                            None => p.fail("session ended"),
                        }
                    }
                }
                Decision::Serve { conn, .. } => {
                    let pending = self
                        .sessions
                        .get_mut(&conn)
                        .map(|s| std::mem::take(&mut s.pending))
                        .unwrap_or_default();
                    for p in pending {
                        self.run_pending(conn, p);
                    }
                    self.dirty.insert(conn);
                }
                Decision::Keepalive { conn } => {
                    if let Some(session) = self.endpoint.session_mut(conn) {
                        let _ = session.keepalive();
                        self.dirty.insert(conn);
                    }
                }
                _ => {}
            }
        }
    }

    /// Starts a session on `c`, which came through the netlayer of
    /// `transport` (whose location the session announces), if the endpoint
    /// admits it (`dialled`: the peer we dialled). `Err(Some(s))`: we
    /// dialled a peer that session `s` serves meanwhile. A refused
    /// connection is dropped, which closes it; nothing was read from or
    /// written to it.
    fn add_session(
        &mut self,
        c: pola_netlayer::Connection,
        transport: &str,
        dialled: Option<PeerKey>,
    ) -> Result<ConnId, Option<ConnId>> {
        let mut seed = [0u8; 32];
        if getrandom::fill(&mut seed).is_err() {
            // Without randomness there is no safe key; drop the connection.
            return Err(None);
        }
        // Each session announces the location of the netlayer it runs on
        // (a peer that dialled our tcp-testing-only address must not be
        // told a noise location it cannot check); the first netlayer's
        // location is the peer's own.
        let announce = self
            .locations
            .iter()
            .find(|l| l.transport() == transport)
            .unwrap_or(&self.location)
            .clone();
        let opening = Opening {
            direction: match c.direction {
                Direction::Inbound => endpoint::Direction::Inbound,
                Direction::Outbound => endpoint::Direction::Outbound,
            },
            source: c.source,
            dialled,
            // An authenticating netlayer names the peer it verified; the
            // location the peer announces must then agree with it.
            verified: c
                .authenticated()
                .map(|a| PeerKey::new(a.transport(), a.designator())),
        };
        let mut config = SessionConfig::new(self.config.dialect, seed, announce);
        config.max_held_bytes = self.config.max_held_bytes;
        config.pool = Some(self.pool.clone());
        let id = ConnId::fresh();
        let decisions = match self.endpoint.admit(id, opening, config, Instant::now()) {
            Ok(d) => d,
            Err(endpoint::Refused::AlreadyConnected(s)) => return Err(Some(s)),
            Err(_) => return Err(None),
        };
        let _rt = self.runtime.enter();
        let handle = conn::spawn_connection_on(
            id,
            c,
            self.ingress.clone(),
            self.config.max_queued_bytes,
            self.io.as_ref(),
        );
        self.sessions.insert(
            id,
            Sess {
                conn: handle,
                peer: None,
                imports: HashMap::new(),
                questions: HashMap::new(),
                answers: HashMap::new(),
                exported: HashSet::new(),
                listens: HashMap::new(),
                withdrawals: HashMap::new(),
                pending: Vec::new(),
                net_closed: false,
                cleaned: false,
            },
        );
        self.dirty.insert(id);
        self.apply(decisions);
        Ok(id)
    }

    fn handle_cmd(&mut self, cmd: Cmd) -> Option<oneshot::Sender<()>> {
        match cmd {
            Cmd::Deliver {
                target,
                message,
                answer,
            } => self.deliver_out(target, message, answer),
            Cmd::Listen { import, resolver } => self.listen_out(import, resolver),
            Cmd::SturdyDeliver {
                remote,
                message,
                answer,
            } => {
                let fetched = match remote.current(|c| self.is_live(c)) {
                    Some(q) => q,
                    None => {
                        let q = QuestionRemote::pending(remote.tx.clone());
                        remote.set_current(q.clone());
                        self.enliven(remote.sturdy.clone(), q.clone());
                        q
                    }
                };
                self.deliver_out(OutTarget::Question(fetched), message, answer);
            }
            Cmd::DrainParked(q) => self.flush_parked(&q),
            Cmd::DropImport {
                conn,
                position,
                generation,
            } => {
                if let Some(s) = self.sessions.get_mut(&conn) {
                    let current = s
                        .imports
                        .get(&position)
                        .is_some_and(|(w, g)| *g == generation && w.strong_count() == 0);
                    if current {
                        s.imports.remove(&position);
                        if let Some(session) = self.endpoint.session_mut(conn) {
                            let _ = session.drop_import(position);
                        }
                        self.dirty.insert(conn);
                    }
                }
            }
            Cmd::Settled {
                conn,
                token,
                outcome,
            } => {
                // The token names the session; a token for another one
                // would be a bug, so it is ignored rather than trusted.
                if self.waiting.get(&token).is_some_and(|(c, _)| *c == conn)
                    && let Some((_, Waiting::Reply(reply))) = self.waiting.remove(&token)
                {
                    self.resolve_reply(conn, Some(reply), outcome);
                }
            }
            Cmd::Api(api) => match api {
                ApiCmd::Enliven { sturdy, answer } => self.enliven(sturdy, answer),
                ApiCmd::Stats { reply } => {
                    let _ = reply.send(self.stats());
                }
                ApiCmd::Shutdown { done } => return Some(done),
            },
        }
        None
    }

    /// Fetches the object `sturdy` names into `answer`.
    fn enliven(&mut self, sturdy: SturdyRef, answer: Arc<QuestionRemote>) {
        if sturdy.peer.same_peer(&self.location) {
            let found = sturdies(&self.sturdy).lookup(&sturdy.swiss);
            match found {
                Ok(r) => answer.settle(Ok(Value::Ref(r))),
                Err(e) => answer.settle(Err(error(e.to_string()))),
            }
        } else {
            self.with_peer(
                &sturdy.peer,
                Pending::Fetch {
                    swiss: sturdy.swiss,
                    answer,
                },
            );
        }
    }

    fn stats(&self) -> PeerStats {
        PeerStats {
            sessions: self
                .sessions
                .iter()
                .filter_map(|(id, s)| Some((s, self.endpoint.session(*id)?)))
                .map(|(s, session)| SessionStats {
                    peer: s.peer.clone(),
                    direction: s.conn.direction(),
                    terminated: session.is_terminated(),
                    tables: session.table_sizes(),
                    held_bytes: session.held(),
                    live_imports: s
                        .imports
                        .values()
                        .filter(|(w, _)| w.strong_count() > 0)
                        .count(),
                    open_questions: s.questions.len(),
                    answers: s.answers.len(),
                    read_on_vat: s.conn.reads_on_vat(),
                })
                .collect(),
            exported_locals: self.locals.len(),
            sturdyrefs: sturdies(&self.sturdy).len(),
            held_bytes: self.pool.used(),
        }
    }

    // ------------------------------------------------------------------
    // Outgoing: vat → session
    // ------------------------------------------------------------------

    fn deliver_out(
        &mut self,
        target: OutTarget,
        message: pola_vat::Message,
        answer: Option<Arc<QuestionRemote>>,
    ) {
        let (conn, capref) = match target {
            OutTarget::Import(imp) => {
                let c = if imp.promise {
                    CapRef::ImportPromise(imp.position)
                } else {
                    CapRef::Import(imp.position)
                };
                (imp.conn, c)
            }
            OutTarget::Question(q) => {
                // Older messages parked on this answer go first.
                self.flush_parked(&q);
                let mut state = q.lock();
                if let Some(outcome) = state.outcome.clone() {
                    drop(state);
                    // Answered already: send to the answer itself.
                    self.reroute(outcome, message, answer);
                    return;
                }
                match (q.conn(), q.position()) {
                    (Some(c), Some(p)) => (c, CapRef::Question(p)),
                    _ => {
                        // Not asked on the wire: wait for its outcome.
                        state.parked.push((message, answer));
                        return;
                    }
                }
            }
        };
        if !self.is_live(conn) {
            if let Some(a) = answer {
                a.settle(Err(error("session ended")));
            }
            return;
        }
        let args = args_from_message(message)
            .into_iter()
            .map(|v| self.value_out(conn, v))
            .collect::<Vec<_>>();
        let (Some(s), Some(session)) = (
            self.sessions.get_mut(&conn),
            self.endpoint.session_mut(conn),
        ) else {
            return;
        };
        match answer {
            Some(a) => match session.deliver(&capref, args) {
                Ok(q) => {
                    a.asked(conn, q);
                    s.questions.insert(q, a.clone());
                    self.flush_parked(&a);
                }
                Err(e) => a.settle(Err(error(e.to_string()))),
            },
            None => {
                let _ = session.deliver_only(&capref, args);
            }
        }
        self.dirty.insert(conn);
    }

    /// Sends `message` to an answer that has settled: to the reference it
    /// settled to, through the vat; anything else breaks the new answer.
    fn reroute(
        &mut self,
        outcome: Outcome,
        message: pola_vat::Message,
        answer: Option<Arc<QuestionRemote>>,
    ) {
        // Straight on when it settled to another far reference of ours
        // (no detour through the vat, and the send order is kept).
        // (Bounded: a chain of answers settled to answers is followed at
        // most a few links deep here, then through the vat.)
        if let Ok(Value::Ref(r)) = &outcome
            && let Some(t) = r.remote_target()
            && self.reroute_depth < 8
        {
            let any: Arc<dyn std::any::Any + Send + Sync> = t.clone();
            let target = match any.downcast::<ImportRemote>() {
                Ok(imp) => Some(OutTarget::Import(imp)),
                Err(any) => any
                    .downcast::<QuestionRemote>()
                    .ok()
                    .map(OutTarget::Question),
            };
            if let Some(target) = target {
                self.reroute_depth += 1;
                self.deliver_out(target, message, answer);
                self.reroute_depth -= 1;
                return;
            }
        }
        let resolver = answer.map(|a| Resolver::from_fn(move |o| a.settle(o)));
        match outcome {
            Ok(Value::Ref(r)) => self.vat.deliver(&r, message, resolver),
            Ok(_) => break_opt(resolver, error("not a reference")),
            Err(e) => break_opt(resolver, e),
        }
    }

    fn listen_out(&mut self, import: Arc<ImportRemote>, resolver: Resolver) {
        let conn = import.conn;
        if !self.is_live(conn) {
            resolver.break_now(error("session ended"));
            return;
        }
        let (Some(s), Some(session)) = (
            self.sessions.get_mut(&conn),
            self.endpoint.session_mut(conn),
        ) else {
            return;
        };
        let position = import.position;
        match s.listens.get_mut(&position) {
            Some((_, rs)) => rs.push(resolver),
            None => match session.listen(position, false) {
                Ok(()) => {
                    s.listens.insert(position, (import, vec![resolver]));
                }
                Err(e) => resolver.break_now(error(e.to_string())),
            },
        }
        self.dirty.insert(conn);
    }

    fn is_live(&self, conn: ConnId) -> bool {
        self.endpoint
            .session(conn)
            .is_some_and(|s| !s.is_terminated())
    }

    fn register_question(
        &mut self,
        conn: ConnId,
        q: QuestionPosition,
        answer: Arc<QuestionRemote>,
    ) {
        answer.asked(conn, q);
        if let Some(s) = self.sessions.get_mut(&conn) {
            s.questions.insert(q, answer.clone());
        }
        // Messages sent to the answer before it was asked now go out,
        // pipelined, in order.
        self.flush_parked(&answer);
    }

    /// Sends on the messages parked on answer `q` (which now has a question
    /// position or an outcome), oldest first.
    fn flush_parked(&mut self, q: &Arc<QuestionRemote>) {
        loop {
            let parked = q.take_parked();
            if parked.is_empty() {
                return;
            }
            if q.position().is_none() && q.lock().outcome.is_none() {
                // Still nowhere to send them: put them back, in order.
                let mut s = q.lock();
                let newer = std::mem::replace(&mut s.parked, parked);
                s.parked.extend(newer);
                return;
            }
            for (message, answer) in parked {
                self.deliver_out(OutTarget::Question(q.clone()), message, answer);
            }
        }
    }

    /// A value from a vat, with every reference turned into what `conn`'s
    /// session can send.
    fn value_out(&mut self, conn: ConnId, v: Val) -> Value<CapRef> {
        match v.try_map_refs::<CapRef, Infallible>(&mut |r| Ok(Value::Ref(self.ref_out(conn, r)))) {
            Ok(v) => v,
            Err(e) => match e {},
        }
    }

    fn ref_out(&mut self, conn: ConnId, r: Ref) -> CapRef {
        if let Some(t) = r.remote_target() {
            let any: &dyn std::any::Any = t.as_ref();
            if let Some(imp) = any.downcast_ref::<ImportRemote>() {
                if imp.conn == conn {
                    return if imp.promise {
                        CapRef::ImportPromise(imp.position)
                    } else {
                        CapRef::Import(imp.position)
                    };
                }
                if !imp.promise
                    && let Some(gift) = self.give(imp.conn, imp.position, conn)
                {
                    return gift;
                }
            } else if let Some(q) = any.downcast_ref::<QuestionRemote>() {
                if let Some(c) = self.question_out(conn, q) {
                    return c;
                }
            } else if let Some(sturdy) = any.downcast_ref::<SturdyRemote>() {
                // What it was fetched as, if that is still live; otherwise
                // (never used yet) it is passed as our own object, a proxy.
                if let Some(q) = sturdy.current(|c| self.is_live(c))
                    && let Some(c) = self.question_out(conn, &q)
                {
                    return c;
                }
            }
        }
        // Ours (or proxied through us): export it.
        let promise = r.is_promise() || r.broken_reason().is_some();
        let id = self.local_id(r);
        if let Some(s) = self.sessions.get_mut(&conn)
            && s.exported.insert(id)
            && let Some(e) = self.locals.get_mut(&id)
        {
            e.sessions += 1;
        }
        if promise {
            CapRef::LocalPromise(id)
        } else {
            CapRef::Local(id)
        }
    }

    /// How the answer `q` is passed on session `conn`: as the question
    /// position while unanswered (if asked on `conn`), as what it settled
    /// to once answered.
    fn question_out(&mut self, conn: ConnId, q: &QuestionRemote) -> Option<CapRef> {
        let settled = q.lock().outcome.clone();
        match settled {
            None if q.conn() == Some(conn) => q.position().map(CapRef::Question),
            Some(Ok(Value::Ref(inner))) => Some(self.ref_out(conn, inner)),
            _ => None,
        }
    }

    /// Third-party handoff, as gifter: deposits import `position` of
    /// session `exporter` and returns the certificate for `receiver`'s peer.
    fn give(
        &mut self,
        exporter: ConnId,
        position: ImportPosition,
        receiver: ConnId,
    ) -> Option<CapRef> {
        let receiver_key = *self.endpoint.session(receiver)?.peer()?.key();
        let mut gift_id = [0u8; 32];
        getrandom::fill(&mut gift_id).ok()?;
        let signed = self
            .endpoint
            .session_mut(exporter)?
            .give(position, receiver_key, Bytes::copy_from_slice(&gift_id))
            .ok()?;
        self.dirty.insert(exporter);
        Some(CapRef::Gift(Box::new(signed)))
    }

    fn local_id(&mut self, r: Ref) -> LocalId {
        if let Some(id) = self.local_of.get(&r) {
            return *id;
        }
        let id = LocalId(self.next_local);
        self.next_local += 1;
        self.local_of.insert(r.clone(), id);
        self.locals.insert(
            id,
            LocalEntry {
                object: r,
                sessions: 0,
            },
        );
        id
    }

    fn release_local(&mut self, id: LocalId) {
        let gone = match self.locals.get_mut(&id) {
            Some(e) => {
                e.sessions = e.sessions.saturating_sub(1);
                e.sessions == 0
            }
            None => false,
        };
        if gone && let Some(e) = self.locals.remove(&id) {
            self.local_of.remove(&e.object);
        }
    }

    fn resolve_reply(&mut self, conn: ConnId, reply: Option<Reply>, outcome: Outcome) {
        let Some(reply) = reply else {
            return;
        };
        if !self.is_live(conn) {
            return;
        }
        let settlement: Settlement = match outcome {
            Ok(v) => Ok(self.value_out(conn, v)),
            Err(v) => Err(self.value_out(conn, v)),
        };
        if let Some(session) = self.endpoint.session_mut(conn) {
            let _ = session.resolve(reply, settlement);
            self.dirty.insert(conn);
        }
    }

    /// Asks to hear when `target` settles; the outcome comes back as
    /// [`Cmd::Settled`] and is handled as `what`.
    fn await_local(&mut self, conn: ConnId, target: &Ref, what: Waiting) {
        let token = WaitToken(self.token());
        self.waiting.insert(token, (conn, what));
        let tx = self.tx.clone();
        listen_external(
            target,
            Resolver::from_fn(move |outcome| {
                let _ = tx.send(Cmd::Settled {
                    conn,
                    token,
                    outcome,
                });
            }),
        );
    }

    // ------------------------------------------------------------------
    // Incoming: session → vat
    // ------------------------------------------------------------------

    fn value_in(&mut self, conn: ConnId, v: Value<CapRef>) -> Val {
        match v.try_map_refs::<Ref, Infallible>(&mut |c| Ok(Value::Ref(self.ref_in(conn, c)))) {
            Ok(v) => v,
            Err(e) => match e {},
        }
    }

    fn ref_in(&mut self, conn: ConnId, c: CapRef) -> Ref {
        match c {
            CapRef::Local(id) | CapRef::LocalPromise(id) => match self.locals.get(&id) {
                Some(e) => e.object.clone(),
                None => Ref::broken(error("unknown object")),
            },
            CapRef::Import(p) => self.import_ref(conn, p, false),
            CapRef::ImportPromise(p) => self.import_ref(conn, p, true),
            CapRef::Answer(a) => self
                .sessions
                .get(&conn)
                .and_then(|s| s.answers.get(&a).cloned())
                .unwrap_or_else(|| Ref::broken(error("unknown answer"))),
            CapRef::Gift(g) => self.receive_gift(conn, *g),
            _ => Ref::broken(error("unsupported reference")),
        }
    }

    fn import_ref(&mut self, conn: ConnId, p: ImportPosition, promise: bool) -> Ref {
        let tx = self.tx.clone();
        let generation = ImportGeneration(self.token());
        let Some(s) = self.sessions.get_mut(&conn) else {
            return Ref::broken(error("session ended"));
        };
        if let Some((w, _)) = s.imports.get(&p)
            && let Some(existing) = w.upgrade()
        {
            return Ref::remote_keyed(existing);
        }
        let imp = ImportRemote::new(tx, conn, p, promise, generation);
        s.imports.insert(p, (Arc::downgrade(&imp), generation));
        // Keyed by the one `ImportRemote` per live import: the same import
        // received twice gives equal refs.
        Ref::remote_keyed(imp)
    }

    /// Third-party handoff, as receiver: a promise for the gift, settled
    /// once the exporter hands it over.
    fn receive_gift(&mut self, via: ConnId, gift: SignedGive) -> Ref {
        let answer = QuestionRemote::pending(self.tx.clone());
        let exporter = gift.give.exporter_location.clone();
        if exporter.same_peer(&self.location) {
            answer.settle(Err(error("handoff to ourselves is not supported")));
        } else {
            self.with_peer(
                &exporter,
                Pending::Withdraw {
                    gift: Box::new(gift),
                    via,
                    answer: answer.clone(),
                },
            );
        }
        Ref::remote(answer)
    }

    /// Runs `action` on the session with `peer`, dialling it if needed.
    fn with_peer(&mut self, peer: &PeerLocator, action: Pending) {
        let key = key_of(peer);
        if let Some(id) = self.endpoint.route(&key)
            && self.is_live(id)
        {
            self.with_session_id(id, action);
            return;
        }
        if let Some(waiters) = self.dialing.get_mut(&key) {
            waiters.push(action);
            return;
        }
        let Some(net) = self
            .netlayers
            .iter()
            .find(|n| n.transport() == peer.transport())
            .cloned()
        else {
            action.fail("no netlayer for that transport");
            return;
        };
        let token = DialToken(self.token());
        self.dialing.insert(key.clone(), vec![action]);
        self.dial_tokens.insert(token, key);
        // Dials may start on the vat's thread (a handoff read there).
        let _rt = self.runtime.enter();
        conn::spawn_dial(net, location_of(peer), token, self.net_tx.clone());
    }

    fn with_session_id(&mut self, id: ConnId, action: Pending) {
        let live = self.is_live(id);
        match self.sessions.get_mut(&id) {
            Some(s) if live && s.peer.is_none() => s.pending.push(action),
            Some(_) if live => self.run_pending(id, action),
            _ => action.fail("session ended"),
        }
    }

    fn run_pending(&mut self, id: ConnId, action: Pending) {
        match action {
            Pending::Fetch { swiss, answer } => {
                let Some(session) = self.endpoint.session_mut(id) else {
                    answer.settle(Err(error("session ended")));
                    return;
                };
                match session.fetch(&swiss) {
                    Ok(q) => self.register_question(id, q, answer),
                    Err(e) => answer.settle(Err(error(e.to_string()))),
                }
            }
            Pending::Withdraw { gift, via, answer } => {
                let result = (|| {
                    let receive = self
                        .endpoint
                        .session_mut(id)
                        .ok_or("session ended")?
                        .handoff_receive(*gift)
                        .map_err(|_| "handoff refused")?;
                    let signed = self
                        .endpoint
                        .session(via)
                        .ok_or("gifter session ended")?
                        .sign_handoff_receive(receive)
                        .map_err(|_| "handoff refused")?;
                    self.endpoint
                        .session_mut(id)
                        .ok_or("session ended")?
                        .withdraw_gift(signed)
                        .map_err(|_| "session ended")
                })();
                match result {
                    Ok(q) => self.register_question(id, q, answer),
                    Err(why) => answer.settle(Err(error(why))),
                }
            }
        }
        self.dirty.insert(id);
    }

    // ------------------------------------------------------------------
    // Draining sessions
    // ------------------------------------------------------------------

    /// Sends owed GC reports that found no message to ride with.
    fn flush_gc(&mut self) {
        for (id, session) in self.endpoint.sessions() {
            if session.has_pending_gc() {
                self.dirty.insert(id);
            }
        }
        self.pump_with(false);
    }

    /// Runs every touched session's events and sends what it has to say.
    /// On the vat's own thread (when it waits on its sockets), GC reports
    /// wait for the session's next message; the vat sends them alone if it
    /// goes quiet first (see the `io` module).
    fn pump(&mut self) {
        let defer = self.io.is_some() && self.vat.thread_id() == Some(std::thread::current().id());
        self.pump_with(defer);
    }

    fn pump_with(&mut self, defer_gc: bool) {
        let mut owed = false;
        while let Some(id) = self.dirty.pop_first() {
            while let Some(polled) = self.endpoint.poll_event(id) {
                match polled {
                    Polled::Event(ev) => self.handle_event(id, ev),
                    Polled::Withdrawal(w) => self.withdrawal(w),
                    _ => {}
                }
            }
            let (Some(s), Some(session)) =
                (self.sessions.get_mut(&id), self.endpoint.session_mut(id))
            else {
                continue;
            };
            // Everything the session has to say now leaves in one write
            // (CapTP messages are self-delimiting Syrup values, so the peer
            // splits them again): an answer and the GC ops it released cost
            // one `sendto`, not three.
            let mut batch: Vec<u8> = Vec::new();
            let mut refused = false;
            let next = |session: &mut Session| {
                if defer_gc {
                    session.poll_transmit_deferring_gc()
                } else {
                    session.poll_transmit()
                }
            };
            while let Some(bytes) = next(session) {
                if trace_enabled() {
                    match pola_syrup::decode(&bytes) {
                        Ok(v) => eprintln!("pola-peer {id:?} >> {v}"),
                        Err(_) => eprintln!("pola-peer {id:?} >> <{} bytes>", bytes.len()),
                    }
                }
                if batch.is_empty() {
                    batch = bytes;
                } else {
                    batch.extend_from_slice(&bytes);
                }
                if batch.len() >= WRITE_BATCH && !s.conn.send(std::mem::take(&mut batch)) {
                    refused = true;
                    break;
                }
            }
            if !refused && !batch.is_empty() && !s.conn.send(batch) {
                refused = true;
            }
            if refused {
                // The peer is not reading what we owe it: give up on it
                // rather than queue without bound.
                // Our op:abort goes after the write under way if the peer
                // reads it within the close grace; else it is cut off.
                let _ = session.abort("peer is not reading");
                let mut last = Vec::new();
                while let Some(m) = session.poll_transmit() {
                    last.extend_from_slice(&m);
                }
                s.conn.abort_with(last);
                self.dirty.insert(id);
            }
            owed |= defer_gc && session.has_pending_gc();
            if session.is_terminated() {
                s.conn.close();
                if !s.cleaned {
                    s.cleaned = true;
                    self.cleanup(id);
                }
                if self.sessions.get(&id).is_some_and(|s| s.net_closed) {
                    self.sessions.remove(&id);
                    let decisions = self.endpoint.removed(id);
                    self.apply(decisions);
                    while let Some(w) = self.endpoint.poll_withdrawal() {
                        self.withdrawal(w);
                    }
                }
            }
        }
        if owed && let Some(io) = &self.io {
            io.owe_gc();
        }
    }

    fn cleanup(&mut self, id: ConnId) {
        // A session held for the same peer may take this one's place.
        let decisions = self.endpoint.ended(id);
        self.apply(decisions);
        let Some(s) = self.sessions.get_mut(&id) else {
            return;
        };
        let pending = std::mem::take(&mut s.pending);
        let exported: Vec<LocalId> = s.exported.drain().collect();
        let listens = std::mem::take(&mut s.listens);
        let withdrawals = std::mem::take(&mut s.withdrawals);
        let questions = std::mem::take(&mut s.questions);
        // The promises of the answers the peer held, and what they hold,
        // are unreachable now: have the vat drop them when it is next idle
        // rather than after enough other work (a quiet vat would keep
        // them indefinitely).
        let held_answers = !s.answers.is_empty();
        s.answers.clear();
        s.imports.clear();
        if held_answers {
            self.vat.sweep_when_idle();
        }
        for p in pending {
            p.fail("session ended");
        }
        for (_, (_, rs)) in listens {
            for r in rs {
                r.break_now(error("session ended"));
            }
        }
        for (_, q) in questions {
            q.settle(Err(error("session ended")));
        }
        for (_, r) in withdrawals {
            r.break_now(error("session ended"));
        }
        for id in exported {
            self.release_local(id);
        }
        self.waiting.retain(|_, (c, _)| *c != id);
    }

    fn handle_event(&mut self, id: ConnId, ev: Event) {
        if trace_enabled() {
            eprintln!("pola-peer {id:?} event {ev:?}");
        }
        match ev {
            Event::Established {
                peer_location,
                peer_id,
                session_id,
            } => self.established(id, peer_location, peer_id, session_id),
            Event::Deliver {
                target,
                args,
                reply,
            } => {
                let target = self.local_target(id, target);
                let args = args.into_iter().map(|a| self.value_in(id, a)).collect();
                let msg = message_from_args(args);
                match reply {
                    None => self.vat.deliver(&target, msg, None),
                    Some(reply) => {
                        let (answer, resolver) = self.vat.promise();
                        if let Some(a) = reply.answer_position()
                            && let Some(s) = self.sessions.get_mut(&id)
                        {
                            s.answers.insert(a, answer.clone());
                        }
                        self.vat.deliver(&target, msg, Some(resolver));
                        self.await_local(id, &answer, Waiting::Reply(reply));
                    }
                }
            }
            Event::Listen { target, reply, .. } => {
                let target = self.local_target(id, target);
                self.await_local(id, &target, Waiting::Reply(reply));
            }
            Event::Project {
                receiver,
                kind,
                reply,
            } => {
                // A promise for the projection, which later messages may
                // be pipelined on (through the answer table).
                let target = self.local_target(id, receiver);
                let (p, r) = self.vat.promise();
                if let Some(a) = reply.answer_position()
                    && let Some(s) = self.sessions.get_mut(&id)
                {
                    s.answers.insert(a, p.clone());
                }
                listen_external(
                    &target,
                    Resolver::from_fn(move |o| r.settle_now(o.and_then(|v| project(v, &kind)))),
                );
                self.await_local(id, &p, Waiting::Reply(reply));
            }
            Event::Fetch { swiss, reply } => {
                let found = sturdies(&self.sturdy)
                    .lookup(&swiss)
                    .map_err(|e| error(e.to_string()));
                let Some(reply) = reply else {
                    return;
                };
                if let Some(a) = reply.answer_position()
                    && let Some(s) = self.sessions.get_mut(&id)
                {
                    let r = found.clone().unwrap_or_else(Ref::broken);
                    s.answers.insert(a, r);
                }
                let outcome = found.map(Value::Ref);
                self.resolve_reply(id, Some(reply), outcome);
            }
            Event::Answer { question, result } => {
                let q = self
                    .sessions
                    .get_mut(&id)
                    .and_then(|s| s.questions.remove(&question));
                let outcome = self.settlement_in(id, result);
                if let Some(session) = self.endpoint.session_mut(id) {
                    let _ = session.drop_question(question);
                }
                if let Some(q) = q {
                    q.settle(outcome);
                }
            }
            Event::PromiseSettled { promise, result } => {
                let listeners = self
                    .sessions
                    .get_mut(&id)
                    .and_then(|s| s.listens.remove(&promise));
                let outcome = self.settlement_in(id, result);
                if let Some((_, rs)) = listeners {
                    for r in rs {
                        r.settle_now(outcome.clone());
                    }
                }
            }
            Event::ExportDropped { local } => {
                let released = self
                    .sessions
                    .get_mut(&id)
                    .is_some_and(|s| s.exported.remove(&local));
                if released {
                    self.release_local(local);
                }
            }
            Event::AnswerDropped { answer } => {
                if let Some(s) = self.sessions.get_mut(&id) {
                    s.answers.remove(&answer);
                    s.withdrawals.remove(&answer);
                }
            }
            Event::Aborted { .. } => {
                if let Some(s) = self.sessions.get_mut(&id)
                    && !s.cleaned
                {
                    s.cleaned = true;
                    self.cleanup(id);
                }
            }
            _ => {}
        }
    }

    /// Carries out a step of a withdrawal the endpoint routes (third-party
    /// handoff, as exporter).
    fn withdrawal(&mut self, w: Withdrawal<ConnId>) {
        match w {
            Withdrawal::Started { receiver, answer } => {
                // Messages may be pipelined on the withdrawal's answer.
                let (p, r) = self.vat.promise();
                if let Some(s) = self.sessions.get_mut(&receiver) {
                    s.answers.insert(answer, p);
                    s.withdrawals.insert(answer, r);
                }
            }
            Withdrawal::Ready {
                receiver,
                reply,
                gifter,
                target,
            } => {
                self.dirty.insert(gifter);
                let r = self.ref_in(gifter, target);
                self.finish_gift(receiver, reply, Ok(Value::Ref(r)));
            }
            Withdrawal::Broken {
                receiver,
                reply,
                reason,
            } => self.finish_gift(receiver, reply, Err(error(reason))),
            _ => {}
        }
    }

    /// Settles a withdrawal's reply on `conn`, and its local promise.
    fn finish_gift(&mut self, conn: ConnId, reply: Reply, outcome: Outcome) {
        let local = reply.answer_position().and_then(|a| {
            self.sessions
                .get_mut(&conn)
                .and_then(|s| s.withdrawals.remove(&a))
        });
        if let Some(r) = local {
            r.settle_now(outcome.clone());
        }
        self.resolve_reply(conn, Some(reply), outcome);
    }

    fn settlement_in(&mut self, conn: ConnId, result: Settlement) -> Outcome {
        match result {
            Ok(v) => Ok(self.value_in(conn, v)),
            Err(v) => Err(self.value_in(conn, v)),
        }
    }

    fn local_target(&self, conn: ConnId, t: LocalTarget) -> Ref {
        match t {
            LocalTarget::Object(id) | LocalTarget::Promise(id) => match self.locals.get(&id) {
                Some(e) => e.object.clone(),
                None => Ref::broken(error("unknown object")),
            },
            LocalTarget::Answer(a) => self
                .sessions
                .get(&conn)
                .and_then(|s| s.answers.get(&a).cloned())
                .unwrap_or_else(|| Ref::broken(error("unknown answer"))),
        }
    }

    fn established(
        &mut self,
        id: ConnId,
        peer_location: PeerLocator,
        peer_id: pola_captp::crypto::PublicId,
        session_id: SessionId,
    ) {
        let key = key_of(&peer_location);
        match self.sessions.get_mut(&id) {
            Some(s) => {
                s.peer = Some(peer_location);
            }
            None => return,
        }
        // One session per peer, crossed hellos and duplicates: the
        // endpoint's rule (see `pola_captp::endpoint`).
        let decisions = self
            .endpoint
            .established(id, key, peer_id, session_id, Instant::now());
        self.apply(decisions);
        self.dirty.insert(id);
    }
}

/// Whether `POLA_PEER_TRACE` is set: then every outgoing message and
/// every session event is printed to stderr (for debugging interop).
/// Bytes gathered into one write before it is handed to the connection.
const WRITE_BATCH: usize = 64 * 1024;

fn trace_enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("POLA_PEER_TRACE").is_some())
}

fn break_opt(resolver: Option<Resolver>, reason: Val) {
    if let Some(r) = resolver {
        r.break_now(reason);
    }
}

/// Applies a pipelined projection (`op:get` / `op:index` / `op:untag`).
fn project(v: Val, kind: &ProjectKind) -> Outcome {
    match kind {
        ProjectKind::Index(i) => {
            let i = usize::try_from(*i).map_err(|_| error("index out of range"))?;
            match v {
                Value::List(mut l) if i < l.len() => Ok(l.swap_remove(i)),
                _ => Err(error("index out of range")),
            }
        }
        ProjectKind::Field(f) => match v {
            Value::Dict(mut d) => d
                .remove(&Value::str(f.as_str()))
                .or_else(|| d.remove(&Value::sym(f.as_str())))
                .ok_or_else(|| error("no such field")),
            _ => Err(error("not a struct")),
        },
        ProjectKind::Untag(tag) => match v.as_record_labelled("desc:tagged") {
            Some([Value::Symbol(t), payload]) if t == tag => Ok(payload.clone()),
            _ => Err(error("wrong tag")),
        },
    }
}
