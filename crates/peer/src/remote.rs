//! Far references: the vat's [`Remote`] seam, implemented for things that
//! live across a CapTP session.
//!
//! - [`ImportRemote`]: an object or promise the peer exported to us (an
//!   import position on one session). Dropping the last vat reference to
//!   it tells the event loop, which reports the import to the peer
//!   (`op:gc-export`).
//! - [`QuestionRemote`]: the answer to a question we ask (an answer
//!   position we choose on the peer), made before the question goes out
//!   (on the sender's thread, or for a sturdyref before its session
//!   exists). Messages sent to it before the question is asked are parked;
//!   once asked they are pipelined (`desc:answer`); once answered they go
//!   to the answer itself.
//!
//! Both only post commands to the peer's event loop; they never touch a
//! session themselves (sessions live on the loop's task). Invariants
//! (upheld by the loop): an import position maps to at most one live
//! `ImportRemote` per session; a drop notice carries the generation it was
//! made for, so a stale notice never releases a newer import; messages to
//! one answer leave in the order they were sent (parked ones first).

use std::sync::{Arc, Mutex, OnceLock, Weak};

use pola_captp::locator::SturdyRef;
use pola_captp::{ImportPosition, QuestionPosition};
use pola_vat::{Message, Outcome, Remote, Resolver};
use tokio::sync::{mpsc, oneshot};

use crate::conn::ConnId;
use crate::stats::PeerStats;

/// Names a settlement the peer's loop waits for from a vat (given with
/// [`Cmd::Settled`]); allocated by the loop, never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct WaitToken(pub(crate) u64);

/// Which [`ImportRemote`] of an import position a drop notice is about:
/// a position dropped and received again gets a new generation, so a late
/// notice for the old one is told apart. Allocated by the loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ImportGeneration(pub(crate) u64);

/// Commands from vat threads (through far references and resolvers) to the
/// peer's event loop.
pub(crate) enum Cmd {
    /// Deliver a message across a session. `answer` (if an answer is
    /// wanted) is the far promise the sender's vat already holds for it.
    Deliver {
        target: OutTarget,
        message: Message,
        answer: Option<Arc<QuestionRemote>>,
    },
    /// Listen to an imported promise.
    Listen {
        import: Arc<ImportRemote>,
        resolver: Resolver,
    },
    /// The last vat reference to an import went away.
    DropImport {
        conn: ConnId,
        position: ImportPosition,
        generation: ImportGeneration,
    },
    /// An answer settled while messages were parked on it: send them on
    /// (in order, before anything sent to it later).
    DrainParked(Arc<QuestionRemote>),
    /// A local settlement the peer is waiting for (an answer, a listen, a
    /// fetch result computed in a vat).
    Settled {
        conn: ConnId,
        token: WaitToken,
        outcome: Outcome,
    },
    /// Deliver a message through a sturdy reference: to the object its
    /// sturdyref names, fetched again first if it never was or its session
    /// has ended.
    SturdyDeliver {
        remote: Arc<SturdyRemote>,
        message: Message,
        answer: Option<Arc<QuestionRemote>>,
    },
    /// Anything else the public API asks for.
    Api(ApiCmd),
}

/// Requests from the public API to the loop.
pub(crate) enum ApiCmd {
    Enliven {
        sturdy: SturdyRef,
        answer: Arc<QuestionRemote>,
    },
    Stats {
        reply: oneshot::Sender<PeerStats>,
    },
    Shutdown {
        done: oneshot::Sender<()>,
    },
}

/// Where an outgoing message goes.
pub(crate) enum OutTarget {
    Import(Arc<ImportRemote>),
    Question(Arc<QuestionRemote>),
}

/// Commands a vat thread queued for the session driver, processed on that
/// same thread by the peer's driver on the vat (no wake-up of the event
/// loop).
pub(crate) struct LocalCmds {
    /// The vat thread whose commands go here.
    pub(crate) thread: Option<std::thread::ThreadId>,
    pub(crate) queue: Mutex<LocalQueue>,
}

#[derive(Default)]
pub(crate) struct LocalQueue {
    pub(crate) cmds: Vec<Cmd>,
    /// Set when the event loop has ended: nothing is processed any more.
    pub(crate) closed: bool,
}

impl LocalCmds {
    /// Takes everything queued.
    pub(crate) fn take(&self) -> Vec<Cmd> {
        std::mem::take(&mut self.queue.lock().unwrap_or_else(|p| p.into_inner()).cmds)
    }

    /// Whether nothing is queued.
    pub(crate) fn is_empty(&self) -> bool {
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .cmds
            .is_empty()
    }

    /// Refuses further commands and gives back the queued ones.
    pub(crate) fn close(&self) -> Vec<Cmd> {
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        q.closed = true;
        std::mem::take(&mut q.cmds)
    }
}

/// Sends commands to the peer: from the vat's own thread into the queue the
/// peer's driver drains (same thread, in order), from anywhere else (and API
/// commands always) through the event loop's channel.
#[derive(Clone)]
pub(crate) struct CmdTx {
    pub(crate) chan: mpsc::UnboundedSender<Cmd>,
    pub(crate) local: Arc<LocalCmds>,
}

impl std::fmt::Debug for CmdTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CmdTx")
    }
}

impl CmdTx {
    /// Queues `cmd`; gives it back if the peer has stopped (the channel's
    /// own signature, so callers treat both paths alike).
    #[allow(clippy::result_large_err)]
    pub(crate) fn send(&self, cmd: Cmd) -> Result<(), mpsc::error::SendError<Cmd>> {
        if !matches!(cmd, Cmd::Api(_))
            && self
                .local
                .thread
                .is_some_and(|t| t == std::thread::current().id())
        {
            let mut q = self.local.queue.lock().unwrap_or_else(|p| p.into_inner());
            if q.closed {
                return Err(mpsc::error::SendError(cmd));
            }
            q.cmds.push(cmd);
            return Ok(());
        }
        self.chan.send(cmd)
    }
}

/// Something the peer exported to us on one session.
pub struct ImportRemote {
    pub(crate) tx: CmdTx,
    pub(crate) conn: ConnId,
    pub(crate) position: ImportPosition,
    pub(crate) promise: bool,
    pub(crate) generation: ImportGeneration,
    pub(crate) me: Weak<ImportRemote>,
}

impl ImportRemote {
    pub(crate) fn new(
        tx: CmdTx,
        conn: ConnId,
        position: ImportPosition,
        promise: bool,
        generation: ImportGeneration,
    ) -> Arc<Self> {
        Arc::new_cyclic(|me| ImportRemote {
            tx,
            conn,
            position,
            promise,
            generation,
            me: me.clone(),
        })
    }
}

/// Posts a delivery to the loop. If an answer is wanted, the answer's far
/// promise is made here, on the sender's thread, and the resolver settled
/// with it at once: messages the vat then sends to the answer go straight
/// to the loop (pipelined) without waiting for the loop to hand the answer
/// back. The delivery is posted first, so the loop always sees it before
/// any message aimed at its answer.
fn post_deliver(tx: &CmdTx, target: OutTarget, message: Message, resolver: Option<Resolver>) {
    post_with_answer(tx, resolver, |answer| Cmd::Deliver {
        target,
        message,
        answer,
    });
}

/// Posts the delivery `cmd` makes of the answer's far promise (if an
/// answer is wanted), and settles `resolver` with that promise at once.
fn post_with_answer(
    tx: &CmdTx,
    resolver: Option<Resolver>,
    cmd: impl FnOnce(Option<Arc<QuestionRemote>>) -> Cmd,
) {
    let answer = resolver
        .as_ref()
        .map(|_| QuestionRemote::pending(tx.clone()));
    let sent = tx.send(cmd(answer.clone()));
    if let (Some(r), Some(a)) = (resolver, answer) {
        if sent.is_err() {
            a.settle(Err(pola_vat::error("peer stopped")));
        }
        r.resolve_now(pola_vat::Val::Ref(pola_vat::Ref::remote(a)));
    }
}

impl Remote for ImportRemote {
    fn deliver(&self, message: Message, resolver: Option<Resolver>) {
        let Some(me) = self.me.upgrade() else {
            return;
        };
        post_deliver(&self.tx, OutTarget::Import(me), message, resolver);
    }

    fn is_promise(&self) -> bool {
        self.promise
    }

    fn listen(&self, resolver: Resolver) {
        let Some(me) = self.me.upgrade() else {
            return;
        };
        if let Err(mpsc::error::SendError(Cmd::Listen { resolver, .. })) =
            self.tx.send(Cmd::Listen {
                import: me,
                resolver,
            })
        {
            resolver.break_now(pola_vat::error("peer stopped"));
        }
    }
}

impl Drop for ImportRemote {
    fn drop(&mut self) {
        let _ = self.tx.send(Cmd::DropImport {
            conn: self.conn,
            position: self.position,
            generation: self.generation,
        });
    }
}

/// The state of a question's answer.
#[derive(Default)]
pub(crate) struct AnswerState {
    pub(crate) outcome: Option<Outcome>,
    pub(crate) listeners: Vec<Resolver>,
    /// Messages for an answer that has no question position (its delivery
    /// was routed locally or failed), waiting for the outcome.
    pub(crate) parked: Vec<(Message, Option<Arc<QuestionRemote>>)>,
}

/// The answer to a question we ask on some session (a remote promise).
///
/// Made before the question is asked (on the sender's thread, or for a
/// sturdyref before its session even exists); the loop records the session
/// and question position when it asks on the wire.
pub struct QuestionRemote {
    pub(crate) tx: CmdTx,
    pub(crate) conn: OnceLock<ConnId>,
    pub(crate) question: OnceLock<QuestionPosition>,
    pub(crate) state: Mutex<AnswerState>,
    pub(crate) me: Weak<QuestionRemote>,
}

impl QuestionRemote {
    /// An answer whose question the loop asks later.
    pub(crate) fn pending(tx: CmdTx) -> Arc<Self> {
        Arc::new_cyclic(|me| QuestionRemote {
            tx,
            conn: OnceLock::new(),
            question: OnceLock::new(),
            state: Mutex::new(AnswerState::default()),
            me: me.clone(),
        })
    }

    /// Records that the question was asked on `conn` at position `q`.
    pub(crate) fn asked(&self, conn: ConnId, q: QuestionPosition) {
        let _ = self.conn.set(conn);
        let _ = self.question.set(q);
    }

    /// The session the question was asked on.
    pub(crate) fn conn(&self) -> Option<ConnId> {
        self.conn.get().copied()
    }

    /// The question position, once the question was asked on the wire.
    pub(crate) fn position(&self) -> Option<QuestionPosition> {
        self.question.get().copied()
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, AnswerState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records the answer, wakes every listener and asks the loop to send
    /// on any parked messages (first settlement wins).
    pub(crate) fn settle(&self, outcome: Outcome) {
        let (listeners, parked) = {
            let mut s = self.lock();
            if s.outcome.is_some() {
                return;
            }
            s.outcome = Some(outcome.clone());
            (std::mem::take(&mut s.listeners), !s.parked.is_empty())
        };
        for l in listeners {
            notify(l, &outcome);
        }
        if parked && let Some(me) = self.me.upgrade() {
            let _ = self.tx.send(Cmd::DrainParked(me));
        }
    }

    /// Takes the parked messages, oldest first.
    pub(crate) fn take_parked(&self) -> Vec<(Message, Option<Arc<QuestionRemote>>)> {
        std::mem::take(&mut self.lock().parked)
    }
}

impl Remote for QuestionRemote {
    fn deliver(&self, message: Message, resolver: Option<Resolver>) {
        let Some(me) = self.me.upgrade() else {
            return;
        };
        post_deliver(&self.tx, OutTarget::Question(me), message, resolver);
    }

    fn is_promise(&self) -> bool {
        true
    }

    fn listen(&self, resolver: Resolver) {
        let settled = {
            let mut s = self.lock();
            match &s.outcome {
                Some(o) => Some(o.clone()),
                None => {
                    s.listeners.push(resolver.clone());
                    None
                }
            }
        };
        if let Some(o) = settled {
            notify(resolver, &o);
        }
    }
}

/// A far reference made from a sturdyref ([`crate::PeerHandle::sturdy`]):
/// it fetches the object on first use, and again whenever the session it
/// was fetched on has ended or the fetch failed, so it outlives
/// connections and restarts of either side. Its recipe (what a persistent
/// vat stores for it) is the sturdyref's URI.
///
/// A message sent while a session is lost breaks (its answer says so); the
/// next one fetches again. It is a settled far object for the vat (not a
/// promise): waiting on it gives the reference itself.
pub struct SturdyRemote {
    pub(crate) tx: CmdTx,
    pub(crate) sturdy: pola_captp::locator::SturdyRef,
    /// The last fetch of the object (an answer that settles to it).
    pub(crate) current: Mutex<Option<Arc<QuestionRemote>>>,
    pub(crate) me: Weak<SturdyRemote>,
}

impl SturdyRemote {
    pub(crate) fn new(tx: CmdTx, sturdy: pola_captp::locator::SturdyRef) -> Arc<Self> {
        Arc::new_cyclic(|me| SturdyRemote {
            tx,
            sturdy,
            current: Mutex::new(None),
            me: me.clone(),
        })
    }

    /// The current fetch, unless it failed or its session is gone
    /// (`live` says whether a session is).
    pub(crate) fn current(&self, live: impl Fn(ConnId) -> bool) -> Option<Arc<QuestionRemote>> {
        let current = self
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let q = current.as_ref()?;
        let failed = matches!(q.lock().outcome, Some(Err(_)));
        let gone = q.conn().is_some_and(|c| !live(c));
        (!failed && !gone).then(|| q.clone())
    }

    /// Records a new fetch.
    pub(crate) fn set_current(&self, q: Arc<QuestionRemote>) {
        *self
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(q);
    }
}

impl Remote for SturdyRemote {
    fn deliver(&self, message: Message, resolver: Option<Resolver>) {
        let Some(me) = self.me.upgrade() else {
            return;
        };
        post_with_answer(&self.tx, resolver, |answer| Cmd::SturdyDeliver {
            remote: me,
            message,
            answer,
        });
    }

    fn recipe(&self) -> Option<pola_vat::Val> {
        Some(pola_vat::Val::str(self.sturdy.to_uri()))
    }
}

/// Tells a listener the answer's outcome. An answer settled to another
/// promise (a message routed on through the vat) is forwarded to it: the
/// listener hears that promise's own outcome, not the promise.
fn notify(listener: Resolver, outcome: &Outcome) {
    match outcome {
        Ok(pola_vat::Val::Ref(r)) if r.is_promise() => pola_vat::listen_external(r, listener),
        o => listener.settle_now(o.clone()),
    }
}
