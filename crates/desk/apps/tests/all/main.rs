//! Tests of the desk's stock apps, built from source: their modules are
//! confined, their manifests have the shape of `crates/desk/PROTOCOL.md`,
//! and each runs as a caplet object in a real vat, driven through the app
//! protocol by small vat objects standing in for the desk's pane,
//! powerbox and grants.
#![allow(clippy::unwrap_used)]

mod clock;
mod editor;
mod hostile;
mod manifests;
mod modules;
mod notes;
mod packages;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use pola_sandbox::vat::{CapletObject, Policy, VatLink};
use pola_sandbox::{CapletModule, Config, Sandbox};
use pola_syrup::Value;
use pola_vat::{Object, Outcome, Ref, Turn, Val, Vat, error};

/// How long a test waits for an answer or a view.
pub const T: Duration = Duration::from_secs(30);

/// One sandbox with the default (the desk's) limits, shared by the tests.
pub fn sandbox() -> &'static Sandbox<VatLink> {
    static SB: OnceLock<Sandbox<VatLink>> = OnceLock::new();
    SB.get_or_init(|| Sandbox::new(Config::default()).unwrap())
}

/// `wasm` compiled once per test binary (Cranelift in a debug build is
/// slow), keyed by the address of the static bytes.
pub fn module(wasm: &'static [u8]) -> CapletModule<VatLink> {
    type Cache = Mutex<Vec<(usize, CapletModule<VatLink>)>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let key = wasm.as_ptr() as usize;
    let mut cache = CACHE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some((_, m)) = cache.iter().find(|(k, _)| *k == key) {
        return m.clone();
    }
    let m = sandbox().load(wasm).unwrap();
    cache.push((key, m.clone()));
    m
}

/// An app as a caplet object of `vat`, kept across messages (as the desk
/// keeps it).
pub fn spawn_app(vat: &Vat, wasm: &'static [u8]) -> Ref {
    vat.spawn(CapletObject::new(module(wasm), Policy::Persistent))
}

/// A dictionary with string keys.
pub fn dict(pairs: Vec<(&str, Val)>) -> Val {
    Value::Dict(pairs.into_iter().map(|(k, v)| (Val::str(k), v)).collect())
}

/// The `launch` environment.
pub fn env(pane: &Ref, powerbox: &Ref, grants: Vec<(&str, Ref)>) -> Val {
    dict(vec![
        ("pane", Val::Ref(pane.clone())),
        ("powerbox", Val::Ref(powerbox.clone())),
        (
            "grants",
            dict(grants.into_iter().map(|(k, r)| (k, Val::Ref(r))).collect()),
        ),
    ])
}

/// `event({"type" 'click "id" ID})`.
pub fn click(id: &str) -> Val {
    dict(vec![("type", Val::sym("click")), ("id", Val::str(id))])
}

/// `event({"type" 'input "id" ID "value" TEXT})`.
pub fn input(id: &str, value: &str) -> Val {
    dict(vec![
        ("type", Val::sym("input")),
        ("id", Val::str(id)),
        ("value", Val::str(value)),
    ])
}

/// Sends `method(args)` to `app` and waits for a fulfilled answer.
pub fn call(vat: &Vat, app: &Ref, method: &str, args: Vec<Val>) -> Val {
    let p = vat.send(app, method.to_owned(), args);
    vat.block_on(&p, T).unwrap()
}

/// A pane: records every tree it is shown and answers `t` (the desk's
/// checks of the tree are the desk's tests; this pane accepts all, and
/// refuses every other method as the desk's does).
#[derive(Clone, Default)]
pub struct Pane(pub Arc<Mutex<Vec<Val>>>);

impl Object for Pane {
    fn receive(&self, _cx: &mut Turn<'_>, method: &str, args: Vec<Val>) -> Outcome {
        match (method, args.as_slice()) {
            ("show", [tree]) => {
                self.0.lock().unwrap().push(tree.clone());
                Ok(Val::Bool(true))
            }
            _ => Err(error("no such method")),
        }
    }
}

impl Pane {
    /// How many trees it was shown.
    pub fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    /// The last tree shown, flattened to its text (text nodes, labels of
    /// buttons, contents of inputs), one string per leaf.
    pub fn last_words(&self) -> Vec<String> {
        self.0.lock().unwrap().last().map(words).unwrap_or_default()
    }

    /// Waits until a tree shown after the first `after` satisfies `ok`
    /// (on its words), and returns that tree's words. Each tree is looked
    /// at once, outside the pane's lock.
    pub fn wait_for(&self, after: usize, ok: impl Fn(&[String]) -> bool) -> Vec<String> {
        let deadline = Instant::now() + T;
        let mut next = after;
        let mut last = None;
        loop {
            let fresh: Vec<Val> = {
                let shown = self.0.lock().unwrap();
                let fresh = shown.get(next..).unwrap_or_default().to_vec();
                next = shown.len().max(next);
                fresh
            };
            for tree in &fresh {
                let w = words(tree);
                if ok(&w) {
                    return w;
                }
                last = Some(w);
            }
            assert!(Instant::now() < deadline, "no view matched; last: {last:?}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The last tree shown.
    pub fn last(&self) -> Option<Val> {
        self.0.lock().unwrap().last().cloned()
    }
}

/// The text leaves of a view tree, in order.
pub fn words(tree: &Val) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(v: &Val, out: &mut Vec<String>) {
        match v {
            Value::String(s) => out.push(s.clone()),
            Value::Record(r) => r.fields.iter().for_each(|f| walk(f, out)),
            _ => {}
        }
    }
    walk(tree, &mut out);
    out
}

/// Whether `tree` holds a node `<'label fields…>` whose fields start with
/// `first` (e.g. a button with ID `"save"`).
pub fn has_node(tree: &Val, label: &str, first: &str) -> bool {
    match tree {
        Value::Record(r) => {
            let me = r.label.as_symbol() == Some(label)
                && r.fields.first().and_then(Value::as_str) == Some(first);
            me || r.fields.iter().any(|f| has_node(f, label, first))
        }
        _ => false,
    }
}

/// A text file: `name`, `read`, `read_text`, `size`, `write`, like the
/// desk's file capability, over a string in memory.
pub struct TextFile {
    /// The file's name.
    pub name: String,
    /// Its contents.
    pub text: Arc<Mutex<String>>,
}

impl Object for TextFile {
    fn receive(&self, _cx: &mut Turn<'_>, method: &str, args: Vec<Val>) -> Outcome {
        let mut text = self.text.lock().unwrap();
        match (method, args.as_slice()) {
            ("name", []) => Ok(Val::str(&self.name)),
            ("read_text", []) => Ok(Val::str(text.clone())),
            ("read", []) => Ok(Val::bytes(text.clone().into_bytes())),
            ("size", []) => Ok(Val::int(text.len() as i64)),
            ("write", [Value::String(s)]) => {
                *text = s.clone();
                Ok(Val::Bool(true))
            }
            ("write", [Value::Bytes(b)]) => match String::from_utf8(b.to_vec()) {
                Ok(s) => {
                    *text = s;
                    Ok(Val::Bool(true))
                }
                Err(_) => Err(error("not text")),
            },
            _ => Err(error("no such method")),
        }
    }
}

/// A file `name` holding `text`, and the shared contents to look at.
pub fn text_file(vat: &Vat, name: &str, text: &str) -> (Ref, Arc<Mutex<String>>) {
    let contents = Arc::new(Mutex::new(text.to_owned()));
    let file = vat.spawn(TextFile {
        name: name.to_owned(),
        text: contents.clone(),
    });
    (file, contents)
}

/// A revocable forwarder to `target` and its revoker, as the desk grants.
pub fn grant(vat: &Vat, target: &Ref) -> (Ref, Ref) {
    let t = target.clone();
    let pair = vat.run(move |cx| {
        let (fwd, revoker) = pola_sandbox::vat::grant(cx, t);
        Ok(Val::List(vec![Val::Ref(fwd), Val::Ref(revoker)]))
    });
    let pair = vat.block_on(&pair, T).unwrap();
    let l = pair.as_list().unwrap();
    (
        l[0].as_ref().unwrap().clone(),
        l[1].as_ref().unwrap().clone(),
    )
}

/// Revokes a grant made by [`grant`].
pub fn revoke(vat: &Vat, revoker: &Ref) {
    call(vat, revoker, "revoke", vec![]);
}

/// What a powerbox answers each `request`.
#[derive(Clone)]
pub enum Answer {
    /// The user picked this.
    Grant(Ref),
    /// The user said no.
    Refuse,
}

/// A powerbox as the desk's behaves for one window: one request pending at
/// a time (further ones break at once with "too many requests: wait");
/// the pending one is answered by `answer`, or left pending when `None`.
#[derive(Clone)]
pub struct Powerbox {
    /// The requests seen: (kind, reason, options).
    pub requests: Arc<Mutex<Vec<(Val, Val, Val)>>>,
    answer: Option<Answer>,
    pending: Arc<Mutex<Vec<pola_vat::Resolver>>>,
}

impl Powerbox {
    /// A powerbox answering every request with `answer` (`None`: never).
    pub fn new(answer: Option<Answer>) -> Self {
        Powerbox {
            requests: Arc::default(),
            answer,
            pending: Arc::default(),
        }
    }
}

impl Object for Powerbox {
    fn receive(&self, cx: &mut Turn<'_>, method: &str, args: Vec<Val>) -> Outcome {
        let [kind, reason, options] = args.as_slice() else {
            return Err(error("request takes a kind, a reason and options"));
        };
        if method != "request" {
            return Err(error("no such method"));
        }
        self.requests
            .lock()
            .unwrap()
            .push((kind.clone(), reason.clone(), options.clone()));
        match &self.answer {
            Some(Answer::Grant(r)) => Ok(Val::Ref(r.clone())),
            Some(Answer::Refuse) => Err(error("the user refused")),
            None => {
                let mut pending = self.pending.lock().unwrap();
                if !pending.is_empty() {
                    return Err(error("too many requests: wait"));
                }
                let (p, r) = cx.promise();
                pending.push(r);
                Ok(Val::Ref(p))
            }
        }
    }
}

/// Keys of a dictionary, as strings (for checking request options).
pub fn keys(v: &Val) -> BTreeMap<String, Val> {
    match v {
        Value::Dict(d) => d
            .iter()
            .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), v.clone())))
            .collect(),
        _ => BTreeMap::new(),
    }
}
