//! pola-browser's tests: real pages through the real parser (html5ever),
//! checked against PROTOCOL.md 4.1.

mod bounds;
mod drops;
mod forms;
mod pages;
mod urls;

use pola_browser::{Limits, Page, parse};
use pola_syrup::Value;
use url::Url;

/// The page's URL in every test.
pub fn base() -> Url {
    Url::parse("https://example.com/dir/page.html").expect("a valid URL")
}

/// Parses with the default limits.
pub fn page(html: &str) -> Page {
    parse(html.as_bytes(), &base(), &Limits::default())
}

/// The tree with slots filled as `<L i>`, `<I i>`, `<F i>`.
pub fn tree(p: &Page) -> Value {
    p.tree(&mut |slot, i| {
        let label = match slot {
            pola_browser::Slot::Link => "L",
            pola_browser::Slot::Image => "I",
            pola_browser::Slot::Form => "F",
        };
        Value::record(label, vec![Value::int(i as i64)])
    })
}

/// The tree in Syrup's text form.
pub fn show(p: &Page) -> String {
    tree(p).to_string()
}

/// Every string in the tree, joined by `|`.
pub fn strings(v: &Value) -> String {
    let mut out = Vec::new();
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        match v {
            Value::String(s) => out.push(s.clone()),
            Value::Record(r) => stack.extend(r.fields.iter().rev()),
            Value::List(l) => stack.extend(l.iter().rev()),
            _ => {}
        }
    }
    out.join("|")
}

/// Checks the tree against the bounds and the slot lists; returns
/// (nodes, max record depth, text bytes).
pub fn check(p: &Page, limits: &Limits) -> (usize, usize, usize) {
    let v = tree(p);
    let (mut nodes, mut depth, mut text) = (0usize, 0usize, 0usize);
    let mut order: [Vec<usize>; 3] = Default::default();
    let mut stack = vec![(&v, 1usize)];
    while let Some((v, d)) = stack.pop() {
        match v {
            Value::String(s) => {
                nodes += 1;
                text += s.len();
            }
            Value::Record(r) => {
                nodes += 1;
                depth = depth.max(d);
                let label = r.label.as_symbol().expect("symbol labels");
                let rest: &[Value] = match label {
                    "heading" | "list" | "cell" => {
                        assert!(!r.fields.is_empty(), "{label} has its flag");
                        &r.fields[1..]
                    }
                    "link" => {
                        order[0].push(slot(&r.fields[0], "L", p.links.len()));
                        &r.fields[1..]
                    }
                    "form" => {
                        order[2].push(slot(&r.fields[0], "F", p.forms.len()));
                        &r.fields[1..]
                    }
                    "image" => {
                        order[1].push(slot(&r.fields[0], "I", p.images.len()));
                        let alt = r.fields[1].as_str().expect("alt is a string");
                        text += alt.len();
                        &[]
                    }
                    "field" => {
                        assert_eq!(r.fields.len(), 5);
                        for f in [&r.fields[0], &r.fields[2], &r.fields[3]] {
                            text += f.as_str().expect("a string").len();
                        }
                        for o in r.fields[4].as_list().expect("options") {
                            text += o.as_str().expect("a string").len();
                        }
                        let kind = r.fields[1].as_symbol().expect("kind");
                        assert!(
                            [
                                "text", "password", "email", "search", "number", "checkbox",
                                "textarea", "select", "submit"
                            ]
                            .contains(&kind),
                            "{kind}"
                        );
                        &[]
                    }
                    "block" | "para" | "strong" | "em" | "code" | "quote" | "item" | "table"
                    | "tr" | "pre" | "break" | "rule" => &r.fields,
                    other => panic!("unknown label {other}"),
                };
                match label {
                    "list" => assert!(
                        rest.iter().all(|c| label_of(c) == Some("item")),
                        "list holds items"
                    ),
                    "table" => assert!(
                        rest.iter().all(|c| label_of(c) == Some("tr")),
                        "table holds rows"
                    ),
                    "tr" => assert!(
                        rest.iter().all(|c| label_of(c) == Some("cell")),
                        "row holds cells"
                    ),
                    "pre" => assert!(
                        rest.len() == 1 && rest[0].as_str().is_some(),
                        "pre holds one string"
                    ),
                    _ => {}
                }
                for c in rest.iter().rev() {
                    stack.push((c, d + 1));
                }
            }
            other => panic!("unexpected node {other}"),
        }
    }
    // Every slot once, in page order.
    assert_eq!(order[0], (0..p.links.len()).collect::<Vec<_>>());
    assert_eq!(order[1], (0..p.images.len()).collect::<Vec<_>>());
    assert_eq!(order[2], (0..p.forms.len()).collect::<Vec<_>>());
    assert!(nodes <= limits.max_nodes, "{nodes} nodes");
    assert!(depth <= limits.max_depth, "depth {depth}");
    assert!(text <= limits.max_text, "{text} bytes of text");
    assert_eq!(nodes, p.node_count());
    assert_eq!(text, p.text_len());
    assert!(p.links.len() <= limits.max_links);
    assert!(p.images.len() <= limits.max_images);
    assert!(p.forms.len() <= limits.max_forms);
    assert!(p.forms.iter().map(|f| f.fields.len()).sum::<usize>() <= limits.max_fields);
    for u in p
        .links
        .iter()
        .chain(p.images.iter().map(|i| &i.url))
        .chain(p.forms.iter().map(|f| &f.action))
    {
        assert!(matches!(u.scheme(), "http" | "https"), "{u}");
        assert!(u.username().is_empty() && u.password().is_none(), "{u}");
    }
    (nodes, depth, text)
}

fn label_of(v: &Value) -> Option<&str> {
    match v {
        Value::Record(r) => r.label.as_symbol(),
        _ => None,
    }
}

fn slot(v: &Value, label: &str, len: usize) -> usize {
    let Value::Record(r) = v else {
        panic!("a slot, not {v}")
    };
    assert_eq!(r.label.as_symbol(), Some(label));
    let i = r.fields[0].as_i64().expect("an index");
    assert!((i as usize) < len, "slot {label} {i} of {len}");
    i as usize
}
