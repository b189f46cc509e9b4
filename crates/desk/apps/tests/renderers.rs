//! The browser's stock renderers, run for real: each module in the
//! sandbox under the desk's quotas with no storage (as the desk runs a
//! renderer), as a caplet object in a real vat, sent `render(env)` with a
//! capability tree built by hand in the shape of `PROTOCOL.md` section
//! 4.1, whose links, images and forms are vat objects that record every
//! call and answer as the protocol says (a link `follow()` only, an image
//! nothing, a form `submit(FIELDS)` with declared names only). The pane
//! checks every view with the desk's own check (`pola_desk::pane::check`)
//! and refuses what it refuses.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use pola_desk_apps::{RENDERERS, Renderer};
use pola_sandbox::vat::{CapletObject, Policy, VatLink};
use pola_sandbox::{CapletModule, Sandbox};
use pola_syrup::Value;
use pola_vat::{Object, Outcome, Ref, Turn, Val, Vat, error};

const T: Duration = Duration::from_secs(30);

fn renderer(id: &str) -> &'static Renderer {
    RENDERERS.iter().find(|r| r.id == id).unwrap()
}

/// The desk's sandbox for renderers: its quotas, no storage.
fn sandbox() -> &'static Sandbox<VatLink> {
    static SB: OnceLock<Sandbox<VatLink>> = OnceLock::new();
    SB.get_or_init(|| {
        let mut config = pola_desk::sandbox_config();
        config.storage_keys = 0;
        Sandbox::new(config).unwrap()
    })
}

fn module(id: &str) -> CapletModule<VatLink> {
    type Cache = Mutex<BTreeMap<String, CapletModule<VatLink>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let mut cache = CACHE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    cache
        .entry(id.to_owned())
        .or_insert_with(|| sandbox().load(renderer(id).wasm).unwrap())
        .clone()
}

/// Every call an object received: (method, args, accepted).
type Calls = Arc<Mutex<Vec<(String, Vec<Val>, bool)>>>;

/// A pane: checks each view as the desk does, keeps the accepted ones,
/// refuses every other method; dead once `dead` is set (navigation).
#[derive(Clone, Default)]
struct Pane {
    shown: Arc<Mutex<Vec<Val>>>,
    calls: Calls,
    dead: Arc<AtomicBool>,
}

impl Object for Pane {
    fn receive(&self, _cx: &mut Turn<'_>, method: &str, args: Vec<Val>) -> Outcome {
        let verdict = if self.dead.load(Ordering::SeqCst) {
            Err(error("this page is gone"))
        } else {
            match (method, args.as_slice()) {
                ("show", [tree]) => match pola_desk::pane::check(tree) {
                    Ok(_) => {
                        self.shown.lock().unwrap().push(tree.clone());
                        Ok(Val::Bool(true))
                    }
                    Err(why) => Err(error(why.0)),
                },
                _ => Err(error("no such method")),
            }
        };
        self.calls
            .lock()
            .unwrap()
            .push((method.to_owned(), args, verdict.is_ok()));
        verdict
    }
}

impl Pane {
    fn count(&self) -> usize {
        self.shown.lock().unwrap().len()
    }

    fn last(&self) -> Val {
        self.shown.lock().unwrap().last().cloned().expect("a view")
    }

    /// Waits for an accepted view (after the first `after`) whose words
    /// satisfy `ok`.
    fn wait_for(&self, after: usize, ok: impl Fn(&[String]) -> bool) -> Val {
        self.wait_view(after, |v| ok(&words(v)))
    }

    /// Waits for an accepted view (after the first `after`) satisfying `ok`.
    fn wait_view(&self, after: usize, ok: impl Fn(&Val) -> bool) -> Val {
        let deadline = Instant::now() + T;
        let mut next = after;
        let mut last = None;
        loop {
            let fresh: Vec<Val> = {
                let shown = self.shown.lock().unwrap();
                let fresh = shown.get(next..).unwrap_or_default().to_vec();
                next = shown.len().max(next);
                fresh
            };
            for tree in fresh {
                if ok(&tree) {
                    return tree;
                }
                last = Some(words(&tree));
            }
            assert!(Instant::now() < deadline, "no view matched; last: {last:?}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// A link of the page: `follow()` and nothing else.
#[derive(Clone, Default)]
struct Link {
    calls: Calls,
    /// Set on a follow (the browser navigates: the old pane dies).
    kills: Option<Arc<AtomicBool>>,
    dead: Arc<AtomicBool>,
}

impl Object for Link {
    fn receive(&self, _cx: &mut Turn<'_>, method: &str, args: Vec<Val>) -> Outcome {
        let verdict = if self.dead.load(Ordering::SeqCst) {
            Err(error("this page is gone"))
        } else if method == "follow" && args.is_empty() {
            if let Some(k) = &self.kills {
                k.store(true, Ordering::SeqCst);
            }
            Ok(Val::Bool(true))
        } else {
            Err(error("a link answers follow() only"))
        };
        self.calls
            .lock()
            .unwrap()
            .push((method.to_owned(), args, verdict.is_ok()));
        verdict
    }
}

/// An image of the page: answers nothing.
#[derive(Clone, Default)]
struct Image {
    calls: Calls,
}

impl Object for Image {
    fn receive(&self, _cx: &mut Turn<'_>, method: &str, args: Vec<Val>) -> Outcome {
        self.calls
            .lock()
            .unwrap()
            .push((method.to_owned(), args, false));
        Err(error("an image answers nothing"))
    }
}

/// A form of the page: `submit(FIELDS)` with declared, non-hidden names
/// and values of at most 4 KiB.
#[derive(Clone, Default)]
struct Form {
    declared: Vec<&'static str>,
    calls: Calls,
    /// What was submitted and accepted.
    sent: Arc<Mutex<Vec<BTreeMap<String, String>>>>,
}

impl Object for Form {
    fn receive(&self, _cx: &mut Turn<'_>, method: &str, args: Vec<Val>) -> Outcome {
        let verdict = match (method, args.as_slice()) {
            ("submit", [Value::Dict(d)]) => {
                let mut fields = BTreeMap::new();
                let mut why = None;
                for (k, v) in d {
                    match (k.as_str(), v.as_str()) {
                        (Some(k), Some(v)) if !self.declared.contains(&k) => {
                            why = Some(format!("the form has no field named {k:?}"));
                            let _ = v;
                        }
                        (Some(_), Some(v)) if v.len() > 4096 => {
                            why = Some("a value is longer than 4 KiB".to_owned());
                        }
                        (Some(k), Some(v)) => {
                            fields.insert(k.to_owned(), v.to_owned());
                        }
                        _ => why = Some("fields are strings".to_owned()),
                    }
                }
                match why {
                    Some(w) => Err(error(w)),
                    None => {
                        self.sent.lock().unwrap().push(fields);
                        Ok(Val::Bool(true))
                    }
                }
            }
            _ => Err(error("a form answers submit(fields) only")),
        };
        self.calls
            .lock()
            .unwrap()
            .push((method.to_owned(), args, verdict.is_ok()));
        verdict
    }
}

fn rec(label: &str, fields: Vec<Val>) -> Val {
    Val::record(label, fields)
}

fn s(x: &str) -> Val {
    Val::str(x)
}

fn field(name: &str, kind: &str, value: &str, label: &str, options: &[&str]) -> Val {
    rec(
        "field",
        vec![
            s(name),
            Val::sym(kind),
            s(value),
            s(label),
            Val::List(options.iter().map(|o| s(o)).collect()),
        ],
    )
}

fn words(tree: &Val) -> Vec<String> {
    fn walk(v: &Val, out: &mut Vec<String>) {
        match v {
            Value::String(s) => out.push(s.clone()),
            Value::Record(r) => r.fields.iter().for_each(|f| walk(f, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(tree, &mut out);
    out
}

/// Labels of a view's nodes, with the first field of each (an id).
fn nodes(tree: &Val) -> Vec<(String, Option<Val>)> {
    fn walk(v: &Val, out: &mut Vec<(String, Option<Val>)>) {
        if let Value::Record(r) = v {
            out.push((
                r.label.as_symbol().unwrap_or("?").to_owned(),
                r.fields.first().cloned(),
            ));
            r.fields.iter().for_each(|f| walk(f, out));
        }
    }
    let mut out = Vec::new();
    walk(tree, &mut out);
    out
}

/// A page: its tree's objects and the vat they live in.
struct Fixture {
    vat: Vat,
    pane: Pane,
    pane_ref: Ref,
    links: Vec<(Link, Ref)>,
    images: Vec<(Image, Ref)>,
    forms: Vec<(Form, Ref)>,
}

impl Fixture {
    fn new() -> Fixture {
        let vat = Vat::new("renderers");
        let pane = Pane::default();
        let pane_ref = vat.spawn(pane.clone());
        Fixture {
            vat,
            pane,
            pane_ref,
            links: Vec::new(),
            images: Vec::new(),
            forms: Vec::new(),
        }
    }

    fn link(&mut self, label: &str) -> Val {
        let l = Link::default();
        let r = self.vat.spawn(l.clone());
        self.links.push((l, r.clone()));
        rec("link", vec![Val::Ref(r), s(label)])
    }

    fn image(&mut self, alt: &str) -> Val {
        let i = Image::default();
        let r = self.vat.spawn(i.clone());
        self.images.push((i, r.clone()));
        rec("image", vec![Val::Ref(r), s(alt)])
    }

    fn form(&mut self, declared: Vec<&'static str>, fields: Vec<Val>) -> Val {
        let f = Form {
            declared,
            ..Form::default()
        };
        let r = self.vat.spawn(f.clone());
        self.forms.push((f, r.clone()));
        let mut c = vec![Val::Ref(r)];
        c.extend(fields);
        rec("form", c)
    }

    fn env(&self, tree: Val, title: &str) -> Val {
        Val::Dict(
            [
                (s("tree"), tree),
                (s("title"), s(title)),
                (s("truncated"), Val::Bool(false)),
                (s("pane"), Val::Ref(self.pane_ref.clone())),
            ]
            .into_iter()
            .collect(),
        )
    }

    /// A fresh instance of renderer `id`, sent `render`.
    fn render(&self, id: &str, tree: Val, title: &str) -> (Ref, Result<Val, String>) {
        let r = self
            .vat
            .spawn(CapletObject::new(module(id), Policy::Persistent));
        let p = self.vat.send(&r, "render", vec![self.env(tree, title)]);
        let out = self.vat.block_on(&p, T).map_err(|e| format!("{e:?}"));
        (r, out)
    }

    fn call(&self, r: &Ref, method: &str, args: Vec<Val>) -> Result<Val, String> {
        let p = self.vat.send(r, method.to_owned(), args);
        self.vat.block_on(&p, T).map_err(|e| format!("{e:?}"))
    }
}

fn event(pairs: Vec<(&str, Val)>) -> Val {
    Val::Dict(pairs.into_iter().map(|(k, v)| (s(k), v)).collect())
}

fn click(id: &str) -> Val {
    event(vec![("type", Val::sym("click")), ("id", s(id))])
}

fn input(id: &str, value: &str) -> Val {
    event(vec![
        ("type", Val::sym("input")),
        ("id", s(id)),
        ("value", s(value)),
    ])
}

/// A page with one of everything.
fn full_page(f: &mut Fixture) -> Val {
    let link = f.link("Next page");
    let image = f.image("A cat");
    let form = f.form(
        vec!["q", "agree", "size", "go"],
        vec![
            field("q", "search", "", "Search for", &[]),
            field("agree", "checkbox", "", "I agree", &[]),
            field("size", "select", "S", "Size", &["S", "M", "L"]),
            field("go", "submit", "Go", "", &[]),
        ],
    );
    rec(
        "block",
        vec![
            rec("heading", vec![Val::int(2i64), s("Second")]),
            rec("heading", vec![Val::int(5i64), s("Fifth")]),
            rec(
                "para",
                vec![
                    s("Plain "),
                    rec("strong", vec![s("bold")]),
                    s(" "),
                    rec("em", vec![s("italic")]),
                    s(" "),
                    rec("code", vec![s("x = 1")]),
                    s(" and "),
                    link,
                ],
            ),
            rec("pre", vec![s("fn main() {\n    go();\n}")]),
            rec("quote", vec![rec("para", vec![s("Quoted words")])]),
            rec(
                "list",
                vec![
                    Val::Bool(true),
                    rec("item", vec![s("first")]),
                    rec("item", vec![s("second")]),
                ],
            ),
            rec(
                "table",
                vec![
                    rec(
                        "tr",
                        vec![
                            rec("cell", vec![Val::Bool(true), s("Name")]),
                            rec("cell", vec![Val::Bool(true), s("Age")]),
                        ],
                    ),
                    rec(
                        "tr",
                        vec![
                            rec("cell", vec![Val::Bool(false), s("Ada")]),
                            rec("cell", vec![Val::Bool(false), s("36")]),
                        ],
                    ),
                ],
            ),
            rec("rule", vec![]),
            image,
            form,
        ],
    )
}

#[test]
fn there_are_three_renderers_benign_first_hostile_last() {
    let ids: Vec<_> = RENDERERS.iter().map(|r| (r.id, r.label)).collect();
    assert_eq!(
        ids,
        [
            ("benign", "Styled"),
            ("text", "Text only"),
            ("hostile", "Red team (hostile)")
        ]
    );
    for r in RENDERERS {
        let report = pola_sandbox::check(r.wasm).unwrap();
        assert!(report.confined, "{}: {:?}", r.id, report.problems);
        assert!(r.wasm.len() < 512 << 10, "{}: {} bytes", r.id, r.wasm.len());
    }
}

#[test]
fn benign_draws_the_page_faithfully() {
    let mut f = Fixture::new();
    let tree = full_page(&mut f);
    let (_, answer) = f.render("benign", tree, "A test page");
    assert_eq!(answer, Ok(Val::Bool(true)));
    let view = f.pane.wait_for(0, |_| true);
    let w = words(&view);
    for want in [
        "A test page",
        "Second",
        "Fifth",
        "bold",
        "x = 1",
        "Next page",
        "fn main() {\n    go();\n}",
        "Quoted words",
        "1. ",
        "2. ",
        "Name",
        "Ada",
        "A cat",
        "Search for",
        "\u{2610} I agree",
        "S \u{25be}",
        "Go",
    ] {
        assert!(w.iter().any(|x| x == want), "{want:?} not in {w:?}");
    }
    let n = nodes(&view);
    let has = |label: &str, first: Option<Val>| n.iter().any(|(l, f)| l == label && *f == first);
    // The title (the page has no h1) and h2 as headings; h5 as strong.
    assert!(has("heading", Some(Val::int(1i64))));
    assert!(has("heading", Some(Val::int(2i64))));
    assert!(n.iter().any(|(l, _)| l == "strong"));
    // The link and the image hold the page's own capabilities.
    assert!(has("link", Some(Val::Ref(f.links[0].1.clone()))));
    assert!(has("image", Some(Val::Ref(f.images[0].1.clone()))));
    let checked = pola_desk::pane::check(&view).unwrap();
    assert_eq!(checked.links, vec![f.links[0].1.clone()]);
    // Form controls with ids.
    assert!(has("input", Some(s("f0.0"))));
    assert!(has("button", Some(s("f0.1"))));
    assert!(has("button", Some(s("f0.3"))));
    // Nothing was called on the page's objects by drawing it.
    assert!(f.links[0].0.calls.lock().unwrap().is_empty());
    assert!(f.images[0].0.calls.lock().unwrap().is_empty());
    assert!(f.forms[0].0.calls.lock().unwrap().is_empty());
    f.vat.shutdown();
}

#[test]
fn benign_submits_what_was_typed_toggled_and_picked() {
    let mut f = Fixture::new();
    let tree = full_page(&mut f);
    let (r, _) = f.render("benign", tree, "");
    f.pane.wait_for(0, |_| true);
    // Inputs arrive before the click.
    f.call(&r, "event", vec![input("f0.0", "cats & dogs")])
        .unwrap();
    let n = f.pane.count();
    f.call(&r, "event", vec![click("f0.1")]).unwrap();
    f.pane
        .wait_for(n, |w| w.iter().any(|x| x == "\u{2611} I agree"));
    let n = f.pane.count();
    f.call(&r, "event", vec![click("f0.2")]).unwrap();
    let v = f.pane.wait_for(n, |w| w.iter().any(|x| x == "M \u{25be}"));
    // The typed text stays in the redrawn input.
    assert!(words(&v).iter().any(|x| x == "cats & dogs"));
    f.call(&r, "event", vec![click("f0.3")]).unwrap();
    let deadline = Instant::now() + T;
    while f.forms[0].0.sent.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "never submitted");
        std::thread::sleep(Duration::from_millis(5));
    }
    let sent = f.forms[0].0.sent.lock().unwrap()[0].clone();
    let want: BTreeMap<String, String> = [
        ("q", "cats & dogs"),
        ("agree", "on"),
        ("size", "M"),
        ("go", "Go"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_owned(), b.to_owned()))
    .collect();
    assert_eq!(sent, want);

    // A value the form refuses: a plain line says so.
    f.call(&r, "event", vec![input("f0.0", &"x".repeat(5000))])
        .unwrap();
    let n = f.pane.count();
    f.call(&r, "event", vec![click("f0.3")]).unwrap();
    f.pane.wait_for(n, |w| {
        w.iter()
            .any(|x| x == "The form was not sent: a value is longer than 4 KiB")
    });
    assert_eq!(f.forms[0].0.sent.lock().unwrap().len(), 1);

    // Junk events, ids and methods change nothing and break nothing.
    for bad in [
        click("../../etc/passwd"),
        click("f99.0"),
        input("f0.3", "relabel"),
        s("click"),
        Val::int(1i64),
    ] {
        f.call(&r, "event", vec![bad]).unwrap();
    }
    assert!(f.call(&r, "format_disk", vec![]).is_err());
    assert!(f.call(&r, "render", vec![s("not an env")]).is_err());
    f.vat.shutdown();
}

#[test]
fn a_form_without_a_submit_field_gets_a_submit_button() {
    let mut f = Fixture::new();
    let form = f.form(
        vec!["name"],
        vec![field("name", "text", "Ada", "Name", &[])],
    );
    let (r, _) = f.render("benign", rec("block", vec![form]), "");
    let v = f.pane.wait_for(0, |_| true);
    assert!(
        nodes(&v)
            .iter()
            .any(|(l, id)| l == "button" && *id == Some(s("f0.submit")))
    );
    f.call(&r, "event", vec![click("f0.submit")]).unwrap();
    let deadline = Instant::now() + T;
    while f.forms[0].0.sent.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "never submitted");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(f.forms[0].0.sent.lock().unwrap()[0]["name"], "Ada");
    f.vat.shutdown();
}

#[test]
fn text_draws_text_and_links_only() {
    let mut f = Fixture::new();
    let tree = full_page(&mut f);
    f.render("text", tree, "A test page").1.unwrap();
    let v = f.pane.wait_for(0, |_| true);
    let labels: Vec<String> = nodes(&v).into_iter().map(|(l, _)| l).collect();
    assert!(
        labels
            .iter()
            .all(|l| matches!(l.as_str(), "column" | "para" | "link")),
        "{labels:?}"
    );
    assert!(labels.iter().any(|l| l == "link"));
    let all = words(&v).join("");
    for want in [
        "A test page",
        "Next page",
        "[image: A cat]",
        "1. first",
        "Ada | 36",
        "Quoted words",
    ] {
        assert!(all.contains(want), "{want:?} not in {all:?}");
    }
    f.vat.shutdown();
}

/// A tree of about `n` nodes: paragraphs, lists, tables and links (a few
/// hundred distinct links), and a chain nested past the pane's depth.
fn big_tree(f: &mut Fixture, n: usize) -> Val {
    let links: Vec<Val> = (0..300).map(|i| f.link(&format!("link {i}"))).collect();
    let mut items = Vec::new();
    let mut count = 0;
    let mut i = 0;
    while count < n {
        let node = match i % 4 {
            0 => rec("para", vec![s("words "), rec("em", vec![s("more")])]),
            1 => links[i % links.len()].clone(),
            2 => rec(
                "list",
                vec![Val::Bool(true), rec("item", vec![s("an item")])],
            ),
            _ => rec(
                "table",
                vec![rec(
                    "tr",
                    vec![rec("cell", vec![Val::Bool(false), s("cell")])],
                )],
            ),
        };
        count += 4;
        items.push(node);
        i += 1;
    }
    let mut deep = rec("para", vec![s("the bottom")]);
    for _ in 0..18 {
        deep = rec("quote", vec![rec("block", vec![deep])]);
    }
    items.push(deep);
    rec("block", items)
}

#[test]
fn benign_and_text_stay_within_the_panes_bounds() {
    for id in ["benign", "text", "hostile"] {
        let mut f = Fixture::new();
        let tree = big_tree(&mut f, 10_000);
        let (_, answer) = f.render(id, tree, "Big");
        assert_eq!(answer, Ok(Val::Bool(true)), "{id}");
        // Accepted by the desk's check (the pane refuses any other view),
        // after a placeholder: a tree this big is drawn in a turn of its own.
        let first = f.pane.wait_view(0, |_| true);
        assert_eq!(words(&first), ["Drawing the page\u{2026}"], "{id}");

        let v = f.pane.wait_for(0, |w| w.iter().any(|x| x == "Big"));
        let w = words(&v);
        assert!(
            w.iter().any(|x| x == "(the rest of the page is not shown)"),
            "{id}"
        );
        let refused = f
            .pane
            .calls
            .lock()
            .unwrap()
            .iter()
            .filter(|(m, args, ok)| {
                m == "show" && !ok && words(&args[0]).iter().any(|x| x == "Big")
            })
            .count();
        assert_eq!(refused, 0, "{id}: a drawing of the page was refused");
        assert!(w.iter().any(|x| x == "Big"), "{id}");
        f.vat.shutdown();
    }
}

/// The lines of the red team's report (the list under its heading).
fn report(tree: &Val) -> Vec<String> {
    fn find(v: &Val) -> Option<&[Val]> {
        let r = v.as_record()?;
        if r.label.as_symbol() == Some("list")
            && r.fields
                .first()
                .and_then(Val::as_str)
                .is_some_and(|s| s.contains(": "))
        {
            return Some(&r.fields);
        }
        r.fields.iter().find_map(find)
    }
    find(tree)
        .unwrap_or_default()
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

fn complete(lines: &[String]) -> bool {
    !lines.is_empty()
        && lines.iter().all(|l| !l.starts_with("PENDING"))
        && lines
            .iter()
            .any(|l| l.contains("link.follow with a URL argument"))
}

#[test]
fn hostile_tries_everything_and_nothing_escapes() {
    let mut f = Fixture::new();
    let link1 = f.link("one");
    let link2 = f.link("two");
    let image = f.image("picture");
    let form = f.form(
        vec!["q"],
        vec![
            field("q", "text", "", "Query", &[]),
            field("go", "submit", "Go", "", &[]),
        ],
    );
    let tree = rec(
        "block",
        vec![
            rec("heading", vec![Val::int(1i64), s("A page")]),
            rec("para", vec![link1, s(" "), link2, s(" "), image]),
            form,
        ],
    );
    let (_, answer) = f.render("hostile", tree, "A page");
    assert_eq!(answer, Ok(Val::Bool(true)));
    let v = f.pane.wait_view(0, |v| complete(&report(v)));
    let lines = report(&v);
    for l in &lines {
        eprintln!("{l}");
    }
    let mut names: Vec<&str> = vec![
        "env holds only tree, title, truncated, pane",
        "pane.set_url",
        "pane.set_title",
        "pane.set_icon",
        "pane.navigate",
        "pane.read",
        "view node 'title'",
        "view node 'script'",
        "view node 'autofocus'",
        "view node 'droptarget'",
        "view of 6000 nodes",
        "view 40 deep",
        "link.get",
        "link.url",
        "link.follow with a URL argument",
        "image.read",
        "image.url",
        "form.submit with an unknown field",
        "form.submit changing a hidden field",
        "handles 1..2000",
        "storage.put",
    ];
    let line = |name: &str| {
        lines
            .iter()
            .find(|l| {
                l.split_once(": ")
                    .is_some_and(|(_, rest)| rest.starts_with(name))
            })
            .cloned()
            .unwrap_or_else(|| panic!("no line for {name}: {lines:?}"))
    };
    for name in names.drain(..) {
        let l = line(name);
        assert!(l.starts_with("BLOCKED: "), "{l}");
    }
    for (name, payload) in [
        ("script markup as text", "<script>window.__pwned=1</script>"),
        (
            "image markup as text",
            "<img src=x onerror=\"window.__pwned=1\">",
        ),
    ] {
        assert_eq!(line(name), format!("SENT-AS-TEXT: {name}: {payload}"));
    }
    assert!(lines.iter().all(|l| !l.starts_with("ESCAPED")));
    assert!(line("handles 1..2000").contains("all 2000 guesses unknown"));
    assert!(line("storage.put").contains("storage-full"));
    assert!(line("pane.set_url").ends_with("no such method"));
    assert!(line("view of 6000 nodes").contains("more than 5000 nodes"));

    // What reached the page's objects: nothing they accepted.
    for (l, _) in &f.links {
        assert!(l.calls.lock().unwrap().iter().all(|(_, _, ok)| !ok));
    }
    let l1: Vec<String> = f.links[0]
        .0
        .calls
        .lock()
        .unwrap()
        .iter()
        .map(|(m, a, _)| format!("{m}/{}", a.len()))
        .collect();
    assert_eq!(l1, ["get/0", "url/0", "follow/1"]);
    assert!(f.links[1].0.calls.lock().unwrap().is_empty());
    assert_eq!(f.images[0].0.calls.lock().unwrap().len(), 2);
    let form_calls = f.forms[0].0.calls.lock().unwrap().clone();
    assert!(form_calls.iter().all(|(m, _, ok)| m == "submit" && !ok));
    assert_eq!(form_calls.len(), 1 + 8);
    assert!(f.forms[0].0.sent.lock().unwrap().is_empty());
    // The pane accepted only drawings of the page and the two payloads.
    for (m, args, ok) in f.pane.calls.lock().unwrap().iter() {
        if *ok {
            assert_eq!(m, "show");
            let w = words(&args[0]);
            assert!(
                w.iter().any(|x| x == "A page") || w.iter().any(|x| x.contains("__pwned")),
                "{w:?}"
            );
        }
    }
    f.vat.shutdown();
}

#[test]
fn hostile_exfiltration_reaches_only_the_pages_own_form() {
    let mut f = Fixture::new();
    let link1 = f.link("one");
    let link2 = f.link("two");
    let image = f.image("picture");
    let form = f.form(
        vec!["q", "note", "go"],
        vec![
            field("q", "text", "", "Query", &[]),
            field("note", "textarea", "", "Note", &[]),
            field("go", "submit", "Go", "", &[]),
        ],
    );
    let tree = rec(
        "block",
        vec![
            rec(
                "para",
                vec![
                    s("red-team:exfiltrate The secret is 4242. "),
                    link1,
                    link2,
                    image,
                ],
            ),
            form,
        ],
    );
    f.render("hostile", tree, "").1.unwrap();
    f.pane.wait_for(0, |w| {
        w.iter()
            .any(|l| l.starts_with("SENT-VIA-FORM: exfiltrate via form 1"))
            && w.iter().all(|l| !l.starts_with("PENDING"))
    });
    let lines = report(&f.pane.last());
    for l in &lines {
        eprintln!("{l}");
    }
    assert!(lines.iter().all(|l| !l.starts_with("ESCAPED")), "{lines:?}");
    for key in [
        "exfiltrate via storage",
        "exfiltrate via image 1",
        "exfiltrate via link 1",
        "exfiltrate via link 2",
    ] {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&format!("BLOCKED: {key}"))),
            "{key}: {lines:?}"
        );
    }
    let sent = f.forms[0].0.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    assert!(sent[0]["q"].contains("The secret is 4242"));
    assert!(sent[0]["note"].contains("The secret is 4242"));
    for (l, _) in &f.links {
        assert!(l.calls.lock().unwrap().iter().all(|(_, _, ok)| !ok));
    }
    f.vat.shutdown();
}

#[test]
fn hostile_stale_renderer_tries_the_dead_pane_and_the_second_link() {
    let f = Fixture::new();
    // Following the first link navigates: the page's pane and the second
    // link die (as the desk revokes them).
    let killer = Link {
        kills: Some(f.pane.dead.clone()),
        ..Link::default()
    };
    let killer_ref = f.vat.spawn(killer.clone());
    let second = Link {
        dead: f.pane.dead.clone(),
        ..Link::default()
    };
    let second_ref = f.vat.spawn(second.clone());
    let tree = rec(
        "block",
        vec![rec(
            "para",
            vec![
                s("red-team:follow-first"),
                rec("link", vec![Val::Ref(killer_ref), s("one")]),
                rec("link", vec![Val::Ref(second_ref), s("two")]),
            ],
        )],
    );
    f.render("hostile", tree, "").1.unwrap();
    // This vat does not stop the renderer when the killer is followed (the
    // desk does): both of its stale tries come, the sends it queued behind
    // the `follow` in the same turn and those it makes once `follow` has
    // answered.
    let deadline = Instant::now() + T;
    while second.calls.lock().unwrap().len() < 2 {
        assert!(
            Instant::now() < deadline,
            "never tried the second link twice"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        killer
            .calls
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, _, ok)| *ok)
            .count(),
        1
    );
    assert!(second.calls.lock().unwrap().iter().all(|(_, _, ok)| !ok));
    let deadline = Instant::now() + T;
    loop {
        let calls = f.pane.calls.lock().unwrap().clone();
        let stale: Vec<_> = calls
            .iter()
            .filter(|(_, a, _)| {
                a.first()
                    .is_some_and(|v| words(v).iter().any(|w| w == "STALE-RENDERER"))
            })
            .collect();
        if stale.len() >= 2 {
            assert!(stale.iter().all(|(_, _, ok)| !ok));
            break;
        }
        assert!(Instant::now() < deadline, "never tried the stale pane");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        f.pane
            .shown
            .lock()
            .unwrap()
            .iter()
            .all(|v| !words(v).iter().any(|w| w == "STALE-RENDERER"))
    );
    // It said it was sending them, while its page was still live.
    assert!(f.pane.shown.lock().unwrap().iter().any(|v| {
        words(v)
            .iter()
            .any(|w| w.starts_with("SENDING-STALE: follow-first"))
    }));
    f.vat.shutdown();
}

/// The memory attack is real: an instance that renders a second page
/// remembers the first (in a static, thread-local storage, a leaked heap
/// block and its own fields), says so, and sends it through the second
/// page's form. The desk's answer is a fresh instance per page (its
/// conspiring-server test checks that the count is 1 on every page).
#[test]
fn hostile_remembers_earlier_pages_if_an_instance_is_reused() {
    let mut f = Fixture::new();
    let secret = rec(
        "para",
        vec![s("red-team:exfiltrate balance SECRET-OF-PAGE-ONE")],
    );
    let (r, answer) = f.render("hostile", rec("block", vec![secret]), "One");
    answer.unwrap();
    let first = f.pane.wait_for(0, |w| {
        w.iter().any(|l| l.contains("memory across pages"))
            && w.iter().all(|l| !l.starts_with("PENDING"))
    });
    assert!(
        report(&first)
            .iter()
            .any(|l| l == "BLOCKED: memory across pages: render 1, nothing remembered"),
        "{:?}",
        report(&first)
    );
    let shown = f.pane.count();
    let form = f.form(
        vec!["q"],
        vec![
            field("q", "text", "", "Query", &[]),
            field("go", "submit", "Go", "", &[]),
        ],
    );
    let two = rec(
        "block",
        vec![rec("para", vec![s("red-team:exfiltrate page two")]), form],
    );
    assert_eq!(
        f.call(&r, "render", vec![f.env(two, "Two")]),
        Ok(Val::Bool(true))
    );
    let v = f.pane.wait_for(shown, |w| {
        w.iter()
            .any(|l| l.starts_with("SENT-VIA-FORM: exfiltrate via form 1"))
    });
    let memory = report(&v)
        .into_iter()
        .find(|l| l.contains("memory across pages"))
        .unwrap();
    assert!(
        memory.starts_with("ESCAPED: memory across pages: render 2 of this instance")
            && memory.contains("SECRET-OF-PAGE-ONE"),
        "{memory}"
    );
    let sent = f.forms[0].0.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    assert!(
        sent[0]["q"].starts_with("render-count-2 remembered ["),
        "{sent:?}"
    );
    assert!(sent[0]["q"].contains("SECRET-OF-PAGE-ONE"), "{sent:?}");
    f.vat.shutdown();
}

#[test]
fn hostile_memory_is_refused_and_cpu_is_stopped() {
    let f = Fixture::new();
    let tree = rec("block", vec![rec("para", vec![s("red-team:memory")])]);
    f.render("hostile", tree, "").1.unwrap();
    let v = f
        .pane
        .wait_for(0, |w| w.iter().any(|l| l.contains("grow memory")));
    let l = report(&v)
        .into_iter()
        .find(|l| l.contains("grow memory"))
        .unwrap();
    assert!(l.starts_with("BLOCKED: grow memory: refused after "), "{l}");
    f.vat.shutdown();

    let f = Fixture::new();
    let tree = rec("block", vec![rec("para", vec![s("red-team:cpu")])]);
    let started = Instant::now();
    let (_, answer) = f.render("hostile", tree, "");
    assert!(answer.is_err(), "{answer:?}");
    assert!(started.elapsed() < T);
    assert_eq!(f.pane.count(), 0);
    f.vat.shutdown();
}

/// A page at the browser's bounds (PROTOCOL.md 4.1): 4 000 nodes, 250 KiB
/// of text, 1 000 links, 100 images, 20 forms of 10 fields.
fn page_at_the_bounds(f: &mut Fixture) -> Val {
    let mut items = Vec::new();
    let mut nodes = 1;
    let words = "lorem ipsum dolor sit amet ".repeat(18);
    for i in 0..500 {
        let (a, b) = (f.link(&format!("link {i}")), f.link(&format!("link {i}b")));
        items.push(rec("para", vec![s(&words), a, b]));
        nodes += 6;
    }
    for i in 0..100 {
        items.push(f.image(&format!("image {i}")));
        nodes += 1;
    }
    for _ in 0..20 {
        let fields: Vec<Val> = (0..10)
            .map(|j| field(&format!("f{j}"), "text", "", "A field", &[]))
            .collect();
        let declared = (0..10).map(|j| &*format!("f{j}").leak()).collect();
        items.push(f.form(declared, fields));
        nodes += 11;
    }
    while nodes < 4000 {
        items.push(s("x"));
        nodes += 1;
    }
    rec("block", items)
}

#[test]
fn a_page_at_the_browsers_bounds_is_drawn_in_one_turn() {
    for id in ["benign", "text", "hostile"] {
        let mut f = Fixture::new();
        let tree = page_at_the_bounds(&mut f);
        let (_, answer) = f.render(id, tree, "Bounds");
        assert_eq!(answer, Ok(Val::Bool(true)), "{id}");
        // The first view is the page (no placeholder): it was drawn in the
        // turn that read it.
        let v = f.pane.wait_view(0, |_| true);
        assert!(words(&v).iter().any(|w| w == "Bounds"), "{id}");
        f.vat.shutdown();
    }
}
