//! The peer's driver on its vat's thread, and reading connections there.
//!
//! A peer attaches one [`Driver`] to its vat (see `pola-vat`). Its
//! `on_idle` runs the session work the vat's thread queued (sends through
//! far references, answers the vat settled: [`VatSide`]). For the one peer
//! a vat sleeps in (the first on that vat), it also holds a reactor: the
//! vat sleeps in `epoll` (through mio) on the sockets of its sessions
//! instead of parking its thread. When a message arrives, the vat's thread
//! itself reads it, hands it to the peer's [`Ingress`] (decoded, turned
//! into vat deliveries), and the turn runs right after. A
//! round trip then wakes one thread on each side, as a raw TCP ping-pong
//! does, instead of a runtime task first and the vat second. Writes already
//! leave from the thread that makes them ([`crate::conn::ConnHandle`]).
//!
//! Only readers that can be read without the runtime take this path
//! ([`MessageReader::direct`]: the TCP-based netlayers, tcp-testing-only
//! and noise); the others (in-memory), and every connection of a second
//! peer on the same vat, keep their runtime reader task, which hands
//! bytes to the same [`Ingress`]. Dials, accepts, handshakes, timers and
//! the drain of a closing connection stay on the runtime. While the vat is
//! busy it still runs the queued work and looks at its sockets every
//! [`pola_vat::BATCH`] events ([`Driver::poll_now`]).
//!
//! Invariants (upheld here):
//! - a registered reader is touched by one thread at a time: the vat's
//!   thread while it reads ([`Entry::Busy`]), or whoever removes it from
//!   the table; the ingress is called with no lock held;
//! - a socket is deregistered before its reader is dropped or handed back,
//!   so a reused descriptor number is never mistaken for it;
//! - after the end of a connection is reported ([`Input::Closed`]) no
//!   more bytes of it go to the ingress.

use std::collections::HashMap;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Registry, Token};
use pola_netlayer::{MessageReader, ReadNow};
use pola_vat::{Driver, Vat, Wake};

use crate::ingress::{CLOSE_LINGER, ConnId, Ingress, Input};

/// Queued events beyond which a busy vat reads only [`SIP`] bytes per
/// connection each time it looks at its sockets.
const BACKLOGGED: usize = 1024;

/// What a far-behind vat reads from a connection per look: less than the
/// [`pola_vat::BATCH`] events it runs in between could ask for.
const SIP: usize = 2048;

/// The token of the waker that other threads' posts ring.
const WAKE: Token = Token(0);

/// Chunks read from one connection before the vat gets to run what they
/// brought: a busy connection cannot starve the vat's queue or the other
/// connections.
const READS_PER_WAKE: usize = 4;

/// The peer's handle on its vat's reactor.
#[derive(Clone)]
pub(crate) struct VatIo {
    shared: Arc<IoShared>,
}

struct IoShared {
    registry: Registry,
    conns: Mutex<HashMap<usize, Entry>>,
    next: AtomicUsize,
    runtime: tokio::runtime::Handle,
    /// Sessions hold GC reports back for their next message; if none comes
    /// within [`GC_DELAY`] of the vat going idle, [`VatSide::quiet`] sends
    /// them.
    gc_owed: AtomicBool,
    /// The vat's thread has dropped the reactor (the vat stopped, or the
    /// peer is gone): nothing reads registered sockets any more; new ones
    /// are refused.
    dead: AtomicBool,
}

/// What the peer does on its vat's thread, called by its driver.
pub(crate) trait VatSide: Send + 'static {
    /// Runs the session work the vat's thread queued. `false` once the
    /// peer is gone.
    fn run_queued(&mut self) -> bool;

    /// GC reports are owed and the vat has been quiet for [`GC_DELAY`]:
    /// send them.
    fn quiet(&mut self);
}

/// How long GC reports may wait for a message to ride with.
pub(crate) const GC_DELAY: Duration = Duration::from_millis(2);

struct Reg {
    id: ConnId,
    reader: Box<dyn MessageReader>,
    fd: RawFd,
    ingress: Ingress,
}

enum Entry {
    /// Waiting for its socket.
    Idle(Reg),
    /// Being read by the vat's thread; `release` if the writer has shut the
    /// connection meanwhile (the reader goes to the drain when put back).
    Busy { release: bool },
}

impl VatIo {
    /// Attaches the peer's driver to `vat`, running `side`'s work there.
    /// The driver also makes the vat sleep on the peer's sockets (and
    /// `Some` is returned) unless the vat already sleeps in another
    /// driver (another peer on the same vat), there is no tokio runtime to
    /// hand closing connections to, or the OS refuses an `epoll` instance:
    /// the peer's connections are then read on runtime tasks.
    pub(crate) fn attach(vat: &Vat, spin_max: Duration, side: impl VatSide) -> Option<VatIo> {
        let Some((reactor, wake)) = Reactor::new(vat, spin_max) else {
            let _ = vat.attach(
                PeerDriver {
                    side,
                    reactor: None,
                },
                None,
            );
            return None;
        };
        let shared = reactor.shared.clone();
        let driver = PeerDriver {
            side,
            reactor: Some(reactor),
        };
        match vat.attach(driver, Some(wake)) {
            Ok(()) => Some(VatIo { shared }),
            Err(mut driver) => {
                // Dropped unused: marks the reactor dead.
                driver.reactor = None;
                let _ = vat.attach(driver, None);
                None
            }
        }
    }

    /// Hands `reader` to the vat's thread: what arrives, then the end of
    /// stream, goes to `ingress` on that thread. Gives the reader back if
    /// it cannot be read directly or the socket cannot be registered.
    pub(crate) fn register(
        &self,
        id: ConnId,
        mut reader: Box<dyn MessageReader>,
        ingress: Ingress,
    ) -> Result<usize, Box<dyn MessageReader>> {
        let Some(fd) = reader.direct().map(|d| d.fd()) else {
            return Err(reader);
        };
        let token = self.shared.next.fetch_add(1, Ordering::Relaxed);
        let reg = Reg {
            id,
            reader,
            fd,
            ingress,
        };
        // In the table before the socket can report, so the first event
        // finds it; not at all once the vat has stopped.
        {
            let mut conns = self.shared.lock();
            if self.shared.dead.load(Ordering::Acquire) {
                return Err(reg.reader);
            }
            conns.insert(token, Entry::Idle(reg));
        }
        let registered =
            self.shared
                .registry
                .register(&mut SourceFd(&fd), Token(token), Interest::READABLE);
        // Not registered, so the vat cannot have taken it: it is idle.
        if registered.is_err()
            && let Some(Entry::Idle(reg)) = self.shared.lock().remove(&token)
        {
            return Err(reg.reader);
        }
        Ok(token)
    }

    /// Some session holds GC reports back (called on the vat's thread).
    pub(crate) fn owe_gc(&self) {
        self.shared.gc_owed.store(true, Ordering::Relaxed);
    }

    /// The writer has shut our sending half: stop delivering bytes and let
    /// the runtime drain the input until the peer closes (or the linger
    /// passes), then report the end.
    pub(crate) fn release(&self, token: usize) {
        let mut conns = self.shared.lock();
        match conns.get_mut(&token) {
            Some(Entry::Busy { release }) => *release = true,
            Some(Entry::Idle(_)) => {
                if let Some(Entry::Idle(reg)) = conns.remove(&token) {
                    drop(conns);
                    self.shared.drain(reg);
                }
            }
            // Already ended.
            None => {}
        }
    }
}

impl IoShared {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<usize, Entry>> {
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn deregister(&self, reg: &Reg) {
        let _ = self.registry.deregister(&mut SourceFd(&reg.fd));
    }

    /// Reads what `token`'s socket has, up to `budget` chunks of at most
    /// `max` bytes;
    /// `true` if there may be more. With `to_end` (the peer closed or the
    /// socket failed), a short read does not mean the socket is done: the
    /// end of stream may be waiting behind the data, and no new readiness
    /// will announce it.
    fn service(&self, token: usize, to_end: bool, budget: usize, max: usize) -> bool {
        let mut reg = {
            let mut conns = self.lock();
            match conns.get_mut(&token) {
                Some(entry @ Entry::Idle(_)) => {
                    match std::mem::replace(entry, Entry::Busy { release: false }) {
                        Entry::Idle(reg) => reg,
                        Entry::Busy { .. } => return false,
                    }
                }
                _ => return false,
            }
        };
        let mut more = false;
        let mut end = None;
        for _ in 0..budget {
            let Some(direct) = reg.reader.direct() else {
                end = Some(None);
                break;
            };
            let (bytes, last) = match direct.read_now(max) {
                Ok(ReadNow::Chunk(bytes)) => (bytes, false),
                Ok(ReadNow::Drained(bytes)) => (bytes, !to_end),
                Ok(ReadNow::Empty) => {
                    more = false;
                    break;
                }
                Ok(ReadNow::End) => {
                    end = Some(None);
                    break;
                }
                Err(e) => {
                    end = Some(Some(e));
                    break;
                }
            };
            (reg.ingress)(reg.id, Input::Bytes(bytes));
            more = !last;
            // Closed locally meanwhile: no more bytes for the session.
            if last || self.released(token) {
                break;
            }
        }
        let mut conns = self.lock();
        let release = matches!(conns.remove(&token), Some(Entry::Busy { release: true }));
        if let Some(end) = end {
            drop(conns);
            self.deregister(&reg);
            (reg.ingress)(reg.id, Input::Closed(end));
            return false;
        }
        if release {
            drop(conns);
            self.drain(reg);
            return false;
        }
        conns.insert(token, Entry::Idle(reg));
        more
    }

    /// Whether the writer shut `token`'s connection while it was being read.
    fn released(&self, token: usize) -> bool {
        matches!(self.lock().get(&token), Some(Entry::Busy { release: true }))
    }

    /// Reads and discards the rest of a closing connection on the runtime,
    /// then reports its end.
    fn drain(&self, reg: Reg) {
        self.deregister(&reg);
        let Reg {
            id,
            mut reader,
            ingress,
            ..
        } = reg;
        self.runtime.spawn(async move {
            let drain = async {
                loop {
                    match reader.recv().await {
                        Ok(Some(_)) => {}
                        Ok(None) => break None,
                        Err(e) => break Some(e),
                    }
                }
            };
            let end = tokio::time::timeout(CLOSE_LINGER, drain)
                .await
                .unwrap_or(None);
            ingress(id, Input::Closed(end));
        });
    }
}

/// The longest a vat's thread polls its sockets before it sleeps.
pub(crate) const SPIN_MAX: Duration = Duration::from_micros(50);

/// Where a growing spin window starts.
const SPIN_START: Duration = Duration::from_micros(10);

/// The vat thread's wait: `epoll` on the session sockets and the waker.
///
/// Before it sleeps, the thread polls for a short, adaptive while (the
/// way the kernel's `haltpoll` and busy-poll sockets do): waking a thread
/// that sleeps, and on a virtual machine the idle CPU under it, costs tens
/// of microseconds, more than a whole round trip's work. The window grows
/// while messages keep arriving soon after the vat goes idle and shrinks to
/// nothing when they stop, so an idle vat does not burn a CPU.
struct Reactor {
    poll: Poll,
    events: Events,
    shared: Arc<IoShared>,
    /// Connections with more to read (token, read to the end), when their
    /// budget ran out or their socket reported.
    ready: Vec<(usize, bool)>,
    /// How long to poll before sleeping (0 up to `spin_max`).
    spin: Duration,
    spin_max: Duration,
}

impl Reactor {
    /// A reactor for `vat`'s thread, and the `Wake` that rings it; `None`
    /// without a runtime, or if the OS refuses.
    fn new(vat: &Vat, spin_max: Duration) -> Option<(Reactor, Wake)> {
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let vat_thread = vat.thread_id()?;
        let poll = Poll::new().ok()?;
        let waker = Arc::new(mio::Waker::new(poll.registry(), WAKE).ok()?);
        let registry = poll.registry().try_clone().ok()?;
        let shared = Arc::new(IoShared {
            registry,
            conns: Mutex::new(HashMap::new()),
            next: AtomicUsize::new(1),
            runtime,
            gc_owed: AtomicBool::new(false),
            dead: AtomicBool::new(false),
        });
        // A post the vat makes to itself while reading needs no wake-up: it
        // is queued, and the vat looks at its queue as soon as `wait`
        // returns.
        let wake: Wake = Arc::new(move || {
            if std::thread::current().id() != vat_thread {
                let _ = waker.wake();
            }
        });
        let reactor = Reactor {
            poll,
            events: Events::with_capacity(64),
            shared,
            ready: Vec::new(),
            spin: Duration::ZERO,
            spin_max,
        };
        Some((reactor, wake))
    }

    /// Whether sockets are registered (being read, or waiting to be).
    fn has_connections(&self) -> bool {
        !self.shared.lock().is_empty()
    }

    /// Polls without sleeping until something arrives or the spin window
    /// passes; then, if nothing came, sleeps (sending owed GC reports
    /// through `side` if the sleep ran out). Adapts the window. `Err` if
    /// the poll failed.
    fn poll_adaptive(&mut self, side: &mut impl VatSide) -> std::io::Result<()> {
        let started = std::time::Instant::now();
        // Polling pays only for sockets this thread reads itself.
        let direct = !self.shared.lock().is_empty();
        if direct && !self.spin.is_zero() {
            loop {
                self.poll.poll(&mut self.events, Some(Duration::ZERO))?;
                if !self.events.is_empty() {
                    return Ok(());
                }
                if started.elapsed() >= self.spin {
                    break;
                }
                std::hint::spin_loop();
            }
        }
        // Owed GC reports bound the sleep; if nothing comes meanwhile, they
        // go out on their own.
        let owed = self.shared.gc_owed.load(Ordering::Relaxed);
        let timeout = owed.then(|| GC_DELAY.saturating_sub(started.elapsed()));
        self.poll.poll(&mut self.events, timeout)?;
        if self.events.is_empty() {
            if owed {
                self.shared.gc_owed.store(false, Ordering::Relaxed);
                side.quiet();
            }
            return Ok(());
        }
        // News soon after going idle: a longer window might have caught it
        // without a sleep. "Soon" allows for the wake-up itself, which can
        // take longer than the whole window on a virtual machine. Long
        // quiet: poll less.
        if !direct {
            self.spin = Duration::ZERO;
        } else if started.elapsed() <= self.spin_max * 4 {
            self.spin = (self.spin * 2).clamp(SPIN_START.min(self.spin_max), self.spin_max);
        } else {
            self.spin /= 2;
            if self.spin < Duration::from_micros(1) {
                self.spin = Duration::ZERO;
            }
        }
        Ok(())
    }
}

impl Reactor {
    /// Reads the connections whose sockets reported, and those left over,
    /// up to `budget` chunks of at most `max` bytes each.
    fn dispatch(&mut self, budget: usize, max: usize) {
        for ev in &self.events {
            let t = ev.token();
            if t == WAKE {
                continue;
            }
            let to_end = ev.is_read_closed() || ev.is_error();
            match self.ready.iter_mut().find(|(r, _)| *r == t.0) {
                Some(entry) => entry.1 |= to_end,
                None => self.ready.push((t.0, to_end)),
            }
        }
        let ready = std::mem::take(&mut self.ready);
        for (token, to_end) in ready {
            if self.shared.service(token, to_end, budget, max) {
                self.ready.push((token, to_end));
            }
        }
    }
}

impl Reactor {
    /// Sleeps until a socket or the waker reports (after the adaptive
    /// poll), then reads what reported.
    fn wait(&mut self, side: &mut impl VatSide) {
        // With reads left over, only look for news; else wait for some.
        let polled = if self.ready.is_empty() {
            self.poll_adaptive(side)
        } else {
            self.poll.poll(&mut self.events, Some(Duration::ZERO))
        };
        if polled.is_err() {
            // EINTR, or the epoll instance failing: return and let the vat
            // look at its queue; it calls again.
            return;
        }
        self.dispatch(READS_PER_WAKE, usize::MAX);
    }

    /// Reads a little of what the sockets have, without blocking.
    fn poll_now(&mut self, backlog: usize) {
        if self
            .poll
            .poll(&mut self.events, Some(Duration::ZERO))
            .is_ok()
        {
            // One chunk each: the vat is busy with other work. A vat far
            // behind takes a sip, a few messages' worth: enough that no
            // connection is starved, too little to grow its backlog.
            let max = if backlog >= BACKLOGGED {
                SIP
            } else {
                usize::MAX
            };
            self.dispatch(1, max);
        }
    }
}

/// The vat has stopped, or the peer is gone: the sockets will never be
/// read here again. Each registered connection is reported closed (its
/// session ends), and later connections are read on runtime tasks.
impl Drop for Reactor {
    fn drop(&mut self) {
        let regs: Vec<Reg> = {
            let mut conns = self.shared.lock();
            self.shared.dead.store(true, Ordering::Release);
            conns
                .drain()
                .filter_map(|(_, e)| match e {
                    Entry::Idle(reg) => Some(reg),
                    Entry::Busy { .. } => None,
                })
                .collect()
        };
        for reg in regs {
            self.shared.deregister(&reg);
            (reg.ingress)(reg.id, Input::Closed(None));
        }
    }
}

/// The peer's driver on its vat: `side`'s queued work, and the reactor if
/// the vat sleeps in this driver.
struct PeerDriver<S> {
    side: S,
    reactor: Option<Reactor>,
}

impl<S: VatSide> Driver for PeerDriver<S> {
    fn on_idle(&mut self) -> bool {
        // Once the peer is gone the driver goes too, but not while it still
        // reads connections (they are being closed and drained).
        self.side.run_queued() || self.reactor.as_ref().is_some_and(Reactor::has_connections)
    }

    fn poll_now(&mut self, backlog: usize) {
        self.side.run_queued();
        if let Some(r) = &mut self.reactor {
            r.poll_now(backlog);
        }
    }

    fn wait(&mut self) {
        if let Some(r) = &mut self.reactor {
            r.wait(&mut self.side);
        }
    }
}
