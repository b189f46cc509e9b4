//! Everything PROTOCOL.md 4.1 leaves out stays out: no URL, text or
//! attribute from these places reaches the tree or the slot lists.

use super::*;

/// Parses `html` and says whether "evil" shows up anywhere: in a link,
/// an image, a form action, the title or any string of the tree.
fn leaks(html: &str) -> Option<String> {
    let p = page(html);
    check(&p, &Limits::default());
    let mut found = Vec::new();
    for u in p
        .links
        .iter()
        .chain(p.images.iter().map(|i| &i.url))
        .chain(p.forms.iter().map(|f| &f.action))
    {
        if u.as_str().contains("evil") {
            found.push(format!("url {u}"));
        }
    }
    let s = strings(&tree(&p));
    if s.contains("evil") {
        found.push(format!("text {s}"));
    }
    if p.title.contains("evil") {
        found.push(format!("title {}", p.title));
    }
    for f in &p.forms {
        for x in &f.fields {
            if x.name.contains("evil") || x.value.contains("evil") || x.label.contains("evil") {
                found.push(format!("field {x:?}"));
            }
        }
    }
    (!found.is_empty()).then(|| found.join("; "))
}

#[test]
fn hidden_places_never_leak() {
    let attacks = [
        "<!-- <a href='https://evil.example/'>x</a> -->",
        "<!-- --><!-- <a href=https://evil.example/> -- -->",
        "<! <a href=https://evil.example/> >",
        "<?php <a href=https://evil.example/> ?>",
        "<script>document.write('<a href=\"https://evil.example/\">x</a>')</script>",
        "<script>var u = 'https://evil.example/';</script>",
        "<style>@import url(https://evil.example/x.css); a { background: url('https://evil.example/bg') }</style>",
        "<p style=\"background:url(https://evil.example/bg)\">hi</p>",
        "<a data-href=\"https://evil.example/\">click</a>",
        "<a onclick=\"location='https://evil.example/'\">click</a>",
        "<meta http-equiv=refresh content=\"0; url=https://evil.example/\">",
        "<img srcset=\"https://evil.example/a.png 1x\" alt=ok>",
        "<img data-src=\"https://evil.example/a.png\" alt=ok>",
        "<picture><source srcset=\"https://evil.example/a.png\"><img alt=ok></picture>",
        "<template><a href=https://evil.example/>x</a>evil</template>",
        "<noscript><a href=https://evil.example/>evil</a></noscript>",
        "<iframe src=https://evil.example/>evil</iframe>",
        "<object data=https://evil.example/>evil</object>",
        "<embed src=https://evil.example/>",
        "<svg><a href=https://evil.example/><text>evil</text></a></svg>",
        "<svg><a xlink:href=https://evil.example/>x</a></svg>",
        "<math><mtext>evil</mtext></math>",
        "<link rel=prefetch href=https://evil.example/>",
        "<video src=https://evil.example/v poster=https://evil.example/p></video>",
        "<audio><source src=https://evil.example/a></audio>",
        "<area href=https://evil.example/>",
        "<map><area href=https://evil.example/></map>",
        "<form><input type=image src=https://evil.example/i name=x></form>",
        "<a ping=https://evil.example/ href=/ok>ok</a>",
        "<a href=/ok><img src=/ok.png longdesc=https://evil.example/></a>",
        "<form action=/ok formaction=https://evil.example/><button formaction=https://evil.example/>go</button></form>",
        "<div title=\"evil\" aria-label=\"evil\">ok</div>",
        "<base target=evil><p>ok</p>",
        "<frameset><frame src=https://evil.example/></frameset>",
        "<head><style>evil</style></head><body>ok</body>",
        "<body background=https://evil.example/bg>ok</body>",
        "<table background=https://evil.example/bg><tr><td>ok</td></tr></table>",
        "<blockquote cite=https://evil.example/>ok</blockquote>",
        "<input type=text value=evil>",
        "<select><option>evil</option></select>",
        "<option>evil</option><optgroup label=evil><option>evil</option></optgroup>",
        "<textarea>evil</textarea>",
        "<noframes><a href=https://evil.example/>x</a></noframes>",
    ];
    let mut failures = Vec::new();
    for html in attacks {
        if let Some(what) = leaks(html) {
            failures.push(format!("{html}\n    → {what}"));
        }
    }
    assert!(failures.is_empty(), "leaked:\n{}", failures.join("\n"));
}

#[test]
fn xmp_and_plaintext_show_markup_as_text_not_links() {
    // The markup inside is text to HTML: it may show, but never as a link.
    let p = page("<xmp><a href=https://x.example/>raw</a></xmp>");
    assert!(p.links.is_empty());
    assert_eq!(
        show(&p),
        "<block <pre \"<a href=https://x.example/>raw</a>\">>"
    );
}

#[test]
fn unusable_links_become_their_children() {
    for href in [
        "javascript:alert(1)",
        "  jAvAsCrIpT:alert(1)",
        "java\tscript:alert(1)",
        "&#106;avascript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "mailto:a@example.com",
        "file:///etc/passwd",
        "ftp://example.com/",
        "blob:https://example.com/x",
        "http://",
        "https://[::1",
        "http://exa mple.com/",
    ] {
        let html = format!("<p><a href=\"{href}\">label <b>bold</b></a></p>");
        let p = page(&html);
        assert!(p.links.is_empty(), "{href} became {:?}", p.links);
        assert_eq!(
            show(&p),
            "<block <para \"label \" <strong \"bold\">>>",
            "{href}"
        );
    }
    // An `a` with no href at all, and an empty href (the page itself).
    assert_eq!(show(&page("<a name=x>anchor</a>")), "<block \"anchor\">");
    let p = page("<a href=\"\">self</a>");
    assert_eq!(p.links[0].as_str(), "https://example.com/dir/page.html");
}

#[test]
fn unusable_images_become_their_alt_text() {
    let p = page(
        "<p>a <img src=\"javascript:x\" alt=\"Alt\"> <img src=\"data:image/png;base64,AAAA\" alt=\"D\"> <img alt=\"none\"> <img src=x.png> b</p>",
    );
    assert_eq!(p.images.len(), 1);
    assert_eq!(p.images[0].url.as_str(), "https://example.com/dir/x.png");
    assert_eq!(
        show(&p),
        "<block <para \"a Alt D none \" <image <I 0> \"\"> \" b\">>"
    );
}

#[test]
fn links_differing_only_by_fragment_are_links() {
    let p = page("<a href=#a>a</a><a href=#b>b</a><a href=page.html#a>c</a>");
    let links: Vec<&str> = p.links.iter().map(Url::as_str).collect();
    assert_eq!(
        links,
        [
            "https://example.com/dir/page.html#a",
            "https://example.com/dir/page.html#b",
            "https://example.com/dir/page.html#a",
        ]
    );
}

#[test]
fn fields_outside_forms_are_dropped() {
    let p = page(
        "<p>before <input name=q value=v> <textarea name=t>tt</textarea> <select name=s><option>o</option></select> <button>Push</button> after</p>",
    );
    assert!(p.forms.is_empty());
    assert_eq!(show(&p), "<block <para \"before Push after\">>");
}

#[test]
fn nested_forms_follow_html() {
    // The parser ignores a form start tag inside a form.
    let p = page(
        "<form action=/a><input name=x><form action=/b><input name=y></form><input name=z></form>",
    );
    assert_eq!(p.forms.len(), 1);
    assert_eq!(p.forms[0].action.as_str(), "https://example.com/a");
    let names: Vec<&str> = p.forms[0].fields.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["x", "y"]);
    check(&p, &Limits::default());
}

#[test]
fn what_a_browser_would_not_draw_is_not_in_the_tree() {
    // Each hides "evil" (text, a link, an image, a field) from a person
    // looking at the page in a browser: it must not reach a renderer.
    let attacks = [
        "<p hidden>evil</p>",
        "<p hidden=until-found>evil</p>",
        "<div HIDDEN><a href=https://evil.example/>evil</a></div>",
        "<span hidden=\"\"><img src=https://evil.example/i.png alt=evil></span>",
        "<p style=\"display:none\">evil</p>",
        "<p style=\"color: red; DISPLAY : None !important\">evil</p>",
        "<p style=\"display: block; display: none\">evil</p>",
        "<p style=\"\\64 isplay: none\">evil</p>",
        "<div style=\"display:none\"><div><a href=https://evil.example/>x</a></div></div>",
        "<ul><li hidden>evil</li></ul>",
        "<table><tr hidden><td>evil</td></tr></table>",
        "<p>ok <button>Pay <span hidden>evil</span></button></p>",
        "<pre>ok<span style=display:none>evil</span></pre>",
        "<form hidden action=https://evil.example/><input value=evil></form>",
        "<form><label hidden>evil <input name=n placeholder=evil></label></form>",
        "<body hidden><p>evil</p></body>",
        "<p>ok</p><body hidden><p>evil</p>",
    ];
    let mut failures = Vec::new();
    for html in attacks {
        if let Some(what) = leaks(html) {
            failures.push(format!("{html}\n    → {what}"));
        }
    }
    assert!(failures.is_empty(), "leaked:\n{}", failures.join("\n"));
}

#[test]
fn hiding_stops_where_a_browser_would_draw() {
    // aria-hidden hides from screen readers only: a sighted person sees
    // it, so it is drawn. A style that does not say display: none, and a
    // later declaration that shows, are drawn too.
    let p = page(
        "<p aria-hidden=true>a</p><p style=\"display: none; display: block\">b</p>\
         <p style=\"visibility: visible\">c</p><p style=\"content: 'display: none'\">d</p>\
         <p>e<span hidden>x</span>f</p>",
    );
    assert_eq!(
        show(&p),
        "<block <para \"a\"> <para \"b\"> <para \"c\"> <para \"d\"> <para \"ef\">>"
    );
}

#[test]
fn fields_a_page_hides_are_sent_but_never_shown() {
    // A browser sends the fields of a form it does not draw; so does the
    // desk, with the page's values, as hidden fields.
    let p = page(
        "<form action=/f><input name=q>\
         <div style=display:none><input name=honeypot value=h1><textarea name=t>tt</textarea>\
         <select name=s><option value=a>A<option value=b selected>B</select>\
         <input type=checkbox name=c1 checked><input type=checkbox name=c2>\
         <input type=radio name=r value=r1><input type=radio name=r value=r2 checked>\
         <input type=submit name=go value=Go></div>\
         <input name=token value=tk hidden><button hidden name=b>Evil</button></form>",
    );
    let f = &p.forms[0];
    let got: Vec<(&str, &str, &str)> = f
        .fields
        .iter()
        .map(|x| (x.name.as_str(), x.kind.symbol(), x.value.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("q", "text", ""),
            ("honeypot", "hidden", "h1"),
            ("t", "hidden", "tt"),
            ("s", "hidden", "b"),
            ("c1", "hidden", "on"),
            ("r", "hidden", "r2"),
            ("token", "hidden", "tk"),
        ]
    );
    // Only the visible field is in the tree.
    let s = show(&p);
    assert_eq!(s.matches("<field").count(), 1, "{s}");
    assert!(!s.contains("Evil") && !s.contains("Go"), "{s}");
    check(&p, &Limits::default());
}
