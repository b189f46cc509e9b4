//! The desk's browser (issue 13) in a real Chromium: starts a fresh `pola
//! desk` on a scratch state folder and runs
//! `crates/desk/tests/e2e/browser.mjs` against it. The script serves its
//! own web site on loopback and drives the Browser app through the desk's
//! page: a typed address (text the page hides with `hidden` or
//! `display: none` is not drawn), a link (the site holds its answer: the
//! URL field shows the new address before the answer is sent, and the new
//! page only after), Back/Forward/Reload, a form, images, the three
//! renderers (a screenshot of each), the hostile renderer redrawing while
//! the person types in the URL field (the focus, the text and the
//! window's icon stay), the hostile renderer on the red team's page.
//!
//! Needs `/usr/bin/chromium` (or `POLA_CHROMIUM`), node, and `npm ci` in
//! `crates/desk/tests/e2e`: `.ci/run` installs them. Without them this test
//! fails and says so. Screenshots are left in the scratch folder printed
//! on failure; with `POLA_UPDATE_SCREENSHOT=1` the benign and hostile
//! renderers' pictures are copied to `docs/browser.png` and
//! `docs/browser-red-team.png`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

mod chromium;
use chromium::{Desk, Scratch, node, repo, require_tools};

#[test]
fn browser_in_chromium() {
    require_tools();
    let scratch = Scratch::new("pola-browser-chromium");
    let state = scratch.0.join("state");
    let docs = scratch.0.join("docs");
    let shots = scratch.0.join("screenshots");
    for d in [&docs, &shots] {
        std::fs::create_dir_all(d).unwrap();
    }
    println!("screenshots: {}", shots.display());
    let desk = Desk::start(&state, &docs, scratch.0.join("desk.log"));

    let repo = repo();
    let env: Vec<(&str, &Path)> = vec![("POLA_DESK_OUT", &shots), ("POLA_REPO", &repo)];
    node("browser.mjs", &desk, &env);
    // The script's own claims, checked from outside: it drew each renderer.
    for name in ["browser-benign", "browser-text", "browser-hostile"] {
        let png = shots.join(format!("{name}.png"));
        let bytes =
            std::fs::read(&png).unwrap_or_else(|e| panic!("no screenshot {}: {e}", png.display()));
        assert!(
            bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 10_000,
            "{} is not a real screenshot",
            png.display()
        );
    }
}
