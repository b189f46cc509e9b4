//! Persistent vats: kinds and portraits, restart, lazy revival, output
//! commit, what may not be stored, hostile records, upgrade.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pola_vat::backend::{Backend, BackendError, Batch, MemoryBackend, Opened};
use pola_vat::persist::{Kinds, Portrait};
use pola_vat::{Object, Outcome, Ref, Turn, Val, Vat, WaitError, error, error_message, from_fn};

use crate::support::T;

/// A persistent counter that may hold a reference to another object.
struct Cell {
    n: i64,
    next: Option<Ref>,
}

impl Object for Cell {
    fn receive(&self, cx: &mut Turn<'_>, method: &str, args: Vec<Val>) -> Outcome {
        match method {
            "inc" => {
                cx.become_(Cell {
                    n: self.n + 1,
                    next: self.next.clone(),
                })?;
                Ok(Val::int(self.n + 1))
            }
            "get" => Ok(Val::int(self.n)),
            // Sum along the chain, by synchronous calls (each revived lazily).
            "sum" => match &self.next {
                Some(next) => {
                    let rest = cx.call(next, "sum", Vec::new())?;
                    Ok(Val::int(self.n + rest.as_i64().unwrap_or(0)))
                }
                None => Ok(Val::int(self.n)),
            },
            "hold" => {
                let next = args.first().and_then(Val::as_ref).cloned();
                cx.become_(Cell { n: self.n, next })?;
                Ok(Val::null())
            }
            "spawn_next" => {
                let next = cx.spawn(Cell { n: 0, next: None });
                cx.become_(Cell {
                    n: self.n,
                    next: Some(next.clone()),
                })?;
                Ok(Val::Ref(next))
            }
            "inc_then_fail" => {
                cx.become_(Cell {
                    n: self.n + 1,
                    next: self.next.clone(),
                })?;
                Err(error("refused after inc"))
            }
            "go_ephemeral" => {
                cx.become_(from_fn(|_, _, _| Ok(Val::null())))?;
                Ok(Val::null())
            }
            _ => Err(error("no such method")),
        }
    }

    fn portrait(&self) -> Option<Portrait> {
        let next = self.next.clone().map_or(Val::null(), Val::Ref);
        Some(Portrait::new(
            "cell",
            1,
            Val::List(vec![Val::int(self.n), next]),
        ))
    }
}

fn make_cell(_version: u32, state: Val) -> Result<Cell, Val> {
    let bad = || error("cell: bad state");
    let [n, next] = state.as_list().ok_or_else(bad)? else {
        return Err(bad());
    };
    Ok(Cell {
        n: n.as_i64().ok_or_else(bad)?,
        next: next.as_ref().cloned(),
    })
}

fn kinds() -> Kinds {
    let mut k = Kinds::new();
    k.add("cell", 1, make_cell);
    k
}

fn open(backend: &MemoryBackend) -> Vat {
    Vat::open("p", backend.clone(), kinds()).unwrap()
}

fn call(vat: &Vat, target: &Ref, method: &'static str, args: Vec<Val>) -> Result<Val, WaitError> {
    vat.block_on(&vat.send(target, method, args), T)
}

fn broken_text(r: Result<Val, WaitError>) -> String {
    match r {
        Err(WaitError::Broken(e)) => error_message(&e).unwrap_or("?").to_owned(),
        other => panic!("expected a broken promise, got {other:?}"),
    }
}

/// Makes a root cell in a fresh vat.
fn new_root(vat: &Vat, name: &'static str) -> Ref {
    let made = vat.run(move |cx| {
        let c = cx.spawn(Cell { n: 0, next: None });
        cx.set_root(name, Some(&c))?;
        Ok(Val::Ref(c))
    });
    vat.block_on(&made, T).unwrap().as_ref().cloned().unwrap()
}

#[test]
fn objects_and_roots_survive_a_restart() {
    let backend = MemoryBackend::new();
    let vat = open(&backend);
    let root = new_root(&vat, "counter");
    for _ in 0..3 {
        call(&vat, &root, "inc", vec![]).unwrap();
    }
    vat.shutdown();

    let vat = open(&backend);
    assert_eq!(vat.root_names(), vec!["counter".to_owned()]);
    let root = vat.root("counter").unwrap();
    assert_eq!(call(&vat, &root, "inc", vec![]).unwrap(), Val::int(4i64));
    assert!(vat.root("nothing").is_none());
    vat.shutdown();
}

#[test]
fn references_between_persistent_objects_revive_lazily() {
    let backend = MemoryBackend::new();
    let vat = open(&backend);
    let root = new_root(&vat, "head");
    // A chain of 50 cells, each holding the next; every one counts 1.
    let mut cur = root.clone();
    for _ in 0..50 {
        call(&vat, &cur, "inc", vec![]).unwrap();
        cur = call(&vat, &cur, "spawn_next", vec![])
            .unwrap()
            .as_ref()
            .cloned()
            .unwrap();
    }
    vat.shutdown();
    let stored = backend.with(|c| c.objects.len());
    assert_eq!(stored, 51);

    let vat = open(&backend);
    let head = vat.root("head").unwrap();
    // The head alone revives for `get`; `sum` walks (and revives) the chain.
    assert_eq!(call(&vat, &head, "get", vec![]).unwrap(), Val::int(1i64));
    assert_eq!(call(&vat, &head, "sum", vec![]).unwrap(), Val::int(50i64));
    vat.shutdown();
}

#[test]
fn a_failed_turn_writes_nothing() {
    let backend = MemoryBackend::new();
    let vat = open(&backend);
    let root = new_root(&vat, "c");
    call(&vat, &root, "inc", vec![]).unwrap();
    let before = backend.with(|c| (c.objects.clone(), c.writes));
    assert!(call(&vat, &root, "inc_then_fail", vec![]).is_err());
    assert_eq!(call(&vat, &root, "get", vec![]).unwrap(), Val::int(1i64));
    let after = backend.with(|c| c.objects.clone());
    assert_eq!(before.0, after);
    vat.shutdown();
}

#[test]
fn what_cannot_be_stored_fails_the_turn_with_a_reason() {
    let backend = MemoryBackend::new();
    let vat = open(&backend);
    let root = new_root(&vat, "c");
    let before = backend.with(|c| c.objects.clone());

    // An ephemeral object (a closure).
    let ephemeral = vat.spawn(from_fn(|_, _, _| Ok(Val::null())));
    let e = broken_text(call(&vat, &root, "hold", vec![Val::Ref(ephemeral)]));
    assert!(e.contains("ephemeral"), "{e}");
    // A promise.
    let (p, _r) = vat.promise();
    let e = broken_text(call(&vat, &root, "hold", vec![Val::Ref(p)]));
    assert!(e.contains("promise"), "{e}");
    // An object of another vat.
    let other = Vat::new("other");
    let far = other.spawn(Cell { n: 0, next: None });
    let e = broken_text(call(&vat, &root, "hold", vec![Val::Ref(far)]));
    assert!(e.contains("another vat"), "{e}");
    // Becoming ephemeral.
    let e = broken_text(call(&vat, &root, "go_ephemeral", vec![]));
    assert!(e.contains("ephemeral"), "{e}");
    // A kind the vat does not know.
    struct Stray;
    impl Object for Stray {
        fn receive(&self, _: &mut Turn<'_>, _: &str, _: Vec<Val>) -> Outcome {
            Ok(Val::null())
        }
        fn portrait(&self) -> Option<Portrait> {
            Some(Portrait::new("stray", 1, Val::null()))
        }
    }
    let stray = vat.run(|cx| Ok(Val::Ref(cx.spawn(Stray))));
    let e = broken_text(vat.block_on(&stray, T));
    assert!(e.contains("not registered"), "{e}");

    // None of it was written, and the object still works.
    assert_eq!(backend.with(|c| c.objects.clone()), before);
    assert_eq!(call(&vat, &root, "inc", vec![]).unwrap(), Val::int(1i64));
    // A broken reference can be stored.
    let broken = Ref::broken(error("gone"));
    call(&vat, &root, "hold", vec![Val::Ref(broken)]).unwrap();
    vat.shutdown();
    other.shutdown();
    let vat = open(&backend);
    let root = vat.root("c").unwrap();
    assert_eq!(call(&vat, &root, "get", vec![]).unwrap(), Val::int(1i64));
    vat.shutdown();
}

#[test]
fn rights_amplification_by_type_sees_only_genuine_objects() {
    let backend = MemoryBackend::new();
    let vat = open(&backend);
    let root = new_root(&vat, "c");
    let fake = vat.spawn(from_fn(|_, _, _| Ok(Val::int(1_000_000i64))));
    let probe = |target: Ref| {
        vat.block_on(
            &vat.run(move |cx| Ok(Val::Bool(cx.inspect::<Cell>(&target).is_some()))),
            T,
        )
        .unwrap()
    };
    assert_eq!(probe(root.clone()), Val::Bool(true));
    assert_eq!(probe(fake), Val::Bool(false));
    assert_eq!(probe(Ref::broken(error("x"))), Val::Bool(false));
    vat.shutdown();
    // After a restart, inspecting revives the stored object.
    let vat = open(&backend);
    let root = vat.root("c").unwrap();
    let seen = vat.run(move |cx| Ok(Val::int(cx.inspect::<Cell>(&root).map_or(-1, |c| c.n))));
    assert_eq!(vat.block_on(&seen, T).unwrap(), Val::int(0i64));
    vat.shutdown();
}

/// A backend whose writes wait for a go-ahead (or fail on demand).
#[derive(Clone)]
struct Gated {
    inner: MemoryBackend,
    gate: Arc<Mutex<mpsc::Receiver<bool>>>,
    armed: Arc<Mutex<bool>>,
}

impl Backend for Gated {
    fn open(&mut self) -> Result<Opened, BackendError> {
        self.inner.open()
    }
    fn load(&mut self, id: u64) -> Result<Option<Vec<u8>>, BackendError> {
        self.inner.load(id)
    }
    fn ids(&mut self) -> Result<Vec<u64>, BackendError> {
        self.inner.ids()
    }
    fn write(&mut self, batch: &Batch) -> Result<(), BackendError> {
        if *self.armed.lock().unwrap() {
            let ok = self.gate.lock().unwrap().recv().unwrap_or(false);
            if !ok {
                return Err(BackendError("disk on fire".into()));
            }
        }
        self.inner.write(batch)
    }
}

#[test]
fn answers_leave_only_after_their_turn_is_durable() {
    let (go, gate) = mpsc::channel();
    let backend = Gated {
        inner: MemoryBackend::new(),
        gate: Arc::new(Mutex::new(gate)),
        armed: Arc::new(Mutex::new(false)),
    };
    let vat = Vat::open("gated", backend.clone(), kinds()).unwrap();
    let root = new_root(&vat, "c");
    *backend.armed.lock().unwrap() = true;

    let answer = vat.send(&root, "inc", vec![]);
    // The turn ran, but its write is held at the gate: no answer yet.
    assert!(matches!(
        vat.block_on(&answer, Duration::from_millis(200)),
        Err(WaitError::Timeout)
    ));
    assert_eq!(backend.inner.with(|c| c.writes), 1);
    go.send(true).unwrap();
    assert_eq!(vat.block_on(&answer, T).unwrap(), Val::int(1i64));

    // A write that fails: the answer breaks, the vat stops and says why;
    // a promise of another vat waiting on it breaks too (never hangs).
    let answer = vat.send(&root, "inc", vec![]);
    let other = Vat::new("other");
    let target = root.clone();
    let from_other = other.run(move |cx| Ok(Val::Ref(cx.send(&target, "inc", vec![]))));
    go.send(false).unwrap();
    let e = broken_text(vat.block_on(&answer, T));
    assert!(e.contains("store failed"), "{e}");
    let e = broken_text(other.block_on(&from_other, T));
    assert!(e.contains("store failed") || e.contains("stopped"), "{e}");
    other.shutdown();
    let deadline = std::time::Instant::now() + T;
    while vat.storage_error().is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(vat.storage_error().as_deref(), Some("disk on fire"));
    *backend.armed.lock().unwrap() = false;
    vat.shutdown();
    // What was durable is there; the lost turn is not.
    let vat = Vat::open("gated", backend.inner.clone(), kinds()).unwrap();
    let root = vat.root("c").unwrap();
    assert_eq!(call(&vat, &root, "get", vec![]).unwrap(), Val::int(1i64));
    vat.shutdown();
}

#[test]
fn turns_are_written_in_groups() {
    let backend = MemoryBackend::new();
    let vat = open(&backend);
    let root = new_root(&vat, "c");
    let writes_before = backend.with(|c| c.writes);
    // A burst: the vat runs them back to back and writes them together.
    let answers: Vec<Ref> = (0..1000).map(|_| vat.send(&root, "inc", vec![])).collect();
    for a in &answers {
        vat.block_on(a, T).unwrap();
    }
    let writes = backend.with(|c| c.writes) - writes_before;
    assert!(writes < 1000 / 4, "1000 turns took {writes} writes");
    assert_eq!(call(&vat, &root, "get", vec![]).unwrap(), Val::int(1000i64));
    vat.shutdown();
}

/// A vat with `n` cells under roots, then a store doctored by `f`.
fn doctored(f: impl FnOnce(&mut pola_vat::backend::MemoryContents)) -> (MemoryBackend, Vat) {
    let backend = MemoryBackend::new();
    let vat = open(&backend);
    for name in ["a", "b"] {
        let r = new_root(&vat, name);
        call(&vat, &r, "inc", vec![]).unwrap();
    }
    vat.shutdown();
    backend.with(f);
    let vat = open(&backend);
    (backend, vat)
}

fn id_of(c: &pola_vat::backend::MemoryContents, root: &str) -> u64 {
    c.roots[root]
}

#[test]
fn hostile_records_break_one_object_and_the_rest_revives() {
    type Spoil = Box<dyn Fn(&mut Vec<u8>)>;
    let cases: Vec<(&str, Spoil)> = vec![
        ("corrupt", Box::new(|b| *b = b"<11'pola:object".to_vec())),
        ("not an object", Box::new(|b| *b = b"[1+2+]".to_vec())),
        (
            "unknown kind",
            Box::new(|b| *b = b"<11'pola:object7'unknown1+t>".to_vec()),
        ),
        (
            "version 9",
            Box::new(|b| *b = b"<11'pola:object4'cell9+[1+f]>".to_vec()),
        ),
        (
            "cell: bad state",
            Box::new(|b| *b = b"<11'pola:object4'cell1+t>".to_vec()),
        ),
        ("too large", Box::new(|b| *b = vec![b'['; (16 << 20) + 1])),
    ];
    for (expect, spoil) in cases {
        let (_backend, vat) = doctored(|c| {
            let id = id_of(c, "a");
            if let Some(b) = c.objects.get_mut(&id) {
                spoil(b);
            }
        });
        let e = broken_text(call(&vat, &vat.root("a").unwrap(), "get", vec![]));
        assert!(e.contains(expect), "{expect}: {e}");
        assert_eq!(
            call(&vat, &vat.root("b").unwrap(), "get", vec![]).unwrap(),
            Val::int(1i64)
        );
        vat.shutdown();
    }
    // A reference to an object that is not stored: messages to it say so.
    let (_backend, vat) = doctored(|c| {
        let id = id_of(c, "a");
        c.objects.insert(
            id,
            b"<11'pola:object4'cell1+[1+<8'pola:ref999999+>]>".to_vec(),
        );
    });
    let a = vat.root("a").unwrap();
    assert_eq!(call(&vat, &a, "get", vec![]).unwrap(), Val::int(1i64));
    let e = broken_text(call(&vat, &a, "sum", vec![]));
    assert!(e.contains("no such object"), "{e}");
    vat.shutdown();
}

/// Version 2 of the cell keeps its count in a record; it migrates v1's.
fn kinds_v2(fail: bool) -> Kinds {
    struct Cell2(i64);
    impl Object for Cell2 {
        fn receive(&self, cx: &mut Turn<'_>, method: &str, _: Vec<Val>) -> Outcome {
            match method {
                "get" => Ok(Val::int(self.0)),
                "inc" => {
                    cx.become_(Cell2(self.0 + 1))?;
                    Ok(Val::int(self.0 + 1))
                }
                _ => Err(error("no such method")),
            }
        }
        fn portrait(&self) -> Option<Portrait> {
            Some(Portrait::new(
                "cell",
                2,
                Val::record("count", vec![Val::int(self.0)]),
            ))
        }
    }
    let mut k = Kinds::new();
    k.add("cell", 2, move |version, state| {
        let n = match version {
            1 if fail => return Err(error("migration refused")),
            1 => make_cell(1, state)?.n,
            _ => state
                .as_record_labelled("count")
                .and_then(|f| f.first())
                .and_then(Val::as_i64)
                .ok_or_else(|| error("cell v2: bad state"))?,
        };
        Ok(Cell2(n))
    });
    k
}

#[test]
fn upgrade_migrates_old_portraits_and_a_failed_migration_keeps_them() {
    let backend = MemoryBackend::new();
    let vat = open(&backend);
    let root = new_root(&vat, "c");
    call(&vat, &root, "inc", vec![]).unwrap();
    vat.shutdown();
    let v1 = backend.with(|c| c.objects.clone());

    // A migration that fails: the object is unusable, the v1 record stays.
    let vat = Vat::open("p", backend.clone(), kinds_v2(true)).unwrap();
    let e = broken_text(call(&vat, &vat.root("c").unwrap(), "get", vec![]));
    assert!(e.contains("migration refused"), "{e}");
    vat.shutdown();
    assert_eq!(backend.with(|c| c.objects.clone()), v1);

    // The fixed migration reads v1; the next change writes v2.
    let vat = Vat::open("p", backend.clone(), kinds_v2(false)).unwrap();
    let root = vat.root("c").unwrap();
    assert_eq!(call(&vat, &root, "get", vec![]).unwrap(), Val::int(1i64));
    assert_eq!(call(&vat, &root, "inc", vec![]).unwrap(), Val::int(2i64));
    vat.shutdown();
    // v1 code cannot read what v2 wrote, and says so.
    let vat = open(&backend);
    let e = broken_text(call(&vat, &vat.root("c").unwrap(), "get", vec![]));
    assert!(e.contains("version 2"), "{e}");
    vat.shutdown();
}

#[test]
fn a_spawn_from_outside_is_stored_too() {
    let backend = MemoryBackend::new();
    let vat = open(&backend);
    let c = vat.spawn(Cell { n: 5, next: None });
    let named = c.clone();
    vat.block_on(
        &vat.run(move |cx| cx.set_root("x", Some(&named)).map(|()| Val::null())),
        T,
    )
    .unwrap();
    vat.shutdown();
    let vat = open(&backend);
    assert_eq!(
        call(&vat, &vat.root("x").unwrap(), "get", vec![]).unwrap(),
        Val::int(5i64)
    );
    vat.shutdown();
}

#[test]
fn a_stored_reference_to_an_unmade_object_never_names_a_later_one() {
    // A damaged record in `a` refers to an id the store never handed out.
    let (_backend, vat) = doctored(|c| {
        let id = id_of(c, "a");
        let future = c.next_id + 1;
        c.objects.insert(
            id,
            format!("<11'pola:object4'cell1+[1+<8'pola:ref{future}+>]>").into_bytes(),
        );
    });
    let a = vat.root("a").unwrap();
    assert_eq!(call(&vat, &a, "get", vec![]).unwrap(), Val::int(1i64));
    // Objects made after the revival get fresh ids: the damaged reference
    // still reaches nothing.
    let fresh: Vec<Ref> = (0..4)
        .map(|_| vat.spawn(Cell { n: 42, next: None }))
        .collect();
    for f in &fresh {
        assert_eq!(call(&vat, f, "get", vec![]).unwrap(), Val::int(42i64));
    }
    let e = broken_text(call(&vat, &a, "sum", vec![]));
    assert!(e.contains("no such object"), "{e}");
    vat.shutdown();
    // Ids beyond any vat's reach, in a record or a root, are refused.
    let (_backend, vat) = doctored(|c| {
        let id = id_of(c, "a");
        c.objects.insert(
            id,
            b"<11'pola:object4'cell1+[1+<8'pola:ref1152921504606846976+>]>".to_vec(),
        );
    });
    let e = broken_text(call(&vat, &vat.root("a").unwrap(), "get", vec![]));
    assert!(e.contains("malformed"), "{e}");
    vat.shutdown();
    let backend = MemoryBackend::new();
    backend.with(|c| {
        c.roots.insert("x".into(), u64::MAX - 1);
    });
    let refused = Vat::open("p", backend, kinds());
    assert!(matches!(refused, Err(pola_vat::OpenError::Store(_))));
}

/// A far object that answers its recipe to every message and counts
/// deliveries (what an OCapN peer's sturdy reference looks like to a vat).
struct Far {
    recipe: Option<Val>,
    delivered: Arc<Mutex<u32>>,
}

impl pola_vat::Remote for Far {
    fn deliver(&self, _message: pola_vat::Message, resolver: Option<pola_vat::Resolver>) {
        *self.delivered.lock().unwrap() += 1;
        if let Some(r) = resolver {
            r.settle_now(Ok(self.recipe.clone().unwrap_or(Val::null())));
        }
    }

    fn recipe(&self) -> Option<Val> {
        self.recipe.clone()
    }
}

/// A cell that forwards `ask` to the object it holds.
fn ask(vat: &Vat, cell: &Ref) -> Result<Val, WaitError> {
    let cell = cell.clone();
    let asked = vat.run(move |cx| {
        let held = cx.call(&cell, "held", Vec::new())?;
        let held = held
            .as_ref()
            .cloned()
            .ok_or_else(|| error("holds nothing"))?;
        Ok(Val::Ref(cx.send(&held, "ask", Vec::new())))
    });
    vat.block_on(&asked, T)
}

#[test]
fn far_references_are_stored_as_recipes_and_made_again_lazily() {
    struct Holder(Option<Ref>);
    impl Object for Holder {
        fn receive(&self, cx: &mut Turn<'_>, method: &str, args: Vec<Val>) -> Outcome {
            match method {
                "hold" => {
                    cx.become_(Holder(args.first().and_then(Val::as_ref).cloned()))?;
                    Ok(Val::null())
                }
                "held" => Ok(self.0.clone().map_or(Val::null(), Val::Ref)),
                "touch" => {
                    cx.become_(Holder(self.0.clone()))?;
                    Ok(Val::null())
                }
                _ => Err(error("no such method")),
            }
        }
        fn portrait(&self) -> Option<Portrait> {
            Some(Portrait::new(
                "holder",
                1,
                self.0.clone().map_or(Val::null(), Val::Ref),
            ))
        }
    }
    let made: Arc<Mutex<Vec<Val>>> = Arc::default();
    let delivered = Arc::new(Mutex::new(0));
    let kinds = |enlivener: bool| {
        let mut k = Kinds::new();
        k.add("holder", 1, |_, state| Ok(Holder(state.as_ref().cloned())));
        if enlivener {
            let (made, delivered) = (made.clone(), delivered.clone());
            k.set_enlivener(move |recipe| {
                made.lock().unwrap().push(recipe.clone());
                Ref::remote(Arc::new(Far {
                    recipe: Some(recipe.clone()),
                    delivered: delivered.clone(),
                }))
            });
        }
        k
    };
    let backend = MemoryBackend::new();
    let vat = Vat::open("p", backend.clone(), kinds(true)).unwrap();
    let holder = vat.run(|cx| {
        let h = cx.spawn(Holder(None));
        cx.set_root("h", Some(&h))?;
        Ok(Val::Ref(h))
    });
    let holder = vat.block_on(&holder, T).unwrap().as_ref().cloned().unwrap();
    // A far reference that cannot be made again is refused, with a reason.
    let unmakeable = Ref::remote(Arc::new(Far {
        recipe: None,
        delivered: delivered.clone(),
    }));
    let e = broken_text(call(&vat, &holder, "hold", vec![Val::Ref(unmakeable)]));
    assert!(e.contains("far reference"), "{e}");
    // One with a recipe is stored as it; a recipe holding a reference is
    // not data, and refused too.
    let with_ref = Ref::remote(Arc::new(Far {
        recipe: Some(Val::Ref(holder.clone())),
        delivered: delivered.clone(),
    }));
    assert!(call(&vat, &holder, "hold", vec![Val::Ref(with_ref)]).is_err());
    let recipe = Val::str("ocapn://peer/s/abc");
    let far = Ref::remote(Arc::new(Far {
        recipe: Some(recipe.clone()),
        delivered: delivered.clone(),
    }));
    call(&vat, &holder, "hold", vec![Val::Ref(far)]).unwrap();
    vat.shutdown();

    // After a restart the reference is made again only when its holder
    // revives (not at open), and it works.
    let vat = Vat::open("p", backend.clone(), kinds(true)).unwrap();
    assert!(made.lock().unwrap().is_empty(), "made again before use");
    let holder = vat.root("h").unwrap();
    assert_eq!(ask(&vat, &holder).unwrap(), recipe);
    assert_eq!(*made.lock().unwrap(), vec![recipe.clone()]);
    vat.shutdown();

    // A vat without an enlivener cannot reach it, says why, and storing
    // its holder again keeps the recipe (nothing is lost offline).
    let vat = Vat::open("p", backend.clone(), kinds(false)).unwrap();
    let holder = vat.root("h").unwrap();
    let e = broken_text(ask(&vat, &holder));
    assert!(e.contains("enlivener"), "{e}");
    call(&vat, &holder, "touch", vec![]).unwrap();
    vat.shutdown();
    let vat = Vat::open("p", backend, kinds(true)).unwrap();
    let holder = vat.root("h").unwrap();
    assert_eq!(ask(&vat, &holder).unwrap(), recipe);
    vat.shutdown();
}

#[test]
fn a_store_can_be_reopened_as_soon_as_its_vat_is_shut_down() {
    // The writer thread shares the backend; shutdown must release it.
    struct Exclusive(MemoryBackend, Arc<Mutex<bool>>);
    impl Backend for Exclusive {
        fn open(&mut self) -> Result<Opened, BackendError> {
            let mut open = self.1.lock().unwrap();
            if *open {
                return Err(BackendError("still open".into()));
            }
            *open = true;
            self.0.open()
        }
        fn load(&mut self, id: u64) -> Result<Option<Vec<u8>>, BackendError> {
            self.0.load(id)
        }
        fn ids(&mut self) -> Result<Vec<u64>, BackendError> {
            self.0.ids()
        }
        fn write(&mut self, batch: &Batch) -> Result<(), BackendError> {
            self.0.write(batch)
        }
    }
    impl Drop for Exclusive {
        fn drop(&mut self) {
            *self.1.lock().unwrap() = false;
        }
    }
    let (memory, open) = (MemoryBackend::new(), Arc::new(Mutex::new(false)));
    for n in 1..=20 {
        let vat = Vat::open("p", Exclusive(memory.clone(), open.clone()), kinds())
            .expect("the previous vat's backend was released");
        let root = match vat.root("c") {
            Some(r) => r,
            None => new_root(&vat, "c"),
        };
        assert_eq!(
            call(&vat, &root, "inc", vec![]).unwrap(),
            Val::int(n as i64)
        );
        vat.shutdown();
    }
}

#[test]
fn collection_deletes_only_what_nothing_can_reach() {
    let backend = MemoryBackend::new();
    let vat = open(&backend);
    // A rooted chain of three, and three orphans made and dropped.
    let head = new_root(&vat, "head");
    let second = call(&vat, &head, "spawn_next", vec![]).unwrap();
    call(&vat, second.as_ref().unwrap(), "spawn_next", vec![]).unwrap();
    for _ in 0..3 {
        let orphan = vat.spawn(Cell { n: 9, next: None });
        call(&vat, &orphan, "inc", vec![]).unwrap();
    }
    // One more unrooted cell that a live reference still holds.
    let held = vat.spawn(Cell { n: 4, next: None });
    call(&vat, &held, "inc", vec![]).unwrap();
    drop(second);
    assert_eq!(backend.with(|c| c.objects.len()), 7);

    let done = vat.collect(false, T).unwrap();
    assert_eq!(
        (done.stored, done.kept, done.deleted),
        (7, 4, 3),
        "{done:?}"
    );
    assert_eq!(backend.with(|c| c.objects.len()), 4);
    assert_eq!(call(&vat, &held, "get", vec![]).unwrap(), Val::int(5i64));
    vat.shutdown();
    drop(held);

    // After a restart nothing holds the unrooted cell: it goes too, and the
    // chain still sums.
    let vat = open(&backend);
    let done = vat.collect(false, T).unwrap();
    assert_eq!((done.kept, done.deleted), (3, 1), "{done:?}");
    let head = vat.root("head").unwrap();
    assert_eq!(call(&vat, &head, "sum", vec![]).unwrap(), Val::int(0i64));
    vat.shutdown();

    // An unreadable record among the reachable ones stops the collection
    // before anything is deleted.
    let vat = open(&backend);
    let orphan = vat.spawn(Cell { n: 1, next: None });
    call(&vat, &orphan, "inc", vec![]).unwrap();
    drop(orphan);
    vat.shutdown();
    let head_id = backend.with(|c| c.roots["head"]);
    backend.with(|c| c.objects.insert(head_id, b"garbage".to_vec()));
    let before = backend.with(|c| c.objects.len());
    let vat = open(&backend);
    let e = vat.collect(false, T).unwrap_err();
    assert!(
        e.contains("unreadable") && e.contains("nothing was deleted"),
        "{e}"
    );
    assert_eq!(backend.with(|c| c.objects.len()), before);
    vat.shutdown();
}

#[test]
fn eager_migration_rewrites_old_records_and_keeps_those_that_fail() {
    let backend = MemoryBackend::new();
    let vat = open(&backend);
    let root = new_root(&vat, "c");
    call(&vat, &root, "inc", vec![]).unwrap();
    vat.shutdown();
    let v1 = backend.with(|c| c.objects.clone());
    let is_v2 = |b: &MemoryBackend| {
        b.with(|c| {
            c.objects
                .values()
                .all(|r| r.windows(7).any(|w| w == b"5'count"))
        })
    };

    // A failing migration leaves the v1 record.
    let vat = Vat::open("p", backend.clone(), kinds_v2(true)).unwrap();
    let done = vat.collect(true, T).unwrap();
    assert_eq!((done.migrated, done.not_migrated), (0, 1), "{done:?}");
    vat.shutdown();
    assert_eq!(backend.with(|c| c.objects.clone()), v1);

    // The working one rewrites it without the object being used.
    let vat = Vat::open("p", backend.clone(), kinds_v2(false)).unwrap();
    let done = vat.collect(true, T).unwrap();
    assert_eq!((done.migrated, done.not_migrated), (1, 0), "{done:?}");
    vat.shutdown();
    assert!(is_v2(&backend));
    let vat = Vat::open("p", backend.clone(), kinds_v2(false)).unwrap();
    let done = vat.collect(true, T).unwrap();
    assert_eq!(done.migrated, 0, "already current: {done:?}");
    assert_eq!(
        call(&vat, &vat.root("c").unwrap(), "get", vec![]).unwrap(),
        Val::int(1i64)
    );
    vat.shutdown();
}
