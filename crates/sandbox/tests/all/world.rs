//! A tiny event loop for the tests: native objects, promises, revocable
//! forwarders, and caplet instances, wired through `Outside`. Real enough
//! to run the caplets end to end; the vat crate will be the real one.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;

use pola_sandbox::{CallError, CapletInstance, CapletModule, Outside, Refused};
use pola_syrup::Value;

/// A reference in the test world.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TRef {
    /// A native object (see `World::native`).
    Native(u32),
    /// A caplet instance, by index in `Driver::caplets`.
    Caplet(usize),
    /// A promise.
    Promise(u32),
    /// A promise's resolver.
    Resolver(u32),
    /// A revocable forwarder (`World::revocable`): forwards to its target
    /// until revoked, then breaks every message with "revoked". The test
    /// world's model of the vat's `pola_vat::patterns::revocable`.
    Fwd(u32),
}

pub type TVal = Value<TRef>;
pub type Outcome = Result<TVal, TVal>;

enum PState {
    Pending(Vec<(usize, i64)>),
    Settled(Outcome),
}

enum Event {
    Deliver {
        target: TRef,
        msg: TVal,
        answer: Option<u32>,
    },
    Notify {
        caplet: usize,
        tag: i64,
        outcome: Outcome,
    },
}

/// Shared state of the world.
#[derive(Default)]
pub struct World {
    next: u32,
    promises: BTreeMap<u32, PState>,
    queue: VecDeque<Event>,
    /// Forwarders: target, and whether still open.
    forwarders: BTreeMap<u32, (TRef, bool)>,
    /// Every message a native object received: (object id, message).
    pub received: Vec<(u32, TVal)>,
    /// Counter of native object 0.
    pub counter: i64,
}

impl World {
    fn fresh(&mut self) -> u32 {
        self.next += 1;
        self.next
    }

    /// A revocable forwarder to `target`.
    pub fn revocable(&mut self, target: TRef) -> TRef {
        let f = self.fresh();
        self.forwarders.insert(f, (target, true));
        TRef::Fwd(f)
    }

    /// Revokes a forwarder made by `revocable`, for every holder at once.
    pub fn revoke(&mut self, fwd: &TRef) {
        if let TRef::Fwd(f) = fwd
            && let Some((_, open)) = self.forwarders.get_mut(f)
        {
            *open = false;
        }
    }

    /// A new pending promise; returns its id.
    pub fn promise(&mut self) -> u32 {
        let p = self.fresh();
        self.promises.insert(p, PState::Pending(Vec::new()));
        p
    }

    /// The outcome of a promise, if settled.
    pub fn outcome(&self, p: u32) -> Option<&Outcome> {
        match self.promises.get(&p) {
            Some(PState::Settled(o)) => Some(o),
            _ => None,
        }
    }

    fn settle(&mut self, p: u32, outcome: Outcome) {
        let old = self.promises.insert(p, PState::Settled(outcome.clone()));
        match old {
            Some(PState::Pending(waiters)) => {
                for (caplet, tag) in waiters {
                    self.queue.push_back(Event::Notify {
                        caplet,
                        tag,
                        outcome: outcome.clone(),
                    });
                }
            }
            // Settling twice is a bug in the sandbox: keep the first.
            Some(s @ PState::Settled(_)) => {
                self.promises.insert(p, s);
                panic!("promise {p} settled twice");
            }
            None => {}
        }
    }

    /// Native objects: 0 = counter (`increment` -> new count), anything
    /// else records what it receives and answers `true`.
    fn native(&mut self, id: u32, msg: TVal) -> Outcome {
        self.received.push((id, msg.clone()));
        let method = msg
            .as_list()
            .and_then(|l| l.first())
            .and_then(Value::as_symbol)
            .unwrap_or("");
        match (id, method) {
            (0, "increment") => {
                self.counter += 1;
                Ok(Value::int(self.counter))
            }
            (0, _) => Err(Value::str("counter: no such method")),
            _ => Ok(Value::Bool(true)),
        }
    }
}

/// The `Outside` of one caplet instance.
pub struct Link {
    pub world: Rc<RefCell<World>>,
    pub me: usize,
}

impl Outside for Link {
    type Ref = TRef;

    fn send(&mut self, target: &TRef, message: TVal) -> Result<TRef, Refused> {
        let mut w = self.world.borrow_mut();
        let p = w.promise();
        w.queue.push_back(Event::Deliver {
            target: target.clone(),
            msg: message,
            answer: Some(p),
        });
        Ok(TRef::Promise(p))
    }

    fn send_only(&mut self, target: &TRef, message: TVal) -> Result<(), Refused> {
        self.world.borrow_mut().queue.push_back(Event::Deliver {
            target: target.clone(),
            msg: message,
            answer: None,
        });
        Ok(())
    }

    fn settle(&mut self, resolver: TRef, outcome: Outcome) {
        if let TRef::Resolver(p) = resolver {
            self.world.borrow_mut().settle(p, outcome);
        }
    }

    fn when(&mut self, promise: &TRef, tag: i64) -> Result<(), Refused> {
        let TRef::Promise(p) = promise else {
            return Err(Refused);
        };
        let mut w = self.world.borrow_mut();
        match w.promises.get_mut(p) {
            Some(PState::Pending(waiters)) => waiters.push((self.me, tag)),
            Some(PState::Settled(o)) => {
                let outcome = o.clone();
                w.queue.push_back(Event::Notify {
                    caplet: self.me,
                    tag,
                    outcome,
                });
            }
            None => return Err(Refused),
        }
        Ok(())
    }
}

/// Runs the world: the caplet instances and the event queue.
pub struct Driver {
    pub world: Rc<RefCell<World>>,
    pub caplets: Vec<CapletInstance<Link>>,
    /// Errors from deliveries made by the event loop, in order.
    pub errors: Vec<(usize, CallError)>,
}

impl Driver {
    pub fn new() -> Self {
        Driver {
            world: Rc::default(),
            caplets: Vec::new(),
            errors: Vec::new(),
        }
    }

    /// Adds a fresh instance of `module`; returns its reference.
    pub fn spawn(&mut self, module: &CapletModule<Link>) -> TRef {
        let me = self.caplets.len();
        let inst = module
            .instantiate(Link {
                world: self.world.clone(),
                me,
            })
            .expect("instantiate");
        self.caplets.push(inst);
        TRef::Caplet(me)
    }

    /// Replaces caplet `i` with a fresh instance of `module`.
    pub fn replace(&mut self, i: usize, module: &CapletModule<Link>) {
        let inst = module
            .instantiate(Link {
                world: self.world.clone(),
                me: i,
            })
            .expect("instantiate");
        self.caplets[i] = inst;
    }

    /// Sends `method(args…)` to `target`, runs the world until quiet, and
    /// returns the promise's outcome (None if still pending).
    pub fn call(&mut self, target: &TRef, method: &str, args: Vec<TVal>) -> Option<Outcome> {
        let p = self.world.borrow_mut().promise();
        self.enqueue(target, method, args, Some(p));
        self.run();
        self.world.borrow().outcome(p).cloned()
    }

    /// Like `call`, but panics unless the answer is a fulfilment.
    pub fn ok(&mut self, target: &TRef, method: &str, args: Vec<TVal>) -> TVal {
        match self.call(target, method, args) {
            Some(Ok(v)) => v,
            other => panic!("{method}: expected an answer, got {other:?}"),
        }
    }

    pub fn enqueue(&mut self, target: &TRef, method: &str, args: Vec<TVal>, answer: Option<u32>) {
        let mut items = vec![Value::sym(method)];
        items.extend(args);
        self.world.borrow_mut().queue.push_back(Event::Deliver {
            target: target.clone(),
            msg: Value::List(items),
            answer,
        });
    }

    /// Processes events until the queue is empty (bounded, to be safe).
    pub fn run(&mut self) {
        for _ in 0..10_000 {
            let ev = self.world.borrow_mut().queue.pop_front();
            let Some(ev) = ev else { return };
            match ev {
                Event::Deliver {
                    target,
                    msg,
                    answer,
                } => self.deliver(target, msg, answer),
                Event::Notify {
                    caplet,
                    tag,
                    outcome,
                } => {
                    if let Some(c) = self.caplets.get_mut(caplet)
                        && let Err(e) = c.notify(tag, outcome)
                    {
                        self.errors.push((caplet, e));
                    }
                }
            }
        }
        panic!("world did not quiesce");
    }

    fn deliver(&mut self, target: TRef, msg: TVal, answer: Option<u32>) {
        match target {
            TRef::Caplet(i) => {
                let r = self.caplets[i].deliver(msg, answer.map(TRef::Resolver));
                if let Err(e) = r {
                    self.errors.push((i, e));
                }
            }
            TRef::Native(id) => {
                let mut w = self.world.borrow_mut();
                let outcome = w.native(id, msg);
                if let Some(p) = answer {
                    w.settle(p, outcome);
                }
            }
            TRef::Fwd(f) => {
                let mut w = self.world.borrow_mut();
                let fwd = w.forwarders.get(&f).cloned();
                match fwd {
                    Some((t, true)) => w.queue.push_back(Event::Deliver {
                        target: t,
                        msg,
                        answer,
                    }),
                    _ => {
                        if let Some(p) = answer {
                            w.settle(p, Err(Value::str("revoked")));
                        }
                    }
                }
            }
            TRef::Promise(p) => {
                // Deliver to what the promise resolved to, if anything.
                let mut w = self.world.borrow_mut();
                match w.outcome(p).cloned() {
                    Some(Ok(Value::Ref(t))) => w.queue.push_back(Event::Deliver {
                        target: t,
                        msg,
                        answer,
                    }),
                    _ => {
                        if let Some(a) = answer {
                            w.settle(a, Err(Value::str("not a reference")));
                        }
                    }
                }
            }
            TRef::Resolver(_) => {
                if let Some(a) = answer {
                    self.world
                        .borrow_mut()
                        .settle(a, Err(Value::str("not a reference")));
                }
            }
        }
    }
}
