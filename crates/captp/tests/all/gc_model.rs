//! Model-based property: random calls, returns and releases between two
//! sessions; once both sides let go of everything, both tables are back
//! to the bootstrap object alone. Each local side acts on each event before
//! polling the next (as pola's peer does) and mirrors which of its objects
//! the session exports from `Event::ExportDropped` alone: every object the
//! peer names must be in that mirror (else a real local side answers
//! "unknown object").

use std::collections::BTreeSet;

use pola_captp::locator::Swiss;
use pola_captp::{
    CapRef, Dialect, Event, ImportPosition, LocalId, LocalTarget, QuestionPosition, TableSizes,
};
use pola_syrup::Value;
use proptest::prelude::*;

use crate::sim::Pair;

#[derive(Debug, Clone)]
enum Cmd {
    Fetch,
    /// Deliver to the n-th held thing, passing our object `obj` k times.
    Deliver {
        to: usize,
        obj: u64,
        k: usize,
        pipelined: bool,
    },
    DropImport(usize),
    DropQuestion(usize),
    /// B lets go of the n-th import it holds.
    BDrops(usize),
    Run,
}

fn cmd() -> impl Strategy<Value = Cmd> {
    prop_oneof![
        1 => Just(Cmd::Fetch),
        4 => (any::<usize>(), 0u64..3, 0usize..3, any::<bool>())
            .prop_map(|(to, obj, k, pipelined)| Cmd::Deliver { to, obj, k, pipelined }),
        1 => any::<usize>().prop_map(Cmd::DropImport),
        1 => any::<usize>().prop_map(Cmd::DropQuestion),
        1 => any::<usize>().prop_map(Cmd::BDrops),
        2 => Just(Cmd::Run),
    ]
}

#[derive(Default)]
struct Model {
    a_imports: BTreeSet<ImportPosition>,
    a_questions: Vec<QuestionPosition>,
    b_imports: BTreeSet<ImportPosition>,
    counter: u64,
    /// Each local side's record of its objects its session exports, kept
    /// from what it sends and the drops it polls.
    a_exported: BTreeSet<LocalId>,
    b_exported: BTreeSet<LocalId>,
}

/// Every local object `v` names is in `mirror`.
fn known(v: &Value<CapRef>, mirror: &BTreeSet<LocalId>) -> Result<(), String> {
    let mut res = Ok(());
    v.for_each_ref(&mut |r| {
        if let CapRef::Local(id) | CapRef::LocalPromise(id) = r
            && !mirror.contains(id)
            && res.is_ok()
        {
            res = Err(format!(
                "{id:?} named after the local side heard it dropped"
            ));
        }
    });
    res
}

fn pick<T: Copy>(items: impl IntoIterator<Item = T>, n: usize) -> Option<T> {
    let v: Vec<T> = items.into_iter().collect();
    if v.is_empty() {
        None
    } else {
        Some(v[n % v.len()])
    }
}

/// Runs the link and both local sides until nothing more happens. Each
/// side handles every event before polling the next.
fn settle(p: &mut Pair, m: &mut Model) -> Result<(), String> {
    loop {
        let mut busy = p.move_bytes();
        while let Some(e) = p.a.poll_event() {
            busy = true;
            match e {
                Event::Answer { result: Ok(v), .. } => {
                    known(&v, &m.a_exported)?;
                    v.for_each_ref(&mut |r| {
                        if let CapRef::Import(i) = r {
                            m.a_imports.insert(*i);
                        }
                    });
                }
                Event::ExportDropped { local } => {
                    m.a_exported.remove(&local);
                }
                _ => {}
            }
        }
        while let Some(e) = p.b.poll_event() {
            busy = true;
            match e {
                Event::Fetch { reply, .. } => {
                    let mint = LocalId(100);
                    if p.b
                        .resolve(reply.unwrap(), Ok(Value::Ref(CapRef::Local(mint))))
                        .is_ok()
                    {
                        m.b_exported.insert(mint);
                    }
                }
                Event::ExportDropped { local } => {
                    m.b_exported.remove(&local);
                }
                Event::Deliver {
                    target,
                    args,
                    reply,
                } => {
                    if let LocalTarget::Object(id) | LocalTarget::Promise(id) = target
                        && !m.b_exported.contains(&id)
                    {
                        return Err(format!("a delivery to {id:?}, which b heard dropped"));
                    }
                    for a in &args {
                        known(a, &m.b_exported)?;
                        a.for_each_ref(&mut |r| {
                            if let CapRef::Import(i) = r {
                                m.b_imports.insert(*i);
                            }
                        });
                    }
                    // Return a fresh object, one of a's own, or data.
                    m.counter += 1;
                    let fresh = LocalId(200 + m.counter % 4);
                    let result = match (
                        m.counter % 3,
                        pick(m.b_imports.iter().copied(), m.counter as usize),
                    ) {
                        (0, _) => Value::Ref(CapRef::Local(fresh)),
                        (1, Some(i)) => {
                            Value::List(vec![Value::Ref(CapRef::Import(i)), Value::int(1i64)])
                        }
                        _ => Value::str("data"),
                    };
                    let sends_fresh = matches!(result, Value::Ref(CapRef::Local(_)));
                    if let Some(r) = reply
                        && p.b.resolve(r, Ok(result)).is_ok()
                        && sends_fresh
                    {
                        m.b_exported.insert(fresh);
                    }
                }
                _ => {}
            }
        }
        if !busy {
            return Ok(());
        }
    }
}

fn idle() -> TableSizes {
    TableSizes {
        exports: 1,
        ..TableSizes::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn everything_released_means_everything_freed(
        suite in any::<bool>(),
        cmds in prop::collection::vec(cmd(), 1..30),
    ) {
        let dialect = if suite { Dialect::TestSuite } else { Dialect::Current };
        let mut p = Pair::new(dialect, 1, 2);
        let mut m = Model::default();
        for c in cmds {
            match c {
                Cmd::Fetch => m.a_questions.push(p.a.fetch(&Swiss::new(&b"s"[..])).unwrap()),
                Cmd::Deliver { to, obj, k, pipelined } => {
                    let target = if pipelined {
                        pick(m.a_questions.iter().copied(), to).map(CapRef::Question)
                    } else {
                        pick(m.a_imports.iter().copied(), to).map(CapRef::Import)
                    };
                    if let Some(t) = target {
                        let args = std::iter::once(Value::sym("go"))
                            .chain((0..k).map(|_| Value::Ref(CapRef::Local(LocalId(obj)))))
                            .collect();
                        m.a_questions.push(p.a.deliver(&t, args).unwrap());
                        if k > 0 {
                            m.a_exported.insert(LocalId(obj));
                        }
                    }
                }
                Cmd::DropImport(n) => {
                    if let Some(i) = pick(m.a_imports.iter().copied(), n) {
                        p.a.drop_import(i).unwrap();
                        m.a_imports.remove(&i);
                    }
                }
                Cmd::DropQuestion(n) => {
                    if let Some(q) = pick(m.a_questions.iter().copied(), n) {
                        p.a.drop_question(q).unwrap();
                        m.a_questions.retain(|x| *x != q);
                    }
                }
                Cmd::BDrops(n) => {
                    if let Some(i) = pick(m.b_imports.iter().copied(), n) {
                        p.b.drop_import(i).unwrap();
                        m.b_imports.remove(&i);
                    }
                }
                Cmd::Run => settle(&mut p, &mut m).map_err(TestCaseError::fail)?,
            }
        }
        settle(&mut p, &mut m).map_err(TestCaseError::fail)?;
        prop_assert!(!p.a.is_terminated() && !p.b.is_terminated());
        // Let go of everything, on both sides.
        for q in std::mem::take(&mut m.a_questions) {
            p.a.drop_question(q).unwrap();
        }
        for i in std::mem::take(&mut m.a_imports) {
            p.a.drop_import(i).unwrap();
        }
        for i in std::mem::take(&mut m.b_imports) {
            p.b.drop_import(i).unwrap();
        }
        settle(&mut p, &mut m).map_err(TestCaseError::fail)?;
        // Imports that arrived during the last settle are released too.
        for i in std::mem::take(&mut m.a_imports) {
            p.a.drop_import(i).unwrap();
        }
        for i in std::mem::take(&mut m.b_imports) {
            p.b.drop_import(i).unwrap();
        }
        settle(&mut p, &mut m).map_err(TestCaseError::fail)?;
        prop_assert_eq!(p.a.table_sizes(), idle());
        prop_assert_eq!(p.b.table_sizes(), idle());
    }
}
