//! The browser (PROTOCOL.md section 4) against real sites on loopback,
//! with the real renderers: what a page can do, and the 2002 red team's
//! goals and review findings as attacks by the hostile renderer (and a
//! conspiring server).

use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};

use crate::site::Site;
use crate::support::{Desktop, PATIENCE, fresh, texts};

fn go(d: &Desktop, w: &str, url: &str) {
    d.ok(
        &format!("api/windows/{w}/navigate"),
        &json!({ "url": url }).to_string(),
    );
}

fn chrome(d: &Desktop, w: &str) -> Json {
    d.window(w)["browser"].clone()
}

fn renderer(d: &Desktop, w: &str, id: &str) {
    d.ok(
        &format!("api/windows/{w}/renderer"),
        &json!({ "renderer": id }).to_string(),
    );
}

/// Waits until the window shows `url` loaded and its view satisfies
/// `done`; the view's texts.
fn wait_page(d: &Desktop, w: &str, url: &str, done: impl Fn(&[String]) -> bool) -> Vec<String> {
    let start = Instant::now();
    loop {
        let win = d.window(w);
        let b = &win["browser"];
        let t = texts(&win["view"]);
        if b["url"] == url && b["loading"] == false && done(&t) {
            return t;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "waited in vain for {url}: chrome {b}, view {t:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The hostile renderer's report, once it has a line for `last` and no
/// attempt is pending.
fn report(d: &Desktop, w: &str, url: &str, last: &str) -> Vec<String> {
    wait_page(d, w, url, |t| {
        t.iter().any(|l| l.contains(last)) && !t.iter().any(|l| l.starts_with("PENDING"))
    })
}

/// The desk's messages to its page, kept as they come (a receiver that
/// falls behind loses some: the test fails then rather than miss one).
struct Messages {
    rx: tokio::sync::broadcast::Receiver<String>,
    seen: Vec<Json>,
}

impl Messages {
    fn new(d: &Desktop) -> Messages {
        Messages {
            rx: d.desk.subscribe(),
            seen: Vec::new(),
        }
    }

    fn drain(&mut self) {
        use tokio::sync::broadcast::error::TryRecvError;
        loop {
            match self.rx.try_recv() {
                Ok(m) => self.seen.push(serde_json::from_str(&m).expect("json")),
                Err(TryRecvError::Empty) => return,
                Err(e) => panic!("the desk's messages to the page: {e}"),
            }
        }
    }

    /// Waits (taking messages as they come) until `done`.
    fn until(&mut self, what: &str, done: impl Fn() -> bool) {
        let start = Instant::now();
        loop {
            self.drain();
            if done() {
                return self.drain();
            }
            assert!(start.elapsed() < PATIENCE, "waited in vain for {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The index of the first message satisfying `ok`.
    fn first(&self, what: &str, ok: impl Fn(&Json) -> bool) -> usize {
        self.seen
            .iter()
            .position(ok)
            .unwrap_or_else(|| panic!("no message {what}: {:#?}", self.seen))
    }
}

/// Whether `m` says the URL field now shows `url`.
fn url_is(m: &Json, url: &str) -> bool {
    m["type"] == "browser" && m["browser"]["url"] == url
}

/// Whether `m` is a view holding the text `s`.
fn view_with(m: &Json, s: &str) -> bool {
    m["type"] == "view" && texts(&m["view"]).iter().any(|t| t.contains(s))
}

fn links_in(view: &Json, out: &mut usize) {
    if view["k"] == "link" {
        *out += 1;
    }
    if let Some(c) = view["c"].as_array() {
        for n in c {
            links_in(n, out);
        }
    }
}

fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbaImage::from_pixel(w, h, image::Rgba([200, 30, 30, 255]));
    let mut out = Vec::new();
    image::DynamicImage::ImageRgba8(img)
        .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .expect("a png");
    out
}

const HOME: &str = r#"<!doctype html><html><head><title>Home page</title></head><body>
<h1>Welcome home</h1>
<p>Some <b>bold</b> text and <a href="/two">the second page</a>.</p>
<img src="/pic.png" alt="a red square">
<ul><li>one</li><li>two</li></ul>
</body></html>"#;

#[test]
fn a_page_is_fetched_parsed_and_drawn_and_its_link_moves_the_url_field_first() {
    let site = Site::start();
    site.html("", HOME);
    site.html(
        "two",
        "<title>Second</title><h1>Page two</h1><p>back to <a href='/'>home</a></p>",
    );
    site.put("pic.png", 200, "image/png", png(40, 30));
    let (_dir, d) = fresh();
    let w = d.launch("browser");
    let home = site.url("");
    go(&d, &w, &home);
    let t = wait_page(&d, &w, &home, |t| t.iter().any(|s| s == "Welcome home"));
    assert!(t.iter().any(|s| s.contains("bold")), "{t:?}");
    let b = chrome(&d, &w);
    assert_eq!(b["title"], "Home page");
    assert_eq!(b["renderer"], "benign");
    assert_eq!(b["back"], false);

    // The image is painted by the desk from a PNG it made.
    let view = d.window(&w)["view"].clone();
    let img = d.get(&format!("api/images/{w}/0"));
    assert_eq!(img.status, 200, "{}", img.text());
    assert_eq!(img.header("content-type"), Some("image/png"));
    let decoded = image::load_from_memory(&img.body).expect("the desk's PNG");
    assert_eq!((decoded.width(), decoded.height()), (40, 30));
    assert_eq!(d.get(&format!("api/images/{w}/7")).status, 404);

    // Following the link: the URL field moves before page two is drawn.
    let mut rx = d.desk.subscribe();
    let mut n = 0;
    links_in(&view, &mut n);
    assert_eq!(n, 1, "one link on the page: {view}");
    d.ok(
        &format!("api/windows/{w}/event"),
        &json!({"type": "link", "n": 0}).to_string(),
    );
    let two = site.url("two");
    wait_page(&d, &w, &two, |t| t.iter().any(|s| s == "Page two"));
    let mut url_moved = false;
    while let Ok(m) = rx.try_recv() {
        let m: Json = serde_json::from_str(&m).expect("json");
        if m["type"] == "browser" && m["browser"]["url"] == two.as_str() {
            url_moved = true;
        }
        if m["type"] == "view" && texts(&m["view"]).iter().any(|s| s == "Page two") {
            assert!(url_moved, "page two was drawn before the URL field changed");
        }
    }
    assert!(url_moved);
    assert_eq!(chrome(&d, &w)["back"], true);

    // Back and forward are the browser's.
    d.ok(&format!("api/windows/{w}/back"), "{}");
    wait_page(&d, &w, &home, |t| t.iter().any(|s| s == "Welcome home"));
    d.ok(&format!("api/windows/{w}/forward"), "{}");
    wait_page(&d, &w, &two, |t| t.iter().any(|s| s == "Page two"));
    d.stop();
}

#[test]
fn the_text_renderer_shows_text_and_links_only_and_switching_makes_a_fresh_instance() {
    let site = Site::start();
    site.html("", HOME);
    site.put("pic.png", 200, "image/png", png(4, 4));
    let (_dir, d) = fresh();
    let w = d.launch("browser");
    let home = site.url("");
    go(&d, &w, &home);
    wait_page(&d, &w, &home, |t| t.iter().any(|s| s == "Welcome home"));
    let hits_before = site.hits().len();
    renderer(&d, &w, "text");
    wait_page(&d, &w, &home, |t| {
        t.iter().any(|s| s.contains("Welcome home")) && t.iter().any(|s| s.contains("red square"))
    });
    let view = d.window(&w)["view"].to_string();
    assert!(
        !view.contains("\"k\":\"image\""),
        "the text renderer drew an image: {view}"
    );
    assert!(!view.contains("\"k\":\"input\""), "{view}");
    assert_eq!(chrome(&d, &w)["renderer"], "text");
    // Switching renderers draws the same page again without fetching it.
    assert_eq!(
        site.hits()
            .iter()
            .skip(hits_before)
            .filter(|h| h.target == "/")
            .count(),
        0
    );
    assert!(
        d.post(
            &format!("api/windows/{w}/renderer"),
            r#"{"renderer":"nope"}"#
        )
        .status
            >= 400
    );
    // A document dropped on the browser is refused: the renderer cannot
    // be handed a file by a drop (the 2002 drop-target finding).
    std::fs::write(d.docs.join("secret.txt"), "secret").expect("a document");
    let r = d.post(&format!("api/windows/{w}/drop"), r#"{"path":"secret.txt"}"#);
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("takes no documents"), "{}", r.text());
    d.stop();
}

#[test]
fn pages_cannot_lead_the_browser_to_local_addresses_nobody_typed() {
    let site = Site::start();
    let other = Site::start();
    other.html("", "<p>intranet</p>");
    site.html(
        "",
        &format!(
            "<title>t</title><p><a href='{}'>intranet</a> <a href='http://10.0.0.1/'>router</a></p>",
            other.url("")
        ),
    );
    site.redirect("hop", &other.url(""));
    let (_dir, d) = fresh();
    let w = d.launch("browser");
    let home = site.url("");
    go(&d, &w, &home);
    wait_page(&d, &w, &home, |t| t.iter().any(|s| s == "intranet"));
    d.ok(
        &format!("api/windows/{w}/event"),
        &json!({"type": "link", "n": 0}).to_string(),
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        chrome(&d, &w)["url"],
        home.as_str(),
        "the page moved the browser"
    );
    assert!(other.hits().is_empty(), "a page reached another local site");
    // A redirect there fails too, in plain words.
    go(&d, &w, &site.url("hop"));
    let start = Instant::now();
    while chrome(&d, &w)["error"].is_null() {
        assert!(start.elapsed() < PATIENCE, "no error for the redirect");
        std::thread::sleep(Duration::from_millis(20));
    }
    let e = chrome(&d, &w)["error"].as_str().unwrap_or("").to_owned();
    assert!(e.contains("redirected"), "{e}");
    assert!(other.hits().is_empty());
    // Typed by the user, it opens.
    go(&d, &w, &other.url(""));
    wait_page(&d, &w, &other.url(""), |t| {
        t.iter().any(|s| s == "intranet")
    });
    // Bad addresses get plain words.
    for bad in [
        "",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "http://user:pw@example.org/",
    ] {
        let r = d.post(
            &format!("api/windows/{w}/navigate"),
            &json!({ "url": bad }).to_string(),
        );
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
    }
    d.stop();
}

#[test]
fn forms_submit_to_their_own_action_only_with_hidden_fields_kept() {
    let site = Site::start();
    site.html(
        "",
        r#"<title>Search</title><form action="/find" method="get">
        <input type="hidden" name="lang" value="en"><input name="q" value="">
        <input type="submit" value="Find"></form>"#,
    );
    site.html("find", "<title>Found</title><p>results</p>");
    site.html(
        "post",
        r#"<title>Post</title><form action="/sent" method="post"><textarea name="msg"></textarea><button type="submit">Send</button></form>"#,
    );
    site.html("sent", "<p>thanks</p>");
    let (_dir, d) = fresh();
    let w = d.launch("browser");
    let home = site.url("");
    go(&d, &w, &home);
    wait_page(&d, &w, &home, |t| t.iter().any(|s| s == "Find"));
    let view = d.window(&w)["view"].clone();
    let input = first_id(&view, "input").expect("a text input");
    let button = first_button(&view, "Find").expect("a submit button");
    d.type_and_click(&w, &input, "pola capabilities", &button);
    let found = site.url("find?lang=en&q=pola+capabilities");
    wait_page(&d, &w, &found, |t| t.iter().any(|s| s == "results"));

    go(&d, &w, &site.url("post"));
    wait_page(&d, &w, &site.url("post"), |t| t.iter().any(|s| s == "Send"));
    let view = d.window(&w)["view"].clone();
    let area = first_id(&view, "textarea").expect("a textarea");
    let button = first_button(&view, "Send").expect("a send button");
    d.type_and_click(&w, &area, "hello there", &button);
    wait_page(&d, &w, &site.url("sent"), |t| {
        t.iter().any(|s| s == "thanks")
    });
    let post = site
        .hits()
        .into_iter()
        .find(|h| h.target == "/sent")
        .expect("the POST arrived");
    assert_eq!(post.method, "POST");
    assert_eq!(post.body, "msg=hello+there");
    d.stop();
}

fn first_id(view: &Json, kind: &str) -> Option<String> {
    if view["k"] == kind {
        return view["id"].as_str().map(str::to_owned);
    }
    view["c"].as_array()?.iter().find_map(|c| first_id(c, kind))
}

fn first_button(view: &Json, label: &str) -> Option<String> {
    if view["k"] == "button" && view["label"].as_str().is_some_and(|l| l.contains(label)) {
        return view["id"].as_str().map(str::to_owned);
    }
    view["c"]
        .as_array()?
        .iter()
        .find_map(|c| first_button(c, label))
}

/// The red team's page: links (one only in a comment, a script, an
/// attribute, a meta refresh or a srcset), an image, a form with a hidden
/// field.
fn red_page(site: &Site, extra: &str) -> String {
    format!(
        r#"<!doctype html><html><head><title>Red team</title>
<meta http-equiv="refresh" content="0; url={evil}/meta">
<script>location = "{evil}/script"</script><style>body {{ background: url({evil}/style) }}</style>
</head><body>
<!-- <a href="{evil}/comment">hidden</a> -->
<h1>Target page</h1><p>{extra}</p>
<div data-href="{evil}/attribute">attribute</div>
<img src="/pic.png" srcset="{evil}/srcset 2x" alt="pic">
<p><a href="/one">first link</a> and <a href="/two">second link</a></p>
<form action="/search"><input type="hidden" name="token" value="page-token"><input name="q"><input type="submit" value="Go"></form>
</body></html>"#,
        evil = site.url("evil")
    )
}

#[test]
fn the_hostile_renderer_reaches_none_of_the_seven_goals() {
    let site = Site::start();
    site.html("", &red_page(&site, "nothing special"));
    site.put("pic.png", 200, "image/png", png(8, 8));
    let (dir, d) = fresh();
    let w = d.launch("browser");
    renderer(&d, &w, "hostile");
    let home = site.url("");
    go(&d, &w, &home);
    let lines = report(&d, &w, &home, "link.follow with a URL argument");
    let escaped: Vec<&String> = lines.iter().filter(|l| l.starts_with("ESCAPED")).collect();
    assert!(escaped.is_empty(), "the renderer escaped: {escaped:#?}");
    // Each attempt was made, and refused for its own reason: the desk's
    // words for it (a line the renderer writes itself, such as "not tried"
    // or a refusal by its own sandbox, is no proof the desk refused it).
    const PANE: &str = "a pane answers only show(view)";
    const LINK: &str = "a link answers only follow()";
    const IMAGE: &str = "an image answers nothing: put it in a view's <'image IMAGE alt>";
    let expected: [(&str, &str); 22] = [
        ("memory across pages", "render 1, nothing remembered"),
        (
            "env holds only tree, title, truncated, pane",
            "it holds pane, title, tree, truncated",
        ),
        ("pane.set_url", PANE),
        ("pane.set_title", PANE),
        ("pane.set_icon", PANE),
        ("pane.navigate", PANE),
        ("pane.read", PANE),
        ("view node 'title'", "unknown view node 'title'"),
        ("view node 'script'", "unknown view node 'script'"),
        ("view node 'autofocus'", "unknown view node 'autofocus'"),
        ("view node 'droptarget'", "unknown view node 'droptarget'"),
        ("view of 6000 nodes", "the view has more than 5000 nodes"),
        ("view 40 deep", "the view is nested deeper than 32"),
        ("link.get", LINK),
        ("link.url", LINK),
        (
            "link.follow with a URL argument",
            "follow() takes nothing: a link goes where the page said",
        ),
        ("image.read", IMAGE),
        ("image.url", IMAGE),
        (
            "form.submit with an unknown field",
            "the form has no field named \"pola-red-team-extra\"",
        ),
        (
            "form.submit changing a hidden field",
            "all 8 names refused: ",
        ),
        ("handles 1..2000", "all 2000 guesses unknown"),
        ("storage.put", "storage-full"),
    ];
    for l in &lines {
        assert!(
            !l.contains("not tried") && !l.contains("refused by the sandbox"),
            "an attempt the desk never answered: {l}"
        );
    }
    for (attempt, reason) in expected {
        let prefix = format!("BLOCKED: {attempt}: ");
        let line = lines
            .iter()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("no BLOCKED line for {attempt:?}: {lines:#?}"));
        assert!(
            line[prefix.len()..].starts_with(reason),
            "{attempt}: refused for another reason than {reason:?}: {line}"
        );
    }
    // The renderer cannot see hidden fields, so it guessed names: the desk
    // refused the one it has as hidden, and the rest as unknown.
    let hidden = lines
        .iter()
        .find(|l| l.contains("form.submit changing a hidden field"))
        .expect("the hidden field line");
    assert!(
        hidden.contains("the hidden field \"token\" cannot be changed"),
        "{hidden}"
    );
    // Every line of the report is one of these, or one of the two
    // payloads sent as text (checked below).
    let report_lines = lines
        .iter()
        .filter(|l| {
            ["BLOCKED:", "ESCAPED:", "ANSWERED:", "SENT-", "PENDING"]
                .iter()
                .any(|p| l.starts_with(p))
        })
        .count();
    assert_eq!(report_lines, expected.len() + 2, "{lines:#?}");
    // The URL field, the title and the history are as the browser left
    // them.
    let b = chrome(&d, &w);
    assert_eq!(b["url"], home.as_str());
    assert_eq!(b["title"], "Red team");
    assert_eq!(b["back"], false);
    // No error it got names the host: no path, no port of the desk.
    let all = lines.join("\n");
    let root = dir.path().to_string_lossy().into_owned();
    assert!(!all.contains(&root), "an error named the state folder");
    assert!(
        !all.contains(&d.port.to_string()),
        "an error named the desk's port"
    );
    assert!(!all.contains("/home/") && !all.contains("/tmp/"), "{all}");
    // Nothing was fetched but the page and its image: no URL from a
    // comment, script, style, attribute, meta refresh or srcset, and no
    // form submission (the renderer's submits were refused).
    let targets: Vec<String> = site.hits().into_iter().map(|h| h.target).collect();
    for t in &targets {
        assert!(t == "/" || t == "/pic.png", "the site got {t}: {targets:?}");
    }
    // Markup went as text: the page's DOM test checks it was never run.
    for (attempt, payload) in [
        ("script markup as text", "<script>window.__pwned=1</script>"),
        (
            "image markup as text",
            "<img src=x onerror=\"window.__pwned=1\">",
        ),
    ] {
        let want = format!("SENT-AS-TEXT: {attempt}: {payload}");
        assert!(lines.contains(&want), "no line {want:?}: {lines:#?}");
    }
    d.stop();
}

/// The hostile renderer follows the first link and, in the same turn,
/// queues a drawing, the second link's `follow` and a form submission
/// behind it: they reach the desk after the browser has moved on (the
/// page check refuses them); its tries once `follow` has answered never
/// run (the desk stopped it in the turn that moved the page). The desk's
/// unit test `a_pages_capabilities_and_renderer_die_when_it_goes_even_drawn_again`
/// calls a dead page's capabilities once the next page is drawn too.
#[test]
fn a_stale_renderer_cannot_draw_follow_or_submit_after_navigation() {
    let site = Site::start();
    site.html("", &red_page(&site, "red-team:follow-first"));
    site.html("one", "<title>One</title><p>page one</p>");
    site.html("two", "<title>Two</title><p>page two</p>");
    site.html("search", "<title>Search</title><p>searched</p>");
    site.put("pic.png", 200, "image/png", png(8, 8));
    let (_dir, d) = fresh();
    let w = d.launch("browser");
    renderer(&d, &w, "hostile");
    let mut m = Messages::new(&d);
    go(&d, &w, &site.url(""));
    // It follows the first link (the URL field follows), the rest fails.
    let one = site.url("one");
    m.until("page one", || {
        let win = d.window(&w);
        win["browser"]["url"] == one.as_str()
            && win["browser"]["loading"] == false
            && texts(&win["view"]).iter().any(|t| t.contains("page one"))
    });
    std::thread::sleep(Duration::from_millis(500));
    m.drain();
    // The stale sends were made: the renderer said so while its page was
    // still the browser's.
    let said = m.first("announcing the stale sends", |m| {
        view_with(m, "SENDING-STALE: follow-first")
    });
    let moved = m.first("moving the URL field to page one", |m| url_is(m, &one));
    assert!(said < moved);
    for msg in &m.seen {
        assert!(
            !msg.to_string().contains("STALE-RENDERER"),
            "a dead page drew: {msg}"
        );
    }
    assert_eq!(chrome(&d, &w)["url"], one.as_str());
    assert!(!site.saw("/two"), "a dead page's link was followed");
    assert!(
        !site.saw("/search") && !site.saw("STALE-FORM"),
        "a dead page's form was submitted"
    );
    d.stop();
}

#[test]
fn a_renderer_that_spins_or_grows_is_stopped_and_the_browser_goes_on() {
    let site = Site::start();
    site.html("cpu", "<title>cpu</title><p>red-team:cpu</p>");
    site.html("memory", "<title>memory</title><p>red-team:memory</p>");
    site.html("fine", "<title>fine</title><p>all fine</p>");
    let (_dir, d) = fresh();
    let notes = d.install_stock(&pola_desk_apps::NOTES);
    let w = d.launch("browser");
    renderer(&d, &w, "hostile");
    go(&d, &w, &site.url("cpu"));
    let start = Instant::now();
    while chrome(&d, &w)["loading"] != false {
        assert!(start.elapsed() < PATIENCE);
        std::thread::sleep(Duration::from_millis(20));
    }
    // The desk says the renderer failed, in its own words.
    let start = Instant::now();
    while chrome(&d, &w)["error"].is_null() {
        assert!(
            start.elapsed() < PATIENCE,
            "no word of the spinning renderer"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let t = texts(&d.window(&w)["view"]);
    assert!(
        t.iter().any(|s| s.contains("could not draw this page")),
        "{t:?}"
    );
    // A bystander app still answers.
    let nw = d.launch(&notes);
    d.wait_view(&nw, "the notes app", |t| !t.is_empty());
    // A renderer that re-enters itself turn after turn (no turn is long)
    // is stopped by its budget across turns, while the desk answers.
    site.html(
        "turns",
        "<title>turns</title><p>red-team:spin-turns</p><img src='/pic.png' alt='pic'>",
    );
    site.put("pic.png", 200, "image/png", png(4, 4));
    go(&d, &w, &site.url("turns"));
    let start = Instant::now();
    while chrome(&d, &w)["renderer_stopped"].is_null() {
        assert!(
            start.elapsed() < PATIENCE,
            "the spinning renderer was never stopped"
        );
        d.click(&nw, "nothing-here");
        std::thread::sleep(Duration::from_millis(50));
    }
    let why = chrome(&d, &w)["renderer_stopped"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    assert!(why.contains("CPU budget"), "{why}");
    go(&d, &w, &site.url("memory"));
    let lines = report(&d, &w, &site.url("memory"), "grow memory");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("BLOCKED:") && l.contains("memory")),
        "{lines:#?}"
    );
    renderer(&d, &w, "benign");
    go(&d, &w, &site.url("fine"));
    wait_page(&d, &w, &site.url("fine"), |t| {
        t.iter().any(|s| s == "all fine")
    });
    d.stop();
}

#[test]
fn a_conspiring_server_gets_another_pages_secret_only_through_that_pages_own_form() {
    let bank = Site::start();
    let evil = Site::start();
    bank.html(
        "secret",
        &format!(
            r#"<title>Bank</title><p>red-team:exfiltrate</p><p>balance TOPSECRET42</p>
            <p><a href="{}">a partner</a></p><img src="/logo.png" alt="logo">
            <form action="/search"><input name="q"><input type="submit" value="Search"></form>"#,
            evil.url("welcome")
        ),
    );
    bank.put("logo.png", 200, "image/png", png(8, 8));
    evil.html(
        "welcome",
        &format!(
            r#"<title>Partner</title><p>red-team:exfiltrate</p>
            <a href="{0}">more</a><img src="/pixel.png" alt="px">
            <form action="{0}" method="post"><input name="loot"><input type="submit" value="Send"></form>"#,
            evil.url("collect")
        ),
    );
    evil.put("pixel.png", 200, "image/png", png(1, 1));
    let (_dir, d) = fresh();
    let w = d.launch("browser");
    renderer(&d, &w, "hostile");
    let collected = |n: usize| {
        let start = Instant::now();
        while evil
            .hits()
            .iter()
            .filter(|h| h.target == "/collect")
            .count()
            < n
        {
            assert!(
                start.elapsed() < PATIENCE,
                "the partner's form was not submitted"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    // The user visits the partner (so its address was typed): its
    // renderer sends the partner's page to the partner's own form.
    go(&d, &w, &evil.url("welcome"));
    collected(1);
    go(&d, &w, &bank.url("secret"));
    // The renderer of the bank's page sends the secret out through every
    // channel it has; only the bank's own form carries it, to the bank.
    let start = Instant::now();
    while !bank.saw("/search") {
        assert!(
            start.elapsed() < PATIENCE,
            "the bank's form was not submitted"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !evil.saw("TOPSECRET42"),
        "the secret reached the conspiring server: {:?}",
        evil.hits()
    );
    assert!(bank.saw("TOPSECRET42"), "the bank's own form carried it");
    // A fresh renderer on the partner's page holds nothing of the bank's:
    // the renderer keeps each page's text in every place a WebAssembly
    // instance can keep anything (a static, thread-local storage, a leaked
    // heap block, its own fields) and sends it, with its count of renders,
    // through the next page's form.
    go(&d, &w, &evil.url("welcome"));
    collected(2);
    std::thread::sleep(Duration::from_millis(500));
    assert!(!evil.saw("TOPSECRET42"), "{:?}", evil.hits());
    // Every page's renderer was a fresh instance that remembered nothing:
    // "render-count-1 remembered []", form-encoded, in each submission.
    let fresh_instance = "render-count-1+remembered+%5B%5D+page";
    let sent: Vec<String> = evil
        .hits()
        .into_iter()
        .filter(|h| h.target == "/collect")
        .map(|h| h.body)
        .chain(
            bank.hits()
                .into_iter()
                .filter(|h| h.target.starts_with("/search"))
                .map(|h| h.target),
        )
        .collect();
    assert_eq!(sent.len(), 3, "{sent:#?}");
    for s in &sent {
        assert!(s.contains(fresh_instance), "a renderer remembered: {s}");
    }
    d.stop();
}

#[test]
fn a_link_that_redirects_shows_the_final_address_before_the_new_page() {
    let site = Site::start();
    site.html("", "<title>Start</title><p><a href='/old'>moved</a></p>");
    site.redirect("old", &site.url("new"));
    site.html("new", "<title>New</title><p>the new place</p>");
    let (_dir, d) = fresh();
    let w = d.launch("browser");
    let (home, old, new) = (site.url(""), site.url("old"), site.url("new"));
    go(&d, &w, &home);
    wait_page(&d, &w, &home, |t| t.iter().any(|s| s == "moved"));
    let mut m = Messages::new(&d);
    d.ok(
        &format!("api/windows/{w}/event"),
        &json!({"type": "link", "n": 0}).to_string(),
    );
    m.until("the new page", || {
        let win = d.window(&w);
        win["browser"]["url"] == new.as_str()
            && texts(&win["view"]).iter().any(|s| s == "the new place")
    });
    // The link's address first (before the fetch), then the address the
    // site redirected to, then the page.
    let asked = m.first("with the link's address", |m| url_is(m, &old));
    let landed = m.first("with the final address", |m| url_is(m, &new));
    let drawn = m.first("drawing the new page", |m| view_with(m, "the new place"));
    assert!(asked < landed && landed < drawn, "{:#?}", m.seen);
    assert_eq!(chrome(&d, &w)["title"], "New");
    assert!(site.saw("/new"));
    // The history holds the final address too.
    d.ok(&format!("api/windows/{w}/back"), "{}");
    wait_page(&d, &w, &home, |t| t.iter().any(|s| s == "moved"));
    d.ok(&format!("api/windows/{w}/forward"), "{}");
    wait_page(&d, &w, &new, |t| t.iter().any(|s| s == "the new place"));
    d.stop();
}

#[test]
fn a_refused_back_leaves_the_history_where_it_was() {
    let site = Site::start();
    site.html("", "<title>A</title><p>site a</p>");
    let (_dir, d) = fresh();
    let w = d.launch("browser");
    let a = site.url("");
    go(&d, &w, &a);
    wait_page(&d, &w, &a, |t| t.iter().any(|s| s == "site a"));
    // 64 more local addresses typed (nothing listens there): the window
    // remembers the last 64 typed origins, so A's is forgotten and a page
    // (or the history) may no longer lead the browser to it.
    let others: Vec<String> = (0..64)
        .map(|k| format!("http://127.0.0.{}:{}/", k + 2, site.port))
        .collect();
    for o in &others {
        go(&d, &w, o);
    }
    for o in others.iter().rev().skip(1) {
        d.ok(&format!("api/windows/{w}/back"), "{}");
        assert_eq!(chrome(&d, &w)["url"], o.as_str());
    }
    let r = d.post(&format!("api/windows/{w}/back"), "{}");
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("no longer typed"), "{}", r.text());
    // Nothing moved: the URL field and the history's position agree.
    let b = chrome(&d, &w);
    assert_eq!(b["url"], others[0].as_str());
    assert_eq!(
        (b["back"].clone(), b["forward"].clone()),
        (json!(true), json!(true))
    );
    d.ok(&format!("api/windows/{w}/forward"), "{}");
    assert_eq!(chrome(&d, &w)["url"], others[1].as_str());
    // Typed again, A opens.
    go(&d, &w, &a);
    wait_page(&d, &w, &a, |t| t.iter().any(|s| s == "site a"));
    d.stop();
}

#[test]
fn the_url_field_moves_before_the_fetch_and_the_old_page_goes_at_once() {
    let site = Site::start();
    site.html(
        "",
        "<title>Home</title><h1>Welcome home</h1><p><a href='/slow'>slow page</a></p>",
    );
    let gate = site.gated("slow", "<title>Slow</title><p>slow content</p>");
    let (_dir, d) = fresh();
    let w = d.launch("browser");
    let (home, slow) = (site.url(""), site.url("slow"));
    go(&d, &w, &home);
    wait_page(&d, &w, &home, |t| t.iter().any(|s| s == "Welcome home"));
    let mut m = Messages::new(&d);
    d.ok(
        &format!("api/windows/{w}/event"),
        &json!({"type": "link", "n": 0}).to_string(),
    );
    // The site has the request and holds it: the fetch is under way.
    m.until("the request for the slow page", || site.saw("/slow"));
    std::thread::sleep(Duration::from_millis(200));
    m.drain();
    let win = d.window(&w);
    assert_eq!(win["browser"]["url"], slow.as_str(), "the URL field waited");
    assert_eq!(win["browser"]["loading"], true);
    assert_eq!(win["browser"]["title"], "");
    // Nothing of the old page stays under the new address (it would
    // pass for the new page's): the desk says what it is opening.
    let t = texts(&win["view"]);
    assert_eq!(t, [format!("Opening {slow} …")], "{t:?}");
    assert!(m.seen.iter().any(|m| url_is(m, &slow)));
    assert!(!m.seen.iter().any(|m| view_with(m, "slow content")));
    gate.open();
    wait_page(&d, &w, &slow, |t| t.iter().any(|s| s == "slow content"));
    d.stop();
}

#[test]
fn huge_and_odd_pages_are_bounded_and_refused_in_plain_words() {
    let site = Site::start();
    let mut big = String::from("<title>Big</title>");
    for i in 0..60_000 {
        big.push_str(&format!(
            "<p><a href='/p{i}'>link {i}</a> some words here</p>"
        ));
    }
    site.html("big", &big);
    site.put("bin", 200, "application/octet-stream", vec![0; 100]);
    site.put(
        "plain",
        200,
        "text/plain",
        b"just <b>text</b>\nline two".to_vec(),
    );
    let (_dir, d) = fresh();
    let w = d.launch("browser");
    go(&d, &w, &site.url("big"));
    wait_page(&d, &w, &site.url("big"), |t| {
        t.iter().any(|s| s.contains("link 0"))
    });
    assert_eq!(chrome(&d, &w)["truncated"], true);
    go(&d, &w, &site.url("plain"));
    wait_page(&d, &w, &site.url("plain"), |t| {
        t.iter().any(|s| s.contains("just <b>text</b>"))
    });
    go(&d, &w, &site.url("bin"));
    let start = Instant::now();
    while chrome(&d, &w)["error"].is_null() {
        assert!(start.elapsed() < PATIENCE);
        std::thread::sleep(Duration::from_millis(20));
    }
    let e = chrome(&d, &w)["error"].as_str().unwrap_or("").to_owned();
    assert!(e.contains("HTML"), "{e}");
    d.stop();
}

/// A PNG that claims `w`×`h` pixels (and holds none).
fn bomb(w: u32, h: u32) -> Vec<u8> {
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 6, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    out.extend_from_slice(&13u32.to_be_bytes());
    out.extend_from_slice(&ihdr);
    out.extend_from_slice(&crc32fast::hash(&ihdr).to_be_bytes());
    out
}

#[test]
fn hostile_pictures_are_refused_and_the_page_still_shows() {
    let site = Site::start();
    site.html(
        "",
        "<title>Pictures</title><p>pictures below</p><img src='/huge.png' alt='huge'><img src='/wide.png' alt='wide'><img src='/junk.png' alt='junk'><img src='/ok.png' alt='ok'>",
    );
    site.put("huge.png", 200, "image/png", bomb(10_000, 10_000));
    site.put("wide.png", 200, "image/png", bomb(100_000, 1));
    site.put(
        "junk.png",
        200,
        "image/png",
        b"not a picture at all".to_vec(),
    );
    site.put("ok.png", 200, "image/png", png(2000, 10));
    let (_dir, d) = fresh();
    let w = d.launch("browser");
    let home = site.url("");
    go(&d, &w, &home);
    wait_page(&d, &w, &home, |t| t.iter().any(|s| s == "pictures below"));
    for n in 0..3 {
        let r = d.get(&format!("api/images/{w}/{n}"));
        assert_eq!(r.status, 404, "picture {n}: {}", r.text());
        let e = r.json()["error"].as_str().unwrap_or("").to_owned();
        assert!(!e.is_empty() && !e.contains('/'), "picture {n}: {e}");
    }
    // A large but sound picture is scaled down to 1 600 pixels a side.
    let ok = d.get(&format!("api/images/{w}/3"));
    assert_eq!(ok.status, 200, "{}", ok.text());
    let img = image::load_from_memory(&ok.body).expect("the desk's PNG");
    assert_eq!((img.width(), img.height()), (1600, 8));
    d.stop();
}
