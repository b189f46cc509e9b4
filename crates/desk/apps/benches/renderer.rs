//! Fresh renderer instance + first `show` of a small page (issue #13's
//! target: at most 5 ms), made as the desk makes it (`crates/desk/src/
//! browser.rs`, where a fetched page is handed to a renderer): the page
//! is parsed once beforehand by the browser's own parser (that is the
//! `pola-browser` bench's figure); each iteration is one navigation's
//! renderer half: the previous page's renderer is stopped, and in one
//! turn of a real vat a capability is minted for every link, image and
//! form, the capability tree is built from the parsed page, a pane is
//! made for the page, and a new caplet object of the renderer's module
//! (compiled once, under the desk's quotas with no storage, as the desk
//! keeps it) is spawned with `Policy::Persistent` and sent `render(env)`.
//! The time runs until the pane has checked the first view with the
//! desk's own check and accepted it.
//!
//! What it leaves out: the desk's pane then stores the view and wakes the
//! window's page (the README's "through the desk's page" row, measured in
//! Chromium by `scripts/browser-bench.mjs`).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use pola_browser::{Limits, Page, Slot};
use pola_desk_apps::RENDERERS;
use pola_sandbox::Sandbox;
use pola_sandbox::vat::{CapletObject, Policy, Stopper};
use pola_vat::{Object, Outcome, Turn, Val, Vat, error};

/// A small page as a site would serve it: a navigation bar, a heading,
/// paragraphs with inline links and emphasis, a list, an image, a table
/// and a search form (about 2 KB).
const SMALL_PAGE: &str = r#"<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>A small page</title>
<style>body { font: 16px sans-serif }</style></head>
<body>
<header><nav><a href="/">Home</a> | <a href="/news">News</a> | <a href="/about">About</a></nav></header>
<main>
<h1>A small page</h1>
<p>This page is about the size of a short article: a few paragraphs,
<a href="/one.html">a link</a>, some <em>emphasis</em> and some <strong>strong words</strong>.</p>
<img src="/picture.png" alt="A picture" width="320" height="200">
<p>The renderer never sees an address: each <a href="/two.html">link</a> is an object
minted for this page, and so is each <a href="/three.html">other link</a>.</p>
<h2>A list</h2>
<ul><li>one item</li><li>another item, with <a href="/four.html">a link</a></li><li>a third</li></ul>
<h2>A table</h2>
<table><tr><th>Name</th><th>Count</th></tr><tr><td>apples</td><td>3</td></tr><tr><td>pears</td><td>5</td></tr></table>
<form action="/search" method="get"><input name="q" placeholder="Search"><button>Go</button></form>
<p>The last paragraph, with <code>some code</code> and a final <a href="/five.html">link</a>.</p>
</main>
<footer><p>A footer, <a href="/contact">contact</a>.</p></footer>
</body></html>
"#;

/// A link, image or form of one page (as the desk's `PageCap`); nothing
/// is followed or submitted in this bench.
struct PageCap {
    page: u64,
    slot: Slot,
}

impl Object for PageCap {
    fn receive(&self, _cx: &mut Turn<'_>, _method: &str, _args: Vec<Val>) -> Outcome {
        Err(error("not followed in this bench"))
    }
}

/// The page's pane: checks each view with the desk's own check, images
/// paintable when they are this page's (as the desk's pane), and tells
/// the bench the first view arrived; once the bench has moved on to the
/// next page the channel is gone and the pane refuses, as the desk's
/// does for an old page.
struct Pane {
    page: u64,
    shown: mpsc::Sender<Result<usize, String>>,
}

impl Object for Pane {
    fn receive(&self, cx: &mut Turn<'_>, method: &str, args: Vec<Val>) -> Outcome {
        let ("show", [tree]) = (method, args.as_slice()) else {
            return Err(error("a pane answers only show(view)"));
        };
        let view = pola_desk::pane::check_with(tree, &mut |r| {
            cx.inspect::<PageCap>(r)
                .is_some_and(|c| c.slot == Slot::Image && c.page == self.page)
        })
        .map_err(|e| error(e.0))?;
        self.shown
            .send(Ok(view.links.len()))
            .map_err(|_| error("this page is gone: the browser has moved on"))?;
        Ok(Val::Bool(true))
    }
}

/// One navigation's renderer half, as the desk does it; returns the new
/// renderer's stopper.
fn show_page(
    vat: &Vat,
    module: &pola_sandbox::CapletModule<pola_sandbox::vat::VatLink>,
    parsed: &Arc<Page>,
    page: u64,
    shown: mpsc::Sender<Result<usize, String>>,
) -> Stopper {
    let made: Arc<Mutex<Option<Stopper>>> = Arc::default();
    let (module, parsed, out) = (module.clone(), parsed.clone(), made.clone());
    let turn = vat.run(move |cx| {
        let p = &parsed;
        let tree = p.tree(&mut |slot, _| Val::Ref(cx.spawn(PageCap { page, slot })));
        let pane = cx.spawn(Pane {
            page,
            shown: shown.clone(),
        });
        let object = CapletObject::new(module, Policy::Persistent);
        *out.lock().unwrap() = Some(object.stopper());
        let renderer = cx.spawn(object);
        let env = Val::Dict(
            [
                (Val::str("tree"), tree),
                (Val::str("title"), Val::str(p.title.clone())),
                (Val::str("truncated"), Val::Bool(p.truncated)),
                (Val::str("pane"), Val::Ref(pane)),
            ]
            .into_iter()
            .collect(),
        );
        let answer = cx.send(&renderer, "render", vec![env]);
        // The desk says a failed render in the window; here it ends the
        // bench rather than wait out the timeout.
        cx.when(&answer, move |_cx, outcome| {
            if let Err(why) = outcome {
                let _ = shown.send(Err(format!("{why:?}")));
            }
            Ok(Val::null())
        });
        Ok(Val::null())
    });
    vat.block_on(&turn, Duration::from_secs(10)).unwrap();
    made.lock().unwrap().take().unwrap()
}

fn bench(c: &mut Criterion) {
    // The desk's renderers' sandbox (`Renderers::new`).
    let mut config = pola_desk::sandbox_config();
    config.storage_keys = 0;
    let sandbox = Sandbox::new(config).unwrap();
    let vat = Vat::new("bench");
    let base = url::Url::parse("http://127.0.0.1:8080/small.html").unwrap();
    let parsed = Arc::new(pola_browser::parse(
        SMALL_PAGE.as_bytes(),
        &base,
        &Limits::default(),
    ));
    assert!(!parsed.truncated);
    let mut group = c.benchmark_group("renderer");
    for r in RENDERERS {
        let module = sandbox.load(r.wasm).unwrap();
        let mut page = 0u64;
        let mut current: Option<Stopper> = None;
        let mut links_shown = None;
        group.bench_function(format!("{}: fresh instance + first show", r.label), |b| {
            b.iter(|| {
                // The desk stops the old page's renderer as it moves on.
                if let Some(old) = current.take() {
                    old.stop();
                }
                page += 1;
                let (tx, rx) = mpsc::channel();
                current = Some(show_page(&vat, &module, &parsed, page, tx));
                let links = rx.recv_timeout(Duration::from_secs(10)).unwrap().unwrap();
                links_shown = Some(links);
            });
        });
        if let Some(old) = current.take() {
            old.stop();
        }
        eprintln!(
            "{}: {} links, {} images, {} forms in the tree; {} links in its first view",
            r.label,
            parsed.links.len(),
            parsed.images.len(),
            parsed.forms.len(),
            links_shown.unwrap_or(0),
        );
    }
    group.finish();
    vat.shutdown();
}

criterion_group!(benches, bench);
criterion_main!(benches);
