//! Memory budgets: how many bytes of ours a peer may hold.
//!
//! Counts alone do not bound memory: a table capped at 65 536 answers can
//! still hold gigabytes if each answer keeps a big value. So every
//! [`Session`](crate::session::Session) accounts, in bytes, for what the
//! peer makes it hold ([`Session::held`](crate::session::Session::held)):
//!
//! - the settlement of every answer the peer has not released
//!   (`op:gc-answers`), and the arguments of messages the peer pipelined on
//!   an answer that has not settled yet (the driver keeps those until it
//!   does);
//! - decoded values waiting in the event queue (arguments of deliveries,
//!   settlements of our questions and listens) until the local side polls
//!   them;
//! - a fixed cost per import and per answer entry;
//! - bytes of a message the peer has begun and not finished.
//!
//! Values are measured by [`Value::footprint`](pola_syrup::Value::footprint)
//! (their size once decoded), not by their size on the wire, which can be
//! forty times smaller.
//!
//! Two limits apply, both checked after every incoming message and every
//! settlement the local side hands to the session:
//!
//! - the **session budget** ([`SessionConfig::max_held_bytes`](crate::session::SessionConfig::max_held_bytes)):
//!   a session holding more is aborted with [`SessionError::OverBudget`](crate::session::SessionError::OverBudget);
//! - the **shared budget**, a [`MemoryPool`] that all sessions of one
//!   process draw on. When the pool is spent, a session that grows is
//!   aborted if it holds more than its fair share (the pool's limit divided
//!   by the number of live sessions); a session holding less keeps working.
//!   So a crowd of greedy peers is cut down one by one as each grows, and a
//!   modest peer is never the one dropped for others' greed. The price: the
//!   pool can be overdrawn by the fair shares of the modest sessions, so
//!   the process holds at most about twice the pool's limit (plus one
//!   message per session).
//!
//! An aborted session drops its tables at once; the driver drops its own
//! copies (the promises it kept for answers) when it sees the session end.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Bytes charged for each import or answer entry, beside the values it
/// holds (the table node, the local side's proxy or promise).
pub const ENTRY_COST: usize = 256;

/// A byte budget shared by many sessions (usually all of one process).
/// Cheap to clone; clones share the budget.
#[derive(Clone, Debug)]
pub struct MemoryPool(Arc<Pool>);

#[derive(Debug)]
struct Pool {
    limit: usize,
    used: AtomicUsize,
    sessions: AtomicUsize,
}

impl MemoryPool {
    /// A pool of `limit` bytes.
    pub fn new(limit: usize) -> Self {
        MemoryPool(Arc::new(Pool {
            limit,
            used: AtomicUsize::new(0),
            sessions: AtomicUsize::new(0),
        }))
    }

    /// The pool's limit in bytes.
    pub fn limit(&self) -> usize {
        self.0.limit
    }

    /// Bytes the sessions drawing on the pool hold now.
    pub fn used(&self) -> usize {
        self.0.used.load(Ordering::Relaxed)
    }

    /// Live sessions drawing on the pool.
    pub fn sessions(&self) -> usize {
        self.0.sessions.load(Ordering::Relaxed)
    }

    /// A session's fair share: the limit divided among the live sessions.
    pub fn fair_share(&self) -> usize {
        self.0.limit / self.sessions().max(1)
    }

    pub(crate) fn join(&self) {
        self.0.sessions.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn leave(&self) {
        let _ = self
            .0
            .sessions
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_sub(1))
            });
    }

    /// Moves a session's charge from `from` bytes to `to` bytes.
    pub(crate) fn recharge(&self, from: usize, to: usize) {
        if to >= from {
            self.0.used.fetch_add(to - from, Ordering::Relaxed);
        } else {
            let less = from - to;
            let _ = self
                .0
                .used
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                    Some(n.saturating_sub(less))
                });
        }
    }
}

/// Which budget a session exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverBudget {
    /// The session's own budget.
    Session {
        /// Bytes the session held.
        held: usize,
        /// The session budget.
        limit: usize,
    },
    /// The shared pool was spent and this session held more than its share.
    Shared {
        /// Bytes the session held.
        held: usize,
        /// Its fair share of the pool then.
        share: usize,
        /// The pool's limit.
        limit: usize,
    },
}

impl std::fmt::Display for OverBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OverBudget::Session { held, limit } => {
                write!(f, "over memory budget: holds {held} B, limit {limit} B")
            }
            OverBudget::Shared { held, share, limit } => write!(
                f,
                "over shared memory budget of {limit} B: holds {held} B, share {share} B"
            ),
        }
    }
}
