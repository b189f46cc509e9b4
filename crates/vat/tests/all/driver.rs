//! Drivers on a vat's thread ([`Driver`], [`Vat::attach`]): a vat that
//! sleeps in its driver's `wait` instead of parking is woken by other
//! threads' posts, and what the driver posts from `wait` runs on the vat;
//! what a driver posts from `on_idle` runs before the vat sleeps; a vat
//! that never runs out of events still polls its drivers; a driver that
//! asks to go, or panics in any of its methods, is dropped, and the vat
//! keeps working (parking again if it slept in that driver).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};

use pola_testkit::eventually;
use pola_vat::{Driver, Ref, Val, Vat, Wake, error, from_fn};

use crate::support::{Counter, T, int, n};

/// Stands in for a socket driver: sleeps on a channel; `Some(r)` is
/// "input" it turns into a delivery to `r`, `None` is a wake-up.
struct ChannelDriver {
    vat: Vat,
    rx: Receiver<Option<Ref>>,
    waits: Arc<AtomicUsize>,
}

impl Driver for ChannelDriver {
    fn on_idle(&mut self) -> bool {
        true
    }

    fn poll_now(&mut self, _backlog: usize) {
        while let Ok(input) = self.rx.try_recv() {
            if let Some(r) = input {
                self.vat.send_only(&r, "inc", vec![]);
            }
        }
    }

    fn wait(&mut self) {
        self.waits.fetch_add(1, Ordering::SeqCst);
        if let Ok(Some(r)) = self.rx.recv() {
            self.vat.send_only(&r, "inc", vec![]);
        }
    }
}

/// A channel driver and the `Wake` that rings it.
fn channel_driver(vat: &Vat) -> (ChannelDriver, Wake, Sender<Option<Ref>>, Arc<AtomicUsize>) {
    let (tx, rx) = channel();
    let waits = Arc::new(AtomicUsize::new(0));
    let wake_tx = Mutex::new(tx.clone());
    let wake: Wake = Arc::new(move || {
        let _ = wake_tx.lock().unwrap().send(None);
    });
    let driver = ChannelDriver {
        vat: vat.clone(),
        rx,
        waits: waits.clone(),
    };
    (driver, wake, tx, waits)
}

fn vat_with_sleeper(name: &str) -> (Vat, Sender<Option<Ref>>, Arc<AtomicUsize>) {
    let vat = Vat::new(name);
    let (driver, wake, tx, waits) = channel_driver(&vat);
    assert!(vat.attach(driver, Some(wake)).is_ok());
    // Only one driver is the one the vat sleeps in; a second one asking
    // for that is given back, and may attach without a wake.
    let (second, wake2, _tx2, second_waits) = channel_driver(&vat);
    let second = vat.attach(second, Some(wake2)).err().unwrap();
    assert!(vat.attach(second, None).is_ok());
    // Let the vat run idle a few times: the second driver is never waited in.
    for _ in 0..3 {
        vat.block_on(&vat.send(&vat.spawn(Counter(0)), "get", vec![]), T)
            .unwrap();
    }
    assert_eq!(second_waits.load(Ordering::SeqCst), 0);
    (vat, tx, waits)
}

/// An object counting its messages where the test can read it without
/// posting to the vat.
fn tally(vat: &Vat) -> (Ref, Arc<AtomicUsize>) {
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    let obj = vat.spawn(from_fn(move |_cx, _m, _args| {
        c.fetch_add(1, Ordering::SeqCst);
        Ok(Val::null())
    }));
    (obj, count)
}

#[test]
fn posts_from_other_threads_wake_a_vat_sleeping_in_its_driver() {
    let (a, _input, waits) = vat_with_sleeper("drive-a");
    let b = Vat::new("drive-b");
    let before = waits.load(Ordering::SeqCst);
    // b answers its k-th call only once a has gone to sleep in its driver
    // for the k-th time (bounded: if a never sleeps, the count below fails).
    let (asleep, calls) = (waits.clone(), AtomicUsize::new(0));
    let counter = b.spawn(from_fn(move |_cx, _m, _args| {
        let k = calls.fetch_add(1, Ordering::SeqCst) + 1;
        let give_up = std::time::Instant::now() + std::time::Duration::from_secs(1);
        while asleep.load(Ordering::SeqCst) < before + k && std::time::Instant::now() < give_up {
            std::thread::sleep(std::time::Duration::from_micros(50));
        }
        Ok(n(1))
    }));
    let pinger = a.spawn(from_fn(move |cx, _m, args| {
        let count = args.first().and_then(Val::as_i64).unwrap_or(0);
        let ans = cx.send(&counter, "inc", vec![]);
        let me = cx.me().ok_or_else(|| error("me"))?;
        Ok(Val::Ref(cx.when(&ans, move |cx, o| {
            let v = o?;
            if count <= 1 {
                Ok(n(int(&v) * 300))
            } else {
                Ok(Val::Ref(cx.send(&me, "go", vec![n(count - 1)])))
            }
        })))
    }));
    let v = a.block_on(&a.send(&pinger, "go", vec![n(300)]), T).unwrap();
    assert_eq!(int(&v), 300);
    // a slept in the driver for each answer (never in thread::park: a
    // wake-up sent that way would be lost and the run would stall), and
    // b's posts woke it.
    let slept = waits.load(Ordering::SeqCst) - before;
    assert!(slept >= 300, "{slept}");
    a.shutdown();
    b.shutdown();
}

#[test]
fn what_the_driver_posts_from_wait_runs_on_its_vat() {
    let (a, input, _waits) = vat_with_sleeper("drive-io");
    let counter = a.spawn(Counter(0));
    for _ in 0..50 {
        input.send(Some(counter.clone())).unwrap();
    }
    // Deliveries are in order: `get` sent after the 50 inputs were taken
    // sees them all once the queue has drained.
    let mut got = 0;
    for _ in 0..1000 {
        got = int(&a.block_on(&a.send(&counter, "get", vec![]), T).unwrap());
        if got == 50 {
            break;
        }
    }
    assert_eq!(got, 50);
    a.shutdown();
}

/// Sends to its target from `on_idle` until it has sent `left` messages;
/// nothing else posts to the vat.
struct IdleSender {
    target: Ref,
    vat: Vat,
    left: usize,
    /// Sleep in a channel nobody writes to but the wake.
    rx: Option<Receiver<()>>,
}

impl Driver for IdleSender {
    fn on_idle(&mut self) -> bool {
        if self.left > 0 {
            self.left -= 1;
            self.vat.send_only(&self.target, "note", vec![]);
        }
        true
    }

    fn wait(&mut self) {
        if let Some(rx) = &self.rx {
            let _ = rx.recv();
        }
    }
}

#[test]
fn posts_from_on_idle_run_before_the_vat_sleeps() {
    for sleeps_in_it in [false, true] {
        let vat = Vat::new("idle-posts");
        let (target, count) = tally(&vat);
        let (tx, rx) = channel::<()>();
        let tx = Mutex::new(tx);
        let wake: Wake = Arc::new(move || {
            let _ = tx.lock().unwrap().send(());
        });
        let driver = IdleSender {
            target,
            vat: vat.clone(),
            left: 200,
            rx: sleeps_in_it.then_some(rx),
        };
        assert!(vat.attach(driver, sleeps_in_it.then_some(wake)).is_ok());
        // Each note makes the vat idle again, and the next note is sent
        // from there: if the vat slept before running what `on_idle`
        // posted, nobody would wake it and the count would stop.
        eventually("every note from on_idle ran", T, || {
            count.load(Ordering::SeqCst) == 200
        });
        vat.shutdown();
    }
}

/// Counts its calls; panics or leaves where told; records its drop.
#[derive(Default)]
struct Probe {
    idles: AtomicUsize,
    polls: AtomicUsize,
    waits: AtomicUsize,
    dropped: AtomicBool,
}

#[derive(Clone, Copy, PartialEq)]
enum Fault {
    None,
    /// `on_idle` returns `false` on its third call.
    LeaveOnThirdIdle,
    PanicInIdle,
    PanicInPoll,
    PanicInWait,
}

struct ProbeDriver {
    probe: Arc<Probe>,
    fault: Fault,
    /// For a driver the vat sleeps in.
    rx: Receiver<()>,
}

impl Driver for ProbeDriver {
    fn on_idle(&mut self) -> bool {
        let k = self.probe.idles.fetch_add(1, Ordering::SeqCst) + 1;
        match self.fault {
            Fault::PanicInIdle => panic!("driver fails in on_idle"),
            Fault::LeaveOnThirdIdle => k < 3,
            _ => true,
        }
    }

    fn poll_now(&mut self, _backlog: usize) {
        self.probe.polls.fetch_add(1, Ordering::SeqCst);
        if self.fault == Fault::PanicInPoll {
            panic!("driver fails in poll_now");
        }
    }

    fn wait(&mut self) {
        self.probe.waits.fetch_add(1, Ordering::SeqCst);
        if self.fault == Fault::PanicInWait {
            panic!("driver fails in wait");
        }
        let _ = self.rx.recv();
    }
}

impl Drop for ProbeDriver {
    fn drop(&mut self) {
        self.probe.dropped.store(true, Ordering::SeqCst);
    }
}

/// Attaches a probe (the one the vat sleeps in if `sleeper`).
fn attach_probe(vat: &Vat, fault: Fault, sleeper: bool) -> Arc<Probe> {
    let probe = Arc::new(Probe::default());
    let (tx, rx) = channel::<()>();
    let tx = Mutex::new(tx);
    let wake: Wake = Arc::new(move || {
        let _ = tx.lock().unwrap().send(());
    });
    let driver = ProbeDriver {
        probe: probe.clone(),
        fault,
        rx,
    };
    assert!(vat.attach(driver, sleeper.then_some(wake)).is_ok());
    probe
}

/// One call from outside: the vat wakes, runs it, goes idle.
fn round(vat: &Vat, counter: &Ref) -> i64 {
    int(&vat.block_on(&vat.send(counter, "inc", vec![]), T).unwrap())
}

/// Keeps `vat` busy until the returned flag is set: an object that sends
/// to itself, so the vat's queue never empties. The count is its turns.
fn keep_busy(vat: &Vat) -> (Arc<AtomicBool>, Arc<AtomicUsize>) {
    let stop = Arc::new(AtomicBool::new(false));
    let spins = Arc::new(AtomicUsize::new(0));
    let (s, turns) = (stop.clone(), spins.clone());
    let spinner = vat.spawn(from_fn(move |cx, _m, _args| {
        turns.fetch_add(1, Ordering::SeqCst);
        if !s.load(Ordering::Relaxed) {
            let me = cx.me().ok_or_else(|| error("me"))?;
            cx.send_only(&me, "spin", vec![]);
        }
        Ok(Val::null())
    }));
    vat.send_only(&spinner, "spin", vec![]);
    (stop, spins)
}

#[test]
fn a_busy_vat_still_polls_its_drivers() {
    let (vat, input, _waits) = vat_with_sleeper("busy-driver");
    let other = attach_probe(&vat, Fault::None, false);
    let (target, count) = tally(&vat);
    let (stop, spins) = keep_busy(&vat);
    // Once the spinner is going, note where the probe stands: the vat is
    // never idle from here on.
    eventually("the spinner is going", T, || {
        spins.load(Ordering::SeqCst) > 10
    });
    let idles = other.idles.load(Ordering::SeqCst);
    let polls = other.polls.load(Ordering::SeqCst);
    // Input only the driver sees (the channel posts nothing to the vat):
    // it arrives through `poll_now`, as the vat never sleeps.
    for _ in 0..20 {
        input.send(Some(target.clone())).unwrap();
    }
    eventually("input reached a busy vat", T, || {
        count.load(Ordering::SeqCst) == 20
    });
    eventually("the other driver was polled", T, || {
        other.polls.load(Ordering::SeqCst) > polls + 10
    });
    assert_eq!(
        other.idles.load(Ordering::SeqCst),
        idles,
        "the vat went idle while it had work"
    );
    stop.store(true, Ordering::SeqCst);
    vat.shutdown();
}

#[test]
fn a_driver_that_asks_to_go_is_dropped() {
    let vat = Vat::new("leaving-driver");
    let counter = vat.spawn(Counter(0));
    let leaving = attach_probe(&vat, Fault::LeaveOnThirdIdle, false);
    let staying = attach_probe(&vat, Fault::None, false);
    for k in 1..=10 {
        assert_eq!(round(&vat, &counter), k);
    }
    eventually("the leaving driver was dropped", T, || {
        leaving.dropped.load(Ordering::SeqCst)
    });
    assert_eq!(leaving.idles.load(Ordering::SeqCst), 3);
    assert!(staying.idles.load(Ordering::SeqCst) >= 10);
    assert!(!staying.dropped.load(Ordering::SeqCst));
    vat.shutdown();
    // Drivers go with their vat, after a last `on_idle`.
    assert!(staying.dropped.load(Ordering::SeqCst));
}

#[test]
fn a_driver_that_panics_is_dropped_and_the_vat_keeps_working() {
    for fault in [Fault::PanicInIdle, Fault::PanicInPoll, Fault::PanicInWait] {
        for sleeper in [false, true] {
            if fault == Fault::PanicInWait && !sleeper {
                continue; // never asked to wait
            }
            let vat = Vat::new("panicking-driver");
            let counter = vat.spawn(Counter(0));
            let bad = attach_probe(&vat, fault, sleeper);
            let good = attach_probe(&vat, Fault::None, false);
            if fault == Fault::PanicInPoll {
                let (stop, _) = keep_busy(&vat);
                eventually("the busy vat polled", T, || {
                    bad.polls.load(Ordering::SeqCst) > 0
                });
                stop.store(true, Ordering::SeqCst);
            }
            for k in 1..=5 {
                assert_eq!(round(&vat, &counter), k);
            }
            eventually("the panicking driver was dropped", T, || {
                bad.dropped.load(Ordering::SeqCst)
            });
            let calls = |p: &Probe| {
                p.idles.load(Ordering::SeqCst)
                    + p.polls.load(Ordering::SeqCst)
                    + p.waits.load(Ordering::SeqCst)
            };
            let after = calls(&bad);
            // The vat, parked again if it slept in the dropped driver, is
            // still woken by posts, still runs the other driver, and never
            // calls the dropped one again.
            let idles = good.idles.load(Ordering::SeqCst);
            for k in 6..=10 {
                assert_eq!(round(&vat, &counter), k);
            }
            assert_eq!(calls(&bad), after);
            assert!(good.idles.load(Ordering::SeqCst) > idles);
            if sleeper {
                // Its place is free again: the vat sleeps in the new one,
                // and posts wake it there.
                let next = attach_probe(&vat, Fault::None, true);
                eventually("the vat slept in the new driver", T, || {
                    next.waits.load(Ordering::SeqCst) > 0
                });
                for k in 11..=15 {
                    assert_eq!(round(&vat, &counter), k);
                }
            }
            vat.shutdown();
        }
    }
}
