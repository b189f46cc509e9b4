//! The drawings against hand-built trees: shapes, ids, form state, and
//! the bounds whatever the tree. (The desk's own check of views runs on
//! them in `crates/desk/apps/tests/renderers.rs`.)

use super::*;

fn rec(label: &str, fields: Vec<Val>) -> Val {
    Value::record(label, fields)
}

fn r(n: i64) -> Ref {
    Ref::from_handle(n)
}

fn field(name: &str, kind: &str, value: &str, label: &str, options: &[&str]) -> Val {
    rec(
        "field",
        vec![
            text(name),
            Val::sym(kind),
            text(value),
            text(label),
            Value::List(options.iter().map(|o| text(*o)).collect()),
        ],
    )
}

fn page(tree: Val, title: &str) -> Page {
    Page {
        tree,
        title: title.to_owned(),
        truncated: false,
        pane: r(1),
    }
}

/// Nodes, depth and labels of a view.
fn shape(v: &Val, depth: usize, nodes: &mut usize, deepest: &mut usize, labels: &mut Vec<String>) {
    *nodes += 1;
    *deepest = (*deepest).max(depth);
    if let Some(rc) = v.as_record() {
        let l = rc.label.as_symbol().unwrap_or("?").to_owned();
        let skip = usize::from(matches!(
            l.as_str(),
            "heading" | "link" | "image" | "button" | "input" | "textarea"
        ));
        labels.push(l.clone());
        if matches!(l.as_str(), "button" | "input" | "textarea" | "image") {
            return;
        }
        for f in &rc.fields[skip..] {
            shape(f, depth + 1, nodes, deepest, labels);
        }
    }
}

fn stats(v: &Val) -> (usize, usize, Vec<String>) {
    let (mut n, mut d, mut l) = (0, 0, Vec::new());
    shape(v, 1, &mut n, &mut d, &mut l);
    (n, d, l)
}

fn words(v: &Val) -> Vec<String> {
    fn walk(v: &Val, out: &mut Vec<String>) {
        match v {
            Value::String(s) => out.push(s.clone()),
            Value::Record(r) => r.fields.iter().for_each(|f| walk(f, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(v, &mut out);
    out
}

fn sample() -> Val {
    rec(
        "block",
        vec![
            rec("heading", vec![Val::int(4i64), text("Deep heading")]),
            rec(
                "para",
                vec![text("Hello "), rec("strong", vec![text("world")])],
            ),
            rec(
                "list",
                vec![
                    Val::Bool(true),
                    rec("item", vec![text("one")]),
                    rec("item", vec![text("two")]),
                ],
            ),
            rec(
                "table",
                vec![rec(
                    "tr",
                    vec![
                        rec("cell", vec![Val::Bool(true), text("H")]),
                        rec("cell", vec![Val::Bool(false), text("d")]),
                    ],
                )],
            ),
            rec("link", vec![r(10).val(), text("next page")]),
            rec("image", vec![r(11).val(), text("a cat")]),
            rec(
                "form",
                vec![
                    r(12).val(),
                    field("q", "text", "", "Search", &[]),
                    field("ok", "checkbox", "", "Agree", &[]),
                    field("size", "select", "S", "Size", &["S", "M", "L"]),
                    field("go", "submit", "Go", "", &[]),
                ],
            ),
        ],
    )
}

#[test]
fn styled_draws_every_kind_of_node() {
    let p = page(sample(), "The title");
    let forms = forms(&p.tree);
    let v = styled(&p, &forms, vec![], MAX_NODES);
    let (_, _, labels) = stats(&v);
    for l in [
        "heading", "para", "strong", "list", "row", "column", "link", "image", "input", "button",
    ] {
        assert!(labels.iter().any(|x| x == l), "{l} missing in {labels:?}");
    }
    let w = words(&v);
    for s in [
        "The title",
        "Deep heading",
        "1. ",
        "2. ",
        "a cat",
        "next page",
        "Go",
        "S \u{25be}",
    ] {
        assert!(w.iter().any(|x| x == s), "{s} missing in {w:?}");
    }
    assert!(!w.iter().any(|x| x == CUT_LINE));
}

#[test]
fn the_title_is_not_repeated_over_an_h1() {
    let tree = rec(
        "block",
        vec![rec("heading", vec![Val::int(1i64), text("Own")])],
    );
    let v = styled(&page(tree, "The title"), &[], vec![], MAX_NODES);
    assert!(!words(&v).iter().any(|x| x == "The title"));
}

#[test]
fn forms_keep_what_is_typed_toggled_and_picked() {
    let mut f = forms(&sample());
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].cap, r(12));
    on_input(&mut f, "f0.0", "cats");
    on_input(&mut f, "f0.1", "typed into a checkbox is ignored");
    on_input(&mut f, "../etc", "x");
    assert_eq!(on_click(&mut f, "f0.1"), Action::Redraw);
    assert_eq!(on_click(&mut f, "f0.2"), Action::Redraw);
    assert_eq!(on_click(&mut f, "f0.2"), Action::Redraw);
    assert_eq!(on_click(&mut f, "f9.0"), Action::None);
    assert_eq!(on_click(&mut f, "f0.0"), Action::None);
    assert_eq!(on_click(&mut f, "nonsense"), Action::None);
    let Action::Submit(0, values) = on_click(&mut f, "f0.3") else {
        panic!("a submit");
    };
    let want: BTreeMap<String, String> = [("q", "cats"), ("ok", "on"), ("size", "L"), ("go", "Go")]
        .into_iter()
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .collect();
    assert_eq!(values, want);
    // Toggled back off: not sent; the select wraps round.
    on_click(&mut f, "f0.1");
    on_click(&mut f, "f0.2");
    let Action::Submit(_, values) = on_click(&mut f, "f0.3") else {
        panic!("a submit");
    };
    assert!(!values.contains_key("ok"));
    assert_eq!(values["size"], "S");
}

#[test]
fn ids_parse_strictly() {
    assert_eq!(parse_id("f0.3"), Some(Target::Field(0, 3)));
    assert_eq!(parse_id("f12.submit"), Some(Target::Submit(12)));
    for bad in [
        "",
        "f",
        "f.",
        "f0.",
        "f.1",
        "g0.1",
        "f0.1.2",
        "f-1.2",
        "f99999999.1",
        "f0.+1",
    ] {
        assert_eq!(parse_id(bad), None, "{bad}");
    }
}

fn huge_tree(n: usize) -> Val {
    let items: Vec<Val> = (0..n)
        .map(|i| match i % 4 {
            0 => rec(
                "para",
                vec![text("some words "), rec("em", vec![text("here")])],
            ),
            1 => rec("link", vec![r(100 + i as i64).val(), text("a link")]),
            2 => rec("list", vec![Val::Bool(true), rec("item", vec![text("x")])]),
            _ => text("loose text"),
        })
        .collect();
    rec("block", items)
}

fn deep_tree(depth: usize) -> Val {
    let mut v = rec("para", vec![text("bottom")]);
    for i in 0..depth {
        v = match i % 3 {
            0 => rec("quote", vec![v]),
            1 => rec("list", vec![Val::Bool(false), rec("item", vec![v])]),
            _ => rec(
                "table",
                vec![rec("tr", vec![rec("cell", vec![Val::Bool(false), v])])],
            ),
        };
    }
    rec("block", vec![v])
}

#[test]
fn drawings_stay_within_the_panes_bounds() {
    for tree in [huge_tree(10_000), deep_tree(25), huge_tree(3)] {
        let p = page(tree, "t");
        let f = forms(&p.tree);
        for v in [styled(&p, &f, vec![], MAX_NODES), text_only(&p)] {
            let (n, d, _) = stats(&v);
            assert!(n <= 5_000, "{n} nodes");
            assert!(d <= 32, "depth {d}");
            assert!(measure(std::slice::from_ref(&v)).1 <= 256 * 1024);
        }
    }
    let v = styled(&page(huge_tree(10_000), ""), &[], vec![], MAX_NODES);
    assert_eq!(words(&v).last().map(String::as_str), Some(CUT_LINE));
    // The deep tree's bottom text is still there, flattened.
    let v = styled(&page(deep_tree(25), ""), &[], vec![], MAX_NODES);
    assert!(words(&v).iter().any(|w| w.contains("bottom")));
}

#[test]
fn text_past_the_bound_is_cut() {
    let big = rec(
        "block",
        (0..8)
            .map(|_| rec("para", vec![text("x".repeat(60 << 10))]))
            .collect(),
    );
    let p = page(big, "");
    for v in [styled(&p, &[], vec![], MAX_NODES), text_only(&p)] {
        let (_, t) = measure(std::slice::from_ref(&v));
        assert!(t <= 256 * 1024, "{t}");
        assert_eq!(words(&v).last().map(String::as_str), Some(CUT_LINE));
    }
}

#[test]
fn text_only_has_no_inputs_and_keeps_links() {
    let p = page(sample(), "");
    let v = text_only(&p);
    let (_, d, labels) = stats(&v);
    assert!(d <= 4);
    assert!(
        labels
            .iter()
            .all(|l| matches!(l.as_str(), "column" | "para" | "link")),
        "{labels:?}"
    );
    assert!(labels.iter().any(|l| l == "link"));
    let w = words(&v).join("");
    assert!(w.contains("[image: a cat]"), "{w}");
    assert!(
        w.contains("next page") && w.contains("1. one") && w.contains("H | d"),
        "{w}"
    );
}

#[test]
fn malformed_trees_draw_without_panicking() {
    let junk = rec(
        "block",
        vec![
            Val::int(7i64),
            rec("heading", vec![]),
            rec("heading", vec![text("no level")]),
            rec("list", vec![]),
            rec("link", vec![text("not a ref")]),
            rec("image", vec![r(3).val()]),
            rec(
                "form",
                vec![text("no cap"), field("a", "text", "", "", &[])],
            ),
            rec("field", vec![text("outside")]),
            rec(
                "field",
                vec![
                    text("a"),
                    Val::sym("hidden"),
                    text(""),
                    text(""),
                    Value::List(vec![]),
                ],
            ),
            rec(
                "table",
                vec![text("not a row"), rec("tr", vec![text("not a cell")])],
            ),
            rec("pre", vec![]),
            rec("mystery", vec![text("kept text")]),
            Value::List(vec![text("a list")]),
        ],
    );
    let p = page(junk, "");
    let f = forms(&p.tree);
    assert!(f.is_empty());
    let v = styled(&p, &f, vec![], MAX_NODES);
    assert!(words(&v).iter().any(|w| w == "kept text"));
    let _ = text_only(&p);
}

#[test]
fn env_parsing() {
    let d = |pairs: Vec<(&str, Val)>| {
        Value::Dict(pairs.into_iter().map(|(k, v)| (text(k), v)).collect())
    };
    let ok = d(vec![
        ("pane", r(1).val()),
        ("tree", text("x")),
        ("title", text("T")),
        ("truncated", Val::Bool(true)),
    ]);
    let p = Page::parse(vec![ok]).unwrap();
    assert_eq!((p.title.as_str(), p.truncated), ("T", true));
    for bad in [
        vec![d(vec![("tree", text("x"))])],
        vec![d(vec![("pane", r(1).val())])],
        vec![d(vec![("pane", text("no")), ("tree", text("x"))])],
        vec![d(vec![
            ("pane", r(1).val()),
            ("tree", text("x")),
            ("title", Val::int(1i64)),
        ])],
        vec![text("x")],
        vec![],
    ] {
        assert!(Page::parse(bad.clone()).is_err(), "{bad:?}");
    }
}
