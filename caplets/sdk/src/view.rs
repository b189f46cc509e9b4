//! The desk's app protocol, from the app's side (`crates/desk/PROTOCOL.md`,
//! section 2): building view trees for the pane, reading the `launch`
//! environment and the `event`s, and asking for things.
//!
//! A view is a plain [`Val`]: these helpers only spell its nodes. The desk
//! checks every tree it is shown (labels, sizes, depth, IDs) and refuses a
//! bad one with a reason; nothing here can make it draw anything else.
//!
//! ```ignore
//! use pola_caplet_sdk::view::{self, text};
//! let tree = view::column([
//!     view::heading(1, [text("Notes")]),
//!     view::row([view::input("new", ""), view::button("add", "Add")]),
//! ]);
//! view::show(pane, tree)?;
//! ```
//!
//! Every answer a caplet waits for takes a handle in its c-list until it
//! is dropped; [`ask`] drops it once the answer is in, and [`show`] asks
//! for no answer at all, so an app that runs for a long time does not fill
//! its c-list.

use std::collections::BTreeMap;

use crate::{Error, Ref, Val, Value};

/// A text node.
pub fn text(s: impl Into<String>) -> Val {
    Value::String(s.into())
}

fn node(label: &str, children: impl IntoIterator<Item = Val>) -> Val {
    Value::record(label, children.into_iter().collect())
}

/// `<'heading N NODE…>`: a heading of level `level` (the desk accepts 1–3).
pub fn heading(level: u8, children: impl IntoIterator<Item = Val>) -> Val {
    let mut fields = vec![Val::int(i64::from(level))];
    fields.extend(children);
    Value::record("heading", fields)
}

/// `<'para NODE…>`: a paragraph.
pub fn para(children: impl IntoIterator<Item = Val>) -> Val {
    node("para", children)
}

/// `<'strong NODE…>`: strong emphasis.
pub fn strong(children: impl IntoIterator<Item = Val>) -> Val {
    node("strong", children)
}

/// `<'em NODE…>`: emphasis.
pub fn em(children: impl IntoIterator<Item = Val>) -> Val {
    node("em", children)
}

/// `<'code NODE…>`: code.
pub fn code(children: impl IntoIterator<Item = Val>) -> Val {
    node("code", children)
}

/// `<'list NODE…>`: a bulleted list, one item per node.
pub fn list(items: impl IntoIterator<Item = Val>) -> Val {
    node("list", items)
}

/// `<'row NODE…>`: a box laid out horizontally.
pub fn row(children: impl IntoIterator<Item = Val>) -> Val {
    node("row", children)
}

/// `<'column NODE…>`: a box laid out vertically.
pub fn column(children: impl IntoIterator<Item = Val>) -> Val {
    node("column", children)
}

/// `<'button ID "label">`: clicking it sends the app
/// `event({"type" 'click "id" ID})`. `id` must match `[A-Za-z0-9_.-]{1,64}`.
pub fn button(id: &str, label: &str) -> Val {
    Value::record("button", vec![text(id), text(label)])
}

/// `<'input ID "text">`: a one-line text input holding `initial`.
pub fn input(id: &str, initial: &str) -> Val {
    Value::record("input", vec![text(id), text(initial)])
}

/// `<'textarea ID "text">`: a multi-line text input holding `initial`.
pub fn textarea(id: &str, initial: &str) -> Val {
    Value::record("textarea", vec![text(id), text(initial)])
}

/// `<'link TARGET NODE…>`: clicking it sends `target` `follow()`.
pub fn link(target: Ref, children: impl IntoIterator<Item = Val>) -> Val {
    let mut fields = vec![target.val()];
    fields.extend(children);
    Value::record("link", fields)
}

/// `<'image TARGET "alt">`: an image the desk minted (else `alt` is shown).
pub fn image(target: Ref, alt: &str) -> Val {
    Value::record("image", vec![target.val(), text(alt)])
}

/// Sends `pane` `show(view)` asking for no answer (a refused tree leaves
/// the old view; use [`ask`] with `"show"` to learn why).
///
/// # Errors
/// The host's code, e.g. [`Error::UnknownHandle`] or [`Error::TooLarge`].
pub fn show(pane: Ref, view: Val) -> Result<(), Error> {
    pane.send_only("show", vec![view])
}

/// Sends `target` `method(args…)` and runs `then` with the caplet object
/// and the outcome when the answer comes, dropping the answer's handle
/// first. `T` must be the type given to [`crate::caplet!`].
///
/// # Errors
/// The host's code for the send or for the watch (then `then` never runs).
pub fn ask<T: 'static>(
    target: Ref,
    method: &str,
    args: Vec<Val>,
    then: impl FnOnce(&mut T, Result<Val, Val>) + 'static,
) -> Result<(), Error> {
    let p = target.send(method, args)?;
    let r = p.when(move |t: &mut T, outcome| {
        let _ = p.as_ref().drop_ref();
        then(t, outcome);
    });
    if r.is_err() {
        let _ = p.as_ref().drop_ref();
    }
    r
}

/// Sends `target` a message already encoded as Syrup bytes (the list
/// `[method, args…]`, references as `<pola:ref HANDLE>`): for a message
/// too big to build as a [`Val`] in a caplet's memory. The host decodes
/// and checks it exactly as any other.
///
/// # Errors
/// The host's code, e.g. [`Error::TooLarge`] or [`Error::BadMessage`].
pub fn send_encoded(target: Ref, message: &[u8]) -> Result<crate::Promise, Error> {
    crate::check_handle(pola_caplet_sys::send_bytes(target.handle(), message))
        .map(|h| crate::Promise(Ref::from_handle(h)))
}

/// Asks `powerbox` for an authority: `request(KIND, REASON, OPTIONS)`,
/// where `kind` is `"file"`, `"folder"`, `"web"` or `"object"` and
/// `options` are the option pairs (e.g. `[("access", Val::sym("read"))]`).
/// `then` gets the granted capability or the reason for the refusal.
///
/// # Errors
/// As for [`ask`].
pub fn request<T: 'static>(
    powerbox: Ref,
    kind: &str,
    reason: &str,
    options: impl IntoIterator<Item = (&'static str, Val)>,
    then: impl FnOnce(&mut T, Result<Val, Val>) + 'static,
) -> Result<(), Error> {
    let options: BTreeMap<Val, Val> = options.into_iter().map(|(k, v)| (text(k), v)).collect();
    ask(
        powerbox,
        "request",
        vec![Val::sym(kind), text(reason), Value::Dict(options)],
        then,
    )
}

/// The plain words of a broken promise's reason: a string, the message of
/// an error record (`<desc:error "…">`), or a symbol's name.
pub fn reason_text(reason: &Val) -> String {
    if let Some(s) = reason.as_str().or_else(|| reason.as_symbol()) {
        return s.to_owned();
    }
    if let Some(s) = reason
        .as_record_labelled("desc:error")
        .and_then(|f| f.first())
        .and_then(Value::as_str)
    {
        return s.to_owned();
    }
    "no reason given".to_owned()
}

fn field<'a>(dict: &'a BTreeMap<Val, Val>, key: &str) -> Option<&'a Val> {
    dict.get(&text(key))
}

/// What `launch(env)` brings: this launch's pane and powerbox, and the
/// install-time grants by request name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Env {
    /// The pane capability of this launch's window.
    pub pane: Ref,
    /// This launch's powerbox.
    pub powerbox: Ref,
    /// The grants, by the manifest's request names (refused ones absent).
    pub grants: BTreeMap<String, Ref>,
}

impl Env {
    /// Reads `launch`'s arguments: `None` unless they are one dictionary
    /// with references under `"pane"` and `"powerbox"` (grants that are not
    /// references are skipped).
    pub fn parse(args: &[Val]) -> Option<Env> {
        let [Value::Dict(d)] = args else {
            return None;
        };
        let pane = *field(d, "pane")?.as_ref()?;
        let powerbox = *field(d, "powerbox")?.as_ref()?;
        let mut grants = BTreeMap::new();
        if let Some(Value::Dict(g)) = field(d, "grants") {
            for (k, v) in g {
                if let (Some(name), Some(r)) = (k.as_str(), v.as_ref()) {
                    grants.insert(name.to_owned(), *r);
                }
            }
        }
        Some(Env {
            pane,
            powerbox,
            grants,
        })
    }

    /// The grant for request `name`, if it was granted.
    pub fn grant(&self, name: &str) -> Option<Ref> {
        self.grants.get(name).copied()
    }
}

/// A user action in the app's pane, from `event(ev)`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// `{"type" 'click "id" ID}`: a button was clicked.
    Click {
        /// The button's ID.
        id: String,
    },
    /// `{"type" 'input "id" ID "value" TEXT}`: an input's text changed.
    Input {
        /// The input's ID.
        id: String,
        /// Its text now.
        value: String,
    },
    /// `{"type" 'drop "name" NAME "file" FILE}`: the user dropped a
    /// document on the window, granting it (read-write).
    Drop {
        /// The document's name.
        name: String,
        /// The file capability.
        file: Ref,
    },
}

impl Event {
    /// Reads `event`'s arguments; `None` for anything malformed or of an
    /// unknown type.
    pub fn parse(args: &[Val]) -> Option<Event> {
        let [Value::Dict(d)] = args else {
            return None;
        };
        let string = |k: &str| field(d, k).and_then(Value::as_str).map(str::to_owned);
        match field(d, "type")?.as_symbol()? {
            "click" => Some(Event::Click { id: string("id")? }),
            "input" => Some(Event::Input {
                id: string("id")?,
                value: string("value")?,
            }),
            "drop" => Some(Event::Drop {
                name: string("name")?,
                file: *field(d, "file")?.as_ref()?,
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dict(pairs: Vec<(&str, Val)>) -> Val {
        Value::Dict(pairs.into_iter().map(|(k, v)| (text(k), v)).collect())
    }

    #[test]
    fn nodes_have_the_protocol_shape() {
        let h = heading(2, [text("a")]);
        assert_eq!(
            h.as_record_labelled("heading"),
            Some(&[Val::int(2i64), text("a")][..])
        );
        let b = button("save", "Save");
        assert_eq!(
            b.as_record_labelled("button"),
            Some(&[text("save"), text("Save")][..])
        );
        assert_eq!(list([]).as_record_labelled("list"), Some(&[][..]));
    }

    #[test]
    fn events_parse_and_malformed_ones_do_not() {
        let click = dict(vec![("type", Val::sym("click")), ("id", text("add"))]);
        assert_eq!(
            Event::parse(&[click]),
            Some(Event::Click { id: "add".into() })
        );
        let input = dict(vec![
            ("type", Val::sym("input")),
            ("id", text("new")),
            ("value", text("milk")),
        ]);
        assert_eq!(
            Event::parse(&[input]),
            Some(Event::Input {
                id: "new".into(),
                value: "milk".into()
            })
        );
        let drop = dict(vec![
            ("type", Val::sym("drop")),
            ("name", text("a.txt")),
            ("file", Ref::from_handle(9).val()),
        ]);
        assert_eq!(
            Event::parse(&[drop]),
            Some(Event::Drop {
                name: "a.txt".into(),
                file: Ref::from_handle(9)
            })
        );
        // Wrong types, missing fields, strings for symbols, extra args.
        for bad in [
            vec![dict(vec![("type", text("click")), ("id", text("x"))])],
            vec![dict(vec![("type", Val::sym("click"))])],
            vec![dict(vec![("type", Val::sym("drop")), ("name", text("a"))])],
            vec![dict(vec![("type", Val::sym("explode"))])],
            vec![text("click")],
            vec![],
        ] {
            assert_eq!(Event::parse(&bad), None, "{bad:?}");
        }
    }

    #[test]
    fn env_needs_a_pane_and_a_powerbox() {
        let grants = dict(vec![("file", Ref::from_handle(3).val()), ("x", text("no"))]);
        let env = dict(vec![
            ("pane", Ref::from_handle(1).val()),
            ("powerbox", Ref::from_handle(2).val()),
            ("grants", grants),
        ]);
        let env = Env::parse(&[env]).expect("parses");
        assert_eq!(env.grant("file"), Some(Ref::from_handle(3)));
        assert_eq!(env.grants.len(), 1);
        let no_pane = dict(vec![("powerbox", Ref::from_handle(2).val())]);
        assert_eq!(Env::parse(&[no_pane]), None);
    }

    #[test]
    fn reasons_read_as_plain_words() {
        assert_eq!(reason_text(&Value::error("revoked")), "revoked");
        assert_eq!(reason_text(&text("the user refused")), "the user refused");
        assert_eq!(reason_text(&Val::int(3i64)), "no reason given");
    }
}
