//! Several vats in one process: identity of refs across vats, refs passed
//! back and forth, vats on several threads at once.

use pola_vat::{RefKind, Val, Vat, error, from_fn};

use crate::support::{Counter, T, as_ref, int, n};

#[test]
fn refs_keep_identity_across_vats() {
    let a = Vat::new("id-a");
    let b = Vat::new("id-b");
    let c = a.spawn(Counter(0));
    // An echo in b returns what it gets; the ref that comes back is the same.
    let echo = b.spawn(from_fn(|cx, _m, mut args| {
        let v = args.pop().ok_or_else(|| error("arg"))?;
        let r = v.as_ref().ok_or_else(|| error("not a ref"))?;
        // Seen from b, a's counter is far.
        if cx.kind(r) != RefKind::Far {
            return Err(error("expected far"));
        }
        Ok(v)
    }));
    let back = a
        .block_on(&a.send(&echo, "echo", vec![Val::Ref(c.clone())]), T)
        .unwrap();
    assert_eq!(as_ref(&back), c);
    assert_eq!(c.kind_from(a.id()), RefKind::Near);
    assert_eq!(c.kind_from(b.id()), RefKind::Far);
    a.shutdown();
    b.shutdown();
}

#[test]
fn ping_pong_between_vats() {
    let a = Vat::new("ping");
    let b = Vat::new("pong");
    let counter = b.spawn(Counter(0));
    let ctr = counter.clone();
    // The pinger sends to b, awaits the answer with `when`, and repeats.
    let pinger = a.spawn(from_fn(move |cx, _m, args| {
        let count = args.first().and_then(Val::as_i64).unwrap_or(0);
        let ans = cx.send(&ctr, "inc", vec![]);
        let me = cx.me().ok_or_else(|| error("me"))?;
        Ok(Val::Ref(cx.when(&ans, move |cx, o| {
            let v = o?;
            if count <= 1 {
                Ok(v)
            } else {
                Ok(Val::Ref(cx.send(&me, "go", vec![n(count - 1)])))
            }
        })))
    }));
    let v = a.block_on(&a.send(&pinger, "go", vec![n(200)]), T).unwrap();
    assert_eq!(int(&v), 200);
    a.shutdown();
    b.shutdown();
}

#[test]
fn many_vats_work_at_once() {
    let vats: Vec<Vat> = (0..8).map(|i| Vat::new(&format!("many-{i}"))).collect();
    let counters: Vec<_> = vats.iter().map(|v| v.spawn(Counter(0))).collect();
    // Every vat increments every other vat's counter 50 times.
    let mut done = Vec::new();
    for (i, v) in vats.iter().enumerate() {
        let targets = counters.clone();
        done.push(v.run(move |cx| {
            let mut last = Vec::new();
            for (j, t) in targets.iter().enumerate() {
                if i != j {
                    for _ in 0..50 {
                        last.push(Val::Ref(cx.send(t, "inc", vec![])));
                    }
                }
            }
            Ok(Val::List(last))
        }));
    }
    for (v, d) in vats.iter().zip(&done) {
        let answers = v.block_on(d, T).unwrap();
        for a in answers.as_list().unwrap() {
            v.block_on(&as_ref(a), T).unwrap();
        }
    }
    for (v, c) in vats.iter().zip(&counters) {
        assert_eq!(
            int(&v.block_on(&v.send(c, "get", vec![]), T).unwrap()),
            7 * 50
        );
    }
    vats.iter().for_each(Vat::shutdown);
}
