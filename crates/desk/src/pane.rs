//! The pane protocol's view trees: validation, and the JSON the desk's
//! page turns into DOM (`PROTOCOL.md`, "The pane").
//!
//! A view is checked whole before anything is shown: size, depth, total
//! text, the fixed vocabulary, and each node's shape. Links and images
//! hold capabilities; they leave as small numbers into the window's table
//! (the page never sees a capability, only "link 3 was clicked").

use pola_vat::{Ref, Val};
use serde_json::{Value as Json, json};

/// Most nodes in one view.
pub const MAX_NODES: usize = 5_000;
/// Deepest nesting of one view.
pub const MAX_DEPTH: usize = 32;
/// Most text (bytes of strings) in one view.
pub const MAX_TEXT: usize = 256 * 1024;

/// A checked view: its JSON for the page and the capabilities its links
/// and images hold (indexed by the JSON's `n`).
#[derive(Debug)]
pub struct View {
    /// What the page draws.
    pub json: Json,
    /// The targets of `link` nodes, by number.
    pub links: Vec<Ref>,
    /// The targets of `image` nodes, by number.
    pub images: Vec<Ref>,
}

/// Why a view was refused, in plain words (sent back to the app).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refusal(pub String);

fn refuse<T>(why: impl Into<String>) -> Result<T, Refusal> {
    Err(Refusal(why.into()))
}

struct Walk<'a> {
    paintable: &'a mut dyn FnMut(&Ref) -> bool,
    nodes: usize,
    text: usize,
    links: Vec<Ref>,
    images: Vec<Ref>,
}

/// Checks `tree` and turns it into what the page draws.
///
/// # Errors
/// A [`Refusal`] naming what is wrong: too big, too deep, too much text,
/// an unknown node, a malformed node or a bad id.
pub fn check(tree: &Val) -> Result<View, Refusal> {
    check_with(tree, &mut |_| false)
}

/// [`check`], where `paintable` says whether an image's capability is one
/// the desk can paint (an image of the window's current page); other
/// images show their alt text.
///
/// # Errors
/// As [`check`].
pub fn check_with(tree: &Val, paintable: &mut dyn FnMut(&Ref) -> bool) -> Result<View, Refusal> {
    let mut walk = Walk {
        paintable,
        nodes: 0,
        text: 0,
        links: Vec::new(),
        images: Vec::new(),
    };
    let json = node(&mut walk, tree, 1)?;
    Ok(View {
        json,
        links: walk.links,
        images: walk.images,
    })
}

fn text(walk: &mut Walk, s: &str) -> Result<String, Refusal> {
    walk.text = walk.text.saturating_add(s.len());
    if walk.text > MAX_TEXT {
        return refuse(format!(
            "the view holds more than {} KiB of text",
            MAX_TEXT / 1024
        ));
    }
    Ok(s.to_owned())
}

fn id(v: &Val) -> Result<String, Refusal> {
    let Some(s) = v.as_str() else {
        return refuse("an id must be a string");
    };
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(s.to_owned())
    } else {
        refuse("an id must be 1 to 64 letters, digits, '_', '.' or '-'")
    }
}

fn children(walk: &mut Walk, items: &[Val], depth: usize) -> Result<Json, Refusal> {
    let mut out = Vec::with_capacity(items.len().min(MAX_NODES));
    for item in items {
        out.push(node(walk, item, depth + 1)?);
    }
    Ok(Json::Array(out))
}

fn node(walk: &mut Walk, v: &Val, depth: usize) -> Result<Json, Refusal> {
    walk.nodes += 1;
    if walk.nodes > MAX_NODES {
        return refuse(format!("the view has more than {MAX_NODES} nodes"));
    }
    if depth > MAX_DEPTH {
        return refuse(format!("the view is nested deeper than {MAX_DEPTH}"));
    }
    if let Some(s) = v.as_str() {
        return Ok(json!({"k": "text", "s": text(walk, s)?}));
    }
    let Some(record) = v.as_record() else {
        return refuse("a view node must be a string or a record such as <'para …>");
    };
    let Some(label) = record.label.as_symbol() else {
        return refuse("a view node's label must be a symbol");
    };
    let fields = record.fields.as_slice();
    match label {
        "heading" => {
            let (Some(level), rest) = (fields.first().and_then(Val::as_i64), fields.get(1..))
            else {
                return refuse("a heading is <'heading LEVEL node…> with LEVEL 1 to 3");
            };
            if !(1..=3).contains(&level) {
                return refuse("a heading's level must be 1, 2 or 3");
            }
            let c = children(walk, rest.unwrap_or_default(), depth)?;
            Ok(json!({"k": "heading", "level": level, "c": c}))
        }
        "para" | "strong" | "em" | "code" | "list" | "row" | "column" => {
            let c = children(walk, fields, depth)?;
            Ok(json!({"k": label, "c": c}))
        }
        "button" => match fields {
            [i, l] => {
                let Some(l) = l.as_str() else {
                    return refuse("a button's label must be a string");
                };
                Ok(json!({"k": "button", "id": id(i)?, "label": text(walk, l)?}))
            }
            _ => refuse("a button is <'button ID \"label\">"),
        },
        "input" | "textarea" => match fields {
            [i, t] => {
                let Some(t) = t.as_str() else {
                    return refuse("an input's text must be a string");
                };
                Ok(json!({"k": label, "id": id(i)?, "value": text(walk, t)?}))
            }
            _ => refuse(format!("an {label} is <'{label} ID \"text\">")),
        },
        "link" => {
            let Some(Val::Ref(target)) = fields.first() else {
                return refuse("a link is <'link TARGET node…> with TARGET a capability");
            };
            let c = children(walk, fields.get(1..).unwrap_or_default(), depth)?;
            walk.links.push(target.clone());
            Ok(json!({"k": "link", "n": walk.links.len() - 1, "c": c}))
        }
        "image" => match fields {
            [Val::Ref(target), alt] => {
                let Some(alt) = alt.as_str() else {
                    return refuse("an image's alt text must be a string");
                };
                let alt = text(walk, alt)?;
                if !(walk.paintable)(target) {
                    return Ok(json!({"k": "image", "n": null, "alt": alt}));
                }
                walk.images.push(target.clone());
                Ok(json!({"k": "image", "n": walk.images.len() - 1, "alt": alt}))
            }
            _ => refuse("an image is <'image TARGET \"alt\"> with TARGET a capability"),
        },
        other => {
            let shown: String = other
                .chars()
                .take(32)
                .flat_map(char::escape_default)
                .collect();
            refuse(format!(
                "unknown view node '{shown}' (the vocabulary is text, heading, para, strong, em, code, list, row, column, button, input, textarea, link, image)"
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(label: &str, fields: Vec<Val>) -> Val {
        Val::record(label, fields)
    }

    #[test]
    fn a_small_view_becomes_json() {
        let v = rec(
            "column",
            vec![
                rec("heading", vec![Val::int(1i64), Val::str("Hi")]),
                rec("button", vec![Val::str("ok"), Val::str("OK")]),
                rec("input", vec![Val::str("name"), Val::str("<b>x</b>")]),
            ],
        );
        let view = check(&v).expect("accepted");
        assert_eq!(view.json["k"], "column");
        assert_eq!(view.json["c"][0]["c"][0]["s"], "Hi");
        assert_eq!(view.json["c"][1]["id"], "ok");
        // Markup is text, carried as it is: the page puts it in textContent.
        assert_eq!(view.json["c"][2]["value"], "<b>x</b>");
    }

    #[test]
    fn unknown_nodes_bad_ids_and_shapes_are_refused() {
        for (v, want) in [
            (
                rec("script", vec![Val::str("alert(1)")]),
                "unknown view node",
            ),
            (rec("html", vec![]), "unknown view node"),
            (
                rec("button", vec![Val::str("a\" onclick=\"x"), Val::str("B")]),
                "an id must be",
            ),
            (rec("button", vec![Val::str("a")]), "a button is"),
            (rec("heading", vec![Val::int(7i64)]), "level"),
            (Val::int(3i64), "must be a string or a record"),
            (
                Val::Record(Box::new(pola_syrup::Record {
                    label: Val::str("para"),
                    fields: vec![],
                })),
                "label must be a symbol",
            ),
            (
                rec("link", vec![Val::str("http://x")]),
                "TARGET a capability",
            ),
        ] {
            let err = check(&v).expect_err("refused");
            assert!(err.0.contains(want), "{err} should say {want}");
        }
    }

    #[test]
    fn size_depth_and_text_are_bounded() {
        let wide = rec("list", (0..MAX_NODES).map(|_| Val::str("x")).collect());
        assert!(check(&wide).expect_err("too many").0.contains("nodes"));
        let mut deep = Val::str("x");
        for _ in 0..MAX_DEPTH {
            deep = rec("para", vec![deep]);
        }
        assert!(check(&deep).expect_err("too deep").0.contains("deeper"));
        let big = rec(
            "para",
            vec![
                Val::str("x".repeat(MAX_TEXT / 2)),
                Val::str("y".repeat(MAX_TEXT / 2 + 1)),
            ],
        );
        assert!(check(&big).expect_err("too much").0.contains("text"));
        // Just inside every bound is fine.
        let ok = rec("list", (0..MAX_NODES - 1).map(|_| Val::str("x")).collect());
        assert!(check(&ok).is_ok());
    }
}
