//! Fresh renderer instance + first `show` of a small page (issue #13's
//! target: at most 5 ms): a new caplet object of the renderer's module
//! (compiled once, as the desk keeps it) is sent `render(env)` in a real
//! vat, and the time runs until the pane has received the view. Each
//! object is memoryless per delivery, so each iteration instantiates the
//! module afresh (and gives its pool slot back).
#![allow(missing_docs, clippy::unwrap_used)]

use std::sync::mpsc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use pola_desk_apps::RENDERERS;
use pola_sandbox::Sandbox;
use pola_sandbox::vat::{CapletObject, Policy};
use pola_vat::{Object, Outcome, Turn, Val, Vat, error};

struct Pane(mpsc::Sender<usize>);

impl Object for Pane {
    fn receive(&self, _cx: &mut Turn<'_>, method: &str, args: Vec<Val>) -> Outcome {
        match (method, args.as_slice()) {
            ("show", [tree]) => {
                let view = pola_desk::pane::check(tree).map_err(|e| error(e.0))?;
                let _ = self.0.send(view.links.len());
                Ok(Val::Bool(true))
            }
            _ => Err(error("no such method")),
        }
    }
}

struct Link;

impl Object for Link {
    fn receive(&self, _cx: &mut Turn<'_>, _method: &str, _args: Vec<Val>) -> Outcome {
        Err(error("not followed in this bench"))
    }
}

fn rec(label: &str, fields: Vec<Val>) -> Val {
    Val::record(label, fields)
}

/// A small page: a heading, a few paragraphs with links, a list.
fn page(vat: &Vat) -> Val {
    let mut items = vec![rec(
        "heading",
        vec![Val::int(1i64), Val::str("A small page")],
    )];
    for i in 0..10 {
        let link = vat.spawn(Link);
        items.push(rec(
            "para",
            vec![
                Val::str(format!("Paragraph {i} with some words, ")),
                rec("em", vec![Val::str("some emphasis")]),
                Val::str(" and "),
                rec("link", vec![Val::Ref(link), Val::str("a link")]),
            ],
        ));
    }
    items.push(rec(
        "list",
        vec![
            Val::Bool(false),
            rec("item", vec![Val::str("one")]),
            rec("item", vec![Val::str("two")]),
        ],
    ));
    rec("block", items)
}

fn bench(c: &mut Criterion) {
    let mut config = pola_desk::sandbox_config();
    config.storage_keys = 0;
    let sandbox = Sandbox::new(config).unwrap();
    let vat = Vat::new("bench");
    let (tx, rx) = mpsc::channel();
    let pane = vat.spawn(Pane(tx));
    let tree = page(&vat);
    let env = Val::Dict(
        [
            (Val::str("tree"), tree),
            (Val::str("title"), Val::str("A small page")),
            (Val::str("truncated"), Val::Bool(false)),
            (Val::str("pane"), Val::Ref(pane)),
        ]
        .into_iter()
        .collect(),
    );
    let mut group = c.benchmark_group("renderer");
    for r in RENDERERS.iter().filter(|r| r.id != "hostile") {
        let module = sandbox.load(r.wasm).unwrap();
        group.bench_function(format!("{}: fresh instance + first show", r.id), |b| {
            b.iter(|| {
                let obj = vat.spawn(CapletObject::new(module.clone(), Policy::PerDelivery));
                vat.send_only(&obj, "render", vec![env.clone()]);
                rx.recv_timeout(Duration::from_secs(10)).unwrap()
            });
        });
    }
    group.finish();
    vat.shutdown();
}

criterion_group!(benches, bench);
criterion_main!(benches);
