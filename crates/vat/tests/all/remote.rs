//! The `Remote` seam: an in-test "session" that carries messages between two
//! vats as Syrup bytes, with references exported and imported through
//! descriptor records (`<desc:export n>`, `<desc:import n>`), the way a
//! CapTP session will.

use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, OnceLock};

use pola_syrup::{NoRef, Value};
use pola_vat::{
    Message, Outcome, Ref, RefKind, Remote, Resolver, Val, Vat, error, error_message, from_fn,
};

use crate::support::{Counter, Log, T, int, list_ints, n};

/// One side of the fake session.
struct Side {
    vat: Vat,
    exports: Mutex<Vec<Ref>>,
    export_ids: Mutex<HashMap<Ref, u64>>,
    imports: Mutex<HashMap<u64, Ref>>,
    questions: Mutex<HashMap<u64, Resolver>>,
    next_question: AtomicU64,
}

enum Frame {
    Deliver {
        to: usize,
        bytes: Vec<u8>,
    },
    Answer {
        to: usize,
        question: u64,
        bytes: Vec<u8>,
    },
}

struct Net {
    sides: [Side; 2],
    tx: Mutex<Sender<Frame>>,
    me: OnceLock<std::sync::Weak<Net>>,
}

/// A far ref on side `holder` to export `export` of the other side.
struct Proxy {
    net: Arc<Net>,
    holder: usize,
    export: u64,
}

impl Remote for Proxy {
    fn deliver(&self, message: Message, resolver: Option<Resolver>) {
        let from = self.holder;
        let question = resolver.map(|r| {
            let q = self.net.sides[from]
                .next_question
                .fetch_add(1, Ordering::Relaxed);
            self.net.sides[from].questions.lock().unwrap().insert(q, r);
            q
        });
        let args = Val::List(message.args);
        let Ok(args) = self.net.export_val(from, args) else {
            return;
        };
        let frame = Value::record(
            "op:deliver",
            vec![
                Value::int(self.export as i64),
                Value::sym(message.method.into_owned()),
                args,
                question.map_or(Value::Bool(false), |q| Value::int(q as i64)),
            ],
        );
        let bytes = pola_syrup::encode(&frame);
        let _ = self.net.tx.lock().unwrap().send(Frame::Deliver {
            to: 1 - from,
            bytes,
        });
    }
}

impl Net {
    fn arc(&self) -> Arc<Net> {
        self.me.get().and_then(std::sync::Weak::upgrade).unwrap()
    }

    /// Refs leaving side `from`: its own imports from the peer go back as
    /// `desc:import`, everything else is exported.
    fn export_val(&self, from: usize, v: Val) -> Result<Value<NoRef>, ()> {
        v.try_map_refs(&mut |r: Ref| {
            if let Some(t) = r.remote_target() {
                let any: &dyn Any = &**t;
                if let Some(p) = any.downcast_ref::<Proxy>()
                    && p.holder == from
                {
                    return Ok(Value::record(
                        "desc:import",
                        vec![Value::int(p.export as i64)],
                    ));
                }
            }
            let side = &self.sides[from];
            let mut ids = side.export_ids.lock().unwrap();
            let id = *ids.entry(r.clone()).or_insert_with(|| {
                let mut ex = side.exports.lock().unwrap();
                ex.push(r.clone());
                (ex.len() - 1) as u64
            });
            Ok(Value::record("desc:export", vec![Value::int(id as i64)]))
        })
    }

    /// Plain data arriving at side `to`: descriptors become refs.
    fn import_val(&self, to: usize, v: Value<NoRef>) -> Val {
        if let Some(f) = v.as_record_labelled("desc:export") {
            let n = f[0].as_i64().unwrap() as u64;
            let mut imports = self.sides[to].imports.lock().unwrap();
            let r = imports.entry(n).or_insert_with(|| {
                Ref::remote(Arc::new(Proxy {
                    net: self.arc(),
                    holder: to,
                    export: n,
                }))
            });
            return Val::Ref(r.clone());
        }
        if let Some(f) = v.as_record_labelled("desc:import") {
            let n = f[0].as_i64().unwrap() as usize;
            return Val::Ref(self.sides[to].exports.lock().unwrap()[n].clone());
        }
        match v {
            Value::List(l) => Val::List(l.into_iter().map(|x| self.import_val(to, x)).collect()),
            Value::Record(r) => {
                let label = self.import_val(to, r.label);
                Val::Record(Box::new(pola_syrup::Record {
                    label,
                    fields: r
                        .fields
                        .into_iter()
                        .map(|x| self.import_val(to, x))
                        .collect(),
                }))
            }
            other => other.with_refs(),
        }
    }

    fn export_outcome(&self, from: usize, o: Outcome) -> Value<NoRef> {
        match o {
            Ok(v) => Value::record(
                "ok",
                vec![self.export_val(from, v).unwrap_or(Value::null())],
            ),
            Err(e) => Value::record(
                "err",
                vec![self.export_val(from, e).unwrap_or(Value::null())],
            ),
        }
    }

    /// The session driver: decodes frames and injects them into vats.
    fn drive(self: Arc<Self>, rx: Receiver<Frame>) {
        for frame in rx {
            match frame {
                Frame::Deliver { to, bytes } => {
                    let v = pola_syrup::decode(&bytes).unwrap();
                    let f = v.as_record_labelled("op:deliver").unwrap().to_vec();
                    let target = self.sides[to].exports.lock().unwrap()
                        [f[0].as_i64().unwrap() as usize]
                        .clone();
                    let method = f[1].as_symbol().unwrap().to_owned();
                    let args = match self.import_val(to, f[2].clone()) {
                        Val::List(l) => l,
                        _ => vec![],
                    };
                    let resolver = f[3].as_i64().map(|q| {
                        let net = self.clone();
                        Resolver::from_fn(move |o| {
                            let bytes = pola_syrup::encode(&net.export_outcome(to, o));
                            let _ = net.tx.lock().unwrap().send(Frame::Answer {
                                to: 1 - to,
                                question: q as u64,
                                bytes,
                            });
                        })
                    });
                    self.sides[to]
                        .vat
                        .deliver(&target, Message::new(method, args), resolver);
                }
                Frame::Answer {
                    to,
                    question,
                    bytes,
                } => {
                    let v = pola_syrup::decode(&bytes).unwrap();
                    let r = self.sides[to].questions.lock().unwrap().remove(&question);
                    let Some(r) = r else { continue };
                    if let Some(f) = v.as_record_labelled("ok") {
                        r.resolve_now(self.import_val(to, f[0].clone()));
                    } else if let Some(f) = v.as_record_labelled("err") {
                        r.break_now(self.import_val(to, f[0].clone()));
                    }
                }
            }
        }
    }
}

fn side(vat: Vat) -> Side {
    Side {
        vat,
        exports: Mutex::default(),
        export_ids: Mutex::default(),
        imports: Mutex::default(),
        questions: Mutex::default(),
        next_question: AtomicU64::new(0),
    }
}

/// Two vats joined by the fake session; returns the net and side 0's far ref
/// to `bootstrap` (an object of side 1).
fn connect(a: &Vat, b: &Vat, bootstrap: Ref) -> (Arc<Net>, Ref) {
    let (tx, rx) = channel();
    let net = Arc::new(Net {
        sides: [side(a.clone()), side(b.clone())],
        tx: Mutex::new(tx),
        me: OnceLock::new(),
    });
    let _ = net.me.set(Arc::downgrade(&net));
    net.sides[1].exports.lock().unwrap().push(bootstrap.clone());
    net.sides[1].export_ids.lock().unwrap().insert(bootstrap, 0);
    let boot = net.import_val(0, Value::record("desc:export", vec![Value::int(0i64)]));
    let n2 = net.clone();
    std::thread::spawn(move || n2.drive(rx));
    let Val::Ref(boot) = boot else { unreachable!() };
    (net, boot)
}

#[test]
fn messages_answers_and_refs_cross_the_seam() {
    let a = Vat::new("seam-a");
    let b = Vat::new("seam-b");
    let counter = b.spawn(Counter(0));
    let (_net, far) = connect(&a, &b, counter.clone());
    assert_eq!(far.kind_from(a.id()), RefKind::Far);

    // send, send_only and answers.
    a.send_only(&far, "inc", vec![]);
    assert_eq!(
        int(&a.block_on(&a.send(&far, "inc", vec![]), T).unwrap()),
        2
    );
    // Errors come back as broken promises.
    let e = a.block_on(&a.send(&far, "fail", vec![]), T).unwrap_err();
    assert_eq!(e.reason().and_then(error_message), Some("counter refuses"));
    // `when` on a remote object settles to the ref itself.
    assert_eq!(a.block_on(&far, T).unwrap(), Val::Ref(far.clone()));

    // Pipelining on a local promise that resolves to the far ref.
    let (p, r) = a.promise();
    let piped: Vec<Ref> = (0..20).map(|_| a.send(&p, "inc", vec![])).collect();
    r.resolve_now(Val::Ref(far.clone()));
    let last = piped.last().unwrap();
    assert_eq!(int(&a.block_on(last, T).unwrap()), 22);
    a.shutdown();
    b.shutdown();
}

#[test]
fn refs_passed_through_the_seam_work_both_ways() {
    let a = Vat::new("seam2-a");
    let b = Vat::new("seam2-b");
    // b's service: `store(log, x)` sends `add(x)` to the caller's log and
    // returns a fresh counter of its own.
    let service = b.spawn(from_fn(|cx, _m, args| {
        let log = args
            .first()
            .and_then(Val::as_ref)
            .ok_or_else(|| error("log"))?;
        if cx.kind(log) != RefKind::Far {
            return Err(error("expected an imported ref"));
        }
        let x = args.get(1).cloned().unwrap_or(Val::null());
        cx.send_only(log, "add", vec![x]);
        Ok(Val::Ref(cx.spawn(Counter(40))))
    }));
    let (_net, far) = connect(&a, &b, service);
    let log = a.spawn(Log::default());
    let c1 = a.send(&far, "store", vec![Val::Ref(log.clone()), n(1)]);
    let c1v = a.block_on(&c1, T).unwrap();
    // The counter made in b is far to a and usable.
    assert_eq!(
        int(&a.block_on(&a.send(&c1, "inc", vec![]), T).unwrap()),
        41
    );
    assert_eq!(
        int(&a
            .block_on(&a.send(c1v.as_ref().unwrap(), "inc", vec![]), T)
            .unwrap()),
        42
    );
    a.block_on(&a.send(&far, "store", vec![Val::Ref(log.clone()), n(2)]), T)
        .unwrap();
    // b's sends to a's log came through the seam in order. Wait on a marker
    // sent the same way (after the two stores).
    let marker = a.send(&far, "store", vec![Val::Ref(log.clone()), n(3)]);
    a.block_on(&marker, T).unwrap();
    let got = a.block_on(&a.send(&log, "get", vec![]), T);
    let got = list_ints(&got.unwrap());
    // Each `add` frame left b before its store's answer frame, and the
    // driver injects frames in order, so all three are in a's log.
    assert_eq!(got, [1, 2, 3]);
    a.shutdown();
    b.shutdown();
}

/// A far promise reached only through the seam (as a CapTP answer or an
/// imported promise would be): it lives in another vat and the `Remote`
/// forwards deliveries and listens to it.
struct FarPromise {
    vat: Vat,
    promise: Ref,
    delivered: AtomicU64,
    listened: AtomicU64,
}

impl Remote for FarPromise {
    fn deliver(&self, message: Message, resolver: Option<Resolver>) {
        self.delivered.fetch_add(1, Ordering::SeqCst);
        self.vat.deliver(&self.promise, message, resolver);
    }
    fn is_promise(&self) -> bool {
        true
    }
    fn listen(&self, resolver: Resolver) {
        self.listened.fetch_add(1, Ordering::SeqCst);
        pola_vat::listen_external(&self.promise, resolver);
    }
}

#[test]
fn remote_promises_pipeline_and_settle_through_listen() {
    let a = Vat::new("far-promise-a");
    let b = Vat::new("far-promise-b");
    let (p, resolve_p) = b.promise();
    let remote = Arc::new(FarPromise {
        vat: b.clone(),
        promise: p,
        delivered: AtomicU64::new(0),
        listened: AtomicU64::new(0),
    });
    let far = Ref::remote(remote.clone());
    assert_eq!(far.kind_from(a.id()), RefKind::Promise);
    // Pipelined sends go out through `deliver` at once, before resolution.
    let answers: Vec<Ref> = (0..5).map(|_| a.send(&far, "inc", vec![])).collect();
    // `when` in a turn, an outside wait, and a local promise forwarded to it.
    let f = far.clone();
    let doubled = a.run(move |cx| {
        Ok(Val::Ref(cx.when(&f, |cx, o| {
            let c = o?;
            let c = c.as_ref().cloned().ok_or_else(|| error("not a ref"))?;
            Ok(Val::Ref(cx.send(&c, "get", vec![])))
        })))
    });
    let waiting = a.settled(&far);
    let (local, resolve_local) = a.promise();
    resolve_local.resolve_now(Val::Ref(far.clone()));
    let waiting_local = a.settled(&local);

    let counter = b.spawn(Counter(0));
    resolve_p.resolve_now(Val::Ref(counter.clone()));
    let got: Vec<i64> = answers
        .iter()
        .map(|r| int(&a.block_on(r, T).unwrap()))
        .collect();
    assert_eq!(got, [1, 2, 3, 4, 5]);
    assert_eq!(int(&a.block_on(&doubled, T).unwrap()), 5);
    assert_eq!(waiting.wait(T).unwrap(), Val::Ref(counter.clone()));
    assert_eq!(waiting_local.wait(T).unwrap(), Val::Ref(counter.clone()));
    assert_eq!(remote.delivered.load(Ordering::SeqCst), 5);
    assert!(remote.listened.load(Ordering::SeqCst) >= 3);
    a.shutdown();
    b.shutdown();
}

/// A far object whose answers are far promises: `deliver` settles the local
/// answer at once with a `Remote` for the answer position, so messages sent
/// to the answer go straight to the far side (promise pipelining over the
/// seam, as CapTP does with answer positions).
struct PipeliningRemote {
    vat: Vat,
    target: Ref,
    answers: Arc<Mutex<Vec<Arc<FarPromise>>>>,
}

impl Remote for PipeliningRemote {
    fn deliver(&self, message: Message, resolver: Option<Resolver>) {
        let Some(resolver) = resolver else {
            self.vat.deliver(&self.target, message, None);
            return;
        };
        let (answer, r) = self.vat.promise();
        self.vat.deliver(&self.target, message, Some(r));
        let far = Arc::new(FarPromise {
            vat: self.vat.clone(),
            promise: answer,
            delivered: AtomicU64::new(0),
            listened: AtomicU64::new(0),
        });
        self.answers.lock().unwrap().push(far.clone());
        resolver.resolve_now(Val::Ref(Ref::remote(far)));
    }
}

#[test]
fn answers_pipeline_over_the_seam() {
    let a = Vat::new("pipe-seam-a");
    let b = Vat::new("pipe-seam-b");
    let maker = b.spawn(crate::support::Maker);
    let answers = Arc::new(Mutex::new(Vec::new()));
    let far = Ref::remote(Arc::new(PipeliningRemote {
        vat: b.clone(),
        target: maker,
        answers: answers.clone(),
    }));
    let m = far.clone();
    // One turn: make a counter far away and pipeline three incs on it.
    let last = a.run(move |cx| {
        let counter = cx.send(&m, "make", vec![n(10)]);
        let mut last = counter.clone();
        for _ in 0..3 {
            last = cx.send(&counter, "inc", vec![]);
        }
        Ok(Val::Ref(last))
    });
    assert_eq!(int(&a.block_on(&last, T).unwrap()), 13);
    // The incs went to the far answer position, not through a round trip.
    let answers = answers.lock().unwrap();
    assert_eq!(answers[0].delivered.load(Ordering::SeqCst), 3);
    a.shutdown();
    b.shutdown();
}
