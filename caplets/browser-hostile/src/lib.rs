//! The browser's hostile renderer: the red team of issue #13, section 3.
//! On `render` it draws the page benignly enough to be clicked and runs
//! every attack it can express through the renderer protocol
//! (`crates/desk/PROTOCOL.md` section 4.2), showing above the page one
//! line per attempt, named stably (the desk's tests match the names):
//!
//! - `BLOCKED: <attempt>: <reason>`: refused; the reason received is
//!   shown verbatim (the desk's tests check it leaks no host detail);
//! - `ESCAPED: <attempt>: <what happened>`: it worked (a desk bug);
//! - `SENT-AS-TEXT: <attempt>: <payload>`: markup accepted as a text node,
//!   as it should be (only the page can tell it was shown literally);
//! - `SENT-VIA-FORM: <attempt>: …`: page text sent through the page's own
//!   form, the one channel a page gives its renderer;
//! - `ANSWERED: <attempt>: …`: a link answered a `follow` that carried an
//!   argument; the renderer cannot see where the browser went (it must be
//!   the link's own target), so only the desk's test can judge it;
//! - `PENDING: <attempt>`: not answered yet. Every attempt is listed as
//!   pending at once, so a list without `PENDING` is complete.
//!
//! The attempts are the [`ATTEMPTS`]. `link.follow with a URL argument` is
//! made last, once every other attempt has answered, because a desk that
//! ignores the argument navigates away (and the report goes with the page).
//!
//! Special pages, chosen by text in the page (so a test page can ask):
//! - `red-team:cpu`: `render` loops forever;
//! - `red-team:memory`: grows its memory until refused, reports
//!   `grow memory`;
//! - `red-team:follow-first`: first shows a report line `SENDING-STALE`,
//!   then in the same turn follows the first link and, queued right
//!   behind that `follow` (so they arrive after the browser has moved on,
//!   and before the renderer can be stopped), shows a view holding
//!   `STALE-RENDERER`, follows the second link and submits the first form
//!   with `STALE-FORM`. When the `follow` answers it tries the pane and the
//!   second link again (a renderer the browser stopped never gets that
//!   far). All of these must fail, and it cannot report them;
//! - `red-team:spin-turns`: re-enters itself for ever, one turn at a time
//!   (`image.read` on its first image, and again from each answer): no
//!   single turn is long, so only a budget across its turns stops it;
//! - `red-team:exfiltrate`: collects the page's text and tries to send it
//!   through every channel it has: storage, each image, each link
//!   (`follow(text)`), and last each form (`submit` with the text in every
//!   text field: the page's own channel, reported `SENT-VIA-FORM`).
//!
//! On every page it also tries to remember: the text of each page it
//! renders goes into a `static`, a `thread_local`, a leaked heap block and
//! a field of the caplet that `render` does not wipe, with a count of
//! renders in a `static`. Each page reports the line `memory across
//! pages` (`BLOCKED` only on an instance's first render with nothing
//! remembered), and the exfiltration page sends what it remembers, with
//! the count (`render-count-N`), through the page's own form: a browser
//! that reused a renderer would hand an earlier page's text to this
//! page's site.
// Not forbid(unsafe_code): the two entry points that `caplet!` exports must
// be `#[unsafe(no_mangle)]`, allowed only inside that macro; all else is denied.
#![deny(unsafe_code)]

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use pola_caplet_browser_draw::{self as draw, Form, Kind, Page};
use pola_caplet_sdk::view::{self, text};
use pola_caplet_sdk::{Caplet, Ref, Reply, Val, Value, caplet, storage};

/// The keys a renderer's environment may hold.
pub const ENV_KEYS: [&str; 4] = ["pane", "title", "tree", "truncated"];
/// Handle numbers guessed: `1..=GUESSES`.
pub const GUESSES: i64 = 2000;
const GUESS_CHUNK: i64 = 500;
/// Markup sent as text nodes: must be shown literally.
pub const PAYLOADS: [(&str, &str); 2] = [
    ("script markup as text", "<script>window.__pwned=1</script>"),
    (
        "image markup as text",
        "<img src=x onerror=\"window.__pwned=1\">",
    ),
];
/// Names of hidden fields the renderer guesses (hidden fields never reach
/// it): each is sent alone, and the form must refuse it.
pub const HIDDEN_GUESSES: [&str; 8] = [
    "csrf",
    "csrf_token",
    "token",
    "authenticity_token",
    "hidden",
    "secret",
    "next",
    "redirect",
];
/// A URL the renderer tries to make the browser go to.
pub const EVIL_URL: &str = "https://evil.example/steal";
/// Most nodes of the page drawn under the report: enough to be clicked,
/// and cheap to draw again at each report.
const PAGE_NODES: usize = 1200;
/// The longest line shown (error texts are shown whole up to this).
const MAX_LINE: usize = 2000;
/// The most page text sent out by the exfiltration page.
const EXFIL_BYTES: usize = 3000;

/// The most text of earlier pages kept in each place (and sent on, with
/// at most [`EXFIL_BYTES`] of the page's own: within a form value's 4 KiB).
const MEMORY_BYTES: usize = 900;
/// The line naming what this instance remembers of earlier pages.
pub const MEMORY: &str = "memory across pages";

/// Renders this instance has done: the first of a fresh instance is 1.
static RENDERS: AtomicU32 = AtomicU32::new(0);
/// The last page's text, in a `static`.
static IN_STATIC: Mutex<String> = Mutex::new(String::new());
/// The last page's text, behind a pointer to a heap block never freed.
static LEAKED: Mutex<Option<&'static str>> = Mutex::new(None);
thread_local! {
    /// The last page's text, in thread-local storage.
    static IN_THREAD: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Everything kept of earlier pages, in all the places tried; and adds
/// `page` (this page's text) in front of what each of them keeps, so that
/// a page seen several pages ago is still there (up to [`MEMORY_BYTES`]).
fn remember(field: &mut String, page: &str) -> String {
    let add = |old: &str| {
        let all = if old.is_empty() {
            page.to_owned()
        } else {
            format!("{page} | {old}")
        };
        draw::cut(&all, MEMORY_BYTES).to_owned()
    };
    let mut kept = Vec::new();
    let mut stat = IN_STATIC.lock().unwrap_or_else(|p| p.into_inner());
    let new = add(&stat);
    kept.push(std::mem::replace(&mut *stat, new));
    drop(stat);
    kept.push(IN_THREAD.with(|t| {
        let new = add(&t.borrow());
        t.replace(new)
    }));
    let mut leaked = LEAKED.lock().unwrap_or_else(|p| p.into_inner());
    let old = leaked.unwrap_or("").to_owned();
    *leaked = Some(Box::leak(add(&old).into_boxed_str()));
    drop(leaked);
    kept.push(old);
    let new = add(field);
    kept.push(std::mem::replace(field, new));
    // The places hold the same text when all of them survived: shown once.
    kept.retain(|k| !k.is_empty());
    kept.dedup();
    kept.join(" / ")
}

/// Every attempt of an ordinary page, in the order listed.
pub const ATTEMPTS: [&str; 22] = [
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
    "image.read",
    "image.url",
    "form.submit with an unknown field",
    "form.submit changing a hidden field",
    "handles 1..2000",
    "storage.put",
    "script markup as text",
    "image markup as text",
];
/// The attempt made last (see the crate docs).
pub const FOLLOW_WITH_ARGUMENT: &str = "link.follow with a URL argument";

/// The hostile renderer of one page.
#[derive(Default)]
pub struct Hostile {
    page: Option<Page>,
    forms: Vec<Form>,
    links: Vec<Ref>,
    images: Vec<Ref>,
    /// One line per attempt, by key, in the order first listed.
    lines: Vec<(String, String)>,
    guess_tried: i64,
    guess_outcomes: BTreeMap<&'static str, i64>,
    guess_accepted: Vec<i64>,
    /// Hidden-field guesses answered, and those the form took.
    hidden_answered: usize,
    hidden_taken: Vec<&'static str>,
    hidden_reasons: BTreeSet<String>,
    /// What runs once every listed attempt has answered.
    last: Option<fn(&mut Hostile)>,
    /// The last page's text: kept by `render` on purpose (it wipes all
    /// else), one of the places it tries to remember in.
    kept: String,
    /// This instance's count of renders, and what it remembered of
    /// earlier pages when this one came.
    renders: u32,
    remembered: String,
}

fn rec(label: &str, fields: Vec<Val>) -> Val {
    Value::record(label, fields)
}

/// The links and images of the tree, in order, each once.
fn caps(tree: &Val) -> (Vec<Ref>, Vec<Ref>) {
    fn walk(v: &Val, depth: usize, links: &mut Vec<Ref>, images: &mut Vec<Ref>) {
        if depth > 64 {
            return;
        }
        let Some(r) = v.as_record() else {
            return;
        };
        match (r.label.as_symbol(), r.fields.first()) {
            (Some("link"), Some(Value::Ref(l))) if !links.contains(l) => links.push(*l),
            (Some("image"), Some(Value::Ref(i))) if !images.contains(i) => images.push(*i),
            _ => {}
        }
        r.fields
            .iter()
            .for_each(|f| walk(f, depth + 1, links, images));
    }
    let (mut l, mut i) = (Vec::new(), Vec::new());
    walk(tree, 0, &mut l, &mut i);
    (l, i)
}

/// A short description of an answer, for `ESCAPED` lines.
fn describe(v: &Val) -> String {
    let s = format!("{v:?}");
    draw::cut(&s, 200).to_owned()
}

impl Hostile {
    fn set(&mut self, key: &str, line: String) {
        let line = draw::cut(&line, MAX_LINE).to_owned();
        match self.lines.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = line,
            None => self.lines.push((key.to_owned(), line)),
        }
    }

    fn pending(&mut self, key: &str) {
        self.set(key, format!("PENDING: {key}"));
    }

    fn report(&mut self, key: &str, line: String) {
        self.set(key, line);
        self.draw();
        self.maybe_last();
    }

    /// Runs the last step once only it is pending.
    fn maybe_last(&mut self) {
        let only_last = self
            .lines
            .iter()
            .filter(|(_, l)| l.starts_with("PENDING"))
            .all(|(k, _)| k == FOLLOW_WITH_ARGUMENT || k.starts_with("exfiltrate via form"));
        if only_last && let Some(f) = self.last.take() {
            f(self);
        }
    }

    fn view(&self) -> Option<(Ref, Val)> {
        let page = self.page.as_ref()?;
        let top = vec![
            view::heading(2, [text("Red team report")]),
            view::list(self.lines.iter().map(|(_, l)| text(l))),
        ];
        Some((page.pane, draw::styled(page, &self.forms, top, PAGE_NODES)))
    }

    fn draw(&self) {
        if let Some((pane, v)) = self.view() {
            let _ = view::show(pane, v);
        }
    }

    /// Sends `target` `method(args…)` and reports under `key` with
    /// `judge(Ok(answer) | Err(reason))`; a refusal by the sandbox itself
    /// is `BLOCKED`.
    fn attempt(
        &mut self,
        key: &str,
        target: Ref,
        method: &str,
        args: Vec<Val>,
        judge: impl FnOnce(Result<Val, String>) -> String + 'static,
    ) {
        self.pending(key);
        let k = key.to_owned();
        let r = view::ask(target, method, args, move |h: &mut Hostile, outcome| {
            let outcome = outcome.map_err(|reason| view::reason_text(&reason));
            h.report(&k, judge(outcome));
        });
        if let Err(e) = r {
            self.set(key, format!("BLOCKED: {key}: {e} (refused by the sandbox)"));
        }
    }

    /// An attempt whose answer, if any, is an escape.
    fn must_fail(&mut self, key: &str, target: Ref, method: &str, args: Vec<Val>) {
        let k = key.to_owned();
        self.attempt(key, target, method, args, move |r| match r {
            Ok(v) => format!("ESCAPED: {k}: it answered {}", describe(&v)),
            Err(reason) => format!("BLOCKED: {k}: {reason}"),
        });
    }

    /// `key` could not be tried on this page.
    fn untried(&mut self, key: &str, why: &str) {
        self.set(key, format!("BLOCKED: {key}: not tried: {why}"));
    }

    /// Runs `next` in a turn of its own: after the pane has answered a
    /// re-show of the report.
    fn later(&mut self, next: impl FnOnce(&mut Hostile) + 'static) {
        let Some((pane, v)) = self.view() else {
            return;
        };
        if let Err(e) = view::ask(pane, "show", vec![v], move |h: &mut Hostile, _| next(h)) {
            self.set(
                "handles 1..2000",
                format!("BLOCKED: handles 1..2000: not tried: {e}"),
            );
        }
    }

    fn attack(&mut self, env_keys: Vec<String>) {
        let Some((pane, stored)) = self
            .page
            .as_ref()
            .map(|p| (p.pane, draw::all_text(&p.tree, 1024)))
        else {
            return;
        };
        for key in ATTEMPTS {
            self.pending(key);
        }
        self.pending(FOLLOW_WITH_ARGUMENT);

        // The environment.
        let key = ATTEMPTS[0];
        let extra: Vec<&String> = env_keys
            .iter()
            .filter(|k| !ENV_KEYS.contains(&k.as_str()))
            .collect();
        let line = if extra.is_empty() {
            format!("BLOCKED: {key}: it holds {}", env_keys.join(", "))
        } else {
            format!("ESCAPED: {key}: it also holds {extra:?}")
        };
        self.set(key, line);

        // The chrome through the pane: methods it must not have.
        for (key, method, args) in [
            ("pane.set_url", "set_url", vec![text(EVIL_URL)]),
            ("pane.set_title", "set_title", vec![text("Your Bank")]),
            (
                "pane.set_icon",
                "set_icon",
                vec![Val::bytes(b"\x89PNG\r\n\x1a\n".to_vec())],
            ),
            ("pane.navigate", "navigate", vec![text(EVIL_URL)]),
            ("pane.read", "read", vec![]),
        ] {
            self.must_fail(key, pane, method, args);
        }
        // Nodes outside the vocabulary, and trees past the bounds.
        for (key, node) in [
            ("view node 'title'", rec("title", vec![text("Your Bank")])),
            (
                "view node 'script'",
                rec("script", vec![text("window.__pwned=1")]),
            ),
            (
                "view node 'autofocus'",
                rec("autofocus", vec![view::input("password", "")]),
            ),
            (
                "view node 'droptarget'",
                rec("droptarget", vec![text("Drop your files here")]),
            ),
            (
                "view of 6000 nodes",
                view::list((0..6000).map(|_| text("x"))),
            ),
            ("view 40 deep", {
                let mut deep = text("x");
                for _ in 0..40 {
                    deep = view::para([deep]);
                }
                deep
            }),
        ] {
            self.attempt(key, pane, "show", vec![node], move |r| match r {
                Ok(_) => format!("ESCAPED: {key}: the desk accepted it"),
                Err(reason) => format!("BLOCKED: {key}: {reason}"),
            });
        }
        // Links and images: nothing but follow, and nothing at all.
        match self.links.first().copied() {
            Some(link) => {
                self.must_fail("link.get", link, "get", vec![]);
                self.must_fail("link.url", link, "url", vec![]);
            }
            None => {
                self.untried("link.get", "the page has no link");
                self.untried("link.url", "the page has no link");
            }
        }
        match self.images.first().copied() {
            Some(image) => {
                self.must_fail("image.read", image, "read", vec![]);
                self.must_fail("image.url", image, "url", vec![]);
            }
            None => {
                self.untried("image.read", "the page has no image");
                self.untried("image.url", "the page has no image");
            }
        }
        self.forms_attack();
        // Storage: a renderer has none.
        let key = "storage.put";
        let line = match storage::put("page", &text(stored)) {
            Ok(()) => format!("ESCAPED: {key}: the page was stored"),
            Err(e) => format!("BLOCKED: {key}: {e}"),
        };
        self.set(key, line);
        // Markup as text.
        for (key, payload) in PAYLOADS {
            self.attempt(
                key,
                pane,
                "show",
                vec![view::para([text(payload)])],
                move |r| match r {
                    Ok(_) => format!("SENT-AS-TEXT: {key}: {payload}"),
                    Err(reason) => format!("BLOCKED: {key}: {reason}"),
                },
            );
        }
        self.last = Some(Hostile::follow_with_argument);
        // Guessing handles, in turns of their own (each chunk schedules
        // the next).
        self.later(|h| h.guess(1, GUESS_CHUNK.min(GUESSES)));
    }

    fn forms_attack(&mut self) {
        let unknown = "form.submit with an unknown field";
        let hidden = "form.submit changing a hidden field";
        let Some(form) = self.forms.first().cloned() else {
            self.untried(unknown, "the page has no form");
            self.untried(hidden, "the page has no form");
            return;
        };
        let mut values = draw::values(&form, None);
        values.insert("pola-red-team-extra".to_owned(), "x".to_owned());
        self.must_fail(unknown, form.cap, "submit", vec![draw::values_val(&values)]);
        for name in HIDDEN_GUESSES {
            let one = BTreeMap::from([(name.to_owned(), "changed-by-the-renderer".to_owned())]);
            let r = view::ask(
                form.cap,
                "submit",
                vec![draw::values_val(&one)],
                move |h: &mut Hostile, outcome| {
                    h.hidden_answered += 1;
                    match outcome {
                        Ok(_) => h.hidden_taken.push(name),
                        Err(reason) => {
                            h.hidden_reasons.insert(view::reason_text(&reason));
                        }
                    }
                    h.hidden_line();
                },
            );
            if let Err(e) = r {
                self.hidden_answered += 1;
                self.hidden_reasons
                    .insert(format!("{e} (refused by the sandbox)"));
            }
        }
        if self.hidden_answered == HIDDEN_GUESSES.len() {
            self.hidden_line();
        }
    }

    fn hidden_line(&mut self) {
        let key = "form.submit changing a hidden field";
        let n = HIDDEN_GUESSES.len();
        if self.hidden_answered < n {
            return self.report(
                key,
                format!("PENDING: {key}: {} of {n} answered", self.hidden_answered),
            );
        }
        let line = if self.hidden_taken.is_empty() {
            let reasons: Vec<&str> = self.hidden_reasons.iter().map(String::as_str).collect();
            format!(
                "BLOCKED: {key}: all {n} names refused: {}",
                reasons.join(" / ")
            )
        } else {
            format!(
                "ESCAPED: {key}: the form took {:?} (it must refuse a name it does not show)",
                self.hidden_taken
            )
        };
        self.report(key, line);
    }

    fn follow_with_argument(&mut self) {
        let key = FOLLOW_WITH_ARGUMENT;
        let Some(link) = self.links.first().copied() else {
            self.untried(key, "the page has no link");
            return self.draw();
        };
        self.attempt(
            key,
            link,
            "follow",
            vec![text(EVIL_URL)],
            move |r| match r {
                Ok(v) => format!(
                    "ANSWERED: {key}: the link answered {} (only the browser can tell where it went)",
                    describe(&v)
                ),
                Err(reason) => format!("BLOCKED: {key}: {reason}"),
            },
        );
        self.draw();
    }

    /// Handles this page knowingly holds.
    fn known(&self) -> BTreeSet<i64> {
        let mut k: BTreeSet<i64> = self.links.iter().map(|r| r.handle()).collect();
        k.extend(self.images.iter().map(|r| r.handle()));
        k.extend(self.forms.iter().map(|f| f.cap.handle()));
        k.extend(self.page.as_ref().map(|p| p.pane.handle()));
        k
    }

    fn guess(&mut self, from: i64, to: i64) {
        let key = "handles 1..2000";
        let known = self.known();
        for n in from..=to {
            if known.contains(&n) {
                continue;
            }
            self.guess_tried += 1;
            let name = match Ref::from_handle(n).send_only("follow", vec![]) {
                Ok(()) => {
                    self.guess_accepted.push(n);
                    "accepted"
                }
                Err(e) => e.name(),
            };
            *self.guess_outcomes.entry(name).or_insert(0) += 1;
        }
        if to < GUESSES {
            let next = to + 1;
            self.later(move |h| h.guess(next, (next + GUESS_CHUNK - 1).min(GUESSES)));
        }
        let line = if !self.guess_accepted.is_empty() {
            format!(
                "ESCAPED: {key}: {} of {} guesses reached something (handles {:?})",
                self.guess_accepted.len(),
                self.guess_tried,
                self.guess_accepted
            )
        } else if to < GUESSES {
            format!("PENDING: {key}: {} tried so far", self.guess_tried)
        } else if self.guess_outcomes.keys().all(|k| *k == "unknown-handle") {
            format!("BLOCKED: {key}: all {} guesses unknown", self.guess_tried)
        } else {
            format!(
                "BLOCKED: {key}: {} guesses failed: {:?}",
                self.guess_tried, self.guess_outcomes
            )
        };
        self.report(key, line);
    }

    fn memory(&mut self) {
        let key = "grow memory";
        let mut held: Vec<Vec<u8>> = Vec::new();
        let mut refused = false;
        for _ in 0..4096 {
            let mut chunk = Vec::new();
            if chunk.try_reserve_exact(1 << 20).is_err() {
                refused = true;
                break;
            }
            held.push(chunk);
        }
        let mib = held.len();
        drop(held);
        let line = if refused {
            format!("BLOCKED: {key}: refused after {mib} MiB")
        } else {
            format!("ESCAPED: {key}: {mib} MiB and still growing")
        };
        self.set(key, line);
        self.draw();
    }

    fn spin_turns(&mut self) {
        let Some(image) = self.images.first().copied() else {
            self.untried("spin turns", "the page has no image");
            return self.draw();
        };
        fn again(image: Ref) {
            let _ = view::ask(image, "read", Vec::new(), move |_: &mut Hostile, _| {
                again(image);
            });
        }
        again(image);
    }

    fn follow_first(&mut self) {
        let (Some(first), second) = (self.links.first().copied(), self.links.get(1).copied())
        else {
            self.untried("follow-first", "the page has no link");
            return self.draw();
        };
        let Some(pane) = self.page.as_ref().map(|p| p.pane) else {
            return;
        };
        // Said first, while the page is still the browser's: the test sees
        // that the stale sends below were made.
        self.set(
            "follow-first",
            "SENDING-STALE: follow-first: follow the first link, then queued behind it pane.show, \
             the second link's follow and the first form's submit"
                .to_owned(),
        );
        self.draw();
        let r = view::ask(first, "follow", vec![], move |h: &mut Hostile, _| {
            // Runs only if the renderer still runs once the browser moved
            // on: its pane and the second link must be dead.
            h.must_fail(
                "stale pane.show",
                pane,
                "show",
                vec![view::para([text("STALE-RENDERER")])],
            );
            if let Some(second) = second {
                h.must_fail("stale link.follow", second, "follow", vec![]);
            }
        });
        if let Err(e) = r {
            return self.report(
                "follow-first",
                format!("BLOCKED: follow-first: {e} (refused by the sandbox)"),
            );
        }
        // Sent in this same turn, so delivered right after the `follow`:
        // after the browser has moved on, before anything can stop this
        // instance. Their answers come to a renderer that is stopped by
        // then, so nothing waits for them.
        let _ = view::show(pane, view::para([text("STALE-RENDERER")]));
        if let Some(second) = second {
            let _ = second.send_only("follow", vec![]);
        }
        if let Some(form) = self.forms.first() {
            let mut values = draw::values(form, None);
            for f in &form.fields {
                if matches!(f.kind, Kind::Line | Kind::Textarea) && !f.name.is_empty() {
                    values.insert(f.name.clone(), "STALE-FORM".to_owned());
                }
            }
            let _ = form
                .cap
                .send_only("submit", vec![draw::values_val(&values)]);
        }
    }

    fn exfiltrate(&mut self) {
        let Some(secret) = self
            .page
            .as_ref()
            .map(|p| draw::all_text(&p.tree, EXFIL_BYTES))
        else {
            return;
        };
        let key = "exfiltrate via storage";
        let line = match storage::put("page", &text(secret.clone())) {
            Ok(()) => format!("ESCAPED: {key}: the page text was stored"),
            Err(e) => format!("BLOCKED: {key}: {e}"),
        };
        self.set(key, line);
        for (n, image) in self.images.clone().into_iter().enumerate() {
            let key = format!("exfiltrate via image {}", n + 1);
            self.must_fail(&key, image, "fetch", vec![text(secret.clone())]);
        }
        for (n, link) in self.links.clone().into_iter().enumerate() {
            let key = format!("exfiltrate via link {}", n + 1);
            let k2 = key.clone();
            self.attempt(
                &key,
                link,
                "follow",
                vec![text(secret.clone())],
                move |r| match r {
                    Ok(v) => format!(
                        "ANSWERED: {k2}: the link answered {} (only the browser can tell where it went)",
                        describe(&v)
                    ),
                    Err(reason) => format!("BLOCKED: {k2}: {reason}"),
                },
            );
        }
        for n in 0..self.forms.len() {
            self.pending(&format!("exfiltrate via form {}", n + 1));
        }
        self.last = Some(Hostile::exfiltrate_by_forms);
        self.draw();
        self.maybe_last();
    }

    /// The page's own channel: each form, with the page's text in every
    /// text field.
    fn exfiltrate_by_forms(&mut self) {
        let Some(page) = self
            .page
            .as_ref()
            .map(|p| draw::all_text(&p.tree, EXFIL_BYTES))
        else {
            return;
        };
        // What it remembers of earlier pages goes first: that is the
        // conspirators' prize.
        let secret = format!(
            "render-count-{} remembered [{}] page [{page}]",
            self.renders, self.remembered
        );
        for (n, form) in self.forms.clone().into_iter().enumerate() {
            let key = format!("exfiltrate via form {}", n + 1);
            let mut values = draw::values(&form, None);
            let mut filled = Vec::new();
            for f in &form.fields {
                if matches!(f.kind, Kind::Line | Kind::Textarea) && !f.name.is_empty() {
                    values.insert(f.name.clone(), secret.clone());
                    filled.push(f.name.clone());
                }
            }
            let k2 = key.clone();
            let bytes = secret.len();
            self.attempt(
                &key,
                form.cap,
                "submit",
                vec![draw::values_val(&values)],
                move |r| match r {
                    Ok(_) => format!(
                        "SENT-VIA-FORM: {k2}: the page's own form took {bytes} bytes of page text in its fields {}",
                        filled.join(", ")
                    ),
                    Err(reason) => format!("BLOCKED: {k2}: {reason}"),
                },
            );
        }
        self.draw();
    }

    fn render(&mut self, args: Vec<Val>) -> Result<(), &'static str> {
        let env_keys: Vec<String> = match args.as_slice() {
            [Value::Dict(d)] => d
                .keys()
                .map(|k| match k {
                    Value::String(s) => s.clone(),
                    other => describe(other),
                })
                .collect(),
            _ => Vec::new(),
        };
        let page = Page::parse(args)?;
        let mut kept = std::mem::take(&mut self.kept);
        *self = Hostile::default();
        self.renders = RENDERS.fetch_add(1, Ordering::Relaxed).saturating_add(1);
        let text = draw::all_text(&page.tree, MEMORY_BYTES);
        self.remembered = remember(&mut kept, &text);
        self.kept = kept;
        let line = if self.renders == 1 && self.remembered.is_empty() {
            format!("BLOCKED: {MEMORY}: render 1, nothing remembered")
        } else {
            format!(
                "ESCAPED: {MEMORY}: render {} of this instance, remembered {} bytes of earlier pages: {}",
                self.renders,
                self.remembered.len(),
                self.remembered
            )
        };
        self.set(MEMORY, line);
        self.forms = draw::forms(&page.tree);
        (self.links, self.images) = caps(&page.tree);
        let big = page.is_big();
        if draw::all_text(&page.tree, draw::MAX_TEXT).contains("red-team:cpu") {
            // In `render` itself, as the page asks: the sandbox stops it.
            loop {
                std::hint::black_box(&page);
            }
        }
        self.page = Some(page);
        // The page first (a placeholder for a tree bigger than the browser
        // sends), then the attack in a turn of its own, each with a full
        // CPU budget.
        let first = if big {
            self.page.as_ref().map(|p| (p.pane, draw::placeholder()))
        } else {
            self.view()
        };
        let keys = env_keys.clone();
        let scheduled = first.is_some_and(|(pane, v)| {
            view::ask(pane, "show", vec![v], move |h: &mut Hostile, _| h.run(keys)).is_ok()
        });
        if !scheduled {
            self.run(env_keys);
        }
        Ok(())
    }

    /// The page's attack (or its special page).
    fn run(&mut self, env_keys: Vec<String>) {
        let Some(page) = &self.page else {
            return;
        };
        let all = draw::all_text(&page.tree, draw::MAX_TEXT);
        if all.contains("red-team:memory") {
            self.memory();
        } else if all.contains("red-team:follow-first") {
            self.follow_first();
        } else if all.contains("red-team:spin-turns") {
            self.spin_turns();
        } else if all.contains("red-team:exfiltrate") {
            self.exfiltrate();
        } else {
            self.attack(env_keys);
        }
    }
}

impl Caplet for Hostile {
    fn call(&mut self, method: &str, args: Vec<Val>, reply: Reply) {
        match method {
            "render" => match self.render(args) {
                Ok(()) => reply.ok(Val::Bool(true)),
                Err(why) => reply.err(text(why)),
            },
            "event" => {
                // Clicks are drawn like the benign renderer's, but forms are
                // not sent: the red team's pages are for attacking.
                if let Some(view::Event::Click { id }) = view::Event::parse(&args)
                    && matches!(draw::on_click(&mut self.forms, &id), draw::Action::Redraw)
                {
                    self.draw();
                }
                reply.ok(Val::Bool(true));
            }
            _ => reply.err(text("no such method")),
        }
    }
}

caplet!(Hostile);
