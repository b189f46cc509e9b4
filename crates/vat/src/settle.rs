//! Waiting for a promise from code that is not in a vat (main, tests, a
//! session driver that prefers blocking).

use std::sync::mpsc;
use std::time::Duration;

use crate::refs::{Outcome, Ref, RefInner, Resolver, Val};
use crate::vat::Event;

/// Why a wait ended without a value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WaitError {
    /// The promise broke, with this reason.
    #[error("promise broken: {0:?}")]
    Broken(Val),
    /// The timeout passed first.
    #[error("timed out waiting for a promise")]
    Timeout,
    /// Nobody can settle the promise any more (its vat dropped the request).
    #[error("promise can no longer settle")]
    Dropped,
    /// Called on a vat's own thread: blocking there would stop the vat
    /// (use `Turn::when` inside vats).
    #[error("cannot block inside a vat; use when")]
    InsideVat,
}

impl WaitError {
    /// The broken reason, if the promise broke.
    pub fn reason(&self) -> Option<&Val> {
        match self {
            WaitError::Broken(v) => Some(v),
            _ => None,
        }
    }
}

/// A pending settlement being waited for from outside a vat.
#[derive(Debug)]
pub struct Settled {
    rx: mpsc::Receiver<Outcome>,
}

impl Settled {
    /// Blocks until the promise settles or `timeout` passes.
    ///
    /// # Errors
    /// [`WaitError::Broken`], [`WaitError::Timeout`],
    /// [`WaitError::Dropped`], or [`WaitError::InsideVat`] on a vat's
    /// thread.
    pub fn wait(self, timeout: Duration) -> Result<Val, WaitError> {
        if crate::vat::on_vat_thread() {
            return Err(WaitError::InsideVat);
        }
        match self.rx.recv_timeout(timeout) {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(WaitError::Broken(e)),
            Err(mpsc::RecvTimeoutError::Timeout) => Err(WaitError::Timeout),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(WaitError::Dropped),
        }
    }

    /// The outcome if it is already there, without blocking.
    pub fn try_get(&self) -> Option<Outcome> {
        self.rx.try_recv().ok()
    }
}

/// Starts waiting for `target` to settle: a promise is listened to (through
/// its vat or its [`crate::Remote`]); any other ref settles at once to
/// itself, a broken ref to its reason.
pub fn settled(target: &Ref) -> Settled {
    let (tx, rx) = mpsc::sync_channel(1);
    let resolver = Resolver::from_fn(move |o| {
        let _ = tx.send(o);
    });
    listen_external(target, resolver);
    Settled { rx }
}

/// Asks for `resolver` to be settled with `target`'s eventual value, from
/// outside a vat.
pub fn listen_external(target: &Ref, resolver: Resolver) {
    match &target.0 {
        RefInner::Promise(slot) => slot.vat.post(Event::Listen {
            slot: slot.clone(),
            resolver,
            hops: 0,
        }),
        RefInner::Remote(r) if r.target.is_promise() => r.target.listen(resolver),
        RefInner::Broken(e) => resolver.break_now((**e).clone()),
        RefInner::Object(_) | RefInner::Remote(_) => resolver.resolve_now(Val::Ref(target.clone())),
    }
}
