//! Far references: the vat's [`Remote`] seam, implemented for things that
//! live across a CapTP session.
//!
//! - [`ImportRemote`]: an object or promise the peer exported to us (an
//!   import position on one session). Dropping the last vat reference to
//!   it tells the event loop, which reports the import to the peer
//!   (`op:gc-export`).
//! - [`QuestionRemote`]: the answer to a question we asked (an answer
//!   position we chose on the peer). Messages sent to it before the answer
//!   arrives are pipelined (`desc:answer`); after, they go to the answer.
//!
//! Both only post commands to the peer's event loop; they never touch a
//! session themselves (sessions live on the loop's task). Invariant (upheld
//! by the loop): an import position maps to at most one live
//! `ImportRemote` per session; a drop notice carries the generation it was
//! made for, so a stale notice never releases a newer import.

use std::sync::{Arc, Mutex, Weak};

use pola_captp::{ImportPosition, QuestionPosition};
use pola_vat::{Message, Outcome, Remote, Resolver};
use tokio::sync::mpsc;

use crate::conn::ConnId;

/// Commands from vat threads (through far references and resolvers) to the
/// peer's event loop.
pub(crate) enum Cmd {
    /// Deliver a message across a session.
    Deliver {
        target: OutTarget,
        message: Message,
        resolver: Option<Resolver>,
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
        generation: u64,
    },
    /// A local settlement the peer is waiting for (an answer, a listen, a
    /// fetch result computed in a vat).
    Settled {
        conn: ConnId,
        token: u64,
        outcome: Outcome,
    },
    /// Anything else the public API asks for.
    Api(crate::peer::ApiCmd),
}

/// Where an outgoing message goes.
pub(crate) enum OutTarget {
    Import(Arc<ImportRemote>),
    Question(Arc<QuestionRemote>),
}

pub(crate) type CmdTx = mpsc::UnboundedSender<Cmd>;

/// Something the peer exported to us on one session.
pub struct ImportRemote {
    pub(crate) tx: CmdTx,
    pub(crate) conn: ConnId,
    pub(crate) position: ImportPosition,
    pub(crate) promise: bool,
    pub(crate) generation: u64,
    pub(crate) me: Weak<ImportRemote>,
}

impl ImportRemote {
    pub(crate) fn new(
        tx: CmdTx,
        conn: ConnId,
        position: ImportPosition,
        promise: bool,
        generation: u64,
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

impl Remote for ImportRemote {
    fn deliver(&self, message: Message, resolver: Option<Resolver>) {
        let Some(me) = self.me.upgrade() else {
            return;
        };
        if let Err(mpsc::error::SendError(Cmd::Deliver {
            resolver: Some(r), ..
        })) = self.tx.send(Cmd::Deliver {
            target: OutTarget::Import(me),
            message,
            resolver,
        }) {
            r.break_now(pola_vat::error("peer stopped"));
        }
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
}

/// The answer to a question we asked on one session (a remote promise).
pub struct QuestionRemote {
    pub(crate) tx: CmdTx,
    pub(crate) conn: ConnId,
    pub(crate) question: QuestionPosition,
    pub(crate) state: Mutex<AnswerState>,
    pub(crate) me: Weak<QuestionRemote>,
}

impl QuestionRemote {
    pub(crate) fn new(tx: CmdTx, conn: ConnId, question: QuestionPosition) -> Arc<Self> {
        Arc::new_cyclic(|me| QuestionRemote {
            tx,
            conn,
            question,
            state: Mutex::new(AnswerState::default()),
            me: me.clone(),
        })
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, AnswerState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records the answer and wakes every listener (first settlement wins).
    pub(crate) fn settle(&self, outcome: Outcome) {
        let listeners = {
            let mut s = self.lock();
            if s.outcome.is_some() {
                return;
            }
            s.outcome = Some(outcome.clone());
            std::mem::take(&mut s.listeners)
        };
        for l in listeners {
            l.settle_now(outcome.clone());
        }
    }
}

impl Remote for QuestionRemote {
    fn deliver(&self, message: Message, resolver: Option<Resolver>) {
        let Some(me) = self.me.upgrade() else {
            return;
        };
        if let Err(mpsc::error::SendError(Cmd::Deliver {
            resolver: Some(r), ..
        })) = self.tx.send(Cmd::Deliver {
            target: OutTarget::Question(me),
            message,
            resolver,
        }) {
            r.break_now(pola_vat::error("peer stopped"));
        }
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
            resolver.settle_now(o);
        }
    }
}
