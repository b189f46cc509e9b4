//! Form submission: what a renderer's `submit(FIELDS)` may send, and what
//! it may not.

use std::collections::BTreeMap;

use super::*;
use pola_browser::{FormError, MAX_VALUE, Submission, values_from};

const LOGIN: &str = r#"<form action="/login?x=1#frag" method="post">
  <input type=hidden name=csrf value="tok en&=">
  <input name=user value="anna">
  <input type=password name=pass>
  <input type=checkbox name=remember value=yes>
  <input type=checkbox name=news checked>
  <select name=lang><option value=en>English</option><option value=fr>Français</option></select>
  <input placeholder="no name, never sent">
  <input type=submit name=go value=Login>
  <input type=submit name=go value=Register>
  <input type=submit value=Anonymous>
</form>"#;

fn values(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn post(html: &str, pairs: &[(&str, &str)]) -> Result<(String, String), FormError> {
    let p = page(html);
    match p.forms[0].submission(&values(pairs))? {
        Submission::Post { url, body } => Ok((
            url.to_string(),
            String::from_utf8(body).expect("form bodies are ASCII"),
        )),
        Submission::Get(url) => panic!("a GET to {url}"),
    }
}

#[test]
fn post_sends_hidden_defaults_and_the_pressed_button() {
    let (url, body) = post(
        LOGIN,
        &[
            ("pass", "s3cr&t ü"),
            ("remember", "on"),
            ("go", "Register"),
            ("lang", "Français"),
        ],
    )
    .expect("accepted");
    assert_eq!(url, "https://example.com/login?x=1#frag");
    assert_eq!(
        body,
        "csrf=tok+en%26%3D&user=anna&pass=s3cr%26t+%C3%BC&remember=yes&news=on&lang=fr&go=Register"
    );
    // Nothing given: the page's values; no button is sent.
    let (_, body) = post(LOGIN, &[]).expect("accepted");
    assert_eq!(body, "csrf=tok+en%26%3D&user=anna&pass=&news=on&lang=en");
    // Unchecking a checked box; giving the hidden field its own value.
    let (_, body) = post(LOGIN, &[("news", ""), ("csrf", "tok en&=")]).expect("accepted");
    assert_eq!(body, "csrf=tok+en%26%3D&user=anna&pass=&lang=en");
}

#[test]
fn get_replaces_the_query_and_keeps_the_fragment() {
    let p =
        page("<form action='/s?old=1#top'><input name=q><input type=search name=w value=x></form>");
    let s = p.forms[0]
        .submission(&values(&[("q", "a b/c?")]))
        .expect("accepted");
    assert_eq!(
        s,
        Submission::Get(Url::parse("https://example.com/s?q=a+b%2Fc%3F&w=x#top").expect("a URL"))
    );
    // No action, an empty one, or a javascript: one: the page's own URL.
    for action in [
        "",
        " action",
        " action=''",
        " action='javascript:alert(1)'",
        " action='mailto:x@example.com'",
    ] {
        let p = page(&format!("<form{action}><input name=q></form>"));
        assert_eq!(
            p.forms[0]
                .submission(&values(&[("q", "1")]))
                .expect("accepted"),
            Submission::Get(Url::parse("https://example.com/dir/page.html?q=1").expect("a URL")),
            "{action}"
        );
    }
    // Method is case-insensitive; anything but post is get.
    assert!(matches!(
        page("<form method=PoSt>").forms[0].submission(&values(&[])),
        Ok(Submission::Post { .. })
    ));
    assert!(matches!(
        page("<form method=dialog>").forms[0].submission(&values(&[])),
        Ok(Submission::Get(_))
    ));
}

#[test]
fn what_a_renderer_may_not_send() {
    let cases: &[(&[(&str, &str)], FormError)] = &[
        (
            &[("csrf", "forged")],
            FormError::HiddenChanged("csrf".into()),
        ),
        (&[("evil", "1")], FormError::UnknownField("evil".into())),
        (&[("", "no name")], FormError::UnknownField("".into())),
        (
            &[("remember", "yes")],
            FormError::NotACheckboxValue("remember".into()),
        ),
        (&[("lang", "de")], FormError::NoSuchOption("lang".into())),
        (&[("lang", "en")], FormError::NoSuchOption("lang".into())),
        (
            &[("go", "Delete account")],
            FormError::NoSuchButton("go".into()),
        ),
    ];
    for (given, want) in cases {
        assert_eq!(post(LOGIN, given).expect_err("refused"), *want, "{given:?}");
    }
    let long = "x".repeat(MAX_VALUE + 1);
    assert_eq!(
        post(LOGIN, &[("user", &long)]).expect_err("refused"),
        FormError::ValueTooLong("user".into())
    );
    let (_, body) = post(LOGIN, &[("user", &"x".repeat(MAX_VALUE))]).expect("4 KiB is allowed");
    assert!(body.contains(&"x".repeat(MAX_VALUE)));
    // A long unknown name is quoted short in the message.
    let name = "n".repeat(10_000);
    let err = post(LOGIN, &[(&name, "1")]).expect_err("refused");
    assert!(err.to_string().len() < 200, "{err}");
    // The message does not carry the page's hidden value.
    let err = post(LOGIN, &[("csrf", "x")]).expect_err("refused");
    assert!(!err.to_string().contains("tok"), "{err}");
}

#[test]
fn textarea_and_types() {
    let p = page(
        "<form><textarea name=t>\nfirst line\n  second</textarea><input type=NUMBER name=n value=3><input type=email name=e><input type=tel name=tel><input type=radio name=r value=1><input type=file name=f><input type=reset><input type=button value=b><input type=image alt=Send name=img><button type=button>Not a field</button><button type=reset>No</button></form>",
    );
    let kinds: Vec<(&str, &str, &str)> = p.forms[0]
        .fields
        .iter()
        .map(|f| (f.name.as_str(), f.kind.symbol(), f.value.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("t", "textarea", "first line\n  second"),
            ("n", "number", "3"),
            ("e", "email", ""),
            ("tel", "text", ""),
            ("r", "text", "1"),
            ("img", "submit", "Send"),
        ]
    );
    assert!(strings(&tree(&p)).contains("Not a field"));
    let s = p.forms[0]
        .submission(&values(&[("t", "a\nb")]))
        .expect("accepted");
    assert_eq!(
        s,
        Submission::Get(
            Url::parse("https://example.com/dir/page.html?t=a%0Ab&n=3&e=&tel=&r=1").expect("a URL")
        )
    );
}

#[test]
fn fields_from_a_syrup_dictionary() {
    let mut d = BTreeMap::new();
    d.insert(Value::str("q"), Value::str("x"));
    let v: Value = Value::Dict(d.clone());
    assert_eq!(values_from(&v).expect("strings"), values(&[("q", "x")]));
    d.insert(Value::sym("s"), Value::str("x"));
    assert_eq!(values_from(&Value::Dict(d)), Err(FormError::NotAString));
    let mut d: BTreeMap<Value, Value> = BTreeMap::new();
    d.insert(Value::str("q"), Value::int(1i64));
    assert_eq!(values_from(&Value::Dict(d)), Err(FormError::NotAString));
    assert_eq!(
        values_from::<pola_syrup::NoRef>(&Value::List(vec![])),
        Err(FormError::NotADictionary)
    );
}
