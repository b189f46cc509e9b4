//! The CapTP session state machine.
//!
//! A [`Session`] is one side of one CapTP session. It does no I/O: the
//! driver moves bytes, the local side (the vat) issues commands and answers
//! events.
//!
//! Phases (each later one reached only through the check that guards it):
//!
//! ```text
//!  AwaitingStartSession ──(peer's op:start-session verified: PeerVerified)──► Open
//!          │                                                                   │
//!          └──────── bad input / op:abort / abort() ──► Aborted ◄──────────────┘
//! ```
//!
//! Invariants (upheld by this module):
//! - tables change only after a whole incoming message has been decoded and
//!   validated; a message that fails validation changes nothing and aborts;
//! - export position 0 is the bootstrap object and is never freed;
//! - an export's wire count is the number of times we have sent it and the
//!   peer has not yet released (DIGEST section 14); an import's count is
//!   the number of times we received it since our last report;
//! - when the local side polls [`Event::ExportDropped`] for an object,
//!   nothing on this session refers to it (no export as object or promise,
//!   no deposited gift): a drop still queued when the local side sends the
//!   object again is withdrawn, so a local side that mirrors the export
//!   table from these events never forgets an object the peer holds;
//! - once aborted, nothing more is accepted and nothing new is queued: every
//!   `handle_*` and command returns the same [`SessionError`].

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::Bytes;
use pola_syrup::{Decoder, Limits, Value};

use crate::budget::{ENTRY_COST, MemoryPool, OverBudget};
use crate::crypto::{CryptoError, PublicId, PublicKey, SessionId, SessionKeys, my_location};
use crate::handoff::{
    GiftId, HandoffGive, HandoffReceive, SignedGive, SignedReceive, VerifiedGive, VerifiedReceive,
};
use crate::ids::{
    AnswerPosition, ExportPosition, GiftTicket, ImportPosition, LocalId, Position, QuestionPosition,
};
use crate::locator::{PeerLocator, Swiss};
use crate::wire::{
    Desc, Dialect, Forms, Op, OpAbort, OpDeliver, OpDeliverOnly, OpGcAnswers, OpGcExports,
    OpGetOrIndex, OpListen, OpStartSession, OpUntag, Projection, WireError,
};

/// The CapTP version both sides must announce.
pub const CAPTP_VERSION: &str = "1.0";

/// A reference inside a value exchanged between the session and the local
/// side. Which variants may appear in which direction is noted per variant.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CapRef {
    /// One of our objects (both directions). Sent as `desc:import-object`.
    Local(LocalId),
    /// One of our promises (both directions). Sent as `desc:import-promise`.
    LocalPromise(LocalId),
    /// Our bootstrap object (export position 0).
    Bootstrap,
    /// An object the peer exported to us (both directions).
    Import(ImportPosition),
    /// A promise the peer exported to us (both directions).
    ImportPromise(ImportPosition),
    /// The promise for the answer to one of our questions (outgoing only;
    /// sent as `desc:answer`).
    Question(QuestionPosition),
    /// The promise we host for one of the peer's questions (incoming only:
    /// the peer named it with `desc:answer` in a value).
    Answer(AnswerPosition),
    /// A reference to an object on a third peer: a signed gift certificate
    /// (both directions). Incoming ones were checked to name us as receiver.
    Gift(Box<SignedGive>),
}

/// What an incoming message is addressed to, on our side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LocalTarget {
    /// One of our objects.
    Object(LocalId),
    /// One of our promises.
    Promise(LocalId),
    /// The promise we host for the peer's question at this answer position
    /// (promise pipelining): deliver when it resolves.
    Answer(AnswerPosition),
}

/// A fulfilment (`Ok`) or a break (`Err`) of a promise.
pub type Settlement = Result<Value<CapRef>, Value<CapRef>>;

/// An obligation to settle a result for the peer, handed out with an event.
/// Only the session creates one; pass it back to [`Session::resolve`]
/// exactly once.
#[derive(Debug, PartialEq, Eq)]
pub struct Reply(ReplyTo);

#[derive(Debug, Clone, PartialEq, Eq)]
enum ReplyTo {
    /// Settle the answer at this position (and notify whoever waits on it),
    /// if it is still the one opened with this serial number: a peer may
    /// free a position and open another answer there, which an old reply
    /// must not settle.
    Answer(AnswerPosition, u64),
    /// Send the result to this resolver the peer exported, then release it.
    Resolver(ImportPosition),
}

impl Reply {
    /// The answer position this reply settles, if it settles one.
    pub fn answer_position(&self) -> Option<AnswerPosition> {
        match self.0 {
            ReplyTo::Answer(p, _) => Some(p),
            ReplyTo::Resolver(_) => None,
        }
    }
}

/// A pipelined projection the peer asked for (`op:get`, `op:index`,
/// `op:untag`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProjectKind {
    /// A Struct field.
    Field(String),
    /// A List element.
    Index(u64),
    /// The payload of a Tagged value with this tag.
    Untag(String),
}

/// Something the local side must know or act on. Drain with
/// [`Session::poll_event`].
#[derive(Debug, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// The peer's `op:start-session` verified; the session is open.
    Established {
        /// The location the peer announced (and signed).
        peer_location: PeerLocator,
        /// The peer's Public Identifier on this session.
        peer_id: PublicId,
        /// The Session ID.
        session_id: SessionId,
    },
    /// A message for one of our objects or promises.
    Deliver {
        /// The recipient.
        target: LocalTarget,
        /// The arguments (by convention `['method arg …]`).
        args: Vec<Value<CapRef>>,
        /// Settle the result here, if the peer wants one.
        reply: Option<Reply>,
    },
    /// The peer wants to hear when one of our promises (or objects) settles.
    Listen {
        /// The promise.
        target: LocalTarget,
        /// Settle with the promise's resolution.
        reply: Reply,
        /// Legacy flag: also notify on resolution to another promise.
        wants_partial: bool,
    },
    /// A pipelined projection on one of our promises.
    Project {
        /// The promise (or object) projected.
        receiver: LocalTarget,
        /// What to take from its fulfilment.
        kind: ProjectKind,
        /// Settle with the projected value.
        reply: Reply,
    },
    /// The bootstrap object was asked to `fetch` a Swiss number.
    Fetch {
        /// The Swiss number.
        swiss: Swiss,
        /// Settle with the object (or break if unknown).
        reply: Option<Reply>,
    },
    /// The answer to one of our questions arrived (first settlement only).
    Answer {
        /// Which question.
        question: QuestionPosition,
        /// The answer.
        result: Settlement,
    },
    /// An imported promise we listened to settled.
    PromiseSettled {
        /// The promise.
        promise: ImportPosition,
        /// Its settlement.
        result: Settlement,
    },
    /// The peer released its last reference to one of our objects on this
    /// session. When this event is polled the session no longer refers to
    /// the object at all (as object or promise export, or in a deposited
    /// gift); if the local side sent the object again after the release
    /// but before polling this event (a `fetch` answered in the same batch
    /// of bytes as the peer's `op:gc-exports`), the event is withdrawn.
    ExportDropped {
        /// The object.
        local: LocalId,
    },
    /// The peer no longer needs this answer; forget its promise.
    AnswerDropped {
        /// The answer position freed.
        answer: AnswerPosition,
    },
    /// A `withdraw-gift` passed every check this session can make. Take the
    /// request to the gifter–exporter session named by
    /// `request.give().session` and call [`Session::redeem_gift`] there.
    WithdrawGift {
        /// The verified request.
        request: VerifiedReceive,
        /// Settle with the gift.
        reply: Option<Reply>,
    },
    /// A gift that a parked withdrawal waited for has been deposited.
    GiftReady {
        /// The ticket given to [`Session::redeem_gift`].
        ticket: GiftTicket,
        /// The gift; settle the withdrawal's reply with it.
        target: CapRef,
    },
    /// A parked withdrawal can never complete (this session ended).
    GiftWithdrawalBroken {
        /// The ticket given to [`Session::redeem_gift`].
        ticket: GiftTicket,
    },
    /// The session ended. Every pending question has been broken (an
    /// [`Event::Answer`] with `Err` was queued for each before this), and
    /// every [`LocalId`] the session referred to is released.
    Aborted {
        /// The reason sent or received.
        reason: String,
        /// Whether the peer ended it (its `op:abort`, or the channel
        /// closing), rather than us.
        by_peer: bool,
    },
}

/// A rule the peer broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Violation {
    /// A message other than `op:start-session` or `op:abort` came first.
    #[error("message before op:start-session")]
    BeforeStartSession,
    /// A second `op:start-session`.
    #[error("duplicate op:start-session")]
    DuplicateStartSession,
    /// The version is not `"1.0"`.
    #[error("unsupported captp-version")]
    BadVersion,
    /// The location signature does not verify.
    #[error("bad location signature")]
    BadLocationSignature,
    /// A `desc:export` names a position we never exported (or freed).
    #[error("unknown export position")]
    UnknownExport,
    /// A `desc:answer` names an answer position not in use.
    #[error("unknown answer position")]
    UnknownAnswer,
    /// An `answer-pos` that is already in use.
    #[error("answer position in use")]
    AnswerInUse,
    /// A GC delta larger than what we sent.
    #[error("gc delta exceeds export count")]
    GcDeltaTooLarge,
    /// A gift certificate naming another receiver.
    #[error("handoff not addressed to this session")]
    HandoffNotForUs,
    /// A `desc:handoff-receive` outside `withdraw-gift`.
    #[error("unexpected handoff-receive")]
    UnexpectedReceive,
    /// A reference to one of our internal resolvers in value position.
    #[error("unsupported reference")]
    UnsupportedReference,
}

/// Why a session failed or a command was refused. Grouped by fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// Malformed bytes: the Syrup decoder rejected the stream.
    #[error("malformed syrup")]
    Malformed(pola_syrup::DecodeError),
    /// A limit was exceeded (decoder limits or table sizes).
    #[error("limit exceeded")]
    Limit,
    /// A well-formed value that is not a valid CapTP message.
    #[error("{0}")]
    Wire(WireError),
    /// The peer broke a protocol rule.
    #[error("{0}")]
    Protocol(Violation),
    /// The peer aborted the session.
    #[error("peer aborted: {0}")]
    PeerAborted(String),
    /// The channel closed without an `op:abort`.
    #[error("connection closed")]
    Closed,
    /// The local side aborted the session.
    #[error("aborted: {0}")]
    LocallyAborted(String),
    /// Caller misuse (never caused by peer data); the session is unharmed.
    #[error("misuse: {0}")]
    Misuse(Misuse),
    /// The peer made us hold more memory than a budget allows (see
    /// [`crate::budget`]).
    #[error("{0}")]
    OverBudget(OverBudget),
}

/// A command the local side should not have issued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Misuse {
    /// No such import (never received, or already dropped).
    #[error("unknown import")]
    UnknownImport,
    /// No such question (never asked, or already dropped).
    #[error("unknown question")]
    UnknownQuestion,
    /// This reference cannot be sent to the peer from here.
    #[error("reference cannot be sent on this session")]
    NotSendable,
    /// The target cannot receive messages or listens.
    #[error("not a valid target")]
    BadTarget,
    /// The reply was already settled or its answer freed.
    #[error("stale reply")]
    StaleReply,
    /// The session is not open yet (the peer's key is needed).
    #[error("session not open")]
    NotOpen,
    /// The operation does not exist in this session's dialect.
    #[error("not available in this dialect")]
    NotInDialect,
    /// A handoff certificate failed a check.
    #[error("handoff rejected: {0}")]
    Handoff(&'static str),
    /// The value, once in its message, would be nested deeper than the
    /// peer accepts (our own decoder's [`Limits::max_depth`] is taken as
    /// the peer's too); nothing is sent.
    #[error("value nested too deeply to send (the message would exceed depth {0})")]
    TooDeep(usize),
}

impl From<Misuse> for SessionError {
    fn from(m: Misuse) -> Self {
        SessionError::Misuse(m)
    }
}

impl From<Violation> for SessionError {
    fn from(v: Violation) -> Self {
        SessionError::Protocol(v)
    }
}

impl From<WireError> for SessionError {
    fn from(w: WireError) -> Self {
        SessionError::Wire(w)
    }
}

/// Everything a session needs at creation. Time and randomness come in
/// here, never from inside.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// What we emit (everything is accepted).
    pub dialect: Dialect,
    /// The Ed25519 secret seed for this session's key pair; use fresh random
    /// bytes for every session.
    pub key_seed: [u8; 32],
    /// Where we can be reached; announced and signed in `op:start-session`.
    pub our_location: PeerLocator,
    /// Syrup decoder limits for incoming bytes.
    pub limits: Limits,
    /// Most entries the peer may create in our answer or import tables.
    pub max_table_entries: usize,
    /// Most bytes of ours the peer may hold (see [`crate::budget`]).
    /// Default 64 MiB.
    pub max_held_bytes: usize,
    /// The budget shared with other sessions, if any.
    pub pool: Option<MemoryPool>,
}

impl SessionConfig {
    /// A config with default limits.
    pub fn new(dialect: Dialect, key_seed: [u8; 32], our_location: PeerLocator) -> Self {
        let mut limits = Limits::default();
        limits.max_len = 1 << 20;
        limits.max_value_bytes = 8 << 20;
        // A decoded value costs tens of bytes per atom: cap the atom count
        // so a message of one-byte atoms cannot cost ~40x its wire size.
        limits.max_values = 256 << 10;
        limits.max_items = 256 << 10;
        SessionConfig {
            dialect,
            key_seed,
            our_location,
            limits,
            max_table_entries: 1 << 16,
            max_held_bytes: 64 << 20,
            pool: None,
        }
    }
}

/// The peer's identity, as proven by a verified `op:start-session`. Only
/// the session's check of `op:start-session` (version and location
/// signature) creates one.
#[derive(Debug, Clone)]
pub struct PeerVerified {
    key: PublicKey,
    location: PeerLocator,
    id: PublicId,
    session_id: SessionId,
}

impl PeerVerified {
    fn check(op: OpStartSession, our_id: &PublicId) -> Result<PeerVerified, Violation> {
        if op.captp_version != CAPTP_VERSION {
            return Err(Violation::BadVersion);
        }
        match op.session_pubkey.verify_value(
            &my_location(&op.acceptable_location),
            &op.acceptable_location_sig,
        ) {
            Ok(()) => {}
            Err(
                CryptoError::BadSignature
                | CryptoError::MalformedKey
                | CryptoError::MalformedSignature,
            ) => {
                return Err(Violation::BadLocationSignature);
            }
        }
        let id = op.session_pubkey.public_id();
        Ok(PeerVerified {
            key: op.session_pubkey,
            location: op.acceptable_location,
            session_id: SessionId::derive(our_id, &id),
            id,
        })
    }

    /// The peer's session key.
    pub fn key(&self) -> &PublicKey {
        &self.key
    }
    /// The location the peer announced.
    pub fn location(&self) -> &PeerLocator {
        &self.location
    }
    /// The peer's Public Identifier.
    pub fn id(&self) -> &PublicId {
        &self.id
    }
    /// The Session ID.
    pub fn session_id(&self) -> &SessionId {
        &self.session_id
    }
}

enum Phase {
    AwaitingStartSession,
    Open(PeerVerified),
    Aborted(SessionError),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Awaited {
    Question(QuestionPosition),
    Import(ImportPosition),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum ExportTarget {
    Bootstrap,
    Object(LocalId),
    Promise(LocalId),
    /// One of our internal resolvers (for a question or a listen).
    Resolver(Awaited),
    /// The resolver sent with fire-and-forget messages while the peer's
    /// dialect is unknown; it ignores what it is told.
    Sink,
}

struct ExportEntry {
    target: ExportTarget,
    count: u64,
}

struct ImportEntry {
    promise: bool,
    /// Receipts not yet reported to the peer.
    count: u64,
    /// How many of those receipts the session itself holds (resolvers it
    /// will notify); the local side holds the rest.
    internal: u64,
}

struct QuestionEntry {
    settled: bool,
}

struct AnswerEntry {
    /// Whether the local side has settled it. The settlement itself is
    /// not kept here: the local side holds it (in its promise for the
    /// answer) and answers later listens on a settled answer.
    settled: bool,
    /// Which opening of this position it is (see [`ReplyTo::Answer`]).
    serial: u64,
    /// Bytes charged to this answer: its settlement, or until it settles
    /// the arguments of messages pipelined on it.
    cost: usize,
    /// Resolvers the peer exported, to notify on settlement.
    waiting: Vec<ImportPosition>,
}

/// Counts of table entries, for tests and diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TableSizes {
    /// Live exports, the bootstrap object included.
    pub exports: usize,
    /// Live imports.
    pub imports: usize,
    /// Live questions.
    pub questions: usize,
    /// Live answers.
    pub answers: usize,
    /// Deposited gifts not yet withdrawn.
    pub gifts: usize,
}

#[derive(Default)]
struct Tables {
    exports: BTreeMap<ExportPosition, ExportEntry>,
    export_of: BTreeMap<ExportTarget, ExportPosition>,
    next_export: u64,
    imports: BTreeMap<ImportPosition, ImportEntry>,
    questions: BTreeMap<QuestionPosition, QuestionEntry>,
    next_question: u64,
    answers: BTreeMap<AnswerPosition, AnswerEntry>,
    next_answer_serial: u64,
    gifts: BTreeMap<GiftId, CapRef>,
    /// How many gifts hold each local object (kept in step with `gifts`).
    gift_holds: BTreeMap<LocalId, usize>,
    parked: BTreeMap<GiftId, GiftTicket>,
    used_handoff_counts: BTreeSet<u64>,
    next_handoff_count: u64,
    listens: BTreeSet<ImportPosition>,
}

impl Tables {
    fn new() -> Self {
        let mut t = Tables {
            next_export: 1,
            ..Tables::default()
        };
        t.exports.insert(
            ExportPosition(0),
            ExportEntry {
                target: ExportTarget::Bootstrap,
                count: 0,
            },
        );
        t.export_of
            .insert(ExportTarget::Bootstrap, ExportPosition(0));
        t
    }

    fn sizes(&self) -> TableSizes {
        TableSizes {
            exports: self.exports.len(),
            imports: self.imports.len(),
            questions: self.questions.len(),
            answers: self.answers.len(),
            gifts: self.gifts.len(),
        }
    }

    /// Exports `target` (reusing its live position) and counts one send.
    fn export(&mut self, target: ExportTarget) -> ExportPosition {
        let pos = match self.export_of.get(&target) {
            Some(p) => *p,
            None => {
                let p = ExportPosition(self.next_export);
                self.next_export = self.next_export.saturating_add(1);
                self.export_of.insert(target, p);
                self.exports.insert(p, ExportEntry { target, count: 0 });
                p
            }
        };
        if let Some(e) = self.exports.get_mut(&pos) {
            e.count = e.count.saturating_add(1);
        }
        pos
    }
}

/// One side of a CapTP session.
///
/// # Call order
///
/// 1. [`Session::new`] with a [`SessionConfig`] (fresh key seed). Our
///    `op:start-session` is queued at once.
/// 2. Loop, in any order, until [`Session::is_terminated`]:
///    - bytes from the peer → [`Session::handle_bytes`] (or whole decoded
///      messages → [`Session::handle_message`]); end of stream →
///      [`Session::handle_closed`];
///    - commands from the local side → [`Session::fetch`],
///      [`Session::deliver`], [`Session::deliver_only`],
///      [`Session::project`], [`Session::listen`], [`Session::resolve`],
///      [`Session::drop_import`], [`Session::drop_question`],
///      [`Session::abort`], and the handoff commands ([`Session::give`],
///      [`Session::handoff_receive`], [`Session::sign_handoff_receive`],
///      [`Session::withdraw_gift`], [`Session::redeem_gift`]);
///    - every [`Reply`] handed out in an event must come back through
///      [`Session::resolve`] exactly once (a reply never resolved leaves the
///      peer's resolver imported until the session ends);
///    - after either, drain [`Session::poll_transmit`] (write each item with
///      one write, in order) and [`Session::poll_event`] (act on each
///      before polling the next: an [`Event::ExportDropped`] still queued
///      is withdrawn if the local side sends that object again, which a
///      driver that polls ahead would already have taken for true).
/// 3. After termination keep draining `poll_transmit` (the `op:abort`) and
///    `poll_event` (broken questions), then close the channel.
///
/// Commands may be issued before the peer's `op:start-session` arrives
/// (ours always goes first on the wire); handoff commands that need the
/// peer's identity return [`Misuse::NotOpen`] until [`Event::Established`].
pub struct Session {
    dialect: Dialect,
    /// What the peer has shown of its dialect (for the learning dialects).
    learned: Learned,
    keys: SessionKeys,
    our_id: PublicId,
    our_location: PeerLocator,
    decoder: Decoder,
    /// The deepest message we send: our decoder's depth limit, taken as
    /// the peer's too.
    max_depth: usize,
    max_entries: usize,
    phase: Phase,
    tables: Tables,
    outgoing: VecDeque<Vec<u8>>,
    /// Events for the local side, each with the bytes charged for it.
    events: VecDeque<(Event, usize)>,
    pending_gc_exports: BTreeMap<ImportPosition, u64>,
    pending_gc_answers: BTreeSet<QuestionPosition>,
    /// Local objects with an [`Event::ExportDropped`] in `events` (at most
    /// one each), so a new export of one can withdraw it.
    drops_queued: BTreeSet<LocalId>,
    /// Bytes charged to answers (the sum of their `cost`).
    answer_bytes: usize,
    /// Bytes of the values in `events`.
    event_bytes: usize,
    max_held: usize,
    pool: Option<MemoryPool>,
    /// What `pool` has been charged for this session.
    charged: usize,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("dialect", &self.dialect)
            .field("our_id", &self.our_id)
            .field("tables", &self.tables.sizes())
            .finish_non_exhaustive()
    }
}

type InResult<T> = Result<T, SessionError>;

impl Session {
    /// Creates a session and queues our `op:start-session`.
    pub fn new(config: SessionConfig) -> Self {
        let keys = SessionKeys::from_seed(config.key_seed);
        let our_id = keys.public().public_id();
        let mut s = Session {
            dialect: config.dialect,
            learned: Learned::default(),
            our_id,
            our_location: config.our_location,
            max_depth: config.limits.max_depth,
            decoder: Decoder::with_limits(config.limits),
            max_entries: config.max_table_entries,
            phase: Phase::AwaitingStartSession,
            tables: Tables::new(),
            outgoing: VecDeque::new(),
            events: VecDeque::new(),
            pending_gc_exports: BTreeMap::new(),
            pending_gc_answers: BTreeSet::new(),
            drops_queued: BTreeSet::new(),
            answer_bytes: 0,
            event_bytes: 0,
            max_held: config.max_held_bytes,
            pool: config.pool,
            charged: 0,
            keys,
        };
        if let Some(pool) = &s.pool {
            pool.join();
        }
        let start = Op::StartSession(OpStartSession {
            captp_version: CAPTP_VERSION.to_owned(),
            session_pubkey: *s.keys.public(),
            acceptable_location_sig: s.keys.sign_location(&s.our_location),
            acceptable_location: s.our_location.clone(),
        });
        s.send(&start);
        s
    }

    /// Our session public key.
    pub fn public_key(&self) -> &PublicKey {
        self.keys.public()
    }

    /// Our Public Identifier on this session.
    pub fn public_id(&self) -> &PublicId {
        &self.our_id
    }

    /// The peer's verified identity, once open.
    pub fn peer(&self) -> Option<&PeerVerified> {
        match &self.phase {
            Phase::Open(p) => Some(p),
            _ => None,
        }
    }

    /// The dialect we emit.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Whether the session has ended (aborted either way).
    pub fn is_terminated(&self) -> bool {
        matches!(self.phase, Phase::Aborted(_))
    }

    /// The terminal error, once terminated.
    pub fn error(&self) -> Option<&SessionError> {
        match &self.phase {
            Phase::Aborted(e) => Some(e),
            _ => None,
        }
    }

    /// Whether import `p` is a promise (`Some(true)`), an object
    /// (`Some(false)`), or not imported (`None`).
    pub fn import_is_promise(&self, p: ImportPosition) -> Option<bool> {
        self.tables.imports.get(&p).map(|e| e.promise)
    }

    /// Current table sizes.
    pub fn table_sizes(&self) -> TableSizes {
        self.tables.sizes()
    }

    /// Bytes of a message the peer has started and not finished (what the
    /// decoder holds between [`Session::handle_bytes`] calls). A driver
    /// bounds how long this may stay above zero.
    pub fn partial_input(&self) -> usize {
        self.decoder.buffered()
    }

    /// Bytes of ours the peer makes this session hold: answers' values,
    /// queued events, table entries and a partial message (see
    /// [`crate::budget`]).
    pub fn held(&self) -> usize {
        let entries = self
            .tables
            .imports
            .len()
            .saturating_add(self.tables.answers.len());
        self.answer_bytes
            .saturating_add(self.event_bytes)
            .saturating_add(entries.saturating_mul(ENTRY_COST))
            .saturating_add(self.decoder.buffered())
    }

    /// Updates the shared pool with what this session holds, then checks
    /// both budgets.
    fn check_budget(&mut self) -> InResult<()> {
        let held = self.held();
        if let Some(pool) = &self.pool
            && held != self.charged
        {
            pool.recharge(self.charged, held);
            self.charged = held;
        }
        if held > self.max_held {
            return Err(SessionError::OverBudget(OverBudget::Session {
                held,
                limit: self.max_held,
            }));
        }
        if let Some(pool) = &self.pool
            && pool.used() > pool.limit()
            && held > pool.fair_share()
        {
            return Err(SessionError::OverBudget(OverBudget::Shared {
                held,
                share: pool.fair_share(),
                limit: pool.limit(),
            }));
        }
        Ok(())
    }

    /// Gives back to the pool what it was charged for this session, and
    /// stops drawing on it.
    fn leave_pool(&mut self) {
        if let Some(pool) = self.pool.take() {
            pool.recharge(self.charged, 0);
            pool.leave();
        }
        self.charged = 0;
    }

    /// Queues an event, charging the values it carries.
    fn push_event(&mut self, e: Event) {
        let cost = event_cost(&e);
        self.event_bytes = self.event_bytes.saturating_add(cost);
        self.events.push_back((e, cost));
    }

    /// Whether one side awaits the other: a question of ours is
    /// unanswered, we listen on one of the peer's promises, or an answer
    /// the peer asked for is unsettled. A quiet session that awaits
    /// nothing is idle.
    pub fn is_waiting(&self) -> bool {
        self.tables.questions.values().any(|q| !q.settled)
            || !self.tables.listens.is_empty()
            || self.tables.answers.values().any(|a| !a.settled)
    }

    /// Queues a message that changes nothing (an `op:gc-answers` with no
    /// positions), so the peer hears from us: a driver sends it to keep a
    /// quiet session it still needs from being closed as idle. CapTP has no
    /// ping; releasing nothing is a no-op for the peer. Sends nothing
    /// while no GC label is known to be safe (see [`crate::dialects`]).
    ///
    /// # Errors
    /// The terminal error.
    pub fn keepalive(&mut self) -> InResult<()> {
        self.check_live()?;
        if self.gc_labels_known() {
            self.send(&Op::GcAnswers(OpGcAnswers {
                positions: Vec::new(),
            }));
        }
        Ok(())
    }

    /// The next encoded message to send (one whole Syrup record), if any.
    /// Pending GC reports are batched into one message at the end.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        if !self.is_terminated() {
            self.flush_gc();
        }
        self.outgoing.pop_front()
    }

    /// Like [`Session::poll_transmit`], except that pending GC reports go
    /// out only together with another message. A driver that calls this
    /// sends fewer, fuller writes (a questioner's `op:gc-answers` rides
    /// with its next call instead of costing the peer a message of its
    /// own), and must itself see that reports left waiting
    /// ([`Session::has_pending_gc`]) go out with [`Session::poll_transmit`]
    /// before long.
    pub fn poll_transmit_deferring_gc(&mut self) -> Option<Vec<u8>> {
        if !self.is_terminated() && !self.outgoing.is_empty() {
            self.flush_gc();
        }
        self.outgoing.pop_front()
    }

    /// Whether GC reports are waiting to be sent.
    ///
    /// Under [`Dialect::Auto`], reports wait (and this is `false`) until the
    /// peer has shown which GC labels it writes.
    pub fn has_pending_gc(&self) -> bool {
        !self.is_terminated()
            && self.gc_labels_known()
            && (!self.pending_gc_exports.is_empty() || !self.pending_gc_answers.is_empty())
    }

    /// Whether we know which GC labels the peer decodes.
    fn gc_labels_known(&self) -> bool {
        self.dialect != Dialect::Auto || self.learned.gc_plural.is_some()
    }

    /// The next event for the local side, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        let (e, cost) = self.events.pop_front()?;
        self.event_bytes = self.event_bytes.saturating_sub(cost);
        let e = Some(e);
        if let Some(Event::ExportDropped { local }) = &e {
            self.drops_queued.remove(local);
        }
        e
    }

    /// Tells the local side that nothing on this session refers to `id`
    /// any more (unless it was told already and has not polled it yet).
    fn queue_drop(&mut self, id: LocalId) {
        if self.drops_queued.insert(id) {
            self.push_event(Event::ExportDropped { local: id });
        }
    }

    /// The session refers to `id` again: withdraw a drop of it the local
    /// side has not polled yet (it is no longer true).
    fn withdraw_drop(&mut self, id: LocalId) {
        if self.drops_queued.remove(&id) {
            self.events
                .retain(|(e, _)| !matches!(e, Event::ExportDropped { local } if *local == id));
        }
    }

    /// Whether anything on this session still refers to local object `id`:
    /// an export of it as object or promise, or a deposited gift.
    fn refers_to(&self, id: LocalId) -> bool {
        self.tables
            .export_of
            .contains_key(&ExportTarget::Object(id))
            || self
                .tables
                .export_of
                .contains_key(&ExportTarget::Promise(id))
            || self.gift_holds(id)
    }

    fn check_live(&self) -> InResult<()> {
        match &self.phase {
            Phase::Aborted(e) => Err(e.clone()),
            _ => Ok(()),
        }
    }

    fn send(&mut self, op: &Op) {
        let forms = self.forms();
        if let Op::DeliverOnly(d) = op
            && !self.fire_and_forget_known()
        {
            // Neither `op:deliver-only` nor `op:deliver … false false` is
            // safe yet (each crashes a decoder of the other dialect): send
            // a resolver that ignores the reply, which both decode.
            let sink = self.tables.export(ExportTarget::Sink);
            let op = Op::Deliver(OpDeliver {
                to: d.to.clone(),
                args: d.args.clone(),
                answer_pos: None,
                // As a promise: a resolver no other implementation would
                // send, so a learning pola peer knows us by it.
                resolve_me: Some(Desc::ImportPromise(sink.into())),
            });
            self.outgoing
                .push_back(pola_syrup::encode(&op.to_value_in(forms)));
            return;
        }
        self.outgoing
            .push_back(pola_syrup::encode(&op.to_value_in(forms)));
    }

    /// The forms we write now: fixed for [`Dialect::Current`] and
    /// [`Dialect::TestSuite`]; for the learning dialects, what the peer
    /// has shown, else the dialect's initial forms.
    pub fn forms(&self) -> Forms {
        let start = self.dialect.forms();
        match self.dialect {
            Dialect::Current | Dialect::TestSuite => start,
            Dialect::Auto | Dialect::AutoSuite => Forms {
                deliver_only: self.learned.deliver_only.unwrap_or(start.deliver_only),
                listen_wants_partial: self
                    .learned
                    .listen_wants_partial
                    .unwrap_or(start.listen_wants_partial),
                gc_plural: self.learned.gc_plural.unwrap_or(start.gc_plural),
            },
        }
    }

    /// What the peer has shown of its dialect so far (learned by every
    /// session, used only by the learning dialects).
    pub fn learned(&self) -> Learned {
        self.learned
    }

    /// Whether the peer may be sent `op:get`, `op:index` and `op:untag`:
    /// not in the suite's dialects (it errors on labels it does not know),
    /// nor to a learning session's peer that wrote `op:deliver-only`.
    fn projections_understood(&self) -> bool {
        match self.dialect {
            Dialect::Current => true,
            Dialect::TestSuite | Dialect::AutoSuite => false,
            Dialect::Auto => self.learned.deliver_only != Some(true),
        }
    }

    /// Whether we know how to write fire-and-forget to this peer.
    fn fire_and_forget_known(&self) -> bool {
        match self.dialect {
            Dialect::Current | Dialect::TestSuite => true,
            Dialect::Auto | Dialect::AutoSuite => self.learned.deliver_only.is_some(),
        }
    }

    fn flush_gc(&mut self) {
        if !self.gc_labels_known() {
            // No GC label is safe yet (each crashes a decoder of the other
            // dialect): the reports wait until the peer shows its labels.
            return;
        }
        if !self.pending_gc_exports.is_empty() {
            let entries = std::mem::take(&mut self.pending_gc_exports)
                .into_iter()
                .map(|(p, d)| (Position::from(p), d))
                .collect();
            self.send(&Op::GcExports(OpGcExports { entries }));
        }
        if !self.pending_gc_answers.is_empty() {
            let positions = std::mem::take(&mut self.pending_gc_answers)
                .into_iter()
                .map(Position::from)
                .collect();
            self.send(&Op::GcAnswers(OpGcAnswers { positions }));
        }
    }

    // ----------------------------------------------------------------
    // Input from the peer
    // ----------------------------------------------------------------

    /// Feeds bytes received from the peer (any chunking). Processes every
    /// whole message in them.
    ///
    /// # Errors
    /// If the session is or becomes terminated: the terminal error. Bad
    /// input aborts the session (an `op:abort` is queued to the peer).
    pub fn handle_bytes(&mut self, bytes: &[u8]) -> InResult<()> {
        self.check_live()?;
        self.decoder.feed(bytes);
        loop {
            match self.decoder.next_value() {
                Ok(None) => {
                    // A message still arriving counts too.
                    if let Err(e) = self.check_budget() {
                        return Err(self.fail(e));
                    }
                    return Ok(());
                }
                Ok(Some(v)) => {
                    if let Err(e) = self.handle_value(v).and_then(|()| self.check_budget()) {
                        return Err(self.fail(e));
                    }
                    self.check_live()?;
                }
                Err(e) => {
                    let err = if e.kind.is_limit() {
                        SessionError::Limit
                    } else {
                        SessionError::Malformed(e)
                    };
                    return Err(self.fail(err));
                }
            }
        }
    }

    /// The channel closed (end of stream or transport error) without an
    /// `op:abort`: ends the session, breaking everything pending. Nothing is
    /// queued for the peer.
    ///
    /// # Errors
    /// The terminal error if the session had already ended.
    pub fn handle_closed(&mut self) -> InResult<()> {
        self.check_live()?;
        self.outgoing.clear();
        self.pending_gc_answers.clear();
        self.pending_gc_exports.clear();
        self.terminate(SessionError::Closed, "connection closed".to_owned(), true);
        Ok(())
    }

    /// Handles one decoded message (for drivers whose netlayer already
    /// frames messages).
    ///
    /// # Errors
    /// As [`Session::handle_bytes`].
    pub fn handle_message(&mut self, message: Value) -> InResult<()> {
        self.check_live()?;
        match self
            .handle_value(message)
            .and_then(|()| self.check_budget())
        {
            Ok(()) => self.check_live(),
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Aborts because of `err`: queues `op:abort` with a short reason, breaks
    /// everything, clears the tables. Returns the terminal error.
    fn fail(&mut self, err: SessionError) -> SessionError {
        let reason = err.to_string();
        self.fail_with(err, reason)
    }

    fn fail_with(&mut self, err: SessionError, reason: String) -> SessionError {
        self.outgoing.clear();
        self.pending_gc_answers.clear();
        self.pending_gc_exports.clear();
        self.send(&Op::Abort(OpAbort {
            reason: reason.clone(),
        }));
        self.terminate(err.clone(), reason, false);
        err
    }

    fn terminate(&mut self, err: SessionError, reason: String, by_peer: bool) {
        let broken = Value::error(if by_peer {
            "session aborted by peer"
        } else {
            "session aborted"
        });
        let tables = std::mem::take(&mut self.tables);
        for (q, e) in tables.questions {
            if !e.settled {
                self.push_event(Event::Answer {
                    question: q,
                    result: Err(broken.clone()),
                });
            }
        }
        for awaited in tables.listens {
            self.push_event(Event::PromiseSettled {
                promise: awaited,
                result: Err(broken.clone()),
            });
        }
        for (_, ticket) in tables.parked {
            self.push_event(Event::GiftWithdrawalBroken { ticket });
        }
        self.push_event(Event::Aborted { reason, by_peer });
        self.phase = Phase::Aborted(err);
        self.decoder = Decoder::new();
        // The tables are gone: so is what they held.
        self.answer_bytes = 0;
        self.leave_pool();
    }

    fn handle_value(&mut self, v: Value) -> InResult<()> {
        let shape = Shape::of(&v);
        let op = Op::parse(v)?;
        if !matches!(self.phase, Phase::Aborted(_)) {
            self.learned.learn(shape);
        }
        match (&self.phase, op) {
            (Phase::Aborted(e), _) => Err(e.clone()),
            (_, Op::Abort(a)) => {
                let reason = a.reason.chars().take(200).collect::<String>();
                self.outgoing.clear();
                self.terminate(SessionError::PeerAborted(reason.clone()), reason, true);
                Ok(())
            }
            (Phase::AwaitingStartSession, Op::StartSession(s)) => {
                let peer = PeerVerified::check(s, &self.our_id)?;
                self.push_event(Event::Established {
                    peer_location: peer.location.clone(),
                    peer_id: peer.id,
                    session_id: peer.session_id,
                });
                self.phase = Phase::Open(peer);
                Ok(())
            }
            (Phase::AwaitingStartSession, _) => Err(Violation::BeforeStartSession.into()),
            (Phase::Open(_), Op::StartSession(_)) => Err(Violation::DuplicateStartSession.into()),
            (Phase::Open(_), op) => self.handle_open(op),
        }
    }

    fn export_target(&self, p: Position) -> Result<ExportTarget, Violation> {
        self.tables
            .exports
            .get(&ExportPosition(p.0))
            .map(|e| e.target)
            .ok_or(Violation::UnknownExport)
    }

    fn local_target(&self, d: &Desc) -> Result<Result<LocalTarget, ExportTarget>, Violation> {
        match d {
            Desc::Export(p) => Ok(match self.export_target(*p)? {
                ExportTarget::Object(id) => Ok(LocalTarget::Object(id)),
                ExportTarget::Promise(id) => Ok(LocalTarget::Promise(id)),
                other => Err(other),
            }),
            Desc::Answer(p) => {
                let a = AnswerPosition(p.0);
                if self.tables.answers.contains_key(&a) {
                    Ok(Ok(LocalTarget::Answer(a)))
                } else {
                    Err(Violation::UnknownAnswer)
                }
            }
            _ => Err(Violation::UnknownExport),
        }
    }

    /// Phase 1 of lifting: validate descriptors against the tables and note
    /// the imports to count. Touches nothing.
    fn lift_value(
        &self,
        v: Value<Desc>,
        seen: &mut Vec<(ImportPosition, bool)>,
    ) -> Result<Value<CapRef>, Violation> {
        v.try_map_refs(&mut |d| self.lift_desc(d, seen).map(Value::Ref))
    }

    fn lift_desc(
        &self,
        d: Desc,
        seen: &mut Vec<(ImportPosition, bool)>,
    ) -> Result<CapRef, Violation> {
        Ok(match d {
            Desc::Export(p) => match self.export_target(p)? {
                ExportTarget::Bootstrap => CapRef::Bootstrap,
                ExportTarget::Object(id) => CapRef::Local(id),
                ExportTarget::Promise(id) => CapRef::LocalPromise(id),
                ExportTarget::Resolver(_) | ExportTarget::Sink => {
                    return Err(Violation::UnsupportedReference);
                }
            },
            Desc::ImportObject(p) => {
                seen.push((ImportPosition(p.0), false));
                CapRef::Import(ImportPosition(p.0))
            }
            Desc::ImportPromise(p) => {
                seen.push((ImportPosition(p.0), true));
                CapRef::ImportPromise(ImportPosition(p.0))
            }
            Desc::Answer(p) => {
                let a = AnswerPosition(p.0);
                if !self.tables.answers.contains_key(&a) {
                    return Err(Violation::UnknownAnswer);
                }
                CapRef::Answer(a)
            }
            Desc::Give(g) => {
                if g.give.receiver_key != *self.keys.public() {
                    return Err(Violation::HandoffNotForUs);
                }
                CapRef::Gift(g)
            }
            Desc::Receive(_) => return Err(Violation::UnexpectedReceive),
        })
    }

    /// Phase 2: count the imports noted in phase 1.
    fn commit_imports(&mut self, seen: Vec<(ImportPosition, bool)>) -> InResult<()> {
        let new = seen
            .iter()
            .filter(|(p, _)| !self.tables.imports.contains_key(p))
            .count();
        if self.tables.imports.len().saturating_add(new) > self.max_entries {
            return Err(SessionError::Limit);
        }
        for (p, promise) in seen {
            let e = self.tables.imports.entry(p).or_insert(ImportEntry {
                promise,
                count: 0,
                internal: 0,
            });
            e.count = e.count.saturating_add(1);
        }
        Ok(())
    }

    fn check_new_answer(&self, p: Position) -> InResult<AnswerPosition> {
        let a = AnswerPosition(p.0);
        if self.tables.answers.contains_key(&a) {
            return Err(Violation::AnswerInUse.into());
        }
        if self.tables.answers.len() >= self.max_entries {
            return Err(SessionError::Limit);
        }
        Ok(a)
    }

    /// Opens answer `a`; returns its serial number.
    fn open_answer(&mut self, a: AnswerPosition, waiting: Vec<ImportPosition>) -> u64 {
        let serial = self.tables.next_answer_serial;
        self.tables.next_answer_serial = serial.wrapping_add(1);
        self.tables.answers.insert(
            a,
            AnswerEntry {
                settled: false,
                serial,
                cost: 0,
                waiting,
            },
        );
        serial
    }

    fn handle_open(&mut self, op: Op) -> InResult<()> {
        match op {
            Op::Deliver(d) => self.handle_deliver(d.to, d.args, d.answer_pos, d.resolve_me),
            Op::DeliverOnly(d) => self.handle_deliver(d.to, d.args, None, None),
            Op::Listen(l) => self.handle_listen(l),
            Op::GetOrIndex(g) => {
                let kind = match g.projection {
                    Projection::Field(f) => ProjectKind::Field(f),
                    Projection::Index(i) => ProjectKind::Index(i),
                };
                self.handle_project(g.receiver, kind, g.new_answer_pos)
            }
            Op::Untag(u) => {
                self.handle_project(u.receiver, ProjectKind::Untag(u.tag), u.new_answer_pos)
            }
            Op::GcExports(g) => self.handle_gc_exports(g.entries),
            Op::GcAnswers(g) => {
                let mut drop = BTreeSet::new();
                for p in g.positions {
                    let a = AnswerPosition(p.0);
                    if !self.tables.answers.contains_key(&a) {
                        return Err(Violation::UnknownAnswer.into());
                    }
                    drop.insert(a);
                }
                for a in drop {
                    if let Some(entry) = self.tables.answers.remove(&a) {
                        self.answer_bytes = self.answer_bytes.saturating_sub(entry.cost);
                        for r in entry.waiting {
                            self.release_import(r);
                        }
                    }
                    self.push_event(Event::AnswerDropped { answer: a });
                }
                Ok(())
            }
            // Handled before dispatch.
            Op::StartSession(_) | Op::Abort(_) => Ok(()),
        }
    }

    fn handle_deliver(
        &mut self,
        to: Desc,
        args: Vec<Value<Desc>>,
        answer_pos: Option<Position>,
        resolve_me: Option<Desc>,
    ) -> InResult<()> {
        // Validate everything first.
        let target = self.local_target(&to)?;
        let answer = answer_pos.map(|p| self.check_new_answer(p)).transpose()?;
        let mut seen = Vec::new();
        let resolver = match resolve_me {
            None => None,
            Some(d) => match self.lift_desc(d, &mut seen)? {
                CapRef::Import(p) | CapRef::ImportPromise(p) => Some(p),
                _ => return Err(WireError::Descriptor("resolve-me-desc").into()),
            },
        };
        // A withdraw-gift carries a handoff-receive, which is not a reference.
        let mut withdraw: Option<SignedReceive> = None;
        let mut args = args;
        if target == Err(ExportTarget::Bootstrap)
            && args.first().and_then(Value::as_symbol) == Some("withdraw-gift")
            && args.len() == 2
            && let Some(Value::Ref(Desc::Receive(_))) = args.get(1)
            && let Some(Value::Ref(Desc::Receive(r))) = args.pop()
        {
            withdraw = Some(*r);
        }
        let args = args
            .into_iter()
            .map(|a| self.lift_value(a, &mut seen))
            .collect::<Result<Vec<_>, _>>()?;
        // Commit.
        self.commit_imports(seen)?;
        if let Some(r) = resolver {
            self.hold_internal(r);
        }
        let reply = match (answer, resolver) {
            (Some(a), r) => {
                let serial = self.open_answer(a, r.into_iter().collect());
                Some(Reply(ReplyTo::Answer(a, serial)))
            }
            (None, Some(r)) => Some(Reply(ReplyTo::Resolver(r))),
            (None, None) => None,
        };
        if let Ok(LocalTarget::Answer(a)) = target
            && let Some(e) = self.tables.answers.get_mut(&a)
            && !e.settled
        {
            // Pipelined on an answer not settled yet: the local side keeps
            // the message until it settles.
            let cost = args.iter().map(Value::footprint).sum::<usize>();
            e.cost = e.cost.saturating_add(cost);
            self.answer_bytes = self.answer_bytes.saturating_add(cost);
        }
        match target {
            Ok(t) => {
                self.push_event(Event::Deliver {
                    target: t,
                    args,
                    reply,
                });
                Ok(())
            }
            Err(ExportTarget::Bootstrap) => {
                self.bootstrap(args, withdraw, reply);
                Ok(())
            }
            Err(ExportTarget::Resolver(awaited)) => {
                self.resolver_called(awaited, args);
                match reply {
                    // A learning pola peer's sink (a promise as the
                    // resolver of a fire-and-forget message) wants no
                    // word back: release it without a message.
                    Some(Reply(ReplyTo::Resolver(r)))
                        if self.import_is_promise(r) == Some(true) =>
                    {
                        self.release_import(r);
                    }
                    Some(r) => self.settle(r, Ok(Value::undefined())),
                    None => {}
                }
                Ok(())
            }
            Err(ExportTarget::Sink) => {
                // Told how a fire-and-forget message went: nothing waits.
                for a in &args {
                    self.discard(a);
                }
                match reply {
                    // Never answered, so two sinks cannot talk for ever.
                    Some(Reply(ReplyTo::Resolver(r))) => self.release_import(r),
                    Some(r) => self.settle(r, Ok(Value::undefined())),
                    None => {}
                }
                Ok(())
            }
            Err(ExportTarget::Object(_) | ExportTarget::Promise(_)) => Ok(()),
        }
    }

    /// Reports every import receipt inside a value nobody will hold.
    fn discard(&mut self, v: &Value<CapRef>) {
        let mut found = Vec::new();
        v.for_each_ref(&mut |r| {
            if let CapRef::Import(p) | CapRef::ImportPromise(p) = r {
                found.push(*p);
            }
        });
        for p in found {
            self.report_import(p, 1);
        }
    }

    fn resolver_called(&mut self, awaited: Awaited, args: Vec<Value<CapRef>>) {
        let mut it = args.into_iter();
        let method = it.next();
        let arg = it.next().unwrap_or_else(Value::undefined);
        for extra in it {
            self.discard(&extra);
        }
        if let Some(m) = &method {
            self.discard(m);
        }
        let result = match method.as_ref().and_then(Value::as_symbol) {
            Some("fulfill") => Ok(arg),
            Some("break") => Err(arg),
            // Not a resolver method: ignore, as a resolver would.
            _ => {
                self.discard(&arg);
                return;
            }
        };
        let wanted = match awaited {
            Awaited::Question(q) => match self.tables.questions.get_mut(&q) {
                Some(e) if !e.settled => {
                    e.settled = true;
                    true
                }
                _ => false,
            },
            Awaited::Import(p) => self.tables.listens.remove(&p),
        };
        if !wanted {
            // Nobody waits (a second resolution, or a dropped question):
            // release what it carried.
            match &result {
                Ok(v) | Err(v) => self.discard(v),
            }
            return;
        }
        self.push_event(match awaited {
            Awaited::Question(question) => Event::Answer { question, result },
            Awaited::Import(promise) => Event::PromiseSettled { promise, result },
        });
    }

    fn bootstrap(
        &mut self,
        args: Vec<Value<CapRef>>,
        withdraw: Option<SignedReceive>,
        reply: Option<Reply>,
    ) {
        // Nothing in a bootstrap call's arguments is handed on as an import
        // (a gift must be one of our own objects), so release any receipts.
        for a in &args {
            self.discard(a);
        }
        let method = args.first().and_then(Value::as_symbol).map(str::to_owned);
        match (method.as_deref(), args.as_slice()) {
            (Some("fetch"), [_, swiss]) => match Swiss::from_value(swiss) {
                Ok(swiss) => self.push_event(Event::Fetch { swiss, reply }),
                Err(_) => self.settle_opt(reply, Err(Value::error("bad swiss number"))),
            },
            (Some("deposit-gift"), [_, id, Value::Ref(r)]) => {
                let gift = GiftId::from_value(id);
                match (gift, r) {
                    (
                        Ok(id),
                        CapRef::Local(_)
                        | CapRef::LocalPromise(_)
                        | CapRef::Bootstrap
                        | CapRef::Answer(_),
                    ) => {
                        if self.deposit(id, r.clone()) {
                            self.settle_opt(reply, Ok(Value::undefined()));
                        } else {
                            self.settle_opt(reply, Err(Value::error("too many gifts")));
                        }
                    }
                    _ => self.settle_opt(reply, Err(Value::error("bad gift"))),
                }
            }
            (Some("withdraw-gift"), [_]) => match withdraw {
                Some(r) => match self.verify_withdraw(r) {
                    Ok(request) => self.push_event(Event::WithdrawGift { request, reply }),
                    Err(_) => self.settle_opt(reply, Err(Value::error("handoff rejected"))),
                },
                None => self.settle_opt(reply, Err(Value::error("bad withdraw-gift"))),
            },
            _ => self.settle_opt(reply, Err(Value::error("unknown bootstrap method"))),
        }
    }

    /// Stores a gift, or hands it to a withdrawal already waiting for it.
    /// Refuses (returns `false`) when the gift table is full.
    fn deposit(&mut self, id: GiftId, target: CapRef) -> bool {
        if let Some(ticket) = self.tables.parked.remove(&id) {
            self.push_event(Event::GiftReady { ticket, target });
            return true;
        }
        if !self.tables.gifts.contains_key(&id) && self.tables.gifts.len() >= self.max_entries {
            return false;
        }
        // A second deposit under the same id replaces the first.
        if let CapRef::Local(held) | CapRef::LocalPromise(held) = target {
            self.withdraw_drop(held);
        }
        self.count_hold(&target, true);
        if let Some(old) = self.tables.gifts.insert(id, target) {
            self.count_hold(&old, false);
            self.release_if_unheld(&old);
        }
        true
    }

    fn count_hold(&mut self, r: &CapRef, add: bool) {
        if let CapRef::Local(id) | CapRef::LocalPromise(id) = *r {
            let n = self.tables.gift_holds.entry(id).or_insert(0);
            *n = if add {
                n.saturating_add(1)
            } else {
                n.saturating_sub(1)
            };
            if *n == 0 {
                self.tables.gift_holds.remove(&id);
            }
        }
    }

    /// Whether a deposited gift keeps local object `id` alive.
    fn gift_holds(&self, id: LocalId) -> bool {
        self.tables.gift_holds.contains_key(&id)
    }

    /// After a gift holding `r` left the table: if nothing on this session
    /// refers to the object any more, tell the local side.
    fn release_if_unheld(&mut self, r: &CapRef) {
        if let CapRef::Local(id) | CapRef::LocalPromise(id) = *r
            && !self.refers_to(id)
        {
            self.queue_drop(id);
        }
    }

    fn handle_listen(&mut self, l: OpListen) -> InResult<()> {
        let target = self.local_target(&l.to)?;
        let mut seen = Vec::new();
        let listener = match self.lift_desc(l.listener, &mut seen)? {
            CapRef::Import(p) | CapRef::ImportPromise(p) => p,
            _ => return Err(WireError::Descriptor("listen-desc").into()),
        };
        if let Ok(LocalTarget::Answer(a)) = target
            && self
                .tables
                .answers
                .get(&a)
                .is_some_and(|e| e.waiting.len() >= self.max_entries)
        {
            return Err(SessionError::Limit);
        }
        self.commit_imports(seen)?;
        self.hold_internal(listener);
        let reply = Reply(ReplyTo::Resolver(listener));
        match target {
            Ok(LocalTarget::Answer(a)) => match self.tables.answers.get_mut(&a) {
                Some(e) if !e.settled => e.waiting.push(listener),
                // Settled: the local side holds the settlement.
                _ => self.push_event(Event::Listen {
                    target: LocalTarget::Answer(a),
                    reply,
                    wants_partial: l.wants_partial,
                }),
            },
            Ok(target) => self.push_event(Event::Listen {
                target,
                reply,
                wants_partial: l.wants_partial,
            }),
            // Not a promise: it is its own resolution.
            Err(ExportTarget::Bootstrap) => self.settle(reply, Ok(Value::Ref(CapRef::Bootstrap))),
            Err(_) => self.settle(reply, Err(Value::error("not a promise"))),
        }
        Ok(())
    }

    fn handle_project(
        &mut self,
        receiver: Desc,
        kind: ProjectKind,
        new_answer: Position,
    ) -> InResult<()> {
        let target = match receiver {
            Desc::ImportPromise(_) => None,
            d => Some(self.local_target(&d)?),
        };
        let a = self.check_new_answer(new_answer)?;
        let serial = self.open_answer(a, Vec::new());
        let reply = Reply(ReplyTo::Answer(a, serial));
        match target {
            Some(Ok(receiver)) => self.push_event(Event::Project {
                receiver,
                kind,
                reply,
            }),
            _ => self.settle(reply, Err(Value::error("cannot project"))),
        }
        Ok(())
    }

    fn handle_gc_exports(&mut self, entries: Vec<(Position, u64)>) -> InResult<()> {
        let mut total: BTreeMap<ExportPosition, u64> = BTreeMap::new();
        for (p, d) in entries {
            let pos = ExportPosition(p.0);
            let sum = total.entry(pos).or_insert(0);
            *sum = sum.checked_add(d).ok_or(Violation::GcDeltaTooLarge)?;
        }
        for (pos, d) in &total {
            let e = self
                .tables
                .exports
                .get(pos)
                .ok_or(Violation::UnknownExport)?;
            if *d > e.count && e.target != ExportTarget::Bootstrap {
                return Err(Violation::GcDeltaTooLarge.into());
            }
        }
        for (pos, d) in total {
            let Some(e) = self.tables.exports.get_mut(&pos) else {
                continue;
            };
            e.count = e.count.saturating_sub(d);
            if e.count == 0 && e.target != ExportTarget::Bootstrap {
                let target = e.target;
                self.tables.exports.remove(&pos);
                self.tables.export_of.remove(&target);
                // A deposited gift keeps the object alive (DIGEST section
                // 13), and so does its export in the other flavour (a
                // promise of ours sent once as a promise, once settled).
                if let ExportTarget::Object(id) | ExportTarget::Promise(id) = target
                    && !self.refers_to(id)
                {
                    self.queue_drop(id);
                }
            }
        }
        Ok(())
    }

    // ----------------------------------------------------------------
    // Commands from the local side
    // ----------------------------------------------------------------

    /// Phase 1 of lowering: check every reference is sendable.
    fn check_out(&self, r: &CapRef) -> Result<(), Misuse> {
        match r {
            CapRef::Local(_) | CapRef::LocalPromise(_) | CapRef::Bootstrap => Ok(()),
            // A gift certificate only means something to the receiver it
            // names: refuse to send it to anyone else.
            CapRef::Gift(g) => match self.peer() {
                Some(peer) if g.give.receiver_key != peer.key => {
                    Err(Misuse::Handoff("gift addressed to another receiver"))
                }
                _ => Ok(()),
            },
            CapRef::Import(p) | CapRef::ImportPromise(p) => {
                if self.tables.imports.contains_key(p) {
                    Ok(())
                } else {
                    Err(Misuse::UnknownImport)
                }
            }
            CapRef::Question(q) => {
                if self.tables.questions.contains_key(q) {
                    Ok(())
                } else {
                    Err(Misuse::UnknownQuestion)
                }
            }
            CapRef::Answer(_) => Err(Misuse::NotSendable),
        }
    }

    fn check_value_out(&self, v: &Value<CapRef>) -> Result<(), Misuse> {
        // A value travels as an argument (`<op:deliver to [v …] …>`) or a
        // settlement (`<op:deliver r ['fulfill v] …>`): two levels above it.
        let max = self.max_depth;
        let nested = matches!(
            v,
            Value::List(_) | Value::Dict(_) | Value::Set(_) | Value::Record(_)
        );
        // An atom or a plain reference is at most 3 deep in its message
        // (a gift's envelope is measured).
        if (nested || matches!(v, Value::Ref(CapRef::Gift(_)))) && message_depth(v, max) > max {
            return Err(Misuse::TooDeep(max));
        }
        let mut res = Ok(());
        v.for_each_ref(&mut |r| {
            if res.is_ok() {
                res = self.check_out(r);
            }
        });
        res
    }

    /// Phase 2: turn references into descriptors, exporting as needed.
    fn lower_ref(&mut self, r: CapRef) -> Desc {
        match r {
            CapRef::Local(id) => {
                self.withdraw_drop(id);
                Desc::ImportObject(self.tables.export(ExportTarget::Object(id)).into())
            }
            CapRef::LocalPromise(id) => {
                self.withdraw_drop(id);
                Desc::ImportPromise(self.tables.export(ExportTarget::Promise(id)).into())
            }
            CapRef::Bootstrap => {
                Desc::ImportObject(self.tables.export(ExportTarget::Bootstrap).into())
            }
            CapRef::Import(p) | CapRef::ImportPromise(p) => Desc::Export(p.into()),
            CapRef::Question(q) => Desc::Answer(q.into()),
            // Refused by check_out; map to something harmless anyway.
            CapRef::Answer(_) => Desc::Export(Position(0)),
            CapRef::Gift(g) => Desc::Give(g),
        }
    }

    fn lower_value(&mut self, v: Value<CapRef>) -> Value<Desc> {
        match v.try_map_refs::<Desc, std::convert::Infallible>(&mut |r| {
            Ok(Value::Ref(self.lower_ref(r)))
        }) {
            Ok(v) => v,
            Err(e) => match e {},
        }
    }

    fn target_desc(&self, target: &CapRef) -> Result<Desc, Misuse> {
        self.check_out(target)?;
        match target {
            CapRef::Import(p) | CapRef::ImportPromise(p) => Ok(Desc::Export((*p).into())),
            CapRef::Question(q) => Ok(Desc::Answer((*q).into())),
            _ => Err(Misuse::BadTarget),
        }
    }

    fn prepare_args(&mut self, args: Vec<Value<CapRef>>) -> Result<Vec<Value<Desc>>, Misuse> {
        for a in &args {
            self.check_value_out(a)?;
        }
        Ok(args.into_iter().map(|a| self.lower_value(a)).collect())
    }

    /// Sends `args` to `target` (an import or one of our questions, for
    /// pipelining) and asks for the answer. Returns the new question; its
    /// answer arrives as [`Event::Answer`], and further messages may be
    /// sent to `CapRef::Question(q)` at once.
    ///
    /// # Errors
    /// The terminal error, or [`Misuse`] for an unknown or unsendable
    /// reference (nothing is sent then).
    pub fn deliver(
        &mut self,
        target: &CapRef,
        args: Vec<Value<CapRef>>,
    ) -> InResult<QuestionPosition> {
        self.check_live()?;
        let to = self.target_desc(target)?;
        let args = self.prepare_args(args)?;
        let q = self.new_question();
        let resolver = self
            .tables
            .export(ExportTarget::Resolver(Awaited::Question(q)));
        self.send(&Op::Deliver(OpDeliver {
            to,
            args,
            answer_pos: Some(q.into()),
            resolve_me: Some(Desc::ImportObject(resolver.into())),
        }));
        Ok(q)
    }

    /// Sends `args` to `target` without asking for an answer
    /// (`op:deliver-only` or `op:deliver … false false`, per the peer's
    /// dialect; while a learning dialect does not know it yet, `op:deliver
    /// … false` with a resolver that ignores the reply: see
    /// [`crate::dialects`]).
    ///
    /// # Errors
    /// As [`Session::deliver`].
    pub fn deliver_only(&mut self, target: &CapRef, args: Vec<Value<CapRef>>) -> InResult<()> {
        self.check_live()?;
        let to = self.target_desc(target)?;
        let args = self.prepare_args(args)?;
        self.send(&Op::DeliverOnly(OpDeliverOnly { to, args }));
        Ok(())
    }

    /// Pipelines a projection (`op:get`, `op:index` or `op:untag`) on
    /// `target` (an import or a question) and listens for its result with
    /// `op:listen` on the new answer. The result arrives as the returned
    /// question's [`Event::Answer`].
    ///
    /// # Errors
    /// The terminal error, a misuse for a bad target, or
    /// [`Misuse::NotInDialect`] in [`Dialect::TestSuite`] (the suite cannot
    /// decode these operations).
    pub fn project(&mut self, target: &CapRef, kind: ProjectKind) -> InResult<QuestionPosition> {
        self.check_live()?;
        if !self.projections_understood() {
            return Err(Misuse::NotInDialect.into());
        }
        let receiver = self.target_desc(target)?;
        let q = self.new_question();
        let new_answer_pos = q.into();
        let op = match kind {
            ProjectKind::Field(f) => Op::GetOrIndex(OpGetOrIndex {
                receiver,
                projection: Projection::Field(f),
                new_answer_pos,
            }),
            ProjectKind::Index(i) => Op::GetOrIndex(OpGetOrIndex {
                receiver,
                projection: Projection::Index(i),
                new_answer_pos,
            }),
            ProjectKind::Untag(tag) => Op::Untag(OpUntag {
                receiver,
                tag,
                new_answer_pos,
            }),
        };
        self.send(&op);
        let resolver = self
            .tables
            .export(ExportTarget::Resolver(Awaited::Question(q)));
        self.send(&Op::Listen(OpListen {
            to: Desc::Answer(q.into()),
            listener: Desc::ImportObject(resolver.into()),
            wants_partial: false,
        }));
        Ok(q)
    }

    fn new_question(&mut self) -> QuestionPosition {
        let q = QuestionPosition(self.tables.next_question);
        self.tables.next_question = self.tables.next_question.saturating_add(1);
        self.tables
            .questions
            .insert(q, QuestionEntry { settled: false });
        q
    }

    /// Asks the peer to tell us when the imported promise `promise` settles;
    /// the news arrives as [`Event::PromiseSettled`].
    ///
    /// # Errors
    /// The terminal error, or [`Misuse::UnknownImport`].
    pub fn listen(&mut self, promise: ImportPosition, wants_partial: bool) -> InResult<()> {
        self.check_live()?;
        if !self.tables.imports.contains_key(&promise) {
            return Err(Misuse::UnknownImport.into());
        }
        self.tables.listens.insert(promise);
        let resolver = self
            .tables
            .export(ExportTarget::Resolver(Awaited::Import(promise)));
        self.send(&Op::Listen(OpListen {
            to: Desc::Export(promise.into()),
            listener: Desc::ImportObject(resolver.into()),
            wants_partial,
        }));
        Ok(())
    }

    /// Settles a [`Reply`] from an event: fulfils (`Ok`) or breaks (`Err`)
    /// the answer or resolver it stands for.
    ///
    /// # Errors
    /// The terminal error, [`Misuse::StaleReply`] if the answer was freed,
    /// or a misuse for an unsendable reference in `result` (the reply is
    /// then consumed and broken with a generic error).
    pub fn resolve(&mut self, reply: Reply, result: Settlement) -> InResult<()> {
        self.check_live()?;
        let checked = match &result {
            Ok(v) | Err(v) => self.check_value_out(v),
        };
        if let ReplyTo::Answer(a, serial) = reply.0
            && self
                .tables
                .answers
                .get(&a)
                .is_none_or(|e| e.serial != serial)
        {
            return Err(Misuse::StaleReply.into());
        }
        match checked {
            Ok(()) => {
                self.settle(reply, result);
                self.check_budget().map_err(|e| self.fail(e))
            }
            Err(m) => {
                let reason = match m {
                    Misuse::TooDeep(_) => "result nested deeper than the peer accepts",
                    _ => "unsendable result",
                };
                self.settle(reply, Err(Value::error(reason)));
                Err(m.into())
            }
        }
    }

    fn settle_opt(&mut self, reply: Option<Reply>, result: Settlement) {
        if let Some(r) = reply {
            self.settle(r, result);
        }
    }

    /// Settles a reply whose result has been checked sendable.
    fn settle(&mut self, reply: Reply, result: Settlement) {
        let resolvers = match reply.0 {
            ReplyTo::Resolver(r) => vec![r],
            ReplyTo::Answer(a, serial) => match self.tables.answers.get_mut(&a) {
                Some(e) if !e.settled && e.serial == serial => {
                    // What was pipelined on it goes to the local side now;
                    // the settlement stays until the peer releases it.
                    let cost = match &result {
                        Ok(v) | Err(v) => v.footprint(),
                    };
                    self.answer_bytes = self
                        .answer_bytes
                        .saturating_sub(e.cost)
                        .saturating_add(cost);
                    e.cost = cost;
                    e.settled = true;
                    std::mem::take(&mut e.waiting)
                }
                _ => Vec::new(),
            },
        };
        for r in resolvers {
            if !self.tables.imports.contains_key(&r) {
                continue;
            }
            let (method, v) = match &result {
                Ok(v) => ("fulfill", v.clone()),
                Err(v) => ("break", v.clone()),
            };
            let v = self.lower_value(v);
            self.send(&Op::DeliverOnly(OpDeliverOnly {
                to: Desc::Export(r.into()),
                args: vec![Value::sym(method), v],
            }));
            self.release_import(r);
        }
    }

    /// Marks one receipt of import `p` as held by the session itself.
    fn hold_internal(&mut self, p: ImportPosition) {
        if let Some(e) = self.tables.imports.get_mut(&p) {
            e.internal = e.internal.saturating_add(1).min(e.count);
        }
    }

    /// Releases one receipt of import `p` that the session held.
    fn release_import(&mut self, p: ImportPosition) {
        if let Some(e) = self.tables.imports.get_mut(&p) {
            e.internal = e.internal.saturating_sub(1);
        }
        self.report_import(p, 1);
    }

    /// Reports `n` receipts of import `p` to the peer; at zero the import is
    /// forgotten.
    fn report_import(&mut self, p: ImportPosition, n: u64) {
        if let Some(e) = self.tables.imports.get_mut(&p) {
            let n = n.min(e.count);
            e.count -= n;
            e.internal = e.internal.min(e.count);
            if n > 0 {
                let pending = self.pending_gc_exports.entry(p).or_insert(0);
                *pending = pending.saturating_add(n);
            }
            if e.count == 0 {
                self.tables.imports.remove(&p);
                self.tables.listens.remove(&p);
            }
        }
    }

    /// The local side no longer holds import `p`: report the receipts it
    /// held to the peer (`op:gc-exports`, sent with the next
    /// `poll_transmit`). The import is forgotten unless the session itself
    /// still holds it as a resolver to notify.
    ///
    /// # Errors
    /// The terminal error, or [`Misuse::UnknownImport`].
    pub fn drop_import(&mut self, p: ImportPosition) -> InResult<()> {
        self.check_live()?;
        let share = self
            .tables
            .imports
            .get(&p)
            .map(|e| e.count.saturating_sub(e.internal))
            .ok_or(Misuse::UnknownImport)?;
        self.report_import(p, share);
        Ok(())
    }

    /// The local side no longer needs question `q` (its answer arrived or it
    /// lost interest): the peer may free the answer (`op:gc-answers`).
    ///
    /// # Errors
    /// The terminal error, or [`Misuse::UnknownQuestion`].
    pub fn drop_question(&mut self, q: QuestionPosition) -> InResult<()> {
        self.check_live()?;
        self.tables
            .questions
            .remove(&q)
            .ok_or(Misuse::UnknownQuestion)?;
        self.pending_gc_answers.insert(q);
        Ok(())
    }

    /// Ends the session: queues `op:abort` with `reason`, breaks every
    /// pending question, clears the tables.
    ///
    /// # Errors
    /// The terminal error if already terminated.
    pub fn abort(&mut self, reason: &str) -> InResult<()> {
        self.check_live()?;
        self.fail_with(
            SessionError::LocallyAborted(reason.to_owned()),
            reason.to_owned(),
        );
        Ok(())
    }

    /// The peer is ready if open; otherwise [`Misuse::NotOpen`].
    fn open_peer(&self) -> InResult<&PeerVerified> {
        self.check_live()?;
        self.peer().ok_or(Misuse::NotOpen.into())
    }

    /// Enlivens a sturdyref on this session: sends
    /// `['fetch swiss]` to the peer's bootstrap object.
    ///
    /// # Errors
    /// The terminal error.
    pub fn fetch(&mut self, swiss: &Swiss) -> InResult<QuestionPosition> {
        self.check_live()?;
        let to = Desc::Export(Position(0));
        let q = self.new_question();
        let resolver = self
            .tables
            .export(ExportTarget::Resolver(Awaited::Question(q)));
        self.send(&Op::Deliver(OpDeliver {
            to,
            args: vec![Value::sym("fetch"), swiss.to_value()],
            answer_pos: Some(q.into()),
            resolve_me: Some(Desc::ImportObject(resolver.into())),
        }));
        Ok(q)
    }

    // ----------------------------------------------------------------
    // Third-party handoffs (DIGEST section 13)
    // ----------------------------------------------------------------

    /// Gifter, on the gifter–exporter session: deposits import `gift` under
    /// `gift_id` at the exporter's bootstrap and returns the signed
    /// certificate for `receiver_key` (the receiver's key on the
    /// gifter–receiver session). Put the certificate into a message on that
    /// session as `CapRef::Gift`.
    ///
    /// `gift_id` should be 32 fresh random bytes chosen by the caller.
    ///
    /// # Errors
    /// The terminal error, [`Misuse::NotOpen`], [`Misuse::UnknownImport`].
    pub fn give(
        &mut self,
        gift: ImportPosition,
        receiver_key: PublicKey,
        gift_id: Bytes,
    ) -> InResult<SignedGive> {
        let peer = self.open_peer()?;
        let give = HandoffGive {
            receiver_key,
            exporter_location: peer.location.clone(),
            session: peer.session_id,
            gifter_side: self.our_id,
            gift_id: GiftId::Bytes(gift_id.clone()),
        };
        if !self.tables.imports.contains_key(&gift) {
            return Err(Misuse::UnknownImport.into());
        }
        self.send(&Op::DeliverOnly(OpDeliverOnly {
            to: Desc::Export(Position(0)),
            args: vec![
                Value::sym("deposit-gift"),
                Value::Bytes(gift_id),
                Value::Ref(Desc::Export(gift.into())),
            ],
        }));
        Ok(give.sign(&self.keys))
    }

    /// Receiver, on the exporter–receiver session: builds the redemption
    /// certificate for `gift` with the next unused handoff count. Sign it
    /// with [`Session::sign_handoff_receive`] on the gifter–receiver session,
    /// then send it with [`Session::withdraw_gift`] here.
    ///
    /// # Errors
    /// The terminal error, [`Misuse::NotOpen`], or
    /// [`Misuse::Handoff`] if the gift names another exporter.
    pub fn handoff_receive(&mut self, gift: SignedGive) -> InResult<HandoffReceive> {
        let peer = self.open_peer()?;
        if !peer.location.same_peer(&gift.give.exporter_location) {
            return Err(Misuse::Handoff("gift names another exporter").into());
        }
        let receiving_session = peer.session_id;
        let count = self.tables.next_handoff_count;
        self.tables.next_handoff_count = count.saturating_add(1);
        Ok(HandoffReceive {
            receiving_session,
            receiving_side: self.our_id,
            handoff_count: count,
            signed_give: gift,
        })
    }

    /// Receiver, on the gifter–receiver session: signs a redemption
    /// certificate with this session's key.
    ///
    /// # Errors
    /// The terminal error, or [`Misuse::Handoff`] if the gift was not
    /// addressed to this session's key.
    pub fn sign_handoff_receive(&self, receive: HandoffReceive) -> InResult<SignedReceive> {
        self.check_live()?;
        if receive.signed_give.give.receiver_key != *self.keys.public() {
            return Err(Misuse::Handoff("gift not addressed to this session").into());
        }
        Ok(receive.sign(&self.keys))
    }

    /// Receiver, on the exporter–receiver session: sends
    /// `['withdraw-gift signed-receive]` to the exporter's bootstrap. The
    /// gift arrives as the question's [`Event::Answer`].
    ///
    /// # Errors
    /// The terminal error.
    pub fn withdraw_gift(&mut self, receive: SignedReceive) -> InResult<QuestionPosition> {
        self.check_live()?;
        let q = self.new_question();
        let resolver = self
            .tables
            .export(ExportTarget::Resolver(Awaited::Question(q)));
        self.send(&Op::Deliver(OpDeliver {
            to: Desc::Export(Position(0)),
            args: vec![
                Value::sym("withdraw-gift"),
                Value::Ref(Desc::Receive(Box::new(receive))),
            ],
            answer_pos: Some(q.into()),
            resolve_me: Some(Desc::ImportObject(resolver.into())),
        }));
        Ok(q)
    }

    /// Exporter, on the exporter–receiver session: the checks this session
    /// can make on a withdrawal.
    fn verify_withdraw(&mut self, r: SignedReceive) -> Result<VerifiedReceive, Misuse> {
        let peer = self.peer().ok_or(Misuse::NotOpen)?;
        // Cheap checks first: a signature check costs tens of microseconds.
        if r.receive.receiving_session != peer.session_id {
            return Err(Misuse::Handoff("wrong receiving session"));
        }
        if r.receive.receiving_side != peer.id {
            return Err(Misuse::Handoff("wrong receiving side"));
        }
        let count = r.receive.handoff_count;
        if self.tables.used_handoff_counts.contains(&count) {
            return Err(Misuse::Handoff("handoff count replayed"));
        }
        if self.tables.used_handoff_counts.len() >= self.max_entries {
            return Err(Misuse::Handoff("too many handoffs on this session"));
        }
        r.receive
            .signed_give
            .give
            .receiver_key
            .verify_value(&r.receive.to_value(), &r.signature)
            .map_err(|_| Misuse::Handoff("bad receive signature"))?;
        // Only a verified request uses up its count.
        self.tables.used_handoff_counts.insert(count);
        Ok(VerifiedReceive {
            signed_give: r.receive.signed_give,
        })
    }

    /// Exporter, on the gifter–exporter session named by
    /// `request.give().session`: checks the gifter's signature and takes
    /// the gift. Returns `Some(target)` if it was deposited (settle the
    /// withdrawal's reply with it), or `None` if not yet: the withdrawal is
    /// parked under `ticket` and completes with [`Event::GiftReady`] (or
    /// [`Event::GiftWithdrawalBroken`] if this session ends first).
    ///
    /// The target is one of our objects or promises. It may be a
    /// `CapRef::Answer`: the gifter deposited the promise we host for one of
    /// its questions *on this session*; settle the withdrawal with the local
    /// promise behind that answer.
    ///
    /// # Errors
    /// The terminal error, [`Misuse::NotOpen`], or [`Misuse::Handoff`] if a
    /// check fails (break the withdrawal then).
    pub fn redeem_gift(
        &mut self,
        request: VerifiedReceive,
        ticket: GiftTicket,
    ) -> InResult<Option<CapRef>> {
        let peer = self.open_peer()?;
        let signed = &request.signed_give;
        if signed.give.session != peer.session_id {
            return Err(Misuse::Handoff("gift names another session").into());
        }
        if signed.give.gifter_side != peer.id {
            return Err(Misuse::Handoff("wrong gifter side").into());
        }
        peer.key
            .verify_value(&signed.give.to_value(), &signed.signature)
            .map_err(|_| Misuse::Handoff("bad give signature"))?;
        let verified = VerifiedGive {
            gift_id: signed.give.gift_id.clone(),
        };
        self.take_gift(verified, ticket)
    }

    fn take_gift(
        &mut self,
        verified: VerifiedGive,
        ticket: GiftTicket,
    ) -> InResult<Option<CapRef>> {
        if let Some(t) = self.tables.gifts.remove(&verified.gift_id) {
            self.count_hold(&t, false);
            self.release_if_unheld(&t);
            return Ok(Some(t));
        }
        if self.tables.parked.contains_key(&verified.gift_id) {
            return Err(Misuse::Handoff("gift already awaited").into());
        }
        if self.tables.parked.len() >= self.max_entries {
            return Err(SessionError::Limit);
        }
        self.tables.parked.insert(verified.gift_id, ticket);
        Ok(None)
    }
}

/// What a peer has shown of its dialect by what it sent (DIGEST section
/// 15); `None` where it has not shown it yet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Learned {
    /// `Some(true)` once it sent `op:deliver-only`; `Some(false)` once it
    /// sent an `op:deliver` without a resolver, a two-field `op:listen` or a
    /// plural GC label (all of the current text, which has no
    /// `op:deliver-only`), or a learning pola peer's fire-and-forget (an
    /// `op:deliver` with no answer position and a promise as its resolver:
    /// such a peer decodes every form, and is written the current text's).
    pub deliver_only: Option<bool>,
    /// Whether its `op:listen` has the `wants-partial` field.
    pub listen_wants_partial: Option<bool>,
    /// Whether its GC labels are plural; `Some(false)` also once it sent
    /// `op:deliver-only` (no peer that writes it knows the plural labels).
    pub gc_plural: Option<bool>,
}

/// The parts of a message's shape that tell its dialect.
#[derive(Clone, Copy)]
enum Shape {
    DeliverOnly,
    Deliver { resolver: bool, pola: bool },
    Listen { fields: usize },
    Gc { plural: bool },
    Other,
}

impl Shape {
    fn of(v: &Value) -> Shape {
        let Some(r) = v.as_record() else {
            return Shape::Other;
        };
        match r.label.as_symbol() {
            Some("op:deliver-only") => Shape::DeliverOnly,
            Some("op:deliver") => {
                let resolver = r.fields.get(3);
                Shape::Deliver {
                    resolver: resolver != Some(&Value::Bool(false)),
                    pola: r.fields.get(2) == Some(&Value::Bool(false))
                        && resolver
                            .and_then(Value::as_record)
                            .and_then(|d| d.label.as_symbol())
                            == Some("desc:import-promise"),
                }
            }
            Some("op:listen") => Shape::Listen {
                fields: r.fields.len(),
            },
            Some("op:gc-exports" | "op:gc-answers") => Shape::Gc { plural: true },
            Some("op:gc-export" | "op:gc-answer") => Shape::Gc { plural: false },
            _ => Shape::Other,
        }
    }
}

impl Learned {
    /// Notes what a well-formed message shows. The first sign of each form
    /// decides it: a peer that wrote a form decodes it.
    fn learn(&mut self, shape: Shape) {
        let current = |l: &mut Learned| {
            l.deliver_only.get_or_insert(false);
        };
        match shape {
            Shape::DeliverOnly => {
                self.deliver_only.get_or_insert(true);
                self.gc_plural.get_or_insert(false);
            }
            Shape::Deliver {
                resolver: false, ..
            } => current(self),
            Shape::Deliver { pola: true, .. } => {
                current(self);
                self.gc_plural.get_or_insert(true);
                self.listen_wants_partial.get_or_insert(false);
            }
            Shape::Deliver { .. } | Shape::Other => {}
            Shape::Listen { fields } => {
                self.listen_wants_partial.get_or_insert(fields == 3);
                if fields == 2 {
                    current(self);
                }
            }
            Shape::Gc { plural } => {
                self.gc_plural.get_or_insert(plural);
                if plural {
                    current(self);
                }
            }
        }
    }
}

/// How deep the message carrying `v` (as an argument or a settlement) is
/// nested: the record and the argument list around it, and a descriptor
/// record for every reference. Stops counting once past `cap`; iterative,
/// so a deep local value cannot exhaust the stack here.
fn message_depth(v: &Value<CapRef>, cap: usize) -> usize {
    nesting(v, 2, cap, &|r: &CapRef| match r {
        CapRef::Gift(g) => {
            let desc: Value = Desc::Give(g.clone()).to_value();
            nesting(&desc, 0, usize::MAX, &|_| 0)
        }
        _ => 1,
    })
}

/// The depth of `v` placed at depth `at`, where a reference adds
/// `ref_depth(r)`; stops counting once past `cap`.
fn nesting<R>(v: &Value<R>, at: usize, cap: usize, ref_depth: &dyn Fn(&R) -> usize) -> usize {
    let mut deepest = at;
    let mut stack: Vec<(&Value<R>, usize)> = vec![(v, at)];
    while let Some((v, at)) = stack.pop() {
        let here = match v {
            Value::List(_) | Value::Dict(_) | Value::Set(_) | Value::Record(_) => {
                at.saturating_add(1)
            }
            Value::Ref(r) => at.saturating_add(ref_depth(r)),
            _ => at,
        };
        deepest = deepest.max(here);
        if deepest > cap {
            return deepest;
        }
        match v {
            Value::List(l) => stack.extend(l.iter().map(|c| (c, here))),
            Value::Set(l) => stack.extend(l.iter().map(|c| (c, here))),
            Value::Dict(d) => stack.extend(d.iter().flat_map(|(k, c)| [(k, here), (c, here)])),
            Value::Record(r) => {
                stack.push((&r.label, here));
                stack.extend(r.fields.iter().map(|c| (c, here)));
            }
            _ => {}
        }
    }
    deepest
}

impl Drop for Session {
    fn drop(&mut self) {
        self.leave_pool();
    }
}

/// The bytes of the values an event carries (see [`crate::budget`]).
fn event_cost(e: &Event) -> usize {
    match e {
        Event::Deliver { args, .. } => args.iter().map(Value::footprint).sum(),
        Event::Answer { result, .. } | Event::PromiseSettled { result, .. } => match result {
            Ok(v) | Err(v) => v.footprint(),
        },
        _ => 0,
    }
}
