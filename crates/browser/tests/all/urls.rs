//! Confusing URLs resolve as a browser resolves them; only http(s) ever
//! becomes a link, and credentials are dropped.

use super::*;

fn link(href: &str) -> Option<String> {
    let p = page(&format!("<a href=\"{href}\">x</a>"));
    p.links.first().map(Url::to_string)
}

#[test]
fn confusing_hrefs() {
    let cases: &[(&str, Option<&str>)] = &[
        ("  jAvAsCrIpT:alert(1)", None),
        ("\u{1}javascript:alert(1)", None),
        ("JAVASCRIPT&colon;alert(1)", None),
        ("javascript&#58;alert(1)", None),
        ("vbscript:msgbox", None),
        (
            "http://user:pw@host.example/x",
            Some("http://host.example/x"),
        ),
        (
            "https://good.example@evil.example/",
            Some("https://evil.example/"),
        ),
        ("//host.example/x", Some("https://host.example/x")),
        ("\\\\host.example\\x", Some("https://host.example/x")),
        ("/\\host.example/x", Some("https://host.example/x")),
        (
            "https:host.example",
            Some("https://example.com/dir/host.example"),
        ),
        ("http:host.example", Some("http://host.example/")),
        ("HTTPS://EXAMPLE.COM/A", Some("https://example.com/A")),
        (
            "https://xn--80ak6aa92e.com/",
            Some("https://xn--80ak6aa92e.com/"),
        ),
        ("https://аррӏе.com/", Some("https://xn--80ak6aa92e.com/")),
        ("https://127.0.0.1:8080/", Some("https://127.0.0.1:8080/")),
        ("https://0x7f.1/", Some("https://127.0.0.1/")),
        (
            "../../../../etc/passwd",
            Some("https://example.com/etc/passwd"),
        ),
        ("?q=1", Some("https://example.com/dir/page.html?q=1")),
        ("  /spaced  ", Some("https://example.com/spaced")),
        ("https://exa\tmple.com/", Some("https://example.com/")),
        ("https://", None),
        ("https://a b/", None),
        ("http://[1::2::3]/", None),
        ("data:text/html;base64,PHNjcmlwdD4=", None),
        ("about:blank", None),
        ("chrome://settings", None),
        ("ws://example.com/", None),
    ];
    let mut wrong = Vec::new();
    for (href, want) in cases {
        let got = link(href);
        if got.as_deref() != *want {
            wrong.push(format!("{href:?}: got {got:?}, want {want:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn base_href() {
    // Only the first <base href>, only if http(s); relative to the page.
    let p = page("<base href=../other/><base href=https://second.example/><a href=x>x</a>");
    assert_eq!(p.links[0].as_str(), "https://example.com/other/x");
    let p = page("<base href='javascript:alert(1)//'><a href=x>x</a>");
    assert_eq!(p.links[0].as_str(), "https://example.com/dir/x");
    let p = page("<base href='data:text/html,'><a href=x>x</a><img src=y.png>");
    assert_eq!(p.links[0].as_str(), "https://example.com/dir/x");
    assert_eq!(p.images[0].url.as_str(), "https://example.com/dir/y.png");
    // A form with no action submits to the page, not to the base.
    let p = page("<base href=https://other.example/><form><input name=q></form>");
    assert_eq!(
        p.forms[0].action.as_str(),
        "https://example.com/dir/page.html"
    );
    // A base in the body counts too (as in browsers).
    let p = page("<p>hi</p><base href=https://b.example/><a href=x>x</a>");
    assert_eq!(p.links[0].as_str(), "https://b.example/x");
}

#[test]
fn an_overlong_url_is_not_a_link() {
    let long = format!("/{}", "a".repeat(9000));
    let p = page(&format!(
        "<a href=\"{long}\">long</a><img src=\"{long}\" alt=alt>"
    ));
    assert!(p.links.is_empty() && p.images.is_empty());
    assert_eq!(show(&p), "<block \"longalt\">");
}
