//! A caplet object's budget across its turns, and how it is stopped.
//!
//! Fuel bounds one entry; this bounds a caplet object over time, whatever
//! it does between entries (re-entering itself through `when`, sending to
//! itself, queuing sends on a promise that never settles):
//!
//! - **CPU**: a token bucket of fuel ([`crate::Config::fuel_burst`] when
//!   full, refilled at [`crate::Config::fuel_per_second`] of wall time).
//!   Every entry takes what it spent plus [`crate::Config::turn_fuel`]; an
//!   entry is given at most what the bucket holds, and one that runs out
//!   of fuel because the bucket was low stops the object.
//! - **Host memory**: the decoded size of the messages the object has sent
//!   and that are still pending ([`crate::Config::pending_bytes`]). A send
//!   that would go over stops the object.
//!
//! A stopped object answers every later message, and every notification,
//! with a broken promise whose reason says why
//! ([`StopReason::public_reason`]); its instance is dropped and the
//! promises it was holding are broken with the same reason; its pending
//! `when`s do nothing when they fire. Nothing else in its vat is touched.
//! The host stops one at will with a [`Stopper`].
//!
//! Invariants (upheld here and in [`super::run`]): the stop flag is only
//! ever set, never cleared; the pending count is the sum of the live
//! [`Charge`]s (each charge gives back exactly what it took, when the
//! effect, message or callback holding it is dropped).

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use crate::host::Config;

/// Why a caplet object was stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StopReason {
    /// It spent fuel faster than its budget across turns allows.
    Cpu,
    /// Its pending sends held more host memory than allowed.
    Memory,
    /// Its host stopped it ([`Stopper::stop`]).
    Host,
}

impl StopReason {
    /// The fixed reason every later message to the object is broken with.
    pub fn public_reason(self) -> &'static str {
        match self {
            StopReason::Cpu => "this caplet was stopped: it used more than its CPU budget",
            StopReason::Memory => "this caplet was stopped: it held more than its memory budget",
            StopReason::Host => "this caplet was stopped by its host",
        }
    }

    fn code(self) -> u8 {
        match self {
            StopReason::Cpu => 1,
            StopReason::Memory => 2,
            StopReason::Host => 3,
        }
    }

    fn from_code(n: u8) -> Option<StopReason> {
        Some(match n {
            1 => StopReason::Cpu,
            2 => StopReason::Memory,
            3 => StopReason::Host,
            _ => return None,
        })
    }
}

/// What is told once that a caplet object stopped ([`Stopper::on_stop`]).
type Hook = Box<dyn FnOnce(StopReason) + Send>;

/// What a caplet object's behaviours, its instance's outside and its
/// stoppers share: the stop flag and the pending bytes.
pub(crate) struct Control {
    stopped: AtomicU8,
    pending: AtomicUsize,
    pending_limit: AtomicUsize,
    on_stop: Mutex<Option<Hook>>,
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Control")
            .field("stopped", &self.stopped())
            .field("pending", &self.pending())
            .finish_non_exhaustive()
    }
}

impl Default for Control {
    fn default() -> Self {
        Control {
            stopped: AtomicU8::new(0),
            pending: AtomicUsize::new(0),
            pending_limit: AtomicUsize::new(usize::MAX),
            on_stop: Mutex::new(None),
        }
    }
}

impl Control {
    /// Stops the object; the first reason given stays, and the hook (if
    /// any) is told it once.
    pub(crate) fn stop(&self, why: StopReason) {
        let first = self
            .stopped
            .compare_exchange(0, why.code(), Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if first {
            let hook = self
                .on_stop
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take();
            if let Some(hook) = hook {
                hook(why);
            }
        }
    }

    /// Sets the hook told when the object stops (replacing an earlier
    /// one); told at once if it already has.
    fn on_stop(&self, hook: Hook) {
        let mut slot = self.on_stop.lock().unwrap_or_else(|p| p.into_inner());
        // Checked under the slot's lock: a stop either sees the hook or
        // happened before this check.
        match self.stopped() {
            Some(why) => {
                drop(slot);
                hook(why);
            }
            None => *slot = Some(hook),
        }
    }

    pub(crate) fn stopped(&self) -> Option<StopReason> {
        StopReason::from_code(self.stopped.load(Ordering::Acquire))
    }

    pub(crate) fn set_pending_limit(&self, bytes: usize) {
        self.pending_limit.store(bytes, Ordering::Release);
    }

    pub(crate) fn pending(&self) -> usize {
        self.pending.load(Ordering::Acquire)
    }

    /// Takes `bytes` of the pending budget, or stops the object (memory)
    /// and returns `None` if they do not fit.
    pub(crate) fn reserve(self: &Arc<Self>, bytes: usize) -> Option<Charge> {
        let limit = self.pending_limit.load(Ordering::Acquire);
        let fits = self
            .pending
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                n.checked_add(bytes).filter(|total| *total <= limit)
            })
            .is_ok();
        if fits {
            Some(Charge(self.clone(), bytes))
        } else {
            self.stop(StopReason::Memory);
            None
        }
    }
}

/// Bytes of a caplet object's pending budget, held by the effect, message
/// or callback they stand for; given back when dropped.
#[derive(Debug)]
pub(crate) struct Charge(Arc<Control>, usize);

impl Drop for Charge {
    fn drop(&mut self) {
        self.0.pending.fetch_sub(self.1, Ordering::AcqRel);
    }
}

/// The CPU token bucket of one caplet object.
#[derive(Debug)]
pub(crate) struct Budget {
    tokens: u64,
    last: Instant,
    rate: u64,
    burst: u64,
    turn: u64,
    per_call: u64,
}

impl Budget {
    /// A full bucket sized by `config`.
    pub(crate) fn new(config: &Config) -> Budget {
        Budget {
            tokens: config.fuel_burst,
            last: Instant::now(),
            rate: config.fuel_per_second,
            burst: config.fuel_burst,
            turn: config.turn_fuel,
            per_call: config.fuel_per_call,
        }
    }

    /// Refills for the time since the last refill and returns the fuel the
    /// next entry may have (`None`: not even the turn's own charge is
    /// left), and whether that is less than a full entry's budget.
    pub(crate) fn allowance(&mut self, now: Instant) -> Option<(u64, bool)> {
        let elapsed = now.saturating_duration_since(self.last);
        let add = u128::from(self.rate).saturating_mul(elapsed.as_nanos()) / 1_000_000_000;
        let add = u64::try_from(add).unwrap_or(u64::MAX);
        // Keep the remainder of a partly earned token for next time: only
        // move the clock by the time the whole tokens took.
        if add > 0 || self.rate == 0 {
            self.last = now;
        }
        self.tokens = self.tokens.saturating_add(add).min(self.burst);
        let left = self.tokens.checked_sub(self.turn)?;
        if left == 0 {
            return None;
        }
        Some((left.min(self.per_call), left < self.per_call))
    }

    /// Takes what an entry spent, plus the turn's own charge.
    pub(crate) fn spend(&mut self, fuel: u64) {
        self.tokens = self.tokens.saturating_sub(fuel.saturating_add(self.turn));
    }

    /// The fuel in the bucket now (without refilling).
    #[cfg(test)]
    pub(crate) fn tokens(&self) -> u64 {
        self.tokens
    }
}

/// The host's handle to stop one caplet object at once (see
/// [`super::CapletObject::stopper`]). Cloneable, usable from any thread,
/// inside or outside a turn.
#[derive(Clone)]
pub struct Stopper {
    control: Arc<Control>,
    state: Weak<Mutex<super::State>>,
}

impl std::fmt::Debug for Stopper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stopper")
            .field("stopped", &self.control.stopped())
            .finish_non_exhaustive()
    }
}

impl Stopper {
    pub(super) fn new(control: Arc<Control>, state: Weak<Mutex<super::State>>) -> Stopper {
        Stopper { control, state }
    }

    /// Stops the caplet object, for good: every later message and
    /// notification breaks with [`StopReason::Host`]'s reason. An entry
    /// running right now (on the vat's thread) fails at its next host call
    /// (or at its fuel or wall-clock limit) and commits nothing. If no
    /// entry is running, the instance is dropped now and the promises it
    /// held are broken; otherwise the running entry does that as it ends.
    /// Idempotent; a caplet already stopped keeps its first reason.
    pub fn stop(&self) {
        self.control.stop(StopReason::Host);
        let Some(state) = self.state.upgrade() else {
            return;
        };
        // Not `lock`: the vat's thread may be inside an entry of this very
        // object; it retires the instance itself when the entry ends.
        let Ok(mut st) = state.try_lock() else {
            return;
        };
        let why = self.control.stopped().unwrap_or(StopReason::Host);
        for r in super::retire_stopped(&mut st) {
            // Outside any turn: broken as soon as the vat gets to it.
            r.break_now(pola_vat::error(why.public_reason()));
        }
    }

    /// Why the caplet object was stopped, if it was.
    pub fn stopped(&self) -> Option<StopReason> {
        self.control.stopped()
    }

    /// Has `hook` told, once, when the caplet object stops (by its budget
    /// or its host), or at once if it already has; replaces the hook set
    /// before. It runs on the thread that stops the object, often the
    /// vat's, inside a turn and under the object's lock: it must not block
    /// or wait for the vat (wake something instead). An object restarted
    /// with [`super::RESTART`] has a new stopper.
    pub fn on_stop(&self, hook: impl FnOnce(StopReason) + Send + 'static) {
        self.control.on_stop(Box::new(hook));
    }

    /// The decoded bytes of the object's sends still pending (counted
    /// against [`crate::Config::pending_bytes`]).
    pub fn pending_bytes(&self) -> usize {
        self.control.pending()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn config(rate: u64, burst: u64) -> Config {
        Config {
            fuel_per_second: rate,
            fuel_burst: burst,
            turn_fuel: 10,
            fuel_per_call: 1000,
            ..Config::default()
        }
    }

    #[test]
    fn bucket_refills_at_its_rate_up_to_its_burst() {
        let mut b = Budget::new(&config(1000, 5000));
        let t0 = b.last;
        assert_eq!(b.allowance(t0), Some((1000, false)));
        b.spend(4985); // 4995 taken: 5 left, below a turn's charge
        assert_eq!(b.allowance(t0), None);
        // Half a second at 1000/s: 505, of which the turn takes 10.
        assert_eq!(
            b.allowance(t0 + Duration::from_millis(500)),
            Some((495, true))
        );
        // An hour later the bucket is full, not more.
        assert_eq!(
            b.allowance(t0 + Duration::from_secs(3600)),
            Some((1000, false))
        );
        assert_eq!(b.tokens(), 5000);
    }

    #[test]
    fn pending_bytes_are_given_back_by_their_charges() {
        let c = Arc::new(Control::default());
        c.set_pending_limit(100);
        let a = c.reserve(60).map(Some);
        assert!(a.is_some());
        assert_eq!(c.pending(), 60);
        assert!(c.reserve(41).is_none());
        assert_eq!(c.stopped(), Some(StopReason::Memory));
        // The first reason stays.
        c.stop(StopReason::Host);
        assert_eq!(c.stopped(), Some(StopReason::Memory));
        drop(a);
        assert_eq!(c.pending(), 0);
    }
}
