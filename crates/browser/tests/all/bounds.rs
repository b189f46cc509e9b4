//! The bounds of PROTOCOL.md 4.1 hold on hostile pages, and a cut page
//! says so.

use super::*;

#[test]
fn a_megabyte_of_links() {
    let one = "<a href=/l>x</a>";
    let html = one.repeat(1024 * 1024 / one.len());
    let p = page(&html);
    assert!(p.truncated);
    let (nodes, _, _) = check(&p, &Limits::default());
    assert_eq!(p.links.len(), 1000);
    assert!(nodes <= 4000);
}

#[test]
fn a_hundred_thousand_links_with_a_small_node_bound() {
    let html = "<a href=/l>x</a> ".repeat(100_000);
    let limits = Limits {
        max_nodes: 4000,
        max_links: 1_000_000,
        ..Limits::default()
    };
    let p = parse(html.as_bytes(), &base(), &limits);
    assert!(p.truncated);
    let (nodes, _, _) = check(&p, &limits);
    assert!(nodes <= 4000 && nodes > 3900, "{nodes}");
    // Each link is a record and its text: the node bound stops them.
    assert!(p.links.len() < 2000);
}

#[test]
fn deep_nesting_is_flattened_at_the_depth_bound() {
    let depth = 400;
    let html = format!(
        "{}deep text{}<p>after</p>",
        "<div>".repeat(depth),
        "</div>".repeat(depth)
    );
    let p = page(&html);
    assert!(p.truncated);
    let (_, d, _) = check(&p, &Limits::default());
    assert_eq!(d, 20);
    let s = strings(&tree(&p));
    assert_eq!(s, "deep text|after");
    // Mixed nesting, lists and tables deep down keep their shapes.
    let mixed = format!(
        "{}<ul><li>i</li></ul><table><tr><td>c</td></tr></table><a href=/x>link</a><img src=/i alt=alt><form><input name=q></form>{}",
        "<div><span><b>".repeat(150),
        "</b></span></div>".repeat(150)
    );
    let p = page(&mixed);
    check(&p, &Limits::default());
    assert!(p.truncated);
    let s = strings(&tree(&p));
    assert_eq!(s, "i c linkalt");
}

#[test]
fn ten_thousand_deep_is_cut_where_the_parser_would_slow_down() {
    // Past 512 open elements (Chromium's parser bound) the rest of the
    // page is dropped: the parser's work per tag grows with its stack.
    for tag in [
        "div",
        "span",
        "b",
        "table",
        "ul",
        "li",
        "blockquote",
        "a href=/x",
    ] {
        let html = format!(
            "{}deep{}",
            format!("<{tag}>").repeat(10_000),
            "</div>".repeat(10_000)
        );
        let p = page(&html);
        assert!(p.truncated, "{tag}");
        check(&p, &Limits::default());
    }
    // A stack just under the bound and a page of tags that scan it.
    let html = format!("{}{}", "<span>".repeat(500), "<div></div>".repeat(300_000));
    let p = page(&html);
    assert!(p.truncated);
    check(&p, &Limits::default());
}

#[test]
fn a_huge_text_is_cut_at_the_text_bound() {
    let html = format!("<p>{}</p><p>after</p>", "word ".repeat(200_000));
    let p = page(&html);
    assert!(p.truncated);
    let (_, _, text) = check(&p, &Limits::default());
    assert_eq!(text, 256 * 1024);
    assert!(!strings(&tree(&p)).contains("after"));
    // Multi-byte text is cut on a character boundary.
    let html = format!("<p>{}</p>", "é".repeat(200_000));
    let p = page(&html);
    let (_, _, text) = check(&p, &Limits::default());
    assert_eq!(text, 256 * 1024);
}

#[test]
fn image_form_and_field_bounds() {
    let p = page(&"<img src=/i.png alt=a>".repeat(150));
    check(&p, &Limits::default());
    assert_eq!(p.images.len(), 100);
    assert!(p.truncated);
    // Past the image bound, images are their alt text.
    assert!(strings(&tree(&p)).contains("aaaa"));

    let p = page(&"<form><input name=a><input type=hidden name=h value=1></form>".repeat(30));
    check(&p, &Limits::default());
    assert_eq!(p.forms.len(), 20);
    assert!(p.truncated);

    let p = page(&format!("<form>{}</form>", "<input name=a>".repeat(300)));
    check(&p, &Limits::default());
    assert_eq!(p.forms[0].fields.len(), 200);
    assert!(p.truncated);
}

#[test]
fn input_over_four_mebibytes_is_cut() {
    let mut html = "<p>x</p>".to_string();
    html.push_str(&" ".repeat(5 * 1024 * 1024));
    html.push_str("<a href=/after>after</a>");
    let p = page(&html);
    assert!(p.truncated);
    assert!(p.links.is_empty());
    // Exactly at the bound is not cut.
    let html = format!("<p>x</p>{}", " ".repeat(4 * 1024 * 1024 - 8));
    assert!(!page(&html).truncated);
}

#[test]
fn misnested_formatting_cannot_make_the_parser_explode() {
    // Each <p> re-opens every formatting element still active: the source
    // writes 2 000 of them once, the parser would make them again per <p>.
    let open: String = (0..2000).map(|i| format!("<b id={i}>")).collect();
    let html = format!("<p>{open}</p>{}", "<p>x</p>".repeat(100_000));
    let p = page(&html);
    assert!(p.truncated);
    check(&p, &Limits::default());
}

#[test]
fn tiny_limits_still_hold() {
    let html = include_str!("main.rs");
    let html = format!(
        "<ul><li><table><tr><td><a href=/x>{html}</a></td></tr></table></li></ul><form><select name=s><option>a</option></select></form>"
    );
    for max_depth in 0..6 {
        for max_nodes in [0, 1, 2, 3, 5, 8] {
            let limits = Limits {
                max_depth,
                max_nodes,
                max_text: 10,
                ..Limits::default()
            };
            let p = parse(html.as_bytes(), &base(), &limits);
            // The root block is always there.
            let limits = Limits {
                max_nodes: max_nodes.max(1),
                max_depth: max_depth.max(1),
                ..limits
            };
            check(&p, &limits);
        }
    }
}

#[test]
fn many_selects_with_many_options() {
    let options: String = (0..400)
        .map(|i| format!("<option value={i}>opt {i}</option>"))
        .collect();
    let html = format!(
        "<form>{}</form>",
        format!("<select name=s>{options}</select>").repeat(250)
    );
    let p = page(&html);
    check(&p, &Limits::default());
    assert!(p.truncated);
    let f = &p.forms[0].fields[0];
    assert_eq!(f.options.len(), pola_browser::MAX_OPTIONS);
    assert_eq!(f.value, "opt 0");
    // Submission maps the label shown back to the option's value.
    let s = p.forms[0]
        .submission(&[("s".to_string(), "opt 7".to_string())].into())
        .expect("accepted");
    assert!(
        matches!(s, pola_browser::Submission::Get(u) if u.query().is_some_and(|q| q.starts_with("s=7&s=7")))
    );
}
