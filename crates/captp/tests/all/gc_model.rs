//! Model-based property: random calls, returns and releases between two
//! sessions; once both sides let go of everything, both tables are back
//! to the bootstrap object alone.

use std::collections::BTreeSet;

use pola_captp::locator::Swiss;
use pola_captp::{CapRef, Dialect, Event, ImportPosition, LocalId, QuestionPosition, TableSizes};
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
}

fn pick<T: Copy>(items: impl IntoIterator<Item = T>, n: usize) -> Option<T> {
    let v: Vec<T> = items.into_iter().collect();
    if v.is_empty() {
        None
    } else {
        Some(v[n % v.len()])
    }
}

/// Runs the link and both local sides until nothing more happens.
fn settle(p: &mut Pair, m: &mut Model) {
    loop {
        let (ea, eb) = p.run();
        if ea.is_empty() && eb.is_empty() {
            return;
        }
        for e in ea {
            if let Event::Answer { result: Ok(v), .. } = e {
                v.for_each_ref(&mut |r| {
                    if let CapRef::Import(i) = r {
                        m.a_imports.insert(*i);
                    }
                });
            }
        }
        for e in eb {
            match e {
                Event::Fetch { reply, .. } => {
                    let _ =
                        p.b.resolve(reply.unwrap(), Ok(Value::Ref(CapRef::Local(LocalId(100)))));
                }
                Event::Deliver { args, reply, .. } => {
                    for a in &args {
                        a.for_each_ref(&mut |r| {
                            if let CapRef::Import(i) = r {
                                m.b_imports.insert(*i);
                            }
                        });
                    }
                    // Return a fresh object, one of a's own, or data.
                    m.counter += 1;
                    let result = match (
                        m.counter % 3,
                        pick(m.b_imports.iter().copied(), m.counter as usize),
                    ) {
                        (0, _) => Value::Ref(CapRef::Local(LocalId(200 + m.counter % 4))),
                        (1, Some(i)) => {
                            Value::List(vec![Value::Ref(CapRef::Import(i)), Value::int(1i64)])
                        }
                        _ => Value::str("data"),
                    };
                    if let Some(r) = reply {
                        let _ = p.b.resolve(r, Ok(result));
                    }
                }
                _ => {}
            }
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
                Cmd::Run => settle(&mut p, &mut m),
            }
        }
        settle(&mut p, &mut m);
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
        settle(&mut p, &mut m);
        // Imports that arrived during the last settle are released too.
        for i in std::mem::take(&mut m.a_imports) {
            p.a.drop_import(i).unwrap();
        }
        for i in std::mem::take(&mut m.b_imports) {
            p.b.drop_import(i).unwrap();
        }
        settle(&mut p, &mut m);
        prop_assert_eq!(p.a.table_sizes(), idle());
        prop_assert_eq!(p.b.table_sizes(), idle());
    }
}
