//! Revocation gates: the sandbox's revocable forwarders.
//!
//! A grant handed to a caplet with a [`Gate`] goes through the gate on every
//! use: a send, a pass in a message, a `when`. [`Revoker::revoke`] shuts the
//! gate for every holder at once; the very next use fails with
//! [`Code::Revoked`](crate::abi::Code::Revoked). When the caplet passes a
//! gated reference on to someone else, the host asks its
//! [`Outside::attenuate`](crate::Outside::attenuate) for a forwarder bound
//! to the same gate, so the grant never escapes its revocation.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The checking side of a revocation gate: open until its [`Revoker`] fires.
#[derive(Clone, Debug)]
pub struct Gate(Arc<AtomicBool>);

/// The revoking side of a [`Gate`]. Cloning it gives another revoker of the
/// same gate.
#[derive(Clone, Debug)]
pub struct Revoker(Arc<AtomicBool>);

/// Gates are equal when they are the same gate (identity, not state), and
/// ordered by identity, so a stored value can tell grants apart.
impl PartialEq for Gate {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}
impl Eq for Gate {}
impl PartialOrd for Gate {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Gate {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        Arc::as_ptr(&self.0).cmp(&Arc::as_ptr(&other.0))
    }
}

impl Gate {
    /// A new open gate and its revoker.
    pub fn new() -> (Gate, Revoker) {
        let flag = Arc::new(AtomicBool::new(true));
        (Gate(flag.clone()), Revoker(flag))
    }

    /// Whether uses may still pass.
    pub fn is_open(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

impl Revoker {
    /// Shuts the gate, for good, for every holder.
    pub fn revoke(&self) {
        self.0.store(false, Ordering::Release);
    }

    /// Whether the gate has been shut.
    pub fn is_revoked(&self) -> bool {
        !self.0.load(Ordering::Acquire)
    }
}
