//! Fuzzes what the browser reads from the web: `pola_browser::parse` (and
//! `plain_text`) on hostile bytes, against a fixed page URL. The first
//! byte picks tiny or default limits so the bounds are reached often.
//!
//! Oracle: no panic; the tree keeps every bound (nodes, record depth, text
//! bytes, links, images, forms, fields) and agrees with `node_count` and
//! `text_len`; every link, image and form slot is an index below its list's
//! length, each used once in page order; every link, image URL and form
//! action is http(s) without credentials; only the labels of PROTOCOL.md
//! 4.1 appear, lists hold items, tables rows, rows cells; each form
//! submits with the page's own values, and with a renderer echoing back
//! every visible field's value.
#![no_main]

use std::collections::BTreeMap;

use pola_browser::{FieldKind, Limits, Page, parse, plain_text};
use pola_syrup::Value;
use url::Url;

const LABELS: &[&str] = &[
    "block", "heading", "para", "strong", "em", "code", "pre", "quote", "list", "item", "table",
    "tr", "cell", "break", "rule", "link", "image", "form", "field",
];

fn check(p: &Page, limits: &Limits) {
    let tree: Value = p.tree(&mut |slot, i| {
        let label = match slot {
            pola_browser::Slot::Link => "L",
            pola_browser::Slot::Image => "I",
            pola_browser::Slot::Form => "F",
        };
        Value::record(label, vec![Value::int(i as u64)])
    });
    let (mut nodes, mut text) = (0usize, 0usize);
    let mut order: [Vec<usize>; 3] = Default::default();
    let mut stack = vec![(&tree, 1usize)];
    while let Some((v, depth)) = stack.pop() {
        nodes += 1;
        let r = match v {
            Value::String(s) => {
                text += s.len();
                continue;
            }
            Value::Record(r) => r,
            other => panic!("not a node: {other}"),
        };
        assert!(depth <= limits.max_depth.max(1), "depth {depth}");
        let label = r.label.as_symbol().expect("a symbol label");
        assert!(LABELS.contains(&label), "label {label}");
        let mut kids: &[Value] = &r.fields;
        let slot = |v: &Value, want: &str, len: usize| -> usize {
            let Value::Record(s) = v else {
                panic!("a slot")
            };
            assert_eq!(s.label.as_symbol(), Some(want));
            let i = s.fields[0].as_i64().expect("an index") as usize;
            assert!(i < len, "slot {want} {i} of {len}");
            i
        };
        match label {
            "heading" => {
                let n = kids[0].as_i64().expect("a level");
                assert!((1..=6).contains(&n));
                kids = &kids[1..];
            }
            "list" | "cell" => {
                kids[0].as_bool().expect("a flag");
                kids = &kids[1..];
            }
            "link" => {
                order[0].push(slot(&kids[0], "L", p.links.len()));
                kids = &kids[1..];
            }
            "form" => {
                order[2].push(slot(&kids[0], "F", p.forms.len()));
                kids = &kids[1..];
            }
            "image" => {
                assert_eq!(kids.len(), 2);
                order[1].push(slot(&kids[0], "I", p.images.len()));
                text += kids[1].as_str().expect("alt").len();
                kids = &[];
            }
            "field" => {
                assert_eq!(kids.len(), 5);
                for k in [&kids[0], &kids[2], &kids[3]] {
                    text += k.as_str().expect("a string").len();
                }
                let kind = kids[1].as_symbol().expect("a kind");
                assert!(kind != "hidden");
                for o in kids[4].as_list().expect("options") {
                    text += o.as_str().expect("a string").len();
                }
                kids = &[];
            }
            "pre" => assert!(kids.len() == 1 && kids[0].as_str().is_some()),
            "break" | "rule" => assert!(kids.is_empty()),
            _ => {}
        }
        let need = match label {
            "list" => Some("item"),
            "table" => Some("tr"),
            "tr" => Some("cell"),
            _ => None,
        };
        for k in kids.iter().rev() {
            if let Some(need) = need {
                let Value::Record(c) = k else {
                    panic!("{label} holds a string")
                };
                assert_eq!(c.label.as_symbol(), Some(need));
            }
            stack.push((k, depth + 1));
        }
    }
    assert!(nodes <= limits.max_nodes.max(1), "{nodes} nodes");
    assert!(text <= limits.max_text, "{text} bytes");
    assert_eq!(nodes, p.node_count());
    assert_eq!(text, p.text_len());
    assert_eq!(order[0], (0..p.links.len()).collect::<Vec<_>>());
    assert_eq!(order[1], (0..p.images.len()).collect::<Vec<_>>());
    assert_eq!(order[2], (0..p.forms.len()).collect::<Vec<_>>());
    assert!(p.links.len() <= limits.max_links);
    assert!(p.images.len() <= limits.max_images);
    assert!(p.forms.len() <= limits.max_forms);
    assert!(p.forms.iter().map(|f| f.fields.len()).sum::<usize>() <= limits.max_fields);
    let urls = p
        .links
        .iter()
        .chain(p.images.iter().map(|i| &i.url))
        .chain(p.forms.iter().map(|f| &f.action));
    for u in urls {
        assert!(matches!(u.scheme(), "http" | "https"), "{u}");
        assert!(u.username().is_empty() && u.password().is_none(), "{u}");
    }
    assert!(p.title.len() <= pola_browser::MAX_TITLE);
    for f in &p.forms {
        f.submission(&BTreeMap::new())
            .expect("the page's own values submit");
        let mut echo = BTreeMap::new();
        for x in &f.fields {
            let unique = f.fields.iter().filter(|y| y.name == x.name).count() == 1;
            if !x.name.is_empty()
                && unique
                && x.kind != FieldKind::Hidden
                && x.value.len() <= pola_browser::MAX_VALUE
            {
                echo.insert(x.name.clone(), x.value.clone());
            }
        }
        f.submission(&echo)
            .expect("an echo of the page's values submits");
    }
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let base = Url::parse("https://fuzz.example/dir/page.html").expect("a URL");
    let (limits, body) = match data.split_first() {
        Some((&b, rest)) if b & 1 == 1 => (
            Limits {
                max_nodes: usize::from(b >> 1) % 40,
                max_depth: usize::from(b >> 4) % 8,
                max_text: usize::from(b) * 3,
                max_links: 3,
                max_images: 2,
                max_forms: 2,
                max_fields: 4,
            },
            rest,
        ),
        Some((_, rest)) => (Limits::default(), rest),
        None => (Limits::default(), data),
    };
    check(&parse(body, &base, &limits), &limits);
    if data.first().is_some_and(|b| b & 2 == 2) {
        check(&plain_text(body, &limits), &limits);
    }
});
