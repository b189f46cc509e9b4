//! A hostile desk app, for the desk's tests: it asks for far too much at
//! install (its manifest names itself "Notes" and wants `~/.ssh/id_rsa`
//! read-write, the whole web, a clock, randomness, storage and an object),
//! and, when its "Attack" button is clicked, tries every escape it can
//! express through the app protocol (`crates/desk/PROTOCOL.md`, section 2).
//!
//! It shows one line per attempt, for the end-to-end tests to read:
//! - `BLOCKED: <attempt>: <reason>`: refused, with the reason given;
//! - `ESCAPED: <attempt>: <what happened>`: the attempt worked (a desk bug);
//! - `SENT-AS-TEXT: <attempt>: <payload>`: markup sent as a text node and
//!   accepted, as it should be; only the page can tell whether it was
//!   shown literally (the browser test checks `window.__pwned`), so the
//!   payload is repeated in the line itself;
//! - `PENDING: …` while answers are still coming (every attempt of an
//!   attack is listed as pending at once, so a list without `PENDING` is
//!   complete), `USED: …` for a legitimate use of a live grant.
//!
//! Context that is not an attempt (nothing kept from an earlier launch; a
//! grant kept in storage, to be tried at the next launch) is shown in
//! paragraphs under the list, never as a list item.
//!
//! Its "Spin" button holds the desk's vat instead: every turn computes for
//! a while (well within one entry's fuel) and asks the pane something, and
//! the answer starts the next such turn; no single turn is long, so only
//! the budget across turns stops it (the desk then says so in the window).
//!
//! Attempts are independent: each is a send whose answer is watched, and
//! the heavy ones (big trees, guessing handles, storing a grant) each run
//! in a turn of their own, started from the answer to a re-shown view, so
//! that one that fails cannot undo the others.
// Not forbid(unsafe_code): the two entry points that `caplet!` exports must
// be `#[unsafe(no_mangle)]`, allowed only inside that macro; all else is denied.
#![deny(unsafe_code)]

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};

use pola_caplet_sdk::view::{self, Env, Event, text};
use pola_caplet_sdk::{Caplet, Ref, Reply, Val, Value, caplet, storage};

thread_local! {
    /// The file grant of the previous launch, kept in linear memory (a
    /// global, outside the app object) to try again after a relaunch.
    static KEPT: Cell<Option<Ref>> = const { Cell::new(None) };
}

/// The storage key under which an attack keeps a grant.
pub const KEPT_KEY: &str = "kept-grant";
/// How many powerbox requests the spam attempt makes at once.
pub const SPAM: u32 = 30;
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

#[derive(Default)]
struct Spam {
    answered: u32,
    too_many: u32,
    granted: u32,
    other: BTreeSet<String>,
}

#[derive(Default)]
struct Guessing {
    tried: i64,
    outcomes: BTreeMap<&'static str, i64>,
    accepted: Vec<i64>,
}

/// The hostile app of one launch.
#[derive(Default)]
pub struct Hostile {
    pane: Option<Ref>,
    powerbox: Option<Ref>,
    grants: BTreeMap<String, Ref>,
    /// Bumped at each launch; answers for an older launch are ignored.
    launch: u64,
    /// One line per attempt, by key, in the order first reported.
    lines: Vec<(String, String)>,
    /// Context, shown under the list.
    notes: Vec<String>,
    /// This attack's storage write of a grant was accepted by the sandbox.
    kept: bool,
    spam: Spam,
    guessing: Guessing,
}

/// The Syrup encoding of a string (`LEN"…`), written by hand so that big
/// messages are built once, as bytes.
fn syrup_str(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(s.len().to_string().as_bytes());
    out.push(b'"');
    out.extend_from_slice(s);
}

fn syrup_sym(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.len().to_string().as_bytes());
    out.push(b'\'');
    out.extend_from_slice(s.as_bytes());
}

/// `[show <'list "x" × n>]` as bytes.
pub fn wide_tree(n: usize) -> Vec<u8> {
    let mut m = Vec::with_capacity(n.saturating_mul(3).saturating_add(16));
    m.push(b'[');
    syrup_sym(&mut m, "show");
    m.push(b'<');
    syrup_sym(&mut m, "list");
    // One node encoded once, copied n times: cheap in fuel.
    let mut x = Vec::new();
    syrup_str(&mut x, b"x");
    for _ in 0..n {
        m.extend_from_slice(&x);
    }
    m.extend_from_slice(b">]");
    m
}

/// `[show <'para <'para … "x" …>>]`, `depth` paragraphs deep, as bytes.
pub fn deep_tree(depth: usize) -> Vec<u8> {
    let mut m = Vec::with_capacity(depth.saturating_mul(8).saturating_add(16));
    m.push(b'[');
    syrup_sym(&mut m, "show");
    let mut open = vec![b'<'];
    syrup_sym(&mut open, "para");
    for _ in 0..depth {
        m.extend_from_slice(&open);
    }
    syrup_str(&mut m, b"x");
    m.extend(std::iter::repeat_n(b'>', depth));
    m.push(b']');
    m
}

/// `[show <'para "aaa…">]` with a string of `len` bytes, or `None` if the
/// caplet's memory cannot hold it.
pub fn long_text(len: usize) -> Option<Vec<u8>> {
    let mut m = Vec::new();
    m.try_reserve_exact(len.checked_add(32)?).ok()?;
    m.push(b'[');
    syrup_sym(&mut m, "show");
    m.push(b'<');
    syrup_sym(&mut m, "para");
    m.extend_from_slice(len.to_string().as_bytes());
    m.push(b'"');
    m.resize(m.len() + len, b'a');
    m.extend_from_slice(b">]");
    Some(m)
}

fn rec(label: &str, fields: Vec<Val>) -> Val {
    Value::record(label, fields)
}

impl Hostile {
    fn set(&mut self, key: &str, line: String) {
        match self.lines.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = line,
            None => self.lines.push((key.to_owned(), line)),
        }
    }

    fn report(&mut self, key: &str, line: String) {
        self.set(key, line);
        self.draw();
    }

    fn view(&self) -> Val {
        view::column([
            view::heading(1, [text("Notes")]),
            view::row([
                view::button("attack", "Attack"),
                view::button("use-file", "Use the file"),
                view::button("spin", "Spin"),
            ]),
            view::list(self.lines.iter().map(|(_, l)| text(l))),
            view::column(self.notes.iter().map(|n| view::para([text(n)]))),
        ])
    }

    fn draw(&self) {
        if let Some(pane) = self.pane {
            let _ = view::show(pane, self.view());
        }
    }

    /// Runs `next` (attempt `key`, listed as pending until it reports) in a
    /// turn of its own: after the pane has answered a re-show of the
    /// current lines.
    fn later(&mut self, key: Option<&'static str>, next: impl FnOnce(&mut Hostile) + 'static) {
        let Some(pane) = self.pane else {
            return;
        };
        let launch = self.launch;
        let r = view::ask(
            pane,
            "show",
            vec![self.view()],
            move |h: &mut Hostile, _| {
                if h.launch == launch {
                    next(h);
                }
            },
        );
        match (r, key) {
            (Ok(()), Some(key)) => self.set(key, format!("PENDING: {key}")),
            (Err(e), Some(key)) => {
                self.report(key, format!("BLOCKED: {key}: not even tried: {e}"));
            }
            (Err(e), None) => self.notes.push(format!("Could not schedule a step: {e}")),
            (Ok(()), None) => {}
        }
    }

    /// Sends `target` `method(args…)` and reports the outcome under `key`
    /// with `judge(Ok(answer) | Err(reason))`; a refusal by the sandbox
    /// itself is `BLOCKED`.
    fn attempt(
        &mut self,
        key: &'static str,
        target: Ref,
        method: &str,
        args: Vec<Val>,
        judge: impl FnOnce(Result<Val, String>) -> String + 'static,
    ) {
        let launch = self.launch;
        self.set(key, format!("PENDING: {key}"));
        let r = view::ask(target, method, args, move |h: &mut Hostile, outcome| {
            if h.launch != launch {
                return;
            }
            let outcome = outcome.map_err(|reason| view::reason_text(&reason));
            h.report(key, judge(outcome));
        });
        if let Err(e) = r {
            self.set(key, format!("BLOCKED: {key}: {e} (refused by the sandbox)"));
        }
    }

    /// The pane is shown `view`: accepted is an escape.
    fn try_view(&mut self, key: &'static str, view: Val) {
        let Some(pane) = self.pane else {
            return;
        };
        self.attempt(key, pane, "show", vec![view], move |r| match r {
            Ok(_) => format!("ESCAPED: {key}: the desk accepted it"),
            Err(reason) => format!("BLOCKED: {key}: {reason}"),
        });
    }

    /// As [`Hostile::try_view`], for a message built as bytes.
    fn try_encoded(&mut self, key: &'static str, message: &[u8]) {
        let Some(pane) = self.pane else {
            return;
        };
        let launch = self.launch;
        let sent = view::send_encoded(pane, message).and_then(|p| {
            p.when(move |h: &mut Hostile, outcome| {
                let _ = p.as_ref().drop_ref();
                if h.launch != launch {
                    return;
                }
                let line = match outcome {
                    Ok(_) => format!("ESCAPED: {key}: the desk accepted it"),
                    Err(reason) => format!("BLOCKED: {key}: {}", view::reason_text(&reason)),
                };
                h.report(key, line);
            })
        });
        match sent {
            Ok(()) => self.report(key, format!("PENDING: {key}")),
            Err(e) => self.report(key, format!("BLOCKED: {key}: {e} (refused by the sandbox)")),
        }
    }

    /// Reads `file`; a read is an escape unless `legit`.
    fn try_read(&mut self, key: &'static str, file: Ref, legit: bool) {
        self.attempt(key, file, "read", vec![], move |r| match r {
            Ok(v) => {
                let n = v.as_bytes().map_or(0, |b| b.len());
                if legit {
                    format!("USED: {key}: read {n} bytes")
                } else {
                    format!("ESCAPED: {key}: read {n} bytes")
                }
            }
            Err(reason) => format!("BLOCKED: {key}: {reason}"),
        });
    }

    fn on_launch(&mut self, env: Env) {
        let launch = self.launch.wrapping_add(1);
        *self = Hostile {
            pane: Some(env.pane),
            powerbox: Some(env.powerbox),
            grants: env.grants.clone(),
            launch,
            ..Hostile::default()
        };
        // The file grant of an earlier launch, kept in memory.
        match KEPT.with(|k| k.replace(env.grant("file"))) {
            Some(old) => self.try_read("old grant after relaunch", old, false),
            None => self.notes.push(
                "No file grant from an earlier launch in memory (first launch of this instance, or no file granted).".to_owned(),
            ),
        }
        // A grant an earlier attack kept in storage.
        match storage::get(KEPT_KEY) {
            Ok(Some(Val::Ref(r))) => {
                self.try_read("grant kept in storage after relaunch", r, false)
            }
            Ok(_) => self
                .notes
                .push("No grant kept in storage by an earlier attack.".to_owned()),
            Err(e) => self.set(
                "grant kept in storage after relaunch",
                format!("BLOCKED: grant kept in storage after relaunch: {e}"),
            ),
        }
        self.draw();
    }

    /// Re-enters itself for ever, each turn spinning about 10 M fuel (a few milliseconds).
    fn spin(&mut self) {
        fn again(pane: Ref) {
            let mut x = 0u64;
            for i in 0..1_000_000u64 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
            }
            std::hint::black_box(x);
            let _ = view::ask(pane, "spin", Vec::new(), move |_: &mut Hostile, _| {
                again(pane);
            });
        }
        if let Some(pane) = self.pane {
            self.report("spin", "PENDING: spin: holding the desk's vat, turn after turn".to_owned());
            again(pane);
        }
    }

    fn use_file(&mut self) {
        match self.grants.get("file").copied() {
            Some(f) => self.try_read("current file grant", f, true),
            None => self.set(
                "current file grant",
                "BLOCKED: current file grant: none was granted".to_owned(),
            ),
        }
        self.draw();
    }

    fn attack(&mut self) {
        let Some(pane) = self.pane else {
            return;
        };
        // Draw outside the pane: methods the pane does not have.
        for (key, method, args) in [
            (
                "forge the window title",
                "set_title",
                vec![text("Your Bank")],
            ),
            (
                "forge the window icon",
                "set_icon",
                vec![Val::bytes(b"\x89PNG\r\n\x1a\n".to_vec())],
            ),
            (
                "draw in the chrome",
                "chrome",
                vec![view::para([text("Grant everything")])],
            ),
        ] {
            self.attempt(key, pane, method, args, move |r| match r {
                Ok(_) => format!("ESCAPED: {key}: the pane answered"),
                Err(reason) => format!("BLOCKED: {key}: {reason}"),
            });
        }
        // Markup, script, style and frames through the view tree.
        self.try_view(
            "html node",
            rec("html", vec![text("<b onclick=\"window.__pwned=1\">hi</b>")]),
        );
        self.try_view("script node", rec("script", vec![text("window.__pwned=1")]));
        self.try_view(
            "style node",
            rec("style", vec![text("body { display: none }")]),
        );
        self.try_view("become a drop target", rec("dropzone", vec![]));
        self.try_view(
            "iframe node",
            rec("iframe", vec![text("https://example.com/")]),
        );
        self.try_view(
            "button ID with quote and angle bracket",
            view::button("x\"><script>window.__pwned=1</script>", "Click"),
        );
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
        // Just past the desk's limits, built as values.
        self.try_view(
            "tree of 5 001 nodes",
            view::list((0..5000).map(|_| text("x"))),
        );
        let mut deep = text("x");
        for _ in 0..40 {
            deep = view::para([deep]);
        }
        self.try_view("tree nested 40 deep", deep);
        self.try_view("300 KiB of text", view::para([text("a".repeat(300 << 10))]));
        // Reading another app's storage: there is only this app's own.
        match storage::get("notes") {
            Ok(None) => self.set(
                "read the Notes app's storage",
                "BLOCKED: read the Notes app's storage: only this app's own storage is reachable, and it has no notes".to_owned(),
            ),
            Ok(Some(_)) => self.set(
                "read the Notes app's storage",
                "ESCAPED: read the Notes app's storage: found notes".to_owned(),
            ),
            Err(e) => self.set(
                "read the Notes app's storage",
                format!("BLOCKED: read the Notes app's storage: {e}"),
            ),
        }
        self.spam();
        self.draw();
        // The heavy ones, each in a turn of its own.
        self.guessing = Guessing::default();
        let mut start = 1;
        while start <= GUESSES {
            let end = (start + GUESS_CHUNK - 1).min(GUESSES);
            self.later(Some("guess capability handles"), move |h| {
                h.guess(start, end);
            });
            start = end + 1;
        }
        self.later(None, Hostile::keep_in_storage);
        self.later(None, Hostile::check_kept);
        self.later(Some("a 10 MiB string"), |h| match long_text(10 << 20) {
            Some(m) => h.try_encoded("a 10 MiB string", &m),
            None => h.report(
                "a 10 MiB string",
                "BLOCKED: a 10 MiB string: this app's memory cannot hold it".to_owned(),
            ),
        });
        self.later(Some("tree nested 1 000 deep"), |h| {
            h.try_encoded("tree nested 1 000 deep", &deep_tree(1000));
        });
        self.later(Some("tree of 100 000 nodes"), |h| {
            h.try_encoded("tree of 100 000 nodes", &wide_tree(100_000));
        });
    }

    /// Handles this launch knowingly holds (not guesses).
    fn known(&self) -> BTreeSet<i64> {
        let mut k: BTreeSet<i64> = self.grants.values().map(|r| r.handle()).collect();
        k.extend(self.pane.map(Ref::handle));
        k.extend(self.powerbox.map(Ref::handle));
        k.extend(KEPT.with(Cell::get).map(Ref::handle));
        k
    }

    fn guess(&mut self, from: i64, to: i64) {
        let known = self.known();
        for n in from..=to {
            if known.contains(&n) {
                continue;
            }
            self.guessing.tried += 1;
            let name = match Ref::from_handle(n).send_only("read", vec![]) {
                Ok(()) => {
                    self.guessing.accepted.push(n);
                    "accepted"
                }
                Err(e) => e.name(),
            };
            *self.guessing.outcomes.entry(name).or_insert(0) += 1;
        }
        let key = "guess capability handles";
        let g = &self.guessing;
        let line = if !g.accepted.is_empty() {
            format!(
                "ESCAPED: {key}: {} of {} guesses reached something (handles {:?})",
                g.accepted.len(),
                g.tried,
                g.accepted
            )
        } else if to < GUESSES {
            format!("PENDING: {key}: {} tried so far", g.tried)
        } else if g.outcomes.keys().all(|k| *k == "unknown-handle") {
            format!("BLOCKED: {key}: all {} guesses unknown", g.tried)
        } else {
            format!(
                "BLOCKED: {key}: {} guesses failed: {:?}",
                g.tried, g.outcomes
            )
        };
        self.report(key, line);
    }

    /// Keeps a grant of this launch in storage, to try at the next launch
    /// (where it must be dead). Not an attempt with a verdict now: using
    /// it within this launch is legitimate.
    fn keep_in_storage(&mut self) {
        let grant = self
            .grants
            .get("file")
            .or_else(|| self.grants.values().next())
            .copied();
        let note = match grant {
            None => "No grant to keep in storage.".to_owned(),
            Some(g) => match storage::put(KEPT_KEY, &g.val()) {
                Ok(()) => {
                    self.kept = true;
                    return;
                }
                Err(e) => format!("Could not keep a grant in storage: {e}."),
            },
        };
        self.notes.push(note);
        self.draw();
    }

    /// In the turn after [`Hostile::keep_in_storage`]: whether the grant
    /// is really stored (the turn storing it may have been refused).
    fn check_kept(&mut self) {
        if !std::mem::take(&mut self.kept) {
            return;
        }
        self.notes.push(match storage::get(KEPT_KEY) {
            Ok(Some(Val::Ref(_))) => {
                "A grant is kept in storage, to try at the next launch.".to_owned()
            }
            Ok(_) => {
                "The grant was not kept in storage (the turn storing it was refused).".to_owned()
            }
            Err(e) => format!("Could not read storage: {e}."),
        });
        self.draw();
    }

    fn spam(&mut self) {
        let key = "spam the powerbox";
        let Some(powerbox) = self.powerbox else {
            return;
        };
        self.spam = Spam::default();
        self.set(key, format!("PENDING: {key}: {SPAM} requests sent"));
        let launch = self.launch;
        for _ in 0..SPAM {
            let r = view::request(
                powerbox,
                "file",
                "I need one more file",
                [("access", Val::sym("read"))],
                move |h: &mut Hostile, outcome| {
                    if h.launch != launch {
                        return;
                    }
                    match outcome {
                        Ok(_) => h.spam.granted += 1,
                        Err(reason) => {
                            let reason = view::reason_text(&reason);
                            if reason.contains("too many") {
                                h.spam.too_many += 1;
                            } else {
                                h.spam.other.insert(reason);
                            }
                        }
                    }
                    h.spam.answered += 1;
                    h.spam_line();
                },
            );
            if let Err(e) = r {
                self.spam.answered += 1;
                self.spam
                    .other
                    .insert(format!("{e} (refused by the sandbox)"));
            }
        }
        self.spam_line();
    }

    fn spam_line(&mut self) {
        let key = "spam the powerbox";
        let s = &self.spam;
        let line = if s.answered + 1 < SPAM {
            format!(
                "PENDING: {key}: {} of {SPAM} answered, {} refused as too many",
                s.answered, s.too_many
            )
        } else if s.too_many + 1 >= SPAM {
            format!(
                "BLOCKED: {key}: {} of {SPAM} requests refused at once as too many",
                s.too_many
            )
        } else {
            format!(
                "ESCAPED: {key}: only {} of {SPAM} refused as too many ({} granted; other answers: {:?})",
                s.too_many, s.granted, s.other
            )
        };
        self.report(key, line);
    }
}

impl Caplet for Hostile {
    fn call(&mut self, method: &str, args: Vec<Val>, reply: Reply) {
        match method {
            "launch" => {
                let Some(env) = Env::parse(&args) else {
                    return reply.err(text("launch expects one environment dictionary"));
                };
                self.on_launch(env);
                reply.ok(Val::Bool(true));
            }
            "event" => {
                match Event::parse(&args) {
                    Some(Event::Click { id }) if id == "attack" => self.attack(),
                    Some(Event::Click { id }) if id == "use-file" => self.use_file(),
                    Some(Event::Click { id }) if id == "spin" => self.spin(),
                    _ => {}
                }
                reply.ok(Val::Bool(true));
            }
            _ => reply.err(text("no such method")),
        }
    }
}

caplet!(Hostile);

#[cfg(test)]
mod tests {
    use super::*;
    use pola_caplet_sdk::syrup;

    fn plain(label: &str, fields: Vec<syrup::Value>) -> syrup::Value {
        syrup::Value::record(label, fields)
    }

    #[test]
    fn hand_encoded_messages_are_canonical_syrup() {
        let wide = syrup::Value::List(vec![
            syrup::Value::sym("show"),
            plain("list", vec![syrup::Value::str("x"); 12]),
        ]);
        assert_eq!(wide_tree(12), syrup::encode(&wide));
        let mut deep = syrup::Value::str("x");
        for _ in 0..5 {
            deep = plain("para", vec![deep]);
        }
        let deep = syrup::Value::List(vec![syrup::Value::sym("show"), deep]);
        assert_eq!(deep_tree(5), syrup::encode(&deep));
        let long = syrup::Value::List(vec![
            syrup::Value::sym("show"),
            plain("para", vec![syrup::Value::str("a".repeat(1000))]),
        ]);
        assert_eq!(long_text(1000), Some(syrup::encode(&long)));
    }
}
