//! A vat whose thread waits in a driver's [`Waiter`] instead of parking:
//! posts from other threads wake it through the driver, and what the
//! driver posts from inside `wait` (as a socket driver does with incoming
//! messages) runs on the vat.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};

use pola_vat::{Ref, Val, Vat, Waiter, Wake, error, from_fn};

use crate::support::{Counter, T, int, n};

/// Stands in for a socket driver: blocks on a channel; `Some(r)` is
/// "input" it turns into a delivery to `r`, `None` is a wake-up.
struct ChannelWaiter {
    vat: Vat,
    rx: Receiver<Option<Ref>>,
    waits: Arc<AtomicUsize>,
}

impl Waiter for ChannelWaiter {
    fn wait(&mut self) {
        self.waits.fetch_add(1, Ordering::SeqCst);
        if let Ok(Some(r)) = self.rx.recv() {
            self.vat.send_only(&r, "inc", vec![]);
        }
    }
}

fn vat_with_waiter(name: &str) -> (Vat, Sender<Option<Ref>>, Arc<AtomicUsize>) {
    let vat = Vat::new(name);
    let (tx, rx) = channel();
    let waits = Arc::new(AtomicUsize::new(0));
    let wake_tx = Mutex::new(tx.clone());
    let wake: Wake = Arc::new(move || {
        let _ = wake_tx.lock().unwrap().send(None);
    });
    let waiter = ChannelWaiter {
        vat: vat.clone(),
        rx,
        waits: waits.clone(),
    };
    assert!(vat.set_waiter(waiter, wake.clone()));
    // Only the first waiter is taken.
    let (_tx2, rx2) = channel();
    let second = ChannelWaiter {
        vat: vat.clone(),
        rx: rx2,
        waits: Arc::new(AtomicUsize::new(0)),
    };
    assert!(!vat.set_waiter(second, wake));
    (vat, tx, waits)
}

#[test]
fn posts_from_other_threads_wake_a_waiting_vat() {
    let (a, _input, waits) = vat_with_waiter("wait-a");
    let b = Vat::new("wait-b");
    // b takes its time, so a has gone to sleep before each answer comes.
    let counter = b.spawn(from_fn(|_cx, _m, _args| {
        std::thread::sleep(std::time::Duration::from_micros(200));
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
    // a slept in the waiter for each answer (never in thread::park: a
    // wake-up sent that way would be lost and the run would stall), and
    // b's posts woke it.
    assert!(waits.load(Ordering::SeqCst) >= 300, "{waits:?}");
    a.shutdown();
    b.shutdown();
}

#[test]
fn what_the_waiter_posts_runs_on_its_vat() {
    let (a, input, _waits) = vat_with_waiter("wait-io");
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
