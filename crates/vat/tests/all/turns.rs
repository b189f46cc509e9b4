//! Turns: one message to completion, transactional rollback (error and
//! panic), nested savepoints for synchronous calls.

use pola_vat::{
    Object, Outcome, Ref, Resolver, Turn, Val, Vat, WaitError, error, error_message, from_fn,
};

use crate::support::{Counter, Log, T, as_ref, int, n};

/// Does several kinds of effect, then succeeds or fails as asked.
struct Risky {
    n: i64,
    log: Ref,
    resolver: Resolver,
}

impl Object for Risky {
    fn receive(&self, cx: &mut Turn<'_>, method: &str, _args: Vec<Val>) -> Outcome {
        if method == "get" {
            return Ok(n(self.n));
        }
        cx.become_(Risky {
            n: self.n + 1,
            log: self.log.clone(),
            resolver: self.resolver.clone(),
        })?;
        let child = cx.spawn(Counter(100));
        cx.send_only(&self.log, "add", vec![Val::str(method), Val::Ref(child)]);
        cx.resolve(&self.resolver, Val::str(method));
        match method {
            "fail" => Err(error("refused")),
            "panic" => panic!("deliberate panic inside a turn"),
            _ => Ok(n(self.n + 1)),
        }
    }
}

#[test]
fn failed_turn_leaves_no_trace() {
    let vat = Vat::new("turns");
    let log = vat.spawn(Log::default());
    let (p, r) = vat.promise();
    let risky = vat.spawn(Risky {
        n: 0,
        log: log.clone(),
        resolver: r,
    });

    let e = vat
        .block_on(&vat.send(&risky, "fail", vec![]), T)
        .unwrap_err();
    assert_eq!(e.reason().and_then(error_message), Some("refused"));
    let e = vat
        .block_on(&vat.send(&risky, "panic", vec![]), T)
        .unwrap_err();
    assert_eq!(
        e.reason().and_then(error_message),
        Some("turn failed: panic")
    );

    // No become was kept.
    assert_eq!(
        int(&vat.block_on(&vat.send(&risky, "get", vec![]), T).unwrap()),
        0
    );
    // A successful turn now: its resolution wins because the failed ones
    // never resolved anything, and the log shows only its send.
    assert_eq!(
        int(&vat.block_on(&vat.send(&risky, "ok", vec![]), T).unwrap()),
        1
    );
    assert_eq!(vat.block_on(&p, T).unwrap(), Val::str("ok"));
    let entries = vat.block_on(&vat.send(&log, "get", vec![]), T).unwrap();
    let entries = entries.as_list().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0], Val::str("ok"));
    // The object spawned by the successful turn exists and works.
    let child = as_ref(&entries[1]);
    assert_eq!(
        int(&vat.block_on(&vat.send(&child, "inc", vec![]), T).unwrap()),
        101
    );
    vat.shutdown();
}

#[test]
fn objects_spawned_by_a_failed_turn_do_not_exist() {
    let vat = Vat::new("ghost");
    let ghost_holder = vat.spawn(from_fn(|cx, _m, _a| {
        let ghost = cx.spawn(Counter(0));
        // The ref escapes only through the (failing) answer's reason.
        Err(Val::List(vec![error("fail"), Val::Ref(ghost)]))
    }));
    let e = vat
        .block_on(&vat.send(&ghost_holder, "go", vec![]), T)
        .unwrap_err();
    let ghost = as_ref(&e.reason().unwrap().as_list().unwrap()[1]);
    let e = vat
        .block_on(&vat.send(&ghost, "get", vec![]), T)
        .unwrap_err();
    assert_eq!(e.reason().and_then(error_message), Some("no such object"));
    vat.shutdown();
}

#[test]
fn a_turn_runs_to_completion_before_the_next() {
    let vat = Vat::new("no-interleave");
    let log = vat.spawn(Log::default());
    let l = log.clone();
    let obj = vat.spawn(from_fn(move |cx, m, _a| {
        match m {
            "a" => {
                let me = cx.me().ok_or_else(|| error("no me"))?;
                cx.send_only(&me, "b", vec![]);
                cx.call(&l, "add", vec![Val::str("a-after-send")])?;
                // A synchronous call to itself runs now, inside this turn.
                cx.call(&me, "c", vec![])?;
                cx.call(&l, "add", vec![Val::str("a-end")])?;
            }
            other => {
                cx.call(&l, "add", vec![Val::str(other)])?;
            }
        }
        Ok(Val::null())
    }));
    // The log must be in this vat for `call`: it is.
    vat.block_on(&vat.send(&obj, "a", vec![]), T).unwrap();
    // "b" was queued behind the turn; wait for it with a FIFO marker.
    vat.block_on(&vat.send(&obj, "d", vec![]), T).unwrap();
    let got = vat.block_on(&vat.send(&log, "get", vec![]), T).unwrap();
    let got: Vec<&str> = got
        .as_list()
        .unwrap()
        .iter()
        .filter_map(Val::as_str)
        .collect();
    assert_eq!(got, ["a-after-send", "c", "a-end", "b", "d"]);
    vat.shutdown();
}

#[test]
fn failed_sync_call_is_rolled_back_but_caller_continues() {
    let vat = Vat::new("savepoint");
    let counter = vat.spawn(Counter(0));
    let c = counter.clone();
    let outer = vat.spawn(from_fn(move |cx, _m, _a| {
        cx.call(&c, "inc", vec![])?;
        let r = cx.call(&c, "inc_then_fail", vec![]);
        assert!(r.is_err());
        cx.call(&c, "get", vec![])
    }));
    let v = vat.block_on(&vat.send(&outer, "go", vec![]), T).unwrap();
    assert_eq!(int(&v), 1, "the failed call's become was undone");
    assert_eq!(
        int(&vat.block_on(&vat.send(&counter, "get", vec![]), T).unwrap()),
        1
    );
    vat.shutdown();
}

#[test]
fn run_turn_failure_rolls_back_too() {
    let vat = Vat::new("run");
    let log = vat.spawn(Log::default());
    let l = log.clone();
    let p = vat.run(move |cx| {
        cx.send_only(&l, "add", vec![n(1)]);
        Err(error("no"))
    });
    assert!(matches!(vat.block_on(&p, T), Err(WaitError::Broken(_))));
    let l = log.clone();
    let p = vat.run(move |cx| {
        cx.send_only(&l, "add", vec![n(2)]);
        Ok(Val::null())
    });
    vat.block_on(&p, T).unwrap();
    let got = vat.block_on(&vat.send(&log, "get", vec![]), T).unwrap();
    assert_eq!(got, Val::List(vec![n(2)]));
    vat.shutdown();
}

#[test]
fn shutdown_breaks_waiting_promises() {
    let vat = Vat::new("stopping");
    let (p, _r) = vat.promise();
    let waiting = vat.settled(&p);
    vat.shutdown();
    let e = waiting.wait(T).unwrap_err();
    assert_eq!(e.reason().and_then(error_message), Some("vat shut down"));
    // Sends after shutdown break at once.
    let other = Vat::new("other");
    let c = vat.spawn(Counter(0));
    let e = other
        .block_on(&other.send(&c, "get", vec![]), T)
        .unwrap_err();
    assert_eq!(e.reason().and_then(error_message), Some("vat shut down"));
    vat.shutdown();
    other.shutdown();
}

#[test]
fn runaway_synchronous_recursion_fails_the_turn_only() {
    let vat = Vat::new("recursion");
    let obj = vat.spawn(from_fn(|cx, _m, _a| {
        let me = cx.me().ok_or_else(|| error("me"))?;
        cx.call(&me, "again", vec![])
    }));
    let e = vat.block_on(&vat.send(&obj, "go", vec![]), T).unwrap_err();
    assert_eq!(
        e.reason().and_then(error_message),
        Some("call: nesting too deep")
    );
    let c = vat.spawn(Counter(1));
    assert_eq!(
        int(&vat.block_on(&vat.send(&c, "get", vec![]), T).unwrap()),
        1
    );
    vat.shutdown();
}

#[test]
fn collection_keeps_everything_still_reachable() {
    let vat = Vat::new("gc");
    // `holder` is the only holder of its counter; the counter's ref lives
    // only inside holder's behaviour.
    let holder = vat.block_on(
        &vat.run(|cx| {
            let c = cx.spawn(Counter(0));
            Ok(Val::Ref(cx.spawn(from_fn(move |cx, _m, _a| {
                cx.call(&c, "inc", vec![])
            }))))
        }),
        T,
    );
    let holder = as_ref(&holder.unwrap());
    let (p, r) = vat.promise();
    let waiting = vat.settled(&p);
    // Lots of garbage (unreferenced objects and answers) to trigger sweeps.
    let maker = vat.spawn(crate::support::Maker);
    for i in 0..20_000 {
        vat.send_only(&maker, "make", vec![n(i)]);
        if i % 1000 == 0 {
            vat.send_only(&holder, "go", vec![]);
        }
    }
    assert_eq!(
        int(&vat.block_on(&vat.send(&holder, "go", vec![]), T).unwrap()),
        21
    );
    // The garbage was collected (20 000 counters were made).
    let live = vat
        .block_on(&vat.run(|cx| Ok(n(cx.live_objects() as i64))), T)
        .unwrap();
    assert!(int(&live) < 10_000, "{live:?}");
    r.resolve_now(n(5));
    assert_eq!(waiting.wait(T).unwrap(), n(5));

    // A long chain of promises (each `when` answers with the next one's
    // promise) is collected in one sweep once nobody holds its head.
    let t = maker.clone();
    let chain = vat.run(move |cx| Ok(Val::Ref(chain_step(cx, t, 3000))));
    assert_eq!(int(&vat.block_on(&chain, T).unwrap()), 42);
    drop(chain);
    for i in 0..10_000 {
        vat.send_only(&maker, "make", vec![n(i)]);
    }
    let live = vat
        .block_on(&vat.run(|cx| Ok(n(cx.live_promises() as i64))), T)
        .unwrap();
    assert!(int(&live) < 100, "{live:?}");
    vat.shutdown();
}

fn chain_step(cx: &mut pola_vat::Turn<'_>, target: Ref, left: i64) -> Ref {
    let answer = cx.send(&target, "data", vec![]);
    if left <= 1 {
        return answer;
    }
    cx.when(&answer, move |cx, o| {
        o?;
        Ok(Val::Ref(chain_step(cx, target, left - 1)))
    })
}

#[test]
fn posts_through_handles_inside_a_failed_turn_are_dropped() {
    let vat = Vat::new("handles");
    let other = Vat::new("handles-other");
    let log = other.spawn(Log::default());
    let (p, r) = other.promise();
    let (v, l) = (other.clone(), log.clone());
    let obj = vat.spawn(from_fn(move |_cx, m, _a| {
        // Authority used directly, not through the turn.
        v.send_only(&l, "add", vec![Val::str(m)]);
        r.resolve_now(Val::str(m));
        if m == "fail" {
            Err(error("no"))
        } else {
            Ok(Val::null())
        }
    }));
    assert!(vat.block_on(&vat.send(&obj, "fail", vec![]), T).is_err());
    vat.block_on(&vat.send(&obj, "ok", vec![]), T).unwrap();
    assert_eq!(other.block_on(&p, T).unwrap(), Val::str("ok"));
    let got = other.block_on(&other.send(&log, "get", vec![]), T).unwrap();
    assert_eq!(got, Val::List(vec![Val::str("ok")]));
    vat.shutdown();
    other.shutdown();
}

#[test]
fn blocking_inside_a_vat_is_refused() {
    let vat = Vat::new("no-block");
    let (p, _r) = vat.promise();
    let obj = vat.spawn(from_fn(move |_cx, _m, _a| match pola_vat::wait(&p, T) {
        Err(WaitError::InsideVat) => Ok(Val::str("refused")),
        other => Err(error(format!("{other:?}"))),
    }));
    assert_eq!(
        vat.block_on(&vat.send(&obj, "go", vec![]), T).unwrap(),
        Val::str("refused")
    );
    vat.shutdown();
}

/// A behaviour whose destructor panics (a bug outside any method).
struct Bomb;

impl Drop for Bomb {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("panicking destructor");
        }
    }
}

impl pola_vat::Object for Bomb {
    fn receive(&self, cx: &mut pola_vat::Turn<'_>, _m: &str, _a: Vec<Val>) -> pola_vat::Outcome {
        cx.become_(Counter(0))?;
        Ok(Val::null())
    }
}

#[test]
fn a_panic_outside_a_method_does_not_stop_the_vat() {
    let vat = Vat::new("bomb");
    let bomb = vat.spawn(Bomb);
    // Replacing the behaviour drops the bomb during commit.
    vat.send_only(&bomb, "defuse", vec![]);
    let c = vat.spawn(Counter(7));
    assert_eq!(
        int(&vat.block_on(&vat.send(&c, "inc", vec![]), T).unwrap()),
        8
    );
    vat.shutdown();
}

/// Adds, fails after adding, or panics after adding, as told.
struct Acc(i64);

impl pola_vat::Object for Acc {
    fn receive(&self, cx: &mut pola_vat::Turn<'_>, m: &str, args: Vec<Val>) -> pola_vat::Outcome {
        let k = args.first().and_then(Val::as_i64).unwrap_or(0);
        if m == "get" {
            return Ok(n(self.0));
        }
        cx.become_(Acc(self.0 + k))?;
        // A nested call that fails must not undo the outer become.
        let me = cx.me().ok_or_else(|| error("me"))?;
        let _ = cx.call(&me, "fail", vec![n(1000)]);
        match m {
            "add" => Ok(n(self.0 + k)),
            "fail" => Err(error("fail")),
            _ => panic!("told to panic"),
        }
    }
}

#[test]
fn random_mix_of_good_and_failing_turns_matches_the_model() {
    let vat = Vat::new("model");
    let acc = vat.spawn(Acc(0));
    let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
    let mut model = 0i64;
    let mut answers = Vec::new();
    for _ in 0..500 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let k = (seed % 100) as i64;
        let (m, ok) = match seed % 5 {
            0 => ("fail", false),
            1 => ("panic", false),
            _ => ("add", true),
        };
        if ok {
            model += k;
        }
        answers.push((vat.send(&acc, m, vec![n(k)]), ok.then_some(model)));
    }
    for (p, expected) in answers {
        match expected {
            Some(v) => assert_eq!(int(&vat.block_on(&p, T).unwrap()), v),
            None => assert!(vat.block_on(&p, T).is_err()),
        }
    }
    assert_eq!(
        int(&vat.block_on(&vat.send(&acc, "get", vec![]), T).unwrap()),
        model
    );
    vat.shutdown();
}
